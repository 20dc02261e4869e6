// Hosting an NGI app inside a Node framework's own response pipeline (Koa's `ctx.body`,
// Fastify's `reply.send`): the exchange becomes a status, headers and a body the framework
// sends itself, so its middleware and hooks (compression, sessions, ETags, loggers) act on it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Exchange, RESOLVED, type ResponseSink } from '../core/exchange.js';
import { NgiError } from '../core/errors.js';
import { LazySignal } from '../core/signal.js';
import type { App, Chunk, Headers } from '../core/types.js';
import { environFromNode, type NodeEnvironOptions } from './node-environ.js';

/** The response an NGI app gave, for a framework to send. */
export interface PipelineResponse {
  code: number;
  /** The app's reason phrase (`""` when it gave none). */
  reason: string;
  headers: Headers;
  /**
   * The whole body when the engine knew it at head time (a finished array; a one-string body
   * stays a string), a stream when the app streams, `null` for a response without a body
   * (HEAD, 204, 304).
   */
  body: Buffer | string | Readable | null;
  /** The `Content-Length` the engine computed for a bodiless HEAD, or -1. */
  length: number;
}

/**
 * Whether a header of this lower-cased name comes before index `i`: the first of a repeated
 * name replaces what the framework holds, the later ones add to it. Apps send few headers.
 */
export function repeatsEarlier(headers: Headers, i: number, lower: string): boolean {
  for (let j = 0; j < i; j++) if (headers[j]![0].toLowerCase() === lower) return true;
  return false;
}

/**
 * The stream a framework pipes to the client: pulled with backpressure (a chunk waits while
 * the framework's pipe is over its high-water mark), destroyed by the framework when the
 * client goes away or a middleware replaces the body.
 */
class PipelineBody extends Readable {
  readonly #sink: PipelineSink;

  constructor(sink: PipelineSink) {
    super();
    this.#sink = sink;
  }

  override _read(): void {
    this.#sink.wakeDrain();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#sink.bodyDestroyed();
    callback(error);
  }
}

/**
 * A sink that hands the exchange to a framework once its head is known: a finished body as
 * one Buffer (so the framework computes its length, ETag, compression in one go), anything
 * else as a `Readable` it pipes.
 */
export class PipelineSink implements ResponseSink {
  exchange: Exchange | undefined = undefined;
  headersSent = false;
  readonly res: ServerResponse;
  readonly #answer: (response: PipelineResponse) => void;
  #response: PipelineResponse | undefined = undefined;
  /** Deferred mode: the engine holds the whole body, every chunk follows synchronously. */
  #buffered: Buffer[] | undefined = undefined;
  #stream: PipelineBody | undefined = undefined;
  #ended = false;
  #gone = false;
  #waiting: Promise<void> | undefined = undefined;
  #wake: (() => void) | undefined = undefined;

  constructor(res: ServerResponse, answer: (response: PipelineResponse) => void) {
    this.res = res;
    this.#answer = answer;
  }

  get closed(): boolean {
    return this.#gone || this.res.destroyed;
  }

  head(code: number, reason: string, headers: Headers, addLength: number, whole = false): void {
    const bodiless = this.exchange?.bodiless === true || code === 204 || code === 304;
    const response: PipelineResponse = { code, reason, headers, body: null, length: -1 };
    this.#response = response;
    if (bodiless) {
      if (addLength >= 0 && code !== 204 && code !== 304) response.length = addLength;
      this.#deliver();
    } else if (addLength >= 0 || whole) {
      this.#buffered = [];
    } else {
      response.body = this.#stream = new PipelineBody(this);
      this.#deliver();
    }
  }

  write(chunk: Chunk): boolean {
    if (this.#gone) return true;
    const buffered = this.#buffered;
    if (buffered !== undefined) {
      buffered.push(typeof chunk === 'string' ? Buffer.from(chunk) : toBuffer(chunk));
      return true;
    }
    const stream = this.#stream;
    if (stream === undefined) return true;
    return stream.push(typeof chunk === 'string' ? Buffer.from(chunk) : toBuffer(chunk));
  }

  end(chunk?: Chunk): void {
    if (this.#gone) return;
    const buffered = this.#buffered;
    if (buffered !== undefined) {
      this.#buffered = undefined;
      if (typeof chunk === 'string' && buffered.length === 0) {
        // One string: Node writes a string body with its head in one write, a Buffer in two.
        this.#response!.body = chunk;
      } else {
        if (chunk !== undefined) {
          buffered.push(typeof chunk === 'string' ? Buffer.from(chunk) : toBuffer(chunk));
        }
        this.#response!.body = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered);
      }
      this.#ended = true;
      this.#deliver();
      return;
    }
    this.#ended = true;
    const stream = this.#stream;
    if (stream === undefined) return;
    if (chunk !== undefined && chunk.length > 0) {
      stream.push(typeof chunk === 'string' ? Buffer.from(chunk) : toBuffer(chunk));
    }
    stream.push(null);
  }

  drain(): Promise<void> {
    if (this.closed) return RESOLVED;
    return (this.#waiting ??= new Promise((resolve) => (this.#wake = resolve)));
  }

  /**
   * The response broke after its head: the connection goes down whatever the framework does
   * with a failed stream (a pipe would leave it open, and the client waiting).
   */
  abort(_error: Error): void {
    this.#gone = true;
    if (!this.headersSent) {
      // Still deferred: the framework gets a stream that is already broken.
      this.#response ??= { code: 500, reason: '', headers: [], body: null, length: -1 };
      this.#response.body = this.#stream = new PipelineBody(this);
      this.#buffered = undefined;
      this.#deliver();
    }
    this.#stream?.destroy();
    this.res.destroy();
    this.wakeDrain();
  }

  /** Wakes a writer waiting for the framework to read (or to drop the body). */
  wakeDrain(): void {
    const wake = this.#wake;
    this.#waiting = undefined;
    this.#wake = undefined;
    wake?.();
  }

  /** The framework destroyed the body: the client left, or a middleware replaced it. */
  bodyDestroyed(): void {
    if (this.#ended || this.#gone) return;
    this.#gone = true;
    this.wakeDrain();
    this.exchange?.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
  }

  /** `res` closed: if it never finished, the client went away. */
  readonly onClose = (): void => {
    if (this.res.writableFinished || this.#gone) return;
    this.#gone = true;
    this.#stream?.destroy();
    this.wakeDrain();
    this.exchange?.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
  };

  #deliver(): void {
    this.headersSent = true;
    this.#answer(this.#response!);
  }
}

function toBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
}

export interface PipelineRequestOptions extends NodeEnvironOptions {
  /** The app failed before its head: the framework's error handling answers. */
  onFailure: (error: unknown) => void;
}

/**
 * Runs an NGI app for a Node request whose response a framework sends: `answer` gets the
 * status, headers and body once the head is known. No fast path to the raw response: the
 * framework's pipeline must see everything.
 *
 * @example
 * servePipelineRequest(app, ctx.req, ctx.res, (response) => applyToKoa(ctx, response), {
 *   onFailure: reject,
 * });
 */
export function servePipelineRequest(
  app: App,
  req: IncomingMessage,
  res: ServerResponse,
  answer: (response: PipelineResponse) => void,
  options: PipelineRequestOptions,
): Exchange {
  const controller = new LazySignal();
  const environ = environFromNode(req, options, controller);
  const sink = new PipelineSink(res, answer);
  const exchange = new Exchange(environ, sink, controller);
  sink.exchange = exchange;
  exchange.onFailure = options.onFailure;
  res.on('close', sink.onClose);
  void exchange.run(app);
  return exchange;
}

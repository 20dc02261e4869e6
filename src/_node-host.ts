import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Exchange, type ResponseSink } from './_engine.js';
import { environFromNode } from './environ.js';
import { NgiError } from './errors.js';
import { kNodeHost } from './_symbols.js';
import { LazySignal } from './_signal.js';
import type { App, Chunk, ErrorStream, Headers } from './types.js';

const RESOLVED = Promise.resolve();

/** Writes an exchange onto a Node `ServerResponse`, real or emulated. */
export class NodeSink implements ResponseSink {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  exchange: Exchange | undefined = undefined;
  private waiting: Promise<void> | undefined = undefined;
  private wake: (() => void) | undefined = undefined;
  private gone = false;

  constructor(req: IncomingMessage, res: ServerResponse) {
    this.req = req;
    this.res = res;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get closed(): boolean {
    return this.gone || this.res.destroyed;
  }

  head(code: number, reason: string, headers: Headers, addLength: number): void {
    const res = this.res;
    if (res.headersSent)
      throw new NgiError(
        'NGI_ERR_VALIDATION',
        'the response head was already sent by someone else',
      );
    if (res.getHeaderNames().length === 0) {
      // Fresh response: one flat array is Node's fastest path and keeps duplicates.
      const flat: string[] = new Array(headers.length * 2 + (addLength >= 0 ? 2 : 0));
      let n = 0;
      for (let i = 0; i < headers.length; i++) {
        const pair = headers[i]!;
        flat[n++] = pair[0];
        flat[n++] = pair[1];
      }
      if (addLength >= 0) {
        flat[n++] = 'Content-Length';
        flat[n++] = String(addLength);
      }
      res.writeHead(code, reason || undefined, flat);
      return;
    }
    // Headers set upstream (CORS, helmet, ...) survive; the app's own replace same-named ones
    // while its duplicates (Set-Cookie) are kept. Cookies add up instead, as a later
    // `res.cookie()` adds to earlier ones in Express: each names its own cookie (a session).
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i]![0];
      if (name.length !== 10 || name.toLowerCase() !== 'set-cookie') res.removeHeader(name);
    }
    for (let i = 0; i < headers.length; i++) res.appendHeader(headers[i]![0], headers[i]![1]);
    if (addLength >= 0) res.setHeader('Content-Length', addLength);
    res.writeHead(code, reason || undefined);
  }

  write(chunk: Chunk): boolean {
    return this.res.write(chunk);
  }

  end(chunk?: Chunk): void {
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
  }

  drain(): Promise<void> {
    if (this.closed) return RESOLVED;
    if (this.waiting === undefined) {
      this.waiting = new Promise((resolve) => (this.wake = resolve));
      this.res.once('drain', this.onDrain);
    }
    return this.waiting;
  }

  abort(_error: Error): void {
    this.gone = true;
    this.res.destroy();
    this.onDrain();
  }

  private readonly onDrain = (): void => {
    const wake = this.wake;
    this.waiting = undefined;
    this.wake = undefined;
    wake?.();
  };

  /** `res` closed: if it never finished, the client went away. */
  readonly onClose = (): void => {
    if (!this.res.writableFinished) {
      this.gone = true;
      this.onDrain();
      this.exchange?.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    } else this.exchange?.handOffDone();
  };
}

export interface NodeRequestOptions {
  /** The mount point (`""` at the root). */
  scriptName?: string;
  /** The raw path and query below the mount point; defaults to `req.url`. */
  target?: string;
  /** The request target as the client sent it; defaults to `req.url`. */
  requestUri?: string;
  errors?: ErrorStream;
  multiprocess?: boolean;
  /** `ngi.input` when it is not `req` itself (a framework middleware already read the body). */
  input?: Readable | undefined;
  /** The length of a kept `input` (it becomes `CONTENT_LENGTH`). */
  inputLength?: number | undefined;
  /** Connect-style fallback: called with the error instead of answering 500. */
  next?: ((error?: unknown) => void) | undefined;
  /** Called once the exchange is over (a framework middleware awaiting it, as Koa's do). */
  onDone?: (() => void) | undefined;
}

/** Serves one Node request with an NGI app. Never throws; failures become responses. */
export function serveNodeRequest(
  app: App,
  req: IncomingMessage,
  res: ServerResponse,
  options: NodeRequestOptions,
): Exchange {
  const controller = new LazySignal();
  const environ = environFromNode(req, {
    scriptName: options.scriptName,
    target: options.target,
    requestUri: options.requestUri,
    errors: options.errors,
    multiprocess: options.multiprocess,
    input: options.input,
    inputLength: options.inputLength,
    abort: controller,
  });
  const sink = new NodeSink(req, res);
  const exchange = new Exchange(environ, sink, controller);
  sink.exchange = exchange;
  environ[kNodeHost] = sink;
  if (options.next !== undefined) exchange.onFailure = options.next;
  if (options.onDone !== undefined) exchange.onDone = options.onDone;
  res.once('close', sink.onClose);
  void exchange.run(app);
  return exchange;
}

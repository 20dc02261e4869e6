// Hosting an NGI app on a Fetch runtime: the environ of a `Request`, and the sink that
// turns an exchange into a `Response` (what `toFetch` and `toHono` run on).
import { Readable } from 'node:stream';
import { Exchange, RESOLVED, type ResponseSink } from '../core/exchange.js';
import { LazySignal } from '../core/signal.js';
import { decodePath, rawPathBelow, splitTarget } from '../core/url.js';
import {
  NGI_VERSION,
  addHeader,
  headerKey,
  replaceLazyKey,
  setServerAddress,
  stderrStream,
} from '../core/environ.js';
import { NgiError, formatError } from '../core/errors.js';
import type { CarriedStatus, FetchOrigin } from '../core/fetch-origin.js';
import { kCarriedStatus, kFetchOrigin } from '../core/symbols.js';
import type { App, Chunk, Environ, ErrorStream, Headers as NgiHeaders } from '../core/types.js';

/** What the environ of a Fetch `Request` needs beyond the request itself. */
export interface FetchEnvironOptions {
  /** The mount point (`""` at the root); becomes `SCRIPT_NAME`. */
  scriptName?: string;
  /** The client address, when the runtime knows it. */
  remoteAddress?: string | undefined;
  /** The client port, when the runtime knows it. */
  remotePort?: string | undefined;
  errors?: ErrorStream;
  /** `ngi.input`, when the runtime already holds the body as a Node stream. */
  input?: Readable;
  /**
   * The request target as the client sent it, when the runtime has it (Node's `req.url` on
   * `@hono/node-server`): `request.url` went through the URL parser, which resolved `..` and
   * `%2e%2e` and re-escaped what it did not like.
   */
  requestUri?: string;
}

const EMPTY: never[] = [];

/** The environ of a Fetch `Request`, in one pass over its headers. */
export function environFromRequest(
  request: Request,
  options: FetchEnvironOptions,
  abort: LazySignal,
): Environ {
  const url = request.url;
  // A Request ngi built from an environ, come back unchanged: what it could not carry too.
  let origin = (request as { [kFetchOrigin]?: FetchOrigin })[kFetchOrigin];
  if (origin !== undefined && origin.url !== url) origin = undefined;
  const from = origin?.environ;
  const https = url.startsWith('https:');
  const authority = url.indexOf('//') + 2;
  let pathStart = url.indexOf('/', authority);
  if (pathStart === -1) pathStart = url.length;
  const hash = url.indexOf('#', pathStart);
  const requestUri =
    options.requestUri ??
    origin?.target ??
    (url.slice(pathStart, hash === -1 ? url.length : hash) || '/');
  const [rawPath, query] = splitTarget(requestUri);
  const scriptName = options.scriptName ?? '';
  const below = rawPathBelow(rawPath, scriptName);
  const method = request.method;
  let input: Readable | undefined = options.input ?? origin?.takeInput();
  const environ: Environ = {
    REQUEST_METHOD: method,
    SCRIPT_NAME: scriptName,
    PATH_INFO: decodePath(below ?? rawPath),
    QUERY_STRING: query,
    SERVER_NAME: '',
    SERVER_PORT: '',
    SERVER_PROTOCOL: from?.SERVER_PROTOCOL ?? 'HTTP/1.1',
    REMOTE_ADDR: options.remoteAddress ?? from?.REMOTE_ADDR ?? '',
    REMOTE_PORT: options.remotePort ?? from?.REMOTE_PORT ?? '',
    REQUEST_URI: requestUri,
    'ngi.version': NGI_VERSION,
    'ngi.url_scheme': https ? 'https' : 'http',
    // Built when read: converting a web stream costs, most GETs never touch the input, and a
    // stand-in Request (@hono/node-server's) builds a whole real Request when `body` is read.
    get 'ngi.input'(): Readable {
      if (input === undefined) {
        const body = method === 'GET' || method === 'HEAD' ? null : request.body;
        input = body === null ? Readable.from(EMPTY) : Readable.fromWeb(body as never);
      }
      return input;
    },
    // Middleware MAY replace any key (spec R2.3): an accessor needs a setter for that.
    set 'ngi.input'(value: Readable) {
      input = value;
    },
    'ngi.errors': options.errors ?? stderrStream,
    'ngi.multiprocess': false,
    'ngi.multithread': false,
    'ngi.run_once': false,
    get 'ngi.signal'(): AbortSignal {
      return abort.signal;
    },
    set 'ngi.signal'(value: AbortSignal) {
      replaceLazyKey(this, 'ngi.signal', value);
    },
  };
  if (https) environ.HTTPS = 'on';
  request.headers.forEach((value, name) => {
    // '' for a name with `_`: `X_Forwarded_For` must not pose as `X-Forwarded-For`.
    const key = headerKey(name);
    if (key !== '') addHeader(environ, key, value);
  });
  if (
    environ.CONTENT_LENGTH === undefined &&
    environ.HTTP_TRANSFER_ENCODING === undefined &&
    method !== 'GET' &&
    method !== 'HEAD'
  ) {
    // A body without a length came chunked (Fetch drops the header as hop-by-hop): say so, or
    // an app (body-parser) takes the request for one without a body.
    const framing = from === undefined ? undefined : from.HTTP_TRANSFER_ENCODING;
    if (framing !== undefined) environ.HTTP_TRANSFER_ENCODING = framing;
    else if (from === undefined && request.body !== null)
      environ.HTTP_TRANSFER_ENCODING = 'chunked';
  }
  const host = url.slice(authority, pathStart);
  environ.HTTP_HOST ??= host;
  setServerAddress(environ, host, undefined, undefined, https);
  return environ;
}

function toBytes(chunk: Chunk): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

const BAD_GATEWAY = {
  status: 502,
  statusText: 'Bad Gateway',
  headers: { 'content-type': 'text/plain; charset=utf-8' },
};

function ignore(): void {}

/** No chunk asked for before a reader asks: `pull` is the sign that a runtime sends the body. */
const PULL_ON_READ = { highWaterMark: 0 };

const BYTE_LENGTH = { highWaterMark: 16384, size: (chunk: Uint8Array) => chunk.byteLength };

/** Header values a Fetch `Headers` takes as they are (the engine refused CR, LF and NUL). */
const PLAIN_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The head as a plain record, when one can say it: no name twice (case aside) and every value
 * one `Headers` keeps as is. Either way the Response means the same; a record is what
 * @hono/node-server writes without building a `Headers` (slow on Node 20) at all.
 */
function plainHeaders(headers: NgiHeaders, addLength: number): Record<string, string> | undefined {
  if (headers.length > 16) return undefined;
  const record: Record<string, string> = {};
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i]![0].toLowerCase();
    const value = headers[i]![1];
    // `__proto__` would set the record's prototype instead: leave such heads to `Headers`.
    if (record[name] !== undefined || name === '__proto__' || !PLAIN_VALUE.test(value)) {
      return undefined;
    }
    record[name] = value;
  }
  if (addLength >= 0) record['content-length'] = String(addLength);
  return record;
}

function hasContentType(headers: Headers | Record<string, string>): boolean {
  return headers instanceof Headers
    ? headers.has('content-type')
    : headers['content-type'] !== undefined;
}

/**
 * Turns an exchange into a Fetch `Response`: resolved at head time, with a pull-based
 * `ReadableStream` body, or with the bytes themselves when the engine knows the whole body.
 */
export class FetchSink implements ResponseSink {
  exchange: Exchange | undefined = undefined;
  headersSent = false;
  closed = false;
  private readonly environ: Environ;
  /** The Response, once the head is out and before anyone asked for it. */
  private answer: Response | undefined = undefined;
  private resolve: ((response: Response) => void) | undefined = undefined;
  private status = 0;
  private statusText = '';
  private headers: Headers | Record<string, string> | undefined = undefined;
  /** Deferred mode: the engine holds the whole body, every chunk follows synchronously. */
  private buffered: Uint8Array[] | undefined = undefined;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined = undefined;
  /** Nothing more reaches the client: a bodiless or substituted response. */
  private discard = false;
  /** The status and reason of a head Fetch cannot express (see `deliver`). */
  private carried: { code: number; reason: string } | undefined = undefined;
  private waiting: Promise<void> | undefined = undefined;
  private wake: (() => void) | undefined = undefined;

  constructor(environ: Environ) {
    this.environ = environ;
  }

  /**
   * The Response itself when the app already answered (a synchronous app: no promise, so a
   * runtime such as @hono/node-server writes it on its fast path), else a promise of it.
   */
  response(): Response | Promise<Response> {
    return this.answer ?? new Promise((resolve) => (this.resolve = resolve));
  }

  private settle(response: Response): void {
    if (this.resolve === undefined) this.answer = response;
    else this.resolve(response);
  }

  head(code: number, reason: string, headers: NgiHeaders, addLength: number, whole = false): void {
    this.headersSent = true;
    // Built as a 200, sent as a 502 by a runtime, passed on as itself to an ngi guest.
    if (code < 200 || code > 599) this.carried = { code, reason };
    let fetchHeaders: Headers | Record<string, string> | undefined = plainHeaders(
      headers,
      addLength,
    );
    if (fetchHeaders === undefined) {
      fetchHeaders = new Headers();
      try {
        for (let i = 0; i < headers.length; i++)
          fetchHeaders.append(headers[i]![0], headers[i]![1]);
      } catch (error) {
        return this.substitute(`a header cannot be expressed by Fetch Headers`, error);
      }
      if (addLength >= 0) fetchHeaders.set('content-length', String(addLength));
    }
    this.status = this.carried === undefined ? code : 200;
    this.statusText = this.carried === undefined ? reason : '';
    this.headers = fetchHeaders;
    // No body to come (a declared `Content-Length: 0` too): a null body, or runtimes such as
    // @hono/node-server add a `Content-Type` of their own to the empty stream.
    if (
      code === 204 ||
      code === 304 ||
      this.exchange?.bodiless === true ||
      this.exchange?.declared === 0
    ) {
      this.discard = true;
      this.deliver(this.build(null));
    } else if (addLength >= 0 || whole) {
      this.buffered = [];
    } else {
      this.deliver(this.build(this.stream()));
    }
  }

  write(chunk: Chunk): boolean {
    if (this.discard || this.closed) return true;
    if (this.buffered !== undefined) {
      this.buffered.push(toBytes(chunk));
      return true;
    }
    const controller = this.controller!;
    controller.enqueue(toBytes(chunk));
    return (controller.desiredSize ?? 0) > 0;
  }

  end(chunk?: Chunk): void {
    if (this.discard || this.closed) return;
    const buffered = this.buffered;
    if (buffered !== undefined) {
      this.buffered = undefined;
      // The fast path: the whole body in hand, no stream at all.
      if (buffered.length === 0) this.deliver(this.build(chunk ?? null));
      else {
        if (chunk !== undefined) buffered.push(toBytes(chunk));
        this.deliver(this.build(buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered)));
      }
      return;
    }
    const controller = this.controller!;
    if (chunk !== undefined && chunk.length > 0) controller.enqueue(toBytes(chunk));
    controller.close();
    this.closed = true;
  }

  drain(): Promise<void> {
    if (this.closed || (this.controller?.desiredSize ?? 1) > 0) return RESOLVED;
    return (this.waiting ??= new Promise((resolve) => (this.wake = resolve)));
  }

  abort(error: Error): void {
    if (this.discard || this.closed) return;
    if (this.controller === undefined) {
      // Still deferred: the client must see a broken body, not a short complete one.
      this.buffered = undefined;
      this.deliver(this.build(this.stream()));
    }
    this.closed = true;
    this.controller!.error(error);
    this.onPull();
  }

  private stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: this.onPull,
        cancel: () => {
          if (this.closed) return;
          this.closed = true;
          this.onPull();
          this.exchange?.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
        },
      },
      BYTE_LENGTH,
    );
  }

  private readonly onPull = (): void => {
    const wake = this.wake;
    this.waiting = undefined;
    this.wake = undefined;
    wake?.();
  };

  private build(body: Chunk | ReadableStream<Uint8Array> | null): Response {
    // A string body makes `Response` add `text/plain;charset=UTF-8` when the head has no
    // Content-Type: then it goes as bytes. Otherwise it stays a string, which a Node runtime
    // writes joined to its head without encoding it first.
    if (typeof body === 'string') {
      if (body === '') body = null;
      else if (!hasContentType(this.headers!)) body = Buffer.from(body);
    }
    const init = { status: this.status, statusText: this.statusText, headers: this.headers };
    try {
      return new Response(body as ConstructorParameters<typeof Response>[0], init);
    } catch {
      // A reason phrase Fetch rejects (control characters) is not worth failing the response.
      init.statusText = '';
      return new Response(body as ConstructorParameters<typeof Response>[0], init);
    }
  }

  /**
   * Resolves the Response; one whose status Fetch cannot carry goes inside a 502 that says
   * why (see `CarriedStatus`): the 502's body, once a runtime reads it, logs the substitution
   * and lets the real answer go, so the app is not left waiting on a body no one reads.
   */
  private deliver(answer: Response): void {
    const carried = this.carried;
    if (carried === undefined) return this.settle(answer);
    const message = `status ${carried.code} cannot be expressed by a Fetch Response (only 200-599)`;
    const body = new ReadableStream<Uint8Array>(
      {
        pull: (controller) => {
          this.logSubstitute(message);
          this.discard = true;
          answer.body?.cancel().then(undefined, ignore);
          controller.enqueue(Buffer.from(`502 Bad Gateway: ${message}\n`));
          controller.close();
        },
      },
      PULL_ON_READ,
    );
    const response = new Response(body, BAD_GATEWAY);
    const value: CarriedStatus = { code: carried.code, reason: carried.reason, response: answer };
    Object.defineProperty(response, kCarriedStatus, { value });
    this.settle(response);
  }

  private logSubstitute(message: string, cause?: unknown): void {
    const environ = this.environ;
    environ['ngi.errors'].write(
      formatError(
        new NgiError('NGI_ERR_UNSUPPORTED', `${message}; answered 502 instead`, { cause }),
        `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}`,
      ),
    );
  }

  /** Answers 502 in place of a response Fetch cannot carry, and says why in the log. */
  private substitute(message: string, cause?: unknown): void {
    this.logSubstitute(message, cause);
    this.discard = true;
    this.settle(new Response(`502 Bad Gateway: ${message}\n`, BAD_GATEWAY));
  }
}

/** What a Fetch runtime can tell about a request beyond the `Request` itself. */
export interface FetchRequestOptions extends FetchEnvironOptions {
  /**
   * The Node response this request will be written to, when the runtime has one (as
   * `@hono/node-server` gives in `c.env.outgoing`): its `close` before it finished means the
   * client left. Watching it spares building `request.signal`, which costs more than the
   * rest of a small request on such runtimes.
   */
  nodeResponse?: NodeResponseLike;
}

/** What `nodeResponse` needs of a Node `ServerResponse`. */
export interface NodeResponseLike {
  once(event: 'close', listener: () => void): unknown;
  readonly writableFinished: boolean;
}

/**
 * Serves one Fetch `Request` with an NGI app (what `toFetch` and `toHono` do per request):
 * the Response itself when the app answered while it ran, else a promise of it. Never
 * rejects: failures become a 500 (or a 502 for a response Fetch cannot express).
 *
 * @example
 * const response = await serveFetchRequest(app, request, { scriptName: '/legacy' });
 */
export function serveFetchRequest(
  app: App,
  request: Request,
  options: FetchRequestOptions = {},
): Response | Promise<Response> {
  const abort = new LazySignal();
  const environ = environFromRequest(request, options, abort);
  return serveEnviron(app, environ, abort, options.nodeResponse ?? request.signal);
}

/**
 * Runs an exchange for a ready environ and gives its Response (see `serveFetchRequest`); the
 * client leaving (the Node response closing unfinished, or the request's signal) abandons it.
 */
export function serveEnviron(
  app: App,
  environ: Environ,
  abort: LazySignal,
  watch: NodeResponseLike | AbortSignal,
): Response | Promise<Response> {
  const sink = new FetchSink(environ);
  const exchange = new Exchange(environ, sink, abort);
  sink.exchange = exchange;
  const signal = watch instanceof AbortSignal ? watch : undefined;
  if (signal?.aborted === true) abort.abort(signal.reason);
  void exchange.run(app);
  // An exchange over by now (a synchronous app, the whole body in hand) has nothing left to
  // abandon: no listener, as @hono/node-server attaches none to a synchronous answer.
  if (exchange.finished || signal?.aborted === true) return sink.response();
  if (signal === undefined) {
    const response = watch as NodeResponseLike;
    response.once('close', () => {
      if (!response.writableFinished) exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    });
  } else {
    const onAbort = () => exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    signal.addEventListener('abort', onAbort, { once: true });
    exchange.onDone = () => signal.removeEventListener('abort', onAbort);
  }
  return sink.response();
}

import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { Exchange, RESOLVED, type ResponseSink } from '../src/_engine.js';
import { targetBelowMount } from '../src/_node-emulation.js';
import { LazySignal } from '../src/_signal.js';
import { kNgiApp } from '../src/_symbols.js';
import { decodePath, rawPathBelow, splitTarget } from '../src/_url.js';
import { addHeader, headerKey, setServerAddress, stderrStream } from '../src/environ.js';
import { NgiError, formatError } from '../src/errors.js';
import type { App, Chunk, Environ, ErrorStream, Headers as NgiHeaders } from '../src/types.js';

/** A Fetch handler, as Deno, Bun, Cloudflare Workers and Hono understand it. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface ToFetchOptions {
  /** The mount point this handler answers under (`""` at the root); becomes `SCRIPT_NAME`. */
  scriptName?: string;
  /** The client address, when the runtime knows it (Fetch `Request`s do not carry one). */
  remoteAddress?: string;
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
  /**
   * The Node response this request will be written to, when the runtime has one (as
   * `@hono/node-server` gives in `c.env.outgoing`): its `close` before it finished means the
   * client left. Watching it spares building `request.signal`, which costs more than the
   * rest of a small request on such runtimes.
   */
  nodeResponse?: NodeResponseLike;
  /**
   * `ngi.input`, when the runtime already holds the body as a Node stream (the untouched
   * `c.env.incoming` on `@hono/node-server`): spares two web-stream conversions of the body.
   */
  input?: Readable;
}

/** What `nodeResponse` needs of a Node `ServerResponse`. */
export interface NodeResponseLike {
  once(event: 'close', listener: () => void): unknown;
  readonly writableFinished: boolean;
}

/*
 * Round-trip tags. `kOriginal` alone cannot be used here: `toNodeHandler` returns any
 * function found under it as a Node handler, so `toNodeHandler(fromFetch(h))` would hand a
 * Fetch handler to `http.createServer`. These tags name the Fetch side explicitly.
 */
const kFetchHandler = Symbol.for('ngi.fetch.handler');
const kFetchApp = Symbol.for('ngi.fetch.app');
type Tagged = { [kFetchHandler]?: FetchHandler; [kFetchApp]?: App; [kNgiApp]?: true };

const VERSION = Object.freeze([1, 0] as const);
const EMPTY: never[] = [];

/**
 * An NGI app as a Fetch handler `(request) => Promise<Response>` for any Fetch runtime
 * (Deno, Bun, Workers, `@hono/node-server`, a Service Worker).
 *
 * The Response resolves as soon as the app's head is out; its body streams with
 * backpressure (the app is not pulled while the consumer is behind), and cancelling it
 * fires `ngi.signal`. `request.signal` is wired to `ngi.signal` as well.
 *
 * What a Fetch `Request` cannot give back: `REQUEST_URI` is taken from `request.url`, which
 * the URL parser already normalised (`.`/`..` and `%2e%2e` segments resolved, `\` read as
 * `/`, non-ASCII and spaces percent-encoded, the default port and the fragment dropped;
 * `%2F` and `%FF` do survive). `SERVER_PROTOCOL` is always `HTTP/1.1`, `REMOTE_ADDR` is
 * empty unless the runtime passes `remoteAddress`, and `HTTP_HOST` falls back to the URL's
 * host when the request carries no `Host` header.
 *
 * @example
 * // Deno.serve(toFetch(app)); Bun.serve({ fetch: toFetch(app) }); export default { fetch: toFetch(app) }
 * const response = await toFetch(app)(new Request('http://localhost/hello'));
 */
export function toFetch(app: App, options: ToFetchOptions = {}): FetchHandler {
  const original = (app as Tagged)[kFetchHandler];
  if (typeof original === 'function') return original;
  const handler: FetchHandler = (request) => serveFetchRequest(app, request, options);
  (handler as Tagged)[kFetchApp] = app;
  return handler;
}

/**
 * Serves one Fetch `Request` with an NGI app (what `toFetch` and `toHono` do per request).
 * Never rejects: failures become a 500 (or a 502 for a response Fetch cannot express).
 *
 * @example
 * const response = await serveFetchRequest(app, request, { scriptName: '/legacy' });
 */
export function serveFetchRequest(
  app: App,
  request: Request,
  options: ToFetchOptions = {},
): Promise<Response> {
  const abort = new LazySignal();
  const environ = environFromRequest(request, options, abort);
  const sink = new FetchSink(environ);
  const exchange = new Exchange(environ, sink, abort);
  sink.exchange = exchange;
  const nodeResponse = options.nodeResponse;
  if (nodeResponse !== undefined) {
    nodeResponse.once('close', () => {
      if (!nodeResponse.writableFinished) {
        exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
      }
    });
    void exchange.run(app);
    return sink.response;
  }
  const signal = request.signal;
  if (signal.aborted) {
    abort.abort(signal.reason);
  } else {
    const onAbort = () => exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    signal.addEventListener('abort', onAbort, { once: true });
    exchange.onDone = () => signal.removeEventListener('abort', onAbort);
  }
  void exchange.run(app);
  return sink.response;
}

/** The environ of a Fetch `Request`, in one pass over its headers. */
function environFromRequest(request: Request, options: ToFetchOptions, abort: LazySignal): Environ {
  const url = request.url;
  const https = url.startsWith('https:');
  const authority = url.indexOf('//') + 2;
  let pathStart = url.indexOf('/', authority);
  if (pathStart === -1) pathStart = url.length;
  const hash = url.indexOf('#', pathStart);
  const requestUri = url.slice(pathStart, hash === -1 ? url.length : hash) || '/';
  const [rawPath, query] = splitTarget(requestUri);
  const scriptName = options.scriptName ?? '';
  const below = rawPathBelow(rawPath, scriptName);
  const method = request.method;
  let input: Readable | undefined;
  const environ: Environ = {
    REQUEST_METHOD: method,
    SCRIPT_NAME: scriptName,
    PATH_INFO: decodePath(below ?? rawPath),
    QUERY_STRING: query,
    SERVER_NAME: '',
    SERVER_PORT: '',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REMOTE_ADDR: options.remoteAddress ?? '',
    REMOTE_PORT: '',
    REQUEST_URI: requestUri,
    'ngi.version': VERSION,
    'ngi.url_scheme': https ? 'https' : 'http',
    // Built when read: converting a web stream costs, most GETs never touch the input, and a
    // stand-in Request (@hono/node-server's) builds a whole real Request when `body` is read.
    get 'ngi.input'(): Readable {
      if (input === undefined) {
        if (options.input !== undefined) return (input = options.input);
        const body = method === 'GET' || method === 'HEAD' ? null : request.body;
        input = body === null ? Readable.from(EMPTY) : Readable.fromWeb(body as never);
      }
      return input;
    },
    'ngi.errors': options.errors ?? stderrStream,
    'ngi.multiprocess': false,
    'ngi.multithread': false,
    'ngi.run_once': false,
    get 'ngi.signal'(): AbortSignal {
      return abort.signal;
    },
  };
  if (https) environ.HTTPS = 'on';
  request.headers.forEach((value, name) => {
    // As in environFromNode: `X_Forwarded_For` must not pose as `X-Forwarded-For`.
    if (!name.includes('_')) addHeader(environ, headerKey(name), value);
  });
  const host = url.slice(authority, pathStart);
  environ.HTTP_HOST ??= host;
  setServerAddress(environ, host, undefined, undefined, https);
  return environ;
}

function toBytes(chunk: Chunk): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

const BYTE_LENGTH = { highWaterMark: 16384, size: (chunk: Uint8Array) => chunk.byteLength };

/**
 * Turns an exchange into a Fetch `Response`: resolved at head time, with a pull-based
 * `ReadableStream` body, or with the bytes themselves when the engine knows the whole body.
 */
class FetchSink implements ResponseSink {
  exchange: Exchange | undefined = undefined;
  readonly response: Promise<Response>;
  headersSent = false;
  closed = false;
  private readonly environ: Environ;
  private resolve!: (response: Response) => void;
  private status = 0;
  private statusText = '';
  private headers: Headers | undefined = undefined;
  /** Deferred mode: the engine announced the length, every chunk follows synchronously. */
  private buffered: Uint8Array[] | undefined = undefined;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined = undefined;
  /** Nothing more reaches the client: a bodiless or substituted response. */
  private discard = false;
  private waiting: Promise<void> | undefined = undefined;
  private wake: (() => void) | undefined = undefined;

  constructor(environ: Environ) {
    this.environ = environ;
    this.response = new Promise((resolve) => (this.resolve = resolve));
  }

  head(code: number, reason: string, headers: NgiHeaders, addLength: number): void {
    this.headersSent = true;
    if (code < 200 || code > 599) {
      return this.substitute(
        `status ${code} cannot be expressed by a Fetch Response (only 200-599)`,
      );
    }
    const fetchHeaders = new Headers();
    try {
      for (let i = 0; i < headers.length; i++) fetchHeaders.append(headers[i]![0], headers[i]![1]);
    } catch (error) {
      return this.substitute(`a header cannot be expressed by Fetch Headers`, error);
    }
    if (addLength >= 0) fetchHeaders.set('content-length', String(addLength));
    this.status = code;
    this.statusText = reason;
    this.headers = fetchHeaders;
    if (code === 204 || code === 304 || this.exchange?.bodiless === true) {
      this.discard = true;
      this.resolve(this.build(null));
    } else if (addLength >= 0) {
      this.buffered = [];
    } else {
      this.resolve(this.build(this.stream()));
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
      if (buffered.length === 0) this.resolve(this.build(chunk ?? null));
      else {
        if (chunk !== undefined) buffered.push(toBytes(chunk));
        this.resolve(this.build(buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered)));
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
      this.resolve(this.build(this.stream()));
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
    const init = { status: this.status, statusText: this.statusText, headers: this.headers };
    try {
      return new Response(body as BodyInit | null, init);
    } catch {
      // A reason phrase Fetch rejects (control characters) is not worth failing the response.
      init.statusText = '';
      return new Response(body as BodyInit | null, init);
    }
  }

  /** Answers 502 in place of a response Fetch cannot carry, and says why in the log. */
  private substitute(message: string, cause?: unknown): void {
    const environ = this.environ;
    environ['ngi.errors'].write(
      formatError(
        new NgiError('NGI_ERR_UNSUPPORTED', `${message}; answered 502 instead`, { cause }),
        `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}`,
      ),
    );
    this.discard = true;
    this.resolve(
      new Response(`502 Bad Gateway: ${message}\n`, {
        status: 502,
        statusText: 'Bad Gateway',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
      }),
    );
  }
}

/** Request headers that describe one hop, not the request: a Fetch handler never sees them. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'http2-settings',
]);

const headerNames = new Map<string, string>();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/**
 * `HTTP_X_FORWARDED_FOR` → `x-forwarded-for`, cached like `headerKey`; throws for a name
 * Fetch would reject (only valid names are cached, so the check costs once per name).
 */
function headerName(key: string): string {
  let name = headerNames.get(key);
  if (name === undefined) {
    name = key.slice(5).toLowerCase().replace(/_/g, '-');
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (headerNames.size < 1000) headerNames.set(key, name);
  }
  return name;
}

function hasBody(environ: Environ): boolean {
  const length = environ.CONTENT_LENGTH;
  return (length !== undefined && length !== '0') || environ.HTTP_TRANSFER_ENCODING !== undefined;
}

/** The URL a Fetch handler sees: the request below the mount point, on its own origin. */
function requestUrl(environ: Environ): string {
  const scheme = environ['ngi.url_scheme'];
  let host = environ.HTTP_HOST;
  if (host === undefined || host === '') {
    const port = environ.SERVER_PORT;
    const plain = port === '' || port === (scheme === 'https' ? '443' : '80');
    host = plain ? environ.SERVER_NAME : `${environ.SERVER_NAME}:${port}`;
  }
  const target = environ.SCRIPT_NAME === '' ? environ.REQUEST_URI : targetBelowMount(environ);
  return `${scheme}://${host}${target.charCodeAt(0) === 47 ? target : '/'}`;
}

/** What a Fetch `Request` cannot express, as a reason; `undefined` when it can. */
function inexpressible(environ: Environ): string | undefined {
  const method = environ.REQUEST_METHOD.toUpperCase();
  if (method === 'TRACE' || method === 'TRACK' || method === 'CONNECT') {
    return `a Fetch Request cannot carry the ${method} method`;
  }
  if ((method === 'GET' || method === 'HEAD') && hasBody(environ)) {
    return `a Fetch Request cannot carry a ${method} request with a body`;
  }
  return undefined;
}

/** A clear answer, and a log line, for a request the Fetch handler cannot be given. */
function refuse(
  environ: Environ,
  startResponse: Parameters<App>[1],
  status: 400 | 501 | 502,
  message: string,
  cause?: unknown,
): string[] {
  environ['ngi.errors'].write(
    formatError(
      new NgiError('NGI_ERR_UNSUPPORTED', message, { cause }),
      `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}`,
    ),
  );
  const reason = STATUS_CODES[status]!;
  startResponse(`${status} ${reason}`, [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`${status} ${reason}: ${message}\n`];
}

type HeaderPairs = Array<[string, string]>;

/** End-to-end request headers as pairs; throws for a name Fetch would reject. */
function headerPairs(environ: Environ): HeaderPairs {
  const headers: HeaderPairs = [];
  for (const key in environ) {
    if (key.startsWith('HTTP_')) {
      const name = headerName(key);
      if (!HOP_BY_HOP.has(name)) headers.push([name, environ[key] as string]);
    }
  }
  if (environ.CONTENT_TYPE !== undefined) headers.push(['content-type', environ.CONTENT_TYPE]);
  if (environ.CONTENT_LENGTH !== undefined) {
    headers.push(['content-length', environ.CONTENT_LENGTH]);
  }
  return headers;
}

/** A real `Request`; `headers` are pairs, or the Headers a stand-in already handed out. */
function realRequest(environ: Environ, url: string, headers: HeaderPairs | Headers): Request {
  const init: RequestInit & { duplex?: 'half' } = { method: environ.REQUEST_METHOD, headers };
  if (hasBody(environ)) {
    init.body = Readable.toWeb(environ['ngi.input']) as ReadableStream<Uint8Array>;
    // Node's fetch insists on being told a streamed body is sent while the response may start.
    init.duplex = 'half';
  }
  const request = new Request(url, init);
  // Following a signal costs undici ~15 µs per Request (its own AbortController, a listener,
  // a WeakRef), more than the rest of a small request; most handlers never read
  // `request.signal`, so it is `ngi.signal`, built only when read.
  Object.defineProperty(request, 'signal', { get: () => environ['ngi.signal'] });
  return request;
}

/*
 * The stand-in Request (after @hono/node-server): an object whose prototype chain holds
 * `Request.prototype`, answering `method`, `url`, `headers` and `signal` from the environ and
 * building the real `Request` only when something else is touched (the body, `clone()`, or
 * undici's own slots when it is passed to `fetch()` / `new Request()`). A real undici Request
 * costs several microseconds (URL parsing, Headers, an AbortController) that a router which
 * reads only the URL never needs.
 */
const kEnviron = Symbol('ngi.environ');
const kUrl = Symbol('ngi.url');
const kPairs = Symbol('ngi.headerPairs');
const kHeaders = Symbol('ngi.headers');
const kReal = Symbol('ngi.request');

interface StandIn {
  [kEnviron]: Environ;
  [kUrl]: string;
  [kPairs]: HeaderPairs;
  [kHeaders]: Headers | undefined;
  [kReal]: Request | undefined;
}

function realOf(standIn: StandIn): Request {
  return (standIn[kReal] ??= realRequest(
    standIn[kEnviron],
    standIn[kUrl],
    standIn[kHeaders] ?? standIn[kPairs],
  ));
}

const standInPrototype: object = Object.create(Request.prototype, {
  method: {
    get(this: StandIn) {
      return this[kEnviron].REQUEST_METHOD;
    },
  },
  url: {
    get(this: StandIn) {
      return this[kUrl];
    },
  },
  headers: {
    get(this: StandIn) {
      return this[kReal]?.headers ?? (this[kHeaders] ??= new Headers(this[kPairs]));
    },
  },
  signal: {
    get(this: StandIn) {
      return this[kEnviron]['ngi.signal'];
    },
  },
});

function delegate(key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor {
  if (typeof descriptor.value === 'function') {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    return {
      value(this: StandIn, ...args: unknown[]) {
        return method.apply(realOf(this), args);
      },
    };
  }
  return {
    get(this: StandIn) {
      return (realOf(this) as unknown as Record<string | symbol, unknown>)[key];
    },
  };
}

for (const key of Object.getOwnPropertyNames(Request.prototype)) {
  if (key === 'constructor' || Object.hasOwn(standInPrototype, key)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(Request.prototype, key)!;
  Object.defineProperty(standInPrototype, key, delegate(key, descriptor));
}
// Undici reads its private slots (symbols in Node 20) off a Request given to fetch().
for (const key of Object.getOwnPropertySymbols(new Request('http://ngi.invalid/'))) {
  Object.defineProperty(standInPrototype, key, delegate(key, { get: undefined }));
}

function standIn(environ: Environ, url: string, pairs: HeaderPairs): Request {
  const request = Object.create(standInPrototype) as StandIn;
  request[kEnviron] = environ;
  request[kUrl] = url;
  request[kPairs] = pairs;
  request[kHeaders] = undefined;
  request[kReal] = undefined;
  return request as unknown as Request;
}

/**
 * Whether this runtime accepts a stand-in where a Request goes (`new Request(standIn)`,
 * `fetch(standIn)`); where undici checks a private brand instead, real Requests are used.
 */
const STAND_IN_WORKS = ((): boolean => {
  try {
    const probe = Object.create(standInPrototype) as StandIn;
    probe[kReal] = new Request('http://ngi.invalid/probe', { method: 'PUT', headers: { a: 'b' } });
    const copy = new Request(probe as unknown as Request);
    return copy.method === 'PUT' && copy.headers.get('a') === 'b';
  } catch {
    return false;
  }
})();

/** The Fetch `Request` for an environ: the URL below the mount, end-to-end headers, the body. */
function requestFromEnviron(environ: Environ): Request {
  const url = requestUrl(environ);
  const pairs = headerPairs(environ);
  if (!STAND_IN_WORKS) return realRequest(environ, url, pairs);
  // What the real constructor would reject must be refused now, not inside the handler.
  // (header names were checked by `headerName`).
  if (!URL.canParse(url)) throw new TypeError(`invalid URL ${JSON.stringify(url)}`);
  return standIn(environ, url, pairs);
}

/**
 * Calls a Fetch handler for one NGI request and answers with its Response (what `fromFetch`
 * and `fromHono` do); `env` is passed as the handler's second argument.
 *
 * @example
 * const app: App = (environ, startResponse) =>
 *   callFetchHandler(worker.fetch, environ, startResponse, { KV: kv });
 */
export function callFetchHandler<Env>(
  handler: (request: Request, env: Env) => Response | Promise<Response>,
  environ: Environ,
  startResponse: Parameters<App>[1],
  env: Env,
): Iterable<Chunk> | AsyncIterable<Chunk> | Promise<Iterable<Chunk> | AsyncIterable<Chunk>> {
  const why = inexpressible(environ);
  if (why !== undefined) return refuse(environ, startResponse, 501, why);
  let request: Request;
  try {
    request = requestFromEnviron(environ);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return refuse(environ, startResponse, 400, `not expressible as a Fetch Request: ${message}`);
  }
  const result = handler(request, env);
  if (typeof (result as Promise<Response>).then === 'function') {
    return (result as Promise<Response>).then((r) => answer(r, environ, startResponse));
  }
  return answer(result as Response, environ, startResponse);
}

/** Passes a Response's status, headers (every `Set-Cookie`) and body to `startResponse`. */
function answer(
  response: Response,
  environ: Environ,
  startResponse: Parameters<App>[1],
): Iterable<Chunk> | AsyncIterable<Chunk> | Promise<Iterable<Chunk> | AsyncIterable<Chunk>> {
  if (
    response === null ||
    typeof response !== 'object' ||
    typeof response.status !== 'number' ||
    typeof response.headers !== 'object'
  ) {
    throw new NgiError('NGI_ERR_INVALID_BODY', `the Fetch handler returned ${typeof response}`);
  }
  const status = response.status;
  if (status < 200 || status > 599) {
    // `Response.error()` (status 0): the handler itself reports a network error.
    return refuse(environ, startResponse, 502, `the Fetch handler answered a network error`);
  }
  const headers: NgiHeaders = [];
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers.push([name, value]);
  });
  const cookies = response.headers.getSetCookie();
  for (let i = 0; i < cookies.length; i++) headers.push(['set-cookie', cookies[i]!]);
  const reason = response.statusText || STATUS_CODES[status] || 'Unknown';
  startResponse(`${status} ${reason}`, headers);
  const body = response.body;
  if (body === null) return EMPTY;
  if (environ.REQUEST_METHOD === 'HEAD') {
    body.cancel().then(undefined, () => {});
    return EMPTY;
  }
  return readBody(body.getReader());
}

const PENDING = Symbol('pending');
type Read = ReadableStreamReadResult<Uint8Array>;

/** Settles with the read if it is already done (within a few microtasks), else `PENDING`. */
function readNow(read: Promise<Read>): Promise<Read | typeof PENDING> {
  return Promise.race([read, Promise.resolve().then(() => Promise.resolve(PENDING))]);
}

/**
 * A short body (a `new Response('text')`) is finished within a couple of reads: hand it to
 * the engine as an array so the head carries its `Content-Length`; otherwise stream it.
 */
async function readBody(reader: ReadableStreamDefaultReader<Uint8Array>) {
  const chunks: Uint8Array[] = [];
  // Two reads, as @hono/node-server does: the same bodies get a length on both.
  for (let i = 0; i < 2; i++) {
    const read = reader.read();
    const step = await readNow(read);
    if (step === PENDING) return new ResponseBody(reader, chunks, read);
    if (step.done) return chunks;
    chunks.push(step.value);
  }
  return new ResponseBody(reader, chunks, undefined);
}

/** A Response body as an NGI body: pulls one chunk per `next()`, cancels on `return()`. */
class ResponseBody implements AsyncIterableIterator<Uint8Array> {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly pending: Uint8Array[];
  private nextRead: Promise<Read> | undefined;
  private done = false;

  constructor(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    pending: Uint8Array[],
    nextRead: Promise<Read> | undefined,
  ) {
    this.reader = reader;
    this.pending = pending;
    this.nextRead = nextRead;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.pending.length > 0) return { done: false, value: this.pending.shift()! };
    const read = this.nextRead ?? this.reader.read();
    this.nextRead = undefined;
    const step = await read;
    if (step.done) this.done = true;
    return step;
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.done) {
      this.done = true;
      // The consumer stopped early (client gone, error): tell the producer.
      await this.reader.cancel().then(undefined, () => {});
    }
    return { done: true, value: undefined };
  }
}

/**
 * A Fetch handler `(request) => Response` as an NGI app. The handler sees the URL below the
 * mount point, end-to-end headers, the body as a stream and `ngi.signal` as
 * `request.signal`; its Response streams back with every `Set-Cookie` kept.
 *
 * What Fetch cannot express gets a clear answer and a `NGI_ERR_UNSUPPORTED` log line instead
 * of a crash: TRACE/CONNECT and a GET or HEAD with a body (501), a request the `Request`
 * constructor rejects (400), `Response.error()` (502). Hop-by-hop request headers
 * (`Connection`, `Transfer-Encoding`, ...) describe the previous hop and are not passed on.
 * `request.signal` is `ngi.signal`, built when read; a `fetch(request)` that forwards this
 * very Request follows undici's own signal, so pass `{ signal: request.signal }` to it.
 *
 * @example
 * const app = fromFetch(async (request) => new Response(`hello ${new URL(request.url).pathname}`));
 * http.createServer(toNodeHandler(app)).listen(8080, '127.0.0.1');
 */
export function fromFetch(handler: FetchHandler): App {
  const original = (handler as Tagged)[kFetchApp];
  if (typeof original === 'function') return original;
  const app: App = (environ, startResponse) =>
    callFetchHandler(handler, environ, startResponse, undefined);
  (app as Tagged)[kFetchHandler] = handler;
  (app as Tagged)[kNgiApp] = true;
  return app;
}

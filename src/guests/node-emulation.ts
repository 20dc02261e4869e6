import {
  IncomingMessage,
  ServerResponse,
  STATUS_CODES,
  validateHeaderName,
  validateHeaderValue,
  type OutgoingHttpHeaders,
} from 'node:http';
import { Stream, type Readable } from 'node:stream';
import { RESOLVED } from '../core/exchange.js';
import { NgiError, formatError } from '../core/errors.js';
import { rawMountPoint, targetBelowMount } from '../core/url.js';
import type {
  Chunk,
  EarlyHints,
  Environ,
  Headers,
  ResponseTrailers,
  StartResponse,
  Write,
} from '../core/types.js';

/**
 * Node objects for a handler that runs on an environ rather than on a Node request:
 * a request, a response and a socket built from the environ, with the response written
 * through `startResponse`. They subclass (or, for the socket, quack like) the real things:
 * frameworks check prototypes, call `getHeader`, listen for `'finish'`/`'close'`, and pipe
 * streams into the response.
 *
 * Express replaces the prototypes of `req` and `res` with its own (whose chain still reaches
 * `IncomingMessage`/`ServerResponse`), so overridden methods are also copied onto each
 * instance: own properties survive the swap.
 */

/**
 * Just enough of a `net.Socket` for frameworks: addresses, `encrypted`, `destroy()`, events.
 * A (legacy) `Stream`, so Node's own `finished()` accepts it.
 */
export class EnvironSocket extends Stream {
  remoteAddress: string;
  remotePort: number | undefined;
  remoteFamily: string;
  localAddress: string;
  localPort: number | undefined;
  encrypted: boolean;
  readable = true;
  writable = true;
  destroyed = false;
  readableHighWaterMark = 16384;
  writableLength = 0;
  bytesWritten = 0;
  _httpMessage: unknown = null;

  constructor(environ: Environ) {
    super();
    this.remoteAddress = environ.REMOTE_ADDR;
    this.remotePort = environ.REMOTE_PORT ? Number(environ.REMOTE_PORT) : undefined;
    this.remoteFamily = environ.REMOTE_ADDR.includes(':') ? 'IPv6' : 'IPv4';
    this.localAddress = environ.SERVER_NAME;
    this.localPort = environ.SERVER_PORT ? Number(environ.SERVER_PORT) : undefined;
    this.encrypted = environ.HTTPS === 'on' || environ['ngi.url_scheme'] === 'https';
  }

  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    process.nextTick(() => {
      // A real server's socket always has its own 'error' listener: a destroy with an error
      // (a handler's `res.destroy(err)`) must not crash the process where nothing listens.
      if (error && this.listenerCount('error') > 0) this.emit('error', error);
      this.emit('close', error !== undefined);
    });
    return this;
  }

  address(): { address: string; port: number | undefined; family: string } {
    return { address: this.localAddress, port: this.localPort, family: this.remoteFamily };
  }

  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/** `rawHeaders` and `headers` rebuilt from `CONTENT_*` and `HTTP_*` keys. */
function setHeaders(req: IncomingMessage, environ: Environ): void {
  const raw: string[] = [];
  const headers: Record<string, string> = {};
  const length = environ.CONTENT_LENGTH;
  for (const key in environ) {
    if (key.charCodeAt(0) !== 72 /* H */ || !key.startsWith('HTTP_')) continue;
    const value = environ[key];
    if (typeof value !== 'string') continue;
    // nginx repeats CONTENT_* as HTTP_CONTENT_*; the CGI keys are the truth. A body framed by
    // CONTENT_LENGTH is no longer chunked, whatever Transfer-Encoding the client used.
    if (key === 'HTTP_CONTENT_LENGTH' || key === 'HTTP_CONTENT_TYPE') continue;
    if (key === 'HTTP_TRANSFER_ENCODING' && length !== undefined) continue;
    const name = key.slice(5).toLowerCase().replace(/_/g, '-');
    raw.push(name, value);
    headers[name] = value;
  }
  if (environ.CONTENT_TYPE !== undefined) {
    raw.push('content-type', environ.CONTENT_TYPE);
    headers['content-type'] = environ.CONTENT_TYPE;
  }
  if (length !== undefined) {
    raw.push('content-length', length);
    headers['content-length'] = length;
  }
  req.rawHeaders = raw;
  // Node builds `headers` from the parser's count, which a built request lacks: set it.
  req.headers = headers;
}

function failWithoutAbort(error: Error | null, callback: (error?: Error | null) => void): void {
  callback(error);
}

/** What Node destroys a request with when its client hangs up (`'error'` only if listened to). */
function connectionReset(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

/** The request, its body read from `ngi.input` with backpressure. */
export class EnvironRequest extends IncomingMessage {
  private input: Readable | undefined;
  private reading = false;

  constructor(socket: EnvironSocket, environ: Environ) {
    super(socket as never);
    this.method = environ.REQUEST_METHOD;
    this.url = targetBelowMount(environ);
    const version = environ.SERVER_PROTOCOL.slice(5) || '1.1';
    this.httpVersion = version;
    this.httpVersionMajor = +version.charAt(0) || 1;
    this.httpVersionMinor = +version.charAt(2) || 0;
    setHeaders(this, environ);
    const length = environ.CONTENT_LENGTH;
    const hasBody =
      (length !== undefined && length !== '0') || environ.HTTP_TRANSFER_ENCODING !== undefined;
    this.input = hasBody ? environ['ngi.input'] : undefined;
    if (!hasBody) {
      this.complete = true;
      this.push(null);
    }
    this._read = EnvironRequest.prototype._read;
  }

  override _read(): void {
    const input = this.input;
    if (input === undefined) return;
    if (!this.reading) {
      this.reading = true;
      input.on('data', (chunk: Buffer) => {
        if (!this.push(chunk)) input.pause();
      });
      input.once('end', () => {
        this.complete = true;
        this.push(null);
      });
      input.once('error', (error: Error & { code?: unknown }) => {
        // A failing input (a body consumed upstream) is no client abort: IncomingMessage's own
        // _destroy would emit 'aborted', and body readers (raw-body) then answer "request
        // aborted" and drop the cause. Complete: there is no more input to wait for (on-finished
        // would otherwise wait forever for an 'end').
        if (error.code !== 'ECONNRESET') {
          this._destroy = failWithoutAbort;
          this.complete = true;
        }
        this.destroy(error);
      });
      // A client that hangs up mid-body may only close the input: the handler must hear of it.
      input.once('close', () => {
        if (!this.complete) this.destroy(connectionReset());
      });
    }
    input.resume();
  }
}

const DONE: IteratorResult<Chunk> = { done: true, value: undefined };
const OWN_METHODS = [
  'write',
  'end',
  'writeHead',
  '_storeHeader',
  'flushHeaders',
  '_implicitHeader',
  'writeContinue',
  'writeEarlyHints',
  'addTrailers',
  'destroy',
];

/** Per-response state, kept in own fields: Express swaps the prototype, own fields stay. */
interface Emulated {
  startResponse: StartResponse;
  /** The host's `ngi.early_hints` and `ngi.trailers`, where it offers them. */
  earlyHints: EarlyHints | undefined;
  trailers: ResponseTrailers | undefined;
  ngiWrite: Write | undefined;
  pending: number;
  waitingForDrain: boolean;
  ended: boolean;
  settle: ((result: IteratorResult<Chunk>) => void) | undefined;
  /** Rejects the pending `next()`: the handler failed, the engine answers for it. */
  reject: ((error: unknown) => void) | undefined;
  /** The handler's failure, when it came before the engine asked for more. */
  broken: { error: unknown } | undefined;
  failed: boolean;
  fakeSocket: EnvironSocket;
  fakeRequest: EnvironRequest;
}

type Res = EnvironResponse & Emulated;

const gone: Write = () => Promise.reject(new NgiError('NGI_ERR_CLIENT_GONE'));

/** Commits status and headers to the NGI side (once). */
function commit(res: Res, given?: Headers): Write {
  if (res.ngiWrite !== undefined) return res.ngiWrite;
  const headers: Headers = given ?? [];
  if (given === undefined) {
    for (const name of (res as unknown as { getRawHeaderNames(): string[] }).getRawHeaderNames()) {
      const value = res.getHeader(name);
      if (Array.isArray(value)) for (const v of value) headers.push([name, String(v)]);
      else if (value !== undefined) headers.push([name, String(value)]);
    }
  }
  const code = res.statusCode;
  const reason = res.statusMessage || STATUS_CODES[code] || 'unknown';
  const announced = res.trailers !== undefined ? res.getHeader('trailer') : undefined;
  if (announced !== undefined) {
    try {
      res.trailers!.announce(
        String(announced)
          .split(',')
          .map((name) => name.trim()),
      );
    } catch {
      // Names that cannot be trailers: they are dropped, as the Trailer header itself is.
    }
  }
  try {
    res.ngiWrite = res.startResponse(`${code} ${reason}`, headers);
  } catch (error) {
    // The exchange is no longer the handler's (the client left while it worked; the engine
    // says TWICE for any call after its start): the answer goes nowhere, as on a dead
    // connection, instead of throwing out of the handler's callback and crashing the process.
    const code = (error as { code?: unknown }).code;
    if (code !== 'NGI_ERR_CLIENT_GONE' && code !== 'NGI_ERR_START_RESPONSE_TWICE') throw error;
    teardown(res);
    res.ngiWrite = gone;
  }
  // Node's own setters now refuse late headers (ERR_HTTP_HEADERS_SENT), as on a real response.
  (res as unknown as { _header: string })._header = `${code}`;
  return res.ngiWrite;
}

/** Node's private symbol for a response's header map, found once on a real response. */
let kOutHeaders: symbol | undefined;

/** Whether `_storeHeader` was given the response's own header map (some header was set). */
function isOwnHeaderMap(res: Res, headers: unknown): boolean {
  if (kOutHeaders === undefined) {
    res.getHeaders(); // the map exists once any header was set: look it up on this response
    kOutHeaders = Object.getOwnPropertySymbols(res).find((s) => s.description === 'kOutHeaders');
  }
  return (
    kOutHeaders !== undefined &&
    (res as unknown as Record<symbol, unknown>)[kOutHeaders] === headers
  );
}

/**
 * The head `writeHead` was given when no header had been set, in the forms Node accepts
 * (`[[name, value]]`, a flat `[name, value, …]`, a record), checked as Node checks them.
 */
function headerList(given: unknown): Headers {
  const headers: Headers = [];
  const put = (name: unknown, value: unknown): void => {
    validateHeaderName(String(name));
    if (Array.isArray(value)) {
      for (const v of value) {
        validateHeaderValue(String(name), v);
        headers.push([String(name), String(v)]);
      }
    } else {
      validateHeaderValue(String(name), value as string);
      headers.push([String(name), String(value)]);
    }
  };
  if (Array.isArray(given)) {
    if (given.length > 0 && Array.isArray(given[0])) {
      for (const [name, value] of given as [unknown, unknown][]) put(name, value);
    } else {
      if (given.length % 2 !== 0) {
        throw Object.assign(new TypeError("The argument 'headers' is invalid."), {
          code: 'ERR_INVALID_ARG_VALUE',
        });
      }
      for (let i = 0; i < given.length; i += 2) put(given[i], given[i + 1]);
    }
  } else {
    const record = given as Record<string, unknown>;
    for (const name of Object.keys(record)) put(name, record[name]);
  }
  return headers;
}

function send(
  res: Res,
  chunk: unknown,
  encoding: BufferEncoding | undefined,
  callback?: () => void,
): boolean {
  // As Node does: through `writeHead`, which middleware (on-headers, compression) may wrap.
  if (res.ngiWrite === undefined) res._implicitHeader();
  const write = res.ngiWrite!;
  const data: Chunk =
    typeof chunk === 'string'
      ? encoding === undefined || encoding === 'utf8' || encoding === 'utf-8'
        ? chunk
        : Buffer.from(chunk, encoding)
      : (chunk as Uint8Array);
  const promise = write(data);
  if (promise === RESOLVED) {
    if (callback) process.nextTick(callback);
    return true;
  }
  res.pending++;
  res.waitingForDrain = true;
  promise.then(
    () => {
      res.pending--;
      callback?.();
      if (res.pending === 0) {
        if (res.waitingForDrain) {
          res.waitingForDrain = false;
          res.emit('drain');
        }
        if (res.ended) finish(res);
      }
    },
    () => {
      res.pending--;
      teardown(res);
    },
  );
  return false;
}

function finish(res: Res): void {
  res.emit('finish');
  const settle = res.settle;
  res.settle = res.reject = undefined;
  settle?.(DONE);
  process.nextTick(closeFinished, res);
}

/** After `'finish'`, as Node does: an unread request body is drained (not aborted), then `'close'`. */
function closeFinished(res: Res): void {
  const req = res.fakeRequest as EnvironRequest & { _dump(): void };
  if (!req.readableEnded && !req.destroyed) req._dump();
  res.destroyed = true;
  res.emit('close');
}

/**
 * The handler failed (a rejected promise): the engine answers for it — a 500 page while the
 * head is not out, an aborted connection after. `false` when the response was already over.
 */
function breakBody(res: Res, error: unknown): boolean {
  if (res.failed || res.broken !== undefined || (res.ended && res.pending === 0)) return false;
  const reject = res.reject;
  res.settle = res.reject = undefined;
  if (reject !== undefined) reject(error);
  else res.broken = { error };
  return true;
}

/** The client went away or a write failed: tear down as a real connection would. */
function teardown(res: Res): void {
  if (res.failed) return;
  res.failed = true;
  res.destroyed = true;
  if (!res.fakeRequest.complete || !res.fakeRequest.readableEnded) {
    res.fakeRequest.destroy(connectionReset());
  }
  res.fakeSocket.destroy();
  const settle = res.settle;
  res.settle = res.reject = undefined;
  settle?.(DONE);
}

/** The NGI body: ends when the handler ends the response; `return()` tears it down. */
function bodyOf(res: Res): AsyncIterable<Chunk> {
  const iterator: AsyncIterableIterator<Chunk> = {
    next: () => {
      if (res.broken !== undefined) return Promise.reject(res.broken.error);
      if ((res.ended && res.pending === 0) || res.failed) return Promise.resolve(DONE);
      return new Promise((resolve, reject) => {
        res.settle = resolve;
        res.reject = reject;
      });
    },
    return: () => {
      if (!(res.ended && res.pending === 0)) teardown(res);
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/**
 * The response. Its head goes through `startResponse` when committed; its bytes through the
 * returned `write`. Ending it ends the body the NGI side is iterating.
 */
export class EnvironResponse extends ServerResponse {
  constructor(
    req: EnvironRequest,
    socket: EnvironSocket,
    startResponse: StartResponse,
    environ?: Environ,
  ) {
    super(req);
    const state: Emulated = {
      startResponse,
      earlyHints: environ?.['ngi.early_hints'],
      trailers: environ?.['ngi.trailers'],
      ngiWrite: undefined,
      pending: 0,
      waitingForDrain: false,
      ended: false,
      settle: undefined,
      reject: undefined,
      broken: undefined,
      failed: false,
      fakeSocket: socket,
      fakeRequest: req,
    };
    Object.assign(this, state);
    // Own copies: Express swaps the prototype for its own.
    const proto = EnvironResponse.prototype as unknown as Record<string, unknown>;
    const self = this as unknown as Record<string, unknown>;
    for (const name of OWN_METHODS) self[name] = proto[name];
    this.assignSocket(socket as never);
  }

  /**
   * Node's own `writeHead`: status checks, default reason, header forms and their merge rules
   * are those of the Node this runs on (they changed in Node 22), because Node applies them.
   * Only the last step, `_storeHeader`, is ours: it hands the head to the gateway.
   */
  override writeHead(
    statusCode: number,
    reason?: string | Record<string, unknown> | unknown[],
    headers?: Record<string, unknown> | unknown[],
  ): this {
    if ((this as unknown as Res).ngiWrite !== undefined) {
      throw Object.assign(new Error('Cannot write headers after they are sent to the client'), {
        code: 'ERR_HTTP_HEADERS_SENT',
      });
    }
    return super.writeHead(statusCode, reason as string, headers as OutgoingHttpHeaders);
  }

  /**
   * Node's last step of `writeHead`, which would serialise the head: here the head goes to
   * `startResponse`. `headers` is the response's own header map when any header was set,
   * else what `writeHead` was given, as Node passes it.
   */
  _storeHeader(_statusLine: string, headers: unknown): void {
    const res = this as unknown as Res;
    commit(
      res,
      headers === null || headers === undefined || isOwnHeaderMap(res, headers)
        ? undefined
        : headerList(headers),
    );
  }

  /** Node's: the head of a response written without `writeHead`, through `writeHead`. */
  _implicitHeader(): void {
    this.writeHead(this.statusCode);
  }

  override writeContinue(): void {
    // The gateway (or nginx) already answered `Expect: 100-continue`.
  }

  /** Through the host's `ngi.early_hints`; dropped (callback still called) where it has none. */
  override writeEarlyHints(hints: Record<string, string | string[]>, callback?: () => void): void {
    const res = this as unknown as Res;
    const done = () => callback?.();
    if (res.earlyHints === undefined || res.ngiWrite !== undefined) {
      process.nextTick(done);
      return;
    }
    const headers: Headers = [];
    for (const name of Object.keys(hints)) {
      const value = hints[name];
      for (const v of Array.isArray(value) ? value : [value]) headers.push([name, String(v)]);
    }
    res.earlyHints(headers).then(done, done);
  }

  /**
   * Through the host's `ngi.trailers` (announced from the `Trailer` header at the head, as
   * Node wants it set); dropped where the host has none or nothing was announced.
   */
  override addTrailers(headers: OutgoingHttpHeaders | ReadonlyArray<[string, string]>): void {
    const res = this as unknown as Res;
    if (res.trailers === undefined) return;
    const pairs: Headers = [];
    if (Array.isArray(headers))
      for (const [name, value] of headers) pairs.push([name, String(value)]);
    else {
      for (const name of Object.keys(headers)) {
        const value = (headers as OutgoingHttpHeaders)[name];
        if (value !== undefined) pairs.push([name, String(value)]);
      }
    }
    try {
      res.trailers.send(pairs);
    } catch {
      // Not announced, or after the end: Node drops such trailers too.
    }
  }

  /**
   * As on a real connection: a response destroyed before it ended (Koa's `stream.pipeline`
   * when `ctx.body` fails, a handler's own `res.destroy()`) is cut. The engine answers for it:
   * an aborted connection once the head is out, a 500 before.
   */
  override destroy(error?: Error): this {
    const res = this as unknown as Res;
    if (!this.destroyed && !res.failed && !(res.ended && res.pending === 0)) {
      breakBody(res, error ?? new NgiError('NGI_ERR_APP_THREW', 'the response was destroyed'));
    }
    return super.destroy(error);
  }

  override flushHeaders(): void {
    const res = this as unknown as Res;
    if (res.ngiWrite === undefined) this._implicitHeader();
    (res.ngiWrite as Write & { flushHead?: () => void }).flushHead?.();
  }

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const res = this as unknown as Res;
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (res.ended) {
      const error = Object.assign(new Error('write after end'), {
        code: 'ERR_STREAM_WRITE_AFTER_END',
      });
      process.nextTick(() => {
        (callback as ((e: Error) => void) | undefined)?.(error);
        this.emit('error', error);
      });
      return false;
    }
    return send(
      res,
      chunk,
      encoding as BufferEncoding | undefined,
      callback as (() => void) | undefined,
    );
  }

  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    const res = this as unknown as Res;
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (res.ended) {
      if (typeof callback === 'function') process.nextTick(callback as () => void);
      return this;
    }
    const hasChunk =
      chunk !== undefined && chunk !== null && (chunk as { length: number }).length > 0;
    if (res.ngiWrite === undefined) {
      const addLength =
        hasChunk &&
        !this.hasHeader('content-length') &&
        !this.hasHeader('transfer-encoding') &&
        this.statusCode >= 200 &&
        this.statusCode !== 204 &&
        this.statusCode !== 304;
      // As Node does for `end(data)` before the head: the whole body is known, so is its length.
      if (addLength) {
        const length =
          typeof chunk === 'string'
            ? Buffer.byteLength(chunk, encoding as BufferEncoding | undefined)
            : (chunk as Uint8Array).byteLength;
        this.setHeader('Content-Length', length);
      }
      try {
        this._implicitHeader();
      } catch (error) {
        // A head Node would refuse (status 1000) leaves the response open for an error page.
        if (addLength) this.removeHeader('Content-Length');
        throw error;
      }
    }
    if (typeof callback === 'function') this.once('finish', callback as () => void);
    res.ended = true;
    this.finished = true;
    if (hasChunk) send(res, chunk, encoding as BufferEncoding | undefined);
    if (res.pending === 0) finish(res);
    return this;
  }
}

/** A handler failed once its response was complete: too late to change it, so only logged. */
export function logAfterResponse(environ: Environ, error: unknown): void {
  const where = `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}, after the response`;
  environ['ngi.errors'].write(formatError(error, where));
}

/** Runs a Node handler on an environ; returns the NGI body its response produces. */
export function runOnEnviron(
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
  environ: Environ,
  startResponse: StartResponse,
): AsyncIterable<Chunk> {
  const socket = new EnvironSocket(environ);
  const req = new EnvironRequest(socket, environ);
  const res = new EnvironResponse(req, socket, startResponse, environ) as Res;
  if (environ.SCRIPT_NAME !== '') {
    (req as { originalUrl?: string }).originalUrl = environ.REQUEST_URI;
    // Raw, as Express's own baseUrl and as the fast path gives it.
    (req as { baseUrl?: string }).baseUrl = rawMountPoint(environ);
  }
  // No `ngi.signal` listener: the server finishes the body (`return()`) when the client goes
  // away, which tears these objects down; reading the signal would build it for nothing.
  const result = handler(req, res);
  if (
    result !== null &&
    typeof result === 'object' &&
    typeof (result as Promise<unknown>).then === 'function'
  ) {
    (result as Promise<unknown>).then(undefined, (error: unknown) => {
      if (!breakBody(res, error)) logAfterResponse(environ, error);
    });
  }
  return bodyOf(res);
}

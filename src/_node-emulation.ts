import { IncomingMessage, ServerResponse, STATUS_CODES } from 'node:http';
import { Stream, type Readable } from 'node:stream';
import { RESOLVED } from './_engine.js';
import { rawPathBelow, splitTarget } from './_url.js';
import type { Chunk, Environ, Headers, StartResponse, Write } from './types.js';

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

/** The request URL a framework below a mount point sees: the raw path, undecoded. */
export function targetBelowMount(environ: Environ): string {
  const [rawPath] = splitTarget(environ.REQUEST_URI || '/');
  let below = rawPathBelow(rawPath, environ.SCRIPT_NAME);
  // A proxy normalised the path (nginx merges `//`, resolves `..`): rebuild it from PATH_INFO.
  if (below === undefined)
    below = encodeURI(environ.PATH_INFO).replace(/[?#]/g, encodeURIComponent);
  if (below === '') below = '/';
  const query = environ.QUERY_STRING;
  return query === '' ? below : below + '?' + query;
}

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
      if (error) this.emit('error', error);
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
      input.once('error', (error) => this.destroy(error));
    }
    input.resume();
  }
}

const DONE: IteratorResult<Chunk> = { done: true, value: undefined };
const OWN_METHODS = [
  'write',
  'end',
  'writeHead',
  'flushHeaders',
  '_implicitHeader',
  'writeContinue',
];

/** Per-response state, kept in own fields: Express swaps the prototype, own fields stay. */
interface Emulated {
  startResponse: StartResponse;
  ngiWrite: Write | undefined;
  pending: number;
  waitingForDrain: boolean;
  ended: boolean;
  settle: ((result: IteratorResult<Chunk>) => void) | undefined;
  failed: boolean;
  fakeSocket: EnvironSocket;
  fakeRequest: EnvironRequest;
}

type Res = EnvironResponse & Emulated;

/** Commits status and headers to the NGI side (once). */
function commit(res: Res): Write {
  if (res.ngiWrite !== undefined) return res.ngiWrite;
  const headers: Headers = [];
  for (const name of (res as unknown as { getRawHeaderNames(): string[] }).getRawHeaderNames()) {
    const value = res.getHeader(name);
    if (Array.isArray(value)) for (const v of value) headers.push([name, String(v)]);
    else if (value !== undefined) headers.push([name, String(value)]);
  }
  const code = res.statusCode;
  const reason = res.statusMessage || STATUS_CODES[code] || 'Unknown';
  res.ngiWrite = res.startResponse(`${code} ${reason}`, headers);
  // Node's own setters now refuse late headers (ERR_HTTP_HEADERS_SENT), as on a real response.
  (res as unknown as { _header: string })._header = `${code}`;
  return res.ngiWrite;
}

function send(
  res: Res,
  chunk: unknown,
  encoding: BufferEncoding | undefined,
  callback?: () => void,
): boolean {
  const write = commit(res);
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
  res.settle = undefined;
  settle?.(DONE);
  process.nextTick(() => {
    if (!res.fakeRequest.destroyed) res.fakeRequest.destroy();
    res.emit('close');
  });
}

/** The client went away or a write failed: tear down as a real connection would. */
function teardown(res: Res): void {
  if (res.failed) return;
  res.failed = true;
  res.destroyed = true;
  if (!res.fakeRequest.complete || !res.fakeRequest.readableEnded) res.fakeRequest.destroy();
  res.fakeSocket.destroy();
  const settle = res.settle;
  res.settle = undefined;
  settle?.(DONE);
}

/** The NGI body: ends when the handler ends the response; `return()` tears it down. */
function bodyOf(res: Res): AsyncIterable<Chunk> {
  const iterator: AsyncIterableIterator<Chunk> = {
    next: () => {
      if ((res.ended && res.pending === 0) || res.failed) return Promise.resolve(DONE);
      return new Promise((resolve) => (res.settle = resolve));
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
  constructor(req: EnvironRequest, socket: EnvironSocket, startResponse: StartResponse) {
    super(req);
    const state: Emulated = {
      startResponse,
      ngiWrite: undefined,
      pending: 0,
      waitingForDrain: false,
      ended: false,
      settle: undefined,
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

  override writeHead(
    statusCode: number,
    reason?: string | Record<string, unknown> | unknown[],
    headers?: Record<string, unknown> | unknown[],
  ): this {
    const res = this as unknown as Res;
    if (res.ngiWrite !== undefined) {
      throw Object.assign(new Error('Cannot write headers after they are sent to the client'), {
        code: 'ERR_HTTP_HEADERS_SENT',
      });
    }
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) {
      throw Object.assign(new RangeError(`Invalid status code: ${statusCode}`), {
        code: 'ERR_HTTP_INVALID_STATUS_CODE',
      });
    }
    if (typeof reason === 'string') this.statusMessage = reason;
    else headers = reason;
    this.statusCode = statusCode;
    if (Array.isArray(headers)) {
      if (Array.isArray(headers[0])) {
        for (const [name, value] of headers as [string, string][]) this.appendHeader(name, value);
      } else {
        for (let i = 0; i < headers.length; i += 2) {
          this.appendHeader(String(headers[i]), headers[i + 1] as string);
        }
      }
    } else if (headers) {
      for (const name of Object.keys(headers)) this.setHeader(name, headers[name] as string);
    }
    commit(res);
    return this;
  }

  _implicitHeader(): void {
    commit(this as unknown as Res);
  }

  override writeContinue(): void {
    // The gateway (or nginx) already answered `Expect: 100-continue`.
  }

  override flushHeaders(): void {
    const write = commit(this as unknown as Res) as Write & { flushHead?: () => void };
    write.flushHead?.();
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
    if (typeof callback === 'function') this.once('finish', callback as () => void);
    const hasChunk =
      chunk !== undefined && chunk !== null && (chunk as { length: number }).length > 0;
    if (
      res.ngiWrite === undefined &&
      hasChunk &&
      !this.hasHeader('content-length') &&
      !this.hasHeader('transfer-encoding') &&
      this.statusCode >= 200 &&
      this.statusCode !== 204 &&
      this.statusCode !== 304
    ) {
      // As Node does for `end(data)` before the head: the whole body is known, so is its length.
      const length =
        typeof chunk === 'string'
          ? Buffer.byteLength(chunk, encoding as BufferEncoding | undefined)
          : (chunk as Uint8Array).byteLength;
      this.setHeader('Content-Length', length);
    }
    res.ended = true;
    this.finished = true;
    if (hasChunk) send(res, chunk, encoding as BufferEncoding | undefined);
    else commit(res);
    if (res.pending === 0) finish(res);
    return this;
  }
}

/** Runs a Node handler on an environ; returns the NGI body its response produces. */
export function runOnEnviron(
  handler: (req: IncomingMessage, res: ServerResponse) => unknown,
  environ: Environ,
  startResponse: StartResponse,
): AsyncIterable<Chunk> {
  const socket = new EnvironSocket(environ);
  const req = new EnvironRequest(socket, environ);
  const res = new EnvironResponse(req, socket, startResponse) as Res;
  if (environ.SCRIPT_NAME !== '') {
    (req as { originalUrl?: string }).originalUrl = environ.REQUEST_URI;
    (req as { baseUrl?: string }).baseUrl = environ.SCRIPT_NAME;
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
      if (!res.headersSent) {
        res.statusCode = 500;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.end('500 Internal Server Error\n');
      } else teardown(res);
      environ['ngi.errors'].write(`ngi: handler rejected: ${String(error)}\n`);
    });
  }
  return bodyOf(res);
}

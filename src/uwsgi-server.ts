import { STATUS_CODES } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Exchange, type ResponseSink } from './_engine.js';
import type { ListenerOptions } from './_listener.js';
import { LazySignal, attachSignal } from './_signal.js';
import { decodePath, splitTarget } from './_url.js';
import { addHeader, stderrStream } from './environ.js';
import { ChunkedDecoder } from './_chunked.js';
import { NgiError, RequestError, formatError } from './errors.js';
import type { App, Chunk, Environ, ErrorStream, Headers } from './types.js';
import {
  DEFAULT_BUFFER_SIZE,
  MAX_BUFFER_SIZE,
  UwsgiPacketParser,
  type UwsgiPacket,
} from './uwsgi.js';

export interface UwsgiServerOptions extends ListenerOptions {
  /** Largest vars block accepted, in bytes (uWSGI's `--buffer-size`); default 4096, max 65535. */
  bufferSize?: number;
  /** Largest request body accepted, in bytes (uWSGI's `--limit-post`); 0 = no limit. */
  limitPost?: number;
  /** Seconds a connection may stay silent while its request is read or its response written. */
  socketTimeout?: number;
}

const VERSION = Object.freeze([1, 0] as const);
const ignore = (): void => {};
const RESOLVED = Promise.resolve();
const NON_ASCII = /[^\t\r\n\x20-\x7e]/;

/**
 * The environ for a uwsgi packet: its vars in wire order (repeats joined with `", "`, Cookie
 * with `"; "`), empty `CONTENT_TYPE`/`CONTENT_LENGTH` removed, completed with ngi's keys.
 *
 * @example
 * const environ = environFromUwsgi(packet, body, new LazySignal(), stderrStream, false);
 * environ.PATH_INFO; // as nginx sent it (decoded, normalised)
 */
export function environFromUwsgi(
  packet: UwsgiPacket,
  input: Readable,
  abort: LazySignal,
  errors: ErrorStream,
  multiprocess: boolean,
): Environ {
  const vars: Record<string, string> = {};
  for (const [key, value] of packet.vars) {
    // nginx repeats every header as HTTP_*, the content ones too: they are CONTENT_* only.
    if (key === 'HTTP_CONTENT_LENGTH' || key === 'HTTP_CONTENT_TYPE') continue;
    const prior: unknown = vars[key];
    if (prior === undefined) vars[key] = value;
    // A repeat joins; a var named like an Object.prototype member (`constructor`,
    // `__proto__`) finds a non-string there and is dropped.
    else if (typeof prior === 'string') addHeader(vars, key, value);
  }
  const https =
    vars.HTTPS === 'on' ||
    vars.HTTPS === '1' ||
    vars.UWSGI_SCHEME === 'https' ||
    vars.REQUEST_SCHEME === 'https';
  const uri = vars.REQUEST_URI;
  let pathInfo = vars.PATH_INFO;
  let query = vars.QUERY_STRING;
  if (pathInfo === undefined || query === undefined) {
    const [rawPath, rawQuery] = splitTarget(uri ?? '/');
    pathInfo ??= decodePath(rawPath);
    query ??= rawQuery;
  }
  const environ = Object.assign(vars, {
    REQUEST_METHOD: vars.REQUEST_METHOD ?? 'GET',
    SCRIPT_NAME: vars.SCRIPT_NAME ?? '',
    PATH_INFO: pathInfo,
    QUERY_STRING: query,
    SERVER_NAME: vars.SERVER_NAME ?? '',
    SERVER_PORT: vars.SERVER_PORT ?? '',
    SERVER_PROTOCOL: vars.SERVER_PROTOCOL ?? 'HTTP/1.0',
    REMOTE_ADDR: vars.REMOTE_ADDR ?? '',
    REMOTE_PORT: vars.REMOTE_PORT ?? '',
    REQUEST_URI: uri ?? (query === '' ? pathInfo : `${pathInfo}?${query}`),
    'ngi.version': VERSION,
    'ngi.url_scheme': https ? 'https' : 'http',
    'ngi.input': input,
    'ngi.errors': errors,
    'ngi.multiprocess': multiprocess,
    'ngi.multithread': false,
    'ngi.run_once': false,
  }) as unknown as Environ;
  // nginx sends `CONTENT_TYPE`/`CONTENT_LENGTH` as '' when the request has none: absent.
  if (environ.CONTENT_LENGTH === '') delete environ.CONTENT_LENGTH;
  if (environ.CONTENT_TYPE === '') delete environ.CONTENT_TYPE;
  if (https) environ.HTTPS = 'on';
  else delete environ.HTTPS;
  attachSignal(environ, abort);
  return environ;
}

/**
 * The request body, read from the socket with backpressure (the socket is paused while the
 * app does not read): exactly `CONTENT_LENGTH` bytes, or a chunked body decoded as it comes.
 */
class UwsgiBody extends Readable {
  private remaining: number;
  private readonly socket: Socket;
  private readonly chunked: ChunkedDecoder | undefined;
  /** `limitPost` for a chunked body, whose size is only known as it arrives; 0 = none. */
  private readonly limit: number;
  private received = 0;
  private readonly timeoutMs: number;
  private readonly onData = (data: Buffer): void => {
    if (this.chunked !== undefined && this.limit > 0) {
      this.received += data.length;
      if (this.received > this.limit) {
        throw new RequestError(`the chunked body is over the limit of ${this.limit} bytes`, 413);
      }
    }
    if (!this.push(data)) {
      this.socket.pause();
      // The app is slow to read, not the peer to send: no socket timeout while paused.
      if (this.timeoutMs > 0) this.socket.setTimeout(0);
    }
  };

  /** `length` -1: chunked. */
  constructor(socket: Socket, length: number, limit: number, timeoutMs: number) {
    super();
    this.socket = socket;
    this.chunked = length < 0 ? new ChunkedDecoder() : undefined;
    this.remaining = length < 0 ? Infinity : length;
    this.limit = limit;
    this.timeoutMs = timeoutMs;
    // A body cut short must not crash the process when the app never reads it; readers
    // still get the error through their own listeners.
    this.on('error', ignore);
    if (length === 0) this.push(null);
  }

  /** Bytes from the socket. */
  feed(chunk: Buffer): void {
    if (this.remaining === 0) return; // nginx never sends more; anything more is dropped
    if (this.chunked !== undefined) {
      try {
        this.chunked.feed(chunk, this.onData);
      } catch (error) {
        this.remaining = 0;
        this.destroy(error as Error);
        return;
      }
      if (this.chunked.done) {
        this.remaining = 0;
        this.push(null);
      }
      return;
    }
    const part = chunk.length > this.remaining ? chunk.subarray(0, this.remaining) : chunk;
    this.remaining -= part.length;
    this.onData(part);
    if (this.remaining === 0) this.push(null);
  }

  get complete(): boolean {
    return this.remaining === 0;
  }

  /**
   * The response is out but the app left part of the body unread: read and drop the rest.
   * Closing with unread bytes would reset the connection, and a reset can destroy the
   * response before nginx reads it (the "lingering close" problem).
   */
  discardRest(): void {
    if (this.remaining === 0) return;
    this.remaining = 0;
    this.socket.resume();
  }

  override _read(): void {
    if (this.remaining > 0 && this.socket.isPaused()) {
      this.socket.resume();
      if (this.timeoutMs > 0) this.socket.setTimeout(this.timeoutMs);
    }
  }

  /** The peer closed before the whole body arrived: fails the body, returns why. */
  cutShort(): Error | undefined {
    if (this.remaining === 0) return undefined;
    const error = new NgiError(
      'NGI_ERR_BAD_REQUEST',
      this.chunked
        ? 'the chunked body ended before its last chunk'
        : `the body ended ${this.remaining} bytes short of CONTENT_LENGTH`,
    );
    this.remaining = 0;
    this.destroy(error);
    return error;
  }
}

/**
 * Writes a response as nginx needs it: a real status line, `Content-Length` when known and
 * otherwise a close-delimited body (never chunked, never 1xx), then the connection closed.
 */
class UwsgiSink implements ResponseSink {
  private readonly socket: Socket;
  private pendingHead: string | undefined = undefined;
  /** The head holds bytes over 0x7f: written as Latin-1 (as node:http does), never joined with a UTF-8 chunk. */
  private latin1Head = false;
  private waiting: Promise<void> | undefined = undefined;
  private wake: (() => void) | undefined = undefined;
  private readonly timeoutMs: number;
  headersSent = false;
  /** Bytes of the head, so the access log counts body bytes only. */
  headBytes = 0;

  constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
  }

  get closed(): boolean {
    return this.socket.destroyed || !this.socket.writable;
  }

  head(code: number, reason: string, headers: Headers, addLength: number): void {
    this.headersSent = true;
    let head = `HTTP/1.1 ${code} ${reason || STATUS_CODES[code] || 'Unknown'}\r\n`;
    for (let i = 0; i < headers.length; i++) head += `${headers[i]![0]}: ${headers[i]![1]}\r\n`;
    if (addLength >= 0) head += `Content-Length: ${addLength}\r\n`;
    head += 'Connection: close\r\n\r\n';
    this.pendingHead = head;
    this.headBytes = head.length;
    this.latin1Head = NON_ASCII.test(head);
  }

  write(chunk: Chunk): boolean {
    const head = this.pendingHead;
    if (head !== undefined) {
      // Head and first chunk in one write: one packet for small responses.
      this.pendingHead = undefined;
      if (typeof chunk === 'string' && !this.latin1Head) return this.socket.write(head + chunk);
      this.socket.cork();
      this.socket.write(head, 'latin1');
      const more = this.socket.write(chunk);
      this.socket.uncork();
      return more;
    }
    return this.socket.write(chunk);
  }

  end(chunk?: Chunk): void {
    if (chunk !== undefined) this.write(chunk);
    else if (this.pendingHead !== undefined) {
      this.socket.write(this.pendingHead, 'latin1');
      this.pendingHead = undefined;
    }
    this.socket.end();
    // A peer that never closes its side (or never reads the rest) must not hold the socket.
    if (this.timeoutMs > 0) this.socket.setTimeout(this.timeoutMs);
  }

  drain(): Promise<void> {
    if (this.closed) return RESOLVED;
    if (this.waiting === undefined) {
      this.waiting = new Promise((resolve) => (this.wake = resolve));
      // A peer that stops reading for the socket timeout is dropped, never waited on forever.
      if (this.timeoutMs > 0) this.socket.setTimeout(this.timeoutMs);
      this.socket.once('drain', this.onDrain);
    }
    return this.waiting;
  }

  readonly onDrain = (): void => {
    if (this.timeoutMs > 0) this.socket.setTimeout(0);
    const wake = this.wake;
    this.waiting = undefined;
    this.wake = undefined;
    wake?.();
  };

  abort(): void {
    this.socket.destroy();
    this.onDrain();
  }
}

/**
 * A uwsgi listener for nginx's `uwsgi_pass` (or uWSGI's HTTP router): one request per
 * connection, the body framed by `CONTENT_LENGTH`, malformed input logged and closed.
 *
 * @example
 * createUwsgiServer(app, { bufferSize: 8192 }).listen(3031, '127.0.0.1');
 */
export function createUwsgiServer(app: App, options: UwsgiServerOptions = {}): Server {
  const bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
  if (!Number.isInteger(bufferSize) || bufferSize < 4 || bufferSize > MAX_BUFFER_SIZE) {
    throw new RangeError(
      `bufferSize must be an integer from 4 to ${MAX_BUFFER_SIZE}, got ${bufferSize}`,
    );
  }
  // allowHalfOpen: a peer that half-closes after its request still gets the response.
  return createServer({ allowHalfOpen: true }, (socket) =>
    handleUwsgiConnection(app, socket, options, bufferSize),
  );
}

/** How long a chunked request with no length may take to show its first body byte. */
const CHUNKED_GRACE_MS = 1000;

type Framing = { length: number } | { status: string; text: string };

/** How the body is framed: `CONTENT_LENGTH` first, then chunked; or why it cannot be read. */
function framingOf(packet: UwsgiPacket, limitPost: number): Framing {
  let lengthVar: string | undefined;
  let chunked = false;
  let repeated = false;
  for (const [key, value] of packet.vars) {
    if (key === 'CONTENT_LENGTH') {
      repeated = lengthVar !== undefined;
      lengthVar = value;
    } else if (key === 'HTTP_TRANSFER_ENCODING' && /chunked/i.test(value)) chunked = true;
  }
  // Two lengths make the body's end ambiguous (the ground of request smuggling): refused.
  if (repeated) return { status: '400 Bad Request', text: 'CONTENT_LENGTH sent more than once' };
  if (lengthVar !== undefined && lengthVar !== '') {
    if (!/^\d{1,15}$/.test(lengthVar)) {
      return {
        status: '400 Bad Request',
        text: `CONTENT_LENGTH ${JSON.stringify(lengthVar)} is not a number`,
      };
    }
    const length = Number(lengthVar);
    if (limitPost > 0 && length > limitPost) {
      return {
        status: '413 Content Too Large',
        text: `a body of ${length} bytes is over the limit of ${limitPost}`,
      };
    }
    return { length };
  }
  return { length: chunked ? -1 : 0 };
}

function handleUwsgiConnection(
  app: App,
  socket: Socket,
  options: UwsgiServerOptions,
  bufferSize: number,
): void {
  const errors = options.errors ?? stderrStream;
  const timeoutMs = (options.socketTimeout ?? 30) * 1000;
  const parser = new UwsgiPacketParser(bufferSize);
  // Named only when something is logged: reading the peer's address is a system call.
  const peer = () => `uwsgi ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  let body: UwsgiBody | undefined;
  let started = false;
  let waiting: { packet: UwsgiPacket; timer: NodeJS.Timeout } | undefined;

  const refuse = (error: unknown): void => {
    errors.write(formatError(error, peer()));
    socket.destroy();
  };
  const begin = (packet: UwsgiPacket, rest: Buffer, framing: Framing): void => {
    body = start(app, socket, packet, framing, options, errors, timeoutMs);
    if (body !== undefined && rest.length > 0) body.feed(rest);
    if ((body === undefined || body.complete) && timeoutMs > 0) socket.setTimeout(0);
  };
  socket.on('error', (error) => {
    // ECONNRESET and friends: the peer is gone; the exchange (if any) learns it from 'close'.
    if (!started && parser.buffered > 0) errors.write(formatError(error, peer()));
  });
  if (timeoutMs > 0) socket.setTimeout(timeoutMs);
  socket.on('timeout', () => {
    // The response is out; only the peer's close is missing.
    if (socket.writableFinished) return void socket.destroy();
    refuse(
      new NgiError(
        'NGI_ERR_TIMEOUT',
        started
          ? 'the peer stopped sending or reading'
          : 'no complete request within the socket timeout',
      ),
    );
  });
  socket.on('end', () => {
    // A connection opened and closed without a byte (a TCP health check) is not an error.
    if (!started && parser.buffered === 0) socket.destroy();
    else if (!started) {
      refuse(
        new NgiError(
          'NGI_ERR_BAD_PACKET',
          `connection closed after ${parser.buffered} bytes, before a complete packet`,
        ),
      );
    } else {
      // nginx never half-closes: a peer that ends before the whole body is gone, and the
      // response to a request that was never whole is aborted, not sent.
      const error = body?.cutShort();
      if (error !== undefined) refuse(error);
    }
  });
  socket.on('close', () => {
    if (waiting !== undefined) clearTimeout(waiting.timer);
  });
  socket.on('data', (chunk: Buffer) => {
    if (body !== undefined) {
      body.feed(chunk);
      // Body in: the app may think as long as it likes (harakiri's job, not ours); once the
      // response has ended, the timeout set by the sink stays.
      if (body.complete && timeoutMs > 0 && !socket.writableEnded) socket.setTimeout(0);
      return;
    }
    if (waiting !== undefined) {
      // The first bytes of a chunked body with no length (uWSGI's router, --http-chunked-input).
      clearTimeout(waiting.timer);
      const { packet } = waiting;
      waiting = undefined;
      begin(packet, chunk, { length: -1 });
      return;
    }
    if (started) return; // bytes after a bodiless request: nginx sends none
    let done: ReturnType<UwsgiPacketParser['push']>;
    try {
      done = parser.push(chunk);
    } catch (error) {
      refuse(error);
      return;
    }
    if (done === undefined) return;
    started = true;
    const { packet, rest } = done;
    const framing = framingOf(packet, options.limitPost ?? 0);
    if ('length' in framing && framing.length < 0 && rest.length === 0) {
      // uWSGI's router by default announces a chunked body and never sends it: wait briefly
      // for its first bytes, then answer 411 rather than hang.
      const timer = setTimeout(
        () => {
          waiting = undefined;
          begin(packet, rest, {
            status: '411 Length Required',
            text: 'a chunked body arrived with no CONTENT_LENGTH and no data (enable --http-chunked-input on the router, or buffer it in nginx)',
          });
        },
        // Within the socket timeout, which would otherwise close the connection unanswered.
        timeoutMs > 0 ? Math.min(CHUNKED_GRACE_MS, timeoutMs / 2) : CHUNKED_GRACE_MS,
      );
      waiting = { packet, timer };
      return;
    }
    begin(packet, rest, framing);
  });
}

function start(
  app: App,
  socket: Socket,
  packet: UwsgiPacket,
  framing: Framing,
  options: UwsgiServerOptions,
  errors: ErrorStream,
  timeoutMs: number,
): UwsgiBody | undefined {
  const problem = 'status' in framing ? framing : undefined;
  const input = new UwsgiBody(
    socket,
    problem ? 0 : (framing as { length: number }).length,
    options.limitPost ?? 0,
    timeoutMs,
  );
  const abort = new LazySignal();
  const environ = environFromUwsgi(packet, input, abort, errors, options.multiprocess ?? false);
  const sink = new UwsgiSink(socket, timeoutMs);
  const exchange = new Exchange(environ, sink, abort);
  const finished = options.onExchange?.(exchange);
  socket.once('finish', () => input.discardRest());
  socket.once('close', () => {
    sink.onDrain(); // a body waiting for 'drain' on a dead socket would wait forever
    if (!socket.writableFinished) exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    finished?.({
      status: sink.headersSent ? exchange.code : 0,
      bytes: Math.max(0, socket.bytesWritten - sink.headBytes),
      complete: socket.writableFinished,
    });
  });
  if (problem !== undefined) {
    const { status, text } = problem;
    errors.write(
      formatError(
        new NgiError('NGI_ERR_BAD_REQUEST', text),
        `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}`,
      ),
    );
    void exchange.run((_environ, startResponse) => {
      startResponse(status, [['Content-Type', 'text/plain; charset=utf-8']]);
      return [`${status}: ${text}\n`];
    });
    return undefined;
  }
  void exchange.run(app);
  return input;
}

// Hosting an NGI app on a uwsgi connection: the environ of a packet, the request body read
// from the socket, and the sink that writes the response the way nginx needs it.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { NGI_VERSION, addHeader } from '../core/environ.js';
import { RESOLVED, type ResponseSink } from '../core/exchange.js';
import { NgiError, RequestError } from '../core/errors.js';
import { attachEmptyInput } from '../core/input.js';
import { attachSignal, type LazySignal } from '../core/signal.js';
import type { Chunk, Environ, ErrorStream, Headers } from '../core/types.js';
import { decodePath, splitTarget } from '../core/url.js';
import { ChunkedDecoder } from '../protocol/chunked.js';
import type { UwsgiPacket } from '../protocol/uwsgi-packet.js';

const ignore = (): void => {};
const NON_ASCII = /[^\t\r\n\x20-\x7e]/;
/**
 * What Node refuses in a header value or reason (`checkInvalidHeaderChar`), in a head whose
 * only CR and LF are its own line ends (the engine refuses them in values): the uwsgi host
 * answers as the Node hosts do: nginx would pass such bytes on to the client unchecked, and a
 * character above U+00FF would go out cut to one byte.
 */
const REFUSED_BY_NODE = /[^\t\r\n\x20-\x7e\x80-\xff]/;

/**
 * The environ for a uwsgi packet: its vars in wire order (repeats joined with `", "`, Cookie
 * with `"; "`), empty `CONTENT_TYPE`/`CONTENT_LENGTH` removed, completed with ngi's keys;
 * `input` undefined for a request with no body.
 *
 * @example
 * const environ = environFromUwsgi(packet, undefined, new LazySignal(), stderrStream, false);
 * environ.PATH_INFO; // as nginx sent it (decoded, normalised)
 */
export function environFromUwsgi(
  packet: UwsgiPacket,
  input: Readable | undefined,
  abort: LazySignal,
  errors: ErrorStream,
  multiprocess: boolean,
): Environ {
  // One pass, each var stored once: nginx's 20 to 40 vars put the object in dictionary mode
  // whatever is done, so what is saved is the work (no rewrite of every CGI key afterwards,
  // no deletes).
  // The lazy keys first, while the object is still empty: defining an accessor there takes a
  // transition V8 has cached, where on the finished environ (a dictionary) it is a slow call.
  const vars: Record<string, unknown> = {};
  attachSignal(vars, abort);
  if (input === undefined) attachEmptyInput(vars);
  let https = false;
  for (const [key, value] of packet.vars) {
    if (key.charCodeAt(0) === 72 /* H */) {
      // nginx repeats every header as HTTP_*, the content ones too: they are CONTENT_* only.
      if (key === 'HTTP_CONTENT_LENGTH' || key === 'HTTP_CONTENT_TYPE') continue;
      // `HTTPS` is `on` when the request came over TLS, never another spelling (`1`).
      if (key === 'HTTPS') {
        if (value !== 'on' && value !== '1') continue;
        https = true;
        vars.HTTPS ??= 'on';
        continue;
      }
    } else if (key === 'CONTENT_LENGTH' || key === 'CONTENT_TYPE') {
      // nginx sends them as '' when the request has none: absent.
      if (value === '') continue;
    } else if (key === 'UWSGI_SCHEME' || key === 'REQUEST_SCHEME') {
      https ||= value === 'https';
    }
    const prior = vars[key];
    if (prior === undefined) vars[key] = value;
    // A repeat joins; a var named like an Object.prototype member (`constructor`,
    // `__proto__`) finds a non-string there and is dropped.
    else if (typeof prior === 'string') addHeader(vars, key, value);
  }
  const environ = vars as unknown as Environ;
  if (environ.PATH_INFO === undefined || environ.QUERY_STRING === undefined) {
    const [rawPath, rawQuery] = splitTarget(environ.REQUEST_URI ?? '/');
    environ.PATH_INFO ??= decodePath(rawPath);
    environ.QUERY_STRING ??= rawQuery;
  }
  const pathInfo = environ.PATH_INFO;
  const query = environ.QUERY_STRING;
  environ.REQUEST_METHOD ??= 'GET';
  environ.SCRIPT_NAME ??= '';
  environ.SERVER_NAME ??= '';
  environ.SERVER_PORT ??= '';
  environ.SERVER_PROTOCOL ??= 'HTTP/1.0';
  environ.REMOTE_ADDR ??= '';
  environ.REMOTE_PORT ??= '';
  environ.REQUEST_URI ??= query === '' ? pathInfo : `${pathInfo}?${query}`;
  if (https) environ.HTTPS ??= 'on';
  environ['ngi.version'] = NGI_VERSION;
  environ['ngi.url_scheme'] = https ? 'https' : 'http';
  if (input !== undefined) environ['ngi.input'] = input;
  environ['ngi.errors'] = errors;
  environ['ngi.multiprocess'] = multiprocess;
  environ['ngi.multithread'] = false;
  environ['ngi.run_once'] = false;
  return environ;
}

/**
 * The request body, read from the socket with backpressure (the socket is paused while the
 * app does not read): exactly `CONTENT_LENGTH` bytes, or a chunked body decoded as it comes.
 */
export class UwsgiBody extends Readable {
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
export class UwsgiSink implements ResponseSink {
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
    let head = `HTTP/1.1 ${code} ${reason || STATUS_CODES[code] || 'Unknown'}\r\n`;
    for (let i = 0; i < headers.length; i++) head += `${headers[i]![0]}: ${headers[i]![1]}\r\n`;
    if (addLength >= 0) head += `Content-Length: ${addLength}\r\n`;
    head += 'Connection: close\r\n\r\n';
    // Plain ASCII (the common case) holds nothing Node refuses: one scan of the head.
    const latin1 = NON_ASCII.test(head);
    if (latin1 && REFUSED_BY_NODE.test(head)) {
      // Refused before anything is written, so the app's failure is still a 500.
      throw new NgiError(
        'NGI_ERR_INVALID_HEADER',
        'a header value or the reason holds a control character or a character above U+00FF (refused as Node refuses it)',
      );
    }
    this.headersSent = true;
    this.pendingHead = head;
    this.headBytes = head.length;
    this.latin1Head = latin1;
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
    // A timeout still armed (an app that answered while its request was read) stays: each
    // `setTimeout` makes a new timer.
    if (this.timeoutMs > 0 && this.socket.timeout !== this.timeoutMs) {
      this.socket.setTimeout(this.timeoutMs);
    }
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
    // A reset, not a close: a close-delimited body that just ends looks complete to nginx,
    // which would then end its chunked response to the client as if nothing had failed.
    // Only TCP sockets can be reset; a Unix socket is closed.
    try {
      this.socket.resetAndDestroy();
    } catch {
      this.socket.destroy();
    }
    this.onDrain();
  }
}

import { createServer, type Server, type Socket } from 'node:net';
import { stderrStream } from '../core/environ.js';
import { Exchange } from '../core/exchange.js';
import { NgiError, formatError } from '../core/errors.js';
import { LazySignal } from '../core/signal.js';
import type { App, ErrorStream } from '../core/types.js';
import { UwsgiBody, UwsgiSink, environFromUwsgi } from '../hosts/uwsgi.js';
import {
  DEFAULT_BUFFER_SIZE,
  MAX_BUFFER_SIZE,
  UwsgiPacketParser,
  type UwsgiPacket,
} from '../protocol/uwsgi-packet.js';
import type { ListenerOptions } from './listener.js';

export interface UwsgiServerOptions extends ListenerOptions {
  /** Largest vars block accepted, in bytes (uWSGI's `--buffer-size`); default 4096, max 65535. */
  bufferSize?: number;
  /** Largest request body accepted, in bytes (uWSGI's `--limit-post`); 0 = no limit. */
  limitPost?: number;
  /** Seconds a connection may stay silent while its request is read or its response written. */
  socketTimeout?: number;
  /**
   * Holds the open connections, for a stop that cuts them after its grace period: each goes in
   * when accepted and out when closed, on the listener's own close listener (one per request).
   */
  connections?: Set<Socket>;
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
  const peer = () =>
    socket.remoteAddress === undefined
      ? 'uwsgi peer on a unix socket'
      : `uwsgi ${socket.remoteAddress}:${socket.remotePort ?? '?'}`;
  let body: UwsgiBody | undefined;
  let started = false;
  let waiting: { packet: UwsgiPacket; timer: NodeJS.Timeout } | undefined;
  /** The exchange's part of the socket's close, once there is an exchange. */
  let onClose: (() => void) | undefined;

  const refuse = (error: unknown): void => {
    errors.write(formatError(error, peer()));
    socket.destroy();
  };
  const begin = (packet: UwsgiPacket, rest: Buffer, framing: Framing): void => {
    const problem = 'status' in framing ? framing : undefined;
    const length = problem === undefined ? (framing as { length: number }).length : 0;
    // A request with no body (most of them) gets no body stream from the socket at all.
    if (length !== 0) body = new UwsgiBody(socket, length, options.limitPost ?? 0, timeoutMs);
    onClose = start(app, socket, packet, body, problem, options, errors, timeoutMs);
    if (body !== undefined && rest.length > 0) body.feed(rest);
    // Body in: the app may think as long as it likes (harakiri's job, not ours). An app that
    // already answered has ended the response, and the timeout its sink set stays: a peer
    // that never closes its side must not hold the socket for ever.
    if ((body === undefined || body.complete) && timeoutMs > 0 && !socket.writableEnded) {
      socket.setTimeout(0);
    }
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
  const connections = options.connections;
  connections?.add(socket);
  socket.on('close', () => {
    connections?.delete(socket);
    if (waiting !== undefined) clearTimeout(waiting.timer);
    onClose?.();
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

/** Runs the exchange of a packet; returns what the socket's close must tell it. */
function start(
  app: App,
  socket: Socket,
  packet: UwsgiPacket,
  input: UwsgiBody | undefined,
  problem: { status: string; text: string } | undefined,
  options: UwsgiServerOptions,
  errors: ErrorStream,
  timeoutMs: number,
): () => void {
  const abort = new LazySignal();
  const environ = environFromUwsgi(packet, input, abort, errors, options.multiprocess ?? false);
  const sink = new UwsgiSink(socket, timeoutMs);
  const exchange = new Exchange(environ, sink, abort);
  const finished = options.onExchange?.(exchange);
  if (input !== undefined) socket.once('finish', () => input.discardRest());
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
  } else {
    void exchange.run(app);
  }
  return () => {
    sink.onDrain(); // a body waiting for 'drain' on a dead socket would wait forever
    if (!socket.writableFinished) exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    finished?.({
      status: sink.headersSent ? exchange.code : 0,
      bytes: Math.max(0, socket.bytesWritten - sink.headBytes),
      complete: socket.writableFinished,
    });
  };
}

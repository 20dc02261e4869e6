import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { NgiError } from '../core/errors.js';
import type {
  Headers,
  Upgrade,
  WebSocketClose,
  WebSocketMessage,
  WebSocketSession,
} from '../core/types.js';
import type { NodeSink } from './node.js';

/** Largest WebSocket message accepted (ws's own default is 100 MiB): a bigger one closes with 1009. */
const MAX_MESSAGE = 16 * 1024 * 1024;
/** Messages queued unread before the connection stops reading (TCP backpressure does the rest). */
const QUEUE_HIGH = 16;
const TOKEN = /^[!#$%&'*+\-.^_`|~\dA-Za-z]+$/;
const INVALID_CHARS = /[\r\n\0]/;
/**
 * How long a client has to answer the server's 1001 close at the end of a stop's grace period
 * before its connection is cut (ws's own bound is 30 s, past the master's SIGKILL).
 */
const GOING_AWAY_MS = 1000;
/** Names the handshake owns: an app setting them would break it. */
const RESERVED =
  /^(connection|upgrade|keep-alive|transfer-encoding|content-length|sec-websocket-.*)$/i;

/**
 * `ngi.upgrade` on a Node host (ngi's HTTP listener, `toNodeUpgradeHandler`): takes the
 * connection Node handed over with the `'upgrade'` event, for a WebSocket session (through the
 * `ws` library, loaded on the first accept) or as a raw connection.
 */
export class NodeUpgradeRequest implements Upgrade {
  readonly protocol: string;
  readonly subprotocols: readonly string[];
  readonly #sink: NodeSink;

  constructor(sink: NodeSink) {
    const headers = sink.req.headers;
    this.#sink = sink;
    this.protocol = (headers.upgrade ?? '').trim().toLowerCase();
    const offered = headers['sec-websocket-protocol'];
    this.subprotocols =
      offered === undefined
        ? []
        : offered
            .split(',')
            .map((p) => p.trim())
            .filter(Boolean);
  }

  async acceptWebSocket(
    options: { protocol?: string; headers?: Headers } = {},
  ): Promise<WebSocketSession> {
    if (this.protocol !== 'websocket') {
      throw new NgiError(
        'NGI_ERR_UNSUPPORTED',
        `the client asks for ${JSON.stringify(this.protocol)}, not a WebSocket`,
      );
    }
    const protocol = options.protocol ?? '';
    if (protocol !== '' && !this.subprotocols.includes(protocol)) {
      throw new NgiError(
        'NGI_ERR_VALIDATION',
        `subprotocol ${JSON.stringify(protocol)} is not one the client offered (${this.subprotocols.join(', ') || 'none'})`,
      );
    }
    const headers = checkHeaders(options.headers ?? []);
    const server = await webSocketServer();
    const sink = this.#sink;
    const upgrade = claim(sink);
    const req = sink.req;
    pending.set(req, { protocol, headers });
    return new Promise((resolve, reject) => {
      // ws answers an invalid handshake (bad key or version) with a 400 itself and closes.
      const failed = () =>
        reject(new NgiError('NGI_ERR_BAD_REQUEST', 'the WebSocket handshake failed'));
      upgrade.socket.once('close', failed);
      server.handleUpgrade(req, upgrade.socket, upgrade.head, (ws) => {
        upgrade.socket.off('close', failed);
        const session = new NodeWebSocketSession(ws, sink);
        sessionOf.set(upgrade.socket, session);
        resolve(session);
      });
    });
  }

  acceptConnection(options: { headers?: Headers } = {}): Duplex {
    if (this.protocol === '') throw new NgiError('NGI_ERR_UNSUPPORTED', 'no protocol asked for');
    const headers = checkHeaders(options.headers ?? []);
    const { socket, head } = claim(this.#sink);
    let text = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${this.#sink.req.headers.upgrade}\r\n`;
    for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
    socket.write(text + '\r\n');
    if (head.length > 0) socket.unshift(head);
    return socket;
  }
}

function claim(sink: NodeSink): { socket: Duplex; head: Buffer } {
  const upgrade = sink.claimUpgrade();
  if (upgrade === undefined) {
    throw new NgiError(
      'NGI_ERR_VALIDATION',
      'the upgrade was already taken or answered: accept it once, before any startResponse',
    );
  }
  return upgrade;
}

function checkHeaders(headers: Headers): Headers {
  if (!Array.isArray(headers)) {
    throw new NgiError('NGI_ERR_INVALID_HEADER', 'headers must be an array of [name, value]');
  }
  for (const pair of headers) {
    const [name, value] = Array.isArray(pair) ? pair : [];
    if (typeof name !== 'string' || typeof value !== 'string' || !TOKEN.test(name)) {
      throw new NgiError('NGI_ERR_INVALID_HEADER', `header ${JSON.stringify(pair)}`);
    }
    if (INVALID_CHARS.test(value)) {
      throw new NgiError(
        'NGI_ERR_INVALID_HEADER',
        `header ${JSON.stringify(name)} holds CR, LF or NUL`,
      );
    }
    if (RESERVED.test(name)) {
      throw new NgiError('NGI_ERR_HOP_BY_HOP', `${name} belongs to the handshake, not the app`);
    }
  }
  return headers;
}

/** The WebSocket session each accepted connection carries, for a stop's closing handshake. */
const sessionOf = new WeakMap<Duplex, NodeWebSocketSession>();

/**
 * Ends the WebSocket session `socket` carries, if any, as a server that is stopping: a close
 * frame with 1001 Going Away, then the connection is cut if the client has not answered within
 * a second. Returns false for a connection with no open session (a raw upgrade, a user's own
 * `ws` server): the caller cuts it.
 *
 * @example
 * if (!goAway(socket)) socket.destroy();
 */
export function goAway(socket: Duplex): boolean {
  const session = sessionOf.get(socket);
  if (session === undefined || !session.goAway()) return false;
  const cut = setTimeout(() => socket.destroy(), GOING_AWAY_MS);
  socket.once('close', () => clearTimeout(cut));
  return true;
}

/** What the app asked for at accept, per request, until ws writes the handshake. */
const pending = new WeakMap<object, { protocol: string; headers: Headers }>();
let shared: Promise<WebSocketServer> | undefined;

/** One `ws` server with no listener of its own, for every accept of this process. */
function webSocketServer(): Promise<WebSocketServer> {
  shared ??= import('ws').then(({ WebSocketServer }) => {
    const server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: MAX_MESSAGE,
      handleProtocols: (_offered, req) => pending.get(req)?.protocol || false,
    });
    server.on('headers', (lines: string[], req) => {
      const extra = pending.get(req);
      pending.delete(req);
      if (extra !== undefined)
        for (const [name, value] of extra.headers) lines.push(`${name}: ${value}`);
    });
    return server;
  });
  return shared;
}

const OPEN = 1;

/** A `ws` WebSocket as a `WebSocketSession`: messages queued for the iterator, sends awaited. */
class NodeWebSocketSession implements WebSocketSession {
  readonly protocol: string;
  readonly closed: Promise<WebSocketClose>;
  readonly #ws: WebSocket;
  readonly #queue: WebSocketMessage[] = [];
  #wake: (() => void) | undefined = undefined;
  #ended = false;
  #paused = false;
  #closing = false;

  constructor(ws: WebSocket, sink: NodeSink) {
    this.#ws = ws;
    this.protocol = ws.protocol;
    let closed!: (close: WebSocketClose) => void;
    this.closed = new Promise((resolve) => (closed = resolve));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.#queue.push(isBinary ? data : data.toString('utf8'));
      if (this.#queue.length >= QUEUE_HIGH && !this.#paused) {
        this.#paused = true;
        ws.pause();
      }
      this.#wakeUp();
    });
    // An error (a bad frame, a message over the limit) is followed by 'close': that is the news.
    ws.on('error', () => {});
    ws.on('close', (code: number, reason: Buffer) => {
      this.#ended = true;
      // The client went away (or closed) while the app did not: ngi.signal says so.
      if (!this.#closing) sink.exchange?.controller.abort(new NgiError('NGI_ERR_CLIENT_GONE'));
      closed({ code, reason: reason.toString('utf8') });
      this.#wakeUp();
    });
  }

  send(message: WebSocketMessage): Promise<void> {
    if (this.#ws.readyState !== OPEN) {
      return Promise.reject(new NgiError('NGI_ERR_CLIENT_GONE', 'the WebSocket is closed'));
    }
    if (typeof message !== 'string' && !(message instanceof Uint8Array)) {
      return Promise.reject(
        new NgiError('NGI_ERR_INVALID_CHUNK', `a WebSocket message of type ${typeof message}`),
      );
    }
    return new Promise((resolve, reject) => {
      this.#ws.send(message, { binary: typeof message !== 'string' }, (error) => {
        if (error) reject(new NgiError('NGI_ERR_CLIENT_GONE', error.message, { cause: error }));
        else resolve();
      });
    });
  }

  close(code = 1000, reason = ''): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new NgiError('NGI_ERR_VALIDATION', `close code ${code}: use 1000 or 3000-4999`);
    }
    if (Buffer.byteLength(reason) > 123) {
      throw new NgiError('NGI_ERR_VALIDATION', 'a close reason holds at most 123 bytes');
    }
    this.#closing = true;
    this.#ws.close(code, reason);
  }

  /** The server stops: 1001 Going Away, which the app did not choose (so no client-gone signal). */
  goAway(): boolean {
    if (this.#ws.readyState !== OPEN) return false;
    this.#closing = true;
    this.#ws.close(1001, 'Going Away');
    return true;
  }

  [Symbol.asyncIterator](): AsyncIterator<WebSocketMessage> {
    return {
      next: async () => {
        for (;;) {
          const message = this.#queue.shift();
          if (message !== undefined) {
            if (this.#paused && this.#queue.length < QUEUE_HIGH / 2) {
              this.#paused = false;
              this.#ws.resume();
            }
            return { done: false, value: message };
          }
          if (this.#ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      },
      return: async () => ({ done: true, value: undefined }),
    };
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

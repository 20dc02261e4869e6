import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ListenerOptions } from './listener.js';
import { ResponsesInProgress } from './responses-in-progress.js';
import { createNodeExchange, type NodeSink } from '../hosts/node.js';
import { createNodeUpgradeExchange, refuseUpgrade } from '../hosts/node-upgrade.js';
import { goAway } from '../hosts/node-upgrade-request.js';
import { RequestError } from '../core/errors.js';
import type { App } from '../core/types.js';

/** Options of the HTTP listener; times are in seconds, as on the command line. */
export interface HttpServerOptions extends ListenerOptions {
  /** Largest request body accepted by its declared `Content-Length` (bytes, 0 = no limit). */
  limitPost?: number;
  /**
   * A request stalled on its peer this long is cut (default 30): a body it is reading that
   * stops arriving, or a response the client stops reading. An app that takes its time is
   * not a stall (that is `harakiri`'s business), nor is an idle kept-alive connection
   * (`keepAliveTimeout`).
   */
  socketTimeout?: number;
  /** How long an idle keep-alive connection is kept open (default 5). */
  keepAliveTimeout?: number;
  /** Time allowed for a client to send the request head (default 20). */
  headersTimeout?: number;
  /** Time allowed for a client to send the whole request, body included (default 300). */
  requestTimeout?: number;
}

/** Responses in progress per server, so a drain can ask them to close their connections. */
const inFlightOf = new WeakMap<NetServer, ResponsesInProgress>();
/** Connections that came through `'upgrade'`, per server: a stop cuts them after its grace period. */
const upgradedOf = new WeakMap<NetServer, Set<Duplex>>();

/**
 * An HTTP/1.1 listener on `node:http` serving an NGI app: keep-alive, head and request
 * timeouts set, and Node's own 400/431 answers for malformed requests (no `clientError`
 * handler is installed, so Node writes them and drops the socket — never a crash).
 *
 * @example
 * createHttpServer(app, { socketTimeout: 10 }).listen(8080, '127.0.0.1');
 */
export function createHttpServer(app: App, options: HttpServerOptions = {}): Server {
  const headersTimeout = (options.headersTimeout ?? 20) * 1000;
  const server = createServer({
    headersTimeout,
    // Node wants requestTimeout >= headersTimeout when both are set.
    requestTimeout: Math.max((options.requestTimeout ?? 300) * 1000, headersTimeout),
    keepAliveTimeout: (options.keepAliveTimeout ?? 5) * 1000,
  });
  drainOnClose(server);
  server.on('request', http1Listener(server, app, options));

  server.on('upgrade', upgradeListener(server, app, options));
  return server;
}

/**
 * The `request` listener serving HTTP/1.x requests of `server` with an NGI app: body limit,
 * stall watch, the exchange's outcome for logs and stats, and what a drain needs. The HTTPS
 * listener uses it for its HTTP/1.1 connections.
 *
 * @example
 * server.on('request', http1Listener(server, app, { limitPost: 1 << 20 }));
 */
export function http1Listener(
  server: NetServer,
  app: App,
  options: HttpServerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const inFlight = new ResponsesInProgress();
  inFlightOf.set(server, inFlight);
  watchStalls(server, inFlight, (options.socketTimeout ?? 30) * 1000);
  const limitPost = options.limitPost ?? 0;
  const tooLarge: App = (environ) => {
    throw new RequestError(
      `a body of ${environ.CONTENT_LENGTH} bytes is over the limit of ${limitPost} (--limit-post)`,
      413,
    );
  };
  const base = { errors: options.errors, multiprocess: options.multiprocess };
  const onExchange = options.onExchange;

  return (req: IncomingMessage, res: ServerResponse) => {
    // A request that arrives on a kept-alive connection while draining is the last on it.
    if (!server.listening) res.shouldKeepAlive = false;
    let target = app;
    if (limitPost > 0) {
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > limitPost) {
        // The body stays unread: the connection cannot be reused.
        res.shouldKeepAlive = false;
        target = tooLarge;
      }
    }
    const socket = req.socket;
    const bytesBefore = socket.bytesWritten;
    inFlight.add(socket, res);
    // Announced before it runs: the log's clock and harakiri cover the app's synchronous part.
    const exchange = createNodeExchange(req, res, base);
    const finished = onExchange?.(exchange);
    // `on`, not `once`: a response closes once, and `once` wraps its listener in another.
    res.on('close', () => {
      inFlight.delete(socket, res);
      finished?.({
        status: res.headersSent ? res.statusCode : 0,
        bytes: bodyBytes(res, socket.bytesWritten - bytesBefore),
        complete: res.writableFinished,
      });
    });
    void exchange.run(target);
  };
}

/**
 * The `upgrade` listener of `server` (`Upgrade: websocket`, any protocol): the app takes the
 * connection through `ngi.upgrade` or answers with a plain response; while draining it is
 * refused with a 503. The HTTPS listener uses it for its HTTP/1.1 connections (wss://).
 *
 * @example
 * server.on('upgrade', upgradeListener(server, app, {}));
 */
export function upgradeListener(
  server: NetServer,
  app: App,
  options: HttpServerOptions,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const base = { errors: options.errors, multiprocess: options.multiprocess };
  const onExchange = options.onExchange;
  const upgraded = new Set<Duplex>();
  upgradedOf.set(server, upgraded);
  return (req, socket, head) => {
    // Node drops its own error listener before this event: a reset must not crash the worker.
    socket.on('error', ignore);
    // Draining: a new long-lived connection would only be cut at the end of the grace period.
    if (!server.listening) return refuseUpgrade(socket, 503, 'Service Unavailable');
    const bytesBefore = (socket as { bytesWritten?: number }).bytesWritten ?? 0;
    upgraded.add(socket);
    // Announced before it runs, as every exchange: the clock covers the app's synchronous part.
    const exchange = createNodeUpgradeExchange(req, socket, head, base);
    const finished = onExchange?.(exchange);
    socket.once('close', () => {
      upgraded.delete(socket);
      const res = (exchange.sink as NodeSink).res;
      finished?.({
        status: exchange.upgraded ? exchange.code : res.headersSent ? res.statusCode : 0,
        bytes: Math.max(0, ((socket as { bytesWritten?: number }).bytesWritten ?? 0) - bytesBefore),
        complete: exchange.upgraded || res.writableFinished,
      });
    });
    void exchange.run(app);
  };
}

/**
 * Marks every HTTP/1.x response of `server` still in progress the last on its connection
 * (see `drainHttpServer`).
 */
export function lastOnTheirConnections(server: NetServer): void {
  for (const res of inFlightOf.get(server) ?? []) {
    if (!res.headersSent) res.shouldKeepAlive = false;
  }
}

function ignore(): void {}

/**
 * Closes every upgraded connection still open: what a stop does once its grace period is
 * over. A WebSocket the app accepted through `ngi.upgrade` gets a 1001 Going Away close (and a
 * second to answer it); any other (a raw upgrade) is cut. Returns how many there were.
 *
 * @example
 * const closed = closeUpgradedConnections(server);
 */
export function closeUpgradedConnections(server: NetServer): number {
  const upgraded = upgradedOf.get(server);
  if (upgraded === undefined) return 0;
  const count = upgraded.size;
  for (const socket of upgraded) if (!goAway(socket)) socket.destroy();
  return count;
}

/** True if `socket` is an upgraded connection of `server` (closed by `closeUpgradedConnections`). */
export function isUpgradedConnection(server: NetServer, socket: Duplex): boolean {
  return upgradedOf.get(server)?.has(socket) ?? false;
}

/** How many upgraded connections are open on `server` (they count as requests in flight). */
export function countUpgradedConnections(server: NetServer): number {
  return upgradedOf.get(server)?.size ?? 0;
}

/** Where a response stood at the last look: bytes moved on its socket, and since when. */
interface Progress {
  moved: number;
  since: number;
}

/**
 * Cuts requests stalled on their peer for `idleMs`, looking once a second (at most) instead
 * of re-arming a socket timer on every read and write, as `server.setTimeout` does: that costs
 * about 2 µs a request, and would also cut an app that is simply slow to answer.
 */
function watchStalls(server: NetServer, inFlight: ResponsesInProgress, idleMs: number): void {
  if (idleMs <= 0) return;
  const seen = new WeakMap<ServerResponse, Progress>();
  const timer = setInterval(
    () => {
      const now = Date.now();
      for (const res of inFlight) {
        const socket = res.socket;
        const req = res.req;
        if (socket === null || socket.destroyed) continue;
        // Waiting on the peer: bytes it does not take, or a body being read that does not come.
        const reading = req.listenerCount('data') + req.listenerCount('readable') > 0;
        const stalled = socket.writableLength > 0 || (!req.complete && reading);
        const moved = socket.bytesRead + socket.bytesWritten;
        const last = seen.get(res);
        if (!stalled || last === undefined || last.moved !== moved) {
          seen.set(res, { moved, since: now });
        } else if (now - last.since >= idleMs) {
          socket.destroy();
        }
      }
    },
    Math.min(1000, idleMs),
  );
  timer.unref();
  server.once('close', () => clearInterval(timer));
}

/**
 * Body bytes of a response: bytes on the wire less the head (chunk framing, if any, is
 * counted). Measured on the socket because on the fast path a native handler writes the
 * response itself and the engine sees none of it.
 */
function bodyBytes(res: ServerResponse, wire: number): number {
  // `_header` is the head as written: Node has kept this field for a decade.
  const head = (res as ServerResponse & { _header?: string | null })._header;
  return Math.max(0, wire - (typeof head === 'string' ? head.length : 0));
}

/**
 * Stops accepting and makes every response still in progress the last on its connection.
 * Idle kept-alive connections are left to expire on `keepAliveTimeout` (the client knows it
 * from the `Keep-Alive` header and stops reusing them first); a request that still arrives on
 * one is answered and marked the last. The server's `'close'` fires once all are gone.
 *
 * @example
 * server.once('close', () => console.log('drained'));
 * drainHttpServer(server);
 */
export function drainHttpServer(server: Server): void {
  if (server.listening) server.close();
  else lastOnTheirConnections(server);
}

/** A server whose `close()` also drops idle kept-alive HTTP/1.1 connections (http, http2). */
type ClosesIdle = NetServer & { closeIdleConnections(): void };

/**
 * Makes every `close()` of the listener a drain, whoever calls it: node:cluster closes a
 * worker's listeners itself when its channel to the master is disconnected. The HTTPS listener
 * uses it too (its HTTP/1.1 connections are node:http's).
 */
export function drainOnClose(server: ClosesIdle): void {
  const nodeClose = server.close;
  server.close = function (this: ClosesIdle, callback?: (error?: Error) => void) {
    // Node's close() also drops idle kept-alive connections at once, which races a client
    // already sending its next request on one: that request would fail. Skip that step only.
    const closeIdle = this.closeIdleConnections;
    this.closeIdleConnections = () => {};
    try {
      nodeClose.call(this, callback);
    } finally {
      this.closeIdleConnections = closeIdle;
    }
    lastOnTheirConnections(this);
    return this;
  };
}

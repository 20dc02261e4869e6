import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants as h2,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import { createHttp2Exchange } from '../hosts/http2.js';
import type { App } from '../core/types.js';
import {
  drainOnClose,
  http1Listener,
  isUpgradedConnection,
  lastOnTheirConnections,
  upgradeListener,
  type HttpServerOptions,
} from './http-listener.js';

/** Options of the HTTPS listener: the HTTP listener's, and the certificate. */
export interface HttpsServerOptions extends HttpServerOptions {
  /** The certificate chain, PEM. */
  cert: string | Buffer;
  /** Its private key, PEM. */
  key: string | Buffer;
}

/** Live sessions and sockets per server, for a drain and the final cut. */
interface Connections {
  sessions: Set<ServerHttp2Session>;
  sockets: Set<Socket>;
}

const connectionsOf = new WeakMap<Http2SecureServer, Connections>();

/**
 * A TLS listener speaking HTTP/2 and HTTP/1.1 on one port, chosen by ALPN (`node:http2` with
 * `allowHTTP1`). HTTP/2 streams run on the same engine as HTTP/1.1 requests: backpressure per
 * stream, a reset stream is a client gone (`ngi.signal`), no hop-by-hop headers on h2.
 *
 * @example
 * createHttpsServer(app, { cert: readFileSync('cert.pem'), key: readFileSync('key.pem') })
 *   .listen(8443, '127.0.0.1');
 */
export function createHttpsServer(app: App, options: HttpsServerOptions): Http2SecureServer {
  const server = createSecureServer({ cert: options.cert, key: options.key, allowHTTP1: true });
  // HTTP/1.1 connections go through node:http's connection handling, which reads these from
  // the server object; an http2 server has none set, and an idle kept-alive connection would
  // then never time out (a drain would wait for it to the end of the grace period).
  const headersTimeout = (options.headersTimeout ?? 20) * 1000;
  Object.assign(server, {
    keepAliveTimeout: (options.keepAliveTimeout ?? 5) * 1000,
    headersTimeout,
    requestTimeout: Math.max((options.requestTimeout ?? 300) * 1000, headersTimeout),
  });
  const connections: Connections = { sessions: new Set(), sockets: new Set() };
  connectionsOf.set(server, connections);
  server.on('secureConnection', (socket: Socket) => {
    connections.sockets.add(socket);
    socket.once('close', () => connections.sockets.delete(socket));
  });
  server.on('session', (session: ServerHttp2Session) => {
    connections.sessions.add(session);
    session.once('close', () => connections.sessions.delete(session));
    // A session draining when it is made (a connection accepted just before close()).
    if (!server.listening) session.close();
  });

  // With allowHTTP1 node:http2 has node:http's closeIdleConnections (its typings do not say so).
  drainOnClose(server as Http2SecureServer & { closeIdleConnections(): void });
  const http1 = http1Listener(server, app, options);
  // HTTP/1.1 upgrades over TLS (wss://): node:http2 emits 'upgrade' for its HTTP/1.1 connections.
  server.on('upgrade', upgradeListener(server, app, options));
  const base = { errors: options.errors, multiprocess: options.multiprocess };
  const onExchange = options.onExchange;
  const idleMs = (options.socketTimeout ?? 30) * 1000;
  server.on(
    'request',
    (
      req: Http2ServerRequest | IncomingMessage,
      res: Http2ServerResponse | ServerResponse,
    ): void => {
      if (req.httpVersionMajor !== 2) {
        http1(req as IncomingMessage, res as ServerResponse);
        return;
      }
      const h2res = res as Http2ServerResponse;
      if (idleMs > 0) resetWhenStalled(req as Http2ServerRequest, h2res, idleMs);
      // Announced before it runs: the clock covers the app's synchronous part.
      const exchange = createHttp2Exchange(req as Http2ServerRequest, h2res, base);
      const finished = onExchange?.(exchange);
      if (finished !== undefined) {
        h2res.on('close', () =>
          finished({
            status: h2res.headersSent ? h2res.statusCode : 0,
            // Streams share the connection: the engine's own count is the stream's.
            bytes: exchange.sent,
            complete: h2res.writableFinished,
          }),
        );
      }
      void exchange.run(app);
    },
  );
  return server;
}

/**
 * `--socket-timeout` for an HTTP/2 stream, as for an HTTP/1.1 connection: a stream on which
 * nothing moved for `idleMs` while it waits on the peer (a response the client does not take
 * past its window, a request body that stops coming) is reset with CANCEL; its session and
 * the other streams on it go on. One that waits on the app is left alone (that is
 * `--harakiri`'s business). Node's stream timer restarts on every read and every write.
 */
function resetWhenStalled(req: Http2ServerRequest, res: Http2ServerResponse, idleMs: number): void {
  const stream = res.stream;
  const check = (): void => {
    // Ended meanwhile: nothing to watch, and no timer to set again.
    if (stream.destroyed) return;
    const reading = req.listenerCount('data') + req.listenerCount('readable') > 0;
    if (stream.writableLength > 0 || (!req.complete && reading)) {
      stream.close(h2.NGHTTP2_CANCEL);
    } else stream.setTimeout(idleMs, check);
  };
  stream.setTimeout(idleMs, check);
}

/**
 * Stops accepting; HTTP/2 sessions get a GOAWAY (their open streams finish), HTTP/1.1
 * responses in progress are made the last on their connection. The server's `'close'` fires
 * once every connection is gone.
 *
 * @example
 * server.once('close', () => console.log('drained'));
 * drainHttpsServer(server);
 */
export function drainHttpsServer(server: Http2SecureServer): void {
  if (server.listening) server.close();
  const connections = connectionsOf.get(server);
  for (const session of connections?.sessions ?? []) session.close();
  lastOnTheirConnections(server);
}

/**
 * Cuts every connection still open (the grace period is over).
 *
 * @example
 * closeHttpsConnections(server);
 */
export function closeHttpsConnections(server: Http2SecureServer): void {
  const connections = connectionsOf.get(server);
  for (const session of connections?.sessions ?? []) session.destroy();
  for (const socket of connections?.sockets ?? []) {
    // An upgraded one is closeUpgradedConnections' to end (a WebSocket's 1001 takes a moment).
    if (!isUpgradedConnection(server, socket)) socket.destroy();
  }
}

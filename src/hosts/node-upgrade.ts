import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Exchange } from '../core/exchange.js';
import type { App } from '../core/types.js';
import { createNodeExchange, type NodeRequestOptions } from './node.js';

/**
 * Serves a request that came through Node's `'upgrade'` event (`Upgrade: websocket`, `h2c`, any
 * protocol) with an NGI app. Node has handed the raw connection over, so the app gets a real
 * `ServerResponse` assigned to it, marked the last on the connection: an app that answers with
 * a plain HTTP response (a 404, a 401, a 426) refuses the upgrade cleanly, as Node itself does
 * for a server with no `'upgrade'` listener, and the connection closes after it. A Node upgrade
 * listener further down (`fromNodeServer`, `fromNodeHandler(h, { upgrade })`) takes the raw
 * connection instead, through the environ's `NodeOrigin`.
 *
 * @example
 * server.on('upgrade', (req, socket, head) => serveNodeUpgrade(app, req, socket, head, {}));
 */
export function serveNodeUpgrade(
  app: App,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: NodeRequestOptions,
): Exchange {
  const exchange = createNodeUpgradeExchange(req, socket, head, options);
  void exchange.run(app);
  return exchange;
}

/** The exchange `serveNodeUpgrade` runs, built but not yet run (see `createNodeExchange`). */
export function createNodeUpgradeExchange(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: NodeRequestOptions,
): Exchange {
  const res = responseOn(req, socket as Socket);
  return createNodeExchange(req, res, { ...options, upgrade: { socket, head } });
}

/**
 * A `ServerResponse` written straight onto `socket`, which no HTTP parser owns any more: what
 * Node's own server does after a request, done by hand (detach, `'close'`, end the connection).
 */
function responseOn(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    process.nextTick(() => res.emit('close'));
    socket.destroySoon();
  });
  return res;
}

/**
 * Answers an upgrade request with a bare status and closes the connection: for a server that
 * is draining (the connection would outlive the process) and for requests no app sees.
 *
 * @example
 * refuseUpgrade(socket, 503, 'Service Unavailable');
 */
export function refuseUpgrade(socket: Duplex, code: number, reason: string): void {
  const text = `${code} ${reason}\n`;
  // Read and drop what the client still sends, so closing never resets the answer away.
  socket.resume();
  socket.end(
    `HTTP/1.1 ${code} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${text.length}\r\n\r\n${text}`,
  );
  // A client that never closes its side must not keep the connection.
  const timer = setTimeout(() => socket.destroy(), 5000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { defineApp } from '../core/define-app.js';
import { NgiError } from '../core/errors.js';
import type { App, Environ, StartResponse } from '../core/types.js';
import { fromNodeHandler } from './node-handler.js';

/** What ngi needs of a Node `http.Server` (structural: any `EventEmitter` server will do). */
export interface NodeServerLike {
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
  readonly listening?: boolean;
}

const NO_LISTENER = 'Not Found\n';

/**
 * The user's own `http.Server` (the one `ws`, socket.io or `@fastify/websocket` attach to), as
 * an NGI app: each request goes to the server's `'request'` listeners and each upgrade request
 * to its `'upgrade'` listeners, read when the request arrives (socket.io replaces the
 * listeners it finds when it attaches). The server itself never listens: ngi's listeners
 * (one per worker under `ngi serve`) feed it. A server with no `'upgrade'` listener serves an
 * upgrade request as an ordinary one, as Node does; one with no `'request'` listener answers
 * 404 instead of leaving the request hanging.
 *
 * Upgrades reach the listeners only from a host that has the raw connection (ngi's HTTP
 * listener, `toNodeHandler(app).upgrade`); elsewhere (uwsgi, a Fetch runtime) they are ordinary
 * requests.
 *
 * @example
 * // app.js, served by `ngi serve app.js --http :8080 --workers 4`
 * const server = http.createServer(expressApp);
 * new WebSocketServer({ server }).on('connection', (ws) => ws.send('hi'));
 * export default server;
 */
export function fromNodeServer(server: NodeServerLike): App {
  if (server.listening === true) {
    throw new NgiError(
      'NGI_ERR_APP_LOAD',
      'the exported server is already listening: export it without calling listen() (ngi listens for it)',
    );
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (server.listenerCount('request') > 0) {
      server.emit('request', req, res);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(NO_LISTENER);
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    server.emit('upgrade', req, socket, head);
  };
  const plain = fromNodeHandler(onRequest);
  const upgrading = fromNodeHandler(onRequest, { upgrade: onUpgrade });
  return defineApp((environ: Environ, startResponse: StartResponse) =>
    server.listenerCount('upgrade') > 0
      ? upgrading(environ, startResponse)
      : plain(environ, startResponse),
  );
}

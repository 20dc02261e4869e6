import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { ErrorStream } from '../../src/types.js';

/** A node:http server on 127.0.0.1 and a free port, listening. */
export async function listen(handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const server = createServer(handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Closes a server and every connection it still holds (kept-alive ones too). */
export function close(server: Server): void {
  server.closeAllConnections();
  server.close();
}

/** An `ngi.errors` that keeps its lines for assertions. */
export function logSink(): ErrorStream & { lines: string[] } {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

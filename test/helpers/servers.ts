import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { ErrorStream } from '../../src/core/types.js';

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

/** What `sendRequest` saw. */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One request with the path sent exactly as written (a URL parser, supertest's included,
 * would normalise `%2e%2e` on the way); a body given in `parts` goes out chunked.
 */
export function sendRequest(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; parts?: Buffer[] } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    for (const part of options.parts ?? []) req.write(part);
    req.end();
  });
}

/**
 * How a request settled within `ms`: its reply, the error that cut it, or `'still open'`, so a
 * hang fails an assertion by name instead of the test's own timeout.
 */
export async function settleWithin<T>(
  pending: Promise<T>,
  ms = 5000,
): Promise<T | Error | 'still open'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still open'>(
    (resolve) => (timer = setTimeout(resolve, ms, 'still open')),
  );
  try {
    return await Promise.race([pending.catch((error: unknown) => error as Error), late]);
  } finally {
    clearTimeout(timer);
  }
}

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { toNodeHandler } from '../../adapters/node.js';
import type { App, ErrorStream } from '../../src/core/types.js';

/** An `ngi.errors` that keeps its lines for assertions. */
export function logLines(): ErrorStream & { lines: string[] } {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

export interface Served {
  server: Server;
  port: number;
  log: ErrorStream & { lines: string[] };
  close(): void;
}

/** An NGI app behind `toNodeHandler` on 127.0.0.1, its log kept. */
export async function serveApp(
  app: App,
  options: { multiprocess?: boolean } = {},
): Promise<Served> {
  const log = logLines();
  const server = createServer(toNodeHandler(app, { errors: log, ...options })).listen(
    0,
    '127.0.0.1',
  );
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    log,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Resolves after `ms`, for letting a producer run (never a timing assertion). */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A client on a raw socket, for what only the wire bytes show: nothing sent yet, the framing,
 * a response cut short. It keeps what it receives (or only counts, past `keepUpTo` bytes).
 */
export class RawClient {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  /** Bytes received in all. */
  received = 0;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private readonly keepUpTo: number;
  private waiters = new Set<() => void>();
  isClosed = false;

  private constructor(socket: Socket, keepUpTo: number) {
    this.socket = socket;
    this.keepUpTo = keepUpTo;
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.keptBytes < this.keepUpTo) {
        this.kept.push(chunk);
        this.keptBytes += chunk.length;
      }
      for (const wake of this.waiters) wake();
    });
    // A reset is how an aborted response ends: it is an outcome here, not a test error.
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        for (const wake of this.waiters) wake();
        resolve();
      }),
    );
    // Bounded: no test waits on a silent server for ever.
    socket.setTimeout(20_000, () => socket.destroy());
  }

  static async connect(port: number, keepUpTo = 1 << 20): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new RawClient(socket, keepUpTo);
  }

  /** What was kept, as Latin-1 text (one char per byte). */
  get text(): string {
    return Buffer.concat(this.kept).toString('latin1');
  }

  send(data: string): void {
    this.socket.write(data, 'latin1');
  }

  /** Waits until `done(text)` holds or the connection closes; throws after `ms`. */
  async until(done: (text: string) => boolean, ms = 10_000): Promise<string> {
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      this.socket.destroy();
    }, ms);
    try {
      while (!done(this.text) && !this.isClosed) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            this.waiters.delete(wake);
            resolve();
          };
          this.waiters.add(wake);
        });
      }
    } finally {
      clearTimeout(deadline);
    }
    if (timedOut) throw new Error(`no answer within ${ms} ms; got ${JSON.stringify(this.text)}`);
    return this.text;
  }

  /**
   * Waits for the server to close the connection and returns what came. The default limit is
   * under Node's 5 s keep-alive timeout: an end within it is the server closing on purpose.
   */
  async end(ms = 3000): Promise<string> {
    return this.until(() => false, ms);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Sends one request on a fresh connection and returns everything until the server closes. */
export async function rawRequest(port: number, request: string): Promise<string> {
  const client = await RawClient.connect(port);
  client.send(request);
  return client.end();
}

export interface ParsedResponse {
  statusLine: string;
  status: number;
  /** Lower-case names, every value kept in order. */
  headers: Map<string, string[]>;
  body: string;
}

/** Splits one response (the first in `text`) into status line, headers and the bytes after. */
export function parseResponse(text: string): ParsedResponse {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return {
    statusLine: statusLine!,
    status: Number(statusLine!.split(' ')[1]),
    headers,
    body: text.slice(end + 4),
  };
}

/** Decodes a chunked body; `complete` says whether the last (zero) chunk arrived. */
export function dechunk(body: string): { data: string; complete: boolean; rest: string } {
  let data = '';
  let at = 0;
  for (;;) {
    const line = body.indexOf('\r\n', at);
    if (line === -1) return { data, complete: false, rest: '' };
    const size = parseInt(body.slice(at, line), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size at ${at}: ${JSON.stringify(body)}`);
    if (size === 0) {
      const after = body.indexOf('\r\n', line + 2);
      return { data, complete: after !== -1, rest: body.slice(after + 2) };
    }
    if (body.length < line + 2 + size + 2) {
      return { data: data + body.slice(line + 2, line + 2 + size), complete: false, rest: '' };
    }
    data += body.slice(line + 2, line + 2 + size);
    at = line + 2 + size + 2;
  }
}

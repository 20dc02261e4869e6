import { connect } from 'node:net';

/** What came back on a uwsgi connection: the raw bytes, and whether the server closed it. */
export interface RawExchange {
  bytes: Buffer;
  /** The server closed (or reset) the connection. */
  closed: boolean;
}

/**
 * Sends bytes to a listener (in one write, or `split` bytes at a time) and collects everything
 * until the server closes the connection or `timeoutMs` passes.
 */
export function sendRaw(
  port: number,
  data: Buffer,
  options: {
    split?: number;
    /** With `split`: only the first `splitUntil` bytes are split, the rest goes in one write. */
    splitUntil?: number;
    timeoutMs?: number;
    halfClose?: boolean;
  } = {},
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 5000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', async () => {
      const split = options.split ?? 0;
      if (split > 0) {
        const until = Math.min(options.splitUntil ?? data.length, data.length);
        for (let i = 0; i < until && !socket.destroyed; i += split) {
          socket.write(data.subarray(i, Math.min(i + split, until)));
          await new Promise((r) => setImmediate(r));
        }
        if (until < data.length && !socket.destroyed) socket.write(data.subarray(until));
      } else {
        socket.write(data);
      }
      if (options.halfClose) socket.end();
    });
  });
}

/** Splits a raw HTTP/1.x response into status line, headers and body. */
export function parseHttpResponse(bytes: Buffer): {
  statusLine: string;
  headers: Array<[string, string]>;
  body: Buffer;
} {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1)
    throw new Error(`no end of head in ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`);
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const headers = lines.slice(1).map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  return { statusLine: lines[0]!, headers, body: bytes.subarray(end + 4) };
}

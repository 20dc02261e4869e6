import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/*
 * The kit's HTTP client: what a user's client would see, on the wire. Node's own client for
 * framing (chunked, sized, close-delimited, and whether a response ended complete), a raw
 * socket where the bytes themselves are the point (no body after a HEAD, nothing past a
 * Content-Length). Every wait is bounded: a host that hangs fails a case, never the run.
 */

/** Where the host under test serves the app: origin and the path of its mount point. */
export interface Base {
  host: string;
  port: number;
  /** The mount point as the client spells it: `''` at the root, `/legacy` under a mount. */
  path: string;
  /** `https:`: the kit speaks HTTP/1.1 over TLS, trusting `ca` (else the system's roots). */
  tls: boolean;
  ca: string | Buffer | undefined;
}

export function parseBase(url: string, ca?: string | Buffer): Base {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`runConformance: start() must give an http: or https: URL (got ${url})`);
  }
  const tls = parsed.protocol === 'https:';
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: Number(parsed.port || (tls ? 443 : 80)),
    path: parsed.pathname.replace(/\/+$/, ''),
    tls,
    ca,
  };
}

/** A raw connection to the host: TCP, or TLS for an https: base. */
function open(base: Base): Socket {
  if (!base.tls) return connect(base.port, base.host);
  return tlsConnect({ host: base.host, port: base.port, ca: base.ca, ALPNProtocols: ['http/1.1'] });
}

export interface WireRequest {
  method?: string;
  /** Appended to the mount point exactly as written: `%2F` and `%FF` go out as they are. */
  path: string;
  /** Pairs, so a header can be sent more than once. */
  headers?: Array<[string, string]>;
  /** A sized body, or parts sent with `Transfer-Encoding: chunked`. */
  body?: Uint8Array | string | Uint8Array[];
  /** Called with each body chunk as it arrives (a streaming case steers its app from here). */
  onData?: (chunk: Buffer, received: number) => void;
  /** Called once the response head is in; destroying `socket` is a client going away. */
  onResponse?: (response: IncomingMessage, socket: Socket) => void;
  timeoutMs: number;
}

/** What the client saw. `complete` is false for a response cut before its framing ended. */
export interface WireResponse {
  status: number;
  statusMessage: string;
  /** As received: names in their case, repeats kept. */
  rawHeaders: Array<[string, string]>;
  body: Buffer;
  complete: boolean;
  /** The client's error, if the exchange failed (reset, timeout, parse error). */
  error: string | undefined;
}

/** Values of a header, every time it came, in order. */
export function headerValues(response: WireResponse, name: string): string[] {
  const lower = name.toLowerCase();
  return response.rawHeaders.filter(([key]) => key.toLowerCase() === lower).map(([, v]) => v);
}

/** One request on a fresh connection; resolves (never rejects) with what the client saw. */
export function send(base: Base, request: WireRequest): Promise<WireResponse> {
  return new Promise((resolve) => {
    const seen: WireResponse = {
      status: 0,
      statusMessage: '',
      rawHeaders: [],
      body: Buffer.alloc(0),
      complete: false,
      error: undefined,
    };
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      seen.body = Buffer.concat(chunks);
      if (error !== undefined && seen.error === undefined) seen.error = error;
      req.destroy();
      resolve(seen);
    };
    // Node adds no Host of its own to headers given as an array.
    const flat: string[] = ['Host', authority(base)];
    const body = request.body;
    const parts = Array.isArray(body) ? body : undefined;
    const sized = Array.isArray(body) ? undefined : body;
    for (const [name, value] of request.headers ?? []) flat.push(name, value);
    if (sized !== undefined) flat.push('Content-Length', String(Buffer.byteLength(sized)));
    if (parts !== undefined) flat.push('Transfer-Encoding', 'chunked');
    const req = (base.tls ? httpsRequest : httpRequest)({
      ...(base.tls ? { ca: base.ca } : {}),
      host: base.host,
      port: base.port,
      method: request.method ?? 'GET',
      path: base.path + request.path || '/',
      headers: flat,
      agent: false,
    });
    const timer = setTimeout(
      () => finish(`no complete response within ${request.timeoutMs} ms`),
      request.timeoutMs,
    );
    req.on('error', (error) => finish(error.message));
    req.on('response', (res) => {
      seen.status = res.statusCode ?? 0;
      seen.statusMessage = res.statusMessage ?? '';
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        seen.rawHeaders.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
      }
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        request.onData?.(chunk, received);
      });
      res.on('end', () => {
        seen.complete = res.complete;
        finish();
      });
      res.on('error', (error) => finish(error.message));
      res.on('close', () => {
        seen.complete = res.complete;
        finish(res.complete ? undefined : 'the connection closed before the response was complete');
      });
      request.onResponse?.(res, res.socket);
    });
    if (parts !== undefined) for (const part of parts) req.write(part);
    req.end(sized);
  });
}

/** What a raw exchange gave: the bytes, split at the end of the head. */
export interface RawResponse {
  head: string;
  /** Everything after the head, until the server closed the connection. */
  after: Buffer;
  status: number;
  error: string | undefined;
}

/**
 * Writes `text` (a whole request, `Connection: close`) on a raw socket and reads until the
 * server closes, so every byte the host sent is counted.
 */
export function sendRaw(base: Base, text: string, timeoutMs: number): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = open(base);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const bytes = Buffer.concat(chunks);
      const end = bytes.indexOf('\r\n\r\n');
      const head =
        end === -1 ? bytes.toString('latin1') : bytes.subarray(0, end).toString('latin1');
      const match = /^HTTP\/\d\.\d (\d{3})/.exec(head);
      resolve({
        head,
        after: end === -1 ? Buffer.alloc(0) : bytes.subarray(end + 4),
        status: match ? Number(match[1]) : 0,
        error: error ?? (end === -1 ? 'no response head' : undefined),
      });
    };
    const timer = setTimeout(
      () => finish(`the connection stayed open ${timeoutMs} ms after a Connection: close request`),
      timeoutMs,
    );
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    socket.write(text, 'latin1');
  });
}

/** The Host header for `base`: IPv6 addresses in brackets. */
export function authority(base: Base): string {
  return base.host.includes(':') ? `[${base.host}]:${base.port}` : `${base.host}:${base.port}`;
}

/** The target of a request for a raw exchange: the mount point and `path`, origin-form. */
export function rawTarget(base: Base, path: string): string {
  return base.path + path || '/';
}

/** Resolves with `promise`'s value, or with `fallback` after `ms` (the timer never holds the process). */
export function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(fallback);
      },
    );
  });
}

/** A promise and the function that settles it: how a case's app and its client meet. */
export interface Gate<T = void> {
  promise: Promise<T>;
  open(value: T): void;
  readonly opened: boolean;
}

export function gate<T = void>(): Gate<T> {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  const result = {
    promise,
    opened: false,
    open(value: T) {
      result.opened = true;
      open(value);
    },
  };
  return result;
}

/** Waits until `read()` stops changing for five looks 50 ms apart, at most `ms`; its last value. */
export async function settled(read: () => number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let last = -1;
  let still = 0;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = read();
    if (now !== last) {
      last = now;
      still = 0;
    } else if (++still >= 5) return now;
  }
  return read();
}

/** Sends a GET on a raw socket and destroys it once `after` resolves or the first byte arrives. */
export function abandon(
  base: Base,
  path: string,
  after: Promise<unknown> | 'first-byte',
  headers: Array<[string, string]>,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve) => {
    const socket = open(base);
    let done = false;
    const leave = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(leave, timeoutMs);
    socket.on('error', leave);
    socket.on('close', leave);
    if (after === 'first-byte') socket.once('data', leave);
    else after.then(leave, leave);
    const lines = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(
      `GET ${rawTarget(base, path)} HTTP/1.1\r\nHost: ${authority(base)}\r\n${lines}\r\n`,
      'latin1',
    );
  });
}

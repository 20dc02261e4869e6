// The cases of the identical-behaviour matrix, and how one is sent and observed. Plain cases
// go through supertest. Four kinds need the wire itself and use node:http directly: raw
// paths (a URL parser would normalise `%2e%2e` before it is sent), a chunked request body,
// a response watched chunk by chunk, and a client that leaves mid-stream.
import { createHash } from 'node:crypto';
import {
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import supertest from 'supertest';
import { nextId, observed, openGate } from './_side-channel.js';

/** A server under test: where it listens and where the reference app sits in its URL space. */
export interface Target {
  origin: string;
  /** `''` at the root, `/legacy` or `/mnt` under a mount. */
  mount: string;
}

export interface Case {
  name: string;
  /** Relative to the mount; `''` is the mount point itself without a trailing slash. */
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Sent with Transfer-Encoding: chunked, one write per part. */
  chunked?: Buffer[];
  multipart?: {
    fields: Record<string, string>;
    files: Array<{ field: string; name: string; bytes: Buffer }>;
  };
  kind?: 'raw' | 'stream' | 'abort';
}

/** What a user would notice of a response, with what is by nature per-connection taken out. */
export interface Observation {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
  firstChunk?: string;
  app?: string;
}

/**
 * Headers not compared, with the reason:
 * - `date`: the clock.
 * - `connection`, `keep-alive`: hop-by-hop, set by whichever server holds the socket (Fastify
 *   sets a 72 s keep-alive, node:http 5 s), never by the app.
 */
const EXCLUDED = new Set(['date', 'connection', 'keep-alive']);

/**
 * An empty body framed as `Content-Length: 0` or as an empty chunked body: the client gets
 * the same nothing either way (@hono/node-server chunks a null-body Response, ngi counts it).
 */
function normaliseEmpty(observation: Observation): Observation {
  const headers = observation.headers;
  if (
    observation.body === '' &&
    (headers['content-length'] === '0' || headers['transfer-encoding'] === 'chunked')
  ) {
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    headers['(framing)'] = 'empty';
  }
  return observation;
}

/** A byte pattern, so a shifted or truncated copy shows. */
export function pattern(size: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

export const FIVE_MB = pattern(5 * 1024 * 1024, 7);

export const cases: Case[] = [
  { name: 'text GET', path: '/text' },
  { name: 'JSON GET', path: '/json' },
  { name: 'unicode query', path: '/query?q=%C3%BC%E2%9C%93&x=1&x=2&empty=' },
  { name: 'path with %2F', path: '/path/a%2Fb', kind: 'raw' },
  { name: 'path with %20', path: '/path/a%20b', kind: 'raw' },
  { name: 'UTF-8 path', path: '/path/%C3%BC%E2%9C%93', kind: 'raw' },
  { name: 'path with %2e%2e', path: '/path/a/%2e%2e/b', kind: 'raw' },
  { name: 'mount root, no slash', path: '' },
  { name: 'mount root, slash', path: '/' },
  {
    name: 'POST JSON echo',
    path: '/echo-json',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hello: 'wörld', n: [1, 2] }),
  },
  {
    name: 'POST urlencoded',
    path: '/form',
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'a=1&b=%C3%BC&c=x+y',
  },
  {
    name: 'POST 5 MB binary',
    path: '/binary',
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: FIVE_MB,
  },
  {
    name: 'chunked request body',
    path: '/binary',
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    chunked: [pattern(1000, 1), pattern(70_000, 2), pattern(3, 3)],
  },
  {
    name: 'multipart upload',
    path: '/upload',
    method: 'POST',
    multipart: {
      fields: { title: 'ünï' },
      files: [
        { field: 'doc', name: 'a.bin', bytes: pattern(200_000, 9) },
        { field: 'note', name: 'n.txt', bytes: Buffer.from('a note\n') },
      ],
    },
  },
  { name: 'stream: first chunk before last', path: '/stream', kind: 'stream' },
  { name: 'server-sent events', path: '/sse', kind: 'stream' },
  { name: 'three Set-Cookie', path: '/cookies' },
  { name: 'status 299', path: '/status/299' },
  { name: 'status 418', path: '/status/418' },
  { name: 'status 599', path: '/status/599' },
  { name: '204', path: '/nocontent' },
  { name: '304 from If-None-Match', path: '/etag', headers: { 'if-none-match': '"v1"' } },
  { name: 'HEAD on a streamed route', path: '/chunks', method: 'HEAD' },
  { name: 'redirect', path: '/redirect' },
  { name: '404 inside the mount', path: '/missing' },
  { name: 'thrown error: 500', path: '/throw' },
  { name: '20 MB response', path: '/big' },
  { name: 'OPTIONS', path: '/text', method: 'OPTIONS' },
  { name: 'client aborts mid-stream', path: '/abort', kind: 'abort' },
];

function url(target: Target, path: string): string {
  const full = target.mount + path;
  return full === '' ? '/' : full;
}

function headersOf(raw: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const name of Object.keys(raw).sort()) {
    if (!EXCLUDED.has(name)) kept[name] = raw[name]!;
  }
  return kept;
}

/** Text bodies as text; anything large or binary by length and sha256. */
function bodyOf(bytes: Buffer): string {
  if (bytes.length > 4096 || bytes.includes(0)) {
    return `${bytes.length} bytes, sha256 ${createHash('sha256').update(bytes).digest('hex')}`;
  }
  return bytes.toString('utf8');
}

function withId(path: string, id: string): string {
  return path + (path.includes('?') ? '&' : '?') + 'id=' + id;
}

/** Sends one case and returns what the client (and, for aborts, the app) saw. */
export async function run(target: Target, c: Case): Promise<Observation> {
  return normaliseEmpty(await send(target, c));
}

async function send(target: Target, c: Case): Promise<Observation> {
  if (c.kind === 'raw' || c.chunked !== undefined) return viaHttp(target, c, url(target, c.path));
  if (c.kind === 'stream') return watchStream(target, c);
  if (c.kind === 'abort') return abortMidStream(target, c);
  const agent = supertest(target.origin);
  const method = (c.method ?? 'GET').toLowerCase() as 'get';
  let req = agent[method](url(target, c.path)).redirects(0);
  for (const [name, value] of Object.entries(c.headers ?? {})) req = req.set(name, value);
  if (c.multipart !== undefined) {
    for (const [name, value] of Object.entries(c.multipart.fields)) req = req.field(name, value);
    for (const file of c.multipart.files) req = req.attach(file.field, file.bytes, file.name);
  } else if (c.body !== undefined) req = req.send(c.body);
  const res = await req.buffer(true).parse((response, done) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('end', () => done(null, Buffer.concat(chunks)));
  });
  return {
    status: res.status,
    headers: headersOf(res.headers),
    body: bodyOf(Buffer.isBuffer(res.body) ? res.body : Buffer.alloc(0)),
  };
}

function viaHttp(target: Target, c: Case, path: string): Promise<Observation> {
  const { hostname, port } = new URL(target.origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: hostname, port, path, method: c.method ?? 'GET', headers: c.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            headers: headersOf(res.headers),
            body: bodyOf(Buffer.concat(chunks)),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (c.chunked !== undefined) for (const part of c.chunked) req.write(part);
    req.end(c.body);
  });
}

/**
 * A GET of a case under a fresh id (the app's gate and report are keyed by it); `onResponse`
 * decides when the observation is complete.
 */
function gated(
  target: Target,
  c: Case,
  onResponse: (
    res: IncomingMessage,
    id: string,
    req: ClientRequest,
    done: (o: Observation) => void,
  ) => void,
): Promise<Observation> {
  const id = nextId();
  const { hostname, port } = new URL(target.origin);
  return new Promise((resolve, reject) => {
    const path = withId(url(target, c.path), id);
    const req = httpRequest({ host: hostname, port, path, agent: false }, (res) => {
      res.on('error', (error) => {
        if (!req.destroyed) reject(error);
      });
      onResponse(res, id, req, resolve);
    });
    // Destroying the request is how the abort case leaves: not an error then.
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
    req.end();
  });
}

/** The first chunk must reach the client while the app still waits to produce the last. */
function watchStream(target: Target, c: Case): Promise<Observation> {
  return gated(target, c, (res, id, _req, done) => {
    const chunks: Buffer[] = [];
    let first: string | undefined;
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (first === undefined) {
        first = chunk.toString('utf8');
        openGate(id);
      }
    });
    res.on('end', () =>
      done({
        status: res.statusCode!,
        headers: headersOf(res.headers),
        body: Buffer.concat(chunks).toString('utf8'),
        firstChunk: first,
      }),
    );
  });
}

/** The client leaves after the first chunk; the app must notice. */
function abortMidStream(target: Target, c: Case): Promise<Observation> {
  return gated(target, c, (res, id, req, done) => {
    res.once('data', (chunk: Buffer) => {
      req.destroy();
      void observed(id).then((app) => {
        // Whatever happens next, the app's part of the exchange must be over.
        openGate(id);
        done({
          status: res.statusCode!,
          headers: headersOf(res.headers),
          body: '',
          firstChunk: chunk.toString('utf8'),
          app,
        });
      });
    });
  });
}

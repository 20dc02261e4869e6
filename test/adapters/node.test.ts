import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import busboy from 'busboy';
import express from 'express';
import multer from 'multer';
import { fromNodeHandler, toNodeHandler, type NodeHandler } from '../../adapters/node.js';
import { mount } from '../../src/middleware/mount.js';
import type { App, Chunk } from '../../src/core/types.js';
import { close, logSink } from '../helpers/servers.js';

async function listen(handler: RequestListener): Promise<Server> {
  const server = createServer(handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/** An NGI middleware that wraps `startResponse`: the Node handler below must be emulated. */
const wrap =
  (inner: App): App =>
  (environ, startResponse) =>
    inner(environ, (status, headers, excInfo) => startResponse(status, headers, excInfo));

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * What the app tells the test beside the response (events on `req`/`res`), keyed by the
 * `x-probe` request header, and gates the test opens to let the app go on.
 */
class Probes {
  private readonly events = new Map<string, string[]>();
  private readonly watchers = new Map<string, () => void>();
  private readonly gates = new Map<string, { promise: Promise<void>; open: () => void }>();

  note(req: IncomingMessage, event: string): void {
    const key = String(req.headers['x-probe']);
    let list = this.events.get(key);
    if (list === undefined) this.events.set(key, (list = []));
    list.push(event);
    this.watchers.get(key)?.();
  }

  /** Resolves with the events once all `wanted` are in, or after `ms` with those that came. */
  async seen(key: string, wanted: string[], ms = 3000): Promise<string[]> {
    const has = () => wanted.every((event) => this.events.get(key)?.includes(event));
    if (!has()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.watchers.set(key, () => {
          if (!has()) return;
          clearTimeout(timer);
          resolve();
        });
      });
      this.watchers.delete(key);
    }
    return [...(this.events.get(key) ?? [])].sort();
  }

  private gate(key: string) {
    let gate = this.gates.get(key);
    if (gate === undefined) {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      this.gates.set(key, (gate = { promise, open }));
    }
    return gate;
  }

  /** For the app: waits until the test opens the gate of this request. */
  wait(req: IncomingMessage): Promise<void> {
    return this.gate(String(req.headers['x-probe'])).promise;
  }

  open(key: string): void {
    this.gate(key).open();
  }
}

const probes = new Probes();

/** The reference Express app. Served natively and through ngi both ways, it must answer the same. */
function expressApp(dir: string): express.Express {
  const app = express();
  // Express's own error page without a stack trace (whose frames differ by caller).
  app.set('env', 'production');
  const upload = multer({ storage: multer.memoryStorage() });
  const digest = (req: IncomingMessage, done: (bytes: number, hash: string) => void) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => done(bytes, hash.digest('hex')));
  };

  app.get('/who', (req, res) => {
    res.json({
      ip: req.ip,
      protocol: req.protocol,
      secure: req.secure,
      hostname: req.hostname,
      httpVersion: req.httpVersion,
    });
  });
  app.use('/where', (req, res) => {
    res.json({ url: req.url, originalUrl: req.originalUrl, baseUrl: req.baseUrl, path: req.path });
  });
  app.post('/json', express.json(), (req, res) => res.json({ body: req.body }));
  app.post('/form', express.urlencoded({ extended: true }), (req, res) => res.json(req.body));
  app.post('/raw', express.raw({ type: '*/*', limit: '10mb' }), (req, res) => {
    res.json({ bytes: req.body.length, sha256: sha256(req.body) });
  });
  app.post('/two-parsers', express.json(), express.urlencoded({ extended: false }), (req, res) =>
    res.json({ body: req.body }),
  );
  app.post('/multer', upload.any(), (req, res) => {
    const files = (req.files as Express.Multer.File[]).map((file) => ({
      field: file.fieldname,
      name: file.originalname,
      size: file.size,
      sha256: sha256(file.buffer),
    }));
    res.json({ fields: req.body, files });
  });
  app.post('/busboy', (req, res) => {
    const parts: unknown[] = [];
    const parser = busboy({ headers: req.headers });
    parser.on('field', (name, value) => parts.push({ name, value }));
    parser.on('file', (name, stream, info) => {
      const hash = createHash('sha256');
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        hash.update(chunk);
      });
      stream.on('end', () =>
        parts.push({ name, file: info.filename, size, sha: hash.digest('hex') }),
      );
    });
    parser.on('close', () => res.json(parts));
    req.pipe(parser);
  });
  app.post('/digest', (req, res) => {
    digest(req, (bytes, hash) => res.json({ bytes, sha256: hash, complete: req.complete }));
  });
  app.get('/get-body', express.raw({ type: '*/*' }), (req, res) => {
    res.json({ bytes: Buffer.isBuffer(req.body) ? req.body.length : null });
  });
  app.get('/file', (req, res) => res.sendFile(join(dir, 'file.txt')));
  app.use('/static', express.static(dir));
  app.get('/cookies', (req, res) => {
    res.cookie('a', '1');
    res.cookie('b', '2', { httpOnly: true, path: '/' });
    res.cookie('c', '3', { expires: new Date(0), sameSite: 'lax' });
    res.send('three cookies');
  });
  app.get('/redirect', (req, res) => res.redirect('/who'));
  app.get('/status/:code', (req, res) => {
    res.status(Number(req.params.code)).send(`status ${req.params.code}`);
  });
  app.get('/status-code/:code', (req, res) => {
    // Past Express's check: Node's own validation of statusCode decides.
    res.statusCode = Number(req.params.code);
    res.end('direct');
  });
  app.get('/throw', () => {
    throw new Error('thrown in an Express handler');
  });
  app.get('/no-content', (req, res) => res.status(204).send('dropped'));
  app.get('/not-modified', (req, res) => res.status(304).send('dropped'));
  app.get('/text', (req, res) => res.type('text').send('hello'));
  app.get('/chunks', (req, res) => {
    res.type('text');
    res.write('one,');
    res.write(Buffer.from('two,'));
    res.end('three');
  });
  app.trace('/trace', (req, res) => res.type('message/http').send(`${req.method} ${req.url}`));
  app.propfind('/dav', (req, res) => {
    digest(req, (bytes) => res.status(207).type('xml').send(`<multistatus bytes="${bytes}"/>`));
  });
  app.get('/wrapped-head', (req, res) => {
    // What on-headers (compression, morgan, response-time) does: wrap writeHead.
    const writeHead = res.writeHead;
    res.writeHead = function (this: typeof res, ...args: Parameters<typeof writeHead>) {
      this.setHeader('X-Head-Seen', 'yes');
      return writeHead.apply(this, args);
    } as typeof writeHead;
    res.send('wrapped');
  });
  app.get('/write-head', (req, res) => {
    res.writeHead(202, 'Taken', ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'X-One', '1']);
    res.end();
  });
  app.get('/bad-reason', (req, res) => {
    res.statusMessage = 'split\r\nX-Injected: 1';
    res.send('never');
  });
  app.get('/sse', async (req, res) => {
    res.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    res.write('data: 1\n\n');
    await probes.wait(req);
    res.write('data: 2\n\n');
    res.end();
  });
  app.get('/events', (req, res) => {
    res.on('finish', () => probes.note(req, 'res finish'));
    res.on('close', () => probes.note(req, 'res close'));
    req.on('end', () => probes.note(req, 'req end'));
    res.send('watched');
  });
  app.post('/upload', (req, res) => {
    req.once('data', () => probes.note(req, 'req data'));
    req.on('aborted', () => probes.note(req, 'req aborted'));
    req.on('error', (error) => probes.note(req, `req error ${(error as { code?: string }).code}`));
    req.on('end', () => probes.note(req, 'req end'));
    req.on('close', () => probes.note(req, 'req close'));
    res.on('close', () => probes.note(req, 'res close'));
    req.on('end', () => res.send('uploaded'));
  });
  app.get('/endless', (req, res) => {
    const source = new Readable({
      read() {
        this.push(Buffer.alloc(16 * 1024, 'x'));
      },
    });
    source.on('close', () => probes.note(req, 'source destroyed'));
    req.on('aborted', () => probes.note(req, 'req aborted'));
    req.on('close', () => probes.note(req, 'req close'));
    res.on('close', () => probes.note(req, 'res close'));
    res.on('finish', () => probes.note(req, 'res finish'));
    res.type('text');
    pipeline(source, res, (error) => probes.note(req, `pipeline ${error ? 'failed' : 'done'}`));
  });
  return app;
}

/** A response as the client saw it. */
interface Observed {
  status: number;
  message: string;
  /** Raw header pairs but Date, sorted by name (same-named ones in wire order). */
  headers: Array<[string, string]>;
  body: Buffer;
  /** Whether `100 Continue` arrived. */
  continued?: boolean;
  /** Side-channel events the app reported. */
  events?: string[];
}

interface Request {
  method?: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  /** An array is sent as several chunks without a length (chunked). */
  body?: string | Buffer | Buffer[];
  expectContinue?: boolean;
}

function observe(response: IncomingMessage, body: Buffer): Observed {
  const headers: Array<[string, string]> = [];
  const raw = response.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'date') headers.push([raw[i]!, raw[i + 1]!]);
  }
  return {
    status: response.statusCode!,
    message: response.statusMessage!,
    headers: byName(headers),
    body,
  };
}

/** Fields of different names carry no order in HTTP; same-named ones do (a stable sort keeps it). */
function byName(headers: Array<[string, string]>): Array<[string, string]> {
  return headers.sort(([a], [b]) => a.toLowerCase().localeCompare(b.toLowerCase()));
}

/** One request on its own connection; `path` goes on the wire exactly as given. */
function send(port: number, request: Request, probe: string): Promise<Observed> {
  return new Promise((resolve, reject) => {
    const headers: OutgoingHttpHeaders = { 'x-probe': probe, ...request.headers };
    if (request.expectContinue) headers.expect = '100-continue';
    const body = request.body;
    // Node's client sends no length for a GET body unless told.
    if (body !== undefined && !Array.isArray(body))
      headers['content-length'] = Buffer.byteLength(body);
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      method: request.method ?? 'GET',
      path: request.path,
      headers,
      agent: false,
    });
    let continued = false;
    req.on('error', reject);
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const seen = observe(response, Buffer.concat(chunks));
        if (request.expectContinue) seen.continued = continued;
        resolve(seen);
      });
    });
    const write = () => {
      if (Array.isArray(body)) {
        for (const piece of body) req.write(piece);
        req.end();
      } else req.end(body);
    };
    if (request.expectContinue) {
      req.on('continue', () => {
        continued = true;
        write();
      });
      req.flushHeaders();
    } else write();
  });
}

/** `/sse`: event 2 is only sent once the client has received event 1. */
function sse(port: number, probe: string): Promise<Observed> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/sse',
      headers: { 'x-probe': probe },
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (String(Buffer.concat(chunks)) === 'data: 1\n\n') probes.open(probe);
      });
      response.on('end', () => resolve(observe(response, Buffer.concat(chunks))));
    });
    req.end();
  });
}

/** `/events`: the response, then what the app saw of `finish` and `close`. */
async function watched(port: number, probe: string): Promise<Observed> {
  const seen = await send(port, { path: '/events' }, probe);
  seen.events = await probes.seen(probe, ['res finish', 'res close']);
  return seen;
}

/** `/endless`: the client hangs up after the first body bytes; then what the app saw. */
function hangUp(port: number, probe: string): Promise<Observed> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/endless',
      headers: { 'x-probe': probe },
      agent: false,
    });
    req.on('error', () => {});
    req.on('response', (response) => {
      response.once('data', () => {
        req.destroy();
        const seen = observe(response, Buffer.alloc(0));
        probes
          .seen(probe, ['source destroyed', 'req aborted', 'req close', 'res close'])
          .then((events) => resolve({ ...seen, events }), reject);
      });
    });
    req.end();
  });
}

/** `/upload`: the client hangs up halfway through its body; then what the app saw. */
function hangUpMidUpload(port: number, probe: string): Promise<Observed> {
  const req = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/upload',
    headers: { 'x-probe': probe, 'content-length': 100_000 },
    agent: false,
  });
  req.on('error', () => {});
  req.write(Buffer.alloc(1000, 'u'));
  return probes.seen(probe, ['req data']).then(async () => {
    req.destroy();
    const events = await probes.seen(probe, ['req aborted', 'req close', 'res close']);
    return { status: 0, message: '', headers: [], body: Buffer.alloc(0), events };
  });
}

/**
 * A request written byte for byte on a raw socket (HTTP/1.0, absolute-form targets), and the
 * response as raw as it came: chunk framing included, so framing differences show.
 */
const rawCase =
  (request: string) =>
  (port: number, probe: string): Promise<Observed> =>
    new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('close', () => {
        const raw = Buffer.concat(chunks);
        const split = raw.indexOf('\r\n\r\n');
        const [statusLine, ...lines] = raw.subarray(0, split).toString('latin1').split('\r\n');
        const [, code, message] = /^HTTP\/1\.\d (\d+) ?(.*)$/.exec(statusLine!)!;
        const headers = lines
          .map((line): [string, string] => [
            line.slice(0, line.indexOf(':')),
            line.slice(line.indexOf(':') + 2),
          ])
          .filter(([name]) => name.toLowerCase() !== 'date');
        resolve({
          status: Number(code),
          message: message!,
          headers: byName(headers),
          body: raw.subarray(split + 4),
        });
      });
      socket.end(request.replace('\r\n\r\n', `\r\nx-probe: ${probe}\r\n\r\n`));
    });

const boundary = '----ngi-boundary-7MA4YWxkTrZu0gW';
const upload = randomBytes(300 * 1024);
function multipart(): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nhéllo\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    upload,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}
const formType = { 'Content-Type': `multipart/form-data; boundary=${boundary}` };

/** A raw UTF-8 path: each byte as one Latin-1 char, which is how Node puts it on the wire. */
const utf8Raw = (path: string) => Buffer.from(path, 'utf8').toString('latin1');

interface Case {
  it: string;
  request?: Request;
  /** A custom exchange instead of `send(request)`. */
  run?: (port: number, probe: string) => Promise<Observed>;
  /** What a user would see on native Express, so the comparison cannot pass vacuously. */
  check: (seen: Observed) => void;
  /** A listed exclusion: what the emulated path shows instead of native's answer, and why. */
  emulated?: { because: string; check: (seen: Observed) => void };
}

/**
 * The one listed exclusion: after an explicit `writeHead()` with no length, Node frames an empty
 * body as chunked (it decides at writeHead); ngi decides when the body ends and says
 * `Content-Length: 0`. The client receives the same empty body.
 */
function emptyFraming(headers: Array<[string, string]>): Array<[string, string]> {
  return byName(
    headers.map(([name, value]): [string, string] =>
      name === 'Transfer-Encoding' && value === 'chunked' ? ['Content-Length', '0'] : [name, value],
    ),
  );
}

const json = (seen: Observed) => JSON.parse(String(seen.body)) as Record<string, unknown>;
const fileText = 'the quick brown fox jumps over the lazy dog\n'.repeat(100);
let etag = '';

const cases: Case[] = [
  {
    it: 'reports req.ip and req.protocol',
    request: { path: '/who' },
    check: (seen) =>
      assert.deepEqual(json(seen), {
        ip: '127.0.0.1',
        protocol: 'http',
        secure: false,
        hostname: '127.0.0.1',
        httpVersion: '1.1',
      }),
  },
  {
    it: 'gives req.originalUrl and req.baseUrl under mount({ "/api": ... })',
    request: { path: '/api/where/a%2Fb?x=%FF' },
    check: (seen) =>
      assert.deepEqual(json(seen), {
        url: '/a%2Fb?x=%FF',
        originalUrl: '/api/where/a%2Fb?x=%FF',
        baseUrl: '/api/where',
        path: '/a%2Fb',
      }),
  },
  {
    it: 'answers the mount point itself with a query',
    request: { path: '/api?x=1' },
    check: (seen) => assert.equal(seen.status, 404),
  },
  {
    it: 'reports req.ip below the mount point',
    request: { path: '/api/who' },
    check: (seen) => assert.equal(json(seen).ip, '127.0.0.1'),
  },
  {
    it: 'parses a JSON body with express.json',
    request: {
      method: 'POST',
      path: '/json',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ a: [1, 2], u: 'ünï' }),
    },
    check: (seen) => assert.deepEqual(json(seen), { body: { a: [1, 2], u: 'ünï' } }),
  },
  {
    it: 'parses a form with express.urlencoded',
    request: {
      method: 'POST',
      path: '/form',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'name=value&x=%C3%A9&list[]=1&list[]=2',
    },
    check: (seen) => assert.deepEqual(json(seen), { name: 'value', x: 'é', list: ['1', '2'] }),
  },
  {
    it: 'reads a 1 MB binary body with express.raw',
    request: {
      method: 'POST',
      path: '/raw',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: upload.subarray(0, 200 * 1024),
    },
    check: (seen) => assert.equal(json(seen).sha256, sha256(upload.subarray(0, 200 * 1024))),
  },
  {
    it: 'lets the second of two parsers in a row take the body the first did not want',
    request: {
      method: 'POST',
      path: '/two-parsers',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'k=v',
    },
    check: (seen) => assert.deepEqual(json(seen), { body: { k: 'v' } }),
  },
  {
    it: 'rejects malformed JSON with Express’s own 400',
    request: {
      method: 'POST',
      path: '/json',
      headers: { 'Content-Type': 'application/json' },
      body: '{"a":',
    },
    check: (seen) => assert.equal(seen.status, 400),
  },
  {
    it: 'receives a multipart upload through multer',
    request: { method: 'POST', path: '/multer', headers: formType, body: multipart() },
    check: (seen) =>
      assert.deepEqual(json(seen), {
        fields: { title: 'héllo' },
        files: [{ field: 'file', name: 'a.bin', size: upload.length, sha256: sha256(upload) }],
      }),
  },
  {
    it: 'streams a chunked multipart upload through busboy',
    request: {
      method: 'POST',
      path: '/busboy',
      headers: formType,
      body: [multipart().subarray(0, 1000), multipart().subarray(1000)],
    },
    check: (seen) => assert.equal((json(seen) as unknown as unknown[]).length, 2),
  },
  {
    it: 'reads a chunked request body to the end',
    request: {
      method: 'POST',
      path: '/digest',
      body: [Buffer.from('first '), Buffer.alloc(70_000, 'm'), Buffer.from(' last')],
    },
    check: (seen) => assert.equal(json(seen).bytes, 70_011),
  },
  {
    it: 'answers Expect: 100-continue before reading the body',
    request: { method: 'POST', path: '/digest', body: 'after continue', expectContinue: true },
    check: (seen) => {
      assert.equal(seen.continued, true);
      assert.equal(json(seen).bytes, 14);
    },
  },
  {
    it: 'sends a file with res.sendFile',
    request: { path: '/file' },
    check: (seen) => assert.equal(String(seen.body), fileText),
  },
  {
    it: 'sends a byte range of a file with res.sendFile',
    request: { path: '/file', headers: { Range: 'bytes=4-8' } },
    check: (seen) => {
      assert.equal(seen.status, 206);
      assert.equal(String(seen.body), 'quick');
    },
  },
  {
    it: 'serves a byte range with express.static',
    request: { path: '/static/file.txt', headers: { Range: 'bytes=-4' } },
    check: (seen) => assert.equal(String(seen.body), 'dog\n'),
  },
  {
    it: 'answers 304 to If-None-Match with express.static',
    run: (port, probe) =>
      send(port, { path: '/static/file.txt', headers: { 'If-None-Match': etag } }, probe),
    check: (seen) => assert.equal(seen.status, 304),
  },
  {
    it: 'keeps three Set-Cookie headers',
    request: { path: '/cookies' },
    check: (seen) => assert.equal(seen.headers.filter(([name]) => name === 'Set-Cookie').length, 3),
  },
  {
    it: 'redirects with res.redirect',
    request: { path: '/redirect', headers: { Accept: 'text/html' } },
    check: (seen) => assert.equal(seen.status, 302),
  },
  ...[299, 418, 599].map((code) => ({
    it: `sends the unusual status ${code}`,
    request: { path: `/status/${code}` },
    check: (seen: Observed) => assert.equal(seen.status, code),
  })),
  ...['1000', '99', '200.5'].map((code) => ({
    it: `answers Express’s own 500 to res.status(${code})`,
    request: { path: `/status/${code}` },
    check: (seen: Observed) => assert.equal(seen.status, 500),
  })),
  ...[
    ['1000', 500],
    ['99', 500],
    ['201.7', 201],
  ].map(([code, status]) => ({
    it: `applies Node’s own rules to res.statusCode = ${code}`,
    request: { path: `/status-code/${code}` },
    check: (seen: Observed) => assert.equal(seen.status, status),
  })),
  {
    it: 'sends the head through a writeHead that middleware wrapped',
    request: { path: '/wrapped-head' },
    check: (seen) => assert.ok(seen.headers.some(([name]) => name === 'X-Head-Seen')),
  },
  {
    it: 'applies writeHead’s own rules to a flat header array and a reason phrase',
    request: { path: '/write-head' },
    // Node 22 changed how a flat array merges with headers set before (nodejs/node#50394):
    // the emulation follows the Node it runs on, so only the native answer is the reference.
    check: (seen) => {
      assert.equal(seen.message, 'Taken');
      assert.ok(seen.headers.some(([name, value]) => name === 'Set-Cookie' && value === 'b=2'));
    },
  },
  {
    it: 'refuses a reason phrase with CR LF (Express’s own 500, nothing injected)',
    request: { path: '/bad-reason' },
    check: (seen) => {
      assert.equal(seen.status, 500);
      assert.ok(!seen.headers.some(([name]) => name === 'X-Injected'));
    },
  },
  {
    it: 'answers a throwing handler with Express’s own 500',
    request: { path: '/throw' },
    check: (seen) => {
      assert.equal(seen.status, 500);
      assert.doesNotMatch(String(seen.body), /thrown in/);
    },
  },
  {
    it: 'answers an unknown route with Express’s own 404',
    request: { path: '/nowhere' },
    check: (seen) => assert.equal(seen.status, 404),
  },
  {
    it: 'answers HEAD with the headers of GET and no body',
    request: { method: 'HEAD', path: '/text' },
    check: (seen) => assert.equal(seen.body.length, 0),
  },
  {
    it: 'sends 204 without a body',
    request: { path: '/no-content' },
    check: (seen) => assert.equal(seen.status, 204),
  },
  {
    it: 'sends 304 without a body',
    request: { path: '/not-modified' },
    check: (seen) => assert.equal(seen.status, 304),
  },
  {
    it: 'streams a response written in pieces',
    request: { path: '/chunks' },
    check: (seen) => assert.equal(String(seen.body), 'one,two,three'),
  },
  {
    it: 'routes TRACE',
    request: { method: 'TRACE', path: '/trace?q' },
    check: (seen) => assert.equal(String(seen.body), 'TRACE /trace?q'),
  },
  {
    it: 'answers OPTIONS with Express’s Allow list',
    request: { method: 'OPTIONS', path: '/text' },
    check: (seen) => assert.equal(String(seen.body), 'GET, HEAD'),
  },
  {
    it: 'routes the WebDAV method PROPFIND with a body',
    request: { method: 'PROPFIND', path: '/dav', body: '<propfind/>' },
    check: (seen) => assert.equal(seen.status, 207),
  },
  {
    it: 'reads the body of a GET',
    request: { path: '/get-body', headers: { 'Content-Type': 'text/plain' }, body: 'abc' },
    check: (seen) => assert.deepEqual(json(seen), { bytes: 3 }),
  },
  ...['/a%2Fb', '/%2e%2e/x', '/../x', '/%FF%fe', '/caf%C3%A9/%C3%BC', '/a?b=%2F&c'].map((path) => ({
    it: `hands the path ${JSON.stringify(path)} to the app exactly as sent`,
    request: { path: `/where${path}` },
    check: (seen: Observed) => assert.equal(json(seen).originalUrl, `/where${path}`),
  })),
  {
    it: 'hands a raw path below the mount point to the app exactly as sent',
    request: { path: '/api/where/%2e%2e/a%2Fb/%C3%BC%FF' },
    check: (seen) => assert.equal(json(seen).url, '/%2e%2e/a%2Fb/%C3%BC%FF'),
  },
  {
    it: 'leaves raw UTF-8 bytes in a path to Node’s own 400',
    request: { path: utf8Raw('/where/café') },
    check: (seen) => assert.equal(seen.status, 400),
  },
  {
    it: 'streams to an HTTP/1.0 client without chunked framing',
    run: rawCase('GET /chunks HTTP/1.0\r\n\r\n'),
    check: (seen) => assert.equal(String(seen.body), 'one,two,three'),
  },
  {
    it: 'tells an HTTP/1.0 client its version in req.httpVersion',
    run: rawCase('GET /who HTTP/1.0\r\n\r\n'),
    check: (seen) => assert.equal(json(seen).httpVersion, '1.0'),
  },
  {
    it: 'hands an absolute-form target to the app as sent',
    run: rawCase(
      'GET http://127.0.0.1/where/a%2Fb?q HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    ),
    check: (seen) => assert.equal(json(seen).originalUrl, 'http://127.0.0.1/where/a%2Fb?q'),
    emulated: {
      because: 'REQUEST_URI is origin-form (as nginx passes it): an environ has no origin to give',
      check: (seen) => assert.equal(json(seen).originalUrl, '/where/a%2Fb?q'),
    },
  },
  {
    it: 'hands an absolute-form target below the mount point to the app as sent',
    run: rawCase(
      'GET http://127.0.0.1/api/where/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    ),
    check: (seen) => assert.equal(json(seen).url, 'http://127.0.0.1/x'),
    emulated: {
      because: 'REQUEST_URI is origin-form (as nginx passes it): an environ has no origin to give',
      check: (seen) => assert.equal(json(seen).originalUrl, '/api/where/x'),
    },
  },
  {
    it: 'delivers the first event of a stream before the app writes the last',
    run: sse,
    check: (seen) => assert.equal(String(seen.body), 'data: 1\n\ndata: 2\n\n'),
  },
  {
    it: 'fires res finish and close',
    run: watched,
    check: (seen) => assert.deepEqual(seen.events, ['req end', 'res close', 'res finish']),
  },
  {
    it: 'tells the app a client hung up halfway through its upload',
    run: hangUpMidUpload,
    check: (seen) =>
      assert.deepEqual(seen.events, [
        'req aborted',
        'req close',
        'req data',
        'req error ECONNRESET',
        'res close',
      ]),
  },
  {
    it: 'tells the app a client hung up mid-stream and destroys its source stream',
    run: hangUp,
    check: (seen) =>
      assert.deepEqual(seen.events, [
        'pipeline failed',
        'req aborted',
        'req close',
        'res close',
        'source destroyed',
      ]),
  },
];

describe('an Express app answers the same natively, on the fast path and emulated', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ngi-node-'));
  writeFileSync(join(dir, 'file.txt'), fileText);
  const errors = logSink();
  const servers: Record<'native' | 'fast' | 'emulated', Server> = {} as never;
  const consoleError = console.error;
  const expressLog: unknown[] = [];

  before(async () => {
    // Express logs the errors its 500s answer: kept, not printed.
    console.error = (...args: unknown[]) => expressLog.push(args);
    const app = expressApp(dir);
    // A second instance for Express's own mounting: mounting changes an app's settings chain.
    const outer = express().set('env', 'production').use('/api', expressApp(dir));
    const isApi = (url = '') => /^(https?:\/\/[^/]*)?\/api([/?]|$)/.test(url);
    servers.native = await listen((req, res) => (isApi(req.url) ? outer : app)(req, res));
    const ngi = mount({ '/api': fromNodeHandler(app), '/': fromNodeHandler(app) });
    servers.fast = await listen(toNodeHandler(ngi, { errors }) as RequestListener);
    servers.emulated = await listen(toNodeHandler(wrap(ngi), { errors }) as RequestListener);
    const head = await send(portOf(servers.native), { path: '/static/file.txt' }, 'etag');
    etag = head.headers.find(([name]) => name === 'ETag')![1];
  });
  after(() => {
    console.error = consoleError;
    for (const server of Object.values(servers)) close(server);
    rmSync(dir, { recursive: true, force: true });
  });

  cases.forEach((c, index) => {
    it(c.it, { timeout: 20_000 }, async () => {
      const exchange = (way: keyof typeof servers) => {
        const port = portOf(servers[way]);
        const probe = `${way}:${index}`;
        return c.run ? c.run(port, probe) : send(port, c.request!, probe);
      };
      const expected = await exchange('native');
      c.check(expected);
      // Bodies compared as Latin-1 text: byte for byte, and a readable diff.
      const view = (seen: Observed) => ({
        ...seen,
        headers: seen.body.length === 0 ? emptyFraming(seen.headers) : seen.headers,
        body: seen.body.toString('latin1'),
      });
      assert.deepEqual(view(await exchange('fast')), view(expected), 'fast path');
      if (c.emulated === undefined) {
        assert.deepEqual(view(await exchange('emulated')), view(expected), 'emulated');
      } else c.emulated.check(await exchange('emulated'));
    });
  });
});

/** A raw HTTP/1.1 exchange: everything the server sent until it closed the connection. */
function rawRequest(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.end(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  });
}

/** Whether a raw response arrived whole by its own framing (chunked or Content-Length). */
function complete(raw: string): boolean {
  const split = raw.indexOf('\r\n\r\n');
  if (split === -1) return false;
  const head = raw.slice(0, split).toLowerCase();
  const body = raw.slice(split + 4);
  if (head.includes('transfer-encoding: chunked')) return body.endsWith('0\r\n\r\n');
  const length = /content-length: (\d+)/.exec(head);
  return length !== null && body.length === Number(length[1]);
}

describe('a plain Node handler’s writeHead follows the rules of the Node it runs on', () => {
  // Each form Node accepts or refuses, on a response with and without headers set before.
  const heads: Record<string, (res: ServerResponse) => void> = {
    '/flat-fresh': (res) => res.writeHead(202, 'Taken', ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']),
    '/flat-after-set': (res) => {
      res.setHeader('Set-Cookie', ['x=0', 'y=0']);
      res.setHeader('X-Kept', 'k');
      res.writeHead(200, ['Set-Cookie', 'a=1', 'X-One', '1', 'Set-Cookie', 'b=2']);
    },
    '/nested': (res) =>
      res.writeHead(200, [
        ['X-N', '1'],
        ['X-N', '2'],
      ] as never),
    '/record-list': (res) => res.writeHead(200, { 'X-L': ['1', '2'], 'X-P': 'p' }),
    '/odd-fresh': (res) => res.writeHead(200, ['X-Odd', '1', 'X-Lonely']),
    '/odd-after-set': (res) => {
      res.setHeader('X-Kept', 'k');
      res.writeHead(200, ['X-Odd', '1', 'X-Lonely']);
    },
    '/empty-name-after-set': (res) => {
      res.setHeader('X-Kept', 'k');
      res.writeHead(200, ['', 'v', 'X-B', '2']);
    },
    '/empty-name-fresh': (res) => res.writeHead(200, ['', 'v', 'X-B', '2']),
    '/bad-value': (res) => res.writeHead(200, { 'X-Bad': 'a\r\nb' }),
    '/bad-status': (res) => res.writeHead(1000),
  };
  // A refused head is answered with the error's code, as a handler that catches it would.
  const handler: RequestListener = (req, res) => {
    try {
      heads[req.url!]!(res);
      res.end('written');
    } catch (error) {
      res.statusCode = 200;
      res.end(`refused: ${(error as { code?: string }).code}`);
    }
  };
  const servers: { native?: Server; emulated?: Server } = {};
  before(async () => {
    servers.native = await listen(handler);
    servers.emulated = await listen(
      toNodeHandler(wrap(fromNodeHandler(handler))) as RequestListener,
    );
  });
  after(() => {
    for (const server of Object.values(servers)) close(server);
  });
  for (const path of Object.keys(heads)) {
    it(path.slice(1), async () => {
      const native = await send(portOf(servers.native!), { path }, 'native');
      const emulated = await send(portOf(servers.emulated!), { path }, 'emulated');
      const view = (seen: Observed) => ({
        status: seen.status,
        message: seen.message,
        headers: seen.headers.filter(
          ([name]) => !/^(content-length|transfer-encoding|connection|keep-alive)$/i.test(name),
        ),
        body: seen.body.toString('latin1'),
      });
      assert.deepEqual(view(emulated), view(native));
    });
  }
});

describe('a broken Node handler, on the fast path and emulated', () => {
  const errors = logSink();
  const servers: Record<'fast' | 'emulated', Server> = {} as never;
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const broken: NodeHandler = async (req, res) => {
    switch (req.url) {
      case '/throw':
        throw new Error('secret detail');
      case '/reject':
        await tick();
        throw new Error('secret detail');
      case '/throw-after-head':
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('partial');
        await tick();
        throw new Error('secret detail');
      case '/reject-short':
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '100' });
        res.write('partial');
        await tick();
        throw new Error('secret detail');
    }
  };
  // The synchronous kind: a plain function, not an async one.
  const throwing: NodeHandler = (req, res) => {
    if (req.url === '/sync-after-head') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('partial');
    }
    throw new Error('secret detail');
  };
  const handler: NodeHandler = (req, res) =>
    (req.url!.startsWith('/sync') ? throwing : broken)(req, res);

  before(async () => {
    const app = mount({ '/': fromNodeHandler(handler) });
    servers.fast = await listen(toNodeHandler(app, { errors }) as RequestListener);
    servers.emulated = await listen(toNodeHandler(wrap(app), { errors }) as RequestListener);
  });
  after(() => Object.values(servers).forEach(close));

  for (const way of ['fast', 'emulated'] as const) {
    for (const path of ['/sync-throw', '/reject']) {
      it(`${way}: ${path} before writing answers a plain 500 and logs one line`, async () => {
        const logged = errors.lines.length;
        const raw = await rawRequest(portOf(servers[way]), path);
        assert.match(raw, /^HTTP\/1\.1 500 Internal Server Error\r\n/);
        assert.ok(raw.endsWith('\r\n\r\n500 Internal Server Error\n'), raw);
        assert.doesNotMatch(raw, /secret|\bat /, 'no message or stack to the client');
        assert.equal(errors.lines.length, logged + 1);
        assert.match(errors.lines.at(-1)!, /secret detail/);
        assert.equal(errors.lines.at(-1)!.split('\n').length, 2, 'one line');
      });
    }
    for (const path of ['/sync-after-head', '/throw-after-head', '/reject-short']) {
      it(`${way}: ${path} once the head is out aborts, so the client sees an incomplete response`, async () => {
        const logged = errors.lines.length;
        const raw = await rawRequest(portOf(servers[way]), path);
        // A throw in the same tick as the write may leave nothing on the wire: just as broken.
        if (path !== '/sync-after-head' || raw !== '') {
          assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
          assert.match(raw, /partial/);
        }
        assert.equal(complete(raw), false, raw);
        assert.equal(errors.lines.length, logged + 1);
      });
    }
  }
});

describe('round trips return the original', () => {
  it('fromNodeHandler(toNodeHandler(app)) is app', () => {
    const app: App = (environ, startResponse) => {
      startResponse('200 OK', []);
      return [];
    };
    assert.equal(fromNodeHandler(toNodeHandler(app)), app);
  });
  it('toNodeHandler(fromNodeHandler(handler)) is handler, an Express app too', () => {
    const app = express();
    assert.equal(toNodeHandler(fromNodeHandler(app)), app);
    const plain: NodeHandler = (req, res) => res.end();
    assert.equal(toNodeHandler(fromNodeHandler(plain)), plain);
  });
});

/** `global.gc`, switched on for this process when the runner did not pass --expose-gc. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Total listeners on an emitter, over every event name. */
function listeners(emitter: NodeJS.EventEmitter): number {
  let total = 0;
  for (const name of emitter.eventNames()) total += emitter.listenerCount(name);
  return total;
}

describe('clients that hang up mid-stream', () => {
  const errors = logSink();
  let server: Server;
  const chunk = Buffer.alloc(16 * 1024, 'x');
  const tally = { aborted: 0, returned: 0, closed: 0, twice: 0, destroyed: 0, reqClosed: 0 };

  /** An NGI app with an endless body that counts how it is finished. */
  const endless: App = (environ, startResponse) => {
    environ['ngi.signal'].addEventListener('abort', () => tally.aborted++, { once: true });
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    let returns = 0;
    let closes = 0;
    const body: AsyncIterableIterator<Chunk> & { close(): void } = {
      [Symbol.asyncIterator]: () => body,
      next: () => new Promise((resolve) => setImmediate(resolve, { done: false, value: chunk })),
      return: () => {
        if (++returns > 1) tally.twice++;
        tally.returned++;
        return Promise.resolve({ done: true, value: undefined });
      },
      close: () => {
        if (++closes > 1) tally.twice++;
        tally.closed++;
      },
    };
    return body;
  };
  /** A Node handler piping an endless stream. */
  const piping: NodeHandler = (req, res) => {
    const source = new Readable({
      read() {
        this.push(chunk);
      },
    });
    source.on('close', () => tally.destroyed++);
    req.on('close', () => tally.reqClosed++);
    pipeline(source, res, () => {});
  };

  before(async () => {
    const app = mount({
      '/ngi': endless,
      '/fast': fromNodeHandler(piping),
      '/emulated': wrap(fromNodeHandler(piping)),
    });
    server = await listen(toNodeHandler(app, { errors }) as RequestListener);
  });
  after(() => close(server));

  /** One request on a fresh connection, destroyed once the first body byte arrives. */
  const hangUp = (path: string) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect(portOf(server), '127.0.0.1');
      let seen = '';
      socket.on('data', (data) => {
        seen += data.toString('latin1');
        if (seen.includes('\r\n\r\n') && seen.length > seen.indexOf('\r\n\r\n') + 4) {
          socket.destroy();
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    });

  /** Waits (bounded) until the server has finished every request it saw. */
  async function settled(expected: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !expected(); i++) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 500; i++) {
      const open = await new Promise<number>((resolve, reject) =>
        server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      );
      if (open === 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it(
    'finishes 10,000 of them cleanly: signal, return() and close() once each, nothing leaked',
    { timeout: 120_000 },
    async () => {
      const gc = collector();
      const paths = ['/ngi', '/fast', '/emulated'];
      const unhandled: unknown[] = [];
      const warnings: Error[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('unhandledRejection', onUnhandled);
      process.on('warning', onWarning);
      let sent = 0;
      const run = async (total: number) => {
        const workers = Array.from({ length: 16 }, async () => {
          while (sent < total) await hangUp(paths[sent++ % 3]!);
        });
        await Promise.all(workers);
      };
      try {
        await run(1000);
        await settled(() => tally.returned + tally.destroyed >= 1000);
        gc();
        const heapBefore = process.memoryUsage().heapUsed;
        const serverListeners = listeners(server);
        await run(10_000);
        const ngi = Math.ceil(10_000 / 3);
        const node = 10_000 - ngi;
        await settled(() => tally.closed >= ngi && tally.destroyed >= node);
        gc();
        const heapAfter = process.memoryUsage().heapUsed;

        assert.deepEqual(tally, {
          aborted: ngi,
          returned: ngi,
          closed: ngi,
          twice: 0,
          destroyed: node,
          reqClosed: node,
        });
        assert.deepEqual(unhandled, []);
        assert.deepEqual(warnings, []);
        assert.equal(listeners(server), serverListeners, 'server listeners');
        const growth = heapAfter - heapBefore;
        assert.ok(growth < 16 * 1024 * 1024, `heap grew by ${(growth / 1048576).toFixed(1)} MB`);
        assert.deepEqual(
          errors.lines.filter((line) => !line.includes('NGI_ERR_CLIENT_GONE')),
          [],
          'nothing but client-gone notes is logged',
        );
      } finally {
        process.off('unhandledRejection', onUnhandled);
        process.off('warning', onWarning);
      }
    },
  );

  it('adds no listener to a kept-alive socket per request', async () => {
    const short = mount({
      '/ngi': (environ, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['ok'];
      },
      '/fast': fromNodeHandler((req, res) => res.end('ok')),
      '/emulated': wrap(fromNodeHandler((req, res) => res.end('ok'))),
    });
    const keptAlive = await listen(toNodeHandler(short, { errors }) as RequestListener);
    const sockets: NodeJS.EventEmitter[] = [];
    keptAlive.on('connection', (socket) => sockets.push(socket));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<void>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: portOf(keptAlive), path, agent });
        req.on('error', reject);
        req.on('response', (response) => response.resume().on('end', resolve));
        req.end();
      });
    try {
      const counts: number[] = [];
      for (let i = 0; i < 300; i++) {
        await get(['/ngi', '/fast', '/emulated'][i % 3]!);
        if (i === 29 || i === 299) counts.push(listeners(sockets[0]!));
      }
      assert.equal(sockets.length, 1, 'one connection served them all');
      assert.equal(counts[1], counts[0], 'listeners after 30 and after 300 requests');
    } finally {
      agent.destroy();
      close(keptAlive);
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { connect, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { fromNodeHandler } from '../../adapters/node.js';
import { defineApp, mount, type App, type Environ } from '../../src/index.js';
import { createUwsgiServer } from '../../src/server/uwsgi-listener.js';
import { startNginx, uwsgiLocation, type RunningNginx } from '../helpers/nginx.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

interface Ask {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** One buffer: sent with Content-Length. Several: sent chunked, one chunk each. */
  body?: Buffer | Buffer[];
  /** Send `Expect: 100-continue` and hold the body until the proxy says continue. */
  expectContinue?: boolean;
}

/** One HTTP/1.1 request on a fresh connection (no agent: every case starts clean). */
function ask(origin: string, options: Ask): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    const body = options.body;
    if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
    if (options.expectContinue) headers.Expect = '100-continue';
    const req = request(
      `${origin}${options.path}`,
      { method: options.method ?? 'GET', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer for ${options.path}`)));
    const send = () => {
      if (Array.isArray(body)) for (const part of body) req.write(part);
      else if (body !== undefined) req.write(body);
      req.end();
    };
    if (options.expectContinue) req.once('continue', send);
    else send();
  });
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The vectors' body pattern, so the bytes are not all alike. */
function pattern(length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

const TWO_MB = pattern(2 * 1024 * 1024);

async function readInput(environ: Environ): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of environ['ngi.input']) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An NGI app with one route per behaviour under test. */
const routes: App = defineApp(async (environ, startResponse) => {
  switch (environ.PATH_INFO) {
    case '/echo': {
      const body = await readInput(environ);
      startResponse('200 OK', [['Content-Type', 'application/json']]);
      return [
        JSON.stringify({
          method: environ.REQUEST_METHOD,
          path: environ.PATH_INFO,
          query: environ.QUERY_STRING,
          uri: environ.REQUEST_URI,
          cookie: environ.HTTP_COOKIE,
          contentLength: environ.CONTENT_LENGTH,
          transferEncoding: environ.HTTP_TRANSFER_ENCODING,
          expect: environ.HTTP_EXPECT,
          scheme: environ['ngi.url_scheme'],
          length: body.length,
          sha256: sha256(body),
        }),
      ];
    }
    case '/stream':
      // No Content-Length: the listener sends a close-delimited body.
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        for (let i = 0; i < 5; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          yield `part ${i}\n`;
        }
      })();
    case '/big':
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return [TWO_MB];
    case '/big-stream':
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (function* () {
        for (let at = 0; at < TWO_MB.length; at += 65536) yield TWO_MB.subarray(at, at + 65536);
      })();
    case '/cookies':
      startResponse('200 OK', [
        ['Content-Type', 'text/plain'],
        ['Set-Cookie', 'a=1; Path=/'],
        ['Set-Cookie', 'b=2; HttpOnly'],
        ['Set-Cookie', 'c=3'],
      ]);
      return ['cookies'];
    case '/head':
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['a body HEAD must not carry'];
    case '/unread':
      // Answers without reading the request body.
      startResponse('401 Unauthorized', [['Content-Type', 'text/plain']]);
      return ['no'];
    case '/throw':
      throw new Error('deliberate failure');
    default:
      startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
      return ['not found'];
  }
});

async function listenUwsgi(
  app: App,
  bufferSize?: number,
): Promise<{ server: Server; port: number; logs: string[] }> {
  const logs: string[] = [];
  const server = createUwsgiServer(app, {
    bufferSize,
    socketTimeout: 10,
    errors: { write: (line: string) => logs.push(line) },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, logs };
}

const closeServer = (server: Server | HttpServer) =>
  new Promise<void>((resolve) => {
    (server as HttpServer).closeAllConnections?.();
    server.close(() => resolve());
  });

describe('real nginx → uwsgi_pass → the uwsgi listener, NGI app', () => {
  let nginx: RunningNginx;
  let backend: Awaited<ReturnType<typeof listenUwsgi>>;
  /** The same app with a 64 KB buffer size, behind `/wide/`. */
  let wide: Awaited<ReturnType<typeof listenUwsgi>>;
  before(async () => {
    // `/nobuf/...` reaches the same routes through nginx with no buffering either way.
    backend = await listenUwsgi(mount({ '/nobuf': routes, '/': routes }));
    wide = await listenUwsgi((environ, startResponse) => {
      environ.PATH_INFO = '/echo';
      return routes(environ, startResponse);
    }, 65535);
    nginx = await startNginx({
      http: 'client_max_body_size 20m; large_client_header_buffers 4 64k;',
      server: `${uwsgiLocation(backend.port)}
        ${uwsgiLocation(wide.port, '/wide/')}
        ${uwsgiLocation(backend.port, '/nobuf/', 'uwsgi_buffering off; uwsgi_request_buffering off;')}`,
    });
  });
  after(async () => {
    await nginx?.stop();
    if (backend) await closeServer(backend.server);
    if (wide) await closeServer(wide.server);
  });

  it('GET with a query and two cookies: the app sees both, joined with "; "', async () => {
    const reply = await ask(nginx.origin, {
      path: '/echo?x=1&y=%2F',
      headers: { Cookie: 'a=1' },
    });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body.toString());
    assert.equal(seen.method, 'GET');
    assert.equal(seen.path, '/echo');
    assert.equal(seen.query, 'x=1&y=%2F');
    assert.equal(seen.uri, '/echo?x=1&y=%2F');
    assert.equal(seen.cookie, 'a=1');
    assert.equal(seen.contentLength, undefined, "nginx's empty CONTENT_LENGTH is absent");
    assert.equal(seen.scheme, 'http');

    // node:http joins repeated Cookie headers itself; a raw request keeps them apart
    const raw = await rawHttp(
      nginx.port,
      'GET /echo HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).cookie, 'a=1; b=2');
  });

  it('POST of a 100 KB body arrives intact (sha256 echoed)', async () => {
    const body = pattern(100 * 1024);
    const reply = await ask(nginx.origin, { method: 'POST', path: '/echo', body });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body.toString());
    assert.equal(seen.length, body.length);
    assert.equal(seen.sha256, sha256(body));
    assert.equal(seen.contentLength, String(body.length));
  });

  it('a chunked request body is de-chunked by nginx and framed by CONTENT_LENGTH', async () => {
    const parts = [pattern(70_000), pattern(30_001), Buffer.from('tail')];
    const whole = Buffer.concat(parts);
    const reply = await ask(nginx.origin, { method: 'POST', path: '/echo', body: parts });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body.toString());
    assert.equal(seen.transferEncoding, 'chunked', 'nginx still forwards the header');
    assert.equal(seen.contentLength, String(whole.length));
    assert.equal(seen.sha256, sha256(whole));
  });

  it('Expect: 100-continue is answered by nginx; the backend sends no 100 of its own', async () => {
    const body = pattern(2048);
    const reply = await ask(nginx.origin, {
      method: 'POST',
      path: '/echo',
      body,
      expectContinue: true,
    });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body.toString());
    assert.equal(seen.expect, '100-continue');
    assert.equal(seen.sha256, sha256(body));
  });

  it('HEAD: headers with the length a GET would have, no body', async () => {
    const reply = await ask(nginx.origin, { method: 'HEAD', path: '/head' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], String('a body HEAD must not carry'.length));
    assert.equal(reply.body.length, 0);
  });

  it('a streamed response of unknown length reaches the client whole (close-delimited upstream)', async () => {
    const reply = await ask(nginx.origin, { path: '/stream' });
    assert.equal(reply.status, 200);
    assert.equal(reply.body.toString(), 'part 0\npart 1\npart 2\npart 3\npart 4\n');
    assert.equal(reply.headers['content-length'], undefined);
  });

  it('a 2 MB response, with a known length and streamed', async () => {
    for (const path of ['/big', '/big-stream']) {
      const reply = await ask(nginx.origin, { path });
      assert.equal(reply.status, 200, path);
      assert.equal(reply.body.length, TWO_MB.length, path);
      assert.equal(sha256(reply.body), sha256(TWO_MB), path);
    }
  });

  it('several Set-Cookie headers all reach the client, in order', async () => {
    const reply = await ask(nginx.origin, { path: '/cookies' });
    assert.deepEqual(reply.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly', 'c=3']);
  });

  it('a 5 MB body the app never reads: its answer still reaches the client intact', async () => {
    for (let i = 0; i < 3; i++) {
      const reply = await ask(nginx.origin, {
        method: 'POST',
        path: '/unread',
        body: pattern(5 * 1024 * 1024),
      });
      assert.equal(reply.status, 401);
      assert.equal(reply.body.toString(), 'no');
    }
  });

  it('404 from the app is passed through with its body', async () => {
    const reply = await ask(nginx.origin, { path: '/nowhere' });
    assert.equal(reply.status, 404);
    assert.equal(reply.body.toString(), 'not found');
  });

  it('an app that throws gives a 500 (logged once by the listener), not a 502', async () => {
    const before = backend.logs.length;
    const reply = await ask(nginx.origin, { path: '/throw' });
    assert.equal(reply.status, 500);
    assert.match(reply.body.toString(), /500 Internal Server Error/);
    const lines = backend.logs.slice(before);
    assert.equal(lines.filter((l) => l.includes('deliberate failure')).length, 1);
  });

  it('with uwsgi_buffering and uwsgi_request_buffering off: bodies both ways intact', async () => {
    const body = pattern(100 * 1024);
    for (const sent of [body, [body.subarray(0, 65524), body.subarray(65524)]]) {
      const reply = await ask(nginx.origin, { method: 'POST', path: '/nobuf/echo', body: sent });
      const seen = JSON.parse(reply.body.toString());
      assert.equal(seen.sha256, sha256(body));
      assert.equal(seen.contentLength, String(body.length), 'nginx de-chunks even unbuffered');
    }
    for (const path of ['/nobuf/stream', '/nobuf/big-stream']) {
      const reply = await ask(nginx.origin, { path });
      assert.equal(reply.status, 200);
      const expected = path.endsWith('big-stream')
        ? TWO_MB
        : Buffer.from('part 0\npart 1\npart 2\npart 3\npart 4\n');
      assert.equal(sha256(reply.body), sha256(expected), path);
    }
  });

  it('nginx logs no upstream errors for any of the above', () => {
    assert.doesNotMatch(nginx.errorLog(), /upstream prematurely closed|upstream sent invalid/);
  });

  it('vars over the buffer size (4096): refused and logged, so nginx answers 502', async () => {
    const before = backend.logs.length;
    const reply = await ask(nginx.origin, {
      path: '/echo',
      headers: { 'X-Big': 'b'.repeat(6000) },
    });
    assert.equal(reply.status, 502);
    assert.ok(backend.logs.slice(before).some((l) => l.includes('raise --buffer-size')));
  });

  it('a 40 KB header passes with bufferSize 65535', async () => {
    const reply = await ask(nginx.origin, {
      path: '/wide/x',
      headers: { 'X-Big': 'b'.repeat(40_000) },
    });
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body.toString()).path, '/echo');
  });
});

/** A raw HTTP/1.1 exchange (for requests node:http would normalise). */
function rawHttp(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
  });
}

/** An ordinary Express app, nothing ngi-specific in it. */
function expressApp() {
  const app = express();
  app.get('/hello', (_req, res) => {
    res.send('hello world');
  });
  app.get('/json', (req, res) => {
    res.json({
      query: req.query,
      cookie: req.headers.cookie ?? null,
      path: req.path,
      url: req.originalUrl,
    });
  });
  app.get('/users/:id', (req, res) => {
    res.status(201).json({ id: req.params.id });
  });
  app.post('/echo', express.raw({ type: () => true, limit: '1mb' }), (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    res.json({ length: body.length, sha256: sha256(body) });
  });
  app.post('/form', express.urlencoded({ extended: false }), (req, res) => {
    res.json(req.body);
  });
  app.get('/cookies', (_req, res) => {
    res.cookie('a', '1');
    res.cookie('b', '2', { httpOnly: true, path: '/x' });
    res.send('cookies');
  });
  app.get('/redirect', (_req, res) => {
    res.redirect('/hello');
  });
  app.get('/nocontent', (_req, res) => {
    res.sendStatus(204);
  });
  app.get('/stream', (_req, res) => {
    res.type('text');
    res.write('first,');
    setTimeout(() => {
      res.write('second,');
      res.end('last');
    }, 5);
  });
  app.get('/big', (_req, res) => {
    res.type('application/octet-stream').send(TWO_MB);
  });
  app.get('/boom', () => {
    throw new Error('boom');
  });
  app.use(
    (error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).type('text').send(`handled: ${error.message}`);
    },
  );
  return app;
}

/** Headers a proxy keeps and an app controls; the rest (Date, Connection, Server) differ. */
const COMPARED = ['content-type', 'content-length', 'set-cookie', 'location', 'etag'];

describe('real nginx → uwsgi_pass → fromNodeHandler(Express): same responses as Express on node:http', () => {
  let nginx: RunningNginx;
  let backend: Awaited<ReturnType<typeof listenUwsgi>>;
  let direct: HttpServer;
  let directOrigin: string;
  before(async () => {
    const app = expressApp();
    backend = await listenUwsgi(fromNodeHandler(app));
    nginx = await startNginx({ server: uwsgiLocation(backend.port) });
    direct = createHttpServer(app);
    await new Promise<void>((resolve) => direct.listen(0, '127.0.0.1', resolve));
    directOrigin = `http://127.0.0.1:${(direct.address() as AddressInfo).port}`;
  });
  after(async () => {
    await nginx?.stop();
    if (backend) await closeServer(backend.server);
    if (direct) await closeServer(direct);
  });

  const cases: Array<[name: string, request: Ask, status: number]> = [
    ['a plain GET', { path: '/hello' }, 200],
    [
      'a query string and a cookie',
      { path: '/json?a=1&b=two&b=three', headers: { Cookie: 'k=v; s=t' } },
      200,
    ],
    ['an encoded slash in a route param', { path: '/users/a%2Fb%20c?x=%2F%20' }, 201],
    ['route params and a 201', { path: '/users/42' }, 201],
    ['a 100 KB binary POST', { method: 'POST', path: '/echo', body: pattern(100 * 1024) }, 200],
    ['a chunked POST', { method: 'POST', path: '/echo', body: [pattern(5000), pattern(7)] }, 200],
    [
      'a urlencoded form',
      {
        method: 'POST',
        path: '/form',
        body: Buffer.from('name=value&x=%C3%A9'),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      },
      200,
    ],
    [
      'Expect: 100-continue',
      { method: 'POST', path: '/echo', body: pattern(2048), expectContinue: true },
      200,
    ],
    ['several cookies set', { path: '/cookies' }, 200],
    ['a redirect', { path: '/redirect' }, 302],
    ['204 No Content', { path: '/nocontent' }, 204],
    ['a streamed body with no length', { path: '/stream' }, 200],
    ['a 2 MB body', { path: '/big' }, 200],
    ['HEAD', { method: 'HEAD', path: '/hello' }, 200],
    [
      'a conditional GET (If-None-Match)',
      { path: '/hello', headers: { 'If-None-Match': 'W/"b-Kq5sNclPz7QV2+lfQIuc6R7oRu0"' } },
      304,
    ],
    ['a thrown error handled by the app', { path: '/boom' }, 500],
    ['an unknown route (Express 404)', { path: '/nowhere' }, 404],
  ];

  for (const [name, options, status] of cases) {
    it(`${name}: status, body and headers match`, async () => {
      const expected = await ask(directOrigin, options);
      const actual = await ask(nginx.origin, options);
      assert.equal(expected.status, status, 'the case does what it says on node:http');
      assert.equal(actual.status, expected.status, 'status');
      assert.equal(
        sha256(actual.body),
        sha256(expected.body),
        `body: ${actual.body.subarray(0, 200)}`,
      );
      for (const header of COMPARED) {
        if (header === 'content-length' && expected.headers['transfer-encoding'] === 'chunked')
          continue; // nginx may re-frame a body of unknown length either way
        assert.deepEqual(actual.headers[header], expected.headers[header], header);
      }
    });
  }
});

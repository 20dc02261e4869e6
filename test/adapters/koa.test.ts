import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Koa from 'koa';
import mount from 'koa-mount';
import supertest from 'supertest';
import { fromExpress } from '../../adapters/express.js';
import { fromKoa, toKoa } from '../../adapters/koa.js';
import { toNodeHandler } from '../../adapters/node.js';
import { mount as ngiMount } from '../../src/middleware/mount.js';
import type { App, Body, Chunk, Environ } from '../../src/core/types.js';
import { listen, close, logSink, sendRequest, settleWithin } from '../helpers/servers.js';

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** A cookie date both servers print alike (a `maxAge` would depend on the clock). */
const EXPIRES = new Date(Date.UTC(2030, 0, 1));

/** The reference Koa app: served natively and through ngi, it must answer the same. */
function referenceApp(): Koa {
  const app = new Koa({ proxy: true });
  // Thrown errors are part of the reference; Koa would print each one.
  app.silent = true;
  app.use(async (ctx) => {
    const path = ctx.path;
    if (path === '/text') ctx.body = 'hello';
    else if (path === '/json') ctx.body = { a: 1, u: 'ünï' };
    else if (path === '/stream') {
      ctx.type = 'text/plain';
      ctx.body = Readable.from(['one\n', 'two\n', 'three\n']);
    } else if (path === '/buffer') ctx.body = Buffer.from([0, 1, 2, 255]);
    else if (path === '/redirect') ctx.redirect('/text');
    else if (path === '/teapot') ctx.throw(418, 'short and stout');
    else if (path === '/throw') throw new Error('thrown in a Koa handler');
    else if (path === '/empty') ctx.status = 204;
    else if (path === '/cookies') {
      ctx.cookies.set('a', '1');
      ctx.cookies.set('b', '2', { httpOnly: true, path: '/' });
      ctx.cookies.set('c', '3', { expires: EXPIRES, sameSite: 'lax' });
      ctx.body = 'three cookies';
    } else if (path === '/ip') {
      ctx.body = { ip: ctx.ip, ips: ctx.ips, protocol: ctx.protocol, host: ctx.host };
    } else if (path === '/echo' && ctx.method === 'POST') {
      const body = await readAll(ctx.req);
      ctx.body = { bytes: body.length, sha256: sha256(body), type: ctx.get('Content-Type') };
    } else if (path.startsWith('/raw/')) {
      ctx.body = { path: ctx.path, url: ctx.url, querystring: ctx.querystring, query: ctx.query };
    }
    // Anything else: Koa's own 404.
  });
  return app;
}

/** An NGI middleware that leaves `startResponse` alone: the Node fast path stays open. */
const passThrough =
  (inner: App): App =>
  (environ, startResponse) =>
    inner(environ, startResponse);

/** An NGI middleware that wraps `startResponse`: the Koa app must run on built Node objects. */
const wrapping =
  (inner: App): App =>
  (environ, startResponse) =>
    inner(environ, (status, headers, excInfo) => startResponse(status, headers, excInfo));

const paths = [
  ['the fast path (the original req/res)', passThrough],
  ['the emulated path (req/res built from the environ)', wrapping],
] as const;

for (const [pathName, wrap] of paths) {
  describe(`fromKoa on ${pathName}`, () => {
    let native: Server;
    let viaNgi: Server;
    const errors = logSink();

    before(async () => {
      const app = referenceApp();
      native = await listen(app.callback());
      viaNgi = await listen(toNodeHandler(wrap(fromKoa(app)), { errors }) as never);
    });
    after(() => {
      close(native);
      close(viaNgi);
    });

    type Method = 'get' | 'post' | 'head';
    /** Sends the same request to both servers and compares status, headers (but Date) and body. */
    async function same(
      method: Method,
      path: string,
      setup: (test: supertest.Test) => supertest.Test = (test) => test,
    ): Promise<supertest.Response> {
      const send = (server: Server) => {
        const test = supertest(server)[method](path).buffer(true).redirects(0);
        test.parse((res, done) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => done(null, Buffer.concat(chunks)));
        });
        return setup(test);
      };
      const [expected, actual] = await Promise.all([send(native), send(viaNgi)]);
      const headers = (response: supertest.Response) => {
        const copy = { ...response.headers };
        delete copy.date;
        return copy;
      };
      assert.equal(actual.status, expected.status, `${method} ${path}: status`);
      assert.deepEqual(headers(actual), headers(expected), `${method} ${path}: headers`);
      assert.deepEqual(actual.body, expected.body, `${method} ${path}: body`);
      return actual;
    }

    it('answers text, JSON and a Buffer like the same app on its own server', async () => {
      assert.equal(String((await same('get', '/text')).body), 'hello');
      assert.deepEqual(JSON.parse(String((await same('get', '/json')).body)), { a: 1, u: 'ünï' });
      await same('get', '/buffer');
    });

    it('streams ctx.body = stream chunked, as natively', async () => {
      const response = await same('get', '/stream');
      assert.equal(response.headers['transfer-encoding'], 'chunked');
      assert.equal(String(response.body), 'one\ntwo\nthree\n');
    });

    it('answers ctx.redirect, ctx.throw(418), a thrown error and the default 404 alike', async () => {
      assert.equal((await same('get', '/redirect')).headers.location, '/text');
      assert.equal((await same('get', '/teapot')).status, 418);
      assert.equal((await same('get', '/throw')).status, 500);
      assert.equal((await same('get', '/nowhere')).status, 404);
    });

    it('answers HEAD with the GET headers and no body, and 204 with nothing', async () => {
      const head = await same('head', '/text');
      assert.equal(head.headers['content-length'], '5');
      await same('head', '/stream');
      assert.equal((await same('get', '/empty')).status, 204);
    });

    it('keeps the three Set-Cookie headers of ctx.cookies.set', async () => {
      const response = await same('get', '/cookies');
      assert.equal(response.headers['set-cookie']?.length, 3);
    });

    it('gives ctx.ip, ctx.protocol and ctx.host from X-Forwarded-* when app.proxy is on', async () => {
      const response = await same('get', '/ip', (test) =>
        test
          .set('X-Forwarded-For', '203.0.113.7, 10.0.0.1')
          .set('X-Forwarded-Proto', 'https')
          .set('X-Forwarded-Host', 'public.example'),
      );
      assert.deepEqual(JSON.parse(String(response.body)), {
        ip: '203.0.113.7',
        ips: ['203.0.113.7', '10.0.0.1'],
        protocol: 'https',
        host: 'public.example',
      });
      const direct = await supertest(viaNgi).get('/ip').expect(200);
      assert.deepEqual([direct.body.ip, direct.body.ips], ['127.0.0.1', []]);
    });

    it('shows Koa the raw path and query exactly as the client sent them', async () => {
      const response = await same('get', '/raw/a%2Fb/caf%C3%A9/%FF?x=%C3%BC&y=1&y=2');
      assert.deepEqual(JSON.parse(String(response.body)), {
        path: '/raw/a%2Fb/caf%C3%A9/%FF',
        url: '/raw/a%2Fb/caf%C3%A9/%FF?x=%C3%BC&y=1&y=2',
        querystring: 'x=%C3%BC&y=1&y=2',
        query: { x: 'ü', y: ['1', '2'] },
      });
    });

    it('shows Koa the path below an ngi mount point, escapes still raw', async () => {
      const mounted = await listen(
        toNodeHandler(ngiMount({ '/k': wrap(fromKoa(referenceApp())) }), { errors }) as never,
      );
      try {
        const response = await supertest(mounted).get('/k/raw/a%2Fb?x=1').expect(200);
        assert.equal(response.body.path, '/raw/a%2Fb');
        assert.equal(response.body.url, '/raw/a%2Fb?x=1');
      } finally {
        close(mounted);
      }
    });

    it('aborts the connection for an error after ctx.flushHeaders(), where Koa alone leaves the client waiting', async () => {
      const app = new Koa();
      const seen: unknown[] = [];
      app.on('error', (error: { headerSent?: boolean }) => seen.push(error.headerSent));
      app.use(async (ctx) => {
        ctx.status = 200;
        ctx.set('Content-Type', 'text/plain');
        ctx.flushHeaders();
        ctx.res.write('partial');
        await Promise.resolve();
        throw new Error('after the head');
      });
      const server = await listen(
        toNodeHandler(wrap(fromKoa(app)), { errors: logSink() }) as never,
      );
      try {
        const { port } = server.address() as AddressInfo;
        const outcome = await new Promise<string>((resolve) => {
          const req = httpRequest({ port, host: '127.0.0.1', path: '/' }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve(`complete ${res.statusCode} ${body}`));
            res.on('error', () => resolve(`cut ${res.statusCode} ${body}`));
          });
          req.on('error', (error) => resolve(`request error ${error.message}`));
          // What Koa alone does: the response never ends (bounded, so the failure is named).
          req.setTimeout(5000, () => {
            resolve('still open after 5 s');
            req.destroy();
          });
          req.end();
        });
        assert.equal(outcome, 'cut 200 partial');
        assert.deepEqual(seen, [true]);
      } finally {
        close(server);
      }
    });

    it('reads a 2 MB request body intact', async () => {
      const payload = randomBytes(2 * 1024 * 1024);
      const response = await same('post', '/echo', (test) =>
        test.set('Content-Type', 'application/octet-stream').send(payload),
      );
      assert.equal(JSON.parse(String(response.body)).sha256, sha256(payload));
    });
  });

  describe(`fromKoa streaming on ${pathName}`, () => {
    /** Counts how the server finished the body it was given. */
    function observed(inner: App) {
      const seen = { returns: 0, closes: 0, aborted: undefined as unknown };
      const app: App = async (environ, startResponse) => {
        environ['ngi.signal'].addEventListener('abort', () => {
          seen.aborted = environ['ngi.signal'].reason;
        });
        const body = await inner(environ, startResponse);
        // The fast path hands back an empty array (the response went out natively).
        const iterator: Iterator<Chunk> | AsyncIterator<Chunk> =
          Symbol.asyncIterator in body
            ? body[Symbol.asyncIterator]()
            : (body as Iterable<Chunk>)[Symbol.iterator]();
        const watched: AsyncIterable<Chunk> & { close(): void } = {
          [Symbol.asyncIterator]: () => ({
            next: async () => iterator.next(),
            return: async () => {
              seen.returns++;
              return (await iterator.return?.()) ?? { done: true, value: undefined };
            },
          }),
          close: () => {
            seen.closes++;
          },
        };
        return watched as Body;
      };
      return { app, seen };
    }

    it('stops reading ctx.body while the client does not read, and delivers all of it after', async () => {
      const total = 48 * 1024 * 1024;
      const piece = Buffer.alloc(64 * 1024, 'x');
      let produced = 0;
      const koa = new Koa();
      koa.use((ctx) => {
        ctx.type = 'application/octet-stream';
        ctx.body = new Readable({
          read() {
            if (produced >= total) return void this.push(null);
            produced += piece.length;
            this.push(piece);
          },
        });
      });
      const server = await listen(toNodeHandler(wrap(fromKoa(koa))) as never);
      try {
        const { port } = server.address() as AddressInfo;
        const req = httpRequest({ host: '127.0.0.1', port, path: '/' }).end();
        const [res] = (await once(req, 'response')) as [IncomingMessage];
        await once(res, 'data');
        res.pause();
        // Wait (bounded) until the producer stops: backpressure reached it.
        let last = -1;
        for (let i = 0; i < 200 && produced !== last; i++) {
          last = produced;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(produced, last, 'the producer came to rest');
        assert.ok(produced < total / 2, `read ${produced} of ${total} bytes ahead of the client`);
        let received = 0;
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        res.resume();
        await once(res, 'end');
        assert.ok(received > 0);
        assert.equal(produced, total);
      } finally {
        close(server);
      }
    });

    it('fires ngi.signal, finishes the body once and destroys ctx.body when the client leaves', async () => {
      let destroyed!: () => void;
      const streamGone = new Promise<void>((resolve) => (destroyed = resolve));
      const koa = new Koa();
      koa.use((ctx) => {
        ctx.type = 'text/plain';
        const stream = new Readable({ read() {} });
        stream.push('first chunk\n');
        stream.once('close', () => destroyed());
        ctx.body = stream;
      });
      const { app, seen } = observed(fromKoa(koa));
      const server = await listen(toNodeHandler(wrap(app), { errors: logSink() }) as never);
      try {
        const { port } = server.address() as AddressInfo;
        const req = httpRequest({ host: '127.0.0.1', port, path: '/' }).end();
        const [res] = (await once(req, 'response')) as [IncomingMessage];
        await once(res, 'data');
        req.destroy();
        await streamGone;
        // Let the server finish its side of the teardown before counting.
        for (let i = 0; i < 100 && seen.returns + seen.closes < 2; i++) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        assert.equal((seen.aborted as { code?: string } | undefined)?.code, 'NGI_ERR_CLIENT_GONE');
        assert.equal(seen.closes, 1);
        // An iterator is only finished if iteration started (not on the fast path).
        assert.equal(seen.returns, wrap === wrapping ? 1 : 0);
      } finally {
        close(server);
      }
    });
  });
}

/** Reads a response to its end or its breaking off: what a client really received. */
async function fetchRaw(
  server: Server,
  path: string,
): Promise<{ status: number; complete: boolean; body: string }> {
  const { port } = server.address() as AddressInfo;
  const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }).end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => (body += chunk));
  // A broken response errors with ECONNRESET; `complete` tells the two outcomes apart.
  res.on('error', () => {});
  await new Promise((resolve) => res.once('close', resolve));
  return { status: res.statusCode ?? 0, complete: res.complete, body };
}

/** POSTs exact bytes (supertest re-serialises a Buffer sent as JSON) and parses the JSON answer. */
async function postRaw(
  server: Server,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { port } = server.address() as AddressInfo;
  const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers, agent: false });
  req.end(body);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const text = (await readAll(res)).toString('utf8');
  return { status: res.statusCode ?? 0, body: res.statusCode === 200 ? JSON.parse(text) : {} };
}

/** Like koa-bodyparser: reads (and inflates) the whole body, parses it, keeps the text in rawBody. */
function bodyParser(): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.is('json')) {
      const bytes = await readAll(ctx.req);
      const gzipped = ctx.get('Content-Encoding') === 'gzip';
      const rawBody = (gzipped ? gunzipSync(bytes) : bytes).toString('utf8');
      const request = ctx.request as Koa.Request & { rawBody?: string; body?: unknown };
      request.rawBody = rawBody;
      request.body = JSON.parse(rawBody);
    }
    await next();
  };
}

/** A middleware that reads the whole body and keeps nothing of it (a careless parser). */
const swallowBody: Koa.Middleware = async (ctx, next) => {
  await readAll(ctx.req);
  await next();
};

describe('toKoa', () => {
  /** Answers with what it was given: the environ keys that matter here, and the body's hash. */
  const environApp: App = async (environ, startResponse) => {
    const body = await readAll(environ['ngi.input']);
    const seen: Partial<Environ> & { bytes: number; sha256: string } = {
      SCRIPT_NAME: environ.SCRIPT_NAME,
      PATH_INFO: environ.PATH_INFO,
      QUERY_STRING: environ.QUERY_STRING,
      REQUEST_URI: environ.REQUEST_URI,
      REMOTE_ADDR: environ.REMOTE_ADDR,
      CONTENT_LENGTH: environ.CONTENT_LENGTH,
      HTTP_CONTENT_ENCODING: environ.HTTP_CONTENT_ENCODING,
      bytes: body.length,
      sha256: sha256(body),
    };
    startResponse('200 OK', [
      ['Content-Type', 'application/json'],
      ['X-Frame-Options', 'SAMEORIGIN'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Set-Cookie', 'c=3'],
    ]);
    return [JSON.stringify(seen)];
  };
  const errors = logSink();
  let server: Server;

  before(async () => {
    const koa = new Koa();
    koa.use(async (ctx, next) => {
      // What a CORS or helmet middleware does before handing on.
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.set('X-Frame-Options', 'DENY');
      ctx.vary('Origin');
      ctx.cookies.set('session', 'outer', { httpOnly: false });
      await next();
    });
    koa.use(mount('/legacy', toKoa(environApp, { errors })));
    koa.use(mount('/outer', mount('/inner', toKoa(environApp, { errors }))));
    const v1 = new Koa();
    v1.use(mount('/legacy', toKoa(environApp, { errors })));
    koa.use(mount('/v1', v1));
    koa.use(mount('/parsed', bodyParser()));
    koa.use(mount('/parsed', toKoa(environApp, { errors })));
    koa.use(mount('/swallowed', swallowBody));
    koa.use(mount('/swallowed', toKoa(environApp, { errors })));
    const inner = express();
    inner.use(express.raw({ type: '*/*' }));
    inner.use((req, res) => {
      const bytes = req.body as Buffer;
      res.json({ url: req.url, bytes: bytes.length, sha256: sha256(bytes) });
    });
    koa.use(mount('/express', bodyParser()));
    koa.use(mount('/express', toKoa(fromExpress(inner), { errors })));
    koa.use((ctx) => {
      if (ctx.path === '/native') ctx.body = 'native route';
    });
    server = await listen(koa.callback());
  });
  after(() => close(server));

  async function environAt(path: string): Promise<Record<string, unknown>> {
    const response = await supertest(server).get(path).expect(200);
    return response.body;
  }

  it('sets SCRIPT_NAME to the koa-mount prefix and keeps the raw REQUEST_URI', async () => {
    assert.deepEqual(await environAt('/legacy/a%2Fb/caf%C3%A9?x=%C3%BC'), {
      SCRIPT_NAME: '/legacy',
      PATH_INFO: '/a/b/café',
      QUERY_STRING: 'x=%C3%BC',
      REQUEST_URI: '/legacy/a%2Fb/caf%C3%A9?x=%C3%BC',
      REMOTE_ADDR: '127.0.0.1',
      bytes: 0,
      sha256: sha256(''),
    });
  });

  it('gives PATH_INFO "" for the bare prefix and "/" for the prefix with a slash, as mount() does', async () => {
    const bare = await environAt('/legacy');
    assert.deepEqual(
      [bare.SCRIPT_NAME, bare.PATH_INFO, bare.REQUEST_URI],
      ['/legacy', '', '/legacy'],
    );
    const slash = await environAt('/legacy/?q');
    assert.deepEqual(
      [slash.SCRIPT_NAME, slash.PATH_INFO, slash.QUERY_STRING],
      ['/legacy', '/', 'q'],
    );
  });

  it('stacks nested mounts, directly and through a mounted Koa sub-app', async () => {
    const nested = await environAt('/outer/inner/x?y=1');
    assert.deepEqual(
      [nested.SCRIPT_NAME, nested.PATH_INFO, nested.REQUEST_URI],
      ['/outer/inner', '/x', '/outer/inner/x?y=1'],
    );
    const bare = await environAt('/outer/inner');
    assert.deepEqual([bare.SCRIPT_NAME, bare.PATH_INFO], ['/outer/inner', '']);
    const sub = await environAt('/v1/legacy/z');
    assert.deepEqual([sub.SCRIPT_NAME, sub.PATH_INFO], ['/v1/legacy', '/z']);
  });

  it('works at the root of a Koa app, with the whole path as PATH_INFO', async () => {
    const koa = new Koa().use(toKoa(environApp, { errors }));
    const root = await listen(koa.callback());
    try {
      const response = await supertest(root).get('/a%20b?c').expect(200);
      assert.deepEqual(
        [response.body.SCRIPT_NAME, response.body.PATH_INFO, response.body.REQUEST_URI],
        ['', '/a b', '/a%20b?c'],
      );
    } finally {
      close(root);
    }
  });

  it('leaves the other Koa routes alone', async () => {
    const response = await supertest(server).get('/native').expect(200);
    assert.equal(response.text, 'native route');
  });

  it('keeps headers set upstream, the app replacing same-named ones; cookies add up', async () => {
    const response = await supertest(server).get('/legacy/x').expect(200);
    assert.equal(response.headers['access-control-allow-origin'], '*');
    assert.equal(response.headers.vary, 'Origin');
    assert.equal(response.headers['x-frame-options'], 'SAMEORIGIN');
    assert.deepEqual(response.headers['set-cookie'], [
      'session=outer; path=/',
      'a=1',
      'b=2',
      'c=3',
    ]);
  });

  it('streams a 1 MB request body into ngi.input', async () => {
    const payload = randomBytes(1024 * 1024);
    const response = await supertest(server)
      .post('/legacy/upload')
      .set('Content-Type', 'application/octet-stream')
      .send(payload)
      .expect(200);
    assert.equal(response.body.bytes, payload.length);
    assert.equal(response.body.sha256, sha256(payload));
  });

  it('hands the app the bytes a body parser kept in ctx.request.rawBody', async () => {
    const payload = '{"read":"by a body parser first","ü":1}';
    const response = await supertest(server)
      .post('/parsed/x')
      .set('Content-Type', 'application/json')
      .send(payload)
      .expect(200);
    assert.equal(response.body.bytes, Buffer.byteLength(payload));
    assert.equal(response.body.sha256, sha256(payload));
    assert.equal(response.body.CONTENT_LENGTH, String(Buffer.byteLength(payload)));
  });

  it('describes kept bytes the parser inflated by their own length, not the gzip framing', async () => {
    const payload = JSON.stringify({ text: 'ü'.repeat(1000) });
    // supertest would serialise a Buffer sent as JSON: send the gzip bytes by hand.
    const gzipped = (path: string) =>
      postRaw(
        server,
        path,
        { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
        gzipSync(payload),
      );
    const parsed = await gzipped('/parsed/x');
    assert.equal(parsed.status, 200);
    assert.equal(parsed.body.sha256, sha256(payload));
    assert.equal(parsed.body.CONTENT_LENGTH, String(Buffer.byteLength(payload)));
    assert.equal(parsed.body.HTTP_CONTENT_ENCODING, undefined);
    const express = await gzipped('/express/gz');
    assert.equal(express.status, 200);
    assert.equal(express.body.sha256, sha256(payload));
  });

  it('hands those kept bytes to a wrapped Express app and its own body parser too', async () => {
    const payload = '{"twice":"parsed"}';
    const response = await supertest(server)
      .post('/express/y?z')
      .set('Content-Type', 'application/json')
      .send(payload)
      .expect(200);
    assert.deepEqual(response.body, {
      url: '/y?z',
      bytes: payload.length,
      sha256: sha256(payload),
    });
  });

  it('answers 500 naming NGI_ERR_BODY_CONSUMED when a middleware read the body and kept nothing', async () => {
    errors.lines.length = 0;
    const response = await supertest(server)
      .post('/swallowed/x')
      .set('Content-Type', 'application/json')
      .send('{"gone":true}')
      .expect(500);
    assert.equal(response.text, 'Internal Server Error');
    assert.match(errors.lines.join(''), /NGI_ERR_BODY_CONSUMED/);
  });
});

describe('toKoa and the rest of the Koa stack', () => {
  const errors = logSink();

  it('answers through Koa: downstream never runs, upstream after next() may replace the answer', async () => {
    const koa = new Koa();
    const reached: string[] = [];
    koa.use(async (ctx, next) => {
      await next();
      // As on a native route: the answer is Koa's until Koa sends it.
      if (ctx.path === '/replaced') ctx.body = 'written by an upstream middleware after next()';
    });
    koa.use(
      toKoa((environ, startResponse) => {
        startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'the app';
          await new Promise((resolve) => setImmediate(resolve));
          yield "'s own 404";
        })();
      }),
    );
    koa.use((ctx) => {
      reached.push(ctx.path);
      ctx.body = 'downstream';
    });
    const app = await listen(koa.callback());
    try {
      assert.deepEqual(await fetchRaw(app, '/missing'), {
        status: 404,
        complete: true,
        body: "the app's own 404",
      });
      assert.deepEqual(await fetchRaw(app, '/replaced'), {
        status: 404,
        complete: true,
        body: 'written by an upstream middleware after next()',
      });
      assert.deepEqual(reached, []);
    } finally {
      close(app);
    }
  });

  it("after an upstream ctx.flushHeaders(), the app's body still follows (its headers come too late, as for any Koa middleware)", async () => {
    const koa = new Koa();
    koa.use(async (ctx, next) => {
      ctx.status = 200;
      ctx.flushHeaders();
      await next();
    });
    koa.use(
      toKoa((_environ, startResponse) => {
        startResponse('200 OK', [
          ['Content-Type', 'text/plain'],
          ['X-App', 'late'],
        ]);
        return ['the app'];
      }),
    );
    const app = await listen(koa.callback());
    try {
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        fetchRaw(app, '/'),
        new Promise((resolve) => (timer = setTimeout(() => resolve('still open after 5 s'), 5000))),
      ]);
      clearTimeout(timer);
      assert.deepEqual(outcome, { status: 200, complete: true, body: 'the app' });
    } finally {
      close(app);
    }
  });

  it('a header value Node refuses (a control character): the connection is cut at once and the error logged, never left hanging', async () => {
    const koa = new Koa();
    const errors = logSink();
    koa.use(
      toKoa(
        (_environ, startResponse) => {
          startResponse('200 OK', [['X-Bad', 'a\x01b']]);
          return ['never sent'];
        },
        { errors },
      ),
    );
    const app = await listen(koa.callback());
    try {
      const outcome = await settleWithin(sendRequest((app.address() as AddressInfo).port, '/'));
      assert.ok(outcome instanceof Error, `the request was cut, not ${String(outcome)}`);
      assert.match(errors.lines.join(''), /Invalid character in header content \["X-Bad"\]/);
    } finally {
      close(app);
    }
  });

  it('resumes upstream once the head is known, the body still streaming', async () => {
    const koa = new Koa();
    const seen: Array<{ status: number; type: string; lastChunk: boolean }> = [];
    let lastChunk = false;
    koa.use(async (ctx, next) => {
      await next();
      seen.push({ status: ctx.status, type: ctx.type, lastChunk });
      ctx.set('X-After-Next', 'set by upstream');
    });
    koa.use(
      mount(
        '/slow',
        toKoa((environ, startResponse) => {
          startResponse('201 Created', [['Content-Type', 'text/plain']]);
          return (async function* () {
            yield 'one ';
            await new Promise((resolve) => setTimeout(resolve, 20));
            lastChunk = true;
            yield 'two';
          })();
        }),
      ),
    );
    const app = await listen(koa.callback());
    try {
      const response = await supertest(app).get('/slow/x').expect(201);
      assert.equal(response.text, 'one two');
      assert.equal(response.headers['x-after-next'], 'set by upstream');
      assert.deepEqual(seen, [{ status: 201, type: 'text/plain', lastChunk: false }]);
    } finally {
      close(app);
    }
  });

  it("puts a Node handler app's answer through Koa too (no hand-off to Koa's res)", async () => {
    const koa = new Koa();
    const seen: Array<{ status: number; type: string }> = [];
    koa.use(async (ctx, next) => {
      await next();
      seen.push({ status: ctx.status, type: ctx.type });
      ctx.set('X-After-Next', 'set by upstream');
    });
    const slowExpress = express().get('/', (_req, res) => {
      setTimeout(() => res.send('late'), 20);
    });
    koa.use(mount('/legacy', toKoa(fromExpress(slowExpress))));
    const app = await listen(koa.callback());
    try {
      const response = await supertest(app).get('/legacy').expect(200);
      assert.equal(response.text, 'late');
      assert.equal(response.headers['x-after-next'], 'set by upstream');
      assert.deepEqual(seen, [{ status: 200, type: 'text/html' }]);
    } finally {
      close(app);
    }
  });

  it('lets an upstream try/catch answer an app that throws before responding', async () => {
    const koa = new Koa();
    const events: unknown[] = [];
    koa.on('error', (error) => events.push(error));
    koa.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = 503;
        ctx.set('Retry-After', '5');
        ctx.body = { caught: (error as Error).message };
      }
    });
    koa.use(
      toKoa(
        async () => {
          await new Promise((resolve) => setImmediate(resolve));
          throw new Error('database down');
        },
        { errors },
      ),
    );
    const app = await listen(koa.callback());
    try {
      const response = await supertest(app).get('/x').expect(503);
      assert.deepEqual(response.body, { caught: 'database down' });
      assert.equal(response.headers['retry-after'], '5');
      assert.deepEqual(events, []);
    } finally {
      close(app);
    }
  });

  it("answers with Koa's own error handling, and emits app 'error', when nothing catches", async () => {
    const koa = new Koa();
    const events: Error[] = [];
    koa.on('error', (error: Error) => events.push(error));
    koa.use(async (ctx, next) => {
      ctx.set('X-Upstream', 'dropped by ctx.onerror, as for any Koa error');
      await next();
    });
    koa.use(
      mount(
        '/sync',
        toKoa(
          () => {
            throw new Error('sync failure');
          },
          { errors },
        ),
      ),
    );
    koa.use(
      mount(
        '/forbidden',
        toKoa(
          () => {
            throw Object.assign(new Error('not yours'), { status: 403, expose: true });
          },
          { errors },
        ),
      ),
    );
    koa.use(
      mount(
        '/invalid',
        toKoa(
          (environ, startResponse) => {
            startResponse('OK', []);
            return [];
          },
          { errors },
        ),
      ),
    );
    const app = await listen(koa.callback());
    try {
      const sync = await supertest(app).get('/sync').expect(500);
      assert.equal(sync.text, 'Internal Server Error');
      assert.equal(sync.headers['x-upstream'], undefined);
      const forbidden = await supertest(app).get('/forbidden').expect(403);
      assert.equal(forbidden.text, 'not yours');
      await supertest(app).get('/invalid').expect(500);
      assert.deepEqual(
        events.map((error) => [error.message, (error as { code?: string }).code]),
        [
          ['sync failure', undefined],
          ['not yours', undefined],
          ['invalid status "OK"', 'NGI_ERR_INVALID_STATUS'],
        ],
      );
    } finally {
      close(app);
    }
  });

  it('aborts the connection when the app fails mid-body, and resumes upstream middleware', async () => {
    const koa = new Koa();
    const events: unknown[] = [];
    let resumed = 0;
    koa.on('error', (error) => events.push(error));
    koa.use(async (ctx, next) => {
      await next();
      resumed++;
    });
    koa.use(
      toKoa(
        (environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return (async function* () {
            yield 'partial';
            await new Promise((resolve) => setImmediate(resolve));
            throw new Error('broke mid-stream');
          })();
        },
        { errors },
      ),
    );
    errors.lines.length = 0;
    const app = await listen(koa.callback());
    try {
      const response = await fetchRaw(app, '/');
      assert.equal(response.status, 200);
      assert.equal(response.complete, false, 'the client sees a broken response');
      assert.equal(response.body, 'partial');
      for (let i = 0; i < 100 && resumed === 0; i++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(resumed, 1);
      assert.match(errors.lines.join(''), /broke mid-stream/);
    } finally {
      close(app);
    }
  });

  it('fires ngi.signal, finishes the body and resumes upstream when the client leaves', async () => {
    let aborted!: (reason: unknown) => void;
    const signalled = new Promise((resolve) => (aborted = resolve));
    let finished!: () => void;
    const bodyFinished = new Promise<void>((resolve) => (finished = resolve));
    let resumed!: () => void;
    const upstreamResumed = new Promise<void>((resolve) => (resumed = resolve));
    const koa = new Koa();
    koa.use(async (ctx, next) => {
      await next();
      resumed();
    });
    koa.use(
      toKoa((environ, startResponse) => {
        const signal = environ['ngi.signal'];
        signal.addEventListener('abort', () => aborted(signal.reason));
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          try {
            yield 'first';
            await signalled;
            yield 'never sent';
          } finally {
            finished();
          }
        })();
      }),
    );
    const app = await listen(koa.callback());
    try {
      const { port } = app.address() as AddressInfo;
      const req = httpRequest({ host: '127.0.0.1', port, path: '/' }).end();
      req.on('error', () => {});
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      await once(res, 'data');
      req.destroy();
      assert.equal(((await signalled) as { code?: string }).code, 'NGI_ERR_CLIENT_GONE');
      await bodyFinished;
      await upstreamResumed;
    } finally {
      close(app);
    }
  });

  it('runs a wrapped Koa app below the mount point on its own paths', async () => {
    const inner = new Koa();
    inner.use((ctx) => {
      ctx.body = { path: ctx.path, url: ctx.url };
    });
    const outer = new Koa();
    outer.use(mount('/inner', toKoa(fromKoa(inner))));
    const app = await listen(outer.callback());
    try {
      const response = await supertest(app).get('/inner/a%2Fb?c=1').expect(200);
      assert.deepEqual(response.body, { path: '/a%2Fb', url: '/a%2Fb?c=1' });
      const root = await supertest(app).get('/inner').expect(200);
      assert.deepEqual(root.body, { path: '/', url: '/' });
    } finally {
      close(app);
    }
  });
});

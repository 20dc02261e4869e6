// The host framework's own middleware and hooks act on a mounted app as on a native route:
// each host with its usual global middleware (the real packages), a native route beside an NGI
// app, a streamed NGI app and a foreign framework's app (fromX), all mounted with toX.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import compression from 'compression';
import helmet from 'helmet';
import cors from 'cors';
import expressSession from 'express-session';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyCompress from '@fastify/compress';
import fastifyHelmet from '@fastify/helmet';
import fastifyCors from '@fastify/cors';
import fastifyEtag from '@fastify/etag';
import Koa from 'koa';
import mount from 'koa-mount';
import koaCompress from 'koa-compress';
import koaSession from 'koa-session';
import { Hono } from 'hono';
import { compress as honoCompress } from 'hono/compress';
import { etag as honoEtag } from 'hono/etag';
import { secureHeaders } from 'hono/secure-headers';
import { cors as honoCors } from 'hono/cors';
import { createAdaptorServer } from '@hono/node-server';
import { fromExpress, toExpress } from '../../adapters/express.js';
import { toFastify } from '../../adapters/fastify.js';
import { fromKoa, toKoa } from '../../adapters/koa.js';
import { toHono } from '../../adapters/hono.js';
import { defineApp } from '../../src/core/define-app.js';
import type { App } from '../../src/core/types.js';
import { close, listen, sendRequest, type Reply } from '../helpers/servers.js';

/** A 5 kB text answer: over every compression threshold. */
const TEXT = 'ngi gateway '.repeat(427);
const TYPE = 'text/plain; charset=utf-8';

const ngiApp: App = defineApp((_environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', TYPE]]);
  return [TEXT];
});

/** The same text in five chunks, each after a turn of the event loop: a streamed body. */
const ngiStream: App = defineApp((_environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', TYPE]]);
  return (async function* () {
    const size = Math.ceil(TEXT.length / 5);
    for (let at = 0; at < TEXT.length; at += size) {
      await new Promise((resolve) => setImmediate(resolve));
      yield TEXT.slice(at, at + size);
    }
  })();
});

/** The text in two chunks, its length declared by the app: a whole body, known at once. */
const ngiSized: App = defineApp((_environ, startResponse) => {
  startResponse('200 OK', [
    ['Content-Type', TYPE],
    ['Content-Length', String(Buffer.byteLength(TEXT))],
  ]);
  return [TEXT.slice(0, 100), TEXT.slice(100)];
});

function expressApp(): express.Express {
  return express().use((_req, res) => void res.type('text/plain').send(TEXT));
}

function koaApp(): Koa {
  return new Koa().use((ctx) => {
    ctx.type = 'text/plain';
    ctx.body = TEXT;
  });
}

/** What one request through a route gave, the body inflated. */
interface Seen {
  status: number;
  headers: Reply['headers'];
  text: string;
}

async function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<Seen> {
  const reply = await sendRequest(port, path, {
    headers: { 'Accept-Encoding': 'gzip', Origin: 'http://example.test', ...headers },
  });
  const body = reply.headers['content-encoding'] === 'gzip' ? gunzipSync(reply.body) : reply.body;
  return { status: reply.status, headers: reply.headers, text: body.toString() };
}

/** One middleware's effect, checked on a route; `port` lets it send a follow-up request. */
type Effect = (seen: Seen, port: number, path: string) => Promise<void> | void;

interface Host {
  name: string;
  /** Starts the host: its middleware, `/native`, and the mounted `/ngi`, `/stream`, `/foreign`. */
  start(): Promise<{ port: number; stop: () => Promise<void> | void }>;
  /** The foreign framework app mounted at `/foreign`. */
  foreign: string;
  effects: Record<string, Effect>;
}

const gzip: Effect = (seen) => {
  assert.equal(seen.headers['content-encoding'], 'gzip');
  assert.equal(seen.text, TEXT);
};

const corsOrigin: Effect = (seen) => {
  assert.ok(seen.headers['access-control-allow-origin'], 'Access-Control-Allow-Origin');
};

/** helmet and secureHeaders: the headers a browser acts on. */
const securityHeaders: Effect = (seen) => {
  assert.equal(seen.headers['x-content-type-options'], 'nosniff');
  assert.ok(seen.headers['x-frame-options'], 'X-Frame-Options');
};

/** An ETag, and a conditional GET with it answered 304 without a body. */
const etagAndConditional: Effect = async (seen, port, path) => {
  const tag = seen.headers.etag;
  assert.ok(typeof tag === 'string' && tag !== '', 'ETag');
  const again = await get(port, path, { 'If-None-Match': tag });
  assert.equal(again.status, 304);
  assert.equal(again.text, '');
};

const sessionCookie =
  (name: string): Effect =>
  (seen) => {
    const cookies = seen.headers['set-cookie'] ?? [];
    assert.ok(
      cookies.some((cookie) => cookie.startsWith(name + '=')),
      `a ${name} cookie in ${JSON.stringify(cookies)}`,
    );
  };

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

const hosts: Host[] = [
  {
    name: 'Express',
    foreign: 'fromKoa',
    async start() {
      const app = express();
      app.use(compression());
      app.use(helmet());
      app.use(cors());
      app.use(expressSession({ secret: 'test', resave: false, saveUninitialized: true }));
      app.get('/native', (_req, res) => void res.type('text/plain').send(TEXT));
      app.use('/ngi', toExpress(ngiApp));
      app.use('/stream', toExpress(ngiStream));
      app.use('/sized', toExpress(ngiSized));
      app.use('/foreign', toExpress(fromKoa(koaApp())));
      const server = await listen(app);
      return { port: portOf(server), stop: () => close(server) };
    },
    effects: {
      compression: gzip,
      helmet: securityHeaders,
      cors: corsOrigin,
      'express-session': sessionCookie('connect.sid'),
    },
  },
  {
    name: 'Fastify',
    foreign: 'fromExpress',
    async start() {
      const fastify: FastifyInstance = Fastify();
      await fastify.register(fastifyCompress, { global: true });
      await fastify.register(fastifyHelmet);
      await fastify.register(fastifyCors, { origin: '*' });
      await fastify.register(fastifyEtag);
      fastify.get('/native', (_request, reply) => reply.type('text/plain').send(TEXT));
      await fastify.register(toFastify(ngiApp), { prefix: '/ngi' });
      await fastify.register(toFastify(ngiStream), { prefix: '/stream' });
      await fastify.register(toFastify(ngiSized), { prefix: '/sized' });
      await fastify.register(toFastify(fromExpress(expressApp())), { prefix: '/foreign' });
      await fastify.listen({ port: 0, host: '127.0.0.1' });
      return { port: portOf(fastify.server), stop: () => fastify.close() };
    },
    effects: {
      '@fastify/compress': gzip,
      '@fastify/helmet': securityHeaders,
      '@fastify/cors': corsOrigin,
    },
  },
  {
    name: 'Koa',
    foreign: 'fromExpress',
    async start() {
      const koa = new Koa();
      koa.keys = ['test'];
      koa.use(koaCompress({ threshold: 1024 }));
      koa.use(koaSession({ signed: true }, koa));
      koa.use(async (ctx, next) => {
        // Read before, committed by koa-session after `next()`: a cookie set late.
        ctx.session!.visits = ((ctx.session!.visits as number | undefined) ?? 0) + 1;
        await next();
      });
      koa.use(async (ctx, next) => {
        if (ctx.path !== '/native') return next();
        ctx.type = 'text/plain';
        ctx.body = TEXT;
      });
      koa.use(mount('/ngi', toKoa(ngiApp)));
      koa.use(mount('/stream', toKoa(ngiStream)));
      koa.use(mount('/sized', toKoa(ngiSized)));
      koa.use(mount('/foreign', toKoa(fromExpress(expressApp()))));
      const server = await listen(koa.callback());
      return { port: portOf(server), stop: () => close(server) };
    },
    effects: {
      'koa-compress': gzip,
      'koa-session': sessionCookie('koa.sess'),
    },
  },
  {
    name: 'Hono on @hono/node-server',
    foreign: 'fromExpress',
    async start() {
      const hono = new Hono();
      hono.use(honoCompress());
      hono.use(honoEtag());
      hono.use(secureHeaders());
      hono.use(honoCors());
      hono.use(async (c, next) => {
        await next();
        // A handler's own after-next() work.
        c.header('X-After-Next', 'yes');
      });
      hono.get('/native', (c) => c.text(TEXT));
      hono.all('/ngi/*', toHono(ngiApp));
      hono.all('/stream/*', toHono(ngiStream));
      hono.all('/sized/*', toHono(ngiSized));
      hono.all('/foreign/*', toHono(fromExpress(expressApp())));
      const server = createAdaptorServer({ fetch: hono.fetch }) as Server;
      server.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      return { port: portOf(server), stop: () => close(server) };
    },
    effects: {
      compress: gzip,
      secureHeaders: securityHeaders,
      cors: corsOrigin,
      'a header set after next()': (seen) => assert.equal(seen.headers['x-after-next'], 'yes'),
    },
  },
];

/** Effects on a whole body only: a streamed body has no ETag on a native route either. */
const fixedBodyEffects: Record<string, Record<string, Effect>> = {
  Fastify: { '@fastify/etag': etagAndConditional },
  'Hono on @hono/node-server': { etag: etagAndConditional },
};

for (const host of hosts) {
  describe(`${host.name}: its middleware acts on mounted apps as on a native route`, () => {
    let port = 0;
    let stop: () => Promise<void> | void = () => {};
    before(async () => ({ port, stop } = await host.start()));
    after(() => stop());

    const routes = [
      ['a native route', '/native', true],
      ['an NGI app', '/ngi/x', true],
      ['a streamed NGI app', '/stream/x', false],
      ['an NGI app that declares its Content-Length', '/sized/x', true],
      [`an app through ${host.foreign}`, '/foreign/x', true],
    ] as const;
    for (const [routeName, path, fixed] of routes) {
      const effects = { ...host.effects, ...(fixed ? fixedBodyEffects[host.name] : {}) };
      it(`${routeName} (${path}): ${Object.keys(effects).join(', ')}`, async () => {
        const seen = await get(port, path);
        assert.equal(seen.status, 200);
        assert.equal(seen.text, TEXT);
        for (const [name, effect] of Object.entries(effects)) {
          try {
            await effect(seen, port, path);
          } catch (error) {
            throw new Error(`${name} on ${path}: ${(error as Error).message}`, { cause: error });
          }
        }
      });
    }
  });
}

describe('Hono middleware on a plain Fetch runtime (app.fetch, no Node bindings)', () => {
  it('compress, etag, secureHeaders, cors and an after-next() header act on toHono as on a native route', async () => {
    const hono = new Hono();
    hono.use(honoCompress());
    hono.use(honoEtag());
    hono.use(secureHeaders());
    hono.use(honoCors());
    hono.use(async (c, next) => {
      await next();
      c.header('X-After-Next', 'yes');
    });
    hono.get('/native', (c) => c.text(TEXT));
    hono.all('/ngi/*', toHono(ngiApp));
    for (const path of ['/native', '/ngi/x']) {
      const headers = { 'Accept-Encoding': 'gzip', Origin: 'http://example.test' };
      const response = await hono.fetch(new Request('http://h.test' + path, { headers }));
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('content-encoding'), 'gzip', path);
      assert.equal(gunzipSync(Buffer.from(await response.arrayBuffer())).toString(), TEXT, path);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', path);
      assert.ok(response.headers.get('access-control-allow-origin'), path);
      assert.equal(response.headers.get('x-after-next'), 'yes', path);
      const tag = response.headers.get('etag');
      assert.ok(tag, `${path}: ETag`);
      const again = await hono.fetch(
        new Request('http://h.test' + path, { headers: { 'If-None-Match': tag } }),
      );
      assert.equal(again.status, 304, path);
    }
  });
});

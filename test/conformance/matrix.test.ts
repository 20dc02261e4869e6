// The identical-behaviour matrix. The same requests, sent with supertest (or node:http where
// the wire matters, see _cases.ts), must get the same responses along every path:
//
// 1. each framework app natively on node:http, against the same app through
//    `toNodeHandler(fromX(app))`;
// 2. the NGI app through `toNodeHandler` (under `mount()` for /mnt), against the same NGI
//    app mounted in each framework at `/` and at `/mnt` (`toX`);
// 3. every pair: framework A's app mounted at /legacy inside framework B through
//    `toB(fromA(appA))`, against appA mounted at /legacy natively in A (16 pairs);
// 4. the other modes: `serve()`'s HTTP listener, every app under `validator()`, and the NGI
//    app across Fetch hops (`toFetch` on @hono/node-server, `fromFetch(toFetch(app))`).
//
// The matrix is printed as a table (case × path) and any ✗ fails its path's test.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import koaMount from 'koa-mount';
import { fromExpress, toExpress } from '../../adapters/express.js';
import { fromFastify, toFastify } from '../../adapters/fastify.js';
import { fromHono, toHono } from '../../adapters/hono.js';
import { fromKoa, toKoa } from '../../adapters/koa.js';
import { fromFetch, toFetch } from '../../adapters/fetch.js';
import { toNodeHandler } from '../../adapters/node.js';
import { mount } from '../../src/middleware/mount.js';
import { validator } from '../../src/middleware/validator.js';
import { serve } from '../../src/server/serve.js';
import { startNginx, uwsgiLocation } from '../helpers/nginx.js';
import type { App } from '../../src/core/types.js';
import { cases, run, type Observation, type Target } from './_cases.js';
import {
  expressApp,
  fastifyApp,
  fastifyPlugin,
  honoApp,
  koaApp,
  ngiApp,
} from './_reference-apps.js';

const closers: Array<() => Promise<unknown> | void> = [];

async function listenNode(handler: RequestListener): Promise<string> {
  const server: Server = createServer(handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function listenFastify(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** What the matrix needs of each framework. */
interface Framework {
  /** The reference app on its own server. */
  native(): Promise<string>;
  /** The reference app as an NGI app. */
  asNgi(): Promise<App>;
  /** The reference app mounted at `prefix` the framework's own way. */
  mountedNatively(prefix: string): Promise<string>;
  /** An NGI app mounted at `prefix` (`''`: the root) with `toX`. */
  host(app: App, prefix: string): Promise<string>;
}

const frameworks: Record<string, Framework> = {
  express: {
    native: () => listenNode(expressApp()),
    asNgi: async () => fromExpress(expressApp()),
    async mountedNatively(prefix) {
      const outer = express();
      // A sub-app's errors reach the outer app's finalhandler: no stacks there either.
      outer.set('env', 'production');
      outer.use(prefix, expressApp());
      return listenNode(outer);
    },
    async host(app, prefix) {
      const outer = express();
      // The outer app's own header would reach the client by design (headers set before the
      // mount are kept); off, so what is compared is what the mounted app sent.
      outer.disable('x-powered-by');
      outer.set('env', 'production');
      outer.use(prefix || '/', toExpress(app));
      return listenNode(outer);
    },
  },
  fastify: {
    native: () => listenFastify(fastifyApp()),
    asNgi: () => fromFastify(fastifyApp()),
    async mountedNatively(prefix) {
      const outer = Fastify();
      await outer.register(fastifyPlugin, { prefix });
      return listenFastify(outer);
    },
    async host(app, prefix) {
      const outer = Fastify();
      await outer.register(toFastify(app), { prefix });
      return listenFastify(outer);
    },
  },
  koa: {
    native: () => listenNode(koaApp().callback()),
    asNgi: async () => fromKoa(koaApp()),
    async mountedNatively(prefix) {
      const outer = new Koa();
      outer.use(koaMount(prefix, koaApp()));
      return listenNode(outer.callback());
    },
    async host(app, prefix) {
      const outer = new Koa();
      outer.use(prefix ? koaMount(prefix, toKoa(app)) : toKoa(app));
      return listenNode(outer.callback());
    },
  },
  hono: {
    native: () => listenNode(getRequestListener(honoApp().fetch)),
    asNgi: async () => fromHono(honoApp()),
    async mountedNatively(prefix) {
      // Strict routing would make '/legacy/' a 404 (see honoApp).
      const outer = new Hono({ strict: false });
      outer.route(prefix, honoApp());
      return listenNode(getRequestListener(outer.fetch));
    },
    async host(app, prefix) {
      const outer = new Hono();
      const handler = toHono(app);
      outer.all(prefix || '/', handler);
      outer.all(`${prefix}/*`, handler);
      return listenNode(getRequestListener(outer.fetch));
    },
  },
};

interface Comparison {
  path: string;
  baseline: () => Promise<Target>;
  candidate: () => Promise<Target>;
  /** Cases compared on their status alone, with the reason. */
  statusOnly?: Record<string, string>;
}

/**
 * An NGI app that throws before responding is answered by its host: `toExpress` hands the
 * error to Express's error handlers (`next(err)`), `toKoa` to Koa's, as their users expect of
 * a middleware; `toNodeHandler` has only ngi's plain 500. The page is the host's, the status
 * is the contract.
 */
const HOST_ERROR_PAGE = { 'thrown error: 500': 'the error page belongs to the host framework' };

/** A target built once, however many comparisons use it. */
function memo(make: () => Promise<Target>): () => Promise<Target> {
  let made: Promise<Target> | undefined;
  return () => (made ??= make());
}

const names = Object.keys(frameworks);
const Title: Record<string, string> = {
  express: 'Express',
  fastify: 'Fastify',
  koa: 'Koa',
  hono: 'Hono',
};
const comparisons: Comparison[] = [];
for (const name of names) {
  const fw = frameworks[name]!;
  comparisons.push({
    path: `${name} native = toNodeHandler(from${Title[name]})`,
    baseline: memo(async () => ({ origin: await fw.native(), mount: '' })),
    candidate: memo(async () => ({
      origin: await listenNode(toNodeHandler(await fw.asNgi())),
      mount: '',
    })),
  });
}
const ngiAtRoot = memo(async () => ({
  origin: await listenNode(toNodeHandler(ngiApp)),
  mount: '',
}));
const ngiAtMnt = memo(async () => ({
  origin: await listenNode(toNodeHandler(mount({ '/mnt': ngiApp }))),
  mount: '/mnt',
}));
for (const name of names) {
  const fw = frameworks[name]!;
  comparisons.push({
    path: `ngi = to${Title[name]}(ngi) at /`,
    baseline: ngiAtRoot,
    candidate: memo(async () => ({ origin: await fw.host(ngiApp, ''), mount: '' })),
    statusOnly: HOST_ERROR_PAGE,
  });
  comparisons.push({
    path: `ngi = to${Title[name]}(ngi) at /mnt`,
    baseline: ngiAtMnt,
    candidate: memo(async () => ({ origin: await fw.host(ngiApp, '/mnt'), mount: '/mnt' })),
    statusOnly: HOST_ERROR_PAGE,
  });
}
// Every other way ngi serves an app: the gateway's own listener, under the validator (each
// framework's app too: a correct app is answered byte for byte the same through it), and
// across a Fetch hop (the NGI app as a Fetch handler on @hono/node-server, and back).
comparisons.push({
  path: 'ngi = serve(ngi) HTTP listener',
  baseline: ngiAtRoot,
  candidate: memo(async () => {
    const handle = await serve(ngiApp, { http: 0, logFormat: 'off' });
    closers.push(() => handle.close(0));
    return { origin: `http://127.0.0.1:${handle.http!.port}`, mount: '' };
  }),
});
// The uwsgi listener behind real nginx, against the HTTP listener behind the same nginx
// (proxy_pass): what differs is only the protocol between them.
let behindNginx: ReturnType<typeof serve> | undefined;
const servedBehindNginx = () =>
  (behindNginx ??= serve(ngiApp, { http: 0, uwsgi: 0, logFormat: 'off' }).then((handle) => {
    closers.push(() => handle.close(0));
    return handle;
  }));
comparisons.push({
  path: 'ngi via nginx proxy_pass = via nginx uwsgi_pass',
  statusOnly: {
    // uwsgi_params passes PATH_INFO as nginx's normalised $document_uri (REQUEST_URI stays
    // raw), as for every uwsgi app; proxy_pass forwards the raw target.
    'path with %2e%2e': "nginx's uwsgi_params send the normalised path",
    // nginx closes its upstream connection when the client leaves; on uwsgi that reads as a
    // half-close, which plain uwsgi clients use to end a request, so the app learns of the
    // abort at its next write instead of at once.
    'client aborts mid-stream': 'the abort reaches the app at its next write',
  },
  baseline: memo(async () => {
    const handle = await servedBehindNginx();
    const nginx = await startNginx({
      server: `location / {
        proxy_pass http://127.0.0.1:${handle.http!.port};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_buffering off;
      }`,
    });
    closers.push(() => nginx.stop());
    return { origin: nginx.origin, mount: '' };
  }),
  candidate: memo(async () => {
    const handle = await servedBehindNginx();
    const nginx = await startNginx({
      server: uwsgiLocation(handle.uwsgi!.port, '/', 'uwsgi_buffering off;'),
    });
    closers.push(() => nginx.stop());
    return { origin: nginx.origin, mount: '' };
  }),
});
comparisons.push({
  path: 'ngi = toNodeHandler(validator(ngi))',
  baseline: ngiAtRoot,
  candidate: memo(async () => ({
    origin: await listenNode(toNodeHandler(validator(ngiApp))),
    mount: '',
  })),
});
comparisons.push({
  path: 'ngi = toNodeHandler(fromFetch(toFetch(ngi)))',
  baseline: ngiAtRoot,
  candidate: memo(async () => ({
    origin: await listenNode(toNodeHandler(fromFetch(toFetch(ngiApp)))),
    mount: '',
  })),
});
comparisons.push({
  path: 'ngi = toFetch(ngi) on @hono/node-server',
  baseline: ngiAtRoot,
  // What Fetch itself loses, listed in the README: the Request @hono/node-server builds
  // normalises dot segments (WHATWG URL), so the app sees /path/b for /path/a/%2e%2e/b.
  statusOnly: { 'path with %2e%2e': 'new Request(url) normalises dot segments' },
  candidate: memo(async () => ({
    origin: await listenNode(getRequestListener(toFetch(ngiApp))),
    mount: '',
  })),
});
for (const name of names) {
  const fw = frameworks[name]!;
  comparisons.push({
    path: `${name} native = toNodeHandler(validator(from${Title[name]}))`,
    baseline: memo(async () => ({ origin: await fw.native(), mount: '' })),
    candidate: memo(async () => ({
      origin: await listenNode(toNodeHandler(validator(await fw.asNgi()))),
      mount: '',
    })),
  });
}
for (const a of names) {
  const native = memo(async () => ({
    origin: await frameworks[a]!.mountedNatively('/legacy'),
    mount: '/legacy',
  }));
  for (const b of names) {
    comparisons.push({
      path: `${a} in ${a} = to${Title[b]}(from${Title[a]}) at /legacy`,
      baseline: native,
      candidate: memo(async () => ({
        origin: await frameworks[b]!.host(await frameworks[a]!.asNgi(), '/legacy'),
        mount: '/legacy',
      })),
    });
  }
}

/** Baseline observations, each made once. */
const seen = new Map<string, Promise<Observation>>();
function baselineRun(key: string, target: Target, index: number): Promise<Observation> {
  const id = `${key} ${index}`;
  let observation = seen.get(id);
  if (observation === undefined) {
    observation = run(target, cases[index]!);
    seen.set(id, observation);
  }
  return observation;
}

const results = new Map<string, boolean[]>();

describe('identical-behaviour matrix', () => {
  after(async () => {
    printTable();
    for (const close of closers) await close();
  });

  for (const comparison of comparisons) {
    it(comparison.path, async () => {
      const baseline = await comparison.baseline();
      const candidate = await comparison.candidate();
      const key = `${baseline.origin}${baseline.mount}`;
      const marks: boolean[] = [];
      const failures: string[] = [];
      for (let i = 0; i < cases.length; i++) {
        const expected = await baselineRun(key, baseline, i);
        const actual = await run(candidate, cases[i]!);
        try {
          if (comparison.statusOnly?.[cases[i]!.name] !== undefined) {
            assert.equal(actual.status, expected.status);
            assert.doesNotMatch(actual.body, /boom|\n\s+at /, 'no error message or stack leaks');
          } else assert.deepEqual(actual, expected);
          marks.push(true);
        } catch (error) {
          marks.push(false);
          failures.push(`${cases[i]!.name}: ${(error as Error).message}`);
        }
      }
      results.set(comparison.path, marks);
      assert.deepEqual(failures, [], failures.join('\n\n'));
    });
  }
});

function printTable(): void {
  const width = Math.max(...comparisons.map((c) => c.path.length));
  const header = cases.map((_, i) => String(i + 1).padStart(2)).join(' ');
  const lines = [
    '',
    'identical-behaviour matrix (✓ same response, ✗ different, · not run)',
    ...cases.map((c, i) => `  ${String(i + 1).padStart(2)}. ${c.name}`),
    '',
    `${''.padEnd(width)}  ${header}`,
    ...comparisons.map((c) => {
      const marks = results.get(c.path);
      const cells = cases.map((_, i) => ` ${marks === undefined ? '·' : marks[i] ? '✓' : '✗'}`);
      return `${c.path.padEnd(width)}  ${cells.join(' ')}`;
    }),
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

// One benchmark server per process: `node --import tsx bench/servers.ts <variant>` listens on
// 127.0.0.1 (an ephemeral port) and prints `{"port":N}` once ready. The ngi code comes from
// dist/ (the built package), as users run it.
import { mkdtempSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer } from 'node:http2';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCertificate } from '../test/helpers/tls.js';
import { uwsgiFloor } from './apps/uwsgi-floor.mjs';

const HELLO = 'Hello, World!';

/** A port, or the path of a Unix socket. */
type Listening = number | { path: string };
type Variant = () => Promise<RequestListener | { listen: () => Promise<Listening> }>;

/** A certificate for this run (TLS variants), made by openssl in a temp folder. */
function certificate(): { cert: string; key: string } {
  return makeCertificate(mkdtempSync(join(tmpdir(), 'ngi-bench-tls-')), 'bench');
}

const nodeHello: RequestListener = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
  res.end(HELLO);
};

async function ngiHello() {
  const { defineApp } = await import('ngi-gateway');
  return defineApp((_environ, startResponse) => {
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    return [HELLO];
  });
}

/** Wraps startResponse, as any NGI middleware does: forces the emulated Node path. */
function wrapped(app: import('ngi-gateway').App): import('ngi-gateway').App {
  return (environ, startResponse) => app(environ, (s, h, e) => startResponse(s, h, e));
}

async function expressHello() {
  const { default: express } = await import('express');
  const app = express();
  app.get('/', (_req, res) => {
    res.type('text/plain').send(HELLO);
  });
  return app;
}

/** `serve()` with one listener; the harness reads the port it prints. */
function served(
  listener: 'http' | 'uwsgi',
  app: () => Promise<import('ngi-gateway').App>,
): Variant {
  return async () => ({
    listen: async () => {
      const { serve } = await import('ngi-gateway');
      const handle = await serve(await app(), {
        [listener]: { host: '127.0.0.1', port: 0 },
        logFormat: 'off',
      });
      return handle[listener]!.port;
    },
  });
}

/** `serve()` on a Unix socket in a temp folder. */
function servedOnUnix(
  listener: 'http' | 'uwsgi',
  app: () => Promise<import('ngi-gateway').App>,
): Variant {
  return async () => ({
    listen: async () => {
      const { serve } = await import('ngi-gateway');
      const path = join(mkdtempSync(join(tmpdir(), 'ngi-bench-')), `${listener}.sock`);
      await serve(await app(), { [listener]: { path }, logFormat: 'off' });
      return { path };
    },
  });
}

/** `serve()` with its HTTPS listener (h2 and HTTP/1.1 by ALPN). */
function servedOverTls(app: () => Promise<import('ngi-gateway').App>): Variant {
  return async () => ({
    listen: async () => {
      const { serve } = await import('ngi-gateway');
      const handle = await serve(await app(), {
        https: { host: '127.0.0.1', port: 0 },
        ...certificate(),
        logFormat: 'off',
      });
      return handle.https!.port;
    },
  });
}

/**
 * The `ngi serve` command itself, from the build, as a user runs it (`--workers 0`: one
 * process, as the baselines): with what the command does for the app's kind (for a Hono or
 * Fetch app, the light global `Response`) and `serve()` does not. It stops with this process.
 */
function cliServed(module: string, ...flags: string[]): Variant {
  return async () => ({
    listen: async () => {
      const bin = fileURLToPath(new URL('../dist/bin/ngi.js', import.meta.url));
      const child = spawn(
        process.execPath,
        [bin, 'serve', module, '--http', '0', '--workers', '0', '--log-format', 'off', ...flags],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child.stderr!.setEncoding('utf8');
      let stderr = '';
      for await (const text of child.stderr!) {
        stderr += text as string;
        const listening = /http listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
        if (listening) {
          process.once('exit', () => child.kill());
          return Number(listening[1]);
        }
      }
      await once(child, 'exit');
      throw new Error(`ngi serve ${module} exited before listening:\n${stderr}`);
    },
  });
}

async function fetchHello(): Promise<{ fetch: (request: Request) => Response }> {
  return (await import('./apps/fetch-hello.mjs')).default;
}

const variants: Record<string, Variant> = {
  'uwsgi floor (node:net)': async () => ({
    listen: () => listenTcp(createNetServer((socket) => uwsgiFloor(socket))),
  }),
  'uwsgi floor unix (node:net)': async () => ({
    listen: () =>
      listenUnix(
        createNetServer((socket) => uwsgiFloor(socket)),
        'floor',
      ),
  }),
  // What a correct server adds on this path: the socket half-open until the peer closes (a
  // peer that half-closes after its request still gets the answer) and a timeout for it.
  'uwsgi floor unix, half-open with a timeout (node:net)': async () => ({
    listen: () =>
      listenUnix(
        createNetServer({ allowHalfOpen: true }, (socket) => uwsgiFloor(socket, 30_000)),
        'floor-half-open',
      ),
  }),
  'ngi serve --uwsgi unix': servedOnUnix('uwsgi', ngiHello),
  'ngi serve --uwsgi unix (express app)': servedOnUnix('uwsgi', async () => {
    const { fromNodeHandler } = await import('ngi-gateway/node');
    return fromNodeHandler(await expressHello());
  }),
  'ngi serve --https': servedOverTls(ngiHello),
  'node:https': async () => ({
    listen: () => {
      const server = createHttpsServer({ ...readPem(certificate()) }, nodeHello);
      server.keepAliveTimeout = 65_000;
      return listenTcp(server);
    },
  }),
  'node:http2 (allowHTTP1)': async () => ({
    listen: () =>
      listenTcp(
        // The compatibility request/response take the same two calls as node:http's.
        createSecureServer({ ...readPem(certificate()), allowHTTP1: true }, nodeHello as never),
      ),
  }),
  'node:http': async () => (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
    res.end(HELLO);
  },
  'ngi toNodeHandler': async () => {
    const { toNodeHandler } = await import('ngi-gateway/node');
    return toNodeHandler(await ngiHello()) as RequestListener;
  },
  'ngi serve --http': served('http', ngiHello),
  'ngi serve --uwsgi': served('uwsgi', ngiHello),
  express: expressHello,
  'ngi serve --uwsgi (express app)': served('uwsgi', async () => {
    const { fromNodeHandler } = await import('ngi-gateway/node');
    return fromNodeHandler(await expressHello());
  }),
  'express via ngi (fast path)': async () => {
    const { toNodeHandler, fromNodeHandler } = await import('ngi-gateway/node');
    return toNodeHandler(fromNodeHandler(await expressHello())) as RequestListener;
  },
  'express via ngi (emulated)': async () => {
    const { toNodeHandler, fromNodeHandler } = await import('ngi-gateway/node');
    return toNodeHandler(wrapped(fromNodeHandler(await expressHello()))) as RequestListener;
  },
  'express + toExpress(ngi)': async () => {
    const { default: express } = await import('express');
    const { toExpress } = await import('ngi-gateway/express');
    const app = express();
    app.use('/', toExpress(await ngiHello()));
    return app;
  },
  fastify: async () => {
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    app.get('/', (_req, reply) => {
      reply.type('text/plain').send(HELLO);
    });
    return fastifyListen(app);
  },
  'fastify + toFastify(ngi)': async () => {
    const { default: Fastify } = await import('fastify');
    const { toFastify } = await import('ngi-gateway/fastify');
    const app = Fastify();
    await app.register(toFastify(await ngiHello()), { prefix: '/' });
    return fastifyListen(app);
  },
  // What toFastify did before it answered through `reply`: the reply hijacked, the app
  // writing straight to the Node response (no onSend hooks, no plugins on the answer).
  'fastify + ngi written directly (hijack)': async () => {
    const { default: Fastify } = await import('fastify');
    const { toNodeHandler } = await import('ngi-gateway/node');
    const handler = toNodeHandler(await ngiHello());
    const app = Fastify();
    app.all('/*', (request, reply) => {
      reply.hijack();
      handler(request.raw, reply.raw);
    });
    return fastifyListen(app);
  },
  koa: async () => (await import('./apps/koa-hello.mjs')).default.callback(),
  'koa + toKoa(ngi)': async () => {
    const { default: Koa } = await import('koa');
    const { toKoa } = await import('ngi-gateway/koa');
    const app = new Koa();
    app.use(toKoa(await ngiHello()));
    return app.callback();
  },
  // What toKoa did before it answered through Koa: `ctx.respond = false`, the app writing
  // straight to the Node response (middleware after next() cannot act on it).
  'koa + ngi written directly (ctx.respond = false)': async () => {
    const { default: Koa } = await import('koa');
    const { toNodeHandler } = await import('ngi-gateway/node');
    const handler = toNodeHandler(await ngiHello());
    const app = new Koa();
    app.use(
      (ctx) =>
        new Promise<void>((resolve) => {
          ctx.respond = false;
          ctx.res.once('close', resolve);
          handler(ctx.req, ctx.res);
        }),
    );
    return app.callback();
  },
  'hono on @hono/node-server': async () => {
    const { Hono } = await import('hono');
    const { getRequestListener } = await import('@hono/node-server');
    const app = new Hono();
    app.get('/', (c) => c.text(HELLO));
    return getRequestListener(app.fetch);
  },
  'hono + toHono(ngi) on @hono/node-server': async () => {
    const { Hono } = await import('hono');
    const { getRequestListener } = await import('@hono/node-server');
    const { toHono } = await import('ngi-gateway/hono');
    const app = new Hono();
    // One route, as a mount is written (and as the baseline has): `/*` matches `/` too, and two
    // matching routes would make Hono compose them, asynchronously.
    app.all('/*', toHono(await ngiHello()));
    return getRequestListener(app.fetch);
  },
  'hono under ngi serve': cliServed('bench/apps/hono-hello.mjs'),
  'hono under ngi serve --native-response': cliServed(
    'bench/apps/hono-hello.mjs',
    '--native-response',
  ),
  'fetch on @hono/node-server': async () => {
    const { getRequestListener } = await import('@hono/node-server');
    return getRequestListener((await fetchHello()).fetch);
  },
  'fetch on srvx': async () => ({
    listen: async () => {
      const { serve } = await import('srvx');
      const server = serve({
        fetch: (await fetchHello()).fetch,
        port: 0,
        hostname: '127.0.0.1',
        silent: true,
      });
      await server.ready();
      return Number(new URL(server.url!).port);
    },
  }),
  'fetch under ngi serve': cliServed('bench/apps/fetch-hello.mjs'),
  'hono via ngi (fromHono + toNodeHandler)': async () => {
    const { Hono } = await import('hono');
    const { fromHono } = await import('ngi-gateway/hono');
    const { toNodeHandler } = await import('ngi-gateway/node');
    const app = new Hono();
    app.get('/', (c) => c.text(HELLO));
    return toNodeHandler(fromHono(app)) as RequestListener;
  },
};

function readPem(files: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(files.cert), key: readFileSync(files.key) };
}

async function listenUnix(server: import('node:net').Server, name: string): Promise<Listening> {
  const path = join(mkdtempSync(join(tmpdir(), 'ngi-bench-')), `${name}.sock`);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path };
}

function listenTcp(server: import('node:net').Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

async function fastifyListen(app: import('fastify').FastifyInstance) {
  return {
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' });
      return (app.server.address() as AddressInfo).port;
    },
  };
}

const name = process.argv[2] ?? '';
const variant = variants[name];
if (variant === undefined) {
  console.error(
    `unknown variant ${JSON.stringify(name)}; known: ${Object.keys(variants).join(', ')}`,
  );
  process.exit(2);
}
const made = await variant();
let port: Listening;
if (typeof made === 'function') {
  const server = createServer(made);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
} else {
  port = await made.listen();
}
process.stdout.write(
  JSON.stringify(typeof port === 'number' ? { port } : { port: 0, path: port.path }) + '\n',
);
process.on('SIGTERM', () => process.exit(0));

// A baseline server for bench/callgrind.mjs: `node bench/_cg-native.mjs <variant> <port>`
// listens on 127.0.0.1:<port> and exits cleanly on SIGTERM (so callgrind writes its counts).
import { createServer } from 'node:http';

const [variant, portText] = process.argv.slice(2);
const port = Number(portText);
const HELLO = 'Hello, World!';

const variants = {
  'uwsgi floor': async () => {
    const { createServer: createNetServer } = await import('node:net');
    const { uwsgiFloor } = await import('./apps/uwsgi-floor.mjs');
    return createNetServer((socket) => uwsgiFloor(socket)).listen(port, '127.0.0.1');
  },
  'node:http': async () =>
    createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
      res.end(HELLO);
    }).listen(port, '127.0.0.1'),
  toNodeHandler: async () => {
    const { toNodeHandler } = await import('ngi-gateway/node');
    const { default: app } = await import('./apps/ngi-hello.mjs');
    return createServer(toNodeHandler(app)).listen(port, '127.0.0.1');
  },
  '@hono/node-server (hono)': async () => {
    const { serve } = await import('@hono/node-server');
    const { default: app } = await import('./apps/hono-hello.mjs');
    return serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
  },
  '@hono/node-server (fetch)': async () => {
    const { serve } = await import('@hono/node-server');
    const { default: app } = await import('./apps/fetch-hello.mjs');
    return serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
  },
  srvx: async () => {
    const { serve } = await import('srvx');
    const { default: app } = await import('./apps/fetch-hello.mjs');
    const server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1', silent: true });
    await server.ready();
    return server;
  },
  koa: async () => (await import('./apps/koa-hello.mjs')).default.listen(port, '127.0.0.1'),
  'koa + toKoa': async () => {
    const { default: Koa } = await import('koa');
    const { toKoa } = await import('ngi-gateway/koa');
    const { default: ngi } = await import('./apps/ngi-hello.mjs');
    const app = new Koa();
    app.use(toKoa(ngi));
    return app.listen(port, '127.0.0.1');
  },
  fastify: async () => {
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    app.get('/', (_req, reply) => void reply.type('text/plain').send(HELLO));
    return app.listen({ port, host: '127.0.0.1' });
  },
  'fastify + toFastify': async () => {
    const { default: Fastify } = await import('fastify');
    const { toFastify } = await import('ngi-gateway/fastify');
    const { default: ngi } = await import('./apps/ngi-hello.mjs');
    const app = Fastify();
    await app.register(toFastify(ngi), { prefix: '/' });
    return app.listen({ port, host: '127.0.0.1' });
  },
  'hono route': async () => {
    const { serve } = await import('@hono/node-server');
    const { Hono } = await import('hono');
    const app = new Hono().get('/', (c) => c.text(HELLO));
    return serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
  },
  'hono + toHono': async () => {
    const { serve } = await import('@hono/node-server');
    const { Hono } = await import('hono');
    const { toHono } = await import('ngi-gateway/hono');
    const { default: ngi } = await import('./apps/ngi-hello.mjs');
    const app = new Hono().all('/*', toHono(ngi));
    return serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
  },
  'express listen': async () => {
    const { default: app } = await import('./apps/express-hello.mjs');
    return app.listen(port, '127.0.0.1');
  },
};

const start = variants[variant];
if (start === undefined) {
  console.error(`unknown variant ${variant}; one of: ${Object.keys(variants).join(', ')}`);
  process.exit(2);
}
await start();
process.on('SIGTERM', () => process.exit(0));

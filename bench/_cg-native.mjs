// A baseline server for bench/callgrind.mjs: `node bench/_cg-native.mjs <variant> <port>`
// listens on 127.0.0.1:<port> and exits cleanly on SIGTERM (so callgrind writes its counts).
import { createServer } from 'node:http';

const [variant, portText] = process.argv.slice(2);
const port = Number(portText);
const HELLO = 'Hello, World!';

const variants = {
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

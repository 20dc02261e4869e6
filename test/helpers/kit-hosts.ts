// Every host ngi ships, as the conformance kit's `start(app)`: the kit hosts its own NGI app
// on each and checks the wire. Each start listens on 127.0.0.1 and a free port; close() leaves
// no server, connection or process behind.
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import koaMount from 'koa-mount';
import { Hono } from 'hono';
import { getRequestListener } from '@hono/node-server';
import type { App } from '../../src/core/types.js';
import type { ErrorStream } from '../../src/core/types.js';
import { createHttpServer } from '../../src/server/http-listener.js';
import { createUwsgiServer } from '../../src/server/uwsgi-listener.js';
import { serve } from '../../src/server/serve.js';
import { makeCertificate } from './tls.js';
import { toNodeHandler } from '../../adapters/node.js';
import { toExpress } from '../../adapters/express.js';
import { passBadUrls, toFastify } from '../../adapters/fastify.js';
import { toKoa } from '../../adapters/koa.js';
import { toHono } from '../../adapters/hono.js';
import { toFetch } from '../../adapters/fetch.js';
import { startNginx, uwsgiLocation } from './nginx.js';

export interface KitHost {
  url: string;
  close(): Promise<void>;
  /** The certificate to trust, for an https: URL. */
  ca?: string;
}

/** The host logs app errors the kit provokes on purpose: keep them, show them on failure. */
export const quiet: ErrorStream & { lines: string[] } = {
  lines: [],
  write(line: string) {
    if (this.lines.length < 200) this.lines.push(line);
  },
};

/** Listens on 127.0.0.1 and a free port; `path` is where the app is mounted. */
export async function listening(server: Server, path = ''): Promise<KitHost> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    close: async () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** The hosts ngi ships, by the name a report is printed under. */
export const kitHosts: Record<string, (app: App) => Promise<KitHost>> = {
  'ngi HTTP listener': (app) => listening(createHttpServer(app, { errors: quiet })),

  'ngi HTTPS listener, HTTP/1.1 over TLS': async (app) => {
    // A self-signed certificate made by openssl for this run, trusted by the kit's client alone.
    const dir = mkdtempSync(join(tmpdir(), 'ngi-kit-tls-'));
    const { cert, key } = makeCertificate(dir, 'kit');
    const handle = await serve(app, { https: 0, cert, key, logFormat: 'off', errors: quiet });
    return {
      url: `https://127.0.0.1:${handle.https!.port}`,
      ca: readFileSync(cert, 'utf8'),
      close: async () => {
        await handle.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },

  'toNodeHandler on node:http': (app) =>
    listening(createServer(toNodeHandler(app, { errors: quiet }))),

  'uwsgi listener behind nginx uwsgi_pass': async (app) => {
    const backend = createUwsgiServer(app, { errors: quiet });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const { port } = backend.address() as AddressInfo;
    // Streaming and backpressure reach the client only without nginx's response buffering.
    const nginx = await startNginx({
      server: uwsgiLocation(port, '/', 'uwsgi_buffering off; client_max_body_size 0;'),
    });
    return {
      url: nginx.origin,
      close: async () => {
        await nginx.stop();
        backend.close();
      },
    };
  },

  'toExpress under app.use("/legacy")': (app) => {
    const outer = express();
    outer.use('/legacy', toExpress(app, { errors: quiet }));
    // toExpress hands an error before the head to next(err): Express's handling answers it.
    // Its default page shows the stack outside production; a real app has its own handler.
    outer.use(
      (
        _error: unknown,
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        res.status(500).type('text/plain').send('Internal Server Error');
      },
    );
    return listening(createServer(outer), '/legacy');
  },

  'toFastify registered with prefix /legacy': async (app) => {
    // passBadUrls: Fastify's router would answer %FF with its own 400 (see the README).
    const fastify = Fastify({ frameworkErrors: passBadUrls() });
    await fastify.register(toFastify(app, { errors: quiet }), { prefix: '/legacy' });
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const { port } = fastify.server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/legacy`,
      close: async () => {
        fastify.server.closeAllConnections();
        await fastify.close();
      },
    };
  },

  'toKoa under koa-mount("/legacy")': (app) => {
    const koa = new Koa();
    // Koa answers an error before the head itself and logs it to the console unless silent.
    koa.silent = true;
    koa.use(koaMount('/legacy', toKoa(app, { errors: quiet })));
    return listening(createServer(koa.callback()), '/legacy');
  },

  'toHono on hono.all("/legacy/*"), @hono/node-server': (app) => {
    const hono = new Hono();
    hono.all('/legacy/*', toHono(app, { errors: quiet }));
    return listening(createServer(getRequestListener(hono.fetch)), '/legacy');
  },

  'toFetch on @hono/node-server': (app) =>
    listening(
      createServer(
        getRequestListener(toFetch(app, { errors: quiet }), { overrideGlobalObjects: false }),
      ),
    ),
};

/**
 * Cases a host cannot pass, and why (docs/spec.md §15). The test checks that each still fails,
 * so a fix shows up as a failing test asking for the exclusion to go.
 */
export const knownGaps: Record<string, Array<{ name: string; why: string }>> = {
  'uwsgi listener behind nginx uwsgi_pass': [
    {
      name: 'ngi.signal fires when the client goes away before the response',
      why:
        'nginx closes its upstream connection when the client leaves, which the uwsgi listener ' +
        '(allowHalfOpen, for peers that half-close after their request) takes for a half-close: ' +
        'it learns the client is gone only when it writes the response',
    },
  ],
  'toFetch on @hono/node-server': [
    {
      name: 'REQUEST_URI keeps encoded dot segments (%2e%2e) unresolved',
      why: 'a Fetch Request carries a WHATWG URL, whose parser resolves %2e%2e before ngi sees it',
    },
  ],
};

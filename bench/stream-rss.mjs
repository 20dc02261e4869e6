// RSS growth while 1 GiB streams through each adapter pair, down (the app sends it) and up
// (the client sends it, the app counts it): a host that buffered instead of streaming with
// backpressure would grow by the gigabyte. Each pair runs in a child process of its own, which
// samples its RSS every 20 ms; growth is the peak during the transfers over the RSS after a
// 32 MiB warm-up. The client reads as fast as it can, on 127.0.0.1.
//   npm run build && node bench/stream-rss.mjs            every host x every guest
//   STREAM_MIB=256 ONLY_HOST=toKoa node bench/stream-rss.mjs
import { fork } from 'node:child_process';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const MIB = 1024 * 1024;
const SIZE = Number(process.env.STREAM_MIB ?? 1024) * MIB;
const WARM_UP = 32 * MIB;
const CHUNK = Buffer.alloc(64 * 1024, 'n');

/** `total` bytes as a Node stream, one shared chunk at a time, as the consumer pulls. */
function bytesStream(total) {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(CHUNK.length, total - sent);
      sent += size;
      this.push(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size));
    },
  });
}

/** The same as a web stream. */
function webBytesStream(total) {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const size = Math.min(CHUNK.length, total - sent);
      sent += size;
      controller.enqueue(new Uint8Array(CHUNK.buffer, CHUNK.byteOffset, size));
    },
  });
}

/** The size asked for: `/down/<bytes>`. */
const sizeOf = (url) => Number(url.split('/').pop());

async function countNode(stream) {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.length;
  return bytes;
}

/** Each guest: a native app that streams GET /down/<n> and counts POST /up, as an NGI app. */
const guests = {
  ngi: async () => {
    const { defineApp } = await import('../dist/src/index.js');
    return defineApp(async (environ, startResponse) => {
      if (environ.REQUEST_METHOD === 'POST') {
        const bytes = await countNode(environ['ngi.input']);
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return [String(bytes)];
      }
      const total = sizeOf(environ.PATH_INFO);
      startResponse('200 OK', [
        ['Content-Type', 'application/octet-stream'],
        ['Content-Length', String(total)],
      ]);
      return bytesStream(total);
    });
  },
  fromExpress: async () => {
    const { default: express } = await import('express');
    const { fromExpress } = await import('../dist/adapters/express.js');
    const app = express();
    app.post('/up', async (req, res) => res.type('text/plain').send(String(await countNode(req))));
    app.get('/down/:size', (req, res) => {
      res.type('application/octet-stream').set('Content-Length', req.params.size);
      bytesStream(Number(req.params.size)).pipe(res);
    });
    return fromExpress(app);
  },
  fromKoa: async () => {
    const { default: Koa } = await import('koa');
    const { fromKoa } = await import('../dist/adapters/koa.js');
    const app = new Koa();
    app.use(async (ctx) => {
      if (ctx.method === 'POST') ctx.body = String(await countNode(ctx.req));
      else {
        ctx.type = 'application/octet-stream';
        ctx.length = sizeOf(ctx.path);
        ctx.body = bytesStream(sizeOf(ctx.path));
      }
    });
    return fromKoa(app);
  },
  fromFastify: async () => {
    const { default: Fastify } = await import('fastify');
    const { fromFastify } = await import('../dist/adapters/fastify.js');
    const fastify = Fastify();
    // The body stays a stream for the handler to count.
    fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
    fastify.post('/up', async (request) => String(await countNode(request.raw)));
    fastify.get('/down/:size', (request, reply) => {
      const total = Number(request.params.size);
      reply.type('application/octet-stream').header('content-length', total);
      return reply.send(bytesStream(total));
    });
    return fromFastify(fastify);
  },
  fromHono: async () => {
    const { Hono } = await import('hono');
    const { fromHono } = await import('../dist/adapters/hono.js');
    const hono = new Hono();
    hono.post('/up', async (c) => {
      let bytes = 0;
      for await (const chunk of c.req.raw.body) bytes += chunk.length;
      return c.text(String(bytes));
    });
    hono.get('/down/:size', (c) => {
      const total = Number(c.req.param('size'));
      return c.body(webBytesStream(total), 200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(total),
      });
    });
    return fromHono(hono);
  },
  fromFetch: async () => {
    const { fromFetch } = await import('../dist/adapters/fetch.js');
    return fromFetch(async (request) => {
      if (request.method === 'POST') {
        let bytes = 0;
        for await (const chunk of request.body) bytes += chunk.length;
        return new Response(String(bytes));
      }
      const total = sizeOf(new URL(request.url).pathname);
      return new Response(webBytesStream(total), {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(total) },
      });
    });
  },
};

/** Each host serves an NGI app at the root; resolves with its port. */
const hosts = {
  toNodeHandler: async (app) => {
    const { createServer } = await import('node:http');
    const { toNodeHandler } = await import('../dist/adapters/node.js');
    return listen(createServer(toNodeHandler(app)));
  },
  'ngi serve()': async (app) => {
    const { serve } = await import('../dist/src/index.js');
    const handle = await serve(app, { http: { host: '127.0.0.1', port: 0 }, logFormat: 'off' });
    return handle.http.port;
  },
  toExpress: async (app) => {
    const { createServer } = await import('node:http');
    const { default: express } = await import('express');
    const { toExpress } = await import('../dist/adapters/express.js');
    return listen(createServer(express().use(toExpress(app))));
  },
  toFastify: async (app) => {
    const { default: Fastify } = await import('fastify');
    const { toFastify } = await import('../dist/adapters/fastify.js');
    const fastify = Fastify();
    await fastify.register(toFastify(app));
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    return fastify.server.address().port;
  },
  toKoa: async (app) => {
    const { createServer } = await import('node:http');
    const { default: Koa } = await import('koa');
    const { toKoa } = await import('../dist/adapters/koa.js');
    return listen(createServer(new Koa().use(toKoa(app)).callback()));
  },
  toHono: async (app) => {
    const { createServer } = await import('node:http');
    const { Hono } = await import('hono');
    const { getRequestListener } = await import('@hono/node-server');
    const { toHono } = await import('../dist/adapters/hono.js');
    const hono = new Hono().all('/*', toHono(app));
    return listen(createServer(getRequestListener(hono.fetch)));
  },
  toFetch: async (app) => {
    const { createServer } = await import('node:http');
    const { getRequestListener } = await import('@hono/node-server');
    const { toFetch } = await import('../dist/adapters/fetch.js');
    return listen(createServer(getRequestListener(toFetch(app))));
  },
};

function listen(server) {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(server.address().port)),
  );
}

/** The child: serves one pair, samples its RSS, and reports when asked. */
async function child(hostName, guestName) {
  const port = await hosts[hostName](await guests[guestName]());
  let baseline = 0;
  let peak = 0;
  setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20).unref();
  process.on('message', (message) => {
    if (message === 'warm') {
      baseline = process.memoryUsage.rss();
      peak = baseline;
      process.send({ warm: true });
    } else if (message === 'report') {
      peak = Math.max(peak, process.memoryUsage.rss());
      process.send({ baseline, peak });
    }
  });
  process.send({ port });
}

function download(port, total) {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: `/down/${total}` }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

function upload(port, total) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/up',
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': total },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, bytes: Number(text) }));
        res.on('error', reject);
      },
    ).on('error', reject);
    bytesStream(total).pipe(req);
  });
}

const ask = (worker, message) =>
  new Promise((resolve) => {
    worker.once('message', resolve);
    worker.send(message);
  });

async function measure(hostName, guestName) {
  const worker = fork(fileURLToPath(import.meta.url), ['--child', hostName, guestName], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    const { port } = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
    });
    await download(port, WARM_UP);
    await upload(port, WARM_UP);
    await ask(worker, 'warm');
    const started = performance.now();
    const down = await download(port, SIZE);
    const up = await upload(port, SIZE);
    const seconds = (performance.now() - started) / 1000;
    const { baseline, peak } = await ask(worker, 'report');
    const intact =
      down.status === 200 && down.bytes === SIZE && up.status === 200 && up.bytes === SIZE;
    return { growth: (peak - baseline) / MIB, baseline: baseline / MIB, seconds, intact, down, up };
  } finally {
    worker.kill();
  }
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4]);
} else {
  const onlyHost = process.env.ONLY_HOST?.split(',');
  const onlyGuest = process.env.ONLY_GUEST?.split(',');
  console.log(
    `${SIZE / MIB} MiB down and ${SIZE / MIB} MiB up per pair, node ${process.version}; growth = peak RSS over the RSS after warm-up`,
  );
  console.log(
    ['host', 'guest', 'growth MiB', 'RSS after warm-up MiB', 'seconds', 'bytes'].join(' | '),
  );
  let worst = 0;
  for (const hostName of Object.keys(hosts).filter((h) => !onlyHost || onlyHost.includes(h))) {
    for (const guestName of Object.keys(guests).filter(
      (g) => !onlyGuest || onlyGuest.includes(g),
    )) {
      const result = await measure(hostName, guestName);
      worst = Math.max(worst, result.growth);
      console.log(
        [
          hostName,
          guestName,
          result.growth.toFixed(1),
          result.baseline.toFixed(1),
          result.seconds.toFixed(1),
          result.intact
            ? 'intact'
            : `LOST: down ${JSON.stringify(result.down)} up ${JSON.stringify(result.up)}`,
        ].join(' | '),
      );
    }
  }
  console.log(`largest growth: ${worst.toFixed(1)} MiB (goal < 64)`);
}

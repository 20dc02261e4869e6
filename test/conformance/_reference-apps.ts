// One reference behaviour set, written natively in Express, Fastify, Koa and Hono and once
// as an NGI app. Each app is written the way a user of that framework would write it; the
// matrix compares each with itself along different paths, so their outputs may differ from
// one framework to the next.
//
// What a mounted app echoes about its own URL is what it can rely on in its framework under
// a native mount: Express has `req.baseUrl`/`originalUrl`; koa-mount rewrites `ctx.path`;
// a Fastify plugin's routes and Hono's `route()` see the full path, which an app mounted
// through ngi does not (it sees the path below the mount, as every WSGI app does), so those
// two echo only their params.
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import busboy from 'busboy';
import express from 'express';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { Hono } from 'hono';
import { setCookie } from 'hono/cookie';
import { stream, streamSSE } from 'hono/streaming';
import Koa from 'koa';
import multer from 'multer';
import { defineApp } from '../../src/core/define-app.js';
import type { App, Environ } from '../../src/core/types.js';
import { pattern } from './_cases.js';
import { gate, observe } from './_side-channel.js';

export const JSON_VALUE = { a: 1, list: [1, 2, 3], text: 'ünï ✓' };
/** The 20 MB response body. */
export const BIG = pattern(20 * 1024 * 1024, 7);

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(source: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function digest(
  source: AsyncIterable<Uint8Array>,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of source) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { bytes, sha256: hash.digest('hex') };
}

interface Upload {
  fields: Record<string, string>;
  files: Array<{ field: string; name: string; bytes: number; sha256: string }>;
}

/** Parses a multipart body with busboy (for the apps whose framework has no parser of its own). */
function parseMultipart(contentType: string, body: Readable): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const result: Upload = { fields: {}, files: [] };
    const pending: Promise<void>[] = [];
    const parser = busboy({ headers: { 'content-type': contentType } });
    parser.on('field', (name, value) => (result.fields[name] = value));
    parser.on('file', (field, file, info: { filename: string }) => {
      pending.push(
        digest(file).then((d) => {
          result.files.push({ field, name: info.filename, ...d });
        }),
      );
    });
    parser.on('close', () => void Promise.all(pending).then(() => resolve(result), reject));
    parser.on('error', reject);
    body.pipe(parser);
  });
}

const sortFiles = (upload: Upload): Upload => ({
  fields: upload.fields,
  files: upload.files.sort((a, b) => a.field.localeCompare(b.field)),
});

// ---------------------------------------------------------------- Express

export function expressApp(): express.Express {
  const app = express();
  // finalhandler shows stacks in development; a stack differs along paths by nature.
  app.set('env', 'production');
  const upload = multer({ storage: multer.memoryStorage() });
  const where = (req: express.Request) => ({
    path: req.path,
    url: req.url,
    originalUrl: req.originalUrl,
    baseUrl: req.baseUrl,
  });
  app.get('/', (req, res) => {
    res.json({ root: true, ...where(req) });
  });
  app.get('/text', (_req, res) => {
    res.type('text/plain').send('hello text');
  });
  app.get('/json', (_req, res) => {
    res.json(JSON_VALUE);
  });
  app.get('/query', (req, res) => {
    res.json(req.query);
  });
  app.get('/path/*rest', (req, res) => {
    res.json({ rest: req.params.rest, ...where(req) });
  });
  app.post('/echo-json', express.json(), (req, res) => {
    res.json(req.body);
  });
  app.post('/form', express.urlencoded({ extended: false }), (req, res) => {
    res.json(req.body);
  });
  app.post('/binary', async (req, res) => {
    res.json(await digest(req));
  });
  app.post('/upload', upload.any(), (req, res) => {
    const files = (req.files as Express.Multer.File[]).map((f) => ({
      field: f.fieldname,
      name: f.originalname,
      bytes: f.size,
      sha256: sha256(f.buffer),
    }));
    res.json(sortFiles({ fields: { ...req.body }, files }));
  });
  app.get('/stream', async (req, res) => {
    res.type('text/plain');
    res.write('first\n');
    await gate(String(req.query.id));
    res.end('last\n');
  });
  app.get('/sse', async (req, res) => {
    res.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    res.write('data: 1\n\n');
    await gate(String(req.query.id));
    res.end('data: 2\n\n');
  });
  app.get('/cookies', (_req, res) => {
    res.cookie('a', '1');
    res.cookie('b', '2', { httpOnly: true });
    // No maxAge: Express would add an Expires computed from the clock.
    res.cookie('c', '3', { path: '/x', sameSite: 'lax' });
    res.send('three cookies');
  });
  app.get('/status/:code', (req, res) => {
    res.status(Number(req.params.code)).send(`status ${req.params.code}`);
  });
  app.get('/nocontent', (_req, res) => {
    res.status(204).end();
  });
  app.get('/etag', (_req, res) => {
    res.set('ETag', '"v1"').type('text/plain').send('etag body');
  });
  app.get('/chunks', (_req, res) => {
    res.type('text/plain');
    res.write('a');
    res.write('b');
    res.end('c');
  });
  app.get('/redirect', (_req, res) => {
    res.redirect('/text');
  });
  app.get('/throw', () => {
    throw new Error('boom');
  });
  app.get('/big', (_req, res) => {
    res.type('application/octet-stream').send(BIG);
  });
  app.get('/abort', (req, res) => {
    const id = String(req.query.id);
    res.on('close', () => observe(id, res.writableFinished ? 'finished' : 'client gone'));
    res.type('text/plain');
    res.write('first\n');
  });
  return app;
}

// ---------------------------------------------------------------- Fastify

/** The Fastify app as a plugin, so it can be registered natively under a prefix. */
export const fastifyPlugin: FastifyPluginCallback = (f, _options, done) => {
  f.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: 64 * 1024 * 1024 },
    (_request, body, parsed) => parsed(null, body),
  );
  f.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_r, body, parsed) => parsed(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  f.addContentTypeParser('multipart/form-data', (request, payload, parsed) => {
    parseMultipart(request.headers['content-type']!, payload).then(
      (upload) => parsed(null, sortFiles(upload)),
      (error: Error) => parsed(error),
    );
  });
  // Fastify's default 404 names the URL the instance was given, which under a mount is by
  // nature not the same string natively (full path) and through ngi (the path below it).
  f.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ error: 'Not Found' });
  });
  f.get('/', async () => ({ root: true }));
  f.get('/text', async (_request, reply) => reply.type('text/plain').send('hello text'));
  f.get('/json', async () => JSON_VALUE);
  f.get('/query', async (request) => request.query);
  f.get('/path/*', async (request) => ({ rest: (request.params as Record<string, string>)['*'] }));
  f.post('/echo-json', async (request) => request.body);
  f.post('/form', async (request) => request.body);
  f.post('/binary', async (request) => {
    const body = request.body as Buffer;
    return { bytes: body.length, sha256: sha256(body) };
  });
  f.post('/upload', async (request) => request.body);
  f.get('/stream', (request, reply) => {
    const body = new PassThrough();
    body.write('first\n');
    void reply.type('text/plain').send(body);
    void gate(String((request.query as Record<string, string>).id)).then(() => body.end('last\n'));
  });
  f.get('/sse', (request, reply) => {
    const body = new PassThrough();
    body.write('data: 1\n\n');
    void reply
      .header('Content-Type', 'text/event-stream')
      .header('Cache-Control', 'no-cache')
      .send(body);
    void gate(String((request.query as Record<string, string>).id)).then(() =>
      body.end('data: 2\n\n'),
    );
  });
  f.get('/cookies', async (_request, reply) =>
    reply
      .header('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/; HttpOnly', 'c=3; Path=/x; Max-Age=60'])
      .send('three cookies'),
  );
  f.get('/status/:code', async (request, reply) => {
    const code = (request.params as Record<string, string>).code!;
    return reply.code(Number(code)).send(`status ${code}`);
  });
  f.get('/nocontent', async (_request, reply) => reply.code(204).send());
  f.get('/etag', async (request, reply) => {
    void reply.header('ETag', '"v1"');
    if (request.headers['if-none-match'] === '"v1"') return reply.code(304).send();
    return reply.type('text/plain').send('etag body');
  });
  f.get('/chunks', (_request, reply) => {
    void reply.type('text/plain').send(Readable.from(['a', 'b', 'c']));
  });
  f.get('/redirect', async (_request, reply) => reply.redirect('/text'));
  f.get('/throw', async () => {
    throw new Error('boom');
  });
  f.get('/big', async (_request, reply) => reply.type('application/octet-stream').send(BIG));
  f.get('/abort', (request, reply) => {
    const id = String((request.query as Record<string, string>).id);
    const res = reply.raw;
    res.on('close', () => observe(id, res.writableFinished ? 'finished' : 'client gone'));
    const body = new PassThrough();
    body.write('first\n');
    void reply.type('text/plain').send(body);
  });
  done();
};

export function fastifyApp(): FastifyInstance {
  const app = Fastify({ logger: false });
  void app.register(fastifyPlugin);
  return app;
}

// ---------------------------------------------------------------- Koa

export function koaApp(): Koa {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx) => {
    const path = ctx.path;
    const id = String(ctx.query.id);
    if (path === '/') ctx.body = { root: true, path: ctx.path, url: ctx.url };
    else if (path === '/text') ctx.body = 'hello text';
    else if (path === '/json') ctx.body = JSON_VALUE;
    else if (path === '/query') ctx.body = ctx.query;
    else if (path.startsWith('/path/')) ctx.body = { path: ctx.path, url: ctx.url };
    else if (path === '/echo-json' && ctx.method === 'POST') {
      ctx.body = JSON.parse((await readAll(ctx.req)).toString('utf8'));
    } else if (path === '/form' && ctx.method === 'POST') {
      ctx.body = Object.fromEntries(new URLSearchParams((await readAll(ctx.req)).toString('utf8')));
    } else if (path === '/binary' && ctx.method === 'POST') ctx.body = await digest(ctx.req);
    else if (path === '/upload' && ctx.method === 'POST') {
      ctx.body = sortFiles(await parseMultipart(ctx.get('content-type'), ctx.req));
    } else if (path === '/stream' || path === '/sse') {
      const sse = path === '/sse';
      const body = new PassThrough();
      body.write(sse ? 'data: 1\n\n' : 'first\n');
      if (sse) {
        ctx.set('Cache-Control', 'no-cache');
        ctx.type = 'text/event-stream';
      } else ctx.type = 'text/plain';
      ctx.body = body;
      void gate(id).then(() => body.end(sse ? 'data: 2\n\n' : 'last\n'));
    } else if (path === '/cookies') {
      ctx.cookies.set('a', '1', { httpOnly: false });
      ctx.cookies.set('b', '2');
      ctx.cookies.set('c', '3', { path: '/x', sameSite: 'lax', httpOnly: false });
      ctx.body = 'three cookies';
    } else if (path.startsWith('/status/')) {
      ctx.status = Number(path.slice(8));
      ctx.body = `status ${path.slice(8)}`;
    } else if (path === '/nocontent') ctx.status = 204;
    else if (path === '/etag') {
      ctx.set('ETag', '"v1"');
      ctx.status = 200;
      if (ctx.fresh) ctx.status = 304;
      else ctx.body = 'etag body';
    } else if (path === '/chunks') {
      ctx.type = 'text/plain';
      ctx.body = Readable.from(['a', 'b', 'c']);
    } else if (path === '/redirect') ctx.redirect('/text');
    else if (path === '/throw') throw new Error('boom');
    else if (path === '/big') {
      ctx.type = 'application/octet-stream';
      ctx.body = BIG;
    } else if (path === '/abort') {
      const res = ctx.res;
      res.on('close', () => observe(id, res.writableFinished ? 'finished' : 'client gone'));
      const body = new PassThrough();
      body.write('first\n');
      ctx.type = 'text/plain';
      ctx.body = body;
    }
  });
  return app;
}

// ---------------------------------------------------------------- Hono

export function honoApp(): Hono {
  // Not strict: under `route('/legacy', app)` strict routing joins '/legacy' + '/' into
  // '/legacy', so '/legacy/' would be a 404 natively, while every prefix mount (ngi's,
  // Express's, koa-mount) gives the app '/' there, as WSGI does.
  const app = new Hono({ strict: false });
  app.onError((_error, c) => c.text('Internal Server Error', 500));
  app.get('/', (c) => c.json({ root: true }));
  app.get('/text', (c) => c.text('hello text'));
  app.get('/json', (c) => c.json(JSON_VALUE));
  app.get('/query', (c) => c.json(c.req.queries()));
  app.get('/path/:rest{.+}', (c) => c.json({ rest: c.req.param('rest') }));
  app.post('/echo-json', async (c) => c.json(await c.req.json()));
  app.post('/form', async (c) => c.json(await c.req.parseBody()));
  app.post('/binary', async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    return c.json({ bytes: body.length, sha256: sha256(body) });
  });
  app.post('/upload', async (c) => {
    const form = await c.req.parseBody();
    const upload: Upload = { fields: {}, files: [] };
    for (const [field, value] of Object.entries(form)) {
      if (typeof value === 'string') upload.fields[field] = value;
      else {
        const bytes = new Uint8Array(await value.arrayBuffer());
        upload.files.push({ field, name: value.name, bytes: bytes.length, sha256: sha256(bytes) });
      }
    }
    return c.json(sortFiles(upload));
  });
  app.get('/stream', (c) => {
    c.header('Content-Type', 'text/plain');
    return stream(c, async (s) => {
      await s.write('first\n');
      await gate(c.req.query('id')!);
      await s.write('last\n');
    });
  });
  app.get('/sse', (c) =>
    streamSSE(c, async (s) => {
      await s.writeSSE({ data: '1' });
      await gate(c.req.query('id')!);
      await s.writeSSE({ data: '2' });
    }),
  );
  app.get('/cookies', (c) => {
    setCookie(c, 'a', '1');
    setCookie(c, 'b', '2', { httpOnly: true });
    setCookie(c, 'c', '3', { path: '/x', maxAge: 60 });
    return c.text('three cookies');
  });
  app.get('/status/:code', (c) =>
    c.text(`status ${c.req.param('code')}`, Number(c.req.param('code')) as 200),
  );
  app.get('/nocontent', (c) => c.body(null, 204));
  app.get('/etag', (c) => {
    c.header('ETag', '"v1"');
    if (c.req.header('if-none-match') === '"v1"') return c.body(null, 304);
    return c.text('etag body');
  });
  app.get('/chunks', (c) => {
    c.header('Content-Type', 'text/plain');
    return stream(c, async (s) => {
      for (const part of ['a', 'b', 'c']) await s.write(part);
    });
  });
  app.get('/redirect', (c) => c.redirect('/text'));
  app.get('/throw', () => {
    throw new Error('boom');
  });
  app.get('/big', (c) =>
    c.body(new Uint8Array(BIG), 200, { 'Content-Type': 'application/octet-stream' }),
  );
  app.get('/abort', (c) => {
    const id = c.req.query('id')!;
    c.header('Content-Type', 'text/plain');
    return stream(c, async (s) => {
      s.onAbort(() => observe(id, 'client gone'));
      await s.write('first\n');
      await gate(id);
    });
  });
  return app;
}

// ---------------------------------------------------------------- NGI

function query(environ: Environ): URLSearchParams {
  return new URLSearchParams(environ.QUERY_STRING);
}

const text = (body: string): [string, string][] => [
  ['Content-Type', 'text/plain; charset=utf-8'],
  ['Content-Length', String(Buffer.byteLength(body))],
];
const json = (value: unknown): [[string, string][], string] => {
  const body = JSON.stringify(value);
  return [[['Content-Type', 'application/json; charset=utf-8']], body];
};

/** The NGI app: written against the contract alone. */
export const ngiApp: App = defineApp(async (environ, startResponse) => {
  const path = environ.PATH_INFO;
  const method = environ.REQUEST_METHOD;
  const id = query(environ).get('id') ?? '';
  const reply = (status: string, [headers, body]: [[string, string][], string]) => {
    startResponse(status, headers);
    return [body];
  };
  if (path === '' || path === '/') {
    return reply(
      '200 OK',
      json({ root: true, script: environ.SCRIPT_NAME, path, uri: environ.REQUEST_URI }),
    );
  }
  if (method === 'OPTIONS') {
    startResponse('204 No Content', [['Allow', 'GET, HEAD, POST, OPTIONS']]);
    return [];
  }
  if (path === '/text') {
    startResponse('200 OK', text('hello text'));
    return ['hello text'];
  }
  if (path === '/json') return reply('200 OK', json(JSON_VALUE));
  if (path === '/query') {
    const q: Record<string, string[]> = {};
    for (const [k, v] of query(environ)) (q[k] ??= []).push(v);
    return reply('200 OK', json(q));
  }
  if (path.startsWith('/path/')) {
    return reply(
      '200 OK',
      json({
        script: environ.SCRIPT_NAME,
        path,
        uri: environ.REQUEST_URI,
        query: environ.QUERY_STRING,
      }),
    );
  }
  const input = environ['ngi.input'];
  if (method === 'POST' && path === '/echo-json') {
    return reply('200 OK', json(JSON.parse((await readAll(input)).toString('utf8'))));
  }
  if (method === 'POST' && path === '/form') {
    return reply(
      '200 OK',
      json(Object.fromEntries(new URLSearchParams((await readAll(input)).toString()))),
    );
  }
  if (method === 'POST' && path === '/binary') return reply('200 OK', json(await digest(input)));
  if (method === 'POST' && path === '/upload') {
    return reply(
      '200 OK',
      json(sortFiles(await parseMultipart(environ.CONTENT_TYPE ?? '', input))),
    );
  }
  if (path === '/stream' || path === '/sse') {
    const sse = path === '/sse';
    startResponse('200 OK', [
      ['Content-Type', sse ? 'text/event-stream' : 'text/plain; charset=utf-8'],
      ['Cache-Control', 'no-cache'],
    ]);
    return (async function* () {
      yield sse ? 'data: 1\n\n' : 'first\n';
      await gate(id);
      yield sse ? 'data: 2\n\n' : 'last\n';
    })();
  }
  if (path === '/cookies') {
    startResponse('200 OK', [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Set-Cookie', 'a=1; Path=/'],
      ['Set-Cookie', 'b=2; Path=/; HttpOnly'],
      ['Set-Cookie', 'c=3; Path=/x; Max-Age=60'],
    ]);
    return ['three cookies'];
  }
  if (path.startsWith('/status/')) {
    const code = path.slice(8);
    const reason =
      { '299': 'Custom', '418': "I'm a Teapot", '599': 'Network Timeout' }[code] ?? 'Other';
    startResponse(`${code} ${reason}`, text(`status ${code}`));
    return [`status ${code}`];
  }
  if (path === '/nocontent') {
    startResponse('204 No Content', []);
    return [];
  }
  if (path === '/etag') {
    if (environ.HTTP_IF_NONE_MATCH === '"v1"') {
      startResponse('304 Not Modified', [['ETag', '"v1"']]);
      return [];
    }
    startResponse('200 OK', [['ETag', '"v1"'], ...text('etag body')]);
    return ['etag body'];
  }
  if (path === '/chunks') {
    startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
    return (function* () {
      yield 'a';
      yield 'b';
      yield 'c';
    })();
  }
  if (path === '/redirect') {
    startResponse('302 Found', [['Location', `${environ.SCRIPT_NAME}/text`], ...text('')]);
    return [];
  }
  if (path === '/throw') throw new Error('boom');
  if (path === '/big') {
    startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
    return [BIG];
  }
  if (path === '/abort') {
    const signal = environ['ngi.signal'];
    startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield 'first\n';
          await new Promise<void>((resolve) => {
            signal.addEventListener('abort', () => resolve(), { once: true });
            void gate(id).then(resolve);
          });
        } finally {
          observe(id, signal.aborted ? 'client gone' : 'finished');
        }
      },
    };
  }
  startResponse('404 Not Found', text('not found'));
  return ['not found'];
});

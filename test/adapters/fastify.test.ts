import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { fromFastify, passBadUrls, toFastify } from '../../adapters/fastify.js';
import { toNodeHandler } from '../../adapters/node.js';
import { mount } from '../../src/middleware/mount.js';
import type { App, Chunk } from '../../src/core/types.js';
import { listen, close, logSink, sendRequest, settleWithin } from '../helpers/servers.js';

/** A promise with its resolver, for steering a producer from the test. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

function portOf(server: Server | FastifyInstance): number {
  const target = 'listen' in server && 'server' in server ? server.server : server;
  return (target.address() as AddressInfo).port;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface Sent {
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/**
 * One request on its own connection, the path written to the wire exactly as given (raw
 * escapes such as `%FF` included). A body always carries its Content-Length: Node would
 * otherwise send a GET body unframed.
 */
function send(port: number, method: string, path: string, sent: Sent = {}): Promise<Answer> {
  const headers = { ...sent.headers };
  if (sent.body !== undefined) headers['content-length'] = String(Buffer.byteLength(sent.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false });
    req.once('error', reject);
    req.once('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.end(sent.body);
  });
}

function json(answer: Answer): Record<string, unknown> {
  return JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
}

/** Lets pending I/O callbacks run. */
const settleTick = () => new Promise((resolve) => setImmediate(resolve));

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** Polls a counter until it stops moving (a producer held back by backpressure), bounded in time. */
async function settledValue(read: () => number, limitMs = 10_000): Promise<number> {
  const deadline = Date.now() + limitMs;
  let last = read();
  let still = 0;
  while (still < 8 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const now = read();
    still = now === last ? still + 1 : 0;
    last = now;
  }
  return last;
}

/** Echoes the environ it got (CGI keys), the body's size and hash, and three cookies. */
const environApp: App = async (environ, startResponse) => {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of environ['ngi.input']) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const seen = {
    REQUEST_METHOD: environ.REQUEST_METHOD,
    SCRIPT_NAME: environ.SCRIPT_NAME,
    PATH_INFO: environ.PATH_INFO,
    QUERY_STRING: environ.QUERY_STRING,
    REQUEST_URI: environ.REQUEST_URI,
    CONTENT_TYPE: environ.CONTENT_TYPE ?? null,
    REMOTE_ADDR: environ.REMOTE_ADDR,
    bytes,
    sha256: hash.digest('hex'),
  };
  startResponse('200 OK', [
    ['Content-Type', 'application/json'],
    ['Cache-Control', 'no-store'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2; Path=/'],
    ['Set-Cookie', 'c=3; HttpOnly'],
  ]);
  return [JSON.stringify(seen)];
};

describe('toFastify', () => {
  let fastify: FastifyInstance;
  let port: number;
  let viaMount: Server;

  before(async () => {
    fastify = Fastify();
    fastify.addHook('onRequest', async (_request, reply) => {
      reply.header('x-frame-options', 'DENY');
      reply.header('cache-control', 'public, max-age=60');
    });
    await fastify.register(toFastify(environApp), { prefix: '/legacy' });
    await fastify.register(
      async (api) => {
        await api.register(toFastify(environApp), { prefix: '/legacy' });
      },
      { prefix: '/api' },
    );
    fastify.get('/legacy/new', async () => 'a Fastify route inside the prefix');
    fastify.post('/json', async (request) => ({ parsed: request.body }));
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    port = portOf(fastify);
    viaMount = await listen(toNodeHandler(mount({ '/legacy': environApp })) as never);
  });
  after(async () => {
    close(viaMount);
    await fastify.close();
  });

  it('answers every method under the prefix, which becomes SCRIPT_NAME', async () => {
    // PROPFIND is a method Fastify has no routes for at all.
    for (const method of [
      'GET',
      'OPTIONS',
      'POST',
      'PUT',
      'PATCH',
      'DELETE',
      'TRACE',
      'PROPFIND',
    ]) {
      const answer = await send(port, method, '/legacy/x/y?q=1');
      assert.equal(answer.status, 200, method);
      assert.deepEqual(
        json(answer),
        {
          REQUEST_METHOD: method,
          SCRIPT_NAME: '/legacy',
          PATH_INFO: '/x/y',
          QUERY_STRING: 'q=1',
          REQUEST_URI: '/legacy/x/y?q=1',
          CONTENT_TYPE: null,
          REMOTE_ADDR: '127.0.0.1',
          bytes: 0,
          sha256: sha256(''),
        },
        method,
      );
    }
  });

  it('answers HEAD with the app itself: its headers, no body', async () => {
    const head = await send(port, 'HEAD', '/legacy/x');
    const get = await send(port, 'GET', '/legacy/x');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-type'], 'application/json');
    assert.deepEqual(head.headers['set-cookie'], get.headers['set-cookie']);
  });

  it('passes the body of a GET and of a QUERY to the app', async () => {
    const get = await send(port, 'GET', '/legacy/search', { body: 'find me' });
    assert.equal(json(get).bytes, 7);
    assert.equal(json(get).sha256, sha256('find me'));
    const query = await send(port, 'QUERY', '/legacy/search', {
      headers: { 'content-type': 'application/sql' },
      body: 'select 1',
    });
    assert.equal(query.status, 200);
    assert.equal(json(query).REQUEST_METHOD, 'QUERY');
    assert.equal(json(query).sha256, sha256('select 1'));
  });

  it('answers the prefix itself, with and without a trailing slash, as mount() does', async () => {
    for (const path of ['/legacy', '/legacy/', '/legacy?x=1', '/legacy/?x=1', '/legacy/a/']) {
      const [plugin, mounted] = await Promise.all([
        send(port, 'GET', path),
        send(portOf(viaMount), 'GET', path),
      ]);
      assert.equal(plugin.status, 200, path);
      const { SCRIPT_NAME, PATH_INFO, QUERY_STRING, REQUEST_URI } = json(mounted);
      assert.deepEqual(
        [json(plugin).SCRIPT_NAME, json(plugin).PATH_INFO, json(plugin).QUERY_STRING],
        [SCRIPT_NAME, PATH_INFO, QUERY_STRING],
        path,
      );
      assert.equal(json(plugin).REQUEST_URI, REQUEST_URI, path);
    }
    assert.equal(json(await send(port, 'GET', '/legacy')).PATH_INFO, '');
    assert.equal(json(await send(port, 'GET', '/legacy/')).PATH_INFO, '/');
  });

  it('adds nested register prefixes up into SCRIPT_NAME', async () => {
    const deep = json(await send(port, 'POST', '/api/legacy/z?k=v', { body: 'nested' }));
    assert.deepEqual(
      [deep.SCRIPT_NAME, deep.PATH_INFO, deep.REQUEST_URI, deep.bytes],
      ['/api/legacy', '/z', '/api/legacy/z?k=v', 6],
    );
    const bare = json(await send(port, 'GET', '/api/legacy'));
    assert.deepEqual([bare.SCRIPT_NAME, bare.PATH_INFO], ['/api/legacy', '']);
  });

  it('hands the app raw paths as sent: REQUEST_URI undecoded, PATH_INFO decoded', async () => {
    const slash = json(await send(port, 'GET', '/legacy/a%2Fb/c?x=%2F'));
    assert.deepEqual(
      [slash.PATH_INFO, slash.REQUEST_URI, slash.QUERY_STRING],
      ['/a/b/c', '/legacy/a%2Fb/c?x=%2F', 'x=%2F'],
    );
    const utf8 = json(await send(port, 'GET', '/legacy/caf%C3%A9/%E2%82%AC'));
    assert.deepEqual(
      [utf8.PATH_INFO, utf8.REQUEST_URI],
      ['/café/€', '/legacy/caf%C3%A9/%E2%82%AC'],
    );
    const nested = json(await send(port, 'GET', '/api/legacy/a%2Fb'));
    assert.deepEqual([nested.SCRIPT_NAME, nested.PATH_INFO], ['/api/legacy', '/a/b']);
  });

  it('leaves an undecodable path (%FF) to Fastify, which refuses it with 400 FST_ERR_BAD_URL', async () => {
    const answer = await send(port, 'GET', '/legacy/%FF');
    assert.equal(answer.status, 400);
    assert.equal(json(answer).code, 'FST_ERR_BAD_URL');
  });

  it('hands an undecodable path to the app exactly as sent when Fastify is built with passBadUrls()', async () => {
    const lenient = Fastify({ frameworkErrors: passBadUrls() });
    // The deeper prefix first: the longest one wins, not the last one registered.
    await lenient.register(toFastify(environApp), { prefix: '/legacy/deeper' });
    await lenient.register(toFastify(environApp), { prefix: '/legacy' });
    await lenient.listen({ port: 0, host: '127.0.0.1' });
    try {
      const at = portOf(lenient);
      const latin = json(await send(at, 'GET', '/legacy/caf%E9?x=%FF'));
      assert.deepEqual(
        [latin.SCRIPT_NAME, latin.PATH_INFO, latin.REQUEST_URI, latin.QUERY_STRING],
        ['/legacy', '/café', '/legacy/caf%E9?x=%FF', 'x=%FF'],
      );
      const longest = json(await send(at, 'POST', '/legacy/deeper/%FF', { body: 'kept' }));
      assert.deepEqual(
        [longest.SCRIPT_NAME, longest.PATH_INFO, longest.bytes],
        ['/legacy/deeper', '/\u00ff', 4],
      );
      const outside = await send(at, 'GET', '/elsewhere/%FF');
      assert.equal(outside.status, 400);
      assert.equal(json(outside).code, 'FST_ERR_BAD_URL');
    } finally {
      await lenient.close();
    }
  });

  it('streams a 5 MB upload of any media type to the app raw: no 415, no 413 from bodyLimit', async () => {
    const payload = randomBytes(5 * 1024 * 1024);
    for (const type of ['application/x-never-registered', 'application/json', undefined]) {
      const answer = await send(port, 'PUT', '/legacy/upload', {
        headers: type === undefined ? {} : { 'content-type': type },
        body: payload,
      });
      assert.equal(answer.status, 200, String(type));
      assert.equal(json(answer).bytes, payload.length, String(type));
      assert.equal(json(answer).sha256, sha256(payload), String(type));
      assert.equal(json(answer).CONTENT_TYPE, type ?? null);
    }
  });

  it("keeps Fastify's own parsing, 415 and bodyLimit on routes outside the prefix", async () => {
    const parsed = await send(port, 'POST', '/json', {
      headers: { 'content-type': 'application/json' },
      body: '{"ü":1}',
    });
    assert.deepEqual(json(parsed), { parsed: { ü: 1 } });
    const unknown = await send(port, 'POST', '/json', {
      headers: { 'content-type': 'application/x-never-registered' },
      body: 'x',
    });
    assert.equal(unknown.status, 415);
    const large = await send(port, 'POST', '/json', {
      headers: { 'content-type': 'application/json' },
      body: `"${'x'.repeat(2 * 1024 * 1024)}"`,
    });
    assert.equal(large.status, 413);
  });

  it('lets a Fastify route inside the prefix win over the app', async () => {
    const answer = await send(port, 'GET', '/legacy/new');
    assert.equal(answer.body.toString(), 'a Fastify route inside the prefix');
    assert.equal(json(await send(port, 'POST', '/legacy/new')).PATH_INFO, '/new');
  });

  it("sends the headers a hook set with reply.header(), the app's own winning on the same name", async () => {
    const answer = await send(port, 'GET', '/legacy/x');
    assert.equal(answer.headers['x-frame-options'], 'DENY');
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.deepEqual(answer.headers['set-cookie'], ['a=1', 'b=2; Path=/', 'c=3; HttpOnly']);
  });

  it('runs the request hooks and onSend, and logs the request with the app status; preSerialization (objects only) never runs', async () => {
    const lines: Array<{ msg?: string; res?: { statusCode?: number } }> = [];
    const logged = Fastify({
      logger: { level: 'info', stream: { write: (line: string) => lines.push(JSON.parse(line)) } },
    });
    const ran: string[] = [];
    for (const name of ['onRequest', 'preValidation', 'preHandler', 'onResponse'] as const) {
      logged.addHook(name, async () => {
        ran.push(name);
      });
    }
    logged.addHook('preParsing', async (_request, _reply, payload) => {
      ran.push('preParsing');
      return payload;
    });
    logged.addHook('preSerialization', async (_request, _reply, payload) => {
      ran.push('preSerialization');
      return payload;
    });
    logged.addHook('onSend', async (_request, _reply, payload) => {
      ran.push('onSend');
      return payload;
    });
    const created: App = (_environ, startResponse) => {
      startResponse('201 Created', [['Content-Type', 'text/plain']]);
      return ['made'];
    };
    await logged.register(toFastify(created), { prefix: '/legacy' });
    await logged.listen({ port: 0, host: '127.0.0.1' });
    try {
      const answer = await send(portOf(logged), 'POST', '/legacy/thing', { body: 'x' });
      assert.equal(answer.status, 201);
      // onResponse runs on the response's 'finish', which the client may see first.
      for (let i = 0; i < 100 && !ran.includes('onResponse'); i++) await settleTick();
      assert.deepEqual(ran, [
        'onRequest',
        'preParsing',
        'preValidation',
        'preHandler',
        'onSend',
        'onResponse',
      ]);
      const completed = lines.find((line) => line.msg === 'request completed');
      assert.equal(completed?.res?.statusCode, 201);
    } finally {
      await logged.close();
    }
  });

  it('lets a preHandler hook answer instead of the app (an auth check)', async () => {
    let calls = 0;
    const guarded = Fastify();
    await guarded.register(
      async (scope) => {
        scope.addHook('preHandler', async (request, reply) => {
          if (request.headers.authorization !== 'Bearer ok') {
            return reply.code(401).send({ error: 'no token' });
          }
        });
        await scope.register(
          toFastify((_environ, startResponse) => {
            calls++;
            startResponse('200 OK', [['Content-Type', 'text/plain']]);
            return ['secret'];
          }),
        );
      },
      { prefix: '/admin' },
    );
    await guarded.listen({ port: 0, host: '127.0.0.1' });
    try {
      const at = portOf(guarded);
      const refused = await send(at, 'GET', '/admin/panel');
      assert.equal(refused.status, 401);
      assert.equal(calls, 0);
      const allowed = await send(at, 'GET', '/admin/panel', {
        headers: { authorization: 'Bearer ok' },
      });
      assert.equal(allowed.body.toString(), 'secret');
      assert.equal(calls, 1);
    } finally {
      await guarded.close();
    }
  });

  it("registered without a prefix, leaves Fastify's routes theirs and answers everything else", async () => {
    const root = Fastify();
    root.get('/', async () => 'fastify home');
    root.get('/health', async () => ({ ok: true }));
    root.get('/users/:id', async (request) => ({ user: (request.params as { id: string }).id }));
    // Registering after the routes, or before, makes no difference: no route clashes.
    await root.register(toFastify(environApp));
    root.get('/late', async () => 'registered after the plugin');
    await root.listen({ port: 0, host: '127.0.0.1' });
    try {
      const at = portOf(root);
      assert.equal((await send(at, 'GET', '/')).body.toString(), 'fastify home');
      assert.deepEqual(json(await send(at, 'GET', '/health')), { ok: true });
      assert.deepEqual(json(await send(at, 'GET', '/users/7')), { user: '7' });
      assert.equal((await send(at, 'GET', '/late')).body.toString(), 'registered after the plugin');
      const posted = json(await send(at, 'POST', '/', { body: 'to the app' }));
      assert.deepEqual([posted.SCRIPT_NAME, posted.PATH_INFO, posted.bytes], ['', '/', 10]);
      const other = json(await send(at, 'GET', '/old/page?x=1'));
      assert.deepEqual(
        [other.SCRIPT_NAME, other.PATH_INFO, other.QUERY_STRING],
        ['', '/old/page', 'x=1'],
      );
    } finally {
      await root.close();
    }
  });

  it('answers 500 naming NGI_ERR_BODY_CONSUMED when a route parsed the body before reply.callNotFound()', async () => {
    let calls = 0;
    const handing = Fastify();
    handing.post('/form', async (_request, reply) => reply.callNotFound());
    await handing.register(
      toFastify(async (environ, startResponse) => {
        calls++;
        for await (const _chunk of environ['ngi.input']);
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['read'];
      }),
    );
    await handing.listen({ port: 0, host: '127.0.0.1' });
    try {
      const at = portOf(handing);
      const lost = await send(at, 'POST', '/form', {
        headers: { 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      assert.equal(lost.status, 500);
      assert.match(String(json(lost).message), /NGI_ERR_BODY_CONSUMED/);
      assert.equal(calls, 0);
      // Without a body there is nothing to lose: the app answers.
      assert.equal((await send(at, 'POST', '/form')).body.toString(), 'read');
    } finally {
      await handing.close();
    }
  });

  it('a header value Node refuses (a control character): the connection is cut at once and the error logged, never left hanging', async () => {
    const errors = logSink();
    const refusing = Fastify();
    await refusing.register(
      toFastify(
        (_environ, startResponse) => {
          startResponse('200 OK', [['X-Bad', 'a\x01b']]);
          return ['never sent'];
        },
        { errors },
      ),
    );
    await refusing.listen({ port: 0, host: '127.0.0.1' });
    try {
      const outcome = await settleWithin(sendRequest(portOf(refusing), '/'));
      assert.ok(outcome instanceof Error, `the request was cut, not ${String(outcome)}`);
      assert.match(errors.lines.join(''), /Invalid character in header content \["x-bad"\]/);
    } finally {
      // A request left hanging would hold close() for ever: the failure must stay a failure.
      refusing.server.closeAllConnections();
      await refusing.close();
    }
  });

  it('answers 500 when the app throws, and keeps serving', async () => {
    const errors = logSink();
    const failing = Fastify();
    await failing.register(
      toFastify(
        () => {
          throw new Error('legacy app broke');
        },
        { errors },
      ),
      { prefix: '/broken' },
    );
    await failing.listen({ port: 0, host: '127.0.0.1' });
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await send(portOf(failing), 'GET', '/broken/x');
        assert.equal(answer.status, 500);
      }
      assert.match(errors.lines.join(''), /legacy app broke/);
    } finally {
      await failing.close();
    }
  });

  it('fires ngi.signal and finishes the body once (return() and close()) when the client leaves mid-stream', async () => {
    const aborted = gate<unknown>();
    const closed = gate();
    let returns = 0;
    let closes = 0;
    const streaming: App = (environ, startResponse) => {
      environ['ngi.signal'].addEventListener('abort', () =>
        aborted.open(environ['ngi.signal'].reason),
      );
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      let left = 10_000;
      const iterator: AsyncIterator<Chunk> = {
        next: async () => {
          await new Promise((resolve) => setImmediate(resolve));
          return left-- > 0 ? { done: false, value: 'tick\n' } : { done: true, value: undefined };
        },
        return: async () => {
          returns++;
          return { done: true, value: undefined };
        },
      };
      return {
        [Symbol.asyncIterator]: () => iterator,
        close: () => {
          closes++;
          closed.open();
        },
      };
    };
    const host = Fastify();
    await host.register(toFastify(streaming), { prefix: '/s' });
    await host.listen({ port: 0, host: '127.0.0.1' });
    try {
      const req = httpRequest({ host: '127.0.0.1', port: portOf(host), path: '/s/feed' }).end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      await once(res, 'data');
      req.destroy();
      assert.equal(((await aborted.promise) as { code?: string }).code, 'NGI_ERR_CLIENT_GONE');
      await closed.promise;
      for (let i = 0; i < 10; i++) await settleTick();
      assert.deepEqual([returns, closes], [1, 1]);
    } finally {
      await host.close();
    }
  });

  it('holds the app back while the client does not read, then delivers every byte', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const total = 512; // 32 MiB: more than loopback socket buffers hold
    let produced = 0;
    const producer: App = (_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (function* () {
        while (produced < total) {
          produced++;
          yield chunk;
        }
      })();
    };
    const host = Fastify();
    await host.register(toFastify(producer), { prefix: '/big' });
    await host.listen({ port: 0, host: '127.0.0.1' });
    try {
      const req = httpRequest({ host: '127.0.0.1', port: portOf(host), path: '/big/file' }).end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      res.pause();
      const heldAt = await settledValue(() => produced);
      assert.ok(heldAt < total, `the app was pulled ${heldAt} of ${total} chunks ahead`);
      let received = 0;
      res.on('data', (data: Buffer) => (received += data.length));
      res.resume();
      await once(res, 'end');
      assert.equal(received, total * chunk.length);
    } finally {
      await host.close();
    }
  });
});

/** The reference Fastify app: listening natively and through ngi, it must answer the same. */
async function referenceFastify(): Promise<FastifyInstance> {
  const fastify = Fastify({ bodyLimit: 8 * 1024 * 1024 });
  fastify.addHook('onRequest', async (_request, reply) => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    reply.header('x-on-request', 'async');
  });
  fastify.decorateRequest('tenant', '');
  fastify.addHook('preHandler', async (request) => {
    await Promise.resolve();
    (request as { tenant?: string }).tenant = String(request.headers['x-tenant'] ?? 'none');
  });
  fastify.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer' },
    (_request, body, done) => done(null, body),
  );
  fastify.get('/json', async (request) => ({
    a: 1,
    u: 'ünï',
    tenant: (request as { tenant?: string }).tenant,
  }));
  fastify.get('/query', async (request) => request.query);
  fastify.get('/path/:p', async (request) => ({
    p: (request.params as { p: string }).p,
    url: request.url,
  }));
  fastify.post(
    '/valid',
    {
      schema: {
        body: {
          type: 'object',
          required: ['n'],
          properties: { n: { type: 'integer' } },
        },
      },
    },
    async (request) => request.body,
  );
  fastify.get('/throw', async () => {
    throw new Error('thrown in a Fastify handler');
  });
  fastify.get('/stream', (_request, reply) => {
    reply.type('text/plain').send(Readable.from(['one\n', 'two\n', 'three\n']));
  });
  fastify.get('/cookies', (_request, reply) => {
    reply.header('set-cookie', ['a=1', 'b=2; Path=/', 'c=3; HttpOnly']).send('three cookies');
  });
  fastify.post('/echo', async (request) => {
    const body = request.body as Buffer;
    return { bytes: body.length, sha256: sha256(body) };
  });
  fastify.get('/large', async () => 'z'.repeat(3 * 1024 * 1024));
  fastify.get('/status', (_request, reply) => {
    reply.code(418).header('x-teapot', 'yes').send('short and stout');
  });
  fastify.get('/empty', (_request, reply) => {
    reply.code(204).send();
  });
  fastify.get('/ip', async (request) => ({
    ip: request.ip,
    protocol: request.protocol,
    hostname: request.hostname,
  }));
  return fastify;
}

describe('fromFastify', () => {
  let fastify: FastifyInstance;
  let fast: Server;
  let emulated: Server;
  const errors = logSink();

  before(async () => {
    fastify = await referenceFastify();
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const app = await fromFastify(fastify);
    // A middleware that wraps startResponse: the request can no longer take the fast path.
    const wrapped: App = (environ, startResponse) =>
      app(environ, (status, headers, excInfo) => startResponse(status, headers, excInfo));
    fast = await listen(toNodeHandler(app, { errors }) as never);
    emulated = await listen(toNodeHandler(wrapped, { errors }) as never);
  });
  after(async () => {
    close(fast);
    close(emulated);
    await fastify.close();
  });

  function comparable(answer: Answer): Record<string, unknown> {
    const headers: Record<string, unknown> = { ...answer.headers };
    delete headers.date;
    // Where the client asked `Connection: close`, Node says so on every path; Fastify's own
    // `Connection: close` (on a 413) is hop-by-hop, which an NGI app may not set.
    delete headers.connection;
    return { status: answer.status, headers, body: answer.body };
  }

  /** The same request to Fastify listening natively and through ngi on both paths. */
  async function same(method: string, path: string, sent: Sent = {}): Promise<Answer> {
    const [native, viaFast, viaEmulation] = await Promise.all([
      send(portOf(fastify), method, path, sent),
      send(portOf(fast), method, path, sent),
      send(portOf(emulated), method, path, sent),
    ]);
    assert.deepEqual(comparable(viaFast), comparable(native), `${method} ${path} (fast path)`);
    assert.deepEqual(
      comparable(viaEmulation),
      comparable(native),
      `${method} ${path} (emulated path)`,
    );
    return native;
  }

  it('answers JSON, queries and raw path parameters like Fastify listening natively', async () => {
    assert.equal(json(await same('GET', '/json')).u, 'ünï');
    await same('GET', '/json', { headers: { 'x-tenant': 'acme' } });
    await same('GET', '/query?name=%C3%BC&name=x&empty=');
    assert.deepEqual(json(await same('GET', '/path/a%2Fb')), { p: 'a/b', url: '/path/a%2Fb' });
    await same('GET', '/path/caf%C3%A9');
    assert.equal((await same('GET', '/path/%FF')).status, 400);
  });

  it('answers schema validation errors, 404 and thrown errors alike', async () => {
    assert.equal(
      (
        await same('POST', '/valid', {
          headers: { 'content-type': 'application/json' },
          body: '{"n":"x"}',
        })
      ).status,
      400,
    );
    await same('POST', '/valid', {
      headers: { 'content-type': 'application/json' },
      body: '{"n":2}',
    });
    assert.equal((await same('GET', '/nowhere')).status, 404);
    assert.equal((await same('DELETE', '/json')).status, 404);
    assert.equal((await same('GET', '/throw')).status, 500);
    await same('POST', '/json', { headers: { 'content-type': 'not a type' }, body: 'x' });
  });

  it('answers HEAD from the GET route, statuses, 204 and streams alike', async () => {
    const head = await same('HEAD', '/json');
    assert.equal(head.body.length, 0);
    await same('HEAD', '/large');
    await same('GET', '/status');
    await same('GET', '/empty');
    const streamed = await same('GET', '/stream');
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');
    assert.equal(streamed.body.toString(), 'one\ntwo\nthree\n');
  });

  it('keeps three Set-Cookie headers from reply.header()', async () => {
    const answer = await same('GET', '/cookies');
    assert.deepEqual(answer.headers['set-cookie'], ['a=1', 'b=2; Path=/', 'c=3; HttpOnly']);
  });

  it('carries large bodies both ways and answers 413 over bodyLimit alike', async () => {
    const payload = randomBytes(5 * 1024 * 1024);
    const echoed = await same('POST', '/echo', {
      headers: { 'content-type': 'application/octet-stream' },
      body: payload,
    });
    assert.equal(json(echoed).sha256, sha256(payload));
    assert.equal((await same('GET', '/large')).body.length, 3 * 1024 * 1024);
    const tooLarge = await same('POST', '/echo', {
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(9 * 1024 * 1024),
    });
    assert.equal(tooLarge.status, 413);
  });

  it('gives request.ip the client address', async () => {
    assert.deepEqual(json(await same('GET', '/ip')), {
      ip: '127.0.0.1',
      protocol: 'http',
      hostname: '127.0.0.1',
    });
  });

  for (const path of ['fast', 'emulated'] as const) {
    it(`holds a streamed reply back for a slow client and destroys it when the client leaves (${path} path)`, async () => {
      let produced = 0;
      const gone = gate();
      const source = Fastify();
      source.get('/endless', (_request, reply) => {
        let left = 4096;
        const stream = new Readable({
          read() {
            produced++;
            this.push(left-- > 0 ? Buffer.alloc(64 * 1024, 0x62) : null);
          },
          destroy(error, callback) {
            gone.open();
            callback(error);
          },
        });
        reply.type('application/octet-stream').send(stream);
      });
      const app = await fromFastify(source);
      const served: App =
        path === 'fast'
          ? app
          : (environ, startResponse) => app(environ, (s, h, e) => startResponse(s, h, e));
      const server = await listen(toNodeHandler(served, { errors: logSink() }) as never);
      try {
        const req = httpRequest({
          host: '127.0.0.1',
          port: portOf(server),
          path: '/endless',
        }).end();
        const [res] = (await once(req, 'response')) as [IncomingMessage];
        res.pause();
        const heldAt = await settledValue(() => produced);
        assert.ok(heldAt < 4096, `the stream was read ${heldAt} chunks ahead of the client`);
        req.destroy();
        await gone.promise;
      } finally {
        close(server);
        await source.close();
      }
    });
  }
});

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import express, { type ErrorRequestHandler, type Request } from 'express';
import supertest from 'supertest';
import { fromExpress, toExpress } from '../../adapters/express.js';
import type { App, Body, Environ, ErrorStream } from '../../src/core/types.js';
import { close, sendRequest } from '../helpers/servers.js';

async function listen(app: express.Express): Promise<Server> {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

function collector(): ErrorStream & { lines: string[] } {
  return {
    lines: [],
    write(line: string) {
      this.lines.push(line);
    },
  };
}

interface RawResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * A request with the path exactly as given (supertest's URL parsing would normalise it); a body
 * given in parts goes out chunked.
 */
async function raw(
  server: Server,
  path: string,
  method = 'GET',
  parts: Buffer[] = [],
): Promise<RawResponse> {
  const { port } = server.address() as AddressInfo;
  const headers: Record<string, string> =
    parts.length > 0 ? { 'content-type': 'application/octet-stream' } : {};
  const reply = await sendRequest(port, path, { method, headers, parts });
  return { ...reply, body: reply.body.toString() };
}

const CGI_KEYS = ['REQUEST_METHOD', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_URI'];

/** An NGI app that answers with the CGI part of its environ, as JSON. */
const environEcho: App = (environ, startResponse) => {
  const seen: Record<string, unknown> = {};
  for (const key of CGI_KEYS) seen[key] = environ[key];
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(seen)];
};

async function environOf(server: Server, path: string): Promise<Record<string, string>> {
  const response = await raw(server, path);
  assert.equal(response.status, 200, `${path}: ${response.body}`);
  return JSON.parse(response.body) as Record<string, string>;
}

/** An NGI app that reads its whole input and answers with its length, hash and CONTENT_*. */
const inputDigest: App = async (environ, startResponse) => {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of environ['ngi.input'] as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [
    JSON.stringify({
      bytes,
      sha256: hash.digest('hex'),
      length: environ.CONTENT_LENGTH ?? null,
      encoding: environ.HTTP_CONTENT_ENCODING ?? null,
    }),
  ];
};

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

describe('toExpress mounted with app.use()', () => {
  let server: Server;

  before(async () => {
    const app = express();
    app.use('/legacy', toExpress(environEcho));
    const tenants = express.Router();
    tenants.use('/legacy', toExpress(environEcho));
    app.use('/:tenant', tenants);
    app.use('/r/:tenant/legacy', toExpress(environEcho));
    app.get('/native', (_req, res) => res.send('native'));
    server = await listen(app);
  });
  after(() => close(server));

  it('moves the mount point to SCRIPT_NAME and leaves the rest in PATH_INFO', async () => {
    assert.deepEqual(await environOf(server, '/legacy/a/b?x=1&y'), {
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/legacy',
      PATH_INFO: '/a/b',
      QUERY_STRING: 'x=1&y',
      REQUEST_URI: '/legacy/a/b?x=1&y',
    });
  });

  it('gives PATH_INFO "" for the mount point itself and "/" for it with a slash, as mount() does', async () => {
    const bare = await environOf(server, '/legacy');
    assert.equal(bare.SCRIPT_NAME, '/legacy');
    assert.equal(bare.PATH_INFO, '');
    assert.equal(bare.REQUEST_URI, '/legacy');
    const slash = await environOf(server, '/legacy/?q=1');
    assert.equal(slash.SCRIPT_NAME, '/legacy');
    assert.equal(slash.PATH_INFO, '/');
    assert.equal(slash.QUERY_STRING, 'q=1');
    const query = await environOf(server, '/legacy?q=1');
    assert.equal(query.PATH_INFO, '');
    assert.equal(query.QUERY_STRING, 'q=1');
  });

  it('keeps the spelling Express matched case-insensitively in SCRIPT_NAME', async () => {
    const environ = await environOf(server, '/LeGaCy/x');
    assert.equal(environ.SCRIPT_NAME, '/LeGaCy');
    assert.equal(environ.PATH_INFO, '/x');
  });

  it('decodes %2F, UTF-8 and non-UTF-8 escapes into PATH_INFO but keeps REQUEST_URI raw', async () => {
    const slash = await environOf(server, '/legacy/a%2Fb/c');
    assert.equal(slash.PATH_INFO, '/a/b/c');
    assert.equal(slash.REQUEST_URI, '/legacy/a%2Fb/c');
    const utf8 = await environOf(server, '/legacy/caf%C3%A9/%E2%9C%93');
    assert.equal(utf8.PATH_INFO, '/café/✓');
    const latin1 = await environOf(server, '/legacy/%FF%FE');
    assert.equal(latin1.PATH_INFO, '/\u00ff\u00fe');
    assert.equal(latin1.REQUEST_URI, '/legacy/%FF%FE');
  });

  it('does not resolve dot segments, encoded or not, and never lets them climb above SCRIPT_NAME', async () => {
    const encoded = await environOf(server, '/legacy/%2e%2e/secret?x');
    assert.equal(encoded.SCRIPT_NAME, '/legacy');
    assert.equal(encoded.PATH_INFO, '/../secret');
    assert.equal(encoded.REQUEST_URI, '/legacy/%2e%2e/secret?x');
    const plain = await environOf(server, '/legacy/../secret');
    assert.equal(plain.SCRIPT_NAME, '/legacy');
    assert.equal(plain.PATH_INFO, '/../secret');
  });

  it('takes SCRIPT_NAME from req.baseUrl under a Router with a parameter', async () => {
    assert.deepEqual(await environOf(server, '/acme/legacy/x?y=1'), {
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/acme/legacy',
      PATH_INFO: '/x',
      QUERY_STRING: 'y=1',
      REQUEST_URI: '/acme/legacy/x?y=1',
    });
    const direct = await environOf(server, '/r/caf%C3%A9/legacy');
    assert.equal(direct.SCRIPT_NAME, '/r/café/legacy');
    assert.equal(direct.PATH_INFO, '');
  });

  it('decodes a %2F inside a matched parameter only once, into SCRIPT_NAME', async () => {
    const environ = await environOf(server, '/r/a%2Fb/legacy/c%2Fd');
    assert.equal(environ.SCRIPT_NAME, '/r/a/b/legacy');
    assert.equal(environ.PATH_INFO, '/c/d');
    assert.equal(environ.REQUEST_URI, '/r/a%2Fb/legacy/c%2Fd');
  });

  it('leaves routes outside the mount point to Express', async () => {
    const response = await supertest(server).get('/native');
    assert.equal(response.text, 'native');
    assert.equal((await supertest(server).get('/legacyx')).status, 404);
  });

  it('takes the mount point from req.baseUrl after a middleware rewrote req.url', async () => {
    const app = express();
    app.use((req, _res, next) => {
      if (req.url.startsWith('/old/')) req.url = '/legacy/new/' + req.url.slice(5);
      next();
    });
    app.use('/legacy', toExpress(environEcho));
    const rewriting = await listen(app);
    try {
      assert.deepEqual(await environOf(rewriting, '/old/page?p=2'), {
        REQUEST_METHOD: 'GET',
        SCRIPT_NAME: '/legacy',
        PATH_INFO: '/new/page',
        QUERY_STRING: 'p=2',
        REQUEST_URI: '/old/page?p=2',
      });
    } finally {
      close(rewriting);
    }
  });

  it('gives an app mounted at the root the whole path', async () => {
    const app = express();
    app.use(toExpress(environEcho));
    const root = await listen(app);
    try {
      assert.deepEqual(await environOf(root, '/a%2Fb?c'), {
        REQUEST_METHOD: 'GET',
        SCRIPT_NAME: '',
        PATH_INFO: '/a/b',
        QUERY_STRING: 'c',
        REQUEST_URI: '/a%2Fb?c',
      });
      assert.equal((await environOf(root, '/')).PATH_INFO, '/');
    } finally {
      close(root);
    }
  });
});

describe('toExpress and the headers of the outer app', () => {
  let server: Server;

  before(async () => {
    const app = express();
    app.use((_req, res, next) => {
      res.setHeader('Access-Control-Allow-Origin', 'https://example.org');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Cache-Control', 'no-store');
      res.cookie('session', 'outer');
      next();
    });
    app.use(
      '/legacy',
      toExpress((_environ, startResponse) => {
        startResponse('201 Created', [
          ['Content-Type', 'text/plain'],
          ['Cache-Control', 'max-age=60'],
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2; HttpOnly'],
          ['Set-Cookie', 'c=3; Path=/'],
        ]);
        return ['made'];
      }),
    );
    app.use(
      '/plain',
      toExpress((_environ, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['plain'];
      }),
    );
    server = await listen(app);
  });
  after(() => close(server));

  it('lets headers set before the mount (CORS, helmet-style) reach the client', async () => {
    const response = await supertest(server).get('/plain');
    assert.equal(response.status, 200);
    assert.equal(response.text, 'plain');
    assert.equal(response.headers['access-control-allow-origin'], 'https://example.org');
    assert.equal(response.headers['x-content-type-options'], 'nosniff');
    assert.equal(response.headers['cache-control'], 'no-store');
    assert.deepEqual(response.headers['set-cookie'], ['session=outer; Path=/']);
  });

  it("replaces a header the app sets itself, keeps all of its Set-Cookie and the outer app's cookie", async () => {
    const response = await supertest(server).get('/legacy');
    assert.equal(response.status, 201);
    assert.equal(response.text, 'made');
    assert.equal(response.headers['cache-control'], 'max-age=60');
    assert.equal(response.headers['content-type'], 'text/plain');
    assert.equal(response.headers['access-control-allow-origin'], 'https://example.org');
    assert.deepEqual(response.headers['set-cookie'], [
      'session=outer; Path=/',
      'a=1',
      'b=2; HttpOnly',
      'c=3; Path=/',
    ]);
  });
});

/** A body that the test controls chunk by chunk, counting how it is finished. */
class GatedBody implements AsyncIterator<string> {
  returns = 0;
  closes = 0;
  produced: string[] = [];
  private gates: Array<() => void> = [];
  private chunks: string[];

  constructor(chunks: string[]) {
    this.chunks = chunks;
  }

  /** Lets the next chunk (after the first) be produced. */
  open(): void {
    this.gates.shift()?.();
  }

  async next(): Promise<IteratorResult<string>> {
    if (this.produced.length > 0 && this.produced.length < this.chunks.length) {
      await new Promise<void>((resolve) => this.gates.push(resolve));
    }
    if (this.returns > 0) return { done: true, value: undefined };
    const chunk = this.chunks[this.produced.length];
    if (chunk === undefined) return { done: true, value: undefined };
    this.produced.push(chunk);
    return { done: false, value: chunk };
  }

  async return(): Promise<IteratorResult<string>> {
    this.returns++;
    this.open();
    return { done: true, value: undefined };
  }

  close(): void {
    this.closes++;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

describe('toExpress streaming', () => {
  let server: Server;
  let body: GatedBody;
  let signal: AbortSignal | undefined;

  before(async () => {
    const app = express();
    app.use(
      '/stream',
      toExpress((environ, startResponse) => {
        signal = environ['ngi.signal'] as AbortSignal;
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return body as unknown as Body;
      }),
    );
    server = await listen(app);
  });
  after(() => close(server));

  it('sends the first chunk before the last one is produced', async () => {
    body = new GatedBody(['first\n', 'second\n', 'last\n']);
    const { port } = server.address() as AddressInfo;
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      httpRequest({ host: '127.0.0.1', port, path: '/stream' }, resolve).on('error', reject).end(),
    );
    assert.equal(response.headers['transfer-encoding'], 'chunked');
    const received: string[] = [];
    for await (const chunk of response as AsyncIterable<Buffer>) {
      received.push(chunk.toString());
      // Each chunk arrived while the next one did not exist yet.
      assert.equal(body.produced.length, received.length);
      body.open();
    }
    assert.equal(received.join(''), 'first\nsecond\nlast\n');
    assert.equal(body.closes, 1);
  });

  it('fires ngi.signal and finishes the body exactly once when the client leaves mid-stream', async () => {
    body = new GatedBody(['first\n', 'never sent\n']);
    const { port } = server.address() as AddressInfo;
    const req = httpRequest({ host: '127.0.0.1', port, path: '/stream' });
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      req.on('response', resolve).on('error', reject).end();
    });
    const [first] = (await once(response, 'data')) as [Buffer];
    assert.equal(first.toString(), 'first\n');
    assert.ok(signal !== undefined && !signal.aborted);
    req.on('error', () => {});
    req.destroy();
    if (!signal.aborted) await once(signal, 'abort');
    while (body.closes === 0) await new Promise((resolve) => setImmediate(resolve));
    // A late extra call would show up after a few more turns of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(body.returns, 1);
    assert.equal(body.closes, 1);
    assert.deepEqual(body.produced, ['first\n']);
  });
});

describe('toExpress and the request body', () => {
  let server: Server;
  const log = collector();

  before(async () => {
    const app = express();
    const keep = (req: Request & { rawBody?: Buffer }, _res: unknown, buf: Buffer) => {
      req.rawBody = buf;
    };
    app.use('/untouched', toExpress(inputDigest, { errors: log }));
    app.use('/raw', express.raw({ type: '*/*', limit: '10mb' }), toExpress(inputDigest));
    app.use('/json-kept', express.json({ verify: keep }), toExpress(inputDigest));
    app.use('/form-kept', express.urlencoded({ verify: keep }), toExpress(inputDigest));
    app.use('/text-kept', express.text({ verify: keep }), toExpress(inputDigest));
    app.use('/json', express.json(), toExpress(inputDigest, { errors: log }));
    app.use('/text', express.text(), toExpress(inputDigest, { errors: log }));
    app.use(
      '/json-unread',
      express.json(),
      toExpress(
        (environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return [`never read ${environ.CONTENT_LENGTH ?? ''} bytes`];
        },
        { errors: log },
      ),
    );
    app.use(((error, _req, res, _next) => {
      res.status(500).json({ code: (error as { code?: string }).code, message: error.message });
    }) as ErrorRequestHandler);
    server = await listen(app);
  });
  after(() => close(server));

  it('streams a 5 MB POST body into ngi.input intact', async () => {
    const payload = randomBytes(5 * 1024 * 1024);
    const response = await supertest(server)
      .post('/untouched')
      .set('Content-Type', 'application/octet-stream')
      .send(payload);
    assert.equal(response.status, 200);
    assert.equal(response.body.bytes, payload.length);
    assert.equal(response.body.sha256, sha256(payload));
  });

  it('hands on the Buffer express.raw() left in req.body', async () => {
    const payload = randomBytes(256 * 1024);
    const response = await supertest(server)
      .post('/raw')
      .set('Content-Type', 'application/octet-stream')
      .send(payload);
    assert.equal(response.status, 200);
    assert.equal(response.body.sha256, sha256(payload));
    assert.equal(response.body.length, String(payload.length));
  });

  it('hands on the inflated bytes with a CONTENT_LENGTH that fits them and no Content-Encoding', async () => {
    const payload = Buffer.from('squeezed '.repeat(1000));
    const response = await supertest(server)
      .post('/raw')
      .set('Content-Type', 'application/octet-stream')
      .set('Content-Encoding', 'gzip')
      .send(gzipSync(payload));
    assert.equal(response.status, 200);
    assert.equal(response.body.sha256, sha256(payload));
    assert.equal(response.body.length, String(payload.length));
    assert.equal(response.body.encoding, null);
  });

  it('frames a chunked body express.raw() kept by its length', async () => {
    const parts = [randomBytes(1000), randomBytes(3000)];
    const response = await raw(server, '/raw', 'POST', parts);
    assert.equal(response.status, 200, response.body);
    const seen = JSON.parse(response.body) as { sha256: string; length: string };
    assert.equal(seen.sha256, sha256(Buffer.concat(parts)));
    assert.equal(seen.length, '4000');
  });

  it('hands on the exact bytes that express.json, urlencoded and text kept with verify()', async () => {
    const cases: Array<[string, string, string]> = [
      ['/json-kept', 'application/json', '{ "spaced" :  [1, 2] ,"é":"\\u00e9" }'],
      ['/form-kept', 'application/x-www-form-urlencoded', 'a=1&b=%20two+&c'],
      ['/text-kept', 'text/plain; charset=utf-8', 'line one\r\nline twö\n'],
    ];
    for (const [path, type, text] of cases) {
      const response = await supertest(server).post(path).set('Content-Type', type).send(text);
      assert.equal(response.status, 200, path);
      assert.equal(response.body.sha256, sha256(text), path);
      assert.equal(response.body.bytes, Buffer.byteLength(text), path);
    }
  });

  it('leaves a body the parser did not want to the app', async () => {
    const response = await supertest(server)
      .post('/json')
      .set('Content-Type', 'text/csv')
      .send('a,b\n1,2\n');
    assert.equal(response.status, 200);
    assert.equal(response.body.sha256, sha256('a,b\n1,2\n'));
  });

  it('answers 500 naming NGI_ERR_BODY_CONSUMED, in the log and the error, when the bytes are gone', async () => {
    for (const [path, type, text] of [
      ['/json', 'application/json', '{"a":1}'],
      ['/text', 'text/plain', 'parsed away'],
    ] as const) {
      log.lines.length = 0;
      const response = await supertest(server).post(path).set('Content-Type', type).send(text);
      assert.equal(response.status, 500, path);
      assert.equal(response.body.code, 'NGI_ERR_BODY_CONSUMED', path);
      assert.match(response.body.message, /NGI_ERR_BODY_CONSUMED/);
      assert.match(response.body.message, /verify/, 'the message says how to keep the bytes');
      assert.equal(log.lines.length, 1, path);
      assert.match(log.lines[0]!, /NGI_ERR_BODY_CONSUMED/);
    }
  });

  it('does not fail an app that never reads the consumed body', async () => {
    log.lines.length = 0;
    const response = await supertest(server)
      .post('/json-unread')
      .set('Content-Type', 'application/json')
      .send('{"a":1}');
    assert.equal(response.status, 200);
    assert.equal(response.text, 'never read 7 bytes');
    assert.deepEqual(log.lines, []);
  });

  it('gives an empty body that a parser looked at as an empty input', async () => {
    const response = await supertest(server)
      .post('/json')
      .set('Content-Type', 'application/json')
      .set('Content-Length', '0');
    assert.equal(response.status, 200);
    assert.equal(response.body.bytes, 0);
  });
});

describe("toExpress and Express's error handlers", () => {
  let server: Server;
  const log = collector();

  before(async () => {
    const app = express();
    app.use(
      '/throws',
      toExpress(
        () => {
          throw Object.assign(new Error('legacy broke'), { status: 503 });
        },
        { errors: log },
      ),
    );
    app.use(
      '/rejects',
      toExpress(
        async () => {
          await Promise.resolve();
          throw new Error('legacy broke later');
        },
        { errors: log },
      ),
    );
    app.use(
      '/bad-status',
      toExpress(
        (_environ, startResponse) => {
          startResponse('OK', []);
          return [];
        },
        { errors: log },
      ),
    );
    app.use(
      '/mid-body',
      toExpress(
        (_environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return (async function* () {
            yield 'partial';
            throw new Error('broke mid-body');
          })();
        },
        { errors: log },
      ),
    );
    app.use(((error, req, res, _next) => {
      res.status((error as { status?: number }).status ?? 500).json({
        handled: error.message,
        code: (error as { code?: string }).code,
        url: req.originalUrl,
      });
    }) as ErrorRequestHandler);
    server = await listen(app);
  });
  after(() => close(server));

  it('passes an error thrown before the response to next(err)', async () => {
    const response = await supertest(server).get('/throws/x');
    assert.equal(response.status, 503);
    assert.deepEqual(response.body, { handled: 'legacy broke', url: '/throws/x' });
  });

  it('passes a rejected app and a contract violation to next(err) with their codes', async () => {
    const rejected = await supertest(server).get('/rejects');
    assert.equal(rejected.status, 500);
    assert.equal(rejected.body.handled, 'legacy broke later');
    const invalid = await supertest(server).get('/bad-status');
    assert.equal(invalid.status, 500);
    assert.equal(invalid.body.code, 'NGI_ERR_INVALID_STATUS');
  });

  it('aborts the connection instead of calling next(err) once the head is out', async () => {
    await assert.rejects(raw(server, '/mid-body'), /aborted|socket hang up|ECONNRESET/);
  });
});

describe('toExpress(fromExpress(inner)): Express inside Express', () => {
  let server: Server;
  let outer: express.Express;
  let inner: express.Express;
  const seenAfter: Array<Record<string, unknown>> = [];
  const log = collector();

  before(async () => {
    inner = express();
    // The inner 500 below is expected: Express logs errors to the console unless in 'test'.
    inner.set('env', 'test');
    inner.get('/items/:id', (req, res) => {
      res.json({
        baseUrl: req.baseUrl,
        originalUrl: req.originalUrl,
        url: req.url,
        path: req.path,
        params: req.params,
        query: req.query,
        app: req.app === inner,
      });
    });
    const nested = express.Router();
    nested.get('/:leaf', (req, res) => {
      res.json({ baseUrl: req.baseUrl, url: req.url, params: req.params });
    });
    inner.use('/deep', nested);
    inner.post('/body', express.json(), (req, res) => res.json({ got: req.body }));

    outer = express();
    outer.use((req, res, next) => {
      for (const event of ['finish', 'close']) {
        res.on(event, () => {
          seenAfter.push({
            event,
            url: req.url,
            baseUrl: req.baseUrl,
            originalUrl: req.originalUrl,
          });
        });
      }
      next();
    });
    const keep = (req: Request & { rawBody?: Buffer }, _res: unknown, buf: Buffer) => {
      req.rawBody = buf;
    };
    outer.use('/:tenant/legacy', express.json({ verify: keep }), toExpress(fromExpress(inner)));
    outer.use('/:tenant/lost', express.json(), toExpress(fromExpress(inner), { errors: log }));
    server = await listen(outer);
  });
  after(() => close(server));

  it('gives the inner app the baseUrl, originalUrl and params a native mount would', async () => {
    const response = await supertest(server).get('/acme/legacy/items/7?x=1');
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, {
      baseUrl: '/acme/legacy',
      originalUrl: '/acme/legacy/items/7?x=1',
      url: '/items/7?x=1',
      path: '/items/7',
      params: { id: '7' },
      query: { x: '1' },
      app: true,
    });
  });

  it('keeps raw escapes in the inner req.baseUrl and req.url, as Express itself does', async () => {
    const response = await raw(server, '/a%2Fb/legacy/deep/c%2Fd');
    assert.equal(response.status, 200, response.body);
    assert.deepEqual(JSON.parse(response.body), {
      baseUrl: '/a%2Fb/legacy/deep',
      url: '/c%2Fd',
      params: { leaf: 'c/d' },
    });
  });

  it('answers an unknown inner route with the inner 404', async () => {
    const response = await supertest(server).get('/acme/legacy/nowhere');
    assert.equal(response.status, 404);
    assert.match(response.text, /Cannot GET \/acme\/legacy\/nowhere/);
  });

  it('lets the inner express.json() parse again the bytes the outer one kept', async () => {
    const response = await supertest(server)
      .post('/acme/legacy/body')
      .set('Content-Type', 'application/json')
      .send('{ "a" : [1, 2] }');
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { got: { a: [1, 2] } });
  });

  it('fails the inner body parser with NGI_ERR_BODY_CONSUMED when the outer one kept nothing', async () => {
    const response = await supertest(server).post('/acme/lost/body').send({ a: 1 });
    assert.equal(response.status, 500);
    assert.match(response.text, /NGI_ERR_BODY_CONSUMED/);
  });

  it('gives the outer app back the req.url and req.baseUrl its router set, once the response is out', async () => {
    seenAfter.length = 0;
    await supertest(server).get('/acme/legacy/deep/leaf?q');
    while (seenAfter.length < 2) await new Promise((resolve) => setImmediate(resolve));
    // As after a native terminal middleware: the outer router's cut, not the inner app's.
    const outerView = {
      url: '/deep/leaf?q',
      baseUrl: '/acme/legacy',
      originalUrl: '/acme/legacy/deep/leaf?q',
    };
    assert.deepEqual(seenAfter, [
      { event: 'finish', ...outerView },
      { event: 'close', ...outerView },
    ]);
  });
});

describe('toExpress on bad input', () => {
  it('answers a request whose environ holds odd bytes without losing the server', async () => {
    const app = express();
    const seen: Environ[] = [];
    app.use(
      '/legacy',
      toExpress((environ, startResponse) => {
        seen.push(environ);
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['ok'];
      }),
    );
    const server = await listen(app);
    try {
      const response = await raw(server, '/legacy/%zz%/%');
      assert.equal(response.status, 200);
      assert.equal(seen[0]!.PATH_INFO, '/%zz%/%');
      assert.equal((await raw(server, '/legacy/after')).body, 'ok');
    } finally {
      close(server);
    }
  });
});

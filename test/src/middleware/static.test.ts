import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import supertest from 'supertest';
import { toExpress } from '../../../adapters/express.js';
import { toNodeHandler } from '../../../adapters/node.js';
import { defineApp } from '../../../src/core/define-app.js';
import { mount } from '../../../src/middleware/mount.js';
import { serve, type ServeOptions, type ServerHandle } from '../../../src/server/serve.js';
import { staticFiles } from '../../../src/middleware/static.js';
import type { App } from '../../../src/core/types.js';
import { encodeUwsgiPacket } from '../../../src/protocol/uwsgi-packet.js';
import { get as cliGet, spawnCli, type CliProcess } from '../../helpers/cli-process.js';
import { logLines, serveApp } from '../../helpers/raw-http.js';
import { parseHttpResponse, sendRaw } from '../../helpers/uwsgi-client.js';
import { sendRequest as fetchRaw } from '../../helpers/servers.js';

const SECRET = 'outside the folder: never served';
const HELLO = 'hello, static world\n';
const UTF8_NAME = 'café ünï 日本.txt';
const BIG = 5 * 1024 * 1024;

let base: string;
/** The served folder. */
let site: string;
let binary: Buffer;
let big: Buffer;

/**
 * site/ hello.txt page.html data.bin big.bin (5 MB) sub/nested.txt `café ünï 日本.txt`
 *       .env .hidden/inside.txt
 *       inside-link.txt -> hello.txt      (a symlink that stays inside: served)
 *       to-dotfile -> .env                (a symlink onto a dotfile: not served)
 *       escape.txt -> ../outside/secret.txt, escape-dir -> ../outside   (never served)
 * outside/ secret.txt
 */
before(async () => {
  base = await mkdtemp(join(tmpdir(), 'ngi-static-'));
  site = join(base, 'site');
  const outside = join(base, 'outside');
  await mkdir(join(site, 'sub'), { recursive: true });
  await mkdir(join(site, '.hidden'));
  await mkdir(outside);
  binary = Buffer.concat([Buffer.from([0, 255, 0x0d, 0x0a, 0x80]), randomBytes(4096)]);
  big = randomBytes(BIG);
  await Promise.all([
    writeFile(join(outside, 'secret.txt'), SECRET),
    writeFile(join(site, 'hello.txt'), HELLO),
    writeFile(join(site, 'page.html'), '<!doctype html><p>page</p>\n'),
    writeFile(join(site, 'data.bin'), binary),
    writeFile(join(site, 'big.bin'), big),
    writeFile(join(site, 'sub', 'nested.txt'), 'nested\n'),
    writeFile(join(site, UTF8_NAME), 'unicode name\n'),
    writeFile(join(site, '.env'), 'TOKEN=dotfile\n'),
    writeFile(join(site, '.hidden', 'inside.txt'), 'in a dot folder\n'),
    symlink('hello.txt', join(site, 'inside-link.txt')),
    symlink('.env', join(site, 'to-dotfile')),
    symlink(join(outside, 'secret.txt'), join(site, 'escape.txt')),
    symlink('../outside', join(site, 'escape-dir')),
  ]);
});

const closers: Array<() => void> = [];
const handles: ServerHandle[] = [];
const clis: CliProcess[] = [];
after(async () => {
  for (const proc of clis) proc.kill();
  await Promise.all(handles.map((h) => h.close(0)));
  for (const close of closers) close();
  await rm(base, { recursive: true, force: true });
});

/** An NGI app on a real socket behind `toNodeHandler`; closed after the file. */
async function listen(app: App): Promise<number> {
  const served = await serveApp(app);
  closers.push(() => served.close());
  return served.port;
}

/** The vars nginx sends for a request; `path` is the raw URI, `pathInfo` what nginx decoded. */
function uwsgiPacket(
  path: string,
  options: { method?: string; pathInfo?: string; headers?: Array<[string, string]> } = {},
): Buffer {
  return encodeUwsgiPacket([
    ['REQUEST_METHOD', options.method ?? 'GET'],
    ['REQUEST_URI', path],
    ['PATH_INFO', options.pathInfo ?? decodeURIComponent(path)],
    ['QUERY_STRING', ''],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_NAME', 'localhost'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REMOTE_PORT', '40000'],
    ...(options.headers ?? []),
  ]);
}

async function uwsgiRequest(
  port: number,
  path: string,
  options: Parameters<typeof uwsgiPacket>[1] = {},
): Promise<{ status: number; header: (name: string) => string | undefined; body: Buffer }> {
  const { bytes, closed } = await sendRaw(port, uwsgiPacket(path, options), { timeoutMs: 10_000 });
  assert.ok(closed, 'the uwsgi response ends by closing the connection');
  const { statusLine, headers, body } = parseHttpResponse(bytes);
  const header = (name: string) =>
    headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
  return { status: Number(statusLine.split(' ')[1]), header, body };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Open file descriptors of this process: where a leaked ReadStream would show. */
const openFds = async () => (await readdir('/proc/self/fd')).length;

/**
 * Runs `abortOnce` 25 times (after one warm-up) and checks the process holds no more file
 * descriptors than before: a file left open per aborted download would show here.
 */
async function assertNoFdLeak(abortOnce: () => Promise<void>): Promise<void> {
  await abortOnce();
  const baseline = await openFds();
  for (let i = 0; i < 25; i++) await abortOnce();
  // The server side of each connection closes a moment after the client's: wait, bounded.
  let left = await openFds();
  for (let i = 0; i < 100 && left > baseline; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    left = await openFds();
  }
  assert.ok(left <= baseline, `${left - baseline} descriptors left open`);
}

/** Starts downloading big.bin over HTTP and hangs up after the first bytes. */
function abortedHttpDownload(port: number, path: string): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.once('data', () => req.destroy());
    });
    req.on('error', () => {});
    req.on('close', () => resolve());
    req.end();
  });
}

/** The same over uwsgi: one packet, the first bytes of the answer, then a reset. */
function abortedUwsgiDownload(port: number, path: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(uwsgiPacket(path)));
    socket.once('data', () => socket.destroy());
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

/** The NGI app behind the static map: says what it was asked, with the environ it got. */
const backend = defineApp((environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [
    JSON.stringify({
      app: true,
      method: environ.REQUEST_METHOD,
      scriptName: environ.SCRIPT_NAME,
      pathInfo: environ.PATH_INFO,
    }),
  ];
});

describe('staticFiles through toNodeHandler', () => {
  const files = () => toNodeHandler(staticFiles(site));

  it('serves a text file with its bytes, a charset, validators and a revalidating Cache-Control', async () => {
    const res = await supertest(files()).get('/hello.txt');
    assert.equal(res.status, 200);
    assert.equal(res.text, HELLO);
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(HELLO)));
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers['cache-control'], 'public, max-age=0');
    assert.match(res.headers['etag'] ?? '', /^W\/"[0-9a-f]+-[0-9a-f]+"$/);
    assert.ok(!Number.isNaN(Date.parse(res.headers['last-modified'] ?? '')));
  });

  it('gives HTML its type and binary bytes back unchanged as application/octet-stream', async () => {
    const page = await supertest(files()).get('/page.html');
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    const data = await supertest(files()).get('/data.bin').responseType('blob');
    assert.equal(data.headers['content-type'], 'application/octet-stream');
    assert.deepEqual(data.body, binary);
  });

  it('finds a file with a UTF-8 name from its percent-encoded path', async () => {
    const res = await supertest(files()).get('/' + encodeURIComponent(UTF8_NAME));
    assert.equal(res.status, 200);
    assert.equal(res.text, 'unicode name\n');
  });

  it('answers 304 without a body when If-None-Match or If-Modified-Since says the copy is fresh', async () => {
    const first = await supertest(files()).get('/hello.txt');
    const etag = first.headers['etag']!;
    const byTag = await supertest(files()).get('/hello.txt').set('If-None-Match', etag);
    assert.equal(byTag.status, 304);
    assert.equal(byTag.text, '');
    assert.equal(byTag.headers['etag'], etag);
    const byDate = await supertest(files())
      .get('/hello.txt')
      .set('If-Modified-Since', first.headers['last-modified']!);
    assert.equal(byDate.status, 304);
    const stale = await supertest(files()).get('/hello.txt').set('If-None-Match', '"other"');
    assert.equal(stale.status, 200);
    assert.equal(stale.text, HELLO);
  });

  it('answers 412 when If-Match names another version', async () => {
    const res = await supertest(files()).get('/hello.txt').set('If-Match', '"not-this-one"');
    assert.equal(res.status, 412);
  });

  it('serves a byte range as 206 with Content-Range, and a suffix range', async () => {
    const res = await supertest(files())
      .get('/data.bin')
      .set('Range', 'bytes=1-4')
      .responseType('blob');
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], `bytes 1-4/${binary.length}`);
    assert.equal(res.headers['content-length'], '4');
    assert.deepEqual(res.body, binary.subarray(1, 5));
    const tail = await supertest(files())
      .get('/data.bin')
      .set('Range', 'bytes=-3')
      .responseType('blob');
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, binary.subarray(binary.length - 3));
  });

  it('answers 416 with the full length for a range past the end', async () => {
    const res = await supertest(files()).get('/data.bin').set('Range', `bytes=${binary.length}-`);
    assert.equal(res.status, 416);
    assert.equal(res.headers['content-range'], `bytes */${binary.length}`);
  });

  it('honours If-Range: the range for the current ETag, the whole file for a stale one', async () => {
    const { headers } = await supertest(files()).head('/data.bin');
    const current = await supertest(files())
      .get('/data.bin')
      .set('Range', 'bytes=0-1')
      .set('If-Range', headers['etag']!)
      .responseType('blob');
    assert.equal(current.status, 206);
    assert.deepEqual(current.body, binary.subarray(0, 2));
    const stale = await supertest(files())
      .get('/data.bin')
      .set('Range', 'bytes=0-1')
      .set('If-Range', '"an-older-version"')
      .responseType('blob');
    assert.equal(stale.status, 200);
    assert.deepEqual(stale.body, binary);
  });

  it('answers HEAD with the GET headers and no body', async () => {
    const port = await listen(staticFiles(site));
    const res = await fetchRaw(port, '/hello.txt', { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(HELLO)));
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(res.body.length, 0);
  });

  it('sends the Cache-Control its maxAge and immutable options ask for', async () => {
    const res = await supertest(
      toNodeHandler(staticFiles(site, { maxAge: 3600, immutable: true })),
    ).get('/hello.txt');
    assert.equal(res.headers['cache-control'], 'public, max-age=3600, immutable');
  });

  it('serves a symlink that stays inside the folder', async () => {
    const res = await supertest(files()).get('/inside-link.txt');
    assert.equal(res.status, 200);
    assert.equal(res.text, HELLO);
  });

  it('never lets a path out of the folder: .., %2e%2e, %2F, %5C, backslashes, NUL and outward symlinks', async () => {
    const port = await listen(staticFiles(site));
    const attempts: Array<[path: string, status: number]> = [
      ['/../outside/secret.txt', 403],
      ['/sub/../../outside/secret.txt', 403],
      ['/%2e%2e/outside/secret.txt', 403],
      ['/%2E%2E/%2e%2e/outside/secret.txt', 403],
      ['/..%2Foutside%2Fsecret.txt', 403],
      ['/sub%2F..%2F..%2Foutside%2Fsecret.txt', 403],
      ['/..%5Coutside%5Csecret.txt', 403],
      ['/..\\outside\\secret.txt', 403],
      ['/hello.txt%00.png', 400],
      ['/%00', 400],
      ['/escape.txt', 404],
      ['/escape-dir/secret.txt', 404],
    ];
    for (const [path, status] of attempts) {
      const res = await fetchRaw(port, path);
      assert.equal(res.status, status, path);
      assert.ok(!res.body.toString('latin1').includes(SECRET), `${path} leaked the secret`);
    }
  });

  it('does not serve dotfiles, dot folders or a symlink onto a dotfile', async () => {
    for (const path of ['/.env', '/.hidden/inside.txt', '/to-dotfile', '/%2eenv']) {
      const res = await supertest(files()).get(path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(res.text, /dotfile/, path);
    }
  });

  it('answers 404 for a missing file and for a directory (no listings)', async () => {
    for (const path of ['/missing.txt', '/sub', '/sub/', '/', '/hello.txt/more']) {
      const res = await supertest(files()).get(path);
      assert.equal(res.status, 404, path);
      assert.equal(res.text, 'Not Found\n', path);
    }
  });

  it('answers 405 with Allow for methods other than GET and HEAD', async () => {
    const res = await supertest(files()).post('/hello.txt').send('x');
    assert.equal(res.status, 405);
    assert.equal(res.headers['allow'], 'GET, HEAD');
  });

  it('hands whatever it does not serve to the fallback with the environ as it arrived', async () => {
    const app = mount({ '/static': staticFiles(site, { fallback: backend }) });
    for (const [method, path] of [
      ['get', '/static/missing.txt'],
      ['get', '/static/sub'],
      ['get', '/static/.env'],
      ['get', '/static/escape.txt'],
      ['post', '/static/hello.txt'],
      ['delete', '/static/hello.txt'],
    ] as const) {
      const res = await supertest(toNodeHandler(app))[method](path);
      assert.equal(res.status, 200, path);
      assert.deepEqual(
        res.body,
        {
          app: true,
          method: method.toUpperCase(),
          scriptName: '/static',
          pathInfo: path.slice('/static'.length),
        },
        `${method} ${path}`,
      );
    }
  });

  it('serves the same through a middleware that wraps startResponse (the emulated response)', async () => {
    const inner = staticFiles(site);
    const tagged: App = (environ, startResponse) =>
      inner(environ, (status, headers, excInfo) =>
        startResponse(status, [...headers, ['X-Via', 'middleware']], excInfo),
      );
    const whole = await supertest(toNodeHandler(tagged)).get('/data.bin').responseType('blob');
    assert.equal(whole.headers['x-via'], 'middleware');
    assert.deepEqual(whole.body, binary);
    const part = await supertest(toNodeHandler(tagged))
      .get('/data.bin')
      .set('Range', 'bytes=2-5')
      .responseType('blob');
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, binary.subarray(2, 6));
    const fresh = await supertest(toNodeHandler(tagged))
      .get('/data.bin')
      .set('If-None-Match', whole.headers['etag']!);
    assert.equal(fresh.status, 304);
  });

  it('works inside Express under a mount path', async () => {
    const app = express();
    app.use('/assets', toExpress(staticFiles(site)));
    const res = await supertest(app).get('/assets/sub/nested.txt');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'nested\n');
    const range = await supertest(app).get('/assets/hello.txt').set('Range', 'bytes=0-4');
    assert.equal(range.status, 206);
    assert.equal(range.text, HELLO.slice(0, 5));
  });

  it('sends a 5 MB file whole, and a range in its middle', async () => {
    const port = await listen(staticFiles(site));
    const whole = await fetchRaw(port, '/big.bin');
    assert.equal(whole.status, 200);
    assert.equal(sha256(whole.body), sha256(big));
    const start = 3 * 1024 * 1024 + 7;
    const part = await fetchRaw(port, '/big.bin', {
      headers: { Range: `bytes=${start}-${start + 99_999}` },
    });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, big.subarray(start, start + 100_000));
  });

  it('closes the file when clients hang up in the middle of a large download', async () => {
    const port = await listen(staticFiles(site));
    await assertNoFdLeak(() => abortedHttpDownload(port, '/big.bin'));
    // The server is still fine afterwards.
    const res = await fetchRaw(port, '/hello.txt');
    assert.equal(res.body.toString(), HELLO);
  });

  it('survives a client that hangs up before the file is looked up', async () => {
    const files = staticFiles(site);
    let answered!: () => void;
    const done = new Promise<void>((resolve) => (answered = resolve));
    // Holds the request until the client is gone, then lets staticFiles answer into the void.
    const late: App = async (environ, startResponse) => {
      if (environ.PATH_INFO !== '/big.bin') return files(environ, startResponse);
      const signal = environ['ngi.signal'];
      if (!signal.aborted) await once(signal, 'abort');
      try {
        return await files(environ, startResponse);
      } finally {
        setTimeout(answered, 100);
      }
    };
    const port = await listen(late);
    for (const method of ['GET', 'HEAD']) {
      await new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/big.bin', method, agent: false });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.end(() => setTimeout(() => req.destroy(), 20));
      });
    }
    await done;
    const res = await fetchRaw(port, '/hello.txt');
    assert.equal(res.body.toString(), HELLO);
  });

  it('refuses a folder that does not exist and a maxAge that is not seconds, at once', () => {
    assert.throws(() => staticFiles(join(base, 'no-such-folder')), /is not a folder/);
    assert.throws(() => staticFiles(join(site, 'hello.txt')), /is not a folder/);
    assert.throws(() => staticFiles(site, { maxAge: -1 }), /maxAge must be a number of seconds/);
    assert.throws(
      () => staticFiles(site, { maxAge: '1d' as unknown as number }),
      /maxAge must be a number of seconds/,
    );
  });
});

describe('serve() with staticMap', () => {
  async function start(options: ServeOptions): Promise<ServerHandle> {
    const handle = await serve(backend, {
      logFormat: 'off',
      errors: logLines(),
      staticMap: { '/static': site },
      ...options,
    });
    handles.push(handle);
    return handle;
  }

  describe('on the HTTP listener', () => {
    let port: number;
    before(async () => {
      port = (await start({ http: 0 })).http!.port;
    });

    it('serves files under the prefix with validators and ranges', async () => {
      const res = await fetchRaw(port, '/static/hello.txt');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), HELLO);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      const fresh = await fetchRaw(port, '/static/hello.txt', {
        headers: { 'If-None-Match': res.headers.etag! },
      });
      assert.equal(fresh.status, 304);
      const part = await fetchRaw(port, '/static/data.bin', { headers: { Range: 'bytes=0-9' } });
      assert.equal(part.status, 206);
      assert.deepEqual(part.body, binary.subarray(0, 10));
    });

    it('falls through to the app with SCRIPT_NAME and PATH_INFO restored', async () => {
      for (const [method, path] of [
        ['GET', '/static/missing.txt'],
        ['GET', '/static/sub/'],
        ['GET', '/static'],
        ['GET', '/static/.env'],
        ['PUT', '/static/hello.txt'],
      ]) {
        const res = await fetchRaw(port, path!, { method });
        assert.deepEqual(
          JSON.parse(res.body.toString()),
          { app: true, method, scriptName: '', pathInfo: path },
          `${method} ${path}`,
        );
      }
    });

    it('leaves paths outside the prefix to the app', async () => {
      const res = await fetchRaw(port, '/staticky/hello.txt');
      assert.equal(JSON.parse(res.body.toString()).pathInfo, '/staticky/hello.txt');
    });

    it('refuses escapes from the folder', async () => {
      for (const path of ['/static/../outside/secret.txt', '/static/%2e%2e%2Foutside/secret.txt']) {
        const res = await fetchRaw(port, path);
        assert.equal(res.status, 403, path);
      }
      const link = await fetchRaw(port, '/static/escape.txt');
      assert.ok(!link.body.toString().includes(SECRET));
    });

    it('sends the 5 MB file intact', async () => {
      const res = await fetchRaw(port, '/static/big.bin');
      assert.equal(res.headers['content-length'], String(BIG));
      assert.equal(sha256(res.body), sha256(big));
    });
  });

  describe('on the uwsgi listener', () => {
    let port: number;
    before(async () => {
      port = (await start({ uwsgi: 0 })).uwsgi!.port;
    });

    it('serves a file with Content-Length, type and validators', async () => {
      const res = await uwsgiRequest(port, '/static/hello.txt');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), HELLO);
      assert.equal(res.header('Content-Length'), String(Buffer.byteLength(HELLO)));
      assert.equal(res.header('Content-Type'), 'text/plain; charset=utf-8');
      assert.equal(res.header('Accept-Ranges'), 'bytes');
      assert.ok(res.header('ETag'));
      assert.ok(res.header('Last-Modified'));
    });

    it('answers conditional and range requests, and HEAD without a body', async () => {
      const first = await uwsgiRequest(port, '/static/data.bin');
      assert.deepEqual(first.body, binary);
      const fresh = await uwsgiRequest(port, '/static/data.bin', {
        headers: [['HTTP_IF_NONE_MATCH', first.header('ETag')!]],
      });
      assert.equal(fresh.status, 304);
      assert.equal(fresh.body.length, 0);
      const part = await uwsgiRequest(port, '/static/data.bin', {
        headers: [['HTTP_RANGE', 'bytes=100-199']],
      });
      assert.equal(part.status, 206);
      assert.equal(part.header('Content-Range'), `bytes 100-199/${binary.length}`);
      assert.deepEqual(part.body, binary.subarray(100, 200));
      const none = await uwsgiRequest(port, '/static/data.bin', {
        headers: [['HTTP_RANGE', `bytes=${binary.length + 10}-`]],
      });
      assert.equal(none.status, 416);
      const head = await uwsgiRequest(port, '/static/hello.txt', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.header('Content-Length'), String(Buffer.byteLength(HELLO)));
      assert.equal(head.body.length, 0);
    });

    it('serves a UTF-8 file name and falls through to the app for a missing one', async () => {
      const named = await uwsgiRequest(port, '/static/' + encodeURIComponent(UTF8_NAME));
      assert.equal(named.body.toString(), 'unicode name\n');
      const missing = await uwsgiRequest(port, '/static/nope.txt');
      assert.deepEqual(JSON.parse(missing.body.toString()), {
        app: true,
        method: 'GET',
        scriptName: '',
        pathInfo: '/static/nope.txt',
      });
    });

    it('refuses a PATH_INFO that climbs out, even from a peer that does not normalise', async () => {
      const climb = await uwsgiRequest(port, '/static/../outside/secret.txt', {
        pathInfo: '/static/../outside/secret.txt',
      });
      assert.equal(climb.status, 403);
      const nul = await uwsgiRequest(port, '/static/hello.txt%00', {
        pathInfo: '/static/hello.txt\0',
      });
      assert.equal(nul.status, 400);
      const link = await uwsgiRequest(port, '/static/escape-dir/secret.txt');
      assert.ok(!link.body.toString().includes(SECRET));
    });

    it('sends the 5 MB file intact', async () => {
      const res = await uwsgiRequest(port, '/static/big.bin');
      assert.equal(res.header('Content-Length'), String(BIG));
      assert.equal(sha256(res.body), sha256(big));
    });

    it('closes the file when peers hang up in the middle of a large download', async () => {
      await assertNoFdLeak(() => abortedUwsgiDownload(port, '/static/big.bin'));
      const res = await uwsgiRequest(port, '/static/hello.txt');
      assert.equal(res.body.toString(), HELLO);
    });
  });
});

describe('ngi serve --static-map', () => {
  it('serves the folder under the prefix and the app everywhere else', async () => {
    const proc = spawnCli([
      'serve',
      'test/fixtures/ngi-app.mjs',
      '--static-map',
      `/static=${site}`,
      '--workers',
      '0',
      '--http',
      '0',
      '--log-format',
      'off',
    ]);
    clis.push(proc);
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    assert.deepEqual(await cliGet(Number(port), '/static/hello.txt'), { status: 200, body: HELLO });
    assert.deepEqual(await cliGet(Number(port), '/static/sub/nested.txt'), {
      status: 200,
      body: 'nested\n',
    });
    assert.deepEqual(await cliGet(Number(port), '/static/missing.txt'), {
      status: 200,
      body: 'hello /static/missing.txt',
    });
    assert.deepEqual(await cliGet(Number(port), '/other'), { status: 200, body: 'hello /other' });
    const escape = await cliGet(Number(port), '/static/escape.txt');
    assert.ok(!escape.body.includes(SECRET));
  });

  it('refuses to start when the mapped folder does not exist', async () => {
    const proc = spawnCli([
      'serve',
      'test/fixtures/ngi-app.mjs',
      '--static-map',
      `/static=${join(base, 'no-such-folder')}`,
      '--workers',
      '0',
      '--http',
      '0',
    ]);
    clis.push(proc);
    assert.notEqual(await proc.exited, 0);
    assert.match(proc.stderr(), /is not a folder/);
  });
});

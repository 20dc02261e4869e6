import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as http2Connect, constants as http2, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { fromExpress } from '../../../adapters/express.js';
import { fromFastify } from '../../../adapters/fastify.js';
import { fromKoa } from '../../../adapters/koa.js';
import { fromNodeHandler } from '../../../adapters/node.js';
import { defineApp } from '../../../src/core/define-app.js';
import type { App } from '../../../src/core/types.js';
import { serve, type ServeOptions, type ServerHandle } from '../../../src/server/serve.js';
import { makeCertificate, type CertificateFiles } from '../../helpers/tls.js';
import { openWs, wsExchange } from '../../helpers/ws-client.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ngi-https-'));
let certs: CertificateFiles;
const handles: ServerHandle[] = [];
const sessions: ClientHttp2Session[] = [];
before(() => {
  certs = makeCertificate(dir, 'first', 'ngi-first');
});
after(async () => {
  for (const session of sessions) session.destroy();
  await Promise.all(handles.map((h) => h.close(0)));
  rmSync(dir, { recursive: true, force: true });
});

const quiet = { write() {} };
async function start(app: App, options: Partial<ServeOptions> = {}): Promise<number> {
  const handle = await serve(app, {
    https: 0,
    cert: certs.cert,
    key: certs.key,
    logFormat: 'off',
    errors: quiet,
    ...options,
  });
  handles.push(handle);
  return handle.https!.port;
}

const environApp = defineApp((environ, startResponse) => {
  startResponse('200 OK', [
    ['Content-Type', 'application/json'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
  ]);
  const { SERVER_PROTOCOL, HTTPS, HTTP_HOST, SERVER_NAME, SERVER_PORT, PATH_INFO, QUERY_STRING } =
    environ;
  return [
    JSON.stringify({
      SERVER_PROTOCOL,
      HTTPS,
      scheme: environ['ngi.url_scheme'],
      HTTP_HOST,
      SERVER_NAME,
      SERVER_PORT,
      PATH_INFO,
      QUERY_STRING,
      pseudo: Object.keys(environ).filter((k) => k.includes(':')),
    }),
  ];
});

/** curl over TLS (`--http2` or `--http1.1`), trusting the test's own certificate. */
async function curl(port: number, path: string, version: '--http2' | '--http1.1') {
  const { stdout } = await run('curl', [
    '-sS',
    '--max-time',
    '20',
    version,
    '--cacert',
    certs.cert,
    '-D',
    '-',
    `https://localhost:${port}${path}`,
  ]);
  const [head, body] = stdout.split('\r\n\r\n');
  return { head: head!, body: body! };
}

function h2(port: number): ClientHttp2Session {
  const session = http2Connect(`https://localhost:${port}`, { ca: readCert() });
  session.on('error', () => {});
  sessions.push(session);
  return session;
}
let certText: string | undefined;
const readCert = () => (certText ??= readFileSync(certs.cert, 'utf8'));

describe('HTTPS listener: HTTP/2 and HTTP/1.1 by ALPN', () => {
  it('speaks h2 to curl --http2: HTTP/2.0, HTTPS on, Host from :authority, no pseudo-headers', async () => {
    const port = await start(environApp);
    const { head, body } = await curl(port, '/p?q=1', '--http2');
    assert.match(head, /^HTTP\/2 200/);
    assert.deepEqual(
      head.split('\r\n').filter((l) => l.startsWith('set-cookie')),
      ['set-cookie: a=1', 'set-cookie: b=2'],
    );
    assert.deepEqual(JSON.parse(body), {
      SERVER_PROTOCOL: 'HTTP/2.0',
      HTTPS: 'on',
      scheme: 'https',
      HTTP_HOST: `localhost:${port}`,
      SERVER_NAME: 'localhost',
      SERVER_PORT: String(port),
      PATH_INFO: '/p',
      QUERY_STRING: 'q=1',
      pseudo: [],
    });
  });

  it('speaks HTTP/1.1 over TLS on the same port to curl --http1.1', async () => {
    const port = await start(environApp);
    const { head, body } = await curl(port, '/one', '--http1.1');
    assert.match(head, /^HTTP\/1\.1 200 OK/);
    const environ = JSON.parse(body);
    assert.equal(environ.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(environ.HTTPS, 'on');
    assert.equal(environ.scheme, 'https');
  });

  it('drops hop-by-hop headers a Node handler sets, instead of failing the h2 stream', async () => {
    const app = fromNodeHandler((_req, res) => {
      res.setHeader('Connection', 'close');
      res.setHeader('Keep-Alive', 'timeout=5');
      res.setHeader('X-Kept', 'yes');
      res.end('fine');
    });
    const port = await start(app);
    const { head, body } = await curl(port, '/', '--http2');
    assert.match(head, /^HTTP\/2 200/);
    assert.doesNotMatch(head, /^connection|^keep-alive/im);
    assert.match(head, /^x-kept: yes/im);
    assert.equal(body, 'fine');
  });

  it('a reset h2 stream fires ngi.signal and finishes the body', async () => {
    let aborted!: () => void;
    const abortSeen = new Promise<void>((resolve) => (aborted = resolve));
    let closed!: () => void;
    const bodyClosed = new Promise<void>((resolve) => (closed = resolve));
    const app = defineApp((environ, startResponse) => {
      (environ['ngi.signal'] as AbortSignal).addEventListener('abort', () => aborted());
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        try {
          for (;;) {
            yield 'x'.repeat(16384);
            await new Promise((resolve) => setImmediate(resolve));
          }
        } finally {
          closed();
        }
      })();
    });
    const port = await start(app);
    const stream = h2(port).request({ ':path': '/forever' });
    stream.once('data', () => stream.close(0x8 /* CANCEL */));
    await abortSeen;
    await bodyClosed;
  });

  it('holds back an h2 body the client does not read (per-stream backpressure)', async () => {
    let produced = 0;
    const app = defineApp((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (function* () {
        for (; produced < 1024; produced++) yield Buffer.alloc(16384);
      })();
    });
    const port = await start(app);
    const session = h2(port);
    const stream = session.request({ ':path': '/big' });
    stream.pause();
    await new Promise((resolve) => stream.once('response', resolve));
    // Round trips through the server's event loop while the client reads nothing: without
    // backpressure the server would pull all 16 MB meanwhile (a synchronous generator).
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve, reject) =>
        session.ping((error) => (error ? reject(error) : resolve(undefined))),
      );
    }
    assert.ok(produced < 64, `pulled ${produced} chunks of 16 KB through a 64 KB window`);
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    assert.equal(bytes, 1024 * 16384);
  });

  it('close() lets an h2 stream in flight finish, sends GOAWAY, and resolves', async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const app = defineApp(async (_environ, startResponse) => {
      arrived();
      await released;
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['finished'];
    });
    const handle = await serve(app, {
      https: 0,
      cert: certs.cert,
      key: certs.key,
      logFormat: 'off',
      errors: quiet,
    });
    const session = h2(handle.https!.port);
    const goaway = new Promise((resolve) => session.once('goaway', resolve));
    const stream = session.request({ ':path': '/slow' });
    let body = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    const ended = new Promise((resolve) => stream.once('end', resolve));
    await arrival;
    const closed = handle.close(30);
    await goaway;
    release();
    await ended;
    assert.equal(body, 'finished');
    await closed;
  });

  it('re-reads the certificate on reloadCertificates()', async () => {
    const files = makeCertificate(dir, 'reload', 'ngi-first');
    const handle = await serve(environApp, {
      https: 0,
      cert: files.cert,
      key: files.key,
      logFormat: 'off',
      errors: quiet,
    });
    handles.push(handle);
    const subject = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect(
          { port: handle.https!.port, host: '127.0.0.1', rejectUnauthorized: false },
          () => {
            resolve(String(socket.getPeerCertificate().subject.CN));
            socket.destroy();
          },
        );
        socket.on('error', reject);
      });
    assert.equal(await subject(), 'ngi-first');
    const renewed = makeCertificate(dir, 'reload', 'ngi-renewed');
    assert.equal(renewed.cert, files.cert, 'the files are overwritten in place, as on renewal');
    handle.reloadCertificates();
    assert.equal(await subject(), 'ngi-renewed');
  });
});

describe('--socket-timeout on HTTP/2 streams', () => {
  /** Resolved when the body the app returned is closed (its `finally` ran). */
  let bodyClosed: () => void = () => {};
  const stalling = defineApp(async (environ, startResponse) => {
    if (environ.REQUEST_METHOD === 'POST') for await (const _ of environ['ngi.input']);
    if (environ.PATH_INFO === '/slow') await new Promise((r) => setTimeout(r, 2500));
    if (environ.PATH_INFO !== '/big') {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['done'];
    }
    startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
    return (function* () {
      try {
        // Bounded: far more than the stream and session windows hold, far less than memory.
        for (let i = 0; i < 4096; i++) yield Buffer.alloc(65536, i);
      } finally {
        bodyClosed();
      }
    })();
  });

  async function session(): Promise<ClientHttp2Session> {
    const port = await start(stalling, { socketTimeout: 1 });
    const client = http2Connect(`https://localhost:${port}`, { ca: readFileSync(certs.cert) });
    sessions.push(client);
    return client;
  }

  /** How a client stream ended: the RST_STREAM code the server sent, or 0 for a clean end. */
  const ended = (stream: ReturnType<ClientHttp2Session['request']>) =>
    new Promise<number>((resolve) => {
      stream.on('error', () => {});
      stream.once('close', () => resolve(stream.rstCode ?? 0));
    });

  const text = async (stream: ReturnType<ClientHttp2Session['request']>): Promise<string> => {
    stream.setEncoding('utf8');
    let body = '';
    for await (const chunk of stream) body += chunk as string;
    return body;
  };

  it(
    'resets a stream whose response the client stops taking, and closes the body',
    { timeout: 20_000 },
    async () => {
      const client = await session();
      const closed = new Promise<void>((resolve) => (bodyClosed = resolve));
      const stream = client.request({ ':path': '/big' });
      stream.pause(); // and never read: the windows fill, the server's writes wait
      assert.equal(await ended(stream), http2.NGHTTP2_CANCEL);
      await closed;
      // Only the stream: the session serves the next request.
      assert.equal(await text(client.request({ ':path': '/' })), 'done');
    },
  );

  it(
    'resets a stream whose request body stops coming, and answers a slow app',
    { timeout: 20_000 },
    async () => {
      const client = await session();
      const stalled = client.request(
        { ':path': '/upload', ':method': 'POST' },
        { endStream: false },
      );
      stalled.write('half');
      assert.equal(await ended(stalled), http2.NGHTTP2_CANCEL);
      // An app that thinks longer than the timeout is not stalled on its peer: it answers.
      assert.equal(await text(client.request({ ':path': '/slow' })), 'done');
    },
  );
});

describe('frameworks over HTTPS see a secure request over h2 and HTTP/1.1', () => {
  const expressApp = express();
  expressApp.get('/', (req, res) => {
    res.json({ secure: req.secure, protocol: req.protocol, version: req.httpVersion });
  });
  const koa = new Koa();
  koa.use((ctx) => {
    ctx.body = { secure: ctx.secure, protocol: ctx.protocol, version: ctx.req.httpVersion };
  });
  const apps: Array<[string, () => Promise<App> | App]> = [
    ['Express', () => fromExpress(expressApp)],
    ['Koa', () => fromKoa(koa)],
    [
      'Fastify',
      async () => {
        const fastify = Fastify();
        fastify.get('/', (request) => ({
          secure: request.protocol === 'https',
          protocol: request.protocol,
          version: request.raw.httpVersion,
        }));
        return fromFastify(fastify);
      },
    ],
  ];
  for (const [name, make] of apps) {
    it(`${name}: req.secure and req.protocol`, async () => {
      const port = await start(await make());
      for (const [flag, version] of [
        ['--http2', '2.0'],
        ['--http1.1', '1.1'],
      ] as const) {
        const { body } = await curl(port, '/', flag);
        assert.deepEqual(JSON.parse(body), { secure: true, protocol: 'https', version }, flag);
      }
      // And Node's own https client, over HTTP/1.1.
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(
          { host: 'localhost', port, path: '/', ca: readCert(), agent: false },
          (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (c: string) => (text += c));
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.equal(JSON.parse(body).secure, true);
    });
  }
});

/** Greets with what the environ says of the connection, then echoes until the client closes. */
const wssEcho = defineApp(async (environ, startResponse) => {
  const upgrade = environ['ngi.upgrade'];
  if (upgrade === undefined) {
    startResponse('426 Upgrade Required', [['Content-Type', 'text/plain']]);
    return ['websocket only'];
  }
  const session = await upgrade.acceptWebSocket();
  await session.send(`hello ${environ.HTTPS} ${environ['ngi.url_scheme']}`);
  for await (const message of session) await session.send(`echo ${String(message)}`);
  return [];
});

/** Reads from a TLS socket until `pattern` matches what arrived (20 s at most). */
function readUntil(socket: ReturnType<typeof tlsConnect>, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in 20 s: ${text}`)), 20_000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!pattern.test(text)) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(text);
    };
    socket.on('data', onData);
  });
}

describe('WebSockets over TLS (wss://) on the HTTPS listener', () => {
  it('an NGI app takes the upgrade through ngi.upgrade, with HTTPS on, and echoes with the ws client', async () => {
    const port = await start(wssEcho);
    const result = await wsExchange(`wss://localhost:${port}/chat`, ['one', 'two'], 3, {
      ca: readCert(),
    });
    assert.deepEqual(result.messages, ['hello on https', 'echo one', 'echo two']);
    assert.equal(result.code, 1000);
  });

  it('a Node handler with an upgrade listener (ws on its own server) takes wss:// connections', async () => {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ noServer: true });
    const app = fromNodeHandler((_req, res) => res.end('plain'), {
      upgrade: (req, socket, head) =>
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.send(`secure ${String((req.socket as { encrypted?: boolean }).encrypted)}`);
          ws.on('message', (data) => ws.send(`echo ${String(data)}`));
        }),
    });
    const port = await start(app);
    const result = await wsExchange(`wss://localhost:${port}/`, ['x'], 2, { ca: readCert() });
    assert.deepEqual(result.messages, ['secure true', 'echo x']);
    wss.close();
  });

  it('an upgrade arriving while the listener drains is refused with a 503', async () => {
    const handle = await serve(wssEcho, {
      https: 0,
      cert: certs.cert,
      key: certs.key,
      logFormat: 'off',
      errors: quiet,
    });
    const port = handle.https!.port;
    // A kept-alive HTTP/1.1 connection opened before the drain carries the upgrade after it.
    const socket = tlsConnect({
      host: 'localhost',
      port,
      ca: readCert(),
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.match(await readUntil(socket, /websocket only/), /^HTTP\/1\.1 426/);
    const closed = handle.close(5);
    socket.write(
      'GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    assert.match(await readUntil(socket, /\r\n\r\n[^]*\n/), /^HTTP\/1\.1 503 Service Unavailable/);
    socket.destroy();
    await closed;
  });

  it('a wss:// connection still open at the end of the grace period is closed with 1001 Going Away, and the log says so', async () => {
    const lines: string[] = [];
    const handle = await serve(wssEcho, {
      https: 0,
      cert: certs.cert,
      key: certs.key,
      logFormat: 'off',
      errors: { write: (text: string) => void lines.push(text) },
    });
    const held = await openWs(`wss://localhost:${handle.https!.port}/`, { ca: readCert() });
    assert.equal(await held.message(0), 'hello on https');
    await handle.close(1);
    assert.equal(await held.closed, 1001);
    assert.match(lines.join(''), /closing 1 upgraded connection\(s\) \(WebSocket\)/);
  });
});

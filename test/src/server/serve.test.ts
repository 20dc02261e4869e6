import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { defineApp } from '../../../src/core/define-app.js';
import type { WebSocketClose } from '../../../src/core/types.js';
import { serve, type ServeOptions, type ServerHandle } from '../../../src/server/serve.js';
import { encodeUwsgiPacket } from '../../../src/protocol/uwsgi-packet.js';
import { parseHttpResponse, sendRaw } from '../../helpers/uwsgi-client.js';

const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
});

/** Resolved by the app when `/slow` arrives; `/slow?ms=N` waits N ms before answering. */
let slowArrived = () => {};
const app = defineApp(async (environ, startResponse) => {
  if (environ.PATH_INFO === '/slow') {
    slowArrived();
    const ms = Number(new URLSearchParams(environ.QUERY_STRING).get('ms') ?? '300');
    await new Promise((r) => setTimeout(r, ms));
  }
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return [`hello ${environ.PATH_INFO}`];
});

const quiet = { write() {} };
const lines: string[] = [];
const capture = { write: (line: string) => lines.push(line) };

async function start(options: ServeOptions): Promise<ServerHandle> {
  const handle = await serve(app, { logFormat: 'off', errors: quiet, ...options });
  handles.push(handle);
  return handle;
}

function get(
  port: number,
  path: string,
): Promise<{ status: number; body: string; connection?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const arrival = () => new Promise<void>((resolve) => (slowArrived = resolve));

describe('serve()', () => {
  it('serves over HTTP on a free port and reports the real address', async () => {
    const handle = await start({ http: 0 });
    assert.equal(handle.http!.host, '127.0.0.1');
    assert.notEqual(handle.http!.port, 0);
    assert.equal(handle.uwsgi, undefined);
    assert.deepEqual(await get(handle.http!.port, '/a'), { status: 200, body: 'hello /a' });
  });

  it('serves HTTP and uwsgi at once', async () => {
    const handle = await start({ http: { port: 0 }, uwsgi: { host: '127.0.0.1', port: 0 } });
    const packet = encodeUwsgiPacket([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/u'],
      ['PATH_INFO', '/u'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ]);
    const { bytes } = await sendRaw(handle.uwsgi!.port, packet);
    const reply = parseHttpResponse(bytes);
    assert.match(reply.statusLine, /^HTTP\/1\.1 200/);
    assert.equal(reply.body.toString(), 'hello /u');
    assert.equal((await get(handle.http!.port, '/h')).body, 'hello /h');
  });

  it('refuses to start without a listener, and names the address it cannot bind', async () => {
    await assert.rejects(serve(app, {}), /give an http, https and\/or uwsgi listener/);
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      await assert.rejects(
        serve(app, { http: port }),
        new RegExp(`cannot listen for http on 127.0.0.1:${port}`),
      );
    } finally {
      taken.close();
    }
  });

  it('writes a readable access line per request by default, quotes escaped', async () => {
    lines.length = 0;
    const handle = await start({ http: 0, logFormat: 'text', accessLog: capture });
    await get(handle.http!.port, '/text?q="x"');
    await new Promise((r) => setImmediate(r));
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /^127\.0\.0\.1 \[\d{4}-\d\d-\d\dT[\d:.]+Z\] "GET \/text\?q=\\x22x\\x22 HTTP\/1\.1" 200 \d+ [\d.]+ms pid=\d+\n$/,
    );
  });

  it('writes one JSON object per request with --log-format json', async () => {
    lines.length = 0;
    const handle = await start({ http: 0, logFormat: 'json', accessLog: capture });
    await get(handle.http!.port, '/json');
    await new Promise((r) => setImmediate(r));
    const entry = JSON.parse(lines[0]!);
    assert.equal(entry.method, 'GET');
    assert.equal(entry.uri, '/json');
    assert.equal(entry.status, 200);
    assert.equal(entry.complete, true);
    assert.equal(entry.pid, process.pid);
    assert.equal(typeof entry.ms, 'number');
  });

  it('logs the time an app spends synchronously, on both listeners', async () => {
    // The clock must start before the app runs: an app that blocks for 300 ms before it
    // returns took 300 ms, however fast its body is written afterwards.
    const blocking = defineApp((environ, startResponse) => {
      const until = performance.now() + 300;
      while (performance.now() < until);
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['blocked'];
    });
    const entries: Array<{ uri: string; ms: number }> = [];
    let logged = () => {};
    const bothLogged = new Promise<void>((resolve) => (logged = resolve));
    const handle = await serve(blocking, {
      http: 0,
      uwsgi: 0,
      logFormat: 'json',
      errors: quiet,
      accessLog: {
        write: (line: string) => {
          if (entries.push(JSON.parse(line)) === 2) logged();
        },
      },
    });
    handles.push(handle);
    await get(handle.http!.port, '/over-http');
    const packet = encodeUwsgiPacket([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/over-uwsgi'],
      ['PATH_INFO', '/over-uwsgi'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ]);
    await sendRaw(handle.uwsgi!.port, packet);
    await bothLogged;
    const ms = Object.fromEntries(entries.map((entry) => [entry.uri, entry.ms]));
    assert.ok(ms['/over-http']! >= 300, `http logged ${ms['/over-http']} ms`);
    assert.ok(ms['/over-uwsgi']! >= 300, `uwsgi logged ${ms['/over-uwsgi']} ms`);
  });

  it('serves stats as JSON: requests, in flight, statuses, workers, uptime', async () => {
    const handle = await start({ http: 0, stats: 0 });
    await get(handle.http!.port, '/one');
    await get(handle.http!.port, '/two');
    const stats = JSON.parse((await get(handle.stats!.port, '/')).body);
    assert.equal(stats.requests, 2);
    assert.equal(stats.inFlight, 0);
    assert.deepEqual(stats.statuses, { 200: 2 });
    assert.equal(typeof stats.uptime, 'number');
    assert.equal(stats.workers.length, 1);
    assert.equal(stats.workers[0].pid, process.pid);
  });

  it('answers 504 to a request past harakiri and asks to be recycled', async () => {
    const reasons: string[] = [];
    const handle = await start({ http: 0, harakiri: 0.2, onRecycle: (r) => reasons.push(r) });
    const reply = await get(handle.http!.port, '/slow?ms=2000');
    assert.equal(reply.status, 504);
    assert.deepEqual(reasons, ['harakiri']);
    assert.equal(handle.figures().harakiri, 1);
    assert.equal((await get(handle.http!.port, '/fine')).status, 200, 'still serving meanwhile');
  });

  it('asks to be recycled once after maxRequests, and keeps serving until replaced', async () => {
    const reasons: string[] = [];
    const handle = await start({ http: 0, maxRequests: 3, onRecycle: (r) => reasons.push(r) });
    for (let i = 0; i < 5; i++) assert.equal((await get(handle.http!.port, '/')).status, 200);
    assert.deepEqual(reasons, ['max-requests']);
  });

  it('refuses a body over limitPost with 413', async () => {
    const handle = await start({ http: 0, limitPost: 4 });
    const reply = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: handle.http!.port, method: 'POST', path: '/', agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.setHeader('Content-Length', '10');
      req.end('0123456789');
    });
    assert.equal(reply, 413);
  });

  it('close() stops accepting and lets an in-flight request finish', async () => {
    const handle = await start({ http: 0 });
    const arrived = arrival();
    const slow = get(handle.http!.port, '/slow?ms=300');
    await arrived;
    const closed = handle.close();
    assert.deepEqual(await slow, { status: 200, body: 'hello /slow' });
    await closed;
    await assert.rejects(get(handle.http!.port, '/after'));
  });

  it('close() cuts a request that outlives the grace period', async () => {
    const handle = await start({ http: 0 });
    const arrived = arrival();
    const slow = get(handle.http!.port, '/slow?ms=5000');
    await arrived;
    await handle.close(0.1);
    await assert.rejects(slow, /socket hang up|ECONNRESET/);
  });

  it('close() cuts a uwsgi request that outlives the grace period', async () => {
    const handle = await start({ uwsgi: { host: '127.0.0.1', port: 0 } });
    const arrived = arrival();
    const packet = encodeUwsgiPacket([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/slow?ms=5000'],
      ['PATH_INFO', '/slow'],
      ['QUERY_STRING', 'ms=5000'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ]);
    const slow = sendRaw(handle.uwsgi!.port, packet, { timeoutMs: 4000 });
    await arrived;
    await handle.close(0.1);
    const { bytes, closed } = await slow;
    assert.equal(closed, true, 'the connection was cut, not left until the app finished');
    assert.equal(bytes.length, 0);
  });
});

describe('serve(): WebSockets at the end of the grace period', () => {
  /** Told how the app saw its session end. */
  let sessionEnded: (close: WebSocketClose) => void = () => {};
  const chat = defineApp(async (environ, startResponse) => {
    const upgrade = environ['ngi.upgrade'];
    if (upgrade === undefined) {
      startResponse('426 Upgrade Required', [['Content-Type', 'text/plain']]);
      return ['websocket only'];
    }
    const session = await upgrade.acceptWebSocket();
    await session.send('hello');
    for await (const message of session) await session.send(`echo ${String(message)}`);
    sessionEnded(await session.closed);
    return [];
  });

  async function startChat(): Promise<ServerHandle> {
    const handle = await serve(chat, { http: 0, logFormat: 'off', errors: quiet });
    handles.push(handle);
    return handle;
  }

  it("a WebSocket the app accepted is closed with 1001 Going Away, and the app's session ends with it", async () => {
    const appSaw = new Promise<WebSocketClose>((resolve) => (sessionEnded = resolve));
    const handle = await startChat();
    const ws = new WebSocket(`ws://127.0.0.1:${handle.http!.port}/`);
    await new Promise((resolve) => ws.once('message', resolve));
    const closed = new Promise<[number, string]>((resolve) =>
      ws.once('close', (code, reason) => resolve([code, String(reason)])),
    );
    await handle.close(0.1);
    assert.deepEqual(await closed, [1001, 'Going Away']);
    assert.deepEqual(await appSaw, { code: 1001, reason: 'Going Away' });
  });

  it('a client that never answers the 1001 close frame is cut a moment later: close() still ends', async () => {
    const handle = await startChat();
    const socket = connect(handle.http!.port, '127.0.0.1');
    socket.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // The handshake and the app's first message, then the stop.
    while (!received.includes('hello')) await new Promise((r) => socket.once('data', r));
    await handle.close(0.1);
    await ended;
    // The last frame the server sent: a close (opcode 8) with code 1001 and its reason.
    const close = received.subarray(received.lastIndexOf(0x88));
    assert.equal(close.readUInt16BE(2), 1001);
    assert.equal(close.subarray(4).toString(), 'Going Away');
  });
});

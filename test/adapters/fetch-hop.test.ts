// A request that crosses a Fetch hop (an environ made into a Request, a Fetch handler in
// between, the Request made into an environ again) loses nothing ngi can carry beside it:
// the body and its chunked framing, the raw target, the client's address.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { fromExpress } from '../../adapters/express.js';
import { fromFetch, toFetch } from '../../adapters/fetch.js';
import { toNodeHandler } from '../../adapters/node.js';
import type { App, Environ } from '../../src/core/types.js';
import { close, listen, logSink, sendRequest } from '../helpers/servers.js';

/** A Fetch handler in between that is not toFetch itself (so no round trip shortcut). */
function throughFetch(app: App): App {
  const inner = toFetch(app);
  return fromFetch((request) => inner(request));
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

describe('across a Fetch hop: toNodeHandler(fromFetch(request => toFetch(fromExpress(app))(request)))', () => {
  const root = mkdtempSync(join(tmpdir(), 'ngi-hop-'));
  mkdirSync(join(root, 'public'));
  writeFileSync(join(root, 'public', 'index.txt'), 'public');
  writeFileSync(join(root, 'secret.txt'), 'secret');
  const errors = logSink();
  let native: Server;
  let hop: Server;

  before(async () => {
    const app = express();
    app.set('trust proxy', false);
    app.use('/static', express.static(join(root, 'public')));
    app.post('/json', express.json({ limit: '1kb' }), (req, res) => {
      res.json({ body: req.body as unknown, ip: req.ip });
    });
    app.get('/status/:code', (req, res) => {
      res.status(Number(req.params.code)).append('Set-Cookie', ['a=1', 'b=2']).send('custom');
    });
    app.use((req, res) => {
      res.json({ url: req.url, ip: req.ip, secure: req.secure });
    });
    native = await listen(app);
    hop = await listen(toNodeHandler(throughFetch(fromExpress(app)), { errors }) as never);
  });
  after(() => {
    close(native);
    close(hop);
  });

  /** The same request to the app natively and through the hop. */
  async function both(
    path: string,
    options: Parameters<typeof sendRequest>[2] = {},
  ): Promise<[ReturnType<typeof JSON.parse>, ReturnType<typeof JSON.parse>]> {
    const [a, b] = await Promise.all([
      sendRequest(portOf(native), path, options),
      sendRequest(portOf(hop), path, options),
    ]);
    assert.equal(b.status, a.status, `${path}: status`);
    return [a, b];
  }

  it('keeps a chunked request body (no Content-Length): express.json() parses it', async () => {
    const parts = [Buffer.from('{"a":'), Buffer.from('[1,2,'), Buffer.from('3]}')];
    const options = { method: 'POST', headers: { 'Content-Type': 'application/json' }, parts };
    const [a, b] = await both('/json', options);
    assert.deepEqual(JSON.parse(String(b.body)).body, { a: [1, 2, 3] });
    assert.deepEqual(JSON.parse(String(b.body)), JSON.parse(String(a.body)));
  });

  it("trips express.json()'s limit on a chunked body that is too large, as natively", async () => {
    const parts = Array.from({ length: 8 }, () => Buffer.from(`"${'x'.repeat(254)}",`));
    parts.unshift(Buffer.from('['));
    parts.push(Buffer.from('0]'));
    const options = { method: 'POST', headers: { 'Content-Type': 'application/json' }, parts };
    const [a] = await both('/json', options);
    assert.equal(a.status, 413);
  });

  it('shows the app the raw target: express.static refuses /../ escapes as natively (403/404)', async () => {
    for (const path of [
      '/static/%2e%2e/secret.txt',
      '/static/..%2fsecret.txt',
      '/x/%2e%2e/y?q=1',
    ]) {
      const [a, b] = await both(path);
      assert.deepEqual(String(b.body), String(a.body), path);
      assert.doesNotMatch(String(b.body), /^secret$/, path);
    }
  });

  it('keeps a status Fetch cannot express (600-999), its reason, cookies and body, as natively', async () => {
    const before = errors.lines.length;
    for (const code of [600, 700, 799, 999]) {
      const [a, b] = await both(`/status/${code}`);
      assert.equal(b.status, code);
      assert.equal(b.body.toString(), 'custom');
      assert.deepEqual(b.headers['set-cookie'], a.headers['set-cookie']);
      assert.deepEqual(b.headers['set-cookie'], ['a=1', 'b=2']);
    }
    // Passed on as itself: no substitution to log.
    assert.deepEqual(errors.lines.slice(before), []);
  });

  it("gives req.ip the client's address, as natively", async () => {
    const [a, b] = await both('/ip');
    assert.equal(JSON.parse(String(b.body)).ip, JSON.parse(String(a.body)).ip);
    assert.match(JSON.parse(String(b.body)).ip, /127\.0\.0\.1/);
  });
});

describe('toFetch reads what the runtime passes beside the Request', () => {
  const seen: Environ[] = [];
  const app: App = (environ, startResponse) => {
    seen.push(environ);
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    return ['ok'];
  };
  const handler = toFetch(app);

  it("takes the client's address from Bun's server.requestIP(request)", async () => {
    const server = { requestIP: () => ({ address: '203.0.113.7', port: 4321, family: 'IPv4' }) };
    await handler(new Request('http://h.test/'), server);
    assert.deepEqual([seen.at(-1)!.REMOTE_ADDR, seen.at(-1)!.REMOTE_PORT], ['203.0.113.7', '4321']);
  });

  it("takes it from Deno's info.remoteAddr", async () => {
    const info = { remoteAddr: { transport: 'tcp', hostname: '2001:db8::9', port: 5555 } };
    await handler(new Request('http://h.test/'), info);
    assert.deepEqual([seen.at(-1)!.REMOTE_ADDR, seen.at(-1)!.REMOTE_PORT], ['2001:db8::9', '5555']);
  });

  it("takes it from @hono/node-server's incoming", async () => {
    const env = { incoming: { socket: { remoteAddress: '198.51.100.3', remotePort: 80 } } };
    await handler(new Request('http://h.test/'), env);
    assert.equal(seen.at(-1)!.REMOTE_ADDR, '198.51.100.3');
  });

  it('marks a streamed body without Content-Length as chunked', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('part'));
        controller.close();
      },
    });
    const init = { method: 'POST', body, duplex: 'half' } as RequestInit;
    await handler(new Request('http://h.test/', init));
    assert.equal(seen.at(-1)!.HTTP_TRANSFER_ENCODING, 'chunked');
    assert.equal(seen.at(-1)!.CONTENT_LENGTH, undefined);
  });
});

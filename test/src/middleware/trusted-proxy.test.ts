import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, describe, it } from 'node:test';
import { defineApp } from '../../../src/core/define-app.js';
import { encodeUwsgiPacket } from '../../../src/protocol/uwsgi-packet.js';
import { compileTrust } from '../../../src/middleware/trusted-proxy.js';
import { serve, type ServerHandle } from '../../../src/server/serve.js';
import { parseHttpResponse, sendRaw } from '../../helpers/uwsgi-client.js';

const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
});

/** What the app was told about the client. */
const app = defineApp((environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [
    JSON.stringify({
      REMOTE_ADDR: environ.REMOTE_ADDR,
      REMOTE_PORT: environ.REMOTE_PORT,
      HTTPS: environ.HTTPS ?? null,
      scheme: environ['ngi.url_scheme'],
      SERVER_NAME: environ.SERVER_NAME,
      SERVER_PORT: environ.SERVER_PORT,
      xff: environ.HTTP_X_FORWARDED_FOR ?? null,
    }),
  ];
});

const quiet = { write() {} };
async function start(trustProxy: string[]): Promise<ServerHandle> {
  const handle = await serve(app, {
    http: 0,
    uwsgi: 0,
    trustProxy,
    logFormat: 'off',
    errors: quiet,
  });
  handles.push(handle);
  return handle;
}

/** A GET from 127.0.0.1 with whatever forwarding headers the test claims. */
function get(port: number, headers: Record<string, string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.end();
  });
}

const spoofed = {
  'X-Forwarded-For': '198.51.100.66',
  'X-Forwarded-Proto': 'https',
  'X-Forwarded-Host': 'bank.example',
  Forwarded: 'for=198.51.100.66;proto=https;host=bank.example',
};

describe('--trust-proxy', () => {
  it('from an untrusted peer, spoofed headers change nothing (they stay as HTTP_* keys)', async () => {
    const handle = await start(['10.0.0.0/8']);
    const seen = await get(handle.http!.port, spoofed);
    assert.equal(seen.REMOTE_ADDR, '127.0.0.1');
    assert.equal(seen.HTTPS, null);
    assert.equal(seen.scheme, 'http');
    assert.equal(seen.SERVER_NAME, '127.0.0.1');
    assert.equal(seen.xff, '198.51.100.66');
  });

  it('without --trust-proxy nobody is trusted', async () => {
    const handle = await start([]);
    const seen = await get(handle.http!.port, spoofed);
    assert.equal(seen.REMOTE_ADDR, '127.0.0.1');
    assert.equal(seen.scheme, 'http');
  });

  it('from a trusted peer, X-Forwarded-For/-Proto/-Host give the client, scheme and host', async () => {
    const handle = await start(['127.0.0.1']);
    const seen = await get(handle.http!.port, {
      'X-Forwarded-For': '203.0.113.9',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'shop.example:8443',
    });
    assert.deepEqual(
      { ...seen, xff: undefined },
      {
        REMOTE_ADDR: '203.0.113.9',
        REMOTE_PORT: '',
        HTTPS: 'on',
        scheme: 'https',
        SERVER_NAME: 'shop.example',
        SERVER_PORT: '8443',
        xff: undefined,
      },
    );
  });

  it('walks a chain back only through trusted hops: a client cannot prepend its own', async () => {
    const handle = await start(['127.0.0.1', '10.0.0.0/8']);
    // The client sent "X-Forwarded-For: 192.0.2.1" itself; 10.1.2.3 then appended its peer.
    const seen = await get(handle.http!.port, {
      'X-Forwarded-For': '192.0.2.1, 203.0.113.9, 10.1.2.3',
    });
    assert.equal(seen.REMOTE_ADDR, '203.0.113.9');
  });

  it('prefers Forwarded (RFC 7239), with a quoted IPv6 node and port', async () => {
    const handle = await start(['loopback']);
    const seen = await get(handle.http!.port, {
      Forwarded: 'for="[2001:db8:cafe::17]:4711";proto=https;host=api.example',
      'X-Forwarded-For': '198.51.100.66',
    });
    assert.equal(seen.REMOTE_ADDR, '2001:db8:cafe::17');
    assert.equal(seen.REMOTE_PORT, '4711');
    assert.equal(seen.scheme, 'https');
    assert.equal(seen.SERVER_NAME, 'api.example');
    assert.equal(seen.SERVER_PORT, '443');
  });

  it('a malformed Forwarded header from a trusted peer changes nothing', async () => {
    const handle = await start(['127.0.0.1']);
    const seen = await get(handle.http!.port, { Forwarded: 'for=;;==bad"' });
    assert.equal(seen.REMOTE_ADDR, '127.0.0.1');
  });

  it("over uwsgi the peer is nginx's REMOTE_ADDR: trusted or not", async () => {
    const handle = await start(['127.0.0.1']);
    const ask = async (remote: string) => {
      const packet = encodeUwsgiPacket([
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/'],
        ['PATH_INFO', '/'],
        ['SERVER_PROTOCOL', 'HTTP/1.1'],
        ['REMOTE_ADDR', remote],
        ['HTTP_X_FORWARDED_FOR', '203.0.113.50'],
      ]);
      const reply = parseHttpResponse((await sendRaw(handle.uwsgi!.port, packet)).bytes);
      return JSON.parse(reply.body.toString()).REMOTE_ADDR;
    };
    assert.equal(await ask('127.0.0.1'), '203.0.113.50');
    assert.equal(await ask('198.51.100.7'), '198.51.100.7');
  });

  it('a list that is not addresses is an error up front', () => {
    assert.throws(() => compileTrust(['not-an-address']), /trusted proxies: invalid IP address/);
    assert.equal(compileTrust(['10.0.0.0/8'])('10.9.9.9', 0), true);
  });
});

// Upgrade requests on Node hosts: ngi's HTTP listener (serve()) and toNodeUpgradeHandler, with
// the real `ws` server and client: refusals, mount routing, the raw connection handed to a
// Node upgrade listener, draining.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { fromNodeHandler, toNodeHandler, toNodeUpgradeHandler } from '../../../adapters/node.js';
import { defineApp } from '../../../src/core/define-app.js';
import { mount } from '../../../src/middleware/mount.js';
import { serve, type ServerHandle } from '../../../src/server/serve.js';
import { RawClient } from '../../helpers/raw-http.js';
import { logSink } from '../../helpers/servers.js';
import { wsExchange } from '../../helpers/ws-client.js';

const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
});

/** An NGI app with no upgrade support: it answers every request, upgrades included, with 426. */
const plain = defineApp((environ, startResponse) => {
  startResponse('426 Upgrade Required', [['Content-Type', 'text/plain']]);
  return [`no upgrade at ${environ.SCRIPT_NAME}|${environ.PATH_INFO}`];
});

/** A `ws` server fed by hand, as a Node upgrade listener; it greets with the URL it saw. */
function wsListener(): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const wss = new WebSocketServer({ noServer: true });
  return (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(`url ${req.url} base ${(req as { baseUrl?: string }).baseUrl ?? ''}`);
      ws.on('message', (data) => ws.send(`echo ${data}`));
    });
  };
}

const chat = fromNodeHandler(
  (req, res) => {
    res.end('chat over http');
  },
  { upgrade: wsListener() },
);

async function start(app = mount({ '/chat': chat, '/': plain }), errors = logSink()) {
  const handle = await serve(app, { http: 0, logFormat: 'off', errors });
  handles.push(handle);
  return { handle, port: handle.http!.port, errors };
}

describe('upgrades on ngi’s HTTP listener', () => {
  it('mount() routes an upgrade by prefix to a Node upgrade listener, req.url below the mount', async () => {
    const { port } = await start();
    const { messages, code } = await wsExchange(`ws://127.0.0.1:${port}/chat/room?x=1`, ['hi']);
    assert.deepEqual(messages, ['url /room?x=1 base /chat', 'echo hi']);
    assert.equal(code, 1000);
  });

  it('an app that does not take the upgrade refuses it with its own HTTP answer, then the connection closes', async () => {
    const { port } = await start();
    const refused = await wsExchange(`ws://127.0.0.1:${port}/other`);
    assert.equal(refused.refused, 426);
    assert.equal(refused.body, 'no upgrade at |/other');
    // On the wire: one response, `Connection: close`, and the end of the connection.
    const client = await RawClient.connect(port);
    client.send(
      'GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const text = await client.end();
    assert.match(text, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
    assert.match(text, /\r\nConnection: close\r\n/i);
    assert.ok(client.isClosed);
  });

  it('a Node handler without an upgrade listener serves the upgrade request as an ordinary one', async () => {
    const { port } = await start(
      mount({ '/chat': chat, '/': fromNodeHandler((req, res) => res.end(`plain ${req.url}`)) }),
    );
    const refused = await wsExchange(`ws://127.0.0.1:${port}/elsewhere`);
    assert.equal(refused.refused, 200);
    assert.equal(refused.body, 'plain /elsewhere');
  });

  it('an upgrade listener that throws costs its connection only, logged', async () => {
    const errors = logSink();
    const broken = fromNodeHandler((req, res) => res.end(), {
      upgrade: () => {
        throw new Error('listener broke');
      },
    });
    const { port } = await start(broken, errors);
    await assert.rejects(wsExchange(`ws://127.0.0.1:${port}/`), /socket hang up|ECONNRESET/);
    assert.match(errors.lines.join(''), /listener broke/);
    // The worker lives on: the next plain request is answered.
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
  });

  it('an upgrade asked on a kept-alive connection while the server drains is refused with 503', async () => {
    const { handle, port } = await start();
    const client = await RawClient.connect(port);
    client.send('GET /first HTTP/1.1\r\nHost: t\r\n\r\n');
    await client.until((text) => text.includes('no upgrade at |/first'));
    const closing = handle.close(5);
    client.send(
      'GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const text = await client.end();
    assert.match(
      text.slice(text.lastIndexOf('HTTP/1.1 ')),
      /^HTTP\/1\.1 503 Service Unavailable\r\n/,
    );
    await closing;
  });
});

describe('toNodeUpgradeHandler: an NGI app as a Node server’s upgrade listener', () => {
  it('carries upgrades through mount() to a Node upgrade listener, and refuses the rest', async () => {
    const app = mount({ '/chat': chat, '/': plain });
    const server = createServer(toNodeHandler(app));
    server.on('upgrade', toNodeUpgradeHandler(app));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      const { messages } = await wsExchange(`ws://127.0.0.1:${port}/chat`, ['x']);
      assert.deepEqual(messages, ['url / base /chat', 'echo x']);
      assert.equal((await wsExchange(`ws://127.0.0.1:${port}/x`)).refused, 426);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

// `ngi serve` hosting the user's own http.Server (and Fastify's), upgrades included, with two
// workers: the real `ws` and `socket.io-client` clients against Express, Fastify and Koa.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { get, spawnCli, type CliProcess } from '../../helpers/cli-process.js';
import { openWs, wsExchange } from '../../helpers/ws-client.js';

const started: CliProcess[] = [];
after(() => {
  for (const proc of started) proc.kill();
});

async function serveFixture(
  name: string,
  ...flags: string[]
): Promise<{ proc: CliProcess; port: number }> {
  const proc = spawnCli([
    'serve',
    `test/fixtures/servers/${name}`,
    '--http',
    '127.0.0.1:0',
    '--log-format',
    'off',
    ...flags,
  ]);
  started.push(proc);
  const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(port) };
}

async function stop(proc: CliProcess): Promise<void> {
  proc.child.kill('SIGTERM');
  assert.equal(await proc.exited, 0);
}

/** Four sessions in a row: each is welcomed by a worker and echoes; cluster hands them round-robin. */
/**
 * At least four sessions, one after the other, and more (up to 20) until both workers have
 * answered: the kernel hands each connection to whichever worker accepts first, not in turn.
 */
async function fourSessions(url: string): Promise<Set<string>> {
  const pids = new Set<string>();
  for (let i = 0; i < 20 && (i < 4 || pids.size < 2); i++) {
    const { messages, code } = await wsExchange(url, [`m${i}`]);
    const [welcome, echo] = messages;
    assert.match(welcome!, /^welcome \d+$/);
    assert.equal(echo, `echo m${i}`);
    assert.equal(code, 1000);
    pids.add(welcome!.slice('welcome '.length));
  }
  return pids;
}

describe('ngi serve <a module exporting an http.Server> --workers 2', () => {
  it('Express + ws: HTTP requests and WebSocket sessions in both workers; a path ws does not serve is refused', async () => {
    const { proc, port } = await serveFixture('express-ws.mjs', '--workers', '2');
    assert.equal((await fourSessions(`ws://127.0.0.1:${port}/ws`)).size, 2);
    const hello = await get(port, '/hello');
    assert.equal(hello.status, 200);
    assert.match(hello.body, /^hello from \d+$/);
    // ws answers 400 to an upgrade off its `path`; the connection closes after it.
    assert.equal((await wsExchange(`ws://127.0.0.1:${port}/elsewhere`)).refused, 400);
    await stop(proc);
  });

  it('Express + socket.io over the websocket transport, acknowledgements included', async () => {
    const { proc, port } = await serveFixture('express-socketio.mjs', '--workers', '2');
    const pids = new Set<number>();
    // Until both workers answered (at most 20): the kernel, not a rotation, picks the worker.
    for (let i = 0; i < 20 && (i < 4 || pids.size < 2); i++) {
      const socket = io(`http://127.0.0.1:${port}`, {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
        timeout: 20_000,
      });
      const pid = await new Promise<number>((resolve, reject) => {
        socket.once('welcome', resolve);
        socket.once('connect_error', reject);
      });
      pids.add(pid);
      assert.equal(await socket.timeout(20_000).emitWithAck('ping', `n${i}`), `pong n${i}`);
      socket.disconnect();
    }
    assert.equal(pids.size, 2);
    assert.equal((await get(port, '/hello')).status, 200);
    await stop(proc);
  });

  it('Fastify + @fastify/websocket (the instance exported): routes, hooks and upgrades', async () => {
    const { proc, port } = await serveFixture('fastify-websocket.mjs', '--workers', '2');
    assert.equal((await fourSessions(`ws://127.0.0.1:${port}/ws`)).size, 2);
    assert.match((await get(port, '/hello')).body, /^hello from \d+$/);
    // No websocket route there: Fastify's own 404, then the connection closes.
    assert.equal((await wsExchange(`ws://127.0.0.1:${port}/nope`)).refused, 404);
    await stop(proc);
  });

  it('Koa + ws on http.createServer(app.callback())', async () => {
    const { proc, port } = await serveFixture('koa-ws.mjs', '--workers', '2');
    assert.equal((await fourSessions(`ws://127.0.0.1:${port}/`)).size, 2);
    assert.match((await get(port, '/x')).body, /^hello from \d+$/);
    await stop(proc);
  });

  it('a server with no upgrade listener answers an upgrade as an ordinary request, as Node does', async () => {
    const { proc, port } = await serveFixture('plain-server.mjs', '--kind', 'server');
    const refused = await wsExchange(`ws://127.0.0.1:${port}/ws`);
    assert.equal(refused.refused, 200);
    assert.equal(refused.body, 'plain /ws');
    await stop(proc);
  });

  it('a server that already listens is a load error naming the fix', async () => {
    const proc = spawnCli(['serve', 'test/fixtures/servers/listening-server.mjs', '--http', '0']);
    started.push(proc);
    assert.equal(await proc.exited, 1);
    assert.match(proc.stderr(), /already listening: export it without calling listen\(\)/);
  });

  it('--kind server on something that is no server says what it found', async () => {
    const proc = spawnCli([
      'serve',
      'test/fixtures/ngi-app.mjs',
      '--http',
      '0',
      '--kind',
      'server',
    ]);
    started.push(proc);
    assert.equal(await proc.exited, 1);
    assert.match(proc.stderr(), /expected a Node http\.Server, found/);
  });

  it('a reload keeps an open WebSocket on the old worker until the grace period ends, then closes it', async () => {
    const { proc, port } = await serveFixture('express-ws.mjs', '--workers', '1', '--grace', '2');
    const held = await openWs(`ws://127.0.0.1:${port}/ws`);
    const oldPid = (await held.message(0)).slice('welcome '.length);

    proc.child.kill('SIGHUP');
    // New sessions reach the new worker once it is up (bounded: 400 tries, 50 ms apart). One
    // the old worker accepted just before it stopped listening is refused with a 503 (it
    // would only be cut at the end of the grace period): the client tries again.
    let newPid = oldPid;
    for (let i = 0; i < 400 && newPid === oldPid; i++) {
      const fresh = await wsExchange(`ws://127.0.0.1:${port}/ws`, [], 1);
      if (fresh.refused === undefined) newPid = fresh.messages[0]!.slice('welcome '.length);
      else assert.equal(fresh.refused, 503);
      if (newPid === oldPid) await delay(50);
    }
    assert.notEqual(newPid, oldPid);
    // The old worker is draining, and its WebSocket still works.
    held.ws.send('still here');
    assert.equal(await held.message(1), 'echo still here');
    // At the end of the grace period the connection is cut (no close frame: 1006).
    assert.equal(await held.closed, 1006);
    await proc.waitFor(
      /closing 1 upgraded connection\(s\) \(WebSocket\) at the end of the 2s grace/,
    );
    await stop(proc);
  });
});

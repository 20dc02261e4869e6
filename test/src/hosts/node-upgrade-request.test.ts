// `ngi.upgrade` on ngi's HTTP listener, with the real `ws` client: WebSocket sessions an NGI
// app accepts (subprotocol, headers, messages both ways, close codes, the client going away),
// refusals with an HTTP answer, mount() routing, raw connections.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { defineApp } from '../../../src/core/define-app.js';
import { mount } from '../../../src/middleware/mount.js';
import { validator } from '../../../src/middleware/validator.js';
import { serve, type ServerHandle } from '../../../src/server/serve.js';
import type { App, Environ, WebSocketClose } from '../../../src/core/types.js';
import { RawClient } from '../../helpers/raw-http.js';
import { logSink } from '../../helpers/servers.js';
import { wsExchange } from '../../helpers/ws-client.js';

const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
});

async function start(app: App): Promise<number> {
  const handle = await serve(app, { http: 0, logFormat: 'off', errors: logSink() });
  handles.push(handle);
  return handle.http!.port;
}

/** What the echo app saw, for the test to check once the session is over. */
const seen: Array<{ closed: WebSocketClose; aborted: boolean }> = [];

/** Accepts with a subprotocol and a header, greets with its mount, echoes until the client closes. */
const echo = defineApp(async (environ: Environ, startResponse) => {
  const upgrade = environ['ngi.upgrade'];
  if (upgrade === undefined) {
    startResponse('426 Upgrade Required', [['Content-Type', 'text/plain']]);
    return ['websocket only'];
  }
  const session = await upgrade.acceptWebSocket({
    protocol: upgrade.subprotocols.includes('chat') ? 'chat' : undefined,
    headers: [['X-Room', 'lobby']],
  });
  await session.send(`hello ${environ.SCRIPT_NAME}|${environ.PATH_INFO} ${session.protocol}`);
  for await (const message of session) {
    if (message === 'bye') session.close(4000, 'asked to');
    else await session.send(typeof message === 'string' ? `echo ${message}` : message);
  }
  seen.push({ closed: await session.closed, aborted: environ['ngi.signal'].aborted });
  return [];
});

function connect(url: string, protocols?: string[]) {
  const ws = new WebSocket(url, protocols);
  const messages: Array<string | Buffer> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data: Buffer, isBinary) => {
    messages.push(isBinary ? data : String(data));
    for (const wake of waiters.splice(0)) wake();
  });
  const upgraded = new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
    ws.once('upgrade', (res) => resolve(res.headers));
    ws.once('error', reject);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  const message = (n: number) =>
    new Promise<string | Buffer>((resolve) => {
      const check = () => (messages.length > n ? resolve(messages[n]!) : waiters.push(check));
      check();
    });
  return { ws, upgraded, closed, message };
}

describe('ngi.upgrade: an NGI app takes a WebSocket', () => {
  it('accepts with a subprotocol and headers; text and binary both ways; the client closes', async () => {
    const port = await start(echo);
    const client = connect(`ws://127.0.0.1:${port}/room`, ['other', 'chat']);
    const headers = await client.upgraded;
    assert.equal(headers['x-room'], 'lobby');
    assert.equal(client.ws.protocol, 'chat');
    assert.equal(await client.message(0), 'hello |/room chat');
    client.ws.send('text');
    assert.equal(await client.message(1), 'echo text');
    client.ws.send(Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(await client.message(2), Buffer.from([0, 1, 2, 255]));
    const before = seen.length;
    client.ws.close(1000, 'done');
    assert.deepEqual(await client.closed, { code: 1000, reason: 'done' });
    // The app's loop ended with the close, and its session says how.
    while (seen.length === before) await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen.at(-1)!.closed, { code: 1000, reason: 'done' });
  });

  it('the app closes with its own code and reason', async () => {
    const port = await start(echo);
    const client = connect(`ws://127.0.0.1:${port}/`);
    await client.message(0);
    client.ws.send('bye');
    assert.deepEqual(await client.closed, { code: 4000, reason: 'asked to' });
  });

  it('the client going away ends the loop with 1006 and fires ngi.signal', async () => {
    const port = await start(echo);
    const client = connect(`ws://127.0.0.1:${port}/`);
    await client.message(0);
    const before = seen.length;
    client.ws.terminate();
    while (seen.length === before) await new Promise((r) => setImmediate(r));
    assert.equal(seen.at(-1)!.closed.code, 1006);
    assert.equal(seen.at(-1)!.aborted, true);
  });

  it('mount() routes the upgrade by prefix: SCRIPT_NAME and PATH_INFO as for a request', async () => {
    const port = await start(mount({ '/ws': echo, '/': echo }));
    const { messages } = await wsExchange(`ws://127.0.0.1:${port}/ws/a%20b`);
    assert.deepEqual(messages, ['hello /ws|/a b ']);
  });

  it('rejecting is an ordinary response: the client gets its status and body', async () => {
    const port = await start(
      defineApp((environ, startResponse) => {
        assert.equal(environ['ngi.upgrade']?.protocol, 'websocket');
        startResponse('403 Forbidden', [['Content-Type', 'text/plain']]);
        return ['not you'];
      }),
    );
    const refused = await wsExchange(`ws://127.0.0.1:${port}/`);
    assert.equal(refused.refused, 403);
    assert.equal(refused.body, 'not you');
  });

  it('is absent on an ordinary request', async () => {
    const port = await start(echo);
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(res.status, 426);
    assert.equal(await res.text(), 'websocket only');
  });

  it('contract mistakes are clear errors: an unoffered subprotocol, startResponse after accept, a reserved close code', async () => {
    const errors: string[] = [];
    const port = await start(
      defineApp(async (environ, startResponse) => {
        const upgrade = environ['ngi.upgrade']!;
        await upgrade
          .acceptWebSocket({ protocol: 'nope' })
          .catch((e: Error & { code?: string }) => {
            errors.push(e.code!);
          });
        const session = await upgrade.acceptWebSocket();
        await upgrade
          .acceptWebSocket()
          .catch((e: Error & { code?: string }) => errors.push(e.code!));
        try {
          startResponse('200 OK', []);
        } catch (e) {
          errors.push((e as { code: string }).code);
        }
        try {
          session.close(1001);
        } catch (e) {
          errors.push((e as { code: string }).code);
        }
        await session.send(errors.join(' '));
        session.close();
        return [];
      }),
    );
    const { messages, code } = await wsExchange(`ws://127.0.0.1:${port}/`);
    assert.deepEqual(messages, [
      'NGI_ERR_VALIDATION NGI_ERR_VALIDATION NGI_ERR_UPGRADED NGI_ERR_VALIDATION',
    ]);
    assert.equal(code, 1000);
  });

  it('an invalid handshake (no Sec-WebSocket-Key) gets 400 and the accept rejects', async () => {
    let rejected: unknown;
    const port = await start(
      defineApp(async (environ) => {
        await environ['ngi.upgrade']!.acceptWebSocket().catch((e: unknown) => (rejected = e));
        return [];
      }),
    );
    const client = await RawClient.connect(port);
    client.send('GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    assert.match(await client.end(), /^HTTP\/1\.1 400 /);
    while (rejected === undefined) await new Promise((r) => setImmediate(r));
    assert.equal((rejected as { code: string }).code, 'NGI_ERR_BAD_REQUEST');
  });

  it('acceptConnection: any other protocol gets 101 and the raw connection', async () => {
    const port = await start(
      defineApp((environ) => {
        const socket = environ['ngi.upgrade']!.acceptConnection({ headers: [['X-Proto', '1']] });
        socket.on('data', (chunk: Buffer) => socket.write(chunk.toString().toUpperCase()));
        return [];
      }),
    );
    const client = await RawClient.connect(port);
    client.send(
      'GET / HTTP/1.1\r\nHost: t\r\nUpgrade: shout/1\r\nConnection: Upgrade\r\n\r\nearly ',
    );
    await client.until((text) => text.endsWith('EARLY '));
    client.send('late');
    const text = await client.until((t) => t.endsWith('LATE'));
    assert.match(
      text,
      /^HTTP\/1\.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: shout\/1\r\nX-Proto: 1\r\n\r\nEARLY LATE$/,
    );
    client.destroy();
  });

  it('validator(): an accepting app passes; an accept after startResponse is a violation', async () => {
    const violations: string[] = [];
    const onViolation = (error: Error) => violations.push(error.message);
    const port = await start(
      mount({
        '/ok': validator(echo, { onViolation }),
        '/late': validator(
          defineApp(async (environ, startResponse) => {
            startResponse('400 Bad Request', []);
            await environ['ngi.upgrade']!.acceptWebSocket().catch(() => {});
            return ['no'];
          }),
          { onViolation },
        ),
      }),
    );
    const { messages, code } = await wsExchange(`ws://127.0.0.1:${port}/ok`, ['x']);
    assert.deepEqual(messages, ['hello /ok| ', 'echo x']);
    assert.equal(code, 1000);
    assert.deepEqual(violations, []);
    assert.equal((await wsExchange(`ws://127.0.0.1:${port}/late`)).refused, 500);
    assert.match(violations.join('\n'), /acceptWebSocket after startResponse/);
  });

  it('--harakiri never cuts a WebSocket: the request part ended with its 101', async () => {
    const handle = await serve(echo, {
      http: 0,
      logFormat: 'off',
      errors: logSink(),
      harakiri: 0.1,
    });
    handles.push(handle);
    const client = connect(`ws://127.0.0.1:${handle.http!.port}/`);
    await client.message(0);
    // Let the harakiri timer pass (this is no timing assertion: only that nothing was cut).
    await new Promise((resolve) => setTimeout(resolve, 300));
    client.ws.send('still');
    assert.equal(await client.message(1), 'echo still');
    assert.equal(handle.figures().harakiri, 0);
    client.ws.close();
    await client.closed;
  });
});

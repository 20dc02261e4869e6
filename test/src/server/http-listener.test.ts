import assert from 'node:assert/strict';
import { Agent, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import type { ExchangeOutcome } from '../../../src/server/listener.js';
import { defineApp } from '../../../src/core/define-app.js';
import { createHttpServer, drainHttpServer } from '../../../src/server/http-listener.js';

const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

const hello = defineApp(async (environ, startResponse) => {
  if (environ.PATH_INFO === '/slow') await new Promise((r) => setTimeout(r, 300));
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return [`hello ${environ.PATH_INFO}`];
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** Writes raw bytes, collects the reply until the server closes the connection. */
function raw(port: number, data: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(data));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy());
  });
}

function fetchText(
  port: number,
  path: string,
  options: { agent?: Agent | false; method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown>; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: options.agent ?? false,
        method: options.method,
        headers: options.headers,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            body,
            headers: res.headers,
            reused: req.reusedSocket,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('createHttpServer', () => {
  it('serves an NGI app and keeps the connection alive between requests', async () => {
    const port = await listen(createHttpServer(hello));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await fetchText(port, '/a', { agent });
      const second = await fetchText(port, '/b', { agent });
      assert.equal(first.body, 'hello /a');
      assert.equal(second.body, 'hello /b');
      assert.equal(first.headers.connection, 'keep-alive');
      assert.equal(second.reused, true, 'the second request reused the socket');
    } finally {
      agent.destroy();
    }
  });

  it('answers 431 to oversized headers and 400 to a malformed request, and keeps serving', async () => {
    const port = await listen(createHttpServer(hello));
    const big = await raw(
      port,
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    assert.match(big, /^HTTP\/1\.1 431 /);
    const bad = await raw(port, 'NOT A REQUEST\r\n\r\n');
    assert.match(bad, /^HTTP\/1\.1 400 /);
    assert.equal((await fetchText(port, '/still')).body, 'hello /still');
  });

  it('refuses a body declared over limitPost with 413 and closes the connection', async () => {
    const port = await listen(createHttpServer(hello, { limitPost: 10, errors: { write() {} } }));
    const reply = await raw(
      port,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world',
    );
    assert.match(reply, /^HTTP\/1\.1 413 Content Too Large/);
    assert.match(reply, /Connection: close/i);
    const small = await raw(
      port,
      'POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
    );
    assert.match(small, /^HTTP\/1\.1 200 /);
  });

  it('reports each finished exchange with its status and body bytes', async () => {
    const outcomes: ExchangeOutcome[] = [];
    const port = await listen(
      createHttpServer(hello, { onExchange: () => (outcome) => outcomes.push(outcome) }),
    );
    await fetchText(port, '/x');
    await new Promise((r) => setImmediate(r));
    assert.equal(outcomes.length, 1);
    assert.equal(outcomes[0]!.status, 200);
    assert.equal(outcomes[0]!.complete, true);
    assert.equal(outcomes[0]!.bytes, 'hello /x'.length);
  });

  it('drains: stops accepting, finishes in-flight requests with Connection: close, then closes', async () => {
    let arrived = () => {};
    const server = createHttpServer(hello, {
      keepAliveTimeout: 3, // the agent keeps a socket for the hinted timeout less 1s
      onExchange: (exchange) => {
        if (exchange.environ.PATH_INFO === '/slow') arrived();
      },
    });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await fetchText(port, '/warm', { agent }); // leaves an idle kept-alive connection
      const inFlight = new Promise<void>((resolve) => (arrived = resolve));
      const slow = fetchText(port, '/slow', { agent: false });
      await inFlight;
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      drainHttpServer(server);
      const reply = await slow;
      assert.equal(reply.body, 'hello /slow');
      assert.equal(reply.headers.connection, 'close');
      // The idle kept-alive connection was not cut under the client: its next request is
      // answered, as the last on that connection.
      const late = await fetchText(port, '/late', { agent });
      assert.equal(late.reused, true);
      assert.equal(late.body, 'hello /late');
      assert.equal(late.headers.connection, 'close');
      await closed;
      await assert.rejects(fetchText(port, '/after'));
    } finally {
      agent.destroy();
    }
  });

  it('cuts a request whose body stops arriving for socketTimeout, and answers a slow app', async () => {
    const port = await listen(
      createHttpServer(
        defineApp(async (environ, startResponse) => {
          for await (const _ of environ['ngi.input']);
          if (environ.PATH_INFO === '/slow') await new Promise((r) => setTimeout(r, 2500));
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return ['done'];
        }),
        { socketTimeout: 1 },
      ),
    );
    // Half a body, then silence: the server closes the connection, with no response.
    const cut = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.write('POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf'),
      );
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text === '' ? 'closed by the server' : text));
      socket.on('error', () => {});
      // The bound of this test, well past socketTimeout: a server that never cuts fails it.
      setTimeout(() => {
        resolve('still open');
        socket.destroy();
      }, 15_000).unref();
    });
    assert.equal(cut, 'closed by the server');
    // An app that thinks longer than socketTimeout is not stalled on its peer: it answers.
    const slow = await fetchText(port, '/slow');
    assert.deepEqual([slow.status, slow.body], [200, 'done']);
  });

  it('cuts a response the client stops reading for socketTimeout, and finishes the body', async () => {
    let finished = false;
    const server = createHttpServer(
      defineApp((_environ, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
        return (function* () {
          try {
            // Bounded: far more than the socket buffers hold, far less than memory.
            for (let i = 0; i < 4096; i++) yield Buffer.alloc(65536, i);
          } finally {
            finished = true;
          }
        })();
      }),
      { socketTimeout: 1 },
    );
    const port = await listen(server);
    const outcome = await new Promise<string>((resolve) => {
      // Watched on the server's side: a client that does not read does not see the close.
      server.once('connection', (accepted) =>
        accepted.once('close', () => resolve('closed by the server')),
      );
      const socket = connect(port, '127.0.0.1', () => {
        socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
        socket.pause(); // and never read
      });
      socket.on('error', () => {});
      setTimeout(() => {
        resolve('still open');
        socket.destroy();
      }, 15_000).unref();
    });
    assert.equal(outcome, 'closed by the server');
    assert.equal(finished, true, "the body's return() ran");
  });
});

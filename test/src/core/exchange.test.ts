import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import supertest from 'supertest';
import type { App, Body, Chunk, Headers } from '../../../src/core/types.js';
import {
  RawClient,
  dechunk,
  parseResponse,
  rawRequest,
  serveApp,
  sleep,
  type Served,
} from '../../helpers/raw-http.js';

const servers: Served[] = [];
after(() => {
  for (const served of servers) served.close();
});

async function serve(app: App): Promise<Served> {
  const served = await serveApp(app);
  servers.push(served);
  return served;
}

/** A promise with its resolver, for steering an app from the test. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets queued I/O and timers run, so bytes already written reach the client. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

const GET = 'GET / HTTP/1.1\r\nHost: test\r\n\r\n';

/** Waits until `read()` stops changing (the producer stalled); fails if it never does. */
async function stalled(read: () => number): Promise<number> {
  const deadline = Date.now() + 15_000;
  let last = -1;
  let still = 0;
  while (Date.now() < deadline) {
    await sleep(50);
    const now = read();
    if (now !== last) {
      last = now;
      still = 0;
    } else if (++still >= 5) return now;
  }
  throw new Error(`the producer never stopped (at ${last})`);
}

/** Waits until `ready()` holds, at most 10 s. */
async function eventually(ready: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('startResponse', () => {
  it('throws NGI_ERR_START_RESPONSE_TWICE on a second call without excInfo, and the first stands', async () => {
    const { server } = await serve((_environ, startResponse) => {
      startResponse('201 Created', [['X-First', 'yes']]);
      try {
        startResponse('200 OK', [['X-Second', 'yes']]);
        return ['second call accepted'];
      } catch (error) {
        return [(error as { code: string }).code];
      }
    });
    const response = await supertest(server).get('/').expect(201);
    assert.equal(response.text, 'NGI_ERR_START_RESPONSE_TWICE');
    assert.equal(response.headers['x-first'], 'yes');
    assert.equal(response.headers['x-second'], undefined);
  });

  it('with excInfo before any byte went out, replaces status and headers (an error page)', async () => {
    const { server } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', [
          ['Content-Type', 'text/html'],
          ['Content-Length', '100'],
        ]);
        yield '';
        try {
          throw new Error('the database went away');
        } catch (error) {
          startResponse('503 Service Unavailable', [['X-Error', 'yes']], error);
          yield 'sorry';
        }
      })(),
    );
    const response = await supertest(server).get('/').expect(503);
    assert.equal(response.text, 'sorry');
    assert.equal(response.headers['x-error'], 'yes');
    assert.equal(response.headers['content-type'], undefined, 'no header of the first call');
    assert.notEqual(response.headers['content-length'], '100', 'nor its length');
  });

  it('with excInfo after the head went out, rethrows it and aborts the connection, even if the app goes on', async () => {
    const partialSeen = gate();
    let rethrown: unknown;
    const failure = new Error('failed mid-stream');
    const { port, log } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        yield 'partial';
        await partialSeen.promise;
        try {
          startResponse('500 Internal Server Error', [], failure);
        } catch (error) {
          rethrown = error;
        }
        yield ' and more, as if nothing happened';
      })(),
    );
    const client = await RawClient.connect(port);
    client.send(GET);
    await client.until((text) => text.includes('partial'));
    partialSeen.open();
    // Within end()'s limit, under the keep-alive timeout: the server aborted the connection.
    const text = await client.end();
    assert.equal(rethrown, failure, 'the very excInfo is rethrown');
    const { status, body } = parseResponse(text);
    assert.equal(status, 200);
    const chunks = dechunk(body);
    assert.equal(chunks.data, 'partial');
    assert.equal(chunks.complete, false, 'no last chunk: the client sees a broken response');
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0]!, /failed mid-stream/);
  });
});

describe('headers go out lazily', () => {
  it('sends no byte before the app yields its first non-empty chunk', async () => {
    const yieldedEmpty = gate();
    const release = gate();
    const { port } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', [['X-Late', 'yes']]);
        yield '';
        yield new Uint8Array(0);
        yieldedEmpty.open();
        await release.promise;
        yield 'first';
      })(),
    );
    const client = await RawClient.connect(port);
    client.send(GET);
    await yieldedEmpty.promise;
    await sleep(100);
    assert.equal(client.received, 0, 'empty chunks send nothing, not even the head');
    release.open();
    const text = await client.until((t) => t.includes('first'));
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /X-Late: yes/);
    client.destroy();
  });

  it('sends the head when the body ends, with Content-Length: 0, if every chunk was empty', async () => {
    const release = gate();
    const pulled = gate();
    const { port } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', []);
        yield '';
        pulled.open();
        await release.promise;
      })(),
    );
    const client = await RawClient.connect(port);
    client.send(GET);
    await pulled.promise;
    await sleep(100);
    assert.equal(client.received, 0);
    release.open();
    const { status, headers } = parseResponse(await client.until((t) => t.includes('\r\n\r\n')));
    assert.equal(status, 200);
    assert.deepEqual(headers.get('content-length'), ['0']);
    assert.equal(headers.get('transfer-encoding'), undefined);
    client.destroy();
  });

  it('sends no head for an empty write() either', async () => {
    const wrote = gate();
    const release = gate();
    const { port } = await serve(async (_environ, startResponse) => {
      const write = startResponse('200 OK', []);
      await write('');
      wrote.open();
      await release.promise;
      return ['done'];
    });
    const client = await RawClient.connect(port);
    client.send(GET);
    await wrote.promise;
    await sleep(100);
    assert.equal(client.received, 0);
    release.open();
    const { body } = parseResponse(await client.until((t) => t.endsWith('done')));
    assert.equal(body, 'done');
    client.destroy();
  });
});

const CHUNK = Buffer.alloc(64 * 1024, 'x');
/** Far more than loopback socket buffers hold (a stall shows well before), still bounded. */
const BOUND = 512;
const TOTAL = CHUNK.length * BOUND;

/** Sends a request, stops reading, and returns the paused client. */
async function nonReadingClient(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port, 4096);
  client.socket.pause();
  client.send(GET);
  return client;
}

describe('the legacy write() path', () => {
  it('resolves its promise only once the socket drains when the client stops reading', async () => {
    let resolved = 0;
    const { port } = await serve(async (_environ, startResponse) => {
      const write = startResponse('200 OK', [['Content-Length', String(TOTAL)]]);
      for (let i = 0; i < BOUND; i++) {
        await write(CHUNK);
        resolved++;
      }
      return [];
    });
    const client = await nonReadingClient(port);
    const stall = await stalled(() => resolved);
    assert.ok(stall < BOUND, `writes stopped resolving at ${stall} of ${BOUND}`);
    client.socket.resume();
    await eventually(() => client.received >= TOTAL, 'the whole body');
    assert.equal(resolved, BOUND);
    client.destroy();
  });

  it('does not crash the process when nobody awaits a write() after the client left', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const gone = gate();
    const wrote = gate();
    try {
      const { port } = await serve(async (environ, startResponse) => {
        const write = startResponse('200 OK', []);
        await write('first');
        environ['ngi.signal'].addEventListener('abort', () => gone.open());
        await gone.promise;
        void write('into the void');
        wrote.open();
        return [];
      });
      const client = await RawClient.connect(port);
      client.send(GET);
      await client.until((t) => t.includes('first'));
      client.destroy();
      await wrote.promise;
      await sleep(50);
      assert.deepEqual(rejections, []);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });
});

interface Counted {
  body: Body;
  pulls: () => number;
  returns: () => number;
  closes: () => number;
}

type Script = 'endless' | 'end' | 'throw';

/** Yields what the script says: 64 KiB chunks up to BOUND, 'a' + 'b', or 'a' then an error. */
function* script(kind: Script, pulled: () => void): Generator<Chunk> {
  if (kind === 'endless') {
    for (let i = 0; i < BOUND; i++) {
      pulled();
      yield CHUNK;
    }
    return;
  }
  pulled();
  yield 'a';
  if (kind === 'throw') throw new Error('the body failed');
  pulled();
  yield 'b';
}

/** Counts return() on a native generator (own property over the prototype's) and adds close(). */
function instrument<T extends object>(
  generator: T & { return(value?: unknown): unknown },
  counts: { returns: number; closes: number },
): T {
  const original = generator.return.bind(generator);
  generator.return = (value?: unknown) => {
    counts.returns++;
    return original(value);
  };
  return Object.assign(generator, {
    close() {
      counts.closes++;
    },
  });
}

const bodies: Record<string, (kind: Script) => Counted> = {
  'a sync iterable': (kind) => {
    const counts = { pulls: 0, returns: 0, closes: 0 };
    const steps = script(kind, () => counts.pulls++);
    const body = {
      [Symbol.iterator]: () => ({
        next: () => steps.next(),
        return: () => {
          counts.returns++;
          return { done: true as const, value: undefined };
        },
      }),
      close: () => void counts.closes++,
    };
    return { body, ...getters(counts) };
  },
  'a generator': (kind) => {
    const counts = { pulls: 0, returns: 0, closes: 0 };
    const body = instrument(
      script(kind, () => counts.pulls++),
      counts,
    );
    return { body, ...getters(counts) };
  },
  'an async generator': (kind) => {
    const counts = { pulls: 0, returns: 0, closes: 0 };
    const body = instrument(
      (async function* () {
        for (const chunk of script(kind, () => counts.pulls++)) {
          await turn();
          yield chunk;
        }
      })(),
      counts,
    );
    return { body, ...getters(counts) };
  },
  'a Node Readable': (kind) => {
    const counts = { pulls: 0, returns: 0, closes: 0 };
    const steps = script(kind, () => counts.pulls++);
    const body = new Readable({
      read() {
        try {
          const step = steps.next();
          this.push(step.done ? null : step.value);
        } catch (error) {
          this.destroy(error as Error);
        }
      },
    });
    // A Readable is finished by destroy(): count that as its return().
    body.once('close', () => counts.returns++);
    return { body, ...getters(counts) };
  },
};

function getters(counts: { pulls: number; returns: number; closes: number }) {
  return {
    pulls: () => counts.pulls,
    returns: () => counts.returns,
    closes: () => counts.closes,
  };
}

describe('body consumption with backpressure', () => {
  for (const [name, make] of Object.entries(bodies)) {
    it(`does not pull ${name} while the client does not read, and resumes when it does`, async () => {
      let counted: Counted | undefined;
      const { port } = await serve((_environ, startResponse) => {
        startResponse('200 OK', [['Content-Length', String(TOTAL)]]);
        counted = make('endless');
        return counted.body;
      });
      const client = await nonReadingClient(port);
      await eventually(() => counted !== undefined, 'the app');
      const stall = await stalled(() => counted!.pulls());
      assert.ok(stall < BOUND, `pulls stopped at ${stall} of ${BOUND}`);
      client.socket.resume();
      await eventually(() => client.received >= TOTAL, 'the whole body');
      assert.equal(counted!.pulls(), BOUND);
      client.destroy();
    });
  }
});

describe('the body is finished exactly once', () => {
  for (const [name, make] of Object.entries(bodies)) {
    const hasClose = name !== 'a Node Readable';

    it(`${name}: once when it ends`, async () => {
      let counted: Counted | undefined;
      const { server } = await serve((_environ, startResponse) => {
        startResponse('200 OK', []);
        counted = make('end');
        return counted.body;
      });
      const response = await supertest(server).get('/').expect(200);
      assert.equal(response.text, 'ab');
      await eventually(() => counted!.returns() > 0, 'return()');
      await sleep(20);
      assert.equal(counted!.returns(), 1, 'return()');
      assert.equal(counted!.closes(), hasClose ? 1 : 0, 'close()');
    });

    it(`${name}: once when it fails, and the client sees a broken response`, async () => {
      let counted: Counted | undefined;
      const { port, log } = await serve((_environ, startResponse) => {
        startResponse('200 OK', []);
        counted = make('throw');
        return counted.body;
      });
      const text = await rawRequest(port, GET);
      assert.equal(dechunk(parseResponseOrEmpty(text)).complete, false);
      await eventually(() => counted!.returns() > 0, 'return()');
      await sleep(20);
      assert.equal(counted!.returns(), 1, 'return()');
      assert.equal(counted!.closes(), hasClose ? 1 : 0, 'close()');
      assert.equal(log.lines.length, 1);
      assert.match(log.lines[0]!, /the body failed/);
    });

    it(`${name}: once when the client goes away`, async () => {
      let counted: Counted | undefined;
      const { port, log } = await serve((_environ, startResponse) => {
        startResponse('200 OK', [['Content-Length', String(TOTAL)]]);
        counted = make('endless');
        return counted.body;
      });
      const client = await nonReadingClient(port);
      await eventually(() => counted !== undefined, 'the app');
      await stalled(() => counted!.pulls());
      client.destroy();
      await eventually(() => counted!.returns() > 0, 'return()');
      await sleep(20);
      assert.equal(counted!.returns(), 1, 'return()');
      assert.equal(counted!.closes(), hasClose ? 1 : 0, 'close()');
      assert.ok(counted!.pulls() < BOUND, 'not pulled to the end for nobody');
      assert.deepEqual(log.lines, [], 'a client leaving is no app error');
    });
  }
});

/** The body part of a response, or '' when not even a head arrived (aborted at once). */
function parseResponseOrEmpty(text: string): string {
  return text.includes('\r\n\r\n') ? parseResponse(text).body : '';
}

describe('Content-Length', () => {
  it('never sends more than declared: the extra is cut, the connection aborted, the error logged', async () => {
    const { port, log } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', [['Content-Length', '5']]);
        yield 'hello';
        await sleep(20);
        yield ' world';
      })(),
    );
    const client = await RawClient.connect(port);
    client.send(GET);
    // Within end()'s limit, under the keep-alive timeout: the server aborted the connection.
    const text = await client.end();
    assert.equal(parseResponse(text).body, 'hello');
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0]!, /NGI_ERR_CONTENT_LENGTH_EXCEEDED/);
  });

  it('cuts a single chunk longer than declared too', async () => {
    const { port, log } = await serve((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Length', '5']]);
      return ['hello world'];
    });
    const text = await rawRequest(port, GET);
    const body = parseResponseOrEmpty(text);
    assert.ok('hello'.startsWith(body), `at most the declared bytes, got ${JSON.stringify(body)}`);
    assert.match(log.lines.join(''), /NGI_ERR_CONTENT_LENGTH_EXCEEDED/);
  });

  it('aborts the response when write() goes past the declared length, even if the app goes on', async () => {
    let code: unknown;
    const { port, log } = await serve(async (_environ, startResponse) => {
      const write = startResponse('200 OK', [['Content-Length', '5']]);
      await write('hello world').catch((error: { code: string }) => (code = error.code));
      return [];
    });
    const client = await RawClient.connect(port);
    client.send(GET);
    // Within end()'s limit, under the keep-alive timeout: the server aborted the connection.
    const text = await client.end();
    assert.equal(code, 'NGI_ERR_CONTENT_LENGTH_EXCEEDED');
    assert.ok(!text.includes('hello '), 'never a byte past the length');
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0]!, /NGI_ERR_CONTENT_LENGTH_EXCEEDED/);
  });

  it('aborts a body that ends short of its declared length', async () => {
    const { port, log } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', [['Content-Length', '10']]);
        yield 'hello';
        await sleep(20);
      })(),
    );
    const client = await RawClient.connect(port);
    client.send(GET);
    // Within end()'s limit, under the keep-alive timeout: the server aborted the connection.
    const text = await client.end();
    assert.equal(parseResponse(text).body, 'hello');
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0]!, /NGI_ERR_CONTENT_LENGTH_SHORT.*5 of 10/);
  });

  it('makes a keep-alive HTTP client fail on a short body instead of taking it as complete', async () => {
    const { port } = await serve((_environ, startResponse) =>
      (async function* () {
        startResponse('200 OK', [['Content-Length', '10']]);
        yield 'hello';
        await sleep(20);
      })(),
    );
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/' }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve('complete'));
        res.on('error', (error) => resolve(`error: ${error.message}`));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', (error) => resolve(`error: ${error.message}`));
      req.end();
    });
    assert.notEqual(outcome, 'complete');
  });

  it('is computed for a finished array', async () => {
    const { server } = await serve((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['héllo', ' ', Buffer.from('world')];
    });
    const response = await supertest(server).get('/').expect(200);
    assert.equal(response.text, 'héllo world');
    assert.equal(response.headers['content-length'], String(Buffer.byteLength('héllo world')));
    assert.equal(response.headers['transfer-encoding'], undefined);
  });

  it('is left out for a streamed body: chunked on HTTP/1.1', async () => {
    const { port } = await serve((_environ, startResponse) =>
      (function* () {
        startResponse('200 OK', []);
        yield 'hello';
        yield ' world';
      })(),
    );
    const client = await RawClient.connect(port);
    client.send(GET);
    const text = await client.until((t) => dechunkIfHead(t).complete);
    const { headers, body } = parseResponse(text);
    assert.deepEqual(headers.get('transfer-encoding'), ['chunked']);
    assert.equal(headers.get('content-length'), undefined);
    assert.equal(dechunk(body).data, 'hello world');
    client.destroy();
  });

  it('is left out for a streamed body: close-delimited for an HTTP/1.0 client', async () => {
    const { port } = await serve((_environ, startResponse) =>
      (function* () {
        startResponse('200 OK', []);
        yield 'hello';
        yield ' world';
      })(),
    );
    const text = await rawRequest(port, 'GET / HTTP/1.0\r\n\r\n');
    const { headers, body } = parseResponse(text);
    assert.equal(headers.get('transfer-encoding'), undefined);
    assert.equal(headers.get('content-length'), undefined);
    assert.equal(body, 'hello world', 'the body ends where the connection does');
  });
});

function dechunkIfHead(text: string): { complete: boolean } {
  return text.includes('\r\n\r\n') ? dechunk(parseResponse(text).body) : { complete: false };
}

/** Sends `first`, then a GET on the same connection: proves nothing stray came in between. */
async function thenAnother(port: number, first: string): Promise<[string, string]> {
  const client = await RawClient.connect(port);
  client.send(first);
  const head = await client.until((t) => t.includes('\r\n\r\n'));
  await sleep(20);
  const firstText = client.text;
  client.send('GET /next HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
  const all = await client.end();
  assert.ok(head.length > 0);
  return [firstText, all.slice(firstText.length)];
}

describe('bodiless responses', () => {
  const app: App = (environ, startResponse) => {
    if (environ.PATH_INFO === '/next') {
      startResponse('200 OK', []);
      return ['next'];
    }
    const status = environ.QUERY_STRING || '200 OK';
    return (function* () {
      startResponse(decodeURIComponent(status), [['X-Status', status]]);
      yield 'a body that must not be sent';
    })();
  };

  for (const [what, request] of [
    ['HEAD', 'HEAD / HTTP/1.1\r\nHost: test\r\n\r\n'],
    ['204', 'GET /?204%20No%20Content HTTP/1.1\r\nHost: test\r\n\r\n'],
    ['304', 'GET /?304%20Not%20Modified HTTP/1.1\r\nHost: test\r\n\r\n'],
  ] as const) {
    it(`carry no body for ${what}, whatever the app yields`, async () => {
      const { port } = await serve(app);
      const [first, next] = await thenAnother(port, request);
      const { body, headers } = parseResponse(first);
      assert.equal(body, '');
      assert.ok(headers.has('x-status'));
      assert.match(next, /^HTTP\/1\.1 200 OK\r\n/, 'the connection carries on cleanly');
      assert.match(next, /next$/);
    });
  }

  it('stop pulling an endless body once a HEAD response is out', async () => {
    let counted: Counted | undefined;
    const { port } = await serve((environ, startResponse) => {
      startResponse('200 OK', []);
      if (environ.PATH_INFO === '/next') return ['next'];
      counted = bodies['a generator']!('endless');
      return counted.body;
    });
    const [first] = await thenAnother(port, 'HEAD / HTTP/1.1\r\nHost: test\r\n\r\n');
    assert.equal(parseResponse(first).status, 200);
    await eventually(() => counted!.returns() === 1, 'return()');
    assert.ok(counted!.pulls() < BOUND, `pulled ${counted!.pulls()} chunks for a HEAD`);
  });

  it('keep the Content-Length a HEAD answer computes for a finished array', async () => {
    const { port } = await serve((_environ, startResponse) => {
      startResponse('200 OK', []);
      return ['hello'];
    });
    const [first] = await thenAnother(port, 'HEAD / HTTP/1.1\r\nHost: test\r\n\r\n');
    const { headers, body } = parseResponse(first);
    assert.deepEqual(headers.get('content-length'), ['5']);
    assert.equal(body, '');
  });

  it('refuse a 1xx final status: a logged 500, the 1xx never on the wire', async () => {
    const { port, log } = await serve((_environ, startResponse) => {
      startResponse('103 Early Hints', [['Link', '</a.css>; rel=preload']]);
      return ['body'];
    });
    const text = await rawRequest(port, GET.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    assert.equal(parseResponse(text).status, 500);
    assert.doesNotMatch(text, /103|Link:/);
    assert.match(log.lines.join(''), /NGI_ERR_INVALID_STATUS.*cannot be 1xx/);
  });
});

describe('what the app may not send', () => {
  /** GET on a fresh connection that closes after one response. */
  const once = (port: number) =>
    rawRequest(port, 'GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');

  const badHeaders: Array<[string, Headers]> = [
    ['CR LF in a value', [['X-A', 'a\r\nX-Injected: 1']]],
    ['LF in a value', [['X-A', 'a\nX-Injected: 1']]],
    ['CR LF in a name', [['X-Injected: 1\r\nX-A', 'a']]],
    ['NUL in a value', [['X-A', 'a\0X-Injected']]],
    ['NUL in a name', [['X-Injected\0', 'a']]],
    ['a space in a name', [['X-Injected Name', 'a']]],
    ['an empty name', [['', 'X-Injected']]],
    ['a control character Node refuses', [['X-A', 'X-Injected\u0001']]],
    ['a value that is not a string', [['X-A', 5 as unknown as string]]],
  ];
  for (const [what, headers] of badHeaders) {
    it(`answers 500 for a header with ${what}, and it never reaches the wire`, async () => {
      const { port, log } = await serve((_environ, startResponse) => {
        startResponse('200 OK', headers);
        return ['must not be sent'];
      });
      const text = await once(port);
      assert.equal(parseResponse(text).status, 500);
      assert.doesNotMatch(text, /X-Injected|must not be sent/);
      assert.equal(log.lines.length, 1);
    });
  }

  it('answers 500 for CR, LF or NUL in the reason phrase', async () => {
    for (const status of ['200 OK\r\nX-Injected: 1', '200 OK\0X-Injected']) {
      const { port, log } = await serve((_environ, startResponse) => {
        startResponse(status, []);
        return ['must not be sent'];
      });
      const text = await once(port);
      assert.equal(parseResponse(text).status, 500, JSON.stringify(status));
      assert.doesNotMatch(text, /X-Injected|must not be sent/);
      assert.match(log.lines.join(''), /NGI_ERR_INVALID_STATUS/);
    }
  });

  it('drops the hop-by-hop headers an app sets and keeps the rest, duplicates included', async () => {
    const { port } = await serve((_environ, startResponse) => {
      startResponse('200 OK', [
        ['Connection', 'close'],
        ['Keep-Alive', 'timeout=999'],
        ['Transfer-Encoding', 'gzip'],
        ['Upgrade', 'websocket'],
        ['TE', 'trailers'],
        ['Trailer', 'X-Checksum'],
        ['Proxy-Connection', 'close'],
        ['Proxy-Authenticate', 'Basic'],
        ['Proxy-Status', 'ngi'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ]);
      return ['kept'];
    });
    const [first, next] = await thenAnother(port, GET);
    const { headers, body } = parseResponse(first);
    assert.equal(body, 'kept');
    assert.deepEqual(headers.get('set-cookie'), ['a=1', 'b=2']);
    assert.deepEqual(headers.get('content-length'), ['4']);
    // The same list the validator refuses (src/core/rules.ts): any Proxy-* too.
    for (const name of [
      'upgrade',
      'te',
      'trailer',
      'proxy-connection',
      'proxy-authenticate',
      'proxy-status',
      'transfer-encoding',
    ]) {
      assert.equal(headers.get(name), undefined, name);
    }
    assert.notDeepEqual(headers.get('keep-alive'), ['timeout=999']);
    assert.deepEqual(headers.get('connection'), ['keep-alive'], 'the server owns the connection');
    assert.match(next, /^HTTP\/1\.1 200 OK/, 'and keeps it open');
  });

  for (const status of ['OK', '200OK', '99 Low', '1000 Big', '', '20 OK', ' 200 OK', 200]) {
    it(`answers 500 for the invalid status ${JSON.stringify(status)}`, async () => {
      const { port, log } = await serve((_environ, startResponse) => {
        startResponse(status as string, []);
        return ['must not be sent'];
      });
      const text = await once(port);
      assert.equal(parseResponse(text).status, 500);
      assert.doesNotMatch(text, /must not be sent/);
      assert.equal(log.lines.length, 1);
      assert.match(log.lines[0]!, /NGI_ERR_INVALID_STATUS/);
    });
  }

  const notBodies: Array<[string, unknown]> = [
    ['a string', 'hello'],
    ['null', null],
    ['undefined', undefined],
    ['a number', 42],
    ['a plain object', { body: 'hello' }],
  ];
  for (const [what, result] of notBodies) {
    it(`answers 500 and logs NGI_ERR_INVALID_BODY when the app returns ${what}`, async () => {
      const { port, log } = await serve(async (_environ, startResponse) => {
        startResponse('200 OK', []);
        return result as Body;
      });
      const { status, body } = parseResponse(await once(port));
      assert.equal(status, 500);
      assert.equal(body, '500 Internal Server Error\n');
      assert.equal(log.lines.length, 1);
      assert.match(log.lines[0]!, /NGI_ERR_INVALID_BODY/);
    });
  }

  for (const symbol of [Symbol.iterator, Symbol.asyncIterator]) {
    it(`answers 500, and the process lives, when the body's ${String(symbol)}() throws`, async () => {
      const { port, log } = await serve(async (_environ, startResponse) => {
        startResponse('200 OK', []);
        return {
          [symbol]() {
            throw new Error('no iterator today');
          },
        } as unknown as Body;
      });
      const { status } = parseResponse(await once(port));
      assert.equal(status, 500);
      assert.equal(log.lines.length, 1);
      assert.match(log.lines[0]!, /NGI_ERR_APP_THREW .*no iterator today/);
    });
  }

  for (const [what, app] of [
    [
      'throws',
      () => {
        throw new Error('secret detail');
      },
    ],
    ['rejects', async () => Promise.reject(new Error('secret detail'))],
  ] as Array<[string, App]>) {
    it(`answers a plain 500 with one log line and no stack when the app ${what} before startResponse`, async () => {
      const { port, log } = await serve(app);
      const text = await once(port);
      const { status, body } = parseResponse(text);
      assert.equal(status, 500);
      assert.equal(body, '500 Internal Server Error\n');
      assert.doesNotMatch(text, /secret detail|at /);
      assert.equal(log.lines.length, 1);
      assert.match(log.lines[0]!, /NGI_ERR_APP_THREW GET \/: .*secret detail/);
    });
  }

  it('answers 500 when the app yields a body without calling startResponse', async () => {
    const { port, log } = await serve(() => ['no head']);
    const { status } = parseResponse(await once(port));
    assert.equal(status, 500);
    assert.match(log.lines.join(''), /NGI_ERR_NO_START_RESPONSE/);
  });
});

describe('an error before the head is answered by its own status, as Koa does', () => {
  const once = (port: number) =>
    rawRequest(port, 'GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
  const thrown = (fields: Record<string, unknown>, message = 'no such user') =>
    serve(() => {
      throw Object.assign(new Error(message), fields);
    });

  it('answers an http-errors style 404 with its status, unlogged', async () => {
    const { port, log } = await thrown({ status: 404 });
    const { status, body } = parseResponse(await once(port));
    assert.equal(status, 404);
    assert.equal(body, '404 Not Found\n', 'the message stays private unless exposed');
    assert.deepEqual(log.lines, []);
  });

  it('shows the message of an error that says expose: true', async () => {
    const { port } = await thrown({ status: 403, expose: true }, 'this folder is private');
    const { status, body, headers } = parseResponse(await once(port));
    assert.equal(status, 403);
    assert.equal(body, 'this folder is private\n');
    assert.deepEqual(headers.get('content-length'), ['23']);
  });

  it('takes statusCode too (Fastify’s and Node’s errors)', async () => {
    const { port } = await thrown({ statusCode: 429 });
    assert.equal(parseResponse(await once(port)).status, 429);
  });

  it('answers 500, logged, for a status that is not an error status', async () => {
    for (const status of [200, 302, 700, '404']) {
      const { port, log } = await thrown({ status, expose: true }, 'secret detail');
      const answer = parseResponse(await once(port));
      assert.equal(answer.status, 500, String(status));
      assert.doesNotMatch(answer.body, /secret detail/);
      assert.match(log.lines.join(''), /secret detail/);
    }
  });

  it('logs a 5xx the app raised, and keeps its status', async () => {
    const { port, log } = await thrown({ status: 503 }, 'the database is down');
    assert.equal(parseResponse(await once(port)).status, 503);
    assert.match(log.lines.join(''), /the database is down/);
  });
});

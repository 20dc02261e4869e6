import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import supertest from 'supertest';
import { fromFetch, toFetch, type FetchHandler } from '../../adapters/fetch.js';
import { toNodeHandler } from '../../adapters/node.js';
import { isNgiApp } from '../../src/core/define-app.js';
import { mount } from '../../src/middleware/mount.js';
import type { App, Environ, ErrorStream } from '../../src/core/types.js';
import { logSink } from '../helpers/servers.js';

/** A promise with its resolver, for steering a producer from the test. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

const text = new TextDecoder();

async function readChunk(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const step = await reader.read();
  assert.equal(step.done, false);
  return text.decode(step.value);
}

/** Every chunk of a web stream (the DOM typings lack its async iterator). */
async function* chunksOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  for (;;) {
    const step = await reader.read();
    if (step.done) return;
    yield step.value;
  }
}

/** Lets every pending microtask and I/O callback run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

const environApp: App = (environ, startResponse) => {
  const seen: Record<string, unknown> = {};
  for (const key of Object.keys(environ)) {
    if (!key.startsWith('ngi.')) seen[key] = environ[key];
  }
  seen['ngi.url_scheme'] = environ['ngi.url_scheme'];
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(seen)];
};

describe('toFetch', () => {
  it('builds the environ from the Request: raw REQUEST_URI, decoded PATH_INFO, headers', async () => {
    const response = await toFetch(environApp, { remoteAddress: '10.0.0.7' })(
      new Request('https://example.com:8443/a%2Fb/caf%C3%A9?q=%C3%BC&x=1#frag', {
        method: 'POST',
        headers: {
          'Content-Type': 'text/plain',
          'X-Many': 'one',
          Cookie: 'a=1',
          X_Sneaky: 'dropped',
        },
        body: 'abc',
      }),
    );
    const environ = (await response.json()) as Record<string, string>;
    assert.equal(environ.REQUEST_METHOD, 'POST');
    assert.equal(environ.REQUEST_URI, '/a%2Fb/caf%C3%A9?q=%C3%BC&x=1', 'no fragment');
    assert.equal(environ.PATH_INFO, '/a/b/café');
    assert.equal(environ.QUERY_STRING, 'q=%C3%BC&x=1');
    assert.equal(environ.SCRIPT_NAME, '');
    assert.equal(environ.SERVER_NAME, 'example.com');
    assert.equal(environ.SERVER_PORT, '8443');
    assert.equal(environ.HTTPS, 'on');
    assert.equal(environ['ngi.url_scheme'], 'https');
    assert.equal(environ.REMOTE_ADDR, '10.0.0.7');
    assert.equal(environ.CONTENT_TYPE, 'text/plain');
    assert.equal(environ.HTTP_X_MANY, 'one');
    assert.equal(environ.HTTP_COOKIE, 'a=1');
    assert.equal(environ.HTTP_HOST, 'example.com:8443', 'the URL host stands in for Host');
    assert.equal(environ.HTTP_X_SNEAKY, undefined, 'names with "_" are dropped');
  });

  it('keeps a non-UTF-8 escape raw in REQUEST_URI and reads it as Latin-1 in PATH_INFO', async () => {
    const response = await toFetch(environApp)(new Request('http://h/%FF/x'));
    const environ = (await response.json()) as Environ;
    assert.equal(environ.REQUEST_URI, '/%FF/x');
    assert.equal(environ.PATH_INFO, '/\u00ff/x');
  });

  it('moves the scriptName option from PATH_INFO to SCRIPT_NAME', async () => {
    const handler = toFetch(environApp, { scriptName: '/legacy' });
    const below = (await (await handler(new Request('http://h/legacy/x%2Fy?z'))).json()) as Environ;
    assert.equal(below.SCRIPT_NAME, '/legacy');
    assert.equal(below.PATH_INFO, '/x/y');
    assert.equal(below.REQUEST_URI, '/legacy/x%2Fy?z');
    const root = (await (await handler(new Request('http://h/legacy'))).json()) as Environ;
    assert.equal(root.PATH_INFO, '');
    assert.equal(root.SERVER_PORT, '80');
  });

  it('answers a one-chunk body with the bytes and a Content-Length, no stream needed', async () => {
    const response = await toFetch((_environ, startResponse) => {
      startResponse('201 Created', [['Content-Type', 'text/plain']]);
      return ['héllo'];
    })(new Request('http://h/'));
    assert.equal(response.status, 201);
    assert.equal(response.statusText, 'Created');
    assert.equal(response.headers.get('content-length'), '6');
    assert.equal(await response.text(), 'héllo');
  });

  it('gives the Response itself, not a promise, when the app answered while it ran', async () => {
    // A runtime that gets a Response (not a promise) writes it at once: @hono/node-server
    // takes its fast path, and Hono does not turn the route asynchronous.
    const handler = toFetch((_environ, startResponse) => {
      startResponse('200 OK', []);
      return ['now'];
    });
    const answer = handler(new Request('http://h/'));
    assert.ok(answer instanceof Response, 'a synchronous answer comes without a promise');
    assert.equal(await answer.text(), 'now');
    const later = toFetch(async (_environ, startResponse) => {
      await new Promise((resolve) => setImmediate(resolve));
      startResponse('200 OK', []);
      return ['later'];
    })(new Request('http://h/'));
    assert.ok(later instanceof Promise, 'an app that waits answers through a promise');
    assert.equal(await (await later).text(), 'later');
  });

  it('adds no Content-Type to a string body the app sent without one, and keeps the one it set', async () => {
    const bare = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', []);
      return ['plain'];
    })(new Request('http://h/'));
    assert.equal(bare.headers.get('content-type'), null);
    assert.equal(await bare.text(), 'plain');
    const typed = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/html']]);
      return ['<p>é</p>'];
    })(new Request('http://h/'));
    assert.equal(typed.headers.get('content-type'), 'text/html');
    assert.equal(typed.headers.get('content-length'), '9');
    assert.equal(await typed.text(), '<p>é</p>');
  });

  it('joins a finished multi-chunk array into one body with its length', async () => {
    const response = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', []);
      return ['a', new Uint8Array([98]), 'c'];
    })(new Request('http://h/'));
    assert.equal(response.headers.get('content-length'), '3');
    assert.equal(await response.text(), 'abc');
  });

  it('resolves the Response at head time and streams: the first chunk is readable before the last exists', async () => {
    const last = gate();
    let finished = false;
    const response = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'first ';
        await last.promise;
        yield 'last';
        finished = true;
      })();
    })(new Request('http://h/'));
    assert.equal(response.headers.get('content-length'), null);
    const reader = response.body!.getReader();
    assert.equal(await readChunk(reader), 'first ');
    assert.equal(finished, false);
    last.open();
    assert.equal(await readChunk(reader), 'last');
    assert.equal((await reader.read()).done, true);
    assert.equal(finished, true);
  });

  it('does not pull the body further while the consumer is not reading (backpressure)', async () => {
    let produced = 0;
    const response = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', []);
      return (function* () {
        for (let i = 0; i < 1000; i++) {
          produced++;
          yield new Uint8Array(16384);
        }
      })();
    })(new Request('http://h/'));
    await settle();
    assert.ok(produced <= 3, `produced ${produced} chunks with nobody reading`);
    let bytes = 0;
    for await (const chunk of chunksOf(response.body!)) bytes += chunk.byteLength;
    assert.equal(bytes, 1000 * 16384);
  });

  it('streams the request body in: the app reads a chunk before the client sends the next', async () => {
    let push!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (push = c) });
    const app: App = (environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      // Echo each request chunk as soon as it arrives.
      return (async function* () {
        for await (const chunk of environ['ngi.input']) yield `<${String(chunk)}>`;
      })();
    };
    const request = new Request('http://h/echo', {
      method: 'POST',
      body,
      duplex: 'half',
    } as RequestInit);
    push.enqueue(new TextEncoder().encode('one'));
    const response = await toFetch(app)(request);
    const reader = response.body!.getReader();
    assert.equal(await readChunk(reader), '<one>');
    push.enqueue(new TextEncoder().encode('two'));
    assert.equal(await readChunk(reader), '<two>');
    push.close();
    assert.equal((await reader.read()).done, true);
  });

  it('gives an empty ngi.input when the Request has no body', async () => {
    const response = await toFetch(async (environ, startResponse) => {
      let bytes = 0;
      for await (const chunk of environ['ngi.input']) bytes += (chunk as Buffer).length;
      startResponse('200 OK', []);
      return [String(bytes)];
    })(new Request('http://h/'));
    assert.equal(await response.text(), '0');
  });

  it('fires ngi.signal when request.signal aborts', async () => {
    const controller = new AbortController();
    const observed = gate<unknown>();
    const response = await toFetch((environ, startResponse) => {
      environ['ngi.signal'].addEventListener('abort', () =>
        observed.open(environ['ngi.signal'].reason),
      );
      startResponse('200 OK', []);
      return (async function* () {
        yield 'tick';
        await observed.promise;
      })();
    })(new Request('http://h/', { signal: controller.signal }));
    const reader = response.body!.getReader();
    assert.equal(await readChunk(reader), 'tick');
    controller.abort();
    const reason = (await observed.promise) as { code?: string };
    assert.equal(reason.code, 'NGI_ERR_CLIENT_GONE');
  });

  it('lives on when the app rejects after request.signal aborted, before any response', async () => {
    const controller = new AbortController();
    const settled = gate<unknown>();
    const crashes: unknown[] = [];
    const onCrash = (error: unknown) => crashes.push(error);
    process.on('unhandledRejection', onCrash);
    const errors = logSink();
    try {
      void toFetch(
        async (environ, startResponse) => {
          const signal = environ['ngi.signal'];
          await new Promise((resolve) => signal.addEventListener('abort', resolve));
          try {
            // What an app that gave up does next: startResponse on an exchange that is over.
            startResponse('200 OK', []);
          } catch (error) {
            settled.open(error);
            throw error;
          }
          return ['never sent'];
        },
        { errors },
      )(new Request('http://h/', { signal: controller.signal }));
      controller.abort();
      const error = (await settled.promise) as { code?: string };
      assert.equal(error.code, 'NGI_ERR_CLIENT_GONE');
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(crashes, []);
      assert.deepEqual(errors.lines, [], 'a client leaving is no app error');
    } finally {
      process.off('unhandledRejection', onCrash);
    }
  });

  it('fires ngi.signal and closes the app body when the consumer cancels the Response body', async () => {
    const aborted = gate();
    let closed = 0;
    const response = await toFetch((environ, startResponse) => {
      environ['ngi.signal'].addEventListener('abort', () => aborted.open());
      startResponse('200 OK', []);
      const body = (async function* () {
        for (;;) yield 'x'.repeat(1024);
      })();
      return Object.assign(body, { close: () => void closed++ });
    })(new Request('http://h/'));
    const reader = response.body!.getReader();
    await readChunk(reader);
    await reader.cancel();
    await aborted.promise;
    assert.equal(closed, 1);
  });

  it('keeps every Set-Cookie (getSetCookie)', async () => {
    const response = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', [
        ['Set-Cookie', 'a=1; Path=/'],
        ['Set-Cookie', 'b=2; HttpOnly'],
        ['Set-Cookie', 'c=3, with comma; Expires=Wed, 21 Oct 2015 07:28:00 GMT'],
      ]);
      return [];
    })(new Request('http://h/'));
    assert.deepEqual(response.headers.getSetCookie(), [
      'a=1; Path=/',
      'b=2; HttpOnly',
      'c=3, with comma; Expires=Wed, 21 Oct 2015 07:28:00 GMT',
    ]);
  });

  it('answers 204 and 304 with a null body, whatever the app yields', async () => {
    for (const status of ['204 No Content', '304 Not Modified']) {
      const response = await toFetch((_environ, startResponse) => {
        startResponse(status, [['ETag', '"v1"']]);
        return ['ignored'];
      })(new Request('http://h/'));
      assert.equal(response.status, Number(status.slice(0, 3)));
      assert.equal(response.body, null);
      assert.equal(response.headers.get('etag'), '"v1"');
    }
  });

  it('answers HEAD with a null body and the length the GET would have', async () => {
    const response = await toFetch((_environ, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['hello'];
    })(new Request('http://h/', { method: 'HEAD' }));
    assert.equal(response.status, 200);
    assert.equal(response.body, null);
    assert.equal(response.headers.get('content-length'), '5');
  });

  it('answers a status Fetch cannot express (600-999) with a clear 502 and a log line', async () => {
    for (const status of ['600 Beyond', '999 Last']) {
      const errors = logSink();
      const response = await toFetch(
        (_environ, startResponse) => {
          startResponse(status, []);
          return ['body'];
        },
        { errors },
      )(new Request('http://h/odd'));
      assert.equal(response.status, 502);
      assert.match(await response.text(), /cannot be expressed by a Fetch Response/);
      assert.equal(errors.lines.length, 1);
      assert.match(errors.lines[0]!, /NGI_ERR_UNSUPPORTED GET \/odd: .*status \d+ cannot/);
    }
  });

  it('lets go of a streaming app once a runtime sends the 502 in its place', async () => {
    let closed = 0;
    let released!: () => void;
    const done = new Promise<void>((resolve) => (released = resolve));
    const response = await toFetch(
      (_environ, startResponse) => {
        startResponse('700 Odd', []);
        return (async function* () {
          try {
            // More than a stream buffers: with no reader the app would wait forever.
            for (let i = 0; i < 64; i++) yield Buffer.alloc(16384);
          } finally {
            closed++;
            released();
          }
        })();
      },
      { errors: logSink() },
    )(new Request('http://h/odd'));
    assert.equal(response.status, 502);
    assert.match(await response.text(), /^502 Bad Gateway: status 700 cannot/);
    await done;
    assert.equal(closed, 1);
  });

  it('answers a 1xx final status with a logged 500, as every host does', async () => {
    const errors = logSink();
    const response = await toFetch(
      (_environ, startResponse) => {
        startResponse('103 Early Hints', []);
        return ['body'];
      },
      { errors },
    )(new Request('http://h/odd'));
    assert.equal(response.status, 500);
    assert.equal(errors.lines.length, 1);
    assert.match(errors.lines[0]!, /NGI_ERR_INVALID_STATUS GET \/odd: .*cannot be 1xx/);
  });

  it('turns an app that throws into a 500 and logs it', async () => {
    const errors = logSink();
    const response = await toFetch(
      () => {
        throw new Error('boom');
      },
      { errors },
    )(new Request('http://h/'));
    assert.equal(response.status, 500);
    assert.match(errors.lines.join(''), /NGI_ERR_APP_THREW .*boom/);
  });

  it('errors the Response body when the app fails after the head is out', async () => {
    const response = await toFetch(
      (_environ, startResponse) => {
        startResponse('200 OK', []);
        return (async function* () {
          yield 'partial';
          throw new Error('late');
        })();
      },
      { errors: logSink() },
    )(new Request('http://h/'));
    await assert.rejects(response.text());
  });
});

describe('fromFetch served by toNodeHandler', () => {
  const errors = logSink();
  const streamGate = { current: gate() };
  const aborted = { current: gate<unknown>() };
  const cancelled = { current: gate<unknown>() };
  const handler: FetchHandler = async (request) => {
    const url = new URL(request.url);
    switch (url.pathname.replace(/^\/mnt/, '')) {
      case '/stream':
        return new Response(
          new ReadableStream({
            async start(controller) {
              controller.enqueue(new TextEncoder().encode('first\n'));
              await streamGate.current.promise;
              controller.enqueue(new TextEncoder().encode('last\n'));
              controller.close();
            },
          }),
        );
      case '/echo': {
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of chunksOf(request.body!)) {
          hash.update(chunk);
          bytes += chunk.byteLength;
        }
        return Response.json({ bytes, sha256: hash.digest('hex') });
      }
      case '/cookies': {
        const headers = new Headers();
        headers.append('Set-Cookie', 'a=1');
        headers.append('Set-Cookie', 'b=2; Path=/');
        headers.append('Set-Cookie', 'c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT');
        return new Response(null, { status: 204, headers });
      }
      case '/hang':
        request.signal.addEventListener('abort', () => aborted.current.open('aborted'));
        return new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode('waiting'));
            },
          }),
        );
      case '/copies': {
        // The request may be a stand-in: undici must still accept it where a Request goes.
        const copy = new Request(request);
        const clone = copy.clone();
        return Response.json({
          text: await copy.text(),
          again: await clone.text(),
          method: copy.method,
          type: copy.headers.get('content-type'),
          isRequest: request instanceof Request,
        });
      }
      case '/throw':
        throw new Error('handler failed');
      case '/teapot':
        return new Response('short and stout', { status: 418 });
      case '/endless':
        return new Response(
          new ReadableStream({
            pull(controller) {
              controller.enqueue(new TextEncoder().encode('more\n'));
            },
            cancel() {
              cancelled.current.open('cancelled');
            },
          }),
        );
      default:
        return Response.json({
          url: request.url,
          method: request.method,
          accept: request.headers.get('accept'),
          connection: request.headers.get('connection'),
        });
    }
  };
  const app = fromFetch(handler);
  let server: Server;
  let port = 0;

  before(async () => {
    server = createServer(
      toNodeHandler(mount({ '/mnt': app, '/': app }), { errors }) as never,
    ).listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('is tagged as an NGI app, and round trips return the original', () => {
    assert.equal(isNgiApp(app), true);
    assert.equal(toFetch(app), handler);
    assert.equal(fromFetch(toFetch(environApp)), environApp);
    assert.notEqual(toNodeHandler(app), handler, 'a Fetch handler is never taken for a Node one');
  });

  it('gives the handler the raw URL, the method and end-to-end headers only', async () => {
    const response = await supertest(server)
      .get('/a%2Fb/%FF?q=%C3%BC')
      .set('Accept', 'text/x-test')
      .expect(200);
    assert.deepEqual(response.body, {
      url: `http://127.0.0.1:${port}/a%2Fb/%FF?q=%C3%BC`,
      method: 'GET',
      accept: 'text/x-test',
      connection: null,
    });
  });

  it('gives a mounted handler the URL below the mount point', async () => {
    const response = await supertest(server).get('/mnt/x%2Fy?z=1').expect(200);
    assert.equal(response.body.url, `http://127.0.0.1:${port}/x%2Fy?z=1`);
  });

  it('passes status, reason and a computed Content-Length for a short body', async () => {
    const response = await supertest(server).get('/teapot').expect(418);
    assert.equal(response.text, 'short and stout');
    assert.equal(response.headers['content-length'], '15');
    assert.equal(
      (response as unknown as { res: IncomingMessage }).res.statusMessage,
      "I'm a Teapot",
    );
  });

  it('streams the response: the first chunk reaches the client before the last is produced', async () => {
    streamGate.current = gate();
    const req = httpRequest({ port, host: '127.0.0.1', path: '/stream' });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    const [first] = (await once(res, 'data')) as [Buffer];
    assert.equal(first.toString(), 'first\n');
    streamGate.current.open();
    let rest = '';
    for await (const chunk of res) rest += String(chunk);
    assert.equal(rest, 'last\n');
  });

  it('streams a 5 MB request body to the handler intact (sha256)', async () => {
    const payload = randomBytes(5 * 1024 * 1024);
    const response = await supertest(server)
      .post('/echo')
      .set('Content-Type', 'application/octet-stream')
      .send(payload)
      .expect(200);
    assert.deepEqual(response.body, {
      bytes: payload.length,
      sha256: createHash('sha256').update(payload).digest('hex'),
    });
  });

  it('gives a Request that new Request(), clone() and instanceof accept, body included', async () => {
    const response = await supertest(server)
      .put('/copies')
      .set('Content-Type', 'text/plain')
      .send('body text')
      .expect(200);
    assert.deepEqual(response.body, {
      text: 'body text',
      again: 'body text',
      method: 'PUT',
      type: 'text/plain',
      isRequest: true,
    });
  });

  it('keeps three Set-Cookie headers', async () => {
    const response = await supertest(server).get('/cookies').expect(204);
    assert.deepEqual(response.headers['set-cookie'], [
      'a=1',
      'b=2; Path=/',
      'c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT',
    ]);
  });

  it('answers HEAD without a body, with the length the GET has', async () => {
    const get = await supertest(server).get('/teapot').expect(418);
    const response = await supertest(server).head('/teapot').expect(418);
    assert.equal(response.text, undefined);
    assert.equal(response.headers['content-length'], '15');
    assert.equal(response.headers['content-length'], get.headers['content-length']);
  });

  it('answers HEAD on an endless stream at once, and cancels the stream', async () => {
    cancelled.current = gate<unknown>();
    const response = await supertest(server).head('/endless').expect(200);
    assert.equal(response.headers['content-length'], undefined);
    assert.equal(await cancelled.current.promise, 'cancelled');
  });

  it('answers TRACE, which Fetch cannot carry, with 501 and a log line', async () => {
    errors.lines.length = 0;
    const response = await supertest(server).trace('/anything').expect(501);
    assert.match(response.text, /cannot carry the TRACE method/);
    assert.match(errors.lines.join(''), /NGI_ERR_UNSUPPORTED TRACE \/anything/);
  });

  it('answers a GET with a body with 501 and a log line, not a crash', async () => {
    errors.lines.length = 0;
    const response = await supertest(server)
      .get('/anything')
      .set('Content-Type', 'text/plain')
      .send('a body on a GET')
      .expect(501);
    assert.match(response.text, /cannot carry a GET request with a body/);
    assert.match(errors.lines.join(''), /NGI_ERR_UNSUPPORTED GET \/anything/);
  });

  it('turns a handler that throws into a 500', async () => {
    errors.lines.length = 0;
    await supertest(server).get('/throw').expect(500);
    assert.match(errors.lines.join(''), /handler failed/);
  });

  it('aborts request.signal when the client goes away mid-response', async () => {
    aborted.current = gate();
    const req = httpRequest({ port, host: '127.0.0.1', path: '/hang' });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    await once(res, 'data');
    req.destroy();
    assert.equal(await aborted.current.promise, 'aborted');
  });
});

describe('fromFetch, called with a hand-made environ', () => {
  function environFor(extra: Record<string, string>, errors: ErrorStream): Environ {
    return {
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '',
      PATH_INFO: '/',
      QUERY_STRING: '',
      SERVER_NAME: 'example.org',
      SERVER_PORT: '8080',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '',
      REMOTE_PORT: '',
      REQUEST_URI: '/',
      'ngi.version': [1, 0],
      'ngi.url_scheme': 'http',
      'ngi.input': Readable.from([]),
      'ngi.errors': errors,
      'ngi.multiprocess': false,
      'ngi.multithread': false,
      'ngi.run_once': false,
      'ngi.signal': new AbortController().signal,
      ...extra,
    };
  }

  async function call(app: App, environ: Environ) {
    let status = '';
    let headers: Array<[string, string]> = [];
    const body = await app(environ, (s, h) => {
      status = s;
      headers = h;
      return async () => {};
    });
    let text = '';
    for await (const chunk of body) text += typeof chunk === 'string' ? chunk : Buffer.from(chunk);
    return { status, headers, text };
  }

  it('builds the URL from SERVER_NAME and SERVER_PORT when there is no Host header', async () => {
    const app = fromFetch((request) => new Response(request.url));
    const { text } = await call(app, environFor({}, logSink()));
    assert.equal(text, 'http://example.org:8080/');
  });

  it('answers 400 with a log line for a header name Fetch rejects, instead of throwing', async () => {
    const errors = logSink();
    const app = fromFetch(() => new Response('unreachable'));
    const result = await call(app, environFor({ 'HTTP_BAD NAME': 'x' }, errors));
    assert.equal(result.status, '400 Bad Request');
    assert.match(result.text, /not expressible as a Fetch Request/);
    assert.match(errors.lines.join(''), /NGI_ERR_UNSUPPORTED/);
  });

  it('answers Response.error() with 502 and a log line', async () => {
    const errors = logSink();
    const result = await call(
      fromFetch(() => Response.error()),
      environFor({}, errors),
    );
    assert.equal(result.status, '502 Bad Gateway');
    assert.match(errors.lines.join(''), /NGI_ERR_UNSUPPORTED GET \/: .*network error/);
  });

  it('rejects a handler result that is not a Response with NGI_ERR_INVALID_BODY', async () => {
    const app = fromFetch((() => 'not a response') as unknown as FetchHandler);
    await assert.rejects(call(app, environFor({}, logSink())), { code: 'NGI_ERR_INVALID_BODY' });
  });
});

describe('toFetch on a real Fetch runtime (@hono/node-server over a socket)', () => {
  let server: Server;
  const app: App = async (environ, startResponse) => {
    const hash = createHash('sha256');
    for await (const chunk of environ['ngi.input']) hash.update(chunk as Buffer);
    startResponse('200 OK', [
      ['Content-Type', 'application/json'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Set-Cookie', 'c=3'],
    ]);
    return [
      JSON.stringify({
        uri: environ.REQUEST_URI,
        path: environ.PATH_INFO,
        method: environ.REQUEST_METHOD,
        sha256: hash.digest('hex'),
      }),
    ];
  };

  before(async () => {
    server = createServer(getRequestListener(toFetch(app), { overrideGlobalObjects: false }));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('serves raw paths, request bodies and three cookies', async () => {
    const payload = randomBytes(256 * 1024);
    const response = await supertest(server)
      .post('/x%2Fy/%FF?q=1')
      .set('Content-Type', 'application/octet-stream')
      .send(payload)
      .expect(200);
    assert.deepEqual(response.body, {
      uri: '/x%2Fy/%FF?q=1',
      path: '/x/y/\u00ff',
      method: 'POST',
      sha256: createHash('sha256').update(payload).digest('hex'),
    });
    assert.deepEqual(response.headers['set-cookie'], ['a=1', 'b=2', 'c=3']);
  });
});

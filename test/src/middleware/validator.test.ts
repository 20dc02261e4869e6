import assert from 'node:assert/strict';

import { type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import fc from 'fast-check';
import supertest from 'supertest';
import { toFetch } from '../../../adapters/fetch.js';
import { fromNodeHandler, toNodeHandler } from '../../../adapters/node.js';
import { NgiError } from '../../../src/core/errors.js';
import { mount } from '../../../src/middleware/mount.js';
import type { App, Environ, Headers, StartResponse } from '../../../src/core/types.js';
import { validator } from '../../../src/middleware/validator.js';
import { listen, close } from '../../helpers/servers.js';

/** An `ngi.errors` that keeps its lines. */
function errorLog(): { lines: string[]; write(line: string): void } {
  return {
    lines: [],
    write(line: string) {
      this.lines.push(line);
    },
  };
}

/** The exact bytes of one response (Connection: close), less its `Date` line. */
function rawResponse(server: Server, method: string, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no end for ${path}`)), 5000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(
        Buffer.from(
          Buffer.concat(chunks)
            .toString('latin1')
            .replace(/\r\nDate: [^\r]*/, ''),
          'latin1',
        ),
      );
    });
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  });
}

const TEXT: Headers = [['Content-Type', 'text/plain; charset=utf-8']];
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Correct apps, one per way of answering the contract allows. */
const correctApps: Record<string, App> = {
  '/array': (_environ, startResponse) => {
    startResponse('200 OK', [...TEXT, ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]);
    return ['hello ', Buffer.from('wörld')];
  },
  '/declared': (_environ, startResponse) => {
    startResponse('200 OK', [...TEXT, ['Content-Length', '5']]);
    return ['12', '345'];
  },
  '/generator': (_environ, startResponse) =>
    (function* () {
      startResponse('201 Created', TEXT);
      yield '';
      yield 'one ';
      yield new Uint8Array([116, 119, 111]);
    })(),
  '/async-generator': (_environ, startResponse) =>
    (async function* () {
      startResponse('200 OK', TEXT);
      yield 'first ';
      await tick();
      yield 'second';
    })(),
  '/readable': (_environ, startResponse) => {
    startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
    return Readable.from([Buffer.from('abc'), Buffer.from('def')]);
  },
  '/write': async (_environ, startResponse) => {
    const write = startResponse('200 OK', TEXT);
    await write('written ');
    await write(Buffer.from('twice'));
    return [];
  },
  '/error-page': (_environ, startResponse) =>
    (function* () {
      startResponse('200 OK', [['Content-Type', 'application/json']]);
      try {
        throw new Error('the database went away');
      } catch (error) {
        startResponse('503 Service Unavailable', TEXT, error);
      }
      yield 'try again later';
    })(),
  '/no-content': (_environ, startResponse) => {
    startResponse('204 No Content', []);
    return [];
  },
};

describe('validator: a correct app', () => {
  const violations: NgiError[] = [];
  let plain: Server;
  let validated: Server;

  before(async () => {
    const wrapped: Record<string, App> = {};
    for (const [path, app] of Object.entries(correctApps)) {
      wrapped[path] = validator(app, { onViolation: (error) => violations.push(error) });
    }
    plain = await listen(toNodeHandler(mount(correctApps)) as never);
    validated = await listen(toNodeHandler(mount(wrapped)) as never);
  });
  after(() => {
    close(plain);
    close(validated);
  });

  for (const path of Object.keys(correctApps)) {
    it(`answers ${path} byte for byte as the same app without the validator, GET and HEAD`, async () => {
      for (const method of ['GET', 'HEAD']) {
        const expected = await rawResponse(plain, method, path);
        const actual = await rawResponse(validated, method, path);
        assert.match(expected.toString('latin1'), /^HTTP\/1\.1 [1-5]\d\d /);
        assert.equal(actual.toString('latin1'), expected.toString('latin1'), `${method} ${path}`);
      }
      // Taken out, so one test's violation is not blamed on the next.
      assert.deepEqual(
        violations.splice(0).map((error) => error.message),
        [],
      );
    });
  }

  it('finds nothing to fault in the environ and body handling of the Fetch host', async () => {
    const seen: NgiError[] = [];
    const handler = toFetch(
      validator(
        (environ, startResponse) => {
          startResponse('200 OK', TEXT);
          return Readable.from([`${environ.REQUEST_METHOD} ${environ.PATH_INFO}`]);
        },
        { onViolation: (error) => seen.push(error) },
      ),
    );
    const response = await handler(
      new Request('https://example.org/a%20b?x=1', {
        method: 'POST',
        body: 'payload',
        headers: { 'Content-Type': 'text/plain' },
      }),
    );
    assert.equal(await response.text(), 'POST /a b');
    assert.deepEqual(
      seen.map((error) => error.message),
      [],
    );
  });

  it('keeps an array body an array, so the server still sends its Content-Length', async () => {
    const response = await supertest(validated).get('/array');
    assert.equal(response.headers['content-length'], String(Buffer.byteLength('hello wörld')));
    assert.deepEqual(response.headers['set-cookie'], ['a=1', 'b=2']);
  });

  it('runs an Express app on the emulated req/res, and the emulation keeps the contract', async () => {
    const seen: NgiError[] = [];
    const legacy = express();
    legacy.use(express.json());
    legacy.get('/send', (_req, res) => {
      res.cookie('a', '1').cookie('b', '2').send('sent');
    });
    legacy.post('/echo', (req, res) => {
      res.status(201).json({ got: req.body as unknown });
    });
    legacy.get('/stream', (_req, res) => {
      res.type('text/plain');
      res.write('part one, ');
      setImmediate(() => res.end('part two'));
    });
    legacy.get('/missing', (_req, res) => {
      res.sendStatus(404);
    });
    const server = await listen(
      toNodeHandler(
        validator(fromNodeHandler(legacy), { onViolation: (e) => seen.push(e) }),
      ) as never,
    );
    try {
      const sent = await supertest(server).get('/send').expect(200, 'sent');
      assert.equal(sent.headers['set-cookie']?.length, 2);
      await supertest(server)
        .post('/echo')
        .send({ x: [1, 'ü'] })
        .expect(201, { got: { x: [1, 'ü'] } });
      await supertest(server).get('/stream').expect(200, 'part one, part two');
      await supertest(server).get('/missing').expect(404);
      await supertest(server).head('/send').expect(200);
    } finally {
      close(server);
    }
    assert.deepEqual(
      seen.map((error) => error.message),
      [],
    );
  });
});

describe('validator: violations by the app', () => {
  const log = errorLog();
  let server: Server;

  /** Apps that break one rule each, and the rule the log must name. */
  const broken: Record<string, { app: App; rule: RegExp; headersOut?: true }> = {
    '/chunk-before-start': {
      app: () => ['too early'],
      rule: /a body chunk came before startResponse was called/,
    },
    '/never-started': { app: () => [], rule: /startResponse was never called/ },
    '/never-started-generator': {
      app: () => (function* () {})(),
      rule: /startResponse was never called/,
    },
    '/started-twice': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        startResponse('404 Not Found', TEXT);
        return ['x'];
      },
      rule: /startResponse called twice without excInfo/,
    },
    '/started-twice-swallowed': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        try {
          startResponse('404 Not Found', TEXT);
        } catch {
          // An app that hides the error still gets its response failed.
        }
        return ['x'];
      },
      rule: /startResponse called twice without excInfo/,
    },
    '/status-without-reason': {
      app: (_environ, startResponse) => {
        startResponse('200', TEXT);
        return ['x'];
      },
      rule: /status "200" is not "NNN reason"/,
    },
    '/status-informational': {
      app: (_environ, startResponse) => {
        startResponse('103 Early Hints', TEXT);
        return ['x'];
      },
      rule: /status "103 Early Hints" is informational: a final response cannot be 1xx/,
    },
    '/proxy-header': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [...TEXT, ['Proxy-Status', 'ngi']]);
        return ['x'];
      },
      rule: /hop-by-hop header Proxy-Status set by the app/,
    },
    '/status-reversed': {
      app: (_environ, startResponse) => {
        startResponse('OK 200', TEXT);
        return ['x'];
      },
      rule: /status "OK 200" is not "NNN reason"/,
    },
    '/headers-object': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', { 'Content-Type': 'text/plain' } as never);
        return ['x'];
      },
      rule: /headers is an object \(Object\), not an array of \[name, value\] pairs/,
    },
    '/header-number': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['X-Count', 5 as never]]);
        return ['x'];
      },
      rule: /header 0 is not a \[string, string\] pair/,
    },
    '/header-name': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Bad Name', 'x']]);
        return ['x'];
      },
      rule: /header name "Bad Name" is not a token/,
    },
    '/header-crlf': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['X-Injected', 'a\r\nSet-Cookie: evil=1']]);
        return ['x'];
      },
      rule: /header X-Injected value holds CR, LF or NUL/,
    },
    '/header-nul': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['X-Nul', 'a\0b']]);
        return ['x'];
      },
      rule: /header X-Nul value holds CR, LF or NUL/,
    },
    '/hop-connection': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Connection', 'close']]);
        return ['x'];
      },
      rule: /hop-by-hop header Connection set by the app/,
    },
    '/hop-transfer-encoding': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Transfer-Encoding', 'chunked']]);
        return ['x'];
      },
      rule: /hop-by-hop header Transfer-Encoding set by the app/,
    },
    '/hop-proxy': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Proxy-Authenticate', 'Basic']]);
        return ['x'];
      },
      rule: /hop-by-hop header Proxy-Authenticate set by the app/,
    },
    '/status-header': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Status', '302 Found']]);
        return ['x'];
      },
      rule: /a Status header/,
    },
    '/content-length-words': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Content-Length', 'ten']]);
        return ['x'];
      },
      rule: /Content-Length "ten" is not digits/,
    },
    '/chunk-number': {
      app: (_environ, startResponse) =>
        (function* () {
          startResponse('200 OK', TEXT);
          yield 42 as never;
        })(),
      rule: /a body chunk is neither a string nor a Uint8Array \(got 42\)/,
    },
    '/chunk-object-after-head': {
      app: (_environ, startResponse) =>
        (async function* () {
          startResponse('200 OK', TEXT);
          yield 'a good start';
          yield { text: 'then an object' } as never;
        })(),
      rule: /a body chunk is neither a string nor a Uint8Array \(got an object \(Object\)\)/,
      headersOut: true,
    },
    '/longer-than-declared': {
      app: (_environ, startResponse) =>
        (function* () {
          startResponse('200 OK', [['Content-Length', '3']]);
          yield 'abcdef';
        })(),
      rule: /the body is longer than its Content-Length \(3\)/,
    },
    '/longer-than-declared-later': {
      app: (_environ, startResponse) =>
        (async function* () {
          startResponse('200 OK', [['Content-Length', '3']]);
          yield 'ab';
          yield 'cd';
        })(),
      rule: /the body is longer than its Content-Length \(3\)/,
      headersOut: true,
    },
    '/shorter-array': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Content-Length', '10']]);
        return ['abc'];
      },
      rule: /the body ended after 3 of the 10 bytes its Content-Length declares/,
    },
    '/shorter-stream': {
      app: (_environ, startResponse) =>
        (async function* () {
          startResponse('200 OK', [['Content-Length', '10']]);
          yield 'abc';
        })(),
      rule: /the body ended after 3 of the 10 bytes its Content-Length declares/,
      headersOut: true,
    },
    '/write-after-yield': {
      app: (_environ, startResponse) =>
        (async function* () {
          const write = startResponse('200 OK', TEXT);
          yield 'yielded';
          await write('then written');
        })(),
      rule: /write\(\) called after the body began yielding chunks/,
      headersOut: true,
    },
    '/write-number': {
      app: async (_environ, startResponse) => {
        const write = startResponse('200 OK', TEXT);
        await write(7 as never);
        return [];
      },
      rule: /write\(\) given a chunk that is neither a string nor a Uint8Array \(got 7\)/,
    },
    '/body-string': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return 'hello' as never;
      },
      rule: /the body is a string, iterable per character: return \[string\]/,
    },
    '/body-buffer': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return Buffer.from('hello') as never;
      },
      rule: /the body is a Uint8Array, iterable per byte/,
    },
    '/body-object': {
      app: async (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return { text: 'hello' } as never;
      },
      rule: /the body is not iterable \(got an object \(Object\)\)/,
    },
    '/body-undefined': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return undefined as never;
      },
      rule: /the body is not iterable \(got undefined\)/,
    },
    '/iterator-factory-throws': {
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return {
          [Symbol.asyncIterator]() {
            throw new Error('no cursor');
          },
        } as never;
      },
      rule: /no cursor/,
    },
  };

  before(async () => {
    const routes: Record<string, App> = {};
    for (const [path, { app }] of Object.entries(broken)) routes[path] = validator(app);
    server = await listen(toNodeHandler(mount(routes), { errors: log }) as never);
  });
  after(() => close(server));

  for (const [path, { rule, headersOut }] of Object.entries(broken)) {
    const outcome = headersOut ? 'an aborted response' : 'a 500';
    it(`gives the client ${outcome} and logs the rule for ${path.slice(1).replace(/-/g, ' ')}`, async () => {
      if (headersOut) {
        await assert.rejects(supertest(server).get(path), /aborted|socket hang up|ECONNRESET/);
      } else {
        const response = await supertest(server).get(path);
        assert.equal(response.status, 500);
        assert.equal(response.text, '500 Internal Server Error\n');
      }
      const line = log.lines.find((entry) => entry.includes(`GET ${path}:`));
      assert.ok(line, `a log line for ${path} in ${JSON.stringify(log.lines)}`);
      assert.match(line, rule);
      if (!/no cursor/.test(rule.source)) assert.match(line, /NGI_ERR_VALIDATION/);
    });
  }

  it('rejects a write() after the response was complete and closed, with the rule named', async () => {
    let late: Promise<unknown> | undefined;
    const app = validator((_environ, startResponse) => {
      const write = startResponse('200 OK', TEXT);
      late = new Promise((resolve) => setTimeout(resolve, 10)).then(() => write('too late'));
      return ['on time'];
    });
    const own = await listen(toNodeHandler(app) as never);
    try {
      await supertest(own).get('/').expect(200, 'on time');
      await assert.rejects(late!, {
        code: 'NGI_ERR_VALIDATION',
        message: 'validator: write() called after the body was closed',
      });
    } finally {
      close(own);
    }
  });
});

/** A well-formed environ, as a hand-written host would build it. */
function environ(overrides: Record<string, unknown> = {}): Environ {
  const base: Record<string, unknown> = {
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: '',
    PATH_INFO: '/',
    QUERY_STRING: '',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '8080',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_PORT: '40000',
    REQUEST_URI: '/',
    HTTP_HOST: '127.0.0.1:8080',
    'ngi.version': [1, 0],
    'ngi.url_scheme': 'http',
    'ngi.input': Readable.from([]),
    'ngi.errors': errorLog(),
    'ngi.multiprocess': false,
    'ngi.multithread': false,
    'ngi.run_once': false,
    'ngi.signal': new AbortController().signal,
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[key];
    else base[key] = value;
  }
  return base as Environ;
}

/** A host's startResponse that keeps the contract: it records, and rethrows excInfo after the head. */
function hostStart(): StartResponse & { calls: string[]; headSent: boolean } {
  const start = ((status: string, _headers: Headers, excInfo?: unknown) => {
    if (excInfo !== undefined && start.headSent) throw excInfo;
    start.calls.push(status);
    return (chunk: unknown) => {
      if ((chunk as { length: number }).length > 0) start.headSent = true;
      return Promise.resolve();
    };
  }) as StartResponse & { calls: string[]; headSent: boolean };
  start.calls = [];
  start.headSent = false;
  return start;
}

type Pulled = AsyncIterableIterator<unknown> & { close(): unknown };

describe('validator: violations by the server', () => {
  const streaming: App = (_environ, startResponse) =>
    (async function* () {
      startResponse('200 OK', TEXT);
      await tick();
      yield 'one';
      yield 'two';
    })();

  const badEnvirons: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'REQUEST_METHOD is missing',
      { REQUEST_METHOD: undefined },
      /REQUEST_METHOD must be a non-empty token/,
    ],
    ['REQUEST_METHOD is empty', { REQUEST_METHOD: '' }, /REQUEST_METHOD must be a non-empty token/],
    [
      'REQUEST_METHOD is not a token',
      { REQUEST_METHOD: 'GE T' },
      /REQUEST_METHOD must be a non-empty token/,
    ],
    ['SCRIPT_NAME does not start with /', { SCRIPT_NAME: 'api' }, /SCRIPT_NAME must be ''/],
    [
      'SCRIPT_NAME ends with /',
      { SCRIPT_NAME: '/api/' },
      /SCRIPT_NAME must be '' .* not end with '\/'/,
    ],
    [
      'PATH_INFO does not start with /',
      { PATH_INFO: 'users' },
      /PATH_INFO must be '' or start with '\/'/,
    ],
    ['PATH_INFO is missing', { PATH_INFO: undefined }, /PATH_INFO must be/],
    [
      'QUERY_STRING keeps its ?',
      { QUERY_STRING: '?a=1' },
      /QUERY_STRING must be a string without the leading '\?'/,
    ],
    ['CONTENT_LENGTH is empty', { CONTENT_LENGTH: '' }, /CONTENT_LENGTH must be digits, or absent/],
    ['CONTENT_LENGTH is a number', { CONTENT_LENGTH: 10 }, /CONTENT_LENGTH must be digits/],
    [
      'CONTENT_TYPE is not a string',
      { CONTENT_TYPE: ['text/plain'] },
      /CONTENT_TYPE must be a string, or absent/,
    ],
    ['SERVER_NAME is missing', { SERVER_NAME: undefined }, /SERVER_NAME must be a string/],
    ['SERVER_PORT is a number', { SERVER_PORT: 8080 }, /SERVER_PORT must be a string \(got 8080\)/],
    [
      'SERVER_PROTOCOL is missing',
      { SERVER_PROTOCOL: undefined },
      /SERVER_PROTOCOL must be a string/,
    ],
    ['REMOTE_ADDR is missing', { REMOTE_ADDR: undefined }, /REMOTE_ADDR must be a string/],
    ['REQUEST_URI is missing', { REQUEST_URI: undefined }, /REQUEST_URI must be a string/],
    [
      'HTTP_CONTENT_TYPE is present',
      { HTTP_CONTENT_TYPE: 'text/plain' },
      /HTTP_CONTENT_TYPE must not exist/,
    ],
    [
      'HTTP_CONTENT_LENGTH is present',
      { HTTP_CONTENT_LENGTH: '3' },
      /HTTP_CONTENT_LENGTH must not exist/,
    ],
    ['an HTTP_ key is not a string', { HTTP_X_A: ['1', '2'] }, /HTTP_X_A must be a string/],
    ['ngi.version is 1.0', { 'ngi.version': '1.0' }, /ngi\.version must be \[1, 0\]/],
    ['ngi.version is [2, 0]', { 'ngi.version': [2, 0] }, /ngi\.version must be \[1, 0\]/],
    [
      'ngi.url_scheme is ftp',
      { 'ngi.url_scheme': 'ftp' },
      /ngi\.url_scheme must be 'http' or 'https'/,
    ],
    ['HTTPS is on over http', { HTTPS: 'on' }, /HTTPS must be 'on' with ngi\.url_scheme 'https'/],
    ['ngi.input is a Buffer', { 'ngi.input': Buffer.from('x') }, /ngi\.input must be a Readable/],
    ['ngi.errors has no write()', { 'ngi.errors': {} }, /ngi\.errors must have a write\(\) method/],
    [
      'ngi.multiprocess is a string',
      { 'ngi.multiprocess': 'false' },
      /ngi\.multiprocess must be a boolean/,
    ],
    [
      'ngi.multithread is missing',
      { 'ngi.multithread': undefined },
      /ngi\.multithread must be a boolean/,
    ],
    ['ngi.run_once is 0', { 'ngi.run_once': 0 }, /ngi\.run_once must be a boolean/],
    [
      'ngi.signal is an AbortController',
      { 'ngi.signal': new AbortController() },
      /ngi\.signal must be an AbortSignal/,
    ],
  ];

  for (const [what, overrides, rule] of badEnvirons) {
    it(`throws a named error, before the app runs, when ${what}`, () => {
      let ran = false;
      const seen: NgiError[] = [];
      const app = validator(
        () => {
          ran = true;
          return [];
        },
        { onViolation: (error) => seen.push(error) },
      );
      assert.throws(
        () => app(environ(overrides), hostStart()),
        (error: NgiError) => {
          assert.equal(error.code, 'NGI_ERR_VALIDATION');
          assert.match(error.message, /^validator: environ /);
          assert.match(error.message, rule);
          return true;
        },
      );
      assert.equal(ran, false);
      assert.equal(seen.length, 1);
    });
  }

  it('accepts an environ with CONTENT_TYPE, CONTENT_LENGTH, HTTPS and a mount point', () => {
    const app = validator((_environ, startResponse) => {
      startResponse('200 OK', []);
      return [];
    });
    const ok = environ({
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '12',
      HTTPS: 'on',
      'ngi.url_scheme': 'https',
      SCRIPT_NAME: '/api',
      PATH_INFO: '',
      QUERY_STRING: 'a=1',
    });
    (app(ok, hostStart()) as unknown as { close(): unknown }).close();
  });

  it('throws a named error when startResponse is not a function', () => {
    const app = validator(() => []);
    assert.throws(() => app(environ(), 'start' as never), {
      message: 'validator: startResponse is not a function',
    });
  });

  it('rejects a next() pulled while the previous next() is still pending', async () => {
    const body = (await validator(streaming)(environ(), hostStart())) as Pulled;
    const iterator = body[Symbol.asyncIterator]();
    const first = iterator.next();
    await assert.rejects(iterator.next(), {
      code: 'NGI_ERR_VALIDATION',
      message: 'validator: next() called while the previous next() is still pending',
    });
    assert.deepEqual(await first, { done: false, value: 'one' });
    await iterator.return!();
    body.close();
  });

  it('rejects a next() pulled after close()', async () => {
    const body = (await validator(streaming)(environ(), hostStart())) as Pulled;
    const iterator = body[Symbol.asyncIterator]();
    await iterator.return!();
    body.close();
    await assert.rejects(iterator.next(), { message: 'validator: next() called after close()' });
  });

  it('throws when a sync body is pulled after close()', () => {
    const app = validator((_environ, startResponse) => {
      startResponse('200 OK', TEXT);
      return new Set(['a', 'b']);
    });
    const body = app(environ(), hostStart()) as Iterable<unknown> & { close(): unknown };
    const iterator = body[Symbol.iterator]();
    assert.deepEqual(iterator.next(), { done: false, value: 'a' });
    body.close();
    assert.throws(() => iterator.next(), { message: 'validator: next() called after close()' });
  });

  it('throws when close() is called twice, and closes the app body only once', async () => {
    let closes = 0;
    const app = validator((_environ, startResponse) => {
      startResponse('200 OK', TEXT);
      return Object.assign(['x'], { close: () => closes++ });
    });
    const body = app(environ(), hostStart()) as unknown as { close(): unknown };
    body.close();
    assert.throws(() => body.close(), {
      code: 'NGI_ERR_VALIDATION',
      message: "validator: the body's close() called twice",
    });
    assert.equal(closes, 1);
  });

  it('reports a server that never closes the body after it ended, to onViolation', async () => {
    const seen: NgiError[] = [];
    const app = validator(streaming, { closeTimeout: 20, onViolation: (e) => seen.push(e) });
    const body = (await app(environ(), hostStart())) as Pulled;
    const chunks: unknown[] = [];
    // A host that iterates with for-await: no return() after the end, and it forgets close().
    for await (const chunk of body) chunks.push(chunk);
    assert.deepEqual(chunks, ['one', 'two']);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.deepEqual(
      seen.map((error) => error.message),
      ["validator: the server did not call the body's close() within 20 ms of the end"],
    );
  });

  it('writes the never-closed violation to ngi.errors when there is no onViolation', async () => {
    const env = environ();
    const app = validator(
      (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return ['a', 'b'];
      },
      { closeTimeout: 20 },
    );
    const body = app(env, hostStart()) as string[];
    assert.deepEqual([...body], ['a', 'b']);
    await new Promise((resolve) => setTimeout(resolve, 60));
    const lines = (env['ngi.errors'] as ReturnType<typeof errorLog>).lines;
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /NGI_ERR_VALIDATION GET \/: .*did not call the body's close\(\) within 20 ms/,
    );
  });

  it('reports a server that never closes the body after the client went away', async () => {
    const seen: NgiError[] = [];
    const controller = new AbortController();
    const app = validator(streaming, { closeTimeout: 20, onViolation: (e) => seen.push(e) });
    const body = (await app(environ({ 'ngi.signal': controller.signal }), hostStart())) as Pulled;
    await body[Symbol.asyncIterator]().next();
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(seen.length, 1);
    assert.match(seen[0]!.message, /did not call the body's close\(\)/);
  });

  it('reports nothing when the server closes the body in time', async () => {
    const seen: NgiError[] = [];
    const app = validator(streaming, { closeTimeout: 20, onViolation: (e) => seen.push(e) });
    const body = (await app(environ(), hostStart())) as Pulled;
    for await (const chunk of body) assert.equal(typeof chunk, 'string');
    body.close();
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.deepEqual(seen, []);
  });

  it('throws at a server whose startResponse accepts excInfo after the head was sent', async () => {
    const lenient: StartResponse = () => () => Promise.resolve();
    const app = validator((_environ, startResponse) =>
      (function* () {
        startResponse('200 OK', TEXT);
        yield 'half a page';
        startResponse('500 Internal Server Error', TEXT, new Error('failed mid-page'));
        yield 'error page';
      })(),
    );
    const body = app(environ(), lenient) as Iterable<unknown>;
    const iterator = body[Symbol.iterator]();
    assert.deepEqual(iterator.next(), { done: false, value: 'half a page' });
    assert.throws(() => iterator.next(), {
      message:
        'validator: startResponse with excInfo after the head was sent returned instead of rethrowing excInfo',
    });
  });

  it('passes excInfo through when a correct server rethrows it after the head', () => {
    const start = hostStart();
    const failure = new Error('failed mid-page');
    const app = validator((_environ, startResponse) =>
      (function* () {
        const write = startResponse('200 OK', TEXT);
        void write('half a page');
        startResponse('500 Internal Server Error', TEXT, failure);
        yield 'an error page that cannot be sent';
      })(),
    );
    const iterator = (app(environ(), start) as Iterable<unknown>)[Symbol.iterator]();
    assert.throws(
      () => iterator.next(),
      (error) => error === failure,
    );
  });

  it('throws at a server whose startResponse returns no write function', () => {
    const app = validator((_environ, startResponse) => {
      startResponse('200 OK', TEXT);
      return [];
    });
    assert.throws(() => app(environ(), (() => undefined) as never), {
      message: 'validator: startResponse returned no write function',
    });
  });

  it('rejects a write() when the server write returns no promise', async () => {
    const app = validator(async (_environ, startResponse) => {
      await startResponse('200 OK', TEXT)('x');
      return [];
    });
    await assert.rejects(Promise.resolve(app(environ(), (() => () => true) as never)), {
      message: 'validator: write() did not return a promise',
    });
  });

  it('rejects a write() made after the body ended but before the server closed it', async () => {
    let write: ((chunk: string) => Promise<void>) | undefined;
    const app = validator((_environ, startResponse) =>
      (async function* () {
        write = startResponse('200 OK', TEXT);
        yield* [];
      })(),
    );
    const body = (await app(environ(), hostStart())) as Pulled;
    assert.deepEqual(await body[Symbol.asyncIterator]().next(), { done: true, value: undefined });
    await assert.rejects(write!('late'), {
      message: 'validator: write() called after the body ended',
    });
    body.close();
  });

  it('leaves backpressure to the server: the app is pulled one chunk per next()', async () => {
    let produced = 0;
    const app = validator((_environ, startResponse) =>
      (function* () {
        startResponse('200 OK', TEXT);
        for (let i = 0; i < 5; i++) {
          produced++;
          yield String(i);
        }
      })(),
    );
    const body = app(environ(), hostStart()) as Iterable<unknown> & { close(): unknown };
    const iterator = body[Symbol.iterator]();
    iterator.next();
    iterator.next();
    assert.equal(produced, 2);
    iterator.return!();
    body.close();
  });
});

describe('validator: status lines and header sets', () => {
  const tokenChar = fc.constantFrom(
    ..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
  );
  const valueChar = fc.oneof(
    fc.constantFrom('\t', ' '),
    fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
    fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
  );
  const reserved =
    /^(?:connection|keep-alive|transfer-encoding|upgrade|te|trailer|proxy-.*|status|content-length)$/i;
  const name = fc
    .string({ unit: tokenChar, minLength: 1, maxLength: 20 })
    .filter((n) => !reserved.test(n));
  const value = fc.string({ unit: valueChar, maxLength: 40 });
  const headers = fc.array(fc.tuple(name, value), { maxLength: 8 });
  const status = fc
    .tuple(
      fc.integer({ min: 200, max: 599 }),
      fc.string({ unit: valueChar, minLength: 1, maxLength: 30 }),
    )
    .map(([code, reason]) => `${code} ${reason}`);

  /** Runs one startResponse through the validator on a correct host; returns what it threw. */
  function attempt(statusLine: string, pairs: Headers): unknown {
    const app = validator((_environ, startResponse) => {
      startResponse(statusLine, pairs);
      return [];
    });
    try {
      (app(environ(), hostStart()) as unknown as { close(): unknown }).close();
      return undefined;
    } catch (error) {
      return error;
    }
  }

  it('accepts every well-formed status line and header set', () => {
    fc.assert(
      fc.property(status, headers, (line, pairs) => {
        assert.equal(attempt(line, pairs), undefined);
      }),
    );
  });

  it('rejects any of them with a CR, LF or NUL put in a name, a value or the reason', () => {
    const bad = fc.constantFrom('\r', '\n', '\0', '\r\n');
    fc.assert(
      fc.property(
        status,
        headers.filter((pairs) => pairs.length > 0),
        fc.constantFrom('name', 'value', 'status'),
        fc.nat(),
        fc.nat(),
        bad,
        (line, pairs, where, index, at, char) => {
          const insert = (text: string) =>
            text.slice(0, at % (text.length + 1)) + char + text.slice(at % (text.length + 1));
          const copy = pairs.map(([n, v]) => [n, v] as [string, string]);
          const target = copy[index % copy.length]!;
          if (where === 'name') target[0] = insert(target[0]);
          if (where === 'value') target[1] = insert(target[1]);
          const statusLine = where === 'status' ? line.slice(0, 4) + insert(line.slice(4)) : line;
          const error = attempt(statusLine, copy) as NgiError | undefined;
          assert.ok(error instanceof NgiError, `accepted ${JSON.stringify([statusLine, copy])}`);
          assert.equal(error.code, 'NGI_ERR_VALIDATION');
          assert.match(error.message, /is not a token|holds CR, LF or NUL|is not "NNN reason"/);
        },
      ),
    );
  });
});

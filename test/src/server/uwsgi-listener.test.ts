import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ExchangeOutcome } from '../../../src/server/listener.js';
import { defineApp, type App, type Environ } from '../../../src/index.js';
import { createUwsgiServer, type UwsgiServerOptions } from '../../../src/server/uwsgi-listener.js';
import { encodeUwsgiPacket } from '../../../src/protocol/uwsgi-packet.js';
import { parseHttpResponse, sendRaw } from '../../helpers/uwsgi-client.js';
import { captures, decodeCaptured } from '../../helpers/vectors.js';

/** The CGI part of the environ the contract promises for these vars, in wire order. */
function expectedEnviron(vars: Array<[string, string]>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, raw] of vars) {
    const value = decodeCaptured(raw);
    env[key] =
      env[key] === undefined ? value : env[key] + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
  }
  if (env.CONTENT_LENGTH === '') delete env.CONTENT_LENGTH;
  if (env.CONTENT_TYPE === '') delete env.CONTENT_TYPE;
  // The content headers nginx repeats as HTTP_* are CONTENT_* only (DESIGN.md's environ).
  delete env.HTTP_CONTENT_LENGTH;
  delete env.HTTP_CONTENT_TYPE;
  env.SCRIPT_NAME ??= '';
  return env;
}

interface Seen {
  cgi: Record<string, string>;
  /** String keys in the environ's own order. */
  keys: string[];
  scheme: string;
  length: number;
  sha256: string;
}

/** Answers with the string keys of the environ and a digest of the body it read. */
const echo: App = defineApp(async (environ: Environ, startResponse) => {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of environ['ngi.input']) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  const cgi: Record<string, string> = {};
  for (const [key, value] of Object.entries(environ))
    if (typeof value === 'string') cgi[key] = value;
  const seen: Seen = {
    cgi,
    keys: Object.keys(cgi),
    scheme: environ['ngi.url_scheme'],
    length,
    sha256: hash.digest('hex'),
  };
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(seen)];
});

const quiet = { write: () => true };

async function listen(
  app: App,
  options: UwsgiServerOptions = {},
): Promise<{ server: Server; port: number }> {
  const server = createUwsgiServer(app, { errors: quiet, ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function request(vars: Array<[string, string]>, body = ''): Buffer {
  const method = vars.some(([k]) => k === 'REQUEST_METHOD')
    ? []
    : [['REQUEST_METHOD', 'GET'] as [string, string]];
  return Buffer.concat([
    encodeUwsgiPacket([...method, ['REQUEST_URI', '/'], ['PATH_INFO', '/'], ...vars]),
    Buffer.from(body),
  ]);
}

const header = (headers: Array<[string, string]>, name: string) =>
  headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

describe("uwsgi listener: every captured packet from nginx and uWSGI's router", () => {
  let server: Server;
  let port: number;
  // A 1 s socket timeout makes the 411 grace for a router's missing chunked body 0.5 s.
  before(
    async () => ({ server, port } = await listen(echo, { bufferSize: 65535, socketTimeout: 1 })),
  );
  after(() => server.close());

  for (const { name, bin, json } of captures()) {
    for (const split of [false, true]) {
      it(`${name}${split ? ', the packet in tiny writes' : ''}: environ, body and response as the contract says`, async () => {
        // Split, the packet goes a byte at a time (64 at a time for the 60 KB ones) and the
        // body (up to 100 KB) in one write.
        const packetSize = 4 + json.datasize;
        const { bytes, closed } = await sendRaw(port, bin, {
          split: split ? (packetSize > 10_000 ? 64 : 1) : 0,
          splitUntil: packetSize,
          timeoutMs: 15_000,
        });
        assert.ok(closed, 'the server closes the connection after the response');
        const { statusLine, headers, body } = parseHttpResponse(bytes);
        assert.ok(!header(headers, 'transfer-encoding').length, 'never chunked');
        assert.deepEqual(header(headers, 'connection'), ['close']);
        if (json.body.framing.startsWith('chunked-but-no-body')) {
          assert.equal(statusLine, 'HTTP/1.1 411 Length Required');
          assert.match(body.toString(), /chunked body arrived with no CONTENT_LENGTH/);
          return;
        }
        assert.equal(statusLine, 'HTTP/1.1 200 OK');
        const length = header(headers, 'content-length')[0];
        if (json.vars.some(([k, v]) => k === 'REQUEST_METHOD' && v === 'HEAD')) {
          assert.equal(body.length, 0, 'HEAD: no body');
          assert.ok(Number(length) > 0, 'HEAD: the length a GET would have');
          return; // what the app saw is in the body HEAD does not carry: the GET twin checks it
        }
        assert.equal(Number(length), body.length);
        const seen = JSON.parse(body.toString()) as Seen;
        const expected = expectedEnviron(json.vars);
        for (const [key, value] of Object.entries(expected))
          assert.equal(seen.cgi[key], value, key);
        const wireOrder = Object.keys(expected).filter((k) => k !== 'SCRIPT_NAME');
        assert.deepEqual(
          seen.keys.filter((k) => wireOrder.includes(k)),
          wireOrder,
          'vars in wire order',
        );
        assert.equal(seen.scheme, expected.HTTPS === 'on' ? 'https' : 'http');
        assert.equal(seen.length, json.body.decoded_length);
        assert.equal(seen.sha256, json.body.decoded_sha256);
      });
    }
  }
});

describe('uwsgi listener: the environ built from vars', () => {
  let server: Server;
  let port: number;
  before(async () => ({ server, port } = await listen(echo)));
  after(() => server.close());
  const seen = async (vars: Array<[string, string]>) => {
    const { bytes } = await sendRaw(port, request(vars));
    return JSON.parse(parseHttpResponse(bytes).body.toString()) as Seen;
  };

  it('PATH_INFO and REQUEST_URI as sent, SCRIPT_NAME "" by default', async () => {
    const { bytes } = await sendRaw(
      port,
      Buffer.concat([
        encodeUwsgiPacket([
          ['REQUEST_METHOD', 'GET'],
          ['REQUEST_URI', '/a%2Fb/../c?q=%20'],
          ['PATH_INFO', '/a/c'],
          ['QUERY_STRING', 'q=%20'],
        ]),
      ]),
    );
    const { cgi } = JSON.parse(parseHttpResponse(bytes).body.toString()) as Seen;
    assert.equal(cgi.PATH_INFO, '/a/c');
    assert.equal(cgi.REQUEST_URI, '/a%2Fb/../c?q=%20');
    assert.equal(cgi.QUERY_STRING, 'q=%20');
    assert.equal(cgi.SCRIPT_NAME, '');
  });

  it('duplicate vars are joined with ", ", Cookie with "; "', async () => {
    const { cgi } = await seen([
      ['HTTP_COOKIE', 'a=1'],
      ['HTTP_X_DUP', 'one'],
      ['HTTP_COOKIE', 'b=2'],
      ['HTTP_X_DUP', 'two'],
    ]);
    assert.equal(cgi.HTTP_COOKIE, 'a=1; b=2');
    assert.equal(cgi.HTTP_X_DUP, 'one, two');
  });

  it('empty CONTENT_TYPE and CONTENT_LENGTH are absent', async () => {
    const { cgi } = await seen([
      ['CONTENT_TYPE', ''],
      ['CONTENT_LENGTH', ''],
    ]);
    assert.ok(!('CONTENT_TYPE' in cgi) && !('CONTENT_LENGTH' in cgi));
  });

  for (const [name, vars] of [
    ['HTTPS=on', [['HTTPS', 'on']]],
    ['UWSGI_SCHEME=https', [['UWSGI_SCHEME', 'https']]],
    ['REQUEST_SCHEME=https', [['REQUEST_SCHEME', 'https']]],
  ] as Array<[string, Array<[string, string]>]>) {
    it(`${name} makes the scheme https and sets HTTPS=on`, async () => {
      const { cgi, scheme } = await seen(vars);
      assert.equal(scheme, 'https');
      assert.equal(cgi.HTTPS, 'on');
    });
  }

  it('plain http: no HTTPS key, even when a peer sends HTTPS=off', async () => {
    const { cgi, scheme } = await seen([['HTTPS', 'off']]);
    assert.equal(scheme, 'http');
    assert.ok(!('HTTPS' in cgi));
  });

  it('vars cannot replace ngi keys or reach Object.prototype', async () => {
    let environ: Environ | undefined;
    const { server: s, port: p } = await listen((env, startResponse) => {
      environ = env;
      startResponse('200 OK', []);
      return [];
    });
    try {
      await sendRaw(
        p,
        request([
          ['ngi.url_scheme', 'gopher'],
          ['__proto__', 'x'],
          ['constructor', 'y'],
          ['toString', 'z'],
        ]),
      );
    } finally {
      s.close();
    }
    assert.equal(environ!['ngi.url_scheme'], 'http');
    assert.equal(Object.getPrototypeOf(environ), Object.prototype);
    assert.equal(typeof environ!.toString, 'function');
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });
});

describe('uwsgi listener: responses shaped for nginx', () => {
  const servers: Server[] = [];
  const logs: string[] = [];
  after(() => servers.forEach((s) => s.close()));
  const run = async (app: App, vars: Array<[string, string]> = [], body = '') => {
    const { server, port } = await listen(app, { errors: { write: (l: string) => logs.push(l) } });
    servers.push(server);
    return sendRaw(port, request(vars, body));
  };

  it('a single-chunk body gets a Content-Length and a real status line', async () => {
    const { bytes, closed } = await run((_e, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['hello'];
    });
    assert.ok(closed);
    assert.equal(
      bytes.toString(),
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
    );
  });

  it('a streamed body of unknown length is close-delimited: no Content-Length, no chunking', async () => {
    const { bytes, closed } = await run((_e, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'one ';
        yield 'two';
      })();
    });
    const { headers, body } = parseHttpResponse(bytes);
    assert.ok(closed);
    assert.equal(body.toString(), 'one two');
    assert.ok(!headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n)));
  });

  it('HEAD gets the head and no body', async () => {
    const { bytes } = await run(
      (_e, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['not sent'];
      },
      [['REQUEST_METHOD', 'HEAD']],
    );
    const { statusLine, headers, body } = parseHttpResponse(bytes);
    assert.equal(statusLine, 'HTTP/1.1 200 OK');
    assert.deepEqual(header(headers, 'content-length'), ['8']);
    assert.equal(body.length, 0);
  });

  for (const status of ['204 No Content', '304 Not Modified']) {
    it(`${status}: no body and no Content-Length added`, async () => {
      const { bytes } = await run((_e, startResponse) => {
        startResponse(status, [['ETag', '"x"']]);
        return ['ignored'];
      });
      const { statusLine, headers, body } = parseHttpResponse(bytes);
      assert.equal(statusLine, `HTTP/1.1 ${status}`);
      assert.deepEqual(header(headers, 'content-length'), []);
      assert.equal(body.length, 0);
    });
  }

  it('several Set-Cookie headers survive in order', async () => {
    const { bytes } = await run((_e, startResponse) => {
      startResponse('200 OK', [
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['Set-Cookie', 'c=3'],
      ]);
      return [];
    });
    assert.deepEqual(header(parseHttpResponse(bytes).headers, 'set-cookie'), ['a=1', 'b=2', 'c=3']);
  });

  it("hop-by-hop headers from the app are dropped; the listener's Connection: close stays", async () => {
    const { bytes } = await run((_e, startResponse) => {
      startResponse('200 OK', [
        ['Transfer-Encoding', 'chunked'],
        ['Connection', 'keep-alive'],
        ['Keep-Alive', 'timeout=5'],
      ]);
      return ['x'];
    });
    const { headers } = parseHttpResponse(bytes);
    assert.deepEqual(header(headers, 'transfer-encoding'), []);
    assert.deepEqual(header(headers, 'keep-alive'), []);
    assert.deepEqual(header(headers, 'connection'), ['close']);
  });

  it('a status without a reason gets the standard one', async () => {
    const { bytes } = await run((_e, startResponse) => {
      startResponse('404', []);
      return [];
    });
    assert.equal(parseHttpResponse(bytes).statusLine, 'HTTP/1.1 404 Not Found');
  });

  it('an app status of 1xx is never sent: a logged 500 instead', async () => {
    const { bytes } = await run((_e, startResponse) => {
      startResponse('103 Early Hints', [['Link', '</a.css>; rel=preload']]);
      return ['body'];
    });
    const { statusLine, body } = parseHttpResponse(bytes);
    assert.equal(statusLine, 'HTTP/1.1 500 Internal Server Error');
    assert.equal(body.toString(), '500 Internal Server Error\n');
    assert.doesNotMatch(bytes.toString(), /103/);
    assert.ok(logs.some((l) => l.includes('cannot be 1xx')));
  });

  it('an app that throws before responding gets a 500', async () => {
    const { bytes } = await run(() => {
      throw new Error('kaput');
    });
    assert.equal(parseHttpResponse(bytes).statusLine, 'HTTP/1.1 500 Internal Server Error');
    assert.ok(logs.some((l) => l.includes('kaput')));
  });

  it('a body that fails after the head: the connection is cut, shorter than its Content-Length', async () => {
    const { bytes, closed } = await run((_e, startResponse) => {
      startResponse('200 OK', [['Content-Length', '10']]);
      return (async function* () {
        yield 'abc';
        throw new Error('midway');
      })();
    });
    assert.ok(closed);
    const { headers, body } = parseHttpResponse(bytes);
    assert.deepEqual(header(headers, 'content-length'), ['10']);
    assert.equal(body.toString(), 'abc');
  });

  it('a header value beyond ASCII is written as Latin-1 whatever the body type', async () => {
    for (const chunk of ['é', Buffer.from('é')]) {
      const { bytes } = await run((_e, startResponse) => {
        startResponse('200 OK', [['X-Name', 'café']]);
        return [chunk];
      });
      const at = bytes.indexOf('X-Name: ');
      assert.deepEqual([...bytes.subarray(at + 8, at + 12)], [0x63, 0x61, 0x66, 0xe9]);
      assert.equal(parseHttpResponse(bytes).body.toString(), 'é');
    }
  });

  it('a header value Node refuses (a control character, a character above U+00FF) is a 500, as on the Node hosts, and never reaches nginx', async () => {
    for (const value of ['a\x01b', 'price in €']) {
      const { bytes, closed } = await run((_e, startResponse) => {
        startResponse('200 OK', [['X-Bad', value]]);
        return ['never sent'];
      });
      assert.ok(closed);
      const { statusLine, body } = parseHttpResponse(bytes);
      assert.equal(statusLine, 'HTTP/1.1 500 Internal Server Error');
      assert.doesNotMatch(bytes.toString('latin1'), /X-Bad|never sent/);
      assert.equal(body.toString(), '500 Internal Server Error\n');
    }
    assert.ok(logs.some((line) => line.includes('NGI_ERR_INVALID_HEADER')));
  });

  it('no 100 Continue is sent, even when the request expects it', async () => {
    const { bytes } = await run(
      async (environ, startResponse) => {
        for await (const _ of environ['ngi.input']);
        startResponse('200 OK', []);
        return ['done'];
      },
      [
        ['REQUEST_METHOD', 'POST'],
        ['CONTENT_LENGTH', '4'],
        ['HTTP_EXPECT', '100-continue'],
      ],
      'data',
    );
    assert.match(bytes.toString(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(bytes.toString(), /100 Continue/);
  });

  it('ngi.input applies backpressure: an app that does not read holds little in memory', async () => {
    const size = 4 * 1024 * 1024;
    const payload = Buffer.alloc(size, 'z');
    let held = -1;
    const { bytes } = await run(
      async (environ, startResponse) => {
        const input = environ['ngi.input'];
        // Ample time for 4 MB on loopback, were the socket not paused.
        for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        held = input.readableLength;
        const hash = createHash('sha256');
        for await (const chunk of input) hash.update(chunk as Buffer);
        startResponse('200 OK', []);
        return [hash.digest('hex')];
      },
      [
        ['REQUEST_METHOD', 'POST'],
        ['CONTENT_LENGTH', String(size)],
      ],
      payload.toString(),
    );
    assert.ok(held >= 0 && held < 512 * 1024, `held ${held} bytes`);
    assert.equal(
      parseHttpResponse(bytes).body.toString(),
      createHash('sha256').update(payload).digest('hex'),
    );
  });

  it('a body the app never reads is drained after the response, so the peer sees a clean close', async () => {
    // Closing with unread bytes would reset the connection; the 30 s socket timeout is far
    // beyond the client's deadline, so only the drain lets this connection end in time.
    const { bytes, closed } = await run(
      (_e, startResponse) => {
        startResponse('401 Unauthorized', []);
        return ['no'];
      },
      [
        ['REQUEST_METHOD', 'POST'],
        ['CONTENT_LENGTH', String(2 * 1024 * 1024)],
      ],
      'x'.repeat(2 * 1024 * 1024),
    );
    assert.ok(closed);
    assert.equal(parseHttpResponse(bytes).statusLine, 'HTTP/1.1 401 Unauthorized');
    assert.equal(parseHttpResponse(bytes).body.toString(), 'no');
  });

  it('a client gone mid-response: ngi.signal fires and the body is finished', async () => {
    let finished!: () => void;
    const cleanedUp = new Promise<void>((resolve) => (finished = resolve));
    let signal: AbortSignal | undefined;
    const { server, port } = await listen((environ, startResponse) => {
      signal = environ['ngi.signal'];
      startResponse('200 OK', []);
      return (async function* () {
        try {
          for (;;) {
            yield 'tick '.repeat(1000);
            await new Promise((resolve) => setImmediate(resolve));
          }
        } finally {
          finished();
        }
      })();
    });
    servers.push(server);
    const socket = connect(port, '127.0.0.1', () => socket.write(request([])));
    socket.on('error', () => {});
    socket.once('data', () => socket.destroy());
    await cleanedUp;
    assert.equal(signal?.aborted, true);
  });

  it('onExchange is called once per request and its callback once, with the outcome', async () => {
    const outcomes: ExchangeOutcome[] = [];
    let exchanges = 0;
    let reported!: () => void;
    const done = new Promise<void>((resolve) => (reported = resolve));
    const { server, port } = await listen(
      (_e, startResponse) => {
        startResponse('201 Created', []);
        return ['12345'];
      },
      {
        onExchange: () => {
          exchanges++;
          return (outcome) => {
            outcomes.push(outcome);
            reported();
          };
        },
      },
    );
    servers.push(server);
    await sendRaw(port, request([]));
    await done; // the server learns of the close after the client does
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(exchanges, 1);
    assert.deepEqual(outcomes, [{ status: 201, bytes: 5, complete: true }]);
  });
});

describe('uwsgi listener: bad input is refused cleanly', () => {
  const logs: string[] = [];
  let server: Server;
  let port: number;
  let calls = 0;
  let inputError: Error | undefined;
  before(async () => {
    ({ server, port } = await listen(
      async (environ, startResponse) => {
        calls++;
        try {
          for await (const _ of environ['ngi.input']);
        } catch (error) {
          inputError = error as Error;
          throw error;
        }
        startResponse('200 OK', []);
        return ['ok'];
      },
      { socketTimeout: 0.5, limitPost: 1000, errors: { write: (line: string) => logs.push(line) } },
    ));
  });
  after(() => server.close());
  const logged = (text: string) => logs.some((l) => l.includes(text));

  const packet = encodeUwsgiPacket([
    ['REQUEST_METHOD', 'GET'],
    ['PATH_INFO', '/'],
  ]);

  it('a truncated header: logged, connection closed, app never called', async () => {
    const before = calls;
    const { bytes, closed } = await sendRaw(port, packet.subarray(0, 2), { halfClose: true });
    assert.ok(closed);
    assert.equal(bytes.length, 0);
    assert.equal(calls, before);
    assert.ok(logged('NGI_ERR_BAD_PACKET'));
  });

  it('a connection closed without a byte (a TCP health check) is closed quietly', async () => {
    const before = logs.length;
    const { bytes, closed } = await sendRaw(port, Buffer.alloc(0), { halfClose: true });
    assert.ok(closed);
    assert.equal(bytes.length, 0);
    assert.equal(logs.length, before);
  });

  it('a vars block over the buffer size is refused before it is buffered', async () => {
    const big = encodeUwsgiPacket([['HTTP_X_BIG', 'x'.repeat(5000)]]);
    const { bytes, closed } = await sendRaw(port, big.subarray(0, 10));
    assert.ok(closed);
    assert.equal(bytes.length, 0);
    assert.ok(logged('larger than the buffer size (4096)'));
  });

  it('a key length running past the block is refused', async () => {
    const broken = Buffer.from(packet);
    broken.writeUInt16LE(60000, 4);
    const { bytes, closed } = await sendRaw(port, broken);
    assert.ok(closed);
    assert.equal(bytes.length, 0);
    assert.ok(logged('runs past the vars block'));
  });

  it('a value length running past the block is refused', async () => {
    const broken = Buffer.from(packet);
    broken.writeUInt16LE(500, 4 + 2 + 'REQUEST_METHOD'.length);
    const { closed } = await sendRaw(port, broken);
    assert.ok(closed);
    assert.ok(logged('value of 500 bytes for "REQUEST_METHOD"'));
  });

  it('modifier1 other than 0 is refused', async () => {
    const { bytes, closed } = await sendRaw(port, encodeUwsgiPacket([['A', 'b']], 17));
    assert.ok(closed);
    assert.equal(bytes.length, 0);
    assert.ok(logged('modifier1 17 is not supported'));
  });

  for (const [name, length] of [
    ['non-numeric', '12abc'],
    ['negative', '-1'],
    ['padded', ' 4'],
  ]) {
    it(`a ${name} CONTENT_LENGTH gets 400 and a log line; the app is not called`, async () => {
      const before = calls;
      const { bytes, closed } = await sendRaw(
        port,
        request([
          ['REQUEST_METHOD', 'POST'],
          ['CONTENT_LENGTH', length!],
        ]),
      );
      assert.ok(closed);
      assert.match(bytes.toString(), /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.equal(calls, before);
      assert.ok(logged(`CONTENT_LENGTH ${JSON.stringify(length)} is not a number`));
    });
  }

  it('two CONTENT_LENGTH vars get 400', async () => {
    const { bytes } = await sendRaw(
      port,
      request(
        [
          ['REQUEST_METHOD', 'POST'],
          ['CONTENT_LENGTH', '2'],
          ['CONTENT_LENGTH', '4'],
        ],
        'data',
      ),
    );
    assert.match(bytes.toString(), /^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('a body over limitPost gets 413 before it is read', async () => {
    const before = calls;
    const { bytes, closed } = await sendRaw(
      port,
      request([
        ['REQUEST_METHOD', 'POST'],
        ['CONTENT_LENGTH', '5000'],
      ]),
    );
    assert.ok(closed);
    assert.match(bytes.toString(), /^HTTP\/1\.1 413 /);
    assert.equal(calls, before);
  });

  it("a chunked body (uWSGI router's --http-chunked-input) over limitPost gets 413", async () => {
    const big = Buffer.alloc(1500, 'x');
    const chunked = Buffer.concat([
      Buffer.from(`${big.length.toString(16)}\r\n`),
      big,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    const { bytes } = await sendRaw(
      port,
      Buffer.concat([
        request([
          ['REQUEST_METHOD', 'POST'],
          ['HTTP_TRANSFER_ENCODING', 'chunked'],
        ]),
        chunked,
      ]),
    );
    assert.match(bytes.toString(), /^HTTP\/1\.1 413 /);
  });

  it('chunked with no CONTENT_LENGTH and no data (uWSGI router default) gets a clear 411', async () => {
    const { bytes, closed } = await sendRaw(
      port,
      request([
        ['REQUEST_METHOD', 'POST'],
        ['HTTP_TRANSFER_ENCODING', 'chunked'],
      ]),
    );
    assert.ok(closed);
    const { statusLine, body } = parseHttpResponse(bytes);
    assert.equal(statusLine, 'HTTP/1.1 411 Length Required');
    assert.match(body.toString(), /no CONTENT_LENGTH/);
  });

  it('a peer that closes mid-body: the app sees the failure, no response is sent', async () => {
    inputError = undefined;
    const { bytes, closed } = await sendRaw(
      port,
      request(
        [
          ['REQUEST_METHOD', 'POST'],
          ['CONTENT_LENGTH', '100'],
        ],
        'short',
      ),
      { halfClose: true },
    );
    assert.ok(closed);
    assert.equal(bytes.length, 0, 'the response to a broken request is aborted');
    await new Promise((resolve) => setImmediate(resolve));
    assert.match(String(inputError), /95 bytes short of CONTENT_LENGTH/);
    assert.ok(logged('95 bytes short of CONTENT_LENGTH'));
  });

  it('a peer that stalls mid-body is dropped after the socket timeout', async () => {
    const { closed } = await sendRaw(
      port,
      request(
        [
          ['REQUEST_METHOD', 'POST'],
          ['CONTENT_LENGTH', '100'],
        ],
        'short',
      ),
      { timeoutMs: 4000 },
    );
    assert.ok(closed, 'closed by the server within the timeout');
    assert.ok(logged('the peer stopped sending or reading'));
  });

  it('a client that sends nothing is dropped after the socket timeout', async () => {
    const { closed } = await sendRaw(port, Buffer.alloc(0), { timeoutMs: 4000 });
    assert.ok(closed, 'closed by the server within the timeout');
    assert.ok(logged('no complete request within the socket timeout'));
  });

  it('a packet that stops halfway is dropped after the socket timeout', async () => {
    const { closed } = await sendRaw(port, packet.subarray(0, 7), { timeoutMs: 4000 });
    assert.ok(closed);
  });

  it('bufferSize outside 4..65535 is refused when the server is made', () => {
    assert.throws(() => createUwsgiServer(echo, { bufferSize: 70000 }), RangeError);
    assert.throws(() => createUwsgiServer(echo, { bufferSize: 2 }), RangeError);
  });
});

describe('uwsgi listener: a peer that never closes its side', () => {
  let server: Server;
  let port: number;
  // An app that answers at once: its response ends while the packet is being handled.
  before(
    async () =>
      ({ server, port } = await listen(
        (_environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return ['hello'];
        },
        { socketTimeout: 0.5 },
      )),
  );
  after(() => server.close());

  const connections = () =>
    new Promise<number>((resolve, reject) =>
      server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    );

  it('is dropped after the socket timeout once it has the whole response, not held for ever', async () => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(request([]));
    await ended; // the response is whole; this peer keeps its side open and sends nothing
    assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nhello$/);
    const deadline = Date.now() + 5000;
    while ((await connections()) > 0) {
      assert.ok(Date.now() < deadline, 'the server still holds the connection 5 s later');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    socket.destroy();
    await gone;
  });
});

describe('uwsgi listener: arbitrary and mutated byte streams (fast-check)', () => {
  // Short timeouts so a stream that stalls is dropped quickly; every run is bounded.
  const SOCKET_TIMEOUT_S = 0.2;
  const CLIENT_DEADLINE_MS = 5000;
  let server: Server;
  let port: number;
  before(async () => ({ server, port } = await listen(echo, { socketTimeout: SOCKET_TIMEOUT_S })));
  after(() => server.close());

  /** After the run the server still answers a well-formed request. */
  async function stillServes(): Promise<void> {
    const { bytes } = await sendRaw(port, request([]));
    assert.match(bytes.toString(), /^HTTP\/1\.1 200 OK\r\n/);
  }

  const small = captures()
    .filter(({ bin }) => bin.length < 4000)
    .map(({ bin }) => bin);

  it('arbitrary bytes: every connection ends (answered or closed) within the timeout', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 300 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 7 }),
        async (raw, halfClose, split) => {
          const { closed } = await sendRaw(port, Buffer.from(raw), {
            halfClose,
            split,
            timeoutMs: CLIENT_DEADLINE_MS,
          });
          assert.ok(closed, 'the server ended the connection');
        },
      ),
      { numRuns: 40 },
    );
    await stillServes();
  });

  it('mutated captures (flipped bytes, cuts, junk appended): never a crash, never a hang', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...small),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.uint8Array({ maxLength: 40 }),
        fc.boolean(),
        async (capture, flips, cut, junk, halfClose) => {
          let bytes = Buffer.from(capture);
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          if (cut !== undefined) bytes = bytes.subarray(0, cut % (bytes.length + 1));
          bytes = Buffer.concat([bytes, junk]);
          const { closed, bytes: reply } = await sendRaw(port, bytes, {
            halfClose,
            timeoutMs: CLIENT_DEADLINE_MS,
          });
          assert.ok(closed, 'the server ended the connection');
          if (reply.length > 0) {
            const text = reply.toString('latin1');
            assert.match(text, /^HTTP\/1\.1 [2-5]\d\d [^\r\n]*\r\n/, 'a real status line');
            assert.doesNotMatch(text.slice(0, text.indexOf('\r\n\r\n')), /Transfer-Encoding/i);
          }
        },
      ),
      { numRuns: 80 },
    );
    await stillServes();
  });
});

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import type { App, Environ } from '../../../src/core/types.js';
import {
  RawClient,
  parseResponse,
  rawRequest,
  serveApp,
  type Served,
} from '../../helpers/raw-http.js';

/** Reads a whole Readable, bounded by the test runner's timeout. */
async function readAll(input: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** What a type is, the way a user would check it. */
function kind(value: unknown): string {
  if (value instanceof AbortSignal) return 'AbortSignal';
  if (value instanceof Readable) return 'Readable';
  if (Array.isArray(value)) return `array ${JSON.stringify(value)}`;
  if (value !== null && typeof value === 'object') {
    return typeof (value as { write?: unknown }).write === 'function' ? 'writable' : 'object';
  }
  return typeof value;
}

/** Answers with every string key of the environ, the type of each ngi.* key, and the body. */
const echo: App = async (environ, startResponse) => {
  const strings: Record<string, string> = {};
  const ngi: Record<string, string> = {};
  for (const key of Object.keys(environ)) {
    const value = environ[key];
    if (key.startsWith('ngi.')) ngi[key] = kind(value);
    else if (typeof value === 'string') strings[key] = value;
  }
  const body = await readAll(environ['ngi.input']);
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [
    JSON.stringify({
      strings,
      ngi,
      body,
      multiprocess: environ['ngi.multiprocess'],
      multithread: environ['ngi.multithread'],
      runOnce: environ['ngi.run_once'],
      scheme: environ['ngi.url_scheme'],
      aborted: environ['ngi.signal'].aborted,
    }),
  ];
};

interface Echoed {
  strings: Record<string, string>;
  ngi: Record<string, string>;
  body: string;
  multiprocess: boolean;
  multithread: boolean;
  runOnce: boolean;
  scheme: string;
  aborted: boolean;
}

/** The echoed environ from a raw response body (Latin-1 text of UTF-8 JSON). */
function fromJson(body: string): Echoed {
  return JSON.parse(Buffer.from(body, 'latin1').toString('utf8')) as Echoed;
}

describe('the environ of a Node request', () => {
  let served: Served;
  before(async () => {
    served = await serveApp(echo);
  });
  after(() => served.close());

  /** Sends raw request bytes on a connection that closes after the response. */
  async function raw(head: string, body = ''): Promise<Echoed> {
    const text = await rawRequest(served.port, `${head}\r\nConnection: close\r\n\r\n${body}`);
    const response = parseResponse(text);
    assert.equal(response.status, 200, text);
    return fromJson(response.body);
  }

  it('has the CGI keys of a plain GET', async () => {
    const client = await RawClient.connect(served.port);
    const clientPort = client.socket.localPort;
    client.send(`GET /hello?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n`);
    const { strings } = fromJson(parseResponse(await client.end()).body);
    assert.deepEqual(strings, {
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '',
      PATH_INFO: '/hello',
      QUERY_STRING: 'x=1',
      SERVER_NAME: 'example.com',
      SERVER_PORT: '8080',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: String(clientPort),
      REQUEST_URI: '/hello?x=1',
      HTTP_HOST: 'example.com:8080',
      HTTP_CONNECTION: 'close',
    });
  });

  it('keeps REQUEST_URI and QUERY_STRING raw and percent-decodes PATH_INFO as UTF-8', async () => {
    const { strings } = await raw(
      'GET /a%2Fb/caf%C3%A9/%E6%97%A5?q=%C3%BC&x=a+b&flag HTTP/1.1\r\nHost: h',
    );
    assert.equal(strings.REQUEST_URI, '/a%2Fb/caf%C3%A9/%E6%97%A5?q=%C3%BC&x=a+b&flag');
    assert.equal(strings.PATH_INFO, '/a/b/café/日');
    assert.equal(strings.QUERY_STRING, 'q=%C3%BC&x=a+b&flag');
  });

  it('falls back to Latin-1 for a path that is not UTF-8 (%FF)', async () => {
    const { strings } = await raw('GET /bytes/%FF%FE HTTP/1.1\r\nHost: h');
    assert.equal(strings.PATH_INFO, '/bytes/\u00ff\u00fe');
    assert.equal(strings.REQUEST_URI, '/bytes/%FF%FE');
  });

  it('gives an absolute-form target (as proxies are sent) as path and query only', async () => {
    const { strings } = await raw('GET http://example.com/a%20b?x=1 HTTP/1.1\r\nHost: example.com');
    assert.equal(strings.REQUEST_URI, '/a%20b?x=1');
    assert.equal(strings.PATH_INFO, '/a b');
    assert.equal(strings.QUERY_STRING, 'x=1');
  });

  it('has an empty QUERY_STRING without a query, and after a bare "?"', async () => {
    assert.equal((await raw('GET /x HTTP/1.1\r\nHost: h')).strings.QUERY_STRING, '');
    assert.equal((await raw('GET /x? HTTP/1.1\r\nHost: h')).strings.QUERY_STRING, '');
  });

  it('turns headers into HTTP_* keys, repeats joined with ", " and Cookie with "; "', async () => {
    const { strings } = await raw(
      [
        'GET / HTTP/1.1',
        'Host: h',
        'X-Forwarded-For: 10.0.0.1',
        'x-forwarded-for: 10.0.0.2',
        'Accept: text/html',
        'Accept: application/json',
        'Cookie: a=1',
        'Cookie: b=2',
        'X-MiXeD-CaSe: kept',
      ].join('\r\n'),
    );
    assert.equal(strings.HTTP_X_FORWARDED_FOR, '10.0.0.1, 10.0.0.2');
    assert.equal(strings.HTTP_ACCEPT, 'text/html, application/json');
    assert.equal(strings.HTTP_COOKIE, 'a=1; b=2');
    assert.equal(strings.HTTP_X_MIXED_CASE, 'kept');
  });

  it('drops header names with "_", so X_Forwarded_For cannot pose as X-Forwarded-For', async () => {
    const { strings } = await raw(
      'GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 10.0.0.1',
    );
    assert.equal(strings.HTTP_X_FORWARDED_FOR, '10.0.0.1');
  });

  it('has no CONTENT_LENGTH or CONTENT_TYPE when the request has none, and an empty ngi.input', async () => {
    const echoed = await raw('GET / HTTP/1.1\r\nHost: h');
    assert.equal('CONTENT_LENGTH' in echoed.strings, false);
    assert.equal('CONTENT_TYPE' in echoed.strings, false);
    assert.equal(echoed.body, '');
  });

  it('has CONTENT_LENGTH and CONTENT_TYPE (not HTTP_*) for a body, readable from ngi.input', async () => {
    const response = await supertest(served.server)
      .post('/upload')
      .set('Content-Type', 'text/plain; charset=utf-8')
      .send('héllo body')
      .expect(200);
    const { strings, body } = response.body as Echoed;
    assert.equal(strings.CONTENT_LENGTH, String(Buffer.byteLength('héllo body')));
    assert.equal(strings.CONTENT_TYPE, 'text/plain; charset=utf-8');
    assert.equal(strings.HTTP_CONTENT_LENGTH, undefined);
    assert.equal(strings.HTTP_CONTENT_TYPE, undefined);
    assert.equal(body, 'héllo body');
  });

  it('has no CONTENT_LENGTH for a chunked body, which ngi.input still reads whole', async () => {
    const { strings, body } = await raw(
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked',
      '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    assert.equal('CONTENT_LENGTH' in strings, false);
    assert.equal(strings.HTTP_TRANSFER_ENCODING, 'chunked');
    assert.equal(body, 'hello world');
  });

  it('takes SERVER_NAME and SERVER_PORT from an IPv6 Host', async () => {
    const { strings } = await raw('GET / HTTP/1.1\r\nHost: [::1]:9000');
    assert.equal(strings.SERVER_NAME, '[::1]');
    assert.equal(strings.SERVER_PORT, '9000');
  });

  it('takes SERVER_PORT from the listening socket when the Host has no port', async () => {
    const named = await raw('GET / HTTP/1.1\r\nHost: example.com');
    assert.equal(named.strings.SERVER_NAME, 'example.com');
    assert.equal(named.strings.SERVER_PORT, String(served.port));
    const ipv6 = await raw('GET / HTTP/1.1\r\nHost: [::1]');
    assert.equal(ipv6.strings.SERVER_NAME, '[::1]');
    assert.equal(ipv6.strings.SERVER_PORT, String(served.port));
  });

  it('takes SERVER_NAME from the local address when there is no Host (HTTP/1.0)', async () => {
    const { strings } = await raw('GET / HTTP/1.0');
    assert.equal(strings.SERVER_NAME, '127.0.0.1');
    assert.equal(strings.SERVER_PORT, String(served.port));
    assert.equal(strings.SERVER_PROTOCOL, 'HTTP/1.0');
  });

  it('has every ngi.* key, each with its type', async () => {
    const echoed = (await supertest(served.server).get('/').expect(200)).body as Echoed;
    assert.deepEqual(echoed.ngi, {
      'ngi.version': 'array [1,0]',
      'ngi.url_scheme': 'string',
      'ngi.input': 'Readable',
      'ngi.errors': 'writable',
      'ngi.multiprocess': 'boolean',
      'ngi.multithread': 'boolean',
      'ngi.run_once': 'boolean',
      'ngi.signal': 'AbortSignal',
      // Extensions this host supports for an HTTP/1.1 client on a real connection.
      'ngi.early_hints': 'function',
      'ngi.trailers': 'object',
    });
    assert.equal(echoed.scheme, 'http');
    assert.equal(echoed.strings.HTTPS, undefined);
    assert.equal(echoed.multiprocess, false);
    assert.equal(echoed.multithread, false);
    assert.equal(echoed.runOnce, false);
    assert.equal(echoed.aborted, false);
  });

  it('says ngi.multiprocess when the host does', async () => {
    const multi = await serveApp(echo, { multiprocess: true });
    try {
      const echoed = (await supertest(multi.server).get('/').expect(200)).body as Echoed;
      assert.equal(echoed.multiprocess, true);
    } finally {
      multi.close();
    }
  });

  it('writes ngi.errors lines to the host log', async () => {
    const logging = await serveApp((environ, startResponse) => {
      environ['ngi.errors'].write('app says hi\n');
      startResponse('204 No Content', []);
      return [];
    });
    try {
      await supertest(logging.server).get('/').expect(204);
      assert.deepEqual(logging.log.lines, ['app says hi\n']);
    } finally {
      logging.close();
    }
  });
});

describe('ngi.signal', () => {
  it('fires when the client disconnects before the response', async () => {
    let seen: Environ | undefined;
    let fired!: (reason: unknown) => void;
    const abort = new Promise<unknown>((resolve) => (fired = resolve));
    const served = await serveApp(async (environ, startResponse) => {
      seen = environ;
      const signal = environ['ngi.signal'];
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      fired(signal.reason);
      startResponse('200 OK', []);
      return ['too late'];
    });
    try {
      const client = await RawClient.connect(served.port);
      client.send('GET /wait HTTP/1.1\r\nHost: h\r\n\r\n');
      while (seen === undefined) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(seen['ngi.signal'].aborted, false, 'not before the client leaves');
      client.destroy();
      const reason = await abort;
      assert.equal((reason as { code?: string }).code, 'NGI_ERR_CLIENT_GONE');
      assert.deepEqual(served.log.lines, [], 'a client leaving is no app error');
    } finally {
      served.close();
    }
  });

  it('stays quiet for a request that completes', async () => {
    let signal: AbortSignal | undefined;
    const served = await serveApp((environ, startResponse) => {
      signal = environ['ngi.signal'];
      startResponse('200 OK', []);
      return ['done'];
    });
    try {
      await supertest(served.server).get('/').expect(200, 'done');
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(signal!.aborted, false);
    } finally {
      served.close();
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defineApp, type App, type Environ } from '../../src/index.js';
import { createUwsgiServer, type UwsgiServerOptions } from '../../src/uwsgi-server.js';
import { encodeUwsgiPacket } from '../../src/uwsgi.js';
import { parseHttpResponse, sendRaw } from '../helpers/uwsgi-client.js';

const VECTORS = join(import.meta.dirname, '../../../shared/vectors');

interface Capture {
  file: string;
  vars: Array<[string, string]>;
  body: {
    length: number;
    sha256: string;
    framing: string;
    decoded_length: number;
    decoded_sha256: string;
  };
}

function captures(): Array<{ name: string; bin: Buffer; json: Capture }> {
  const out = [];
  for (const dir of ['nginx', 'uwsgi-router', 'uwsgi-router-opts']) {
    for (const file of readdirSync(join(VECTORS, dir)).filter((f) => f.endsWith('.json'))) {
      const json = JSON.parse(readFileSync(join(VECTORS, dir, file), 'utf8')) as Capture;
      out.push({
        name: file.replace(/\.json$/, ''),
        bin: readFileSync(join(VECTORS, json.file)),
        json,
      });
    }
  }
  return out;
}

/** A capture's "hex:…" value as the server must decode it: UTF-8 when valid, else Latin-1. */
function decodeCaptured(value: string): string {
  if (!value.startsWith('hex:')) return value;
  const bytes = Buffer.from(value.slice(4), 'hex');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** The CGI part of the environ the contract promises for these vars. */
function expectedEnviron(vars: Array<[string, string]>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, raw] of vars) {
    const value = decodeCaptured(raw);
    env[key] =
      env[key] === undefined ? value : env[key] + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
  }
  if (env.CONTENT_LENGTH === '') delete env.CONTENT_LENGTH;
  if (env.CONTENT_TYPE === '') delete env.CONTENT_TYPE;
  env.SCRIPT_NAME ??= '';
  return env;
}

interface Seen {
  cgi: Record<string, string>;
  length: number;
  sha256: string;
}
let lastSeen: Seen | undefined;

/** Records the string keys of the environ and a digest of the body, and answers with them. */
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
  lastSeen = { cgi, length, sha256: hash.digest('hex') };
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(lastSeen)];
});

async function listen(
  app: App,
  options: UwsgiServerOptions = {},
): Promise<{ server: Server; port: number }> {
  const server = createUwsgiServer(app, { errors: { write: () => true }, ...options });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe("uwsgi listener: every captured packet from nginx and uWSGI's router", () => {
  let server: Server;
  let port: number;
  before(async () => ({ server, port } = await listen(echo, { bufferSize: 65535 })));
  after(() => server.close());

  for (const { name, bin, json } of captures()) {
    for (const split of [0, 1]) {
      // one byte at a time is slow for 100 KB bodies: the packet is what the split tests
      const data = split && bin.length > 20000 ? null : bin;
      if (data === null) continue;
      it(`${name}${split ? ', a byte at a time' : ''}: environ, body and response as the contract says`, async () => {
        const { bytes, closed } = await sendRaw(port, data, { split });
        assert.ok(closed, 'the server closes the connection after the response');
        const { statusLine, headers, body } = parseHttpResponse(bytes);
        if (json.body.framing.startsWith('chunked-but-no-body')) {
          assert.equal(statusLine, 'HTTP/1.1 411 Length Required');
          return;
        }
        assert.equal(statusLine, 'HTTP/1.1 200 OK');
        assert.ok(!headers.some(([n]) => /^transfer-encoding$/i.test(n)), 'never chunked');
        const length = headers.find(([n]) => n === 'Content-Length')?.[1];
        const seen = lastSeen!;
        if (json.vars.some(([k, v]) => k === 'REQUEST_METHOD' && v === 'HEAD')) {
          assert.equal(body.length, 0, 'HEAD: no body');
          assert.ok(Number(length) > 0, 'HEAD: the length a GET would have');
        } else {
          assert.equal(Number(length), body.length);
          assert.deepEqual(JSON.parse(body.toString()), seen);
        }
        const expected = expectedEnviron(json.vars);
        for (const [key, value] of Object.entries(expected))
          assert.equal(seen.cgi[key], value, key);
        assert.equal(seen.length, json.body.decoded_length);
        assert.equal(seen.sha256, json.body.decoded_sha256);
      });
    }
  }
});

describe('uwsgi listener: responses shaped for nginx', () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => s.close()));
  const run = async (app: App, vars: Array<[string, string]> = [], extra = Buffer.alloc(0)) => {
    const { server, port } = await listen(app);
    servers.push(server);
    const method = vars.find(([k]) => k === 'REQUEST_METHOD')
      ? []
      : [['REQUEST_METHOD', 'GET'] as [string, string]];
    const packet = encodeUwsgiPacket([
      ...method,
      ['REQUEST_URI', '/'],
      ['PATH_INFO', '/'],
      ...vars,
    ]);
    return sendRaw(port, Buffer.concat([packet, extra]));
  };

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
    assert.equal(headers.find(([n]) => n === 'Content-Length')?.[1], '8');
    assert.equal(body.length, 0);
  });

  it('several Set-Cookie headers survive in order', async () => {
    const { bytes } = await run((_e, startResponse) => {
      startResponse('200 OK', [
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['Set-Cookie', 'c=3'],
      ]);
      return [];
    });
    const cookies = parseHttpResponse(bytes)
      .headers.filter(([n]) => n === 'Set-Cookie')
      .map(([, v]) => v);
    assert.deepEqual(cookies, ['a=1', 'b=2', 'c=3']);
  });

  it('a status without a reason gets the standard one', async () => {
    const { bytes } = await run((_e, startResponse) => {
      startResponse('404', []);
      return [];
    });
    assert.equal(parseHttpResponse(bytes).statusLine, 'HTTP/1.1 404 Not Found');
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
      Buffer.from('data'),
    );
    assert.match(bytes.toString(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(bytes.toString(), /100 Continue/);
  });
});

describe('uwsgi listener: bad input is refused cleanly', () => {
  const logs: string[] = [];
  let server: Server;
  let port: number;
  let calls = 0;
  before(async () => {
    ({ server, port } = await listen(
      (_e, startResponse) => {
        calls++;
        startResponse('200 OK', []);
        return ['ok'];
      },
      { socketTimeout: 1, errors: { write: (line: string) => logs.push(line) } },
    ));
  });
  after(() => server.close());

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
    assert.ok(logs.some((l) => l.includes('NGI_ERR_BAD_PACKET')));
  });

  it('a vars block over the buffer size is refused before it is buffered', async () => {
    const big = encodeUwsgiPacket([['HTTP_X_BIG', 'x'.repeat(5000)]]);
    const { bytes, closed } = await sendRaw(port, big.subarray(0, 10));
    assert.ok(closed);
    assert.equal(bytes.length, 0);
    assert.ok(logs.some((l) => l.includes('larger than the buffer size')));
  });

  it('a key length running past the block is refused', async () => {
    const broken = Buffer.from(packet);
    broken.writeUInt16LE(60000, 4);
    const { closed } = await sendRaw(port, broken);
    assert.ok(closed);
    assert.ok(logs.some((l) => l.includes('runs past the vars block')));
  });

  it('a non-numeric CONTENT_LENGTH gets 400', async () => {
    const p = encodeUwsgiPacket([
      ['REQUEST_METHOD', 'POST'],
      ['CONTENT_LENGTH', '12abc'],
    ]);
    const { bytes } = await sendRaw(port, p);
    assert.match(bytes.toString(), /^HTTP\/1\.1 400 Bad Request/);
  });

  it('a body shorter than CONTENT_LENGTH: the app sees the failure, the connection closes', async () => {
    const p = encodeUwsgiPacket([
      ['REQUEST_METHOD', 'POST'],
      ['CONTENT_LENGTH', '100'],
    ]);
    const { closed } = await sendRaw(port, Buffer.concat([p, Buffer.from('short')]), {
      halfClose: true,
    });
    assert.ok(closed);
  });

  it('a client that sends nothing is dropped after the socket timeout', async () => {
    const { closed } = await sendRaw(port, Buffer.alloc(0), { timeoutMs: 4000 });
    assert.ok(closed, 'closed by the server within the timeout');
    assert.ok(logs.some((l) => l.includes('no complete request within the socket timeout')));
  });
});

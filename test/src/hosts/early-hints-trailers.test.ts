// Early hints (103) and response trailers on ngi's HTTP listener, read off the wire and with
// Node's own client; hosts that cannot send them leave the keys out.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { toFetch } from '../../../adapters/fetch.js';
import { fromNodeHandler, toNodeHandler } from '../../../adapters/node.js';
import { defineApp } from '../../../src/core/define-app.js';
import { validator } from '../../../src/middleware/validator.js';
import { serve, type ServerHandle } from '../../../src/server/serve.js';
import type { App, Environ } from '../../../src/core/types.js';
import { RawClient } from '../../helpers/raw-http.js';
import { logSink } from '../../helpers/servers.js';

const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
});

async function start(app: App, uwsgi = false): Promise<ServerHandle> {
  const handle = await serve(app, {
    http: 0,
    ...(uwsgi ? { uwsgi: 0 } : {}),
    logFormat: 'off',
    errors: logSink(),
  });
  handles.push(handle);
  return handle;
}

/** Preloads a stylesheet, then answers with a body whose digest goes in a trailer. */
const app = defineApp(async (environ: Environ, startResponse) => {
  const hints = environ['ngi.early_hints'];
  const trailers = environ['ngi.trailers'];
  if (hints) {
    await hints([
      ['Link', '</style.css>; rel=preload; as=style'],
      ['Link', '</app.js>; rel=preload; as=script'],
    ]);
  }
  trailers?.announce(['Server-Timing', 'X-Digest']);
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return (async function* () {
    yield 'part one, ';
    yield 'part two';
    trailers?.send([
      ['Server-Timing', 'db;dur=53'],
      ['X-Digest', 'abc'],
    ]);
  })();
});

describe('early hints and trailers on the Node listener', () => {
  it('sends a 103 with every Link, then the response, then the trailers (on the wire)', async () => {
    const handle = await start(app);
    const client = await RawClient.connect(handle.http!.port);
    client.send('GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const text = await client.end();
    assert.match(
      text,
      /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/style\.css>; rel=preload; as=style, <\/app\.js>; rel=preload; as=script\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
    assert.match(text, /\r\nTrailer: server-timing, x-digest\r\n/i);
    assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/);
    assert.match(text, /0\r\nServer-Timing: db;dur=53\r\nX-Digest: abc\r\n\r\n$/);
  });

  it("Node's client sees the 103 as 'information' and the trailers on the response", async () => {
    const handle = await start(app);
    const result = await new Promise<{
      info: number[];
      link: unknown;
      body: string;
      trailers: unknown;
    }>((resolve, reject) => {
      const info: number[] = [];
      let link: unknown;
      const req = request({ host: '127.0.0.1', port: handle.http!.port, path: '/' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ info, link, body, trailers: res.trailers }));
      });
      req.on('information', (message) => {
        info.push(message.statusCode);
        link = message.headers.link;
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(result.info, [103]);
    assert.match(String(result.link), /<\/style\.css>; rel=preload; as=style/);
    assert.equal(result.body, 'part one, part two');
    assert.deepEqual(result.trailers, { 'server-timing': 'db;dur=53', 'x-digest': 'abc' });
  });

  it('an array body with trailers is chunked (no computed Content-Length)', async () => {
    const handle = await start(
      defineApp((environ, startResponse) => {
        environ['ngi.trailers']!.announce(['X-Digest']);
        environ['ngi.trailers']!.send([['X-Digest', 'x']]);
        startResponse('200 OK', []);
        return ['whole'];
      }),
    );
    const client = await RawClient.connect(handle.http!.port);
    client.send('GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const text = await client.end();
    assert.doesNotMatch(text, /Content-Length/i);
    assert.match(text, /5\r\nwhole\r\n0\r\nX-Digest: x\r\n\r\n$/);
  });

  it('mistakes are clear errors: hints after the head, no Link, unannounced or forbidden trailers, trailers with Content-Length', async () => {
    const codes: string[] = [];
    const note = (error: unknown) => codes.push((error as { code: string }).code);
    const handle = await start(
      defineApp(async (environ, startResponse) => {
        const hints = environ['ngi.early_hints']!;
        const trailers = environ['ngi.trailers']!;
        await hints([['X-Other', '1']]).catch(note);
        try {
          trailers.announce(['Content-Length']);
        } catch (error) {
          note(error);
        }
        try {
          trailers.send([['X-A', '1']]);
        } catch (error) {
          note(error);
        }
        trailers.announce(['X-A']);
        try {
          trailers.send([['X-B', '1']]);
        } catch (error) {
          note(error);
        }
        const write = startResponse('200 OK', []);
        await write('head is out');
        await hints([['Link', '</a>; rel=preload']]).catch(note);
        try {
          trailers.announce(['X-C']);
        } catch (error) {
          note(error);
        }
        return [` ${codes.join(' ')}`];
      }),
    );
    const res = await fetch(`http://127.0.0.1:${handle.http!.port}/`);
    assert.equal(
      await res.text(),
      'head is out NGI_ERR_VALIDATION NGI_ERR_INVALID_HEADER NGI_ERR_VALIDATION NGI_ERR_VALIDATION NGI_ERR_VALIDATION NGI_ERR_VALIDATION',
    );
    const declared = await start(
      defineApp((environ, startResponse) => {
        environ['ngi.trailers']!.announce(['X-A']);
        startResponse('200 OK', [['Content-Length', '2']]);
        return ['ok'];
      }),
    );
    assert.equal((await fetch(`http://127.0.0.1:${declared.http!.port}/`)).status, 500);
  });

  it('an HTTP/1.0 client is offered neither; nor is a request over uwsgi', async () => {
    const probe = defineApp((environ, startResponse) => {
      startResponse('200 OK', []);
      return [`${'ngi.early_hints' in environ} ${'ngi.trailers' in environ}`];
    });
    const handle = await start(probe, true);
    const client = await RawClient.connect(handle.http!.port);
    client.send('GET / HTTP/1.0\r\n\r\n');
    assert.match(await client.end(), /\r\n\r\nfalse false$/);
    assert.equal(await (await fetch(`http://127.0.0.1:${handle.http!.port}/`)).text(), 'true true');
    const { encodeUwsgiPacket } = await import('../../../src/protocol/uwsgi-packet.js');
    const uwsgi = await RawClient.connect(handle.uwsgi!.port);
    uwsgi.socket.write(
      encodeUwsgiPacket([
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/'],
        ['PATH_INFO', '/'],
        ['QUERY_STRING', ''],
        ['SERVER_PROTOCOL', 'HTTP/1.1'],
        ['SERVER_NAME', 't'],
        ['SERVER_PORT', '80'],
        ['REMOTE_ADDR', '127.0.0.1'],
        ['REMOTE_PORT', '1'],
      ]),
    );
    assert.match(await uwsgi.end(), /\r\n\r\nfalse false$/);
  });

  it('a Fetch host offers neither: the app falls back and answers the same body', async () => {
    const res = await toFetch(app)(new Request('http://t/'));
    assert.equal(await res.text(), 'part one, part two');
    assert.equal(res.headers.get('trailer'), null);
  });

  it('validator(): the rules hold for a good app and a late hint is a violation', async () => {
    const violations: string[] = [];
    const onViolation = (error: Error) => violations.push(error.message);
    const good = await start(validator(app, { onViolation }));
    const res = await fetch(`http://127.0.0.1:${good.http!.port}/`);
    assert.equal(await res.text(), 'part one, part two');
    assert.deepEqual(violations, []);
    const late = await start(
      validator(
        defineApp(async (environ, startResponse) => {
          const write = startResponse('200 OK', []);
          await write('x');
          await environ['ngi.early_hints']!([['Link', '</a>; rel=preload']]).catch(() => {});
          environ['ngi.trailers']!.announce(['X-A']);
          return [];
        }),
        { onViolation },
      ),
    );
    await (await fetch(`http://127.0.0.1:${late.http!.port}/`)).text().catch(() => '');
    assert.match(violations.join('\n'), /early hints after the response head went out/);
    assert.match(violations.join('\n'), /trailers announced after the response head went out/);
  });

  it("a Node handler on ngi's emulation: res.writeEarlyHints and addTrailers go through the host, or are dropped where it has none", async () => {
    const handler = fromNodeHandler((_req, res) => {
      res.writeEarlyHints({ link: '</a.css>; rel=preload; as=style' });
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('Trailer', 'X-T');
      res.write('body');
      res.addTrailers({ 'X-T': '1' });
      res.end();
    });
    // Wrapping startResponse, as any middleware does, puts the handler on the emulation.
    const emulated: App = (environ, startResponse) =>
      handler(environ, (status, headers, excInfo) => startResponse(status, headers, excInfo));
    const handle = await start(emulated, true);
    const client = await RawClient.connect(handle.http!.port);
    client.send('GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const text = await client.end();
    assert.match(
      text,
      /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload; as=style\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
    assert.match(text, /4\r\nbody\r\n0\r\nX-T: 1\r\n\r\n$/);
    const { encodeUwsgiPacket } = await import('../../../src/protocol/uwsgi-packet.js');
    const uwsgi = await RawClient.connect(handle.uwsgi!.port);
    uwsgi.socket.write(
      encodeUwsgiPacket([
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/'],
        ['PATH_INFO', '/'],
        ['QUERY_STRING', ''],
        ['SERVER_PROTOCOL', 'HTTP/1.1'],
        ['SERVER_NAME', 't'],
        ['SERVER_PORT', '80'],
        ['REMOTE_ADDR', '127.0.0.1'],
        ['REMOTE_PORT', '1'],
      ]),
    );
    const plain = await uwsgi.end();
    assert.match(plain, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(plain, /\r\n\r\nbody$/);
  });

  it("over HTTP/2 (node:http2's compat response, as toNodeHandler gets it): a 103 HEADERS frame, then trailers", async () => {
    const server = createHttp2Server(toNodeHandler(app) as never).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const stream = client.request({ ':path': '/' });
      const informational: Array<{ status: unknown; link: unknown }> = [];
      stream.on('headers', (headers) =>
        informational.push({ status: headers[':status'], link: headers.link }),
      );
      // Every listener up front: the frames may all arrive in one read.
      const responded = once(stream, 'response') as Promise<[Record<string, unknown>]>;
      const trailed = once(stream, 'trailers') as Promise<[Record<string, unknown>]>;
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (body += chunk));
      const ended = once(stream, 'end');
      const [[response], [fields]] = await Promise.all([responded, trailed, ended]);
      assert.equal(informational.length, 1);
      assert.equal(informational[0]!.status, 103);
      assert.match(String(informational[0]!.link), /<\/style\.css>; rel=preload; as=style/);
      assert.equal(response[':status'], 200);
      assert.equal(response.trailer, 'server-timing, x-digest');
      assert.equal(body, 'part one, part two');
      assert.equal(fields['server-timing'], 'db;dur=53');
      assert.equal(fields['x-digest'], 'abc');
    } finally {
      client.close();
      server.close();
    }
  });
});

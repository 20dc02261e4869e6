import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  UnspecProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { defineApp } from '../../../src/core/define-app.js';
import { serve, type ServerHandle } from '../../../src/server/serve.js';
import { logSink } from '../../helpers/servers.js';
import { makeCertificate, type CertificateFiles } from '../../helpers/tls.js';

const run = promisify(execFile);

const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
});

const app = defineApp((environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return [`${environ.REMOTE_ADDR} ${environ.REMOTE_PORT}`];
});

const v1 = (src: string, port: number) =>
  Buffer.from(
    new V1ProxyProtocol(INETProtocol.TCP4, new Peer(src, port), new Peer('127.0.0.1', 80)).build(),
  );
const v2 = (address: IPv4ProxyAddress | IPv6ProxyAddress | UnspecProxyAddress, local = false) =>
  Buffer.from(
    new V2ProxyProtocol(
      local ? Command.LOCAL : Command.PROXY,
      TransportProtocol.STREAM,
      address,
    ).build(),
  );
const GET = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');

/** Writes `bytes` on a fresh connection and collects the answer until the server closes. */
function exchange(socket: Socket, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', () => {});
    socket.write(bytes);
  });
}
const bodyOf = (reply: string) => reply.slice(reply.indexOf('\r\n\r\n') + 4);

describe('--proxy-protocol', () => {
  it('takes the client from a v1 line and from a v2 header (IPv4, IPv6), header and request in one write', async () => {
    const handle = await serve(app, { http: 0, proxyProtocol: ['http'], logFormat: 'off' });
    handles.push(handle);
    const port = handle.http!.port;
    const ask = (header: Buffer) =>
      exchange(connect(port, '127.0.0.1'), Buffer.concat([header, GET])).then(bodyOf);
    assert.equal(await ask(v1('203.0.113.7', 50000)), '203.0.113.7 50000');
    assert.equal(
      await ask(
        v2(
          new IPv4ProxyAddress(
            IPv4Address.createFrom([198, 51, 100, 4]),
            4711,
            IPv4Address.createFrom([127, 0, 0, 1]),
            80,
          ),
        ),
      ),
      '198.51.100.4 4711',
    );
    const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    assert.equal(
      await ask(
        v2(
          new IPv6ProxyAddress(
            IPv6Address.createFrom(v6),
            443,
            IPv6Address.createWithEmptyAddress(),
            80,
          ),
        ),
      ),
      '2001:db8::1 443',
    );
    // LOCAL: the balancer's own health check, about itself.
    assert.match(await ask(v2(new UnspecProxyAddress(), true)), /^127\.0\.0\.1 \d+$/);
  });

  it('reads a header that arrives a byte at a time', async () => {
    const handle = await serve(app, { http: 0, proxyProtocol: ['http'], logFormat: 'off' });
    handles.push(handle);
    const socket = connect(handle.http!.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const header = v1('192.0.2.200', 1234);
    const reply = new Promise<string>((resolve) => {
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
    });
    for (const byte of header) {
      socket.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    socket.write(GET);
    assert.equal(bodyOf(await reply), '192.0.2.200 1234');
  });

  it('refuses a connection without a header (logged), and a malformed one', async () => {
    const errors = logSink();
    const handle = await serve(app, { http: 0, proxyProtocol: ['http'], logFormat: 'off', errors });
    handles.push(handle);
    const port = handle.http!.port;
    assert.equal(await exchange(connect(port, '127.0.0.1'), GET), '');
    assert.match(errors.lines.join(''), /did not start with a PROXY header/);
    assert.equal(
      await exchange(connect(port, '127.0.0.1'), Buffer.from('PROXY TCP4 nonsense\r\n')),
      '',
    );
    assert.match(errors.lines.join(''), /malformed PROXY v1 line/);
    // The listener still serves.
    const ok = await exchange(connect(port, '127.0.0.1'), Buffer.concat([v1('192.0.2.1', 9), GET]));
    assert.equal(bodyOf(ok), '192.0.2.1 9');
  });

  it('feeds --trust-proxy', async () => {
    const handle = await serve(
      defineApp((environ, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return [environ.REMOTE_ADDR];
      }),
      { http: 0, proxyProtocol: ['http'], trustProxy: ['10.0.0.0/8'], logFormat: 'off' },
    );
    handles.push(handle);
    // The balancer says 10.0.0.5 (a trusted proxy) connected; its X-Forwarded-For is believed.
    const request = Buffer.from(
      'GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.80\r\nConnection: close\r\n\r\n',
    );
    const reply = await exchange(
      connect(handle.http!.port, '127.0.0.1'),
      Buffer.concat([v1('10.0.0.5', 5000), request]),
    );
    assert.equal(bodyOf(reply), '203.0.113.80');
  });
});

describe('--proxy-protocol on the https listener: the header before the TLS handshake', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ngi-proxy-tls-'));
  const certs: CertificateFiles = makeCertificate(dir, 'proxied');
  const ca = readFileSync(certs.cert, 'utf8');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const protocolApp = defineApp((environ, startResponse) => {
    startResponse('200 OK', [['Content-Type', 'text/plain']]);
    return [`${environ.REMOTE_ADDR} ${environ.REMOTE_PORT} ${environ.SERVER_PROTOCOL}`];
  });
  async function start(errors = logSink()): Promise<number> {
    const handle = await serve(protocolApp, {
      https: 0,
      cert: certs.cert,
      key: certs.key,
      proxyProtocol: ['https'],
      logFormat: 'off',
      errors,
    });
    handles.push(handle);
    return handle.https!.port;
  }

  /**
   * A TCP connection that starts with `header`, then TLS over it (as HAProxy's `send-proxy`
   * towards a TLS backend).
   */
  async function proxiedTls(port: number, header: Buffer, alpn: string): Promise<TLSSocket> {
    const tcp = connect(port, '127.0.0.1');
    tcp.on('error', () => {});
    await once(tcp, 'connect');
    // Written out before TLS takes the socket's handle, whose writes would overtake it.
    await new Promise((resolve) => tcp.write(header, resolve));
    return tlsConnect({ socket: tcp, servername: 'localhost', ca, ALPNProtocols: [alpn] });
  }

  /** One HTTP/2 GET over a proxied connection, with Node's http2 client. */
  async function h2Get(port: number, header: Buffer): Promise<string> {
    const tls = await proxiedTls(port, header, 'h2');
    const session = http2Connect(`https://localhost:${port}`, { createConnection: () => tls });
    try {
      const stream = session.request({ ':path': '/' });
      stream.setEncoding('utf8');
      let body = '';
      for await (const chunk of stream) body += chunk as string;
      return body;
    } finally {
      session.close();
    }
  }

  /** One HTTP/1.1 GET over TLS over a proxied connection, read until the server closes. */
  async function http1Get(port: number, header: Buffer): Promise<string> {
    const socket = await proxiedTls(port, header, 'http/1.1');
    await once(socket, 'secureConnect');
    return bodyOf(await exchange(socket as unknown as Socket, GET));
  }

  /**
   * TLS over a connection whose first TCP write carries `header` and the ClientHello together
   * (one segment on loopback), as a proxy that buffers its output sends them.
   */
  async function headerWithClientHello(port: number, header: Buffer): Promise<TLSSocket> {
    const tcp = connect(port, '127.0.0.1');
    tcp.setNoDelay(true);
    tcp.on('error', () => {});
    await once(tcp, 'connect');
    let first = true;
    const carrier = new Duplex({
      write(chunk: Buffer, _encoding, done) {
        tcp.write(first ? Buffer.concat([header, chunk]) : chunk, done);
        first = false;
      },
      read() {},
      final(done) {
        tcp.end();
        done();
      },
    });
    tcp.on('data', (chunk) => carrier.push(chunk));
    tcp.on('end', () => carrier.push(null));
    tcp.on('close', () => carrier.destroy());
    return tlsConnect({
      socket: carrier,
      servername: 'localhost',
      ca,
      ALPNProtocols: ['http/1.1'],
    });
  }

  // A server that loses the ClientHello never answers: bounded, so that fails instead of hangs.
  it(
    'reads the header and the ClientHello that follows it from one read',
    { timeout: 10_000 },
    async () => {
      const port = await start();
      const socket = await headerWithClientHello(port, v1('203.0.113.77', 47001));
      await once(socket, 'secureConnect');
      const reply = await exchange(socket as unknown as Socket, GET);
      assert.equal(bodyOf(reply), '203.0.113.77 47001 HTTP/1.1');
    },
  );

  it('is refused on an https listener on a Unix socket, which gives no peer to match a header to', async () => {
    const path = join(dir, 'https.sock');
    await assert.rejects(
      serve(protocolApp, {
        https: { path },
        cert: certs.cert,
        key: certs.key,
        proxyProtocol: ['https'],
        logFormat: 'off',
      }),
      /PROXY protocol on an https listener needs a TCP port, not a Unix socket/,
    );
  });

  it('takes the client from the header for HTTP/2 (Node http2 client) and HTTP/1.1 over TLS', async () => {
    const port = await start();
    {
      assert.equal(await h2Get(port, v1('203.0.113.9', 40001)), '203.0.113.9 40001 HTTP/2.0');
      assert.equal(
        await http1Get(port, v1('198.51.100.23', 40002)),
        '198.51.100.23 40002 HTTP/1.1',
      );
    }
    const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    const header = v2(
      new IPv6ProxyAddress(
        IPv6Address.createFrom(v6),
        8443,
        IPv6Address.createWithEmptyAddress(),
        443,
      ),
    );
    assert.equal(await h2Get(port, header), '2001:db8::7 8443 HTTP/2.0');
  });

  it('serves curl --haproxy-protocol over h2 and HTTP/1.1 (a listener that refuses headerless connections)', async () => {
    const port = await start();
    for (const version of ['--http2', '--http1.1']) {
      const { stdout } = await run('curl', [
        '-sS',
        '--max-time',
        '20',
        '--haproxy-protocol',
        version,
        '--cacert',
        certs.cert,
        `https://localhost:${port}/`,
      ]);
      assert.match(
        stdout,
        new RegExp(`^127\\.0\\.0\\.1 \\d+ HTTP/${version === '--http2' ? '2\\.0' : '1\\.1'}$`),
      );
    }
  });

  it('closes a TLS connection without a header or with a malformed one, logs it, and keeps serving', async () => {
    const errors = logSink();
    const port = await start(errors);
    const bare = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca });
    const [error] = await once(bare, 'error');
    assert.match(String((error as Error).message), /socket disconnected|ECONNRESET/);
    assert.match(errors.lines.join(''), /did not start with a PROXY header/);
    const malformed = await proxiedTls(port, Buffer.from('PROXY TCP4 garbage\r\n'), 'h2');
    malformed.on('error', () => {});
    await new Promise((resolve) => malformed.once('close', resolve));
    assert.match(errors.lines.join(''), /malformed PROXY v1 line/);
    assert.equal(await h2Get(port, v1('192.0.2.44', 4444)), '192.0.2.44 4444 HTTP/2.0');
  });
});

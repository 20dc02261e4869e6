import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
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

  it('is refused on the https listener (not supported there yet), and feeds --trust-proxy', async () => {
    await assert.rejects(
      serve(app, { https: 0, proxyProtocol: ['https' as 'http'], logFormat: 'off' }),
      /not supported on the https listener/,
    );
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

import type { Server, Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import ipaddr from 'ipaddr.js';
import {
  Command,
  IPv4ProxyAddress,
  IPv6ProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { NgiError, formatError } from '../core/errors.js';
import type { ErrorStream } from '../core/types.js';

/*
 * The PROXY protocol (HAProxy's; AWS NLB, GCP and most TCP load balancers send it): one
 * header before the connection's first byte saying who the client is. A listener that
 * expects it (HAProxy's `accept-proxy`) requires it: a connection without one is refused,
 * since anyone reaching that port directly could otherwise pass for the balancer.
 */

/** v2's fixed 12-byte signature. */
const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** A v1 line is at most 107 bytes, CRLF included. */
const V1_MAX = 107;

/** Where the client of a PROXY-protocol connection is. */
interface ProxiedPeer {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

/**
 * Makes `server` read a PROXY protocol header (v1 or v2) before its own connection handling
 * runs: the socket's `remoteAddress`/`remotePort` become the client's (so REMOTE_ADDR, the
 * access log and `req.socket.remoteAddress` of a hosted framework say the client), the rest
 * of the bytes go on to the server as if nothing had been read. A missing or malformed header,
 * or none within `timeoutMs`, is logged and the connection closed. On a TLS server (`--https`)
 * the header is read on the raw TCP socket before the handshake, and the TLS socket made over
 * it reports the client too.
 *
 * @example
 * acceptProxyProtocol(createHttpServer(app), { errors }).listen(8080);
 */
export function acceptProxyProtocol<S extends Server>(
  server: S,
  options: { errors: ErrorStream; timeoutMs?: number },
): S {
  const handlers = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const timeoutMs = options.timeoutMs ?? 5000;
  const handOver = server instanceof TlsServer ? tlsHandOver(server) : undefined;
  server.on('connection', (socket: Socket) => {
    let buffered: Buffer = Buffer.alloc(0);
    const fail = (message: string): void => {
      cleanup();
      options.errors.write(
        formatError(
          new NgiError('NGI_ERR_BAD_REQUEST', message),
          `PROXY protocol from ${socket.remoteAddress ?? '?'}`,
        ),
      );
      socket.destroy();
    };
    const timer = setTimeout(() => fail(`no PROXY header within ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
    };
    const onError = (): void => cleanup();
    const onEnd = (): void => fail('connection closed before a complete PROXY header');
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      let result: { peer: ProxiedPeer | undefined; length: number } | 'more';
      try {
        result = readHeader(buffered);
      } catch (error) {
        return fail((error as Error).message);
      }
      if (result === 'more') return;
      cleanup();
      socket.pause();
      if (result.peer !== undefined) {
        handOver?.(socket, result.peer);
        pretend(socket, result.peer);
      }
      const rest = buffered.subarray(result.length);
      if (rest.length > 0) socket.unshift(rest);
      for (const handler of handlers) handler.call(server, socket);
      // node:tls reads what the socket buffered (the ClientHello, when it came with the
      // header) from it while paused, then reads the handle itself; resumed, the buffered
      // bytes would flow out to no listener.
      if (handOver === undefined) socket.resume();
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
  });
  return server;
}

/**
 * The header at the start of `bytes`: its length and the client it names (none for v2 LOCAL,
 * a balancer's own health check, or v1 UNKNOWN), `'more'` while incomplete; throws when the
 * bytes are not a PROXY header.
 */
function readHeader(bytes: Buffer): { peer: ProxiedPeer | undefined; length: number } | 'more' {
  const signature = V2_SIGNATURE.subarray(0, Math.min(bytes.length, V2_SIGNATURE.length));
  if (bytes.subarray(0, signature.length).equals(signature)) {
    if (bytes.length < 16) return 'more';
    const length = 16 + bytes.readUInt16BE(14);
    if (bytes.length < length) return 'more';
    const header = V2ProxyProtocol.parse(new Uint8Array(bytes.subarray(0, length)));
    if (header.command === Command.LOCAL) return { peer: undefined, length };
    const address = header.proxyAddress;
    if (address instanceof IPv4ProxyAddress) {
      return {
        peer: {
          address: address.sourceAddress.address.join('.'),
          port: address.sourcePort,
          family: 'IPv4',
        },
        length,
      };
    }
    if (address instanceof IPv6ProxyAddress) {
      const ip = ipaddr.fromByteArray([...address.sourceAddress.address]).toString();
      return { peer: { address: ip, port: address.sourcePort, family: 'IPv6' }, length };
    }
    // A Unix socket or an unspecified family: nothing better than the peer we have.
    return { peer: undefined, length };
  }
  const prefix = 'PROXY ';
  const start = bytes.subarray(0, Math.min(bytes.length, prefix.length)).toString('latin1');
  if (!prefix.startsWith(start))
    throw new Error('the connection did not start with a PROXY header');
  const end = bytes.indexOf('\r\n');
  if (end < 0) {
    if (bytes.length >= V1_MAX) throw new Error('a PROXY v1 line longer than 107 bytes');
    return 'more';
  }
  const line = bytes.subarray(0, end + 2).toString('latin1');
  if (line.startsWith('PROXY UNKNOWN')) return { peer: undefined, length: end + 2 };
  let header: V1ProxyProtocol;
  try {
    header = V1ProxyProtocol.parse(line);
  } catch (error) {
    throw new Error(`a malformed PROXY v1 line: ${(error as { message?: string }).message}`);
  }
  const family = header.source.ipAddress.includes(':') ? 'IPv6' : 'IPv4';
  return {
    peer: { address: header.source.ipAddress, port: header.source.port, family },
    length: end + 2,
  };
}

/**
 * The TLS socket node:tls wraps around a raw socket reads the peer from the shared handle, not
 * from the raw socket's properties; both sockets have the same real peer, which tells the TLS
 * socket whose header the raw socket read. Returns the hook that records a raw socket's client.
 */
function tlsHandOver(server: TlsServer): (socket: Socket, peer: ProxiedPeer) => void {
  const clients = new Map<string, ProxiedPeer>();
  const keyOf = (socket: Socket): string => `${socket.remoteAddress}|${socket.remotePort}`;
  // First, so node:http2's own listener and node:http's already see the client.
  server.prependListener('secureConnection', (tlsSocket: TLSSocket) => {
    const peer = clients.get(keyOf(tlsSocket));
    if (peer !== undefined) pretend(tlsSocket, peer);
  });
  return (socket, peer) => {
    const key = keyOf(socket);
    clients.set(key, peer);
    socket.once('close', () => clients.delete(key));
  };
}

/** The socket reports the client as its peer (own properties shadow `net.Socket`'s getters). */
function pretend(socket: Socket, peer: ProxiedPeer): void {
  Object.defineProperty(socket, 'remoteAddress', { value: peer.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: peer.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: peer.family, configurable: true });
}

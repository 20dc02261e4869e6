import parseForwarded from 'forwarded-parse';
import proxyaddr from 'proxy-addr';
import { setServerAddress } from '../core/environ.js';
import type { App, Environ } from '../core/types.js';

/*
 * Who the client is, behind proxies. Only a peer named as a trusted proxy may speak for the
 * client: from anyone else `Forwarded` and `X-Forwarded-*` are left as they arrived (in the
 * environ as HTTP_* keys, for an app that wants them) and REMOTE_ADDR stays the peer's, so a
 * client cannot claim another address by sending the header itself. The chain is walked from
 * the nearest hop back while each hop is trusted (as Express's `trust proxy` does): the first
 * untrusted address is the client.
 */

/** What `trustedProxies` is told to trust. */
export interface TrustedProxyOptions {
  /**
   * Addresses and CIDR ranges of the proxies (`10.0.0.0/8`, `::1`), or proxy-addr's names
   * `loopback`, `linklocal`, `uniquelocal`.
   */
  trust: readonly string[];
}

/** One hop as a proxy reported it. */
interface Hop {
  addr: string;
  port: string;
  proto: string | undefined;
  host: string | undefined;
}

/**
 * Wraps `app` so that, for a request from a trusted proxy, REMOTE_ADDR/REMOTE_PORT, `HTTPS`
 * and `ngi.url_scheme`, and HTTP_HOST/SERVER_NAME/SERVER_PORT come from the `Forwarded`
 * header (RFC 7239) or, when there is none, `X-Forwarded-For`/`-Proto`/`-Host`.
 *
 * @example
 * serve(trustedProxies(app, { trust: ['127.0.0.1', '10.0.0.0/8'] }), { http: 8080 });
 */
export function trustedProxies(app: App, options: TrustedProxyOptions): App {
  const trust = compileTrust(options.trust);
  return (environ, startResponse) => {
    if (trust(environ.REMOTE_ADDR, 0)) applyForwarded(environ, trust);
    return app(environ, startResponse);
  };
}

/**
 * Checks the list up front: a typo in an address must stop the start, not trust nobody.
 *
 * @example
 * compileTrust(['loopback', '10.0.0.0/8'])('10.1.2.3', 0); // true
 */
export function compileTrust(list: readonly string[]): (addr: string, hop: number) => boolean {
  try {
    return proxyaddr.compile([...list]);
  } catch (error) {
    throw new TypeError(`trusted proxies: ${(error as Error).message}`, { cause: error });
  }
}

function applyForwarded(environ: Environ, trust: (addr: string, hop: number) => boolean): void {
  const hops =
    environ.HTTP_FORWARDED !== undefined ? forwardedHops(environ) : xForwardedHops(environ);
  if (hops === undefined || hops.length === 0) return;
  // hops[0] is what the nearest proxy (the peer) saw: walk back while the hop is trusted.
  let client = hops[0]!;
  for (let i = 0; i < hops.length; i++) {
    client = hops[i]!;
    if (!trust(client.addr, i + 1)) break;
  }
  // Scheme and host as the outermost trusted proxy received them: that hop's own report.
  const reporter = hops[Math.max(0, hops.indexOf(client))]!;
  environ.REMOTE_ADDR = client.addr;
  environ.REMOTE_PORT = client.port;
  const proto = reporter.proto?.toLowerCase();
  if (proto === 'https') {
    environ.HTTPS = 'on';
    environ['ngi.url_scheme'] = 'https';
  } else if (proto === 'http') {
    delete environ.HTTPS;
    environ['ngi.url_scheme'] = 'http';
  }
  if (reporter.host !== undefined && reporter.host !== '') {
    environ.HTTP_HOST = reporter.host;
    setServerAddress(environ, reporter.host, undefined, undefined, environ.HTTPS === 'on');
  }
}

/** `Forwarded` elements, nearest hop first; `undefined` for a header that does not parse. */
function forwardedHops(environ: Environ): Hop[] | undefined {
  let elements: Record<string, string>[];
  try {
    elements = parseForwarded(environ.HTTP_FORWARDED!);
  } catch {
    // Malformed: nothing in it can be believed, so nothing changes.
    return undefined;
  }
  const hops: Hop[] = [];
  for (let i = elements.length - 1; i >= 0; i--) {
    const element = elements[i]!;
    const [addr, port] = splitNode(element.for ?? 'unknown');
    hops.push({ addr, port, proto: element.proto, host: element.host });
  }
  return hops;
}

/**
 * `X-Forwarded-For` hops, nearest first. `-Proto` and `-Host` line up with them when they
 * hold as many values; otherwise (most proxies overwrite instead of appending) their last
 * value is the one the nearest, trusted, proxy set, and it describes the client's request.
 */
function xForwardedHops(environ: Environ): Hop[] | undefined {
  const chain = environ.HTTP_X_FORWARDED_FOR;
  const protos = list(environ.HTTP_X_FORWARDED_PROTO);
  const hosts = list(environ.HTTP_X_FORWARDED_HOST);
  if (chain === undefined) {
    // No addresses, yet a scheme or host: the peer is the client's own proxy hop.
    if (protos.length === 0 && hosts.length === 0) return undefined;
    return [
      {
        addr: environ.REMOTE_ADDR,
        port: environ.REMOTE_PORT,
        proto: protos.at(-1),
        host: hosts.at(-1),
      },
    ];
  }
  const addrs = list(chain);
  const hops: Hop[] = [];
  for (let i = addrs.length - 1; i >= 0; i--) {
    const [addr, port] = splitNode(addrs[i]!);
    const pick = (values: string[]) => (values.length === addrs.length ? values[i] : values.at(-1));
    hops.push({ addr, port, proto: pick(protos), host: pick(hosts) });
  }
  return hops;
}

function list(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/** `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`, `2001:db8::1` → address and port. */
function splitNode(node: string): [addr: string, port: string] {
  if (node.startsWith('[')) {
    const close = node.indexOf(']');
    if (close < 0) return [node, ''];
    const port = node.charCodeAt(close + 1) === 58 ? node.slice(close + 2) : '';
    return [node.slice(1, close), /^\d+$/.test(port) ? port : ''];
  }
  const colon = node.indexOf(':');
  // One colon: IPv4 with a port; more: a bare IPv6 address.
  if (colon > 0 && node.indexOf(':', colon + 1) < 0) {
    const port = node.slice(colon + 1);
    return [node.slice(0, colon), /^\d+$/.test(port) ? port : ''];
  }
  return [node, ''];
}

// Listen addresses as people write them (`[host:]port`, `unix:PATH`) and as listeners report
// them. Its own module so that the master, which only forks and supervises, need not load the
// serving code to parse or print one.
import { resolve as resolvePath } from 'node:path';

/**
 * Where a listener actually listens (port 0 resolved). A Unix socket has its `path`, with
 * `host` `''` and `port` 0.
 */
export interface ListenAddress {
  host: string;
  port: number;
  path?: string;
}

/**
 * Parses `[host:]port` (`8080`, `:8080`, `0.0.0.0:8080`, `[::1]:8080`), or `unix:PATH` (or, as in
 * uWSGI, a bare absolute path) for a Unix socket; the host
 * defaults to 127.0.0.1, unlike uWSGI's `:8080` (all interfaces): exposing a port is asked
 * for, not given. A relative Unix socket path is resolved against the working directory.
 *
 * @example
 * parseListen(':8080'); // { host: '127.0.0.1', port: 8080 }
 * parseListen('unix:/run/app.sock'); // { host: '', port: 0, path: '/run/app.sock' }
 */
export function parseListen(text: string): ListenAddress {
  // uWSGI takes a bare absolute path (`socket = /run/app.sock` in its INI files) too.
  if (text.startsWith('unix:') || text.startsWith('/')) {
    const path = text.startsWith('/') ? text : text.slice(5);
    if (path === '') throw new TypeError(`${JSON.stringify(text)} names no socket path`);
    return { host: '', port: 0, path: resolvePath(path) };
  }
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]*):)?(\d+)$/.exec(text.trim());
  if (!match) {
    throw new TypeError(
      `${JSON.stringify(text)} is not [host:]port or unix:PATH (e.g. 8080, 0.0.0.0:8080, unix:/run/app.sock)`,
    );
  }
  const port = Number(match[2]);
  if (port > 65535) {
    throw new RangeError(
      `port ${match[2]} is out of range (0 to 65535) in ${JSON.stringify(text)}`,
    );
  }
  let host = match[1] ?? '';
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host === '' ? '127.0.0.1' : host, port };
}

/**
 * The address as people write it: `127.0.0.1:8080`, `[::1]:8080`, `unix:/run/app.sock`.
 *
 * @example
 * formatListen({ host: '::1', port: 8080 }); // '[::1]:8080'
 */
export function formatListen(address: ListenAddress): string {
  if (address.path !== undefined) return `unix:${address.path}`;
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Exchange } from '../core/exchange.js';
import type { ExchangeOutcome } from './listener.js';
import { Counters, statsDocument, type WorkerFigures } from './stats.js';
import { createAccessLog, type LogFormat, type LogStream } from './access-log.js';
import { stderrStream } from '../core/environ.js';
import { formatError, NgiError } from '../core/errors.js';
import {
  LIFESPAN_KEY,
  lifespanOf,
  shutdownApp,
  startupApp,
  type LifespanState,
} from '../core/lifespan.js';
import {
  closeUpgradedConnections,
  countUpgradedConnections,
  createHttpServer,
  drainHttpServer,
} from './http-listener.js';
import { chmodSocket, claimUnixSocket } from './unix-socket.js';
import { trustedProxies } from '../middleware/trusted-proxy.js';
import type { App, Environ, ErrorStream, StartResponse } from '../core/types.js';
import { formatListen, type ListenAddress } from './listen-address.js';

export { formatListen, parseListen, type ListenAddress } from './listen-address.js';

/**
 * A listening address as given: `{ host, port }`, just a port (host 127.0.0.1), or
 * `{ path }` for a Unix domain socket.
 */
export type ListenSpec = { host?: string; port: number } | { path: string } | number;

/** Why a serving process asks to be replaced. */
export type RecycleReason = 'harakiri' | 'max-requests' | 'uncaught-exception';

/** Options of `serve()`; times in seconds and sizes in bytes, as on the command line. */
export interface ServeOptions {
  /** HTTP listener. Host defaults to 127.0.0.1: say `0.0.0.0` to be reachable from outside. */
  http?: ListenSpec;
  /** uwsgi listener for nginx `uwsgi_pass` (host 127.0.0.1 by default: an internal interface). */
  uwsgi?: ListenSpec;
  /** HTTPS listener: HTTP/2 and HTTP/1.1 on one TLS port by ALPN; needs `cert` and `key`. */
  https?: ListenSpec;
  /** The certificate chain file (PEM) for `https`, read at start and by `reloadCertificates()`. */
  cert?: string;
  /** The private key file (PEM) for `https`. */
  key?: string;
  /**
   * Mode of the Unix socket files this process binds (uWSGI's `--chmod-socket`, e.g. `0o660`
   * for an nginx in the socket's group); the umask decides when unset.
   */
  chmodSocket?: number;
  /**
   * Proxies (addresses, CIDR ranges, or `loopback`/`linklocal`/`uniquelocal`) whose
   * `Forwarded` / `X-Forwarded-*` headers say who the client is; from any other peer they
   * change nothing. Over uwsgi the peer is nginx's `REMOTE_ADDR`.
   */
  trustProxy?: readonly string[];
  /**
   * Listeners that require a PROXY protocol header (v1 or v2, as HAProxy and TCP load
   * balancers send) on every connection, and take the client's address from it.
   */
  proxyProtocol?: ReadonlyArray<'http' | 'https' | 'uwsgi'>;
  /**
   * The stats listener: JSON figures, `/metrics` (Prometheus), `/healthz` and `/readyz`.
   */
  stats?: ListenSpec;
  /** URL prefix → folder, served before the app; a missing file falls through to the app. */
  staticMap?: Record<string, string> | Array<[prefix: string, dir: string]>;
  /** A request running longer is answered 504 and the process asks to be recycled (0 = off). */
  harakiri?: number;
  /** After this many requests the process asks to be recycled (0 = never). */
  maxRequests?: number;
  /** Largest request body by its declared length (0 = no limit). */
  limitPost?: number;
  /** uwsgi: largest vars block (default 4096, max 65535). */
  bufferSize?: number;
  /** A connection idle this long mid-request is closed (default 30). */
  socketTimeout?: number;
  /** Access log format (default `text`). */
  logFormat?: LogFormat;
  /** Where access lines go (default stdout). */
  accessLog?: LogStream;
  /** Where errors go, and `ngi.errors` (default stderr). */
  errors?: ErrorStream;
  /** How long `close()` waits for in-flight requests before cutting them (default 30). */
  grace?: number;
  /** `ngi.multiprocess` (set by the worker processes of `ngi serve`). */
  multiprocess?: boolean;
  /**
   * Called once when this process should be replaced (after a harakiri, or `maxRequests`).
   * `ngi serve`'s workers pass it to their master; without it the process keeps serving.
   */
  onRecycle?: (reason: RecycleReason) => void;
}

/** A running server. */
export interface ServerHandle {
  /** Where the HTTP listener listens, if any. */
  readonly http: ListenAddress | undefined;
  readonly uwsgi: ListenAddress | undefined;
  readonly https: ListenAddress | undefined;
  readonly stats: ListenAddress | undefined;
  /** This process's counters. */
  figures(): WorkerFigures;
  /**
   * Reads `cert` and `key` again and uses them for new TLS connections (a renewed
   * certificate); throws, keeping the old ones, if they cannot be read or do not match.
   */
  reloadCertificates(): void;
  /** Stops accepting, lets in-flight requests finish (up to `grace` seconds), then resolves. */
  close(grace?: number): Promise<void>;
}

const kStaticOrigin = Symbol('ngi.staticOrigin');

type StaticFiles = (dir: string, options?: { fallback?: App }) => App;

/**
 * Serves `app` in this process over HTTP and/or uwsgi, with access log, stats, harakiri and
 * graceful close. `ngi serve` runs it in each worker.
 *
 * @example
 * const server = await serve(app, { http: { port: 8080 }, uwsgi: 3031, harakiri: 30 });
 * console.log(server.http); // { host: '127.0.0.1', port: 8080 }
 * // On a Unix socket nginx can reach (`uwsgi_pass unix:/run/ngi/app.sock`):
 * await serve(app, { uwsgi: { path: '/run/ngi/app.sock' }, chmodSocket: 0o660 });
 * process.on('SIGTERM', () => void server.close());
 */
export async function serve(app: App, options: ServeOptions): Promise<ServerHandle> {
  if (options.http === undefined && options.uwsgi === undefined && options.https === undefined) {
    throw new TypeError('serve: give an http, https and/or uwsgi listener');
  }
  if (
    options.proxyProtocol?.includes('https') &&
    typeof options.https === 'object' &&
    'path' in options.https
  ) {
    // The TLS connection is matched to its header by the peer's address and port, which a
    // Unix socket does not have: two connections at once could swap their clients.
    throw new TypeError(
      'serve: the PROXY protocol on an https listener needs a TCP port, not a Unix socket',
    );
  }
  if (options.https !== undefined && (options.cert === undefined || options.key === undefined)) {
    throw new TypeError('serve: an https listener needs cert and key (PEM file paths)');
  }
  const errors = options.errors ?? stderrStream;
  const counters = new Counters();
  const log = createAccessLog(options.logFormat ?? 'text', options.accessLog);
  const harakiriMs = (options.harakiri ?? 0) * 1000;
  const maxRequests = options.maxRequests ?? 0;
  let recycling = false;
  let seen = 0;
  let drained: (() => void) | undefined;

  const recycle = (reason: RecycleReason): void => {
    if (recycling || options.onRecycle === undefined) return;
    recycling = true;
    options.onRecycle(reason);
  };

  const onExchange = (exchange: Exchange) => {
    counters.begin();
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    if (harakiriMs > 0) {
      timer = setTimeout(() => {
        // A WebSocket is no stuck request: the request part ended with its 101.
        if (exchange.upgraded) return;
        counters.harakiri++;
        exchange.expire(
          new NgiError('NGI_ERR_TIMEOUT', `harakiri: still running after ${options.harakiri}s`),
        );
        recycle('harakiri');
      }, harakiriMs);
    }
    if (maxRequests > 0 && ++seen >= maxRequests) recycle('max-requests');
    return (outcome: ExchangeOutcome) => {
      if (timer !== undefined) clearTimeout(timer);
      const ms = performance.now() - started;
      counters.end(outcome.status, outcome.bytes, ms / 1000);
      if (log !== undefined) log({ environ: exchange.environ, outcome, ms });
      if (drained !== undefined && counters.inFlight === 0) drained();
    };
  };

  // Lifespan: startup before any listener opens; its state reaches every request.
  const state: LifespanState = {};
  const lifespan = lifespanOf(app) !== undefined;
  if (lifespan) await startupApp(app, state);

  let served = app;
  if (options.staticMap !== undefined) {
    const entries = Array.isArray(options.staticMap)
      ? options.staticMap
      : Object.entries(options.staticMap);
    if (entries.length > 0) served = withStaticMap(app, entries, await loadStaticFiles());
  }
  if (lifespan) served = withState(served, state);
  // Outermost: static files, the app and the access log all see the client's address.
  if (options.trustProxy !== undefined && options.trustProxy.length > 0) {
    served = trustedProxies(served, { trust: options.trustProxy });
  }

  const listener = {
    errors,
    multiprocess: options.multiprocess ?? false,
    onExchange,
    limitPost: options.limitPost,
    socketTimeout: options.socketTimeout,
  };
  const servers: NetServer[] = [];
  // A listener may be closed before close() runs (node:cluster closes a worker's listeners
  // when its channel to the master is disconnected): its 'close' has then been emitted already.
  const closed = new WeakSet<NetServer>();
  const track = (server: NetServer): void => {
    servers.push(server);
    server.once('close', () => closed.add(server));
  };
  const whenClosed = (server: NetServer): Promise<void> =>
    closed.has(server)
      ? Promise.resolve()
      : new Promise((resolve) => server.once('close', () => resolve()));
  let httpServer: HttpServer | undefined;
  let httpsServer: Http2SecureServer | undefined;
  let uwsgiServer: NetServer | undefined;
  let statsServer: HttpServer | undefined;
  const uwsgiSockets = new Set<Socket>();
  // What only some servers use is loaded only by them: node:http2 and TLS, the PROXY protocol
  // parser, the stats listener (a plain HTTP server's RSS stays near node:http's).
  const https = options.https !== undefined ? await import('./https-listener.js') : undefined;
  const { acceptProxyProtocol } = options.proxyProtocol?.length
    ? await import('./proxy-protocol.js')
    : { acceptProxyProtocol: undefined };
  try {
    if (options.http !== undefined) {
      httpServer = createHttpServer(served, listener);
      track(httpServer);
      if (options.proxyProtocol?.includes('http')) acceptProxyProtocol!(httpServer, { errors });
      await listen(httpServer, options.http, 'http', options.chmodSocket);
    }
    if (options.https !== undefined) {
      httpsServer = https!.createHttpsServer(served, { ...listener, ...readCertificates(options) });
      track(httpsServer);
      if (options.proxyProtocol?.includes('https')) acceptProxyProtocol!(httpsServer, { errors });
      await listen(httpsServer, options.https, 'https', options.chmodSocket);
    }
    if (options.uwsgi !== undefined) {
      const { createUwsgiServer } = await import('./uwsgi-listener.js');
      uwsgiServer = createUwsgiServer(served, {
        ...listener,
        bufferSize: options.bufferSize,
        connections: uwsgiSockets,
      });
      track(uwsgiServer);
      if (options.proxyProtocol?.includes('uwsgi')) acceptProxyProtocol!(uwsgiServer, { errors });
      await listen(uwsgiServer, options.uwsgi, 'uwsgi', options.chmodSocket);
    }
    if (options.stats !== undefined) {
      const startedAt = counters.startedAt;
      const { createStatsServer } = await import('./stats-server.js');
      statsServer = createStatsServer({
        document: () => statsDocument(startedAt, [{ ...counters.figures() }]),
      });
      track(statsServer);
      await listen(statsServer, options.stats, 'stats', options.chmodSocket);
    }
  } catch (error) {
    for (const server of servers) server.close();
    if (lifespan)
      await shutdownApp(app, state).catch((failure) =>
        errors.write(formatError(failure, 'lifespan')),
      );
    throw error;
  }

  let closing: Promise<void> | undefined;
  const close = (grace = options.grace ?? 30): Promise<void> => {
    closing ??= (async () => {
      const ended = [httpServer, httpsServer, uwsgiServer]
        .filter((s) => s !== undefined)
        .map(whenClosed);
      if (statsServer !== undefined) {
        statsServer.close();
        statsServer.closeAllConnections();
      }
      uwsgiServer?.close();
      if (httpServer !== undefined) drainHttpServer(httpServer);
      if (httpsServer !== undefined) https!.drainHttpsServer(httpsServer);
      const idle = new Promise<void>((resolve) => {
        if (counters.inFlight === 0) resolve();
        else drained = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const cut = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          const upgraded = [httpServer, httpsServer].reduce(
            (sum, server) => sum + (server === undefined ? 0 : countUpgradedConnections(server)),
            0,
          );
          const running = counters.inFlight - upgraded;
          if (running > 0) {
            errors.write(
              `ngi: ${running} request(s) still running after the ${grace}s grace period; cutting them\n`,
            );
          }
          if (upgraded > 0) {
            errors.write(
              `ngi: closing ${upgraded} upgraded connection(s) (WebSocket) at the end of the ${grace}s grace period\n`,
            );
          }
          resolve();
        }, grace * 1000);
      });
      await Promise.race([idle, cut]);
      // Connections close by themselves: kept-alive HTTP ones on keepAliveTimeout, uwsgi ones
      // after their response. One still open may carry a request still arriving: the grace
      // period covers it.
      await Promise.race([Promise.all(ended), cut]);
      clearTimeout(timer);
      if (httpServer !== undefined) {
        closeUpgradedConnections(httpServer);
        httpServer.closeAllConnections();
      }
      if (httpsServer !== undefined) {
        closeUpgradedConnections(httpsServer);
        https!.closeHttpsConnections(httpsServer);
      }
      for (const socket of uwsgiSockets) socket.destroy();
      await Promise.all(ended);
      // Every connection is gone: no request can come any more.
      if (lifespan)
        await shutdownApp(app, state).catch((error) =>
          errors.write(formatError(error, 'lifespan')),
        );
    })();
    return closing;
  };

  return {
    http: addressOf(httpServer),
    uwsgi: addressOf(uwsgiServer),
    https: addressOf(httpsServer),
    reloadCertificates: () => httpsServer?.setSecureContext(readCertificates(options)),
    stats: addressOf(statsServer),
    figures: () => counters.figures(),
    close,
  };
}

/** The PEM files of `cert` and `key`, read now; an error names the file. */
function readCertificates(options: ServeOptions): { cert: Buffer; key: Buffer } {
  const read = (what: string, path: string | undefined): Buffer => {
    try {
      return readFileSync(path!);
    } catch (error) {
      throw new NgiError(
        'NGI_ERR_LISTEN',
        `cannot read the TLS ${what} ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  };
  return { cert: read('certificate', options.cert), key: read('key', options.key) };
}

function toAddress(spec: ListenSpec): ListenAddress {
  if (typeof spec === 'number') return { host: '127.0.0.1', port: spec };
  if ('path' in spec && spec.path !== undefined) {
    return { host: '', port: 0, path: resolvePath(spec.path) };
  }
  const tcp = spec as { host?: string; port: number };
  return { host: tcp.host ?? '127.0.0.1', port: tcp.port };
}

async function listen(
  server: NetServer,
  spec: ListenSpec,
  what: string,
  mode: number | undefined,
): Promise<void> {
  const address = toAddress(spec);
  const { path } = address;
  // In a cluster worker the master binds the socket (and `ngi serve`'s master claimed the
  // path before forking); every worker probing it would find the others' socket live.
  if (path !== undefined && !cluster.isWorker) {
    try {
      await claimUnixSocket(path);
    } catch (error) {
      throw new Error(`cannot listen for ${what} on unix:${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error) =>
      reject(
        new Error(`cannot listen for ${what} on ${formatListen(address)}: ${error.message}`, {
          cause: error,
        }),
      );
    server.once('error', fail);
    const done = () => {
      server.off('error', fail);
      resolve();
    };
    if (path !== undefined) server.listen(path, done);
    else server.listen(address.port, address.host, done);
  });
  if (path !== undefined && mode !== undefined) await chmodSocket(path, mode);
}

function addressOf(server: NetServer | undefined): ListenAddress | undefined {
  const info = server?.address() as AddressInfo | string | null | undefined;
  if (typeof info === 'string') return { host: '', port: 0, path: info };
  return info ? { host: info.address, port: info.port } : undefined;
}

/** Hands the lifespan state to each request (only apps with a lifespan pay for the key). */
function withState(app: App, state: LifespanState): App {
  return (environ, startResponse) => {
    environ[LIFESPAN_KEY] = state;
    return app(environ, startResponse);
  };
}

async function loadStaticFiles(): Promise<StaticFiles> {
  // Imported on first use only: servers without a static map never load `send`.
  return (await import('../middleware/static.js')).staticFiles;
}

/**
 * uWSGI's `--static-map`: a request under a mapped prefix is served from the folder; a file
 * that is not there falls through to the app with the environ as it arrived.
 */
function withStaticMap(app: App, entries: Array<[string, string]>, staticFiles: StaticFiles): App {
  const fallback: App = (environ, startResponse) => {
    const origin = environ[kStaticOrigin] as [string, string] | undefined;
    if (origin !== undefined) {
      environ.SCRIPT_NAME = origin[0];
      environ.PATH_INFO = origin[1];
      environ[kStaticOrigin] = undefined;
    }
    return app(environ, startResponse);
  };
  const table = entries.map(([prefix, dir]) => {
    if (!prefix.startsWith('/')) {
      throw new TypeError(`static map prefix ${JSON.stringify(prefix)} must start with "/"`);
    }
    const trimmed = prefix.replace(/\/+$/, '');
    return { prefix: trimmed, files: staticFiles(dir, { fallback }) };
  });
  table.sort((a, b) => b.prefix.length - a.prefix.length);
  return (environ: Environ, startResponse: StartResponse) => {
    const path = environ.PATH_INFO;
    for (let i = 0; i < table.length; i++) {
      const { prefix, files } = table[i]!;
      if (
        path.startsWith(prefix) &&
        (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)
      ) {
        environ[kStaticOrigin] = [environ.SCRIPT_NAME, path];
        environ.SCRIPT_NAME += prefix;
        environ.PATH_INFO = path.slice(prefix.length);
        return files(environ, startResponse);
      }
    }
    return app(environ, startResponse);
  };
}

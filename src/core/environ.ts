import type { Environ, ErrorStream } from './types.js';

/*
 * What every host's environ has in common: `ngi.version`, where errors go by default, the
 * CGI key of a header, how repeated headers join, and SERVER_NAME/SERVER_PORT from Host.
 */

/** `ngi.version` of every environ this implementation builds. */
export const NGI_VERSION: readonly [1, 0] = Object.freeze([1, 0] as const);

/** `ngi.errors` when the host names none: standard error. */
export const stderrStream: ErrorStream = {
  write: (message: string) => process.stderr.write(message),
};

const environKeys = new Map<string, string>();

/**
 * The environ key for a header name as it arrived, in any case (`X-Forwarded-For` →
 * `HTTP_X_FORWARDED_FOR`), or `''` for a name holding `_`: such headers are dropped (as nginx
 * and gunicorn do) so `X_Forwarded_For` cannot pose as `X-Forwarded-For`. Cached by the name
 * as sent: clients repeat their own spelling, so the case folding is done once, not per request.
 */
export function headerKey(name: string): string {
  let key = environKeys.get(name);
  if (key === undefined) {
    const lower = name.toLowerCase();
    if (lower.includes('_')) key = '';
    // HTTP/2 pseudo-headers are the request line, already in the environ; `:authority`
    // stands for Host (h2 clients send no Host header).
    else if (lower.charCodeAt(0) === 58) key = lower === ':authority' ? 'HTTP_HOST' : '';
    else if (lower === 'content-type') key = 'CONTENT_TYPE';
    else if (lower === 'content-length') key = 'CONTENT_LENGTH';
    else key = 'HTTP_' + lower.toUpperCase().replace(/-/g, '_');
    // Bounded: a client inventing names must not grow it for ever.
    if (environKeys.size < 1000) environKeys.set(name, key);
  }
  return key;
}

/** Adds one header to an environ, joining repeats with `", "` (`Cookie` with `"; "`). */
export function addHeader(environ: Record<string, unknown>, key: string, value: string): void {
  const prior = environ[key];
  if (prior === undefined) environ[key] = value;
  else environ[key] = prior + (key === 'HTTP_COOKIE' ? '; ' : ', ') + value;
}

/** The last Host header split, and its parts: one client sends the same Host every time. */
let lastHost = '';
let lastName = '';
let lastPort: string | undefined = undefined;

/** `SERVER_NAME`/`SERVER_PORT` from the Host header, else from the local socket address. */
export function setServerAddress(
  environ: Environ,
  host: string | undefined,
  localAddress: string | undefined,
  localPort: number | undefined,
  https: boolean,
): void {
  if (host) {
    if (host !== lastHost) {
      // `[::1]:8080`, `example.com:8080`, `example.com`
      const close = host.lastIndexOf(']');
      const colon = host.lastIndexOf(':');
      lastName = colon > close ? host.slice(0, colon) : host;
      lastPort = colon > close ? host.slice(colon + 1) : undefined;
      lastHost = host;
    }
    environ.SERVER_NAME = lastName;
    environ.SERVER_PORT =
      lastPort ?? (localPort === undefined ? (https ? '443' : '80') : String(localPort));
    return;
  }
  environ.SERVER_NAME = localAddress ?? '';
  environ.SERVER_PORT = localPort === undefined ? '' : String(localPort);
}

/**
 * The setter of a lazy environ key (`ngi.signal`, `ngi.input`): middleware MAY replace any key
 * (spec R2.3), and an accessor with only a getter would make that assignment throw. The key
 * becomes a plain value, the lazy one never built.
 */
export function replaceLazyKey(environ: object, key: string, value: unknown): void {
  Object.defineProperty(environ, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Environ, ErrorStream } from './types.js';
import { decodePath, originForm, splitTarget } from './_url.js';
import { attachSignal, type LazySignal } from './_signal.js';

const VERSION = Object.freeze([1, 0] as const);

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

export interface NodeEnvironOptions {
  /** The mount point this request arrives under (`""` at the root). */
  scriptName?: string | undefined;
  /** The raw path (and query) below the mount point; defaults to `req.url`. */
  target?: string | undefined;
  /** The request target as the client sent it; defaults to `req.url` (a framework's router may have cut it). */
  requestUri?: string | undefined;
  errors?: ErrorStream | undefined;
  multiprocess?: boolean | undefined;
  /** `ngi.input` when it is not `req` itself (a framework middleware already read the body). */
  input?: Readable | undefined;
  /** The length of a kept `input`: the client's framing and encoding no longer describe it. */
  inputLength?: number | undefined;
}

/**
 * Builds the environ for a Node request in one pass over `rawHeaders`; `abort` backs
 * `ngi.signal`, which is only built if the app reads it.
 */
export function environFromNode(
  req: IncomingMessage,
  options: NodeEnvironOptions,
  abort: LazySignal,
): Environ {
  // An absolute-form target (`GET http://host/x`, as proxies are sent) keeps only path and query.
  const requestUri = originForm(options.requestUri ?? req.url ?? '/');
  const [rawPath, query] = splitTarget(options.target ?? requestUri);
  const socket = req.socket;
  const encrypted = (socket as TLSSocket).encrypted === true;
  const version = req.httpVersion;
  const environ = {
    REQUEST_METHOD: req.method ?? 'GET',
    SCRIPT_NAME: options.scriptName ?? '',
    PATH_INFO: decodePath(rawPath),
    QUERY_STRING: query,
    SERVER_NAME: '',
    SERVER_PORT: '',
    SERVER_PROTOCOL: version === '1.1' ? 'HTTP/1.1' : 'HTTP/' + version,
    REMOTE_ADDR: socket.remoteAddress ?? '',
    REMOTE_PORT: String(socket.remotePort ?? ''),
    REQUEST_URI: requestUri,
    'ngi.version': VERSION,
    'ngi.url_scheme': encrypted ? 'https' : 'http',
    'ngi.input': options.input ?? req,
    'ngi.errors': options.errors ?? stderrStream,
    'ngi.multiprocess': options.multiprocess ?? false,
    'ngi.multithread': false,
    'ngi.run_once': false,
  } as unknown as Environ;
  if (encrypted) environ.HTTPS = 'on';
  const raw = req.rawHeaders;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const key = headerKey(raw[i]!);
    if (key === '') continue;
    const value = raw[i + 1]!;
    if (host === undefined && key === 'HTTP_HOST') host = value;
    addHeader(environ, key, value);
  }
  if (options.inputLength !== undefined) {
    // A parser inflated (gzip) or re-encoded what it kept: say what the app will read.
    environ.CONTENT_LENGTH = String(options.inputLength);
    delete environ.HTTP_CONTENT_ENCODING;
    delete environ.HTTP_TRANSFER_ENCODING;
  }
  setServerAddress(environ, host, socket.localAddress, socket.localPort, encrypted);
  attachSignal(environ, abort);
  return environ;
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

import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Environ, ErrorStream } from '../core/types.js';
import {
  NGI_VERSION,
  addHeader,
  headerKey,
  setServerAddress,
  stderrStream,
} from '../core/environ.js';
import { decodePath, originForm, splitTarget } from '../core/url.js';
import { attachSignal, type LazySignal } from '../core/signal.js';

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
    'ngi.version': NGI_VERSION,
    'ngi.url_scheme': encrypted ? 'https' : 'http',
    'ngi.input': options.input ?? req,
    'ngi.errors': options.errors ?? stderrStream,
    'ngi.multiprocess': options.multiprocess ?? false,
    'ngi.multithread': false,
    'ngi.run_once': false,
  } as unknown as Environ;
  // Before the headers: on the literal's own shape the accessor is a cached transition; on an
  // environ that many headers made a dictionary it is a slow call.
  attachSignal(environ, abort);
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
  return environ;
}

import type { Readable } from 'node:stream';

/** A piece of a response body. Strings are written as UTF-8. */
export type Chunk = Uint8Array | string;

/** A response body: any sync or async iterable of chunks (arrays, generators, Node `Readable`s). */
export type Body = Iterable<Chunk> | AsyncIterable<Chunk>;

/** Response headers in order, duplicates kept (several `Set-Cookie` survive every path). */
export type Headers = Array<[name: string, value: string]>;

/** The legacy imperative write path: resolves when the chunk is handed to the socket without backpressure. */
export type Write = (chunk: Chunk) => Promise<void>;

/** `startResponse('200 OK', [['Content-Type', 'text/plain']])`; a second call needs `excInfo`. */
export type StartResponse = (status: string, headers: Headers, excInfo?: unknown) => Write;

/** An NGI application: the whole contract. */
export type App = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;

/** Where an app logs (`environ['ngi.errors'].write(line)`), like `wsgi.errors`. */
export interface ErrorStream {
  write(message: string): unknown;
}

/** Sends a file without copying it through JS, where the server can (`ngi.file_wrapper`). */
export type FileWrapper = (path: string, options?: { start?: number; end?: number }) => Body;

/**
 * The request, as CGI-style keys plus `ngi.*` keys. Hosts may add namespaced keys
 * (symbols or `host.*`); apps must not depend on them.
 */
export interface Environ {
  REQUEST_METHOD: string;
  /** The mount point, `""` at the root. */
  SCRIPT_NAME: string;
  /** Percent-decoded path below `SCRIPT_NAME`: `""` or starting with `/`. */
  PATH_INFO: string;
  /** Raw query, without `?`. */
  QUERY_STRING: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  REMOTE_ADDR: string;
  REMOTE_PORT: string;
  /** Path and query exactly as received, undecoded. */
  REQUEST_URI: string;
  HTTPS?: string;
  'ngi.version': readonly [1, 0];
  'ngi.url_scheme': 'http' | 'https';
  'ngi.input': Readable;
  'ngi.errors': ErrorStream;
  'ngi.multiprocess': boolean;
  'ngi.multithread': boolean;
  'ngi.run_once': boolean;
  /** Fires when the client disconnects or the request times out. */
  'ngi.signal': AbortSignal;
  'ngi.file_wrapper'?: FileWrapper;
  [header: `HTTP_${string}`]: string | undefined;
  [key: string]: unknown;
  [key: symbol]: unknown;
}

import type { Duplex, Readable } from 'node:stream';

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

/**
 * `ngi.early_hints`: sends a `103 Early Hints` with these headers (at least one `Link`) before
 * the final response; resolves once written. Only while the head is not out.
 */
export type EarlyHints = (headers: Headers) => Promise<void>;

/**
 * `ngi.trailers`: response trailers, after the body. `announce(names)` before the head goes out
 * frames the response for them (chunked, a `Trailer` header the host writes; no
 * `Content-Length`); `send(headers)` before the body ends gives their values.
 */
export interface ResponseTrailers {
  announce(names: readonly string[]): void;
  send(headers: Headers): void;
}

/** A WebSocket message: a text frame as a string, a binary one as bytes. */
export type WebSocketMessage = string | Uint8Array;

/** How a WebSocket ended: the close code (1006 when the connection dropped without one) and reason. */
export interface WebSocketClose {
  code: number;
  reason: string;
}

/**
 * An open WebSocket (after ASGI's `websocket.receive`/`send`/`close`/`disconnect`): iterate it
 * for the client's messages (the loop ends when the connection closes, however it closes).
 */
export interface WebSocketSession extends AsyncIterable<WebSocketMessage> {
  /** The subprotocol agreed at the handshake, `''` for none. */
  readonly protocol: string;
  /** Sends one message; resolves once it is written, rejects (`NGI_ERR_CLIENT_GONE`) once closed. */
  send(message: WebSocketMessage): Promise<void>;
  /** Starts the closing handshake: `code` 1000 (default) or 3000-4999 for the app's own. */
  close(code?: number, reason?: string): void;
  /** Resolves once the connection is closed, by either side or by the client going away. */
  readonly closed: Promise<WebSocketClose>;
}

/**
 * `ngi.upgrade`: present only on a request that asks for an upgrade (`Upgrade: websocket`,
 * any protocol), on a host that can hand over the connection. Not taking it (answering with
 * `startResponse` as usual) refuses the upgrade: that response goes out and the connection
 * closes after it.
 */
export interface Upgrade {
  /** The protocol asked for, as in the `Upgrade` header, lower-cased (`websocket`, `h2c`). */
  readonly protocol: string;
  /** The WebSocket subprotocols the client offers (`Sec-WebSocket-Protocol`), in order. */
  readonly subprotocols: readonly string[];
  /**
   * Completes a WebSocket handshake (`101`, with a subprotocol the client offered and extra
   * headers) and resolves with the open session. Rejects when the request is not a valid
   * WebSocket handshake (the client gets a 400) or the client went away.
   */
  acceptWebSocket(options?: { protocol?: string; headers?: Headers }): Promise<WebSocketSession>;
  /**
   * Any other protocol: writes `101 Switching Protocols` (with `Upgrade: protocol` and extra
   * headers) and returns the raw connection, already holding what the client sent after
   * its request head.
   */
  acceptConnection(options?: { headers?: Headers }): Duplex;
}

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
  /** Present where the host can send a 103 before the response (see `EarlyHints`). */
  'ngi.early_hints'?: EarlyHints;
  /** Present where the host can send response trailers (see `ResponseTrailers`). */
  'ngi.trailers'?: ResponseTrailers;
  /** Present on an upgrade request the host can hand over (see `Upgrade`). */
  'ngi.upgrade'?: Upgrade;
  /** The lifespan extension: what the app's startup left, on a host that ran it. */
  'ngi.lifespan'?: Record<string, unknown>;
  [header: `HTTP_${string}`]: string | undefined;
  [key: string]: unknown;
  [key: symbol]: unknown;
}

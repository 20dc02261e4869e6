import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { Exchange } from '../src/_engine.js';
import { readBody } from '../src/_fetch-body.js';
import { inexpressible, requestFromEnviron } from '../src/_fetch-request.js';
import { FetchSink, environFromRequest } from '../src/_fetch-host.js';
import { LazySignal } from '../src/_signal.js';
import { kNgiApp } from '../src/_symbols.js';
import { NgiError, formatError } from '../src/errors.js';
import type { App, Chunk, Environ, ErrorStream, Headers as NgiHeaders } from '../src/types.js';

/** A Fetch handler, as Deno, Bun, Cloudflare Workers and Hono understand it. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface ToFetchOptions {
  /** The mount point this handler answers under (`""` at the root); becomes `SCRIPT_NAME`. */
  scriptName?: string;
  /** The client address, when the runtime knows it (Fetch `Request`s do not carry one). */
  remoteAddress?: string;
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
  /**
   * The Node response this request will be written to, when the runtime has one (as
   * `@hono/node-server` gives in `c.env.outgoing`): its `close` before it finished means the
   * client left. Watching it spares building `request.signal`, which costs more than the
   * rest of a small request on such runtimes.
   */
  nodeResponse?: NodeResponseLike;
  /**
   * `ngi.input`, when the runtime already holds the body as a Node stream (the untouched
   * `c.env.incoming` on `@hono/node-server`): spares two web-stream conversions of the body.
   */
  input?: Readable;
  /**
   * The request target exactly as the client sent it, when the runtime has it (Node's
   * `req.url`): `request.url` was normalised by the URL parser, and `REQUEST_URI` should not be.
   */
  requestUri?: string;
}

/** What `nodeResponse` needs of a Node `ServerResponse`. */
export interface NodeResponseLike {
  once(event: 'close', listener: () => void): unknown;
  readonly writableFinished: boolean;
}

/*
 * Round-trip tags. `kOriginal` alone cannot be used here: `toNodeHandler` returns any
 * function found under it as a Node handler, so `toNodeHandler(fromFetch(h))` would hand a
 * Fetch handler to `http.createServer`. These tags name the Fetch side explicitly.
 */
const kFetchHandler = Symbol.for('ngi.fetch.handler');
const kFetchApp = Symbol.for('ngi.fetch.app');
type Tagged = { [kFetchHandler]?: FetchHandler; [kFetchApp]?: App; [kNgiApp]?: true };

const EMPTY: never[] = [];

/**
 * An NGI app as a Fetch handler `(request) => Promise<Response>` for any Fetch runtime
 * (Deno, Bun, Workers, `@hono/node-server`, a Service Worker).
 *
 * The Response resolves as soon as the app's head is out; its body streams with
 * backpressure (the app is not pulled while the consumer is behind), and cancelling it
 * fires `ngi.signal`. `request.signal` is wired to `ngi.signal` as well.
 *
 * What a Fetch `Request` cannot give back: `REQUEST_URI` is taken from `request.url`, which
 * the URL parser already normalised (`.`/`..` and `%2e%2e` segments resolved, `\` read as
 * `/`, non-ASCII and spaces percent-encoded, the default port and the fragment dropped;
 * `%2F` and `%FF` do survive). `SERVER_PROTOCOL` is always `HTTP/1.1`, `REMOTE_ADDR` is
 * empty unless the runtime passes `remoteAddress`, and `HTTP_HOST` falls back to the URL's
 * host when the request carries no `Host` header.
 *
 * @example
 * // Deno.serve(toFetch(app)); Bun.serve({ fetch: toFetch(app) }); export default { fetch: toFetch(app) }
 * const response = await toFetch(app)(new Request('http://localhost/hello'));
 */
export function toFetch(app: App, options: ToFetchOptions = {}): FetchHandler {
  const original = (app as Tagged)[kFetchHandler];
  if (typeof original === 'function') return original;
  const handler: FetchHandler = (request) => serveFetchRequest(app, request, options);
  (handler as Tagged)[kFetchApp] = app;
  return handler;
}

/**
 * Serves one Fetch `Request` with an NGI app (what `toFetch` and `toHono` do per request).
 * Never rejects: failures become a 500 (or a 502 for a response Fetch cannot express).
 *
 * @example
 * const response = await serveFetchRequest(app, request, { scriptName: '/legacy' });
 */
export function serveFetchRequest(
  app: App,
  request: Request,
  options: ToFetchOptions = {},
): Promise<Response> {
  const abort = new LazySignal();
  const environ = environFromRequest(request, options, abort);
  return serveEnviron(app, environ, abort, options.nodeResponse ?? request.signal);
}

/**
 * Runs an exchange for a ready environ and resolves with its Response; the client leaving
 * (the Node response closing unfinished, or the request's signal) abandons it.
 */
export function serveEnviron(
  app: App,
  environ: Environ,
  abort: LazySignal,
  watch: NodeResponseLike | AbortSignal,
): Promise<Response> {
  const sink = new FetchSink(environ);
  const exchange = new Exchange(environ, sink, abort);
  sink.exchange = exchange;
  if (!(watch instanceof AbortSignal)) {
    watch.once('close', () => {
      if (!watch.writableFinished) exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    });
  } else if (watch.aborted) {
    abort.abort(watch.reason);
  } else {
    const onAbort = () => exchange.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    watch.addEventListener('abort', onAbort, { once: true });
    exchange.onDone = () => watch.removeEventListener('abort', onAbort);
  }
  void exchange.run(app);
  return sink.response;
}

/** A clear answer, and a log line, for a request the Fetch handler cannot be given. */
function refuse(
  environ: Environ,
  startResponse: Parameters<App>[1],
  status: 400 | 501 | 502,
  message: string,
  cause?: unknown,
): string[] {
  environ['ngi.errors'].write(
    formatError(
      new NgiError('NGI_ERR_UNSUPPORTED', message, { cause }),
      `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}`,
    ),
  );
  const reason = STATUS_CODES[status]!;
  startResponse(`${status} ${reason}`, [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`${status} ${reason}: ${message}\n`];
}

/**
 * Calls a Fetch handler for one NGI request and answers with its Response (what `fromFetch`
 * and `fromHono` do); `env` is passed as the handler's second argument.
 *
 * @example
 * const app: App = (environ, startResponse) =>
 *   callFetchHandler(worker.fetch, environ, startResponse, { KV: kv });
 */
export function callFetchHandler<Env>(
  handler: (request: Request, env: Env) => Response | Promise<Response>,
  environ: Environ,
  startResponse: Parameters<App>[1],
  env: Env,
): Iterable<Chunk> | AsyncIterable<Chunk> | Promise<Iterable<Chunk> | AsyncIterable<Chunk>> {
  const why = inexpressible(environ);
  if (why !== undefined) return refuse(environ, startResponse, 501, why);
  let request: Request;
  try {
    request = requestFromEnviron(environ);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return refuse(environ, startResponse, 400, `not expressible as a Fetch Request: ${message}`);
  }
  const result = handler(request, env);
  if (typeof (result as Promise<Response>).then === 'function') {
    return (result as Promise<Response>).then((r) => answer(r, environ, startResponse));
  }
  return answer(result as Response, environ, startResponse);
}

/** Passes a Response's status, headers (every `Set-Cookie`) and body to `startResponse`. */
function answer(
  response: Response,
  environ: Environ,
  startResponse: Parameters<App>[1],
): Iterable<Chunk> | AsyncIterable<Chunk> | Promise<Iterable<Chunk> | AsyncIterable<Chunk>> {
  if (
    response === null ||
    typeof response !== 'object' ||
    typeof response.status !== 'number' ||
    typeof response.headers !== 'object'
  ) {
    throw new NgiError('NGI_ERR_INVALID_BODY', `the Fetch handler returned ${typeof response}`);
  }
  const status = response.status;
  if (status < 200 || status > 599) {
    // `Response.error()` (status 0): the handler itself reports a network error.
    return refuse(environ, startResponse, 502, `the Fetch handler answered a network error`);
  }
  const headers: NgiHeaders = [];
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers.push([name, value]);
  });
  const cookies = response.headers.getSetCookie();
  for (let i = 0; i < cookies.length; i++) headers.push(['set-cookie', cookies[i]!]);
  const reason = response.statusText || STATUS_CODES[status] || 'Unknown';
  startResponse(`${status} ${reason}`, headers);
  const body = response.body;
  if (body === null) return EMPTY;
  if (environ.REQUEST_METHOD === 'HEAD') {
    body.cancel().then(undefined, () => {});
    return EMPTY;
  }
  return readBody(body.getReader());
}

/**
 * A Fetch handler `(request) => Response` as an NGI app. The handler sees the URL below the
 * mount point, end-to-end headers, the body as a stream and `ngi.signal` as
 * `request.signal`; its Response streams back with every `Set-Cookie` kept.
 *
 * What Fetch cannot express gets a clear answer and a `NGI_ERR_UNSUPPORTED` log line instead
 * of a crash: TRACE/CONNECT and a GET or HEAD with a body (501), a request the `Request`
 * constructor rejects (400), `Response.error()` (502). Hop-by-hop request headers
 * (`Connection`, `Transfer-Encoding`, ...) describe the previous hop and are not passed on.
 * `request.signal` is `ngi.signal`, built when read; a `fetch(request)` that forwards this
 * very Request follows undici's own signal, so pass `{ signal: request.signal }` to it.
 *
 * @example
 * const app = fromFetch(async (request) => new Response(`hello ${new URL(request.url).pathname}`));
 * http.createServer(toNodeHandler(app)).listen(8080, '127.0.0.1');
 */
export function fromFetch(handler: FetchHandler): App {
  const original = (handler as Tagged)[kFetchApp];
  if (typeof original === 'function') return original;
  const app: App = (environ, startResponse) =>
    callFetchHandler(handler, environ, startResponse, undefined);
  (app as Tagged)[kFetchHandler] = handler;
  (app as Tagged)[kNgiApp] = true;
  return app;
}

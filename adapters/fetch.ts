import { kFromFetchHandler, kNgiApp, kToFetchHandler } from '../src/core/symbols.js';
import type { App } from '../src/core/types.js';
import { callFetchHandler } from '../src/guests/fetch-handler.js';
import { serveFetchRequest, type FetchRequestOptions } from '../src/hosts/fetch.js';

/**
 * A Fetch handler, as Deno, Bun, Cloudflare Workers and Hono understand it; the runtime's
 * second argument (Bun's `server`, Deno's `info`, @hono/node-server's bindings) is optional.
 */
export type FetchHandler = (request: Request, context?: unknown) => Response | Promise<Response>;

/** What the runtimes pass beside the Request that names the client. */
interface RuntimeContext {
  /** Bun: `server.requestIP(request)`. */
  requestIP?: (request: Request) => { address?: string; port?: number } | null;
  /** Deno: `info.remoteAddr`. */
  remoteAddr?: { hostname?: string; port?: number };
  /** @hono/node-server: the Node request. */
  incoming?: { socket?: { remoteAddress?: string; remotePort?: number } };
}

/** The client's address and port from the runtime's second argument, when it has them. */
function clientOf(
  request: Request,
  context: unknown,
): { address: string; port: string | undefined } | undefined {
  const runtime = context as RuntimeContext;
  let address: string | undefined;
  let port: number | undefined;
  if (typeof runtime.requestIP === 'function') {
    const peer = runtime.requestIP(request);
    address = peer?.address;
    port = peer?.port;
  } else if (typeof runtime.remoteAddr === 'object' && runtime.remoteAddr !== null) {
    address = runtime.remoteAddr.hostname;
    port = runtime.remoteAddr.port;
  } else if (typeof runtime.incoming === 'object' && runtime.incoming !== null) {
    address = runtime.incoming.socket?.remoteAddress;
    port = runtime.incoming.socket?.remotePort;
  }
  if (typeof address !== 'string' || address === '') return undefined;
  return { address, port: typeof port === 'number' ? String(port) : undefined };
}

/** What `toFetch` can be told beyond the `Request` (see `FetchRequestOptions`). */
export type ToFetchOptions = FetchRequestOptions;

type Tagged = { [kFromFetchHandler]?: FetchHandler; [kToFetchHandler]?: App; [kNgiApp]?: true };

/**
 * An NGI app as a Fetch handler `(request) => Response | Promise<Response>` for any Fetch runtime
 * (Deno, Bun, Workers, `@hono/node-server`, a Service Worker).
 *
 * The Response resolves as soon as the app's head is out; its body streams with
 * backpressure (the app is not pulled while the consumer is behind), and cancelling it
 * fires `ngi.signal`. `request.signal` is wired to `ngi.signal` as well.
 *
 * What a Fetch `Request` cannot give back: `REQUEST_URI` is taken from `request.url`, which
 * the URL parser already normalised (`.`/`..` and `%2e%2e` segments resolved, `\` read as
 * `/`, non-ASCII and spaces percent-encoded, the default port and the fragment dropped;
 * `%2F` and `%FF` do survive). `SERVER_PROTOCOL` is always `HTTP/1.1`, and `HTTP_HOST` falls
 * back to the URL's host when the request carries no `Host` header. `REMOTE_ADDR` and
 * `REMOTE_PORT` come from the runtime's second argument: Bun's `server.requestIP(request)`,
 * Deno's `info.remoteAddr`, @hono/node-server's `incoming` (or the `remoteAddress` option).
 * A body without `Content-Length` is marked `HTTP_TRANSFER_ENCODING: chunked`. A Request ngi
 * itself built from an environ (`fromFetch`, `fromHono`) brings back what it cannot carry: the
 * raw target, the client's address, TLS, the protocol, the body's framing and the body itself.
 *
 * @example
 * // Deno.serve(toFetch(app)); Bun.serve({ fetch: toFetch(app) }); export default { fetch: toFetch(app) }
 * const response = await toFetch(app)(new Request('http://localhost/hello'));
 */
export function toFetch(app: App, options: ToFetchOptions = {}): FetchHandler {
  const original = (app as Tagged)[kFromFetchHandler];
  if (typeof original === 'function') return original;
  const handler: FetchHandler = (request, context) => {
    if (options.remoteAddress !== undefined || context === undefined || context === null) {
      return serveFetchRequest(app, request, options);
    }
    const peer = clientOf(request, context);
    if (peer === undefined) return serveFetchRequest(app, request, options);
    return serveFetchRequest(app, request, {
      ...options,
      remoteAddress: peer.address,
      remotePort: peer.port,
    });
  };
  (handler as Tagged)[kToFetchHandler] = app;
  return handler;
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
  const original = (handler as Tagged)[kToFetchHandler];
  if (typeof original === 'function') return original;
  const app: App = (environ, startResponse) =>
    callFetchHandler(handler, environ, startResponse, undefined);
  (app as Tagged)[kFromFetchHandler] = handler;
  (app as Tagged)[kNgiApp] = true;
  return app;
}

import { kFromFetchHandler, kNgiApp, kToFetchHandler } from '../src/core/symbols.js';
import type { App } from '../src/core/types.js';
import { callFetchHandler } from '../src/guests/fetch-handler.js';
import { serveFetchRequest, type FetchRequestOptions } from '../src/hosts/fetch.js';

/** A Fetch handler, as Deno, Bun, Cloudflare Workers and Hono understand it. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** What `toFetch` can be told beyond the `Request` (see `FetchRequestOptions`). */
export type ToFetchOptions = FetchRequestOptions;

type Tagged = { [kFromFetchHandler]?: FetchHandler; [kToFetchHandler]?: App; [kNgiApp]?: true };

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
  const original = (app as Tagged)[kFromFetchHandler];
  if (typeof original === 'function') return original;
  const handler: FetchHandler = (request) => serveFetchRequest(app, request, options);
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

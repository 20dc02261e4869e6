import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { environFromNode } from '../src/hosts/node-environ.js';
import { LazySignal } from '../src/core/signal.js';
import type { Context } from 'hono';
import type { NodeOrigin } from '../src/core/node-origin.js';
import { kNgiApp, kNodeOrigin } from '../src/core/symbols.js';
import { consumedInput, keptInput, nodeInput } from '../src/core/input.js';
import { mountedPrefix, rawPathBelow, splitTarget } from '../src/core/url.js';
import type { App, Environ, ErrorStream } from '../src/core/types.js';
import { callFetchHandler } from '../src/guests/fetch-handler.js';
import { serveEnviron, serveFetchRequest, type NodeResponseLike } from '../src/hosts/fetch.js';

/** What ngi needs of a Hono app: its `fetch`. Structural, so hono is never imported at runtime. */
export interface HonoLike {
  fetch(request: Request, env?: unknown, executionCtx?: unknown): Response | Promise<Response>;
}

/**
 * What a Hono app behind `fromHono` finds in `c.env`: `incoming` as `@hono/node-server` gives
 * it (so `getConnInfo(c)` from `@hono/node-server/conninfo` works), and the NGI environ.
 */
export interface NgiHonoBindings {
  /** The Node request when ngi's own Node listener serves it, else just its socket addresses. */
  incoming: {
    socket: { remoteAddress?: string; remotePort?: number; remoteFamily?: string };
  };
  environ: Environ;
}

function bindingsOf(environ: Environ): NgiHonoBindings {
  const host = environ[kNodeOrigin] as NodeOrigin | undefined;
  const req = host?.req;
  if (req !== undefined) return { incoming: req, environ };
  const address = environ.REMOTE_ADDR;
  const port = Number(environ.REMOTE_PORT);
  return {
    incoming: {
      socket: {
        remoteAddress: address,
        remotePort: Number.isInteger(port) && port > 0 ? port : undefined,
        remoteFamily: address.includes(':') ? 'IPv6' : address === '' ? undefined : 'IPv4',
      },
    },
    environ,
  };
}

/**
 * A Hono app as an NGI app: its `fetch` gets a `Request` built from the environ (the URL
 * below the mount point) and `c.env` holds `incoming` (as on `@hono/node-server`) and the
 * `environ`. See `fromFetch` for what Fetch cannot express.
 *
 * @example
 * const hono = new Hono().get('/', (c) => c.text('hi'));
 * http.createServer(toNodeHandler(fromHono(hono))).listen(8080, '127.0.0.1');
 */
export function fromHono(app: HonoLike): App {
  const fetch = (request: Request, env: NgiHonoBindings) => app.fetch(request, env);
  const ngiApp: App = (environ, startResponse) =>
    callFetchHandler(fetch, environ, startResponse, bindingsOf(environ));
  (ngiApp as { [kNgiApp]?: true })[kNgiApp] = true;
  return ngiApp;
}

/** `c.env` on `@hono/node-server`: the Node request and response. */
interface NodeServerBindings {
  incoming?: Readable & { url?: string; socket?: { remoteAddress?: string } };
  outgoing?: NodeResponseLike;
}

/**
 * `ngi.input` for a request Hono may have touched: the bytes a middleware already read
 * (`c.req.text()`, `c.req.json()`, ...; Hono keeps them), the untouched Node request on
 * `@hono/node-server`, or a stream that fails with `NGI_ERR_BODY_CONSUMED` when the bytes
 * are gone. `undefined` leaves the `Request` body to `serveFetchRequest`.
 */
function inputOf(c: Context, incoming: NodeServerBindings['incoming']): Readable | undefined {
  const cache = c.req.bodyCache as Record<string, unknown>;
  for (const key in cache) {
    if (key === 'formData' && Object.keys(cache).length === 1) {
      return consumedInput('a Hono middleware parsed the body as form data; its bytes are gone');
    }
    // Hono derives any other form from whichever one it cached.
    return keptInput(c.req.arrayBuffer());
  }
  if (incoming === undefined || typeof incoming.read !== 'function') return undefined;
  return nodeInput(incoming, 'something upstream of toHono');
}

/**
 * The target as the client sent it, from the Node request on `@hono/node-server`:
 * `request.url` went through the URL parser (`%2e%2e` resolved, escapes rewritten), which the
 * app below must not see. Kept only when it still lies under the mount point Hono routed on.
 */
function rawTarget(url: string | undefined, scriptName: string): string | undefined {
  if (typeof url !== 'string' || url.charCodeAt(0) !== 47) return undefined;
  return rawPathBelow(splitTarget(url)[0], scriptName) === undefined ? undefined : url;
}

export interface ToHonoOptions {
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
}

/**
 * An NGI app as a Hono handler, for `hono.all('/legacy/*', toHono(app))` (also under
 * `hono.route()` and `basePath()`): the part of the path the route pattern matched becomes
 * `SCRIPT_NAME`, the rest `PATH_INFO`; `REQUEST_URI` stays the full raw target. On
 * `@hono/node-server` the client address reaches `REMOTE_ADDR`.
 *
 * @example
 * const hono = new Hono();
 * hono.all('/legacy/*', toHono(legacyApp));
 */
export function toHono(
  app: App,
  options: ToHonoOptions = {},
): (c: Context) => Response | Promise<Response> {
  const errors = options.errors;
  return (c) => {
    const request = c.req.raw;
    const env = c.env as NodeServerBindings | undefined;
    const outgoing = env?.outgoing;
    const incoming = env?.incoming;
    const scriptName = mountedPrefix(c.req.routePath, request.url);
    const requestUri = rawTarget(incoming?.url, scriptName);
    const nodeResponse = typeof outgoing?.once === 'function' ? outgoing : undefined;
    const input = inputOf(c, incoming);
    if (requestUri !== undefined && nodeResponse !== undefined && isHttp1(incoming)) {
      // On @hono/node-server: the environ straight from the Node request, in one pass over
      // its raw headers, instead of through the Request (whose Headers Node 20 builds slowly).
      const abort = new LazySignal();
      const [path, query] = splitTarget(requestUri);
      const below = rawPathBelow(path, scriptName)!;
      const environ = environFromNode(
        incoming,
        {
          scriptName,
          target: query === '' ? below : `${below}?${query}`,
          requestUri,
          errors,
          input,
        },
        abort,
      );
      return serveEnviron(app, environ, abort, nodeResponse);
    }
    return serveFetchRequest(app, request, {
      scriptName,
      requestUri,
      remoteAddress: incoming?.socket?.remoteAddress,
      errors,
      nodeResponse,
      input,
    });
  };
}

/** An HTTP/1 Node request (HTTP/2's raw headers hold pseudo-headers such as `:path`). */
function isHttp1(incoming: unknown): incoming is IncomingMessage {
  return (incoming as IncomingMessage | undefined)?.httpVersionMajor === 1;
}

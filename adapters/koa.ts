import type { IncomingMessage, ServerResponse } from 'node:http';
import { keptInput, nodeInput } from '../src/core/input.js';
import { serveNodeRequest } from '../src/hosts/node.js';
import { mountedTarget } from '../src/core/url.js';
import type { App, ErrorStream } from '../src/core/types.js';
import { fromNodeHandler, type NodeHandler } from './node.js';

/** What ngi needs of a Koa app: its `callback()`. Structural: koa is never imported at runtime. */
export interface KoaLike {
  callback(): NodeHandler;
}

/** The part of Koa's context `toKoa` uses. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  originalUrl: string;
  respond?: boolean;
  /** Read only for the bytes a body parser kept (`rawBody`). */
  request: object;
}

/** A Koa middleware. */
export type KoaMiddleware = (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<void>;

/**
 * A Koa app as an NGI app, through `app.callback()` (its middleware, error handling and
 * `app.proxy` settings as they are). On ngi's own Node listener Koa gets the original
 * `req`/`res`; behind an NGI middleware that wraps `startResponse`, a request and response
 * built from the environ. Either way it answers as it would on `http.createServer`.
 *
 * @example
 * const koa = new Koa().use((ctx) => { ctx.body = 'hi'; });
 * await serve(fromKoa(koa), { http: 8080 });
 */
export function fromKoa(app: KoaLike): App {
  return fromNodeHandler(app.callback());
}

export interface ToKoaOptions {
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
}

/** Where koa-body (`includeUnparsed: true`) keeps the raw body on `ctx.request.body`. */
const kUnparsedBody = Symbol.for('unparsedBody');

/**
 * The bytes a body parser kept: koa-bodyparser and @koa/bodyparser keep `ctx.request.rawBody`,
 * koa-body (`includeUnparsed`) a symbol on `ctx.request.body`. They keep text decoded with the
 * request's charset (UTF-8 by default) and inflated: it goes on as UTF-8, with its own length.
 */
function keptBytes(request: object): Uint8Array | undefined {
  const { rawBody, body } = request as { rawBody?: unknown; body?: unknown };
  let kept = rawBody;
  if (kept === undefined && typeof body === 'object' && body !== null) {
    kept = (body as { [kUnparsedBody]?: unknown })[kUnparsedBody];
  }
  if (typeof kept === 'string') return Buffer.from(kept);
  return kept instanceof Uint8Array ? kept : undefined;
}

const UPSTREAM = 'a Koa middleware upstream of toKoa';

/**
 * An NGI app as a Koa middleware, at the root (`koa.use(toKoa(app))`) or under koa-mount
 * (`koa.use(mount('/legacy', toKoa(app)))`, nested mounts too): the prefix becomes
 * `SCRIPT_NAME` (`/legacy` gives `PATH_INFO` `""`, `/legacy/` gives `/`, as `mount()` does) and
 * `REQUEST_URI` stays the raw target the client sent.
 *
 * - The app owns the response: Koa writes nothing over it (no default 404) and downstream
 *   middleware never runs. Headers set earlier (`ctx.set`, a CORS middleware) are kept and
 *   the app's headers of the same name replace them, but for `Set-Cookie`: each names its
 *   own cookie, so all the app's reach the client beside one set upstream (a session).
 * - The middleware resolves once the exchange is over, so upstream code after `await next()`
 *   (timers, loggers) sees it finished: `ctx.status` is then the status the client received.
 *   Headers can no longer change by then (a session middleware that writes its cookie after
 *   `next()` cannot add it).
 * - An app that fails before it responds rejects the middleware with its error, so Koa's own
 *   error handling answers: an upstream `try { await next() } catch`, else `ctx.onerror`
 *   (500, or the error's `status`) and `app.on('error')`. A failure after the head is out
 *   aborts the connection (the client never mistakes it for a complete response), is logged
 *   to `errors`, and the middleware resolves.
 * - A body a middleware upstream already read reaches the app if the parser kept it
 *   (`ctx.request.rawBody`), with `CONTENT_LENGTH` its length as kept (inflated, UTF-8);
 *   otherwise reading `ngi.input` fails with `NGI_ERR_BODY_CONSUMED` (a 500 through Koa's
 *   error handling), never a hang.
 *
 * @example
 * const koa = new Koa();
 * koa.use(cors());
 * koa.use(mount('/legacy', toKoa(legacyApp)));
 */
export function toKoa(app: App, options: ToKoaOptions = {}): KoaMiddleware {
  const errors = options.errors;
  return (ctx) => {
    const req = ctx.req;
    const url = req.url ?? '/';
    const originalUrl = ctx.originalUrl ?? url;
    const { scriptName, target } = mountedTarget(originalUrl, url);
    const kept = keptBytes(ctx.request);
    const respond = ctx.respond;
    ctx.respond = false;
    // Koa marks an unanswered response 404 on the Node response itself; a Node handler the
    // app hands it to (the fast path of fromNodeHandler) must find it as fresh: 200.
    if (!ctx.res.headersSent) ctx.res.statusCode = 200;
    return new Promise<void>((onDone, reject) => {
      serveNodeRequest(app, req, ctx.res, {
        scriptName,
        target,
        requestUri: originalUrl,
        errors,
        input: kept === undefined ? nodeInput(req, UPSTREAM) : keptInput(kept),
        inputLength: kept?.byteLength,
        next: (error) => {
          // Nothing was sent: hand the response back to Koa for its error handling.
          ctx.respond = respond;
          reject(error);
        },
        onDone,
      });
    });
  };
}

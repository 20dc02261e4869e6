import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveNodeRequest } from '../src/_node-host.js';
import { mountedTarget } from '../src/_url.js';
import type { App, ErrorStream } from '../src/types.js';
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
}

/** A Koa middleware. */
export type KoaMiddleware = (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<void>;

/**
 * A Koa app as an NGI app, through `app.callback()` (its middleware, error handling and
 * `app.proxy` settings as they are).
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

/**
 * An NGI app as a Koa middleware, at the root (`koa.use(toKoa(app))`) or under koa-mount
 * (`koa.use(mount('/legacy', toKoa(app)))`: the prefix becomes `SCRIPT_NAME`). The app owns
 * the response: Koa writes nothing of its own over it (no default 404), headers earlier
 * middleware set (`ctx.set`) are kept, and the middleware resolves when the exchange is
 * over, so upstream middleware that awaits `next()` (timers, loggers) sees it finished.
 *
 * @example
 * const koa = new Koa();
 * koa.use(mount('/legacy', toKoa(legacyApp)));
 */
export function toKoa(app: App, options: ToKoaOptions = {}): KoaMiddleware {
  const errors = options.errors;
  return (ctx) => {
    const req = ctx.req;
    const url = req.url ?? '/';
    const { scriptName, target } = mountedTarget(ctx.originalUrl ?? url, url);
    ctx.respond = false;
    return new Promise<void>((onDone) => {
      serveNodeRequest(app, req, ctx.res, {
        scriptName,
        target,
        requestUri: ctx.originalUrl,
        errors,
        onDone,
      });
    });
  };
}

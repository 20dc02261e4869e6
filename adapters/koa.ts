import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { keptInput, nodeInput } from '../src/core/input.js';
import {
  repeatsEarlier,
  servePipelineRequest,
  type PipelineResponse,
} from '../src/hosts/pipeline.js';
import { mountedTarget } from '../src/core/url.js';
import type { App, ErrorStream } from '../src/core/types.js';
import { fromNodeHandler, type NodeHandler } from './node.js';

/** What ngi needs of a Koa app: its `callback()`. Structural: koa is never imported at runtime. */
export interface KoaLike {
  callback(): NodeHandler;
  /** Koa apps are event emitters: `'error'` tells of errors Koa could not answer. */
  on?(event: 'error', listener: (error: unknown, ctx?: { res?: ServerResponse }) => void): unknown;
}

/** Koa apps whose `'error'` event already ends a response the error left open. */
const abortsAfterHead = new WeakSet<object>();

/**
 * Koa answers an error after the head was sent (`ctx.flushHeaders()`, then a throw) by doing
 * nothing: the response stays open and the client waits for a body that never ends. Under ngi
 * the rule is that an error after the head aborts the connection (R9.2), so the client learns
 * the answer is broken. Added after `callback()`, which puts Koa's own logger first when the
 * app had no listener.
 */
function abortOnErrorAfterHead(app: KoaLike): void {
  if (app.on === undefined || abortsAfterHead.has(app)) return;
  abortsAfterHead.add(app);
  app.on('error', (error, ctx) => {
    const res = ctx?.res;
    const sent = (error as { headerSent?: unknown } | null)?.headerSent === true;
    if (sent && res !== undefined && !res.writableEnded && !res.destroyed) res.destroy();
  });
}

/** The part of Koa's context `toKoa` uses. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  originalUrl: string;
  status: number;
  message: string;
  body: unknown;
  append(name: string, value: string): void;
  /** Read for the bytes a body parser kept (`rawBody`). */
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
  const handler = app.callback();
  abortOnErrorAfterHead(app);
  return fromNodeHandler(handler);
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
 * Puts the app's response on Koa's context, so middleware after `await next()` reads and
 * changes it as any Koa response, and Koa sends it.
 */
function answerThroughKoa(ctx: KoaContextLike, response: PipelineResponse): void {
  const { body, headers } = response;
  // Status and headers first: Koa's body setter then finds the app's type and skips its own
  // guess (a MIME lookup per response), and leaves an explicit status alone.
  ctx.status = response.code;
  if (response.reason !== '' && response.reason !== STATUS_CODES[response.code]) {
    ctx.message = response.reason;
  }
  // The app's headers replace same-named ones set upstream, its duplicates kept; cookies add
  // up instead (each names its own cookie: a session's survives beside the app's).
  // `res.setHeader` is what Koa's `ctx.set` does for one string value, without the arrays it
  // builds per call; Koa reads its headers back from `res`.
  const res = ctx.res;
  // A head already out (an upstream `ctx.flushHeaders()`): Koa ignores header changes then,
  // and so does this (`res.setHeader` would throw); the body still follows.
  const open = !res.headersSent;
  let length: string | undefined;
  for (let i = 0; open && i < headers.length; i++) {
    const [name, value] = headers[i]!;
    const lower = name.toLowerCase();
    if (lower === 'content-length') length = value;
    if (lower === 'set-cookie' || repeatsEarlier(headers, i, lower)) ctx.append(name, value);
    else res.setHeader(name, value);
  }
  if (body !== null) {
    // Koa types a body that has no Content-Type; this one had none, upstream's or the app's.
    const typed = !open || res.hasHeader('Content-Type');
    ctx.body = body;
    if (!typed) res.removeHeader('Content-Type');
    // Koa's setter computes the length of a finished body and drops none it is not given:
    // the app's own header is what goes out.
    if (open && length !== undefined) res.setHeader('Content-Length', length);
  }
  if (open && response.length >= 0) res.setHeader('Content-Length', String(response.length));
}

/**
 * An NGI app as a Koa middleware, at the root (`koa.use(toKoa(app))`) or under koa-mount
 * (`koa.use(mount('/legacy', toKoa(app)))`, nested mounts too): the prefix becomes
 * `SCRIPT_NAME` (`/legacy` gives `PATH_INFO` `""`, `/legacy/` gives `/`, as `mount()` does) and
 * `REQUEST_URI` stays the raw target the client sent.
 *
 * - The app answers through Koa: once its head is known, `ctx.status`, its headers
 *   (on `ctx.res`, as `ctx.set` puts them; every `Set-Cookie` kept, beside those set
 *   upstream) and `ctx.body` (a Buffer for a finished body, else a stream that still delivers
 *   each chunk as the app writes it, with backpressure) are set and the middleware resolves. So everything upstream after
 *   `await next()` acts on it as on a native response: koa-compress, koa-session's cookie,
 *   koa-etag and conditional GET, security headers, loggers. Downstream middleware never runs.
 * - A client that goes away (or a middleware that replaces the stream body) stops the app's
 *   body and fires `ngi.signal`.
 * - An app that fails before it responds rejects the middleware with its error, so Koa's own
 *   error handling answers: an upstream `try { await next() } catch`, else `ctx.onerror`
 *   (500, or the error's `status`) and `app.on('error')`. A failure after the head is out
 *   aborts the connection (the client never mistakes it for a complete response) and is
 *   logged to `errors`.
 * - A body a middleware upstream already read reaches the app if the parser kept it
 *   (`ctx.request.rawBody`), with `CONTENT_LENGTH` its length as kept (inflated, UTF-8);
 *   otherwise reading `ngi.input` fails with `NGI_ERR_BODY_CONSUMED` (a 500 through Koa's
 *   error handling), never a hang.
 * - A Node handler app (`fromExpress`, `fromKoa`) runs on a request and response built from
 *   the environ, not on Koa's own `req`/`res`: its answer too goes through Koa.
 *
 * @example
 * const koa = new Koa();
 * koa.use(compress());
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
    return new Promise<void>((resolve, reject) => {
      servePipelineRequest(
        app,
        req,
        ctx.res,
        (response) => {
          answerThroughKoa(ctx, response);
          resolve();
        },
        {
          scriptName,
          target,
          requestUri: originalUrl,
          errors,
          input: kept === undefined ? nodeInput(req, UPSTREAM) : keptInput(kept),
          inputLength: kept?.byteLength,
          onFailure: reject,
        },
      );
    });
  };
}

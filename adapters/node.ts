import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  logAfterResponse,
  rawMountPoint,
  runOnEnviron,
  targetBelowMount,
} from '../src/_node-emulation.js';
import { NodeSink, serveNodeRequest, type NodeRequestOptions } from '../src/_node-host.js';
import { kNgiApp, kNodeHost, kOriginal } from '../src/_symbols.js';
import { originForm } from '../src/_url.js';
import type { App, Environ, StartResponse } from '../src/types.js';

/** A Node request handler, optionally connect-style with `next`. */
export type NodeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (error?: unknown) => void,
) => unknown;

export type ToNodeHandlerOptions = Pick<NodeRequestOptions, 'errors' | 'multiprocess'>;

type Tagged = { [kOriginal]?: unknown; [kNgiApp]?: true };

/**
 * An NGI app as a Node `(req, res, next?)` handler, for `http.createServer`, supertest or
 * connect-style `use`. Given `next`, an app that fails before responding calls `next(err)`.
 *
 * @example
 * import { createServer } from 'node:http';
 * createServer(toNodeHandler(app)).listen(8080, '127.0.0.1');
 */
export function toNodeHandler(app: App, options: ToNodeHandlerOptions = {}): NodeHandler {
  const original = (app as Tagged)[kOriginal];
  if (typeof original === 'function') return original as NodeHandler;
  // One options object for every request; one with `next` only when connect passes it.
  const shared = { errors: options.errors, multiprocess: options.multiprocess };
  const handler: NodeHandler = (req, res, next) => {
    serveNodeRequest(app, req, res, next === undefined ? shared : { ...shared, next });
  };
  (handler as Tagged)[kOriginal] = app;
  return handler;
}

/**
 * Any Node `(req, res)` handler (an Express app, `koa.callback()`, a plain function) as an
 * NGI app.
 *
 * When the request came from ngi's own Node listener and nothing in between wrapped
 * `startResponse`, the handler gets the original `req`/`res` (native speed); otherwise it
 * gets a request and response built from the environ and written through `startResponse`.
 *
 * @example
 * import express from 'express';
 * const app = fromNodeHandler(express().get('/', (req, res) => res.send('hi')));
 */
export function fromNodeHandler(handler: NodeHandler): App {
  const original = (handler as Tagged)[kOriginal];
  if (typeof original === 'function') return original as App;
  const app = (environ: Environ, startResponse: StartResponse) => {
    const host = environ[kNodeHost];
    if (
      host instanceof NodeSink &&
      host.exchange !== undefined &&
      host.exchange.startResponse === startResponse &&
      // A body read upstream (kept or gone) is only in `ngi.input`: the handler needs that.
      environ['ngi.input'] === host.req &&
      host.exchange.handOff()
    ) {
      handOver(handler, host, environ);
      return EMPTY;
    }
    return runOnEnviron(handler, environ, startResponse);
  };
  (app as Tagged)[kOriginal] = handler;
  (app as Tagged)[kNgiApp] = true;
  return app;
}

const EMPTY: never[] = [];

/** The fast path: the original request and response, the URL moved below the mount point. */
function handOver(handler: NodeHandler, host: NodeSink, environ: Environ): void {
  const { req, res } = host;
  if (environ.SCRIPT_NAME !== '') {
    const mounted = req as IncomingMessage & { originalUrl?: string; baseUrl?: string };
    const url = req.url;
    const baseUrl = mounted.baseUrl;
    const originalUrl = mounted.originalUrl;
    // REQUEST_URI is the target as the client sent it, whichever router cut `req.url` (koa-mount).
    // An absolute-form `url` no router cut is the original (REQUEST_URI keeps only its path).
    mounted.originalUrl =
      originalUrl ??
      (url !== undefined && url.charCodeAt(0) !== 47 /* / */ ? url : environ.REQUEST_URI);
    mounted.baseUrl = rawMountPoint(environ);
    let below = targetBelowMount(environ);
    // Express's own router keeps the origin of an absolute-form target (`GET http://h/x`).
    if (url !== undefined && url.charCodeAt(0) !== 47 /* / */) {
      const path = originForm(url);
      if (url.endsWith(path)) below = url.slice(0, url.length - path.length) + below;
    }
    req.url = below;
    // The handler's routers move url and baseUrl further and never put them back once they
    // answer. The host's framework (an outer Express app around toExpress) gets its own view
    // back for its 'finish'/'close' listeners, which were registered first.
    let restored = false;
    const restore = () => {
      if (restored) return;
      restored = true;
      req.url = url;
      mounted.baseUrl = baseUrl;
      mounted.originalUrl = originalUrl;
    };
    res.prependOnceListener('finish', restore);
    res.prependOnceListener('close', restore);
  }
  const result = handler(req, res);
  // `http.createServer` would crash on an async handler's rejection: answer it instead.
  if (typeof (result as Promise<unknown> | undefined)?.then === 'function') {
    (result as Promise<unknown>).then(undefined, (error: unknown) =>
      failLate(host, environ, error),
    );
  }
}

/** A handler that rejected: a 500 page, or an aborted connection once its head is out. */
function failLate(host: NodeSink, environ: Environ, error: unknown): void {
  // A finished response is left alone (destroying it could cut bytes still in the socket).
  if (!host.res.writableEnded) host.exchange!.fail(error);
  else logAfterResponse(environ, error);
}

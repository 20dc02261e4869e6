import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { formatError } from '../core/errors.js';
import type { NodeOrigin, NodeUpgrade } from '../core/node-origin.js';
import { kFromNodeHandler, kNgiApp, kNodeOrigin, kToNodeHandler } from '../core/symbols.js';
import { originForm, rawMountPoint, targetBelowMount } from '../core/url.js';
import type { App, Environ, StartResponse } from '../core/types.js';
import { logAfterResponse, runOnEnviron } from './node-emulation.js';

/** A Node request handler, optionally connect-style with `next`. */
export type NodeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (error?: unknown) => void,
) => unknown;

/** A Node `'upgrade'` listener: takes the raw connection of a request that asks for another protocol. */
export type NodeUpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => unknown;

export interface FromNodeHandlerOptions {
  /**
   * Takes upgrade requests (`Upgrade: websocket`, ...) that reach the app on a host that has
   * their raw connection (ngi's HTTP listener, `toNodeHandler(app).upgrade`), as
   * `server.on('upgrade', listener)` would. Without it, an upgrade request is an ordinary
   * request to the handler, as Node serves it when no `'upgrade'` listener is attached.
   */
  upgrade?: NodeUpgradeHandler | undefined;
}

type Tagged = { [kFromNodeHandler]?: NodeHandler; [kToNodeHandler]?: App; [kNgiApp]?: true };

/**
 * Any Node `(req, res)` handler (an Express app, `koa.callback()`, a plain function) as an
 * NGI app.
 *
 * When the request came from a Node host and nothing in between wrapped `startResponse`,
 * the handler gets the original `req`/`res` (native speed); otherwise it gets a request and
 * response built from the environ and written through `startResponse`.
 *
 * @example
 * import express from 'express';
 * const app = fromNodeHandler(express().get('/', (req, res) => res.send('hi')));
 */
export function fromNodeHandler(handler: NodeHandler, options: FromNodeHandlerOptions = {}): App {
  const upgrade = options.upgrade;
  const original = (handler as Tagged)[kToNodeHandler];
  if (typeof original === 'function' && upgrade === undefined) return original;
  const app = (environ: Environ, startResponse: StartResponse) => {
    const origin = environ[kNodeOrigin] as NodeOrigin | undefined;
    if (origin !== undefined) {
      if (upgrade !== undefined && origin.upgrade !== undefined) {
        const taken = origin.takeUpgrade(startResponse, environ['ngi.input']);
        if (taken !== undefined) {
          upgradeOver(upgrade, origin.req, taken, environ);
          return EMPTY;
        }
      } else if (origin.handOff(startResponse, environ['ngi.input'])) {
        handOver(handler, origin, environ);
        return EMPTY;
      }
    }
    return runOnEnviron(handler, environ, startResponse);
  };
  // Only a plain handler round-trips: `toNodeHandler` of the app must keep its upgrades.
  if (upgrade === undefined) (app as Tagged)[kFromNodeHandler] = handler;
  (app as Tagged)[kNgiApp] = true;
  return app;
}

const EMPTY: never[] = [];

/** The raw connection to an upgrade listener, `req.url` below the mount point as a router sees it. */
function upgradeOver(
  listener: NodeUpgradeHandler,
  req: IncomingMessage,
  { socket, head }: NodeUpgrade,
  environ: Environ,
): void {
  if (environ.SCRIPT_NAME !== '') {
    const mounted = req as IncomingMessage & { originalUrl?: string; baseUrl?: string };
    mounted.originalUrl ??= environ.REQUEST_URI;
    mounted.baseUrl = rawMountPoint(environ);
    req.url = targetBelowMount(environ);
  }
  try {
    const result = listener(req, socket, head);
    if (typeof (result as Promise<unknown> | undefined)?.then === 'function') {
      (result as Promise<unknown>).then(undefined, (error: unknown) =>
        lost(environ, socket, error),
      );
    }
  } catch (error) {
    lost(environ, socket, error);
  }
}

/** An upgrade listener failed: nothing sensible can be written on a half-switched connection. */
function lost(environ: Environ, socket: Duplex, error: unknown): void {
  environ['ngi.errors'].write(formatError(error, `upgrade ${environ.REQUEST_URI}`));
  socket.destroy();
}

/** The fast path: the original request and response, the URL moved below the mount point. */
function handOver(handler: NodeHandler, origin: NodeOrigin, environ: Environ): void {
  const { req, res } = origin;
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
    (result as Promise<unknown>).then(undefined, (error: unknown) => {
      // A finished response is left alone (destroying it could cut bytes still in the socket).
      if (!res.writableEnded) origin.fail(error);
      else logAfterResponse(environ, error);
    });
  }
}

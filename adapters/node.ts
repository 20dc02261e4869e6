import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveNodeRequest, type NodeRequestOptions } from '../src/_node-host.js';
import { kOriginal } from '../src/_symbols.js';
import type { App } from '../src/types.js';

/** A Node request handler, optionally connect-style with `next`. */
export type NodeHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  next?: (error?: unknown) => void,
) => void;

export type ToNodeHandlerOptions = Pick<NodeRequestOptions, 'errors' | 'multiprocess'>;

/**
 * An NGI app as a Node `(req, res, next?)` handler, for `http.createServer`, supertest or
 * connect-style `use`. Given `next`, an app that fails before responding calls `next(err)`.
 *
 * @example
 * import { createServer } from 'node:http';
 * createServer(toNodeHandler(app)).listen(8080, '127.0.0.1');
 */
export function toNodeHandler(app: App, options: ToNodeHandlerOptions = {}): NodeHandler {
  const original = (app as { [kOriginal]?: unknown })[kOriginal];
  if (typeof original === 'function') return original as NodeHandler;
  const handler: NodeHandler = (req, res, next) => {
    serveNodeRequest(app, req, res, {
      errors: options.errors,
      multiprocess: options.multiprocess,
      next,
    });
  };
  (handler as { [kOriginal]?: unknown })[kOriginal] = app;
  return handler;
}

import { serveNodeRequest, type NodeRequestOptions } from '../src/hosts/node.js';
import { serveNodeUpgrade } from '../src/hosts/node-upgrade.js';
import { kNgiApp, kFromNodeHandler, kToNodeHandler } from '../src/core/symbols.js';
import type { App } from '../src/core/types.js';
import {
  fromNodeHandler,
  type FromNodeHandlerOptions,
  type NodeHandler,
  type NodeUpgradeHandler,
} from '../src/guests/node-handler.js';
import { fromNodeServer, type NodeServerLike } from '../src/guests/node-server.js';

export {
  fromNodeHandler,
  fromNodeServer,
  type FromNodeHandlerOptions,
  type NodeHandler,
  type NodeServerLike,
  type NodeUpgradeHandler,
};

export type ToNodeHandlerOptions = Pick<NodeRequestOptions, 'errors' | 'multiprocess'>;

type Tagged = { [kFromNodeHandler]?: NodeHandler; [kToNodeHandler]?: App; [kNgiApp]?: true };

/**
 * An NGI app as a Node `(req, res, next?)` handler, for `http.createServer`, supertest or
 * connect-style `use`. Given `next`, an app that fails before responding calls `next(err)`.
 *
 * @example
 * import { createServer } from 'node:http';
 * createServer(toNodeHandler(app)).listen(8080, '127.0.0.1');
 */
export function toNodeHandler(app: App, options: ToNodeHandlerOptions = {}): NodeHandler {
  const original = (app as Tagged)[kFromNodeHandler];
  if (typeof original === 'function') return original;
  // One options object for every request; one with `next` only when connect passes it.
  const shared = { errors: options.errors, multiprocess: options.multiprocess };
  const handler: NodeHandler = (req, res, next) => {
    serveNodeRequest(app, req, res, next === undefined ? shared : { ...shared, next });
  };
  (handler as Tagged)[kToNodeHandler] = app;
  return handler;
}

/**
 * An NGI app as a Node `'upgrade'` listener: the app sees the upgrade request like any other
 * (an HTTP answer refuses it, and the connection closes after), and a Node upgrade listener
 * inside it (`fromNodeServer`, `fromNodeHandler(h, { upgrade })`, mounted anywhere below)
 * gets the raw connection.
 *
 * @example
 * const server = createServer(toNodeHandler(app));
 * server.on('upgrade', toNodeUpgradeHandler(app));
 */
export function toNodeUpgradeHandler(
  app: App,
  options: ToNodeHandlerOptions = {},
): NodeUpgradeHandler {
  const shared = { errors: options.errors, multiprocess: options.multiprocess };
  return (req, socket, head) => {
    serveNodeUpgrade(app, req, socket, head, shared);
  };
}

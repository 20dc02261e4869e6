import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveNodeRequest } from '../src/_node-host.js';
import { mountedTarget } from '../src/_url.js';
import type { App, ErrorStream } from '../src/types.js';
import { fromNodeHandler, type NodeHandler } from './node.js';

/** What ngi needs of an Express app: it is a `(req, res, next)` handler. */
export type ExpressLike = NodeHandler;

/** The request an Express middleware sees (only what `toExpress` reads). */
interface ExpressRequest extends IncomingMessage {
  originalUrl?: string;
}

/** An Express (or connect-style) middleware. */
export type ExpressMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

export interface ToExpressOptions {
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
}

/**
 * An Express app as an NGI app. On ngi's own Node listener it gets the original `req`/`res`
 * (native speed); elsewhere a request and response built from the environ.
 *
 * @example
 * const app = express().get('/', (req, res) => res.send('hi'));
 * await serve(fromExpress(app), { http: 8080 });
 */
export function fromExpress(app: ExpressLike): App {
  return fromNodeHandler(app);
}

/**
 * An NGI app as an Express middleware, for `expressApp.use('/legacy', toExpress(app))` and
 * router-level `use`: the part of the path Express's router matched (`req.baseUrl`) becomes
 * `SCRIPT_NAME`, `REQUEST_URI` stays the full raw target, and headers set before the mount
 * (CORS, helmet, ...) reach the client. A failure before the app responds goes to `next(err)`,
 * so Express's error handlers answer it.
 *
 * @example
 * const outer = express();
 * outer.use(cors());
 * outer.use('/legacy', toExpress(legacyApp));
 */
export function toExpress(app: App, options: ToExpressOptions = {}): ExpressMiddleware {
  const errors = options.errors;
  return (req, res, next) => {
    const url = req.url ?? '/';
    const originalUrl = (req as ExpressRequest).originalUrl ?? url;
    const { scriptName, target } = mountedTarget(originalUrl, url);
    serveNodeRequest(app, req, res, {
      scriptName,
      target,
      requestUri: originalUrl,
      errors,
      next,
    });
  };
}

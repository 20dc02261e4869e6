import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { consumedInput, keptInput } from '../src/core/input.js';
import { serveNodeRequest } from '../src/hosts/node.js';
import { decodePath, mountedTarget, splitTarget } from '../src/core/url.js';
import type { App, ErrorStream } from '../src/core/types.js';
import { fromNodeHandler, type NodeHandler } from './node.js';

/** What ngi needs of an Express app: it is a `(req, res, next)` handler. */
export type ExpressLike = NodeHandler;

/** The request an Express middleware sees (only what `toExpress` reads). */
interface ExpressRequest extends IncomingMessage {
  originalUrl?: string;
  baseUrl?: string;
  body?: unknown;
  rawBody?: unknown;
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

const CONSUMED =
  'a middleware upstream of toExpress read the request body and kept no bytes of it: use ' +
  'express.raw(), or give express.json/urlencoded/text a verify(req, res, buf) that sets ' +
  'req.rawBody = buf';

/**
 * The bytes a body parser upstream left of a body it read: `express.raw()` leaves a Buffer in
 * `req.body`, a `verify(req, res, buf)` hook can keep `req.rawBody`. A parsed object or decoded
 * text is not what the client sent (whitespace, key order, charset, BOM are gone), so it is
 * never re-serialised: `undefined`, the bytes are lost.
 */
function keptBytes(req: ExpressRequest): Uint8Array | undefined {
  const raw = req.rawBody;
  if (raw instanceof Uint8Array) return raw;
  if (typeof raw === 'string') return Buffer.from(raw);
  const body = req.body;
  return body instanceof Uint8Array ? body : undefined;
}

/**
 * An NGI app as an Express middleware, for `expressApp.use('/legacy', toExpress(app))` and
 * router-level `use` (`router.use(...)`, `app.use('/:tenant/legacy', ...)`): the part of the
 * path Express's router matched (`req.baseUrl`, decoded) becomes `SCRIPT_NAME`, the rest
 * `PATH_INFO` (`""` for `/legacy`, `/` for `/legacy/`, as `mount()` gives), and `REQUEST_URI`
 * stays the full raw target. Headers set before the mount (CORS, helmet, cookies) reach the
 * client unless the app sets the same name itself. A body an upstream parser read reaches the
 * app when its bytes were kept (`express.raw()`, or `req.rawBody` from a `verify` hook);
 * otherwise reading `ngi.input` fails with `NGI_ERR_BODY_CONSUMED`. A failure before the app
 * responds goes to `next(err)`, so Express's error handlers answer it.
 *
 * @example
 * const outer = express();
 * outer.use(cors());
 * outer.use(express.json({ verify: (req, res, buf) => (req.rawBody = buf) }));
 * outer.use('/legacy', toExpress(legacyApp));
 */
export function toExpress(app: App, options: ToExpressOptions = {}): ExpressMiddleware {
  const errors = options.errors;
  return (req: ExpressRequest, res, next) => {
    const url = req.url ?? '/';
    const originalUrl = req.originalUrl ?? url;
    let scriptName: string;
    let target: string;
    const baseUrl = req.baseUrl;
    if (baseUrl === undefined) {
      ({ scriptName, target } = mountedTarget(originalUrl, url));
    } else {
      // Express's own cut, right even after a middleware rewrote req.url; only its `/` for the
      // bare mount point needs the original path to tell `/legacy` from `/legacy/`.
      scriptName = decodePath(baseUrl);
      target = url;
      if (baseUrl !== '' && (url === '/' || url.startsWith('/?'))) {
        const [path] = splitTarget(originalUrl);
        if (!path.endsWith('/')) target = url.slice(1);
      }
    }
    let input: Readable | undefined;
    let inputLength: number | undefined;
    // Only a request something already read needs more than `req` itself as ngi.input.
    if (req.readableDidRead) {
      const kept = keptBytes(req);
      if (kept === undefined) {
        input = consumedInput(CONSUMED);
      } else {
        // body-parser inflates gzip/deflate/br: the kept bytes carry their own length.
        input = keptInput(kept);
        inputLength = kept.byteLength;
      }
    }
    serveNodeRequest(app, req, res, {
      scriptName,
      target,
      requestUri: originalUrl,
      errors,
      input,
      inputLength,
      next,
    });
  };
}

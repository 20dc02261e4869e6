import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import {
  repeatsEarlier,
  servePipelineRequest,
  type PipelineResponse,
} from '../src/hosts/pipeline.js';
import { NgiError, RequestError } from '../src/core/errors.js';
import { decodePath, rawPathBelow, splitTarget } from '../src/core/url.js';
import type { App, ErrorStream } from '../src/core/types.js';
import { fromNodeHandler } from './node.js';
import { withLifespan } from '../src/core/lifespan.js';

/** What ngi needs of a Fastify instance (structural: fastify is never imported at runtime). */
export interface FastifyLike {
  ready(): PromiseLike<unknown>;
  /** Runs the instance's `onClose` hooks: the app's lifespan shutdown. */
  close?(): PromiseLike<unknown>;
  routing(req: IncomingMessage, res: ServerResponse): void;
  /** The instance's own (never listening) server, where `@fastify/websocket` takes upgrades. */
  readonly server?: {
    emit(event: string, ...args: unknown[]): boolean;
    listenerCount(event: string): number;
  };
}

/**
 * A Fastify instance as an NGI app: `ready()` first (plugins loaded, routes sealed), then
 * Fastify's own routing for every request, with its hooks, schemas and error handling. Its
 * lifespan shutdown is `fastify.close()`, so `onClose` hooks run when a host stops the app
 * (`ngi serve`: on stop, and for each worker a reload or recycle replaces).
 * Upgrade requests go to the `'upgrade'` listeners of `fastify.server` when a plugin put one
 * there (`@fastify/websocket` routes them through Fastify, hooks included).
 *
 * @example
 * const fastify = Fastify().get('/', async () => ({ hello: 'world' }));
 * await serve(await fromFastify(fastify), { http: 8080 });
 */
export async function fromFastify(fastify: FastifyLike): Promise<App> {
  await fastify.ready();
  const handler = (req: IncomingMessage, res: ServerResponse) => fastify.routing(req, res);
  const server = fastify.server;
  // A plugin (`@fastify/websocket`) listens for upgrades on the instance's server: carry them there.
  const app =
    server !== undefined && server.listenerCount('upgrade') > 0
      ? fromNodeHandler(handler, {
          upgrade: (req, socket, head) => server.emit('upgrade', req, socket, head),
        })
      : fromNodeHandler(handler);
  if (typeof fastify.close !== 'function') return app;
  return withLifespan(app, {
    // Already ready: plugins that fail to load fail `fromFastify` itself, with their message.
    startup: async () => void (await fastify.ready()),
    shutdown: async () => void (await fastify.close!()),
  });
}

export interface ToFastifyOptions {
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
}

/** The plugin `toFastify` returns: register it with a `prefix`, or without one. */
export type NgiFastifyPlugin = (
  fastify: FastifyInstance,
  options: Record<string, unknown>,
  done: (error?: Error) => void,
) => void;

/** One `toFastify` registration, found again by `passBadUrls` for paths the router refused. */
interface Mounted {
  scriptName: string;
  serve: (request: FastifyRequest, reply: FastifyReply) => void;
}

function bodyConsumed(): NgiError {
  const message =
    'a Fastify route read the request body before handing it to toFastify (NGI_ERR_BODY_CONSUMED)';
  return Object.assign(new NgiError('NGI_ERR_BODY_CONSUMED', message), { statusCode: 500 });
}

/**
 * What Fastify's error handling gets for an app that failed before its head: the status ngi
 * would answer and its standard reason as the message (Fastify's default handler sends the
 * message to the client), the app's error as `cause` for a custom error handler.
 */
function failure(error: unknown): Error {
  const status = error instanceof RequestError ? error.status : 500;
  return Object.assign(
    new NgiError('NGI_ERR_APP_THREW', STATUS_CODES[status] ?? 'Error', { cause: error }),
    { statusCode: status },
  );
}

/**
 * Sends the app's response with `reply`, so `onSend` hooks (compression, ETags, security
 * headers) see the payload and `onResponse` the status: as for a route's own answer.
 */
function answerThroughReply(reply: FastifyReply, response: PipelineResponse): void {
  const { code, headers } = response;
  reply.code(code);
  if (response.reason !== '' && response.reason !== STATUS_CODES[code]) {
    reply.raw.statusMessage = response.reason;
  }
  // The app's headers replace same-named ones a hook set (`reply.header`); several of one
  // name go as one list, and cookies add up (Fastify appends each `Set-Cookie`).
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    const lower = name.toLowerCase();
    if (lower === 'set-cookie') {
      reply.header(name, value);
      continue;
    }
    if (repeatsEarlier(headers, i, lower)) continue;
    let values: string | string[] = value;
    for (let j = i + 1; j < headers.length; j++) {
      if (headers[j]![0].toLowerCase() === lower) {
        values =
          typeof values === 'string' ? [values, headers[j]![1]] : [...values, headers[j]![1]];
      }
    }
    reply.header(name, values);
  }
  if (response.length >= 0) reply.header('content-length', String(response.length));
  const body = response.body;
  // Nothing to send is no payload: Fastify types an empty Buffer `application/octet-stream`,
  // and a string without a type `text/plain`: bytes, as the app's response had no type.
  reply.send(
    body === null || (!(body instanceof Readable) && body.length === 0)
      ? undefined
      : typeof body === 'string' && !reply.hasHeader('content-type')
        ? Buffer.from(body)
        : body,
  );
}

/** Registrations per HTTP server: every encapsulated instance of one Fastify shares it. */
const mountsOf = new WeakMap<object, Mounted[]>();

/**
 * An NGI app as a Fastify plugin, for `fastify.register(toFastify(app), { prefix: '/legacy' })`
 * (nested `register` prefixes add up). The plugin is the not-found handler of its prefix, so
 * it answers every method — HEAD, OPTIONS, TRACE and methods Fastify has no routes for
 * included — on the prefix itself (`/legacy`: `PATH_INFO` `""`; `/legacy/`: `"/"`) and
 * everything below it, and the prefix becomes `SCRIPT_NAME`. Fastify's own routes win: one
 * that matches (`fastify.get('/legacy/new')`, or any route when registered without a prefix)
 * answers, and the NGI app gets the rest; so registering without a prefix never clashes with
 * the instance's routes (it takes the place of the instance's not-found handler, which cannot
 * then be set again for that prefix).
 *
 * Inside the prefix no content-type parser runs, so the body reaches the app raw as
 * `ngi.input`: any media type, no 415 and no `bodyLimit` (Fastify still answers 415 to a
 * `Content-Type` that is not `type/subtype`, and 400 to a `QUERY` without one, before any
 * plugin runs). A route that parsed the body and then calls `reply.callNotFound()` hands the
 * app nothing to read: that is a 500 naming `NGI_ERR_BODY_CONSUMED`, never an empty body. The path reaches the app as sent: `REQUEST_URI` raw, `PATH_INFO` decoded,
 * `%2F` kept (Fastify's router refuses a path that does not decode, like `%FF`, unless the
 * instance is built with `frameworkErrors: passBadUrls()`).
 *
 * The app answers through `reply`: once its head is known, `reply.code()`, its headers
 * (replacing same-named ones a hook set, every `Set-Cookie` kept) and `reply.send()` of a
 * Buffer (a finished body) or of a stream (each chunk as the app writes it, with
 * backpressure). So every hook and plugin acts as on a route of the instance: `onRequest`,
 * `preParsing`, `preValidation`, `preHandler` (a hook that replies or fails answers instead
 * of the app), `onSend` (@fastify/compress, @fastify/etag, @fastify/helmet, @fastify/cors),
 * `onResponse`, `onRequestAbort`, and the request log with the app's status. An app that
 * fails before its head goes to `reply.send(error)`: Fastify's error handler and `onError`
 * hooks answer. A failure after the head aborts the connection. `preSerialization` never
 * runs (the payload is bytes, never an object). A body without `Content-Type` is sent as
 * Fastify sends bytes: `application/octet-stream`.
 *
 * @example
 * const fastify = Fastify({ logger: true });
 * await fastify.register(toFastify(legacyApp), { prefix: '/legacy' });
 * fastify.get('/health', async () => 'ok'); // Fastify's; the rest of /legacy is the app's
 */
export function toFastify(app: App, options: ToFastifyOptions = {}): NgiFastifyPlugin {
  const errors = options.errors;
  return (fastify, _options, done) => {
    const scriptName = decodePath(fastify.prefix);
    const serve = (request: FastifyRequest, reply: FastifyReply): void => {
      const req = request.raw;
      if (req.readableDidRead) {
        // A route parsed the body, then handed over with `reply.callNotFound()`: its bytes are
        // gone, and an empty `ngi.input` would lose them silently.
        reply.send(bodyConsumed());
        return;
      }
      const [path, query] = splitTarget(req.url ?? '/');
      // The router matched the decoded path; cut the prefix from the raw one, by segments.
      const below = rawPathBelow(path, scriptName);
      // The router found the prefix, so the raw path holds it, unless a hook rewrote
      // `req.url` since: then the app sees that path whole, at the root.
      servePipelineRequest(app, req, reply.raw, (response) => answerThroughReply(reply, response), {
        scriptName: below === undefined ? '' : scriptName,
        target: below === undefined ? req.url : query === '' ? below : below + '?' + query,
        errors,
        // Fastify's error handling answers (its error handler, `onError` hooks, the log).
        onFailure: (error) => void reply.send(failure(error)),
      });
    };
    // Encapsulated to this plugin: the body stays unread for the app.
    fastify.removeAllContentTypeParsers();
    fastify.addContentTypeParser('*', (_request, _payload, parsed) => parsed(null, undefined));
    // Routes, not only the not-found handler: plugins such as @fastify/compress add their
    // `onSend` hooks to each route (`onRoute`), never to the not-found handler. The wildcard
    // yields to the instance's own routes (find-my-way prefers static and parametric paths).
    const routeOptions = { prefixTrailingSlash: 'no-slash' } as const;
    if (fastify.prefix !== '') fastify.all('/', routeOptions, serve);
    fastify.all('/*', serve);
    // Methods Fastify has no routes for, and requests a route handed over with
    // `reply.callNotFound()`.
    fastify.setNotFoundHandler(serve);
    let mounts = mountsOf.get(fastify.server);
    if (mounts === undefined) mountsOf.set(fastify.server, (mounts = []));
    mounts.push({ scriptName, serve });
    done();
  };
}

/** Fastify's `frameworkErrors` option: `(error, request, reply) => void`. */
export type FrameworkErrorsHandler = (
  error: Error & { code?: string },
  request: FastifyRequest,
  reply: FastifyReply,
) => void;

/**
 * For Fastify's `frameworkErrors` option: a path Fastify's router cannot decode (`%FF`, a
 * lone `%`) that falls under a `toFastify` prefix goes to that NGI app (the longest prefix
 * wins), exactly as sent; `REQUEST_URI` stays raw and `PATH_INFO` reads the bytes as Latin-1.
 * Fastify calls this before any route or hook, so no hook runs for such a request. Every
 * other framework error goes to `fallback`, by default answered as Fastify answers it.
 *
 * @example
 * const fastify = Fastify({ frameworkErrors: passBadUrls() });
 * await fastify.register(toFastify(legacyApp), { prefix: '/legacy' });
 * // GET /legacy/caf%E9 reaches legacyApp with PATH_INFO '/café'
 */
export function passBadUrls(
  fallback: FrameworkErrorsHandler = (error, _request, reply) => void reply.send(error),
): FrameworkErrorsHandler {
  return (error, request, reply) => {
    if (error.code === 'FST_ERR_BAD_URL') {
      const mounted = mountFor(request);
      if (mounted !== undefined) return mounted.serve(request, reply);
    }
    fallback(error, request, reply);
  };
}

function mountFor(request: FastifyRequest): Mounted | undefined {
  const mounts = mountsOf.get(request.server.server);
  if (mounts === undefined) return undefined;
  const [path] = splitTarget(request.raw.url ?? '/');
  let best: Mounted | undefined;
  for (const mounted of mounts) {
    if (best !== undefined && best.scriptName.length >= mounted.scriptName.length) continue;
    if (rawPathBelow(path, mounted.scriptName) !== undefined) best = mounted;
  }
  return best;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { serveNodeRequest } from '../src/_node-host.js';
import { decodePath, rawPathBelow, splitTarget } from '../src/_url.js';
import type { App, ErrorStream } from '../src/types.js';
import { fromNodeHandler } from './node.js';

/** What ngi needs of a Fastify instance (structural: fastify is never imported at runtime). */
export interface FastifyLike {
  ready(): PromiseLike<unknown>;
  routing(req: IncomingMessage, res: ServerResponse): void;
}

/**
 * A Fastify instance as an NGI app: `ready()` first (plugins loaded, routes sealed), then
 * Fastify's own routing for every request, with its hooks, schemas and error handling.
 *
 * @example
 * const fastify = Fastify().get('/', async () => ({ hello: 'world' }));
 * await serve(await fromFastify(fastify), { http: 8080 });
 */
export async function fromFastify(fastify: FastifyLike): Promise<App> {
  await fastify.ready();
  return fromNodeHandler((req, res) => fastify.routing(req, res));
}

export interface ToFastifyOptions {
  /** Where the app and ngi log (`ngi.errors`); standard error by default. */
  errors?: ErrorStream;
}

/** The plugin `toFastify` returns: register it with a `prefix`. */
export type NgiFastifyPlugin = (
  fastify: FastifyInstance,
  options: Record<string, unknown>,
  done: (error?: Error) => void,
) => void;

/**
 * An NGI app as a Fastify plugin, for `fastify.register(toFastify(app), { prefix: '/legacy' })`.
 * It answers every method Fastify knows (HEAD and OPTIONS included) on the prefix itself and
 * everything below it; the prefix becomes `SCRIPT_NAME`. Inside the prefix no content-type
 * parser runs, so the body reaches the app raw as `ngi.input` (no 415, no size limit of
 * Fastify's own); Fastify's hooks and request logging still run.
 *
 * @example
 * const fastify = Fastify({ logger: true });
 * await fastify.register(toFastify(legacyApp), { prefix: '/legacy' });
 */
export function toFastify(app: App, options: ToFastifyOptions = {}): NgiFastifyPlugin {
  const errors = options.errors;
  return (fastify, _options, done) => {
    const scriptName = decodePath(fastify.prefix);
    // Encapsulated to this plugin: the body stays unread for the app.
    fastify.removeAllContentTypeParsers();
    fastify.addContentTypeParser('*', (_request, _payload, parsed) => parsed(null, undefined));
    const handler = (request: FastifyRequest, reply: FastifyReply) => {
      const req = request.raw;
      const url = req.url ?? '/';
      const [path, query] = splitTarget(url);
      const below = rawPathBelow(path, scriptName) ?? path;
      reply.hijack();
      serveNodeRequest(app, req, reply.raw, {
        scriptName,
        target: query === '' ? below : below + '?' + query,
        errors,
      });
    };
    const methods = fastify.supportedMethods;
    fastify.route({ method: methods, url: '/', handler, exposeHeadRoute: false });
    fastify.route({ method: methods, url: '/*', handler, exposeHeadRoute: false });
    done();
  };
}

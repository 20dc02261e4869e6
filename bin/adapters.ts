import type { AdapterRegistry } from '../src/server/load-app.js';

/**
 * The `fromX` adapter of each kind `ngi serve` recognises, for the app loader. Each adapter
 * (and so its framework's types) is imported only when a module of its kind is served.
 */
export const adapters: AdapterRegistry = {
  node: async (handler) => (await import('../adapters/node.js')).fromNodeHandler(handler),
  server: async (server) => (await import('../adapters/node.js')).fromNodeServer(server),
  express: async (app) => (await import('../adapters/express.js')).fromExpress(app),
  fastify: async (fastify) => (await import('../adapters/fastify.js')).fromFastify(fastify),
  koa: async (app) => (await import('../adapters/koa.js')).fromKoa(app),
  hono: async (app) => (await import('../adapters/hono.js')).fromHono(app),
  fetch: async (handler) => (await import('../adapters/fetch.js')).fromFetch(handler),
};

// A Fastify server that mounts an NGI app at /ngi and an existing Express app at /legacy,
// each with its own prefix; Fastify's own routes, hooks and logging stay as they are.
//
//   node examples/mount-in-fastify/app.js          # listens on 127.0.0.1:3000
//   npx ngi serve examples/mount-in-fastify/app.js --http 127.0.0.1:8080   # or under ngi
//   curl http://127.0.0.1:3000/ngi/hello  http://127.0.0.1:3000/legacy/users/7
import express from 'express';
import Fastify from 'fastify';
import { defineApp } from 'ngi-gateway';
import { fromExpress } from 'ngi-gateway/express';
import { toFastify } from 'ngi-gateway/fastify';

/** An NGI app: the contract alone, no framework. */
export const hello = defineApp((environ, startResponse) => {
  const body = JSON.stringify({
    hello: environ.PATH_INFO,
    mountedAt: environ.SCRIPT_NAME,
    query: environ.QUERY_STRING,
  });
  startResponse('200 OK', [['Content-Type', 'application/json; charset=utf-8']]);
  return [body];
});

/** The Express app a team already has. */
export function legacyExpressApp() {
  const app = express();
  app.get('/users/:id', (req, res) => {
    res.json({ id: req.params.id, from: 'express', baseUrl: req.baseUrl });
  });
  return app;
}

/** The Fastify server: a factory, so `ngi serve` can host it too. */
export default async function buildServer() {
  const fastify = Fastify({ logger: false });
  fastify.get('/', async () => ({ from: 'fastify' }));
  await fastify.register(toFastify(hello), { prefix: '/ngi' });
  await fastify.register(toFastify(fromExpress(legacyExpressApp())), { prefix: '/legacy' });
  return fastify;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fastify = await buildServer();
  await fastify.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) });
  console.log(`listening on http://127.0.0.1:${fastify.server.address().port}`);
}

// The new Fastify app: /users, rewritten. It is mounted at /users, so its routes are
// written below that prefix, as any WSGI app would be.
import Fastify from 'fastify';
import { users } from './legacy.js';

export async function nextUsersApp() {
  const fastify = Fastify({ logger: false });
  fastify.get('/', async () => [...users.values()]);
  fastify.get('/:id', async (request, reply) => {
    const user = users.get(request.params.id);
    if (user === undefined) return reply.code(404).send({ error: 'no such user' });
    return user;
  });
  return fastify;
}

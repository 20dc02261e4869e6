// The strangler pattern: one server, the legacy Express app behind every prefix but the ones
// already moved to the new Fastify app. Moving a prefix is one line in `routes`; clients see
// the same responses before and after (test/examples/migrate.test.ts proves it).
//
//   npx ngi serve examples/migrate/app.js --http 127.0.0.1:8080
//   curl http://127.0.0.1:8080/users/1 http://127.0.0.1:8080/orders
import { mount } from 'ngi-gateway';
import { fromExpress } from 'ngi-gateway/express';
import { fromFastify } from 'ngi-gateway/fastify';
import { legacyApp } from './legacy.js';
import { nextUsersApp } from './next.js';

/** Before the move: the legacy app answers everything. */
export function before() {
  return fromExpress(legacyApp());
}

/** After the move: /users is served by the new app, the rest still by the legacy one. */
export async function after() {
  return mount({
    '/users': await fromFastify(await nextUsersApp()),
    '/': fromExpress(legacyApp()),
  });
}

export default await after();

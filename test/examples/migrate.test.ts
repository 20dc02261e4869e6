import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { toNodeHandler } from '../../adapters/node.js';
import type { App } from '../../src/core/types.js';
import { after as afterTheMove, before as beforeTheMove } from '../../examples/migrate/app.js';
import { spawnCli } from '../helpers/cli-process.js';

async function listen(app: App): Promise<{ server: Server; origin: string }> {
  const server = createServer(toNodeHandler(app)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** What a client of the service sees; `Date` is the clock's. */
async function seen(origin: string, path: string) {
  const res = await supertest(origin).get(path);
  const { date: _date, ...headers } = res.headers;
  return { status: res.status, headers, body: res.text };
}

const paths = ['/', '/users', '/users/', '/users/1', '/users/2', '/users/404', '/orders', '/nope'];

describe('examples/migrate: /users moves from Express to Fastify behind one server', () => {
  let old: { server: Server; origin: string };
  let moved: { server: Server; origin: string };

  before(async () => {
    old = await listen(beforeTheMove() as App);
    moved = await listen((await afterTheMove()) as App);
  });

  after(() => {
    for (const { server } of [old, moved]) {
      server.closeAllConnections();
      server.close();
    }
  });

  for (const path of paths) {
    it(`GET ${path}: the same response before and after the move`, async () => {
      assert.deepEqual(await seen(moved.origin, path), await seen(old.origin, path));
    });
  }

  it('really moved: /users is answered by the Fastify app now', async () => {
    // Express answers a HEAD of a route with no body; both do, but only Fastify exposes its
    // route table: an OPTIONS request is the telltale (Express answers it, Fastify 404s).
    const before = await supertest(old.origin).options('/users/1');
    const after = await supertest(moved.origin).options('/users/1');
    assert.equal(before.status, 200);
    assert.equal(after.status, 404);
  });

  it('runs with one command: ngi serve examples/migrate/app.js', async () => {
    const cli = spawnCli([
      'serve',
      'examples/migrate/app.js',
      '--http',
      '127.0.0.1:0',
      '--workers',
      '0',
    ]);
    try {
      const [, port] = await cli.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
      const res = await supertest(`http://127.0.0.1:${port}`).get('/users/2').expect(200);
      assert.deepEqual(res.body, { id: '2', name: 'Grace' });
    } finally {
      cli.kill();
    }
  });
});

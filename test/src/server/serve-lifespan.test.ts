import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { defineApp } from '../../../src/core/define-app.js';
import { withLifespan } from '../../../src/core/lifespan.js';
import { serve } from '../../../src/server/serve.js';
import { get } from '../../helpers/cli-process.js';
import { probe } from '../../helpers/load.js';

async function freePort(): Promise<number> {
  const probeServer = createServer().listen(0, '127.0.0.1');
  await once(probeServer, 'listening');
  const { port } = probeServer.address() as { port: number };
  probeServer.close();
  await once(probeServer, 'close');
  return port;
}

describe('serve() and lifespan', () => {
  it('starts the app before listening, hands the state to requests, and shuts it down after the last one', async () => {
    const seen: string[] = [];
    const app = withLifespan(
      defineApp(async (environ, startResponse) => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        seen.push('request done');
        startResponse('200 OK', [['Content-Type', 'application/json']]);
        return [JSON.stringify(environ['ngi.lifespan'])];
      }),
      {
        startup: async (state) => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          state.pool = 'open';
          seen.push('startup');
        },
        shutdown: (state) => void seen.push(`shutdown ${state.pool}`),
      },
    );
    const server = await serve(app, { http: 0, logFormat: 'off' });
    assert.deepEqual(seen, ['startup']);
    const reply = get(server.http!.port, '/');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = server.close();
    assert.deepEqual(JSON.parse((await reply).body), { pool: 'open' });
    await closed;
    assert.deepEqual(seen, ['startup', 'request done', 'shutdown open']);
  });

  it('a failed startup rejects with NGI_ERR_STARTUP and opens no listener', async () => {
    const port = await freePort();
    const app = withLifespan(
      defineApp(() => []),
      {
        startup: () => {
          throw new Error('no database');
        },
      },
    );
    await assert.rejects(serve(app, { http: port, logFormat: 'off' }), {
      code: 'NGI_ERR_STARTUP',
      message: 'startup failed: no database',
    });
    assert.equal((await probe(port, '/')).kind, 'refused');
  });
});

// examples/socket-io: served by `ngi serve --workers 2`, reached with the real socket.io-client,
// directly and through a real nginx running examples/socket-io/nginx.conf (proxy_pass).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { io } from 'socket.io-client';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';
import { freePort, startNginx, type RunningNginx } from '../helpers/nginx.js';

const example = readFileSync(
  new URL('../../examples/socket-io/nginx.conf', import.meta.url),
  'utf8',
);

/** One socket.io session over the websocket transport: the worker's pid and an acknowledged shout. */
async function session(origin: string): Promise<{ pid: number; answer: string }> {
  const socket = io(origin, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 20_000,
  });
  try {
    const pid = await new Promise<number>((resolve, reject) => {
      socket.once('welcome', resolve);
      socket.once('connect_error', reject);
    });
    const answer = (await socket.timeout(20_000).emitWithAck('shout', 'hello')) as string;
    return { pid, answer };
  } finally {
    socket.disconnect();
  }
}

describe('examples/socket-io', () => {
  let server: CliProcess;
  let port: number;
  let nginx: RunningNginx;
  let proxied: string;

  before(async () => {
    server = spawnCli([
      'serve',
      'examples/socket-io/app.js',
      '--http',
      '127.0.0.1:0',
      '--workers',
      '2',
    ]);
    port = Number((await server.waitFor(/http listening on 127\.0\.0\.1:(\d+)/))[1]);
    const listen = await freePort();
    // The file as shipped, with free ports for 8080 (ngi) and 8081 (nginx).
    const config = example
      .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${port};`)
      .replace('listen 8081;', `listen 127.0.0.1:${listen};`);
    nginx = await startNginx({ http: config, server: '' });
    proxied = `http://127.0.0.1:${listen}`;
  });

  after(async () => {
    await nginx?.stop();
    server?.kill();
  });

  it('serves the page, and socket.io sessions in both workers', async () => {
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /socket\.io\.js/);
    const pids = new Set<number>();
    // Until both workers answered (at most 20): the kernel, not a rotation, picks the worker.
    for (let i = 0; i < 20 && (i < 4 || pids.size < 2); i++) {
      const { pid, answer } = await session(`http://127.0.0.1:${port}`);
      assert.equal(answer, 'HELLO');
      pids.add(pid);
    }
    assert.equal(pids.size, 2);
  });

  it('works through nginx proxy_pass with the Upgrade and Connection headers', async () => {
    const pids = new Set<number>();
    // Until both workers answered (at most 20): the kernel, not a rotation, picks the worker.
    for (let i = 0; i < 20 && (i < 4 || pids.size < 2); i++) {
      const { pid, answer } = await session(proxied);
      assert.equal(answer, 'HELLO', nginx.errorLog());
      pids.add(pid);
    }
    assert.equal(pids.size, 2);
    // Plain requests pass too, and socket.io's own script is served by the hosted server.
    const script = await fetch(`${proxied}/socket.io/socket.io.js`);
    assert.equal(script.status, 200);
    await script.arrayBuffer();
  });
});

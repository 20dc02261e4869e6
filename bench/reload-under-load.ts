// Failed requests while `ngi serve --workers 2` reloads and recycles under load: 8 clients
// loop on fresh connections; 5 SIGHUPs in each reload mode, then --max-worker-lifetime 1.
// Bounded: each scenario stops after 30,000 requests or 20 s.
// Run: node --import tsx bench/reload-under-load.ts
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnCli } from '../test/helpers/cli-process.js';
import { runLoad } from '../test/helpers/load.js';

async function scenario(name: string, flags: string[], hups: number): Promise<void> {
  const proc = spawnCli([
    'serve',
    'test/fixtures/ngi-app.mjs',
    '--http',
    '0',
    '--log-format',
    'off',
    '--workers',
    '2',
    ...flags,
  ]);
  const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
  let done = false;
  const signals = (async () => {
    for (let i = 0; i < hups; i++) {
      await sleep(1500);
      proc.child.kill('SIGHUP');
    }
    await sleep(2500);
    done = true;
  })();
  const timed = hups === 0 ? sleep(8000).then(() => (done = true)) : signals;
  const run = await runLoad({
    port: Number(port),
    path: '/pid',
    concurrency: 8,
    maxRequests: 30_000,
    maxMs: 20_000,
    stop: () => done,
  });
  await timed;
  const recycled = [...proc.stderr().matchAll(/recycled|reload: /g)].length;
  const total = run.outcomes.length;
  const failed = total - (run.counts['200'] ?? 0);
  console.log(
    `${name}: ${failed} of ${total} failed (${JSON.stringify(run.counts)}); ${recycled} reload/recycle log lines`,
  );
  proc.child.kill('SIGTERM');
  await proc.exited;
}

await scenario('reload-mode all, 5 x SIGHUP', [], 5);
await scenario('reload-mode rolling, 5 x SIGHUP', ['--reload-mode', 'rolling'], 5);
await scenario('max-worker-lifetime 1, 8 s', ['--max-worker-lifetime', '1'], 0);

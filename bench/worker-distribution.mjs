// How `ngi serve --workers 2` spreads load across its workers: three bounded autocannon runs
// (3 s each) against test/fixtures/ngi-app.mjs, per-worker request counts read from --stats.
// Run: node bench/worker-distribution.mjs
import { startNgiServe } from './_ngi-serve.mjs';
import autocannon from 'autocannon';

const { child, port, statsPort } = await startNgiServe('test/fixtures/ngi-app.mjs', { bin: 'tsx' });
const figures = async () => (await fetch(`http://127.0.0.1:${statsPort}/`)).json();

const runs = [
  ['keep-alive, 50 connections', { connections: 50 }],
  ['keep-alive, 4 connections', { connections: 4 }],
  ['fresh connections, 20 clients', { connections: 20, headers: { connection: 'close' } }],
];
for (const [name, options] of runs) {
  const before = await figures();
  const result = await autocannon({ url: `http://127.0.0.1:${port}/pid`, duration: 3, ...options });
  const after = await figures();
  const counts = after.workers.map(
    (w) => w.requests - (before.workers.find((b) => b.pid === w.pid)?.requests ?? 0),
  );
  const total = counts.reduce((a, b) => a + b, 0);
  console.log(
    `${name}: ${Math.round(result.requests.average)} req/s, ${result.errors} errors, shares ${counts
      .map((n) => (n / total).toFixed(2))
      .join(' / ')}`,
  );
}
child.kill('SIGTERM');

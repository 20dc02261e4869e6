import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { get, type CliProcess } from '../../helpers/cli-process.js';
import { allGone, requestPids, startServe, until } from '../../helpers/ngi-serve.js';
import { jitteredLimit } from '../../../src/server/recycling.js';

const started: CliProcess[] = [];
after(() => {
  for (const proc of started) proc.kill();
});

async function start(module: string, ...flags: string[]) {
  const serving = await startServe(module, ...flags);
  started.push(serving.proc);
  return serving;
}

async function stop(proc: CliProcess, pids: Iterable<number>): Promise<void> {
  proc.child.kill('SIGTERM');
  assert.equal(await proc.exited, 0);
  await allGone(pids);
}

describe('recycling workers', () => {
  it('draws each limit from max..max+delta, and leaves 0 (no limit) alone', () => {
    for (let i = 0; i < 200; i++) {
      const limit = jitteredLimit(100, 5);
      assert.ok(limit >= 100 && limit <= 105, `${limit} within 100..105`);
    }
    assert.equal(jitteredLimit(100, 0), 100);
    assert.equal(jitteredLimit(0, 50), 0);
  });

  it('recycles a worker whose memory passes --reload-on-rss, the new one listening first', async () => {
    const { proc, port, figures } = await start(
      'test/fixtures/hoarding-app.mjs',
      '--workers',
      '1',
      '--reload-on-rss',
      '150',
    );
    const [first] = (await figures()).workers;
    assert.ok(first!.rss! < 150 * 1024 * 1024, 'an idle worker is under the limit');
    assert.equal((await get(port, '/hold?mb=200')).status, 200);
    const [, pid, rss] = await proc.waitFor(
      /worker (\d+) recycled \(reload-on-rss (\d+) MiB > 150 MiB\)/,
    );
    assert.equal(Number(pid), first!.pid);
    assert.ok(Number(rss) > 150);
    // Bounded: until the replacement answers; nothing fails while the old one drains.
    const run = await requestPids(port, (r) => [...r.pids].some((p) => p !== first!.pid));
    assert.deepEqual(run.failures, []);
    const [fresh] = [...run.pids].filter((p) => p !== first!.pid);
    assert.ok(fresh !== undefined, 'a new worker answers');
    await allGone([first!.pid]);
    await stop(proc, [fresh!]);
  });

  it('recycles workers after --max-worker-lifetime, without failing a request', async () => {
    const { proc, port } = await start(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '1',
      '--max-worker-lifetime',
      '1',
    );
    const lifetimes = /worker (\d+) recycled \(max-worker-lifetime 1s\)/g;
    const recycled = () => [...proc.stderr().matchAll(lifetimes)].map((m) => Number(m[1]));
    // Bounded: until two workers have been recycled by age and a third generation answers.
    const run = await requestPids(port, (r) => recycled().length >= 2 && r.pids.size >= 3, 20_000);
    assert.deepEqual(run.failures, []);
    assert.ok(recycled().length >= 2, `two recycles logged (${proc.stderr()})`);
    const live = [...run.pids].filter((p) => !recycled().includes(p));
    await allGone(recycled());
    await stop(proc, live);
  });

  it('gives each worker its own --max-requests limit within --max-requests-delta', async () => {
    const { proc, figures } = await start(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '3',
      '--max-requests',
      '1000',
      '--max-requests-delta',
      '500',
    );
    const workers = await until(async () => {
      const w = (await figures()).workers;
      return w.length === 3 ? w : undefined;
    });
    const limits = workers.map((w) => w.maxRequests!);
    for (const limit of limits) assert.ok(limit >= 1000 && limit <= 1500, `${limit} in range`);
    // Three draws from 501 values: all equal once in 250,000 runs.
    assert.ok(new Set(limits).size > 1, `limits differ: ${limits.join(', ')}`);
    await stop(
      proc,
      workers.map((w) => w.pid),
    );
  });

  it('gives each worker its own lifetime within --max-worker-lifetime-delta', async () => {
    const { proc, figures } = await start(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '3',
      '--max-worker-lifetime',
      '3600',
      '--max-worker-lifetime-delta',
      '600',
    );
    const workers = await until(async () => {
      const w = (await figures()).workers;
      return w.length === 3 ? w : undefined;
    });
    const lifetimes = workers.map((w) => w.maxLifetime!);
    for (const lifetime of lifetimes) {
      assert.ok(lifetime >= 3600 && lifetime <= 4200, `${lifetime} in 3600..4200`);
    }
    // Three draws from 601 values: all equal once in ~360,000 runs.
    assert.ok(new Set(lifetimes).size > 1, `lifetimes differ: ${lifetimes.join(', ')}`);
    await stop(
      proc,
      workers.map((w) => w.pid),
    );
  });

  it('gives every worker exactly --max-worker-lifetime without a delta', async () => {
    const { proc, figures } = await start(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '3',
      '--max-worker-lifetime',
      '3600',
    );
    const workers = await until(async () => {
      const w = (await figures()).workers;
      return w.length === 3 ? w : undefined;
    });
    assert.deepEqual(
      workers.map((w) => w.maxLifetime),
      [3600, 3600, 3600],
    );
    await stop(
      proc,
      workers.map((w) => w.pid),
    );
  });
});

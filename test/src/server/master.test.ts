import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, get, spawnCli, type CliProcess } from '../../helpers/cli-process.js';
import { requestPids } from '../../helpers/ngi-serve.js';

const started: CliProcess[] = [];
after(() => {
  for (const proc of started) proc.kill();
});

interface Stats {
  requests: number;
  inFlight: number;
  workers: Array<{ pid: number; state: string; requests: number; inFlight: number }>;
}

/** Starts `ngi serve` on the test app with HTTP and stats on free ports. */
async function start(...flags: string[]) {
  const proc = spawnCli([
    'serve',
    'test/fixtures/ngi-app.mjs',
    '--http',
    '0',
    '--stats',
    '0',
    '--log-format',
    'off',
    ...flags,
  ]);
  started.push(proc);
  const [, http] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
  const [, stats] = await proc.waitFor(/stats listening on 127\.0\.0\.1:(\d+)/);
  const port = Number(http);
  const figures = async (): Promise<Stats> => JSON.parse((await get(Number(stats), '/')).body);
  return { proc, port, figures };
}

/** Polls `check` until it returns a value, at most `tries` times. */
async function until<T>(check: () => Promise<T | undefined>, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error('condition never held');
}

async function allGone(pids: Iterable<number>): Promise<void> {
  await until(async () => ([...pids].every((pid) => !alive(pid)) ? true : undefined));
}

describe('ngi serve master and workers', () => {
  it('reloads on SIGHUP under sequential load with no failed request, keep-alive or not', async () => {
    const { proc, port, figures } = await start('--workers', '2');
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    const before = new Set((await figures()).workers.map((w) => w.pid));
    assert.equal(before.size, 2);
    const seen = new Set<number>();
    const failures: string[] = [];
    const slow = get(port, '/slow?ms=800');
    await until(async () => ((await figures()).inFlight === 1 ? true : undefined));
    let reloadedAt = -1;
    let fresh = 0;
    // Stops once 50 requests in a row came from new workers; bounded in requests and in time
    // (the new workers take their time to start however fast the requests go).
    const deadline = performance.now() + 30_000;
    for (let i = 0; i < 50_000 && fresh < 50 && performance.now() < deadline; i++) {
      if (i === 20) {
        proc.child.kill('SIGHUP');
        reloadedAt = i;
      }
      try {
        const [fresh1, kept] = await Promise.all([get(port, '/pid'), get(port, '/pid', agent)]);
        for (const { status } of [fresh1, kept])
          if (status !== 200) failures.push(`status ${status}`);
        const pid = Number(fresh1.body);
        seen.add(pid);
        fresh = reloadedAt >= 0 && !before.has(pid) ? fresh + 1 : 0;
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    agent.destroy();
    assert.deepEqual(failures, []);
    assert.deepEqual(
      await slow,
      { status: 200, body: 'hello /slow' },
      'in-flight request finished',
    );
    assert.ok(fresh >= 50, 'new workers took over');
    await allGone(before);
    const after = await figures();
    assert.equal(after.workers.length, 2);
    for (const w of after.workers) assert.ok(!before.has(w.pid));
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone(after.workers.map((w) => w.pid));
  });

  it('respawns a worker killed with SIGKILL', async () => {
    const { proc, port, figures } = await start('--workers', '1');
    const [first] = (await figures()).workers;
    process.kill(first!.pid, 'SIGKILL');
    await proc.waitFor(new RegExp(`worker ${first!.pid} died \\(signal SIGKILL\\); respawning`));
    const pid = await until(async () => {
      const { body } = await get(port, '/pid');
      return Number(body) !== first!.pid ? Number(body) : undefined;
    });
    assert.ok(alive(pid));
    assert.equal((await figures()).workers.length, 1);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone([pid]);
  });

  it('backs off when respawned workers keep dying, so a crashing app cannot fork-bomb', async () => {
    const { proc, port } = await start('--workers', '1');
    const delays: number[] = [];
    const pattern = /died \(code 3\); respawning in (\d+)ms/g;
    for (let round = 1; round <= 3; round++) {
      await assert.rejects(get(port, '/crash'));
      const deaths = await until(async () => {
        const found = [...proc.stderr().matchAll(pattern)];
        return found.length >= round ? found : undefined;
      });
      delays.push(Number(deaths[round - 1]![1]));
      await until(async () => ((await get(port, '/pid')).status === 200 ? true : undefined));
    }
    assert.deepEqual(delays, [0, 100, 200]);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('replaces a worker after an uncaught exception, without failing a request', async () => {
    const { proc, port } = await start('--workers', '1');
    const first = Number((await get(port, '/pid')).body);
    assert.equal((await get(port, '/throw-later')).status, 200);
    await proc.waitFor(/uncaught: Error: thrown from a timer after the response/);
    await proc.waitFor(new RegExp(`worker ${first} recycled \\(uncaught-exception\\)`));
    const failures: string[] = [];
    const pid = await until(async () => {
      const reply = await get(port, '/pid').catch((error: Error) => {
        failures.push(error.message);
        throw error;
      });
      return Number(reply.body) !== first ? Number(reply.body) : undefined;
    });
    assert.deepEqual(failures, []);
    await allGone([first]);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone([pid]);
  });

  it('answers 504 past --harakiri and replaces the worker', async () => {
    const { proc, port, figures } = await start('--workers', '1', '--harakiri', '1');
    const [first] = (await figures()).workers;
    const stuck = await get(port, '/slow?ms=5000');
    assert.equal(stuck.status, 504);
    await proc.waitFor(new RegExp(`worker ${first!.pid} recycled \\(harakiri\\)`));
    const pid = await until(async () => {
      const { body } = await get(port, '/pid');
      return Number(body) !== first!.pid ? Number(body) : undefined;
    });
    await allGone([first!.pid]);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone([pid]);
  });

  it('kills and respawns a worker whose event loop is blocked past --harakiri', async () => {
    const { proc, port, figures } = await start('--workers', '1', '--harakiri', '1');
    const [first] = (await figures()).workers;
    await assert.rejects(get(port, '/block'), 'the blocked worker dies with the request');
    await proc.waitFor(new RegExp(`harakiri: worker ${first!.pid} blocked`));
    const pid = await until(async () => {
      const { body } = await get(port, '/pid');
      return Number(body) !== first!.pid ? Number(body) : undefined;
    });
    // With one worker the replacement starts first and the blocked one is killed once it is
    // ready (within 1 s): the kill is awaited, bounded, not assumed at the first new answer.
    await allGone([first!.pid]);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone([pid]);
  });

  it('recycles a worker after --max-requests without failing a request', async () => {
    const { proc, port, figures } = await start('--workers', '1', '--max-requests', '10');
    const seen = new Set<number>();
    const failures: string[] = [];
    // Until three generations of workers have answered. Bounded in requests and in time, not
    // by a count alone: a replacement takes its time to start whatever the request rate, and
    // a fast server once spent 1500 requests before the third was up.
    const deadline = performance.now() + 30_000;
    for (let i = 0; i < 50_000 && seen.size < 3 && performance.now() < deadline; i++) {
      try {
        const { status, body } = await get(port, '/pid');
        if (status !== 200) failures.push(`status ${status}`);
        seen.add(Number(body));
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(seen.size >= 3, `workers recycled (saw ${seen.size})`);
    const live = (await figures()).workers.map((w) => w.pid);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone([...seen, ...live]);
  });

  it('stops on SIGTERM after letting a slow in-flight request finish, leaving no process', async () => {
    const { proc, port, figures } = await start('--workers', '2');
    const pids = (await figures()).workers.map((w) => w.pid);
    const slow = get(port, '/slow?ms=1500');
    await until(async () => ((await figures()).inFlight === 1 ? true : undefined));
    proc.child.kill('SIGTERM');
    assert.deepEqual(await slow, { status: 200, body: 'hello /slow' });
    assert.equal(await proc.exited, 0);
    await allGone([...pids, proc.child.pid!]);
    await assert.rejects(get(port, '/pid'), 'the port is closed');
  });
});

describe('ngi serve --reload-mode rolling', () => {
  it('replaces one worker at a time under load: no failed request, always one serving', async () => {
    const { proc, port, figures } = await start('--workers', '2', '--reload-mode', 'rolling');
    const before = new Set((await figures()).workers.map((w) => w.pid));
    // While the reload runs, the stats are sampled: at each sample, a worker is serving.
    const servingCounts: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      for (let i = 0; i < 2000 && sampling; i++) {
        const { workers } = await figures();
        servingCounts.push(workers.filter((w) => w.state === 'ready').length);
      }
    })();
    proc.child.kill('SIGHUP');
    const run = await requestPids(
      port,
      (r) => [...r.pids].filter((pid) => !before.has(pid)).length >= 2,
    );
    sampling = false;
    await sampler;
    assert.deepEqual(run.failures, []);
    assert.ok(Math.min(...servingCounts) >= 1, `serving counts ${servingCounts.join(',')}`);
    const steps = [...proc.stderr().matchAll(/reload: replacing worker (\d+)/g)].map((m) =>
      Number(m[1]),
    );
    assert.deepEqual(new Set(steps), before, 'each old worker replaced, one step each');
    await proc.waitFor(/reload: replacing worker \d+ \(0 more after it\)/);
    await allGone(before);
    const after = await figures();
    assert.equal(after.workers.length, 2);
    for (const w of after.workers) assert.ok(!before.has(w.pid));
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone(after.workers.map((w) => w.pid));
  });
});

// The process model under load: each row of issue 11's table as a bounded scenario against
// the real `ngi serve --workers 2`, with fresh connections (so that "a connection the worker
// had not taken yet" is every request not yet accepted).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { probe, runLoad, type Outcome } from '../../helpers/load.js';
import { allGone, startServe, until, type RunningServe } from '../../helpers/ngi-serve.js';

const running: RunningServe[] = [];
after(() => {
  for (const serve of running) serve.proc.kill();
});

async function start(...flags: string[]): Promise<RunningServe> {
  const serve = await startServe('test/fixtures/ngi-app.mjs', '--workers', '2', ...flags);
  running.push(serve);
  return serve;
}

const failed = (outcomes: Outcome[]) =>
  outcomes.filter((o) => o !== undefined && !(o.kind === 'status' && o.status === 200));

describe('process model under load', () => {
  it('a worker SIGKILLed under load fails only requests it had taken; no connection hangs (x3)', async () => {
    const serve = await start();
    const report: string[] = [];
    for (let round = 0; round < 3; round++) {
      const victim = (await serve.figures()).workers.find((w) => w.state === 'ready')!.pid;
      let answered = 0;
      let killedAt = -1;
      // Bounded: 8 clients, at most 1500 requests or 20 s, until 300 answers after the kill.
      const run = await runLoad({
        port: serve.port,
        path: '/pid?ms=20',
        concurrency: 8,
        maxRequests: 1500,
        maxMs: 20_000,
        timeoutMs: 4000,
        stop: () => killedAt >= 0 && answered > killedAt + 300,
        onOutcome: () => {
          if (++answered === 100) {
            killedAt = answered;
            process.kill(victim, 'SIGKILL');
          }
        },
      });
      const failures = failed(run.outcomes);
      report.push(`round ${round + 1}: ${JSON.stringify(run.counts)}`);
      // At most the 8 requests in flight when it died were the victim's.
      assert.ok(failures.length <= 8, `failed: ${JSON.stringify(failures)}`);
      assert.deepEqual(
        failures.filter((o) => o.kind === 'timeout'),
        [],
        'no request waits for a worker that is gone',
      );
      const pids = new Set(run.outcomes.slice(killedAt + 50).map((o) => (o as any).body));
      assert.ok(!pids.has(String(victim)));
      await until(async () =>
        (await serve.figures()).workers.filter((w) => w.state === 'ready').length === 2
          ? true
          : undefined,
      );
    }
    console.log(`SIGKILL under load: ${report.join('; ')}`);
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
  });

  it('a worker blocked in a sync loop is cut within harakiri + 1 s; the other serves every new connection', async () => {
    const serve = await start('--harakiri', '1');
    const blocked = { outcome: undefined as Outcome | undefined };
    let answered = 0;
    let blockSent = -1;
    const run = await runLoad({
      port: serve.port,
      path: '/pid',
      concurrency: 6,
      maxRequests: 20_000,
      maxMs: 20_000,
      timeoutMs: 5000,
      stop: () => blocked.outcome !== undefined && answered > blockSent + 200,
      onOutcome: () => {
        if (++answered === 100) {
          blockSent = answered;
          void probe(serve.port, '/block', { timeoutMs: 8000 }).then((o) => (blocked.outcome = o));
        }
      },
    });
    const failures = failed(run.outcomes);
    console.log(
      `blocked worker: /block ended ${JSON.stringify(blocked.outcome)}; load ${JSON.stringify(run.counts)}`,
    );
    assert.ok(
      blocked.outcome!.kind === 'reset' ||
        (blocked.outcome!.kind === 'status' && blocked.outcome!.status === 504),
      `the blocked request is cut: ${JSON.stringify(blocked.outcome)}`,
    );
    assert.ok(blocked.outcome!.ms < 2000 + 500, `cut after ${blocked.outcome!.ms} ms`);
    // Only what the blocked worker had already taken can fail with it (load of 6 clients).
    assert.ok(failures.length <= 6, `failed: ${JSON.stringify(failures)}`);
    assert.deepEqual(
      failures.filter((o) => o.kind === 'timeout'),
      [],
    );
    await until(async () =>
      (await serve.figures()).workers.filter((w) => w.state === 'ready').length === 2
        ? true
        : undefined,
    );
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
  });

  it('SIGTERM under load: in-flight requests finish, then new connections are refused; none hangs (x4)', async () => {
    const report: string[] = [];
    for (let round = 0; round < 4; round++) {
      const serve = await start();
      const pids = (await serve.figures()).workers.map((w) => w.pid);
      let answered = 0;
      let refused = 0;
      let termAt = -1;
      const run = await runLoad({
        port: serve.port,
        path: '/pid?ms=5',
        concurrency: 8,
        maxRequests: 5000,
        maxMs: 15_000,
        timeoutMs: 5000,
        stop: () => refused >= 16,
        onOutcome: (o, index) => {
          if (o.kind === 'refused') refused++;
          if (++answered === 100) {
            termAt = index;
            serve.proc.child.kill('SIGTERM');
          }
        },
      });
      report.push(JSON.stringify(run.counts));
      const before = run.outcomes.slice(0, termAt + 1);
      assert.deepEqual(failed(before), [], 'everything sent before the SIGTERM is answered');
      assert.deepEqual(
        run.outcomes.filter((o) => o.kind === 'timeout'),
        [],
        'no connection is left hanging',
      );
      // The kernel resets what it queued on the listening socket in the instant between the
      // last worker's last accept and its close (see the README): at most one per client.
      assert.ok((run.counts.reset ?? 0) <= 8, `round ${round + 1}: ${JSON.stringify(run.counts)}`);
      assert.equal(await serve.proc.exited, 0);
      await allGone(pids);
    }
    console.log(`SIGTERM under load: ${report.join('; ')}`);
  });

  it('spreads fresh connections across the workers (the kernel hands each to a free one)', async () => {
    const serve = await start();
    const run = await runLoad({
      port: serve.port,
      path: '/pid?ms=5',
      concurrency: 8,
      maxRequests: 800,
      maxMs: 20_000,
    });
    assert.deepEqual(failed(run.outcomes), []);
    const byPid = new Map<string, number>();
    for (const o of run.outcomes) {
      if (o.kind === 'status') byPid.set(o.body, (byPid.get(o.body) ?? 0) + 1);
    }
    const shares = [...byPid.values()].map((n) => n / run.outcomes.length);
    console.log(`fresh connections per worker: ${shares.map((s) => s.toFixed(2)).join(' / ')}`);
    assert.equal(shares.length, 2);
    for (const share of shares) assert.ok(share >= 0.1, `shares ${shares.join(', ')}`);
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
  });

  it('the master never loads the app: --stats shows its RSS without the app, each worker with it', async () => {
    const serve = await startServe('test/fixtures/heavy-app.mjs', '--workers', '2');
    running.push(serve);
    const stats = await serve.figures();
    const MiB = 1024 * 1024;
    const line = [stats.master!, ...stats.workers]
      .map((p) => `${Math.round(p.rss! / MiB)} MiB`)
      .join(' / ');
    console.log(`idle RSS, master / workers, with a 64 MiB app: ${line}`);
    assert.equal(stats.workers.length, 2);
    for (const worker of stats.workers) {
      assert.ok(worker.rss! - stats.master!.rss > 48 * MiB, `master / workers: ${line}`);
    }
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
  });
});

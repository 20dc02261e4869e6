// Lifespan under `ngi serve`: startup before a worker takes traffic, its state in every
// request, shutdown after the last request on stop, reload and recycle; a failed startup
// stops the server with the app's message (and, under a master, no respawn loop).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { get, spawnCli, type CliProcess } from '../../helpers/cli-process.js';
import { allGone, startServe, until, type RunningServe } from '../../helpers/ngi-serve.js';

const running: CliProcess[] = [];
let dir: string;
let logFile: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ngi-lifespan-'));
});
after(() => {
  for (const proc of running) proc.kill();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh log file for one test; the server processes inherit its path. */
function freshLog(name: string): () => string[] {
  logFile = join(dir, `${name}.log`);
  writeFileSync(logFile, '');
  process.env.NGI_TEST_LIFESPAN_LOG = logFile;
  const file = logFile;
  return () => readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

async function start(module: string, ...flags: string[]): Promise<RunningServe> {
  const serve = await startServe(module, ...flags);
  running.push(serve.proc);
  return serve;
}

describe('lifespan under ngi serve', () => {
  it('runs startup in each worker before traffic, hands its state to requests, and shutdown after the last request on SIGTERM', async () => {
    const lines = freshLog('express');
    const serve = await start('test/fixtures/lifespan/express-hooks.mjs', '--workers', '2');
    const pids = (await serve.figures()).workers.map((w) => w.pid);
    // Every worker announced ready only after its startup: both lines are there already.
    assert.deepEqual(lines().sort(), pids.map((pid) => `startup ${pid}`).sort());
    const reply = await get(serve.port, '/pid');
    const [pid, , opened] = reply.body.split(' ');
    assert.equal(opened, pid, "the request saw its own worker's startup state");
    const slow = get(serve.port, '/slow');
    await until(async () => ((await serve.figures()).inFlight === 1 ? true : undefined));
    serve.proc.child.kill('SIGTERM');
    assert.equal((await slow).body, 'slow done');
    assert.equal(await serve.proc.exited, 0);
    const shutdowns = lines().filter((l) => l.startsWith('shutdown'));
    assert.equal(shutdowns.length, 2);
    for (const line of shutdowns) assert.match(line, /pool true$/);
    // The slow request finished before its worker's shutdown ran: it is counted in "served".
    const total = shutdowns.reduce((n, l) => n + Number(/served (\d+)/.exec(l)![1]), 0);
    assert.equal(total, 2);
  });

  it('runs shutdown for each worker a SIGHUP reload replaces, and startup for each new one', async () => {
    const lines = freshLog('reload');
    const serve = await start('test/fixtures/lifespan/express-hooks.mjs', '--workers', '2');
    const old = (await serve.figures()).workers.map((w) => w.pid);
    serve.proc.child.kill('SIGHUP');
    await allGone(old);
    for (const pid of old) assert.ok(lines().some((l) => l.startsWith(`shutdown ${pid} `)));
    const fresh = (await serve.figures()).workers.map((w) => w.pid);
    for (const pid of fresh) assert.ok(lines().includes(`startup ${pid}`));
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
  });

  it('runs shutdown for a worker recycled by --max-requests, after its last request', async () => {
    const lines = freshLog('recycle');
    const serve = await start(
      'test/fixtures/lifespan/express-hooks.mjs',
      '--workers',
      '1',
      '--max-requests',
      '3',
    );
    const [first] = (await serve.figures()).workers;
    for (let i = 0; i < 3; i++) assert.equal((await get(serve.port, '/pid')).status, 200);
    await allGone([first!.pid]);
    assert.ok(lines().includes(`shutdown ${first!.pid} served 3 pool true`), lines().join('; '));
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
  });

  it('a failed startup stops ngi serve with the app message and exit code 1, before any listener', async () => {
    freshLog('fail');
    const marker = join(dir, 'db-down');
    writeFileSync(marker, '');
    process.env.NGI_TEST_FAIL_STARTUP = marker;
    try {
      const proc = spawnCli(['serve', 'test/fixtures/lifespan/express-hooks.mjs', '--http', '0']);
      running.push(proc);
      assert.equal(await proc.exited, 1);
      assert.match(proc.stderr(), /startup failed: cannot reach the database at db\.internal:5432/);
      assert.doesNotMatch(proc.stderr(), /listening/);
    } finally {
      rmSync(marker, { force: true });
    }
  });

  it('under a master, workers whose startup keeps failing are respawned with backoff, then the master stops', async () => {
    freshLog('respawn');
    const marker = join(dir, 'db-gone-later');
    process.env.NGI_TEST_FAIL_STARTUP = marker;
    try {
      const serve = await start('test/fixtures/lifespan/express-hooks.mjs', '--workers', '1');
      const [worker] = (await serve.figures()).workers;
      writeFileSync(marker, '');
      process.kill(worker!.pid, 'SIGKILL');
      assert.equal(await serve.proc.exited, 1);
      const stderr = serve.proc.stderr();
      assert.match(stderr, /5 workers in a row failed to start; stopping/);
      assert.match(stderr, /cannot reach the database/);
      assert.deepEqual(
        [...stderr.matchAll(/respawning in (\d+)ms/g)].map((m) => Number(m[1])),
        [0, 100, 200, 400, 800],
      );
    } finally {
      rmSync(marker, { force: true });
      delete process.env.NGI_TEST_FAIL_STARTUP;
    }
  });

  it("Fastify's onClose hooks run on SIGTERM and for each worker replaced on SIGHUP", async () => {
    const lines = freshLog('fastify');
    const serve = await start('test/fixtures/lifespan/fastify-onclose.mjs', '--workers', '2');
    const old = (await serve.figures()).workers.map((w) => w.pid);
    serve.proc.child.kill('SIGHUP');
    await allGone(old);
    assert.deepEqual(lines().sort(), old.map((pid) => `onClose ${pid}`).sort());
    const fresh = (await serve.figures()).workers.map((w) => w.pid);
    serve.proc.child.kill('SIGTERM');
    assert.equal(await serve.proc.exited, 0);
    assert.deepEqual(lines().sort(), [...old, ...fresh].map((pid) => `onClose ${pid}`).sort());
  });

  it('on SIGTERM a worker holding an open WebSocket still stops gracefully: the socket closes at the end of the grace period, then shutdown runs', async () => {
    const lines = freshLog('ws');
    const serve = await start(
      'test/fixtures/lifespan/ws-hooks.mjs',
      '--workers',
      '2',
      '--grace',
      '1',
    );
    const pids = (await serve.figures()).workers.map((w) => w.pid);
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`ws://127.0.0.1:${serve.port}/ws`);
    const holder = await new Promise<string>((resolve, reject) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    serve.proc.child.kill('SIGTERM');
    await closed;
    assert.equal(await serve.proc.exited, 0);
    assert.match(
      serve.proc.stderr(),
      /closing 1 upgraded connection\(s\) \(WebSocket\) at the end of the 1s grace period/,
    );
    // The worker holding the WebSocket ran its shutdown too: it was not killed at grace + 5 s.
    assert.deepEqual(lines().sort(), pids.map((pid) => `shutdown ${pid}`).sort());
    assert.ok(pids.includes(Number(holder)));
  });

  for (const mode of ['all', 'rolling']) {
    it(`a SIGHUP while the workers are still in their startup replaces them once ready (--reload-mode ${mode}): the new code serves`, async () => {
      const lines = freshLog(`stale-${mode}`);
      const versionFile = join(dir, `version-${mode}`);
      const gate = join(dir, `stale-gate-${mode}`);
      writeFileSync(versionFile, 'v1');
      process.env.NGI_TEST_VERSION_FILE = versionFile;
      process.env.NGI_TEST_STARTUP_GATE = gate;
      try {
        const proc = spawnCli([
          'serve',
          'test/fixtures/lifespan/gated-startup.mjs',
          '--http',
          '0',
          '--workers',
          '2',
          '--reload-mode',
          mode,
          '--log-format',
          'off',
        ]);
        running.push(proc);
        const loaded = (version: string) =>
          lines()
            .filter((line) => line.startsWith('loaded ') && line.endsWith(` ${version}`))
            .map((line) => Number(line.split(' ')[1]));
        // Both workers hold v1 and wait in their startup when the new code is deployed.
        const old = await until(async () => (loaded('v1').length === 2 ? loaded('v1') : undefined));
        writeFileSync(versionFile, 'v2');
        proc.child.kill('SIGHUP');
        await proc.waitFor(/reload: (starting|replacing) 0 /);
        writeFileSync(gate, '');
        const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
        await allGone(old);
        assert.equal(loaded('v2').length, 2);
        for (let i = 0; i < 10; i++) assert.equal((await get(Number(port), '/version')).body, 'v2');
        proc.child.kill('SIGTERM');
        assert.equal(await proc.exited, 0);
      } finally {
        delete process.env.NGI_TEST_VERSION_FILE;
        delete process.env.NGI_TEST_STARTUP_GATE;
      }
    });
  }

  it('a Fastify plugin that throws at startup stops ngi serve with its message and a non-zero exit', async () => {
    freshLog('plugin');
    process.env.NGI_TEST_FAIL_PLUGIN = '1';
    try {
      const proc = spawnCli(['serve', 'test/fixtures/lifespan/fastify-onclose.mjs', '--http', '0']);
      running.push(proc);
      assert.equal(await proc.exited, 1);
      assert.match(proc.stderr(), /plugin db: connection refused/);
      assert.doesNotMatch(proc.stderr(), /listening/);
    } finally {
      delete process.env.NGI_TEST_FAIL_PLUGIN;
    }
  });

  it('an NGI app with withLifespan sees its state as environ["ngi.lifespan"], also with --workers 0', async () => {
    const proc = spawnCli([
      'serve',
      'test/fixtures/lifespan/ngi-state.mjs',
      '--http',
      '0',
      '--workers',
      '0',
    ]);
    running.push(proc);
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    const reply = await get(Number(port), '/');
    assert.deepEqual(JSON.parse(reply.body), { pid: proc.child.pid });
    proc.child.kill('SIGTERM');
    await proc.exited;
  });
});

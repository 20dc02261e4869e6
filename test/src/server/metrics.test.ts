import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { get, spawnCli, type CliProcess } from '../../helpers/cli-process.js';
import { allGone, startServe, until, type Stats } from '../../helpers/ngi-serve.js';

const APP = 'test/fixtures/lifespan/gated-startup.mjs';
const started: CliProcess[] = [];
const dirs: string[] = [];
after(() => {
  for (const proc of started) proc.kill();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The samples of a Prometheus text exposition: `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${JSON.stringify(line)}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

async function scrape(statsPort: number): Promise<Map<string, number>> {
  const { status, body } = await get(statsPort, '/metrics');
  assert.equal(status, 200);
  return parseMetrics(body);
}

/**
 * Scrapes until sample `name` reads `value`: a worker counts a request when its response has
 * finished, which may trail the client by a moment.
 */
function scrapeWhen(statsPort: number, name: string, value: number): Promise<Map<string, number>> {
  return until(async () => {
    const samples = await scrape(statsPort);
    return samples.get(name) === value ? samples : undefined;
  }, 100);
}

async function serveGated(...flags: string[]) {
  const running = await startServe(APP, ...flags);
  started.push(running.proc);
  return running;
}

/** One GET on a Unix socket (the stats listener of a server whose ports are not known yet). */
function getUnix(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('ngi serve --stats: /metrics, /healthz and /readyz', () => {
  it('counts the requests served by every worker: by status code, as a histogram, and their bytes', async () => {
    const { port, statsPort } = await serveGated('--workers', '2');
    for (let i = 0; i < 10; i++) assert.equal((await get(port, '/')).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await get(port, '/fail')).status, 500);
    const samples = await scrapeWhen(statsPort, 'ngi_request_duration_seconds_count', 12);
    assert.equal(samples.get('ngi_requests_total{code="200"}'), 10);
    assert.equal(samples.get('ngi_requests_total{code="500"}'), 2);
    assert.equal(samples.get('ngi_request_duration_seconds_bucket{le="+Inf"}'), 12);
    assert.ok(samples.get('ngi_request_duration_seconds_sum')! > 0);
    assert.equal(
      samples.get('ngi_response_bytes_total'),
      10 * 'hello'.length + 2 * 'failed'.length,
    );
    assert.equal(samples.get('ngi_requests_in_flight'), 0);
    assert.equal(samples.get('ngi_harakiri_total'), 0);
    assert.equal(samples.get('ngi_workers{state="ready"}'), 2);
    // Every reason a worker is recycled for is there from the start, at 0.
    for (const reason of ['max-requests', 'reload-on-rss', 'max-worker-lifetime', 'harakiri']) {
      assert.equal(samples.get(`ngi_worker_recycles_total{reason="${reason}"}`), 0, reason);
    }
    const rss = [...samples].filter(([name]) =>
      name.startsWith('ngi_worker_resident_memory_bytes{'),
    );
    assert.equal(rss.length, 2);
    for (const [, bytes] of rss) assert.ok(bytes > 1_000_000);

    // More traffic, higher counters: they grow with what is served.
    for (let i = 0; i < 5; i++) await get(port, '/');
    const later = await scrapeWhen(statsPort, 'ngi_request_duration_seconds_count', 17);
    assert.equal(later.get('ngi_requests_total{code="200"}'), 15);
  });

  it('counts a restart when a worker is killed, and keeps what the dead worker had served', async () => {
    const { proc, port, statsPort, figures } = await serveGated('--workers', '2');
    for (let i = 0; i < 8; i++) await get(port, '/');
    const before = await scrapeWhen(statsPort, 'ngi_requests_total{code="200"}', 8);
    assert.equal(before.get('ngi_worker_restarts_total'), 0);
    const victim = (await figures()).workers.find((w) => w.requests > 0)!;
    process.kill(victim.pid, 'SIGKILL');
    await proc.waitFor(new RegExp(`worker ${victim.pid} died \\(signal SIGKILL\\); respawning`));
    const after = await scrapeWhen(statsPort, 'ngi_worker_restarts_total', 1);
    // The totals never go down: Prometheus would read a drop as a counter reset.
    assert.equal(after.get('ngi_requests_total{code="200"}'), 8);
    assert.equal(after.get('ngi_request_duration_seconds_count'), 8);
  });

  it('keeps every count through a reload, counting each retired worker once', async () => {
    const { proc, port, statsPort, figures } = await serveGated('--workers', '2');
    for (let i = 0; i < 6; i++) await get(port, '/');
    await scrapeWhen(statsPort, 'ngi_requests_total{code="200"}', 6);
    const old = (await figures()).workers.map((w) => w.pid);
    proc.child.kill('SIGHUP');
    await proc.waitFor(/reload: starting 2 new worker/);
    // Scraped all through the hand-over: never a request lost, never one counted twice.
    const seen = new Set<number>();
    await until(async () => {
      const samples = await scrape(statsPort);
      seen.add(samples.get('ngi_requests_total{code="200"}')!);
      const pids = (await figures()).workers.map((w) => w.pid);
      return pids.length === 2 && pids.every((pid) => !old.includes(pid)) ? true : undefined;
    });
    await allGone(old);
    assert.deepEqual([...seen], [6]);
    const samples = await scrape(statsPort);
    assert.equal(samples.get('ngi_requests_total{code="200"}'), 6);
    assert.equal(samples.get('ngi_request_duration_seconds_count'), 6);
    assert.equal(samples.get('ngi_reloads_total'), 1);
    assert.equal(samples.get('ngi_worker_restarts_total'), 0);
  });

  it('counts workers still in their lifespan startup as starting, not ready (503) until they finish, healthy throughout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ngi-readyz-'));
    dirs.push(dir);
    const gate = join(dir, 'go');
    const socket = join(dir, 'stats.sock');
    const proc = spawnCli(
      [
        'serve',
        APP,
        '--http',
        '0',
        '--stats',
        `unix:${socket}`,
        '--workers',
        '2',
        '--log-format',
        'off',
      ],
      { env: { NGI_TEST_STARTUP_GATE: gate } },
    );
    started.push(proc);
    const waiting = await until(() => getUnix(socket, '/readyz'), 200);
    assert.equal(waiting.status, 503);
    assert.equal((await getUnix(socket, '/healthz')).status, 200);
    const gated = parseMetrics((await getUnix(socket, '/metrics')).body);
    assert.equal(gated.get('ngi_workers{state="starting"}'), 2);
    assert.equal(gated.get('ngi_workers{state="ready"}'), 0);
    const gatedDoc = JSON.parse((await getUnix(socket, '/')).body) as Stats;
    assert.equal(gatedDoc.starting, 2);
    assert.deepEqual(gatedDoc.workers, []);
    assert.doesNotMatch(proc.stderr(), /http listening/);

    writeFileSync(gate, '');
    const opened = await until(async () => {
      const samples = parseMetrics((await getUnix(socket, '/metrics')).body);
      return samples.get('ngi_workers{state="ready"}') === 2 ? samples : undefined;
    }, 400);
    assert.equal(opened.get('ngi_workers{state="starting"}'), 0);
    const openedDoc = JSON.parse((await getUnix(socket, '/')).body) as Stats;
    assert.equal(openedDoc.starting, 0);
    assert.equal(openedDoc.workers.length, 2);
    await proc.waitFor(/http listening on 127\.0\.0\.1:\d+/);
    assert.equal((await getUnix(socket, '/readyz')).status, 200);
    assert.equal((await getUnix(socket, '/healthz')).status, 200);
  });

  it('counts a request cut by --harakiri as a 504 without a restart, and a worker killed for a blocked loop as a restart', async () => {
    const { proc, port, statsPort, figures } = await startServe(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '1',
      '--harakiri',
      '1',
    );
    started.push(proc);
    const [first] = (await figures()).workers;
    assert.equal((await get(port, '/hang')).status, 504);
    // The worker that cut a request is replaced gracefully (recycled): that is no restart.
    await proc.waitFor(new RegExp(`worker ${first!.pid} recycled \\(harakiri\\)`));
    await allGone([first!.pid]);
    const cut = await scrapeWhen(statsPort, 'ngi_requests_total{code="504"}', 1);
    assert.equal(cut.get('ngi_harakiri_total'), 1);
    assert.equal(cut.get('ngi_request_duration_seconds_count'), 1);
    assert.equal(cut.get('ngi_worker_restarts_total'), 0);
    assert.equal(cut.get('ngi_worker_recycles_total{reason="harakiri"}'), 1);

    // A loop stuck in synchronous code cannot run its own harakiri timer: the master kills
    // the worker, the client's connection is reset, and no 504 is counted.
    const [second] = (await figures()).workers;
    await assert.rejects(get(port, '/block'));
    await proc.waitFor(new RegExp(`harakiri: worker ${second!.pid} blocked`));
    await allGone([second!.pid]);
    const killed = await scrapeWhen(statsPort, 'ngi_worker_restarts_total', 1);
    assert.equal(killed.get('ngi_harakiri_total'), 1);
    assert.equal(killed.get('ngi_requests_total{code="504"}'), 1);
    // The killed request finished nowhere: it is in no status code and not in the histogram.
    assert.equal(killed.get('ngi_request_duration_seconds_count'), 1);
  });

  it('counts each worker recycled by --max-requests by its reason, apart from restarts and reloads', async () => {
    const { proc, port, statsPort } = await startServe(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '1',
      '--max-requests',
      '3',
    );
    started.push(proc);
    // Each worker asks to be replaced after 3 and serves on until its replacement listens:
    // load until two have been recycled (bounded in requests and in time: a replacement takes
    // its time to start), every request answered meanwhile.
    const recycled = 'ngi_worker_recycles_total{reason="max-requests"}';
    let samples = await scrape(statsPort);
    const deadline = performance.now() + 30_000;
    for (
      let i = 0;
      i < 20_000 && (samples.get(recycled) ?? 0) < 2 && performance.now() < deadline;
      i++
    ) {
      assert.equal((await get(port, '/')).status, 200);
      samples = await scrape(statsPort);
    }
    assert.ok((samples.get(recycled) ?? 0) >= 2, `${recycled} is ${samples.get(recycled)}`);
    assert.equal(samples.get('ngi_worker_restarts_total'), 0);
    assert.equal(samples.get('ngi_reloads_total'), 0);
    assert.equal(samples.get('ngi_worker_recycles_total{reason="harakiri"}'), 0);
  });

  it('serves the same endpoints without a master (--workers 0)', async () => {
    const { port, statsPort } = await serveGated('--workers', '0');
    await get(port, '/');
    await get(port, '/fail');
    const samples = await scrapeWhen(statsPort, 'ngi_request_duration_seconds_count', 2);
    assert.equal(samples.get('ngi_requests_total{code="200"}'), 1);
    assert.equal(samples.get('ngi_requests_total{code="500"}'), 1);
    assert.equal(samples.get('ngi_request_duration_seconds_count'), 2);
    assert.equal(samples.has('ngi_worker_restarts_total'), false);
    assert.equal((await get(statsPort, '/readyz')).status, 200);
    assert.equal((await get(statsPort, '/healthz')).status, 200);
    // The JSON document is still there on every other path.
    assert.equal(JSON.parse((await get(statsPort, '/')).body).requests, 2);
  });
});

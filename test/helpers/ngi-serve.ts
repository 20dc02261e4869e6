import { setTimeout as sleep } from 'node:timers/promises';
import { alive, get, spawnCli, type CliProcess } from './cli-process.js';

/** The stats document of `ngi serve --stats`, as far as the process tests read it. */
export interface Stats {
  requests: number;
  inFlight: number;
  workers: Array<{
    pid: number;
    state: string;
    requests: number;
    inFlight: number;
    rss?: number;
    maxRequests?: number;
    maxLifetime?: number;
  }>;
  master?: { pid: number; rss: number };
  /** Under a master: workers whose app has not finished starting (not in `workers`). */
  starting?: number;
}

/** A running `ngi serve` with HTTP and stats on free ports. */
export interface RunningServe {
  proc: CliProcess;
  port: number;
  statsPort: number;
  figures(): Promise<Stats>;
}

/**
 * Starts `ngi serve <module>` with HTTP and stats on free ports (no access log) and waits
 * until every worker is ready; the caller kills it in an `after` hook (`proc.kill()`).
 */
export async function startServe(module: string, ...flags: string[]): Promise<RunningServe> {
  const proc = spawnCli([
    'serve',
    module,
    '--http',
    '0',
    '--stats',
    '0',
    '--log-format',
    'off',
    ...flags,
  ]);
  const [, http] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
  const [, stats] = await proc.waitFor(/stats listening on 127\.0\.0\.1:(\d+)/);
  const statsPort = Number(stats);
  const figures = async (): Promise<Stats> => JSON.parse((await get(statsPort, '/')).body);
  return { proc, port: Number(http), statsPort, figures };
}

/** Polls `check` every 50 ms until it returns a value, at most `tries` times. */
export async function until<T>(check: () => Promise<T | undefined>, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error('condition never held');
}

/** Resolves once none of `pids` is alive any more. */
export async function allGone(pids: Iterable<number>): Promise<void> {
  await until(async () => ([...pids].every((pid) => !alive(pid)) ? true : undefined));
}

/** What a bounded run of sequential requests saw: the pids that answered, and what failed. */
export interface RequestRun {
  pids: Set<number>;
  failures: string[];
  requests: number;
}

/**
 * GETs `/pid` on fresh connections, one after another, until `done(run)` holds, `max`
 * requests were made or `maxMs` passed: every answer other than a 200 with a pid is a
 * failure. Bounded in time too: a replacement worker takes its time to start however fast
 * the requests go.
 */
export async function requestPids(
  port: number,
  done: (run: RequestRun) => boolean,
  max = 50_000,
  maxMs = 30_000,
): Promise<RequestRun> {
  const run: RequestRun = { pids: new Set(), failures: [], requests: 0 };
  const deadline = performance.now() + maxMs;
  while (run.requests < max && performance.now() < deadline && !done(run)) {
    run.requests++;
    try {
      const { status, body } = await get(port, '/pid');
      if (status === 200) run.pids.add(Number(body));
      else run.failures.push(`status ${status}`);
    } catch (error) {
      run.failures.push((error as Error).message);
    }
  }
  return run;
}

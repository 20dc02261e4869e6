/*
 * The process model, after uWSGI's master and workers.
 *
 * The listening sockets are shared by the kernel (node:cluster with SCHED_NONE): each worker
 * accept()s on the same socket when its event loop is free, so a connection waits in the
 * kernel's queue until some live, unblocked worker takes it. With cluster's round-robin the
 * master accepted every connection and handed it on, and a worker that died or was stuck in
 * synchronous code before taking its hand-off stranded the connection until the client
 * gave up. The price is that distribution follows who is free to accept rather than a strict
 * rotation (measured in test/src/server/process-model.test.ts and the README).
 *
 * A reload or a recycle starts the new worker, waits until it listens, and only then asks the
 * old one to stop: the socket never stops listening. (The master keeps a socket only while at
 * least one worker listens on it: when the single worker of `--workers 1` crashes, the port is
 * closed until its replacement is up.)
 *
 * The master never loads the app: a broken module fails in the first worker, which reports
 * the error and exits, and the master prints it once and exits non-zero (no respawn loop).
 * During a reload, a new worker that fails to load leaves the old ones serving.
 *
 * A reload replaces every worker at once by default (each old one stops as soon as its own
 * replacement listens: never fewer than N serving, briefly 2N processes); `rolling` replaces
 * one at a time (at least N-1 serving, at most N+1 processes: for apps too big to double).
 * Recycling by request count, memory or lifetime replaces one worker the same way.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BEAT_MS, LISTEN_ENV, type MasterMessage, type WorkerMessage } from './ipc.js';
import { formatListen as format, type ListenAddress } from './listen-address.js';
import {
  addTotals,
  emptyTotals,
  statsDocument,
  type StatsDocument,
  type WorkerFigures,
} from './stats.js';
import { jitteredLimit } from './recycling.js';
import type { ReloadTrigger } from './file-watch.js';

/** Respawned workers that may fail to start in a row (backing off between) before the master stops. */
const MAX_FAILED_STARTS = 5;

export type ReloadMode = 'all' | 'rolling';

/** Master settings (times in seconds). */
export interface MasterOptions {
  workers: number;
  http?: ListenAddress;
  uwsgi?: ListenAddress;
  https?: ListenAddress;
  stats?: ListenAddress;
  harakiri?: number;
  grace?: number;
  /** Recycle a worker this many seconds after it became ready (0: never). */
  maxWorkerLifetime?: number;
  /** Added to `maxWorkerLifetime`: each worker draws its own from max..max+delta seconds. */
  maxWorkerLifetimeDelta?: number;
  /** `all` (default): every worker at once; `rolling`: one at a time. */
  reloadMode?: ReloadMode;
  /** What else reloads besides SIGHUP (`--reload`, `--touch-reload`). */
  reloadTriggers?: readonly ReloadTrigger[];
  /** Informational lines (startup, respawns, reloads): stderr by default. */
  log?: (line: string) => void;
}

interface Slot {
  worker: Worker;
  pid: number;
  state: 'starting' | 'ready' | 'stopping';
  bornAt: number;
  beat: number;
  /** The worker this one takes over from (reload, recycle), stopped once this one is ready. */
  replaces: Slot | undefined;
  replacedBy: Slot | undefined;
  fatal: string | undefined;
  /** Its event loop stopped beating: it is killed, not asked to stop. */
  blocked: boolean;
  /** Its own `--max-worker-lifetime` in seconds, jitter drawn (0: none). */
  lifetimeSeconds: number;
  /** `--max-worker-lifetime`: recycles it when it fires. */
  lifetime: NodeJS.Timeout | undefined;
  /** Still starting when a reload came: it may hold the old code, so it is replaced once ready. */
  stale: boolean;
}

/**
 * Master side: forks the workers, announces the listeners, respawns dead workers with a
 * backoff, replaces workers on SIGHUP or when they ask (harakiri, max requests), watches for
 * blocked event loops, serves stats, and stops everything on SIGTERM/SIGINT. Resolves with
 * the exit code once every worker is gone.
 */
export function runMaster(options: MasterOptions): Promise<number> {
  const log = options.log ?? ((line: string) => process.stderr.write(`ngi: ${line}\n`));
  const grace = options.grace ?? 30;
  const slots = new Set<Slot>();
  const startedAt = Date.now();
  const retired = emptyTotals();
  // The figures each worker last reported: a worker killed before its 'final' still counts
  // what it served up to then, so the totals never go down.
  const lastFigures = new Map<Slot, WorkerFigures>();
  // Workers whose 'final' figures are in `retired`: a later answer of theirs would count twice.
  const finalized = new WeakSet<Slot>();
  const pendingStats = new Map<number, (figures: WorkerFigures) => void>();
  let statsId = 0;
  let announced = false;
  let shuttingDown = false;
  let exitCode = 0;
  let crashes = 0;
  // Workers in a row that failed to start (load or lifespan startup): past a few, stop.
  let failedStarts = 0;
  let respawns = 0;
  let reloads = 0;
  const recycles: Record<string, number> = {};
  let respawnTimer: NodeJS.Timeout | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  let statsServer: HttpServer | undefined;
  let statsAddress: ListenAddress | undefined;
  // A rolling reload: the old workers still to replace, and the new one starting meanwhile.
  let rollQueue: Slot[] = [];
  let rolling: Slot | undefined;
  let stopTriggers: Array<() => void> = [];
  const startWorkers = (): void => {
    for (let i = 0; i < options.workers; i++) fork();
  };
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));

  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const env = {
    [LISTEN_ENV]: JSON.stringify({
      http: options.http,
      uwsgi: options.uwsgi,
      https: options.https,
    }),
  };

  const fork = (replaces?: Slot): Slot => {
    const worker = cluster.fork(env);
    const slot: Slot = {
      worker,
      pid: worker.process.pid ?? 0,
      state: 'starting',
      bornAt: Date.now(),
      beat: Date.now(),
      replaces,
      replacedBy: undefined,
      fatal: undefined,
      blocked: false,
      // Drawn per worker, so workers started together do not all recycle at the same moment.
      lifetimeSeconds: jitteredLimit(
        options.maxWorkerLifetime ?? 0,
        options.maxWorkerLifetimeDelta ?? 0,
      ),
      lifetime: undefined,
      stale: false,
    };
    if (replaces !== undefined) replaces.replacedBy = slot;
    slots.add(slot);
    worker.on('message', (message: WorkerMessage) => onMessage(slot, message));
    worker.on('exit', (code, signal) => onExit(slot, code, signal));
    // An IPC error (worker gone mid-send) must not crash the master.
    worker.on('error', () => {});
    return slot;
  };

  const tell = (slot: Slot, message: MasterMessage): void => {
    if (slot.worker.isConnected()) slot.worker.send(message, undefined, () => {});
  };

  const stopSlot = (slot: Slot): void => {
    if (slot.state === 'stopping') return;
    // A worker still starting may not listen for messages yet (they would be lost); it has
    // no request to finish either, and its SIGTERM handler stops it gracefully if it is set.
    if (slot.state === 'starting') slot.worker.process.kill('SIGTERM');
    else tell(slot, { ngi: 'stop' });
    slot.state = 'stopping';
    // Past the grace period (and a little for the exit itself) the worker is killed.
    setTimeout(() => slot.worker.process.kill('SIGKILL'), (grace + 5) * 1000).unref();
  };

  const announce = (): void => {
    announced = true;
    const count = `${options.workers} worker${options.workers === 1 ? '' : 's'}`;
    if (options.http)
      log(`http listening on ${format(options.http)} (${count}, master pid ${process.pid})`);
    if (options.uwsgi)
      log(`uwsgi listening on ${format(options.uwsgi)} (${count}, master pid ${process.pid})`);
    if (options.https)
      log(`https listening on ${format(options.https)} (${count}, master pid ${process.pid})`);
    if (statsAddress) log(`stats listening on ${format(statsAddress)}`);
  };

  const onMessage = (slot: Slot, message: WorkerMessage): void => {
    switch (message?.ngi) {
      case 'ready':
        if (slot.state !== 'starting') return;
        slot.state = 'ready';
        slot.beat = Date.now();
        failedStarts = 0;
        if (slot.replaces !== undefined) {
          if (slot.replaces.blocked) slot.replaces.worker.process.kill('SIGKILL');
          else stopSlot(slot.replaces);
          slot.replaces = undefined;
        }
        if (slot.lifetimeSeconds > 0) {
          const lifetime = slot.lifetimeSeconds;
          slot.lifetime = setTimeout(
            () => recycle(slot, `max-worker-lifetime ${lifetime}s`),
            lifetime * 1000,
          );
          slot.lifetime.unref();
        }
        if (slot === rolling) rollNext();
        if (shuttingDown) stopSlot(slot);
        else if (!announced && countReady() >= options.workers) announce();
        if (slot.stale && !shuttingDown) replaceStale(slot);
        return;
      case 'fatal':
        slot.fatal = message.message;
        return;
      case 'recycle':
        recycle(slot, message.reason);
        return;
      case 'beat':
        slot.beat = Date.now();
        return;
      case 'stats':
        pendingStats.get(message.id)?.(message.figures);
        return;
      case 'final':
        tell(slot, { ngi: 'bye' });
        lastFigures.delete(slot);
        finalized.add(slot);
        addTotals(retired, message.figures);
        return;
    }
  };

  /** Replaces a serving worker: the new one starts and listens, then this one drains. */
  const recycle = (slot: Slot, reason: string): void => {
    if (shuttingDown || slot.state !== 'ready' || slot.replacedBy !== undefined) return;
    log(`worker ${slot.pid} recycled (${reason})`);
    // `max-requests 1000`, `reload-on-rss 260 MiB > 256 MiB`: the first word is the reason.
    const kind = reason.split(' ', 1)[0]!;
    recycles[kind] = (recycles[kind] ?? 0) + 1;
    fork(slot);
  };

  const countReady = (): number => {
    let n = 0;
    for (const slot of slots) if (slot.state === 'ready') n++;
    return n;
  };

  const onExit = (slot: Slot, code: number | null, signal: string | null): void => {
    slots.delete(slot);
    const last = lastFigures.get(slot);
    if (last !== undefined) addTotals(retired, last);
    lastFigures.delete(slot);
    clearTimeout(slot.lifetime);
    if (slot === rolling) {
      // Its replacement failed (a broken deploy): the workers not yet replaced keep serving.
      rolling = undefined;
      if (rollQueue.length > 0)
        log(`reload: stopped, ${rollQueue.length} worker(s) keep their old code`);
      rollQueue = [];
    }
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (shuttingDown) {
      if (slots.size === 0) void finishAll();
      return;
    }
    if (slot.state === 'stopping') return;
    if (!announced) {
      // A worker that cannot start at all will not start on retry either: stop, loudly.
      process.stderr.write(
        slot.fatal !== undefined
          ? `ngi: ${slot.fatal}\n`
          : `ngi: worker ${slot.pid} exited (${how}) before it was ready\n`,
      );
      exitCode = 1;
      shutdown();
      return;
    }
    const old = slot.replaces;
    if (old !== undefined && slots.has(old) && !old.blocked) {
      old.replacedBy = undefined;
      log(
        `new worker ${slot.pid} failed to start (${slot.fatal ?? how}); worker ${old.pid} keeps serving`,
      );
      return;
    }
    if (slot.replacedBy !== undefined) {
      log(`worker ${slot.pid} exited (${how}) while being replaced`);
      return;
    }
    if (slot.fatal !== undefined && ++failedStarts >= MAX_FAILED_STARTS) {
      // The app cannot start any more (a database gone for good, a broken deploy): respawning
      // forever would only hide it. Stop, loudly, as at the first start.
      process.stderr.write(
        `ngi: ${slot.fatal}\nngi: ${failedStarts} workers in a row failed to start; stopping\n`,
      );
      exitCode = 1;
      shutdown();
      return;
    }
    crashes = Date.now() - slot.bornAt > 10_000 ? 1 : crashes + 1;
    // Exponential backoff: an app that dies on every request must not fork-bomb the host.
    const delay = crashes <= 1 ? 0 : Math.min(100 * 2 ** (crashes - 2), 10_000);
    log(
      `worker ${slot.pid} died (${how})${slot.fatal ? `: ${slot.fatal}` : ''}; respawning in ${delay}ms`,
    );
    respawnTimer = setTimeout(() => {
      respawnTimer = undefined;
      if (shuttingDown) return;
      respawns++;
      fork();
    }, delay);
  };

  /**
   * A worker whose event loop is stuck in synchronous code takes no new connection (the
   * kernel gives them to the others) but cannot answer the ones it has: kill it. When no
   * other worker serves, its replacement comes first, because the port closes with the last
   * listener and would reset the connections waiting in the kernel's queue.
   */
  const cutBlocked = (slot: Slot, now: number): void => {
    log(
      `harakiri: worker ${slot.pid} blocked for ${((now - slot.beat) / 1000).toFixed(1)}s; killing it`,
    );
    slot.state = 'stopping';
    slot.blocked = true;
    if (slot.replacedBy === undefined) {
      respawns++;
      fork(slot);
    }
    const kill = () => slot.worker.process.kill('SIGKILL');
    if (countReady() > 0) kill();
    else setTimeout(kill, 1000).unref();
  };

  /** A worker that was starting when a reload came, now ready: its turn to be replaced. */
  const replaceStale = (slot: Slot): void => {
    slot.stale = false;
    if (slot.replacedBy !== undefined) return;
    log(`reload: worker ${slot.pid} was starting at the reload; replacing it`);
    if (options.reloadMode !== 'rolling') fork(slot);
    else {
      rollQueue.push(slot);
      if (rolling === undefined) rollNext();
    }
  };

  const reload = (why?: string): void => {
    if (shuttingDown) return;
    reloads++;
    // A worker still starting may have loaded the code this reload replaces (the app module
    // is read before its startup runs): it is replaced once ready. (The one a rolling reload
    // is starting goes last in the new round below.)
    for (const slot of slots) {
      if (slot.state === 'starting' && slot !== rolling) slot.stale = true;
    }
    const current = [...slots].filter((s) => s.state === 'ready' && s.replacedBy === undefined);
    const cause = typeof why === 'string' ? ` (${why})` : '';
    if (options.reloadMode === 'rolling') {
      log(`reload${cause}: replacing ${current.length} worker(s) one at a time`);
      // Mid-roll, the worker starting now may have loaded what this reload replaces: it goes
      // last in the new round.
      rollQueue = rolling === undefined ? current : [...current, rolling];
      if (rolling === undefined) rollNext();
      return;
    }
    log(`reload${cause}: starting ${current.length} new worker(s)`);
    for (const slot of current) fork(slot);
  };

  /** The next step of a rolling reload: replace the next old worker still serving. */
  const rollNext = (): void => {
    rolling = undefined;
    for (let old = rollQueue.shift(); old !== undefined; old = rollQueue.shift()) {
      if (slots.has(old) && old.state === 'ready' && old.replacedBy === undefined) {
        rolling = fork(old);
        log(`reload: replacing worker ${old.pid} (${rollQueue.length} more after it)`);
        return;
      }
    }
  };
  const onSighup = (): void => reload();

  const shutdown = (): void => {
    if (shuttingDown) {
      // Asked twice: no more waiting.
      for (const slot of slots) slot.worker.process.kill('SIGKILL');
      return;
    }
    shuttingDown = true;
    if (respawnTimer !== undefined) clearTimeout(respawnTimer);
    if (watchdog !== undefined) clearInterval(watchdog);
    for (const stop of stopTriggers) stop();
    rollQueue = [];
    statsServer?.close();
    statsServer?.closeAllConnections();
    // Each worker stops itself, as on a reload: it closes its listeners, lets its requests
    // finish within the grace period, then closes what is left (WebSockets too) and runs its
    // lifespan shutdown. (cluster's worker.disconnect() would wait for every connection to
    // end, and one open WebSocket would hold the worker until the SIGKILL at grace + 5 s.)
    for (const slot of slots) stopSlot(slot);
    if (slots.size === 0) void finishAll();
  };

  const finishAll = async (): Promise<void> => {
    process.off('SIGHUP', onSighup);
    process.off('SIGTERM', shutdown);
    process.off('SIGINT', shutdown);
    finish(exitCode);
  };

  /** What the master knows of a worker beside what the worker reports itself. */
  const ownFigures = (slot: Slot) =>
    slot.lifetimeSeconds > 0
      ? { id: slot.worker.id, state: slot.state, maxLifetime: slot.lifetimeSeconds }
      : { id: slot.worker.id, state: slot.state };

  const gatherStats = async (): Promise<StatsDocument> => {
    // A worker still starting may not listen for messages yet: it is counted, not asked.
    const starting = [...slots].filter((s) => s.state === 'starting').length;
    const live = [...slots].filter((s) => s.state !== 'starting' && !finalized.has(s));
    const figures = await Promise.all(
      live.map(
        (slot) =>
          new Promise<(WorkerFigures & Record<string, unknown>) | undefined>((resolve) => {
            const id = ++statsId;
            const timer = setTimeout(() => {
              pendingStats.delete(id);
              // Too busy to answer: what it said last keeps the totals from dipping.
              const last = lastFigures.get(slot);
              resolve(last && { ...last, ...ownFigures(slot) });
            }, 1000);
            pendingStats.set(id, (f) => {
              clearTimeout(timer);
              pendingStats.delete(id);
              if (slots.has(slot) && !finalized.has(slot)) lastFigures.set(slot, f);
              resolve({ ...f, ...ownFigures(slot) });
            });
            tell(slot, { ngi: 'stats?', id });
          }),
      ),
    );
    return {
      ...statsDocument(
        startedAt,
        // One that retired while the others answered is in `retired` already.
        figures.filter(
          (f, i): f is WorkerFigures & Record<string, unknown> =>
            f !== undefined && !finalized.has(live[i]!),
        ),
        retired,
      ),
      starting,
      respawns,
      reloads,
      recycles: { ...recycles },
      // The master never loads the app: its own footprint is the gateway's alone.
      master: { pid: process.pid, rss: process.memoryUsage.rss() },
    } as StatsDocument;
  };

  stopTriggers = (options.reloadTriggers ?? []).map((start) => start(reload));
  process.on('SIGHUP', onSighup);
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  if (options.harakiri) {
    // A loop that has not beaten for harakiri (and one beat's slack) is stuck in synchronous
    // code: its own harakiri timer cannot fire, so the master ends it.
    const limit = options.harakiri * 1000 + BEAT_MS;
    watchdog = setInterval(() => {
      const now = Date.now();
      for (const slot of slots) {
        if (slot.state === 'ready' && now - slot.beat > limit) cutBlocked(slot, now);
      }
    }, BEAT_MS);
  }

  if (options.stats !== undefined) {
    const stats = options.stats;
    // Loaded only with --stats: the stats listener is an NGI app on ngi's HTTP listener, whose
    // code a master without it never needs.
    void import('./stats-server.js').then(({ createStatsServer }) => {
      // Stopped while it loaded: shutdown() found no worker and finished already.
      if (shuttingDown) return;
      // Ready once every worker first started, while one serves (not while all are respawning).
      const ready = () => announced && !shuttingDown && countReady() > 0;
      statsServer = createStatsServer({ document: gatherStats, ready });
      statsServer.once('error', (error) => {
        process.stderr.write(
          `ngi: cannot listen for stats on ${format(stats)}: ${error.message}\n`,
        );
        exitCode = 1;
        shutdown();
      });
      const listening = () => {
        const info = statsServer!.address() as AddressInfo | string;
        statsAddress =
          typeof info === 'string'
            ? { host: '', port: 0, path: info }
            : { host: info.address, port: info.port };
        startWorkers();
      };
      if (stats.path !== undefined) statsServer.listen(stats.path, listening);
      else statsServer.listen(stats.port, stats.host, listening);
    });
  } else startWorkers();
  return done;
}

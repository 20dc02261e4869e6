import cluster from 'node:cluster';
import type { WorkerFigures } from './stats.js';

/** Messages between the master and its workers (all tagged `ngi`). */
export type WorkerMessage =
  | { ngi: 'ready' }
  | { ngi: 'fatal'; message: string }
  /** `reason` is what the master logs: `max-requests 1000`, `reload-on-rss 260 MiB > 256 MiB`. */
  | { ngi: 'recycle'; reason: string }
  | { ngi: 'beat' }
  | { ngi: 'stats'; id: number; figures: WorkerFigures }
  | { ngi: 'final'; figures: WorkerFigures };
export type MasterMessage = { ngi: 'stop' } | { ngi: 'stats?'; id: number } | { ngi: 'bye' };

/** The env var carrying the listeners, resolved by the master, to its workers. */
export const LISTEN_ENV = 'NGI_WORKER_LISTEN';

/** True in a process started by the master. */
export function isWorker(): boolean {
  return cluster.isWorker && process.env[LISTEN_ENV] !== undefined;
}

/**
 * How often a worker tells the master its event loop still turns. The master's harakiri
 * watchdog allows one missed beat, so a blocked loop is caught within harakiri + 2 beats.
 */
export const BEAT_MS = 250;

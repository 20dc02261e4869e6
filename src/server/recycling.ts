/*
 * When a worker asks to be replaced, besides harakiri and uncaught exceptions: after its
 * request limit (with a per-worker jitter, so workers started together do not all recycle
 * at the same moment, as gunicorn's max_requests_jitter and uWSGI's max-requests-delta),
 * and when its resident memory passes a ceiling (uWSGI's reload-on-rss). The replacement
 * itself is the master's: a new worker starts and listens, then the old one drains. The
 * master draws each worker's lifetime with the same jitter (uWSGI's
 * max-worker-lifetime-delta).
 */
import { randomInt } from 'node:crypto';

/** Worker-side recycling settings (memory in MiB). */
export interface RecyclingOptions {
  /** Added to `maxRequests`: each worker draws its own limit from max..max+delta. */
  maxRequestsDelta?: number;
  /** Resident memory, in MiB, past which the worker asks to be replaced. */
  reloadOnRss?: number;
}

/** How often a worker reads its own RSS: cheap (one syscall), and a leak grows slower. */
export const RSS_CHECK_MS = 500;

/**
 * One worker's own limit (its request count, its lifetime in seconds): `max` plus a whole
 * draw from 0..`delta` (both ends included), so workers started together do not all reach
 * it at once. 0 stays 0 (no limit): a jitter alone does not turn recycling on.
 *
 * @example
 * jitteredLimit(1000, 50); // somewhere in 1000..1050
 */
export function jitteredLimit(max: number, delta: number): number {
  if (max <= 0) return 0;
  return delta > 0 ? max + randomInt(0, delta + 1) : max;
}

/**
 * Calls `onOver(rssMiB)` once when this process's RSS passes `limitMiB`, checking every
 * `RSS_CHECK_MS` on an unref'd timer; returns the stop function.
 */
export function watchRss(limitMiB: number, onOver: (rssMiB: number) => void): () => void {
  const limit = limitMiB * 1024 * 1024;
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss <= limit) return;
    clearInterval(timer);
    onOver(Math.round(rss / (1024 * 1024)));
  }, RSS_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

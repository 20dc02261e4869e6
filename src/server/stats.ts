/**
 * Upper bounds (seconds) of the request-duration histogram: prom-client's defaults, which
 * Prometheus dashboards for HTTP servers expect.
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** How long finished requests took: per-bucket counts (not cumulative) and their sum. */
export interface Durations {
  /** `counts[i]`: requests of at most `DURATION_BUCKETS[i]` s and more than the bound before; the last slot counts the longer ones. */
  counts: number[];
  /** Seconds, over every finished request. */
  sum: number;
}

/** What adds up across workers, live and retired. */
export interface Totals {
  /** Requests finished (completed or not). */
  requests: number;
  /** Finished requests by status code (`"0"`: closed before any response head). */
  statuses: Record<string, number>;
  /** Requests answered 504 by harakiri. */
  harakiri: number;
  /** Response body bytes written. */
  bytes: number;
  durations: Durations;
}

/** One process's figures, as the stats listener reports them. */
export interface WorkerFigures extends Totals {
  pid: number;
  inFlight: number;
  /** Seconds since this process started serving. */
  uptime: number;
  /** Resident set size in bytes, read when the figures are asked for. */
  rss: number;
  /** Under a master with `--max-requests`: this worker's own limit (the jitter drawn). */
  maxRequests?: number;
  /** Under a master with `--max-worker-lifetime`: this worker's own lifetime in seconds (the jitter drawn). */
  maxLifetime?: number;
}

/** Counters kept by one serving process; cheap enough to touch on every request. */
export class Counters {
  requests: number = 0;
  inFlight: number = 0;
  harakiri: number = 0;
  bytes: number = 0;
  readonly statuses: Map<number, number> = new Map();
  // Plain numbers, filled once: a request only bumps a slot (no allocation, no IPC).
  readonly durationCounts: number[] = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  durationSum: number = 0;
  readonly startedAt: number = Date.now();

  begin(): void {
    this.inFlight++;
  }

  end(status: number, bytes: number, seconds: number): void {
    this.inFlight--;
    this.requests++;
    this.bytes += bytes;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    let slot = 0;
    while (slot < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[slot]!) slot++;
    this.durationCounts[slot]!++;
    this.durationSum += seconds;
  }

  figures(): WorkerFigures {
    const statuses: Record<string, number> = {};
    for (const [code, count] of [...this.statuses].sort((a, b) => a[0] - b[0])) {
      statuses[code] = count;
    }
    return {
      pid: process.pid,
      requests: this.requests,
      inFlight: this.inFlight,
      statuses,
      harakiri: this.harakiri,
      bytes: this.bytes,
      durations: { counts: [...this.durationCounts], sum: this.durationSum },
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      rss: process.memoryUsage.rss(),
    };
  }
}

/** Totals of nothing yet: where a master sums the figures of the workers it retired. */
export function emptyTotals(): Totals {
  return {
    requests: 0,
    statuses: {},
    harakiri: 0,
    bytes: 0,
    durations: { counts: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0 },
  };
}

/** Adds `figures` into `into`. */
export function addTotals(into: Totals, figures: Totals): void {
  into.requests += figures.requests;
  into.harakiri += figures.harakiri;
  into.bytes += figures.bytes;
  for (const [code, count] of Object.entries(figures.statuses)) {
    into.statuses[code] = (into.statuses[code] ?? 0) + count;
  }
  const counts = into.durations.counts;
  figures.durations.counts.forEach((count, slot) => (counts[slot] = (counts[slot] ?? 0) + count));
  into.durations.sum += figures.durations.sum;
}

/** The stats document: totals over every worker plus each worker's own figures. */
export interface StatsDocument extends Totals {
  pid: number;
  uptime: number;
  inFlight: number;
  workers: Array<WorkerFigures & Record<string, unknown>>;
  /** Under `ngi serve`'s master: the master's own pid and resident set size in bytes. */
  master?: { pid: number; rss: number };
  /**
   * Under a master: workers forked whose app has not finished starting (loading, lifespan
   * startup). They are not in `workers`: they cannot answer for their figures yet.
   */
  starting?: number;
  /** Under a master: workers started again after they died or were found blocked. */
  respawns?: number;
  /** Under a master: reloads (SIGHUP) so far. */
  reloads?: number;
  /**
   * Under a master: workers replaced gracefully on their own account, by reason
   * (`max-requests`, `reload-on-rss`, `max-worker-lifetime`, `harakiri`, `uncaught-exception`).
   */
  recycles?: Record<string, number>;
}

/** Why a worker is recycled, as `ngi_worker_recycles_total` labels it (each shown from 0). */
export const RECYCLE_REASONS = [
  'max-requests',
  'reload-on-rss',
  'max-worker-lifetime',
  'harakiri',
  'uncaught-exception',
] as const;

/** Sums worker figures (live ones and, for `retired`, those of workers already gone). */
export function statsDocument(
  startedAt: number,
  workers: Array<WorkerFigures & Record<string, unknown>>,
  retired?: Totals,
): StatsDocument {
  const doc: StatsDocument = {
    pid: process.pid,
    uptime: Math.round((Date.now() - startedAt) / 1000),
    ...emptyTotals(),
    inFlight: 0,
    workers,
  };
  if (retired !== undefined) addTotals(doc, retired);
  for (const w of workers) {
    doc.inFlight += w.inFlight;
    addTotals(doc, w);
  }
  return doc;
}

/** One process's figures, as the stats listener reports them. */
export interface WorkerFigures {
  pid: number;
  /** Requests finished (completed or not). */
  requests: number;
  inFlight: number;
  /** Finished requests by status code (`"0"`: closed before any response head). */
  statuses: Record<string, number>;
  /** Requests answered 504 by harakiri. */
  harakiri: number;
  /** Seconds since this process started serving. */
  uptime: number;
  /** Resident set size in bytes, read when the figures are asked for. */
  rss: number;
}

/** Counters kept by one serving process; cheap enough to touch on every request. */
export class Counters {
  requests: number = 0;
  inFlight: number = 0;
  harakiri: number = 0;
  readonly statuses: Map<number, number> = new Map();
  readonly startedAt: number = Date.now();

  begin(): void {
    this.inFlight++;
  }

  end(status: number): void {
    this.inFlight--;
    this.requests++;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
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
      uptime: Math.round((Date.now() - this.startedAt) / 1000),
      rss: process.memoryUsage.rss(),
    };
  }
}

/** The stats document: totals over every worker plus each worker's own figures. */
export interface StatsDocument {
  pid: number;
  uptime: number;
  requests: number;
  inFlight: number;
  statuses: Record<string, number>;
  harakiri: number;
  workers: Array<WorkerFigures & Record<string, unknown>>;
  /** Under `ngi serve`'s master: the master's own pid and resident set size in bytes. */
  master?: { pid: number; rss: number };
}

/** Sums worker figures (live ones and, for `retired`, those of workers already gone). */
export function statsDocument(
  startedAt: number,
  workers: Array<WorkerFigures & Record<string, unknown>>,
  retired?: Pick<WorkerFigures, 'requests' | 'statuses' | 'harakiri'>,
): StatsDocument {
  const doc: StatsDocument = {
    pid: process.pid,
    uptime: Math.round((Date.now() - startedAt) / 1000),
    requests: retired?.requests ?? 0,
    inFlight: 0,
    statuses: { ...retired?.statuses },
    harakiri: retired?.harakiri ?? 0,
    workers,
  };
  for (const w of workers) {
    doc.requests += w.requests;
    doc.inFlight += w.inFlight;
    doc.harakiri += w.harakiri;
    for (const [code, count] of Object.entries(w.statuses)) {
      doc.statuses[code] = (doc.statuses[code] ?? 0) + count;
    }
  }
  return doc;
}

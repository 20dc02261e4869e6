/*
 * The stats document in Prometheus' text format. The workers count on plain numbers (see
 * Counters); the process serving the stats listener reads their snapshots when scraped and
 * hands them to prom-client, which sums them and writes the exposition.
 */
import { AggregatorRegistry } from 'prom-client';
import { DURATION_BUCKETS, RECYCLE_REASONS, type StatsDocument, type Totals } from './stats.js';

/** One sample: what `registry.getMetricsAsJSON()` yields, and `aggregate()` takes. */
interface Sample {
  value: number;
  labels: Record<string, string>;
  /** A histogram's `_bucket`, `_sum` and `_count` lines. */
  metricName?: string;
}

/** One metric in prom-client's JSON form. */
interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: Sample[];
}

/** The content type of `metricsText()`'s output. */
export const METRICS_CONTENT_TYPE: string = AggregatorRegistry.PROMETHEUS_CONTENT_TYPE;

/**
 * The figures of a stats document as Prometheus metrics (`ngi_requests_total{code}`,
 * `ngi_request_duration_seconds`, `ngi_worker_resident_memory_bytes{worker,pid}`, ...).
 *
 * @example
 * const text = await metricsText(statsDocument(startedAt, [counters.figures()]));
 */
export async function metricsText(doc: StatsDocument): Promise<string> {
  const metrics: Metric[] = [
    counter(
      'ngi_requests_total',
      'Requests finished, by status code ("0": closed before any response head).',
      Object.entries(doc.statuses).map(([code, value]) => ({ labels: { code }, value })),
    ),
    gauge('ngi_requests_in_flight', 'Requests being served now.', [
      { labels: {}, value: doc.inFlight },
    ]),
    histogram(doc),
    counter('ngi_response_bytes_total', 'Response body bytes sent.', [
      { labels: {}, value: doc.bytes },
    ]),
    counter('ngi_harakiri_total', 'Requests answered 504 by --harakiri.', [
      { labels: {}, value: doc.harakiri },
    ]),
    gauge(
      'ngi_worker_resident_memory_bytes',
      'Resident set size of each serving process.',
      doc.workers.map((w) => ({
        labels: workerLabels(w),
        value: w.rss,
      })),
    ),
    gauge('ngi_uptime_seconds', 'Seconds since ngi serve started.', [
      { labels: {}, value: doc.uptime },
    ]),
  ];
  if (doc.master !== undefined) {
    metrics.push(
      gauge('ngi_master_resident_memory_bytes', 'Resident set size of the master process.', [
        { labels: {}, value: doc.master.rss },
      ]),
      gauge('ngi_workers', 'Worker processes the master has, by state.', workerStates(doc)),
      counter(
        'ngi_worker_restarts_total',
        'Workers started again after they died or were killed for a blocked event loop.',
        [{ labels: {}, value: doc.respawns ?? 0 }],
      ),
      counter('ngi_reloads_total', 'Graceful reloads (SIGHUP).', [
        { labels: {}, value: doc.reloads ?? 0 },
      ]),
      counter(
        'ngi_worker_recycles_total',
        'Workers replaced gracefully on their own account (a reload is ngi_reloads_total), by reason.',
        RECYCLE_REASONS.map((reason) => ({
          labels: { reason },
          value: doc.recycles?.[reason] ?? 0,
        })),
      ),
    );
  }
  return AggregatorRegistry.aggregate([metrics]).metrics();
}

function counter(name: string, help: string, values: Sample[]): Metric {
  return { name, help, type: 'counter', aggregator: 'sum', values };
}

function gauge(name: string, help: string, values: Sample[]): Metric {
  return { name, help, type: 'gauge', aggregator: 'sum', values };
}

/** The cumulative buckets, `_sum` and `_count` of `ngi_request_duration_seconds`. */
function histogram({ durations }: Totals): Metric {
  const name = 'ngi_request_duration_seconds';
  const values: Sample[] = [];
  let cumulative = 0;
  DURATION_BUCKETS.forEach((bound, slot) => {
    cumulative += durations.counts[slot] ?? 0;
    values.push({ metricName: `${name}_bucket`, labels: { le: String(bound) }, value: cumulative });
  });
  cumulative += durations.counts[DURATION_BUCKETS.length] ?? 0;
  values.push(
    { metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: cumulative },
    { metricName: `${name}_sum`, labels: {}, value: durations.sum },
    { metricName: `${name}_count`, labels: {}, value: cumulative },
  );
  return {
    name,
    help: 'Time from a request to the end of its response, in seconds.',
    type: 'histogram',
    aggregator: 'sum',
    values,
  };
}

function workerStates(doc: StatsDocument): Sample[] {
  const byState = new Map<string, number>([
    // Not among `doc.workers`: a worker still starting gives no figures yet.
    ['starting', doc.starting ?? 0],
    ['ready', 0],
    ['stopping', 0],
  ]);
  for (const w of doc.workers) {
    const state = String(w.state ?? 'ready');
    byState.set(state, (byState.get(state) ?? 0) + 1);
  }
  return [...byState].map(([state, value]) => ({ labels: { state }, value }));
}

/** A worker's cluster id (under a master) and pid. */
function workerLabels(w: StatsDocument['workers'][number]): Record<string, string> {
  const pid = String(w.pid);
  return w.id === undefined ? { pid } : { worker: String(w.id), pid };
}

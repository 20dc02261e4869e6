import type { Server as HttpServer } from 'node:http';
import { createHttpServer } from './http-listener.js';
import type { StatsDocument } from './stats.js';

/** What the stats listener reads on each request. */
export interface StatsSource {
  /** The figures now (a master asks its workers first). */
  document(): StatsDocument | Promise<StatsDocument>;
  /**
   * Whether this server should get traffic (`/readyz`): under a master, every worker started
   * and at least one still serves. Always ready when not given.
   */
  ready?(): boolean;
}

const noStore: Array<[string, string]> = [['Cache-Control', 'no-store']];

/**
 * The stats listener: `/metrics` in Prometheus' text format, `/healthz` (200 while the
 * process runs), `/readyz` (200 when ready for traffic, 503 otherwise), and the stats
 * document as JSON on every other path.
 *
 * @example
 * createStatsServer({ document: () => statsDocument(startedAt, [counters.figures()]) }).listen(9191);
 */
export function createStatsServer(source: StatsSource): HttpServer {
  return createHttpServer(async (environ, startResponse) => {
    switch (environ.PATH_INFO) {
      case '/healthz':
        startResponse('200 OK', [['Content-Type', 'text/plain'], ...noStore]);
        return ['ok\n'];
      case '/readyz': {
        const ready = source.ready?.() ?? true;
        startResponse(ready ? '200 OK' : '503 Service Unavailable', [
          ['Content-Type', 'text/plain'],
          ...noStore,
        ]);
        return [ready ? 'ready\n' : 'not ready\n'];
      }
      case '/metrics': {
        // Loaded on the first scrape: a stats listener only read as JSON never loads prom-client.
        const { metricsText, METRICS_CONTENT_TYPE } = await import('./metrics.js');
        const text = await metricsText(await source.document());
        startResponse('200 OK', [['Content-Type', METRICS_CONTENT_TYPE], ...noStore]);
        return [text];
      }
    }
    const body = JSON.stringify(await source.document(), null, 2) + '\n';
    startResponse('200 OK', [['Content-Type', 'application/json'], ...noStore]);
    return [body];
  });
}

import type { Exchange } from '../core/exchange.js';
import type { ErrorStream } from '../core/types.js';

/** How a request ended, for access logs and stats. */
export interface ExchangeOutcome {
  /** The status sent (0 when the connection closed before any head). */
  status: number;
  /** Body bytes written to the client, as far as the listener knows. */
  bytes: number;
  /** True when the response completed normally (not aborted, not client gone). */
  complete: boolean;
}

/** What every listener (HTTP, uwsgi) accepts from `serve()`. */
export interface ListenerOptions {
  errors?: ErrorStream;
  /** `ngi.multiprocess` for the environ. */
  multiprocess?: boolean;
  /**
   * Called once per request when its exchange is created, before the app runs. May return a
   * callback that the listener calls exactly once when the response is finished, aborted or
   * abandoned (access log, stats, harakiri timers).
   */
  onExchange?: (exchange: Exchange) => ((outcome: ExchangeOutcome) => void) | void;
}

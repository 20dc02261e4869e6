import type { ExchangeOutcome } from './listener.js';
import type { Environ } from '../core/types.js';

/** `text`: one readable line per request; `json`: one JSON object per line; `off`: nothing. */
export type LogFormat = 'text' | 'json' | 'off';

/** Where access lines go: anything with `write(line)` (stdout by default). */
export interface LogStream {
  write(line: string): unknown;
}

/** What is known about a finished request, gathered by the server. */
export interface AccessRecord {
  environ: Environ;
  outcome: ExchangeOutcome;
  /** Milliseconds from the request's arrival to the end of its response. */
  ms: number;
}

/** Writes one access line for a finished request. */
export type AccessLogger = (record: AccessRecord) => void;

// Raw URIs from uwsgi peers may hold quotes or control bytes: a log line must stay one line.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x1f"\\\x7f]/g;

function escapeField(value: string): string {
  return value.replace(UNSAFE, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

// Formatting a Date is most of a line's cost; requests finishing in the same millisecond share
// one string (the line shows milliseconds, so it reads the same).
let stampedAt = NaN;
let stamp = '';

/** The current time as ISO 8601 with milliseconds, formatted once per millisecond. */
function isoNow(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = new Date(now).toISOString();
  }
  return stamp;
}

/**
 * An access logger for a format, or `undefined` for `off` (so the server skips the work).
 *
 * The text line reads like nginx's: address, time, request line, status, bytes, duration,
 * and `aborted` when the response did not complete.
 *
 * @example
 * const log = createAccessLog('json', process.stdout);
 * // {"time":"2026-11-24T00:50:01.123Z","pid":4242,"remote":"127.0.0.1","method":"GET",...}
 */
export function createAccessLog(
  format: LogFormat,
  stream: LogStream = process.stdout,
): AccessLogger | undefined {
  if (format === 'off') return undefined;
  const pid = process.pid;
  if (format === 'json') {
    return ({ environ, outcome, ms }) => {
      stream.write(
        JSON.stringify({
          time: isoNow(),
          pid,
          remote: environ.REMOTE_ADDR,
          method: environ.REQUEST_METHOD,
          uri: environ.REQUEST_URI,
          protocol: environ.SERVER_PROTOCOL,
          status: outcome.status,
          bytes: outcome.bytes,
          ms: Math.round(ms * 1000) / 1000,
          complete: outcome.complete,
        }) + '\n',
      );
    };
  }
  if (format !== 'text') throw new TypeError(`unknown log format ${JSON.stringify(format)}`);
  return ({ environ, outcome, ms }) => {
    stream.write(
      `${environ.REMOTE_ADDR || '-'} [${isoNow()}] "${environ.REQUEST_METHOD} ${escapeField(
        environ.REQUEST_URI,
      )} ${environ.SERVER_PROTOCOL}" ${outcome.status} ${outcome.bytes} ${ms.toFixed(3)}ms pid=${pid}${
        outcome.complete ? '' : ' aborted'
      }\n`,
    );
  };
}

import { request, type Agent } from 'node:http';

/** How one request of a load run ended, as a user of the server would tell it. */
export type Outcome =
  /** An HTTP status came back. */
  | { kind: 'status'; status: number; body: string; ms: number }
  /** The connection was refused: nothing listened (a stopped server says no, clearly). */
  | { kind: 'refused'; ms: number }
  /** The connection was taken, then reset or closed without an answer. */
  | { kind: 'reset'; error: string; ms: number }
  /** No answer within the client's timeout: a stranded connection. */
  | { kind: 'timeout'; ms: number };

/** One GET on a fresh connection (or on `agent`), classified instead of thrown. */
export function probe(
  port: number,
  path: string,
  options: { timeoutMs?: number; agent?: Agent | false } = {},
): Promise<Outcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const req = request({ host: '127.0.0.1', port, path, agent: options.agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => done({ kind: 'status', status: res.statusCode ?? 0, body, ms: ms() }));
      res.on('error', (error) => done({ kind: 'reset', error: error.message, ms: ms() }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') done({ kind: 'refused', ms: ms() });
      else done({ kind: 'reset', error: error.code ?? error.message, ms: ms() });
    });
    req.setTimeout(options.timeoutMs ?? 5000, () => {
      done({ kind: 'timeout', ms: ms() });
      req.destroy();
    });
    req.end();
  });
}

/** What a load run saw, in the order the requests were sent. */
export interface LoadRun {
  outcomes: Outcome[];
  /** Outcomes by kind (`200`, `504`, `refused`, `reset`, `timeout`). */
  counts: Record<string, number>;
}

/**
 * Runs `concurrency` client loops, each sending GET `path` one after the other on fresh
 * connections, until `stop()` returns true, `maxRequests` were sent or `maxMs` passed
 * (every run is bounded). `onOutcome` sees each outcome as it arrives.
 */
export async function runLoad(options: {
  port: number;
  path: string;
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  timeoutMs?: number;
  stop?: () => boolean;
  onOutcome?: (outcome: Outcome, index: number) => void;
}): Promise<LoadRun> {
  const outcomes: Outcome[] = [];
  const counts: Record<string, number> = {};
  const deadline = performance.now() + options.maxMs;
  let sent = 0;
  const loop = async () => {
    while (sent < options.maxRequests && performance.now() < deadline && !options.stop?.()) {
      const index = sent++;
      const outcome = await probe(options.port, options.path, { timeoutMs: options.timeoutMs });
      outcomes[index] = outcome;
      const key = outcome.kind === 'status' ? String(outcome.status) : outcome.kind;
      counts[key] = (counts[key] ?? 0) + 1;
      options.onOutcome?.(outcome, index);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  return { outcomes, counts };
}

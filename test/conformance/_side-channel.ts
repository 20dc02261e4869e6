// How a test talks to a reference app mid-response, without timing: the app waits on a
// gate the test opens once it has seen the first chunk, and reports what it observed
// (the client going away) under the request's id.

const gates = new Map<string, () => void>();
const waiting = new Map<string, Promise<void>>();
const observations = new Map<string, string>();
const watchers = new Map<string, (what: string) => void>();

/** Longest a reference app waits on a gate: a bound, so a broken path fails, never hangs. */
const GATE_LIMIT_MS = 10_000;

/** The app side: resolves when the test opens gate `id` (or after the bound, noting it). */
export function gate(id: string): Promise<void> {
  let promise = waiting.get(id);
  if (promise === undefined) {
    promise = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        observe(id, 'gate timed out');
        resolve();
      }, GATE_LIMIT_MS);
      gates.set(id, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    waiting.set(id, promise);
  }
  return promise;
}

/** The test side: lets the app behind gate `id` go on. */
export function openGate(id: string): void {
  if (!waiting.has(id)) void gate(id);
  gates.get(id)!();
  gates.delete(id);
  waiting.delete(id);
}

/** The app side: records what it saw for request `id` (first report wins). */
export function observe(id: string, what: string): void {
  if (observations.has(id)) return;
  observations.set(id, what);
  watchers.get(id)?.(what);
}

/** The test side: what the app reported for `id`, waiting up to `ms` for it. */
export function observed(id: string, ms = 5_000): Promise<string> {
  const seen = observations.get(id);
  if (seen !== undefined) return Promise.resolve(seen);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      watchers.delete(id);
      resolve('nothing observed');
    }, ms);
    watchers.set(id, (what) => {
      clearTimeout(timer);
      watchers.delete(id);
      resolve(what);
    });
  });
}

let counter = 0;
/** A fresh request id. */
export function nextId(): string {
  return `r${++counter}`;
}

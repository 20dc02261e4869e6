import type { App, Environ } from '../core/types.js';
import type { Base, RawResponse, WireRequest, WireResponse } from './_wire.js';

/** What a case's check has to talk to the host under test with. */
export interface CaseContext {
  readonly base: Base;
  /** The bound on every wait of the case, in ms. */
  readonly timeoutMs: number;
  /** One request on a fresh connection (the case's own app answers it). */
  send(request: Omit<WireRequest, 'timeoutMs'> & { timeoutMs?: number }): Promise<WireResponse>;
  /** A `Connection: close` request on a raw socket: every byte the host sent, head and after. */
  raw(method: string, path: string): Promise<RawResponse>;
  /**
   * A client that sends a GET and goes away: once `after` resolves, or at the first byte of
   * the response when `after` is `'first-byte'` (bounded by `timeoutMs` either way).
   */
  abandon(path: string, after: Promise<unknown> | 'first-byte'): Promise<void>;
}

/** One run of a case: its app and the check that drives it over the wire. */
export interface CaseRun {
  app: App;
  /** `undefined` when the host followed the rule, else what the client saw instead. */
  check(context: CaseContext): Promise<string | undefined>;
}

/** One rule of docs/spec.md, checked on the wire. */
export interface KitCase {
  /** The rule in docs/spec.md, e.g. `R6.2`. */
  rule: string;
  name: string;
  /**
   * `false` for a case whose app breaks the contract on purpose (to see that the host
   * refuses it): it runs without the validator.
   */
  validate?: false;
  /** A fresh app and check, with state of their own, for each run. */
  make(): CaseRun;
}

/** `expected X, got Y` for a value, with strings quoted so whitespace shows. */
export function differs(what: string, expected: unknown, actual: unknown): string | undefined {
  if (JSON.stringify(expected) === JSON.stringify(actual)) return undefined;
  return `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

/** The first failure of several checks, or `undefined` when all passed. */
export function first(...failures: Array<string | undefined>): string | undefined {
  return failures.find((failure) => failure !== undefined);
}

/** What the app said about its environ, sent back as JSON. */
export function environJson(environ: Environ, keys: readonly string[]): string {
  const picked: Record<string, unknown> = {};
  for (const key of keys) picked[key] = environ[key] ?? null;
  return JSON.stringify(picked);
}

/** Parses what `environJson` sent; a host that mangled the body gets a clear failure. */
export function readJson(response: WireResponse): Record<string, unknown> | string {
  if (response.status !== 200) {
    return `status ${response.status}${response.error ? ` (${response.error})` : ''}, not 200`;
  }
  try {
    return JSON.parse(response.body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return `the body is not the JSON the app sent: ${JSON.stringify(response.body.toString('utf8').slice(0, 80))}`;
  }
}

export const TEXT: Array<[string, string]> = [['Content-Type', 'text/plain; charset=utf-8']];
export const JSON_TYPE: Array<[string, string]> = [['Content-Type', 'application/json']];

/** An app that answers with the given environ keys as JSON. */
export function echoApp(keys: readonly string[]): App {
  return (environ, startResponse) => {
    startResponse('200 OK', JSON_TYPE);
    return [environJson(environ, keys)];
  };
}

/** The mount point as the host's app should see it in SCRIPT_NAME: decoded. */
export function decodedMount(base: Base): string {
  try {
    return decodeURIComponent(base.path);
  } catch {
    return base.path;
  }
}

/*
 * The lifespan extension (after ASGI's `lifespan` scope): work an app does once per process,
 * before its first request (open a pool) and after its last (close it). A host that runs it
 * calls `startup(state)` before it takes traffic, hands the same `state` object to every
 * request as `environ['ngi.lifespan']`, and calls `shutdown(state)` after the last request.
 * The key is present only on a host that ran the app's lifespan.
 */
import { NgiError } from './errors.js';
import type { App } from './types.js';

/** What startup leaves for the requests (a pool, a client, settings): one object per process. */
export type LifespanState = Record<string, unknown>;

/** An app's startup and shutdown work; either may be async. */
export interface Lifespan {
  startup?: (state: LifespanState) => void | Promise<void>;
  shutdown?: (state: LifespanState) => void | Promise<void>;
}

/** The environ key that carries the state from startup to each request. */
export const LIFESPAN_KEY = 'ngi.lifespan';

/**
 * Gives `app` a lifespan: `startup` before the host takes traffic, `shutdown` after its last
 * request. An existing lifespan of `app` (an adapter's, say) is kept and runs first at
 * startup and last at shutdown. Returns `app` itself.
 *
 * @example
 * export default withLifespan(app, {
 *   startup: async (state) => { state.db = await openPool(); },
 *   shutdown: (state) => (state.db as Pool).end(),
 * });
 * // in a request: const db = environ['ngi.lifespan'].db;
 */
export function withLifespan<T extends App>(app: T, lifespan: Lifespan): T {
  const inner = lifespanOf(app);
  const outer: Lifespan =
    inner === undefined
      ? { startup: lifespan.startup, shutdown: lifespan.shutdown }
      : {
          startup: async (state) => {
            await inner.startup?.(state);
            await lifespan.startup?.(state);
          },
          shutdown: async (state) => {
            try {
              await lifespan.shutdown?.(state);
            } finally {
              await inner.shutdown?.(state);
            }
          },
        };
  (app as T & { lifespan?: Lifespan }).lifespan = outer;
  return app;
}

/** The lifespan an app carries (its `lifespan` property), if any. */
export function lifespanOf(app: App): Lifespan | undefined {
  const lifespan = (app as App & { lifespan?: unknown }).lifespan;
  return typeof lifespan === 'object' && lifespan !== null ? (lifespan as Lifespan) : undefined;
}

/**
 * Runs `app`'s startup into `state`. A failure is an `NGI_ERR_STARTUP` whose message is the
 * app's own, with the original error as its `cause`.
 *
 * @example
 * const state = {};
 * await startupApp(app, state); // throws NgiError NGI_ERR_STARTUP: "startup failed: no database"
 */
export async function startupApp(app: App, state: LifespanState): Promise<void> {
  const startup = lifespanOf(app)?.startup;
  if (startup === undefined) return;
  try {
    await startup(state);
  } catch (error) {
    throw new NgiError('NGI_ERR_STARTUP', `startup failed: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

/**
 * Runs `app`'s shutdown with the state its startup filled; a failure is an
 * `NGI_ERR_SHUTDOWN` carrying the app's message.
 *
 * @example
 * await shutdownApp(app, state);
 */
export async function shutdownApp(app: App, state: LifespanState): Promise<void> {
  const shutdown = lifespanOf(app)?.shutdown;
  if (shutdown === undefined) return;
  try {
    await shutdown(state);
  } catch (error) {
    throw new NgiError('NGI_ERR_SHUTDOWN', `shutdown failed: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

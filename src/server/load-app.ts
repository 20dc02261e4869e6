import { isNgiApp } from '../core/define-app.js';
import { NgiError } from '../core/errors.js';
import { withLifespan, type Lifespan } from '../core/lifespan.js';
import type { App } from '../core/types.js';
import { loadAppModule, resolveAppModule } from './app-module.js';

/** What a module may export, as `--kind` names it. */
export const KINDS = [
  'ngi',
  'node',
  'server',
  'express',
  'fastify',
  'koa',
  'hono',
  'fetch',
] as const;
export type Kind = (typeof KINDS)[number];

/** `<path>[:export]`: the export name is what follows the last `:` when it is an identifier. */
export function splitSpecifier(specifier: string): {
  path: string;
  exportName: string | undefined;
} {
  const match = /^(.+):([A-Za-z_$][\w$]*)$/.exec(specifier);
  return match
    ? { path: match[1]!, exportName: match[2] }
    : { path: specifier, exportName: undefined };
}

type Shape = Record<string, unknown>;
const isFunction = (value: unknown): value is (...args: unknown[]) => unknown =>
  typeof value === 'function';
const has = (value: unknown, ...names: string[]) =>
  value !== null &&
  (typeof value === 'object' || typeof value === 'function') &&
  names.every((name) => isFunction((value as Shape)[name]));

/**
 * Which kind of app a value is, by shape (the frameworks are never imported to check):
 * ngi's tag first, then each framework's telltale methods; an untagged plain function is a
 * Node `(req, res)` handler.
 */
export function detectKind(value: unknown): Kind | undefined {
  if (isNgiApp(value)) return 'ngi';
  if (has(value, 'ready', 'routing', 'inject')) return 'fastify';
  if (has(value, 'callback', 'use') && Array.isArray((value as Shape).middleware)) return 'koa';
  if (has(value, 'fetch', 'route', 'basePath')) return 'hono';
  if (isFunction(value) && has(value, 'handle', 'use', 'set')) return 'express';
  // A Node `http.Server` (or https, http2): what `ws` and socket.io attach to.
  if (!isFunction(value) && has(value, 'listen', 'close', 'address', 'listenerCount', 'emit')) {
    return 'server';
  }
  if (isFunction(value)) return 'node';
  if (has(value, 'fetch')) return 'fetch';
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return `a function of ${value.length} parameter(s)`;
  if (typeof value === 'object') {
    const keys = Object.keys(value as object).slice(0, 6);
    const name = (value as object).constructor?.name ?? 'Object';
    return `an object (${name}${keys.length ? ` with ${keys.join(', ')}` : ''})`;
  }
  return typeof value;
}

const EXPECTED =
  'an NGI app (defineApp), an Express app, a Fastify instance (or a function returning one), ' +
  'a Koa app, a Hono app, a Fetch handler ({ fetch }), a (req, res) handler or a Node ' +
  'http.Server that is not listening';

/**
 * How each kind of export becomes an NGI app: the `fromX` adapters, handed in by whoever
 * starts the server (ngi's bin passes `bin/adapters.ts`), so that `src/` never imports
 * `adapters/` or a framework. Each entry is called with a value already checked for its kind.
 */
export type AdapterRegistry = {
  readonly [K in Exclude<Kind, 'ngi'>]: (value: never) => App | Promise<App>;
};

/** Wraps a value of a known kind with its adapter from `adapters`. */
export async function adapt(value: unknown, kind: Kind, adapters: AdapterRegistry): Promise<App> {
  switch (kind) {
    case 'ngi':
      return value as App;
    case 'fastify': {
      let fastify = value;
      // A factory (`export default () => Fastify()...`), as fastify-cli takes.
      if (!has(fastify, 'ready', 'routing') && isFunction(fastify)) fastify = await fastify();
      if (!has(fastify, 'ready', 'routing')) {
        throw new NgiError(
          'NGI_ERR_APP_LOAD',
          `expected a Fastify instance, found ${describe(fastify)}`,
        );
      }
      return adapters.fastify(fastify as never);
    }
    case 'fetch': {
      const fetch = isFunction(value) ? value : (value as Shape | undefined)?.fetch;
      if (!isFunction(fetch)) {
        throw new NgiError(
          'NGI_ERR_APP_LOAD',
          `expected a Fetch handler, found ${describe(value)}`,
        );
      }
      return adapters.fetch((fetch === value ? fetch : fetch.bind(value)) as never);
    }
    case 'server':
      if (!has(value, 'emit', 'listenerCount')) {
        throw new NgiError(
          'NGI_ERR_APP_LOAD',
          `expected a Node http.Server, found ${describe(value)}`,
        );
      }
      return adapters.server(value as never);
    default:
      return adapters[kind](value as never);
  }
}

export interface LoadAppOptions {
  kind?: Kind | undefined;
  adapters: AdapterRegistry;
  /**
   * For a Hono or Fetch app, make the global `Response` the light one (`LightResponse`), as
   * @hono/node-server does: only for a process that is the app's server (`ngi serve`).
   */
  lightResponse?: boolean;
}

/**
 * Loads `<path>[:export]` (as Node would: see `loadAppModule`) and returns what it exports as an NGI app, detected by shape or
 * as `kind` says. A module that cannot be imported, or whose export is none of the known
 * kinds, gives an `NGI_ERR_APP_LOAD` saying what was found and what was expected.
 *
 * @example
 * const app = await loadApp('examples/wrap-express/app.js', { adapters });
 */
export async function loadApp(specifier: string, options: LoadAppOptions): Promise<App> {
  const { path, exportName } = splitSpecifier(specifier);
  const mod = await loadAppModule(resolveAppModule(path), path);
  const name = exportName ?? 'default';
  const value = mod[name];
  if (value === undefined) {
    const exported = Object.keys(mod).join(', ') || 'nothing';
    throw new NgiError(
      'NGI_ERR_APP_LOAD',
      `${specifier}: no ${name} export (it exports ${exported}); expected ${EXPECTED}`,
    );
  }
  let app: unknown = value;
  // A function of no parameters is a factory (`export default async () => Fastify()...`, as
  // fastify-cli takes): its result is the app. A (req, res) handler always names its two.
  if (options.kind === undefined && isFunction(app) && app.length === 0 && !isNgiApp(app)) {
    app = await app();
  }
  const kind = options.kind ?? detectKind(app);
  if (kind === undefined) {
    throw new NgiError(
      'NGI_ERR_APP_LOAD',
      `${specifier}: the ${name} export is ${describe(app)}; expected ${EXPECTED}`,
    );
  }
  if (options.lightResponse === true && (kind === 'hono' || kind === 'fetch')) {
    // Loaded here, not up front: it reads the global Response, which loads undici's fetch
    // (about 10 MiB), and neither the master nor an Express app needs it.
    const { installLightResponse } = await import('../guests/light-response.js');
    installLightResponse();
  }
  const adapted = await adapt(app, kind, options.adapters);
  // `export async function startup(state)` / `shutdown(state)` beside the app: its lifespan,
  // for apps whose framework has no hook of its own (Express, Koa, a plain handler).
  const startup = isFunction(mod.startup) ? mod.startup : undefined;
  const shutdown = isFunction(mod.shutdown) ? mod.shutdown : undefined;
  if (startup === undefined && shutdown === undefined) return adapted;
  return withLifespan(adapted, {
    startup: startup as Lifespan['startup'],
    shutdown: shutdown as Lifespan['shutdown'],
  });
}

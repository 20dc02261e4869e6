import { kNgiApp } from './symbols.js';
import type { App } from './types.js';

/**
 * Tags `fn` as an NGI app. An NGI app and a Node handler are both two-argument functions;
 * the tag is how `ngi serve` tells them apart.
 *
 * @example
 * export default defineApp((environ, startResponse) => {
 *   startResponse('200 OK', [['Content-Type', 'text/plain']]);
 *   return ['hello'];
 * });
 */
export function defineApp<T extends App>(fn: T): T {
  (fn as T & { [kNgiApp]?: true })[kNgiApp] = true;
  return fn;
}

/** True for a function tagged by `defineApp` (or produced by an ngi adapter). */
export function isNgiApp(value: unknown): value is App {
  return typeof value === 'function' && (value as { [kNgiApp]?: unknown })[kNgiApp] === true;
}

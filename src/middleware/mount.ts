import { defineApp } from '../core/define-app.js';
import { LIFESPAN_KEY, lifespanOf, withLifespan, type LifespanState } from '../core/lifespan.js';
import type { App, Environ, StartResponse } from '../core/types.js';

const NOT_FOUND = 'Not Found\n';

/**
 * Dispatches by the longest matching prefix, on segment boundaries (`/api` matches `/api` and
 * `/api/x`, never `/apix`), moving the prefix from `PATH_INFO` to `SCRIPT_NAME`: the
 * migration tool, old app and new app behind one server. Nothing matches: a plain 404.
 *
 * The environ is updated in place (it belongs to this request) and `startResponse` is passed
 * through untouched, so a Node handler below keeps its native fast path.
 *
 * Mounted apps with a lifespan make the mount have one: its startup runs theirs in turn
 * (each into its own state, which its requests see as `environ['ngi.lifespan']`), its
 * shutdown runs theirs in reverse. A startup that fails shuts down those already started.
 *
 * @example
 * const app = mount({ '/users': await fromFastify(next), '/': fromExpress(legacy) });
 */
export function mount(routes: Record<string, App>): App {
  if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
    throw new TypeError("mount: routes must be an object such as { '/api': app }");
  }
  const order = Object.keys(routes).map((prefix) => (prefix === '/' ? '' : prefix));
  const table = Object.entries(routes).map(([prefix, app]) => {
    if (typeof app !== 'function')
      throw new TypeError(`mount: the app for ${JSON.stringify(prefix)} is not a function`);
    if (!prefix.startsWith('/'))
      throw new TypeError(`mount: prefix ${JSON.stringify(prefix)} must start with "/"`);
    if (prefix.length > 1 && prefix.endsWith('/')) {
      throw new TypeError(`mount: prefix ${JSON.stringify(prefix)} must not end with "/"`);
    }
    const state: LifespanState | undefined = lifespanOf(app) !== undefined ? {} : undefined;
    return { prefix: prefix === '/' ? '' : prefix, app, state, started: false };
  });
  // Longest first: the first match is the most specific.
  table.sort((a, b) => b.prefix.length - a.prefix.length);
  const dispatch = (environ: Environ, startResponse: StartResponse) => {
    const path = environ.PATH_INFO;
    for (let i = 0; i < table.length; i++) {
      const { prefix, app, state } = table[i]!;
      if (prefix === '') {
        if (state !== undefined) environ[LIFESPAN_KEY] = state;
        return app(environ, startResponse);
      }
      if (
        path.startsWith(prefix) &&
        (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)
      ) {
        environ.SCRIPT_NAME += prefix;
        environ.PATH_INFO = path.slice(prefix.length);
        if (state !== undefined) environ[LIFESPAN_KEY] = state;
        return app(environ, startResponse);
      }
    }
    startResponse('404 Not Found', [['Content-Type', 'text/plain; charset=utf-8']]);
    return [NOT_FOUND];
  };
  // Tagged: `export default mount({...})` is an NGI app to `ngi serve`, not a (req, res) handler.
  const mounted = defineApp(dispatch);
  const withWork = table.filter((entry) => entry.state !== undefined);
  if (withWork.length === 0) return mounted;
  // In the order given, as a reader of the routes object expects.
  withWork.sort((a, b) => order.indexOf(a.prefix) - order.indexOf(b.prefix));
  const shutdown = async () => {
    const failures: unknown[] = [];
    for (const entry of [...withWork].reverse()) {
      if (!entry.started) continue;
      entry.started = false;
      try {
        await lifespanOf(entry.app)!.shutdown?.(entry.state!);
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  };
  return withLifespan(mounted, {
    startup: async () => {
      for (const entry of withWork) {
        try {
          await lifespanOf(entry.app)!.startup?.(entry.state!);
        } catch (error) {
          await shutdown().catch(() => {});
          const where = entry.prefix === '' ? '/' : entry.prefix;
          throw new Error(`${where}: ${(error as Error).message}`, { cause: error });
        }
        entry.started = true;
      }
    },
    shutdown,
  });
}

import { defineApp } from '../core/define-app.js';
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
 * @example
 * const app = mount({ '/users': await fromFastify(next), '/': fromExpress(legacy) });
 */
export function mount(routes: Record<string, App>): App {
  if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
    throw new TypeError("mount: routes must be an object such as { '/api': app }");
  }
  const table = Object.entries(routes).map(([prefix, app]) => {
    if (typeof app !== 'function')
      throw new TypeError(`mount: the app for ${JSON.stringify(prefix)} is not a function`);
    if (!prefix.startsWith('/'))
      throw new TypeError(`mount: prefix ${JSON.stringify(prefix)} must start with "/"`);
    if (prefix.length > 1 && prefix.endsWith('/')) {
      throw new TypeError(`mount: prefix ${JSON.stringify(prefix)} must not end with "/"`);
    }
    return { prefix: prefix === '/' ? '' : prefix, app };
  });
  // Longest first: the first match is the most specific.
  table.sort((a, b) => b.prefix.length - a.prefix.length);
  const dispatch = (environ: Environ, startResponse: StartResponse) => {
    const path = environ.PATH_INFO;
    for (let i = 0; i < table.length; i++) {
      const { prefix, app } = table[i]!;
      if (prefix === '') return app(environ, startResponse);
      if (
        path.startsWith(prefix) &&
        (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)
      ) {
        environ.SCRIPT_NAME += prefix;
        environ.PATH_INFO = path.slice(prefix.length);
        return app(environ, startResponse);
      }
    }
    startResponse('404 Not Found', [['Content-Type', 'text/plain; charset=utf-8']]);
    return [NOT_FOUND];
  };
  // Tagged: `export default mount({...})` is an NGI app to `ngi serve`, not a (req, res) handler.
  return defineApp(dispatch);
}

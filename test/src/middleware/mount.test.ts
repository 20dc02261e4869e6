import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import supertest from 'supertest';
import { fromNodeHandler, toNodeHandler } from '../../../adapters/node.js';
import { isNgiApp } from '../../../src/core/define-app.js';
import { mount } from '../../../src/middleware/mount.js';
import type { App, Environ, ErrorStream, StartResponse } from '../../../src/core/types.js';
import { close } from '../../helpers/servers.js';

const quiet: ErrorStream = { write: () => true };

/** An app that answers with its name and where it was mounted. */
function named(name: string): App {
  return (environ, startResponse) => {
    startResponse('200 OK', [['Content-Type', 'application/json']]);
    return [
      JSON.stringify({
        app: name,
        SCRIPT_NAME: environ.SCRIPT_NAME,
        PATH_INFO: environ.PATH_INFO,
        REQUEST_URI: environ.REQUEST_URI,
        QUERY_STRING: environ.QUERY_STRING,
      }),
    ];
  };
}

async function listen(app: App): Promise<Server> {
  const server = createServer(toNodeHandler(app, { errors: quiet })).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

describe('mount over a real socket', () => {
  let server: Server;
  let bare: Server;
  let seenByNodeHandler: IncomingMessage | undefined;

  before(async () => {
    server = await listen(
      mount({
        '/api': named('api'),
        '/api/v2': named('v2'),
        '/café': named('café'),
        '/nested': mount({ '/inner': named('inner'), '/': named('nested-root') }),
        '/node': fromNodeHandler((req, res) => {
          seenByNodeHandler = req;
          res.end(req.url);
        }),
        '/': named('root'),
      }),
    );
    bare = await listen(mount({ '/api': named('api') }));
  });
  after(() => {
    close(server);
    close(bare);
  });

  async function get(target: string, on = server): Promise<Record<string, string>> {
    const response = await supertest(on).get(target).expect(200);
    return response.body as Record<string, string>;
  }

  it('moves the prefix from PATH_INFO to SCRIPT_NAME', async () => {
    assert.deepEqual(await get('/api/users?x=1'), {
      app: 'api',
      SCRIPT_NAME: '/api',
      PATH_INFO: '/users',
      REQUEST_URI: '/api/users?x=1',
      QUERY_STRING: 'x=1',
    });
  });

  it('matches the prefix itself with an empty PATH_INFO, and a trailing slash with "/"', async () => {
    const exact = await get('/api');
    assert.equal(exact.app, 'api');
    assert.equal(exact.SCRIPT_NAME, '/api');
    assert.equal(exact.PATH_INFO, '');
    const slash = await get('/api/');
    assert.equal(slash.SCRIPT_NAME, '/api');
    assert.equal(slash.PATH_INFO, '/');
  });

  it('matches on segment boundaries only: /apix goes to the root app', async () => {
    const body = await get('/apix');
    assert.equal(body.app, 'root');
    assert.equal(body.SCRIPT_NAME, '');
    assert.equal(body.PATH_INFO, '/apix');
  });

  it('chooses the longest matching prefix', async () => {
    const body = await get('/api/v2/items');
    assert.equal(body.app, 'v2');
    assert.equal(body.SCRIPT_NAME, '/api/v2');
    assert.equal(body.PATH_INFO, '/items');
    assert.equal((await get('/api/v3')).app, 'api');
  });

  it('matches the decoded path, while REQUEST_URI stays as the client sent it', async () => {
    const body = await get('/caf%C3%A9/menu%2Fdu%20jour');
    assert.equal(body.app, 'café');
    assert.equal(body.SCRIPT_NAME, '/café');
    assert.equal(body.PATH_INFO, '/menu/du jour');
    assert.equal(body.REQUEST_URI, '/caf%C3%A9/menu%2Fdu%20jour');
  });

  it('accumulates SCRIPT_NAME through nested mounts', async () => {
    const inner = await get('/nested/inner/deep');
    assert.equal(inner.app, 'inner');
    assert.equal(inner.SCRIPT_NAME, '/nested/inner');
    assert.equal(inner.PATH_INFO, '/deep');
    const root = await get('/nested/other');
    assert.equal(root.app, 'nested-root');
    assert.equal(root.SCRIPT_NAME, '/nested');
    assert.equal(root.PATH_INFO, '/other');
  });

  it('sends everything else to the "/" app, untouched', async () => {
    const body = await get('/anything/else');
    assert.equal(body.app, 'root');
    assert.equal(body.SCRIPT_NAME, '');
    assert.equal(body.PATH_INFO, '/anything/else');
  });

  it('answers a plain 404 when nothing matches and there is no "/" app', async () => {
    const response = await supertest(bare).get('/elsewhere').expect(404);
    assert.equal(response.text, 'Not Found\n');
    assert.match(response.headers['content-type'] ?? '', /^text\/plain/);
    assert.equal((await get('/api/x', bare)).PATH_INFO, '/x', 'the mounted app still answers');
  });

  it('leaves a Node handler below it on the original request, its URL below the prefix', async () => {
    const response = await supertest(server).get('/node/a%2Fb?q=1').expect(200);
    assert.equal(response.text, '/a%2Fb?q=1');
    assert.ok(seenByNodeHandler?.socket instanceof Socket, 'the real socket: the fast path');
  });
});

describe('mount is an NGI app', () => {
  it('is tagged, so `export default mount({...})` is served as NGI, not as a (req, res) handler', () => {
    assert.equal(isNgiApp(mount({ '/': (_e, sr) => (sr('204 No Content', []), []) })), true);
  });
});

describe('mount refuses routes it could never match', () => {
  const app = named('x');

  it('throws for a prefix without a leading slash, or empty', () => {
    assert.throws(() => mount({ api: app }), /must start with "\/"/);
    assert.throws(() => mount({ '': app }), /must start with "\/"/);
  });

  it('throws for a prefix with a trailing slash', () => {
    assert.throws(() => mount({ '/api/': app }), /must not end with "\/"/);
  });

  it('throws for a route whose app is not a function', () => {
    assert.throws(() => mount({ '/api': 'nope' as unknown as App }), /is not a function/);
  });

  it('throws for routes that are not an object', () => {
    assert.throws(() => mount(null as never), /routes must be an object/);
    assert.throws(() => mount([app] as never), /routes must be an object/);
  });
});

describe('mount dispatch (fast-check)', () => {
  const segment = fc.constantFrom('a', 'b', 'ab', 'api', 'x', '');
  const path = fc
    .array(segment, { maxLength: 5 })
    .map((segments) => segments.map((s) => '/' + s).join(''));
  const prefix = fc
    .array(fc.constantFrom('a', 'b', 'ab', 'api', 'x'), { minLength: 1, maxLength: 3 })
    .map((segments) => '/' + segments.join('/'));
  const table = fc.tuple(fc.uniqueArray(prefix, { maxLength: 6 }), fc.boolean());

  /** The specification: the longest prefix equal to the path or followed in it by "/". */
  function longestMatch(prefixes: string[], withRoot: boolean, p: string): string | undefined {
    let best: string | undefined = withRoot ? '' : undefined;
    for (const candidate of prefixes) {
      const matches = p === candidate || p.startsWith(candidate + '/');
      if (matches && (best === undefined || candidate.length > best.length)) best = candidate;
    }
    return best;
  }

  it('property: SCRIPT_NAME + PATH_INFO is the original, and the prefix is the longest match', () => {
    fc.assert(
      fc.property(table, path, fc.constantFrom('', '/outer'), ([prefixes, withRoot], p, outer) => {
        const routes: Record<string, App> = {};
        let chosen: string | undefined;
        let seen: { script: string; path: string } | undefined;
        for (const candidate of [...prefixes, ...(withRoot ? ['/'] : [])]) {
          routes[candidate] = (environ) => {
            chosen = candidate === '/' ? '' : candidate;
            seen = { script: environ.SCRIPT_NAME, path: environ.PATH_INFO };
            return [];
          };
        }
        let status = '';
        const startResponse: StartResponse = (s) => {
          status = s;
          return () => Promise.resolve();
        };
        const environ = { SCRIPT_NAME: outer, PATH_INFO: p } as Environ;
        mount(routes)(environ, startResponse);
        const expected = longestMatch(prefixes, withRoot, p);
        if (expected === undefined) {
          assert.equal(chosen, undefined);
          assert.equal(status, '404 Not Found');
          return;
        }
        assert.equal(chosen, expected);
        assert.equal(seen!.script, outer + expected);
        assert.equal(seen!.script + seen!.path, outer + p);
        assert.ok(seen!.path === '' || seen!.path.startsWith('/'), 'PATH_INFO is "" or /...');
      }),
      { numRuns: 1000 },
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineApp } from '../../../src/core/define-app.js';
import { lifespanOf, shutdownApp, startupApp, withLifespan } from '../../../src/core/lifespan.js';
import type { App, Environ } from '../../../src/core/types.js';
import { mount } from '../../../src/middleware/mount.js';

/** An app answering with its lifespan state, whose startup/shutdown note themselves in `seen`. */
function tracked(name: string, seen: string[], fail = false): App {
  const app = defineApp((environ, startResponse) => {
    startResponse('200 OK', []);
    return [JSON.stringify(environ['ngi.lifespan'] ?? null)];
  });
  return withLifespan(app, {
    startup: (state) => {
      if (fail) throw new Error(`${name} cannot start`);
      state.name = name;
      seen.push(`${name} up`);
    },
    shutdown: (state) => void seen.push(`${state.name} down`),
  });
}

async function call(app: App, path: string): Promise<string> {
  const environ = { PATH_INFO: path, SCRIPT_NAME: '' } as Environ;
  const body = (await app(environ, () => async () => {})) as string[];
  return body.join('');
}

describe('mount() and lifespan', () => {
  it("runs every mounted app's startup in order and shutdown in reverse; each request sees its own app's state", async () => {
    const seen: string[] = [];
    const plain = defineApp((environ, startResponse) => {
      startResponse('200 OK', []);
      return [String(environ['ngi.lifespan'])];
    });
    const app = mount({ '/api': tracked('api', seen), '/plain': plain, '/': tracked('web', seen) });
    await startupApp(app, {});
    assert.deepEqual(seen, ['api up', 'web up']);
    assert.deepEqual(JSON.parse(await call(app, '/api/users')), { name: 'api' });
    assert.deepEqual(JSON.parse(await call(app, '/about')), { name: 'web' });
    assert.equal(await call(app, '/plain'), 'undefined', 'an app without a lifespan gets no key');
    await shutdownApp(app, {});
    assert.deepEqual(seen, ['api up', 'web up', 'web down', 'api down']);
  });

  it('a startup that fails names the prefix and shuts down the apps already started', async () => {
    const seen: string[] = [];
    const app = mount({ '/a': tracked('a', seen), '/b': tracked('b', seen, true) });
    await assert.rejects(startupApp(app, {}), /startup failed: \/b: b cannot start/);
    assert.deepEqual(seen, ['a up', 'a down']);
  });

  it('a mount of apps without lifespans has none', () => {
    assert.equal(lifespanOf(mount({ '/': defineApp(() => []) })), undefined);
  });
});

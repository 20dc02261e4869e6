import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineApp } from '../../../src/core/define-app.js';
import { NgiError } from '../../../src/core/errors.js';
import {
  lifespanOf,
  shutdownApp,
  startupApp,
  withLifespan,
  type LifespanState,
} from '../../../src/core/lifespan.js';

const hello = () =>
  defineApp((_environ, startResponse) => {
    startResponse('200 OK', []);
    return ['hi'];
  });

describe('lifespan', () => {
  it('withLifespan returns the app itself, carrying its startup and shutdown', async () => {
    const app = hello();
    const seen: string[] = [];
    assert.equal(
      withLifespan(app, {
        startup: (state) => {
          state.db = 'open';
          seen.push('startup');
        },
        shutdown: async (state) => {
          seen.push(`shutdown ${state.db}`);
        },
      }),
      app,
    );
    const state: LifespanState = {};
    await startupApp(app, state);
    await shutdownApp(app, state);
    assert.deepEqual(seen, ['startup', 'shutdown open']);
  });

  it('a second withLifespan keeps the first: it starts first and shuts down last', async () => {
    const seen: string[] = [];
    const app = withLifespan(
      withLifespan(hello(), {
        startup: () => void seen.push('adapter up'),
        shutdown: () => void seen.push('adapter down'),
      }),
      { startup: () => void seen.push('module up'), shutdown: () => void seen.push('module down') },
    );
    await startupApp(app, {});
    await shutdownApp(app, {});
    assert.deepEqual(seen, ['adapter up', 'module up', 'module down', 'adapter down']);
  });

  it("a failing startup is NGI_ERR_STARTUP with the app's message and the error as cause", async () => {
    const cause = new Error('no database');
    const app = withLifespan(hello(), {
      startup: async () => {
        throw cause;
      },
    });
    await assert.rejects(startupApp(app, {}), (error: NgiError) => {
      assert.equal(error.code, 'NGI_ERR_STARTUP');
      assert.equal(error.message, 'startup failed: no database');
      assert.equal(error.cause, cause);
      return true;
    });
  });

  it('an app without a lifespan has none, and running it is a no-op', async () => {
    const app = hello();
    assert.equal(lifespanOf(app), undefined);
    await startupApp(app, {});
    await shutdownApp(app, {});
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { isCommonJs, loadAppModule, resolveAppModule } from '../../../src/server/app-module.js';

const fixtures = fileURLToPath(new URL('../../fixtures/modules/', import.meta.url));
const at = (path: string) => join(fixtures, path);

/** The message of what `loadAppModule` rejects with. */
async function loadError(path: string): Promise<string> {
  try {
    await loadAppModule(at(path), path);
  } catch (error) {
    assert.equal((error as { code?: string }).code, 'NGI_ERR_APP_LOAD');
    return (error as Error).message;
  }
  assert.fail(`${path} loaded`);
}

describe('resolveAppModule finds the file as Node would', () => {
  it('takes a folder’s package.json main', () => {
    assert.equal(resolveAppModule(at('folder-main')), at('folder-main/server.js'));
  });
  it('takes a folder’s index.mjs when require finds nothing', () => {
    assert.equal(resolveAppModule(at('folder-index')), at('folder-index/index.mjs'));
  });
  it('completes an extensionless path as require does', () => {
    assert.equal(resolveAppModule(at('cjs/transpiled')), at('cjs/transpiled.js'));
  });
  it('names the folder and what it looked for when nothing is there', () => {
    assert.throws(
      () => resolveAppModule(at('broken')),
      /cannot find the app module in the folder .*no package\.json main, index\.js or index\.mjs/,
    );
  });
  it('names the path it looked at for a missing file', () => {
    assert.throws(
      () => resolveAppModule('no/such/app.js'),
      /cannot find the app module "no\/such\/app\.js" \(looked at \//,
    );
  });
});

describe('loadAppModule loads as Node would', () => {
  it('tells CommonJS from ES modules by extension and the package type', () => {
    assert.equal(isCommonJs(at('cjs/run-directly.js')), true);
    assert.equal(isCommonJs(at('broken/syntax.cjs')), true);
    assert.equal(isCommonJs(at('folder-main/server.js')), false);
    assert.equal(isCommonJs(at('folder-index/index.mjs')), false);
  });
  it('requires CommonJS, so module.parent is set and the run-directly branch stays off', async () => {
    const exports = await loadAppModule(at('cjs/run-directly.js'), 'run-directly.js');
    assert.equal(typeof exports.default, 'function');
    assert.equal((exports.default as { name?: string }).name, 'app');
  });
  it('unwraps the default export of a transpiled CommonJS module', async () => {
    const exports = await loadAppModule(at('cjs/transpiled.js'), 'transpiled.js');
    assert.equal(typeof exports.default, 'function');
    assert.equal(typeof (exports.default as { handle?: unknown }).handle, 'function');
  });
  it('shows a syntax error in an ES module as file:line:column with the line and a caret', async () => {
    const message = await loadError('broken/syntax.mjs');
    assert.match(message, /^cannot import broken\/syntax\.mjs: SyntaxError: Unexpected token/);
    assert.ok(
      message.includes(`at ${at('broken/syntax.mjs')}:3:21\n  return [greeting +];\n`),
      message,
    );
    assert.match(message, /\n {20}\^$/);
  });
  it('shows a syntax error in a CommonJS module the same way', async () => {
    const message = await loadError('broken/syntax.cjs');
    assert.ok(
      message.includes(`at ${at('broken/syntax.cjs')}:3:21\n  res.end(greeting +);\n`),
      message,
    );
  });
  it('shows an error thrown while the module runs with its file and line, without loader frames', async () => {
    const message = await loadError('broken/throws.mjs');
    assert.match(
      message,
      /^cannot import broken\/throws\.mjs: TypeError: Cannot read properties of undefined/,
    );
    assert.ok(message.includes(`throws.mjs:2:`), message);
    assert.doesNotMatch(message, /node:internal/);
  });
});

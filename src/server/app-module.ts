/*
 * Finding and loading the app module the way Node itself would: a folder resolves as
 * `require` resolves it, a CommonJS file is loaded by `require` and an ES module by `import()`,
 * and a module that fails to load is reported with the file and line a user has to open.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NgiError } from '../core/errors.js';

/** A loaded module's exports by name, `default` included, as `import()` would give them. */
export type ModuleExports = Record<string, unknown>;

/**
 * The file `path` names: a file as given, an extensionless path as `require` completes it, a
 * folder by its `package.json` `main`, then `index.js` (as `require`), then `index.mjs`.
 *
 * @example
 * resolveAppModule('examples/auth'); // '/…/examples/auth/index.js'
 */
export function resolveAppModule(path: string): string {
  const full = resolve(path);
  const require = createRequire(join(process.cwd(), 'noop.js'));
  try {
    return require.resolve(full);
  } catch {
    // `require` knows no `index.mjs`; a folder of ES modules may have one.
  }
  const isFolder = statSync(full, { throwIfNoEntry: false })?.isDirectory() ?? false;
  const index = join(full, 'index.mjs');
  if (isFolder && statSync(index, { throwIfNoEntry: false })?.isFile()) return index;
  if (statSync(full, { throwIfNoEntry: false })?.isFile()) return full;
  throw new NgiError(
    'NGI_ERR_APP_LOAD',
    isFolder
      ? `cannot find the app module in the folder ${JSON.stringify(path)} (no package.json main, index.js or index.mjs in ${full})`
      : `cannot find the app module ${JSON.stringify(path)} (looked at ${full})`,
  );
}

/** Whether Node would load `file` as CommonJS: `.cjs`, or `.js` outside a `"type": "module"` package. */
export function isCommonJs(file: string): boolean {
  const extension = extname(file);
  if (extension === '.cjs') return true;
  if (extension !== '.js') return false;
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { type?: unknown };
      return pkg.type !== 'module';
    } catch {
      // no (readable) package.json here: Node looks one folder up
    }
    if (dirname(dir) === dir) return true;
  }
}

/** Errors by which `require` says "this is an ES module": load it with `import()` instead. */
function isEsmRefusal(error: unknown): boolean {
  const { code, name, message } = error as { code?: unknown; name?: unknown; message?: unknown };
  if (code === 'ERR_REQUIRE_ESM' || code === 'ERR_REQUIRE_ASYNC_MODULE') return true;
  return (
    name === 'SyntaxError' &&
    /Cannot use import statement|Unexpected token 'export'|import\.meta/.test(String(message))
  );
}

/**
 * Loads `file` (from `resolveAppModule`) as Node would run it: CommonJS through `require`, so
 * `require.main !== module` and `module.parent` is set and an `if (!module.parent) listen()`
 * branch stays off, as under any server that requires the module; ES modules through `import()`.
 * A failure is an `NGI_ERR_APP_LOAD` naming the file, line and column (see `describeLoadError`).
 *
 * @example
 * const exports = await loadAppModule(resolveAppModule('app.js'));
 */
export async function loadAppModule(file: string, shownAs: string): Promise<ModuleExports> {
  try {
    if (isCommonJs(file)) {
      try {
        return commonJsExports(createRequire(file)(file));
      } catch (error) {
        if (!isEsmRefusal(error)) throw error;
      }
    }
    return (await import(pathToFileURL(file).href)) as ModuleExports;
  } catch (error) {
    throw new NgiError(
      'NGI_ERR_APP_LOAD',
      `cannot import ${shownAs}: ${describeLoadError(error, file)}`,
      { cause: error },
    );
  }
}

/** `module.exports` seen as `import()` would show it, with a transpiled `exports.default` unwrapped. */
function commonJsExports(exported: unknown): ModuleExports {
  const named: ModuleExports = {};
  if (exported !== null && (typeof exported === 'object' || typeof exported === 'function')) {
    for (const key of Object.keys(exported)) named[key] = (exported as ModuleExports)[key];
  }
  const transpiled = (exported as { __esModule?: unknown } | null)?.__esModule === true;
  named.default = transpiled && 'default' in named ? named.default : exported;
  return named;
}

/** Node's own header of a syntax error: `file:line`, the source line, a caret under the column. */
const ARROW = /^(?:file:\/\/)?(\/[^\n]*?):(\d+)\n([^\n]*)\n( *)\^/;

/**
 * What went wrong loading `file`, for a person: a syntax error as `file:line:column`, the line
 * and a caret; anything thrown while the module ran with its stack, without Node's loader frames.
 */
export function describeLoadError(error: unknown, file: string): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'SyntaxError') {
    // `require` puts the location at the head of the stack; `import()` does not, but Node's
    // own syntax check prints it.
    let arrow = ARROW.exec(error.stack ?? '');
    if (arrow === null) {
      const check = spawnSync(process.execPath, ['--check', file], {
        encoding: 'utf8',
        timeout: 10_000,
      });
      arrow = ARROW.exec(check.stderr ?? '');
    }
    if (arrow !== null) {
      const [, where, line, source, pad] = arrow;
      return `SyntaxError: ${error.message}\n    at ${where}:${line}:${pad!.length + 1}\n${source}\n${pad}^`;
    }
    // Thrown while the module ran (a JSON.parse, say), or in a module it imports: its stack.
  }
  const frames = (error.stack ?? '')
    .split('\n')
    .slice(1)
    .filter(
      (line) =>
        /^\s+at /.test(line) && !/node:internal|\/src\/server\/app-module\.[jt]s/.test(line),
    );
  const head = `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}`;
  return frames.length > 0 ? `${head}\n${frames.join('\n')}` : head;
}

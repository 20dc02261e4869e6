/*
 * What makes a master reload its workers besides SIGHUP: `--reload` (development: the app's
 * files changed) and `--touch-reload FILE` (uWSGI: that file's mtime changed, as a deploy
 * script's `touch` says). Each is a trigger the master starts and stops; the reload itself
 * is the master's graceful one, so a change that breaks the app leaves the old workers
 * serving (the new ones fail to load, the master prints why).
 */
import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import { extname, sep } from 'node:path';

/** Starts watching; calls `reload(why)` on a change; returns the function that stops it. */
export type ReloadTrigger = (reload: (why: string) => void) => () => void;

/** Changes closer together than this make one reload (an editor's save is several events). */
export const DEBOUNCE_MS = 200;

/** How often `--touch-reload` files are stat'ed (uWSGI polls too). */
export const TOUCH_POLL_MS = 500;

/**
 * What `--reload` reacts to: code and JSON, as nodemon's defaults. Not every file: a log or
 * an upload written inside the app's folder would reload the workers on every line.
 */
export const SOURCE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.js',
  '.mjs',
  '.cjs',
  '.ts',
  '.mts',
  '.cts',
  '.jsx',
  '.tsx',
  '.json',
]);

/**
 * True for the app's own source: a source extension, and not inside `node_modules` or a dot
 * folder (`.git`, `.cache`).
 */
export function isAppSource(relativePath: string): boolean {
  if (!SOURCE_EXTENSIONS.has(extname(relativePath))) return false;
  return !relativePath
    .split(sep)
    .some((part) => part === 'node_modules' || (part.startsWith('.') && part.length > 1));
}

/**
 * `--reload`: the source files under `folder` (recursively, but not node_modules or dot folders);
 * a burst of changes gives one reload, `DEBOUNCE_MS` after the last.
 */
export function watchFolder(folder: string): ReloadTrigger {
  return (reload) => {
    let timer: NodeJS.Timeout | undefined;
    let changed = '';
    let watcher: FSWatcher;
    try {
      watcher = watch(folder, { recursive: true, persistent: false });
    } catch (error) {
      throw new Error(`--reload cannot watch ${folder}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    watcher.on('change', (_event, name) => {
      const file = String(name ?? '');
      if (!isAppSource(file)) return;
      changed = file;
      clearTimeout(timer);
      timer = setTimeout(() => reload(`${changed} changed`), DEBOUNCE_MS);
    });
    // A watched folder removed, or the watch limit reached: say so once, stop watching.
    watcher.on('error', (error) => {
      process.stderr.write(`ngi: --reload stopped watching ${folder}: ${error.message}\n`);
      watcher.close();
    });
    return () => {
      clearTimeout(timer);
      watcher.close();
    };
  };
}

/** `--touch-reload FILE`: a reload each time the file's mtime changes (created counts too). */
export function watchTouched(file: string): ReloadTrigger {
  return (reload) => {
    const onStat = (now: Stats, before: Stats): void => {
      if (now.mtimeMs !== before.mtimeMs && now.mtimeMs !== 0) reload(`${file} touched`);
    };
    watchFile(file, { interval: TOUCH_POLL_MS, persistent: false }, onStat);
    return () => unwatchFile(file, onStat);
  };
}

import { realpathSync, statSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { resolve, sep } from 'node:path';
import type sendType from 'send';
import { fromNodeHandler, type NodeHandler } from '../guests/node-handler.js';
import { defineApp } from '../core/define-app.js';
import type { App, Body, Environ, StartResponse } from '../core/types.js';

/** Options of `staticFiles`. */
export interface StaticFilesOptions {
  /**
   * Answers every request that is not a file served from the folder (missing file, directory,
   * dotfile, a method other than GET/HEAD), with the environ as it arrived. Without it those
   * get a plain 404 (405 for other methods).
   */
  fallback?: App;
  /**
   * Seconds a cache may reuse a file without asking again: `Cache-Control: public,
   * max-age=<maxAge>`. The default 0 lets caches keep a copy but makes them revalidate it on
   * every use, which costs a 304 thanks to the ETag, and a deploy is seen at once.
   */
  maxAge?: number;
  /** Adds `immutable` to `Cache-Control`: for fingerprinted names (`app.3f9a1c.js`) with a long `maxAge`. */
  immutable?: boolean;
}

/*
 * Design: `send` (the engine of express.static) does the HTTP part — ETag, Last-Modified,
 * 304/412, Range/If-Range/416, HEAD, Content-Type with charset, Accept-Ranges, Cache-Control
 * — but it speaks Node's `(req, res)`. It runs through `fromNodeHandler`, so on ngi's own
 * HTTP listener it writes to the native response (a plain `pipe` of the file, nothing
 * copied through the engine), and on the uwsgi listener or inside a framework it writes to
 * the emulated response with the engine's backpressure, Content-Length check and abort
 * handling. The other design (an NGI app returning a ReadStream) would have to re-create
 * send's conditional and range logic from its helper packages.
 *
 * What send cannot do is fall through: once a Node handler holds the native response, an
 * NGI fallback can no longer answer. So the decision to serve is taken here first (method,
 * path, realpath inside the folder, a regular file, no dotfile), and send gets the real,
 * absolute path of the file that passed. Its own checks stay a second line; a file that
 * vanishes between the two gets send's 404.
 */

const METHOD_NOT_ALLOWED: [string, string][] = [
  ['Content-Type', 'text/plain; charset=utf-8'],
  ['Allow', 'GET, HEAD'],
];
const PLAIN: [string, string][] = [['Content-Type', 'text/plain; charset=utf-8']];
/** Errors that mean "no such file here"; anything else is logged before falling through. */
const MISSING = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP']);

/**
 * Serves the files under `dir` for the path in `PATH_INFO` — uWSGI's `--static-map` as an
 * NGI app, on every host (ngi's HTTP and uwsgi listeners, any framework through `toX`).
 *
 * Conditional GET (ETag, Last-Modified, 304), ranges (206, 416, If-Range), HEAD and
 * Content-Type come from `send`. Never served: anything outside `dir` (`..`, backslashes and
 * NUL bytes are refused with 403/400, symlinks leading out are treated as missing),
 * dotfiles, directories (no listings), anything but a regular file. Those, and methods other
 * than GET/HEAD, go to `options.fallback` with the environ unchanged, or get 404/405.
 * `Cache-Control` is `public, max-age=0` unless `maxAge` says otherwise.
 *
 * Throws a `TypeError` at once when `dir` is not a folder: a typo in a static map fails the
 * start, not every request.
 *
 * @example
 * import { mount, serve, staticFiles } from 'ngi-gateway';
 * const app = mount({ '/assets': staticFiles('./public', { maxAge: 3600 }), '/': api });
 * await serve(app, { http: 8080 });
 * // or, falling through to the app for what is not a file:
 * await serve(staticFiles('./public', { fallback: api }), { http: 8080 });
 */
/**
 * `send`, loaded by the first `staticFiles()`: an app that imports ngi for anything else does
 * not carry it (and its mime tables) in every process.
 */
let sendModule: typeof sendType | undefined;
const loadSend = (): typeof sendType =>
  (sendModule ??= createRequire(import.meta.url)('send') as typeof sendType);

export function staticFiles(dir: string, options: StaticFilesOptions = {}): App {
  const send = loadSend();
  const folder = resolve(dir);
  let root: string;
  try {
    root = realpathSync(folder);
    if (!statSync(root).isDirectory()) throw new Error('not a directory');
  } catch (error) {
    throw new TypeError(`staticFiles: ${JSON.stringify(dir)} is not a folder`, { cause: error });
  }
  const maxAge = options.maxAge ?? 0;
  if (typeof maxAge !== 'number' || !(maxAge >= 0) || !Number.isFinite(maxAge)) {
    throw new TypeError(`staticFiles: maxAge must be a number of seconds, got ${String(maxAge)}`);
  }
  const fallback = options.fallback;
  const sendOptions: sendType.SendOptions = {
    maxAge: maxAge * 1000,
    immutable: options.immutable === true,
    index: false,
    // The path is a checked realpath: dotfiles were refused above, on the part below `dir`
    // only (send would also refuse a `dir` that itself lies in a dot folder).
    dotfiles: 'allow',
  };

  // The file to send travels beside the call, not through it: `fromNodeHandler` calls the
  // handler synchronously on both of its paths, so nothing can run in between.
  let nextFile = '';
  const handler: NodeHandler = (req, res) => {
    const file = nextFile;
    nextFile = '';
    send(req, file, sendOptions)
      // A file replaced by a folder since the check: no redirect to a listing that is not served.
      .on('directory', () => {
        res.statusCode = 404;
        res.setHeader('Content-Type', PLAIN[0]![1]);
        res.end('Not Found\n');
      })
      .pipe(res);
  };
  const sendFile = fromNodeHandler(handler);

  const notServed = (environ: Environ, startResponse: StartResponse): Body | Promise<Body> => {
    if (fallback !== undefined) return fallback(environ, startResponse);
    if (environ.REQUEST_METHOD !== 'GET' && environ.REQUEST_METHOD !== 'HEAD') {
      startResponse('405 Method Not Allowed', METHOD_NOT_ALLOWED);
      return ['Method Not Allowed\n'];
    }
    startResponse('404 Not Found', PLAIN);
    return ['Not Found\n'];
  };

  /** The realpath of the file, when it is a regular file inside the folder and no dotfile. */
  const locate = async (environ: Environ, path: string): Promise<string | undefined> => {
    let real: string;
    try {
      real = await realpath(folder + path);
      if (real === root) return undefined;
      if (!isBelow(real, root)) {
        // The folder itself may have moved (a `current -> release-N` symlink switched).
        root = await realpath(folder);
        if (!isBelow(real, root)) return undefined;
      }
      if (hasDotSegment(real, root)) return undefined;
      if (!(await stat(real)).isFile()) return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === undefined || !MISSING.has(code)) {
        environ['ngi.errors'].write(
          `ngi: static: ${environ.REQUEST_METHOD} ${environ.REQUEST_URI}: ${String(error)}\n`,
        );
      }
      return undefined;
    }
    return real;
  };

  const serveFile = async (environ: Environ, startResponse: StartResponse): Promise<Body> => {
    const real = await locate(environ, environ.PATH_INFO);
    if (real === undefined) return notServed(environ, startResponse);
    let encoded: string;
    try {
      // send percent-decodes the path it is given.
      encoded = encodeURI(real);
    } catch {
      return notServed(environ, startResponse);
    }
    nextFile = encoded;
    return sendFile(environ, startResponse);
  };

  return defineApp((environ: Environ, startResponse: StartResponse) => {
    const method = environ.REQUEST_METHOD;
    if (method !== 'GET' && method !== 'HEAD') return notServed(environ, startResponse);
    const path = environ.PATH_INFO;
    const refusal = checkPath(path);
    if (refusal !== undefined) {
      startResponse(refusal, PLAIN);
      return [refusal.slice(4) + '\n'];
    }
    return serveFile(environ, startResponse);
  });
}

/**
 * Why a `PATH_INFO` can never name a file in the folder: `400 Bad Request` for a NUL byte,
 * `403 Forbidden` for a `..` segment or a backslash (a separator on Windows, and `%5C` is a
 * classic way round filters). `PATH_INFO` is decoded, so `%2e%2e` and `%2F` arrive as `..`
 * and `/` and are caught the same way.
 */
function checkPath(path: string): string | undefined {
  if (path.includes('\0')) return '400 Bad Request';
  if (path.includes('\\')) return '403 Forbidden';
  if (path.includes('..') && hasUpSegment(path)) return '403 Forbidden';
  return undefined;
}

function hasUpSegment(path: string): boolean {
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) if (parts[i] === '..') return true;
  return false;
}

/** True when `real` lies strictly below `root` (both realpaths). */
function isBelow(real: string, root: string): boolean {
  if (root === sep) return real.length > 1;
  return real.length > root.length + 1 && real.startsWith(root) && real[root.length] === sep;
}

/** True when a segment of `real` below `root` begins with a dot (a dotfile or dot folder). */
function hasDotSegment(real: string, root: string): boolean {
  return real.indexOf(sep + '.', root === sep ? 0 : root.length) !== -1;
}

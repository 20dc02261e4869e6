import type { Environ } from './types.js';
import { isUtf8 } from 'node:buffer';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const SCHEME = /^[a-z][a-z\d+.-]*$/i;

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  code |= 32;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * The bytes a raw path stands for: `%XX` escapes decoded, chars up to 0xff taken as Latin-1
 * bytes (as Node's parser and the uwsgi codec hand them over), wider chars as UTF-8 (a path
 * written in code, such as a Fastify prefix `/日本`, is no Latin-1 byte string).
 */
function percentBytes(raw: string): Uint8Array {
  const bytes = Buffer.allocUnsafe(raw.length * 3);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ && i + 2 < raw.length) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes[n++] = (hi << 4) | lo;
        i += 2;
        continue;
      }
    }
    if (c <= 0xff) bytes[n++] = c;
    else {
      const wide = raw.codePointAt(i)!;
      if (wide > 0xffff) i++;
      n += bytes.write(String.fromCodePoint(wide), n, 'utf8');
    }
  }
  return bytes.subarray(0, n);
}

function isPlain(raw: string): boolean {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ || c > 127) return false;
  }
  return true;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * Percent-decodes a raw path into `PATH_INFO`. Bytes are read as UTF-8, or as Latin-1 when they
 * are not valid UTF-8 (so `%FF` survives as `\u00ff` instead of failing the request).
 * A raw path arrives as a Latin-1 string (one char per byte), as Node's parser gives it.
 *
 * @example
 * decodePath('/caf%C3%A9/a%2Fb'); // '/café/a/b'
 * decodePath('/%FF'); // '/ÿ'
 */
export function decodePath(raw: string): string {
  // Most paths are plain ASCII: hand back the same string, no allocation.
  if (isPlain(raw)) return raw;
  const bytes = percentBytes(raw);
  try {
    return utf8.decode(bytes);
  } catch {
    return latin1(bytes);
  }
}

/**
 * Where the path of an absolute-form target (`http://host/x?y`) starts: the index of its first
 * `/`, `-1` when it has none (`http://host?y`), `0` when the target is not absolute-form.
 */
function absolutePathStart(target: string): number {
  const scheme = target.indexOf('://');
  if (scheme <= 0 || !SCHEME.test(target.slice(0, scheme))) return 0;
  const slash = target.indexOf('/', scheme + 3);
  const q = target.indexOf('?', scheme + 3);
  return slash === -1 || (q !== -1 && q < slash) ? -1 : slash;
}

/**
 * Splits a request target into its path and raw query; an absolute-form target loses its origin.
 *
 * @example
 * splitTarget('/a%2Fb?x=1'); // ['/a%2Fb', 'x=1']
 * splitTarget('http://example.com/a?x=1'); // ['/a', 'x=1']
 * splitTarget('*'); // ['*', '']
 */
export function splitTarget(target: string): [path: string, query: string] {
  let start = 0;
  if (target.charCodeAt(0) !== 47 /* / */ && target !== '*') {
    start = absolutePathStart(target);
    if (start === -1) {
      const q = target.indexOf('?');
      return ['/', q === -1 ? '' : target.slice(q + 1)];
    }
  }
  const q = target.indexOf('?', start);
  if (q === -1) return [start === 0 ? target : target.slice(start), ''];
  return [target.slice(start, q), target.slice(q + 1)];
}

/**
 * A request target in origin-form, as `REQUEST_URI` carries it (nginx's `$request_uri` too):
 * an absolute-form target (`GET http://host/x?y`, what proxies are sent) loses its scheme and
 * authority; anything else stays exactly as received.
 *
 * @example
 * originForm('http://example.com/a%20b?x=1'); // '/a%20b?x=1'
 * originForm('/a?x=1'); // '/a?x=1'
 */
export function originForm(target: string): string {
  if (target.charCodeAt(0) === 47 /* / */) return target;
  const start = absolutePathStart(target);
  if (start > 0) return target.slice(start);
  if (start === 0) return target;
  const q = target.indexOf('?');
  return q === -1 ? '/' : '/' + target.slice(q);
}

/**
 * The raw (undecoded) path below a mount point: strips as many raw segments from `rawPath` as
 * decode to `scriptName`, so `%2F` and `%FF` further down stay exactly as the client sent them.
 * Returns `undefined` when the raw path does not start with the mount point (a proxy normalised it).
 *
 * @example
 * rawPathBelow('/caf%C3%A9/a%2Fb', '/café'); // '/a%2Fb'
 * rawPathBelow('/other', '/café'); // undefined
 */
export function rawPathBelow(rawPath: string, scriptName: string): string | undefined {
  if (scriptName === '') return rawPath;
  if (rawPath.startsWith(scriptName)) {
    const next = rawPath.charCodeAt(scriptName.length);
    if (Number.isNaN(next)) return '';
    if (next === 47) return rawPath.slice(scriptName.length);
  }
  // Prefixes are decoded as the whole path was: one that is not UTF-8 became Latin-1 throughout.
  const wholeIsLatin1 = !isPlain(rawPath) && !isUtf8(percentBytes(rawPath));
  let end = 0;
  while (end < rawPath.length) {
    let slash = rawPath.indexOf('/', end + 1);
    if (slash === -1) slash = rawPath.length;
    const prefix = rawPath.slice(0, slash);
    const decoded = wholeIsLatin1 ? latin1(percentBytes(prefix)) : decodePath(prefix);
    if (decoded === scriptName) return rawPath.slice(slash);
    if (decoded.length > scriptName.length) return undefined;
    end = slash;
  }
  return undefined;
}

/**
 * What a framework's router left of a request it mounted us under (Express's `app.use(prefix)`,
 * koa-mount): the part of the original path it cut, decoded, as `SCRIPT_NAME`, and the raw
 * target below it. A router that turns `/legacy` into `/` gives a `""` path below, as `mount`
 * does, so an app sees the same environ under either.
 *
 * @example
 * mountedTarget('/legacy/a%2Fb?x=1', '/a%2Fb?x=1'); // { scriptName: '/legacy', target: '/a%2Fb?x=1' }
 * mountedTarget('/legacy', '/'); // { scriptName: '/legacy', target: '' }
 */
export function mountedTarget(
  originalUrl: string,
  url: string,
): { scriptName: string; target: string } {
  if (originalUrl === url) return { scriptName: '', target: url };
  const [path, query] = splitTarget(originalUrl);
  const [rest] = splitTarget(url);
  let cut: number;
  let below: string;
  if (path.endsWith(rest)) {
    cut = path.length - rest.length;
    below = rest;
  } else if (rest === '/') {
    cut = path.length;
    below = '';
  } else {
    // Not a prefix cut (a rewrite): the app sees what the router left, at the root.
    return { scriptName: '', target: url };
  }
  return {
    scriptName: decodePath(path.slice(0, cut)),
    target: query === '' ? below : below + '?' + query,
  };
}

/** The request URL a framework below a mount point sees: the raw path, undecoded. */
export function targetBelowMount(environ: Environ): string {
  const [rawPath] = splitTarget(environ.REQUEST_URI || '/');
  let below = rawPathBelow(rawPath, environ.SCRIPT_NAME);
  // A proxy normalised the path (nginx merges `//`, resolves `..`): rebuild it from PATH_INFO.
  if (below === undefined)
    below = encodeURI(environ.PATH_INFO).replace(/[?#]/g, encodeURIComponent);
  if (below === '') below = '/';
  const query = environ.QUERY_STRING;
  return query === '' ? below : below + '?' + query;
}

/**
 * The mount point as the client spelled it (`/caf%C3%A9` for `SCRIPT_NAME` `/café`): Express's
 * `req.baseUrl` is raw, and a router below cuts its own raw prefixes after it.
 */
export function rawMountPoint(environ: Environ): string {
  const [rawPath] = splitTarget(environ.REQUEST_URI || '/');
  const below = rawPathBelow(rawPath, environ.SCRIPT_NAME);
  if (below === undefined) return environ.SCRIPT_NAME;
  return rawPath.slice(0, rawPath.length - below.length);
}

/**
 * The path prefix a route pattern stands for, cut from the real (raw) path: as many
 * segments as the pattern has before its trailing `*`, so `/:tenant/legacy/*` mounts at
 * `/acme/legacy` and `%2F` inside those segments is decoded only once, into `SCRIPT_NAME`.
 *
 * @example
 * mountedPrefix('/:tenant/legacy/*', 'http://h/acme/legacy/x?y'); // '/acme/legacy'
 */
export function mountedPrefix(routePath: string, url: string): string {
  let pattern = routePath;
  if (pattern.endsWith('*')) pattern = pattern.slice(0, -1);
  if (pattern.endsWith('/')) pattern = pattern.slice(0, -1);
  if (pattern === '') return '';
  let segments = 0;
  for (let i = 0; i < pattern.length; i++) if (pattern.charCodeAt(i) === 47) segments++;
  const start = url.indexOf('/', url.indexOf('//') + 2);
  if (start === -1) return '';
  let end = start;
  for (let seen = 0; seen < segments; seen++) {
    const next = url.indexOf('/', end + 1);
    const query = url.indexOf('?', end + 1);
    if (next === -1 || (query !== -1 && query < next)) {
      end = query === -1 ? url.length : query;
      break;
    }
    end = next;
  }
  return decodePath(url.slice(start, end));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  code |= 32;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Percent-decodes a raw path into `PATH_INFO`. Bytes are read as UTF-8, or as Latin-1 when they
 * are not valid UTF-8 (so `%FF` survives as `\u00ff` instead of failing the request).
 * A raw path arrives as a Latin-1 string (one char per byte), as Node's parser gives it.
 */
export function decodePath(raw: string): string {
  let plain = true;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ || c > 127) {
      plain = false;
      break;
    }
  }
  // Most paths are plain ASCII: hand back the same string, no allocation.
  if (plain) return raw;
  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 && i + 2 < raw.length + 0) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes[n++] = (hi << 4) | lo;
        i += 2;
        continue;
      }
    }
    bytes[n++] = c & 0xff;
  }
  const view = bytes.subarray(0, n);
  try {
    return utf8.decode(view);
  } catch {
    return Buffer.from(view).toString('latin1');
  }
}

/** Splits a request target into its path and raw query; an absolute-form target loses its origin. */
export function splitTarget(target: string): [path: string, query: string] {
  let start = 0;
  if (target.charCodeAt(0) !== 47 /* / */ && target !== '*') {
    // absolute-form (`GET http://host/x HTTP/1.1`): the path starts at the first `/` after `//`.
    const scheme = target.indexOf('://');
    if (scheme !== -1) {
      const slash = target.indexOf('/', scheme + 3);
      const q = target.indexOf('?', scheme + 3);
      start = slash === -1 || (q !== -1 && q < slash) ? -1 : slash;
      if (start === -1) return ['/', q === -1 ? '' : target.slice(q + 1)];
    }
  }
  const q = target.indexOf('?', start);
  if (q === -1) return [start === 0 ? target : target.slice(start), ''];
  return [target.slice(start, q), target.slice(q + 1)];
}

/**
 * The raw (undecoded) path below a mount point: strips as many raw segments from `rawPath` as
 * decode to `scriptName`, so `%2F` and `%FF` further down stay exactly as the client sent them.
 * Returns `undefined` when the raw path does not start with the mount point (a proxy normalised it).
 */
export function rawPathBelow(rawPath: string, scriptName: string): string | undefined {
  if (scriptName === '') return rawPath;
  if (rawPath.startsWith(scriptName)) {
    const next = rawPath.charCodeAt(scriptName.length);
    if (Number.isNaN(next)) return '';
    if (next === 47) return rawPath.slice(scriptName.length);
  }
  let end = 0;
  while (end < rawPath.length) {
    let slash = rawPath.indexOf('/', end + 1);
    if (slash === -1) slash = rawPath.length;
    const decoded = decodePath(rawPath.slice(0, slash));
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

import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePath,
  mountedTarget,
  originForm,
  rawPathBelow,
  splitTarget,
} from '../../../src/core/url.js';

/** Percent-encodes every byte: the most escaped form a client can send. */
function escapeAll(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  return out;
}

/** The bytes as Node's parser hands a raw path over: one Latin-1 char per byte. */
function asLatin1(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}

/** What `PATH_INFO` must be for these bytes: UTF-8 when they are, Latin-1 otherwise. */
function expectedDecoding(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString(isUtf8(bytes) ? 'utf8' : 'latin1');
}

/**
 * A raw path segment built from bytes (never a literal `/`), each byte sent either escaped
 * or as itself, as clients differ. `%` is always escaped, so the raw form is unambiguous.
 */
const rawSegment = fc
  .array(
    fc.record({
      byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x2f, 0xc3, 0xa9, 0xff)),
      escaped: fc.boolean(),
    }),
    { maxLength: 8 },
  )
  .map((parts) => {
    let raw = '/';
    for (const { byte, escaped } of parts) {
      const literal = byte > 0x20 && byte !== 0x25 && byte !== 0x2f && byte !== 0x3f;
      raw +=
        escaped || !literal ? '%' + byte.toString(16).padStart(2, '0') : String.fromCharCode(byte);
    }
    return { raw, bytes: Uint8Array.from([0x2f, ...parts.map((p) => p.byte)]) };
  });

describe('decodePath', () => {
  it('hands a plain ASCII path back unchanged', () => {
    assert.equal(decodePath('/users/42/profile'), '/users/42/profile');
    assert.equal(decodePath(''), '');
  });

  it('decodes percent escapes as UTF-8, %2F included', () => {
    assert.equal(decodePath('/caf%C3%A9/a%2Fb'), '/café/a/b');
    assert.equal(decodePath('/%e6%97%a5%E6%9C%AC'), '/日本', 'lower- and upper-case hex');
  });

  it('falls back to Latin-1 for bytes that are not UTF-8, so %FF survives as ÿ', () => {
    assert.equal(decodePath('/%FF'), '/\u00ff');
    assert.equal(decodePath('/caf%E9'), '/café', 'a Latin-1 é from an old client');
  });

  it('keeps malformed escapes literally', () => {
    assert.equal(decodePath('/100%'), '/100%');
    assert.equal(decodePath('/%G1/%4'), '/%G1/%4');
    assert.equal(decodePath('/a%2'), '/a%2');
  });

  it('reads a raw path given as Latin-1 bytes (Node and uwsgi) as UTF-8', () => {
    assert.equal(decodePath(asLatin1(Buffer.from('/café'))), '/café');
  });

  it('reads a path written in code with characters beyond Latin-1 as itself', () => {
    assert.equal(decodePath('/日本/ok'), '/日本/ok');
    assert.equal(decodePath('/😀%20x'), '/😀 x');
  });

  it('property: decoding what encodeURIComponent made of each segment gives the string back', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        const encoded = s.split('/').map(encodeURIComponent).join('/');
        assert.equal(decodePath(encoded), s);
      }),
      { numRuns: 500 },
    );
  });

  it('property: any bytes, fully escaped, decode as UTF-8 when they are and Latin-1 otherwise', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 24 }), (bytes) => {
        assert.equal(decodePath(escapeAll(bytes)), expectedDecoding(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('property: a byte sent raw (Latin-1) and the same byte escaped decode alike', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 24 }).filter((b) => !b.includes(0x25)),
        (bytes) => {
          assert.equal(decodePath(asLatin1(bytes)), decodePath(escapeAll(bytes)));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('splitTarget', () => {
  it('splits an origin-form target at the first ?', () => {
    assert.deepEqual(splitTarget('/a%2Fb?x=1&y=%C3%BC'), ['/a%2Fb', 'x=1&y=%C3%BC']);
    assert.deepEqual(splitTarget('/a?b?c'), ['/a', 'b?c']);
    assert.deepEqual(splitTarget('/a?'), ['/a', '']);
    assert.deepEqual(splitTarget('/a'), ['/a', '']);
  });

  it('drops the scheme and authority of an absolute-form target', () => {
    assert.deepEqual(splitTarget('http://example.com/a/b?x=1'), ['/a/b', 'x=1']);
    assert.deepEqual(splitTarget('https://[::1]:8443/a'), ['/a', '']);
    assert.deepEqual(splitTarget('http://example.com?x=/y'), ['/', 'x=/y']);
    assert.deepEqual(splitTarget('http://example.com'), ['/', '']);
  });

  it("keeps the asterisk of 'OPTIONS *'", () => {
    assert.deepEqual(splitTarget('*'), ['*', '']);
  });

  it('does not take a URL inside a query for an absolute-form target', () => {
    assert.deepEqual(splitTarget('/login?next=http://example.com/a'), [
      '/login',
      'next=http://example.com/a',
    ]);
    // What a router leaves of `/legacy?next=...` once it cut `/legacy`.
    assert.deepEqual(splitTarget('?next=http://example.com/a'), ['', 'next=http://example.com/a']);
  });

  const path = fc
    .array(fc.stringMatching(/^[\w.~%!$&'()*+,;=:@-]*$/), { minLength: 1, maxLength: 5 })
    .map((segments) => '/' + segments.join('/'));
  const query = fc.stringMatching(/^[\w.~%!$&'()*+,;=:@/?-]*$/);

  it('property: path + "?" + query splits back into path and query', () => {
    fc.assert(
      fc.property(path, query, (p, q) => {
        assert.deepEqual(splitTarget(`${p}?${q}`), [p, q]);
      }),
      { numRuns: 300 },
    );
  });

  it('property: an absolute-form target splits like its origin-form', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('http', 'https', 'HTTP'),
        fc.constantFrom('example.com', 'h:8080', '[::1]:3000', '127.0.0.1'),
        path,
        query,
        (scheme, host, p, q) => {
          assert.deepEqual(splitTarget(`${scheme}://${host}${p}?${q}`), splitTarget(`${p}?${q}`));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('originForm', () => {
  it('keeps an origin-form target exactly as received', () => {
    assert.equal(originForm('/a%2Fb?x=%FF'), '/a%2Fb?x=%FF');
  });

  it('turns an absolute-form target into path and query', () => {
    assert.equal(originForm('http://example.com/a%20b?x=1'), '/a%20b?x=1');
    assert.equal(originForm('http://example.com?x=1'), '/?x=1');
    assert.equal(originForm('http://example.com'), '/');
  });

  it("keeps '*' and targets that are not absolute-form as they are", () => {
    assert.equal(originForm('*'), '*');
    assert.equal(originForm('example.com:443'), 'example.com:443');
  });
});

describe('rawPathBelow', () => {
  it('strips a mount point on a segment boundary', () => {
    assert.equal(rawPathBelow('/api/x%2Fy', '/api'), '/x%2Fy');
    assert.equal(rawPathBelow('/api', '/api'), '');
    assert.equal(rawPathBelow('/api/', '/api'), '/');
    assert.equal(rawPathBelow('/x', ''), '/x');
  });

  it('never cuts inside a segment', () => {
    assert.equal(rawPathBelow('/apix', '/api'), undefined);
  });

  it('strips escaped segments that decode to the mount point, leaving the rest raw', () => {
    assert.equal(rawPathBelow('/caf%C3%A9/a%2Fb', '/café'), '/a%2Fb');
    assert.equal(rawPathBelow('/a%2Fb/%FF', '/a/b'), '/%FF');
  });

  it('says undefined when the raw path does not lead to the mount point (a proxy normalised it)', () => {
    assert.equal(rawPathBelow('/x/../api/y', '/api'), undefined);
    assert.equal(rawPathBelow('/other', '/api'), undefined);
  });

  it('decodes the mount point as the whole path was decoded when that path is not UTF-8', () => {
    // '/caf%C3%A9/%FF' is not UTF-8 as a whole: PATH_INFO is its Latin-1 reading.
    const pathInfo = decodePath('/caf%C3%A9/%FF');
    assert.equal(pathInfo, '/caf\u00c3\u00a9/\u00ff');
    assert.equal(rawPathBelow('/caf%C3%A9/%FF', '/caf\u00c3\u00a9'), '/%FF');
  });

  it('property: below the decoded first k segments lies the raw rest, byte for byte', () => {
    fc.assert(
      fc.property(
        fc.array(rawSegment, { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (segments, pick) => {
          const raw = segments.map((s) => s.raw).join('');
          const whole = Buffer.concat(segments.map((s) => s.bytes));
          const latin1 = !isUtf8(whole);
          assert.equal(decodePath(raw), expectedDecoding(whole), 'PATH_INFO of the whole path');
          const k = 1 + (pick % segments.length);
          const mounted = Buffer.concat(segments.slice(0, k).map((s) => s.bytes));
          const scriptName = mounted.toString(latin1 ? 'latin1' : 'utf8');
          const rest = segments
            .slice(k)
            .map((s) => s.raw)
            .join('');
          assert.equal(rawPathBelow(raw, scriptName), rest);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('mountedTarget', () => {
  it('takes the part a router cut as SCRIPT_NAME, decoded, and keeps the rest raw', () => {
    assert.deepEqual(mountedTarget('/legacy/a%2Fb?x=1', '/a%2Fb?x=1'), {
      scriptName: '/legacy',
      target: '/a%2Fb?x=1',
    });
    assert.deepEqual(mountedTarget('/caf%C3%A9/x', '/x'), { scriptName: '/café', target: '/x' });
  });

  it('gives an empty path below when the router turned the mount point itself into /', () => {
    assert.deepEqual(mountedTarget('/legacy', '/'), { scriptName: '/legacy', target: '' });
    assert.deepEqual(
      mountedTarget('/legacy?next=http://example.com/a', '/?next=http://example.com/a'),
      {
        scriptName: '/legacy',
        target: '?next=http://example.com/a',
      },
    );
  });

  it('is no mount at all when the router left the URL alone', () => {
    assert.deepEqual(mountedTarget('/a?x=1', '/a?x=1'), { scriptName: '', target: '/a?x=1' });
  });

  it('treats a rewrite that is not a prefix cut as a request at the root', () => {
    assert.deepEqual(mountedTarget('/old/page', '/new'), { scriptName: '', target: '/new' });
  });

  it('property: cutting raw prefix segments gives their decoding and the raw rest', () => {
    fc.assert(
      fc.property(
        fc.array(rawSegment, { minLength: 1, maxLength: 3 }),
        fc.array(rawSegment, { minLength: 1, maxLength: 3 }),
        fc.stringMatching(/^[\w=&%-]*$/),
        (cut, kept, q) => {
          const prefix = cut.map((s) => s.raw).join('');
          const rest = kept.map((s) => s.raw).join('');
          const query = q === '' ? '' : '?' + q;
          const result = mountedTarget(prefix + rest + query, rest + query);
          assert.equal(result.scriptName, decodePath(prefix));
          assert.equal(result.target, rest + query);
        },
      ),
      { numRuns: 300 },
    );
  });
});

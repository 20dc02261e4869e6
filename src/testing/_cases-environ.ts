import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { App } from '../core/types.js';
import {
  JSON_TYPE,
  decodedMount,
  differs,
  echoApp,
  first,
  readJson,
  type KitCase,
} from './_case.js';
import { gate, within } from './_wire.js';

/* The environ a host builds (docs/spec.md §3), seen from the app and compared on the way back. */

const ALWAYS = [
  'REQUEST_METHOD',
  'SCRIPT_NAME',
  'PATH_INFO',
  'QUERY_STRING',
  'SERVER_NAME',
  'SERVER_PORT',
  'SERVER_PROTOCOL',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'REQUEST_URI',
] as const;

/** A 5 MB pattern, so a shifted or truncated copy shows in the digest. */
export function pattern(size: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

const FIVE_MB = 5 * 1024 * 1024;

/** An app that reads `ngi.input` whole and answers its length and sha256 (and the length header). */
const digestApp: App = async (environ, startResponse) => {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of environ['ngi.input']) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  startResponse('200 OK', JSON_TYPE);
  return [
    JSON.stringify({
      length,
      sha256: hash.digest('hex'),
      CONTENT_LENGTH: environ.CONTENT_LENGTH ?? null,
      CONTENT_TYPE: environ.CONTENT_TYPE ?? null,
      HTTP_CONTENT_LENGTH: environ.HTTP_CONTENT_LENGTH ?? null,
      HTTP_CONTENT_TYPE: environ.HTTP_CONTENT_TYPE ?? null,
    }),
  ];
};

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export const environCases: KitCase[] = [
  {
    rule: 'R2.3',
    name: 'middleware may replace any key, ngi.input and ngi.signal too, with or without a body',
    make: () => ({
      app: async (environ, startResponse) => {
        // What a WSGI-style middleware does: wrap the input, give the app a signal of its own.
        const own = new AbortController();
        environ['ngi.input'] = Readable.from([Buffer.from('replaced')]);
        environ['ngi.signal'] = own.signal;
        environ.PATH_INFO = '/moved';
        own.abort();
        let text = '';
        for await (const chunk of environ['ngi.input']) text += String(chunk);
        startResponse('200 OK', JSON_TYPE);
        return [
          JSON.stringify({
            input: text,
            signal: environ['ngi.signal'] === own.signal && environ['ngi.signal'].aborted,
            path: environ.PATH_INFO,
          }),
        ];
      },
      async check({ send }) {
        const expected = { input: 'replaced', signal: true, path: '/moved' };
        for (const request of [
          { path: '/get' },
          { method: 'POST', path: '/post', body: 'the real body' },
        ]) {
          const seen = readJson(await send(request));
          if (typeof seen === 'string') return `${request.path}: ${seen}`;
          const wrong = differs(
            `what the app read after replacing (${request.path})`,
            expected,
            seen,
          );
          if (wrong !== undefined) return wrong;
        }
        return undefined;
      },
    }),
  },
  {
    rule: 'R3.1',
    name: 'every key the spec calls "always" is there, with its type',
    make: () => ({
      app: (environ, startResponse) => {
        const types: Record<string, string> = {};
        for (const key of ALWAYS) types[key] = typeof environ[key];
        const version = environ['ngi.version'] as unknown;
        startResponse('200 OK', JSON_TYPE);
        return [
          JSON.stringify({
            types,
            version: Array.isArray(version) ? version : null,
            scheme: environ['ngi.url_scheme'],
            input: environ['ngi.input'] instanceof Readable,
            errors: typeof (environ['ngi.errors'] as { write?: unknown } | undefined)?.write,
            flags: [
              typeof environ['ngi.multiprocess'],
              typeof environ['ngi.multithread'],
              typeof environ['ngi.run_once'],
            ],
            signal: environ['ngi.signal'] instanceof AbortSignal,
            httpContent: 'HTTP_CONTENT_TYPE' in environ || 'HTTP_CONTENT_LENGTH' in environ,
          }),
        ];
      },
      async check({ send }) {
        const seen = readJson(await send({ path: '/environ' }));
        if (typeof seen === 'string') return seen;
        const strings = Object.fromEntries(ALWAYS.map((key) => [key, 'string']));
        return first(
          differs('typeof each CGI key', strings, seen.types),
          differs('ngi.version', [1, 0], seen.version),
          seen.scheme === 'http' || seen.scheme === 'https'
            ? undefined
            : differs('ngi.url_scheme', 'http', seen.scheme),
          differs('ngi.input is a Readable', true, seen.input),
          differs('typeof ngi.errors.write', 'function', seen.errors),
          differs(
            'ngi.multiprocess, multithread, run_once',
            ['boolean', 'boolean', 'boolean'],
            seen.flags,
          ),
          differs('ngi.signal is an AbortSignal', true, seen.signal),
          differs('HTTP_CONTENT_TYPE or HTTP_CONTENT_LENGTH present', false, seen.httpContent),
        );
      },
    }),
  },
  {
    rule: 'R3.2',
    name: 'a method the host does not know (PURGE) reaches the app as sent',
    make: () => ({
      app: echoApp(['REQUEST_METHOD']),
      async check({ send }) {
        const seen = readJson(await send({ method: 'PURGE', path: '/method' }));
        if (typeof seen === 'string') return seen;
        return differs('REQUEST_METHOD', 'PURGE', seen.REQUEST_METHOD);
      },
    }),
  },
  {
    rule: 'R3.3',
    name: 'PATH_INFO is percent-decoded as UTF-8, %2F included',
    make: () => ({
      app: echoApp(['PATH_INFO']),
      async check({ send }) {
        const seen = readJson(await send({ path: '/a%2Fb/caf%C3%A9/%20x' }));
        if (typeof seen === 'string') return seen;
        return differs('PATH_INFO', '/a/b/café/ x', seen.PATH_INFO);
      },
    }),
  },
  {
    rule: 'R3.3',
    name: 'PATH_INFO falls back to Latin-1 for bytes that are not UTF-8 (%FF)',
    make: () => ({
      app: echoApp(['PATH_INFO']),
      async check({ send }) {
        const seen = readJson(await send({ path: '/latin/%FF' }));
        if (typeof seen === 'string') return seen;
        return differs('PATH_INFO', '/latin/\u00ff', seen.PATH_INFO);
      },
    }),
  },
  {
    rule: 'R3.4',
    name: 'SCRIPT_NAME is the mount point and PATH_INFO the rest, "" at the mount point itself',
    make: () => ({
      app: echoApp(['SCRIPT_NAME', 'PATH_INFO']),
      async check({ send, base }) {
        const mount = decodedMount(base);
        const below = readJson(await send({ path: '/x/y' }));
        if (typeof below === 'string') return below;
        const slash = readJson(await send({ path: '/' }));
        if (typeof slash === 'string') return slash;
        // At the root the bare mount point is `/` itself: only a real mount has a bare form.
        const bare = base.path === '' ? slash : readJson(await send({ path: '' }));
        if (typeof bare === 'string') return bare;
        return first(
          differs('SCRIPT_NAME below the mount', mount, below.SCRIPT_NAME),
          differs('PATH_INFO below the mount', '/x/y', below.PATH_INFO),
          differs('PATH_INFO for the mount point with a slash', '/', slash.PATH_INFO),
          differs(
            'PATH_INFO for the mount point itself',
            base.path === '' ? '/' : '',
            bare.PATH_INFO,
          ),
          differs('SCRIPT_NAME for the mount point itself', mount, bare.SCRIPT_NAME),
        );
      },
    }),
  },
  {
    rule: 'R3.5',
    name: 'QUERY_STRING is the raw query: escapes, repeats and empty values kept, no "?"',
    make: () => ({
      app: echoApp(['QUERY_STRING']),
      async check({ send }) {
        const query = 'q=%C3%BC%2B&x=1&x=2&empty=&plus=a+b';
        const seen = readJson(await send({ path: '/query?' + query }));
        if (typeof seen === 'string') return seen;
        const none = readJson(await send({ path: '/query' }));
        if (typeof none === 'string') return none;
        return first(
          differs('QUERY_STRING', query, seen.QUERY_STRING),
          differs('QUERY_STRING without a query', '', none.QUERY_STRING),
        );
      },
    }),
  },
  {
    rule: 'R3.6',
    name: 'REQUEST_URI is the target exactly as sent, escapes undecoded',
    make: () => ({
      app: echoApp(['REQUEST_URI']),
      async check({ send, base }) {
        const target = '/raw/a%2Fb/caf%C3%A9/%FF?x=%20&y=1';
        const seen = readJson(await send({ path: target }));
        if (typeof seen === 'string') return seen;
        return differs('REQUEST_URI', base.path + target, seen.REQUEST_URI);
      },
    }),
  },
  {
    rule: 'R3.6',
    name: 'REQUEST_URI keeps encoded dot segments (%2e%2e) unresolved',
    make: () => ({
      app: echoApp(['REQUEST_URI']),
      async check({ send, base }) {
        const target = '/raw/a/%2e%2e/b';
        const seen = readJson(await send({ path: target }));
        if (typeof seen === 'string') return seen;
        return differs('REQUEST_URI', base.path + target, seen.REQUEST_URI);
      },
    }),
  },
  {
    rule: 'R3.7',
    name: 'CONTENT_LENGTH and CONTENT_TYPE for a sized body, absent without one',
    make: () => ({
      app: digestApp,
      async check({ send }) {
        const body = 'hello, kit';
        const sized = readJson(
          await send({
            method: 'POST',
            path: '/sized',
            headers: [['Content-Type', 'text/plain']],
            body,
          }),
        );
        if (typeof sized === 'string') return sized;
        const none = readJson(await send({ path: '/none' }));
        if (typeof none === 'string') return none;
        return first(
          differs('CONTENT_LENGTH', String(body.length), sized.CONTENT_LENGTH),
          differs('CONTENT_TYPE', 'text/plain', sized.CONTENT_TYPE),
          differs('bytes read from ngi.input', body.length, sized.length),
          differs('HTTP_CONTENT_LENGTH', null, sized.HTTP_CONTENT_LENGTH),
          differs('HTTP_CONTENT_TYPE', null, sized.HTTP_CONTENT_TYPE),
          differs('CONTENT_LENGTH of a GET without a body', null, none.CONTENT_LENGTH),
          differs('CONTENT_TYPE of a GET without a body', null, none.CONTENT_TYPE),
          differs('bytes in ngi.input of a GET without a body', 0, none.length),
        );
      },
    }),
  },
  {
    rule: 'R3.7',
    name: 'a chunked request body is read whole from ngi.input',
    make: () => ({
      app: digestApp,
      async check({ send }) {
        const parts = [pattern(1000, 1), pattern(70_000, 2), pattern(3, 3)];
        const whole = Buffer.concat(parts);
        const seen = readJson(await send({ method: 'POST', path: '/chunked', body: parts }));
        if (typeof seen === 'string') return seen;
        return first(
          differs('bytes read from ngi.input', whole.length, seen.length),
          differs('sha256 of ngi.input', sha256(whole), seen.sha256),
          // A host that buffered the body (a proxy) may know its length; it must be the right one.
          seen.CONTENT_LENGTH === null
            ? undefined
            : differs('CONTENT_LENGTH', String(whole.length), seen.CONTENT_LENGTH),
        );
      },
    }),
  },
  {
    rule: 'R3.8',
    name: 'repeated request headers join with ", ", Cookie with "; "',
    make: () => ({
      app: echoApp(['HTTP_X_KIT_REPEAT', 'HTTP_COOKIE', 'HTTP_X_KIT_SINGLE']),
      async check({ send }) {
        const seen = readJson(
          await send({
            path: '/headers',
            headers: [
              ['X-Kit-Repeat', 'a'],
              ['Cookie', 'a=1'],
              ['X-Kit-Single', 'only'],
              ['X-Kit-Repeat', 'b'],
              ['Cookie', 'b=2'],
            ],
          }),
        );
        if (typeof seen === 'string') return seen;
        return first(
          differs('HTTP_X_KIT_SINGLE', 'only', seen.HTTP_X_KIT_SINGLE),
          differs('HTTP_X_KIT_REPEAT', 'a, b', seen.HTTP_X_KIT_REPEAT),
          differs('HTTP_COOKIE', 'a=1; b=2', seen.HTTP_COOKIE),
        );
      },
    }),
  },
  {
    rule: 'R3.12',
    name: 'a 5 MB request body reaches ngi.input intact',
    make: () => ({
      app: digestApp,
      async check({ send }) {
        const body = pattern(FIVE_MB, 7);
        const seen = readJson(
          await send({
            method: 'POST',
            path: '/upload',
            headers: [['Content-Type', 'application/octet-stream']],
            body,
          }),
        );
        if (typeof seen === 'string') return seen;
        return first(
          differs('bytes read from ngi.input', body.length, seen.length),
          differs('sha256 of ngi.input', sha256(body), seen.sha256),
        );
      },
    }),
  },
  {
    rule: 'R3.13',
    name: 'ngi.signal fires when the client goes away before the response',
    make: () => {
      const entered = gate();
      const fired = gate<boolean>();
      return {
        app: async (environ, startResponse) => {
          const signal = environ['ngi.signal'];
          const aborted = new Promise<boolean>((resolve) =>
            signal.addEventListener('abort', () => resolve(true), { once: true }),
          );
          entered.open();
          fired.open(await within(aborted, 10_000, false));
          startResponse('200 OK', []);
          return ['too late'];
        },
        async check({ abandon, timeoutMs }) {
          await abandon('/wait', entered.promise);
          if (!entered.opened) return 'the app was never called';
          const aborted = await within(fired.promise, timeoutMs, false);
          return aborted
            ? undefined
            : `ngi.signal did not fire within ${timeoutMs} ms of the client leaving`;
        },
      };
    },
  },
  {
    rule: 'R3.13',
    name: 'ngi.signal stays quiet for a request that completes',
    make: () => {
      let signal: AbortSignal | undefined;
      return {
        app: (environ, startResponse) => {
          signal = environ['ngi.signal'];
          startResponse('200 OK', []);
          return ['done'];
        },
        async check({ send }) {
          const response = await send({ path: '/quiet' });
          if (!response.complete) return `the response was not complete (${response.error})`;
          await new Promise((resolve) => setTimeout(resolve, 50));
          if (signal === undefined) return 'the app was never called';
          return signal.aborted
            ? `ngi.signal fired for a completed request (${String(signal.reason)})`
            : undefined;
        },
      };
    },
  },
];

// The `Request` a Fetch handler gets for an NGI environ (what `fromFetch` and `fromHono`
// build): end-to-end headers, the URL below the mount point, and a cheap stand-in.
import { Readable } from 'node:stream';
import { targetBelowMount } from '../core/url.js';
import type { FetchOrigin } from '../core/fetch-origin.js';
import { kFetchOrigin } from '../core/symbols.js';
import type { Environ } from '../core/types.js';

/** Request headers that describe one hop, not the request: a Fetch handler never sees them. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'http2-settings',
]);

const headerNames = new Map<string, string>();
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/**
 * `HTTP_X_FORWARDED_FOR` → `x-forwarded-for`, cached like `headerKey`; throws for a name
 * Fetch would reject (only valid names are cached, so the check costs once per name).
 */
function headerName(key: string): string {
  let name = headerNames.get(key);
  if (name === undefined) {
    name = key.slice(5).toLowerCase().replace(/_/g, '-');
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (headerNames.size < 1000) headerNames.set(key, name);
  }
  return name;
}

function hasBody(environ: Environ): boolean {
  const length = environ.CONTENT_LENGTH;
  return (length !== undefined && length !== '0') || environ.HTTP_TRANSFER_ENCODING !== undefined;
}

/** A path and query the URL parser leaves as they are (after @hono/node-server's check). */
const PLAIN_TARGET = /^\/[!#$&-;=?-[\]_a-z~]*$/;
const DOT_SEGMENT = /\/\.\.?(?:[/?#]|$)/;
const PLAIN_HOST = /^[a-z0-9._-]+(?::\d{1,5})?$/;

/** The raw target below the mount point: the part of the URL the Request stands for. */
function rawTarget(environ: Environ): string {
  const target = environ.SCRIPT_NAME === '' ? environ.REQUEST_URI : targetBelowMount(environ);
  return target.charCodeAt(0) === 47 ? target : '/';
}

/**
 * The URL a Fetch handler sees: `target` on the request's own origin, exactly as
 * `new Request(url).url` would give it (dot segments, `%2e%2e` included, resolved; spaces and
 * non-ASCII escaped), so a router reading it routes as it would on any Fetch runtime.
 * Throws a TypeError for what the URL parser rejects.
 */
function requestUrl(environ: Environ, target: string): string {
  const scheme = environ['ngi.url_scheme'];
  let host = environ.HTTP_HOST;
  if (host === undefined || host === '') {
    const port = environ.SERVER_PORT;
    const plain = port === '' || port === (scheme === 'https' ? '443' : '80');
    host = plain ? environ.SERVER_NAME : `${environ.SERVER_NAME}:${port}`;
  }
  const url = `${scheme}://${host}${target}`;
  // Most requests need no parsing at all: the parser would hand back the same string.
  if (PLAIN_TARGET.test(target) && !DOT_SEGMENT.test(target) && PLAIN_HOST.test(host)) return url;
  return new URL(url).href;
}

/** What a Fetch `Request` cannot express, as a reason; `undefined` when it can. */
export function inexpressible(environ: Environ): string | undefined {
  const method = environ.REQUEST_METHOD.toUpperCase();
  if (method === 'TRACE' || method === 'TRACK' || method === 'CONNECT') {
    return `a Fetch Request cannot carry the ${method} method`;
  }
  if ((method === 'GET' || method === 'HEAD') && hasBody(environ)) {
    return `a Fetch Request cannot carry a ${method} request with a body`;
  }
  return undefined;
}

type HeaderPairs = Array<[string, string]>;

/** End-to-end request headers as pairs; throws for a name Fetch would reject. */
function headerPairs(environ: Environ): HeaderPairs {
  const headers: HeaderPairs = [];
  for (const key in environ) {
    if (key.startsWith('HTTP_')) {
      const name = headerName(key);
      if (!HOP_BY_HOP.has(name)) headers.push([name, environ[key] as string]);
    }
  }
  if (environ.CONTENT_TYPE !== undefined) headers.push(['content-type', environ.CONTENT_TYPE]);
  if (environ.CONTENT_LENGTH !== undefined) {
    headers.push(['content-length', environ.CONTENT_LENGTH]);
  }
  return headers;
}

/** A real `Request`; `headers` are pairs, or the Headers a stand-in already handed out. */
function realRequest(environ: Environ, url: string, headers: HeaderPairs | Headers): Request {
  const init: RequestInit & { duplex?: 'half' } = { method: environ.REQUEST_METHOD, headers };
  if (hasBody(environ)) {
    init.body = Readable.toWeb(environ['ngi.input']) as ReadableStream<Uint8Array>;
    // Node's fetch insists on being told a streamed body is sent while the response may start.
    init.duplex = 'half';
  }
  const request = new Request(url, init);
  // Following a signal costs undici ~15 µs per Request (its own AbortController, a listener,
  // a WeakRef), more than the rest of a small request; most handlers never read
  // `request.signal`, so it is `ngi.signal`, built only when read.
  Object.defineProperty(request, 'signal', { get: () => environ['ngi.signal'] });
  return request;
}

/*
 * The stand-in Request (after @hono/node-server): an object whose prototype chain holds
 * `Request.prototype`, answering `method`, `url`, `headers` and `signal` from the environ and
 * building the real `Request` only when something else is touched (the body, `clone()`, or
 * undici's own slots when it is passed to `fetch()` / `new Request()`). A real undici Request
 * costs several microseconds (URL parsing, Headers, an AbortController) that a router which
 * reads only the URL never needs.
 */
const kEnviron = Symbol('ngi.environ');
const kUrl = Symbol('ngi.url');
const kPairs = Symbol('ngi.headerPairs');
const kHeaders = Symbol('ngi.headers');
const kReal = Symbol('ngi.request');

interface StandIn {
  [kEnviron]: Environ;
  [kUrl]: string;
  [kPairs]: HeaderPairs;
  [kHeaders]: Headers | undefined;
  [kReal]: Request | undefined;
}

function realOf(standIn: StandIn): Request {
  return (standIn[kReal] ??= realRequest(
    standIn[kEnviron],
    standIn[kUrl],
    standIn[kHeaders] ?? standIn[kPairs],
  ));
}

const standInPrototype: object = Object.create(Request.prototype, {
  method: {
    get(this: StandIn) {
      return this[kEnviron].REQUEST_METHOD;
    },
  },
  url: {
    get(this: StandIn) {
      return this[kUrl];
    },
  },
  headers: {
    get(this: StandIn) {
      return this[kReal]?.headers ?? (this[kHeaders] ??= new Headers(this[kPairs]));
    },
  },
  signal: {
    get(this: StandIn) {
      return this[kEnviron]['ngi.signal'];
    },
  },
});

function delegate(key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor {
  if (typeof descriptor.value === 'function') {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    return {
      value(this: StandIn, ...args: unknown[]) {
        return method.apply(realOf(this), args);
      },
    };
  }
  return {
    get(this: StandIn) {
      return (realOf(this) as unknown as Record<string | symbol, unknown>)[key];
    },
  };
}

for (const key of Object.getOwnPropertyNames(Request.prototype)) {
  if (key === 'constructor' || Object.hasOwn(standInPrototype, key)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(Request.prototype, key)!;
  Object.defineProperty(standInPrototype, key, delegate(key, descriptor));
}
// Undici reads its private slots (symbols in Node 20) off a Request given to fetch().
for (const key of Object.getOwnPropertySymbols(new Request('http://ngi.invalid/'))) {
  Object.defineProperty(standInPrototype, key, delegate(key, { get: undefined }));
}

function standIn(environ: Environ, url: string, pairs: HeaderPairs): Request {
  const request = Object.create(standInPrototype) as StandIn;
  request[kEnviron] = environ;
  request[kUrl] = url;
  request[kPairs] = pairs;
  request[kHeaders] = undefined;
  request[kReal] = undefined;
  return request as unknown as Request;
}

/**
 * Whether this runtime accepts a stand-in where a Request goes (`new Request(standIn)`,
 * `fetch(standIn)`); where undici checks a private brand instead, real Requests are used.
 */
const STAND_IN_WORKS = ((): boolean => {
  try {
    const probe = Object.create(standInPrototype) as StandIn;
    probe[kReal] = new Request('http://ngi.invalid/probe', { method: 'PUT', headers: { a: 'b' } });
    const copy = new Request(probe as unknown as Request);
    return copy.method === 'PUT' && copy.headers.get('a') === 'b';
  } catch {
    return false;
  }
})();

/** The origin a host reading this Request back finds under `kFetchOrigin`. */
class EnvironOrigin implements FetchOrigin {
  readonly environ: Environ;
  readonly target: string;
  readonly url: string;
  readonly #request: Request;

  constructor(environ: Environ, target: string, url: string, request: Request) {
    this.environ = environ;
    this.target = target;
    this.url = url;
    this.#request = request;
  }

  takeInput(): Readable | undefined {
    // A stand-in whose real Request was never built left the body untouched in the environ.
    const standIn = this.#request as unknown as Partial<StandIn>;
    return kReal in standIn && standIn[kReal] === undefined ? this.environ['ngi.input'] : undefined;
  }
}

/**
 * The Fetch `Request` for an environ: the URL below the mount, end-to-end headers, the body;
 * under `kFetchOrigin`, what it cannot carry.
 */
export function requestFromEnviron(environ: Environ): Request {
  const target = rawTarget(environ);
  const url = requestUrl(environ, target);
  const pairs = headerPairs(environ);
  // What the real constructor would reject was refused by now: the URL by `requestUrl`,
  // header names by `headerName`.
  const request = STAND_IN_WORKS ? standIn(environ, url, pairs) : realRequest(environ, url, pairs);
  Object.defineProperty(request, kFetchOrigin, {
    value: new EnvironOrigin(environ, target, url, request),
  });
  return request;
}

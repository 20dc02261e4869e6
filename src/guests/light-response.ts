// The lightweight `Response` that `ngi serve` installs as the global when it hosts a Hono or
// Fetch app (after @hono/node-server's): `new Response('hi')` keeps the string, and
// `fromHono`/`fromFetch` write it without the web `ReadableStream` undici builds for every body.
const NativeResponse = globalThis.Response;

const TEXT_PLAIN = 'text/plain;charset=UTF-8';
const JSON_TYPE = 'application/json';
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A value `Headers` keeps as it is: no edge whitespace to trim, no control but inner tabs. */
const PLAIN_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

type HeaderPairs = Array<[string, string]>;
type LightBody = string | Uint8Array | null;
type NativeBody = ConstructorParameters<typeof Response>[0];

/** What a light Response holds: what `fromFetch` writes, and what a native one is built from. */
export interface LightParts {
  status: number;
  statusText: string;
  /** Lower-case names, every `Set-Cookie` on its own; the content type defaulted as Fetch does. */
  pairs: HeaderPairs;
  /** The Headers an app was handed, which it may have changed since: they win over `pairs`. */
  headers: Headers | undefined;
  body: LightBody;
}

function isPlainRecord(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return (proto === Object.prototype || proto === null) && !(Symbol.iterator in value);
}

/**
 * The header pairs of a `headers` init, or `undefined` for one only `Headers` can judge (a
 * sequence, odd values, a name twice): those go the native way, which also throws as Fetch does.
 */
function pairsOf(init: unknown): HeaderPairs | undefined {
  const pairs: HeaderPairs = [];
  if (init === undefined || init === null) return pairs;
  if (init instanceof Headers) {
    init.forEach((value, name) => pairs.push([name, value]));
    return pairs;
  }
  if (typeof init !== 'object' || !isPlainRecord(init)) return undefined;
  for (const key in init) {
    const value = init[key];
    if (typeof value !== 'string' || !TOKEN.test(key) || !PLAIN_VALUE.test(value)) return undefined;
    const name = key.toLowerCase();
    for (let i = 0; i < pairs.length; i++) if (pairs[i]![0] === name) return undefined;
    pairs.push([name, value]);
    if (pairs.length > 32) return undefined;
  }
  return pairs;
}

function hasName(pairs: HeaderPairs, name: string): boolean {
  for (let i = 0; i < pairs.length; i++) if (pairs[i]![0] === name) return true;
  return false;
}

/**
 * The parts of `new Response(body, init)` when the body is bytes or text and the init plainly
 * valid; `undefined` otherwise (a stream, a Blob, FormData, a status or header to check), which
 * the native `Response` handles, errors included.
 */
function partsOf(body: unknown, init: unknown, defaultType: string): LightParts | undefined {
  let bytes: LightBody;
  if (body === undefined || body === null) bytes = null;
  else if (typeof body === 'string') bytes = body;
  // Fetch copies a buffer source: a later change to the caller's bytes must not show.
  else if (body instanceof Uint8Array) bytes = new Uint8Array(body);
  else if (body instanceof ArrayBuffer) bytes = new Uint8Array(body.slice(0));
  else return undefined;
  let status = 200;
  let statusText = '';
  let headers: unknown;
  if (init !== undefined && init !== null) {
    if (typeof init !== 'object') return undefined;
    // Read once each, in the order WebIDL reads a dictionary.
    const fields = init as ResponseInit;
    headers = fields.headers;
    const givenStatus = fields.status;
    const givenText = fields.statusText;
    if (givenStatus !== undefined) {
      if (!Number.isInteger(givenStatus) || givenStatus < 200 || givenStatus > 599)
        return undefined;
      status = givenStatus;
    }
    if (givenText !== undefined) {
      if (typeof givenText !== 'string' || !REASON.test(givenText)) return undefined;
      statusText = givenText;
    }
  }
  // A null-body status with a body is the native constructor's TypeError to throw.
  if (bytes !== null && (status === 204 || status === 205 || status === 304)) return undefined;
  const pairs = pairsOf(headers);
  if (pairs === undefined) return undefined;
  if (typeof bytes === 'string' && !hasName(pairs, 'content-type')) {
    pairs.push(['content-type', defaultType]);
  }
  return { status, statusText, pairs, headers: undefined, body: bytes };
}

/** Parts handed from `LightResponse.json` to the constructor, which takes them as they are. */
let prepared: LightParts | undefined;
let partsOfLight: (response: object) => LightParts | undefined;
/** What a subclass instance with a native body holds: nothing (it answers from the native). */
const NOTHING: LightParts = {
  status: 0,
  statusText: '',
  pairs: [],
  headers: undefined,
  body: null,
};
let realOf: (response: LightResponse) => Response;

/**
 * A `Response` that holds a text or bytes body as it is until something needs the native
 * one: `body`, `text()`, `clone()` and the rest build it then, so apps see a Response in every
 * way (`instanceof Response`, `Object.prototype.toString`, the statics); `status`, `headers`
 * and the like are answered from what it holds. Any other body or init is native outright.
 *
 * @example
 * installLightResponse();
 * const response = new Response('hi'); // light; response.body builds the native stream
 */
export class LightResponse {
  /** What it holds; `headers` there is the Headers handed out (live until sent). */
  #parts!: LightParts;
  /** The native Response, once a member needs it (or from the start for a subclass's odd body). */
  #native: Response | undefined = undefined;

  constructor(body: NativeBody = null, init: ResponseInit | undefined = undefined) {
    const parts = prepared ?? partsOf(body, init, TEXT_PLAIN);
    prepared = undefined;
    if (parts === undefined) {
      const native = new NativeResponse(body, init);
      // Nothing light to hold: the real thing, unless a subclass needs its own prototype.
      if (new.target === LightResponse) return native as unknown as LightResponse;
      this.#native = native;
    }
    this.#parts = parts ?? NOTHING;
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    // A native Response (`Response.error()`, a stream body) is a Response too.
    if (this === LightResponse) return value instanceof NativeResponse;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  static {
    realOf = (response) => response.#real();
    partsOfLight = (response) =>
      #native in response && response.#native === undefined ? response.#parts : undefined;
  }

  /** `Response.json(data, init)`, light when `new Response(text, init)` would be. */
  static json(data: unknown, init?: ResponseInit): Response {
    const text = arguments.length === 0 ? undefined : JSON.stringify(data);
    const parts = text === undefined ? undefined : partsOf(text, init, JSON_TYPE);
    // Not serialisable, or an init to check: the native method throws or answers.
    if (parts === undefined) return NativeResponse.json(data, init);
    prepared = parts;
    return new LightResponse(null) as unknown as Response;
  }

  /** The native Response this one stands for (built on first need, from the live headers). */
  #real(): Response {
    const parts = this.#parts;
    return (this.#native ??= new NativeResponse(parts.body, {
      status: parts.status,
      statusText: parts.statusText,
      headers: parts.headers ?? parts.pairs,
    }));
  }

  get status(): number {
    return this.#native?.status ?? this.#parts.status;
  }

  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status < 300;
  }

  get statusText(): string {
    return this.#native?.statusText ?? this.#parts.statusText;
  }

  get headers(): Headers {
    // Kept once handed out, so `response.headers === response.headers` as on a native one.
    const parts = this.#parts;
    return (parts.headers ??= this.#native?.headers ?? new Headers(parts.pairs));
  }

  get type(): Response['type'] {
    return this.#native?.type ?? 'default';
  }

  get url(): string {
    return this.#native?.url ?? '';
  }

  get redirected(): boolean {
    return this.#native?.redirected ?? false;
  }

  get bodyUsed(): boolean {
    return this.#native?.bodyUsed ?? false;
  }
}

// Everything else (body, clone, text, json, arrayBuffer, blob, formData, bytes, and what a
// later Node adds) is the native member, on the native Response.
const own = new Set(Object.getOwnPropertyNames(LightResponse.prototype));
for (const key of Object.getOwnPropertyNames(NativeResponse.prototype)) {
  if (own.has(key)) continue;
  const descriptor = Object.getOwnPropertyDescriptor(NativeResponse.prototype, key)!;
  if (typeof descriptor.value === 'function') {
    const method = descriptor.value as (...args: unknown[]) => unknown;
    Object.defineProperty(LightResponse.prototype, key, {
      value(this: LightResponse, ...args: unknown[]) {
        return method.apply(realOf(this), args);
      },
      writable: true,
      configurable: true,
    });
  } else if (descriptor.get !== undefined) {
    const get = descriptor.get;
    Object.defineProperty(LightResponse.prototype, key, {
      get(this: LightResponse) {
        return get.call(realOf(this));
      },
      configurable: true,
    });
  }
}
Object.setPrototypeOf(LightResponse.prototype, NativeResponse.prototype);
Object.setPrototypeOf(LightResponse, NativeResponse);
Object.defineProperty(LightResponse, 'name', { value: 'Response' });

/**
 * What a light Response holds, while nothing has built its native one (its body is still the
 * text or bytes it was given); `undefined` for any other Response.
 *
 * @example
 * const parts = lightPartsOf(response);
 * if (parts !== undefined) write(parts.status, parts.pairs, parts.body);
 */
export function lightPartsOf(response: object): LightParts | undefined {
  return partsOfLight(response);
}

/**
 * Makes `LightResponse` the global `Response` (what `ngi serve` does for a Hono or Fetch app,
 * as @hono/node-server does; a library must never). Idempotent.
 *
 * @example
 * installLightResponse();
 * new Response('hi') instanceof Response; // true
 */
export function installLightResponse(): void {
  if (globalThis.Response === (LightResponse as unknown)) return;
  Object.defineProperty(globalThis, 'Response', {
    value: LightResponse,
    writable: true,
    enumerable: false,
    configurable: true,
  });
}

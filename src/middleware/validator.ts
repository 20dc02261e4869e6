import {
  CR_LF_NUL,
  TOKEN,
  UNSENDABLE,
  contentLength,
  isBodiless,
  isHopByHop,
  isInformational,
  statusCode,
} from '../core/rules.js';
import { Readable } from 'node:stream';
import { defineApp } from '../core/define-app.js';
import { NgiError, formatError } from '../core/errors.js';
import type {
  App,
  Body,
  Chunk,
  EarlyHints,
  Environ,
  Headers,
  ResponseTrailers,
  StartResponse,
  Upgrade,
  Write,
} from '../core/types.js';

/** Options of {@link validator}. */
export interface ValidatorOptions {
  /**
   * How long the server has, once the exchange is over (the body ended or failed, the server
   * called `return()`, or the client went away), to call the body's `close()`. Default 1000 ms.
   */
  closeTimeout?: number;
  /**
   * Called with every violation, by either side, as it is found (a test collects them here).
   * Without it, a violation that has nobody to be thrown at (a body never closed) is written
   * to `ngi.errors`; the others are thrown, and the host logs them.
   */
  onViolation?: (error: NgiError, environ: Environ) => void;
}

const STRING_KEYS = [
  'SERVER_NAME',
  'SERVER_PORT',
  'SERVER_PROTOCOL',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'REQUEST_URI',
] as const;
const BOOLEAN_KEYS = ['ngi.multiprocess', 'ngi.multithread', 'ngi.run_once'] as const;
const DONE: IteratorResult<Chunk> = { done: true, value: undefined };

function violation(rule: string): NgiError {
  return new NgiError('NGI_ERR_VALIDATION', `validator: ${rule}`);
}

function isChunk(chunk: unknown): chunk is Chunk {
  return typeof chunk === 'string' || chunk instanceof Uint8Array;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** A value, short, for a message. */
function show(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  }
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value)
    ? 'an array'
    : `an object (${value.constructor?.name ?? 'null prototype'})`;
}

function fail(environ: Environ, key: string, rule: string): never {
  throw violation(`environ ${key} ${rule} (got ${show(environ[key])})`);
}

/** The server's side of the call: the environ it built and the `startResponse` it passed. */
function checkServerCall(environ: Environ, startResponse: unknown): void {
  if (environ === null || typeof environ !== 'object') throw violation('environ is not an object');
  const method = environ.REQUEST_METHOD;
  if (typeof method !== 'string' || !TOKEN.test(method))
    fail(environ, 'REQUEST_METHOD', 'must be a non-empty token');
  const script = environ.SCRIPT_NAME;
  if (typeof script !== 'string' || (script !== '' && (script[0] !== '/' || script.endsWith('/'))))
    fail(environ, 'SCRIPT_NAME', `must be '' or start with '/' and not end with '/'`);
  const path = environ.PATH_INFO;
  if (typeof path !== 'string' || (path !== '' && path[0] !== '/'))
    fail(environ, 'PATH_INFO', `must be '' or start with '/'`);
  const query = environ.QUERY_STRING;
  if (typeof query !== 'string' || query[0] === '?')
    fail(environ, 'QUERY_STRING', `must be a string without the leading '?'`);
  const length = environ.CONTENT_LENGTH;
  if (length !== undefined && (typeof length !== 'string' || contentLength(length) === -1))
    fail(environ, 'CONTENT_LENGTH', 'must be digits, or absent when the request has no body');
  if (environ.CONTENT_TYPE !== undefined && typeof environ.CONTENT_TYPE !== 'string')
    fail(environ, 'CONTENT_TYPE', 'must be a string, or absent');
  for (const key of STRING_KEYS)
    if (typeof environ[key] !== 'string') fail(environ, key, 'must be a string');
  for (const key of ['HTTP_CONTENT_TYPE', 'HTTP_CONTENT_LENGTH']) {
    if (key in environ) fail(environ, key, `must not exist (its CGI key is ${key.slice(5)})`);
  }
  for (const key in environ) {
    if (key.startsWith('HTTP_') && typeof environ[key] !== 'string')
      fail(environ, key, 'must be a string');
  }
  const version = environ['ngi.version'] as unknown;
  if (!Array.isArray(version) || version.length !== 2 || version[0] !== 1 || version[1] !== 0)
    fail(environ, 'ngi.version', 'must be [1, 0]');
  const scheme = environ['ngi.url_scheme'];
  if (scheme !== 'http' && scheme !== 'https')
    fail(environ, 'ngi.url_scheme', `must be 'http' or 'https'`);
  if (environ.HTTPS !== undefined && (environ.HTTPS !== 'on' || scheme !== 'https'))
    fail(environ, 'HTTPS', `must be 'on' with ngi.url_scheme 'https', or absent`);
  if (!(environ['ngi.input'] instanceof Readable)) fail(environ, 'ngi.input', 'must be a Readable');
  const errors = environ['ngi.errors'] as { write?: unknown } | null | undefined;
  if (typeof errors?.write !== 'function')
    fail(environ, 'ngi.errors', 'must have a write() method');
  for (const key of BOOLEAN_KEYS)
    if (typeof environ[key] !== 'boolean') fail(environ, key, 'must be a boolean');
  if (!(environ['ngi.signal'] instanceof AbortSignal))
    fail(environ, 'ngi.signal', 'must be an AbortSignal');
  const hints = environ['ngi.early_hints'];
  if (hints !== undefined && typeof hints !== 'function')
    fail(environ, 'ngi.early_hints', 'must be a function, or absent');
  const trailers = environ['ngi.trailers'] as Partial<ResponseTrailers> | null | undefined;
  if (
    trailers !== undefined &&
    (typeof trailers?.announce !== 'function' || typeof trailers.send !== 'function')
  ) {
    fail(environ, 'ngi.trailers', 'must be { announce(), send() }, or absent');
  }
  const upgrade = environ['ngi.upgrade'] as Partial<Upgrade> | null | undefined;
  if (
    upgrade !== undefined &&
    (typeof upgrade?.protocol !== 'string' ||
      !Array.isArray(upgrade.subprotocols) ||
      typeof upgrade.acceptWebSocket !== 'function' ||
      typeof upgrade.acceptConnection !== 'function')
  ) {
    fail(
      environ,
      'ngi.upgrade',
      'must be { protocol, subprotocols, acceptWebSocket(), acceptConnection() }, or absent',
    );
  }
  if (typeof startResponse !== 'function') throw violation('startResponse is not a function');
}

/**
 * The state of one exchange as the validator sees it, between an app and the server that
 * hosts it. A violation by the app is thrown at the app and also fails the body (so an app
 * that swallows the error still gets a 500); a violation by the server is thrown at the server.
 */
class Check {
  readonly environ: Environ;
  readonly options: ValidatorOptions;
  readonly isHead: boolean;
  readonly startResponse: StartResponse;
  readonly write: Write & { flushHead?: () => void };
  private readonly serverStart: StartResponse;
  private serverWrite: Write | undefined = undefined;
  private started = false;
  /** The app took the connection through `ngi.upgrade`: no HTTP response is owed any more. */
  private upgraded = false;
  private bodiless = false;
  /** Declared `Content-Length`, or -1. */
  private declared = -1;
  private sent = 0;
  /** A non-empty chunk reached the server, or it flushed the head: the head is out (rule 2). */
  private headOut = false;
  private yielded = false;
  /** The body ended, failed, or (an array) was handed over whole: the app has no more to say. */
  private finished = false;
  private wrapped = false;
  closed = false;
  /** The first violation by the app: the body fails with it even if the app caught it. */
  broken: NgiError | undefined = undefined;
  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
  private readonly signal: AbortSignal;

  constructor(environ: Environ, serverStart: StartResponse, options: ValidatorOptions) {
    this.environ = environ;
    this.options = options;
    this.isHead = environ.REQUEST_METHOD === 'HEAD';
    this.serverStart = serverStart;
    this.startResponse = (status, headers, excInfo) => this.start(status, headers, excInfo);
    this.write = (chunk) => this.put(chunk);
    this.signal = environ['ngi.signal'];
    this.signal.addEventListener('abort', this.onAbort);
    const upgrade = environ['ngi.upgrade'];
    if (upgrade !== undefined) environ['ngi.upgrade'] = this.watchUpgrade(upgrade);
    const hints = environ['ngi.early_hints'];
    if (hints !== undefined) environ['ngi.early_hints'] = this.watchEarlyHints(hints);
    const trailers = environ['ngi.trailers'];
    if (trailers !== undefined) environ['ngi.trailers'] = this.watchTrailers(trailers);
  }

  /** Trailer names the app announced, lower-cased. */
  private trailerNames: string[] | undefined = undefined;

  /** `ngi.early_hints` as the app sees it: only before the head, and with a Link. */
  private watchEarlyHints(hints: EarlyHints): EarlyHints {
    return (headers) => {
      if (this.headOut || this.finished) {
        return Promise.reject(this.appViolation('early hints after the response head went out'));
      }
      if (!Array.isArray(headers) || !headers.some((h) => /^link$/i.test(String(h?.[0])))) {
        return Promise.reject(this.appViolation('early hints without a Link header'));
      }
      return hints(headers);
    };
  }

  /** `ngi.trailers` as the app sees it: announce before the head, send announced names before the end. */
  private watchTrailers(trailers: ResponseTrailers): ResponseTrailers {
    return {
      announce: (names) => {
        if (this.headOut || this.finished) {
          throw this.appViolation('trailers announced after the response head went out');
        }
        if (this.started && this.declared >= 0) {
          throw this.appViolation('trailers announced on a response with a Content-Length');
        }
        trailers.announce(names);
        this.trailerNames = names.map((n) => n.toLowerCase());
      },
      send: (headers) => {
        if (this.finished) throw this.appViolation('trailers sent after the body ended');
        const names = this.trailerNames;
        if (names === undefined) throw this.appViolation('trailers sent without announce()');
        for (const pair of Array.isArray(headers) ? headers : []) {
          const name = String(pair?.[0]).toLowerCase();
          if (!names.includes(name)) throw this.appViolation(`trailer ${name} was not announced`);
        }
        trailers.send(headers);
      },
    };
  }

  /** `ngi.upgrade` as the app sees it: an accept after `startResponse` is a violation. */
  private watchUpgrade(upgrade: Upgrade): Upgrade {
    const take = (what: string): void => {
      if (this.started)
        throw this.appViolation(`${what} after startResponse: refuse or accept, not both`);
      this.upgraded = true;
    };
    return {
      protocol: upgrade.protocol,
      subprotocols: upgrade.subprotocols,
      acceptWebSocket: (options) => {
        take('acceptWebSocket');
        return upgrade.acceptWebSocket(options);
      },
      acceptConnection: (options) => {
        take('acceptConnection');
        return upgrade.acceptConnection(options);
      },
    };
  }

  private report(error: NgiError, thrown: boolean): NgiError {
    const onViolation = this.options.onViolation;
    if (onViolation !== undefined) onViolation(error, this.environ);
    else if (!thrown) {
      const where = `${this.environ.REQUEST_METHOD} ${this.environ.REQUEST_URI}`;
      this.environ['ngi.errors'].write(formatError(error, where));
    }
    return error;
  }

  /** A violation by the app: reported, remembered, and returned to be thrown. */
  appViolation(rule: string): NgiError {
    const error = this.report(violation(rule), true);
    this.broken ??= error;
    return error;
  }

  /** A violation by the server: reported and returned to be thrown at it. */
  serverViolation(rule: string): NgiError {
    return this.report(violation(rule), true);
  }

  private start(status: string, headers: Headers, excInfo?: unknown): Write {
    const replacing = excInfo !== undefined && excInfo !== null;
    if (this.started && !replacing) {
      throw this.appViolation('startResponse called twice without excInfo');
    }
    if (this.upgraded) {
      throw this.appViolation('startResponse after the upgrade was accepted');
    }
    if (statusCode(status, true) === -1) {
      throw this.appViolation(
        `status ${show(status)} is not "NNN reason" (three digits, a space, a reason)`,
      );
    }
    if (isInformational(statusCode(status))) {
      throw this.appViolation(
        `status ${show(status)} is informational: a final response cannot be 1xx`,
      );
    }
    const declared = this.checkHeaders(headers);
    if (declared >= 0 && this.trailerNames !== undefined) {
      throw this.appViolation('a Content-Length on a response whose trailers were announced');
    }
    const headOut = this.headOut;
    // Throws excInfo itself when the head is out: that is the contract, passed on untouched.
    const write = this.serverStart(status, headers, excInfo);
    if (replacing && headOut) {
      throw this.serverViolation(
        'startResponse with excInfo after the head was sent returned instead of rethrowing excInfo',
      );
    }
    if (typeof write !== 'function') {
      throw this.serverViolation('startResponse returned no write function');
    }
    const code = +status.slice(0, 3);
    this.started = true;
    this.bodiless = isBodiless(code, this.isHead);
    this.declared = declared;
    this.serverWrite = write;
    const flushHead = (write as { flushHead?: unknown }).flushHead;
    // A host extension (a Node handler's flushHeaders()): pass it on, and note the head is out.
    if (typeof flushHead === 'function') {
      this.write.flushHead = () => {
        this.headOut = true;
        flushHead.call(write);
      };
    }
    return this.write;
  }

  /** Checks every pair; returns the declared `Content-Length`, or -1. */
  private checkHeaders(headers: Headers): number {
    if (!Array.isArray(headers)) {
      throw this.appViolation(`headers is ${show(headers)}, not an array of [name, value] pairs`);
    }
    let declared = -1;
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i] as unknown;
      if (
        !Array.isArray(pair) ||
        pair.length !== 2 ||
        typeof pair[0] !== 'string' ||
        typeof pair[1] !== 'string'
      ) {
        throw this.appViolation(`header ${i} is not a [string, string] pair`);
      }
      const [name, value] = pair as [string, string];
      if (!TOKEN.test(name)) {
        throw this.appViolation(`header name ${JSON.stringify(name)} is not a token`);
      }
      if (CR_LF_NUL.test(value)) {
        throw this.appViolation(`header ${name} value holds CR, LF or NUL`);
      }
      if (UNSENDABLE.test(value)) {
        throw this.appViolation(
          `header ${name} value holds a control character or one above U+00FF`,
        );
      }
      const lower = name.toLowerCase();
      if (isHopByHop(lower)) {
        throw this.appViolation(`hop-by-hop header ${name} set by the app (the server owns it)`);
      }
      if (lower === 'status') {
        throw this.appViolation('a Status header (nginx and CGI servers take it as the status)');
      }
      if (lower === 'content-length') {
        const length = contentLength(value);
        if (length === -1) {
          throw this.appViolation(`Content-Length ${JSON.stringify(value)} is not digits`);
        }
        if (declared >= 0 && length !== declared) {
          throw this.appViolation('two different Content-Length headers');
        }
        declared = length;
      }
    }
    return declared;
  }

  /** Counts a chunk the server receives; throws when it overruns `Content-Length`. */
  private count(chunk: Chunk): void {
    if (chunk.length === 0) return;
    this.headOut = true;
    if (this.declared < 0 || this.bodiless) return;
    this.sent += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (this.sent > this.declared) {
      throw this.appViolation(`the body is longer than its Content-Length (${this.declared})`);
    }
  }

  private checkEnd(): void {
    if (!this.started && !this.upgraded) {
      throw this.appViolation('the body ended and startResponse was never called');
    }
    if (this.declared >= 0 && !this.bodiless && this.sent < this.declared) {
      throw this.appViolation(
        `the body ended after ${this.sent} of the ${this.declared} bytes its Content-Length declares`,
      );
    }
  }

  private checkChunk(chunk: unknown): asserts chunk is Chunk {
    if (!isChunk(chunk)) {
      throw this.appViolation(
        `a body chunk is neither a string nor a Uint8Array (got ${show(chunk)})`,
      );
    }
    if (!this.started) {
      throw this.appViolation(
        this.upgraded
          ? 'a body chunk after the upgrade was accepted (the connection carries another protocol)'
          : 'a body chunk came before startResponse was called',
      );
    }
  }

  private put(chunk: Chunk): Promise<void> {
    let rule: string | undefined;
    if (this.closed) rule = 'write() called after the body was closed';
    else if (this.finished) rule = 'write() called after the body ended';
    else if (this.yielded) rule = 'write() called after the body began yielding chunks';
    else if (!isChunk(chunk)) {
      rule = `write() given a chunk that is neither a string nor a Uint8Array (got ${show(chunk)})`;
    }
    if (rule !== undefined) return Promise.reject(this.appViolation(rule));
    if (this.broken !== undefined) return Promise.reject(this.broken);
    try {
      this.count(chunk);
    } catch (error) {
      return Promise.reject(error);
    }
    // The server's own promise, untouched: hosts compare it by identity for their fast path.
    const result = this.serverWrite!(chunk);
    if (!isPromise(result)) {
      return Promise.reject(this.serverViolation('write() did not return a promise'));
    }
    return result;
  }

  /** One step the body's iterator gave: checked, then passed on as it is. */
  step(step: IteratorResult<unknown>): IteratorResult<Chunk> {
    if (this.broken !== undefined) {
      this.end();
      throw this.broken;
    }
    try {
      if (step === null || typeof step !== 'object') {
        throw this.appViolation(`the body iterator's next() gave ${show(step)}, not a result`);
      }
      if (step.done === true) {
        this.end();
        this.checkEnd();
        return step as IteratorResult<Chunk>;
      }
      this.checkChunk(step.value);
      this.count(step.value);
    } catch (error) {
      this.end();
      throw error;
    }
    this.yielded = true;
    return step as IteratorResult<Chunk>;
  }

  /** The body is over from the app's side: from now on the server owes a `close()`. */
  end(): void {
    this.finished = true;
    this.arm();
  }

  /** Starts the clock on the server's `close()` (once). */
  arm(): void {
    if (this.closed || this.timer !== undefined) return;
    const timeout = this.options.closeTimeout ?? 1000;
    this.timer = setTimeout(this.onLate, timeout);
    // A validator must not keep a process alive that would otherwise exit.
    this.timer.unref();
  }

  private readonly onLate = (): void => {
    if (this.closed) return;
    const timeout = this.options.closeTimeout ?? 1000;
    this.report(
      violation(`the server did not call the body's close() within ${timeout} ms of the end`),
      false,
    );
  };

  private readonly onAbort = (): void => {
    if (this.wrapped) this.arm();
  };

  /** The server's `close()`: exactly once, passed on to the app's body if it has one. */
  close(source: unknown): unknown {
    if (this.closed) throw this.serverViolation(`the body's close() called twice`);
    this.closed = true;
    this.dispose();
    const close = (source as { close?: unknown }).close;
    return typeof close === 'function' ? close.call(source) : undefined;
  }

  /** Nothing more to watch: no timer, no listener left behind. */
  dispose(): void {
    clearTimeout(this.timer);
    this.signal.removeEventListener('abort', this.onAbort);
  }

  /** Checks what the app returned and hands the server a body that checks both sides. */
  wrap(body: unknown): Body {
    if (this.broken !== undefined) throw this.broken;
    let wrapped: Body;
    if (Array.isArray(body)) wrapped = this.wrapArray(body);
    else if (typeof body === 'string') {
      throw this.appViolation('the body is a string, iterable per character: return [string]');
    } else if (body instanceof Uint8Array) {
      throw this.appViolation('the body is a Uint8Array, iterable per byte: return [bytes]');
    } else if (
      body !== null &&
      typeof body === 'object' &&
      typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
    ) {
      wrapped = new AsyncBody(this, body as AsyncIterable<unknown>);
    } else if (
      body !== null &&
      typeof body === 'object' &&
      typeof (body as Iterable<unknown>)[Symbol.iterator] === 'function'
    ) {
      wrapped = new SyncBody(this, body as Iterable<unknown>);
    } else {
      throw this.appViolation(`the body is not iterable (got ${show(body)})`);
    }
    this.wrapped = true;
    if (this.signal.aborted) this.arm();
    return wrapped;
  }

  /**
   * An array is checked whole, and stays an array (a proxy) so the server still computes its
   * `Content-Length`: the response is the same bytes with or without the validator.
   */
  private wrapArray(chunks: unknown[]): Body {
    for (let i = 0; i < chunks.length; i++) {
      this.checkChunk(chunks[i]);
      this.count(chunks[i] as Chunk);
    }
    this.checkEnd();
    this.finished = true;
    return new Proxy(chunks, new ArrayBody(this, chunks)) as Chunk[];
  }
}

/**
 * The app's iterator. A factory that throws fails the first `next()` instead: servers call it
 * outside their error handling, where a throw would escape the request.
 */
function iteratorOf(
  source: object,
  key: symbol,
): { next(): unknown; return?(value?: unknown): unknown } {
  try {
    return (source as Record<symbol, () => { next(): unknown }>)[key]!();
  } catch (error) {
    return {
      next: () => {
        throw error;
      },
    };
  }
}

/** Watches the server read an array body: once it reads the last chunk, it owes a `close()`. */
class ArrayBody implements ProxyHandler<unknown[]> {
  private readonly check: Check;
  private readonly last: string;
  private readonly close: () => unknown;

  constructor(check: Check, chunks: unknown[]) {
    this.check = check;
    this.last = chunks.length === 0 ? 'length' : String(chunks.length - 1);
    this.close = () => check.close(chunks);
  }

  get(target: unknown[], key: string | symbol, receiver: unknown): unknown {
    if (key === 'close') return this.close;
    if (key === this.last) this.check.arm();
    return Reflect.get(target, key, receiver);
  }
}

/** A sync iterable body, still sync: the server pulls it in a loop without awaiting. */
class SyncBody implements IterableIterator<Chunk> {
  private readonly check: Check;
  private readonly source: Iterable<unknown>;
  private iterator: Iterator<unknown> | undefined = undefined;

  constructor(check: Check, source: Iterable<unknown>) {
    this.check = check;
    this.source = source;
  }

  [Symbol.iterator](): this {
    this.open();
    return this;
  }

  private open(): Iterator<unknown> {
    return (this.iterator ??= iteratorOf(this.source, Symbol.iterator) as Iterator<unknown>);
  }

  next(): IteratorResult<Chunk> {
    const check = this.check;
    if (check.closed) throw check.serverViolation('next() called after close()');
    if (check.broken !== undefined) {
      check.end();
      throw check.broken;
    }
    let step: IteratorResult<unknown>;
    try {
      step = this.open().next();
    } catch (error) {
      check.end();
      throw error;
    }
    return check.step(step);
  }

  return(value?: unknown): IteratorResult<Chunk> {
    this.check.arm();
    const result = this.iterator?.return?.(value);
    return (result as IteratorResult<Chunk> | undefined) ?? DONE;
  }

  close(): unknown {
    return this.check.close(this.source);
  }
}

/** An async iterable body: one `next()` at a time, nothing pulled ahead (backpressure kept). */
class AsyncBody implements AsyncIterableIterator<Chunk> {
  private readonly check: Check;
  private readonly source: AsyncIterable<unknown>;
  private iterator: AsyncIterator<unknown> | undefined = undefined;
  private pending = false;

  constructor(check: Check, source: AsyncIterable<unknown>) {
    this.check = check;
    this.source = source;
  }

  [Symbol.asyncIterator](): this {
    this.open();
    return this;
  }

  private open(): AsyncIterator<unknown> {
    return (this.iterator ??= iteratorOf(
      this.source,
      Symbol.asyncIterator,
    ) as AsyncIterator<unknown>);
  }

  next(): Promise<IteratorResult<Chunk>> {
    const check = this.check;
    if (check.closed) return Promise.reject(check.serverViolation('next() called after close()'));
    if (this.pending) {
      return Promise.reject(
        check.serverViolation('next() called while the previous next() is still pending'),
      );
    }
    if (check.broken !== undefined) {
      check.end();
      return Promise.reject(check.broken);
    }
    let result: Promise<IteratorResult<unknown>>;
    try {
      result = this.open().next();
    } catch (error) {
      check.end();
      return Promise.reject(error);
    }
    this.pending = true;
    return Promise.resolve(result).then(this.onStep, this.onError);
  }

  private readonly onStep = (step: IteratorResult<unknown>): IteratorResult<Chunk> => {
    this.pending = false;
    return this.check.step(step);
  };

  private readonly onError = (error: unknown): never => {
    this.pending = false;
    this.check.end();
    throw error;
  };

  return(value?: unknown): Promise<IteratorResult<Chunk>> {
    this.check.arm();
    const result = this.iterator?.return?.(value);
    return Promise.resolve((result ?? DONE) as IteratorResult<Chunk>);
  }

  close(): unknown {
    return this.check.close(this.source);
  }
}

/**
 * Wraps an app and fails loudly, with an `NgiError` coded `NGI_ERR_VALIDATION` whose message
 * names the rule, on every contract violation by either side, after Python's `wsgiref.validate`.
 *
 * - The app: `startResponse` missing or called twice without `excInfo`, a status that is not
 *   `"NNN reason"`, headers that are not `[string, string]` pairs, names that are not tokens,
 *   values with CR/LF/NUL, hop-by-hop headers, chunks that are neither string nor `Uint8Array`,
 *   a body longer or shorter than its `Content-Length`, `write()` after the body began yielding,
 *   ended or was closed, a body that is not iterable (or is a string). The error is thrown
 *   where the app made the mistake and also fails the body, so the host answers 500 (or aborts
 *   the connection once the head is out) and logs the rule.
 * - The server: an environ with a missing or mistyped key, a `next()` pulled while the previous
 *   one is pending or after `close()`, `close()` called twice or not within `closeTimeout` of the
 *   end, a `startResponse(…, excInfo)` after the head that does not rethrow. The error is thrown
 *   at the server, or (a missing `close()`) reported to `onViolation` or `ngi.errors`.
 *
 * `write()` while the server awaits the body's first chunk is allowed: that is how a push-style
 * app (a Node handler on ngi's emulation) answers. Every chunk passes through unchanged, a sync
 * body stays sync and an array stays an array, so responses are byte-identical without it.
 *
 * Because it wraps `startResponse`, a Node handler below it (`fromNodeHandler(expressApp)`)
 * runs on the emulated `req`/`res` rather than the native fast path: wrapping one is the
 * documented way to test that emulation against the contract.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { validator } from 'ngi-gateway';
 * import { fromNodeHandler, toNodeHandler } from 'ngi-gateway/node';
 * const violations: Error[] = [];
 * const app = validator(fromNodeHandler(expressApp), { onViolation: (e) => violations.push(e) });
 * createServer(toNodeHandler(app)).listen(8080, '127.0.0.1');
 */
export function validator(app: App, options: ValidatorOptions = {}): App {
  if (typeof app !== 'function') throw new TypeError('validator: the app is not a function');
  return defineApp((environ: Environ, startResponse: StartResponse) => {
    try {
      checkServerCall(environ, startResponse);
    } catch (error) {
      options.onViolation?.(error as NgiError, environ);
      throw error;
    }
    const check = new Check(environ, startResponse, options);
    let body: Body | Promise<Body>;
    try {
      body = app(environ, check.startResponse);
      if (!isPromise(body)) return check.wrap(body);
    } catch (error) {
      check.dispose();
      throw error;
    }
    return body.then(
      (resolved) => {
        try {
          return check.wrap(resolved);
        } catch (error) {
          check.dispose();
          throw error;
        }
      },
      (error: unknown) => {
        check.dispose();
        throw error;
      },
    );
  });
}

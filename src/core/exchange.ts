import {
  CR_LF_NUL,
  TOKEN,
  contentLength,
  isBodiless,
  isForbiddenTrailer,
  isHopByHop,
  isInformational,
  statusCode,
} from './rules.js';
import { STATUS_CODES } from 'node:http';
import { NgiError, formatError, httpAnswerOf } from './errors.js';
import type {
  Body,
  Chunk,
  Environ,
  Headers,
  ResponseTrailers,
  StartResponse,
  Write,
} from './types.js';

/**
 * Where a response goes: a Node `ServerResponse`, a raw uwsgi socket, a Fetch `ReadableStream`.
 * The engine owns every rule of the contract; a sink only moves bytes.
 */
export interface ResponseSink {
  /**
   * Sends status and headers. `addLength >= 0` asks the sink to add that `Content-Length`
   * (the engine computed it); `-1` leaves the headers as they are (declared or unknown length).
   * Either way the engine holds the whole body when `addLength >= 0` or `whole` (a finished
   * array, with its length computed or declared): every chunk follows synchronously, then
   * `end()` or `abort()`, so a sink may gather them into one payload.
   */
  head(code: number, reason: string, headers: Headers, addLength: number, whole?: boolean): void;
  /** Writes a chunk of the body; `false` when the transport is over its high-water mark. */
  write(chunk: Chunk): boolean;
  /** Ends the response, with an optional last chunk. */
  end(chunk?: Chunk): void;
  /** Resolves when writes may resume, or when the transport is gone. */
  drain(): Promise<void>;
  /** Tears the connection down so the client sees an incomplete response. */
  abort(error: Error): void;
  /** Sends a 103 with these (checked) headers; only sinks whose host offers `ngi.early_hints`. */
  earlyHints?(headers: Headers): Promise<void>;
  /** Sets the trailers written by the next `end`; only sinks whose host offers `ngi.trailers`. */
  trailers?(headers: Headers): void;
  /** True once the client went away or the transport closed. */
  readonly closed: boolean;
  /** True once the head is on its way (also when a native handler sent it on a fast path). */
  readonly headersSent: boolean;
}

/** What `write` returns when the chunk went out without backpressure (compare by identity). */
export const RESOLVED: Promise<void> = Promise.resolve();
/** Header names already found valid: apps send the same few names on every response. */
const validNames = new Set<string>();

function byteLength(chunk: Chunk): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
}

function isChunk(chunk: unknown): chunk is Chunk {
  return typeof chunk === 'string' || chunk instanceof Uint8Array;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

const enum Phase {
  /** startResponse not called yet */
  Idle,
  /** status and headers chosen, nothing on the wire */
  Started,
  /** head written */
  Sent,
  /** response complete, failed or abandoned */
  Done,
}

/**
 * One request/response exchange: the `startResponse` state machine, lazy headers, body
 * consumption with backpressure, `Content-Length` rules, bodiless responses, and the single
 * place where failures become a 500 or an aborted connection.
 */
export class Exchange {
  readonly environ: Environ;
  readonly sink: ResponseSink;
  /** Fires `ngi.signal`: an `AbortController` or a `LazySignal`. */
  readonly controller: { abort(reason?: unknown): void };
  phase: Phase = Phase.Idle;
  /** Set by a host fast path that answers on the native response itself (see `handOff`). */
  handedOff = false;
  /**
   * Set when the connection switched protocols (a WebSocket, a raw upgrade): the request part
   * is over, so no time limit applies; the exchange ends when the connection closes.
   */
  upgraded = false;
  code = 0;
  reason = '';
  headers: Headers = [];
  /** Declared `Content-Length`, or -1. */
  declared = -1;
  sent = 0;
  bodiless = false;
  readonly isHead: boolean;
  /** Called instead of answering 500 when the app fails before the head (connect's `next(err)`). */
  onFailure: ((error: unknown) => void) | undefined = undefined;
  /** Resolves when the exchange is done, for hosts that track in-flight requests. */
  onDone: (() => void) | undefined = undefined;
  readonly startResponse: StartResponse;
  private iterator: Iterator<unknown> | AsyncIterator<unknown> | undefined = undefined;
  private body: unknown = undefined;
  private released = false;
  private writeFn: Write | undefined = undefined;
  /** Names announced through `ngi.trailers`, lower-cased, or undefined. */
  private trailerNames: string[] | undefined = undefined;
  private trailerValues: Headers | undefined = undefined;

  constructor(environ: Environ, sink: ResponseSink, controller: { abort(reason?: unknown): void }) {
    this.environ = environ;
    this.sink = sink;
    this.controller = controller;
    this.isHead = environ.REQUEST_METHOD === 'HEAD';
    this.startResponse = (status, headers, excInfo) => this.start(status, headers, excInfo);
  }

  /** The exchange is over: the response ended (or was abandoned) and the body was closed. */
  get finished(): boolean {
    return this.released;
  }

  /**
   * Lets a native handler answer on the host's own response: only while nothing has been
   * started, so a response is never written from two sides.
   */
  handOff(): boolean {
    if (this.phase !== Phase.Idle) return false;
    this.handedOff = true;
    return true;
  }

  /** The native handler that took this exchange over (see `handOff`) is done answering. */
  handOffDone(): void {
    if (this.handedOff) this.release();
  }

  /** Runs the app to completion; returns a promise only when something had to wait. */
  run(
    app: (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>,
  ): void | Promise<void> {
    let body: Body | Promise<Body>;
    try {
      body = app(this.environ, this.startResponse);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (isPromise(body)) {
      return body.then(
        (resolved) => this.consume(resolved),
        (error: unknown) => this.fail(error),
      );
    }
    return this.consume(body);
  }

  private start(status: string, headers: Headers, excInfo?: unknown): Write {
    // Over (client gone, timed out): say so, rather than blame the app for a second call.
    if (this.phase === Phase.Done) throw new NgiError('NGI_ERR_CLIENT_GONE');
    if (this.upgraded) throw new NgiError('NGI_ERR_UPGRADED');
    if (excInfo !== undefined && excInfo !== null) {
      // After the head is out an error page is impossible: abort (even if the app goes on
      // after catching) so the client never takes the broken response for a complete one.
      if (this.phase === Phase.Sent) this.fail(excInfo);
      if (this.phase >= Phase.Sent) throw excInfo;
    } else if (this.phase !== Phase.Idle) {
      throw new NgiError('NGI_ERR_START_RESPONSE_TWICE');
    }
    const code = statusCode(status);
    if (code < 0) {
      throw new NgiError('NGI_ERR_INVALID_STATUS', `invalid status ${JSON.stringify(status)}`);
    }
    if (isInformational(code)) {
      // A client takes a 1xx as interim and keeps waiting for the real response.
      throw new NgiError(
        'NGI_ERR_INVALID_STATUS',
        `status ${code} is informational: a final response cannot be 1xx`,
      );
    }
    if (!Array.isArray(headers)) {
      throw new NgiError('NGI_ERR_INVALID_HEADER', 'headers must be an array of [name, value]');
    }
    this.declared = -1;
    this.headers = this.checkHeaders(headers);
    this.code = code;
    this.reason = status.length > 4 ? status.slice(4) : '';
    this.bodiless = isBodiless(code, this.isHead);
    this.phase = Phase.Started;
    return (this.writeFn ??= this.makeWrite());
  }

  /**
   * The legacy `write`. It carries `flushHead()`: a host extension that puts a started head on
   * the wire before any body (a Node handler's `res.flushHeaders()` for server-sent events).
   */
  private makeWrite(): Write {
    const write = ((chunk: Chunk) => this.write(chunk)) as Write & { flushHead?: () => void };
    write.flushHead = () => {
      if (this.phase === Phase.Started) this.sendHead(-1);
    };
    return write;
  }

  private checkHeaders(headers: Headers): Headers {
    let kept: Headers | undefined;
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i];
      const name = pair?.[0];
      const value = pair?.[1];
      if (typeof name !== 'string' || typeof value !== 'string') {
        throw new NgiError('NGI_ERR_INVALID_HEADER', `header ${i} is not a [string, string] pair`);
      }
      if (!validNames.has(name)) {
        if (!TOKEN.test(name)) {
          throw new NgiError('NGI_ERR_INVALID_HEADER', `header name ${JSON.stringify(name)}`);
        }
        if (validNames.size < 1000) validNames.add(name);
      }
      if (CR_LF_NUL.test(value)) {
        throw new NgiError(
          'NGI_ERR_INVALID_HEADER',
          `header ${JSON.stringify(name)} holds CR, LF or NUL`,
        );
      }
      // Only names that could be special pay for lower-casing: c(ontent-length, onnection),
      // k(eep-alive), t(e, ransfer-encoding, railer), u(pgrade), p(roxy-*).
      const first = name.charCodeAt(0) | 32;
      let drop = false;
      if (first === 99 || first === 107 || first === 116 || first === 117 || first === 112) {
        const lower = name.toLowerCase();
        if (lower === 'content-length') {
          const length = contentLength(value);
          if (length === -1) {
            throw new NgiError('NGI_ERR_INVALID_HEADER', `Content-Length ${JSON.stringify(value)}`);
          }
          this.declared = length;
        } else if (isHopByHop(lower)) {
          drop = true;
        }
      }
      if (drop) kept ??= headers.slice(0, i);
      else if (kept !== undefined) kept.push(pair!);
    }
    return kept ?? headers;
  }

  private sendHead(addLength: number, whole = false): void {
    let headers = this.headers;
    if (this.trailerNames !== undefined && !this.bodiless) {
      if (this.declared >= 0) {
        throw new NgiError(
          'NGI_ERR_VALIDATION',
          'trailers were announced: the response cannot also declare a Content-Length',
        );
      }
      // The host announces the trailers itself, and the length stays open (chunked framing).
      headers = [...headers, ['Trailer', this.trailerNames.join(', ')]];
      addLength = -1;
    }
    // The phase moves only once the sink took the head: a head the transport refuses
    // (a header value Node rejects) leaves nothing on the wire, and still gets a 500.
    this.sink.head(this.code, this.reason, headers, addLength, whole);
    this.phase = Phase.Sent;
  }

  /** The end of the body: trailers first, when some were given, then the end itself. */
  private endSink(chunk?: Chunk): void {
    if (this.trailerValues !== undefined && !this.bodiless)
      this.sink.trailers?.(this.trailerValues);
    if (chunk === undefined) this.sink.end();
    else this.sink.end(chunk);
  }

  /** `ngi.early_hints`, for hosts whose sink can send a 103. */
  sendEarlyHints(headers: Headers): Promise<void> {
    if (this.phase === Phase.Done) return rejected(new NgiError('NGI_ERR_CLIENT_GONE'));
    if (this.phase === Phase.Sent || this.sink.headersSent || this.handedOff) {
      return rejected(
        new NgiError('NGI_ERR_VALIDATION', 'early hints after the response head went out'),
      );
    }
    try {
      let link = false;
      const checked = checkFields(headers, 'early hint', (lower) => {
        if (lower === 'link') link = true;
        return isHopByHop(lower) || lower === 'content-length';
      });
      if (!link) {
        throw new NgiError('NGI_ERR_VALIDATION', 'early hints carry at least one Link header');
      }
      return this.sink.earlyHints!(checked);
    } catch (error) {
      return rejected(error);
    }
  }

  /** `ngi.trailers.announce`: before the head goes out. */
  announceTrailers(names: readonly string[]): void {
    if (this.phase === Phase.Done) throw new NgiError('NGI_ERR_CLIENT_GONE');
    if (this.phase === Phase.Sent || this.sink.headersSent || this.handedOff) {
      throw new NgiError(
        'NGI_ERR_VALIDATION',
        'trailers announced after the response head went out',
      );
    }
    if (!Array.isArray(names) || names.length === 0) {
      throw new NgiError('NGI_ERR_VALIDATION', 'announce trailers by a non-empty array of names');
    }
    const lower: string[] = [];
    for (const name of names) {
      if (typeof name !== 'string' || !TOKEN.test(name)) {
        throw new NgiError('NGI_ERR_INVALID_HEADER', `trailer name ${JSON.stringify(name)}`);
      }
      const folded = name.toLowerCase();
      if (isForbiddenTrailer(folded)) {
        throw new NgiError('NGI_ERR_INVALID_HEADER', `${name} cannot be a trailer`);
      }
      lower.push(folded);
    }
    if (this.declared >= 0 && this.phase === Phase.Started) {
      throw new NgiError(
        'NGI_ERR_VALIDATION',
        'trailers need a response without Content-Length (the body is framed for them)',
      );
    }
    this.trailerNames = lower;
  }

  /** `ngi.trailers.send`: the values, before the body ends; only announced names. */
  sendTrailers(headers: Headers): void {
    if (this.phase === Phase.Done)
      throw new NgiError('NGI_ERR_VALIDATION', 'trailers after the body ended');
    const names = this.trailerNames;
    if (names === undefined) {
      throw new NgiError('NGI_ERR_VALIDATION', 'trailers sent without announce() before the head');
    }
    this.trailerValues = checkFields(headers, 'trailer', (lower) => {
      if (!names.includes(lower)) {
        throw new NgiError('NGI_ERR_VALIDATION', `trailer ${lower} was not announced`);
      }
      return false;
    });
  }

  /** Writes one chunk, sending the head first if needed; `false` under backpressure. */
  private put(chunk: unknown): boolean {
    if (!isChunk(chunk)) {
      throw new NgiError('NGI_ERR_INVALID_CHUNK', `body chunk of type ${typeof chunk}`);
    }
    if (this.phase !== Phase.Sent) {
      if (this.phase === Phase.Idle) throw new NgiError('NGI_ERR_NO_START_RESPONSE');
      if (this.phase === Phase.Done) return true;
      if (chunk.length === 0) return true;
      this.sendHead(-1);
    }
    if (this.bodiless || chunk.length === 0) return true;
    if (this.declared >= 0) {
      const length = byteLength(chunk);
      if (this.sent + length > this.declared) {
        const room = this.declared - this.sent;
        if (room > 0) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          this.sink.write(bytes.subarray(0, room));
        }
        this.sent = this.declared;
        throw new NgiError('NGI_ERR_CONTENT_LENGTH_EXCEEDED');
      }
      this.sent += length;
    }
    return this.sink.write(chunk);
  }

  private write(chunk: Chunk): Promise<void> {
    if (this.phase === Phase.Done) return rejected(new NgiError('NGI_ERR_CLIENT_GONE'));
    try {
      return this.put(chunk) ? RESOLVED : this.sink.drain();
    } catch (error) {
      // The response is broken whatever the app does with the rejection (a body cut at its
      // Content-Length must not end as if complete): fail it here, once.
      this.fail(error);
      return rejected(error);
    }
  }

  private consume(body: Body): void | Promise<void> {
    this.body = body;
    if (this.handedOff || this.phase === Phase.Done) {
      // A body that arrives after the exchange ended (client gone, answered natively) is
      // still closed: it may hold a cursor or a file.
      if (this.released) this.closeBody();
      // Handed off: the native handler is still answering; `handOffDone()` ends the exchange.
      else if (!this.handedOff || this.sink.closed) this.release();
      return;
    }
    if (Array.isArray(body)) return this.consumeArray(body);
    if (body !== null && typeof body === 'object') {
      // The iterator factories are the app's code: they may throw too.
      try {
        if (typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] === 'function') {
          this.iterator = (body as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
          return this.pumpAsync(this.iterator as AsyncIterator<unknown>);
        }
        if (typeof (body as Iterable<Chunk>)[Symbol.iterator] === 'function') {
          this.iterator = (body as Iterable<Chunk>)[Symbol.iterator]();
          return this.pumpSync(this.iterator as Iterator<unknown>);
        }
      } catch (error) {
        return this.fail(error);
      }
    }
    this.fail(new NgiError('NGI_ERR_INVALID_BODY', `the app returned ${describe(body)}`));
  }

  private consumeArray(chunks: readonly unknown[]): void {
    try {
      if (this.phase === Phase.Started) {
        // A finished array: its length is known, so the head can carry it.
        let total = 0;
        for (let i = 0; i < chunks.length; i++) {
          const chunk = chunks[i];
          if (!isChunk(chunk)) {
            throw new NgiError('NGI_ERR_INVALID_CHUNK', `body chunk of type ${typeof chunk}`);
          }
          total += byteLength(chunk);
        }
        if (this.declared >= 0) {
          // The app said the length itself; the chunks follow at once and `put` keeps them to it.
          this.sendHead(-1, true);
          for (let i = 0; i < chunks.length; i++) this.put(chunks[i]);
          return this.finish();
        }
        // A HEAD answered with nothing says nothing about the length the GET would have.
        const unknown = this.isHead && total === 0;
        this.sendHead(unknown || this.code === 204 || this.code === 304 ? -1 : total);
        if (chunks.length === 1 && !this.bodiless) return this.complete(chunks[0] as Chunk);
      }
      for (let i = 0; i < chunks.length; i++) this.put(chunks[i]);
      this.finish();
    } catch (error) {
      this.fail(error);
    }
  }

  private pumpSync(iterator: Iterator<unknown>): void | Promise<void> {
    try {
      for (;;) {
        if (this.phase === Phase.Done) return this.release();
        const step = iterator.next();
        if (step.done) break;
        if (!this.put(step.value)) return this.pumpSyncAfterDrain(iterator);
        // A bodiless head is out: nothing more can reach the client, so stop pulling.
        if (this.bodiless && this.phase === Phase.Sent) break;
      }
      this.finish();
    } catch (error) {
      this.fail(error);
    }
  }

  private async pumpSyncAfterDrain(iterator: Iterator<unknown>): Promise<void> {
    await this.sink.drain();
    return this.pumpSync(iterator);
  }

  private async pumpAsync(iterator: AsyncIterator<unknown>): Promise<void> {
    try {
      for (;;) {
        const step = await iterator.next();
        if (this.phase === Phase.Done) return this.release();
        if (step.done) break;
        if (!this.put(step.value)) {
          await this.sink.drain();
          // Woken because the client went away: pull nothing more.
          if ((this.phase as Phase) === Phase.Done) return this.release();
        }
        if (this.bodiless && this.phase === Phase.Sent) break;
      }
      this.finish();
    } catch (error) {
      this.fail(error);
    }
  }

  /** The body ended: send what is owed and check the length promise. */
  private finish(): void {
    if (this.phase === Phase.Idle) throw new NgiError('NGI_ERR_NO_START_RESPONSE');
    if (this.phase === Phase.Done) return this.release();
    if (this.phase === Phase.Started) {
      // Nothing was written: the length is known to be 0 unless the app declared one (HEAD).
      this.sendHead(
        this.declared >= 0 || this.isHead || this.code === 204 || this.code === 304 ? -1 : 0,
      );
    }
    if (this.declared >= 0 && this.sent < this.declared && !this.bodiless) {
      throw new NgiError(
        'NGI_ERR_CONTENT_LENGTH_SHORT',
        `body ended after ${this.sent} of ${this.declared} declared bytes`,
      );
    }
    this.complete();
  }

  /**
   * Ends the response and the exchange. A sink may throw here: a framework host is handed a
   * deferred head only now, and Node refuses a header value its own checks reject. That
   * fails the exchange (`fail` after the head: the connection is cut and the error logged),
   * never a response left hanging with its failure swallowed.
   */
  private complete(chunk?: Chunk): void {
    this.phase = Phase.Done;
    try {
      this.endSink(chunk);
    } catch (error) {
      this.phase = Phase.Sent;
      throw error;
    }
    this.release();
  }

  /** The one place a failure becomes a response: an error page, or an aborted connection. */
  fail(error: unknown): void {
    const was = this.phase;
    this.phase = Phase.Done;
    // Over already (the client left, the time ran out): an app failing afterwards, as one that
    // gave up on `ngi.signal` does, has no one left to answer. Not every sink knows it is
    // closed (a Fetch host learns of the client through `request.signal`, not its stream).
    if (was === Phase.Done && !this.handedOff) return this.release();
    if (!this.sink.closed) {
      // An upgraded connection carries another protocol now: no error page can go on it.
      const headOut = was >= Phase.Sent || this.sink.headersSent || this.upgraded;
      const answer = httpAnswerOf(error);
      // A client error the app raised on purpose (an http-errors 404) and answered as such is
      // no server fault: not logged, as in Koa. Everything else is.
      const onPurpose = answer.status < 500 && !(error instanceof NgiError);
      if (headOut || this.onFailure !== undefined || !onPurpose) {
        this.environ['ngi.errors'].write(
          formatError(
            wrapAppError(error),
            `${this.environ.REQUEST_METHOD} ${this.environ.REQUEST_URI}`,
          ),
        );
      }
      if (headOut) {
        this.sink.abort(error instanceof Error ? error : new Error(String(error)));
      } else if (this.onFailure !== undefined) {
        this.onFailure(error);
      } else {
        try {
          this.sendError(answer.status, answer.expose ? (error as Error).message : undefined);
        } catch (late) {
          this.sink.abort(late instanceof Error ? late : new Error(String(late)));
        }
      }
    }
    this.release();
  }

  /** The one fixed-status answer: `<status> <reason>` as text, or the message an error exposes. */
  private sendError(status: number, exposed?: string): void {
    const reason =
      status === 500
        ? 'Internal Server Error'
        : (ERROR_REASONS[status] ?? STATUS_CODES[status] ?? 'Error');
    const text = exposed === undefined ? `${status} ${reason}\n` : `${exposed}\n`;
    this.code = status;
    this.reason = reason;
    this.headers = [['Content-Type', 'text/plain; charset=utf-8']];
    this.sink.head(status, reason, this.headers, Buffer.byteLength(text));
    this.sink.end(this.isHead ? undefined : text);
  }

  /**
   * The request outlived its time limit: answer 504 if nothing was sent (abort otherwise),
   * fire `ngi.signal`, and stop the body.
   */
  expire(error: Error = new NgiError('NGI_ERR_TIMEOUT')): void {
    if ((this.phase === Phase.Done && !this.handedOff) || this.upgraded) return;
    const sent = this.phase >= Phase.Sent || (this.handedOff && this.sink.headersSent);
    this.phase = Phase.Done;
    if (!this.sink.closed) {
      this.environ['ngi.errors'].write(
        formatError(error, `${this.environ.REQUEST_METHOD} ${this.environ.REQUEST_URI}`),
      );
      if (sent) this.sink.abort(error);
      else this.sendError(504);
    }
    this.abandon(error);
  }

  /** The client went away (or the request timed out): stop the body, tell the app. */
  abandon(reason: Error): void {
    this.controller.abort(reason);
    this.phase = Phase.Done;
    this.release();
  }

  /** Finishes the iterator and calls `close()`: exactly once, whatever ended the exchange. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    const iterator = this.iterator;
    if (iterator !== undefined && typeof iterator.return === 'function') {
      this.iterator = undefined;
      try {
        const result = iterator.return();
        if (isPromise(result)) result.then(undefined, (error: unknown) => this.logLate(error));
      } catch (error) {
        this.logLate(error);
      }
    }
    this.closeBody();
    this.onDone?.();
  }

  private closeBody(): void {
    const close = (this.body as { close?: unknown } | undefined)?.close;
    if (typeof close === 'function') {
      try {
        const result = close.call(this.body);
        if (isPromise(result)) result.then(undefined, (error: unknown) => this.logLate(error));
      } catch (error) {
        this.logLate(error);
      }
    }
  }

  private logLate(error: unknown): void {
    this.environ['ngi.errors'].write(formatError(error, 'while closing the body'));
  }
}

const ERROR_REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A rejection the app may await, already handled: a `write()` nobody awaits must not crash the process. */
function rejected(error: unknown): Promise<never> {
  const promise = Promise.reject(error);
  promise.catch(noop);
  return promise;
}

function noop(): void {}

function wrapAppError(error: unknown): unknown {
  if (error instanceof NgiError) return error;
  return new NgiError('NGI_ERR_APP_THREW', error instanceof Error ? error.message : String(error), {
    cause: error,
  });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return 'a string (return [string] instead)';
  if (typeof value === 'object')
    return `an object that is not iterable (${value.constructor?.name ?? 'Object'})`;
  return typeof value;
}

/**
 * Checks extra header fields (early hints, trailers): `[string, string]` pairs, token names,
 * no CR/LF/NUL; `refuse(lowerName)` says which names are out of place.
 */
function checkFields(headers: Headers, what: string, refuse: (lower: string) => boolean): Headers {
  if (!Array.isArray(headers)) {
    throw new NgiError('NGI_ERR_INVALID_HEADER', `${what}s must be an array of [name, value]`);
  }
  for (let i = 0; i < headers.length; i++) {
    const pair = headers[i];
    const name = pair?.[0];
    const value = pair?.[1];
    if (typeof name !== 'string' || typeof value !== 'string' || !TOKEN.test(name)) {
      throw new NgiError('NGI_ERR_INVALID_HEADER', `${what} ${i} is not a [name, value] pair`);
    }
    if (CR_LF_NUL.test(value)) {
      throw new NgiError(
        'NGI_ERR_INVALID_HEADER',
        `${what} ${JSON.stringify(name)} holds CR, LF or NUL`,
      );
    }
    if (refuse(name.toLowerCase())) {
      throw new NgiError('NGI_ERR_INVALID_HEADER', `${name} is not allowed in ${what}s`);
    }
  }
  return headers;
}

/**
 * `ngi.trailers` of one exchange: the methods live on the prototype, so a host offers the key
 * for one small object per request.
 */
export class ExchangeTrailers implements ResponseTrailers {
  readonly #exchange: Exchange;
  constructor(exchange: Exchange) {
    this.#exchange = exchange;
  }
  announce(names: readonly string[]): void {
    this.#exchange.announceTrailers(names);
  }
  send(headers: Headers): void {
    this.#exchange.sendTrailers(headers);
  }
}

import { Readable } from 'node:stream';
import { replaceLazyKey } from './environ.js';
import { NgiError } from './errors.js';

/**
 * `ngi.input` for a request a framework middleware may have read before the NGI app runs
 * (a body parser in Koa or Hono): the bytes it kept, the untouched Node request, or a stream
 * whose first read fails with `NGI_ERR_BODY_CONSUMED`, so the app answers a clear 500 instead
 * of waiting forever for bytes that will never come.
 */

/** A stream of bytes a middleware already read and kept (`ctx.request.rawBody`, ...). */
export function keptInput(bytes: Uint8Array | string | Promise<ArrayBuffer>): Readable {
  if (typeof bytes === 'string' || bytes instanceof Uint8Array) {
    return Readable.from(bytes.length === 0 ? [] : [Buffer.from(bytes)]);
  }
  return Readable.from(bytesOf(bytes));
}

async function* bytesOf(body: Promise<ArrayBuffer>): AsyncGenerator<Buffer> {
  const bytes = await body;
  if (bytes.byteLength > 0) yield Buffer.from(bytes);
}

/** A stream that fails on first read: the body was read upstream and its bytes are gone. */
export function consumedInput(message: string): Readable {
  // `status`: body readers that wrap stream errors (body-parser's http-errors) keep it, so the
  // answer is the server's fault (500), not the client's (their default 400).
  const error = Object.assign(
    new NgiError('NGI_ERR_BODY_CONSUMED', `${message} (NGI_ERR_BODY_CONSUMED)`),
    { status: 500 },
  );
  return new Readable({
    read() {
      this.destroy(error);
    },
  });
}

/**
 * The Node request itself when nobody read from it, else a `consumedInput` naming `who`.
 *
 * @example
 * nodeInput(ctx.req, 'a Koa middleware upstream of toKoa'); // ctx.req, or a failing stream
 */
export function nodeInput(req: Readable, who: string): Readable {
  if (!req.readableDidRead) return req;
  return consumedInput(`${who} read the request body and kept no copy of it`);
}

const kEmptyInput: unique symbol = Symbol('ngi.emptyInput');
const NO_CHUNKS: never[] = [];

/**
 * `ngi.input` of a request with no body, built only when read: most GETs never read it, and a
 * `Readable` costs more to build than the rest of a small request's environ. Shared by every
 * request, as `ngi.signal`'s accessor is (see `attachSignal`).
 */
const EMPTY_INPUT_PROPERTY: PropertyDescriptor = {
  get(this: { [kEmptyInput]?: Readable }): Readable {
    return (this[kEmptyInput] ??= Readable.from(NO_CHUNKS));
  },
  set(this: object, value: unknown): void {
    replaceLazyKey(this, 'ngi.input', value);
  },
  enumerable: true,
  configurable: true,
};

/** Gives the environ of a bodiless request its `ngi.input`: an empty stream, made when read. */
export function attachEmptyInput(environ: object): void {
  Object.defineProperty(environ, 'ngi.input', EMPTY_INPUT_PROPERTY);
}

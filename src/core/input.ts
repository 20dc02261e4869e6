import { Readable } from 'node:stream';
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

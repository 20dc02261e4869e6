// A Fetch `Response` body as an NGI body: short bodies as a finished array (so the head can
// carry their length), others as a pull-one-chunk-per-next iterator.
import type { ReadableStreamReadResult } from 'node:stream/web';
const PENDING = Symbol('pending');
type Read = ReadableStreamReadResult<Uint8Array>;

/** Settles with the read if it is already done (within a few microtasks), else `PENDING`. */
function readNow(read: Promise<Read>): Promise<Read | typeof PENDING> {
  return Promise.race([read, Promise.resolve().then(() => Promise.resolve(PENDING))]);
}

/**
 * A short body (a `new Response('text')`) is finished within a couple of reads: hand it to
 * the engine as an array so the head carries its `Content-Length`; otherwise stream it.
 */
export async function readBody(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<Uint8Array[] | AsyncIterableIterator<Uint8Array>> {
  const chunks: Uint8Array[] = [];
  // Two reads, as @hono/node-server does: the same bodies get a length on both.
  for (let i = 0; i < 2; i++) {
    const read = reader.read();
    const step = await readNow(read);
    if (step === PENDING) return new ResponseBody(reader, chunks, read);
    if (step.done) return chunks;
    chunks.push(step.value);
  }
  return new ResponseBody(reader, chunks, undefined);
}

/** A Response body as an NGI body: pulls one chunk per `next()`, cancels on `return()`. */
class ResponseBody implements AsyncIterableIterator<Uint8Array> {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly pending: Uint8Array[];
  private nextRead: Promise<Read> | undefined;
  private done = false;

  constructor(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    pending: Uint8Array[],
    nextRead: Promise<Read> | undefined,
  ) {
    this.reader = reader;
    this.pending = pending;
    this.nextRead = nextRead;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.pending.length > 0) return { done: false, value: this.pending.shift()! };
    const read = this.nextRead ?? this.reader.read();
    this.nextRead = undefined;
    const step = await read;
    if (step.done) this.done = true;
    return step;
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.done) {
      this.done = true;
      // The consumer stopped early (client gone, error): tell the producer.
      await this.reader.cancel().then(undefined, () => {});
    }
    return { done: true, value: undefined };
  }
}

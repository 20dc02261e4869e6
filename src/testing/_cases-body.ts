import { createHash } from 'node:crypto';
import type { Body, Chunk } from '../core/types.js';
import { TEXT, differs, first, type KitCase } from './_case.js';
import { pattern } from './_cases-environ.js';
import { gate, settled, within, type Gate } from './_wire.js';

/* Consuming the body, Content-Length and framing, bodiless responses (docs/spec.md §6–§8). */

const CHUNK = 64 * 1024;
/** What an endless body yields at most: every run stays bounded. */
const ENDLESS = 64 * 1024 * 1024;
/**
 * More than the socket buffers of a few hops on loopback can hold between an app and a client
 * that reads nothing (kernel buffers, a proxy's own): a host past it is not holding back.
 */
const BACKPRESSURE_BOUND = 24 * 1024 * 1024;

/**
 * A body the host pulls chunk by chunk, counting what it took and how it finished it:
 * `return()` (finishing the iterator) and `close()` (the body's own cleanup).
 */
class CountedBody implements AsyncIterable<Chunk> {
  pulled = 0;
  returns = 0;
  closes = 0;
  readonly closed: Gate = gate();
  private readonly total: number;
  private readonly failAfter: number;

  constructor(total: number, failAfter = -1) {
    this.total = total;
    this.failAfter = failAfter;
  }

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    const bytes = Buffer.alloc(CHUNK, 0x61);
    return {
      next: async () => {
        if (this.failAfter >= 0 && this.pulled >= this.failAfter) {
          throw new Error('kit: the body failed');
        }
        if (this.pulled >= this.total) return { done: true, value: undefined };
        const size = Math.min(CHUNK, this.total - this.pulled);
        this.pulled += size;
        // A turn of the event loop per chunk, as a body reading from a file or a database would.
        await new Promise((resolve) => setImmediate(resolve));
        return { done: false, value: size === CHUNK ? bytes : bytes.subarray(0, size) };
      },
      return: async () => {
        this.returns++;
        return { done: true, value: undefined };
      },
    };
  }

  close(): void {
    this.closes++;
    this.closed.open();
  }
}

/** `close()` once, `return()` at most once: the finishing rule (R6.4), after the host is done. */
async function finishedOnce(body: CountedBody, timeoutMs: number, early: boolean) {
  const closed = await within(
    body.closed.promise.then(() => true),
    timeoutMs,
    false,
  );
  if (!closed) return `the body's close() was not called within ${timeoutMs} ms`;
  // A late second call would show here.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return first(
    differs('close() calls', 1, body.closes),
    early
      ? differs('return() calls for a body stopped before its end', 1, body.returns)
      : body.returns > 1
        ? differs('return() calls', 1, body.returns)
        : undefined,
  );
}

export const bodyCases: KitCase[] = [
  {
    rule: 'R6.2',
    name: 'the host does not pull the body while the client does not read, and resumes',
    make: () => {
      let body: CountedBody | undefined;
      return {
        app: (_environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
          return (body = new CountedBody(ENDLESS));
        },
        async check({ send, timeoutMs }) {
          let received = 0;
          let stalledAt = -1;
          const response = await send({
            path: '/backpressure',
            timeoutMs: timeoutMs * 5,
            onResponse: (res) => {
              res.pause();
              void settled(() => body?.pulled ?? 0, timeoutMs * 3).then((at) => {
                stalledAt = at;
                res.resume();
              });
            },
            onData: (_chunk, total) => (received = total),
          });
          if (body === undefined) return 'the app was never called';
          return first(
            stalledAt > BACKPRESSURE_BOUND
              ? `${(stalledAt / 1048576).toFixed(1)} MB pulled while the client read nothing (bound ${BACKPRESSURE_BOUND / 1048576} MB)`
              : undefined,
            response.complete ? undefined : `the response did not complete (${response.error})`,
            differs('bytes received once the client read', ENDLESS, received),
          );
        },
      };
    },
  },
  {
    rule: 'R6.3',
    name: 'the first chunk reaches the client before the app produces the last',
    make: () => {
      const arrived = gate<boolean>();
      let early = false;
      return {
        app: (_environ, startResponse) =>
          (async function* () {
            startResponse('200 OK', TEXT);
            yield 'first;';
            early = await within(arrived.promise, 5000, false);
            yield 'last';
          })(),
        async check({ send }) {
          const response = await send({
            path: '/stream',
            onData: (chunk) => {
              if (chunk.includes('first;')) arrived.open(true);
            },
          });
          return first(
            early
              ? undefined
              : 'the first chunk did not reach the client until the app produced the last',
            differs('body', 'first;last', response.body.toString()),
          );
        },
      };
    },
  },
  {
    rule: 'R6.4',
    name: 'a body that ends is closed exactly once',
    make: () => {
      const body = new CountedBody(3 * CHUNK);
      return {
        app: (_environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
          return body;
        },
        async check({ send, timeoutMs }) {
          const response = await send({ path: '/close-once' });
          return first(
            differs('bytes received', 3 * CHUNK, response.body.length),
            await finishedOnce(body, timeoutMs, false),
          );
        },
      };
    },
  },
  {
    rule: 'R6.4',
    name: 'a body the client leaves mid-stream is finished (return) and closed exactly once',
    make: () => {
      const body = new CountedBody(ENDLESS);
      let signal: AbortSignal | undefined;
      return {
        app: (environ, startResponse) => {
          signal = environ['ngi.signal'];
          startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
          return body;
        },
        async check({ abandon, timeoutMs }) {
          await abandon('/client-leaves', 'first-byte');
          const failure = await finishedOnce(body, timeoutMs, true);
          return first(
            failure,
            body.pulled >= ENDLESS ? 'the body was pulled to its end for nobody' : undefined,
            signal?.aborted === true ? undefined : 'ngi.signal did not fire',
          );
        },
      };
    },
  },
  {
    rule: 'R6.4',
    name: 'a body that fails is closed exactly once',
    make: () => {
      const body = new CountedBody(ENDLESS, 2 * CHUNK);
      return {
        app: (_environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
          return body;
        },
        async check({ send, timeoutMs }) {
          await send({ path: '/close-on-failure' });
          return finishedOnce(body, timeoutMs, false);
        },
      };
    },
  },
  {
    rule: 'R7.1',
    name: 'never more body bytes than the Content-Length the app declared',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['Content-Length', '5'], ...TEXT]);
        return ['hello', ' and more than declared'];
      },
      async check({ raw }) {
        const response = await raw('GET', '/overrun');
        // Cutting the connection before even the head went out keeps the rule too.
        if (response.error?.startsWith('the connection stayed open')) return response.error;
        if (response.status >= 500) return undefined;
        return response.after.length > 5
          ? `${response.after.length} body bytes sent for a Content-Length of 5: ${JSON.stringify(response.after.toString('latin1'))}`
          : undefined;
      },
    }),
  },
  {
    rule: 'R7.2',
    name: 'a body short of its Content-Length is an incomplete response',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) =>
        (async function* (): AsyncGenerator<Chunk> {
          startResponse('200 OK', [['Content-Length', '100'], ...TEXT]);
          yield 'short';
        })(),
      async check({ send }) {
        const response = await send({ path: '/short' });
        return !response.complete || response.status >= 500
          ? undefined
          : `the client took ${response.body.length} of 100 declared bytes for a complete response`;
      },
    }),
  },
  {
    rule: 'R7.5',
    name: 'a 5 MB response reaches the client intact',
    make: () => {
      const bytes = pattern(5 * 1024 * 1024, 11);
      return {
        app: (_environ, startResponse) => {
          startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
          return (function* (): Generator<Chunk> {
            for (let at = 0; at < bytes.length; at += CHUNK) yield bytes.subarray(at, at + CHUNK);
          })();
        },
        async check({ send }) {
          const response = await send({ path: '/big' });
          const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
          return first(
            differs('bytes received', bytes.length, response.body.length),
            differs('sha256', digest(bytes), digest(response.body)),
          );
        },
      };
    },
  },
  ...(
    [
      ['R8.1', 'HEAD', '200 OK', 'a HEAD response carries no body, whatever the app yields'],
      ['R8.2', 'GET', '204 No Content', 'a 204 carries no body, whatever the app yields'],
      ['R8.2', 'GET', '304 Not Modified', 'a 304 carries no body, whatever the app yields'],
    ] as const
  ).map(([rule, method, status, name]): KitCase => ({
    rule,
    name,
    make: () => ({
      app: (_environ, startResponse): Body =>
        (function* () {
          startResponse(status, [['X-Kit', 'bodiless']]);
          yield 'kit-must-not-be-sent';
        })(),
      async check({ raw }) {
        const response = await raw(method, '/bodiless');
        return first(
          differs('status', Number(status.slice(0, 3)), response.status),
          /\r\nX-Kit: bodiless/i.test(response.head) ? undefined : 'the X-Kit header is missing',
          response.after.length > 0
            ? `${response.after.length} bytes after the head: ${JSON.stringify(response.after.toString('latin1').slice(0, 60))}`
            : undefined,
          response.error,
        );
      },
    }),
  })),
];

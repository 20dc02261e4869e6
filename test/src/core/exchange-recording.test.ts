// The engine in process, against a sink that records what it is told: every step is
// deterministic (no socket, no timing), so the contract's order of events is asserted exactly.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { Exchange, RESOLVED, type ResponseSink } from '../../../src/core/exchange.js';
import type { Chunk, Environ, Headers, StartResponse } from '../../../src/core/types.js';

/** Every call the engine makes on its sink, in order. */
class RecordingSink implements ResponseSink {
  readonly calls: string[] = [];
  closed = false;
  headersSent = false;
  /** When set, `write` reports backpressure until `release()`. */
  full = false;
  #drained: (() => void) | undefined;

  head(code: number, reason: string, headers: Headers, addLength: number): void {
    this.headersSent = true;
    const names = headers.map(([name, value]) => `${name}=${value}`).join(',');
    this.calls.push(
      `head ${code} ${reason} [${names}]${addLength >= 0 ? ` +length ${addLength}` : ''}`,
    );
  }
  write(chunk: Chunk): boolean {
    this.calls.push(`write ${text(chunk)}`);
    return !this.full;
  }
  end(chunk?: Chunk): void {
    this.calls.push(chunk === undefined ? 'end' : `end ${text(chunk)}`);
  }
  drain(): Promise<void> {
    this.calls.push('drain?');
    return new Promise((resolve) => (this.#drained = resolve));
  }
  release(): void {
    this.full = false;
    this.#drained?.();
  }
  abort(error: Error): void {
    this.closed = true;
    this.calls.push(`abort ${error.message}`);
  }
}

const text = (chunk: Chunk) => (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());

function environ(method: string, signal: AbortSignal): Environ {
  const errors: string[] = [];
  return {
    REQUEST_METHOD: method,
    SCRIPT_NAME: '',
    PATH_INFO: '/',
    QUERY_STRING: '',
    REQUEST_URI: '/',
    SERVER_NAME: 'test',
    SERVER_PORT: '80',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REMOTE_ADDR: '127.0.0.1',
    'ngi.version': [1, 0],
    'ngi.url_scheme': 'http',
    'ngi.input': Readable.from([]),
    'ngi.errors': { write: (line: string) => errors.push(line) },
    'ngi.multiprocess': false,
    'ngi.multithread': false,
    'ngi.run_once': false,
    'ngi.signal': signal,
  } as unknown as Environ;
}

function exchange(method = 'GET'): { sink: RecordingSink; exchange: Exchange; aborts: unknown[] } {
  const sink = new RecordingSink();
  const controller = new AbortController();
  // What an app sees: abort events on ngi.signal.
  const aborts: unknown[] = [];
  controller.signal.addEventListener('abort', () => aborts.push(controller.signal.reason));
  return {
    sink,
    exchange: new Exchange(environ(method, controller.signal), sink, controller),
    aborts,
  };
}

describe('Exchange, in process against a recording sink', () => {
  it('sends one head with a computed Content-Length for a one-chunk body, then ends with it', async () => {
    const { sink, exchange: ex } = exchange();
    await ex.run((_e, startResponse) => {
      startResponse('200 OK', [['Content-Type', 'text/plain']]);
      return ['hello'];
    });
    assert.deepEqual(sink.calls, ['head 200 OK [Content-Type=text/plain] +length 5', 'end hello']);
  });

  it('holds the head until the first chunk, so excInfo can still replace it', async () => {
    const { sink, exchange: ex } = exchange();
    await ex.run(async function* (_e: Environ, startResponse: StartResponse) {
      startResponse('200 OK', [['X-First', '1']]);
      try {
        throw new Error('late');
      } catch (error) {
        startResponse('503 Service Unavailable', [['X-Second', '2']], error);
      }
      yield 'sorry';
    } as never);
    assert.equal(sink.calls[0], 'head 503 Service Unavailable [X-Second=2]');
    assert.ok(!sink.calls.some((call) => call.includes('X-First')));
  });

  it('waits for drain under backpressure before pulling the next chunk', async () => {
    const { sink, exchange: ex } = exchange();
    sink.full = true;
    const pulled: number[] = [];
    const done = ex.run(async function* (_e: Environ, startResponse: StartResponse) {
      startResponse('200 OK', []);
      for (let i = 1; i <= 3; i++) {
        pulled.push(i);
        yield `chunk ${i}`;
      }
    } as never);
    // The first write reported backpressure: the engine asks for drain and pulls nothing more.
    while (!sink.calls.includes('drain?')) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(pulled, [1]);
    sink.release();
    await done;
    assert.deepEqual(pulled, [1, 2, 3]);
    assert.deepEqual(sink.calls.slice(-3), ['write chunk 2', 'write chunk 3', 'end']);
  });

  it('aborts, never ends, when the body fails after the head', async () => {
    const { sink, exchange: ex } = exchange();
    await ex.run(async function* (_e: Environ, startResponse: StartResponse) {
      startResponse('200 OK', []);
      yield 'part';
      throw new Error('broken mid-way');
    } as never);
    assert.equal(sink.calls.at(-1), 'abort broken mid-way');
    assert.ok(!sink.calls.includes('end'));
  });

  it('closes the body exactly once, and return() too, when the client goes away', async () => {
    const { sink, exchange: ex, aborts } = exchange();
    let closes = 0;
    let returns = 0;
    const body = {
      close: () => closes++,
      [Symbol.asyncIterator]() {
        return {
          next: () => new Promise<IteratorResult<string>>(() => {}),
          return: () => {
            returns++;
            return Promise.resolve({ done: true as const, value: undefined });
          },
        };
      },
    };
    // The body's next() never settles: only the client's leaving can end this exchange.
    void ex.run((_e, startResponse) => {
      startResponse('200 OK', []);
      return body as never;
    });
    await new Promise((resolve) => setImmediate(resolve));
    sink.closed = true;
    ex.abandon(new Error('client gone'));
    ex.abandon(new Error('client gone again'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closes, 1);
    assert.equal(returns, 1);
    assert.equal(aborts.length, 1, 'ngi.signal fires once');
  });

  it('sends no body for HEAD, with the length of the GET body', async () => {
    const { sink, exchange: ex } = exchange('HEAD');
    await ex.run((_e, startResponse) => {
      startResponse('200 OK', []);
      return ['twelve bytes'];
    });
    assert.deepEqual(sink.calls, ['head 200 OK [] +length 12', 'end']);
  });

  it('returns the shared resolved promise from write() when nothing waits', async () => {
    const { exchange: ex } = exchange();
    let result: unknown;
    await ex.run((_e, startResponse) => {
      const write = startResponse('200 OK', []);
      result = write('x');
      return [];
    });
    assert.equal(result, RESOLVED);
  });
});

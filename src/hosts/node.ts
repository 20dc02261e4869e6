import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Exchange, ExchangeTrailers, type ResponseSink } from '../core/exchange.js';
import { environFromNode, type NodeEnvironOptions } from './node-environ.js';
import { NgiError } from '../core/errors.js';
import type { NodeOrigin, NodeUpgrade } from '../core/node-origin.js';
import { kNodeOrigin } from '../core/symbols.js';
import { LazySignal } from '../core/signal.js';
import { NodeUpgradeRequest } from './node-upgrade-request.js';
import type { App, Chunk, Headers, StartResponse } from '../core/types.js';

const RESOLVED = Promise.resolve();

/**
 * Writes an exchange onto a Node `ServerResponse`, real or emulated; as the request's
 * `NodeOrigin`, it decides whether a Node handler below may answer on `res` itself.
 */
export class NodeSink implements ResponseSink, NodeOrigin {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly upgrade: NodeUpgrade | undefined;
  exchange: Exchange | undefined = undefined;
  private waiting: Promise<void> | undefined = undefined;
  private wake: (() => void) | undefined = undefined;
  protected gone = false;
  private onDrain: (() => void) | undefined = undefined;

  constructor(req: IncomingMessage, res: ServerResponse, upgrade?: NodeUpgrade) {
    this.req = req;
    this.res = res;
    this.upgrade = upgrade;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get closed(): boolean {
    return this.gone || this.res.destroyed;
  }

  head(code: number, reason: string, headers: Headers, addLength: number): void {
    const res = this.res;
    if (res.headersSent)
      throw new NgiError(
        'NGI_ERR_VALIDATION',
        'the response head was already sent by someone else',
      );
    if (res.getHeaderNames().length === 0) {
      // Fresh response: one flat array is Node's fastest path and keeps duplicates.
      const flat: string[] = new Array(headers.length * 2 + (addLength >= 0 ? 2 : 0));
      let n = 0;
      for (let i = 0; i < headers.length; i++) {
        const pair = headers[i]!;
        flat[n++] = pair[0];
        flat[n++] = pair[1];
      }
      if (addLength >= 0) {
        flat[n++] = 'Content-Length';
        flat[n++] = String(addLength);
      }
      res.writeHead(code, nodeReason(code, reason), flat);
      return;
    }
    // Headers set upstream (CORS, helmet, ...) survive; the app's own replace same-named ones
    // while its duplicates (Set-Cookie) are kept. Cookies add up instead, as a later
    // `res.cookie()` adds to earlier ones in Express: each names its own cookie (a session).
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i]![0];
      if (name.length !== 10 || name.toLowerCase() !== 'set-cookie') res.removeHeader(name);
    }
    for (let i = 0; i < headers.length; i++) res.appendHeader(headers[i]![0], headers[i]![1]);
    if (addLength >= 0) res.setHeader('Content-Length', addLength);
    res.writeHead(code, nodeReason(code, reason));
  }

  handOff(startResponse: StartResponse, input: unknown): boolean {
    const exchange = this.exchange;
    return (
      exchange !== undefined &&
      exchange.startResponse === startResponse &&
      // A body read upstream (kept or gone) is only in `ngi.input`: the handler needs that.
      input === this.req &&
      exchange.handOff()
    );
  }

  takeUpgrade(startResponse: StartResponse, input: unknown): NodeUpgrade | undefined {
    const exchange = this.exchange;
    if (
      exchange === undefined ||
      exchange.startResponse !== startResponse ||
      // A body read upstream (kept or gone) is only in `ngi.input`: the listener needs that.
      input !== this.req
    ) {
      return undefined;
    }
    return this.claimUpgrade();
  }

  /**
   * The raw connection of an upgrade request, for whoever takes it (a Node upgrade listener,
   * `ngi.upgrade`): only while nothing has been started. The exchange then lasts until the
   * connection closes, with no time limit.
   */
  claimUpgrade(): NodeUpgrade | undefined {
    const upgrade = this.upgrade;
    const exchange = this.exchange;
    if (upgrade === undefined || exchange === undefined || exchange.upgraded) return undefined;
    if (!exchange.handOff()) return undefined;
    exchange.upgraded = true;
    // The connection is the taker's now: the stand-in response must never write on it.
    this.res.detachSocket(upgrade.socket as Socket);
    exchange.code = 101;
    readStatusLine(upgrade.socket, exchange);
    upgrade.socket.once('close', () => exchange.handOffDone());
    return upgrade;
  }

  fail(error: unknown): void {
    this.exchange?.fail(error);
  }

  earlyHints(headers: Headers): Promise<void> {
    // Node's writeEarlyHints takes a record: repeated names become arrays (several Link).
    const hints: Record<string, string | string[]> = {};
    for (const [name, value] of headers) {
      const key = name.toLowerCase();
      const prior = hints[key];
      hints[key] =
        prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value];
    }
    return new Promise((resolve, reject) => {
      try {
        // HTTP/1.1 calls back once written; HTTP/2's compat response takes no callback and
        // answers with a boolean (the HEADERS frame is queued on the stream).
        const queued: unknown = this.res.writeEarlyHints(hints, resolve);
        if (typeof queued === 'boolean') resolve();
      } catch (error) {
        // Node checks each Link value itself.
        reject(new NgiError('NGI_ERR_INVALID_HEADER', (error as Error).message, { cause: error }));
      }
    });
  }

  trailers(headers: Headers): void {
    // A record, which both HTTP/1.1 and HTTP/2's compat response take (h2's reads no pairs).
    const record: Record<string, string> = {};
    for (const [name, value] of headers) {
      const prior = record[name];
      record[name] = prior === undefined ? value : `${prior}, ${value}`;
    }
    this.res.addTrailers(record);
  }

  write(chunk: Chunk): boolean {
    return this.res.write(chunk);
  }

  end(chunk?: Chunk): void {
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
  }

  drain(): Promise<void> {
    if (this.closed) return RESOLVED;
    if (this.waiting === undefined) {
      this.waiting = new Promise((resolve) => (this.wake = resolve));
      // Made on the first backpressure only: most responses never wait.
      this.res.once('drain', (this.onDrain ??= () => this.wakeDrain()));
    }
    return this.waiting;
  }

  abort(_error: Error): void {
    this.gone = true;
    this.res.destroy();
    // Taken by an upgrade: the response is detached, the connection itself must go.
    if (this.exchange?.upgraded === true) this.upgrade?.socket.destroy();
    this.wakeDrain();
  }

  private wakeDrain(): void {
    const wake = this.wake;
    this.waiting = undefined;
    this.wake = undefined;
    wake?.();
  }

  /** `res` closed: if it never finished, the client went away. */
  readonly onClose = (): void => {
    if (!this.res.writableFinished) {
      this.gone = true;
      this.wakeDrain();
      this.exchange?.abandon(new NgiError('NGI_ERR_CLIENT_GONE'));
    } else this.exchange?.handOffDone();
  };
}

/**
 * Notes the status a Node upgrade listener answers with on the raw connection (101, or the
 * 400/401 of a refused handshake) for the access log: the first bytes it writes are the
 * status line. Only the first `write`/`end` is looked at, then the socket's own are back.
 */
function readStatusLine(socket: Duplex, exchange: Exchange): void {
  const { write, end } = socket;
  const look = (chunk: unknown): void => {
    socket.write = write;
    socket.end = end;
    const text =
      typeof chunk === 'string'
        ? chunk
        : Buffer.isBuffer(chunk)
          ? chunk.toString('latin1', 0, 12)
          : '';
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    if (match) exchange.code = Number(match[1]);
  };
  socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]) {
    look(chunk);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Duplex['write'];
  socket.end = function (this: Duplex, ...args: unknown[]) {
    if (typeof args[0] !== 'function') look(args[0]);
    else look(undefined);
    return (end as (...args: unknown[]) => Duplex).apply(this, args);
  } as Duplex['end'];
}

/**
 * Whether 103s and trailers can reach this client: HTTP/1.1 or later (an HTTP/1.0 client
 * takes any status line as final, and has no chunked framing), on a real connection (not a
 * response ngi emulates for a handler further up).
 */
function canInform(req: IncomingMessage): boolean {
  return (
    req.httpVersionMajor >= 2 ||
    (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1 && req.socket instanceof Socket)
  );
}

/**
 * The reason to give `writeHead`: none for the standard one (Node writes it from its own table
 * and skips checking a string it did not get), the app's own otherwise.
 */
function nodeReason(code: number, reason: string): string | undefined {
  return reason === '' || reason === STATUS_CODES[code] ? undefined : reason;
}

export interface NodeRequestOptions extends NodeEnvironOptions {
  /** Connect-style fallback: called with the error instead of answering 500. */
  next?: ((error?: unknown) => void) | undefined;
  /** Called once the exchange is over (a framework middleware awaiting it, as Koa's do). */
  onDone?: (() => void) | undefined;
  /** The raw connection, when the request came through Node's `'upgrade'` event. */
  upgrade?: NodeUpgrade | undefined;
}

/** Serves one Node request with an NGI app. Never throws; failures become responses. */
export function serveNodeRequest(
  app: App,
  req: IncomingMessage,
  res: ServerResponse,
  options: NodeRequestOptions,
): Exchange {
  const exchange = createNodeExchange(req, res, options);
  void exchange.run(app);
  return exchange;
}

/**
 * The exchange `serveNodeRequest` runs, built but not yet run: a server that times or logs
 * exchanges takes it first, so its clock starts before the app's synchronous work does.
 *
 * @example
 * const exchange = createNodeExchange(req, res, {});
 * const started = performance.now();
 * void exchange.run(app);
 */
export function createNodeExchange(
  req: IncomingMessage,
  res: ServerResponse,
  options: NodeRequestOptions,
): Exchange {
  const sink = new NodeSink(req, res, options.upgrade);
  const exchange = exchangeOnSink(req, res, sink, options);
  const environ = exchange.environ;
  if (options.upgrade !== undefined) environ['ngi.upgrade'] = new NodeUpgradeRequest(sink);
  else if (canInform(req)) {
    environ['ngi.early_hints'] = (headers) => exchange.sendEarlyHints(headers);
    environ['ngi.trailers'] = new ExchangeTrailers(exchange);
  }
  return exchange;
}

/**
 * The exchange of a request answered through a Node-side sink, wired the same way on every
 * Node transport (HTTP/1 here, HTTP/2 in `http2.ts`): the environ from the request, the sink's
 * back-pointer and `kNodeOrigin` (for the fast path), the host's failure and done hooks, and
 * the response's close.
 */
export function exchangeOnSink(
  req: IncomingMessage,
  res: { on(event: 'close', listener: () => void): unknown },
  sink: NodeSink,
  options: NodeRequestOptions,
): Exchange {
  const controller = new LazySignal();
  const environ = environFromNode(req, options, controller);
  const exchange = new Exchange(environ, sink, controller);
  sink.exchange = exchange;
  environ[kNodeOrigin] = sink;
  if (options.next !== undefined) exchange.onFailure = options.next;
  if (options.onDone !== undefined) exchange.onDone = options.onDone;
  // `on`, not `once`: a response closes once, and `once` wraps every listener in a closure.
  res.on('close', sink.onClose);
  return exchange;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Exchange } from '../core/exchange.js';
import type { App, Headers, StartResponse } from '../core/types.js';
import { NodeSink, exchangeOnSink, type NodeRequestOptions } from './node.js';

/*
 * An NGI app served on an HTTP/2 stream, through node:http2's compatibility request and
 * response: they read and write like `IncomingMessage`/`ServerResponse` (a Readable body,
 * `write()` returning false past the stream's window, 'drain', 'close' on RST_STREAM), so
 * the Node sink moves the bytes. What differs is handled here.
 */

/** Writes an exchange onto an HTTP/2 stream. */
class Http2Sink extends NodeSink {
  readonly #res: Http2ServerResponse;

  constructor(req: Http2ServerRequest, res: Http2ServerResponse) {
    super(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    this.#res = res;
  }

  override get closed(): boolean {
    return this.gone || this.#res.stream.destroyed;
  }

  override head(code: number, _reason: string, headers: Headers, addLength: number): void {
    // HTTP/2 has no reason phrase (Node warns when given one); the engine already dropped
    // the hop-by-hop headers, which h2 forbids.
    super.head(code, '', headers, addLength);
  }

  override handOff(_startResponse: StartResponse, _input: unknown): boolean {
    // Frameworks graft their prototypes onto `http.IncomingMessage`/`ServerResponse`, which
    // the compatibility objects are not: a Node handler runs on the emulated pair instead.
    return false;
  }
}

/**
 * Serves one HTTP/2 request with an NGI app: `SERVER_PROTOCOL` `HTTP/2.0`, `HTTPS` `on`,
 * `HTTP_HOST` from `:authority`; a reset stream fires `ngi.signal`. Never throws.
 *
 * @example
 * http2.createSecureServer({ key, cert }, (req, res) => serveHttp2Request(app, req, res, {}));
 */
export function serveHttp2Request(
  app: App,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  options: NodeRequestOptions,
): Exchange {
  const exchange = createHttp2Exchange(req, res, options);
  void exchange.run(app);
  return exchange;
}

/** The exchange `serveHttp2Request` runs, built but not yet run (see `createNodeExchange`). */
export function createHttp2Exchange(
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  options: NodeRequestOptions,
): Exchange {
  return exchangeOnSink(req as unknown as IncomingMessage, res, new Http2Sink(req, res), options);
}

// An ngi adapter for h3 (v2, https://h3.dev), written only against ngi-gateway's public API:
// what a third party would publish as `ngi-h3`. h3 is Fetch-based, so toFetch/fromFetch do
// the work; on Node the adapter hands ngi what the Fetch Request lost (the raw target, the
// client address, the Node streams), so the app sees exactly what the client sent.
import { fromFetch, toFetch } from 'ngi-gateway/fetch';

/**
 * An NGI app as an h3 handler, mounted at `prefix` (which becomes SCRIPT_NAME):
 * `h3.all('/legacy', handler)` and `h3.all('/legacy/**', handler)` with `toH3(app, { prefix: '/legacy' })`.
 */
export function toH3(app, { prefix = '', errors } = {}) {
  const portable = toFetch(app, { scriptName: prefix, errors });
  return (event) => {
    const node = event.runtime?.node;
    // Deno, Bun, workers: the Request is all there is.
    if (node === undefined) return portable(event.req);
    // On Node (srvx): the raw target keeps %2e%2e as sent, the body is read from the Node
    // request without a web stream in between, and the Node response says when the client left.
    return toFetch(app, {
      scriptName: prefix,
      errors,
      requestUri: node.req.url,
      remoteAddress: node.req.socket.remoteAddress,
      input: node.req,
      nodeResponse: node.res,
    })(event.req);
  };
}

/** An h3 app as an NGI app: `mount({ '/api': fromH3(h3) })`, `ngi serve`, `toExpress(fromH3(h3))`. */
export function fromH3(h3) {
  return fromFetch((request) => h3.fetch(request));
}

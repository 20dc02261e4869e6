/*
 * Every symbol ngi puts on objects it does not own, in one place. Round-trip tags are
 * directional: each names which conversion made the object and holds what it was made from,
 * so `toNodeHandler(fromNodeHandler(h)) === h` and a Fetch handler is never taken for a
 * Node one.
 */

/** Environ key: the `NodeOrigin` of a request served from a Node `req`/`res` (see node-origin.ts). */
export const kNodeOrigin: unique symbol = Symbol('ngi.nodeOrigin');
/** On a function: marks it as an NGI app (see `defineApp`). */
export const kNgiApp: unique symbol = Symbol.for('ngi.app');
/** On an NGI app made by `fromNodeHandler(handler)`: that handler. */
export const kFromNodeHandler: unique symbol = Symbol.for('ngi.from.nodeHandler');
/** On a Node handler made by `toNodeHandler(app)`: that app. */
export const kToNodeHandler: unique symbol = Symbol.for('ngi.to.nodeHandler');
/** On an NGI app made by `fromFetch(handler)`: that handler. */
export const kFromFetchHandler: unique symbol = Symbol.for('ngi.from.fetchHandler');
/** On a Fetch handler made by `toFetch(app)`: that app. */
export const kToFetchHandler: unique symbol = Symbol.for('ngi.to.fetchHandler');
/**
 * On a Fetch `Request` ngi built from an environ (`fromFetch`, `fromHono`): its `FetchOrigin`,
 * so a `toFetch`/`toHono` host it reaches takes back what the `Request` cannot carry (the raw
 * target, the client's address, TLS, the protocol, the body's framing). See fetch-origin.ts.
 */
export const kFetchOrigin: unique symbol = Symbol.for('ngi.fetchOrigin');
/**
 * On a Fetch `Response` ngi built for a status Fetch cannot carry (600-999): the
 * `CarriedStatus` with the real answer, so a `fromFetch`/`fromHono` guest it reaches passes
 * that on, while a Fetch runtime sends the 502 the Response itself says. See fetch-origin.ts.
 */
export const kCarriedStatus: unique symbol = Symbol.for('ngi.carriedStatus');

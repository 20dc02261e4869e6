/** Environ key: the Node host of this request (its `req`, `res` and exchange), for fast paths. */
export const kNodeHost: unique symbol = Symbol('ngi.nodeHost');
/** On a converted function: the function it wraps, so round trips return the original. */
export const kOriginal: unique symbol = Symbol.for('ngi.original');
/** On a function: marks it as an NGI app (see `defineApp`). */
export const kNgiApp: unique symbol = Symbol.for('ngi.app');

import { replaceLazyKey } from './environ.js';

/**
 * `ngi.signal`, made only when read. Node 20 spends microseconds building an `AbortSignal`
 * (an EventTarget), more than the rest of a hello-world request; most apps never read it.
 */
export class LazySignal {
  private controller: AbortController | undefined = undefined;
  private reason: unknown = undefined;
  private fired = false;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.fired) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.fired;
  }

  abort(reason?: unknown): void {
    if (this.fired) return;
    this.fired = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

const kLazySignal: unique symbol = Symbol('ngi.lazySignal');

/**
 * Shared accessor for `environ['ngi.signal']`: an own, enumerable property (so copies made
 * with `{ ...environ }` keep a real signal) whose getter is one function for every request.
 * A getter written inside the environ's object literal costs a closure and a slow literal
 * per request; `defineProperty` with this shared descriptor is far cheaper.
 */
const SIGNAL_PROPERTY: PropertyDescriptor = {
  get(this: { [kLazySignal]: LazySignal }): AbortSignal {
    return this[kLazySignal].signal;
  },
  set(this: object, value: unknown): void {
    replaceLazyKey(this, 'ngi.signal', value);
  },
  enumerable: true,
  configurable: true,
};

/** Gives an environ its `ngi.signal`, backed by `lazy`. */
export function attachSignal(environ: object, lazy: LazySignal): void {
  (environ as { [kLazySignal]: LazySignal })[kLazySignal] = lazy;
  Object.defineProperty(environ, 'ngi.signal', SIGNAL_PROPERTY);
}

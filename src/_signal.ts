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

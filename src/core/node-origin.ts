import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StartResponse } from './types.js';

/**
 * What a host serving an NGI app from a Node `req`/`res` leaves in the environ (under
 * `kNodeOrigin`): the original objects, and the one door through which a Node handler further
 * down may answer on them natively (the fast path of `fromNodeHandler`). The host alone
 * decides whether the door opens; the handler side never reads the host's state.
 */
export interface NodeOrigin {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /**
   * Gives the native response to a Node handler: `true` only when `startResponse` is the
   * host's own (no middleware wrapped it), nothing has been started, and `input` (the
   * environ's `ngi.input`) is still `req` itself (no body was read upstream).
   */
  handOff(startResponse: StartResponse, input: unknown): boolean;
  /** The handler that took over failed: a 500 page, or an aborted connection once its head is out. */
  fail(error: unknown): void;
}

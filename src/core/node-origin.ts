import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { StartResponse } from './types.js';

/** The connection of a request that asks for an upgrade (Node's `'upgrade'` event arguments). */
export interface NodeUpgrade {
  /** The raw connection: after an upgrade it carries the new protocol. */
  readonly socket: Duplex;
  /** Bytes the client sent after the request head (the first frames of the new protocol). */
  readonly head: Buffer;
}

/**
 * What a host serving an NGI app from a Node `req`/`res` leaves in the environ (under
 * `kNodeOrigin`): the original objects, and the one door through which a Node handler further
 * down may answer on them natively (the fast path of `fromNodeHandler`). The host alone
 * decides whether the door opens; the handler side never reads the host's state.
 */
export interface NodeOrigin {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Set when the request came through Node's `'upgrade'` event: its raw connection. */
  readonly upgrade: NodeUpgrade | undefined;
  /**
   * Gives the native response to a Node handler: `true` only when `startResponse` is the
   * host's own (no middleware wrapped it), nothing has been started, and `input` (the
   * environ's `ngi.input`) is still `req` itself (no body was read upstream).
   */
  handOff(startResponse: StartResponse, input: unknown): boolean;
  /**
   * Gives the raw connection of an upgrade request to a Node upgrade listener, on the same
   * terms as `handOff`; the exchange then lasts until that connection closes. `undefined`
   * when the request is no upgrade or the door is shut.
   */
  takeUpgrade(startResponse: StartResponse, input: unknown): NodeUpgrade | undefined;
  /** The handler that took over failed: a 500 page, or an aborted connection once its head is out. */
  fail(error: unknown): void;
}

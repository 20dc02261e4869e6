import type { Readable } from 'node:stream';
import type { Environ } from './types.js';

/**
 * What a Fetch `Request` built by ngi carries under `kFetchOrigin`: the environ it was built
 * from. `new Request(url)` normalises the target (`/../`, `%2e%2e`), has no client address, no
 * TLS flag and no framing; a host that gets this very Request back reads them here instead.
 */
export interface FetchOrigin {
  readonly environ: Environ;
  /**
   * The request target that `request.url` stands for, as the client sent it (below the mount
   * point the Request was made for).
   */
  readonly target: string;
  /** The URL the Request was built with: a Request whose `url` differs is not this one. */
  readonly url: string;
  /**
   * The body as the environ's own Node stream, when nothing read the Request's body (no
   * round trip through a web stream); `undefined` once the Request's body was touched.
   */
  takeInput(): Readable | undefined;
}

/**
 * What a Fetch `Response` built by ngi carries under `kCarriedStatus` when its status is one
 * Fetch cannot express (`new Response(body, { status: 700 })` throws): the real status and
 * reason, and a Response with the real headers and body. The Response it sits on is a 502
 * that says why, for a runtime that sends it; an ngi guest takes `response` instead.
 */
export interface CarriedStatus {
  readonly code: number;
  readonly reason: string;
  /** The answer itself, status aside (its own `status` is 200). */
  readonly response: Response;
}

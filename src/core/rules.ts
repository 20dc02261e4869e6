/*
 * The contract's rules for a response head, in one place: the engine (which enforces what a
 * host must) and the validator (which insists on what an app should) both read them here, so
 * they cannot drift apart. Spec: docs/spec.md §4 (R4.1 status, R4.2 no 1xx, R4.3–R4.4 header
 * names and values, R4.5 hop-by-hop, R4.6 Content-Length).
 */

/** An RFC 9110 token: what a header name (and a method) may be, on every transport. */
export const TOKEN: RegExp = /^[!#$%&'*+\-.^_`|~\dA-Za-z]+$/;

/** What no header value or reason may hold: it would split the head (response splitting). */
export const CR_LF_NUL: RegExp = /[\r\n\0]/;

/** What Node refuses to send in a header value or reason (its `checkInvalidHeaderChar`). */
export const UNSENDABLE: RegExp = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The code of a `"<code> <reason>"` status, or -1 when it is not one: three digits, the first
 * 1-9, then a space and a reason without CR, LF or NUL. A bare code is accepted unless
 * `reasonRequired` (R4.1: a host may take `"200"` and send the standard reason; an app under
 * the validator must give one). By hand: a regex with captures allocates a match per response.
 */
export function statusCode(status: unknown, reasonRequired = false): number {
  if (typeof status !== 'string' || status.length < 3) return -1;
  const a = status.charCodeAt(0) - 48;
  const b = status.charCodeAt(1) - 48;
  const c = status.charCodeAt(2) - 48;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  if (status.length === 3) return reasonRequired ? -1 : a * 100 + b * 10 + c;
  if (status.charCodeAt(3) !== 32 || CR_LF_NUL.test(status)) return -1;
  if (reasonRequired && (status.length === 4 || UNSENDABLE.test(status))) return -1;
  return a * 100 + b * 10 + c;
}

/** R4.2: a 1xx cannot be the final status (a client would take it as interim and wait). */
export function isInformational(code: number): boolean {
  return code < 200;
}

/** R4.5: the lower-case names that belong to the connection, which the host owns. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

/** Whether a lower-case header name is hop-by-hop: the list above, or any `proxy-*`. */
export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-');
}

/**
 * Lower-case names that may not be trailers (RFC 9110 §6.5.1): framing, routing, request
 * modifiers, authentication, and what a client must know before the body (a cookie, a type).
 */
const NOT_TRAILERS = new Set([
  'content-length',
  'content-type',
  'content-encoding',
  'content-range',
  'host',
  'set-cookie',
  'authorization',
  'www-authenticate',
  'cache-control',
  'expires',
  'date',
  'location',
  'retry-after',
  'vary',
  'age',
]);

/** Whether a lower-case name may not be sent as a trailer: hop-by-hop, or in the list above. */
export function isForbiddenTrailer(lowerName: string): boolean {
  return isHopByHop(lowerName) || NOT_TRAILERS.has(lowerName);
}

/** R4.6: a Content-Length value as a byte count, or -1 when it is not plain digits. */
export function contentLength(value: string): number {
  if (value.length === 0 || value.length > 16) return -1;
  for (let i = 0; i < value.length; i++) {
    const digit = value.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
  }
  const length = Number(value);
  return Number.isSafeInteger(length) ? length : -1;
}

/** Whether the response to this request has no body (HEAD, 204, 304; a 1xx is interim). */
export function isBodiless(code: number, isHead: boolean): boolean {
  return isHead || code < 200 || code === 204 || code === 304;
}

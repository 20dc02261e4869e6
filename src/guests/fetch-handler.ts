// Running a Fetch handler on an NGI environ: the `Request` it gets, and its `Response`
// passed to `startResponse` (what `fromFetch` and `fromHono` do per request).
import { isHopByHop } from '../core/rules.js';
import { STATUS_CODES } from 'node:http';
import { NgiError, formatError } from '../core/errors.js';
import type { App, Chunk, Environ, Headers as NgiHeaders } from '../core/types.js';
import { inexpressible, requestFromEnviron } from './fetch-request.js';
import { readBody } from './fetch-response-body.js';
import { lightPartsOf } from './light-response.js';
import type { CarriedStatus } from '../core/fetch-origin.js';
import { kCarriedStatus } from '../core/symbols.js';

const EMPTY: never[] = [];

function ignore(): void {}

/** A clear answer, and a log line, for a request the Fetch handler cannot be given. */
function refuse(
  environ: Environ,
  startResponse: Parameters<App>[1],
  status: 400 | 501 | 502,
  message: string,
  cause?: unknown,
): string[] {
  environ['ngi.errors'].write(
    formatError(
      new NgiError('NGI_ERR_UNSUPPORTED', message, { cause }),
      `${environ.REQUEST_METHOD} ${environ.REQUEST_URI}`,
    ),
  );
  const reason = STATUS_CODES[status]!;
  startResponse(`${status} ${reason}`, [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`${status} ${reason}: ${message}\n`];
}

/**
 * Calls a Fetch handler for one NGI request and answers with its Response (what `fromFetch`
 * and `fromHono` do); `env` is passed as the handler's second argument.
 *
 * @example
 * const app: App = (environ, startResponse) =>
 *   callFetchHandler(worker.fetch, environ, startResponse, { KV: kv });
 */
export function callFetchHandler<Env>(
  handler: (request: Request, env: Env) => Response | Promise<Response>,
  environ: Environ,
  startResponse: Parameters<App>[1],
  env: Env,
): Iterable<Chunk> | AsyncIterable<Chunk> | Promise<Iterable<Chunk> | AsyncIterable<Chunk>> {
  const why = inexpressible(environ);
  if (why !== undefined) return refuse(environ, startResponse, 501, why);
  let request: Request;
  try {
    request = requestFromEnviron(environ);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return refuse(environ, startResponse, 400, `not expressible as a Fetch Request: ${message}`);
  }
  const result = handler(request, env);
  if (typeof (result as Promise<Response>).then === 'function') {
    return (result as Promise<Response>).then((r) => answer(r, environ, startResponse));
  }
  return answer(result as Response, environ, startResponse);
}

/** Passes a Response's status, headers (every `Set-Cookie`) and body to `startResponse`. */
function answer(
  response: Response,
  environ: Environ,
  startResponse: Parameters<App>[1],
): Iterable<Chunk> | AsyncIterable<Chunk> | Promise<Iterable<Chunk> | AsyncIterable<Chunk>> {
  // A light Response (`ngi serve` installed it): its text or bytes as they are, no stream.
  let light =
    response !== null && typeof response === 'object' ? lightPartsOf(response) : undefined;
  if (
    light === undefined &&
    (response === null ||
      typeof response !== 'object' ||
      typeof response.status !== 'number' ||
      typeof response.headers !== 'object')
  ) {
    throw new NgiError('NGI_ERR_INVALID_BODY', `the Fetch handler returned ${typeof response}`);
  }
  // A status Fetch cannot carry, from an ngi host: the real answer rides under the 502.
  const carried = (response as { [kCarriedStatus]?: CarriedStatus })[kCarriedStatus];
  let status = response.status;
  let statusText = response.statusText;
  if (carried !== undefined) {
    response.body?.cancel().then(undefined, ignore);
    status = carried.code;
    statusText = carried.reason;
    response = carried.response;
    light = lightPartsOf(response);
  } else if (status < 200 || status > 599) {
    // `Response.error()` (status 0): the handler itself reports a network error.
    return refuse(environ, startResponse, 502, `the Fetch handler answered a network error`);
  }
  const headers: NgiHeaders = [];
  if (light !== undefined && light.headers === undefined) {
    const pairs = light.pairs;
    for (let i = 0; i < pairs.length; i++) {
      if (!isHopByHop(pairs[i]![0])) headers.push(pairs[i]!);
    }
  } else {
    response.headers.forEach((value, name) => {
      // A Fetch Response may name its hop (Hono's streamSSE sets `Connection: keep-alive`); in
      // NGI the host owns the connection, so those names stay behind (R4.5).
      if (name !== 'set-cookie' && !isHopByHop(name)) headers.push([name, value]);
    });
    const cookies = response.headers.getSetCookie();
    for (let i = 0; i < cookies.length; i++) headers.push(['set-cookie', cookies[i]!]);
  }
  const reason = statusText || STATUS_CODES[status] || 'Unknown';
  startResponse(`${status} ${reason}`, headers);
  // HEAD as GET: the body goes to the engine, which sends none of it but the length the GET
  // would have (for a body in hand, or short enough to be read at once) and stops pulling,
  // cancelling the stream, once the head is out.
  if (light !== undefined) return light.body === null ? EMPTY : [light.body];
  const body = response.body;
  if (body === null) return EMPTY;
  return readBody(body.getReader());
}

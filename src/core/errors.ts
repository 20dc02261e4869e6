/**
 * Every failure ngi reports carries a stable `code` (`NGI_ERR_*`) and, where there is one,
 * the underlying `cause`.
 */
export const codes = {
  NGI_ERR_APP_THREW: 'the app threw or its body failed',
  NGI_ERR_NO_START_RESPONSE: 'the app produced a body without calling startResponse',
  NGI_ERR_START_RESPONSE_TWICE: 'startResponse called twice without excInfo',
  NGI_ERR_INVALID_STATUS: 'status is not "<code> <reason>"',
  NGI_ERR_INVALID_HEADER: 'header name or value is not a string or holds CR, LF or NUL',
  NGI_ERR_HOP_BY_HOP: 'the app set a hop-by-hop header',
  NGI_ERR_INVALID_CHUNK: 'a body chunk is neither a string nor a Uint8Array',
  NGI_ERR_CONTENT_LENGTH_EXCEEDED: 'the body is longer than its Content-Length',
  NGI_ERR_CONTENT_LENGTH_SHORT: 'the body is shorter than its Content-Length',
  NGI_ERR_INVALID_BODY: 'the app returned something that is not an iterable body',
  NGI_ERR_CLIENT_GONE: 'the client went away before the response was complete',
  NGI_ERR_TIMEOUT: 'the request took longer than allowed',
  NGI_ERR_BAD_REQUEST: 'the request is malformed',
  NGI_ERR_VALIDATION: 'contract violation',
  NGI_ERR_BAD_PACKET: 'malformed uwsgi packet',
  NGI_ERR_BODY_CONSUMED: 'the request body was already consumed upstream',
  NGI_ERR_UNSUPPORTED: 'the target cannot express this',
  NGI_ERR_APP_LOAD: 'the app module could not be loaded or recognised',
  NGI_ERR_STARTUP: "the app's lifespan startup failed",
  NGI_ERR_SHUTDOWN: "the app's lifespan shutdown failed",
  NGI_ERR_LISTEN: 'a listener could not be opened',
  NGI_ERR_UPGRADED: 'the connection was upgraded: no HTTP response can follow',
} as const;

export type ErrorCode = keyof typeof codes;

/** The HTTP status a code answers with when it ends a request before the head; 500 otherwise. */
const STATUSES: Partial<Record<ErrorCode, number>> = {
  NGI_ERR_BAD_REQUEST: 400,
  NGI_ERR_BAD_PACKET: 400,
  NGI_ERR_TIMEOUT: 504,
};

/** An error with a stable code, and the HTTP status a client gets for it. */
export class NgiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; status?: number }) {
    super(message ?? codes[code], options);
    this.name = 'NgiError';
    this.code = code;
    this.status = options?.status ?? STATUSES[code] ?? 500;
  }
}

/**
 * Makes an error of a code, after fastify's `createError`: its message (the code's own by
 * default) and the HTTP status it answers with (the code's own by default).
 *
 * @example
 * throw createError('NGI_ERR_BAD_REQUEST', 'the chunk size is missing'); // answered 400
 */
export function createError(code: ErrorCode, message?: string, status?: number): NgiError {
  return new NgiError(code, message, status === undefined ? undefined : { status });
}

/** Malformed input from the client: answered 400 (or the given status), never a crash. */
export class RequestError extends NgiError {
  constructor(message: string, status = 400, options?: { cause?: unknown }) {
    super('NGI_ERR_BAD_REQUEST', message, { ...options, status });
    this.name = 'RequestError';
  }
}

/**
 * How a failure before the head is answered, by Koa's rules: an error's own `status` (or
 * `statusCode`) when it is an HTTP error status (http-errors, `ctx.throw`, `@fastify/error`),
 * else 500; its message shown only when it says `expose: true` (http-errors does for 4xx).
 * ngi's own errors answer with their code's status and never show their message.
 *
 * @example
 * httpAnswerOf(Object.assign(new Error('no such user'), { status: 404, expose: true }));
 * // { status: 404, expose: true }
 */
export function httpAnswerOf(error: unknown): { status: number; expose: boolean } {
  if (error instanceof NgiError) return { status: error.status, expose: false };
  const fields = error as { status?: unknown; statusCode?: unknown; expose?: unknown } | null;
  const raw = typeof fields?.status === 'number' ? fields.status : fields?.statusCode;
  const status =
    Number.isInteger(raw) && (raw as number) >= 400 && (raw as number) <= 599
      ? (raw as number)
      : 500;
  return { status, expose: status === raw && fields?.expose === true };
}

/** One log line for an error: code, where, and the message with its first stack frame. */
export function formatError(error: unknown, where: string): string {
  const err = error instanceof Error ? error : new Error(String(error));
  const code = (err as { code?: unknown }).code;
  const origin = err.cause instanceof Error ? err.cause : err;
  const frame = origin.stack?.split('\n').find((line) => line.trimStart().startsWith('at '));
  return `ngi: ${typeof code === 'string' ? code + ' ' : ''}${where}: ${err.name}: ${err.message}${
    frame ? ` (${frame.trim()})` : ''
  }\n`;
}

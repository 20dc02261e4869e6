import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { NgiError } from '../core/errors.js';
import type { App, Environ } from '../core/types.js';
import { validator } from '../middleware/validator.js';
import { createHttpServer } from '../server/http-listener.js';
import { ruleOf } from './_rules.js';
import { abandon, parseBase, send } from './_wire.js';
import type { ConformanceReport, ConformanceResult } from './run-conformance.js';

/** One request {@link runAppConformance} sends to the app. */
export interface AppRequest {
  method?: string;
  /** Sent as written (raw escapes stay raw). */
  path: string;
  headers?: Array<[string, string]>;
  body?: string | Uint8Array;
  /** The client goes away at the first byte of the response (the app's body must be closed). */
  leave?: boolean;
}

/** Options of {@link runAppConformance}. */
export interface AppConformanceOptions {
  /** The requests to send, in order; by default a GET, HEAD, a query, a POST, an OPTIONS, a 404 and a client that leaves. */
  requests?: AppRequest[];
  /** The bound on each request, in ms (default 10 000). */
  timeoutMs?: number;
}

/** What a framework app answers without special routes: the root, and a path it has not. */
export const defaultAppRequests: readonly AppRequest[] = [
  { path: '/' },
  { method: 'HEAD', path: '/' },
  { path: '/?kit=1&kit=2&empty=' },
  { method: 'POST', path: '/', headers: [['Content-Type', 'text/plain']], body: 'ngi kit' },
  { method: 'OPTIONS', path: '/' },
  { path: '/ngi-kit/not%2Fthere' },
  { path: '/', leave: true },
];

const REQUEST_HEADER = 'X-Ngi-Kit-Request';

/**
 * The other side of the kit: checks an app (your own, or what an adapter's `fromX` makes of a
 * framework app) under ngi's reference host (its HTTP listener) with `validator()`, sending
 * `requests` over a real socket. Each result names the rule of docs/spec.md the app broke,
 * or `R2.1` when it threw: a status the app chose (a 404, a 405) is never a failure.
 *
 * @example
 * import express from 'express';
 * import { fromExpress } from 'ngi-gateway/express';
 * import { runAppConformance } from 'ngi-gateway/testing';
 *
 * const app = express().get('/', (req, res) => res.send('hi'));
 * const report = await runAppConformance(fromExpress(app));
 * console.log(`${report.passed} passed, ${report.failed} failed`);
 */
export async function runAppConformance(
  app: App,
  options: AppConformanceOptions = {},
): Promise<ConformanceReport> {
  const requests = options.requests ?? defaultAppRequests;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const closeTimeout = Math.min(timeoutMs, 1000);
  const found = requests.map(() => [] as string[]);
  const indexOf = (environ: Environ) => Number(environ.HTTP_X_NGI_KIT_REQUEST);
  const checked = validator(app, {
    closeTimeout,
    onViolation: (error: NgiError, environ: Environ) =>
      found[indexOf(environ)]?.push(
        `${error.message.replace(/^validator: /, '')} (${ruleOf(error.message)})`,
      ),
  });
  let current = -1;
  const errors = {
    // The host's log, for what the app threw: the validator's own findings are counted above.
    write(line: string) {
      if (!/NGI_ERR_VALIDATION/.test(line))
        found[current]?.push(`the app failed: ${line.trim()} (R2.1)`);
    },
  };
  const server = createHttpServer(checked, { errors });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const base = parseBase(`http://127.0.0.1:${port}`);
  const results: ConformanceResult[] = [];
  try {
    for (let i = 0; i < requests.length; i++) {
      const request = requests[i]!;
      current = i;
      const tag: Array<[string, string]> = [[REQUEST_HEADER, String(i)]];
      const name = `${request.method ?? 'GET'} ${request.path}${request.leave ? ', client leaves' : ''}`;
      let detail = '';
      if (request.leave) {
        await abandon(base, request.path, 'first-byte', tag, timeoutMs);
      } else {
        const response = await send(base, {
          method: request.method ?? 'GET',
          path: request.path,
          headers: [...tag, ...(request.headers ?? [])],
          ...(request.body === undefined ? {} : { body: request.body }),
          timeoutMs,
        });
        if (response.status === 0 || (!response.complete && response.status < 500)) {
          detail = `no complete response: ${response.error ?? 'cut short'}`;
        }
      }
      results.push({ rule: 'R2.1', name, ok: detail === '', detail });
    }
    await new Promise((resolve) => setTimeout(resolve, closeTimeout + 100));
  } finally {
    server.closeAllConnections();
    server.close();
  }
  for (let i = 0; i < results.length; i++) {
    const result = results[i]!;
    const violations = found[i]!;
    if (violations.length === 0) continue;
    result.ok = false;
    result.rule = /\((R\d+\.\d+)\)$/.exec(violations[0]!)?.[1] ?? 'R2.1';
    result.detail = [result.detail, ...violations].filter(Boolean).join('; ');
  }
  const passed = results.filter((r) => r.ok).length;
  return { passed, failed: results.length - passed, results };
}

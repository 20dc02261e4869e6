import { defineApp } from '../core/define-app.js';
import type { NgiError } from '../core/errors.js';
import type { App } from '../core/types.js';
import { validator } from '../middleware/validator.js';
import type { CaseContext, KitCase } from './_case.js';
import { bodyCases } from './_cases-body.js';
import { environCases } from './_cases-environ.js';
import { responseCases } from './_cases-response.js';
import { ruleOf } from './_rules.js';
import { abandon, authority, parseBase, rawTarget, send, sendRaw, type Base } from './_wire.js';

/** A host serving the kit's app: where it listens, and how to stop it. */
export interface ConformanceHost {
  /**
   * The base URL of the app (`http://127.0.0.1:8080`, or `http://127.0.0.1:8080/legacy` when
   * the host mounts it under a prefix: SCRIPT_NAME must then be `/legacy`). An `https:` URL is
   * spoken to as HTTP/1.1 over TLS.
   */
  url: string;
  close(): unknown;
  /** For an `https:` URL: the certificate (authority) to trust, such as a test's self-signed one. */
  ca?: string | Buffer;
}

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /** Hosts the given NGI app on the host under test. Called once per run. */
  start(app: App): ConformanceHost | Promise<ConformanceHost>;
  /** Runs only the cases this returns true for (by rule number or name). */
  filter?: (kitCase: { rule: string; name: string }) => boolean;
  /** The bound on every wait of a case, in ms (default 10 000): a host that hangs fails it. */
  timeoutMs?: number;
}

/** The outcome of one case: the rule of docs/spec.md it checks, and what went wrong. */
export interface ConformanceResult {
  rule: string;
  name: string;
  ok: boolean;
  /** Empty when `ok`; else what the client saw, and what the validator found. */
  detail: string;
}

export interface ConformanceReport {
  passed: number;
  failed: number;
  results: ConformanceResult[];
}

/** Every case of the kit, in the order of docs/spec.md. */
export const kitCases: readonly KitCase[] = [...environCases, ...responseCases, ...bodyCases].sort(
  (a, b) => ruleKey(a.rule) - ruleKey(b.rule),
);

function ruleKey(rule: string): number {
  const [major, minor] = rule.slice(1).split('.').map(Number);
  return major! * 1000 + minor!;
}

/** Request header that tells the kit's app which case a request belongs to. */
const CASE_HEADER = 'X-Ngi-Kit-Case';

/**
 * Checks a host (a server, a framework adapter's `toX`, a gateway) against the rules of
 * docs/spec.md marked **kit**: it hosts the kit's own NGI app with `start`, sends each case's
 * requests over the wire, checks what a client sees, and runs every case's app under
 * `validator()` so what the host does wrong on the app's side (an environ key missing, a body
 * closed twice or never) is named too. Never throws for a failing host; rejects only when
 * `start` does.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { runConformance } from 'ngi-gateway/testing';
 * import { toNodeHandler } from 'ngi-gateway/node';
 *
 * const report = await runConformance({
 *   start: async (app) => {
 *     const server = createServer(toNodeHandler(app)).listen(0, '127.0.0.1');
 *     await new Promise((resolve) => server.once('listening', resolve));
 *     const { port } = server.address() as { port: number };
 *     return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
 *   },
 * });
 * for (const r of report.results) if (!r.ok) console.log(r.rule, r.name, r.detail);
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const closeTimeout = Math.min(timeoutMs, 1000);
  const selected = kitCases.filter((c) => options.filter?.({ rule: c.rule, name: c.name }) ?? true);
  const runs = selected.map((kitCase) => ({
    kitCase,
    run: kitCase.make(),
    violations: [] as string[],
  }));
  const apps = runs.map(({ kitCase, run, violations }) =>
    kitCase.validate === false
      ? run.app
      : validator(run.app, {
          closeTimeout,
          onViolation: (error: NgiError) =>
            violations.push(`${error.message} (${ruleOf(error.message)})`),
        }),
  );
  const dispatch = defineApp((environ, startResponse) => {
    const index = Number(environ.HTTP_X_NGI_KIT_CASE);
    const app = apps[index];
    if (app === undefined) {
      startResponse('404 Not Found', [['Content-Type', 'text/plain']]);
      return [`ngi kit: no case ${JSON.stringify(environ.HTTP_X_NGI_KIT_CASE)}\n`];
    }
    return app(environ, startResponse);
  });

  const host = await options.start(dispatch);
  const results: ConformanceResult[] = [];
  try {
    const base = parseBase(host.url, host.ca);
    for (let i = 0; i < runs.length; i++) {
      const { kitCase, run } = runs[i]!;
      let detail: string | undefined;
      try {
        detail = await run.check(contextFor(base, String(i), timeoutMs));
      } catch (error) {
        detail = `the check failed: ${error instanceof Error ? error.message : String(error)}`;
      }
      results.push({
        rule: kitCase.rule,
        name: kitCase.name,
        ok: detail === undefined,
        detail: detail ?? '',
      });
    }
    // A body the host never closes is found only once the validator's close timer runs out.
    await new Promise((resolve) => setTimeout(resolve, closeTimeout + 100));
  } finally {
    await host.close();
  }
  for (let i = 0; i < results.length; i++) {
    const violations = runs[i]!.violations;
    if (violations.length === 0) continue;
    const result = results[i]!;
    result.ok = false;
    result.detail = [
      result.detail,
      ...violations.map((v) => `validator: ${v.replace(/^validator: /, '')}`),
    ]
      .filter(Boolean)
      .join('; ');
  }
  const passed = results.filter((r) => r.ok).length;
  return { passed, failed: results.length - passed, results };
}

function contextFor(base: Base, id: string, timeoutMs: number): CaseContext {
  const tag: [string, string] = [CASE_HEADER, id];
  return {
    base,
    timeoutMs,
    send: (request) =>
      send(base, {
        ...request,
        headers: [tag, ...(request.headers ?? [])],
        timeoutMs: request.timeoutMs ?? timeoutMs,
      }),
    raw: (method, path) =>
      sendRaw(
        base,
        `${method} ${rawTarget(base, path)} HTTP/1.1\r\nHost: ${authority(base)}\r\n${tag[0]}: ${id}\r\nConnection: close\r\n\r\n`,
        timeoutMs,
      ),
    abandon: (path, after) => abandon(base, path, after, [tag], timeoutMs),
  };
}

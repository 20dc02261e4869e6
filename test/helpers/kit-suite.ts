// The conformance kit run over some of ngi's hosts, as a test each: imported through the
// package's `./testing` export (the built dist/, which the test command builds first), as a
// third party would.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runConformance } from 'ngi-gateway/testing';
import { kitHosts, knownGaps, quiet } from './kit-hosts.js';

export function describeKitHosts(title: string, hosts: string[]): void {
  describe(title, () => {
    for (const host of hosts) {
      const start = kitHosts[host];
      if (start === undefined) throw new Error(`no host ${host} in kitHosts`);
      const gaps = knownGaps[host] ?? [];
      const listed = gaps.length > 0 ? `, but for ${gaps.length} listed gap` : '';
      it(`${host} follows every rule the kit checks${listed}`, { timeout: 90_000 }, async () => {
        const report = await runConformance({ start, timeoutMs: 5000 });
        assert.ok(report.results.length >= 35, `${report.results.length} cases ran`);
        const unexpected = report.results
          .filter((result) => !result.ok && !gaps.some((gap) => gap.name === result.name))
          .map((result) => `${result.rule} ${result.name}: ${result.detail}`);
        assert.deepEqual(
          unexpected,
          [],
          `(host log, last lines: ${quiet.lines.slice(-5).join('')})`,
        );
        for (const gap of gaps) {
          const result = report.results.find((r) => r.name === gap.name);
          assert.equal(result?.ok, false, `"${gap.name}" passes now: remove it from knownGaps`);
        }
      });
    }
  });
}

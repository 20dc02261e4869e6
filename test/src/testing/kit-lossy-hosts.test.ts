// The kit tells hosts apart: each deliberately lossy host fails with the rule numbers of what
// it loses, and passes every other case.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runConformance } from 'ngi-gateway/testing';
import { lossyHosts } from '../../helpers/kit-lossy-hosts.js';

describe('the conformance kit over hosts that lose something', () => {
  for (const [host, { start, loses, skip }] of Object.entries(lossyHosts)) {
    it(`${host} fails ${loses.join(', ')} and nothing else`, { timeout: 120_000 }, async () => {
      const report = await runConformance({
        start,
        timeoutMs: 5000,
        filter: (kitCase) => kitCase.name !== skip,
      });
      const failed = report.results.filter((result) => !result.ok);
      const rules = [...new Set(failed.map((result) => result.rule))].sort();
      assert.deepEqual(
        rules,
        loses,
        failed.map((result) => `${result.rule} ${result.name}: ${result.detail}`).join('\n'),
      );
      for (const result of failed) assert.ok(result.detail.length > 0, `${result.name} says why`);
    });
  }
});

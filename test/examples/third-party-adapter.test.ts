// examples/third-party-adapter: an h3 adapter written only against the public API, checked
// with the conformance kit both ways (the kit through the package's `./testing` export).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { toNodeHandler } from 'h3';
import { checkFromH3, checkToH3 } from '../../examples/third-party-adapter/check.js';
import { h3 } from '../../examples/third-party-adapter/app.js';

type Report = Awaited<ReturnType<typeof checkToH3>>;

function failures(report: Report): string {
  return report.results
    .filter((result) => !result.ok)
    .map((result) => `${result.rule} ${result.name}: ${result.detail}`)
    .join('\n');
}

describe('examples/third-party-adapter: ngi-h3', () => {
  it('toH3 passes every case of the conformance kit, mounted at /legacy in h3 on Node', async () => {
    const report = await checkToH3({ timeoutMs: 5000 });
    assert.ok(report.results.length >= 35);
    assert.equal(report.failed, 0, failures(report));
  });

  it('fromH3 breaks no rule under runAppConformance', async () => {
    const report = await checkFromH3();
    assert.equal(report.failed, 0, failures(report));
  });

  it("app.js answers its h3 route and its NGI app's, with the mount point as SCRIPT_NAME", async () => {
    const server = createServer(toNodeHandler(h3)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      assert.equal(await (await fetch(`${origin}/`)).text(), 'h3 route\n');
      assert.equal(
        await (await fetch(`${origin}/legacy/hello`)).text(),
        'NGI app at /legacy, asked for /hello\n',
      );
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

// The adapter checked with ngi's conformance kit, both ways:
//   node examples/third-party-adapter/check.js
import { once } from 'node:events';
import { createServer } from 'node:http';
import { H3, toNodeHandler } from 'h3';
import { runAppConformance, runConformance } from 'ngi-gateway/testing';
import { fromH3, toH3 } from './ngi-h3.js';

/** toH3: the kit's app mounted at /legacy in an h3 app, on Node. */
export function checkToH3(options = {}) {
  return runConformance({
    ...options,
    start: async (app) => {
      // h3 answers a path that is not UTF-8 (%FF) with its own 400 unless told otherwise.
      const h3 = new H3({ allowMalformedURL: true });
      const handler = toH3(app, { prefix: '/legacy', errors: { write() {} } });
      h3.all('/legacy', handler);
      h3.all('/legacy/**', handler);
      const server = createServer(toNodeHandler(h3)).listen(0, '127.0.0.1');
      await once(server, 'listening');
      return {
        url: `http://127.0.0.1:${server.address().port}/legacy`,
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      };
    },
  });
}

/** fromH3: an h3 app with a few routes, as an NGI app under ngi's reference host. */
export function checkFromH3() {
  const h3 = new H3();
  h3.get('/', () => 'hello from h3\n');
  h3.post('/', async (event) => `got ${await event.req.text()}\n`);
  return runAppConformance(fromH3(h3));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [name, report] of [
    ['toH3', await checkToH3()],
    ['fromH3', await checkFromH3()],
  ]) {
    console.log(`${name}: ${report.passed} passed, ${report.failed} failed`);
    for (const r of report.results) if (!r.ok) console.log(`  ${r.rule} ${r.name}: ${r.detail}`);
  }
}

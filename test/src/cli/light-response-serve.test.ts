// `ngi serve` hosting a Hono or Fetch app installs the light Response; `--native-response`
// (or NGI_NATIVE_RESPONSE) keeps Node's own. Clients cannot tell which one answered.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { spawnCli, type CliProcess } from '../../helpers/cli-process.js';

interface Answer {
  status: number;
  reason: string;
  headers: string[];
  body: string;
}

/** Status, reason, every header but Date (as `name: value`, sorted) and the body. */
function fetchRaw(port: number, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const headers: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i]!.toLowerCase();
          if (name !== 'date') headers.push(`${name}: ${res.rawHeaders[i + 1]}`);
        }
        resolve({
          status: res.statusCode!,
          reason: res.statusMessage!,
          headers: headers.sort(),
          body,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${path}: no answer in 20 s`)));
    req.end();
  });
}

async function start(
  module: string,
  flags: string[] = [],
  env: Record<string, string> = {},
): Promise<[CliProcess, number]> {
  const proc = spawnCli(
    ['serve', module, '--http', '0', '--workers', '0', '--log-format', 'off', ...flags],
    { env },
  );
  // One that never listens is stopped here: nothing else holds it.
  const [, port] = await proc
    .waitFor(/http listening on 127\.0\.0\.1:(\d+)/)
    .catch((error: unknown) => {
      proc.kill();
      throw error;
    });
  return [proc, Number(port)];
}

const APPS: Array<[string, string, string[]]> = [
  [
    'a Hono app',
    'test/fixtures/responses/hono.mjs',
    [
      '/text',
      '/json',
      '/html',
      '/cookies',
      '/bytes',
      '/empty',
      '/redirect',
      '/stream',
      '/read-back',
      '/native',
      '/is-response',
      '/missing',
    ],
  ],
  [
    'a Fetch handler',
    'test/fixtures/responses/fetch.mjs',
    [
      '/text',
      '/json',
      '/status',
      '/cookies',
      '/headers-object',
      '/hop',
      '/empty',
      '/redirect',
      '/stream',
      '/clone',
      '/missing',
    ],
  ],
];

for (const [what, module, paths] of APPS) {
  describe(`ngi serve with ${what}`, () => {
    let light: [CliProcess, number] | undefined;
    let native: [CliProcess, number] | undefined;
    before(async () => {
      // Each kept as soon as it listens, so `after` stops it even if the other failed to start.
      await Promise.all([
        start(module).then((started) => (light = started)),
        // The opt-out both ways: the flag for Hono, the variable for the Fetch handler.
        (module.includes('hono')
          ? start(module, ['--native-response'])
          : start(module, [], { NGI_NATIVE_RESPONSE: '1' })
        ).then((started) => (native = started)),
      ]);
    });
    after(() => {
      light?.[0].kill();
      native?.[0].kill();
    });

    it("runs the light Response by default, Node's own with the opt-out", async () => {
      assert.equal((await fetchRaw(light![1], '/light')).body, 'true');
      assert.equal((await fetchRaw(native![1], '/light')).body, 'false');
    });

    for (const method of ['GET', 'HEAD']) {
      it(`answers ${method} on every route exactly as with Node's own Response`, async () => {
        for (const path of paths) {
          const [a, b] = await Promise.all([
            fetchRaw(light![1], path, method),
            fetchRaw(native![1], path, method),
          ]);
          assert.deepEqual(a, b, `${method} ${path}`);
          if (method === 'GET' && path !== '/missing')
            assert.ok(a.status < 400, `${path}: ${a.status}`);
        }
      });
    }

    it('answers the headers a route sets, every Set-Cookie, and the body', async () => {
      const answer = await fetchRaw(light![1], '/cookies');
      assert.deepEqual(
        answer.headers.filter((h) => h.startsWith('set-cookie')),
        ['set-cookie: a=1', 'set-cookie: b=2'],
      );
      assert.equal(answer.body, 'cookies');
    });
  });
}

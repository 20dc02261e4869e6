// An Express app, a Koa app and an NGI app through toFetch on real Bun (`Bun.serve({ fetch })`)
// and real Deno (`Deno.serve(handler)`): bodies (chunked too), streaming, cookies, client
// aborts and the client's address. The binaries come from the npm registry
// (.ci/install-runtimes.sh puts them in .cache/runtimes and names them in BUN_BIN/DENO_BIN).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sendRequest } from '../helpers/servers.js';

const root = join(import.meta.dirname, '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'fetch-runtimes');

/** The runtime's binary: its environment variable, else the CI cache, else none. */
function binary(variable: string, cached: string): string | undefined {
  const named = process.env[variable];
  if (named !== undefined && named !== '' && existsSync(named)) return named;
  const path = join(root, '.cache', 'runtimes', cached);
  return existsSync(path) ? path : undefined;
}

const runtimes = [
  {
    name: 'Bun',
    bin: binary('BUN_BIN', 'bun/bin/bun'),
    args: ['run', join(fixtures, 'serve-bun.ts')],
  },
  {
    name: 'Deno',
    bin: binary('DENO_BIN', 'deno/deno'),
    // The repository's imports name `.js` files that are `.ts` sources.
    args: ['run', '--allow-all', '--sloppy-imports', '--quiet', join(fixtures, 'serve-deno.ts')],
  },
];

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Starts the runtime on a free port and resolves with it once it prints `listening PORT`. */
async function start(bin: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(bin, args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' },
  });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no port after 30 s:\n${output}`)), 30_000);
    const onData = (data: Buffer) => {
      output += String(data);
      const match = /listening (\d+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}:\n${output}`));
    });
  });
  return { child, port };
}

for (const runtime of runtimes) {
  const bin = runtime.bin;
  if (bin === undefined) {
    const message = `${runtime.name} is not installed: run \`source .ci/install-runtimes.sh\` (CI does)`;
    console.log(`# SKIP ${runtime.name}: ${message}`);
    describe(`toFetch on real ${runtime.name}`, () => {
      it('serves Express, Koa and NGI apps', { skip: message }, () => {});
    });
    continue;
  }

  describe(`toFetch on real ${runtime.name}`, () => {
    let child: ChildProcess;
    let port = 0;
    before(async () => ({ child, port } = await start(bin, runtime.args)));
    after(async () => {
      if (child.exitCode === null) {
        child.kill();
        await once(child, 'exit');
      }
    });

    it('never counts a completed response as a client abort (ngi.signal stays quiet)', async () => {
      for (let i = 0; i < 5; i++) {
        assert.equal(String((await sendRequest(port, '/ngi/watched')).body), 'watched');
      }
      const aborts = JSON.parse(String((await sendRequest(port, '/ngi/aborts')).body));
      assert.equal(aborts.watched, 0);
    });

    for (const app of ['express', 'koa', 'ngi'] as const) {
      it(`${app}: answers text and three cookies`, async () => {
        const text = await sendRequest(port, `/${app}/text`);
        assert.equal(text.status, 200);
        assert.equal(String(text.body), `hello from ${app}`);
        const cookies = await sendRequest(port, `/${app}/cookies`);
        assert.equal(String(cookies.body), 'three cookies');
        const names = (cookies.headers['set-cookie'] ?? []).map((cookie) => cookie.split('=')[0]);
        assert.deepEqual(names, ['a', 'b', 'c']);
      });

      it(`${app}: reads a 1 MB body with a Content-Length and a chunked one intact`, async () => {
        const body = randomBytes(1024 * 1024);
        const sized = await sendRequest(port, `/${app}/echo`, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/octet-stream',
            'Content-Length': String(body.length),
          },
          parts: [body],
        });
        assert.deepEqual(JSON.parse(String(sized.body)), {
          bytes: body.length,
          sha256: sha256(body),
          chunked: null,
        });
        const parts = [
          body.subarray(0, 1000),
          body.subarray(1000, 300_000),
          body.subarray(300_000),
        ];
        const chunked = await sendRequest(port, `/${app}/echo`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream' },
          parts,
        });
        assert.deepEqual(JSON.parse(String(chunked.body)), {
          bytes: body.length,
          sha256: sha256(body),
          chunked: 'chunked',
        });
      });

      it(`${app}: streams: the first part reaches the client before the app writes the next`, async () => {
        const id = `${app}-${Math.random()}`;
        const req = httpRequest({ host: '127.0.0.1', port, path: `/${app}/gated?id=${id}` }).end();
        const [res] = (await once(req, 'response')) as [IncomingMessage];
        let text = '';
        let released = false;
        for await (const chunk of res) {
          text += String(chunk);
          if (!released && text.includes('first\n')) {
            released = true;
            const release = await sendRequest(port, `/ngi/release?id=${encodeURIComponent(id)}`);
            assert.equal(String(release.body), 'released');
          }
        }
        assert.equal(text, 'first\nsecond\n');
      });

      it(`${app}: sees the client leave mid-stream`, async () => {
        const before = JSON.parse(String((await sendRequest(port, '/ngi/aborts')).body))[app];
        const req = httpRequest({ host: '127.0.0.1', port, path: `/${app}/endless` }).end();
        const [res] = (await once(req, 'response')) as [IncomingMessage];
        await once(res, 'data');
        req.destroy();
        let now = before;
        for (let i = 0; i < 100 && now === before; i++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          now = JSON.parse(String((await sendRequest(port, '/ngi/aborts')).body))[app];
        }
        assert.equal(now, before + 1);
      });

      it(`${app}: gives the app the client's address`, async () => {
        const reply = await sendRequest(port, `/${app}/ip`);
        assert.match(JSON.parse(String(reply.body)).ip, /^(::ffff:)?127\.0\.0\.1$/);
      });
    }
  });
}

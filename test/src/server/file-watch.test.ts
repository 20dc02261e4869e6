import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { get, type CliProcess } from '../../helpers/cli-process.js';
import { allGone, requestPids, startServe, until } from '../../helpers/ngi-serve.js';
import { isAppSource } from '../../../src/server/file-watch.js';

const started: CliProcess[] = [];
const folders: string[] = [];
after(() => {
  for (const proc of started) proc.kill();
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'ngi-watch-'));
  folders.push(folder);
  return folder;
}

/** A plain Node handler answering `text` (and its pid on /pid). */
function appSource(text: string): string {
  return `export default (req, res) => res.end(req.url === '/pid' ? String(process.pid) : ${JSON.stringify(text)});\n`;
}

async function answerBecomes(port: number, text: string): Promise<void> {
  await until(async () => ((await get(port, '/')).body === text ? true : undefined));
}

describe('reloading on file changes', () => {
  it('watches source files, not node_modules, dot folders, logs or data', () => {
    assert.equal(isAppSource(join('lib', 'app.js')), true);
    assert.equal(isAppSource('app.mjs'), true);
    assert.equal(isAppSource(join('config', 'settings.json')), true);
    assert.equal(isAppSource(join('node_modules', 'x', 'index.js')), false);
    assert.equal(isAppSource(join('.git', 'hooks', 'pre-commit.js')), false);
    assert.equal(isAppSource('access.log'), false);
    assert.equal(isAppSource('uploads.db'), false);
  });

  it('--reload serves a changed app, and keeps the old workers when the change breaks it', async () => {
    const folder = tempFolder();
    const app = join(folder, 'app.mjs');
    writeFileSync(app, appSource('v1'));
    mkdirSync(join(folder, 'node_modules'));
    const { proc, port, figures } = await startServe(app, '--workers', '2', '--reload');
    started.push(proc);
    assert.equal((await get(port, '/')).body, 'v1');
    const v1 = (await figures()).workers.map((w) => w.pid);

    writeFileSync(app, appSource('v2'));
    await proc.waitFor(/reload \(app\.mjs changed\): starting 2 new worker/);
    await answerBecomes(port, 'v2');
    const v2 = await until(async () => {
      const w = (await figures()).workers;
      // Both v1 workers replaced: v2 answers as soon as one new worker listens.
      const fresh = w.length === 2 && w.every((x) => x.state === 'ready' && !v1.includes(x.pid));
      return fresh ? w.map((x) => x.pid) : undefined;
    });

    writeFileSync(app, 'export default (req, res) => {\n');
    await proc.waitFor(/failed to start \(.*SyntaxError|failed to start \(.*Unexpected/);
    // Both new workers failed: the v2 workers still serve, and nothing failed meanwhile.
    await until(async () =>
      [...proc.stderr().matchAll(/failed to start/g)].length >= 2 ? true : undefined,
    );
    const run = await requestPids(port, (r) => r.requests >= 20);
    assert.deepEqual(run.failures, []);
    for (const pid of run.pids) assert.ok(v2.includes(pid), `${pid} is a v2 worker`);
    assert.equal((await get(port, '/')).body, 'v2');

    // A change under node_modules reloads nothing; fixing the app reloads again.
    const reloads = () => [...proc.stderr().matchAll(/reload \(/g)].length;
    const before = reloads();
    writeFileSync(join(folder, 'node_modules', 'dep.js'), 'module.exports = 1;\n');
    writeFileSync(app, appSource('v3'));
    await answerBecomes(port, 'v3');
    assert.equal(reloads(), before + 1);
    assert.doesNotMatch(proc.stderr(), /node_modules/);
    await allGone(v2);
    const live = (await figures()).workers.map((w) => w.pid);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone(live);
  });

  it('--touch-reload reloads the workers when the file is touched', async () => {
    const folder = tempFolder();
    const touched = join(folder, 'reload.touch');
    writeFileSync(touched, '');
    const { proc, port, figures } = await startServe(
      'test/fixtures/ngi-app.mjs',
      '--workers',
      '1',
      '--touch-reload',
      touched,
    );
    started.push(proc);
    const [first] = (await figures()).workers;
    const later = new Date(Date.now() + 5000);
    utimesSync(touched, later, later);
    await proc.waitFor(/reload \(.*reload\.touch touched\): starting 1 new worker/);
    const run = await requestPids(port, (r) => [...r.pids].some((p) => p !== first!.pid));
    assert.deepEqual(run.failures, []);
    await allGone([first!.pid]);
    const live = (await figures()).workers.map((w) => w.pid);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    await allGone(live);
  });
});

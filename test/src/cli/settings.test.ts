import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { envName, mergeSettings, type SettingKey } from '../../../src/cli/settings.js';
import { get, spawnCli, type CliProcess } from '../../helpers/cli-process.js';

const KEYS: SettingKey[] = [
  { name: 'app', type: 'string' },
  { name: 'http', type: 'string' },
  { name: 'workers', type: 'string', uwsgi: ['processes'] },
  { name: 'processes', type: 'string', aliasOf: 'workers' },
  { name: 'harakiri', type: 'string' },
  { name: 'static-map', type: 'string', multiple: true },
  { name: 'config', type: 'string', cliOnly: true },
];

const dir = mkdtempSync(join(tmpdir(), 'ngi-settings-'));
const started: CliProcess[] = [];
after(() => {
  for (const proc of started) proc.kill();
  rmSync(dir, { recursive: true, force: true });
});
const ini = join(dir, 'ngi.ini');
writeFileSync(
  ini,
  '[uwsgi]\nhttp = :7001\nprocesses = 4\nharakiri = 20\nstatic-map = /s=/srv/s\n[ngi]\napp = test/fixtures/ngi-app.mjs\n',
);

describe('mergeSettings', () => {
  it('flags win over variables, variables over the file; each value says where it came from', () => {
    const { settings } = mergeSettings({
      flags: { config: ini, workers: '2' },
      env: { NGI_HARAKIRI: '5', NGI_WORKERS: '3' },
      keys: KEYS,
    });
    const seen = Object.fromEntries([...settings].map(([k, v]) => [k, [v.value, v.source]]));
    assert.deepEqual(seen, {
      app: ['test/fixtures/ngi-app.mjs', `${ini} [ngi] app`],
      http: [':7001', `${ini} [uwsgi] http`],
      workers: ['2', '--workers'],
      harakiri: ['5', 'NGI_HARAKIRI'],
      'static-map': [['/s=/srv/s'], `${ini} [uwsgi] static-map`],
    });
  });

  it('NGI_CONFIG names the file when --config does not; a list variable is comma-separated', () => {
    const { settings } = mergeSettings({
      flags: {},
      env: { NGI_CONFIG: ini, NGI_STATIC_MAP: '/a=x, /b=y', NGI_PROCESSES: '6' },
      keys: KEYS,
    });
    assert.deepEqual(settings.get('static-map')!.value, ['/a=x', '/b=y']);
    assert.deepEqual(settings.get('workers'), { value: '6', source: 'NGI_PROCESSES' });
    assert.equal(settings.get('http')!.value, ':7001');
  });

  it("a list on the command line replaces the file's list, it does not add to it", () => {
    const { settings } = mergeSettings({
      flags: { config: ini, 'static-map': ['/only=here'] },
      env: {},
      keys: KEYS,
    });
    assert.deepEqual(settings.get('static-map')!.value, ['/only=here']);
  });

  it('names variables after the flags', () => {
    assert.equal(envName('static-map'), 'NGI_STATIC_MAP');
    assert.equal(envName('http'), 'NGI_HTTP');
  });
});

function cli(args: string[], env: Record<string, string> = {}): CliProcess {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const proc = spawnCli(args);
    started.push(proc);
    return proc;
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
}

describe('ngi serve with a config file', () => {
  it('--print-config shows the winner of each setting and its source, and reads back', async () => {
    const proc = cli(['serve', '--config', ini, '--print-config', '--harakiri', '9'], {
      NGI_HTTP: ':7002',
    });
    assert.equal(await proc.exited, 0, proc.stderr());
    const out = proc.stdout();
    assert.match(out, /^app = test\/fixtures\/ngi-app\.mjs ; .*\[ngi\] app$/m);
    assert.match(out, /^http = :7002 ; NGI_HTTP$/m);
    assert.match(out, /^workers = 4 ; .*\[uwsgi\] processes$/m);
    assert.match(out, /^harakiri = 9 ; --harakiri$/m);
    assert.match(out, /^; stats = off \(default\)$/m);
    // The printed settings are a config file of their own that gives the same settings.
    const printed = join(dir, 'printed.ini');
    writeFileSync(printed, out);
    const again = cli(['serve', '--config', printed, '--print-config']);
    assert.equal(await again.exited, 0, again.stderr());
    for (const line of ['http = :7002', 'workers = 4', 'harakiri = 9']) {
      assert.ok(again.stdout().includes(`\n${line} ;`), line);
    }
  });

  it('--print-config shows the recycling and reload settings, set or defaulted', async () => {
    const proc = cli(['serve', '--config', ini, '--print-config', '--reload-on-rss', '256'], {
      NGI_TOUCH_RELOAD: '/srv/app/reload',
    });
    assert.equal(await proc.exited, 0, proc.stderr());
    const out = proc.stdout();
    assert.match(out, /^reload-on-rss = 256 ; --reload-on-rss$/m);
    assert.match(out, /^touch-reload = \/srv\/app\/reload ; NGI_TOUCH_RELOAD$/m);
    assert.match(out, /^; max-worker-lifetime = 0 \(off\) \(default\)$/m);
    assert.match(out, /^; max-requests-delta = 0 \(default\)$/m);
    assert.match(out, /^; max-worker-lifetime-delta = 0 \(default\)$/m);
    assert.match(out, /^; reload-mode = all \(default\)$/m);
    assert.match(out, /^; reload = false \(default\)$/m);
  });

  it('--print-config still prints when the settings would not start, then says why', async () => {
    const proc = cli(['serve', '--config', ini, '--print-config'], { NGI_WORKERS: 'many' });
    assert.equal(await proc.exited, 2);
    assert.match(proc.stdout(), /^workers = many ; NGI_WORKERS$/m);
    assert.match(proc.stderr(), /NGI_WORKERS expects a number from 0 to 1024, got "many"/);
  });

  it("a bad value in the file is a usage error naming the file and the line's key", async () => {
    const bad = join(dir, 'bad.ini');
    writeFileSync(
      bad,
      '[uwsgi]\nhttp = :0\nprocesses = lots\n[ngi]\napp = test/fixtures/ngi-app.mjs\n',
    );
    const proc = cli(['serve', '--config', bad]);
    assert.equal(await proc.exited, 2);
    assert.match(proc.stderr(), /bad\.ini \[uwsgi\] processes expects a number/);
    assert.equal(proc.stderr().trim().split('\n').length, 1, proc.stderr());
  });

  it('serves what the file and the environment say, the flags winning', async () => {
    const served = join(dir, 'served.ini');
    writeFileSync(
      served,
      '[uwsgi]\nmaster = true\nhttp = 127.0.0.1:1\nprocesses = 3\n[ngi]\napp = test/fixtures/ngi-app.mjs\n',
    );
    // The file's port 1 loses to NGI_HTTP; the variable's 2 workers lose to --workers 1.
    const proc = cli(['serve', '--config', served, '--workers', '1', '--stats', '127.0.0.1:0'], {
      NGI_HTTP: '127.0.0.1:0',
      NGI_WORKERS: '2',
      NGI_LOG_FORMAT: 'off',
    });
    await proc.waitFor(/master: a uWSGI option ngi does not have; ignored/);
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+) \(1 worker,/);
    const [, stats] = await proc.waitFor(/stats listening on 127\.0\.0\.1:(\d+)/);
    assert.deepEqual(await get(Number(port), '/x'), { status: 200, body: 'hello /x' });
    assert.equal(JSON.parse((await get(Number(stats), '/')).body).workers.length, 1);
    assert.equal(proc.stdout(), '', 'NGI_LOG_FORMAT=off reached the workers');
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });
});

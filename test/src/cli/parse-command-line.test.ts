// The command line parsed in process: the same checks the CLI tests make through a process,
// for every rule that needs no running server.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCommandLine, UsageError, type Command } from '../../../src/cli/main.js';

const command = (...argv: string[]) => parseCommandLine(argv) as Command;
const mistake = (argv: string[], message: RegExp) =>
  assert.throws(
    () => parseCommandLine(argv),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, message);
      return true;
    },
  );

describe('parseCommandLine', () => {
  it('reads a listener and keeps the defaults', () => {
    const parsed = command('serve', 'app.js', '--http', ':8080');
    assert.equal(parsed.specifier, 'app.js');
    assert.deepEqual(parsed.http, { host: '127.0.0.1', port: 8080 });
    assert.equal(parsed.workers, 1);
    assert.equal(parsed.serve.bufferSize, 4096);
    assert.equal(parsed.serve.grace, 30);
  });

  it('answers help and version before anything else', () => {
    assert.equal(parseCommandLine(['serve', '--help']), 'help');
    assert.equal(parseCommandLine(['-v']), 'version');
  });

  it('names the flag a typo meant, and says nothing when none is close', () => {
    mistake(['serve', 'app.js', '--htp', '0'], /^unknown flag --htp \(did you mean --http\?\)$/);
    mistake(['serve', 'app.js', '--workrs', '2'], /did you mean --workers\?/);
    mistake(['serve', 'app.js', '--zzzzzz'], /^unknown flag --zzzzzz$/);
  });

  it('says a port is out of range', () => {
    mistake(
      ['serve', 'app.js', '--http', '127.0.0.1:99999'],
      /port 99999 is out of range \(0 to 65535\)/,
    );
  });

  it('refuses no listener, no module and a stray argument', () => {
    mistake(['serve', 'app.js'], /nothing to listen on/);
    mistake(['serve', '--http', '0'], /no app module given/);
    mistake(['serve', 'app.js', 'extra', '--http', '0'], /unexpected argument "extra"/);
  });

  it('stops with its parent when asked, or when npm started it', () => {
    const npm = process.env.npm_command;
    try {
      delete process.env.npm_command;
      assert.equal(command('serve', 'app.js', '--http', '0').dieWithParent, false);
      assert.equal(
        command('serve', 'app.js', '--http', '0', '--die-with-parent').dieWithParent,
        true,
      );
      process.env.npm_command = 'exec';
      assert.equal(command('serve', 'app.js', '--http', '0').dieWithParent, true);
    } finally {
      if (npm === undefined) delete process.env.npm_command;
      else process.env.npm_command = npm;
    }
  });

  describe('recycling and reload settings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ngi-recycle-settings-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('are off by default', () => {
      const parsed = command('serve', 'app.js', '--http', '0');
      assert.deepEqual(parsed.recycling, { maxRequestsDelta: 0, reloadOnRss: 0 });
      assert.deepEqual(parsed.reloading, {
        maxWorkerLifetime: 0,
        maxWorkerLifetimeDelta: 0,
        reloadMode: 'all',
        watchApp: false,
        touchReload: [],
      });
    });

    it('come from flags, a uWSGI INI file, JSON and NGI_* variables under the same names', () => {
      const parsed = command(
        ...['serve', 'app.js', '--http', '0', '--reload-on-rss', '256', '--max-requests', '1000'],
        ...['--max-requests-delta', '50', '--max-worker-lifetime', '3600'],
        ...['--max-worker-lifetime-delta', '600'],
        ...['--reload-mode', 'rolling', '--reload', '--touch-reload', 'a.touch'],
      );
      assert.deepEqual(parsed.recycling, { maxRequestsDelta: 50, reloadOnRss: 256 });
      assert.deepEqual(parsed.reloading, {
        maxWorkerLifetime: 3600,
        maxWorkerLifetimeDelta: 600,
        reloadMode: 'rolling',
        watchApp: true,
        touchReload: [resolve('a.touch')],
      });

      const ini = join(dir, 'uwsgi.ini');
      writeFileSync(
        ini,
        '[uwsgi]\nreload-on-rss = 512\nmax-worker-lifetime = 60\nmax-requests-delta = 7\n' +
          'max-worker-lifetime-delta = 30\n' +
          'touch-reload = /srv/a\ntouch-reload = /srv/b\n[ngi]\nreload = true\nreload-mode = rolling\n',
      );
      const fromIni = command('serve', 'app.js', '--http', '0', '--config', ini);
      assert.deepEqual(fromIni.recycling, { maxRequestsDelta: 7, reloadOnRss: 512 });
      assert.deepEqual(fromIni.reloading, {
        maxWorkerLifetime: 60,
        maxWorkerLifetimeDelta: 30,
        reloadMode: 'rolling',
        watchApp: true,
        touchReload: ['/srv/a', '/srv/b'],
      });

      const json = join(dir, 'ngi.json');
      writeFileSync(json, JSON.stringify({ 'reload-on-rss': 128, reload: true }));
      const fromJson = command('serve', 'app.js', '--http', '0', '--config', json);
      assert.equal(fromJson.recycling.reloadOnRss, 128);
      assert.equal(fromJson.reloading.watchApp, true);

      process.env.NGI_MAX_WORKER_LIFETIME = '90';
      process.env.NGI_MAX_WORKER_LIFETIME_DELTA = '15';
      process.env.NGI_RELOAD_MODE = 'rolling';
      try {
        const fromEnv = command('serve', 'app.js', '--http', '0');
        assert.equal(fromEnv.reloading.maxWorkerLifetime, 90);
        assert.equal(fromEnv.reloading.maxWorkerLifetimeDelta, 15);
        assert.equal(fromEnv.reloading.reloadMode, 'rolling');
      } finally {
        delete process.env.NGI_MAX_WORKER_LIFETIME;
        delete process.env.NGI_MAX_WORKER_LIFETIME_DELTA;
        delete process.env.NGI_RELOAD_MODE;
      }
    });

    it('refuse bad values, and reloading without a master', () => {
      mistake(
        ['serve', 'app.js', '--http', '0', '--reload-on-rss', 'lots'],
        /--reload-on-rss expects a number/,
      );
      mistake(
        ['serve', 'app.js', '--http', '0', '--max-requests-delta', '1.5'],
        /--max-requests-delta expects a whole number/,
      );
      mistake(
        ['serve', 'app.js', '--http', '0', '--max-worker-lifetime-delta', '0.5'],
        /--max-worker-lifetime-delta expects a whole number/,
      );
      mistake(
        ['serve', 'app.js', '--http', '0', '--reload-mode', 'sometimes'],
        /--reload-mode expects all or rolling, got "sometimes"/,
      );
      mistake(
        ['serve', 'app.js', '--http', '0', '--workers', '0', '--reload'],
        /--reload needs a master to reload: use --workers 1 or more/,
      );
      mistake(
        ['serve', 'app.js', '--http', '0', '--workers', '0', '--touch-reload', 'x'],
        /--touch-reload needs a master/,
      );
    });
  });
});

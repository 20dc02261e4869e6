import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { encodeUwsgiPacket } from '../../../src/protocol/uwsgi-packet.js';
import { parseHttpResponse, sendRaw } from '../../helpers/uwsgi-client.js';
import { alive, get, spawnCli, type CliProcess } from '../../helpers/cli-process.js';

/** A port nothing listens on (taken from the kernel, then let go). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves once `condition()` holds, checked every 100 ms; fails naming `what` after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const started: CliProcess[] = [];
const cli = (...args: string[]) => {
  const proc = spawnCli(args);
  started.push(proc);
  return proc;
};
after(() => {
  for (const proc of started) proc.kill();
});

const FLAGS = [
  'http',
  'uwsgi',
  'workers',
  'processes',
  'harakiri',
  'max-requests',
  'max-requests-delta',
  'reload-on-rss',
  'max-worker-lifetime',
  'max-worker-lifetime-delta',
  'reload-mode',
  'touch-reload',
  'static-map',
  'https',
  'cert',
  'key',
  'chmod-socket',
  'buffer-size',
  'limit-post',
  'trust-proxy',
  'proxy-protocol',
  'socket-timeout',
  'log-format',
  'stats',
  'kind',
  'grace',
  'config',
  'die-with-parent',
];
/** Flags that only switch something on: no default worth printing. */
const SWITCHES = ['print-config', 'reload', 'help', 'version'];

describe('ngi CLI', () => {
  it('--help lists every flag with its default', async () => {
    const proc = cli('serve', '--help');
    assert.equal(await proc.exited, 0);
    const help = proc.stdout();
    assert.match(help, /Usage: ngi serve <module>\[:export\] \[flags\]/);
    // A flag's own row: indented, the flag first (prose, and --reload-on-rss, name flags too).
    const row = (flag: string) =>
      help.split('\n').find((l) => new RegExp(`^\\s+(-\\w, )?--${flag}( |$)`).test(l));
    for (const flag of FLAGS) {
      const line = row(flag);
      assert.ok(line, `--${flag} is listed`);
      assert.match(line, /\(default: [^)]+\)/, `--${flag} shows its default`);
    }
    for (const flag of SWITCHES) {
      const line = row(flag);
      assert.ok(line, `--${flag} is listed`);
      assert.doesNotMatch(line, /default/, `--${flag} shows no "(default: false)"`);
    }
  });

  it('--version prints the package version', async () => {
    const proc = cli('--version');
    assert.equal(await proc.exited, 0);
    assert.match(proc.stdout(), /^ngi \d+\.\d+\.\d+/);
  });

  it('the built bin runs as a command (npx ngi), from a fresh build', () => {
    // `npm test` builds first; npm links `bin` before `prepare` builds, so the build itself
    // must leave the file executable.
    const run = spawnSync(fileURLToPath(new URL('../../../dist/bin/ngi.js', import.meta.url)), [
      '--version',
    ]);
    assert.equal(run.error, undefined, String(run.error));
    assert.match(String(run.stdout), /^ngi \d+\.\d+\.\d+/);
  });

  it('an unknown flag is a one-paragraph usage error with exit code 2', async () => {
    const proc = cli('serve', 'test/fixtures/ngi-app.mjs', '--http', '0', '--bogus');
    assert.equal(await proc.exited, 2);
    assert.match(proc.stderr(), /^ngi: unknown flag --bogus\. .*ngi serve --help/);
    assert.equal(proc.stderr().trim().split('\n').length, 1);
  });

  it('a mistyped flag names the flag meant', async () => {
    const proc = cli('serve', 'test/fixtures/ngi-app.mjs', '--htp', '0');
    assert.equal(await proc.exited, 2);
    assert.match(proc.stderr(), /^ngi: unknown flag --htp \(did you mean --http\?\)\./);
  });

  it('a port out of range says so', async () => {
    const proc = cli('serve', 'test/fixtures/ngi-app.mjs', '--http', '127.0.0.1:99999');
    assert.equal(await proc.exited, 2);
    assert.match(proc.stderr(), /^ngi: --http: port 99999 is out of range \(0 to 65535\)/);
  });

  it('a module that throws at import shows the file and line, once', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/modules/broken/throws.mjs',
      '--http',
      '0',
      '--workers',
      '2',
    );
    assert.equal(await proc.exited, 1);
    assert.match(
      proc.stderr(),
      /cannot import test\/fixtures\/modules\/broken\/throws\.mjs: TypeError: Cannot read properties of undefined/,
    );
    assert.match(proc.stderr(), /\n\s+at .*throws\.mjs:2:\d+/);
    assert.equal(proc.stderr().match(/cannot import/g)?.length, 1, proc.stderr());
  });

  it('a syntax error shows file:line:column and the offending line', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/modules/broken/syntax.mjs',
      '--http',
      '0',
      '--workers',
      '0',
    );
    assert.equal(await proc.exited, 1);
    assert.match(
      proc.stderr(),
      /SyntaxError: Unexpected token '\]'\n\s+at \/.*syntax\.mjs:3:21\n {2}return \[greeting \+\];\n {20}\^/,
    );
  });

  it('serves a folder by its package.json main, as require resolves it', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/modules/folder-main',
      '--http',
      '0',
      '--workers',
      '0',
      '--log-format',
      'off',
    );
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    assert.deepEqual(await get(Number(port), '/'), { status: 200, body: 'folder main' });
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('a CommonJS module is required: its run-directly branch opens no port', async () => {
    const direct = await freePort();
    const env = { RUN_DIRECTLY_PORT: String(direct) };
    // The control: run directly, the module does open the port.
    const control = spawnCli(['--version'], {
      env,
      script: 'test/fixtures/modules/cjs/run-directly.js',
    });
    started.push(control);
    await control.waitFor(/run-directly branch listening/);
    control.kill();
    await control.exited;
    const proc = spawnCli(
      [
        'serve',
        'test/fixtures/modules/cjs/run-directly.js',
        '--http',
        '0',
        '--workers',
        '2',
        '--log-format',
        'off',
      ],
      { env },
    );
    started.push(proc);
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(await get(Number(port), '/'), { status: 200, body: 'served by a parent' });
    }
    await assert.rejects(get(direct, '/'), { code: 'ECONNREFUSED' });
    assert.doesNotMatch(proc.stderr(), /run-directly branch/);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('under npm exec, stopping npm stops the master and its workers', async () => {
    // npm exec (npx) starts `sh -c <command>`; on SIGTERM npm and sh exit, and without the
    // parent check the master would keep its ports.
    const npm = spawnCli(['serve', 'test/fixtures/ngi-app.mjs', '--http', '0', '--workers', '1'], {
      via: 'npm-exec',
    });
    started.push(npm);
    const [, port, master] = await npm.waitFor(
      /http listening on 127\.0\.0\.1:(\d+) .*master pid (\d+)/,
    );
    assert.equal((await get(Number(port), '/')).status, 200);
    npm.child.kill('SIGTERM');
    await npm.exited;
    await until(() => !alive(Number(master)), 15_000, 'the master exits');
    await assert.rejects(get(Number(port), '/'), { code: 'ECONNREFUSED' });
  });

  it('refuses to start with no listener, a bad address or a bad number', async () => {
    for (const args of [
      ['serve', 'test/fixtures/ngi-app.mjs'],
      ['serve', 'test/fixtures/ngi-app.mjs', '--http', 'localhost'],
      ['serve', 'test/fixtures/ngi-app.mjs', '--http', '0', '--buffer-size', '70000'],
      ['serve', 'test/fixtures/ngi-app.mjs', '--http', '0', '--log-format', 'xml'],
      ['serve', 'test/fixtures/ngi-app.mjs', '--http', '0', '--kind', 'rails'],
    ]) {
      const proc = cli(...args);
      assert.equal(await proc.exited, 2, args.join(' '));
      assert.equal(proc.stderr().trim().split('\n').length, 1, proc.stderr());
    }
  });

  it('a missing module exits non-zero with a clear message, before any worker starts', async () => {
    const proc = cli('serve', 'test/fixtures/no-such-app.mjs', '--http', '0');
    assert.equal(await proc.exited, 1);
    assert.match(proc.stderr(), /cannot find the app module "test\/fixtures\/no-such-app\.mjs"/);
    assert.doesNotMatch(proc.stderr(), /\n\s+at /, 'no stack trace');
  });

  it('a module exporting nothing usable exits non-zero once, saying what it found', async () => {
    const proc = cli('serve', 'test/fixtures/nothing-usable.mjs', '--http', '0', '--workers', '2');
    assert.equal(await proc.exited, 1);
    const lines = proc.stderr().trim().split('\n');
    assert.match(lines[0]!, /nothing-usable\.mjs/);
    assert.ok(lines.length <= 2, `one error, not a respawn loop:\n${proc.stderr()}`);
    assert.doesNotMatch(proc.stderr(), /\n\s+at /, 'no stack trace');
  });

  it('a module exporting nothing usable fails the same way in a single process', async () => {
    const proc = cli('serve', 'test/fixtures/nothing-usable.mjs', '--http', '0', '--workers', '0');
    assert.equal(await proc.exited, 1);
    assert.match(proc.stderr(), /nothing-usable\.mjs/);
  });

  it('a port already in use exits non-zero naming the address', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const proc = cli('serve', 'test/fixtures/ngi-app.mjs', '--http', String(port));
      assert.equal(await proc.exited, 1);
      assert.match(proc.stderr(), new RegExp(`cannot listen for http on 127\\.0\\.0\\.1:${port}`));
      assert.equal(proc.stderr().trim().split('\n').length, 1, proc.stderr());
    } finally {
      taken.close();
    }
  });

  it('prints one startup line per listener with the real address, and serves on each', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/ngi-app.mjs',
      '--http',
      ':0',
      '--uwsgi',
      '0',
      '--stats',
      '127.0.0.1:0',
    );
    const [, http] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    const [, uwsgi] = await proc.waitFor(/uwsgi listening on 127\.0\.0\.1:(\d+)/);
    const [, stats] = await proc.waitFor(/stats listening on 127\.0\.0\.1:(\d+)/);
    assert.notEqual(Number(http), 0);
    assert.notEqual(Number(uwsgi), 0);
    assert.deepEqual(await get(Number(http), '/x'), { status: 200, body: 'hello /x' });
    const packet = encodeUwsgiPacket([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/over-uwsgi'],
      ['PATH_INFO', '/over-uwsgi'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ]);
    const reply = parseHttpResponse((await sendRaw(Number(uwsgi), packet)).bytes);
    assert.equal(reply.body.toString(), 'hello /over-uwsgi');
    const figures = JSON.parse((await get(Number(stats), '/')).body);
    assert.equal(figures.workers.length, 1);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('workers write the access log on stdout, as JSON with --log-format json', async () => {
    const proc = cli('serve', 'test/fixtures/ngi-app.mjs', '--http', '0', '--log-format', 'json');
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    await get(Number(port), '/logged?x=1');
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    const entry = JSON.parse(proc.stdout().trim().split('\n')[0]!);
    assert.equal(entry.uri, '/logged?x=1');
    assert.equal(entry.status, 200);
    assert.notEqual(entry.pid, proc.child.pid, 'logged by the worker');
  });

  it('serves a plain (req, res) handler module in a single process and stops on SIGINT', async () => {
    const proc = cli('serve', 'test/fixtures/node-handler.mjs', '--http', '0', '--workers', '0');
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+) \(single process/);
    assert.deepEqual(await get(Number(port), '/a?b'), { status: 200, body: 'node /a?b' });
    proc.child.kill('SIGINT');
    assert.equal(await proc.exited, 0);
    assert.equal(alive(proc.child.pid!), false);
  });

  const kinds: Array<[string, string[], string]> = [
    ['an Express app', ['test/fixtures/kinds/express.mjs'], 'express /?x=1'],
    ['a Fastify instance', ['test/fixtures/kinds/fastify.mjs'], 'fastify /?x=1'],
    [
      'a function returning Fastify',
      ['test/fixtures/kinds/fastify-factory.mjs'],
      'fastify factory /?x=1',
    ],
    ['a Koa app', ['test/fixtures/kinds/koa.mjs'], 'koa /?x=1'],
    ['a Hono app', ['test/fixtures/kinds/hono.mjs'], 'hono ?x=1'],
    ['a Fetch handler ({ fetch })', ['test/fixtures/kinds/fetch.mjs'], 'fetch ?x=1'],
    [
      'an untagged NGI app, with --kind ngi',
      ['test/fixtures/kinds/ngi-untagged.mjs', '--kind', 'ngi'],
      'ngi x=1',
    ],
  ];
  for (const [what, args, body] of kinds) {
    it(`recognises ${what} and serves it`, async () => {
      const proc = cli('serve', ...args, '--http', '0', '--workers', '0', '--log-format', 'off');
      const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
      assert.deepEqual(await get(Number(port), '/?x=1'), { status: 200, body });
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
    });
  }

  it('--kind that does not fit the export is a clear error, not a crash', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/kinds/koa.mjs',
      '--kind',
      'fetch',
      '--http',
      '0',
      '--workers',
      '0',
    );
    assert.equal(await proc.exited, 1);
    assert.match(proc.stderr(), /expected a Fetch handler, found an object \(Application/);
    assert.doesNotMatch(proc.stderr(), /\n\s+at /, 'no stack trace');
  });

  it('picks a named export with module:export', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/named-export.mjs:api',
      '--http',
      '0',
      '--workers',
      '0',
    );
    const [, port] = await proc.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    assert.deepEqual(await get(Number(port), '/'), { status: 200, body: 'named api' });
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });
});

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ngi-unix-cli-'));
const started: CliProcess[] = [];
const cli = (...args: string[]) => {
  const proc = spawnCli(args);
  started.push(proc);
  return proc;
};
after(() => {
  for (const proc of started) proc.kill();
  rmSync(dir, { recursive: true, force: true });
});

const curl = async (socket: string, path: string): Promise<string> =>
  (
    await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--unix-socket',
      socket,
      `http://localhost${path}`,
    ])
  ).stdout;

describe('ngi serve on Unix sockets', () => {
  it('--http unix:PATH is shared by every worker, chmodded, and removed on SIGTERM', async () => {
    const socket = join(dir, 'http.sock');
    const proc = cli(
      'serve',
      'test/fixtures/ngi-app.mjs',
      '--http',
      `unix:${socket}`,
      '--chmod-socket',
      '600',
      '--workers',
      '2',
      '--log-format',
      'off',
    );
    await proc.waitFor(/http listening on unix:\S+http\.sock \(2 workers/);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    assert.equal(await curl(socket, '/x'), 'hello /x');
    const pids = new Set<string>();
    // Fresh connections: every worker waits on the shared socket and the first to accept takes
    // it, so one worker may take a run of sequential ones; rounds of parallel slow requests
    // (bounded) give the other its turn.
    for (let i = 0; i < 20 && pids.size < 2; i++) pids.add(await curl(socket, '/pid'));
    for (let round = 0; round < 10 && pids.size < 2; round++) {
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => curl(socket, '/pid?ms=100')),
      );
      for (const pid of answers) pids.add(pid);
    }
    assert.equal(pids.size, 2, `both workers answer, saw ${[...pids].join(' ')}`);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
    assert.equal(existsSync(socket), false, 'the socket file is removed on a clean stop');
  });

  it('replaces a stale socket left by a killed server, in a single process too', async () => {
    const socket = join(dir, 'stale.sock');
    const killed = cli('serve', 'test/fixtures/ngi-app.mjs', '--uwsgi', `unix:${socket}`);
    await killed.waitFor(/uwsgi listening on unix:/);
    // SIGKILL the master and its worker: nobody removes the file.
    const workers = (await run('pgrep', ['-P', String(killed.child.pid)])).stdout
      .trim()
      .split('\n');
    killed.child.kill('SIGKILL');
    for (const pid of workers) process.kill(Number(pid), 'SIGKILL');
    await killed.exited;
    assert.ok(statSync(socket).isSocket(), 'the killed server left its socket file');
    for (const workers of ['1', '0']) {
      const proc = cli(
        'serve',
        'test/fixtures/ngi-app.mjs',
        '--http',
        `unix:${socket}`,
        '--workers',
        workers,
      );
      await proc.waitFor(/http listening on unix:/);
      assert.equal(await curl(socket, '/again'), 'hello /again');
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
      // The next round needs a stale file again.
      if (workers === '1') await leaveStale(socket);
    }
  });

  it('a socket another server answers on is a one-line error, and it keeps answering', async () => {
    const socket = join(dir, 'live.sock');
    const other = createServer((conn) => {
      conn.on('error', () => {});
      conn.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nother');
    });
    await new Promise<void>((resolve) => other.listen(socket, resolve));
    try {
      const proc = cli('serve', 'test/fixtures/ngi-app.mjs', '--uwsgi', `unix:${socket}`);
      assert.equal(await proc.exited, 1);
      assert.match(
        proc.stderr(),
        /cannot listen for uwsgi on unix:\S+ another server is listening/,
      );
      assert.equal(proc.stderr().trim().split('\n').length, 1, proc.stderr());
      assert.equal(await curl(socket, '/'), 'other');
    } finally {
      other.close();
    }
  });

  it('a bad --chmod-socket is a usage error', async () => {
    const proc = cli(
      'serve',
      'test/fixtures/ngi-app.mjs',
      '--http',
      'unix:x.sock',
      '--chmod-socket',
      'rw',
    );
    assert.equal(await proc.exited, 2);
    assert.match(proc.stderr(), /--chmod-socket: "rw" is not an octal file mode/);
  });
});

/** Binds `socket` in a process that is then SIGKILLed, so its file stays behind. */
async function leaveStale(socket: string): Promise<void> {
  const child = spawn(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  await new Promise((resolve) => child.once('exit', resolve));
}

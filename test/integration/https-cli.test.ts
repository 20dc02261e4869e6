import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';
import { makeCertificate } from '../helpers/tls.js';
import { wsExchange } from '../helpers/ws-client.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ngi-https-cli-'));
const started: CliProcess[] = [];
const cli = (...args: string[]) => {
  const proc = spawnCli(args);
  started.push(proc);
  return proc;
};
/** `ngi serve MODULE --https 127.0.0.1:0` with the certificate `files`, no access log. */
const serveHttps = (
  module: string,
  files: { cert: string; key: string },
  ...flags: string[]
): CliProcess =>
  cli(
    'serve',
    module,
    '--https',
    '127.0.0.1:0',
    '--cert',
    files.cert,
    '--key',
    files.key,
    '--log-format',
    'off',
    ...flags,
  );
after(() => {
  for (const proc of started) proc.kill();
  rmSync(dir, { recursive: true, force: true });
});

/** The CN of the certificate a fresh TLS connection to `port` is shown. */
function peerName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      resolve(String(socket.getPeerCertificate().subject.CN));
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('ngi serve --https', () => {
  it('serves h2 and HTTP/1.1 from its workers, and takes a renewed certificate on SIGHUP', async () => {
    const files = makeCertificate(dir, 'site', 'ngi-before');
    const proc = serveHttps('test/fixtures/ngi-app.mjs', files);
    const [, port] = await proc.waitFor(/https listening on 127\.0\.0\.1:(\d+) \(1 worker/);
    const curl = async (flag: string) =>
      (
        await run('curl', [
          '-sS',
          '--max-time',
          '20',
          flag,
          '--cacert',
          files.cert,
          '-w',
          ' %{http_version}',
          `https://localhost:${port}/x`,
        ])
      ).stdout;
    assert.equal(await curl('--http2'), 'hello /x 2');
    assert.equal(await curl('--http1.1'), 'hello /x 1.1');
    assert.equal(await peerName(Number(port)), 'ngi-before');

    makeCertificate(dir, 'site', 'ngi-after');
    proc.child.kill('SIGHUP');
    await proc.waitFor(/reload: starting 1 new worker/);
    // The new worker reads the files when it starts; connections reach it once it listens.
    let name = '';
    for (let i = 0; i < 200 && name !== 'ngi-after'; i++) {
      name = await peerName(Number(port));
      if (name !== 'ngi-after') await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(name, 'ngi-after');
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it("hosts the user's own http.Server with ws over wss:// in both of two workers", async () => {
    const files = makeCertificate(dir, 'wss');
    const proc = serveHttps('test/fixtures/servers/express-ws.mjs', files, '--workers', '2');
    const [, port] = await proc.waitFor(/https listening on 127\.0\.0\.1:(\d+) \(2 workers/);
    const ca = readFileSync(files.cert);
    // Sessions one after the other until both workers have answered (the kernel hands each
    // connection to whichever worker accepts first); bounded at 20.
    const pids = new Set<string>();
    for (let i = 0; i < 20 && (i < 4 || pids.size < 2); i++) {
      const { messages, code } = await wsExchange(`wss://localhost:${port}/ws`, [`m${i}`], 2, {
        ca,
      });
      assert.match(messages[0]!, /^welcome \d+$/);
      assert.equal(messages[1], `echo m${i}`);
      assert.equal(code, 1000);
      pids.add(messages[0]!.slice('welcome '.length));
    }
    assert.equal(pids.size, 2);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('with --workers 0, SIGHUP re-reads the certificate in place', async () => {
    const files = makeCertificate(dir, 'single', 'ngi-single-before');
    const proc = serveHttps('test/fixtures/ngi-app.mjs', files, '--workers', '0');
    const [, port] = await proc.waitFor(/https listening on 127\.0\.0\.1:(\d+) \(single process/);
    assert.equal(await peerName(Number(port)), 'ngi-single-before');
    makeCertificate(dir, 'single', 'ngi-single-after');
    proc.child.kill('SIGHUP');
    await proc.waitFor(/certificates re-read/);
    assert.equal(await peerName(Number(port)), 'ngi-single-after');
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  it('refuses --https without --cert/--key, --cert without --https, and a key that does not match', async () => {
    const a = makeCertificate(dir, 'a');
    const b = makeCertificate(dir, 'b');
    const cases: Array<[string[], number, RegExp]> = [
      [['--https', '0'], 2, /--https needs --cert FILE and --key FILE/],
      [['--http', '0', '--cert', a.cert], 2, /--cert is only for --https/],
      [
        ['--https', '0', '--cert', a.cert, '--key', join(dir, 'missing.key')],
        1,
        /cannot read the TLS key .*missing\.key/,
      ],
      [
        ['--https', '0', '--cert', a.cert, '--key', b.key],
        1,
        /certificate .* and key .* are not usable together/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const proc = cli('serve', 'test/fixtures/ngi-app.mjs', ...args);
      assert.equal(await proc.exited, code, proc.stderr());
      assert.match(proc.stderr(), message);
      assert.equal(proc.stderr().trim().split('\n').length, 1, proc.stderr());
    }
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { get, spawnCli } from '../helpers/cli-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('the npm package, as a user installs it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ngi-package-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'packs, installs in an empty folder and serves an app with its own npx ngi',
    { timeout: 120_000 },
    async () => {
      // The build the test command made is what `npm pack` takes (its files list).
      const packed = execFileSync(
        'npm',
        ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir],
        {
          cwd: root,
          encoding: 'utf8',
        },
      );
      const tarball = join(dir, packed.trim().split('\n').pop()!);
      const project = join(dir, 'project');
      execFileSync('mkdir', ['-p', project]);
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ name: 'user-app', private: true, type: 'module' }),
      );
      // The app a user writes, importing the package by its name.
      writeFileSync(
        join(project, 'app.js'),
        `import { defineApp } from 'ngi-gateway';\n` +
          `export default defineApp((environ, startResponse) => {\n` +
          `  startResponse('200 OK', [['Content-Type', 'text/plain']]);\n` +
          `  return ['installed ' + environ['ngi.version'].join('.')];\n` +
          `});\n`,
      );
      execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], {
        cwd: project,
        stdio: 'pipe',
      });
      const server = spawnCli(
        ['--no-install', 'ngi', 'serve', 'app.js', '--http', '0', '--workers', '0'],
        {
          via: 'npx',
          cwd: project,
        },
      );
      try {
        const [, port] = await server.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
        const answer = await get(Number(port), '/');
        assert.equal(answer.status, 200);
        assert.equal(answer.body, 'installed 1.0', answer.body);
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    },
  );
});

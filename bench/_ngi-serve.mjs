// Starts `ngi serve <module> --http 0 --stats 0 --workers 2` for a bench script and waits for
// its listeners: `bin` is the built `dist/bin/ngi.js` or the sources through tsx.
import { spawn } from 'node:child_process';

/** Resolves with the child and the real HTTP and stats ports once both are listening. */
export async function startNgiServe(module, { bin = 'dist' } = {}) {
  const entry = bin === 'dist' ? ['dist/bin/ngi.js'] : ['--import', 'tsx', 'bin/ngi.ts'];
  const child = spawn(
    process.execPath,
    [
      ...entry,
      'serve',
      module,
      '--http',
      '0',
      '--stats',
      '0',
      '--log-format',
      'off',
      '--workers',
      '2',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  await new Promise((resolve, reject) => {
    child.stderr.on('data', (text) => {
      stderr += text;
      if (/stats listening/.test(stderr)) resolve();
    });
    child.once('exit', () => reject(new Error(`ngi serve exited:\n${stderr}`)));
  });
  const port = (name) =>
    Number(new RegExp(`${name} listening on 127\\.0\\.0\\.1:(\\d+)`).exec(stderr)[1]);
  return { child, port: port('http'), statsPort: port('stats') };
}

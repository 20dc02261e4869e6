// Idle RSS of `ngi serve --workers 2` per process, as --stats reports it, for an app module
// (the built bin: run `npm run build` first). The master never loads the app.
// Run: node bench/idle-rss.mjs examples/wrap-express/app.js
import { spawn } from 'node:child_process';

const [module = 'examples/wrap-express/app.js'] = process.argv.slice(2);
const child = spawn(
  process.execPath,
  [
    'dist/bin/ngi.js',
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
const statsPort = Number(/stats listening on 127\.0\.0\.1:(\d+)/.exec(stderr)[1]);
// Let start-up garbage settle before reading.
await new Promise((resolve) => setTimeout(resolve, 1500));
const stats = await (await fetch(`http://127.0.0.1:${statsPort}/`)).json();
const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
console.log(
  `${module}: master ${mib(stats.master.rss)}; workers ${stats.workers.map((w) => mib(w.rss)).join(', ')}`,
);
child.kill('SIGTERM');

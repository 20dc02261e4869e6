// Idle RSS of `ngi serve --workers 2` per process, as --stats reports it, for an app module
// (the built bin: run `npm run build` first). The master never loads the app.
// Run: node bench/idle-rss.mjs examples/wrap-express/app.js
import { startNgiServe } from './_ngi-serve.mjs';

const [module = 'examples/wrap-express/app.js'] = process.argv.slice(2);
const { child, statsPort } = await startNgiServe(module, { bin: 'dist' });
// Let start-up garbage settle before reading.
await new Promise((resolve) => setTimeout(resolve, 1500));
const stats = await (await fetch(`http://127.0.0.1:${statsPort}/`)).json();
const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
console.log(
  `${module}: master ${mib(stats.master.rss)}; workers ${stats.workers.map((w) => mib(w.rss)).join(', ')}`,
);
child.kill('SIGTERM');

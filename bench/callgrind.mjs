// Instructions per request, counted by valgrind's callgrind: deterministic for one binary and
// one input whatever else loads the machine, where req/s are not.
//   node bench/callgrind.mjs [substring of a row name ...]
// Each server runs under callgrind twice, answering WARMUP + SHORT and WARMUP + LONG sequential
// keep-alive GETs (uwsgi rows: packets, a connection each) from a client in a separate process
// (uncounted); the difference of the two
// totals over LONG - SHORT is the cost of one request after warm-up, startup and exit cancel.
// Env: CG_WARMUP (default 1000), CG_SHORT (1000), CG_LONG (3000). With a few hundred requests
// V8 tier-up landing inside one window but not the other swamps the difference: keep LONG - SHORT
// in the thousands and read a row twice before trusting it.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const WARMUP = Number(process.env.CG_WARMUP ?? 1000);
const SHORT = Number(process.env.CG_SHORT ?? 1000);
const LONG = Number(process.env.CG_LONG ?? 3000);

const native = (variant) => (port) => ['bench/_cg-native.mjs', variant, String(port)];
const ngiServe =
  (module, ...flags) =>
  (port) => [
    'dist/bin/ngi.js',
    'serve',
    module,
    '--http',
    `127.0.0.1:${port}`,
    '--workers',
    '0',
    ...flags,
  ];

/** [row, baseline, ngi]: each side is argv (after `node`) for a port. */
const ROWS = [
  ['toNodeHandler(ngi hello) vs raw node:http', native('node:http'), native('toNodeHandler')],
  [
    'ngi serve --workers 0, log off, vs raw node:http',
    native('node:http'),
    ngiServe('bench/apps/ngi-hello.mjs', '--log-format', 'off'),
  ],
  [
    'ngi serve --workers 0, text log (stdout to /dev/null), vs log off',
    ngiServe('bench/apps/ngi-hello.mjs', '--log-format', 'off'),
    ngiServe('bench/apps/ngi-hello.mjs'),
  ],
  [
    'Hono: ngi serve (fromHono) vs @hono/node-server',
    native('@hono/node-server (hono)'),
    ngiServe('bench/apps/hono-hello.mjs', '--log-format', 'off'),
  ],
  [
    'Fetch: ngi serve (fromFetch) vs srvx',
    native('srvx'),
    ngiServe('bench/apps/fetch-hello.mjs', '--log-format', 'off'),
  ],
  [
    'Fetch: ngi serve (fromFetch) vs @hono/node-server',
    native('@hono/node-server (fetch)'),
    ngiServe('bench/apps/fetch-hello.mjs', '--log-format', 'off'),
  ],
  [
    'Express: ngi serve (fromExpress) vs express listen',
    native('express listen'),
    ngiServe('bench/apps/express-hello.mjs', '--log-format', 'off'),
  ],
  ['Koa: toKoa(ngi hello) vs a Koa middleware', native('koa'), native('koa + toKoa')],
  [
    'Fastify: toFastify(ngi hello) vs a Fastify route',
    native('fastify'),
    native('fastify + toFastify'),
  ],
  ['Hono: toHono(ngi hello) vs a Hono route', native('hono route'), native('hono + toHono')],
  [
    'uwsgi: ngi serve --uwsgi --workers 0, log off, vs the Node floor (a connection per request)',
    native('uwsgi floor'),
    (port) => [
      'dist/bin/ngi.js',
      'serve',
      'bench/apps/ngi-hello.mjs',
      '--uwsgi',
      `127.0.0.1:${port}`,
      '--workers',
      '0',
      '--log-format',
      'off',
    ],
    'uwsgi',
  ],
];

/** What the uwsgi rows send: a GET nginx sent with a browser's headers (25 vars). */
const UWSGI_PACKET = new URL(
  '../test/fixtures/uwsgi-vectors/nginx/nginx-get-query-headers.bin',
  import.meta.url,
);

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForPort(port, child) {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode})`);
    const up = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    await sleep(200);
  }
  throw new Error(`port ${port} never opened`);
}

/** The uwsgi client: `count` packets, one connection each, each read until the server closes. */
async function uwsgiClient(port, count) {
  const packet = readFileSync(UWSGI_PACKET);
  for (let i = 0; i < count; i++) {
    await new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let head = '';
      socket.on('data', (chunk) => {
        if (head.length < 12) head += chunk.toString('latin1');
      });
      socket.once('end', () => {
        socket.destroy();
        if (head.startsWith('HTTP/1.1 200')) resolve();
        else reject(new Error(`answer ${JSON.stringify(head.slice(0, 12))}`));
      });
      socket.once('error', reject);
      socket.end(packet);
    });
  }
}

/** The client, in its own process so its work is not counted: `count` sequential GETs. */
async function client(port, count) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < count; i++) {
    await new Promise((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.resume().once('end', resolve);
      })
        .once('error', reject)
        .end();
    });
  }
  agent.destroy();
}

/** Total instructions of one server process answering `count` requests. */
async function countInstructions(argvFor, count, kind) {
  const dir = mkdtempSync(join(tmpdir(), 'ngi-cg-'));
  const out = join(dir, 'callgrind.out');
  const port = await freePort();
  const server = spawn(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, ...argvFor(port)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  server.stderr.on('data', (text) => (stderr += text));
  const exited = new Promise((resolve) => server.once('exit', resolve));
  try {
    await waitForPort(port, server);
    const load = spawn(process.execPath, [import.meta.filename, '--client', port, count, kind], {
      stdio: 'inherit',
    });
    const code = await new Promise((resolve) => load.once('exit', resolve));
    if (code !== 0) throw new Error(`client failed (${code})`);
  } catch (error) {
    server.kill('SIGKILL');
    throw new Error(`${error.message}\n${stderr.slice(-2000)}`);
  }
  server.kill('SIGTERM');
  await exited;
  const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(out, 'utf8'));
  rmSync(dir, { recursive: true, force: true });
  if (totals === null) throw new Error(`no totals in callgrind output\n${stderr.slice(-2000)}`);
  return Number(totals[1]);
}

async function perRequest(argvFor, kind = 'http') {
  const short = await countInstructions(argvFor, WARMUP + SHORT, kind);
  const long = await countInstructions(argvFor, WARMUP + LONG, kind);
  return (long - short) / (LONG - SHORT);
}

if (process.argv[2] === '--client') {
  const [port, count, kind] = [Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
  await (kind === 'uwsgi' ? uwsgiClient(port, count) : client(port, count));
} else {
  const filters = process.argv.slice(2);
  const rows = ROWS.filter(
    ([name]) => filters.length === 0 || filters.some((f) => name.includes(f)),
  );
  console.log(
    `callgrind, ${WARMUP} warm-up + (${LONG} - ${SHORT}) sequential keep-alive GETs, Node ${process.version}`,
  );
  console.log('| comparison | baseline instr/req | ngi instr/req | ngi / baseline |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, baseline, ngi, kind] of rows) {
    const base = await perRequest(baseline, kind);
    const ours = await perRequest(ngi, kind);
    console.log(
      `| ${name} | ${Math.round(base)} | ${Math.round(ours)} | ${(ours / base).toFixed(2)} |`,
    );
  }
}

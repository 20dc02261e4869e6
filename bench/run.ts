// The benchmark harness: every comparison runs the native baseline and the ngi path in the
// same run, alternating, with load from a separate process (wrk if installed, else
// autocannon), bounded in time, on 127.0.0.1 only. Prints req/s and the ratio to the baseline.
//
//   npm run bench                      all groups
//   npm run bench -- express hono      only groups whose name contains one of the words
//   BENCH_SECONDS=5 BENCH_ROUNDS=3     longer, steadier runs
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

interface Group {
  name: string;
  goal: number;
  baseline: string;
  candidates: string[];
}

const groups: Group[] = [
  {
    name: 'ngi hello vs node:http',
    goal: 0.97,
    baseline: 'node:http',
    candidates: ['ngi toNodeHandler'],
  },
  {
    name: 'express via ngi vs express',
    goal: 0.97,
    baseline: 'express',
    candidates: ['express via ngi (fast path)', 'express via ngi (emulated)'],
  },
  {
    name: 'ngi serve --http vs node:http',
    goal: 0.97,
    baseline: 'node:http',
    candidates: ['ngi serve --http'],
  },
  {
    name: 'nginx uwsgi_pass vs proxy_pass',
    goal: 1.05,
    baseline: 'nginx>http:node:http',
    candidates: ['nginx>uwsgi:ngi serve --uwsgi'],
  },
  {
    // The honest comparison: the same nginx path, against the least a uwsgi server on
    // node:net can do (bench/servers.ts, `uwsgiFloor`).
    name: 'nginx uwsgi_pass: ngi vs the Node floor',
    goal: 0.9,
    baseline: 'nginx>uwsgi:uwsgi floor (node:net)',
    candidates: ['nginx>uwsgi:ngi serve --uwsgi'],
  },
  {
    name: 'nginx uwsgi_pass unix: ngi vs the Node floor',
    goal: 0.9,
    baseline: 'nginx>uwsgi-unix:uwsgi floor unix (node:net)',
    // The second row: the floor with what a correct server adds (half-open, a timeout).
    candidates: [
      'nginx>uwsgi-unix:ngi serve --uwsgi unix',
      'nginx>uwsgi-unix:uwsgi floor unix, half-open with a timeout (node:net)',
    ],
  },
  {
    name: 'nginx uwsgi_pass vs proxy_pass (express)',
    goal: 1.05,
    baseline: 'nginx>http:express',
    candidates: ['nginx>uwsgi:ngi serve --uwsgi (express app)'],
  },
  {
    name: 'nginx uwsgi_pass unix: vs proxy_pass keep-alive',
    goal: 1.05,
    baseline: 'nginx>http-keepalive:node:http',
    // The TCP uwsgi row shows what the Unix socket itself gains.
    candidates: ['nginx>uwsgi-unix:ngi serve --uwsgi unix', 'nginx>uwsgi:ngi serve --uwsgi'],
  },
  {
    name: 'nginx uwsgi_pass unix: vs proxy_pass keep-alive (express)',
    goal: 1.05,
    baseline: 'nginx>http-keepalive:express',
    candidates: ['nginx>uwsgi-unix:ngi serve --uwsgi unix (express app)'],
  },
  {
    name: 'ngi serve --https h2 vs node:http2',
    goal: 0.95,
    baseline: 'h2:node:http2 (allowHTTP1)',
    candidates: ['h2:ngi serve --https'],
  },
  {
    name: 'ngi serve --https HTTP/1.1 vs node:https',
    goal: 0.95,
    baseline: 'h1tls:node:https',
    // node:http2's own HTTP/1.1 fallback (what --https runs on) shows where the gap lies.
    candidates: ['h1tls:ngi serve --https', 'h1tls:node:http2 (allowHTTP1)'],
  },
  {
    name: 'ngi in express vs express',
    goal: 0.95,
    baseline: 'express',
    candidates: ['express + toExpress(ngi)'],
  },
  {
    name: 'ngi in fastify vs fastify',
    goal: 0.95,
    baseline: 'fastify',
    // The second row: what answering through reply costs against writing directly.
    candidates: ['fastify + toFastify(ngi)', 'fastify + ngi written directly (hijack)'],
  },
  {
    name: 'ngi in koa vs koa',
    goal: 0.95,
    baseline: 'koa',
    // The second row: what answering through Koa costs against writing directly.
    candidates: ['koa + toKoa(ngi)', 'koa + ngi written directly (ctx.respond = false)'],
  },
  {
    name: 'ngi in hono vs hono',
    goal: 0.95,
    baseline: 'hono on @hono/node-server',
    candidates: [
      'hono + toHono(ngi) on @hono/node-server',
      'hono via ngi (fromHono + toNodeHandler)',
    ],
  },
  {
    name: 'hono under ngi serve vs @hono/node-server',
    goal: 0.95,
    baseline: 'hono on @hono/node-server',
    // The second row: the same without the light global Response.
    candidates: ['hono under ngi serve', 'hono under ngi serve --native-response'],
  },
  {
    name: 'fetch handler under ngi serve vs @hono/node-server and srvx',
    goal: 0.95,
    baseline: 'fetch on @hono/node-server',
    // Goal against srvx: 1.5x (its row's ratio to this baseline shows how far ngi is ahead).
    candidates: ['fetch under ngi serve', 'fetch on srvx'],
  },
];

const serversFile = fileURLToPath(new URL('./servers.ts', import.meta.url));

/**
 * A variant named `nginx>uwsgi:<server variant>` or `nginx>http:<server variant>` runs the
 * server variant behind a real nginx (`uwsgi_pass` or `proxy_pass`, both with nginx's
 * defaults: a new upstream connection per request); `nginx>uwsgi-unix:` passes to a server
 * on a Unix socket, `nginx>http-keepalive:` keeps upstream connections alive (`keepalive 32`,
 * HTTP/1.1), the best nginx can do for a Node HTTP backend.
 */
const FRONTED = /^nginx>(uwsgi|uwsgi-unix|http|http-keepalive):(.+)$/;
/**
 * `h2:<server variant>` and `h1tls:<server variant>` are TLS servers, loaded with h2load
 * (HTTP/2, or `--h1` for HTTP/1.1 over TLS): wrk and autocannon speak no h2.
 */
const TLS = /^(h2|h1tls):(.+)$/;
const hasWrk = spawnSync('wrk', ['--version']).error === undefined;
const hasH2load = spawnSync('h2load', ['--version']).error === undefined;

interface Running {
  port: number;
  /** The load to measure it with (plain HTTP/1.1 unless the variant says otherwise). */
  load?: (seconds: number) => Promise<number>;
  stop(): Promise<void> | void;
}

async function start(variant: string): Promise<Running> {
  const tls = TLS.exec(variant);
  if (tls) {
    if (!hasH2load) throw new Error('h2load is not installed (apt-get install nghttp2-client)');
    const server = await startServer(tls[2]!);
    return {
      port: server.port,
      load: (seconds) => h2load(server.port, seconds, tls[1] === 'h1tls'),
      stop: () => void server.child.kill('SIGTERM'),
    };
  }
  const fronted = FRONTED.exec(variant);
  if (fronted) {
    const backend = await startServer(fronted[2]!);
    const { startNginx } = await import('../test/helpers/nginx.js');
    const mode = fronted[1]!;
    const pass =
      mode === 'uwsgi'
        ? `include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:${backend.port};`
        : mode === 'uwsgi-unix'
          ? `include /etc/nginx/uwsgi_params; uwsgi_pass unix:${backend.path};`
          : mode === 'http-keepalive'
            ? 'proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";'
            : `proxy_pass http://127.0.0.1:${backend.port};`;
    const http =
      mode === 'http-keepalive'
        ? `upstream backend { server 127.0.0.1:${backend.port}; keepalive 32; }`
        : '';
    const nginx = await startNginx({ http, server: `access_log off; location / { ${pass} }` });
    return {
      port: nginx.port,
      stop: async () => {
        await nginx.stop();
        backend.child.kill('SIGTERM');
      },
    };
  }
  const server = await startServer(variant);
  return { port: server.port, stop: () => void server.child.kill('SIGTERM') };
}

async function startServer(
  variant: string,
): Promise<{ child: ChildProcess; port: number; path?: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', serversFile, variant], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [line] = (await Promise.race([once(lines, 'line'), once(child, 'exit')])) as [string];
  clearTimeout(timer);
  if (typeof line !== 'string') throw new Error(`server ${variant} exited before listening`);
  return { child, ...(JSON.parse(line) as { port: number; path?: string }) };
}

async function load(port: number, seconds: number): Promise<number> {
  const url = `http://127.0.0.1:${port}/`;
  if (hasWrk) {
    const out = spawnSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, url], {
      encoding: 'utf8',
    });
    const match = /Requests\/sec:\s+([\d.]+)/.exec(out.stdout);
    if (!match || /Non-2xx/.test(out.stdout))
      throw new Error(`wrk failed:\n${out.stdout}${out.stderr}`);
    return Number(match[1]);
  }
  const { default: autocannon } = await import('autocannon');
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`autocannon saw errors on ${url}`);
  return result.requests.average;
}

/** req/s from h2load over TLS: 32 connections, 10 streams each on h2 (1 on HTTP/1.1). */
async function h2load(port: number, seconds: number, http1: boolean): Promise<number> {
  const args = ['-c', String(CONNECTIONS), '-t', '1', '-D', String(seconds)];
  args.push(...(http1 ? ['--h1', '-m', '1'] : ['-m', '10']));
  const out = spawnSync('h2load', [...args, `https://127.0.0.1:${port}/`], {
    encoding: 'utf8',
    timeout: (seconds + 20) * 1000,
  });
  const match = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out.stdout);
  const failed = /requests: .* (\d+) failed/.exec(out.stdout);
  const non2xx = /status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out.stdout);
  if (!match || (failed && failed[1] !== '0') || (non2xx && non2xx.slice(1).some((n) => n !== '0')))
    throw new Error(`h2load failed:\n${out.stdout}${out.stderr}`);
  return Number(match[1]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const filter = process.argv.slice(2);
const chosen = filter.length
  ? groups.filter((g) => filter.some((w) => g.name.includes(w)))
  : groups;
console.log(
  `load: ${hasWrk ? 'wrk -t1' : 'autocannon'}, ${CONNECTIONS} connections, ${SECONDS}s x ${ROUNDS} rounds, node ${process.version}`,
);
const rows: string[][] = [['group', 'variant', 'req/s', 'ratio', 'goal']];
for (const group of chosen) {
  const variants = [group.baseline, ...group.candidates];
  const servers = new Map<string, Running>();
  try {
    for (const v of variants) servers.set(v, await start(v));
    const samples = new Map<string, number[]>(variants.map((v) => [v, []]));
    const measure = (v: string, seconds: number): Promise<number> => {
      const server = servers.get(v)!;
      return server.load ? server.load(seconds) : load(server.port, seconds);
    };
    for (const v of variants) await measure(v, 1); // warm-up: JIT, pools
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of variants) samples.get(v)!.push(await measure(v, SECONDS));
    }
    const base = median(samples.get(group.baseline)!);
    for (const v of variants) {
      const rps = median(samples.get(v)!);
      const ratio = v === group.baseline ? '1.00' : (rps / base).toFixed(2);
      rows.push([
        group.name,
        v,
        rps.toFixed(0),
        ratio,
        v === group.baseline ? '' : `>= ${group.goal}`,
      ]);
    }
  } catch (error) {
    rows.push([group.name, 'FAILED', String((error as Error).message).split('\n')[0]!, '', '']);
  } finally {
    for (const server of servers.values()) await server.stop();
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));

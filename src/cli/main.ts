/*
 * `ngi serve <module>[:export] [flags]`: the gateway server's command line.
 *
 * Decisions, for people coming from uWSGI:
 * - `--http :8080` binds 127.0.0.1, not every interface as uWSGI does: exposing a port to
 *   the network is something to ask for (`--http 0.0.0.0:8080`), never a default.
 * - There is always a master unless `--workers 0`: `--workers 1` (the default) already gets
 *   graceful reload on SIGHUP, respawn, harakiri and max-requests recycling, which all need
 *   a process that outlives the worker. `--workers 0` serves in this very process (no reload,
 *   no recycling), for debuggers and for supervisors that want one process.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runMaster, type ReloadMode } from '../server/master.js';
import { watchFolder, watchTouched, type ReloadTrigger } from '../server/file-watch.js';
import type { RecyclingOptions } from '../server/recycling.js';
import { isWorker } from '../server/ipc.js';
import type { LogFormat } from '../server/access-log.js';
import {
  KINDS,
  loadApp,
  splitSpecifier,
  type AdapterRegistry,
  type Kind,
} from '../server/load-app.js';
import { resolveAppModule } from '../server/app-module.js';
import { closestName } from './closest-name.js';
import { ConfigError } from './config-file.js';
import { mergeSettings, type MergedSettings, type SettingKey, type Settings } from './settings.js';
import { formatListen, parseListen, type ListenAddress } from '../server/listen-address.js';
// Types only: the serving code is loaded by the processes that serve (a worker, --workers 0),
// never by the master.
import type { ServeOptions } from '../server/serve.js';
import { claimUnixSocket, parseSocketMode } from '../server/unix-socket.js';
import { compileTrust } from '../middleware/trusted-proxy.js';

interface Flag extends SettingKey {
  short?: string;
  value?: string;
  default: string;
  help: string;
}

/** Every flag, in the order `--help` lists them. */
const FLAGS: Flag[] = [
  {
    name: 'http',
    type: 'string',
    value: '[host:]port|unix:PATH',
    default: 'off',
    help: 'HTTP listener; host defaults to 127.0.0.1 (use 0.0.0.0:PORT for every interface)',
    uwsgi: ['http-socket'],
  },
  {
    name: 'uwsgi',
    type: 'string',
    value: '[host:]port|unix:PATH',
    default: 'off',
    help: 'uwsgi listener for nginx uwsgi_pass; host defaults to 127.0.0.1',
    uwsgi: ['socket', 'uwsgi-socket'],
  },
  {
    name: 'https',
    type: 'string',
    value: '[host:]port|unix:PATH',
    default: 'off',
    help: 'HTTPS listener, HTTP/2 and HTTP/1.1 by ALPN; needs --cert and --key',
  },
  {
    name: 'cert',
    type: 'string',
    value: 'FILE',
    default: 'none',
    help: 'PEM certificate (chain) for --https; re-read by every reload (SIGHUP)',
  },
  {
    name: 'key',
    type: 'string',
    value: 'FILE',
    default: 'none',
    help: 'PEM private key for --https',
  },
  {
    name: 'chmod-socket',
    type: 'string',
    value: 'MODE',
    default: 'umask',
    help: 'octal mode of the unix:PATH socket files (e.g. 660 for an nginx in their group)',
  },
  {
    name: 'workers',
    type: 'string',
    value: 'N',
    default: '1',
    help: 'worker processes under a master; 0 serves in this process (no reload or recycling)',
  },
  {
    name: 'processes',
    type: 'string',
    value: 'N',
    default: '1',
    help: 'same as --workers (uWSGI spelling)',
    aliasOf: 'workers',
  },
  {
    name: 'harakiri',
    type: 'string',
    value: 'S',
    default: '0 (off)',
    help: 'answer 504 to a request running longer than S seconds and recycle its worker',
  },
  {
    name: 'max-requests',
    type: 'string',
    value: 'N',
    default: '0 (off)',
    help: 'recycle a worker gracefully after N requests',
  },
  {
    name: 'max-requests-delta',
    type: 'string',
    value: 'N',
    default: '0',
    help: "each worker's limit is --max-requests plus a random 0..N, so workers do not recycle together (gunicorn's max_requests_jitter)",
  },
  {
    name: 'reload-on-rss',
    type: 'string',
    value: 'MB',
    default: '0 (off)',
    help: 'recycle a worker gracefully once its resident memory passes MB MiB (checked every 0.5 s)',
  },
  {
    name: 'max-worker-lifetime',
    type: 'string',
    value: 'S',
    default: '0 (off)',
    help: 'recycle a worker gracefully S seconds after it started serving',
  },
  {
    name: 'max-worker-lifetime-delta',
    type: 'string',
    value: 'S',
    default: '0',
    help: "each worker's lifetime is --max-worker-lifetime plus a random 0..S seconds, so workers do not recycle together",
  },
  {
    name: 'reload-mode',
    type: 'string',
    value: 'all|rolling',
    default: 'all',
    help: 'a reload starts every new worker at once (never fewer than N serving), or replaces one at a time (at least N-1 serving, at most N+1 processes)',
  },
  {
    name: 'reload',
    type: 'boolean',
    default: 'false',
    help: "development: reload the workers gracefully when a source file (.js .mjs .cjs .ts .json ...) in the app module's folder changes (not in node_modules or dot folders)",
  },
  {
    name: 'touch-reload',
    type: 'string',
    multiple: true,
    value: 'FILE',
    default: 'none',
    help: "reload the workers gracefully when FILE's modification time changes (repeatable)",
  },
  {
    name: 'static-map',
    type: 'string',
    multiple: true,
    value: '/prefix=dir',
    default: 'none',
    help: 'serve files from dir under /prefix before the app (repeatable); missing files fall through',
  },
  {
    name: 'buffer-size',
    type: 'string',
    value: 'BYTES',
    default: '4096',
    help: 'largest uwsgi vars block accepted (max 65535)',
  },
  {
    name: 'limit-post',
    type: 'string',
    value: 'BYTES',
    default: '0 (off)',
    help: 'refuse (413) a request body declared larger than this',
  },
  {
    name: 'trust-proxy',
    type: 'string',
    value: 'ADDR|CIDR,...',
    default: 'none',
    help: 'peers whose Forwarded/X-Forwarded-* headers set REMOTE_ADDR, scheme and host (also loopback, uniquelocal)',
  },
  {
    name: 'proxy-protocol',
    type: 'string',
    value: 'http|https|uwsgi,...',
    default: 'none',
    help: 'these listeners require a PROXY protocol v1/v2 header (HAProxy, TCP load balancers) and take the client from it',
  },
  {
    name: 'socket-timeout',
    type: 'string',
    value: 'S',
    default: '30',
    help: 'cut a request stalled this long on its peer (a body that stops coming, a response not read, a uwsgi peer that never closes after its response)',
  },
  {
    name: 'log-format',
    type: 'string',
    value: 'text|json|off',
    default: 'text',
    help: 'access log on stdout: a readable line, one JSON object, or nothing',
  },
  {
    name: 'stats',
    type: 'string',
    value: '[host:]port|unix:PATH',
    default: 'off',
    help: 'serve JSON figures (requests, in flight, statuses, uptime, RSS of the master and each worker), /metrics for Prometheus, /healthz and /readyz',
  },
  {
    name: 'kind',
    type: 'string',
    value: 'KIND',
    default: 'detect',
    help: 'what the module exports: ngi|node|server|express|fastify|koa|hono|fetch',
  },
  {
    name: 'native-response',
    type: 'boolean',
    default: 'false',
    help: "a Hono or Fetch app keeps Node's own global Response; by default ngi installs a light one that writes text and bytes bodies without a web stream (as @hono/node-server does), indistinguishable to apps",
  },
  {
    name: 'grace',
    type: 'string',
    value: 'S',
    default: '30',
    help: 'how long a stop or reload waits for in-flight requests',
  },
  {
    name: 'config',
    type: 'string',
    value: 'FILE',
    default: 'none',
    help: "settings from ngi.json, or an INI file's [uwsgi]/[ngi] sections (also NGI_CONFIG)",
    cliOnly: true,
  },
  {
    name: 'print-config',
    type: 'boolean',
    default: 'false',
    help: 'print the effective settings and where each comes from, then exit',
    cliOnly: true,
  },
  {
    name: 'die-with-parent',
    type: 'boolean',
    default: 'on under npm/npx',
    help: 'stop gracefully when the process that started ngi exits (on by itself under npm exec/npx and npm run, which leave their child running when stopped)',
    cliOnly: true,
  },
  {
    name: 'help',
    type: 'boolean',
    short: 'h',
    default: 'false',
    help: 'show this help',
    cliOnly: true,
  },
  {
    name: 'version',
    type: 'boolean',
    short: 'v',
    default: 'false',
    help: 'print the version',
    cliOnly: true,
  },
];

/** The module to serve: the argument after `serve`, or `app` in a config file or NGI_APP. */
const APP_KEY: SettingKey = { name: 'app', type: 'string' };

function helpText(): string {
  const rows = FLAGS.map((flag) => {
    const name = `${flag.short ? `-${flag.short}, ` : '    '}--${flag.name}${flag.value ? ' ' + flag.value : ''}`;
    const fallback = flag.default === 'false' ? '' : ` (default: ${flag.default})`;
    return `  ${name.padEnd(34)} ${flag.help}${fallback}`;
  });
  return [
    'Usage: ngi serve <module>[:export] [flags]',
    '',
    'Hosts an app module (an NGI app, Express, Fastify, Koa, Hono, a Fetch handler, a',
    'plain (req, res) handler or an http.Server with its upgrade listeners: ws, socket.io)',
    'over HTTP, HTTPS (HTTP/2) and/or uwsgi, with a master and worker processes.',
    'Signals: SIGHUP reloads the workers gracefully; SIGTERM and SIGINT stop after in-flight',
    'requests finish.',
    'Every flag can also come from a config file given with --config (ngi.json, or an INI',
    'file with [ngi] and/or [uwsgi] sections: http=, socket=, processes=, ...) or from a',
    'variable (NGI_HTTP=:8080, NGI_STATIC_MAP=/a=dir,/b=dir); flags win over variables,',
    'variables over the file. The module can be app= in the file, or NGI_APP.',
    '',
    'Flags:',
    ...rows,
    '',
    'Example: ngi serve app.js --http :8080 --uwsgi :3031 --workers 4',
    '         ngi serve app.js --https :8443 --cert cert.pem --key key.pem',
    '         ngi serve app.js --uwsgi unix:/run/app/uwsgi.sock --chmod-socket 660',
    '',
  ].join('\n');
}

/** A command-line mistake: printed as one paragraph, exit code 2. */
export class UsageError extends Error {}

export interface Command {
  /** Lines about the config file to print once (uWSGI options ignored). */
  warnings: string[];
  specifier: string;
  kind: Kind | undefined;
  /** `--native-response`: leave the global `Response` alone for a Hono or Fetch app. */
  nativeResponse: boolean;
  workers: number;
  dieWithParent: boolean;
  http: ListenAddress | undefined;
  uwsgi: ListenAddress | undefined;
  https: ListenAddress | undefined;
  stats: ListenAddress | undefined;
  serve: ServeOptions;
  /** Worker-side recycling: request-limit jitter, memory ceiling. */
  recycling: RecyclingOptions;
  /** Master-side: lifetime recycling and what reloads. */
  reloading: {
    maxWorkerLifetime: number;
    /** Whole seconds: each worker's lifetime is drawn from max..max+delta. */
    maxWorkerLifetimeDelta: number;
    reloadMode: ReloadMode;
    /** `--reload`: watch the app module's folder. */
    watchApp: boolean;
    touchReload: string[];
  };
}

/** parseArgs' own text, said the way a person needs it: the flag, and the one they meant. */
function explainParseError(error: Error & { code?: string }): string {
  if (error.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return error.message;
  const given = /'(-[^']*)'/.exec(error.message)?.[1] ?? '';
  const name = given.replace(/^-+/, '').split('=')[0]!;
  const best = closestName(
    name,
    FLAGS.map((flag) => flag.name),
  );
  return `unknown flag ${given}${best !== undefined ? ` (did you mean --${best}?)` : ''}`;
}

/**
 * What `ngi <argv>` asks for, with the config file and `NGI_*` variables merged in (flags win),
 * checked: a `Command` to run, `help`, `version`, or the settings to print. A mistake throws a
 * `UsageError` whose message is the one line the CLI prints. No process is started.
 *
 * @example
 * parseCommandLine(['serve', 'app.js', '--http', ':8080']).workers; // 1
 */
export function parseCommandLine(argv: string[]): Command | 'help' | 'version' | PrintConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        FLAGS.map((f) => [
          f.name,
          {
            type: f.type,
            ...(f.multiple ? { multiple: true } : {}),
            ...(f.short ? { short: f.short } : {}),
          },
        ]),
      ),
    });
  } catch (error) {
    throw new UsageError(explainParseError(error as Error & { code?: string }));
  }
  const flags = parsed.values as Record<string, string | string[] | boolean | undefined>;
  if (flags.help) return 'help';
  if (flags.version) return 'version';
  const [command, positional, ...extra] = parsed.positionals;
  if (command !== 'serve') {
    throw new UsageError(
      command === undefined ? 'no command given' : `unknown command ${JSON.stringify(command)}`,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  let merged;
  try {
    merged = mergeSettings({ flags, env: process.env, keys: [APP_KEY, ...FLAGS] });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  if (positional !== undefined) {
    merged.settings.set('app', { value: positional, source: 'command line' });
  }
  if (flags['print-config']) return { print: merged };
  return {
    ...commandFrom(merged.settings, merged.warnings),
    // npm sets npm_command for `npm exec`/`npx` and `npm run`: stopping npm does not stop us.
    dieWithParent: flags['die-with-parent'] === true || process.env.npm_command !== undefined,
  };
}

/** `--print-config`: the merged settings, printed before they are checked. */
export interface PrintConfig {
  print: MergedSettings;
}

/** Checks the merged settings and turns them into what `main` runs. */
function commandFrom(settings: Settings, warnings: string[]): Omit<Command, 'dieWithParent'> {
  // Messages name the source of the value to fix: `--workers`, `NGI_WORKERS` or a file line.
  const label = (name: string): string => settings.get(name)?.source ?? `--${name}`;
  const text = (name: string) => settings.get(name)?.value as string | undefined;
  const specifier = text('app');
  if (specifier === undefined) {
    throw new UsageError('no app module given (after "serve", or app= in the config file)');
  }
  const number = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || value > max) {
      throw new UsageError(
        `${label(name)} expects a number from 0 to ${max}, got ${JSON.stringify(raw)}`,
      );
    }
    return value;
  };
  const integer = (name: string, fallback: number, max?: number): number => {
    const value = number(name, fallback, max);
    if (!Number.isInteger(value)) throw new UsageError(`${label(name)} expects a whole number`);
    return value;
  };
  const address = (name: string): ListenAddress | undefined => {
    const raw = text(name);
    if (raw === undefined) return undefined;
    try {
      return parseListen(raw);
    } catch (error) {
      throw new UsageError(`${label(name)}: ${(error as Error).message}`);
    }
  };

  const http = address('http');
  const uwsgi = address('uwsgi');
  const https = address('https');
  const cert = text('cert');
  const key = text('key');
  if (https !== undefined) {
    if (cert === undefined || key === undefined) {
      throw new UsageError(`${label('https')} needs --cert FILE and --key FILE (PEM)`);
    }
  } else if (cert !== undefined || key !== undefined) {
    throw new UsageError(`${label(cert !== undefined ? 'cert' : 'key')} is only for --https`);
  }
  if (http === undefined && uwsgi === undefined && https === undefined) {
    throw new UsageError(
      'nothing to listen on: give --http, --https and/or --uwsgi, each [host:]port or unix:PATH',
    );
  }
  const logFormat = text('log-format') ?? 'text';
  if (!['text', 'json', 'off'].includes(logFormat)) {
    throw new UsageError(
      `${label('log-format')} expects text, json or off, got ${JSON.stringify(logFormat)}`,
    );
  }
  const kind = text('kind');
  if (kind !== undefined && !(KINDS as readonly string[]).includes(kind)) {
    throw new UsageError(
      `${label('kind')} expects one of ${KINDS.join(', ')}, got ${JSON.stringify(kind)}`,
    );
  }
  const staticMap = ((settings.get('static-map')?.value as string[] | undefined) ?? []).map(
    (entry) => {
      const eq = entry.indexOf('=');
      if (!entry.startsWith('/') || eq < 2 || eq === entry.length - 1) {
        throw new UsageError(
          `${label('static-map')} expects /prefix=dir, got ${JSON.stringify(entry)}`,
        );
      }
      return [entry.slice(0, eq), resolve(entry.slice(eq + 1))] as [string, string];
    },
  );
  const modeText = text('chmod-socket');
  let chmodSocket: number | undefined;
  if (modeText !== undefined) {
    try {
      chmodSocket = parseSocketMode(modeText);
    } catch (error) {
      throw new UsageError(`${label('chmod-socket')}: ${(error as Error).message}`);
    }
  }
  const trustText = text('trust-proxy');
  const trustProxy = trustText
    ?.split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (trustProxy !== undefined) {
    try {
      compileTrust(trustProxy);
    } catch (error) {
      throw new UsageError(`${label('trust-proxy')}: ${(error as Error).message}`);
    }
  }
  const proxyProtocol = text('proxy-protocol')
    ?.split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '') as Array<'http' | 'https' | 'uwsgi'> | undefined;
  for (const name of proxyProtocol ?? []) {
    if (name !== 'http' && name !== 'https' && name !== 'uwsgi') {
      throw new UsageError(
        `${label('proxy-protocol')} names listeners, http, https and/or uwsgi, got ${JSON.stringify(name)}`,
      );
    }
  }
  const bufferSize = integer('buffer-size', 4096, 65535);
  if (bufferSize < 4) throw new UsageError(`${label('buffer-size')} must be at least 4`);
  const workers = integer('workers', 1, 1024);
  const reloadMode = text('reload-mode') ?? 'all';
  if (reloadMode !== 'all' && reloadMode !== 'rolling') {
    throw new UsageError(
      `${label('reload-mode')} expects all or rolling, got ${JSON.stringify(reloadMode)}`,
    );
  }
  const watchApp = settings.get('reload')?.value === true;
  const touchReload = ((settings.get('touch-reload')?.value as string[] | undefined) ?? []).map(
    (file) => resolve(file),
  );
  if (workers === 0 && (watchApp || touchReload.length > 0)) {
    throw new UsageError(
      `${label(watchApp ? 'reload' : 'touch-reload')} needs a master to reload: use --workers 1 or more`,
    );
  }
  return {
    warnings,
    specifier,
    kind: kind as Kind | undefined,
    nativeResponse: settings.get('native-response')?.value === true,
    workers,
    http,
    uwsgi,
    https,
    stats: address('stats'),
    serve: {
      http,
      uwsgi,
      https,
      cert: cert === undefined ? undefined : resolve(cert),
      key: key === undefined ? undefined : resolve(key),
      chmodSocket,
      trustProxy,
      proxyProtocol,
      staticMap,
      harakiri: number('harakiri', 0),
      maxRequests: integer('max-requests', 0),
      limitPost: integer('limit-post', 0),
      bufferSize,
      socketTimeout: number('socket-timeout', 30),
      logFormat: logFormat as LogFormat,
      grace: number('grace', 30),
    },
    recycling: {
      maxRequestsDelta: integer('max-requests-delta', 0),
      reloadOnRss: number('reload-on-rss', 0),
    },
    reloading: {
      maxWorkerLifetime: number('max-worker-lifetime', 0),
      maxWorkerLifetimeDelta: integer('max-worker-lifetime-delta', 0),
      reloadMode,
      watchApp,
      touchReload,
    },
  };
}

function version(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'ngi-gateway') return pkg.version ?? 'unknown';
    } catch {
      // not here: try one folder up (dist/src/cli/main.js)
    }
  }
  return 'unknown';
}

/**
 * The effective settings as an INI file's `[ngi]` section (which `--config` reads back), each
 * line saying where its value came from; settings left at their default are comments.
 */
function printedConfig({ settings, configFile }: MergedSettings): string {
  const quote = (value: string): string =>
    /^\s|\s$|[;#"]/.test(value) || value === '' ? JSON.stringify(value) : value;
  const lines = [
    '; ngi serve: the effective settings (flags > NGI_* variables > config file > defaults)',
    ...(configFile !== undefined ? [`; config file: ${configFile}`] : []),
    '[ngi]',
  ];
  for (const key of [APP_KEY, ...FLAGS]) {
    if (key.cliOnly || key.aliasOf !== undefined) continue;
    const setting = settings.get(key.name);
    if (setting === undefined) {
      const flag = key as Partial<Flag>;
      lines.push(`; ${key.name} = ${flag.default ?? '(none)'} (default)`);
      continue;
    }
    const values = Array.isArray(setting.value) ? setting.value : [setting.value];
    for (const value of values) {
      lines.push(`${key.name} = ${quote(String(value))} ; ${setting.source}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Port 0 is resolved once, here, so every worker (and every respawn) listens on the same port. */
async function resolvePort(address: ListenAddress | undefined): Promise<ListenAddress | undefined> {
  if (address === undefined || address.path !== undefined || address.port !== 0) return address;
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, address.host, () => {
      const port = (probe.address() as { port: number }).port;
      probe.close(() => done({ host: address.host, port }));
    });
  });
}

/** What `main` needs from the program that runs it. */
export interface MainContext {
  /** The `fromX` adapters the app loader wraps each kind of module with. */
  adapters: AdapterRegistry;
}

/**
 * Runs `ngi <argv>`; resolves with the exit code, or `undefined` in a worker process (which
 * keeps serving until its master stops it).
 *
 * @example
 * process.exitCode = (await main(['serve', 'app.js', '--http', ':8080'], { adapters })) ?? 0;
 */
export async function main(argv: string[], context: MainContext): Promise<number | undefined> {
  let command;
  try {
    command = parseCommandLine(argv);
  } catch (error) {
    process.stderr.write(
      `ngi: ${(error as Error).message}. Usage: ngi serve <module>[:export] [flags]; run "ngi serve --help" for every flag.\n`,
    );
    // A worker re-reads the config file when it starts (a reload picks up its changes): one
    // that no longer parses must exit, so the master keeps the old workers serving.
    if (isWorker()) process.exit(2);
    return 2;
  }
  if (command === 'help') {
    process.stdout.write(helpText());
    return 0;
  }
  if (command === 'version') {
    process.stdout.write(`ngi ${version()}\n`);
    return 0;
  }
  if ('print' in command) {
    for (const warning of command.print.warnings) process.stderr.write(`ngi: ${warning}\n`);
    process.stdout.write(printedConfig(command.print));
    try {
      commandFrom(command.print.settings, []);
    } catch (error) {
      process.stderr.write(`ngi: ${(error as Error).message}: ngi serve would not start.\n`);
      return 2;
    }
    return 0;
  }
  const { specifier, kind } = command;
  if (isWorker()) {
    const { runWorker } = await import('../server/worker.js');
    await runWorker(
      () =>
        loadApp(specifier, {
          kind,
          adapters: context.adapters,
          lightResponse: !command.nativeResponse,
        }),
      command.serve,
      command.recycling,
    );
    return undefined;
  }
  for (const warning of command.warnings) process.stderr.write(`ngi: ${warning}\n`);
  if (command.dieWithParent) stopWhenOrphaned();
  try {
    // Before any worker starts: a missing module is one clear line, not one per worker.
    const appFile = resolveAppModule(splitSpecifier(specifier).path);
    if (command.workers === 0) return await serveHere(command, context);
    if (command.https !== undefined) await checkCertificates(command.serve);
    const [http, uwsgi, https] = [
      await resolvePort(command.http),
      await resolvePort(command.uwsgi),
      await resolvePort(command.https),
    ];
    // The master claims the socket paths once (a stale file from a crashed run is removed, a
    // live one is an error); cluster then binds them once for all workers.
    for (const [what, address] of [
      ['http', http],
      ['uwsgi', uwsgi],
      ['https', https],
      ['stats', command.stats],
    ] as const) {
      if (address?.path !== undefined) await claimSocket(what, address.path);
    }
    return await runMaster({
      workers: command.workers,
      http,
      uwsgi,
      https,
      stats: command.stats,
      harakiri: command.serve.harakiri,
      grace: command.serve.grace,
      maxWorkerLifetime: command.reloading.maxWorkerLifetime,
      maxWorkerLifetimeDelta: command.reloading.maxWorkerLifetimeDelta,
      reloadMode: command.reloading.reloadMode,
      reloadTriggers: reloadTriggers(command, appFile),
    });
  } catch (error) {
    process.stderr.write(`ngi: ${(error as Error).message}\n`);
    return 1;
  }
}

/** `--reload` and `--touch-reload`, as the master starts them. */
function reloadTriggers(command: Command, appFile: string): ReloadTrigger[] {
  const { watchApp, touchReload } = command.reloading;
  return [
    ...(watchApp ? [watchFolder(dirname(appFile))] : []),
    ...touchReload.map((file) => watchTouched(file)),
  ];
}

/**
 * The certificate and key must be readable and match before any worker starts: a mistake is
 * one line from the master, not a worker failing to start.
 */
async function checkCertificates(options: ServeOptions): Promise<void> {
  for (const [what, path] of [
    ['certificate', options.cert],
    ['key', options.key],
  ] as const) {
    try {
      accessSync(path!, constants.R_OK);
    } catch (error) {
      throw new Error(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`);
    }
  }
  // node:tls only when there is TLS to check: the master of a plain HTTP server never loads it.
  const { createSecureContext } = await import('node:tls');
  try {
    createSecureContext({ cert: readFileSync(options.cert!), key: readFileSync(options.key!) });
  } catch (error) {
    throw new Error(
      `the TLS certificate ${options.cert} and key ${options.key} are not usable together: ${(error as Error).message}`,
    );
  }
}

async function claimSocket(what: string, path: string): Promise<void> {
  try {
    await claimUnixSocket(path);
  } catch (error) {
    throw new Error(`cannot listen for ${what} on unix:${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Stops gracefully (as on SIGTERM) once the process that started ngi is gone, which shows as
 * a new parent pid (init or a subreaper adopted us). Linux's PR_SET_PDEATHSIG is out of Node's
 * reach, so the parent is checked every second, on an unref'd timer.
 */
function stopWhenOrphaned(): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.stderr.write(`ngi: the process that started ngi (pid ${parent}) exited: stopping\n`);
    process.kill(process.pid, 'SIGTERM');
  }, 1000);
  timer.unref();
}

/** `--workers 0`: serve in this process, stop on SIGTERM/SIGINT. */
async function serveHere(command: Command, context: MainContext): Promise<number> {
  const app = await loadApp(command.specifier, {
    kind: command.kind,
    adapters: context.adapters,
    lightResponse: !command.nativeResponse,
  });
  const { serve } = await import('../server/serve.js');
  const handle = await serve(app, { ...command.serve, stats: command.stats });
  const line = (what: string, a: ListenAddress | undefined) => {
    if (a)
      process.stderr.write(
        `ngi: ${what} listening on ${formatListen(a)} (single process, pid ${process.pid})\n`,
      );
  };
  line('http', handle.http);
  line('uwsgi', handle.uwsgi);
  line('https', handle.https);
  line('stats', handle.stats);
  process.on('SIGHUP', () => {
    if (handle.https === undefined) {
      process.stderr.write('ngi: reload needs a master: run with --workers 1 or more\n');
      return;
    }
    // No workers to replace, but a renewed certificate can still be taken up.
    try {
      handle.reloadCertificates();
      process.stderr.write('ngi: certificates re-read (reloading the app needs a master)\n');
    } catch (error) {
      process.stderr.write(
        `ngi: certificates not reloaded, the old ones stay: ${(error as Error).message}\n`,
      );
    }
  });
  return new Promise((done) => {
    const stop = () => void handle.close().then(() => done(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

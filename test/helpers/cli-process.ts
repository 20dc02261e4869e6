import { spawn, type ChildProcess } from 'node:child_process';
import { request, type Agent } from 'node:http';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** A running `ngi` CLI, spawned from the sources through tsx (no build needed). */
export interface CliProcess {
  child: ChildProcess;
  /** Everything written to stderr / stdout so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves with the first match of `pattern` in stderr (waits for it, up to `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  /** SIGKILLs the CLI if it still runs, for `after` hooks (its workers follow it: they exit when the master is gone). */
  kill(): void;
}

/** How to start it: extra environment, another script than the bin, or through `npm exec`. */
export interface SpawnOptions {
  env?: Record<string, string>;
  script?: string;
  /** `npm-exec`: `npm exec -- node … bin/ngi.ts`; `npx`: `npx …args` in `cwd` (an install). */
  via?: 'node' | 'npm-exec' | 'npx';
  cwd?: string;
  /** Run inside this network namespace (`ip netns exec NAME …`, which execs: same pid). */
  netns?: string;
}

/** Starts `node --import tsx bin/ngi.ts ...args` in the repository root (or as `options` say). */
export function spawnCli(args: string[], options: SpawnOptions = {}): CliProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // The test runner's own channel must not leak into the server processes, nor npm's marks
  // (`npm test` sets npm_command, which the CLI reads as "started by npm").
  delete env.NODE_TEST_CONTEXT;
  for (const name of Object.keys(env)) if (name.startsWith('npm_')) delete env[name];
  const command = [
    ...(options.netns ? ['ip', 'netns', 'exec', options.netns] : []),
    process.execPath,
    '--import',
    'tsx',
    options.script ?? 'bin/ngi.ts',
    ...args,
  ];
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  const how = { cwd: options.cwd ?? root, env, stdio };
  const child =
    options.via === 'npm-exec'
      ? spawn('npm', ['exec', '--yes', '--', ...command], how)
      : options.via === 'npx'
        ? spawn('npx', args, how)
        : spawn(command[0]!, command.slice(1), how);
  let err = '';
  let out = '';
  const waiters = new Set<() => void>();
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    err += text;
    for (const wake of waiters) wake();
  });
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = err.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}; stderr so far:\n${err}`));
        }, timeoutMs);
        const gone = () => {
          cleanup();
          reject(new Error(`the CLI exited before ${pattern}; stderr:\n${err}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off('exit', gone);
        };
        waiters.add(check);
        child.once('exit', gone);
        check();
      }),
  };
}

/** One GET, on a fresh connection unless a keep-alive `agent` is given: status and body text. */
export function get(
  port: number,
  path: string,
  agent: Agent | false = false,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // A request the server never answers fails with a name instead of stalling the suite.
    req.setTimeout(20_000, () => req.destroy(new Error(`GET ${path}: no answer in 20 s`)));
    req.end();
  });
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

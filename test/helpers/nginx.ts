import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's package (installed by `.ci/run`) puts the binary. */
export const NGINX_BINARY = process.env.NGI_TEST_NGINX ?? '/usr/sbin/nginx';

export interface NginxConfig {
  /** Directives inside `http {}` before the server: `upstream` blocks, `map`s, buffer sizes. */
  http?: string;
  /** Directives inside `server {}`: the `location` blocks. */
  server: string;
}

/** A running nginx, listening on 127.0.0.1:`port`. */
export interface RunningNginx {
  port: number;
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The temp folder holding the config, logs, pid file and temp paths. */
  dir: string;
  pid: number;
  /** nginx's error log so far (to explain a failing test). */
  errorLog(): string;
  /** Stops nginx by PID, waits for it to exit and removes the temp folder. Idempotent. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago (nginx must bind it itself). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** A `location` that sends everything to a uwsgi listener the way Debian's docs show it. */
export function uwsgiLocation(backendPort: number, path = '/', extra = ''): string {
  return `location ${path} {
      include /etc/nginx/uwsgi_params;
      uwsgi_pass 127.0.0.1:${backendPort};
      ${extra}
    }`;
}

function configText(dir: string, port: number, config: NginxConfig): string {
  // Tests run as root in CI: workers would otherwise run as `nobody` and could not write
  // the request body temp files in a 0700 temp folder.
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  return `${user}
daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 512; }
http {
  access_log ${join(dir, 'access.log')};
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  default_type application/octet-stream;
  ${config.http ?? ''}
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    ${config.server}
  }
}
`;
}

/** Resolves once something accepts connections on the port; rejects if nginx exits first. */
function waitUntilListening(child: ChildProcess, port: number, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let done = false;
    const onExit = (code: number | null) => {
      if (done) return;
      done = true;
      reject(new Error(`nginx exited with code ${code} while starting`));
    };
    child.once('exit', onExit);
    const attempt = () => {
      if (done) return;
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        if (done) return;
        done = true;
        child.off('exit', onExit);
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (done) return;
        if (Date.now() - started > deadlineMs) {
          done = true;
          child.off('exit', onExit);
          reject(new Error(`nginx did not listen on 127.0.0.1:${port} within ${deadlineMs} ms`));
        } else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

/**
 * Starts a real nginx in the foreground (`daemon off`, so the child's PID is the master's)
 * with its config, logs, pid file and every temp path in a fresh temp folder. Fails loudly
 * when nginx is not installed: these tests are never skipped silently.
 *
 * @example
 * const nginx = await startNginx({ server: uwsgiLocation(backendPort) });
 * const res = await fetch(`${nginx.origin}/hello`);
 * await nginx.stop();
 */
export async function startNginx(config: NginxConfig): Promise<RunningNginx> {
  if (!existsSync(NGINX_BINARY)) {
    throw new Error(
      `nginx is not installed at ${NGINX_BINARY}: the real-nginx tests need it ` +
        `(apt-get install nginx-light, as .ci/run does, or set NGI_TEST_NGINX)`,
    );
  }
  let lastError: unknown;
  // The free port can be taken between the probe and nginx's bind: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'ngi-nginx-'));
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, configText(dir, port, config));
    const child = spawn(NGINX_BINARY, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const errorLog = () => {
      try {
        return readFileSync(join(dir, 'error.log'), 'utf8');
      } catch {
        return '';
      }
    };
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // A test process that dies without stop() must not leave nginx running.
    const orphanGuard = () => child.kill('SIGKILL');
    process.once('exit', orphanGuard);
    const stop = async () => {
      process.off('exit', orphanGuard);
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM is nginx's fast shutdown: tests do not wait for idle connections.
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      await waitUntilListening(child, port, 10_000);
    } catch (error) {
      lastError = new Error(
        `${(error as Error).message}\nstderr: ${stderr}\nerror.log:\n${errorLog()}`,
      );
      await stop();
      if (!/Address already in use/.test(String(lastError))) break;
      continue;
    }
    child.stderr!.resume();
    return {
      port,
      origin: `http://127.0.0.1:${port}`,
      dir,
      pid: child.pid!,
      errorLog,
      stop,
    };
  }
  throw lastError;
}

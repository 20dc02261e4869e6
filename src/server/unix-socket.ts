import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { NgiError } from '../core/errors.js';

/*
 * A Unix socket file outlives a server that was killed: bind() then fails with EADDRINUSE
 * although nobody listens. uWSGI and gunicorn remove such a file; a file some other running
 * server still answers on must never be removed (that would cut it off from its clients).
 */

/**
 * Makes `path` free to bind: nothing there is fine; a socket file nobody answers on (a
 * crashed run) is removed; a socket someone answers on, or a file that is not a socket, is
 * an error that says so.
 *
 * @example
 * await claimUnixSocket('/run/app.sock');
 * server.listen('/run/app.sock');
 */
export async function claimUnixSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new NgiError(
      'NGI_ERR_LISTEN',
      `${path} exists and is not a socket; not replacing it (remove it, or choose another path)`,
    );
  }
  const answer = await probe(path);
  if (answer === 'live') {
    throw new NgiError(
      'NGI_ERR_LISTEN',
      `another server is listening on ${path}; stop it first (its socket is left as it is)`,
    );
  }
  if (answer !== 'stale') {
    throw new NgiError('NGI_ERR_LISTEN', `cannot tell whether ${path} is in use`, {
      cause: answer,
    });
  }
  try {
    await unlink(path);
  } catch (error) {
    // Gone meanwhile (another starter removed it): free all the same.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** Connects once: `live` if someone accepts, `stale` if the kernel refuses, else the error. */
function probe(path: string): Promise<'live' | 'stale' | Error> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? 'stale' : error);
    });
  });
}

/**
 * Parses uWSGI's `--chmod-socket` value: octal digits (`660`, `0666`).
 *
 * @example
 * parseSocketMode('660'); // 0o660
 */
export function parseSocketMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) {
    throw new TypeError(`${JSON.stringify(text)} is not an octal file mode (e.g. 660 or 0666)`);
  }
  return parseInt(text, 8);
}

/**
 * Sets the socket file's mode after bind (a bound socket's mode comes from the umask), so
 * that nginx, running as another user, may connect.
 *
 * @example
 * await chmodSocket('/run/app.sock', 0o660);
 */
export async function chmodSocket(path: string, mode: number): Promise<void> {
  await chmod(path, mode);
}

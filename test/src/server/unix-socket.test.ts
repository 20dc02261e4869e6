import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { defineApp } from '../../../src/core/define-app.js';
import { encodeUwsgiPacket } from '../../../src/protocol/uwsgi-packet.js';
import { serve, parseListen, type ServerHandle } from '../../../src/server/serve.js';
import { claimUnixSocket, parseSocketMode } from '../../../src/server/unix-socket.js';
import { parseHttpResponse } from '../../helpers/uwsgi-client.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ngi-unix-'));
const handles: ServerHandle[] = [];
after(async () => {
  await Promise.all(handles.map((h) => h.close(0)));
  rmSync(dir, { recursive: true, force: true });
});

/** Answers with the environ keys a Unix peer makes interesting. */
const app = defineApp((environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'application/json']]);
  const { REMOTE_ADDR, REMOTE_PORT, SERVER_NAME, SERVER_PORT, PATH_INFO } = environ;
  return [JSON.stringify({ REMOTE_ADDR, REMOTE_PORT, SERVER_NAME, SERVER_PORT, PATH_INFO })];
});

const quiet = { write() {} };
let n = 0;
const socketPath = () => join(dir, `s${++n}.sock`);

async function start(options: Parameters<typeof serve>[1]): Promise<ServerHandle> {
  const handle = await serve(app, { logFormat: 'off', errors: quiet, ...options });
  handles.push(handle);
  return handle;
}

/** A socket file left behind by a process that died without closing it (SIGKILL). */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  await new Promise((resolve) => child.once('exit', resolve));
  assert.ok(statSync(path).isSocket(), 'the killed process left its socket file');
}

function listenOn(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      // The probe hangs up at once: its reset is expected.
      socket.on('error', () => {});
      socket.end('other server\n');
    });
    server.listen(path, () => resolve(server));
  });
}

function uwsgiOverUnix(path: string, vars: Array<[string, string]>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.write(encodeUwsgiPacket(vars));
  });
}

describe('Unix domain sockets', () => {
  it('parses unix:PATH, resolving a relative path, and refuses an empty one', () => {
    assert.deepEqual(parseListen('unix:/run/app.sock'), {
      host: '',
      port: 0,
      path: '/run/app.sock',
    });
    assert.equal(parseListen('unix:app.sock').path, join(process.cwd(), 'app.sock'));
    // uWSGI's spelling in its INI files: `socket = /run/app.sock`.
    assert.equal(parseListen('/run/app.sock').path, '/run/app.sock');
    assert.throws(() => parseListen('unix:'), /names no socket path/);
    assert.equal(parseSocketMode('660'), 0o660);
    assert.equal(parseSocketMode('0666'), 0o666);
    assert.throws(() => parseSocketMode('rw'), /not an octal file mode/);
    assert.throws(() => parseSocketMode('999'), /not an octal file mode/);
  });

  it('serves HTTP to curl --unix-socket; REMOTE_ADDR is empty, SERVER_NAME from Host', async () => {
    const path = socketPath();
    const handle = await start({ http: { path } });
    assert.deepEqual(handle.http, { host: '', port: 0, path });
    const { stdout } = await run('curl', ['-sS', '--unix-socket', path, 'http://localhost/x']);
    assert.deepEqual(JSON.parse(stdout), {
      REMOTE_ADDR: '',
      REMOTE_PORT: '',
      SERVER_NAME: 'localhost',
      SERVER_PORT: '80',
      PATH_INFO: '/x',
    });
  });

  it('serves uwsgi on a Unix socket with the addresses nginx passes in the vars', async () => {
    const path = socketPath();
    await start({ uwsgi: { path } });
    const reply = parseHttpResponse(
      await uwsgiOverUnix(path, [
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/u'],
        ['PATH_INFO', '/u'],
        ['SERVER_PROTOCOL', 'HTTP/1.1'],
        ['REMOTE_ADDR', '203.0.113.7'],
        ['REMOTE_PORT', '50123'],
        ['SERVER_NAME', 'example.org'],
        ['SERVER_PORT', '443'],
      ]),
    );
    assert.match(reply.statusLine, /^HTTP\/1\.1 200/);
    assert.deepEqual(JSON.parse(reply.body.toString()), {
      REMOTE_ADDR: '203.0.113.7',
      REMOTE_PORT: '50123',
      SERVER_NAME: 'example.org',
      SERVER_PORT: '443',
      PATH_INFO: '/u',
    });
  });

  it('sets the socket mode with chmodSocket, and removes the file on close', async () => {
    const path = socketPath();
    const handle = await serve(app, {
      http: { path },
      chmodSocket: 0o660,
      logFormat: 'off',
      errors: quiet,
    });
    assert.equal(statSync(path).mode & 0o777, 0o660);
    await handle.close(0);
    assert.equal(existsSync(path), false);
  });

  it('replaces a stale socket file left by a crashed server', async () => {
    const path = socketPath();
    await staleSocket(path);
    await start({ http: { path } });
    const { stdout } = await run('curl', ['-sS', '--unix-socket', path, 'http://localhost/y']);
    assert.equal(JSON.parse(stdout).PATH_INFO, '/y');
  });

  it('refuses a socket another server answers on, and leaves that server serving', async () => {
    const path = socketPath();
    const other = await listenOn(path);
    try {
      await assert.rejects(
        serve(app, { http: { path }, logFormat: 'off', errors: quiet }),
        /cannot listen for http on unix:.*another server is listening/,
      );
      const greeting = await new Promise<string>((resolve, reject) => {
        let text = '';
        connect(path)
          .setEncoding('utf8')
          .on('data', (chunk: string) => (text += chunk))
          .on('end', () => resolve(text))
          .on('error', reject);
      });
      assert.equal(greeting, 'other server\n');
    } finally {
      other.close();
    }
  });

  it('refuses a path holding a file that is not a socket, and leaves it alone', async () => {
    const path = socketPath();
    writeFileSync(path, 'precious');
    await assert.rejects(claimUnixSocket(path), /exists and is not a socket/);
    await assert.rejects(
      serve(app, { uwsgi: { path }, logFormat: 'off', errors: quiet }),
      /not a socket/,
    );
    assert.equal(readFileSync(path, 'utf8'), 'precious');
  });
});

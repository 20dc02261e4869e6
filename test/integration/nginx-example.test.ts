import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';
import { freePort, startNginx, type RunningNginx } from '../helpers/nginx.js';

const example = readFileSync(new URL('../../examples/nginx/ngi.conf', import.meta.url), 'utf8');

describe('examples/nginx/ngi.conf: nginx in front of two ngi serve processes', () => {
  const backends: CliProcess[] = [];
  let nginx: RunningNginx;
  let origin: string;

  before(async () => {
    const ports = [await freePort(), await freePort()];
    for (const port of ports) {
      const cli = spawnCli([
        'serve',
        'examples/wrap-express/app.js',
        '--uwsgi',
        `127.0.0.1:${port}`,
      ]);
      backends.push(cli);
      await cli.waitFor(/uwsgi listening on 127\.0\.0\.1:\d+/);
    }
    const listen = await freePort();
    // The example as shipped, with free ports instead of 3041/3042/8090 and uwsgi_params by
    // its absolute path (nginx here runs from a temp prefix).
    const config = example
      .replace('server 127.0.0.1:3041;', `server 127.0.0.1:${ports[0]};`)
      .replace('server 127.0.0.1:3042;', `server 127.0.0.1:${ports[1]};`)
      .replace('listen 127.0.0.1:8090;', `listen 127.0.0.1:${listen};`)
      .replace('include uwsgi_params;', 'include /etc/nginx/uwsgi_params;');
    nginx = await startNginx({ http: config, server: '' });
    origin = `http://127.0.0.1:${listen}`;
  });

  after(async () => {
    await nginx?.stop();
    for (const cli of backends) cli.kill();
  });

  it('answers through nginx, and both backends receive traffic', async () => {
    const upstreams = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${origin}/`);
      assert.equal(res.status, 200, nginx.errorLog());
      await res.arrayBuffer();
      upstreams.add(res.headers.get('x-upstream') ?? '');
    }
    assert.equal(
      upstreams.size,
      2,
      `round robin over both backends, saw ${[...upstreams].join(' ')}`,
    );
  });

  it("a missing route is the app's 404, not nginx's 502", async () => {
    const res = await fetch(`${origin}/no/such/route`);
    assert.equal(res.status, 404);
    assert.doesNotMatch(await res.text(), /nginx/);
  });
});

const unixExample = readFileSync(
  new URL('../../examples/nginx/ngi-unix.conf', import.meta.url),
  'utf8',
);

describe('examples/nginx/ngi-unix.conf: nginx uwsgi_pass unix: to ngi serve --workers 2', () => {
  let backend: CliProcess;
  let nginx: RunningNginx;
  let origin: string;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ngi-unix-example-'));
    const socket = join(dir, 'app.sock');
    backend = spawnCli([
      'serve',
      'examples/wrap-express/app.js',
      '--uwsgi',
      `unix:${socket}`,
      '--chmod-socket',
      '660',
      '--workers',
      '2',
    ]);
    await backend.waitFor(/uwsgi listening on unix:\S+app\.sock \(2 workers/);
    const listen = await freePort();
    const config = unixExample
      .replace('server unix:/run/ngi/app.sock;', `server unix:${socket};`)
      .replace('listen 127.0.0.1:8080;', `listen 127.0.0.1:${listen};`)
      .replace('include uwsgi_params;', 'include /etc/nginx/uwsgi_params;');
    nginx = await startNginx({ http: config, server: '' });
    origin = `http://127.0.0.1:${listen}`;
  });

  after(async () => {
    await nginx?.stop();
    backend?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers through nginx, with the client's address and scheme from nginx's vars", async () => {
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${origin}/hello/you`);
      assert.equal(res.status, 200, nginx.errorLog());
      assert.deepEqual(await res.json(), { hello: 'you', ip: '127.0.0.1', protocol: 'http' });
    }
    const posted = await fetch(`${origin}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ over: 'unix' }),
    });
    assert.deepEqual(await posted.json(), { over: 'unix' });
  });
});

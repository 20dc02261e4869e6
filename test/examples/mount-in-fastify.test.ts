import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import supertest from 'supertest';
import buildServer from '../../examples/mount-in-fastify/app.js';

describe('examples/mount-in-fastify: an NGI app and an Express app inside Fastify', () => {
  it('routes each prefix to its app, with the prefix as SCRIPT_NAME / baseUrl', async () => {
    const fastify = await buildServer();
    await fastify.listen({ host: '127.0.0.1', port: 0 });
    try {
      const origin = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
      const ngi = await supertest(origin).get('/ngi/hello?x=1').expect(200);
      assert.deepEqual(ngi.body, { hello: '/hello', mountedAt: '/ngi', query: 'x=1' });
      const legacy = await supertest(origin).get('/legacy/users/7').expect(200);
      assert.deepEqual(legacy.body, { id: '7', from: 'express', baseUrl: '/legacy' });
      const own = await supertest(origin).get('/').expect(200);
      assert.deepEqual(own.body, { from: 'fastify' });
    } finally {
      await fastify.close();
    }
  });

  it('runs with one command: node examples/mount-in-fastify/app.js', async () => {
    const child = spawn(process.execPath, ['examples/mount-in-fastify/app.js'], {
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let out = '';
      child.stdout.setEncoding('utf8');
      const port = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (text: string) => {
          out += text;
          const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (match) resolve(match[1]!);
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
      const res = await supertest(`http://127.0.0.1:${port}`).get('/ngi/x').expect(200);
      assert.equal(res.body.mountedAt, '/ngi');
    } finally {
      child.kill();
      if (child.exitCode === null) await once(child, 'exit');
    }
  });
});

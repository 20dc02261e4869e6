// A Node handler on the emulated req/res that destroys its response (Koa's `stream.pipeline`
// when ctx.body fails, a handler calling res.destroy()) ends the exchange as on Node: an
// aborted connection once the head is out, instead of a request that hangs.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Koa from 'koa';
import { fromKoa } from '../../../adapters/koa.js';
import { fromNodeHandler, toNodeHandler } from '../../../adapters/node.js';
import type { App } from '../../../src/core/types.js';
import { close, listen, logSink } from '../../helpers/servers.js';

/** Wraps startResponse: the handler below runs on the emulated req/res. */
const emulated =
  (inner: App): App =>
  (environ, startResponse) =>
    inner(environ, (status, headers, excInfo) => startResponse(status, headers, excInfo));

/** What the client saw: the response ended complete, or the connection was cut. */
async function outcome(
  port: number,
  path: string,
): Promise<{ status: number; ended: string; text: string }> {
  const req = httpRequest({ host: '127.0.0.1', port, path }).end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let text = '';
  res.on('data', (chunk: Buffer) => (text += String(chunk)));
  const ended = await Promise.race([
    once(res, 'end').then(() => (res.complete ? 'complete' : 'aborted')),
    once(res, 'aborted').then(() => 'aborted'),
    once(res, 'error').then(() => 'aborted'),
  ]);
  return { status: res.statusCode ?? 0, ended, text };
}

function failingAfterFirst(): Readable {
  return new Readable({
    read() {
      if (this.readableLength === 0 && !(this as { sent?: boolean }).sent) {
        (this as { sent?: boolean }).sent = true;
        this.push('first part, ');
        setImmediate(() => this.destroy(new Error('the body stream broke')));
      }
    },
  });
}

describe('a destroyed response on the emulated path', () => {
  let server: Server;
  const errors = logSink();

  before(async () => {
    const koa = new Koa();
    koa.silent = true;
    koa.use((ctx) => {
      ctx.type = 'text/plain';
      if (ctx.path === '/pipeline') ctx.body = failingAfterFirst();
      else if (ctx.path === '/web') {
        let pulls = 0;
        ctx.body = new ReadableStream({
          pull(controller) {
            if (pulls++ === 0) controller.enqueue(new TextEncoder().encode('first part, '));
            else controller.error(new Error('the web stream broke'));
          },
        });
      } else if (ctx.path === '/flushed') {
        ctx.status = 200;
        ctx.flushHeaders();
        ctx.body = failingAfterFirst();
      }
    });
    const plain = fromNodeHandler((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('first part, ');
      setImmediate(() => res.destroy(new Error('destroyed by the handler')));
    });
    const app: App = (environ, startResponse) =>
      environ.PATH_INFO === '/plain'
        ? plain(environ, startResponse)
        : fromKoa(koa)(environ, startResponse);
    server = await listen(toNodeHandler(emulated(app), { errors }) as never);
  });
  after(() => close(server));

  for (const path of ['/pipeline', '/web', '/flushed', '/plain']) {
    it(
      `${path}: the client sees the connection cut after the first part, not a hang`,
      { timeout: 10_000 },
      async () => {
        const { port } = server.address() as AddressInfo;
        const seen = await outcome(port, path);
        assert.deepEqual(seen, { status: 200, ended: 'aborted', text: 'first part, ' });
      },
    );
  }
});

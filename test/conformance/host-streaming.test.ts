// A mounted app answering through its host's pipeline still streams: each chunk reaches the
// client as the app writes it (server-sent events), a client that does not read holds the app
// back, a client that leaves stops the body, and a failure after the head aborts the
// connection. The same checks for every host.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import mount from 'koa-mount';
import { Hono } from 'hono';
import { createAdaptorServer } from '@hono/node-server';
import { toExpress } from '../../adapters/express.js';
import { toFastify } from '../../adapters/fastify.js';
import { toKoa } from '../../adapters/koa.js';
import { toHono } from '../../adapters/hono.js';
import type { App } from '../../src/core/types.js';
import { close, listen, logSink } from '../helpers/servers.js';

/** A host with `app` mounted at `/m`. */
type Start = (app: App) => Promise<{ port: number; stop: () => unknown }>;

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

const hosts: Array<[string, Start]> = [
  [
    'toKoa',
    async (app) => {
      const koa = new Koa();
      koa.silent = true;
      koa.use(mount('/m', toKoa(app, { errors: logSink() })));
      const server = await listen(koa.callback());
      return { port: portOf(server), stop: () => close(server) };
    },
  ],
  [
    'toFastify',
    async (app) => {
      const fastify = Fastify();
      await fastify.register(toFastify(app, { errors: logSink() }), { prefix: '/m' });
      await fastify.listen({ port: 0, host: '127.0.0.1' });
      return { port: portOf(fastify.server), stop: () => fastify.close() };
    },
  ],
  [
    'toExpress',
    async (app) => {
      const server = await listen(express().use('/m', toExpress(app, { errors: logSink() })));
      return { port: portOf(server), stop: () => close(server) };
    },
  ],
  [
    'toHono on @hono/node-server',
    async (app) => {
      const hono = new Hono().all('/m/*', toHono(app, { errors: logSink() }));
      const server = createAdaptorServer({ fetch: hono.fetch }) as Server;
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return { port: portOf(server), stop: () => close(server) };
    },
  ],
];

async function open(
  port: number,
): Promise<{ req: ReturnType<typeof httpRequest>; res: IncomingMessage }> {
  const req = httpRequest({ host: '127.0.0.1', port, path: '/m/x' }).end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  return { req, res };
}

/** Polls a counter until it stops moving (a producer held back by backpressure), bounded in time. */
async function settledValue(read: () => number, limitMs = 10_000): Promise<number> {
  const deadline = Date.now() + limitMs;
  let last = read();
  let still = 0;
  while (still < 8 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const now = read();
    still = now === last ? still + 1 : 0;
    last = now;
  }
  return last;
}

for (const [name, start] of hosts) {
  describe(`${name}: streaming through the host`, () => {
    it('delivers each server-sent event before the app writes the next', async () => {
      let received!: () => void;
      const firstArrived = new Promise<void>((resolve) => (received = resolve));
      const events: App = (_environ, startResponse) => {
        startResponse('200 OK', [
          ['Content-Type', 'text/event-stream'],
          ['Cache-Control', 'no-cache'],
        ]);
        return (async function* () {
          yield 'data: one\n\n';
          // Only a client that already holds the first event lets the second come.
          await firstArrived;
          yield 'data: two\n\n';
        })();
      };
      const { port, stop } = await start(events);
      try {
        const { res } = await open(port);
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let text = '';
        for await (const chunk of res) {
          text += String(chunk);
          if (text === 'data: one\n\n') received();
        }
        assert.equal(text, 'data: one\n\ndata: two\n\n');
      } finally {
        await stop();
      }
    });

    it('holds the app back while the client does not read, then delivers every byte', async () => {
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const total = 512; // 32 MiB: more than loopback socket buffers hold
      let produced = 0;
      const producer: App = (_environ, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'application/octet-stream']]);
        return (async function* () {
          while (produced < total) {
            produced++;
            yield chunk;
          }
        })();
      };
      const { port, stop } = await start(producer);
      try {
        const { res } = await open(port);
        res.pause();
        const heldAt = await settledValue(() => produced);
        assert.ok(heldAt < total, `the app was pulled ${heldAt} of ${total} chunks ahead`);
        let bytes = 0;
        res.on('data', (data: Buffer) => (bytes += data.length));
        res.resume();
        await once(res, 'end');
        assert.equal(bytes, total * chunk.length);
      } finally {
        await stop();
      }
    });

    it('fires ngi.signal and finishes the body once when the client leaves mid-stream', async () => {
      let aborted!: () => void;
      const signalled = new Promise<void>((resolve) => (aborted = resolve));
      let returns = 0;
      const endless: App = (environ, startResponse) => {
        environ['ngi.signal'].addEventListener('abort', () => aborted());
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          try {
            for (let i = 0; i < 100_000; i++) {
              yield `line ${i}\n`;
              await new Promise((resolve) => setImmediate(resolve));
            }
          } finally {
            returns++;
          }
        })();
      };
      const { port, stop } = await start(endless);
      try {
        const { req, res } = await open(port);
        await once(res, 'data');
        req.destroy();
        await signalled;
        for (let i = 0; i < 50 && returns === 0; i++) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        assert.equal(returns, 1);
      } finally {
        await stop();
      }
    });

    it('aborts the connection when the app fails after its head', async () => {
      const failing: App = (_environ, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return (async function* () {
          yield 'a first part, ';
          await new Promise((resolve) => setImmediate(resolve));
          throw new Error('the body broke');
        })();
      };
      const { port, stop } = await start(failing);
      try {
        const { res } = await open(port);
        let text = '';
        res.on('data', (chunk: Buffer) => (text += String(chunk)));
        const [outcome] = await Promise.race([
          once(res, 'end').then(() => ['complete']),
          once(res, 'aborted').then(() => ['aborted']),
          once(res, 'error').then(() => ['aborted']),
        ]);
        assert.equal(outcome, 'aborted');
        assert.equal(text, 'a first part, ');
      } finally {
        await stop();
      }
    });
  });
}

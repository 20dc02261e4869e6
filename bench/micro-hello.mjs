// In-process micro benchmark of the per-request JS cost: the same hello app answered by raw
// node:http code and through toNodeHandler, on real IncomingMessage/ServerResponse objects
// over a socket stand-in that drops what it is given (no kernel, no load generator).
//   node bench/micro-hello.mjs            every row (raw, ngi, hono, express, koa, fastify ...)
//   ONLY=koa,toKoa node bench/micro-hello.mjs
import { IncomingMessage, ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import { defineApp } from '../dist/src/index.js';
import { toNodeHandler } from '../dist/adapters/node.js';

class Sink extends Duplex {
  remoteAddress = '127.0.0.1';
  remotePort = 40000;
  localAddress = '127.0.0.1';
  localPort = 8080;
  _read() {}
  _write(_chunk, _encoding, callback) {
    callback();
  }
  _writev(_chunks, callback) {
    callback();
  }
}

const HELLO = 'Hello, World!';
const raw = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
  res.end(HELLO);
};
const ngiHello = defineApp((_environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return [HELLO];
});
const ngi = toNodeHandler(ngiHello);

const { Hono } = await import('hono');
const { getRequestListener } = await import('@hono/node-server');
const { fromHono, toHono } = await import('../dist/adapters/hono.js');
const honoApp = () => new Hono().get('/', (c) => c.text(HELLO));
const honoNative = getRequestListener(honoApp().fetch);
const honoViaNgi = toNodeHandler(fromHono(honoApp()));
const toHonoApp = new Hono();
toHonoApp.all('/', toHono(ngiHello));
const ngiInHono = getRequestListener(toHonoApp.fetch);

const { default: express } = await import('express');
const { fromNodeHandler } = await import('../dist/adapters/node.js');
const expressApp = () =>
  express().get('/', (_req, res) => {
    res.type('text/plain').send(HELLO);
  });
const expressNative = expressApp();
/** Wraps startResponse, as any NGI middleware does: forces the emulated req/res. */
const wrapped = (app) => (environ, startResponse) =>
  app(environ, (status, headers, excInfo) => startResponse(status, headers, excInfo));
const expressEmulated = toNodeHandler(wrapped(fromNodeHandler(expressApp())));

const { default: Koa } = await import('koa');
const { toKoa } = await import('../dist/adapters/koa.js');
const koaNative = (await import('./apps/koa-hello.mjs')).default.callback();
const ngiInKoa = new Koa().use(toKoa(ngiHello)).callback();

const { default: Fastify } = await import('fastify');
const { toFastify } = await import('../dist/adapters/fastify.js');
const fastifyNative = Fastify().get('/', (_request, reply) => {
  reply.type('text/plain').send(HELLO);
});
await fastifyNative.ready();
const ngiInFastify = Fastify();
await ngiInFastify.register(toFastify(ngiHello), { prefix: '/' });
await ngiInFastify.ready();

function once(handler) {
  const socket = new Sink();
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/';
  req.httpVersion = '1.1';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.rawHeaders = ['Host', '127.0.0.1:8080', 'User-Agent', 'wrk', 'Accept', '*/*'];
  req.complete = true;
  req.push(null);
  const res = new ServerResponse(req);
  res.assignSocket(socket);
  // As a real server does: 'close' once the response has finished (some paths end later).
  res.once('finish', () => {
    res.detachSocket(socket);
    res.emit('close');
  });
  handler(req, res);
}

const N = Number(process.env.N ?? 200_000);
/** `ONLY=koa,toKoa`: just those rows, still interleaved round by round. */
const only = process.env.ONLY?.split(',');
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Runs `count` requests in batches, letting the deferred work (nextTick, immediates) run. */
async function run(handler, count) {
  for (let done = 0; done < count; done += 500) {
    for (let i = 0; i < 500; i++) once(handler);
    await tick();
  }
}

for (const round of [1, 2, 3]) {
  for (const [name, handler] of [
    ['raw', raw],
    ['ngi', ngi],
    ['hono', honoNative],
    ['fromHono', honoViaNgi],
    ['toHono', ngiInHono],
    ['express', expressNative],
    ['expressEmulated', expressEmulated],
    ['koa', koaNative],
    ['toKoa', ngiInKoa],
    ['fastify', (req, res) => fastifyNative.routing(req, res)],
    ['toFastify', (req, res) => ngiInFastify.routing(req, res)],
  ].filter(([name]) => only === undefined || only.includes(name))) {
    await run(handler, 20_000);
    const t = process.hrtime.bigint();
    await run(handler, N);
    const ns = Number(process.hrtime.bigint() - t) / N;
    console.log(`round ${round} ${name}: ${(ns / 1000).toFixed(2)} us/request`);
  }
}

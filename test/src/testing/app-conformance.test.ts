// runAppConformance, imported through the package's exports: every framework app, through
// its fromX adapter, keeps the contract under ngi's reference host; apps that break it are
// named by the rule they break.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { Hono } from 'hono';
import { runAppConformance, type ConformanceReport } from 'ngi-gateway/testing';
import { defineApp } from 'ngi-gateway';
import { fromExpress } from 'ngi-gateway/express';
import { fromFastify } from 'ngi-gateway/fastify';
import { fromKoa } from 'ngi-gateway/koa';
import { fromHono } from 'ngi-gateway/hono';
import { fromFetch } from 'ngi-gateway/fetch';
import { fromNodeHandler } from 'ngi-gateway/node';

function failures(report: ConformanceReport): string {
  return report.results
    .filter((result) => !result.ok)
    .map((result) => `${result.rule} ${result.name}: ${result.detail}`)
    .join('\n');
}

/** A streamed answer, so the client that leaves finds a body to close. */
const lines = (n: number) => Array.from({ length: n }, (_, i) => `line ${i}\n`);

describe('runAppConformance over every fromX adapter', () => {
  const apps: Record<string, () => Promise<Parameters<typeof runAppConformance>[0]>> = {
    fromExpress: async () => {
      const app = express();
      app.get('/', (_req, res) => {
        res.cookie('a', '1').cookie('b', '2');
        for (const line of lines(50)) res.write(line);
        res.end();
      });
      app.post('/', express.text(), (req, res) => res.send(`got ${req.body}`));
      return fromExpress(app);
    },
    fromFastify: async () => {
      const fastify = Fastify();
      fastify.get('/', async (_request, reply) =>
        reply.header('set-cookie', ['a=1', 'b=2']).send('hi'),
      );
      fastify.post('/', async (request) => `got ${String(request.body)}`);
      return fromFastify(fastify);
    },
    fromKoa: async () => {
      const koa = new Koa();
      koa.use(async (ctx) => {
        ctx.body = ctx.method === 'POST' ? 'posted' : lines(20).join('');
      });
      return fromKoa(koa);
    },
    fromHono: async () => {
      const hono = new Hono();
      hono.get('/', (c) => c.text('hi'));
      hono.post('/', async (c) => c.text(`got ${await c.req.text()}`));
      return fromHono(hono);
    },
    fromFetch: async () =>
      fromFetch(async (request) =>
        request.method === 'POST'
          ? new Response(`got ${await request.text()}`)
          : new Response(lines(20).join(''), { headers: { 'content-type': 'text/plain' } }),
      ),
    fromNodeHandler: async () =>
      fromNodeHandler((req, res) => {
        req.resume();
        res.setHeader('Content-Type', 'text/plain');
        res.end(`${req.method} ${req.url}`);
      }),
  };
  for (const [name, make] of Object.entries(apps)) {
    it(`${name}: no rule broken on any of the default requests`, async () => {
      const report = await runAppConformance(await make());
      assert.ok(report.results.length >= 7);
      assert.equal(report.failed, 0, failures(report));
    });
  }
});

describe('runAppConformance names the rule an app breaks', () => {
  const broken: Array<[string, string, Parameters<typeof runAppConformance>[0]]> = [
    [
      'sets a hop-by-hop header',
      'R4.5',
      defineApp((_environ, startResponse) => {
        startResponse('200 OK', [['Connection', 'close']]);
        return ['x'];
      }),
    ],
    [
      'returns a string as its body',
      'R2.2',
      defineApp((_environ, startResponse) => {
        startResponse('200 OK', []);
        return 'x' as never;
      }),
    ],
    [
      'calls startResponse twice',
      'R4.6',
      defineApp((_environ, startResponse) => {
        startResponse('200 OK', []);
        startResponse('200 OK', []);
        return ['x'];
      }),
    ],
    [
      'sends more than its Content-Length',
      'R7.1',
      defineApp((_environ, startResponse) => {
        startResponse('200 OK', [['Content-Length', '1']]);
        return ['too long'];
      }),
    ],
    [
      'throws',
      'R2.1',
      defineApp(() => {
        throw new Error('kit: the app threw');
      }),
    ],
  ];
  for (const [what, rule, app] of broken) {
    it(`an app that ${what} fails ${rule} on every request`, async () => {
      const report = await runAppConformance(app, {
        requests: [{ path: '/' }, { method: 'POST', path: '/', body: 'x' }],
      });
      assert.equal(report.failed, 2, JSON.stringify(report.results));
      for (const result of report.results) {
        assert.equal(result.rule, rule, result.detail);
        assert.ok(result.detail.length > 0);
      }
    });
  }
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import supertest from 'supertest';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';

describe('examples/wrap-express: an unchanged Express app under ngi serve', () => {
  let cli: CliProcess;
  let origin: string;

  before(async () => {
    // The README's command, with a free port and one process.
    cli = spawnCli([
      'serve',
      'examples/wrap-express/app.js',
      '--http',
      '127.0.0.1:0',
      '--workers',
      '0',
    ]);
    const [, port] = await cli.waitFor(/http listening on 127\.0\.0\.1:(\d+)/);
    origin = `http://127.0.0.1:${port}`;
  });

  after(() => cli.kill());

  it('answers its routes as Express does', async () => {
    const res = await supertest(origin).get('/').expect(200);
    assert.equal(res.text, 'hello from Express, served by ngi\n');
    assert.equal(res.headers['x-powered-by'], 'Express');
  });

  it('gives Express the client address and protocol', async () => {
    const res = await supertest(origin).get('/hello/you').expect(200);
    assert.deepEqual(res.body, { hello: 'you', ip: '127.0.0.1', protocol: 'http' });
  });

  it('lets express.json read the request body', async () => {
    const res = await supertest(origin)
      .post('/echo')
      .send({ a: [1, 'ü'] })
      .expect(200);
    assert.deepEqual(res.body, { a: [1, 'ü'] });
  });

  it("answers an unknown route with Express's own 404", async () => {
    const res = await supertest(origin).get('/nope').expect(404);
    assert.match(res.text, /Cannot GET \/nope/);
  });
});

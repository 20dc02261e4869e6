// A Koa hello app: the baseline of the toKoa rows (bench/servers.ts, bench/callgrind.mjs).
import Koa from 'koa';

const app = new Koa();
app.use((ctx) => {
  ctx.type = 'text/plain';
  ctx.body = 'Hello, World!';
});
export default app;

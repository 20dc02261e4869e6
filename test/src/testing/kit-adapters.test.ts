import { describeKitHosts } from '../../helpers/kit-suite.js';

describeKitHosts('the conformance kit over every toX adapter', [
  'toExpress under app.use("/legacy")',
  'toFastify registered with prefix /legacy',
  'toKoa under koa-mount("/legacy")',
  'toHono on hono.all("/legacy/*"), @hono/node-server',
  'toFetch on @hono/node-server',
]);

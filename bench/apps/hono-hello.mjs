// A Hono hello app, served by `ngi serve` (fromHono) and by @hono/node-server.
import { Hono } from 'hono';

export default new Hono().get('/', (c) => c.text('Hello, World!'));

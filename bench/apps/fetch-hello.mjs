// A Fetch hello handler, served by `ngi serve` (fromFetch), srvx and @hono/node-server.
export default {
  fetch: () => new Response('Hello, World!', { headers: { 'content-type': 'text/plain' } }),
};

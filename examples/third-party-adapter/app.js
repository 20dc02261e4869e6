// An h3 server with an NGI app mounted at /legacy, and an h3 app served as an NGI app:
//   node examples/third-party-adapter/app.js      (http://127.0.0.1:8080/legacy/hello)
import { createServer } from 'node:http';
import { H3, toNodeHandler } from 'h3';
import { defineApp } from 'ngi-gateway';
import { toH3 } from './ngi-h3.js';

export const legacy = defineApp((environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`NGI app at ${environ.SCRIPT_NAME}, asked for ${environ.PATH_INFO}\n`];
});

// allowMalformedURL: hand a path such as /legacy/%FF to the NGI app instead of h3's own 400.
/** @type {H3} */
export const h3 = new H3({ allowMalformedURL: true });
h3.get('/', () => 'h3 route\n');
const handler = toH3(legacy, { prefix: '/legacy' });
h3.all('/legacy', handler);
h3.all('/legacy/**', handler);

if (import.meta.url === `file://${process.argv[1]}`) {
  createServer(toNodeHandler(h3)).listen(8080, '127.0.0.1');
}

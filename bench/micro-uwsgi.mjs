// In-process micro benchmark of the uwsgi listener's per-request parsing: a packet nginx sent
// (a captured vector) decoded, then its environ built, each timed alone, then both together.
//   npm run build && node bench/micro-uwsgi.mjs [packet.bin]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UwsgiPacketParser } from '../dist/src/protocol/uwsgi-packet.js';
import { environFromUwsgi } from '../dist/src/hosts/uwsgi.js';
import { LazySignal } from '../dist/src/core/signal.js';
import { stderrStream } from '../dist/src/core/environ.js';

const vector = new URL(
  '../test/fixtures/uwsgi-vectors/nginx/nginx-get-query-headers.bin',
  import.meta.url,
);
const bytes = readFileSync(process.argv[2] ?? fileURLToPath(vector));
const N = Number(process.env.N ?? 500_000);
let kept = 0;
for (const round of [1, 2, 3]) {
  let started = process.hrtime.bigint();
  let packet;
  for (let i = 0; i < N; i++) {
    packet = new UwsgiPacketParser(65535).push(bytes).packet;
    kept += packet.vars.length;
  }
  const parse = Number(process.hrtime.bigint() - started) / N;
  started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const environ = environFromUwsgi(packet, undefined, new LazySignal(), stderrStream, false);
    kept += environ.PATH_INFO.length;
  }
  const environ = Number(process.hrtime.bigint() - started) / N;
  // As a server does it: every packet decoded afresh, so its keys are new strings each time
  // (the rows above reuse one packet's, which V8 internalized on first use).
  started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const fresh = new UwsgiPacketParser(65535).push(bytes).packet;
    const environ = environFromUwsgi(fresh, undefined, new LazySignal(), stderrStream, false);
    kept += environ.PATH_INFO.length;
  }
  const both = Number(process.hrtime.bigint() - started) / N;
  console.log(
    `round ${round}: ${packet.vars.length} vars, parse ${parse.toFixed(0)} ns, environ ${environ.toFixed(0)} ns, both on a fresh packet ${both.toFixed(0)} ns`,
  );
}
if (kept === 0) console.log('nothing parsed');

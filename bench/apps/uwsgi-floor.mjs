// The Node floor for the uwsgi path: the least a uwsgi server on `node:net` can do per
// connection (nginx sends one request, then waits for the close): wait for the whole packet
// (the 4-byte header gives its size; a GET has no body), parse nothing, answer a fixed
// response, end. What any JS uwsgi server pays before it reads a single var. The baseline of
// the uwsgi rows (bench/servers.ts, bench/callgrind.mjs).
const HELLO = 'Hello, World!';
const RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${HELLO.length}\r\n\r\n${HELLO}`,
);

/** Serves one connection; `timeoutMs` > 0 also drops a peer that never closes after the answer. */
export function uwsgiFloor(socket, timeoutMs = 0) {
  let seen = 0;
  let size = -1;
  let head;
  socket.on('data', (chunk) => {
    if (size < 0) {
      head = head === undefined ? chunk : Buffer.concat([head, chunk]);
      if (head.length < 4) return;
      size = 4 + head.readUInt16LE(1);
      seen = head.length;
    } else seen += chunk.length;
    if (seen >= size) {
      socket.end(RESPONSE);
      if (timeoutMs > 0) socket.setTimeout(timeoutMs, () => socket.destroy());
    }
  });
  socket.on('error', () => socket.destroy());
}

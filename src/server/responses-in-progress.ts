// The HTTP/1.x responses in progress on a listener, kept by connection: a drain marks each the
// last on its connection, the stall watch looks at each once a second.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

const kResponses = Symbol('ngi.responsesInProgress');
/** A connection with its responses in progress (more than one only when requests pipeline). */
type Connection = Duplex & { [kResponses]?: ServerResponse[] };

/**
 * Not a `Set` of responses: one long-lived `Set` that every new response went in and out of
 * cost a TLS listener 8 % of its time in garbage collection against 1.6 % this way (17.5k
 * against 27.3k req/s, `h2load --h1`). Why is not pinned down (adding and deleting a fresh
 * response alone takes 0.1 µs; the likely cost is the old-generation table keeping young
 * responses reachable through scavenges). A connection goes in once, and a response only in
 * and out of its connection's array.
 *
 * @example
 * const inProgress = new ResponsesInProgress();
 * inProgress.add(req.socket, res);
 * res.once('close', () => inProgress.delete(req.socket, res));
 */
export class ResponsesInProgress implements Iterable<ServerResponse> {
  readonly #connections = new Set<Connection>();

  add(socket: Duplex, res: ServerResponse): void {
    const connection = socket as Connection;
    const responses = connection[kResponses];
    if (responses === undefined) connection[kResponses] = [res];
    else responses.push(res);
    // A kept-alive connection is already a key: this finds it.
    this.#connections.add(connection);
  }

  delete(socket: Duplex, res: ServerResponse): void {
    const connection = socket as Connection;
    const responses = connection[kResponses];
    if (responses === undefined) return;
    if (responses.length === 1 && responses[0] === res) responses.pop();
    else {
      const at = responses.indexOf(res);
      if (at >= 0) responses.splice(at, 1);
    }
    if (responses.length === 0) this.#connections.delete(connection);
  }

  *[Symbol.iterator](): Iterator<ServerResponse> {
    for (const connection of this.#connections) yield* connection[kResponses] ?? [];
  }
}

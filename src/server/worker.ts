// A worker process of `ngi serve`: loads the app, serves it on the master's listeners, and
// stops when its master says so (or is gone).
import { formatError } from '../core/errors.js';
import type { App } from '../core/types.js';
import { BEAT_MS, LISTEN_ENV, type MasterMessage, type WorkerMessage } from './ipc.js';
import { jitteredLimit, watchRss, type RecyclingOptions } from './recycling.js';
import { serve, type ListenAddress, type ServeOptions, type ServerHandle } from './serve.js';

/**
 * Worker side: loads the app, serves it on the master's listeners, reports to the master,
 * and stops gracefully when asked (or when the master is gone: a worker never outlives it).
 */
export async function runWorker(
  load: () => Promise<App>,
  options: ServeOptions,
  recycling: RecyclingOptions = {},
): Promise<void> {
  const listen = JSON.parse(process.env[LISTEN_ENV] ?? '{}') as {
    http?: ListenAddress;
    uwsgi?: ListenAddress;
    https?: ListenAddress;
  };
  const send = (message: WorkerMessage, then?: () => void): void => {
    if (process.connected) process.send!(message, undefined, {}, () => then?.());
    else then?.();
  };
  let handle: ServerHandle | undefined;
  const maxRequests = jitteredLimit(options.maxRequests ?? 0, recycling.maxRequestsDelta ?? 0);
  const figures = () =>
    maxRequests > 0 ? { ...handle!.figures(), maxRequests } : handle!.figures();
  let listening = false;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Still loading: nothing to finish. Listening but not yet handed back by serve(): the
    // close happens as soon as it is (connections may already be arriving).
    if (handle === undefined) {
      if (!listening) process.exit(0);
      return;
    }
    void handle.close(options.grace).then(() => {
      // Exit only once the master has read 'final', and so the earlier notice that this
      // worker's listeners closed: a connection it handed over before that notice is then
      // already in the pipe ahead of 'bye', and is handed back by cluster, not lost with us.
      const exit = () => process.exit(0);
      setTimeout(exit, 1000).unref();
      process.on('message', (message: MasterMessage) => {
        if (message?.ngi === 'bye') exit();
      });
      send({ ngi: 'final', figures: figures() }, () => {
        if (!process.connected) exit();
      });
    });
  };
  process.on('message', (message: MasterMessage) => {
    if (message?.ngi === 'stop') stop();
    else if (message?.ngi === 'stats?' && handle !== undefined) {
      send({ ngi: 'stats', id: message.id, figures: figures() });
    }
  });
  process.on('disconnect', stop);
  // Ctrl-C and a terminal hangup reach the whole process group: the master decides.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  process.on('SIGTERM', stop);
  // An app's stray throw (a timer writing to a finished response, a rejected promise nobody
  // awaits) must not take down every request of this worker: log it, and have the worker
  // replaced gracefully, since its state can no longer be trusted.
  const uncaught = (error: unknown): void => {
    process.stderr.write(formatError(error, `worker ${process.pid}: uncaught`));
    if (handle !== undefined && !stopping) send({ ngi: 'recycle', reason: 'uncaught-exception' });
  };
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', uncaught);

  // The master prints the reason once and decides: exit at startup, keep the old workers
  // during a reload, back off before a respawn.
  const fatal = (error: unknown): void => {
    const message = error instanceof Error ? error.message : String(error);
    send({ ngi: 'fatal', message }, () => process.exit(1));
  };
  let app: App;
  try {
    app = await load();
  } catch (error) {
    return fatal(error);
  }
  if (stopping) process.exit(0);
  listening = true;
  try {
    handle = await serve(app, {
      ...options,
      http: listen.http,
      uwsgi: listen.uwsgi,
      https: listen.https,
      stats: undefined,
      multiprocess: true,
      maxRequests,
      onRecycle: (reason) =>
        send({
          ngi: 'recycle',
          reason: reason === 'max-requests' ? `max-requests ${maxRequests}` : reason,
        }),
    });
  } catch (error) {
    return fatal(error);
  }
  if (stopping) {
    stopping = false;
    return stop();
  }
  if (options.harakiri) {
    // The master's watchdog for an event loop blocked by synchronous code: no beat, no life.
    setInterval(() => send({ ngi: 'beat' }), BEAT_MS).unref();
  }
  if (recycling.reloadOnRss) {
    const limit = recycling.reloadOnRss;
    watchRss(limit, (rss) => {
      if (!stopping) send({ ngi: 'recycle', reason: `reload-on-rss ${rss} MiB > ${limit} MiB` });
    });
  }
  send({ ngi: 'ready' });
}

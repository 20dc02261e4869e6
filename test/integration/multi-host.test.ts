import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { spawnCli, type CliProcess } from '../helpers/cli-process.js';
import { runLoad, type LoadRun, type Outcome } from '../helpers/load.js';
import { createNetnsHosts, netnsUnavailable, type NetnsHost } from '../helpers/netns.js';
import { freePort, startNginx, type RunningNginx } from '../helpers/nginx.js';
import { until } from '../helpers/ngi-serve.js';

const example = readFileSync(
  new URL('../../examples/multi-host/nginx.conf', import.meta.url),
  'utf8',
);

// In CI (root, iproute2 installed by .ci/run) namespaces must work: a failure there is a
// failure, not a skip. Elsewhere the reason is printed.
const unavailable = process.env.CI ? undefined : netnsUnavailable();
if (unavailable) console.log(`# multi-host skipped: ${unavailable}`);

const CONCURRENCY = 4;
const MAX_REQUESTS = 40_000;

/** Requests that did not come back 200, by outcome. */
function failures(run: LoadRun): Record<string, number> {
  return Object.fromEntries(Object.entries(run.counts).filter(([kind]) => kind !== '200'));
}

function failed(run: LoadRun): number {
  return Object.values(failures(run)).reduce((sum, n) => sum + n, 0);
}

describe(
  'examples/multi-host/nginx.conf: one nginx in front of three ngi serve hosts, each in its own network namespace',
  { skip: unavailable ?? false },
  () => {
    let netns: ReturnType<typeof createNetnsHosts>;
    const serves: CliProcess[] = [];
    let nginx: RunningNginx;

    /** Starts `ngi serve` inside host `i`'s namespace on its address, uwsgi and HTTP. */
    async function startHost(i: number): Promise<CliProcess> {
      const { namespace, address }: NetnsHost = netns.hosts[i]!;
      const cli = spawnCli(
        [
          'serve',
          'test/fixtures/ngi-app.mjs',
          '--uwsgi',
          `${address}:3031`,
          '--http',
          `${address}:8000`,
          '--log-format',
          'off',
        ],
        { netns: namespace, env: { NGI_TEST_HOST: `h${i}` } },
      );
      serves[i] = cli;
      await cli.waitFor(/uwsgi listening on 10\.213\.\d+\.2:3031/);
      await cli.waitFor(/http listening on 10\.213\.\d+\.2:8000/);
      return cli;
    }

    /** What answered each request: `h<i> <worker pid>`, or how it failed. */
    const answers = (outcomes: Outcome[]) =>
      new Set(outcomes.map((o) => (o.kind === 'status' ? o.body : o.kind)));
    /** The hosts among those answers. */
    const hostsOf = (seen: Set<string>) => new Set([...seen].map((answer) => answer.split(' ')[0]));

    /** Who answered `path` through nginx over `count` requests from 3 clients. */
    async function answering(
      path: string,
      count: number,
    ): Promise<{ run: LoadRun; seen: Set<string> }> {
      const run = await runLoad({
        port: nginx.port,
        path,
        concurrency: 3,
        maxRequests: count,
        maxMs: 10_000,
      });
      return { run, seen: answers(run.outcomes) };
    }

    before(async () => {
      netns = createNetnsHosts(3);
      // A test process that dies without `after` must not leave namespaces behind.
      process.once('exit', netns.remove);
      await Promise.all([0, 1, 2].map(startHost));
      const listen = await freePort();
      let config = example
        .replace('listen 127.0.0.1:8090;', `listen 127.0.0.1:${listen};`)
        .replace('include uwsgi_params;', 'include /etc/nginx/uwsgi_params;')
        // A restarted host is back in the rotation after 1 s instead of 5: a shorter test.
        .replaceAll('fail_timeout=5s', 'fail_timeout=1s');
      netns.hosts.forEach(({ address }, i) => {
        config = config.replaceAll(`10.0.0.1${i + 1}:`, `${address}:`);
      });
      assert.doesNotMatch(config, /10\.0\.0\./, 'every example address was replaced');
      nginx = await startNginx({ http: config, server: '' });
      nginx = { ...nginx, port: listen, origin: `http://127.0.0.1:${listen}` };
    });

    after(async () => {
      await nginx?.stop();
      for (const cli of serves) cli?.kill();
      await Promise.all(serves.map((cli) => cli?.exited));
      netns?.remove();
      process.off('exit', netns?.remove);
    });

    it('spreads requests over every host, over uwsgi_pass and over proxy_pass', async () => {
      for (const path of ['/host', '/http/host']) {
        const { run, seen } = await answering(path, 30);
        assert.deepEqual(run.counts, { 200: 30 }, nginx.errorLog());
        assert.deepEqual(
          hostsOf(seen),
          new Set(['h0', 'h1', 'h2']),
          `${path} reached all three hosts`,
        );
      }
    });

    it('a host SIGKILLed under load: nginx retries on the others, no request fails beyond those in flight on it', async (t) => {
      const killed = serves[0]!;
      let completed = 0;
      let completedAtKill: number | undefined;
      const run = await runLoad({
        port: nginx.port,
        path: '/host',
        concurrency: CONCURRENCY,
        maxRequests: MAX_REQUESTS,
        maxMs: 10_000,
        stop: () => completedAtKill !== undefined && completed >= completedAtKill + 400,
        onOutcome: () => {
          if (++completed === 200) {
            completedAtKill = completed;
            killed.child.kill('SIGKILL');
          }
        },
      });
      t.diagnostic(`kill under load: ${JSON.stringify(run.counts)}`);
      assert.ok(
        completedAtKill !== undefined && completed >= completedAtKill + 400,
        'the load outlived the kill',
      );
      assert.ok(
        failed(run) <= CONCURRENCY,
        `at most the ${CONCURRENCY} requests in flight fail: ${JSON.stringify(failures(run))}`,
      );
      // At most CONCURRENCY requests were in flight at the kill, so every request from that
      // index on was sent after it. The dying host may still take one or two, which nginx
      // retries: each is answered, and soon only by the two live hosts.
      const later = run.outcomes.slice(completedAtKill + CONCURRENCY);
      assert.deepEqual(
        later.filter((o) => o.kind !== 'status' || o.status !== 200),
        [],
        nginx.errorLog(),
      );
      assert.deepEqual(
        hostsOf(answers(later.slice(-100))),
        new Set(['h1', 'h2']),
        'the others took its share',
      );

      await killed.exited;
      await startHost(0);
      // Back in the rotation once its fail_timeout is over.
      await until(async () =>
        hostsOf((await answering('/host', 9)).seen).size === 3 ? true : undefined,
      );
    });

    it('a rolling restart across the hosts (SIGTERM, start again, back in rotation, next) under load loses no request', async (t) => {
      const generation = (await answering('/host', 9)).seen;
      let restarted = false;
      /** The host whose restarted process nginx has yet to send a request to. */
      let awaited: { host: string; served: () => void } | undefined;
      const load = runLoad({
        port: nginx.port,
        path: '/host',
        concurrency: CONCURRENCY,
        maxRequests: MAX_REQUESTS,
        maxMs: 40_000,
        stop: () => restarted,
        onOutcome: (outcome) => {
          if (outcome.kind === 'status' && outcome.body.startsWith(`${awaited?.host} `)) {
            awaited?.served();
          }
        },
      });
      const loadEnded = load.then(() => {
        throw new Error('the load ended before every host was back in rotation');
      });
      loadEnded.catch(() => {}); // awaited through the race below; unhandled after the loop
      for (let i = 0; i < serves.length; i++) {
        const old = serves[i]!;
        old.child.kill('SIGTERM');
        assert.equal(await old.exited, 0, `host ${i} drains and exits cleanly:\n${old.stderr()}`);
        // nginx leaves a host that refused a connection out for fail_timeout (counted in
        // whole seconds), so the restarted host takes requests again only once that is over.
        // Stopping the next host before then leaves too few in the rotation: wait until
        // nginx sends the new process a request, as an operator would.
        const backInRotation = new Promise<void>((served) => {
          awaited = { host: `h${i}`, served };
        });
        await startHost(i);
        await Promise.race([backInRotation, loadEnded]);
        awaited = undefined;
      }
      restarted = true;
      const run = await load;
      t.diagnostic(`rolling restart under load: ${JSON.stringify(run.counts)}`);
      assert.ok(run.outcomes.length < MAX_REQUESTS, 'the load ran through the whole restart');
      assert.deepEqual(failures(run), {}, nginx.errorLog());
      // Every host serves again, each from its new process, once nginx tries it again.
      await until(async () => {
        const { seen } = await answering('/host', 9);
        const fresh = [...seen].filter((answer) => !generation.has(answer));
        return hostsOf(new Set(fresh)).size === 3 ? true : undefined;
      });
    });
  },
);

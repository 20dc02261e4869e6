import { spawnSync } from 'node:child_process';

/**
 * A test host: its own network namespace, joined to the root namespace by a veth pair on a
 * private /30 that only this test run uses (never a real network).
 */
export interface NetnsHost {
  /** The namespace, for `ip netns exec`. */
  namespace: string;
  /** The host's address inside its namespace (what its `ngi serve` binds). */
  address: string;
}

/** Runs `ip ...args`; throws with ip's own message when it fails. */
function ip(...args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

/**
 * Why namespaces cannot be made here (not root, no iproute2), or undefined when they can:
 * probed by creating and removing one.
 */
export function netnsUnavailable(): string | undefined {
  const probe = `ngi-probe-${process.pid}`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (error) {
    return `network namespaces are unavailable (${(error as Error).message}): run as root with iproute2 installed`;
  }
}

/**
 * Creates `count` namespaces, each with a veth pair: `10.213.S.1/30` on the root side,
 * `10.213.S.2/30` inside, S picked from this process's pid so parallel runs do not collide.
 * `remove()` deletes every namespace and link it made (idempotent, for `after` hooks).
 */
export function createNetnsHosts(count: number): { hosts: NetnsHost[]; remove(): void } {
  const tag = process.pid % 100_000;
  const base = (process.pid % 60) * 4;
  const made: Array<{ namespace: string; link: string }> = [];
  const remove = () => {
    for (const { namespace, link } of made.splice(0)) {
      // Deleting the namespace deletes the veth end inside it, and with it the peer; the
      // explicit link delete covers a namespace that was never joined.
      spawnSync('ip', ['netns', 'del', namespace]);
      spawnSync('ip', ['link', 'del', link]);
    }
  };
  const hosts: NetnsHost[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const namespace = `ngi-mh-${tag}-${i}`;
      const outside = `mh${tag}o${i}`;
      const inside = `mh${tag}i${i}`;
      const subnet = `10.213.${base + i}`;
      ip('netns', 'add', namespace);
      made.push({ namespace, link: outside });
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside, 'netns', namespace);
      ip('addr', 'add', `${subnet}.1/30`, 'dev', outside);
      ip('link', 'set', outside, 'up');
      ip('-n', namespace, 'addr', 'add', `${subnet}.2/30`, 'dev', inside);
      ip('-n', namespace, 'link', 'set', inside, 'up');
      ip('-n', namespace, 'link', 'set', 'lo', 'up');
      hosts.push({ namespace, address: `${subnet}.2` });
    }
  } catch (error) {
    remove();
    throw error;
  }
  return { hosts, remove };
}

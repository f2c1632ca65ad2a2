/**
 * A network namespace joined to the test's own namespace by a veth pair: the wire between a
 * Matter device (a child process inside the namespace) and the hub's controller (the test
 * process). matter.js leaves the loopback interface out of Matter's mDNS and operational
 * discovery, so two processes on one machine only find each other over a real link; this one
 * carries nothing but IPv6 link-local traffic between the two ends.
 *
 * Needs root and iproute2's `ip`. Names are unique per process (`thr-matter-dev-<pid>-<n>`), and
 * namespaces left by a test process that died are removed the next time one is made.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A namespace, its veth pair, and the knobs a test turns. */
export interface NetnsLink {
  /** The namespace the device runs in (`ip netns exec <namespace> ...`). */
  readonly namespace: string;
  /** The veth end in the test's namespace (the hub's Matter interface). */
  readonly hostInterface: string;
  /** The veth end inside the namespace (the device's interface). */
  readonly deviceInterface: string;
  /** The host end's IPv6 link-local address, with its zone (`fe80::...%<hostInterface>`). */
  readonly hostAddress: string;
  /** Deletes the namespace and with it the veth pair; idempotent. */
  destroy(): Promise<void>;
}

const PREFIX = 'thr-matter-dev-';
let made = 0;

/**
 * Throws a clear error unless this process can make namespaces (root, `ip` installed): the
 * Matter test must fail, not skip, where it cannot run.
 */
export function assertNetnsPossible(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the Matter lock test needs root: it joins a Matter device in its own network namespace ' +
        'to the hub by a veth pair, because matter.js does not use the loopback interface. ' +
        'Run it as root (CI does).',
    );
  }
  const ip = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) {
    throw new Error(
      `the Matter lock test needs iproute2's "ip" command (apt-get install iproute2): ${
        ip.error?.message ?? ip.stderr
      }`,
    );
  }
}

/** Runs `ip ARGS`, failing with its stderr. */
async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || String(err)}`);
  }
}

/** Sets a sysctl inside `namespace` (or here, for null). */
async function sysctl(namespace: string | null, key: string, value: string): Promise<void> {
  const args = ['-w', `${key}=${value}`];
  if (namespace === null) await run('sysctl', args, { timeout: 10_000 });
  else await ip('netns', 'exec', namespace, 'sysctl', ...args);
}

/** Whether process `pid` still runs. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces this helper made in test processes that are gone. */
async function removeStale(): Promise<void> {
  const list = await ip('netns', 'list');
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = new RegExp(`^${PREFIX}(\\d+)-\\d+$`).exec(name);
    if (match && !alive(Number(match[1]))) await ip('netns', 'del', name).catch(() => undefined);
  }
}

/**
 * Waits until `dev` (in `namespace`, or here) has a usable IPv6 link-local address; resolves
 * with it, zoned.
 */
async function linkLocalReady(namespace: string | null, dev: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const args = ['-6', '-o', 'addr', 'show', 'dev', dev, 'scope', 'link'];
    const out = await (namespace === null ? ip(...args) : ip('-n', namespace, ...args));
    const address = /inet6 (fe80::[0-9a-f:]+)\//.exec(out)?.[1];
    if (address !== undefined && !/tentative/.test(out)) return `${address}%${dev}`;
    if (Date.now() > deadline) throw new Error(`no IPv6 link-local address on ${dev}: ${out}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Makes a namespace and a veth pair with both ends up and addressed (IPv6 link-local only). */
export async function createNetnsLink(): Promise<NetnsLink> {
  assertNetnsPossible();
  await removeStale();
  made += 1;
  const namespace = `${PREFIX}${process.pid}-${made}`;
  // Interface names have at most 15 characters.
  const tag = `${process.pid.toString(36)}${made.toString(36)}`;
  const hostInterface = `thmh${tag}`;
  const deviceInterface = `thmd${tag}`;
  let destroyed = false;
  let hostAddress = '';

  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    try {
      execFileSync('ip', ['netns', 'del', namespace], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
    try {
      execFileSync('ip', ['link', 'del', hostInterface], { stdio: 'ignore' });
    } catch {
      // Went with the namespace (the usual case).
    }
  };
  // Whatever happens to the test, the namespace does not outlive this process.
  process.once('exit', destroySync);

  try {
    await ip('netns', 'add', namespace);
    await ip(
      'link',
      'add',
      hostInterface,
      'type',
      'veth',
      'peer',
      'name',
      deviceInterface,
      'netns',
      namespace,
    );
    for (const [ns, dev] of [
      [null, hostInterface],
      [namespace, deviceInterface],
    ] as const) {
      // No duplicate address detection: the address is usable at once.
      await sysctl(ns, `net.ipv6.conf.${dev}.accept_dad`, '0');
    }
    await ip('-n', namespace, 'link', 'set', 'lo', 'up');
    await ip('link', 'set', hostInterface, 'up');
    await ip('-n', namespace, 'link', 'set', deviceInterface, 'up');
    hostAddress = await linkLocalReady(null, hostInterface);
    await linkLocalReady(namespace, deviceInterface);
  } catch (err) {
    destroySync();
    process.off('exit', destroySync);
    throw err;
  }

  return {
    namespace,
    hostInterface,
    deviceInterface,
    hostAddress,
    destroy: async () => {
      destroySync();
      process.off('exit', destroySync);
    },
  };
}

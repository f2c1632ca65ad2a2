/**
 * A Linux network namespace joined to this process's namespace by a veth pair: a real link
 * between a device (a child process inside the namespace) and the parts that run here, which a
 * test can take down as a jammer or an out-of-range radio would. Traffic crosses the kernel's
 * network stack, so what the two ends see when the link goes away is what they would see on a
 * real network: no FIN, no RST, only silence (and "network unreachable" inside the namespace).
 *
 * Each end can be given an IPv4 address on a /30 of its own, taken from 198.18.0.0/15 (RFC 2544:
 * reserved for benchmarking network devices, never routed and not used by home or office
 * networks) after checking it overlaps none of this machine's addresses or routes; and/or the
 * IPv6 link-local addresses the kernel gives it (duplicate address detection off, so they are
 * usable at once).
 *
 * Needs root and iproute2's `ip` ({@link assertNetnsPossible} says so clearly). Names are unique
 * per process (`<prefix><pid>-<n>`); namespaces left by a process that died are removed the next
 * time one with the same prefix is made, and every namespace is removed when this process exits,
 * whatever happens to the test.
 */
import {
  execFile,
  execFileSync,
  spawn,
  spawnSync,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What {@link createNetns} makes. */
export interface NetnsOptions {
  /** What needs the namespace, for error messages (e.g. `the camera-link-down scenario`). */
  readonly purpose: string;
  /**
   * Start of the namespace's name (`<prefix><pid>-<n>`), e.g. `thr-cam-`. Stale cleanup only
   * touches namespaces with this prefix.
   */
  readonly prefix: string;
  /**
   * Two or three lower-case letters starting the interface names: `<tag>h<id>` here and
   * `<tag>d<id>` in the namespace (an interface name has at most 15 characters).
   */
  readonly interfaceTag: string;
  /** Gives both ends an IPv4 address on a private /30 of their own. Default false. */
  readonly ipv4?: boolean;
  /** Waits until both ends have a usable IPv6 link-local address. Default false. */
  readonly ipv6LinkLocal?: boolean;
}

/** A namespace, its veth pair, and the knobs a test turns. */
export interface Netns {
  /** The namespace's name (`ip netns exec <namespace> ...`). */
  readonly namespace: string;
  /** The veth end in this process's namespace. */
  readonly hostInterface: string;
  /** The veth end inside the namespace (the device's interface). */
  readonly deviceInterface: string;
  /** The /30 of the link (`198.18.x.y/30`), or null without `ipv4`. */
  readonly ipv4Subnet: string | null;
  /** The host end's IPv4 address, or null without `ipv4`. */
  readonly hostIpv4: string | null;
  /** The device end's IPv4 address, or null without `ipv4`. */
  readonly deviceIpv4: string | null;
  /** The host end's IPv6 link-local address, zoned (`fe80::…%<hostInterface>`), or null. */
  readonly hostLinkLocal: string | null;
  /** The device end's IPv6 link-local address, zoned with the device's interface, or null. */
  readonly deviceLinkLocal: string | null;
  /**
   * Sets the device end's link up or down (`ip link set <dev> up|down` inside the namespace),
   * as a radio that loses and regains its network: nothing is sent to the other end either way.
   */
  setDeviceLink(up: boolean): Promise<void>;
  /** Whether the device end's link is administratively up. */
  deviceLinkUp(): Promise<boolean>;
  /**
   * Starts `command args` inside the namespace (`ip netns exec`, which execs the command, so the
   * child's pid is the command's). {@link Netns.destroy} kills it if it still runs.
   */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /**
   * Kills whatever still runs inside, deletes the namespace and with it the veth pair, and
   * waits until the host end is gone. Idempotent.
   */
  destroy(): Promise<void>;
}

/** Longest wait for a link-local address or for a deleted interface to disappear, ms. */
const SETTLE_MS = 10_000;
/** Longest wait for one `ip` command, ms. */
const IP_TIMEOUT_MS = 10_000;
/** 198.18.0.0/15 as a 32-bit number, and how many /30s it holds. */
const BENCH_BASE = ((198 << 24) >>> 0) + (18 << 16);
const BENCH_SUBNETS = (1 << 17) / 4;

let made = 0;

/**
 * Throws a clear error unless this process can make namespaces (root, `ip` installed): a test or
 * scenario that needs one must fail, not skip, where it cannot run. `why` says what the
 * namespace is for, in the error.
 */
export function assertNetnsPossible(purpose: string, why: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${purpose} needs root: ${why}. Run it as root (CI does).`);
  }
  const ip = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) {
    throw new Error(
      `${purpose} needs iproute2's "ip" command (apt-get install iproute2): ${
        ip.error?.message ?? ip.stderr
      }`,
    );
  }
}

/** Runs `ip ARGS`; resolves with its stdout, or fails with its stderr. */
async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: IP_TIMEOUT_MS });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || String(err)}`);
  }
}

/** The network namespaces that exist now, by name. */
export async function listNetns(): Promise<string[]> {
  const out = await ip('netns', 'list');
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** Whether an interface named `name` exists in this process's namespace. */
export async function interfaceExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', 'dev', name], { timeout: IP_TIMEOUT_MS });
    return true;
  } catch {
    return false;
  }
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

/** `s` with the characters a regular expression gives a meaning escaped. */
function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Kills what runs inside `namespace` and deletes it, synchronously (for the exit handler and
 * stale cleanup): a namespace lives on, veth pair and all, while a process holds it.
 */
function deleteNamespaceSync(namespace: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' });
    for (const pid of pids.split('\n').filter((p) => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  } catch {
    // No such namespace.
  }
  try {
    execFileSync('ip', ['netns', 'del', namespace], { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

/**
 * Removes the namespaces named `<prefix><pid>-<n>` whose process `pid` is gone (a test that was
 * killed before it could clean up), with what still runs inside them.
 */
export async function removeStaleNetns(prefix: string): Promise<string[]> {
  const pattern = new RegExp(`^${escapeRegExp(prefix)}(\\d+)-\\d+$`);
  const removed: string[] = [];
  for (const name of await listNetns()) {
    const match = pattern.exec(name);
    if (match && !alive(Number(match[1]))) {
      deleteNamespaceSync(name);
      removed.push(name);
    }
  }
  return removed;
}

/** `a.b.c.d` from a 32-bit number. */
function dotted(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join('.');
}

/** A 32-bit number from `a.b.c.d`, or null when it is not an IPv4 address. */
function numeric(address: string): number | null {
  const parts = address.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    n = n * 256 + Number(part);
  }
  return n;
}

/** Whether `a/aLen` and `b/bLen` share an address. */
function overlaps(a: number, aLen: number, b: number, bLen: number): boolean {
  const len = Math.min(aLen, bLen);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

/**
 * The IPv4 prefixes this machine already uses: its interfaces' addresses with their networks,
 * and the destinations of its main routing table (the default route aside: it covers all).
 */
async function prefixesInUse(): Promise<{ address: number; length: number }[]> {
  const used: { address: number; length: number }[] = [];
  const add = (text: string | undefined): void => {
    const [addr = '', len] = (text ?? '').split('/');
    const address = numeric(addr);
    if (address !== null) used.push({ address, length: len === undefined ? 32 : Number(len) });
  };
  for (const match of (await ip('-4', '-o', 'addr', 'show')).matchAll(/inet (\S+)/g)) {
    add(match[1]);
  }
  for (const line of (await ip('-4', 'route', 'show')).split('\n')) {
    const first = line.split(' ')[0];
    if (first !== 'default') add(first);
  }
  return used;
}

/**
 * A /30 of 198.18.0.0/15 that overlaps nothing in use here, picked from this process's pid so
 * that concurrent test processes start far apart: `[subnet, host address, device address]`.
 */
async function freeSubnet(): Promise<[string, string, string]> {
  const used = await prefixesInUse();
  const start = (process.pid * 16 + made) % BENCH_SUBNETS;
  for (let i = 0; i < BENCH_SUBNETS; i += 1) {
    const base = (BENCH_BASE + ((start + i) % BENCH_SUBNETS) * 4) >>> 0;
    if (used.some((u) => overlaps(base, 30, u.address, u.length))) continue;
    return [`${dotted(base)}/30`, dotted(base + 1), dotted(base + 2)];
  }
  throw new Error('no free /30 left in 198.18.0.0/15 on this machine');
}

/** Sets a sysctl inside `namespace` (or here, for null). */
async function sysctl(namespace: string | null, key: string, value: string): Promise<void> {
  const args = ['-w', `${key}=${value}`];
  if (namespace === null) await run('sysctl', args, { timeout: IP_TIMEOUT_MS });
  else await ip('netns', 'exec', namespace, 'sysctl', ...args);
}

/**
 * Waits until `dev` (in `namespace`, or here) has a usable IPv6 link-local address; resolves
 * with it, zoned.
 */
async function linkLocalReady(namespace: string | null, dev: string): Promise<string> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const args = ['-6', '-o', 'addr', 'show', 'dev', dev, 'scope', 'link'];
    const out = await (namespace === null ? ip(...args) : ip('-n', namespace, ...args));
    const address = /inet6 (fe80::[0-9a-f:]+)\//.exec(out)?.[1];
    if (address !== undefined && !/tentative/.test(out)) return `${address}%${dev}`;
    if (Date.now() > deadline) throw new Error(`no IPv6 link-local address on ${dev}: ${out}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until no interface named `name` is left here (a namespace is freed asynchronously). */
async function interfaceGone(name: string): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  while (await interfaceExists(name)) {
    if (Date.now() > deadline) throw new Error(`the interface ${name} is still there`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Makes a namespace and a veth pair, both ends up (and addressed as asked). Throws, with nothing
 * left behind, when it cannot.
 */
export async function createNetns(options: NetnsOptions): Promise<Netns> {
  assertNetnsPossible(
    options.purpose,
    'it runs a device in a network namespace of its own, joined to this process by a veth pair',
  );
  if (!/^[a-z]{2,3}$/.test(options.interfaceTag)) {
    throw new Error(
      `interfaceTag must be two or three lower-case letters: ${options.interfaceTag}`,
    );
  }
  await removeStaleNetns(options.prefix);
  made += 1;
  const namespace = `${options.prefix}${process.pid}-${made}`;
  const id = `${process.pid.toString(36)}${made.toString(36)}`;
  const hostInterface = `${options.interfaceTag}h${id}`;
  const deviceInterface = `${options.interfaceTag}d${id}`;
  const children = new Set<ChildProcess>();
  let destroyed = false;

  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    for (const child of children) child.kill('SIGKILL');
    deleteNamespaceSync(namespace);
    try {
      execFileSync('ip', ['link', 'del', hostInterface], { stdio: 'ignore' });
    } catch {
      // Went with the namespace (the usual case).
    }
  };
  // Whatever happens to the test, the namespace does not outlive this process.
  process.once('exit', destroySync);

  let ipv4: [string, string, string] | null = null;
  let hostLinkLocal: string | null = null;
  let deviceLinkLocal: string | null = null;
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
    if (options.ipv6LinkLocal) {
      for (const [ns, dev] of [
        [null, hostInterface],
        [namespace, deviceInterface],
      ] as const) {
        // No duplicate address detection: the address is usable at once.
        await sysctl(ns, `net.ipv6.conf.${dev}.accept_dad`, '0');
      }
    }
    if (options.ipv4) {
      ipv4 = await freeSubnet();
      await ip('addr', 'add', `${ipv4[1]}/30`, 'dev', hostInterface);
      await ip('-n', namespace, 'addr', 'add', `${ipv4[2]}/30`, 'dev', deviceInterface);
    }
    await ip('-n', namespace, 'link', 'set', 'lo', 'up');
    await ip('link', 'set', hostInterface, 'up');
    await ip('-n', namespace, 'link', 'set', deviceInterface, 'up');
    if (options.ipv6LinkLocal) {
      hostLinkLocal = await linkLocalReady(null, hostInterface);
      deviceLinkLocal = await linkLocalReady(namespace, deviceInterface);
    }
  } catch (err) {
    destroySync();
    process.off('exit', destroySync);
    throw err;
  }

  let destroying: Promise<void> | undefined;
  const destroy = async (): Promise<void> => {
    const exits = [...children]
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map((c) => new Promise<void>((resolve) => c.once('exit', () => resolve())));
    destroySync();
    process.off('exit', destroySync);
    // SIGKILL cannot be refused; the bound only guards against an exit that is never reported.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(exits),
      new Promise((resolve) => (timer = setTimeout(resolve, SETTLE_MS))),
    ]);
    clearTimeout(timer);
    // The kernel frees a deleted namespace (and its veth pair) in the background.
    await interfaceGone(hostInterface);
  };

  return {
    namespace,
    hostInterface,
    deviceInterface,
    ipv4Subnet: ipv4?.[0] ?? null,
    hostIpv4: ipv4?.[1] ?? null,
    deviceIpv4: ipv4?.[2] ?? null,
    hostLinkLocal,
    deviceLinkLocal,
    async setDeviceLink(up) {
      await ip('-n', namespace, 'link', 'set', 'dev', deviceInterface, up ? 'up' : 'down');
    },
    async deviceLinkUp() {
      const out = await ip('-n', namespace, '-o', 'link', 'show', 'dev', deviceInterface);
      // The flags between < and >: UP is the administrative state.
      return /<([^>]*)>/.exec(out)?.[1]?.split(',').includes('UP') ?? false;
    },
    spawn(command, args, spawnOptions = {}) {
      if (destroyed) throw new Error(`the namespace ${namespace} is gone`);
      const child = spawn('ip', ['netns', 'exec', namespace, command, ...args], spawnOptions);
      children.add(child);
      child.once('exit', () => children.delete(child));
      child.once('error', () => children.delete(child));
      return child;
    },
    destroy: () => (destroying ??= destroy()),
  };
}

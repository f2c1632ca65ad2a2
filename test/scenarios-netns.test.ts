/**
 * The scenario whose camera runs in a network namespace of its own (camera-link-down), through
 * the same runner as every scenario, and the namespace helper under it (src/harness/netns.ts):
 * a real veth link that carries TCP, goes down and comes back, and leaves nothing behind.
 *
 * Needs root and iproute2 (CI has both); without them these tests fail saying so.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  createNetns,
  interfaceExists,
  listNetns,
  removeStaleNetns,
  type Netns,
} from '../src/harness/netns.ts';
import { runScenario } from '../src/harness/scenario.ts';
import { SCENARIO_TIMING } from '../src/harness/scenario-world.ts';
import { CAMERA_NETNS_PREFIX, cameraLinkDown } from '../src/harness/scenarios/camera-link-down.ts';

/** The namespaces of `prefix` this test process made that still exist. */
async function ownNamespaces(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(`${prefix}${process.pid}-`));
}

/** The interfaces here whose names start with one of `prefixes`. */
function interfacesStartingWith(prefixes: readonly string[]): string[] {
  const out = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '')
    .filter((name) => prefixes.some((p) => name.startsWith(p)));
}

/**
 * Runs a TCP connect from inside `netns` to `host:port`; resolves with "ok" or the error code
 * the device's network stack gave (e.g. ENETUNREACH with its link down).
 */
function connectFromInside(netns: Netns, host: string, port: number): Promise<string> {
  const script = `
    const s = require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port} });
    s.setTimeout(3000, () => { console.log('timeout'); process.exit(0); });
    s.on('connect', () => { console.log('ok'); s.end(); });
    s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
  const child = netns.spawn(process.execPath, ['-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve(out.trim()));
  });
}

/** `a.b.c.d` as a 32-bit number. */
function toNumber(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/** Whether `a/aLen` and `b/bLen` share an address. */
function overlaps(a: number, aLen: number, b: number, bLen: number): boolean {
  const len = Math.min(aLen, bLen);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

describe('camera-link-down: the camera in its own network namespace, its link taken down', () => {
  it('observation-lost within the bound, courier and owner told, never "completed", the lock relocked when the door closes', async () => {
    const r = await runScenario(cameraLinkDown);
    expect(r.failures).toEqual([]);
    expect(r.passed).toBe(true);
    expect(r.alerts.map((a) => a.type)).toContain('observation-lost');
    expect(r.detectionMs).toBeLessThanOrEqual(2_000);
    expect(r.fromLinkDownMs).toBeLessThanOrEqual(SCENARIO_TIMING.watchdog.silenceMs + 750);
    expect(r.courierToldMs).toBeLessThanOrEqual(1_000);
    expect(r.ownerToldMs).toBeLessThanOrEqual(1_000);
    expect(r.ownerSees).toContain('observation-lost');
    expect(r.lockCommandsWhileOpen).toBe(0);
    expect(r.commandAfterCloseMs).toBeLessThanOrEqual(1_000);
    expect(typeof r.relockMs).toBe('number');
    expect(typeof r.cameraBackMs).toBe('number');
    expect(r).toMatchObject({
      outcome: 'aborted',
      reason: 'session.observation-lost',
      auditVerified: true,
    });
    expect(r.coverage).toBeLessThan(1);
    expect(r.gaps.length).toBeGreaterThan(0);
    // The camera itself saw its link go down and come back.
    expect(r.cameraLinkReports).toEqual(expect.arrayContaining(['down', 'up']));
    expect(String(r.namespace)).toMatch(new RegExp(`^${CAMERA_NETNS_PREFIX}${process.pid}-\\d+$`));
    expect(String(r.subnet)).toMatch(/^198\.(18|19)\.\d+\.\d+\/30$/);
    console.log(
      `camera-link-down: detection ${String(r.detectionMs)} ms after the last heartbeat, ` +
        `${String(r.fromLinkDownMs)} ms after the link went down; courier told +${String(r.courierToldMs)} ms, ` +
        `owner +${String(r.ownerToldMs)} ms; camera shown offline after ${String(r.cameraShownOfflineMs)} ms`,
    );

    // Nothing is left behind: no namespace, no veth end.
    expect(await listNetns()).not.toContain(r.namespace);
    expect(await interfaceExists(String(r.hostInterface))).toBe(false);
    expect(await ownNamespaces(CAMERA_NETNS_PREFIX)).toEqual([]);
    const tag = process.pid.toString(36);
    expect(interfacesStartingWith([`thch${tag}`, `thcd${tag}`])).toEqual([]);
  }, 120_000);

  it('fails with the reason, never passes or skips, where `ip` cannot be found', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    let r;
    try {
      r = await runScenario(cameraLinkDown);
    } finally {
      process.env.PATH = path;
    }
    expect(r.passed).toBe(false);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toMatch(/camera-link-down scenario needs iproute2's "ip" command/);
    expect(await ownNamespaces(CAMERA_NETNS_PREFIX)).toEqual([]);
  }, 60_000);
});

describe('network namespaces (src/harness/netns.ts)', () => {
  it('joins a namespace by a veth pair on a private /30 that carries TCP, goes down, comes back, and is gone after destroy', async () => {
    const netns = await createNetns({
      purpose: 'the netns test',
      prefix: 'thr-test-',
      interfaceTag: 'tht',
      ipv4: true,
    });
    let server: Server | null = null;
    try {
      expect(netns.hostIpv4).not.toBeNull();
      expect(netns.deviceIpv4).not.toBeNull();
      expect(await netns.deviceLinkUp()).toBe(true);
      // Listening only on the host end of the veth: reachable from inside, not via loopback.
      const listening = createServer((s) => s.end());
      server = listening;
      await new Promise<void>((resolve) => listening.listen(0, netns.hostIpv4!, resolve));
      const port = (listening.address() as { port: number }).port;

      expect(await connectFromInside(netns, netns.hostIpv4!, port)).toBe('ok');
      await netns.setDeviceLink(false);
      expect(await netns.deviceLinkUp()).toBe(false);
      expect(await connectFromInside(netns, netns.hostIpv4!, port)).toBe('ENETUNREACH');
      await netns.setDeviceLink(true);
      expect(await netns.deviceLinkUp()).toBe(true);
      expect(await connectFromInside(netns, netns.hostIpv4!, port)).toBe('ok');
    } finally {
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      await netns.destroy();
    }
    await netns.destroy(); // idempotent
    expect(await listNetns()).not.toContain(netns.namespace);
    expect(await interfaceExists(netns.hostInterface)).toBe(false);
    expect(() => netns.spawn('true', [])).toThrow(/is gone/);
  }, 60_000);

  it('gives concurrent links /30s that do not overlap each other or the machine’s networks', async () => {
    const a = await createNetns({
      purpose: 'the netns test',
      prefix: 'thr-test-',
      interfaceTag: 'tht',
      ipv4: true,
    });
    const b = await createNetns({
      purpose: 'the netns test',
      prefix: 'thr-test-',
      interfaceTag: 'tht',
      ipv4: true,
    });
    try {
      expect(a.ipv4Subnet).not.toBe(b.ipv4Subnet);
      const addrs = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
      // Every address of the machine inside a link's /30 is that link's own host end.
      for (const n of [a, b]) {
        const [net = '', len = ''] = n.ipv4Subnet!.split('/');
        expect(len).toBe('30');
        const holders = [...addrs.matchAll(/^\d+: (\S+)\s+inet ([\d.]+)\/(\d+)/gm)]
          .filter((m) => overlaps(toNumber(m[2]!), Number(m[3]), toNumber(net), 30))
          .map((m) => `${m[1]} ${m[2]}`);
        expect(holders).toEqual([`${n.hostInterface} ${n.hostIpv4}`]);
      }
    } finally {
      await a.destroy();
      await b.destroy();
    }
  }, 60_000);

  it('removes namespaces left by a process that is gone, with what runs inside them', async () => {
    // A pid that just ended.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => gone.once('exit', resolve));
    const stale = `thr-stale-${gone.pid}-1`;
    execFileSync('ip', ['netns', 'add', stale]);
    const mine = `thr-stale-${process.pid}-1`;
    execFileSync('ip', ['netns', 'add', mine]);
    try {
      expect(await removeStaleNetns('thr-stale-')).toEqual([stale]);
      const left = await listNetns();
      expect(left).not.toContain(stale);
      // A namespace of a process still running is not touched.
      expect(left).toContain(mine);
    } finally {
      for (const n of [stale, mine]) {
        try {
          execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
        } catch {
          // Already removed.
        }
      }
    }
  });
});

/**
 * The Matter lock driver (matter.js as the hub's controller) against a matter.js virtual Door
 * Lock running in a child process inside its own network namespace, joined to this process by a
 * veth pair (matter.js does not use the loopback interface). The lock is paired into a fabric
 * in a temporary folder once for the file; every test then starts a new driver over that
 * fabric, as the hub does. "Offline" is the lock's radio switched off: it keeps running, and
 * nothing it sends or would receive arrives, with no error on either side (out of range).
 *
 * Needs root and iproute2 (CI has both); without them it fails with a message saying so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LockDriverEvent } from '../../src/hub/drivers/driver.ts';
import {
  MatterLock,
  boltOfLockState,
  type MatterLockOptions,
} from '../../src/hub/drivers/matter-lock.ts';
import { MatterFabric, createMatterDriverFactory } from '../../src/hub/drivers/matter-factory.ts';
import { HubConfigError, parseHubConfig } from '../../src/hub/config.ts';
import { FakeClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/devices/device-connection.ts';
import { expectDriverError, sleep, waitUntil } from './contract-helpers.ts';
import { describeLockDriverContract } from './lock-contract.ts';
import { VirtualMatterLock } from './matter-lock-device.ts';
import { createNetnsLink, type NetnsLink } from './matter-netns.ts';

/** Test timing: a lock that went away is noticed within a read's one-second timeout. */
const FAST: Partial<MatterLockOptions> = {
  probeTimeoutMs: 1000,
  livenessIntervalMs: 300,
  deadProbeIntervalMs: 200,
  checkIntervalMs: 100,
  commandTimeoutMs: 5000,
};
/** The keypad of the virtual lock: slots, wrong codes before lockout, lockout seconds. */
const USERS = 8;
const LOCKOUT_SECONDS = 10;

let dir: string;
let link: NetnsLink | undefined;
let device: VirtualMatterLock | undefined;
let fabric: MatterFabric | undefined;
let nodeId: bigint;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'threshold-matter-'));
  link = await createNetnsLink();
  device = await VirtualMatterLock.start(link, join(dir, 'lock'));
  fabric = new MatterFabric({
    storageDir: join(dir, 'hub'),
    // The hub's Matter traffic (mDNS, and its controller's socket) stays on the veth pair.
    netInterface: link.hostInterface,
    listenAddress: link.hostAddress,
  });
  await fabric.acquire();
  // The one-off pairing step: what a user does once per lock, with the code on its label.
  nodeId = await fabric.commission(device.pairingCode, 30_000);
}, 60_000);

afterAll(async () => {
  await fabric?.release();
  await device?.close();
  await link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

/** The running fabric and lock (beforeAll made them). */
function world(): { fabric: MatterFabric; device: VirtualMatterLock } {
  if (!fabric || !device) throw new Error('the Matter test world did not start');
  return { fabric, device };
}

/** Resets the lock to `bolt` and waits until the controller's copy of it says so. */
async function resetAndSettle(bolt: 'locked' | 'unlocked'): Promise<void> {
  const open = world().fabric.open;
  const peer = world().fabric.peer(nodeId);
  if (!open || !peer) throw new Error('no fabric or no peer');
  const lockState = (): unknown =>
    peer.endpoints.for(1).stateOf(open.modules.DoorLockClient).lockState;
  await world().device.reset(bolt);
  // Reports a lock sent while its radio was off are retransmitted, with backoff.
  await waitUntil(
    () => boltOfLockState(lockState()) === bolt,
    `the controller to see ${bolt}`,
    15_000,
  );
}

/** A fresh lock (online, `bolt`, no codes) and a new driver over the shared fabric. */
async function freshLock(
  bolt: 'locked' | 'unlocked',
  overrides: Partial<MatterLockOptions> = {},
): Promise<MatterLock> {
  await world().device.goOnline();
  // Through the other bolt first: the lock sends its reports in order, so once the controller
  // saw both, whatever an earlier test left in flight (a report sent while the radio was off,
  // with its events) has arrived and cannot reach the new driver.
  await resetAndSettle(bolt === 'locked' ? 'unlocked' : 'locked');
  await resetAndSettle(bolt);
  return new MatterLock({
    id: 'front-door',
    fabric: world().fabric,
    nodeId,
    ...FAST,
    ...overrides,
  });
}

describeLockDriverContract(
  'matter.js (virtual Door Lock in its own network namespace)',
  async (options) => {
    const driver = await freshLock(options.bolt ?? 'locked', {
      // The contract registers a listener that throws on purpose; no warning for it.
      onListenerError: () => undefined,
    });
    if (options.online === false) await world().device.goOffline();
    return {
      driver,
      device: world().device,
      reportsManual: true,
      holdsConnections: true,
      heldResources: () => driver.heldResources(),
      close: async () => {
        await driver.stop();
      },
    };
  },
);

describe('MatterLock beyond the contract', () => {
  let driver: MatterLock | undefined;
  let events: LockDriverEvent[] = [];

  async function started(overrides: Partial<MatterLockOptions> = {}): Promise<MatterLock> {
    driver = await freshLock('locked', overrides);
    events = [];
    driver.on((e) => events.push(e));
    await driver.start();
    return driver;
  }

  afterEach(async () => {
    await driver?.stop();
    driver = undefined;
  });

  it('reports wrong codes, and the keypad lockout with its end from the lock', async () => {
    const lock = await started();
    events = [];
    const before = Date.now();
    for (let i = 0; i < 3; i += 1) await world().device.wrongCode();
    await waitUntil(() => events.some((e) => e.type === 'keypad-lockout'), 'the lockout');
    expect(events.map((e) => e.type)).toEqual([
      'keypad-wrong-code',
      'keypad-wrong-code',
      'keypad-wrong-code',
      'keypad-lockout',
    ]);
    const lockout = events[3];
    if (lockout?.type !== 'keypad-lockout') throw new Error('expected a lockout');
    // WrongCodeEntryLimit reached: codes refused for UserCodeTemporaryDisableTime seconds.
    expect(lockout.untilMs).toBe(lockout.at + LOCKOUT_SECONDS * 1000);
    expect(lockout.at).toBeGreaterThanOrEqual(before);
    expect(lock.bolt()).toBe('locked');
  });

  it('tells why before what: the keypad event comes before the bolt it moved', async () => {
    await started();
    events = [];
    await world().device.keypadUnlock(5);
    await waitUntil(() => events.some((e) => e.type === 'state'), 'the bolt drawn');
    expect(events.map((e) => e.type)).toEqual(['keypad-unlocked', 'state']);
    expect(events[0]).toMatchObject({ type: 'keypad-unlocked', slot: 5 });
    expect(events[1]).toMatchObject({ type: 'state', bolt: 'unlocked' });
  });

  it('stores codes on the lock as users with PIN credentials', async () => {
    const lock = await started();
    const pins = lock.pins;
    if (!pins) throw new Error('expected a keypad');
    expect(pins.capacity()).toBe(USERS);
    await pins.set(4, '482913');
    expect(await world().device.codes()).toEqual({ 4: '482913' });
    // A new code for an occupied slot replaces the old one.
    await pins.set(4, '5555');
    expect(await world().device.codes()).toEqual({ 4: '5555' });
    await pins.clear(4);
    expect(await world().device.codes()).toEqual({});
    // Clearing an empty slot is not an error.
    await pins.clear(4);
    expect(await pins.occupied()).toEqual([]);
  });

  it('refuses a code another slot already holds, changing nothing', async () => {
    const lock = await started();
    const pins = lock.pins;
    if (!pins) throw new Error('expected a keypad');
    await pins.set(1, '1234');
    await expectDriverError(pins.set(2, '1234'), 'device.refused');
    expect(await world().device.codes()).toEqual({ 1: '1234' });
  });

  it('reports the bolt only when the lock does, never when the command was accepted', async () => {
    const lock = await started();
    const states: string[] = [];
    lock.on((e) => {
      if (e.type === 'state') states.push(e.bolt);
    });
    world().device.holdMovements();
    await lock.unlock();
    await sleep(400);
    expect(lock.bolt()).toBe('locked');
    expect(states).toEqual([]);
    world().device.releaseMovements();
    await waitUntil(() => lock.bolt() === 'unlocked', 'the lock to report the bolt drawn');
    expect(states).toEqual(['unlocked']);
  });

  it('hears the lock again after an absence long enough for it to give up its reports', async () => {
    const lock = await started();
    await world().device.goOffline();
    await waitUntil(() => !lock.available(), 'availability false');
    await world().device.turnByHand('unlocked');
    // Longer than the lock retransmits an unacknowledged report: it gives up on it and sends
    // nothing more on that subscription until its next report is due, a minute later.
    await sleep(16_000);
    await world().device.goOnline();
    // matter.js found it gone and reconnects (the lock announces itself when it is back).
    await waitUntil(() => lock.bolt() === 'unlocked', 'the bolt after the lock came back', 15_000);
    events = [];
    await world().device.turnByHand('locked');
    // The event comes on the subscription (matter.js's own would have waited for the next
    // report due, a minute or more); the bolt may come first, from a liveness read.
    await waitUntil(
      () =>
        lock.bolt() === 'locked' && events.some((e) => e.type === 'manual' && e.bolt === 'locked'),
      'the hand turn on a new subscription',
    );
  }, 45_000);

  it('refuses a node id that is not in the fabric, and holds nothing', async () => {
    driver = new MatterLock({ id: 'front-door', fabric: world().fabric, nodeId: 77n, ...FAST });
    await expectDriverError(driver.start(), 'device.unavailable');
    expect(driver.available()).toBe(false);
    expect(driver.heldResources()).toBe(0);
  });

  it('refuses an endpoint without the Door Lock cluster', async () => {
    driver = new MatterLock({
      id: 'front-door',
      fabric: world().fabric,
      nodeId,
      endpoint: 0,
      ...FAST,
    });
    await expectDriverError(driver.start(), 'device.unsupported');
    expect(driver.heldResources()).toBe(0);
  });

  it('refuses to start when the fabric cannot be opened, and holds nothing', async () => {
    const broken = new MatterFabric({ storageDir: join(dir, 'other'), netInterface: 'nope0' });
    driver = new MatterLock({ id: 'front-door', fabric: broken, nodeId, ...FAST });
    await expectDriverError(driver.start(), 'device.unavailable');
    expect(driver.heldResources()).toBe(0);
    expect(broken.open).toBeNull();
  });

  it('takes only well-formed pairing codes', async () => {
    await expect(world().fabric.commission('1234-567')).rejects.toThrow(/11 or 21 digits/);
    await expect(world().fabric.commission('MT:')).rejects.toThrow();
  });

  it('maps every LockState onto a bolt', () => {
    expect(boltOfLockState(1)).toBe('locked');
    expect(boltOfLockState(2)).toBe('unlocked');
    expect(boltOfLockState(3)).toBe('unlocked');
    expect(boltOfLockState(0)).toBe('jammed');
    expect(boltOfLockState(null)).toBe('unknown');
    expect(boltOfLockState(undefined)).toBe('unknown');
  });
});

describe('driver: matter in a hub config', () => {
  const config = (options: string): string => `
controlPlane: { url: mqtt://127.0.0.1:1883 }
homeId: home-1
devices:
  - id: front-lock
    kind: lock
    secret: ${'a'.repeat(43)}
    driver: matter
    options: ${options}
`;
  const drivers = () => new Map([['matter', createMatterDriverFactory()]]);
  const problemsOf = (options: string): readonly string[] => {
    try {
      parseHubConfig(config(options), { baseDir: tmpdir(), drivers: drivers() });
      return [];
    } catch (err) {
      if (err instanceof HubConfigError) return err.problems;
      throw err;
    }
  };

  it('is a driver of the hub', () => {
    const parsed = parseHubConfig(config('{ nodeId: 3 }'), { baseDir: tmpdir() });
    expect(parsed.devices[0]).toMatchObject({ driver: 'matter', options: { nodeId: 3 } });
  });

  it('reads a paired lock with its fabric folder', () => {
    const parsed = parseHubConfig(
      config('{ nodeId: 1, storageDir: matter, netInterface: eth0, endpoint: 1 }'),
      { baseDir: tmpdir(), drivers: drivers() },
    );
    expect(parsed.devices[0]?.options).toMatchObject({ nodeId: 1, storageDir: 'matter' });
  });

  it('names the key of every mistake', () => {
    expect(problemsOf('{ nodeId: 0 }')).toEqual([
      expect.stringMatching(/^devices\[0\]\.options\.nodeId/),
    ]);
    expect(problemsOf('{ nodeId: "1" }').join()).toMatch(/nodeId/);
    expect(problemsOf('{ nodeId: 1, endpoint: 0 }').join()).toMatch(/endpoint/);
    expect(problemsOf('{ nodeId: 1, port: 70000 }').join()).toMatch(/port/);
    expect(problemsOf('{ nodeId: 1, pairingCode: 34970112332 }').join()).toMatch(/pairingCode/);
    expect(problemsOf('{ storageDir: matter }').join()).toMatch(/nodeId/);
  });

  it('shares one fabric, and refuses two devices that disagree about it', async () => {
    const factory = createMatterDriverFactory();
    const ctx = (id: string) => ({
      id,
      kind: 'lock' as const,
      clock: new FakeClock(0),
      logger: silentLogger,
      configDir: tmpdir(),
      doorPosition: null,
    });
    const a = factory.create(ctx('a'), { nodeId: 1 });
    const b = factory.create(ctx('b'), { nodeId: 2 });
    expect(a).toBeInstanceOf(MatterLock);
    expect((a as unknown as { fabric: unknown }).fabric).toBe(
      (b as unknown as { fabric: unknown }).fabric,
    );
    expect(() => factory.create(ctx('c'), { nodeId: 3, storageDir: 'elsewhere' })).toThrow(
      /same storageDir/,
    );
    // Nothing was opened: drivers open the fabric on start.
    await a.stop();
    await b.stop();
  });
});

describe('a hub that starts again', () => {
  it('finds the paired lock in the fabric folder, without pairing it again', async () => {
    const { fabric: shared } = world();
    // The test's own share is the last one: this closes the controller, as a hub's stop does.
    await shared.release();
    fabric = undefined;
    const again = new MatterFabric(shared.options);
    fabric = again;
    await again.acquire();
    const lock = new MatterLock({ id: 'front-door', fabric: again, nodeId, ...FAST });
    try {
      await lock.start();
      expect(lock.available()).toBe(true);
      expect(['locked', 'unlocked']).toContain(lock.bolt());
      await world().device.turnByHand('locked');
      await waitUntil(() => lock.bolt() === 'locked', 'the bolt after a restart');
      await lock.unlock();
      await waitUntil(() => lock.bolt() === 'unlocked', 'a command after a restart');
    } finally {
      await lock.stop();
    }
    expect(lock.heldResources()).toBe(0);
  });
});

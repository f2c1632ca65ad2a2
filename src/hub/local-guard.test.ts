import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { MemoryContact, MemoryLock } from './drivers/memory.ts';
import { DoorGuard, type RelockReason } from './local-guard.ts';

const SESSION = 'sess-1';

/** A door with a memory lock and contact on a fake clock, its guard, and what it recorded. */
async function door(opts: { hasCamera?: boolean; sensor?: boolean } = {}) {
  const clock = new FakeClock();
  const lock = new MemoryLock({ id: 'front-lock', clock, motorDelayMs: 300 });
  const contact = new MemoryContact({ id: 'front-door-sensor', clock });
  await lock.start();
  await contact.start();
  const recorded: { name: string; sessionId: string | null; why: string; at: number }[] = [];
  const relocks: RelockReason[][] = [];
  const disarmed: string[] = [];
  const guard = new DoorGuard({
    clock,
    lock,
    door: opts.sensor === false ? null : contact,
    hasCamera: opts.hasCamera ?? true,
    cutOffMs: 10_000,
    watchdog: { silenceMs: 1_250, freezeMs: 3_000 },
    actions: {
      record: (name, sessionId, why) => recorded.push({ name, sessionId, why, at: clock.now() }),
      relocked: (reasons) => relocks.push([...reasons]),
      disarmCamera: (id) => disarmed.push(id),
      warn: () => {},
    },
  });
  lock.on((e) => {
    if (e.type === 'state') guard.boltChanged(e.bolt);
  });
  contact.on((e) => {
    if (e.type === 'state') guard.doorChanged(e.position);
  });
  guard.linkChanged(true);
  /** The control plane's unlock: the bolt is drawn, then the guard hears of the deadline. */
  const unlock = (relockAfterMs: number | null, sessionId: string | null = SESSION) => {
    void lock.unlock();
    clock.advance(300);
    guard.unlocked(sessionId, relockAfterMs);
  };
  /** The hub's heartbeat from a frame: `digest` names the picture. */
  let seq = 0;
  const beat = (digest: string) =>
    guard.observed({
      sessionId: SESSION,
      seq: seq++,
      capturedAt: clock.now(),
      frameDigest: digest.padEnd(64, '0'),
      recording: true,
      macValid: true,
    });
  return { clock, lock, contact, guard, recorded, relocks, disarmed, unlock, beat };
}

describe('DoorGuard: the deadline', () => {
  it('relocks when the deadline passes with the door closed', async () => {
    const { clock, lock, guard, recorded, relocks, unlock } = await door();
    unlock(5_000);
    expect(guard.relockAt()).toBe(clock.now() + 5_000);
    clock.advance(4_999);
    expect(lock.bolt()).toBe('unlocked');
    clock.advance(1 + 300);
    expect(lock.bolt()).toBe('locked');
    expect(relocks).toEqual([['deadline']]);
    expect(recorded).toEqual([
      { name: 'hub.relocked', sessionId: SESSION, why: 'deadline', at: clock.now() },
    ]);
    expect(guard.relockAt()).toBeNull();
  });

  it('never throws the bolt into an open door: it waits until the door closes', async () => {
    const { clock, lock, contact, unlock, relocks } = await door();
    unlock(5_000);
    contact.open();
    clock.advance(60_000);
    expect(lock.bolt()).toBe('unlocked');
    expect(lock.commandCount()).toBe(1);
    contact.close();
    clock.advance(300);
    expect(lock.bolt()).toBe('locked');
    expect(relocks).toEqual([['deadline']]);
  });

  it('locks at once at the deadline when the door has no sensor', async () => {
    const { clock, lock, unlock } = await door({ sensor: false });
    unlock(2_000);
    clock.advance(2_300);
    expect(lock.bolt()).toBe('locked');
  });

  it('drops its deadline when the control plane locks, or the bolt is thrown by hand', async () => {
    const { clock, lock, guard, unlock, recorded } = await door();
    unlock(5_000);
    guard.lockCommanded();
    expect(guard.relockAt()).toBeNull();
    unlock(5_000);
    lock.turnByHand('locked');
    expect(guard.relockAt()).toBeNull();
    clock.advance(10_000);
    expect(lock.commandCount()).toBe(2);
    expect(recorded).toEqual([]);
  });

  it('tries again while the lock is unreachable, records the failure once, and gives up in time', async () => {
    const { clock, lock, unlock, recorded } = await door();
    unlock(1_000);
    lock.setAvailable(false);
    clock.advance(1_000);
    await Promise.resolve();
    clock.advance(2_000);
    await Promise.resolve();
    expect(recorded.map((r) => r.name)).toEqual(['hub.relock-failed']);
    expect(recorded[0]!.why).toMatch(/not reachable/);
    lock.setAvailable(true);
    clock.advance(2_000 + 300);
    expect(lock.bolt()).toBe('locked');
    expect(recorded.map((r) => r.name)).toEqual(['hub.relock-failed', 'hub.relocked']);
  });

  it('records a jam and tries again; gives up after its attempts', async () => {
    const clock = new FakeClock();
    const lock = new MemoryLock({ id: 'front-lock', clock, motorDelayMs: 100 });
    await lock.start();
    const recorded: string[] = [];
    const guard = new DoorGuard({
      clock,
      lock,
      door: null,
      hasCamera: false,
      cutOffMs: 10_000,
      maxAttempts: 3,
      actions: {
        record: (name, _s, why) => recorded.push(`${name}: ${why}`),
        relocked: () => {},
        disarmCamera: () => {},
        warn: () => {},
      },
    });
    lock.on((e) => {
      if (e.type === 'state') guard.boltChanged(e.bolt);
    });
    void lock.unlock();
    clock.advance(100);
    guard.unlocked(null, 1_000);
    lock.jam();
    clock.advance(1_100);
    expect(lock.bolt()).toBe('jammed');
    clock.advance(2_000);
    expect(lock.bolt()).toBe('locked');
    expect(recorded).toEqual(['hub.relock-failed: the bolt jammed', 'hub.relocked: deadline']);

    // A lock that stays away: three attempts, then the hub says it gave up.
    recorded.length = 0;
    void lock.unlock();
    clock.advance(100);
    guard.unlocked(null, 1_000);
    lock.setAvailable(false);
    for (let i = 0; i < 10; i++) {
      clock.advance(2_000);
      await Promise.resolve();
    }
    expect(recorded).toEqual([
      'hub.relock-failed: front-lock is not reachable',
      'hub.relock-failed: gave up after 3 attempts',
    ]);
    expect(guard.isSecuring()).toBe(false);
  });
});

describe("DoorGuard: the dead-man's switch", () => {
  it('does nothing while fresh pictures come', async () => {
    const { clock, guard, beat, recorded, unlock } = await door();
    guard.cameraArmed(SESSION);
    unlock(60_000);
    for (let i = 0; i < 20; i++) {
      beat(`a${i}`);
      clock.advance(500);
    }
    expect(guard.observation()).toBe('live');
    expect(recorded).toEqual([]);
  });

  it('raises the alarm when the camera goes silent, and locks once the door closes', async () => {
    const { clock, lock, contact, guard, beat, recorded, relocks, unlock } = await door();
    guard.cameraArmed(SESSION);
    unlock(60_000);
    contact.open();
    beat('a1');
    clock.advance(500);
    beat('a2');
    const lastBeat = clock.now();
    clock.advance(1_249);
    expect(recorded).toEqual([]);
    clock.advance(1);
    expect(guard.observation()).toBe('lost');
    expect(recorded).toEqual([
      {
        name: 'hub.dead-man',
        sessionId: SESSION,
        why: `observation lost since ${lastBeat}`,
        at: clock.now(),
      },
    ]);
    // The door is open: no bolt into it.
    clock.advance(5_000);
    expect(lock.bolt()).toBe('unlocked');
    contact.close();
    clock.advance(300);
    expect(lock.bolt()).toBe('locked');
    expect(relocks).toEqual([['dead-man']]);
    expect(guard.unlockRefusal(SESSION)).toMatch(/lost/);
    expect(guard.unlockRefusal('another-session')).toBeNull();
  });

  it('raises the alarm when the picture freezes', async () => {
    const { clock, lock, guard, beat, recorded, unlock } = await door();
    guard.cameraArmed(SESSION);
    unlock(60_000);
    beat('a1');
    for (let i = 0; i < 6; i++) {
      clock.advance(500);
      beat('a1');
    }
    expect(guard.observation()).toBe('frozen');
    expect(recorded.map((r) => r.name)).toEqual(['hub.dead-man']);
    expect(recorded[0]!.why).toMatch(/^observation frozen/);
    clock.advance(300);
    expect(lock.bolt()).toBe('locked');
  });

  it('stops watching when the camera is disarmed', async () => {
    const { clock, guard, beat, recorded } = await door();
    guard.cameraArmed(SESSION);
    beat('a1');
    guard.cameraDisarmed();
    clock.advance(10_000);
    expect(recorded).toEqual([]);
    expect(guard.sessionId()).toBeNull();
  });
});

describe('DoorGuard: cut off from the control plane', () => {
  it('ends a session safely when the link stays down for cutOffMs', async () => {
    const { clock, lock, contact, guard, beat, recorded, disarmed, unlock } = await door();
    guard.cameraArmed(SESSION);
    unlock(600_000);
    contact.open();
    guard.linkChanged(false);
    // Fresh pictures keep coming: only the link is gone.
    for (let i = 0; i < 20; i++) {
      beat(`b${i}`);
      clock.advance(500);
    }
    expect(recorded.map((r) => r.name)).toEqual(['hub.cut-off']);
    expect(disarmed).toEqual([SESSION]);
    expect(guard.sessionId()).toBeNull();
    expect(lock.bolt()).toBe('unlocked');
    contact.close();
    clock.advance(300);
    expect(lock.bolt()).toBe('locked');
    expect(recorded.map((r) => r.name)).toEqual(['hub.cut-off', 'hub.relocked']);
    expect(guard.unlockRefusal(SESSION)).not.toBeNull();
  });

  it('lets a short outage pass, and does nothing without a session', async () => {
    const { clock, guard, recorded, unlock } = await door();
    guard.linkChanged(false);
    clock.advance(30_000);
    guard.linkChanged(true);
    guard.cameraArmed(SESSION);
    unlock(600_000);
    guard.linkChanged(false);
    clock.advance(9_000);
    guard.linkChanged(true);
    clock.advance(30_000);
    expect(recorded).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { sign, verifyMac } from '../protocol/device-auth.ts';
import type { CommandMessage, LockStateMessage } from '../protocol/device-messages.ts';
import { MemoryLink } from './memory-link.ts';
import { SimDoorSensor } from './sim-door-sensor.ts';
import { SimLock, type SimLockOptions } from './sim-lock.ts';

const KEY = new Uint8Array(32).fill(3);
const DOOR_KEY = new Uint8Array(32).fill(4);

function setup(options: Partial<SimLockOptions> = {}, withDoor = false) {
  const clock = new FakeClock();
  const link = new MemoryLink({ homeId: 'home-1', deviceId: 'lock-1', deviceKey: KEY, clock });
  const doorLink = new MemoryLink({
    homeId: 'home-1',
    deviceId: 'door-1',
    deviceKey: DOOR_KEY,
    clock,
  });
  const door = new SimDoorSensor(doorLink, { clock });
  const lock = new SimLock(link, { clock, ...(withDoor ? { door } : {}), ...options });
  link.connect();
  doorLink.connect();
  const states = () => link.payloads('state') as LockStateMessage[];
  const lastState = () => states().at(-1);
  const events = () => link.payloads('event').map((e) => e.name);
  return { clock, link, lock, door, states, lastState, events };
}

describe('SimLock', () => {
  it('reports its state, signed, on connect', () => {
    const { link, lastState, clock } = setup();
    expect(lastState()).toMatchObject({
      kind: 'lock',
      bolt: 'locked',
      changedAt: clock.now(),
      autoRelockAt: null,
    });
    expect(verifyMac(KEY, link.topic('state'), lastState()!)).toBe(true);
    expect(link.payloads('availability')).toEqual([{ online: true }]);
  });

  it('unlocks after the motor delay, with its own relock deadline, and replies', async () => {
    const { clock, link, lock, lastState } = setup({ motorDelayMs: 300 });
    const t0 = clock.now();
    const replyPromise = link.deliver(
      link.command({ action: 'unlock', relockAfterMs: 10_000, sessionId: 'sess-1' }),
    );
    clock.advance(299);
    expect(lock.bolt()).toBe('locked');
    clock.advance(1);
    expect(lock.bolt()).toBe('unlocked');
    expect(lastState()).toMatchObject({
      bolt: 'unlocked',
      changedAt: t0 + 300,
      autoRelockAt: t0 + 300 + 10_000,
    });
    const reply = await replyPromise;
    expect(reply).toMatchObject({
      status: 'ok',
      data: { bolt: 'unlocked', autoRelockAt: t0 + 10_300 },
    });
    expect(verifyMac(KEY, link.topic('reply'), reply!)).toBe(true);
  });

  it('relocks by itself when its deadline passes and says so', async () => {
    const { clock, link, lock, lastState, events } = setup({ motorDelayMs: 300 });
    const reply = link.deliver(link.command({ action: 'unlock', relockAfterMs: 1_000 }));
    clock.advance(300);
    await reply;
    clock.advance(999);
    expect(lock.bolt()).toBe('unlocked');
    clock.advance(1 + 300);
    expect(lock.bolt()).toBe('locked');
    expect(lastState()).toMatchObject({ bolt: 'locked', autoRelockAt: null });
    expect(events()).toEqual(['lock.auto-relocked']);
  });

  it('uses autoRelockMs for an unlock that names no deadline', async () => {
    const { clock, link, lock } = setup({ motorDelayMs: 100, autoRelockMs: 5_000 });
    const reply = link.deliver(link.command({ action: 'unlock' }));
    clock.advance(100);
    expect((await reply)?.status).toBe('ok');
    expect(lock.autoRelockAt()).toBe(clock.now() + 5_000);
    clock.advance(5_100);
    expect(lock.bolt()).toBe('locked');
  });

  it('waits for the door to be closed before relocking', async () => {
    const { clock, link, lock, door, events } = setup({ motorDelayMs: 300 }, true);
    const reply = link.deliver(link.command({ action: 'unlock', relockAfterMs: 1_000 }));
    clock.advance(300);
    await reply;
    door.open();
    clock.advance(10_000);
    expect(lock.bolt()).toBe('unlocked');
    expect(lock.isWaitingForDoor()).toBe(true);
    door.close();
    expect(lock.bolt()).toBe('unlocked');
    clock.advance(300);
    expect(lock.bolt()).toBe('locked');
    expect(events()).toEqual(['lock.auto-relocked']);
  });

  it('a lock command cancels the pending auto-relock', async () => {
    const { clock, link, lock, events } = setup({ motorDelayMs: 100 });
    const unlock = link.deliver(link.command({ action: 'unlock', relockAfterMs: 1_000 }));
    clock.advance(100);
    await unlock;
    const lockReply = link.deliver(link.command({ action: 'lock' }));
    clock.advance(100);
    expect((await lockReply)?.status).toBe('ok');
    expect(lock.autoRelockAt()).toBeNull();
    clock.advance(5_000);
    expect(events()).toEqual([]);
    expect(clock.pending()).toBe(0);
  });

  it('jams on the next movement: state jammed, event, error reply', async () => {
    const { clock, link, lock, lastState, events } = setup({ motorDelayMs: 300 });
    lock.jam();
    const reply = link.deliver(link.command({ action: 'unlock', relockAfterMs: 1_000 }));
    clock.advance(300);
    expect(lock.bolt()).toBe('jammed');
    expect(lastState()).toMatchObject({ bolt: 'jammed', autoRelockAt: null });
    expect(events()).toEqual(['lock.jammed']);
    expect(await reply).toMatchObject({ status: 'error', error: { code: 'lock.jammed' } });
    lock.clearJam();
    expect(lock.bolt()).toBe('unknown');
    const again = link.deliver(link.command({ action: 'lock' }));
    clock.advance(300);
    expect(await again).toMatchObject({ status: 'ok', data: { bolt: 'locked' } });
  });

  it('jams an auto-relock too, and does not claim it relocked', async () => {
    const { clock, link, lock, events } = setup({ motorDelayMs: 100 });
    const reply = link.deliver(link.command({ action: 'unlock', relockAfterMs: 1_000 }));
    clock.advance(100);
    await reply;
    lock.jam();
    clock.advance(1_100);
    expect(lock.bolt()).toBe('jammed');
    expect(events()).toEqual(['lock.jammed']);
  });

  describe('never acts on a command that fails verification', () => {
    async function refused(
      build: (link: MemoryLink, clock: FakeClock) => CommandMessage | Uint8Array,
      code: string,
    ): Promise<void> {
      const { clock, link, lock, states } = setup({ motorDelayMs: 300 });
      const before = states().length;
      const reply = await link.deliver(build(link, clock));
      clock.advance(60_000);
      expect(lock.bolt()).toBe('locked');
      expect(states()).toHaveLength(before);
      expect(reply).toMatchObject({ status: 'error', error: { code } });
      expect(verifyMac(KEY, link.topic('reply'), reply!)).toBe(true);
      expect(link.stats().commands.refused).toMatchObject({ [code]: 1 });
    }

    it('bad MAC', async () => {
      await refused((link) => {
        // Re-signed with a key that is not the device's: `sign` replaces the mac.
        const genuine = link.command({ action: 'unlock' });
        return sign<CommandMessage>(new Uint8Array(32), link.topic('command'), genuine);
      }, 'command.bad-mac');
    });

    it('expired', async () => {
      await refused((link, clock) => {
        const now = clock.now();
        return link.command({
          action: 'unlock',
          issuedAt: now - 20 * 60_000,
          expiresAt: now - 10 * 60_000,
        });
      }, 'command.expired');
    });

    it('issued in the future', async () => {
      await refused((link, clock) => {
        const now = clock.now();
        return link.command({
          action: 'unlock',
          issuedAt: now + 10 * 60_000,
          expiresAt: now + 11 * 60_000,
        });
      }, 'command.expired');
    });

    it('schema-invalid with a readable id', async () => {
      await refused(
        () => Buffer.from(JSON.stringify({ id: 'cmd-invalid-1', action: 'unlock' })),
        'command.invalid',
      );
    });
  });

  it('refuses a replayed unlock after the lock relocked', async () => {
    const { clock, link, lock } = setup({ motorDelayMs: 100 });
    const unlock = link.command({ action: 'unlock', relockAfterMs: 1_000 });
    const first = link.deliver(unlock);
    clock.advance(100);
    expect((await first)?.status).toBe('ok');
    clock.advance(1_100);
    expect(lock.bolt()).toBe('locked');
    const replay = await link.deliver(unlock);
    clock.advance(1_000);
    expect(replay).toMatchObject({ status: 'error', error: { code: 'command.replayed' } });
    expect(lock.bolt()).toBe('locked');
  });

  it('gives no reply to garbage', async () => {
    const { link } = setup();
    expect(await link.deliver(Buffer.from('not json at all'))).toBeNull();
    expect(link.stats().commands.garbage).toBe(1);
  });

  it('keeps its deadline offline and tells the truth when it is back', async () => {
    const { clock, link, lock, lastState, events } = setup({ motorDelayMs: 100 });
    const reply = link.deliver(link.command({ action: 'unlock', relockAfterMs: 1_000 }));
    clock.advance(100);
    await reply;
    link.disconnect();
    const lockedAt = clock.now() + 1_000 + 100;
    clock.advance(5_000);
    expect(lock.bolt()).toBe('locked');
    expect(lastState()?.bolt).toBe('unlocked');
    expect(events()).toEqual([]);
    expect(link.stats().dropped.event).toBe(1);
    link.connect();
    expect(lastState()).toMatchObject({ bolt: 'locked', changedAt: lockedAt });
    expect(lastState()!.at).toBe(clock.now());
  });

  it('numbers its state reports in increasing order', async () => {
    const { clock, link, states } = setup({ motorDelayMs: 100 });
    const reply = link.deliver(link.command({ action: 'report' }));
    await reply;
    const unlock = link.deliver(link.command({ action: 'unlock' }));
    clock.advance(100);
    await unlock;
    const seqs = states().map((s) => s.seq);
    expect(seqs.length).toBe(3);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(3);
  });

  it('refuses camera actions as unsupported', async () => {
    const { link } = setup();
    const reply = await link.deliver(link.command({ action: 'arm', sessionId: 'sess-1' }));
    expect(reply).toMatchObject({ status: 'error', error: { code: 'command.unsupported' } });
  });
});

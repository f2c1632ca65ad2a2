import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { sign, verifyMac } from '../protocol/device-auth.ts';
import {
  decodePinList,
  MAX_MESSAGE_BYTES,
  MAX_PIN_SLOT,
  PIN_LIST_PAGE_SIZE,
  type CommandMessage,
  type LockStateMessage,
} from '../protocol/device-messages.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
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

describe('SimLock keypad and PIN slots', () => {
  const CODE = '482915';

  function pinLock(options: Partial<SimLockOptions> = {}) {
    const t = setup({ motorDelayMs: 300, autoRelockMs: 30_000, deviceKey: KEY, ...options });
    const keypadEvents = () => t.link.payloads('event').filter((e) => e.name.startsWith('keypad.'));
    const everything = () => JSON.stringify(t.link.messages());
    return { ...t, keypadEvents, everything };
  }

  it('stores a code with pin.set and lists it back as a digest, never as the code', async () => {
    const { link, lock, everything } = pinLock();
    const set = await link.deliver(
      link.command({ action: 'pin.set', slot: 4, code: CODE, name: 'Cleaner' }),
    );
    expect(set).toMatchObject({ status: 'ok', data: { slot: 4 } });
    expect(lock.pinSlots()).toEqual([4]);
    expect(lock.pinName(4)).toBe('Cleaner');
    const list = await link.deliver(link.command({ action: 'pin.list' }));
    expect(list).toMatchObject({
      status: 'ok',
      data: {
        capacity: 30,
        slots: [{ slot: 4, set: true, digest: pinDigest(KEY, 4, CODE) }],
        next: null,
      },
    });
    expect(decodePinList(list?.status === 'ok' ? list.data : null)).not.toBeNull();
    // The digest is bound to the slot and to the key: nothing to compare across slots or locks.
    expect(pinDigest(KEY, 5, CODE)).not.toBe(pinDigest(KEY, 4, CODE));
    expect(pinDigest(DOOR_KEY, 4, CODE)).not.toBe(pinDigest(KEY, 4, CODE));
    expect(everything()).not.toContain(CODE);
  });

  it('clears a slot with pin.clear', async () => {
    const { link, lock } = pinLock();
    await link.deliver(link.command({ action: 'pin.set', slot: 2, code: CODE }));
    const clear = await link.deliver(link.command({ action: 'pin.clear', slot: 2 }));
    expect(clear).toMatchObject({ status: 'ok', data: { slot: 2 } });
    expect(lock.pinSlots()).toEqual([]);
    expect(lock.enterCode(CODE).result).toBe('wrong-code');
  });

  it('refuses a write it cannot keep, without repeating the code in its answer', async () => {
    const { link, lock, everything } = pinLock({ pinCapacity: 10 });
    await link.deliver(link.command({ action: 'pin.set', slot: 1, code: CODE }));
    const cases = [
      [{ action: 'pin.set', slot: 11, code: '1234' }, 'slots 1 to 10'],
      [{ action: 'pin.set', slot: 2, code: CODE }, 'already used by another slot'],
      [{ action: 'pin.set', slot: 2 }, 'needs a slot and a code'],
      [{ action: 'pin.clear' }, 'needs a slot'],
      [{ action: 'pin.clear', slot: 11 }, 'slots 1 to 10'],
    ] as const;
    for (const [fields, message] of cases) {
      const reply = await link.deliver(link.command(fields));
      expect(reply).toMatchObject({ status: 'error', error: { code: 'command.invalid' } });
      expect(reply?.status === 'error' ? reply.error.message : '').toContain(message);
    }
    // Codes that are not 4 to 10 digits do not even pass the command schema.
    for (const code of ['123', '12345678901', '12a4']) {
      const bad = { ...link.command({ action: 'pin.set', slot: 3 }), code };
      const reply = await link.deliver(Buffer.from(JSON.stringify(bad)));
      expect(reply).toMatchObject({ status: 'error', error: { code: 'command.invalid' } });
      expect(reply?.status === 'error' ? reply.error.message : code).not.toContain(code);
    }
    expect(lock.pinSlots()).toEqual([1]);
    expect(everything()).not.toContain(CODE);
  });

  it('lists many slots in pages, each page within the message size limit', async () => {
    const { link, lock } = pinLock({ pinCapacity: MAX_PIN_SLOT });
    // The longest entries there can be: five-digit slots, windows with the largest times.
    const slots = Array.from({ length: 45 }, (_, i) => MAX_PIN_SLOT - 200 + i * 4);
    const window = { fromMs: 7_258_118_399_999, untilMs: 7_258_118_400_000 };
    for (const slot of slots) lock.setPinLocally(slot, String(100_000 + slot), 'x', window);
    const first = await link.deliver(link.command({ action: 'pin.list' }));
    const page1 = decodePinList(first?.status === 'ok' ? first.data : null);
    expect(page1?.slots.map((s) => s.slot)).toEqual(slots.slice(0, PIN_LIST_PAGE_SIZE));
    expect(page1?.next).toBe(slots[PIN_LIST_PAGE_SIZE]);
    expect(Buffer.byteLength(JSON.stringify(first))).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    const second = await link.deliver(link.command({ action: 'pin.list', slot: page1!.next! }));
    const page2 = decodePinList(second?.status === 'ok' ? second.data : null);
    expect(page2?.slots.map((s) => s.slot)).toEqual(slots.slice(PIN_LIST_PAGE_SIZE));
    expect(page2?.slots[0]).toMatchObject(window);
    expect(page2?.next).toBeNull();
  });

  it('cannot list digests without its device key', async () => {
    const clock = new FakeClock();
    const link = new MemoryLink({ homeId: 'home-1', deviceId: 'lock-1', deviceKey: KEY, clock });
    new SimLock(link, { clock });
    link.connect();
    const reply = await link.deliver(link.command({ action: 'pin.list' }));
    expect(reply).toMatchObject({ status: 'error', error: { code: 'command.failed' } });
  });

  it('can acknowledge writes without keeping them (dropPinWrites)', async () => {
    const { link, lock } = pinLock();
    lock.dropPinWrites(2);
    for (const slot of [1, 2, 3]) {
      const reply = await link.deliver(
        link.command({ action: 'pin.set', slot, code: `${slot}${slot}${slot}${slot}` }),
      );
      expect(reply).toMatchObject({ status: 'ok', data: { slot } });
    }
    // Two writes were swallowed: only the read-back tells.
    expect(lock.pinSlots()).toEqual([3]);
    lock.dropPinWrites('all');
    await link.deliver(link.command({ action: 'pin.set', slot: 4, code: '4444' }));
    await link.deliver(link.command({ action: 'pin.clear', slot: 3 }));
    expect(lock.pinSlots()).toEqual([3]);
    lock.dropPinWrites(0);
    await link.deliver(link.command({ action: 'pin.clear', slot: 3 }));
    expect(lock.pinSlots()).toEqual([]);
    expect(() => lock.dropPinWrites(-1)).toThrow(RangeError);
  });

  it('opens for a right code, names the slot, and relocks by itself', async () => {
    const { clock, link, lock, keypadEvents, lastState, everything } = pinLock();
    await link.deliver(link.command({ action: 'pin.set', slot: 7, code: CODE }));
    const t0 = clock.now();
    expect(lock.enterCode(CODE)).toEqual({ result: 'unlocked', slot: 7 });
    expect(keypadEvents()).toMatchObject([{ name: 'keypad.unlocked', slot: 7 }]);
    expect(verifyMac(KEY, link.topic('event'), keypadEvents()[0]!)).toBe(true);
    // The bolt is drawn by the motor; its state report follows.
    expect(lock.bolt()).toBe('locked');
    clock.advance(300);
    expect(lock.bolt()).toBe('unlocked');
    expect(lastState()).toMatchObject({ bolt: 'unlocked', autoRelockAt: t0 + 300 + 30_000 });
    clock.advance(30_000 + 300);
    expect(lock.bolt()).toBe('locked');
    expect(everything()).not.toContain(CODE);
  });

  it('locks the keypad out for 15 s after the third wrong code in a row, and says so once', async () => {
    const { clock, link, lock, keypadEvents, everything } = pinLock();
    await link.deliver(link.command({ action: 'pin.set', slot: 1, code: CODE }));
    const t0 = clock.now();
    expect(lock.enterCode('0000')).toEqual({
      result: 'wrong-code',
      attempt: 1,
      lockedOutUntil: null,
    });
    clock.advance(1_000);
    expect(lock.enterCode('1111')).toMatchObject({ result: 'wrong-code', attempt: 2 });
    clock.advance(1_000);
    const until = t0 + 2_000 + 15_000;
    expect(lock.enterCode('2222')).toEqual({
      result: 'wrong-code',
      attempt: 3,
      lockedOutUntil: until,
    });
    expect(lock.keypadLockedUntil()).toBe(until);
    // Even the right code is ignored now, and the lockout is not announced again.
    clock.advance(14_999);
    expect(lock.enterCode(CODE)).toEqual({ result: 'ignored', lockedOutUntil: until });
    expect(lock.enterCode('3333')).toEqual({ result: 'ignored', lockedOutUntil: until });
    clock.advance(300);
    expect(lock.bolt()).toBe('locked');
    expect(keypadEvents().map((e) => [e.name, e.attempt ?? e.untilMs ?? e.slot])).toEqual([
      ['keypad.wrong-code', 1],
      ['keypad.wrong-code', 2],
      ['keypad.wrong-code', 3],
      ['keypad.lockout', until],
    ]);
    // Once it ends, codes count again from the start.
    clock.advanceTo(until);
    expect(lock.keypadLockedUntil()).toBeNull();
    expect(lock.enterCode('4444')).toMatchObject({ result: 'wrong-code', attempt: 1 });
    expect(lock.enterCode(CODE)).toEqual({ result: 'unlocked', slot: 1 });
    clock.advance(300);
    expect(lock.bolt()).toBe('unlocked');
    expect(everything()).not.toContain(CODE);
  });

  it('starts counting wrong codes again after a right one', async () => {
    const { lock, keypadEvents } = pinLock();
    lock.setPinLocally(9, CODE);
    lock.enterCode('0000');
    lock.enterCode('0001');
    expect(lock.enterCode(CODE).result).toBe('unlocked');
    expect(lock.enterCode('0002')).toMatchObject({ result: 'wrong-code', attempt: 1 });
    expect(lock.enterCode('0003')).toMatchObject({ result: 'wrong-code', attempt: 2 });
    expect(lock.keypadLockedUntil()).toBeNull();
    expect(keypadEvents().some((e) => e.name === 'keypad.lockout')).toBe(false);
  });

  it('takes a longer lockout and other limits, but never a lockout under 15 s', () => {
    const { lock, clock } = pinLock({ keypadLockoutMs: 60_000, wrongCodeLimit: 5 });
    for (let i = 0; i < 4; i++) expect(lock.enterCode('9999').result).toBe('wrong-code');
    expect(lock.keypadLockedUntil()).toBeNull();
    expect(lock.enterCode('9999')).toMatchObject({ lockedOutUntil: clock.now() + 60_000 });
    expect(() => pinLock({ keypadLockoutMs: 14_999 })).toThrow(RangeError);
    expect(() => pinLock({ pinCapacity: 0 })).toThrow(RangeError);
    expect(() => pinLock({ wrongCodeLimit: 0 })).toThrow(RangeError);
  });

  it('takes a code only inside its window, by its own clock, and a right code outside looks wrong', async () => {
    const { clock, link, lock, keypadEvents, everything } = pinLock();
    const t0 = clock.now();
    const set = await link.deliver(
      link.command({
        action: 'pin.set',
        slot: 5,
        code: CODE,
        fromMs: t0 + 60_000,
        untilMs: t0 + 120_000,
      }),
    );
    expect(set).toMatchObject({ status: 'ok', data: { slot: 5 } });
    expect(lock.pinWindow(5)).toEqual({ fromMs: t0 + 60_000, untilMs: t0 + 120_000 });
    // Before the window: exactly what a wrong code gets, and it counts towards the lockout.
    const early = lock.enterCode(CODE);
    const wrong = lock.enterCode('0000');
    expect(early).toEqual({ result: 'wrong-code', attempt: 1, lockedOutUntil: null });
    expect(wrong).toEqual({ result: 'wrong-code', attempt: 2, lockedOutUntil: null });
    clock.advanceTo(t0 + 60_000);
    expect(lock.enterCode(CODE)).toEqual({ result: 'unlocked', slot: 5 });
    clock.advanceTo(t0 + 119_999);
    expect(lock.enterCode(CODE)).toEqual({ result: 'unlocked', slot: 5 });
    clock.advanceTo(t0 + 120_000);
    expect(lock.enterCode(CODE)).toEqual({
      result: 'wrong-code',
      attempt: 1,
      lockedOutUntil: null,
    });
    // Only the server learns which slot it was: the event names it, the keypad does not.
    expect(keypadEvents().map((e) => [e.name, e.slot ?? null, e.attempt ?? null])).toEqual([
      ['keypad.wrong-code', 5, 1],
      ['keypad.wrong-code', null, 2],
      ['keypad.unlocked', 5, null],
      ['keypad.unlocked', 5, null],
      ['keypad.wrong-code', 5, 1],
    ]);
    for (const e of keypadEvents()) expect(verifyMac(KEY, link.topic('event'), e)).toBe(true);
    expect(everything()).not.toContain(CODE);
  });

  it('locks the keypad out when codes outside their window are tried, as for wrong ones', () => {
    const { clock, lock, keypadEvents } = pinLock();
    lock.setPinLocally(2, CODE, 'Cleaner', { fromMs: 0, untilMs: 0 });
    lock.enterCode(CODE);
    lock.enterCode(CODE);
    expect(lock.enterCode(CODE)).toEqual({
      result: 'wrong-code',
      attempt: 3,
      lockedOutUntil: clock.now() + 15_000,
    });
    expect(keypadEvents().at(-1)).toMatchObject({ name: 'keypad.lockout' });
  });

  it('changes a window with pin.window without the code, lists it, and widens to all times', async () => {
    const { clock, link, lock, everything } = pinLock();
    const t0 = clock.now();
    await link.deliver(link.command({ action: 'pin.set', slot: 3, code: CODE, name: 'Gina' }));
    expect(lock.pinWindow(3)).toBeNull();
    const narrowed = await link.deliver(
      link.command({ action: 'pin.window', slot: 3, fromMs: 0, untilMs: t0 + 1_000 }),
    );
    expect(narrowed).toMatchObject({ status: 'ok', data: { slot: 3 } });
    const list = await link.deliver(link.command({ action: 'pin.list' }));
    const data = decodePinList(list?.status === 'ok' ? list.data : null);
    expect(data?.slots).toEqual([
      { slot: 3, set: true, digest: pinDigest(KEY, 3, CODE), fromMs: 0, untilMs: t0 + 1_000 },
    ]);
    // The code and its name stay; only the window changed.
    expect(lock.pinName(3)).toBe('Gina');
    expect(lock.enterCode(CODE).result).toBe('unlocked');
    clock.advance(1_000);
    expect(lock.enterCode(CODE).result).toBe('wrong-code');
    await link.deliver(link.command({ action: 'pin.window', slot: 3 }));
    expect(lock.pinWindow(3)).toBeNull();
    expect(lock.enterCode(CODE).result).toBe('unlocked');
    // A window write can be swallowed too.
    lock.dropPinWrites(1);
    await link.deliver(link.command({ action: 'pin.window', slot: 3, fromMs: 0, untilMs: 0 }));
    expect(lock.pinWindow(3)).toBeNull();
    expect(everything()).not.toContain(CODE);
  });

  it('refuses a window it cannot keep: half a window, an end before the start, an empty slot', async () => {
    const { clock, link, lock } = pinLock({ pinCapacity: 10 });
    const t0 = clock.now();
    await link.deliver(link.command({ action: 'pin.set', slot: 1, code: CODE }));
    const cases = [
      [{ action: 'pin.set', slot: 2, code: '1234', fromMs: t0 }, 'both fromMs and untilMs'],
      [{ action: 'pin.set', slot: 2, code: '1234', untilMs: t0 }, 'both fromMs and untilMs'],
      [
        { action: 'pin.set', slot: 2, code: '1234', fromMs: t0, untilMs: t0 - 1 },
        'end before it starts',
      ],
      [{ action: 'pin.window', slot: 1, fromMs: t0 }, 'both fromMs and untilMs'],
      [{ action: 'pin.window', slot: 1, fromMs: 5, untilMs: 4 }, 'end before it starts'],
      [{ action: 'pin.window', slot: 4, fromMs: 0, untilMs: 0 }, 'slot 4 is empty'],
      [{ action: 'pin.window', slot: 11 }, 'slots 1 to 10'],
      [{ action: 'pin.window' }, 'needs a slot'],
    ] as const;
    for (const [fields, message] of cases) {
      const reply = await link.deliver(link.command(fields));
      expect(reply).toMatchObject({ status: 'error', error: { code: 'command.invalid' } });
      expect(reply?.status === 'error' ? reply.error.message : '').toContain(message);
    }
    // Negative times do not pass the command schema.
    const negative = { ...link.command({ action: 'pin.window', slot: 1, untilMs: 5 }), fromMs: -1 };
    expect(await link.deliver(Buffer.from(JSON.stringify(negative)))).toMatchObject({
      status: 'error',
      error: { code: 'command.invalid' },
    });
    expect(lock.pinSlots()).toEqual([1]);
    expect(lock.pinWindow(1)).toBeNull();
    expect(lock.pinWindow(4)).toBeUndefined();
    expect(() => lock.setPinLocally(2, '2222', undefined, { fromMs: 2, untilMs: 1 })).toThrow(
      RangeError,
    );
  });

  it('keeps codes set by hand, and refuses bad ones', async () => {
    const { link, lock } = pinLock();
    lock.setPinLocally(12, '7777');
    const list = await link.deliver(link.command({ action: 'pin.list' }));
    expect(list).toMatchObject({
      status: 'ok',
      data: { slots: [{ slot: 12, digest: pinDigest(KEY, 12, '7777') }] },
    });
    expect(() => lock.setPinLocally(31, '1234')).toThrow(RangeError);
    expect(() => lock.setPinLocally(1, '12')).toThrow(RangeError);
    expect(() => lock.setPinLocally(2, '7777')).toThrow(/another slot/);
    lock.clearPinLocally(12);
    expect(lock.pinSlots()).toEqual([]);
  });
});

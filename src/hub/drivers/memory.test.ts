import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../core/clock.ts';
import { DriverError, type CameraDriverEvent, type LockDriverEvent } from './driver.ts';
import { MemoryCamera, MemoryContact, MemoryLock } from './memory.ts';

function lockWithLog(options: Partial<ConstructorParameters<typeof MemoryLock>[0]> = {}) {
  const clock = new FakeClock();
  const lock = new MemoryLock({ id: 'front-lock', clock, motorDelayMs: 300, ...options });
  const events: LockDriverEvent[] = [];
  lock.on((e) => events.push(e));
  return { clock, lock, events };
}

describe('MemoryLock', () => {
  it('is unknown until started, then reports its bolt', async () => {
    const { lock, events } = lockWithLog();
    expect(lock.bolt()).toBe('unknown');
    expect(lock.available()).toBe(false);
    await lock.start();
    expect(lock.bolt()).toBe('locked');
    expect(events).toEqual([{ type: 'state', bolt: 'locked', at: expect.any(Number) as number }]);
  });

  it('accepts a command at once and reports the bolt only after the motor moved it', async () => {
    const { clock, lock, events } = lockWithLog();
    await lock.start();
    events.length = 0;
    await lock.unlock();
    expect(lock.bolt()).toBe('locked');
    clock.advance(299);
    expect(events).toEqual([]);
    clock.advance(1);
    expect(lock.bolt()).toBe('unlocked');
    expect(events).toEqual([{ type: 'state', bolt: 'unlocked', at: clock.now() }]);
  });

  it('ends a movement jammed when told to, and a freed bolt is unknown', async () => {
    const { clock, lock, events } = lockWithLog();
    await lock.start();
    lock.jam();
    await lock.unlock();
    clock.advance(300);
    expect(lock.bolt()).toBe('jammed');
    lock.clearJam();
    expect(lock.bolt()).toBe('unknown');
    expect(events.map((e) => (e.type === 'state' ? e.bolt : e.type))).toEqual([
      'locked',
      'jammed',
      'unknown',
    ]);
  });

  it('reports a hand on the thumb-turn as manual, then as state', async () => {
    const { lock, events } = lockWithLog();
    await lock.start();
    events.length = 0;
    lock.turnByHand('unlocked');
    expect(events.map((e) => e.type)).toEqual(['manual', 'state']);
    expect(lock.bolt()).toBe('unlocked');
  });

  it('refuses commands while unavailable and reports its bolt as unknown meanwhile', async () => {
    const { clock, lock, events } = lockWithLog();
    await lock.start();
    events.length = 0;
    lock.setAvailable(false);
    expect(lock.bolt()).toBe('unknown');
    await expect(lock.unlock()).rejects.toMatchObject({ code: 'device.unavailable' });
    await expect(lock.pins!.set(1, '1234')).rejects.toBeInstanceOf(DriverError);
    lock.turnByHand('unlocked');
    lock.setAvailable(true);
    clock.advance(1000);
    expect(events).toEqual([
      { type: 'availability', available: false, at: clock.now() - 1000 },
      { type: 'state', bolt: 'unknown', at: clock.now() - 1000 },
      { type: 'availability', available: true, at: clock.now() - 1000 },
      { type: 'state', bolt: 'unlocked', at: clock.now() - 1000 },
    ]);
  });

  it('keeps codes, refuses duplicates and bad slots, and opens from the keypad', async () => {
    const { clock, lock, events } = lockWithLog();
    await lock.start();
    const pins = lock.pins!;
    expect(pins.capacity()).toBe(30);
    await pins.set(3, '482915');
    await expect(pins.set(4, '482915')).rejects.toMatchObject({ code: 'device.refused' });
    await expect(pins.set(31, '1111')).rejects.toMatchObject({ code: 'device.refused' });
    await expect(pins.set(5, '12')).rejects.toMatchObject({ code: 'device.refused' });
    expect(await pins.occupied()).toEqual([3]);
    events.length = 0;
    lock.keypadUnlock(3);
    clock.advance(300);
    expect(events.map((e) => e.type)).toEqual(['keypad-unlocked', 'state']);
    expect(events[0]).toMatchObject({ slot: 3 });
    expect(lock.bolt()).toBe('unlocked');
    await pins.clear(3);
    expect(await pins.occupied()).toEqual([]);
    expect(() => lock.keypadUnlock(3)).toThrow(RangeError);
  });

  it('locks its keypad out after three wrong codes in a row', async () => {
    const { clock, lock, events } = lockWithLog();
    await lock.start();
    await lock.pins!.set(1, '9999');
    events.length = 0;
    expect(lock.enterCode('0000')).toBe('wrong-code');
    expect(lock.enterCode('0001')).toBe('wrong-code');
    expect(lock.enterCode('0002')).toBe('locked-out');
    expect(lock.enterCode('9999')).toBe('ignored');
    expect(events.map((e) => e.type)).toEqual([
      'keypad-wrong-code',
      'keypad-wrong-code',
      'keypad-wrong-code',
      'keypad-lockout',
    ]);
    clock.advance(15_000);
    expect(lock.enterCode('9999')).toBe('unlocked');
  });

  it('has no keypad when pinCapacity is null', () => {
    expect(new MemoryLock({ id: 'l', clock: new FakeClock(), pinCapacity: null }).pins).toBeNull();
  });

  it('emits nothing after stop, and a throwing listener does not stop the others', async () => {
    const errors: unknown[] = [];
    const clock = new FakeClock();
    const lock = new MemoryLock({ id: 'l', clock, onListenerError: (e) => errors.push(e) });
    const seen: string[] = [];
    lock.on(() => {
      throw new Error('boom');
    });
    lock.on((e) => seen.push(e.type));
    await lock.start();
    expect(seen).toEqual(['state']);
    expect(errors).toHaveLength(1);
    await lock.unlock();
    await lock.stop();
    clock.advance(10_000);
    expect(seen).toEqual(['state']);
    expect(clock.pending()).toBe(0);
  });
});

describe('MemoryContact', () => {
  it('reports open and close, and unknown while unavailable', async () => {
    const clock = new FakeClock();
    const door = new MemoryContact({ id: 'front-door-sensor', clock });
    const seen: string[] = [];
    door.on((e) => seen.push(e.type === 'state' ? e.position : `available:${e.available}`));
    expect(door.position()).toBe('unknown');
    await door.start();
    door.open();
    door.open();
    door.close();
    door.setAvailable(false);
    expect(door.position()).toBe('unknown');
    door.open();
    door.setAvailable(true);
    expect(seen).toEqual([
      'closed',
      'open',
      'closed',
      'available:false',
      'unknown',
      'available:true',
      'open',
    ]);
  });
});

describe('MemoryCamera', () => {
  async function camera() {
    const clock = new FakeClock();
    const cam = new MemoryCamera({
      id: 'front-camera',
      clock,
      frameIntervalMs: 500,
      stallMs: 1500,
    });
    const events: CameraDriverEvent[] = [];
    cam.on((e) => events.push(e));
    await cam.start();
    return { clock, cam, events };
  }

  it('sends a new picture every interval while live, each a real JPEG with its digest', async () => {
    const { clock, cam, events } = await camera();
    clock.advance(1000);
    const frames = events.flatMap((e) => (e.type === 'frame' ? [e.frame] : []));
    expect(frames).toHaveLength(3);
    expect(new Set(frames.map((f) => f.digest)).size).toBe(3);
    expect(frames[0]!.jpeg.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    expect(cam.latest()).toBe(frames[2]);
  });

  it('repeats one picture when still, and reports a stall once when the stream stops', async () => {
    const { clock, cam, events } = await camera();
    cam.setMode('still');
    events.length = 0;
    clock.advance(1000);
    const digests = events.flatMap((e) => (e.type === 'frame' ? [e.frame.digest] : []));
    expect(digests).toHaveLength(2);
    expect(new Set(digests).size).toBe(1);
    cam.setMode('stalled');
    events.length = 0;
    clock.advance(5000);
    expect(events.map((e) => e.type)).toEqual(['stalled']);
    expect(events[0]).toMatchObject({ sinceMs: clock.now() - 5000 });
    cam.setMode('live');
    clock.advance(500);
    expect(events.map((e) => e.type)).toEqual(['stalled', 'frame']);
  });

  it('has no frame while unavailable, and stops every timer on stop', async () => {
    const { clock, cam, events } = await camera();
    cam.setAvailable(false);
    expect(cam.latest()).toBeNull();
    events.length = 0;
    clock.advance(2000);
    expect(events).toEqual([]);
    await cam.stop();
    expect(clock.pending()).toBe(0);
  });
});

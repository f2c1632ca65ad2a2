/**
 * The contract every {@link LockDriver} keeps (the rules at the top of
 * `src/hub/drivers/driver.ts`), as one suite to run against each driver with a harness that
 * gives the driver plus the device's side of the world (a hand on the thumb-turn, a jam, a
 * radio that goes away, a keypad).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LockDriver, LockDriverEvent } from '../../src/hub/drivers/driver.ts';
import { expectDriverError, sleep, waitUntil } from './contract-helpers.ts';

/** The device's side of a lock, as a test drives it. */
export interface LockDeviceSide {
  /** The bolt as the device itself has it (its truth, not the driver's view). */
  bolt(): 'locked' | 'unlocked' | 'jammed';
  /** Someone turns the key or thumb-turn; the device reports it as it does. */
  turnByHand(bolt: 'locked' | 'unlocked'): Promise<void>;
  /** The next movement stops part-way (the device reports a jam). */
  jamNextMove(): void;
  /** Commands are taken but the bolt does not move until {@link releaseMovements}. */
  holdMovements(): void;
  releaseMovements(): void;
  /** The device stops answering (its bridge says so). */
  goOffline(): Promise<void>;
  goOnline(): Promise<void>;
  /** A right code for `slot` is entered at the keypad. */
  keypadUnlock(slot: number): Promise<void>;
}

/** How to build the world for one test. */
export interface LockHarnessOptions {
  /** The bolt at start. Default 'locked'. */
  readonly bolt?: 'locked' | 'unlocked';
  /** Whether the device is reachable when the driver starts. Default true. */
  readonly online?: boolean;
}

/** A driver (not started) and its device. */
export interface LockHarness {
  readonly driver: LockDriver;
  readonly device: LockDeviceSide;
  /** Whether the device tells a hand turn from a remote one (then a 'manual' event is due). */
  readonly reportsManual: boolean;
  /**
   * Connections (sockets, child processes) the driver holds now: 0 after stop(), and more
   * than 0 once started when {@link holdsConnections}.
   */
  heldResources(): number;
  /** Whether the driver connects to something (false for an in-memory driver). */
  readonly holdsConnections: boolean;
  /** Tears down the device's side. */
  close(): Promise<void>;
}

/** Registers the lock driver contract for `name`; `makeHarness` is called once per test. */
export function describeLockDriverContract(
  name: string,
  makeHarness: (options: LockHarnessOptions) => Promise<LockHarness>,
): void {
  describe(`LockDriver contract: ${name}`, () => {
    let harness: LockHarness | undefined;
    let events: LockDriverEvent[] = [];

    /** A harness whose driver records its events from the start. */
    async function given(options: LockHarnessOptions = {}): Promise<LockHarness> {
      harness = await makeHarness(options);
      events = [];
      harness.driver.on((e) => events.push(e));
      return harness;
    }

    const types = (): string[] => events.map((e) => e.type);
    const states = (): string[] => events.flatMap((e) => (e.type === 'state' ? [e.bolt] : []));

    afterEach(async () => {
      await harness?.driver.stop();
      await harness?.close();
      harness = undefined;
    });

    it('knows the bolt and availability once started', async () => {
      const { driver } = await given({ bolt: 'locked' });
      expect(driver.kind).toBe('lock');
      expect(driver.bolt()).toBe('unknown');
      await driver.start();
      expect(driver.available()).toBe(true);
      expect(driver.bolt()).toBe('locked');
      // The bolt it knows was reported (whether start() also says "available" is up to it).
      expect(events).toContainEqual(expect.objectContaining({ type: 'state', bolt: 'locked' }));
    });

    it('knows an unlocked bolt too', async () => {
      const { driver } = await given({ bolt: 'unlocked' });
      await driver.start();
      expect(driver.bolt()).toBe('unlocked');
    });

    it('starts unknown and unavailable when the device is away, whatever it said before', async () => {
      const { driver, device } = await given({ online: false });
      await driver.start();
      expect(driver.available()).toBe(false);
      expect(driver.bolt()).toBe('unknown');
      expect(states()).not.toContain('locked');

      await device.goOnline();
      await waitUntil(() => driver.bolt() === 'locked', 'the bolt after the device came back');
      expect(driver.available()).toBe(true);
    });

    it('is unknown, never the last value, while the device is away, and refuses commands', async () => {
      const { driver, device } = await given({ bolt: 'locked' });
      await driver.start();
      events = [];

      await device.goOffline();
      await waitUntil(() => !driver.available(), 'availability false');
      expect(driver.bolt()).toBe('unknown');
      // Availability first, then the state it makes unknown.
      expect(events.map((e) => e.type)).toEqual(['availability', 'state']);
      expect(events[0]).toMatchObject({ type: 'availability', available: false });
      expect(events[1]).toMatchObject({ type: 'state', bolt: 'unknown' });

      await expectDriverError(driver.unlock(), 'device.unavailable');
      await expectDriverError(driver.lock(), 'device.unavailable');
      await sleep(200);
      expect(device.bolt()).toBe('locked');

      // Someone turns the bolt while the lock is away: on its return, the truth, never the
      // value from before.
      await device.turnByHand('unlocked');
      await sleep(100);
      expect(driver.bolt()).toBe('unknown');
      events = [];
      await device.goOnline();
      await waitUntil(() => driver.bolt() === 'unlocked', 'the bolt after the device came back');
      expect(driver.available()).toBe(true);
      expect(events[0]).toMatchObject({ type: 'availability', available: true });
      expect(states()).toEqual(['unlocked']);
    });

    it('resolves a command when it is taken and reports the bolt only from the device', async () => {
      const { driver, device } = await given({ bolt: 'locked' });
      await driver.start();
      events = [];

      device.holdMovements();
      await driver.unlock();
      await sleep(200);
      // Taken, not done: the lock has not said it moved.
      expect(device.bolt()).toBe('locked');
      expect(driver.bolt()).toBe('locked');
      expect(states()).toEqual([]);

      device.releaseMovements();
      await waitUntil(() => driver.bolt() === 'unlocked', 'the unlocked report');
      expect(device.bolt()).toBe('unlocked');
      expect(states()).toEqual(['unlocked']);
      const report = events.find((e) => e.type === 'state');
      expect(typeof report?.at).toBe('number');

      await driver.lock();
      await waitUntil(() => driver.bolt() === 'locked', 'the locked report');
      expect(states()).toEqual(['unlocked', 'locked']);
    });

    it('reports a jammed bolt', async () => {
      const { driver, device } = await given({ bolt: 'unlocked' });
      await driver.start();
      device.jamNextMove();
      await driver.lock();
      await waitUntil(() => driver.bolt() === 'jammed', 'the jam');
      expect(device.bolt()).toBe('jammed');
      expect(states()).toContain('jammed');
    });

    it('reports a turn by hand', async () => {
      const h = await given({ bolt: 'locked' });
      await h.driver.start();
      events = [];
      await h.device.turnByHand('unlocked');
      await waitUntil(() => h.driver.bolt() === 'unlocked', 'the hand turn');
      expect(states()).toEqual(['unlocked']);
      if (h.reportsManual) {
        expect(events).toContainEqual(
          expect.objectContaining({ type: 'manual', bolt: 'unlocked' }),
        );
      }
    });

    it('reports a keypad unlock with its slot', async () => {
      const { driver, device } = await given({ bolt: 'locked' });
      await driver.start();
      events = [];
      await device.keypadUnlock(3);
      await waitUntil(() => driver.bolt() === 'unlocked', 'the bolt drawn by the keypad');
      expect(events).toContainEqual(expect.objectContaining({ type: 'keypad-unlocked', slot: 3 }));
      expect(types().filter((t) => t === 'keypad-unlocked')).toHaveLength(1);
    });

    it('calls every listener even when one throws, and stops calling one that left', async () => {
      const { driver, device } = await given({ bolt: 'locked' });
      const seen: string[] = [];
      driver.on(() => {
        throw new Error('a broken listener');
      });
      const leave = driver.on((e) => seen.push(`b:${e.type}`));
      await driver.start();
      expect(seen).toContain('b:state');
      leave();
      const before = seen.length;
      await device.turnByHand('unlocked');
      await waitUntil(() => driver.bolt() === 'unlocked', 'the hand turn');
      expect(seen).toHaveLength(before);
      // The recording listener, registered first, still heard it.
      expect(states()).toContain('unlocked');
    });

    describe('keypad codes', () => {
      it('sets, clears and lists codes as the device reports them', async () => {
        const { driver } = await given();
        await driver.start();
        const pins = driver.pins;
        expect(pins).not.toBeNull();
        if (!pins) return;
        expect(pins.capacity()).toBeGreaterThanOrEqual(3);
        expect(await pins.occupied()).toEqual([]);
        await pins.set(1, '1234');
        await pins.set(3, '98765432');
        expect(await pins.occupied()).toEqual([1, 3]);
        await pins.clear(1);
        expect(await pins.occupied()).toEqual([3]);
        await pins.set(pins.capacity(), '4321');
        expect(await pins.occupied()).toEqual([3, pins.capacity()]);
      });

      it('refuses slots the device does not have and malformed codes, changing nothing', async () => {
        const { driver } = await given();
        await driver.start();
        const pins = driver.pins;
        if (!pins) throw new Error('this contract expects a lock with a keypad');
        await pins.set(2, '2222');
        for (const slot of [0, -1, 1.5, pins.capacity() + 1]) {
          await expectDriverError(pins.set(slot, '1234'), 'device.refused');
          await expectDriverError(pins.clear(slot), 'device.refused');
        }
        for (const code of ['12', '12a4', '', '12345678901', ' 1234']) {
          await expectDriverError(pins.set(1, code), 'device.refused');
        }
        expect(await pins.occupied()).toEqual([2]);
      });

      it('refuses code changes while the device is away', async () => {
        const { driver, device } = await given();
        await driver.start();
        const pins = driver.pins;
        if (!pins) throw new Error('this contract expects a lock with a keypad');
        await device.goOffline();
        await waitUntil(() => !driver.available(), 'availability false');
        await expectDriverError(pins.set(1, '1234'), 'device.unavailable');
        await expectDriverError(pins.clear(1), 'device.unavailable');
        await expectDriverError(pins.occupied(), 'device.unavailable');
        await device.goOnline();
        await waitUntil(() => driver.available(), 'availability true');
        expect(await pins.occupied()).toEqual([]);
      });
    });

    it('stop() releases everything, is idempotent, and nothing is emitted after it', async () => {
      const { driver, device } = await given({ bolt: 'locked' });
      await driver.start();
      if (harness?.holdsConnections) expect(harness.heldResources()).toBeGreaterThan(0);
      await driver.stop();
      await driver.stop();
      expect(driver.available()).toBe(false);
      expect(driver.bolt()).toBe('unknown');
      events = [];
      // Neither the listener registered before stop() nor one registered after may hear a thing.
      driver.on((e) => events.push(e));
      await device.turnByHand('unlocked');
      await device.goOffline();
      await sleep(300);
      expect(events).toEqual([]);
      await expectDriverError(driver.unlock(), 'device.unavailable');
      await waitUntil(() => harness?.heldResources() === 0, 'the driver to hold nothing', 3000);
    });
  });
}

/**
 * The contract every {@link ContactDriver} keeps (the rules at the top of
 * `src/hub/drivers/driver.ts`), as one suite to run against each driver with a harness that
 * gives the driver plus the door's side of the world.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ContactDriver, ContactDriverEvent } from '../../src/hub/drivers/driver.ts';
import { sleep, waitUntil } from './contract-helpers.ts';

/** The sensor's side, as a test drives it. */
export interface ContactDeviceSide {
  /** The door opens; the sensor reports it. */
  open(): Promise<void>;
  /** The door closes; the sensor reports it. */
  close(): Promise<void>;
  /** The sensor stops answering (its bridge says so). */
  goOffline(): Promise<void>;
  goOnline(): Promise<void>;
}

/** How to build the world for one test. */
export interface ContactHarnessOptions {
  /** The door at start. Default closed. */
  readonly closed?: boolean;
  /** Whether the sensor is reachable when the driver starts. Default true. */
  readonly online?: boolean;
}

/** A driver (not started) and its sensor. */
export interface ContactHarness {
  readonly driver: ContactDriver;
  readonly device: ContactDeviceSide;
  /**
   * Connections (sockets, child processes) the driver holds now: 0 after stop(), and more
   * than 0 once started when {@link holdsConnections}.
   */
  heldResources(): number;
  /** Whether the driver connects to something (false for an in-memory driver). */
  readonly holdsConnections: boolean;
  /** Tears down the sensor's side. */
  close(): Promise<void>;
}

/** Registers the contact driver contract for `name`; `makeHarness` is called once per test. */
export function describeContactDriverContract(
  name: string,
  makeHarness: (options: ContactHarnessOptions) => Promise<ContactHarness>,
): void {
  describe(`ContactDriver contract: ${name}`, () => {
    let harness: ContactHarness | undefined;
    let events: ContactDriverEvent[] = [];

    async function given(options: ContactHarnessOptions = {}): Promise<ContactHarness> {
      harness = await makeHarness(options);
      events = [];
      harness.driver.on((e) => events.push(e));
      return harness;
    }

    const positions = (): string[] =>
      events.flatMap((e) => (e.type === 'state' ? [e.position] : []));

    afterEach(async () => {
      await harness?.driver.stop();
      await harness?.close();
      harness = undefined;
    });

    it('knows a closed door once started', async () => {
      const { driver } = await given({ closed: true });
      expect(driver.kind).toBe('door-sensor');
      expect(driver.position()).toBe('unknown');
      await driver.start();
      expect(driver.available()).toBe(true);
      expect(driver.position()).toBe('closed');
      expect(events).toContainEqual(expect.objectContaining({ type: 'state', position: 'closed' }));
    });

    it('knows an open door once started', async () => {
      const { driver } = await given({ closed: false });
      await driver.start();
      expect(driver.position()).toBe('open');
    });

    it('reports the door opening and closing, in order', async () => {
      const { driver, device } = await given({ closed: true });
      await driver.start();
      events = [];
      await device.open();
      await waitUntil(() => driver.position() === 'open', 'the door open');
      await device.close();
      await waitUntil(() => driver.position() === 'closed', 'the door closed');
      await device.open();
      await waitUntil(() => driver.position() === 'open', 'the door open again');
      expect(positions()).toEqual(['open', 'closed', 'open']);
      for (const e of events) expect(typeof e.at).toBe('number');
    });

    it('starts unknown and unavailable when the sensor is away, whatever it said before', async () => {
      const { driver, device } = await given({ online: false, closed: true });
      await driver.start();
      expect(driver.available()).toBe(false);
      expect(driver.position()).toBe('unknown');
      // The door opens before the sensor is back: the old "closed" must never come out.
      await device.open();
      await device.goOnline();
      await waitUntil(() => driver.available(), 'availability true');
      await waitUntil(() => driver.position() === 'open', 'the door open');
      expect(positions()).not.toContain('closed');
    });

    it('is unknown, never the last value, while the sensor is away', async () => {
      const { driver, device } = await given({ closed: true });
      await driver.start();
      events = [];
      await device.goOffline();
      await waitUntil(() => !driver.available(), 'availability false');
      expect(driver.position()).toBe('unknown');
      expect(events.map((e) => e.type)).toEqual(['availability', 'state']);
      expect(events[1]).toMatchObject({ type: 'state', position: 'unknown' });

      // The door opens while the sensor is away: on its return, the truth or nothing, never
      // the value from before.
      await device.open();
      await sleep(100);
      expect(driver.position()).toBe('unknown');
      events = [];
      await device.goOnline();
      await waitUntil(() => driver.available(), 'availability true');
      await sleep(100);
      expect(['unknown', 'open']).toContain(driver.position());
      expect(events[0]).toMatchObject({ type: 'availability', available: true });
      expect(positions().filter((p) => p !== 'open')).toEqual([]);
      await device.close();
      await waitUntil(() => driver.position() === 'closed', 'the report after coming back');
    });

    it('calls every listener even when one throws, and stops calling one that left', async () => {
      const { driver, device } = await given({ closed: true });
      driver.on(() => {
        throw new Error('a broken listener');
      });
      const seen: string[] = [];
      const leave = driver.on((e) => seen.push(e.type));
      await driver.start();
      expect(seen).toContain('state');
      leave();
      const before = seen.length;
      await device.open();
      await waitUntil(() => driver.position() === 'open', 'the door open');
      expect(seen).toHaveLength(before);
      expect(positions()).toContain('open');
    });

    it('stop() releases everything, is idempotent, and nothing is emitted after it', async () => {
      const { driver, device } = await given({ closed: true });
      await driver.start();
      if (harness?.holdsConnections) expect(harness.heldResources()).toBeGreaterThan(0);
      await driver.stop();
      await driver.stop();
      expect(driver.available()).toBe(false);
      expect(driver.position()).toBe('unknown');
      events = [];
      driver.on((e) => events.push(e));
      await device.open();
      await device.goOffline();
      await sleep(300);
      expect(events).toEqual([]);
      await waitUntil(() => harness?.heldResources() === 0, 'the driver to hold nothing', 3000);
    });
  });
}

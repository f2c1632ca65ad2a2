/**
 * The Zigbee2MQTT lock and contact drivers against an emulated Zigbee2MQTT (Yale YRD226HA2619,
 * Kwikset 66492-001, Aqara MCCGQ11LM payloads) on a real Mosquitto on 127.0.0.1: the shared
 * driver contracts, then what is particular to Zigbee2MQTT's MQTT API.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LockDriverEvent } from '../../src/hub/drivers/driver.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Compile } from 'typebox/compile';
import { FakeClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/devices/device-connection.ts';
import {
  Zigbee2MqttContact,
  Zigbee2MqttLock,
  zigbee2mqttDriverFactory,
  type Zigbee2MqttLockOptions,
} from '../../src/hub/drivers/zigbee2mqtt.ts';
import {
  Zigbee2MqttEmulator,
  type EmulatedLock,
  type EmulatedLockModel,
} from '../../src/hub/drivers/zigbee2mqtt-emulator.ts';
import { describeContactDriverContract } from './contact-contract.ts';
import { createHook } from 'node:async_hooks';
import { expectDriverError, openConnectionsTo, sleep, waitUntil } from './contract-helpers.ts';
import { describeLockDriverContract, type LockHarnessOptions } from './lock-contract.ts';
import { startMosquitto, type TestMosquitto } from '../../src/harness/mosquitto.ts';

let broker: TestMosquitto;
let topicCounter = 0;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
});

afterAll(async () => {
  await broker?.stop();
});

/** A base topic of its own per test, so no retained message leaks from one test to the next. */
function freshBase(): string {
  return `z2m-test-${process.pid}-${++topicCounter}`;
}

const LOCK_NAME = 'front door/lock';
const CONTACT_NAME = 'front door/contact';

interface LockWorld {
  readonly emulator: Zigbee2MqttEmulator;
  readonly lock: EmulatedLock;
  readonly driver: Zigbee2MqttLock;
  readonly base: string;
}

async function lockWorld(
  options: LockHarnessOptions & {
    retain?: boolean;
    model?: EmulatedLockModel;
    driver?: Partial<Zigbee2MqttLockOptions>;
  } = {},
): Promise<LockWorld> {
  const base = freshBase();
  const emulator = await Zigbee2MqttEmulator.start({
    url: broker.url,
    baseTopic: base,
    retain: options.retain ?? true,
  });
  const lock = await emulator.addLock(LOCK_NAME, {
    bolt: options.bolt ?? 'locked',
    online: options.online ?? true,
    motorDelayMs: 30,
    ...(options.model ? { model: options.model } : {}),
  });
  const driver = new Zigbee2MqttLock({
    id: 'lock-1',
    url: broker.url,
    baseTopic: base,
    friendlyName: LOCK_NAME,
    startTimeoutMs: 1500,
    pinReadTimeoutMs: 5000,
    ...options.driver,
  });
  return { emulator, lock, driver, base };
}

describeLockDriverContract('Zigbee2MQTT (Yale YRD226HA2619 emulated, Mosquitto)', async (o) => {
  const { emulator, lock, driver } = await lockWorld(o);
  return {
    driver,
    device: {
      bolt: () => lock.bolt(),
      turnByHand: (bolt) => lock.turnByHand(bolt),
      jamNextMove: () => lock.jamNextMove(),
      holdMovements: () => lock.holdMovements(),
      releaseMovements: () => lock.releaseMovements(),
      goOffline: () => lock.goOffline(),
      goOnline: () => lock.goOnline(),
      keypadUnlock: (slot) => lock.keypadUnlock(slot),
    },
    reportsManual: true,
    holdsConnections: true,
    heldResources: () => openConnectionsTo(broker.port, [emulator.localPort()]),
    close: () => emulator.stop(),
  };
});

describeContactDriverContract('Zigbee2MQTT (Aqara MCCGQ11LM emulated, Mosquitto)', async (o) => {
  const base = freshBase();
  const emulator = await Zigbee2MqttEmulator.start({ url: broker.url, baseTopic: base });
  const contact = await emulator.addContact(CONTACT_NAME, {
    closed: o.closed ?? true,
    online: o.online ?? true,
  });
  const driver = new Zigbee2MqttContact({
    id: 'door-1',
    url: broker.url,
    baseTopic: base,
    friendlyName: CONTACT_NAME,
    startTimeoutMs: 1500,
  });
  return {
    driver,
    device: {
      open: () => contact.open(),
      close: () => contact.close(),
      goOffline: () => contact.goOffline(),
      goOnline: () => contact.goOnline(),
    },
    holdsConnections: true,
    heldResources: () => openConnectionsTo(broker.port, [emulator.localPort()]),
    close: () => emulator.stop(),
  };
});

describe('Zigbee2MQTT lock driver, particulars', () => {
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function started(
    options: Parameters<typeof lockWorld>[0] = {},
  ): Promise<LockWorld & { events: LockDriverEvent[] }> {
    const world = await lockWorld(options);
    cleanups.push(
      () => world.emulator.stop(),
      () => world.driver.stop(),
    );
    const events: LockDriverEvent[] = [];
    world.driver.on((e) => events.push(e));
    await world.driver.start();
    return { ...world, events };
  }

  it('sends exactly the payloads of tz.lock and tz.pincode_lock', async () => {
    const { driver, emulator, base } = await started();
    await driver.unlock();
    await waitUntil(() => driver.bolt() === 'unlocked', 'unlocked');
    await driver.lock();
    await driver.pins?.set(7, '024680');
    await driver.pins?.clear(7);
    await waitUntil(() => emulator.received.length >= 7, 'the requests');
    const topic = `${base}/${LOCK_NAME}`;
    expect(emulator.received).toEqual([
      // start(): read the bolt (tz.lock convertGet)
      { topic: `${topic}/get`, payload: '{"state":""}' },
      { topic: `${topic}/set`, payload: '{"state":"UNLOCK"}' },
      { topic: `${topic}/set`, payload: '{"state":"LOCK"}' },
      {
        topic: `${topic}/set`,
        payload:
          '{"pin_code":{"user":7,"user_type":"unrestricted","user_enabled":true,"pin_code":"024680"}}',
      },
      { topic: `${topic}/get`, payload: '{"pin_code":{"user":7}}' },
      { topic: `${topic}/set`, payload: '{"pin_code":{"user":7,"pin_code":null}}' },
      { topic: `${topic}/get`, payload: '{"pin_code":{"user":7}}' },
    ]);
  });

  it('reads every slot once, with {"pin_code":""}, when it never heard of them', async () => {
    const { driver, emulator, lock } = await started();
    const pins = driver.pins;
    if (!pins) throw new Error('the Yale has a keypad');
    // Codes already in the lock before the hub came (set at the lock, or by an earlier hub).
    await emulator.publishRaw(
      `${emulator.baseTopic}/${LOCK_NAME}/set`,
      JSON.stringify({ pin_code: { user: 12, pin_code: '5555' } }),
    );
    await waitUntil(() => lock.codes().has(12), 'the code in the lock');
    expect(pins.capacity()).toBe(249);
    expect(await pins.occupied()).toEqual([12]);
    const fullReads = emulator.received.filter((r) => r.payload === '{"pin_code":""}');
    expect(fullReads).toHaveLength(1);
    // Known now: a second listing does not read the lock again.
    expect(await pins.occupied()).toEqual([12]);
    expect(emulator.received.filter((r) => r.payload === '{"pin_code":""}')).toHaveLength(1);
  });

  it('learns the bolt by asking when Zigbee2MQTT does not retain states', async () => {
    const { driver, emulator } = await started({ retain: false, bolt: 'unlocked' });
    expect(driver.bolt()).toBe('unlocked');
    expect(emulator.received[0]?.payload).toBe('{"state":""}');
  });

  it('stays unknown when nobody answers the read (retain off, lock silent)', async () => {
    const world = await lockWorld({ retain: false });
    cleanups.push(
      () => world.emulator.stop(),
      () => world.driver.stop(),
    );
    // The lock answers nothing: Zigbee2MQTT's request times out on the radio.
    world.lock.holdMovements();
    const silent = world.lock as unknown as { handle: () => void };
    silent.handle = () => undefined;
    const t0 = Date.now();
    await world.driver.start();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(world.driver.available()).toBe(true);
    expect(world.driver.bolt()).toBe('unknown');
  });

  it('does not bring back the bolt from before an absence when the lock comes back silent', async () => {
    const { driver, lock, events } = await started({ bolt: 'locked' });
    await lock.goOffline();
    await waitUntil(() => !driver.available(), 'offline');
    // Back on the network, but its answer to the driver's read never arrives.
    (lock as unknown as { handle: () => void }).handle = () => undefined;
    events.length = 0;
    await lock.goOnline();
    await waitUntil(() => driver.available(), 'online');
    await sleep(200);
    expect(driver.bolt()).toBe('unknown');
    expect(events.filter((e) => e.type === 'state')).toEqual([]);
  });

  it('reads the legacy bare online/offline availability payloads', async () => {
    const { driver, emulator } = await started();
    const topic = `${emulator.baseTopic}/${LOCK_NAME}/availability`;
    await emulator.publishRaw(topic, 'offline', true);
    await waitUntil(() => !driver.available(), 'offline');
    expect(driver.bolt()).toBe('unknown');
    await emulator.publishRaw(topic, 'online', true);
    await waitUntil(() => driver.bolt() === 'locked', 'online and read again');
  });

  it('takes a cleared availability topic (after a rename) for gone', async () => {
    const { driver, emulator } = await started();
    await emulator.publishRaw(`${emulator.baseTopic}/${LOCK_NAME}/availability`, '', true);
    await waitUntil(() => !driver.available(), 'unavailable');
    expect(driver.bolt()).toBe('unknown');
  });

  it('is unavailable while Zigbee2MQTT itself is down, even if the lock was last online', async () => {
    const { driver, emulator, events } = await started();
    events.length = 0;
    await emulator.stopBridge();
    await waitUntil(() => !driver.available(), 'bridge offline');
    expect(driver.bolt()).toBe('unknown');
    await expectDriverError(driver.unlock(), 'device.unavailable');
    await emulator.startBridge();
    await waitUntil(() => driver.bolt() === 'locked', 'bridge back and the lock read');
    expect(events.map((e) => e.type)).toEqual(['availability', 'state', 'availability', 'state']);
  });

  it('is unavailable when Zigbee2MQTT dies without a word (its last will)', async () => {
    const { driver, emulator } = await started();
    emulator.crash();
    await waitUntil(() => !driver.available(), 'the will');
    expect(driver.bolt()).toBe('unknown');
  });

  it('does not replay a retained keypad event, but reports a live one', async () => {
    const { driver, emulator, base } = await (async () => {
      const world = await lockWorld();
      cleanups.push(
        () => world.emulator.stop(),
        () => world.driver.stop(),
      );
      return world;
    })();
    const topic = `${base}/${LOCK_NAME}`;
    const withAction = JSON.stringify({
      action: 'unlock',
      action_source: 0,
      action_source_name: 'keypad',
      action_user: 4,
      lock_state: 'locked',
      state: 'LOCK',
    });
    await emulator.publishRaw(topic, withAction, true);
    const events: LockDriverEvent[] = [];
    driver.on((e) => events.push(e));
    await driver.start();
    await sleep(100);
    expect(events.filter((e) => e.type === 'keypad-unlocked')).toEqual([]);
    await emulator.publishRaw(topic, withAction, false);
    await waitUntil(() => events.some((e) => e.type === 'keypad-unlocked'), 'the live event');
    expect(events.find((e) => e.type === 'keypad-unlocked')).toMatchObject({ slot: 4 });
  });

  it('reports wrong codes, the C4 lockout alarm and Yale C4 spellings', async () => {
    const { driver, emulator, lock, events } = await started();
    await lock.enterCode('0000');
    await waitUntil(() => events.some((e) => e.type === 'keypad-wrong-code'), 'wrong code');
    const topic = `${emulator.baseTopic}/${LOCK_NAME}`;
    // yale.ts c4_alarm, alarm code 161 and 19.
    await emulator.publishRaw(topic, JSON.stringify({ alarm: 'tamper_alarm_keypad_attempts' }));
    await waitUntil(() => events.some((e) => e.type === 'keypad-lockout'), 'lockout');
    await emulator.publishRaw(
      topic,
      JSON.stringify({ action: 'keypad_unlock', state: 'UNLOCKED', lock_state: 'unlocked' }),
    );
    await waitUntil(() => driver.bolt() === 'unlocked', 'the C4 unlock');
    const keypad = events.filter((e) => e.type === 'keypad-unlocked');
    expect(keypad).toHaveLength(1);
    expect(keypad[0]).toMatchObject({ slot: null });
    // The state change of a message comes before the event it carries.
    const kinds = events.map((e) => e.type);
    expect(kinds.lastIndexOf('state')).toBeLessThan(kinds.lastIndexOf('keypad-unlocked'));
  });

  it('unlocks with a code that was set through the driver', async () => {
    const { driver, lock, events } = await started();
    await driver.pins?.set(5, '13579');
    expect(lock.codes().get(5)).toBe('13579');
    await lock.enterCode('13579');
    await waitUntil(() => driver.bolt() === 'unlocked', 'the keypad unlock');
    expect(events).toContainEqual(expect.objectContaining({ type: 'keypad-unlocked', slot: 5 }));
  });

  it('says unsupported for PINs on a lock Zigbee2MQTT lists without pin_code', async () => {
    const { driver, lock } = await started({ model: '66492-001' });
    await waitUntil(() => driver.deviceInfo() !== null, 'bridge/devices');
    expect(driver.deviceInfo()).toEqual({
      model: '66492-001',
      vendor: 'Kwikset',
      exposesPinCode: false,
    });
    await expectDriverError(driver.pins!.set(1, '1234'), 'device.unsupported');
    await expectDriverError(driver.pins!.occupied(), 'device.unsupported');
    expect(lock.codes().size).toBe(0);
    // The lock itself still works.
    await driver.unlock();
    await waitUntil(() => driver.bolt() === 'unlocked', 'unlocked');
  });

  it('has no PIN driver when told the lock has no codes', async () => {
    const { driver } = await started({ driver: { pinCodeCount: 0 } });
    expect(driver.pins).toBeNull();
  });

  it('ignores garbage on its topics and keeps what it knew', async () => {
    const { driver, emulator, events } = await started();
    events.length = 0;
    const topic = `${emulator.baseTopic}/${LOCK_NAME}`;
    for (const payload of ['not json', '[1,2]', '"LOCK"', 'null', '{"battery":12}']) {
      await emulator.publishRaw(topic, payload);
    }
    await emulator.publishRaw(`${emulator.baseTopic}/bridge/devices`, '{bad', true);
    await sleep(150);
    expect(driver.bolt()).toBe('locked');
    expect(driver.available()).toBe(true);
    expect(events).toEqual([]);
    // An unexpected lock_state is not a fact.
    await emulator.publishRaw(topic, JSON.stringify({ lock_state: 'half', state: 'LOCK' }));
    await waitUntil(() => driver.bolt() === 'unknown', 'unknown bolt');
  });

  it('goes unknown when the broker goes away', async () => {
    const own = await startMosquitto();
    cleanups.push(() => own.stop());
    const base = freshBase();
    const emulator = await Zigbee2MqttEmulator.start({ url: own.url, baseTopic: base });
    cleanups.push(() => emulator.stop());
    await emulator.addLock(LOCK_NAME);
    const driver = new Zigbee2MqttLock({
      id: 'lock-2',
      url: own.url,
      baseTopic: base,
      friendlyName: LOCK_NAME,
      startTimeoutMs: 1500,
      reconnectPeriodMs: 100,
    });
    cleanups.push(() => driver.stop());
    await driver.start();
    expect(driver.bolt()).toBe('locked');
    await own.stop();
    await waitUntil(() => !driver.available(), 'the broker gone');
    expect(driver.bolt()).toBe('unknown');
    await expectDriverError(driver.lock(), 'device.unavailable');

    // The broker comes back (empty: no persistence), then Zigbee2MQTT: the driver reconnects,
    // subscribes again and learns everything afresh.
    const again = await startMosquitto({ port: own.port });
    cleanups.push(() => again.stop());
    await sleep(300);
    expect(driver.available()).toBe(false);
    const emulator2 = await Zigbee2MqttEmulator.start({ url: again.url, baseTopic: base });
    cleanups.push(() => emulator2.stop());
    await emulator2.addLock(LOCK_NAME, { bolt: 'unlocked' });
    await waitUntil(() => driver.bolt() === 'unlocked', 'the driver back on the new broker');
  });

  it('start() resolves, unknown, when the broker cannot be reached', async () => {
    const driver = new Zigbee2MqttLock({
      id: 'lock-3',
      url: 'mqtt://127.0.0.1:1',
      friendlyName: LOCK_NAME,
      startTimeoutMs: 300,
    });
    cleanups.push(() => driver.stop());
    await driver.start();
    expect(driver.available()).toBe(false);
    expect(driver.bolt()).toBe('unknown');
  });

  it('stop() leaves no timer of its own behind, even with a request in flight', async () => {
    const world = await lockWorld();
    cleanups.push(() => world.emulator.stop());
    // Timers created from the driver's own code, still alive.
    const live = new Set<number>();
    const hook = createHook({
      init(id, type) {
        if (type === 'Timeout' && new Error().stack?.includes('drivers/zigbee2mqtt.ts')) {
          live.add(id);
        }
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();
    try {
      await world.driver.start();
      // start() resolved on the retained state; its read of the bolt may still await its PUBACK.
      void world.driver.lock().catch(() => undefined);
      await world.driver.stop();
      await waitUntil(() => live.size === 0, 'the driver timers to be gone', 1000);
    } finally {
      hook.disable();
    }
  });

  it('refuses friendly names with MQTT wildcards and unknown URL schemes', () => {
    for (const friendlyName of ['a/+/b', 'door#', '', '/lead', 'trail/']) {
      expect(() => new Zigbee2MqttLock({ id: 'x', url: broker.url, friendlyName })).toThrow(
        /friendly name/,
      );
    }
    expect(
      () => new Zigbee2MqttContact({ id: 'x', url: 'http://127.0.0.1:1', friendlyName: 'a' }),
    ).toThrow(/URL/);
  });
});

describe('driver: zigbee2mqtt in a hub config', () => {
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const lockSchema = Compile(zigbee2mqttDriverFactory.optionsSchema('lock'));
  const contactSchema = Compile(zigbee2mqttDriverFactory.optionsSchema('door-sensor'));

  it('accepts the documented options and refuses anything else', () => {
    const good = {
      url: 'mqtt://192.168.1.10:1883',
      baseTopic: 'zigbee2mqtt',
      friendlyName: 'front door/lock',
      username: 'threshold',
      passwordFile: 'z2m-password',
      startTimeoutMs: 2000,
      pinCodeCount: 250,
    };
    expect(zigbee2mqttDriverFactory.kinds).toEqual(['lock', 'door-sensor']);
    expect(lockSchema.Check(good)).toBe(true);
    expect(lockSchema.Check({ url: 'mqtts://hub.local', friendlyName: 'Lock' })).toBe(true);
    const { pinCodeCount: _, ...contact } = good;
    expect(contactSchema.Check({ ...contact, friendlyName: 'front door/contact' })).toBe(true);
    for (const bad of [
      { ...good, pinCodeCount: -1 },
      { ...good, pinCodeCount: 2.5 },
      { ...good, friendlyName: 'a/+/b' },
      { ...good, friendlyName: 'trail/' },
      { ...good, friendlyName: '' },
      { ...good, url: 'http://example.org' },
      { ...good, url: 'mqtt://a b' },
      { ...good, baseTopic: 'z2m/#' },
      { ...good, startTimeoutMs: '2000' },
      { ...good, friendlyname: 'typo' },
      { url: good.url },
    ]) {
      expect(lockSchema.Check(bad)).toBe(false);
    }
    expect(contactSchema.Check(good)).toBe(false);
  });

  it('builds drivers that work, with the hub clock and a password file', async () => {
    const base = freshBase();
    const emulator = await Zigbee2MqttEmulator.start({ url: broker.url, baseTopic: base });
    cleanups.push(() => emulator.stop());
    await emulator.addLock(LOCK_NAME, { bolt: 'unlocked' });
    await emulator.addContact(CONTACT_NAME, { closed: false });
    const dir = mkdtempSync(join(tmpdir(), 'threshold-z2m-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'z2m-password'), 'not-checked-by-this-broker\n');
    const clock = new FakeClock();
    const context = {
      clock,
      logger: silentLogger,
      configDir: dir,
      doorPosition: null,
    };
    const lock = zigbee2mqttDriverFactory.create(
      { ...context, id: 'lock-9', kind: 'lock' },
      {
        url: broker.url,
        baseTopic: base,
        friendlyName: LOCK_NAME,
        username: 'threshold',
        passwordFile: 'z2m-password',
      },
    );
    const contact = zigbee2mqttDriverFactory.create(
      { ...context, id: 'door-9', kind: 'door-sensor' },
      { url: broker.url, baseTopic: base, friendlyName: CONTACT_NAME, username: 'threshold' },
    );
    cleanups.push(
      () => lock.stop(),
      () => contact.stop(),
    );
    if (lock.kind !== 'lock' || contact.kind !== 'door-sensor') throw new Error('wrong kinds');
    const events: LockDriverEvent[] = [];
    lock.on((e) => events.push(e));
    await lock.start();
    await contact.start();
    expect(lock.id).toBe('lock-9');
    expect(lock.bolt()).toBe('unlocked');
    expect(lock.pins?.capacity()).toBe(249);
    expect(contact.position()).toBe('open');
    // Stamped with the hub's clock, not the wall clock.
    expect(events.every((e) => e.at === clock.now())).toBe(true);
    expect(events.length).toBeGreaterThan(0);
    expect(() =>
      zigbee2mqttDriverFactory.create(
        { ...context, id: 'lock-8', kind: 'lock' },
        { url: broker.url, friendlyName: 'x', password: 'a', passwordFile: 'z2m-password' },
      ),
    ).toThrow(/not both/);
    expect(() =>
      zigbee2mqttDriverFactory.create(
        { ...context, id: 'lock-7', kind: 'lock' },
        { url: broker.url, friendlyName: 'x', password: 'a' },
      ),
    ).toThrow(/needs a username/);
  });
});

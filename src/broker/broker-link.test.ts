/**
 * The server's links to the broker keep one promise: a device's QoS 1 message is acknowledged
 * only after the server's `deliver` resolved. Tested with real mqtt.js devices on loopback
 * against the embedded broker: the in-process link (the device's PUBACK waits) and the MQTT
 * link (the server's PUBACK to the broker waits, and an unacknowledged message comes back
 * after the server's connection dies).
 */
import { randomBytes } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveDeviceKey, mqttPassword } from '../protocol/device-auth.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { mqttBrokerLink, type BrokerLink } from './broker-link.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.ts';
import { serverMqttCredentials } from './server-credentials.ts';

const MASTER = randomBytes(32);
const SERVER = serverMqttCredentials(MASTER);
const HOME = 'home-a';
const LOCK = 'lock-1';
const EVENT_TOPIC = deviceTopic(HOME, LOCK, 'event');

let broker: EmbeddedBroker | undefined;
const links: BrokerLink[] = [];
const devices: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(devices.splice(0).map((d) => d.endAsync(true).catch(() => {})));
  await Promise.all(links.splice(0).map((l) => l.stop()));
  await broker?.close();
  broker = undefined;
});

async function startBroker(devicesWaitForServerLink = false): Promise<EmbeddedBroker> {
  broker = await startEmbeddedBroker({
    masterKey: MASTER,
    lookupDevice: (id) => (id === LOCK ? { homeId: HOME } : undefined),
    server: SERVER,
    devicesWaitForServerLink,
  });
  return broker;
}

async function connectLock(url: string, reconnectPeriod = 200): Promise<MqttClient> {
  const client = await connectAsync(url, {
    clientId: LOCK,
    username: LOCK,
    password: mqttPassword(deriveDeviceKey(MASTER, LOCK)),
    protocolVersion: 4,
    reconnectPeriod,
    connectTimeout: 2_000,
  });
  devices.push(client);
  return client;
}

/** A promise and the function that settles it, for a `deliver` the test finishes by hand. */
function gate(): { promise: Promise<void>; open: () => void; fail: (e: Error) => void } {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

describe('embedded broker: server link', () => {
  it("holds the device's PUBACK until deliver resolved", async () => {
    const b = await startBroker();
    const link = b.serverLink();
    links.push(link);
    const received: string[] = [];
    const g = gate();
    await link.start(async (topic, payload) => {
      received.push(`${topic} ${payload.toString()}`);
      await g.promise;
    });
    const lock = await connectLock(b.url);
    const acked = lock.publishAsync(EVENT_TOPIC, 'e1', { qos: 1 });
    // Delivered to the server at once, but not acknowledged to the device.
    expect(await settlesWithin(acked, 400)).toBe(false);
    expect(received).toEqual([`${EVENT_TOPIC} e1`]);
    g.open();
    await expect(acked).resolves.toBeDefined();
  });

  it('a deliver that fails cuts the device off unacknowledged, and the device sends it again', async () => {
    const b = await startBroker();
    const link = b.serverLink();
    links.push(link);
    let calls = 0;
    await link.start(async (_topic, payload) => {
      calls += 1;
      expect(payload.toString()).toBe('e1');
      if (calls === 1) throw new Error('database unavailable');
    });
    const lock = await connectLock(b.url);
    let closed = 0;
    lock.on('close', () => (closed += 1));
    // mqtt.js keeps the unacknowledged message and sends it again after reconnecting.
    await lock.publishAsync(EVENT_TOPIC, 'e1', { qos: 1 });
    expect(calls).toBe(2);
    expect(closed).toBeGreaterThanOrEqual(1);
  });

  it('acknowledges at once a message deliver handled during the call, and keeps the order', async () => {
    const b = await startBroker();
    const link = b.serverLink();
    links.push(link);
    const received: string[] = [];
    const g = gate();
    const HEARTBEAT_TOPIC = deviceTopic(HOME, LOCK, 'heartbeat');
    // Events wait for the gate; everything else is handled during the call (returns nothing).
    await link.start((topic, payload) => {
      received.push(payload.toString());
      return topic === EVENT_TOPIC ? g.promise : undefined;
    });
    const lock = await connectLock(b.url);
    const event = lock.publishAsync(EVENT_TOPIC, 'e1', { qos: 1 });
    const beats = [1, 2, 3].map((i) => lock.publishAsync(HEARTBEAT_TOPIC, `hb${i}`, { qos: 1 }));
    await expect(Promise.all(beats)).resolves.toHaveLength(3);
    // The event still waits for its deliver, whatever was acknowledged after it.
    expect(await settlesWithin(event, 300)).toBe(false);
    expect(received).toEqual(['e1', 'hb1', 'hb2', 'hb3']);
    g.open();
    await expect(event).resolves.toBeDefined();
  });

  it('a deliver that throws during the call cuts the device off unacknowledged', async () => {
    const b = await startBroker();
    const link = b.serverLink();
    links.push(link);
    let calls = 0;
    await link.start(() => {
      calls += 1;
      if (calls === 1) throw new Error('handler bug');
    });
    const lock = await connectLock(b.url);
    let closed = 0;
    lock.on('close', () => (closed += 1));
    await lock.publishAsync(EVENT_TOPIC, 'e1', { qos: 1 });
    expect(calls).toBe(2);
    expect(closed).toBeGreaterThanOrEqual(1);
  });

  it('refuses devices until the server link is started, when asked to', async () => {
    const b = await startBroker(true);
    await expect(connectLock(b.url, 0)).rejects.toThrow(/unavailable/i);
    const link = b.serverLink();
    links.push(link);
    const received: string[] = [];
    await link.start((_topic, payload) => {
      received.push(payload.toString());
      return Promise.resolve();
    });
    const lock = await connectLock(b.url);
    await lock.publishAsync(EVENT_TOPIC, 'after-start', { qos: 1 });
    expect(received).toEqual(['after-start']);
  });

  it('publishes commands as the broker, within each device’s ACL', async () => {
    const b = await startBroker();
    const link = b.serverLink();
    links.push(link);
    await link.start(() => Promise.resolve());
    const lock = await connectLock(b.url);
    const got: string[] = [];
    lock.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await lock.subscribeAsync(deviceTopic(HOME, LOCK, 'command'), { qos: 1 });
    await link.publish(deviceTopic(HOME, LOCK, 'command'), 'c1');
    // Not the lock's topic: the ACL keeps it from the lock even if it asked.
    await link.publish(deviceTopic('home-b', 'lock-2', 'command'), 'c2');
    await link.publish(deviceTopic(HOME, LOCK, 'command'), 'c3');
    for (let i = 0; i < 50 && got.length < 2; i++) await sleep(20);
    expect(got).toEqual([
      `${deviceTopic(HOME, LOCK, 'command')} c1`,
      `${deviceTopic(HOME, LOCK, 'command')} c3`,
    ]);
  });

  it('allows one server link at a time', async () => {
    const b = await startBroker();
    const first = b.serverLink();
    links.push(first);
    await first.start(() => Promise.resolve());
    await expect(b.serverLink().start(() => Promise.resolve())).rejects.toThrow(/already/);
  });
});

describe('MQTT server link', () => {
  it('acknowledges at once what deliver handled during the call; an event still waits', async () => {
    const b = await startBroker();
    const seen: string[] = [];
    const g = gate();
    const link = mqttBrokerLink({ url: b.url, ...SERVER, clientId: `${SERVER.username}-sync` });
    links.push(link);
    await link.start((topic, payload) => {
      seen.push(payload.toString());
      return topic === EVENT_TOPIC ? g.promise : undefined;
    });
    const lock = await connectLock(b.url);
    await lock.publishAsync(deviceTopic(HOME, LOCK, 'heartbeat'), 'hb1', { qos: 1 });
    await lock.publishAsync(EVENT_TOPIC, 'e1', { qos: 1 });
    await lock.publishAsync(deviceTopic(HOME, LOCK, 'heartbeat'), 'hb2', { qos: 1 });
    for (let i = 0; i < 50 && seen.length < 2; i++) await sleep(20);
    // mqtt.js hands the server one message at a time, each after the last one's PUBACK: the
    // heartbeat went through at once, the event holds what follows until it is recorded.
    expect(seen).toEqual(['hb1', 'e1']);
    await sleep(200);
    expect(seen).toEqual(['hb1', 'e1']);
    g.open();
    for (let i = 0; i < 50 && seen.length < 3; i++) await sleep(20);
    expect(seen).toEqual(['hb1', 'e1', 'hb2']);
  });

  it('acknowledges to the broker only after deliver resolved; what was not is sent again after a crash', async () => {
    const b = await startBroker();
    const clientId = `${SERVER.username}-replica-1`;
    const seen: string[] = [];
    const g = gate();
    const first = mqttBrokerLink({ url: b.url, ...SERVER, clientId });
    await first.start(async (_topic, payload) => {
      seen.push(`first ${payload.toString()}`);
      await g.promise;
    });
    const lock = await connectLock(b.url);
    await lock.publishAsync(EVENT_TOPIC, 'e1', { qos: 1 });
    for (let i = 0; i < 50 && seen.length < 1; i++) await sleep(20);
    expect(seen).toEqual(['first e1']);
    // The server dies with e1 unfinished: no PUBACK ever went to the broker.
    await first.stop();

    const second = mqttBrokerLink({ url: b.url, ...SERVER, clientId });
    links.push(second);
    await second.start((_topic, payload) => {
      seen.push(`second ${payload.toString()}`);
      return Promise.resolve();
    });
    for (let i = 0; i < 100 && seen.length < 2; i++) await sleep(20);
    expect(seen).toEqual(['first e1', 'second e1']);
  });
});

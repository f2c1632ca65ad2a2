/**
 * The fault proxy between real mqtt.js clients and the real embedded broker, on loopback.
 *
 * Devices connect through the proxy; an observer (the server's own credentials) connects to the
 * broker directly and sees what got through. "Never arrived" is proven by ordering: a control
 * message sent afterwards on the same connection arrives first, or a fault is lifted and the
 * held message arrives only then. Timings are lower bounds only: the proxy promises "not before",
 * the machine decides "how much after".
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/broker/embedded-broker.ts';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { FaultProxy, type FaultProxyOptions } from '../src/harness/fault-proxy.ts';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import { SERVER_SUBSCRIPTION, deviceTopic } from '../src/protocol/topics.ts';

const MASTER = randomBytes(32);
const HOME = 'home-a';
const SERVER = serverMqttCredentials(MASTER);
const STEP_TIMEOUT_MS = 4_000;
/** How long "nothing arrives" is watched for when no later message can prove it. */
const QUIET_MS = 300;

let broker: EmbeddedBroker;
/** Everything the broker logged: a corrupt packet would show up here. */
let brokerLog: { level: string; msg: string; obj: object }[] = [];
let observer: MqttClient;
/** Messages the observer received, in order. */
let seen: { topic: string; payload: Buffer; at: number }[] = [];
const proxies: FaultProxy[] = [];
const clients: MqttClient[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  broker = await startEmbeddedBroker({
    masterKey: MASTER,
    // Every test uses its own device id, so no test sees another's sessions or wills.
    lookupDevice: (id) => (id.startsWith('dev-') ? { homeId: HOME } : undefined),
    server: SERVER,
    logger: {
      warn: (obj, msg) => brokerLog.push({ level: 'warn', msg, obj }),
      info: (obj, msg) => brokerLog.push({ level: 'info', msg, obj }),
    },
  });
  observer = await mqttConnect(broker.url, {
    clientId: 'threshold-server-observer',
    username: SERVER.username,
    password: SERVER.password,
  });
  clients.pop(); // lives for the whole file, not one test
  observer.on('message', (topic, payload) => seen.push({ topic, payload, at: performance.now() }));
  await observer.subscribeAsync(SERVER_SUBSCRIPTION);
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => {})));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  seen = [];
  brokerLog = [];
});

afterAll(async () => {
  await observer.endAsync(true);
  await broker.close();
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(predicate: () => boolean, what: string, ms = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function startProxy(extra: Partial<FaultProxyOptions> = {}): Promise<FaultProxy> {
  const proxy = new FaultProxy({ upstream: broker.url, ...extra });
  proxies.push(proxy);
  await proxy.start();
  return proxy;
}

/** Connects an mqtt.js client that never reconnects by itself; rejects if it is refused. */
function mqttConnect(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = connect(url, {
    reconnectPeriod: 0,
    connectTimeout: STEP_TIMEOUT_MS,
    protocolVersion: 4,
    ...options,
  });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

function connectDevice(url: string, id: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return mqttConnect(url, {
    clientId: id,
    username: id,
    password: mqttPassword(deriveDeviceKey(MASTER, id)),
    ...extra,
  });
}

const heartbeat = (id: string) => deviceTopic(HOME, id, 'heartbeat');
const command = (id: string) => deviceTopic(HOME, id, 'command');
const availability = (id: string) => deviceTopic(HOME, id, 'availability');

/** The payloads (as text) the observer got on a topic, in order. */
function seenOn(topic: string): string[] {
  return seen.filter((m) => m.topic === topic).map((m) => m.payload.toString());
}

/** Resolves with the next message a client gets on a topic. */
function nextMessage(client: MqttClient, topic: string): Promise<{ payload: Buffer; at: number }> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      client.off('message', onMessage);
      resolve({ payload, at: performance.now() });
    };
    client.on('message', onMessage);
  });
}

/** A raw TCP connection through the proxy; resolves once connected. */
function rawConnect(port: number): Promise<Socket> {
  const socket = netConnect({ host: '127.0.0.1', port });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * A raw connection attempt to a refusing proxy: how it ended, whether the reset came before
 * or after the handshake completed (the kernel may report either).
 */
function refusedAttempt(port: number): Promise<string> {
  const socket = netConnect({ host: '127.0.0.1', port });
  sockets.push(socket);
  return endingOf(socket).then((e) => e.how);
}

/** How a raw socket ended: the error code (ECONNRESET …), or 'end' for a clean FIN. */
function endingOf(socket: Socket): Promise<{ how: string; at: number }> {
  return new Promise((resolve) => {
    let how = 'end';
    socket.on('error', (err: NodeJS.ErrnoException) => (how = err.code ?? err.message));
    socket.on('data', () => {});
    socket.once('close', () => resolve({ how, at: performance.now() }));
  });
}

function brokerSawNoGarbage(): void {
  const complaints = brokerLog.filter(
    (l) => /garbage|too large|connection error|client error/.test(l.msg) || l.level === 'warn',
  );
  expect(complaints).toEqual([]);
  expect(broker.stats()).toEqual({
    connectionsRefused: 0,
    publishesRefused: 0,
    subscriptionsRefused: 0,
    oversizedDropped: 0,
  });
}

describe('FaultProxy without faults', () => {
  it('passes MQTT traffic both ways unchanged, and counts it', async () => {
    const proxy = await startProxy();
    expect(proxy.url).toBe(`mqtt://127.0.0.1:${proxy.port}`);
    const device = await connectDevice(proxy.url, 'dev-pass');
    await device.subscribeAsync(command('dev-pass'));

    // Every byte value, so a proxy that touched the bytes would be caught.
    const payload = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));
    await device.publishAsync(heartbeat('dev-pass'), payload);
    await waitFor(() => seenOn(heartbeat('dev-pass')).length === 1, 'the heartbeat');
    const got = seen.find((m) => m.topic === heartbeat('dev-pass'));
    expect(got?.payload.equals(payload)).toBe(true);

    const toDevice = nextMessage(device, command('dev-pass'));
    await observer.publishAsync(command('dev-pass'), payload);
    expect((await toDevice).payload.equals(payload)).toBe(true);

    const stats = proxy.stats();
    expect(stats.connectionsAccepted).toBe(1);
    expect(stats.connectionsOpen).toBe(1);
    expect(stats.upstream.bytesOut).toBe(stats.upstream.bytesIn);
    expect(stats.downstream.bytesOut).toBe(stats.downstream.bytesIn);
    expect(stats.upstream.packets).toMatchObject({ connect: 1, subscribe: 1, publish: 1 });
    expect(stats.downstream.packets).toMatchObject({ connack: 1, suback: 1, publish: 1 });
    expect(stats.upstream.packetsDropped + stats.downstream.packetsDropped).toBe(0);
    expect(proxy.faults()).toEqual([]);
    brokerSawNoGarbage();
  });

  it('rejects faults with parameters out of range and changes nothing', async () => {
    const proxy = await startProxy();
    proxy.set({ type: 'latency', latencyMs: 5 }, 'upstream');
    const before = proxy.faults();
    expect(() => proxy.set({ type: 'latency', latencyMs: -1 })).toThrow(/latencyMs/);
    expect(() => proxy.set({ type: 'latency', latencyMs: Number.NaN })).toThrow(RangeError);
    expect(() => proxy.set({ type: 'loss', probability: 1.5 })).toThrow(/probability/);
    expect(() => proxy.set({ type: 'loss', probability: 0.5, seed: 1.5 })).toThrow(/seed/);
    expect(() => proxy.set({ type: 'bandwidth', bytesPerSecond: 0 })).toThrow(/bytesPerSecond/);
    expect(() => proxy.set({ type: 'slicer', averageBytes: 0 })).toThrow(/averageBytes/);
    expect(() => proxy.set({ type: 'reset', afterMs: -5 })).toThrow(/afterMs/);
    expect(() => proxy.set({ type: 'slow-close', delayMs: Infinity })).toThrow(/delayMs/);
    expect(() => proxy.set({ type: 'nonsense' } as never)).toThrow(/unknown fault type/);
    expect(proxy.faults()).toEqual(before);
    expect(() => new FaultProxy({ upstream: 'mqtts://127.0.0.1:8883' })).toThrow(/mqtt:\/\//);
    expect(() => new FaultProxy({ upstream: broker.url, port: 70_000 })).toThrow(/port/);
  });
});

describe('latency, jitter, bandwidth and slicing', () => {
  it('adds at least the set latency to a round trip, on a connection already open', async () => {
    const proxy = await startProxy();
    // The server's client may publish commands and read them back: one round trip is one
    // pass upstream and one pass downstream through the proxy.
    const looper = await mqttConnect(proxy.url, {
      clientId: 'threshold-server-looper',
      username: SERVER.username,
      password: SERVER.password,
    });
    await looper.subscribeAsync(command('dev-rtt'));
    const roundTrip = async (): Promise<number> => {
      const back = nextMessage(looper, command('dev-rtt'));
      const sent = performance.now();
      await looper.publishAsync(command('dev-rtt'), 'ping');
      return (await back).at - sent;
    };
    const baseline: number[] = [];
    for (let i = 0; i < 5; i++) baseline.push(await roundTrip());

    const latencyMs = 150;
    proxy.set({ type: 'latency', latencyMs });
    const delayed: number[] = [];
    for (let i = 0; i < 3; i++) delayed.push(await roundTrip());

    for (const rtt of delayed) expect(rtt).toBeGreaterThanOrEqual(2 * latencyMs);
    // Without the fault the same round trip is faster than the fault alone would make it.
    expect(Math.min(...baseline)).toBeLessThan(2 * latencyMs);

    proxy.remove('latency');
    expect(proxy.faults()).toEqual([]);
  });

  it('keeps the byte order under jitter: numbered messages arrive all and in order', async () => {
    const proxy = await startProxy({ seed: 42 });
    const device = await connectDevice(proxy.url, 'dev-jitter');
    proxy.set({ type: 'latency', latencyMs: 20, jitterMs: 20 }, 'upstream');
    const count = 60;
    for (let i = 0; i < count; i++) {
      // One message per chunk: each crosses the proxy with its own random delay.
      await device.publishAsync(heartbeat('dev-jitter'), String(i));
      await sleep(1);
    }
    await waitFor(() => seenOn(heartbeat('dev-jitter')).length === count, 'every message');
    expect(seenOn(heartbeat('dev-jitter'))).toEqual(
      Array.from({ length: count }, (_, i) => `${i}`),
    );
    brokerSawNoGarbage();
  });

  it('limits throughput to the set bandwidth', async () => {
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-bw');
    proxy.set({ type: 'bandwidth', bytesPerSecond: 10_000 }, 'upstream');
    const sent = performance.now();
    await device.publishAsync(deviceTopic(HOME, 'dev-bw', 'frame'), Buffer.alloc(5_000, 7));
    await waitFor(
      () => seen.some((m) => m.topic === deviceTopic(HOME, 'dev-bw', 'frame')),
      'frame',
    );
    const arrived = seen.find((m) => m.topic === deviceTopic(HOME, 'dev-bw', 'frame'));
    // 5 000 bytes at 10 000 bytes/s take at least half a second.
    expect((arrived?.at ?? 0) - sent).toBeGreaterThanOrEqual(500);
  });

  it('slices packets into tiny segments that the broker still reads whole', async () => {
    const proxy = await startProxy({ seed: 3 });
    const device = await connectDevice(proxy.url, 'dev-slice');
    proxy.set({ type: 'slicer', averageBytes: 3, variationBytes: 2, delayMs: 0 }, 'upstream');
    const payloads = Array.from({ length: 10 }, (_, i) => `${i}:${'x'.repeat(150)}`);
    for (const p of payloads) device.publish(heartbeat('dev-slice'), p);
    await waitFor(() => seenOn(heartbeat('dev-slice')).length === payloads.length, 'all messages');
    expect(seenOn(heartbeat('dev-slice'))).toEqual(payloads);
    brokerSawNoGarbage();
  });
});

describe('loss', () => {
  it('at 1.0 drops every PUBLISH both ways but keeps the connection and its pings', async () => {
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-loss', { keepalive: 1 });
    await device.subscribeAsync(command('dev-loss'));
    let closed = false;
    device.on('close', () => (closed = true));
    const toDevice: string[] = [];
    device.on('message', (_t, p) => toDevice.push(p.toString()));

    proxy.set({ type: 'loss', probability: 1 });
    for (let i = 0; i < 20; i++) device.publish(heartbeat('dev-loss'), `lost-${i}`);
    await observer.publishAsync(command('dev-loss'), 'lost-command');
    await waitFor(
      () => proxy.stats().upstream.packetsDropped === 20,
      'the proxy to drop 20 publishes',
    );
    await waitFor(() => proxy.stats().downstream.packetsDropped === 1, 'the dropped command');
    // The keepalive round trip still works: PINGREQ up, PINGRESP down, connection stays.
    const pings = proxy.stats().downstream.packets.pingresp;
    await waitFor(() => proxy.stats().downstream.packets.pingresp > pings, 'a PINGRESP');
    expect(proxy.stats().upstream.packets.pingreq).toBeGreaterThan(0);
    expect(closed).toBe(false);

    // The same connection carries traffic again once the fault is lifted, and the marker sent
    // after the lost messages arrives alone: they were dropped, not delayed.
    proxy.remove('loss');
    const back = nextMessage(device, command('dev-loss'));
    await observer.publishAsync(command('dev-loss'), 'marker');
    await back;
    await device.publishAsync(heartbeat('dev-loss'), 'marker');
    await waitFor(() => seenOn(heartbeat('dev-loss')).length > 0, 'the marker');
    expect(seenOn(heartbeat('dev-loss'))).toEqual(['marker']);
    expect(toDevice).toEqual(['marker']);
    expect(closed).toBe(false);
    brokerSawNoGarbage();
  });

  it('at 0.5 with a fixed seed drops a repeatable subset, and another seed another', async () => {
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-loss-seed');
    const topic = heartbeat('dev-loss-seed');
    let round = 0;
    /** Sends 40 numbered messages under `seed`, then a marker; returns what got through. */
    const run = async (seed: number): Promise<string[]> => {
      round += 1;
      const before = proxy.stats().upstream.packets.publish;
      proxy.set({ type: 'loss', probability: 0.5, seed }, 'upstream');
      for (let i = 0; i < 40; i++) device.publish(topic, `${round}:${i}`);
      // Lift the fault only once the proxy has judged all 40.
      await waitFor(() => proxy.stats().upstream.packets.publish === before + 40, 'all 40 judged');
      proxy.remove('loss', 'upstream');
      await device.publishAsync(topic, `${round}:marker`);
      await waitFor(() => seenOn(topic).includes(`${round}:marker`), 'the marker');
      return seenOn(topic)
        .filter((p) => p.startsWith(`${round}:`) && !p.endsWith('marker'))
        .map((p) => p.slice(p.indexOf(':') + 1));
    };
    const first = await run(7);
    const again = await run(7);
    const other = await run(8);
    expect(first.length).toBeGreaterThan(5);
    expect(first.length).toBeLessThan(35);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    expect(proxy.stats().upstream.packetsDropped).toBe(120 - first.length * 2 - other.length);
    brokerSawNoGarbage();
  });

  it('forwards a stream that stops being MQTT verbatim from there on, and counts it', async () => {
    // Not the broker (its guard would cut such a stream): a sink that keeps what arrives.
    const received: Buffer[] = [];
    const sink = createServer((s) => {
      s.on('data', (chunk: Buffer) => received.push(chunk));
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = sink.address() as AddressInfo;
      const proxy = await startProxy({ upstream: { host: '127.0.0.1', port } });
      proxy.set({ type: 'loss', probability: 1 }, 'upstream');
      const socket = await rawConnect(proxy.port);
      const publish = Buffer.from([0x30, 0x03, 0x00, 0x01, 0x74]);
      const pingreq = Buffer.from([0xc0, 0x00]);
      // A PUBLISH whose remaining length runs past four bytes: not MQTT from here on.
      const broken = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80]);
      const after = Buffer.concat([Buffer.from('not mqtt'), publish]);
      // Cut anywhere: one byte at a time, so the framing is followed across chunks.
      for (const byte of Buffer.concat([publish, pingreq, broken, after])) {
        socket.write(Buffer.from([byte]));
      }
      const expected = Buffer.concat([pingreq, after]);
      await waitFor(() => Buffer.concat(received).length >= expected.length, 'the bytes that pass');
      await sleep(QUIET_MS);
      expect(Buffer.concat(received).equals(expected)).toBe(true);
      const stats = proxy.stats().upstream;
      expect(stats.unframed).toBe(1);
      // The first PUBLISH and the broken one's header were dropped; nothing after it was.
      expect(stats.packetsDropped).toBe(2);
      expect(stats.packets).toMatchObject({ publish: 2, pingreq: 1 });
    } finally {
      sink.close();
    }
  });
});

describe('blackhole and half-open', () => {
  it('blackhole: nothing passes, the keepalive gives up, and a reconnect works once lifted', async () => {
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-bh', { keepalive: 1 });
    await device.subscribeAsync(command('dev-bh'));
    const toDevice: string[] = [];
    device.on('message', (_t, p) => toDevice.push(p.toString()));
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    device.on('error', () => {});

    proxy.set({ type: 'blackhole' });
    device.publish(heartbeat('dev-bh'), 'jammed');
    await observer.publishAsync(command('dev-bh'), 'jammed');
    await closed; // mqtt.js gives up after 1.5 keepalives without a PINGRESP
    expect(seenOn(heartbeat('dev-bh'))).toEqual([]);
    expect(toDevice).toEqual([]);
    expect(proxy.stats().downstream.packets.pingresp).toBe(0);

    proxy.remove('blackhole');
    const again = await connectDevice(proxy.url, 'dev-bh');
    await again.publishAsync(heartbeat('dev-bh'), 'back');
    await waitFor(() => seenOn(heartbeat('dev-bh')).includes('back'), 'the reconnected device');
  });

  it('half-open: commands still reach the device, its uploads are held until lifted', async () => {
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-half');
    await device.subscribeAsync(command('dev-half'));

    proxy.set({ type: 'blackhole' }, 'upstream');
    const toDevice = nextMessage(device, command('dev-half'));
    await observer.publishAsync(command('dev-half'), 'still-flows');
    expect((await toDevice).payload.toString()).toBe('still-flows');

    await device.publishAsync(heartbeat('dev-half'), 'held');
    await sleep(QUIET_MS);
    expect(seenOn(heartbeat('dev-half'))).toEqual([]);

    // Lifted: the held message comes through late, before what was sent after it.
    const liftedAt = performance.now();
    proxy.remove('blackhole', 'upstream');
    await device.publishAsync(heartbeat('dev-half'), 'after');
    await waitFor(() => seenOn(heartbeat('dev-half')).length === 2, 'both messages');
    expect(seenOn(heartbeat('dev-half'))).toEqual(['held', 'after']);
    expect(seen.find((m) => m.payload.toString() === 'held')?.at).toBeGreaterThanOrEqual(liftedAt);
    brokerSawNoGarbage();
  });
});

describe('reset', () => {
  it('resets open connections at once: the client gets ECONNRESET', async () => {
    const proxy = await startProxy();
    const raw = await rawConnect(proxy.port);
    const ending = endingOf(raw);
    const device = await connectDevice(proxy.url, 'dev-rst');
    const deviceClosed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    const deviceErrors: string[] = [];
    device.on('error', (err: Error & { code?: unknown }) => deviceErrors.push(String(err.code)));

    proxy.set({ type: 'reset' });
    expect((await ending).how).toBe('ECONNRESET');
    await deviceClosed;
    expect(deviceErrors).toContain('ECONNRESET');
    expect(proxy.stats().socketsReset).toBe(4); // both sides of both connections
    await waitFor(() => proxy.stats().connectionsOpen === 0, 'every connection gone');
  });

  it('resets after the set delay, new connections too while set, none once removed', async () => {
    const proxy = await startProxy();
    proxy.set({ type: 'reset', afterMs: 250 });
    const connectedAt = performance.now();
    const raw = await rawConnect(proxy.port);
    const ending = await endingOf(raw);
    expect(ending.how).toBe('ECONNRESET');
    expect(ending.at - connectedAt).toBeGreaterThanOrEqual(250);

    proxy.remove('reset');
    const device = await connectDevice(proxy.url, 'dev-rst-later');
    let closed = false;
    device.on('close', () => (closed = true));
    await sleep(400);
    expect(closed).toBe(false);
    await device.publishAsync(heartbeat('dev-rst-later'), 'alive');
    await waitFor(() => seenOn(heartbeat('dev-rst-later')).includes('alive'), 'the message');
  });

  it("downstream only: the device is reset, the broker keeps a silent ghost until it's cut", async () => {
    const proxy = await startProxy();
    const will = { topic: availability('dev-ghost'), payload: Buffer.from('offline') };
    const device = await connectDevice(proxy.url, 'dev-ghost', { keepalive: 60, will });
    device.on('error', () => {});
    const deviceClosed = new Promise<void>((resolve) => device.once('close', () => resolve()));

    proxy.set({ type: 'reset' }, 'downstream');
    await deviceClosed;
    // The broker heard nothing: no will yet, the session lives on behind the proxy.
    await sleep(QUIET_MS);
    expect(seenOn(availability('dev-ghost'))).toEqual([]);
    expect(proxy.stats().connectionsOpen).toBe(1);

    proxy.cut();
    await waitFor(() => seenOn(availability('dev-ghost')).includes('offline'), 'the will');
    await waitFor(() => proxy.stats().connectionsOpen === 0, 'the ghost gone');
  });

  it('both sides: the broker sees the connection die at once and publishes the will', async () => {
    const proxy = await startProxy();
    const will = { topic: availability('dev-boom'), payload: Buffer.from('offline') };
    const device = await connectDevice(proxy.url, 'dev-boom', { keepalive: 60, will });
    device.on('error', () => {});
    proxy.set({ type: 'reset' });
    // A keepalive of 60 s cannot be what tells the broker within the step timeout.
    await waitFor(() => seenOn(availability('dev-boom')).includes('offline'), 'the will');
  });
});

describe('slow-close', () => {
  it("upstream: the broker learns of the device's close only after the delay", async () => {
    const proxy = await startProxy();
    const will = { topic: availability('dev-slow'), payload: Buffer.from('offline') };
    const device = await connectDevice(proxy.url, 'dev-slow', { keepalive: 60, will });
    proxy.set({ type: 'slow-close', delayMs: 400 }, 'upstream');
    const closedAt = performance.now();
    await device.endAsync(true); // drop the socket without DISCONNECT: the will must go out
    await waitFor(() => seenOn(availability('dev-slow')).includes('offline'), 'the will');
    const willAt = seen.find((m) => m.topic === availability('dev-slow'))?.at ?? 0;
    expect(willAt - closedAt).toBeGreaterThanOrEqual(400);
  });

  it("downstream: the device learns of the broker's close only after the delay", async () => {
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-slow-down', { keepalive: 60 });
    const closed = new Promise<number>((resolve) =>
      device.once('close', () => resolve(performance.now())),
    );
    proxy.set({ type: 'slow-close', delayMs: 400 }, 'downstream');
    const kickedAt = performance.now();
    broker.disconnectDevice('dev-slow-down');
    expect((await closed) - kickedAt).toBeGreaterThanOrEqual(400);
  });
});

describe('refuse, cut and close', () => {
  it('refuses new connections (reset, then closed listener), keeps open ones, and accepts again', async () => {
    const proxy = await startProxy();
    const port = proxy.port;
    const device = await connectDevice(proxy.url, 'dev-ref');

    await proxy.refuse('reset');
    expect(await refusedAttempt(port)).toBe('ECONNRESET');
    expect(proxy.stats().connectionsRefused).toBe(1);

    await proxy.refuse('close');
    expect(proxy.listening).toBe(false);
    expect(await refusedAttempt(port)).toBe('ECONNREFUSED');

    // The connection made before the refusal still works.
    await device.publishAsync(heartbeat('dev-ref'), 'still-here');
    await waitFor(() => seenOn(heartbeat('dev-ref')).includes('still-here'), 'the message');

    await proxy.accept();
    expect(proxy.port).toBe(port);
    const other = await connectDevice(proxy.url, 'dev-ref-2');
    await other.publishAsync(heartbeat('dev-ref-2'), 'welcome');
    await waitFor(() => seenOn(heartbeat('dev-ref-2')).includes('welcome'), 'the new device');
  });

  it('resets the device when the broker behind it is down', async () => {
    // A port nobody listens on: taken, then freed.
    const spare = new FaultProxy({ upstream: broker.url });
    await spare.start();
    const deadPort = spare.port;
    await spare.close();
    const proxy = await startProxy({ upstream: { host: '127.0.0.1', port: deadPort } });
    const raw = await rawConnect(proxy.port);
    expect((await endingOf(raw)).how).toBe('ECONNRESET');
    await expect(connectDevice(proxy.url, 'dev-down')).rejects.toMatchObject({
      code: 'ECONNRESET',
    });
    await waitFor(() => proxy.stats().connectionsOpen === 0, 'no connection left');
    expect(proxy.stats().connectionsAccepted).toBe(2);
  });

  it('cut closes every connection with a FIN', async () => {
    const proxy = await startProxy();
    const raw = await rawConnect(proxy.port);
    const ending = endingOf(raw);
    const device = await connectDevice(proxy.url, 'dev-cut');
    const deviceClosed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    proxy.cut();
    expect((await ending).how).toBe('end');
    await deviceClosed;
    await waitFor(() => proxy.stats().connectionsOpen === 0, 'no connection left');
  });

  it('close leaves no handle behind, with data, closes and resets still pending', async () => {
    const handles = () => {
      const info = process.getActiveResourcesInfo();
      const count = (kind: string) => info.filter((k) => k === kind).length;
      return {
        servers: count('TCPServerWrap'),
        sockets: count('TCPSocketWrap'),
        timers: count('Timeout'),
      };
    };
    // libuv releases a closed handle on a later turn of the loop: let earlier tests' go.
    await sleep(20);
    const before = handles();
    const proxy = await startProxy();
    const device = await connectDevice(proxy.url, 'dev-close');
    const raw = await rawConnect(proxy.port);
    const rawEnding = endingOf(raw);
    const deviceClosed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    proxy.set({ type: 'latency', latencyMs: 5_000 }, 'upstream');
    proxy.set({ type: 'slow-close', delayMs: 5_000 });
    proxy.set({ type: 'reset', afterMs: 5_000 });
    device.publish(heartbeat('dev-close'), 'queued');
    await waitFor(() => proxy.stats().upstream.packets.publish === 1, 'the queued publish');
    expect(handles().servers).toBe(before.servers + 1);

    const closing = proxy.close();
    expect(proxy.close()).toBe(closing); // idempotent
    await closing;
    await deviceClosed;
    await rawEnding;
    await device.endAsync(true);
    raw.destroy();
    expect(proxy.listening).toBe(false);
    expect(proxy.stats().connectionsOpen).toBe(0);
    await sleep(20);
    const after = handles();
    expect(after.servers).toBe(before.servers);
    expect(after.sockets).toBe(before.sockets);
    // The broker's own timers may end meanwhile; the proxy's three pending ones must be gone.
    expect(after.timers).toBeLessThanOrEqual(before.timers);
    await expect(rawConnect(proxy.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(seenOn(heartbeat('dev-close'))).toEqual([]);
    await expect(proxy.refuse()).rejects.toThrow(/closed/);
  });
});

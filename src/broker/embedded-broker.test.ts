/**
 * The embedded broker against real mqtt.js clients and raw sockets on loopback. The threat is
 * a malicious device on the network: every test checks both that the refusal happens (the
 * counters, the CONNACK/SUBACK codes) and that nothing leaked (the server never receives a
 * refused message, proven by ordering against a control message sent afterwards).
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect as netConnect, type Socket } from 'node:net';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deriveDeviceKey, mqttPassword } from '../protocol/device-auth.ts';
import { SERVER_SUBSCRIPTION, deviceTopic } from '../protocol/topics.ts';
import {
  DEFAULT_MAX_PACKET_BYTES,
  startEmbeddedBroker,
  type BrokerStats,
  type EmbeddedBroker,
} from './embedded-broker.ts';
import { serverMqttCredentials } from './server-credentials.ts';

const MASTER = randomBytes(32);
const DEVICES: Record<string, { homeId: string }> = {
  'lock-1': { homeId: 'home-a' },
  'cam-1': { homeId: 'home-a' },
  'lock-2': { homeId: 'home-b' },
};
const SERVER = serverMqttCredentials(MASTER);
/** How long "never arrives" waits after a later control message has arrived. */
const QUIET_MS = 300;
const STEP_TIMEOUT_MS = 3_000;

function passwordOf(deviceId: string): string {
  return mqttPassword(deriveDeviceKey(MASTER, deviceId));
}

const ZERO_STATS: BrokerStats = {
  connectionsRefused: 0,
  publishesRefused: 0,
  subscriptionsRefused: 0,
  oversizedDropped: 0,
};

interface Received {
  readonly topic: string;
  readonly payload: string;
  readonly retain: boolean;
}

let broker: EmbeddedBroker;
let logged: { level: string; obj: object; msg: string }[];
let clients: MqttClient[];
let sockets: Socket[];

beforeEach(async () => {
  logged = [];
  clients = [];
  sockets = [];
  broker = await startEmbeddedBroker({
    masterKey: MASTER,
    lookupDevice: (id) => DEVICES[id],
    server: SERVER,
    connectTimeoutMs: 1_500,
    logger: {
      warn: (obj, msg) => logged.push({ level: 'warn', obj, msg }),
      info: (obj, msg) => logged.push({ level: 'info', obj, msg }),
    },
  });
});

afterEach(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await broker.close();
});

function withTimeout<T>(promise: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function waitFor(
  predicate: () => boolean,
  what: string,
  ms = STEP_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Connects an mqtt.js client; rejects with the CONNACK error (its `code`) if refused. */
function mqttConnect(options: IClientOptions): Promise<MqttClient> {
  const client = connect(broker.url, { reconnectPeriod: 0, connectTimeout: 2_000, ...options });
  clients.push(client);
  return withTimeout(
    new Promise<MqttClient>((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    }),
    `connect ${options.clientId ?? '?'}`,
  );
}

function connectDevice(deviceId: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return mqttConnect({
    clientId: deviceId,
    username: deviceId,
    password: passwordOf(deviceId),
    ...extra,
  });
}

/** The server client, subscribed to every device's channels, with what it has received. */
async function connectServer(): Promise<{ client: MqttClient; received: Received[] }> {
  const client = await mqttConnect({
    clientId: 'threshold-server-test',
    username: SERVER.username,
    password: SERVER.password,
  });
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    received.push({ topic, payload: payload.toString(), retain: packet.retain });
  });
  await withTimeout(client.subscribeAsync(SERVER_SUBSCRIPTION, { qos: 1 }), 'server subscribe');
  return { client, received };
}

/** Resolves when the broker has closed the client's connection. */
function closed(client: MqttClient, what: string): Promise<void> {
  if (!client.connected) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => client.once('close', () => resolve())), what);
}

/** Resolves when a raw socket has been closed by the broker. */
function socketClosed(socket: Socket, what: string, ms = STEP_TIMEOUT_MS): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return withTimeout(
    new Promise<void>((resolve) => socket.once('close', () => resolve())),
    what,
    ms,
  );
}

async function rawSocket(): Promise<Socket> {
  const socket = netConnect(broker.port, '127.0.0.1');
  sockets.push(socket);
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  await withTimeout(connected, 'raw connect');
  // After the connect, errors (ECONNRESET when the broker cuts us) are expected.
  socket.on('error', () => {});
  return socket;
}

/**
 * Sends a control message from `cam-1` on an allowed topic and waits until the server has it,
 * then waits a further {@link QUIET_MS}: anything sent before the control message would have
 * arrived by then.
 */
async function sendControlAndSettle(received: Received[], tag: string): Promise<void> {
  const cam = await connectDevice('cam-1');
  const topic = deviceTopic('home-a', 'cam-1', 'event');
  await withTimeout(cam.publishAsync(topic, tag, { qos: 1 }), 'control publish');
  await waitFor(() => received.some((m) => m.topic === topic && m.payload === tag), 'control');
  await sleep(QUIET_MS);
  await cam.endAsync();
}

/** Asserts that a subscription was answered with SUBACK failure (0x80). */
async function expectSubackFailure(subscription: Promise<unknown>, filter: string): Promise<void> {
  await expect(withTimeout(subscription, `subscribe ${filter}`)).rejects.toMatchObject({
    packet: { cmd: 'suback', granted: [128] },
  });
}

function allLogText(): string {
  return JSON.stringify(logged);
}

describe('embedded broker: authentication', () => {
  it('accepts a device with its derived password and listens on loopback', async () => {
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const lock = await connectDevice('lock-1');
    expect(lock.connected).toBe(true);
    expect(broker.stats()).toEqual(ZERO_STATS);
  });

  it('refuses a wrong password, an unknown device, a missing password and a borrowed client id', async () => {
    const wrong = 'not-the-password-0123456789';
    await expect(
      mqttConnect({ clientId: 'lock-1', username: 'lock-1', password: wrong }),
    ).rejects.toMatchObject({ code: 4 });
    // An unknown device, even with the password its id would derive to.
    await expect(connectDevice('ghost-9')).rejects.toMatchObject({ code: 4 });
    await expect(mqttConnect({ clientId: 'lock-1', username: 'lock-1' })).rejects.toMatchObject({
      code: 4,
    });
    // Another device's password does not work for lock-1.
    await expect(
      mqttConnect({ clientId: 'lock-1', username: 'lock-1', password: passwordOf('cam-1') }),
    ).rejects.toMatchObject({ code: 4 });
    // cam-1's valid credentials cannot take lock-1's client id (and kick lock-1 off).
    const lock = await connectDevice('lock-1');
    await expect(
      mqttConnect({ clientId: 'lock-1', username: 'cam-1', password: passwordOf('cam-1') }),
    ).rejects.toMatchObject({ code: 5 });
    expect(lock.connected).toBe(true);

    expect(broker.stats()).toEqual({ ...ZERO_STATS, connectionsRefused: 5 });
    const refusals = logged.filter((l) => l.msg === 'mqtt connection refused');
    expect(refusals).toHaveLength(5);
    // Passwords, right or wrong, are never logged.
    expect(allLogText()).not.toContain(wrong);
    expect(allLogText()).not.toContain(passwordOf('cam-1'));
    expect(allLogText()).not.toContain(passwordOf('ghost-9'));
  });

  it('accepts the server only with its password and a threshold-server client id', async () => {
    const { client } = await connectServer();
    expect(client.connected).toBe(true);
    await expect(
      mqttConnect({ clientId: 'threshold-server-2', username: SERVER.username, password: 'x' }),
    ).rejects.toMatchObject({ code: 4 });
    await expect(
      mqttConnect({ clientId: 'lock-1', username: SERVER.username, password: SERVER.password }),
    ).rejects.toMatchObject({ code: 5 });
    expect(broker.stats()).toEqual({ ...ZERO_STATS, connectionsRefused: 2 });
    expect(allLogText()).not.toContain(SERVER.password);
  });

  it('refuses a device id with the reserved threshold-server prefix, even if it is known', async () => {
    DEVICES['threshold-server-x'] = { homeId: 'home-a' };
    try {
      await expect(connectDevice('threshold-server-x')).rejects.toMatchObject({ code: 4 });
    } finally {
      delete DEVICES['threshold-server-x'];
    }
    expect(broker.stats().connectionsRefused).toBe(1);
  });

  it('refuses a will on another device topic, and accepts one on its own availability topic', async () => {
    await expect(
      connectDevice('lock-1', {
        will: {
          topic: deviceTopic('home-a', 'cam-1', 'availability'),
          payload: Buffer.from('{"online":false}'),
          qos: 1,
          retain: true,
        },
      }),
    ).rejects.toMatchObject({ code: 5 });
    await expect(
      connectDevice('lock-1', {
        will: {
          topic: deviceTopic('home-a', 'lock-1', 'state'),
          payload: Buffer.from('{}'),
          qos: 0,
          retain: false,
        },
      }),
    ).rejects.toMatchObject({ code: 5 });
    expect(broker.stats()).toEqual({ ...ZERO_STATS, connectionsRefused: 2 });

    const { received } = await connectServer();
    const availability = deviceTopic('home-a', 'lock-1', 'availability');
    const lock = await connectDevice('lock-1', {
      will: { topic: availability, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
    });
    // Revocation: the server cuts the device off; its own will announces it offline.
    broker.disconnectDevice('lock-1');
    await closed(lock, 'lock-1 disconnected by the server');
    await waitFor(() => received.some((m) => m.topic === availability), 'the will');
    expect(received.find((m) => m.topic === availability)?.payload).toBe('{"online":false}');
  });
});

describe('embedded broker: retained messages', () => {
  /** Subscribes `client` to `topic` and collects what arrives. */
  async function subscribed(client: MqttClient, topic: string): Promise<Received[]> {
    const got: Received[] = [];
    client.on('message', (t, payload, packet) =>
      got.push({ topic: t, payload: payload.toString(), retain: packet.retain }),
    );
    await withTimeout(client.subscribeAsync(topic, { qos: 1 }), `subscribe ${topic}`);
    return got;
  }

  it("gives a device's exact subscription its retained message, and none once it is cleared", async () => {
    const { client: server } = await connectServer();
    // A lock's grant list is what the server keeps retained for a device.
    const lock1Grants = deviceTopic('home-a', 'lock-1', 'grants');
    const lock2Grants = deviceTopic('home-b', 'lock-2', 'grants');
    await server.publishAsync(lock1Grants, 'list-1', { qos: 1, retain: true });
    await server.publishAsync(lock2Grants, 'list-2', { qos: 1, retain: true });
    await server.publishAsync(lock1Grants, 'list-1b', { qos: 1, retain: true });

    const first = await connectDevice('lock-1');
    const got = await subscribed(first, lock1Grants);
    await waitFor(() => got.length > 0, 'the retained message');
    await sleep(QUIET_MS);
    // Only the newest of its own topic, nothing of another device's.
    expect(got).toEqual([{ topic: lock1Grants, payload: 'list-1b', retain: true }]);
    await first.endAsync(true);

    await server.publishAsync(lock1Grants, '', { qos: 1, retain: true });
    const again = await connectDevice('lock-1');
    const none = await subscribed(again, lock1Grants);
    await sleep(QUIET_MS);
    expect(none).toEqual([]);
  });

  it('gives a wildcard subscription every matching retained message', async () => {
    const lock = await connectDevice('lock-1');
    const cam = await connectDevice('cam-1');
    const lockState = deviceTopic('home-a', 'lock-1', 'state');
    const camState = deviceTopic('home-a', 'cam-1', 'state');
    await lock.publishAsync(lockState, '{"bolt":"locked"}', { qos: 1, retain: true });
    await cam.publishAsync(camState, '{"recording":false}', { qos: 1, retain: true });
    const { received } = await connectServer();
    await waitFor(() => received.length >= 2, 'both retained states');
    expect(
      received
        .filter((m) => m.retain)
        .map((m) => m.topic)
        .sort(),
    ).toEqual([camState, lockState].sort());
  });
});

describe('embedded broker: memory', () => {
  it("writes packet ids without mqtt-packet's table of 65,536 Buffers", async () => {
    const { received } = await connectServer();
    const lock = await connectDevice('lock-1');
    const topic = deviceTopic('home-a', 'lock-1', 'state');
    // QoS 1 both ways: the broker writes each PUBACK's id and each forwarded message's id.
    for (const bolt of ['locked', 'unlocked', 'locked']) {
      await lock.publishAsync(topic, `{"bolt":"${bolt}"}`, { qos: 1 });
    }
    await waitFor(() => received.filter((m) => m.topic === topic).length === 3, 'three states');
    // The writer aedes uses (mqtt.js in this test shares it) never built its table.
    const fromAedes = createRequire(import.meta.resolve('aedes'));
    const ids = fromAedes('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };
    expect(Object.keys(ids.cache)).toHaveLength(0);
  });
});

describe('embedded broker: ACL', () => {
  it('delivers a device state to the server', async () => {
    const { received } = await connectServer();
    const lock = await connectDevice('lock-1');
    const topic = deviceTopic('home-a', 'lock-1', 'state');
    await lock.publishAsync(topic, '{"bolt":"locked"}', { qos: 1, retain: true });
    await waitFor(() => received.some((m) => m.topic === topic), 'lock-1 state');
    expect(received.find((m) => m.topic === topic)?.payload).toBe('{"bolt":"locked"}');
    expect(broker.stats()).toEqual(ZERO_STATS);
  });

  it.each([
    ['another device of the same home', deviceTopic('home-a', 'cam-1', 'heartbeat'), false],
    ['a device of another home', deviceTopic('home-b', 'lock-2', 'state'), false],
    ['its own id under another home', deviceTopic('home-b', 'lock-1', 'state'), false],
    ['its own command topic', deviceTopic('home-a', 'lock-1', 'command'), false],
    ['a topic outside the protocol', 'threshold/v1/home-a/lock-1/state/extra', false],
    ['$SYS', '$SYS/broker/heartbeat', false],
    ['its own heartbeat, retained', deviceTopic('home-a', 'lock-1', 'heartbeat'), true],
  ])(
    'refuses a device publishing on %s; the server never receives it',
    async (_, topic, retain) => {
      const { received } = await connectServer();
      const lock = await connectDevice('lock-1');
      await lock.publishAsync(topic, 'forged', { qos: 0, retain });
      // aedes answers a refused PUBLISH by closing the connection (MQTT 3.1.1 cannot refuse it).
      await closed(lock, 'lock-1 cut off after the refused publish');
      expect(broker.stats()).toEqual({ ...ZERO_STATS, publishesRefused: 1 });
      await sendControlAndSettle(received, `after ${topic}`);
      expect(received.filter((m) => m.payload === 'forged')).toEqual([]);
      const warning = logged.find((l) => l.msg === 'mqtt publish refused');
      expect(warning?.obj).toMatchObject({ deviceId: 'lock-1', topic });
    },
  );

  it('lets a device subscribe only to exactly its own command topic and delivers its commands', async () => {
    const { client: server } = await connectServer();
    const lock = await connectDevice('lock-1');
    const commands: Received[] = [];
    lock.on('message', (topic, payload) =>
      commands.push({ topic, payload: payload.toString(), retain: false }),
    );

    for (const filter of [
      deviceTopic('home-a', 'cam-1', 'command'),
      deviceTopic('home-b', 'lock-2', 'command'),
      'threshold/v1/home-a/+/command',
      'threshold/v1/#',
      '#',
      deviceTopic('home-a', 'lock-1', 'state'),
    ]) {
      await expectSubackFailure(lock.subscribeAsync(filter, { qos: 1 }), filter);
    }
    expect(broker.stats()).toEqual({ ...ZERO_STATS, subscriptionsRefused: 6 });
    expect(lock.connected).toBe(true);

    const own = deviceTopic('home-a', 'lock-1', 'command');
    await withTimeout(lock.subscribeAsync(own, { qos: 1 }), 'own command subscription');
    // A command for another device first; ordering proves it would have arrived before.
    await server.publishAsync(deviceTopic('home-a', 'cam-1', 'command'), 'for-cam', { qos: 1 });
    await server.publishAsync(own, 'for-lock', { qos: 1 });
    await waitFor(() => commands.length > 0, 'lock-1 command');
    await sleep(QUIET_MS);
    expect(commands).toEqual([{ topic: own, payload: 'for-lock', retain: false }]);
  });

  it('lets the server publish only commands, never retained', async () => {
    const { client: server } = await connectServer();
    await server.publishAsync(deviceTopic('home-a', 'lock-1', 'state'), 'spoofed', { qos: 0 });
    await closed(server, 'server cut off after publishing a state');
    const { client: server2 } = await connectServer();
    await server2.publishAsync(deviceTopic('home-a', 'lock-1', 'command'), 'sticky', {
      qos: 0,
      retain: true,
    });
    await closed(server2, 'server cut off after a retained command');
    expect(broker.stats()).toEqual({ ...ZERO_STATS, publishesRefused: 2 });
  });

  it('refuses server subscriptions outside threshold/v1/', async () => {
    const { client: server } = await connectServer();
    await expectSubackFailure(server.subscribeAsync('$SYS/#'), '$SYS/#');
    await expectSubackFailure(server.subscribeAsync('#'), '#');
    expect(broker.stats()).toEqual({ ...ZERO_STATS, subscriptionsRefused: 2 });
  });
});

describe('embedded broker: hostile bytes', () => {
  it('cuts an oversized publish, counts it, and keeps serving others', async () => {
    const { received } = await connectServer();
    const cam = await connectDevice('cam-1');
    const frameTopic = deviceTopic('home-a', 'cam-1', 'frame');
    // A large but legitimate frame goes through.
    const bigFrame = 'f'.repeat(200 * 1024);
    await cam.publishAsync(frameTopic, bigFrame, { qos: 1 });
    await waitFor(() => received.some((m) => m.payload === bigFrame), 'the 200 KB frame');

    const oversized = 'x'.repeat(DEFAULT_MAX_PACKET_BYTES + 1);
    cam.publish(frameTopic, oversized, { qos: 0 });
    await closed(cam, 'cam-1 cut off after the oversized publish');
    expect(broker.stats()).toEqual({ ...ZERO_STATS, oversizedDropped: 1 });

    // The broker still serves: another device gets through, and the oversized one never did.
    const lock = await connectDevice('lock-1');
    const topic = deviceTopic('home-a', 'lock-1', 'event');
    await lock.publishAsync(topic, 'still-serving', { qos: 1 });
    await waitFor(() => received.some((m) => m.payload === 'still-serving'), 'lock-1 event');
    await sleep(QUIET_MS);
    expect(received.filter((m) => m.payload === oversized)).toEqual([]);
  });

  it('cuts a connection whose first packet announces a huge length, before buffering it', async () => {
    const socket = await rawSocket();
    // CONNECT, remaining length 100 MB (varint 0x80 0x80 0xd0 0x2f ≈ 100 000 000).
    socket.write(Buffer.from([0x10, 0x80, 0xc2, 0xd7, 0x2f]));
    await socketClosed(socket, 'huge CONNECT cut', 1_000);
    expect(broker.stats()).toEqual({ ...ZERO_STATS, oversizedDropped: 1 });
  });

  it('drops connections that send garbage and keeps serving a proper client', async () => {
    const { received } = await connectServer();
    const lock = await connectDevice('lock-1');

    const garbage: Buffer[] = [
      Buffer.from('GET / HTTP/1.1\r\nHost: broker\r\n\r\n'),
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), // five-byte remaining length
      Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x62, 0x63]), // PUBLISH before CONNECT
      Buffer.from([0xc0, 0x00]), // PINGREQ before CONNECT
      ...Array.from({ length: 20 }, () => randomBytes(1 + Math.floor(Math.random() * 4096))),
    ];
    const sockets = await Promise.all(garbage.map(() => rawSocket()));
    sockets.forEach((s, i) => s.write(garbage[i]!));
    // Every one of them is closed by the broker (at worst when the CONNECT deadline passes).
    await Promise.all(sockets.map((s, i) => socketClosed(s, `garbage #${i}`, 4_000)));

    // The client that was connected all along still works, and so does a new one.
    expect(lock.connected).toBe(true);
    const topic = deviceTopic('home-a', 'lock-1', 'event');
    await lock.publishAsync(topic, 'survived', { qos: 1 });
    const cam = await connectDevice('cam-1');
    await cam.publishAsync(deviceTopic('home-a', 'cam-1', 'event'), 'fresh', { qos: 1 });
    await waitFor(
      () =>
        received.some((m) => m.payload === 'survived') &&
        received.some((m) => m.payload === 'fresh'),
      'messages after the garbage',
    );
  });
});

describe('embedded broker: lifecycle', () => {
  it('close() disconnects clients and is idempotent', async () => {
    const lock = await connectDevice('lock-1');
    const raw = await rawSocket();
    const lockClosed = closed(lock, 'lock-1 closed by broker.close()');
    await Promise.all([broker.close(), broker.close()]);
    await lockClosed;
    await socketClosed(raw, 'raw socket closed by broker.close()', 1_000);
    await broker.close();
    await expect(rawSocket()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

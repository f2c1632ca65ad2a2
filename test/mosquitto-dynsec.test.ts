/**
 * Device credentials and the per-device ACL on a real, external mosquitto (Debian's, with its
 * dynamic security plugin), written by Threshold: the same refusals the embedded broker makes
 * (src/broker/embedded-broker.test.ts) must hold there. "Never received" is proven by order:
 * a control message sent after the refused one arrives, the refused one does not.
 */
import { randomBytes } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mqttBrokerLink, type BrokerLink } from '../src/broker/broker-link.ts';
import { MosquittoDynsec, type BrokerDevice } from '../src/broker/mosquitto-dynsec.ts';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import { SERVER_SUBSCRIPTION, SERVER_SUBSCRIPTIONS, deviceTopic } from '../src/protocol/topics.ts';
import {
  addMosquittoObserver,
  startMosquitto,
  type MqttCredentials,
  type TestMosquitto,
} from '../src/harness/mosquitto.ts';

const MASTER = randomBytes(32);
const SERVER = serverMqttCredentials(MASTER);
const ADMIN = { adminUsername: 'admin', adminPassword: randomBytes(12).toString('hex') };
const LOCK = { id: 'lock-a1', homeId: 'home-a', kind: 'lock' as const };
const CAMERA = { id: 'cam-a1', homeId: 'home-a', kind: 'camera' as const };
const OTHER_LOCK = { id: 'lock-b1', homeId: 'home-b', kind: 'lock' as const };

let broker: TestMosquitto;
let dynsec: MosquittoDynsec;
let link: BrokerLink;
let observer: MqttCredentials;
const received: string[] = [];
const clients: MqttClient[] = [];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

/** Connects with `credentials` (the server's, the observer's) under a client id of its own. */
async function connectAs(credentials: MqttCredentials, clientId: string): Promise<MqttClient> {
  const client = await connectAsync(broker.url, {
    ...credentials,
    clientId,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 3_000,
  });
  clients.push(client);
  return client;
}

async function connectDevice(
  id: string,
  options: { password?: string; clientId?: string } = {},
): Promise<MqttClient> {
  const client = await connectAsync(broker.url, {
    username: id,
    password: options.password ?? mqttPassword(deriveDeviceKey(MASTER, id)),
    clientId: options.clientId ?? id,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 3_000,
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  broker = await startMosquitto({ dynsec: ADMIN });
  dynsec = await MosquittoDynsec.connect({
    url: broker.url,
    ...ADMIN,
    masterKey: MASTER,
    server: SERVER,
  });
  await dynsec.ensureServer();
  for (const d of [LOCK, CAMERA, OTHER_LOCK]) await dynsec.ensureDevice(d);
  observer = await addMosquittoObserver(broker, ADMIN);
  link = mqttBrokerLink({ url: broker.url, ...SERVER, clientId: `${SERVER.username}-test` });
  await link.start((topic, payload) => {
    received.push(`${topic} ${payload.toString()}`);
    return Promise.resolve();
  });
}, 30_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await link?.stop();
  await dynsec?.close();
  await broker?.stop();
});

describe('mosquitto with Threshold-written accounts', () => {
  it('lets a device in with its derived password and its own client id only', async () => {
    await expect(connectDevice(LOCK.id)).resolves.toBeDefined();
    await expect(connectDevice(LOCK.id, { password: 'wrong' })).rejects.toThrow(
      /not authorized|bad user/i,
    );
    // Another device's id as client id: it could take over that device's session.
    await expect(connectDevice(LOCK.id, { clientId: CAMERA.id })).rejects.toThrow(
      /not authorized|identifier rejected|bad user/i,
    );
    await expect(connectDevice('lock-unknown', { password: 'x' })).rejects.toThrow(
      /not authorized|bad user/i,
    );
  });

  it('delivers a device’s own up channels to the server, and nothing it publishes elsewhere', async () => {
    const camera = await connectDevice(CAMERA.id);
    received.length = 0;
    // Another device's topic, in its own home and in another; its own command topic.
    await camera.publishAsync(deviceTopic(LOCK.homeId, LOCK.id, 'event'), 'forged', { qos: 1 });
    await camera.publishAsync(deviceTopic(OTHER_LOCK.homeId, OTHER_LOCK.id, 'state'), 'forged', {
      qos: 1,
    });
    await camera.publishAsync(deviceTopic(CAMERA.homeId, CAMERA.id, 'command'), 'forged', {
      qos: 1,
    });
    await camera.publishAsync(deviceTopic(CAMERA.homeId, CAMERA.id, 'heartbeat'), 'control', {
      qos: 1,
    });
    await until('the control message', () => received.some((r) => r.endsWith('control')));
    await sleep(200);
    expect(received).toEqual([`${deviceTopic(CAMERA.homeId, CAMERA.id, 'heartbeat')} control`]);
  });

  it('lets a device subscribe to its own command topic only, and delivers the server’s commands there', async () => {
    const lock = await connectDevice(LOCK.id);
    const own = deviceTopic(LOCK.homeId, LOCK.id, 'command');
    const grants = deviceTopic(LOCK.homeId, LOCK.id, 'grants');
    // Refused with SUBACK 0x80, which mqtt.js reports as an error.
    for (const topic of [
      deviceTopic(OTHER_LOCK.homeId, OTHER_LOCK.id, 'command'),
      'threshold/v1/#',
    ]) {
      await expect(lock.subscribeAsync(topic, { qos: 1 }), topic).rejects.toThrow(
        /subscribe error/i,
      );
    }
    const granted = await lock.subscribeAsync([own, grants], { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    const got: string[] = [];
    lock.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await link.publish(own, 'unlock');
    await link.publish(grants, 'list', { retain: true });
    await until('both', () => got.length >= 2);
    expect(got).toEqual([`${own} unlock`, `${grants} list`]);
  });

  it('lets the server’s account subscribe to the up channels only, and never hands it a command; the test observer reads them', async () => {
    const server = await connectAs(SERVER, `${SERVER.username}-reader`);
    // The filters the server's link uses are granted, each exactly.
    const granted = await server.subscribeAsync([...SERVER_SUBSCRIPTIONS], { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual(SERVER_SUBSCRIPTIONS.map(() => 1));
    // Anything that would cover commands or grant lists is refused (SUBACK 0x80).
    for (const topic of [
      'threshold/v1/#',
      SERVER_SUBSCRIPTION,
      'threshold/v1/+/+/command',
      deviceTopic(LOCK.homeId, LOCK.id, 'command'),
      deviceTopic(LOCK.homeId, LOCK.id, 'grants'),
    ]) {
      await expect(server.subscribeAsync(topic, { qos: 1 }), topic).rejects.toThrow(
        /subscribe error/i,
      );
    }
    const watcher = await connectAs(observer, `${observer.username}-1`);
    await watcher.subscribeAsync(SERVER_SUBSCRIPTION, { qos: 1 });
    const seenByServer: string[] = [];
    const seenByObserver: string[] = [];
    server.on('message', (topic, payload) => seenByServer.push(`${topic} ${payload.toString()}`));
    // A grant list retained by an earlier test arrives first; only the live traffic counts.
    watcher.on('message', (topic, payload, packet) => {
      if (!packet.retain) seenByObserver.push(`${topic} ${payload.toString()}`);
    });
    const command = deviceTopic(LOCK.homeId, LOCK.id, 'command');
    const state = deviceTopic(LOCK.homeId, LOCK.id, 'state');
    await link.publish(command, 'unlock');
    // A control message after the command: once the server has it, the command would have
    // come first.
    const lock = await connectDevice(LOCK.id, { clientId: LOCK.id });
    await lock.publishAsync(state, 'control', { qos: 1 });
    await until('the server hears the control', () => seenByServer.includes(`${state} control`));
    await until('the observer hears both', () => seenByObserver.length >= 2);
    expect(seenByServer).toEqual([`${state} control`]);
    expect(seenByObserver).toEqual([`${command} unlock`, `${state} control`]);
  });

  it('writes the same accounts again without change, and a disabled device is cut off', async () => {
    await dynsec.ensureServer();
    await dynsec.ensureDevice(CAMERA);
    const camera = await connectDevice(CAMERA.id);
    const closed = new Promise<void>((resolve) => camera.once('close', () => resolve()));
    await dynsec.disableDevice(CAMERA.id);
    await closed;
    await expect(connectDevice(CAMERA.id)).rejects.toThrow(/not authorized|bad user/i);
    // Writing it again (a device re-added) lets it back in.
    await dynsec.ensureDevice(CAMERA);
    await expect(connectDevice(CAMERA.id)).resolves.toBeDefined();
  });

  it('refuses an admin account the plugin does not know', async () => {
    await expect(
      MosquittoDynsec.connect({
        url: broker.url,
        adminUsername: 'admin',
        adminPassword: 'not-the-password',
        masterKey: MASTER,
        server: SERVER,
      }),
    ).rejects.toThrow(/not authorized|bad user/i);
  });
});

describe('writing every device’s account at a start', () => {
  const MASTER_2 = randomBytes(32);
  const KINDS = ['lock', 'door-sensor', 'camera'] as const;
  const HOME: BrokerDevice[] = Array.from({ length: 6 }, (_, i) => ({
    id: `dev-${i}`,
    homeId: 'home-s',
    kind: KINDS[i % KINDS.length]!,
  }));
  let own: TestMosquitto;
  let writer: MosquittoDynsec;
  const opened: MqttClient[] = [];

  async function connectWith(master: Uint8Array, id: string): Promise<MqttClient> {
    const client = await connectAsync(own.url, {
      username: id,
      password: mqttPassword(deriveDeviceKey(master, id)),
      clientId: id,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 3_000,
    });
    opened.push(client);
    return client;
  }

  beforeAll(async () => {
    own = await startMosquitto({ dynsec: ADMIN });
    writer = await MosquittoDynsec.connect({
      url: own.url,
      ...ADMIN,
      masterKey: MASTER,
      server: SERVER,
    });
    await writer.ensureServer();
  }, 30_000);

  afterAll(async () => {
    await Promise.all(opened.map((c) => c.endAsync(true).catch(() => {})));
    await writer?.close();
    await own?.stop();
  });

  it('writes the new devices, then nothing while nothing changed, and leaves connected devices be', async () => {
    expect(await writer.ensureDevices(HOME)).toEqual({ written: HOME.length, disabled: 0 });
    const first = await connectWith(MASTER, HOME[0]!.id);
    let closed = false;
    first.once('close', () => {
      closed = true;
    });
    expect(await writer.ensureDevices(HOME)).toEqual({ written: 0, disabled: 0 });
    await writer.ensureServer();
    // Still connected: nothing was rewritten (a password written again disconnects).
    await first.publishAsync(deviceTopic('home-s', HOME[0]!.id, 'heartbeat'), 'x', { qos: 1 });
    await sleep(200);
    expect(closed).toBe(false);
  });

  it('disables the accounts of devices no longer listed, and enables one that is back', async () => {
    const gone = HOME.at(-1)!;
    const kept = HOME.slice(0, -1);
    const connected = await connectWith(MASTER, gone.id);
    const cut = new Promise<void>((resolve) => connected.once('close', () => resolve()));
    // A device the store still has (added after the list was read) keeps its account.
    expect(await writer.ensureDevices(kept, () => Promise.resolve(false))).toEqual({
      written: 0,
      disabled: 0,
    });
    expect(await writer.ensureDevices(kept, (id) => Promise.resolve(id === gone.id))).toEqual({
      written: 0,
      disabled: 1,
    });
    await cut;
    await expect(connectWith(MASTER, gone.id)).rejects.toThrow(/not authorized|bad user/i);
    // Already disabled: not disabled again.
    expect(await writer.ensureDevices(kept)).toEqual({ written: 0, disabled: 0 });
    expect(await writer.ensureDevices(HOME)).toEqual({ written: 1, disabled: 0 });
    await expect(connectWith(MASTER, gone.id)).resolves.toBeDefined();
  });

  it('rewrites a device’s password when its key changed, and the old one no longer works', async () => {
    const other = await MosquittoDynsec.connect({
      url: own.url,
      ...ADMIN,
      masterKey: MASTER_2,
      server: serverMqttCredentials(MASTER_2),
    });
    try {
      expect(await other.ensureDevices(HOME)).toEqual({ written: HOME.length, disabled: 0 });
      for (const d of HOME) {
        await expect(connectWith(MASTER, d.id), d.id).rejects.toThrow(/not authorized|bad user/i);
        await expect(connectWith(MASTER_2, d.id), d.id).resolves.toBeDefined();
      }
      expect(await other.ensureDevices(HOME)).toEqual({ written: 0, disabled: 0 });
    } finally {
      await other.close();
    }
  });

  it('puts back a device role’s ACL changed on the broker', async () => {
    const lock = HOME[0]!;
    const topic = deviceTopic(lock.homeId, lock.id, 'command');
    const admin = await connectAsync(own.url, {
      username: ADMIN.adminUsername,
      password: ADMIN.adminPassword,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    opened.push(admin);
    await admin.publishAsync(
      '$CONTROL/dynamic-security/v1',
      JSON.stringify({
        commands: [
          {
            command: 'removeRoleACL',
            rolename: `threshold-device-${lock.id}`,
            acltype: 'subscribeLiteral',
            topic,
          },
        ],
      }),
      { qos: 1 },
    );
    const device = await connectWith(MASTER_2, lock.id);
    await expect(device.subscribeAsync(topic, { qos: 1 })).rejects.toThrow(/subscribe error/i);
    const again = await MosquittoDynsec.connect({
      url: own.url,
      ...ADMIN,
      masterKey: MASTER_2,
      server: serverMqttCredentials(MASTER_2),
    });
    try {
      expect(await again.ensureDevices(HOME)).toEqual({ written: 1, disabled: 0 });
    } finally {
      await again.close();
    }
    const back = await connectWith(MASTER_2, lock.id);
    const granted = await back.subscribeAsync(topic, { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
  });
});

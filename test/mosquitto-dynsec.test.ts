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
import { MosquittoDynsec } from '../src/broker/mosquitto-dynsec.ts';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import { startMosquitto, type TestMosquitto } from '../src/harness/mosquitto.ts';

const MASTER = randomBytes(32);
const SERVER = serverMqttCredentials(MASTER);
const ADMIN = { adminUsername: 'admin', adminPassword: randomBytes(12).toString('hex') };
const LOCK = { id: 'lock-a1', homeId: 'home-a', kind: 'lock' as const };
const CAMERA = { id: 'cam-a1', homeId: 'home-a', kind: 'camera' as const };
const OTHER_LOCK = { id: 'lock-b1', homeId: 'home-b', kind: 'lock' as const };

let broker: TestMosquitto;
let dynsec: MosquittoDynsec;
let link: BrokerLink;
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

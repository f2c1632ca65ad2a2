/**
 * The hub publishing its doors to Home Assistant (`homeAssistant:` in hub.yaml): a hub with
 * memory devices, read from a YAML file as a user writes it, and a real mosquitto standing in
 * for Home Assistant's broker, read back the way Home Assistant reads it (discovery configs,
 * then the state topics they name).
 *
 * The control plane is absent on purpose (its URL points at a closed port): the hub enforces
 * and publishes without it, and Home Assistant's broker being away at first holds nothing up.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/devices/device-connection.ts';
import { loadHubConfig } from '../src/hub/config.ts';
import type { MemoryCamera, MemoryContact, MemoryLock } from '../src/hub/drivers/memory.ts';
import { Hub } from '../src/hub/hub.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { startMosquitto } from '../src/harness/mosquitto.ts';
import { freePort } from '../src/harness/free-port.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

function secret(n: number): string {
  return Buffer.alloc(32, n).toString('base64url');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

/** What a Home Assistant would see: the newest retained-or-live payload of every topic. */
async function watch(url: string): Promise<{ client: MqttClient; topics: Map<string, string> }> {
  const topics = new Map<string, string>();
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3_000 });
  cleanups.push(() => client.endAsync(true));
  client.on('message', (topic, payload) => {
    if (payload.length === 0) topics.delete(topic);
    else topics.set(topic, payload.toString());
  });
  await client.subscribeAsync({ 'homeassistant/#': { qos: 1 }, 'threshold-hub/#': { qos: 1 } });
  return { client, topics };
}

describe('the hub publishes its doors to Home Assistant', () => {
  it('one device per door, states that follow the devices, alarms, and offline on stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-hub-ha-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    // Home Assistant's broker is not up yet when the hub starts.
    const haPort = await freePort();
    const deadPort = await freePort();
    writeFileSync(join(dir, 'ha.pass'), 'not checked by this broker\n');
    writeFileSync(
      join(dir, 'hub.yaml'),
      `controlPlane:
  url: mqtt://127.0.0.1:${deadPort}
homeId: home-1
dataDir: ./hub-data
devices:
  - { id: front-lock, kind: lock, secret: ${secret(1)}, driver: memory, options: { motorDelayMs: 50 } }
  - { id: front-sensor, kind: door-sensor, secret: ${secret(2)}, driver: memory }
  - { id: front-camera, kind: camera, secret: ${secret(3)}, driver: memory }
  - { id: back-lock, kind: lock, secret: ${secret(4)}, driver: memory, options: { pinCapacity: null } }
doors:
  - { id: front, name: Front door, lock: front-lock, doorSensor: front-sensor, camera: front-camera, relockMs: 1000 }
  - { id: back, lock: back-lock }
homeAssistant:
  broker: mqtt://127.0.0.1:${haPort}
  username: threshold-hub
  passwordFile: ha.pass
`,
    );
    const config = loadHubConfig(join(dir, 'hub.yaml'));
    const hub = new Hub({
      config,
      clock: systemClock,
      logger: silentLogger,
      link: { reconnectPeriodMs: 200 },
      homeAssistant: { reconnectPeriodMs: 200 },
    });
    cleanups.push(() => hub.stop());
    const lock = hub.driver('front-lock') as MemoryLock;
    const door = hub.driver('front-sensor') as MemoryContact;
    const camera = hub.driver('front-camera') as MemoryCamera;

    const startedAt = Date.now();
    await hub.start();
    // Neither broker is reachable, and the hub is running all the same.
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(hub.homeAssistantConnected()).toBe(false);

    const broker = await startMosquitto({ port: haPort });
    cleanups.push(() => broker.stop());
    const { topics } = await watch(broker.url);
    const base = 'threshold-hub/home-1';
    await until(
      () => topics.get(`${base}/availability`) === 'online',
      5_000,
      'the bridge connects once the broker is up',
    );
    expect(hub.homeAssistantConnected()).toBe(true);

    // Discovery: the front door has all four entities, the back door (a lock alone) two.
    const node = 'homeassistant/%s/threshold_home-1/%s/config';
    const configTopic = (component: string, object: string): string =>
      node.replace('%s', component).replace('%s', object);
    const expected = [
      configTopic('sensor', 'front_lock'),
      configTopic('binary_sensor', 'front_door'),
      configTopic('sensor', 'front_camera'),
      configTopic('binary_sensor', 'front_alarm'),
      configTopic('sensor', 'back_lock'),
      configTopic('binary_sensor', 'back_alarm'),
    ];
    await until(() => expected.every((t) => topics.has(t)), 5_000, 'every config is published');
    const configs = [...topics]
      .filter(([t]) => t.startsWith('homeassistant/'))
      .map(([t, p]) => [t, JSON.parse(p) as Record<string, unknown>] as const);
    expect(configs.map(([t]) => t).sort()).toEqual([...expected].sort());
    // Read-only: no lock entity, no command topic anywhere.
    expect(configs.some(([t, c]) => t.includes('/lock/') || 'command_topic' in c)).toBe(false);
    const devices = new Map<string, unknown>();
    for (const [topic, c] of configs) {
      const device = c.device as { identifiers: string[] };
      const doorId = topic.includes('/front_') ? 'front' : 'back';
      expect(device.identifiers).toEqual([`threshold_home-1_${doorId}`]);
      devices.set(device.identifiers[0]!, device);
      expect(c.availability_topic).toBe(`${base}/availability`);
    }
    // One device block per door, named as hub.yaml says (the id when no name is given).
    expect([...devices.values()]).toEqual([
      {
        identifiers: ['threshold_home-1_front'],
        name: 'Front door',
        manufacturer: 'Threshold',
        model: 'Door watched by a Threshold hub',
        sw_version: VERSION,
      },
      {
        identifiers: ['threshold_home-1_back'],
        name: 'back',
        manufacturer: 'Threshold',
        model: 'Door watched by a Threshold hub',
        sw_version: VERSION,
      },
    ]);

    const cfg = (component: string, object: string): Record<string, unknown> =>
      JSON.parse(topics.get(configTopic(component, object))!) as Record<string, unknown>;
    const lockCfg = cfg('sensor', 'front_lock');
    const doorCfg = cfg('binary_sensor', 'front_door');
    const cameraCfg = cfg('sensor', 'front_camera');
    const alarmCfg = cfg('binary_sensor', 'front_alarm');
    const lockTopic = lockCfg.state_topic as string;
    const doorTopic = doorCfg.state_topic as string;
    const cameraTopic = cameraCfg.state_topic as string;
    const alarmTopic = alarmCfg.state_topic as string;
    const state = (topic: string): string | undefined => topics.get(topic);
    /** The payload, checked to be one the topic's config declares (or HA's "unknown"). */
    const declaredLock = (lockCfg.options as string[]).concat('None');
    const declaredCamera = (cameraCfg.options as string[]).concat('None');

    // The values now, as the drivers and the guard report them.
    expect(state(lockTopic)).toBe('locked');
    expect(state(doorTopic)).toBe(doorCfg.payload_off);
    // No session: the guard's watchdog is not running, and the stream is up: not known.
    expect(state(cameraTopic)).toBe('None');
    expect(state(alarmTopic)).toBe(alarmCfg.payload_off);
    expect(state(cfg('sensor', 'back_lock').state_topic as string)).toBe('locked');

    // The bolt turned by hand: the state topic follows, with a payload the config declares.
    lock.turnByHand('unlocked');
    await until(() => state(lockTopic) === 'unlocked', 3_000, 'the bolt state follows');
    expect(declaredLock).toContain(state(lockTopic));
    lock.turnByHand('locked');
    await until(() => state(lockTopic) === 'locked', 3_000, 'the bolt state follows back');

    // The door opened and closed.
    door.open();
    await until(() => state(doorTopic) === doorCfg.payload_on, 3_000, 'the door shows open');
    door.close();
    await until(() => state(doorTopic) === doorCfg.payload_off, 3_000, 'the door shows closed');

    // The camera's stream goes away: offline, not its last state.
    camera.setAvailable(false);
    await until(() => state(cameraTopic) === 'offline', 3_000, 'the camera shows offline');
    expect(declaredCamera).toContain(state(cameraTopic));
    camera.setAvailable(true);
    await until(() => state(cameraTopic) === 'None', 3_000, 'the camera is unknown again');

    // A keypad unlock gets the door's 1 s deadline; the hub's relock jams the bolt: the hub's
    // relock-failed alarm appears in Home Assistant, with its message.
    lock.pins!.setLocally(3, '4711');
    lock.keypadUnlock(3);
    await until(() => state(lockTopic) === 'unlocked', 3_000, 'the keypad opened');
    lock.jam();
    await until(() => state(alarmTopic) === alarmCfg.payload_on, 5_000, 'the alarm is raised');
    expect(state(lockTopic)).toBe('jammed');
    const attributes = JSON.parse(state(alarmCfg.json_attributes_topic as string)!) as {
      alarms: { type: string; since: string; message: string }[];
    };
    expect(attributes.alarms).toEqual([
      {
        type: 'hub.relock-failed',
        since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        message: 'The hub could not throw the bolt',
      },
    ]);
    // Someone frees the bolt and locks by hand: the door is secured, the alarm ends.
    lock.clearJam();
    lock.turnByHand('locked');
    await until(() => state(alarmTopic) === alarmCfg.payload_off, 3_000, 'the alarm clears');
    expect(state(lockTopic)).toBe('locked');
    expect(JSON.parse(state(alarmCfg.json_attributes_topic as string)!)).toEqual({ alarms: [] });

    // A clean stop says offline itself; the entities stay, unavailable.
    await hub.stop();
    await until(
      () => state(`${base}/availability`) === 'offline',
      3_000,
      'the stopped hub says offline',
    );
    expect(topics.has(configTopic('sensor', 'front_lock'))).toBe(true);
  }, 20_000);
});

describe('lock commands from Home Assistant (`lockCommands: true`)', () => {
  it('locks a closed door, never an open one, never unlocks, and logs each request for the audit log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-hub-ha-lock-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const broker = await startMosquitto({ port: await freePort() });
    cleanups.push(() => broker.stop());
    writeFileSync(
      join(dir, 'hub.yaml'),
      `controlPlane:
  url: mqtt://127.0.0.1:${await freePort()}
homeId: home-1
dataDir: ./hub-data
devices:
  - { id: front-lock, kind: lock, secret: ${secret(1)}, driver: memory, options: { motorDelayMs: 50, initialBolt: unlocked } }
  - { id: front-sensor, kind: door-sensor, secret: ${secret(2)}, driver: memory, options: { initialPosition: open } }
doors:
  - { id: front, lock: front-lock, doorSensor: front-sensor }
homeAssistant:
  broker: ${broker.url}
  lockCommands: true
`,
    );
    const hub = new Hub({
      config: loadHubConfig(join(dir, 'hub.yaml')),
      clock: systemClock,
      logger: silentLogger,
      link: { reconnectPeriodMs: 200 },
      homeAssistant: { reconnectPeriodMs: 200 },
    });
    cleanups.push(() => hub.stop());
    const lock = hub.driver('front-lock') as MemoryLock;
    const door = hub.driver('front-sensor') as MemoryContact;
    await hub.start();
    const { client, topics } = await watch(broker.url);
    const lockConfig = 'homeassistant/lock/threshold_home-1/front_lock/config';
    await until(() => topics.has(lockConfig), 5_000, 'the lock entity is announced');
    const announced = JSON.parse(topics.get(lockConfig)!) as { command_topic?: string };
    expect(announced.command_topic).toBe('threshold-hub/home-1/front/lock/set');
    const whys = () => hub.log.unsent().map((f) => f.why);

    // The door is open: LOCK is refused, the bolt stays where it is.
    await client.publishAsync(announced.command_topic!, 'LOCK', { qos: 1 });
    await until(
      () => whys().some((w) => w.includes('refused, the door is open')),
      3_000,
      'the refusal is logged',
    );
    expect(lock.actualBolt()).toBe('unlocked');

    // Closed: LOCK throws the bolt, and says so in the log.
    door.close();
    await client.publishAsync(announced.command_topic!, 'LOCK', { qos: 1 });
    await until(() => lock.actualBolt() === 'locked', 3_000, 'the bolt is thrown');
    await until(
      () => whys().includes('locked at Home Assistant’s request'),
      3_000,
      'the lock is logged',
    );
    await until(
      () => topics.get('threshold-hub/home-1/front/lock') === 'locked',
      3_000,
      'Home Assistant sees it locked',
    );

    // UNLOCK is never passed on: the bolt stays thrown.
    await client.publishAsync(announced.command_topic!, 'UNLOCK', { qos: 1 });
    await sleep(500);
    expect(lock.actualBolt()).toBe('locked');
  }, 30_000);
});

/**
 * The Home Assistant bridge against a real mosquitto: what it publishes is read back by an
 * MQTT client, as Home Assistant would read it, and checked against the discovery schema that
 * Home Assistant documents and enforces. The schema below is transcribed from HA core's
 * `homeassistant/components/mqtt/` (`discovery.py` TOPIC_MATCHER; `config.py` MQTT_RO_SCHEMA and
 * MQTT_RW_SCHEMA; `schemas.py` MQTT_ENTITY_COMMON_SCHEMA, MQTT_ENTITY_DEVICE_INFO_SCHEMA,
 * MQTT_ORIGIN_INFO_SCHEMA; `lock.py`, `sensor.py`, `binary_sensor.py` platform schemas) and
 * `homeassistant/components/binary_sensor` BinarySensorDeviceClass.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  HomeAssistantBridge,
  MemoryHomeAssistantSource,
  type HomeAssistantBridgeOptions,
  type HomeAssistantLockCommand,
} from '../src/hub/home-assistant.ts';
import { startMosquitto, type TestMosquitto } from '../src/harness/mosquitto.ts';

// ---------------------------------------------------------------------------------------------
// Home Assistant's discovery schema, as far as these entities use it.

/** discovery.py: `<prefix>/<component>/[<node_id>/]<object_id>/config`. */
const TOPIC_MATCHER =
  /^homeassistant\/(?<component>\w+)\/(?:(?<nodeId>[a-zA-Z0-9_-]+)\/)?(?<objectId>[a-zA-Z0-9_-]+)\/config$/;

/** schemas.py MQTT_ENTITY_COMMON_SCHEMA with the availability schemas and config.py SCHEMA_BASE. */
const COMMON_KEYS = [
  'availability',
  'availability_mode',
  'availability_template',
  'availability_topic',
  'payload_available',
  'payload_not_available',
  'device',
  'origin',
  'enabled_by_default',
  'entity_category',
  'entity_picture',
  'icon',
  'json_attributes_topic',
  'json_attributes_template',
  'object_id',
  'default_entity_id',
  'unique_id',
  'name',
  'qos',
  'encoding',
];

interface PlatformSchema {
  readonly required: readonly string[];
  readonly optional: readonly string[];
}

/** The platform schemas (DISCOVERY_SCHEMA drops unknown keys silently: here they fail). */
const PLATFORMS: Record<string, PlatformSchema> = {
  // config.py MQTT_RO_SCHEMA + binary_sensor.py PLATFORM_SCHEMA_MODERN.
  binary_sensor: {
    required: ['state_topic'],
    optional: [
      'value_template',
      'device_class',
      'expire_after',
      'force_update',
      'off_delay',
      'payload_on',
      'payload_off',
    ],
  },
  // config.py MQTT_RO_SCHEMA + sensor.py _PLATFORM_SCHEMA_BASE.
  sensor: {
    required: ['state_topic'],
    optional: [
      'value_template',
      'device_class',
      'expire_after',
      'force_update',
      'last_reset_value_template',
      'options',
      'suggested_display_precision',
      'state_class',
      'unit_of_measurement',
    ],
  },
  // config.py MQTT_RW_SCHEMA (command_topic required) + lock.py PLATFORM_SCHEMA_MODERN.
  lock: {
    required: ['command_topic'],
    optional: [
      'optimistic',
      'retain',
      'state_topic',
      'code_format',
      'command_template',
      'payload_lock',
      'payload_unlock',
      'payload_open',
      'payload_reset',
      'state_jammed',
      'state_locked',
      'state_locking',
      'state_open',
      'state_opening',
      'state_unlocked',
      'state_unlocking',
      'value_template',
    ],
  },
};

/** binary_sensor/__init__.py BinarySensorDeviceClass. */
const BINARY_SENSOR_DEVICE_CLASSES = new Set([
  'battery',
  'battery_charging',
  'carbon_monoxide',
  'cold',
  'connectivity',
  'door',
  'garage_door',
  'gas',
  'heat',
  'light',
  'lock',
  'moisture',
  'motion',
  'moving',
  'occupancy',
  'opening',
  'plug',
  'power',
  'presence',
  'problem',
  'running',
  'safety',
  'smoke',
  'sound',
  'tamper',
  'update',
  'vibration',
  'window',
]);

/** schemas.py MQTT_ENTITY_DEVICE_INFO_SCHEMA. */
const DEVICE_KEYS = new Set([
  'identifiers',
  'connections',
  'manufacturer',
  'model',
  'model_id',
  'name',
  'hw_version',
  'serial_number',
  'sw_version',
  'via_device',
  'suggested_area',
  'configuration_url',
]);

/** const.py PAYLOAD_NONE: the payload HA reads as "unknown". */
const PAYLOAD_NONE = 'None';
const BASE = 'threshold-hub/hub1';

function isTopic(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && !/[+#]/.test(value);
}

/** Every way `config` (published on `topic`) breaks HA's schema; empty when it is valid. */
function schemaProblems(topic: string, config: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const match = TOPIC_MATCHER.exec(topic);
  const component = match?.groups?.component ?? '';
  const platform = PLATFORMS[component];
  if (!match || !platform) return [`${topic}: not a discovery topic of a known platform`];
  const allowed = new Set([...COMMON_KEYS, ...platform.required, ...platform.optional]);
  for (const key of Object.keys(config)) {
    if (!allowed.has(key)) problems.push(`unknown key ${key}`);
  }
  for (const key of platform.required) {
    if (!(key in config)) problems.push(`missing ${key}`);
  }
  for (const key of ['state_topic', 'command_topic', 'json_attributes_topic']) {
    if (key in config && !(isTopic(config[key]) && String(config[key]).startsWith(`${BASE}/`))) {
      problems.push(`${key} not a topic under ${BASE}`);
    }
  }
  if (typeof config.unique_id !== 'string') problems.push('no unique_id (HA needs it for devices)');
  if (config.availability_topic !== `${BASE}/availability`) problems.push('availability_topic');
  if (config.payload_available !== 'online' || config.payload_not_available !== 'offline') {
    problems.push('availability payloads');
  }
  if (![0, 1, 2].includes(config.qos as number)) problems.push('qos');
  if (typeof config.name !== 'string') problems.push('name');

  const device = config.device as Record<string, unknown> | undefined;
  if (!device || typeof device !== 'object') problems.push('no device block');
  else {
    for (const key of Object.keys(device)) {
      if (!DEVICE_KEYS.has(key)) problems.push(`unknown device key ${key}`);
    }
    const ids = device.identifiers;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((i) => typeof i === 'string')) {
      problems.push('device needs identifiers');
    }
    for (const key of ['name', 'manufacturer', 'model', 'sw_version']) {
      if (typeof device[key] !== 'string') problems.push(`device.${key}`);
    }
  }
  const origin = config.origin as Record<string, unknown> | undefined;
  if (origin !== undefined && typeof origin.name !== 'string') problems.push('origin.name');

  if (component === 'binary_sensor') {
    if (!BINARY_SENSOR_DEVICE_CLASSES.has(config.device_class as string)) {
      problems.push(`device_class ${String(config.device_class)}`);
    }
    const on = config.payload_on ?? 'ON';
    const off = config.payload_off ?? 'OFF';
    if (on === off || on === PAYLOAD_NONE || off === PAYLOAD_NONE) problems.push('payload_on/off');
  }
  if (component === 'sensor') {
    // sensor.py validate_sensor_state_and_device_class_config.
    const options = config.options;
    if (options !== undefined) {
      if (!Array.isArray(options) || options.length === 0) problems.push('empty options');
      if (config.device_class !== 'enum') problems.push('options need device_class enum');
      if ('state_class' in config || 'unit_of_measurement' in config) {
        problems.push('options with state_class or unit');
      }
      if (Array.isArray(options) && options.includes(PAYLOAD_NONE)) problems.push('None option');
    }
  }
  if (component === 'lock') {
    const states = [
      config.state_locked ?? 'LOCKED',
      config.state_unlocked ?? 'UNLOCKED',
      config.state_jammed ?? 'JAMMED',
      config.state_locking ?? 'LOCKING',
      config.state_unlocking ?? 'UNLOCKING',
      config.state_open ?? 'OPEN',
      config.state_opening ?? 'OPENING',
      config.payload_reset ?? PAYLOAD_NONE,
    ];
    if (new Set(states).size !== states.length) problems.push('lock states collide');
    if ((config.payload_lock ?? 'LOCK') === (config.payload_unlock ?? 'UNLOCK')) {
      problems.push('payload_lock = payload_unlock');
    }
  }
  return problems.map((p) => `${topic}: ${p}`);
}

/** The payloads a config says its state_topic carries (HA ignores or warns on any other). */
function declaredStates(component: string, config: Record<string, unknown>): Set<string> {
  switch (component) {
    case 'sensor':
      return new Set([...(config.options as string[]), PAYLOAD_NONE]);
    case 'binary_sensor':
      return new Set([config.payload_on as string, config.payload_off as string, PAYLOAD_NONE]);
    case 'lock':
      return new Set(
        ['state_locked', 'state_unlocked', 'state_jammed', 'payload_reset'].map(
          (k) => config[k] as string,
        ),
      );
    default:
      throw new Error(`no states for ${component}`);
  }
}

// ---------------------------------------------------------------------------------------------
// A client that watches the broker as Home Assistant does.

interface Seen {
  readonly topic: string;
  readonly payload: string;
  readonly retain: boolean;
}

class Watcher {
  readonly seen: Seen[] = [];
  readonly latest = new Map<string, string>();
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const text = payload.toString();
      this.seen.push({ topic, payload: text, retain: packet.retain });
      this.latest.set(topic, text);
    });
  }

  static async open(url: string): Promise<Watcher> {
    const client = await connectAsync(url, { clean: true, reconnectPeriod: 0 });
    const watcher = new Watcher(client);
    await client.subscribeAsync({ 'homeassistant/#': { qos: 1 }, 'threshold-hub/#': { qos: 1 } });
    return watcher;
  }

  /** The discovery configs last seen (an empty payload deletes), by topic. */
  configs(): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const [topic, payload] of this.latest) {
      if (!topic.startsWith('homeassistant/') || !topic.endsWith('/config')) continue;
      if (payload === '') continue;
      out.set(topic, JSON.parse(payload) as Record<string, unknown>);
    }
    return out;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

/**
 * What the broker retains under `filter` now: a fresh client subscribes, then publishes a
 * marker to itself; the broker sends retained messages on subscription, before the marker.
 */
async function retained(url: string, filter: string): Promise<Map<string, string>> {
  const client = await connectAsync(url, { clean: true, reconnectPeriod: 0 });
  const out = new Map<string, string>();
  const marker = `marker/${Math.random().toString(16).slice(2)}`;
  try {
    const done = new Promise<void>((resolve) => {
      client.on('message', (topic, payload, packet) => {
        if (topic === marker) resolve();
        else if (packet.retain) out.set(topic, payload.toString());
      });
    });
    await client.subscribeAsync({ [filter]: { qos: 1 }, [marker]: { qos: 1 } });
    await client.publishAsync(marker, 'x', { qos: 1 });
    await done;
  } finally {
    await client.endAsync(true);
  }
  return out;
}

/** A TCP relay to the broker whose connections can be cut, as a failing network does. */
interface Relay {
  readonly url: string;
  cut(): void;
  close(): Promise<void>;
}

async function startRelay(targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = createConnection({ host: '127.0.0.1', port: targetPort });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut: () => {
      // Both sides die at once and no DISCONNECT is sent: the broker must publish the will.
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const WAIT = { timeout: 5_000, interval: 20 };

// ---------------------------------------------------------------------------------------------

let broker: TestMosquitto;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
});

afterEach(async () => {
  // Each test leaves the broker as it found it: bridges stopped, retained messages gone.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  const client = await connectAsync(broker.url, { clean: true, reconnectPeriod: 0 });
  const left = await retained(broker.url, '#');
  for (const topic of left.keys()) await client.publishAsync(topic, '', { qos: 1, retain: true });
  await client.endAsync(true);
});

afterAll(async () => {
  await broker?.stop();
});

async function startBridge(
  source: MemoryHomeAssistantSource,
  extra: Partial<HomeAssistantBridgeOptions> = {},
): Promise<HomeAssistantBridge> {
  const bridge = new HomeAssistantBridge({
    brokerUrl: broker.url,
    hubId: 'hub1',
    source,
    swVersion: '0.1.0',
    reconnectPeriodMs: 100,
    startTimeoutMs: 5_000,
    ...extra,
  });
  cleanups.push(() => bridge.stop());
  await bridge.start();
  return bridge;
}

async function watch(): Promise<Watcher> {
  const watcher = await Watcher.open(broker.url);
  cleanups.push(() => watcher.close());
  return watcher;
}

function twoDoors(): MemoryHomeAssistantSource {
  const source = new MemoryHomeAssistantSource();
  source.setDoor('front', 'Front door', {
    bolt: 'locked',
    position: 'closed',
    camera: 'live',
  });
  source.setDoor('garage', 'Garage door', { bolt: 'unlocked' });
  return source;
}

describe('Home Assistant discovery', () => {
  it('publishes retained configs that pass HA’s discovery schema, grouped per door', async () => {
    const source = twoDoors();
    await startBridge(source);
    // HA starting later still sees everything: the configs and states are retained.
    const configs = await retained(broker.url, 'homeassistant/#');
    const problems = [...configs].flatMap(([t, p]) =>
      schemaProblems(t, JSON.parse(p) as Record<string, unknown>),
    );
    expect(problems).toEqual([]);
    expect([...configs.keys()].sort()).toEqual([
      'homeassistant/binary_sensor/threshold_hub1/front_alarm/config',
      'homeassistant/binary_sensor/threshold_hub1/front_door/config',
      'homeassistant/binary_sensor/threshold_hub1/garage_alarm/config',
      'homeassistant/sensor/threshold_hub1/front_camera/config',
      'homeassistant/sensor/threshold_hub1/front_lock/config',
      'homeassistant/sensor/threshold_hub1/garage_lock/config',
    ]);
    const parsed = [...configs.values()].map((p) => JSON.parse(p) as Record<string, unknown>);
    const uniqueIds = parsed.map((c) => c.unique_id);
    expect(new Set(uniqueIds).size).toBe(uniqueIds.length);

    // One HA device per door: same identifiers within a door, different across doors.
    const identifiers = (c: Record<string, unknown>): string =>
      JSON.stringify((c.device as { identifiers: string[] }).identifiers);
    const byDevice = new Map<string, string[]>();
    for (const [topic, p] of configs) {
      const id = identifiers(JSON.parse(p) as Record<string, unknown>);
      byDevice.set(id, [...(byDevice.get(id) ?? []), topic]);
    }
    expect(byDevice.size).toBe(2);
    const front = parsed.find((c) => c.unique_id === 'threshold_hub1_front_door');
    expect(front?.device).toEqual({
      identifiers: ['threshold_hub1_front'],
      name: 'Front door',
      manufacturer: 'Threshold',
      model: 'Door watched by a Threshold hub',
      sw_version: '0.1.0',
    });
    expect(front?.device_class).toBe('door');

    // Read-only by default: no entity offers HA a command topic.
    expect(parsed.some((c) => 'command_topic' in c)).toBe(false);

    // The states are retained too, each one a payload its config declares.
    const states = await retained(broker.url, `${BASE}/#`);
    expect(states.get(`${BASE}/availability`)).toBe('online');
    expect(states.get(`${BASE}/front/lock`)).toBe('locked');
    expect(states.get(`${BASE}/front/door`)).toBe('closed');
    expect(states.get(`${BASE}/front/camera`)).toBe('live');
    expect(states.get(`${BASE}/front/alarm`)).toBe('clear');
    expect(states.get(`${BASE}/garage/lock`)).toBe('unlocked');
    expect(states.has(`${BASE}/garage/door`)).toBe(false);
    for (const [topic, payload] of configs) {
      const config = JSON.parse(payload) as Record<string, unknown>;
      const component = TOPIC_MATCHER.exec(topic)?.groups?.component ?? '';
      const state = states.get(config.state_topic as string);
      expect(state, `${topic} has a retained state`).toBeDefined();
      expect(declaredStates(component, config).has(state ?? '')).toBe(true);
    }
  });

  it('follows every change with a payload its config declares; unknown is None', async () => {
    const source = twoDoors();
    const watcher = await watch();
    await startBridge(source);
    await vi.waitFor(() => expect(watcher.configs().size).toBe(6), WAIT);
    const configs = watcher.configs();

    source.update('front', { bolt: 'unlocked', position: 'open' });
    source.update('front', { camera: 'frozen' });
    source.update('front', {
      alarms: [
        { type: 'observation-frozen', sinceMs: Date.UTC(2026, 0, 15, 12), message: 'Frozen' },
      ],
    });
    await vi.waitFor(() => {
      expect(watcher.latest.get(`${BASE}/front/lock`)).toBe('unlocked');
      expect(watcher.latest.get(`${BASE}/front/door`)).toBe('open');
      expect(watcher.latest.get(`${BASE}/front/camera`)).toBe('frozen');
      expect(watcher.latest.get(`${BASE}/front/alarm`)).toBe('alarm');
    }, WAIT);
    expect(JSON.parse(watcher.latest.get(`${BASE}/front/alarms`) ?? '')).toEqual({
      alarms: [
        { type: 'observation-frozen', since: '2026-01-15T12:00:00.000Z', message: 'Frozen' },
      ],
    });

    // The lock goes away: its state is unknown, never the last value.
    source.update('front', { bolt: 'unknown', position: 'unknown', camera: 'unknown' });
    source.update('garage', { bolt: 'jammed' });
    await vi.waitFor(() => {
      expect(watcher.latest.get(`${BASE}/front/lock`)).toBe('None');
      expect(watcher.latest.get(`${BASE}/front/door`)).toBe('None');
      expect(watcher.latest.get(`${BASE}/front/camera`)).toBe('None');
      expect(watcher.latest.get(`${BASE}/garage/lock`)).toBe('jammed');
    }, WAIT);
    source.update('front', { alarms: [] });
    await vi.waitFor(() => expect(watcher.latest.get(`${BASE}/front/alarm`)).toBe('clear'), WAIT);

    // Every state message seen is one HA accepts for that entity.
    const declared = new Map<string, Set<string>>();
    for (const [topic, config] of configs) {
      const component = TOPIC_MATCHER.exec(topic)?.groups?.component ?? '';
      declared.set(config.state_topic as string, declaredStates(component, config));
    }
    const stateMessages = watcher.seen.filter((m) => declared.has(m.topic));
    expect(stateMessages.length).toBeGreaterThan(10);
    for (const m of stateMessages) {
      expect(declared.get(m.topic)?.has(m.payload), `${m.topic} = ${m.payload}`).toBe(true);
    }
  });

  it('is marked offline by its last will when its connection drops, and comes back', async () => {
    const relay = await startRelay(broker.port);
    cleanups.push(() => relay.close());
    const source = twoDoors();
    const watcher = await watch();
    const bridge = await startBridge(source, { brokerUrl: relay.url });
    await vi.waitFor(() => expect(watcher.latest.get(`${BASE}/availability`)).toBe('online'), WAIT);

    source.update('front', { bolt: 'unlocked' });
    await vi.waitFor(() => expect(watcher.latest.get(`${BASE}/front/lock`)).toBe('unlocked'), WAIT);
    relay.cut();
    await vi.waitFor(
      () => expect(watcher.latest.get(`${BASE}/availability`)).toBe('offline'),
      WAIT,
    );
    // What changes while the link is down reaches HA when the link returns.
    source.update('front', { bolt: 'locked' });
    await vi.waitFor(() => {
      expect(watcher.latest.get(`${BASE}/availability`)).toBe('online');
      expect(watcher.latest.get(`${BASE}/front/lock`)).toBe('locked');
    }, WAIT);
    expect(bridge.stats().connections).toBeGreaterThanOrEqual(2);
    // The will is retained: HA restarting during an outage would also see "offline".
    expect(
      watcher.seen.filter((m) => m.topic === `${BASE}/availability`).map((m) => m.payload),
    ).toContain('offline');
  });

  it('says offline when stopped, and keeps the entities', async () => {
    const source = twoDoors();
    const bridge = await startBridge(source);
    await bridge.stop();
    const states = await retained(broker.url, `${BASE}/#`);
    expect(states.get(`${BASE}/availability`)).toBe('offline');
    const configs = await retained(broker.url, 'homeassistant/#');
    expect(configs.size).toBe(6);
    // Nothing is published after stop.
    source.update('front', { bolt: 'unlocked' });
    expect((await retained(broker.url, `${BASE}/front/lock`)).get(`${BASE}/front/lock`)).toBe(
      'locked',
    );
  });

  it('deletes a removed door’s entities with empty retained configs', async () => {
    const source = twoDoors();
    const watcher = await watch();
    await startBridge(source);
    await vi.waitFor(() => expect(watcher.configs().size).toBe(6), WAIT);

    source.removeDoor('front');
    await vi.waitFor(() => expect(watcher.configs().size).toBe(2), WAIT);
    const deletions = watcher.seen.filter(
      (m) => m.topic.includes('/threshold_hub1/front_') && m.payload === '',
    );
    expect(deletions.map((m) => m.topic).sort()).toEqual([
      'homeassistant/binary_sensor/threshold_hub1/front_alarm/config',
      'homeassistant/binary_sensor/threshold_hub1/front_door/config',
      'homeassistant/sensor/threshold_hub1/front_camera/config',
      'homeassistant/sensor/threshold_hub1/front_lock/config',
    ]);
    // The broker no longer retains anything of that door, configs or states.
    expect([...(await retained(broker.url, 'homeassistant/#')).keys()].sort()).toEqual([
      'homeassistant/binary_sensor/threshold_hub1/garage_alarm/config',
      'homeassistant/sensor/threshold_hub1/garage_lock/config',
    ]);
    expect([...(await retained(broker.url, `${BASE}/front/#`)).keys()]).toEqual([]);

    // A camera taken off a door removes just that entity.
    source.setDoor('garage', 'Garage door', { camera: 'live' });
    await vi.waitFor(() => expect(watcher.configs().size).toBe(3), WAIT);
    source.update('garage', { camera: null });
    await vi.waitFor(() => expect(watcher.configs().size).toBe(2), WAIT);
    expect(watcher.latest.get('homeassistant/sensor/threshold_hub1/garage_camera/config')).toBe('');
  });

  it('deletes configs a previous run left for doors that no longer exist', async () => {
    const client = await connectAsync(broker.url, { clean: true, reconnectPeriod: 0 });
    const ghost = 'homeassistant/sensor/threshold_hub1/back_lock/config';
    const otherHub = 'homeassistant/sensor/threshold_hub2/back_lock/config';
    for (const topic of [ghost, otherHub]) {
      await client.publishAsync(topic, JSON.stringify({ name: 'Lock', state_topic: 'x/y' }), {
        qos: 1,
        retain: true,
      });
    }
    await client.endAsync(true);

    const bridge = await startBridge(twoDoors());
    await vi.waitFor(async () => {
      const left = await retained(broker.url, 'homeassistant/#');
      expect(left.has(ghost)).toBe(false);
      expect(left.size).toBe(7);
    }, WAIT);
    // Another hub's config is not ours to delete.
    expect((await retained(broker.url, otherHub)).has(otherHub)).toBe(true);
    expect(bridge.stats().staleConfigsDeleted).toBe(1);
  });

  it('publishes everything again when Home Assistant announces itself', async () => {
    const source = twoDoors();
    const watcher = await watch();
    await startBridge(source);
    await vi.waitFor(() => expect(watcher.configs().size).toBe(6), WAIT);
    const before = watcher.seen.filter((m) => m.topic.endsWith('/config')).length;
    await watcher.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await vi.waitFor(() => {
      const after = watcher.seen.filter((m) => m.topic.endsWith('/config')).length;
      expect(after - before).toBe(6);
    }, WAIT);
    // Another status (HA going down) is not a reason to publish.
    await watcher.client.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    await watcher.client.publishAsync(`${BASE}/probe`, 'x', { qos: 1 });
    await vi.waitFor(() => expect(watcher.latest.get(`${BASE}/probe`)).toBe('x'), WAIT);
    expect(watcher.seen.filter((m) => m.topic.endsWith('/config')).length - before).toBe(6);
  });

  it('ignores lock commands when read-only', async () => {
    const watcher = await watch();
    const bridge = await startBridge(twoDoors());
    await watcher.client.publishAsync(`${BASE}/front/lock/set`, 'UNLOCK', { qos: 1 });
    await watcher.client.publishAsync(`${BASE}/probe`, 'x', { qos: 1 });
    await vi.waitFor(() => expect(watcher.latest.get(`${BASE}/probe`)).toBe('x'), WAIT);
    expect(bridge.stats().commandsForwarded).toBe(0);
    expect(Object.values(bridge.stats().commandsRefused).every((n) => n === 0)).toBe(true);
  });

  it('with lock commands opted in, publishes a lock and forwards only what is allowed', async () => {
    const received: [string, HomeAssistantLockCommand][] = [];
    let fail = false;
    const source = twoDoors();
    const watcher = await watch();
    const bridge = await startBridge(source, {
      lockCommands: {
        handle: async (doorId, command) => {
          received.push([doorId, command]);
          if (fail) throw new Error('refused by the control plane');
        },
      },
    });
    await vi.waitFor(() => expect(watcher.configs().size).toBe(6), WAIT);
    const lockTopic = 'homeassistant/lock/threshold_hub1/front_lock/config';
    const lock = watcher.configs().get(lockTopic);
    expect(lock).toBeDefined();
    expect(schemaProblems(lockTopic, lock ?? {})).toEqual([]);
    expect(lock?.command_topic).toBe(`${BASE}/front/lock/set`);
    expect(watcher.configs().has('homeassistant/sensor/threshold_hub1/front_lock/config')).toBe(
      false,
    );

    const send = (topic: string, payload: string, retain = false): Promise<unknown> =>
      watcher.client.publishAsync(topic, payload, { qos: 1, retain });
    await send(`${BASE}/front/lock/set`, 'LOCK');
    await vi.waitFor(() => expect(received).toEqual([['front', 'lock']]), WAIT);

    await send(`${BASE}/front/lock/set`, 'UNLOCK');
    await send(`${BASE}/front/lock/set`, 'lock');
    await send(`${BASE}/front/lock/set`, '{"state":"LOCK"}');
    await send(`${BASE}/cellar/lock/set`, 'LOCK');
    await vi.waitFor(
      () =>
        expect(bridge.stats().commandsRefused).toMatchObject({
          'unlock-not-allowed': 1,
          'bad-payload': 2,
          'unknown-door': 1,
        }),
      WAIT,
    );
    fail = true;
    await send(`${BASE}/garage/lock/set`, 'LOCK');
    await vi.waitFor(() => expect(bridge.stats().commandsRefused['handler-failed']).toBe(1), WAIT);
    expect(received).toEqual([
      ['front', 'lock'],
      ['garage', 'lock'],
    ]);
    expect(bridge.stats().commandsForwarded).toBe(2);
  });

  it('never acts on a retained lock command, and deletes it', async () => {
    const received: string[] = [];
    const client = await connectAsync(broker.url, { clean: true, reconnectPeriod: 0 });
    await client.publishAsync(`${BASE}/front/lock/set`, 'LOCK', { qos: 1, retain: true });
    await client.endAsync(true);
    const bridge = await startBridge(twoDoors(), {
      lockCommands: {
        allowUnlock: true,
        handle: async (doorId, command) => {
          received.push(`${doorId}:${command}`);
        },
      },
    });
    await vi.waitFor(() => expect(bridge.stats().commandsRefused.retained).toBe(1), WAIT);
    await vi.waitFor(async () => {
      const left = await retained(broker.url, `${BASE}/front/lock/set`);
      expect(left.size).toBe(0);
    }, WAIT);
    expect(received).toEqual([]);
  });

  it('forwards an unlock only when allowUnlock is set', async () => {
    const received: string[] = [];
    const watcher = await watch();
    await startBridge(twoDoors(), {
      lockCommands: {
        allowUnlock: true,
        handle: async (doorId, command) => {
          received.push(`${doorId}:${command}`);
        },
      },
    });
    await vi.waitFor(() => expect(watcher.configs().size).toBe(6), WAIT);
    await watcher.client.publishAsync(`${BASE}/front/lock/set`, 'UNLOCK', { qos: 1 });
    await vi.waitFor(() => expect(received).toEqual(['front:unlock']), WAIT);
  });

  it('refuses unusable settings before connecting', () => {
    const base = { brokerUrl: 'mqtt://127.0.0.1:1', source: new MemoryHomeAssistantSource() };
    expect(() => new HomeAssistantBridge({ ...base, hubId: 'hub/1' })).toThrow(/hubId/);
    expect(() => new HomeAssistantBridge({ ...base, hubId: '' })).toThrow(/hubId/);
    expect(() => new HomeAssistantBridge({ ...base, hubId: 'h', baseTopic: 'a/#' })).toThrow(
      /baseTopic/,
    );
    expect(() => new HomeAssistantBridge({ ...base, hubId: 'h', discoveryPrefix: 'ha/' })).toThrow(
      /discoveryPrefix/,
    );
    expect(
      () => new HomeAssistantBridge({ ...base, hubId: 'h', brokerUrl: 'http://127.0.0.1' }),
    ).toThrow(/broker URL/);
  });

  it('skips a door whose id HA cannot use, and publishes the others', async () => {
    const source = twoDoors();
    source.setDoor('back door', 'Back door', { bolt: 'locked' });
    await startBridge(source);
    const configs = await retained(broker.url, 'homeassistant/#');
    expect(configs.size).toBe(6);
    expect([...configs.keys()].some((t) => t.includes('back'))).toBe(false);
  });

  it('rejects start when the broker cannot be reached in time', async () => {
    const relay = await startRelay(1);
    await relay.close();
    const bridge = new HomeAssistantBridge({
      brokerUrl: relay.url,
      hubId: 'hub1',
      source: twoDoors(),
      startTimeoutMs: 300,
      reconnectPeriodMs: 100,
    });
    cleanups.push(() => bridge.stop());
    await expect(bridge.start()).rejects.toThrow(/no connection/);
  });
});

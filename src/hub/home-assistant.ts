/**
 * Home Assistant MQTT discovery: each door the hub manages appears in Home Assistant, on the
 * Home Assistant user's own broker (usually mosquitto), as one HA *device* with entities for
 * its lock, door sensor, camera and alarms.
 *
 * The payloads follow Home Assistant's MQTT integration as documented on home-assistant.io
 * (`integrations/mqtt` "MQTT Discovery", `integrations/lock.mqtt`, `integrations/sensor.mqtt`,
 * `integrations/binary_sensor.mqtt`) and as validated by HA core
 * (`homeassistant/components/mqtt/`: `discovery.py` `TOPIC_MATCHER`, `config.py`
 * `MQTT_RO_SCHEMA` / `MQTT_RW_SCHEMA`, `schemas.py` `MQTT_ENTITY_COMMON_SCHEMA`, device and
 * origin schemas, `lock.py`, `sensor.py`, `binary_sensor.py`). Full key names are used
 * throughout (no abbreviations), so the configs read like HA's documentation.
 *
 * - Discovery topic: `<discovery prefix>/<component>/<node id>/<object id>/config`, node id
 *   `threshold_<hubId>`, object id `<doorId>_<entity>`; both must match `[a-zA-Z0-9_-]+`
 *   (HA's `TOPIC_MATCHER`). Configs are retained so HA finds them after its own restart; an
 *   empty retained payload is HA's way to delete an entity and the broker's way to forget the
 *   retained message.
 * - State topics live under the bridge's base topic (`threshold-hub/<hubId>` by default) and
 *   are retained. A fact that is not known is published as `None`, which HA's MQTT sensor,
 *   binary sensor and lock (`payload_reset`) turn into `unknown`: never the last value
 *   (principle 4).
 * - Availability: one topic for the bridge, `online` on every connection and `offline` as the
 *   MQTT last will (retained), so HA marks every entity unavailable when the hub goes away.
 * - When HA announces itself (`<discovery prefix>/status` = `online`, HA's birth message),
 *   everything is published again.
 * - A retained config under this bridge's node id that no current door accounts for (a door
 *   removed while the hub was down) is deleted when the broker delivers it.
 *
 * Read-only by default. HA's MQTT `lock` platform *requires* a `command_topic`
 * (`MQTT_RW_SCHEMA`), and a command from HA would not pass Threshold's checks (camera
 * recording, deadline, audit), so without {@link HomeAssistantLockCommands} the bolt appears as
 * an `enum` sensor (`locked` / `unlocked` / `jammed`), not as a lock HA can turn. With it, a
 * real `lock` entity is published and its commands go to the hub's handler, which must route
 * them like an owner's remote command (the bridge itself never moves a bolt).
 */
import { randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { DeviceLogger } from '../devices/device-connection.ts';
import { silentLogger } from '../devices/device-connection.ts';
import type { DriverBolt, DriverPosition } from './drivers/driver.ts';

/** What the hub's observation watchdog says about a door's camera. */
export type HomeAssistantCameraStatus = 'live' | 'offline' | 'frozen' | 'unknown';

/** One active alarm at a door (e.g. `lock-jammed`, `observation-lost`). */
export interface HomeAssistantAlarm {
  /** The alarm's type, as the session state machine names it (`AlarmType`). */
  readonly type: string;
  /** When the condition began, ms since the epoch. */
  readonly sinceMs: number;
  /** A sentence for people. */
  readonly message: string;
}

/** What Home Assistant is told about one door, now. */
export interface HomeAssistantDoorState {
  /** The bolt as the lock last reported; `unknown` while the lock is unavailable. */
  readonly bolt: DriverBolt;
  /** The door contact, or null when the door has no sensor (then no entity is published). */
  readonly position: DriverPosition | null;
  /** The camera watching the door, or null when it has none (then no entity is published). */
  readonly camera: HomeAssistantCameraStatus | null;
  /** The alarms active now; empty when all is well. */
  readonly alarms: readonly HomeAssistantAlarm[];
}

/** One door as the bridge sees it: identity, current values, and a change signal. */
export interface HomeAssistantDoor {
  /** Stable id; becomes part of HA's unique ids and topics, so `[a-zA-Z0-9_-]+` only. */
  readonly id: string;
  /** What HA shows as the device name (e.g. "Front door"). */
  readonly name: string;
  /** The current values; called after every change signal. */
  state(): HomeAssistantDoorState;
  /** Calls `listener` after any value changed; returns the function that stops listening. */
  onChange(listener: () => void): () => void;
}

/**
 * Where the bridge reads the hub's doors. The hub implements it over its drivers and watchdog;
 * {@link MemoryHomeAssistantSource} implements it for tests and hub-less setups.
 */
export interface HomeAssistantSource {
  /** The doors now. */
  doors(): readonly HomeAssistantDoor[];
  /** Calls `listener` after a door was added or removed; returns the function that stops it. */
  onDoorsChanged(listener: () => void): () => void;
}

/** A lock command from Home Assistant. */
export type HomeAssistantLockCommand = 'lock' | 'unlock';

/**
 * Opt-in: lets Home Assistant command the lock. Without it the bridge is read-only.
 *
 * `handle` must treat the command as an owner's remote command (the control plane's checks,
 * the audit log) and must not call the lock driver directly: a command from HA carries no
 * principal, no session and no camera proof. It resolves when the hub accepted the command (the
 * bolt's new state arrives through the source), and rejects when it refused.
 */
export interface HomeAssistantLockCommands {
  handle(doorId: string, command: HomeAssistantLockCommand): Promise<void>;
  /**
   * Whether `UNLOCK` from HA is passed to `handle` at all. Default false: only locking (the
   * fail-closed direction) is forwarded; an unlock is refused and counted.
   */
  readonly allowUnlock?: boolean;
}

/** Settings of a {@link HomeAssistantBridge}. */
export interface HomeAssistantBridgeOptions {
  /** The Home Assistant user's broker: `mqtt://host:port` or `mqtts://host:port`. */
  readonly brokerUrl: string;
  readonly username?: string;
  readonly password?: string;
  /** This hub's id, unique among the hubs on that broker; `[a-zA-Z0-9_-]+`. */
  readonly hubId: string;
  readonly source: HomeAssistantSource;
  /** HA's discovery prefix; default `homeassistant` (HA's default). */
  readonly discoveryPrefix?: string;
  /** Where state and availability topics go; default `threshold-hub/<hubId>`. */
  readonly baseTopic?: string;
  /** Threshold's version, shown in HA's device page (`sw_version`). */
  readonly swVersion?: string;
  /** Opt-in lock commands from HA; see {@link HomeAssistantLockCommands}. */
  readonly lockCommands?: HomeAssistantLockCommands;
  readonly logger?: DeviceLogger;
  /** Wait between reconnection attempts, ms. Default 2000. */
  readonly reconnectPeriodMs?: number;
  /** MQTT keepalive, seconds. Default 30. */
  readonly keepaliveSeconds?: number;
  /** How long {@link HomeAssistantBridge.start} waits for the first connection, ms. Default 10 000. */
  readonly startTimeoutMs?: number;
}

/** Why a lock command from HA was not passed on, or failed. */
export type HomeAssistantCommandRefusal =
  'retained' | 'bad-payload' | 'unknown-door' | 'unlock-not-allowed' | 'handler-failed';

/** Counters of a {@link HomeAssistantBridge}. */
export interface HomeAssistantBridgeStats {
  /** Connections that reached the broker, including the first. */
  readonly connections: number;
  /** Lock commands passed to the handler (whether it then accepted them or not). */
  readonly commandsForwarded: number;
  /** Lock commands not acted on, by reason. */
  readonly commandsRefused: Readonly<Record<HomeAssistantCommandRefusal, number>>;
  /** Stale retained configs deleted (doors removed while the hub was away). */
  readonly staleConfigsDeleted: number;
}

/** The payload HA's MQTT sensor, binary sensor and lock read as "state unknown". */
export const HA_PAYLOAD_UNKNOWN = 'None';
/** Availability payload while the bridge is connected (HA's default, stated in every config). */
export const HA_AVAILABLE = 'online';
/** Availability payload of the last will and of a clean stop (HA's default, stated too). */
export const HA_NOT_AVAILABLE = 'offline';
/** Command payload of the opt-in lock entity asking to lock (HA's default, stated too). */
export const HA_PAYLOAD_LOCK = 'LOCK';
/** Command payload of the opt-in lock entity asking to unlock (HA's default, stated too). */
export const HA_PAYLOAD_UNLOCK = 'UNLOCK';

/** HA's `TOPIC_MATCHER` allows node and object ids of these characters only. */
const ID_PATTERN = /^[a-zA-Z0-9_-]+$/;
const CLOSE_TIMEOUT_MS = 2_000;

/** The published retained messages of one door: topic → payload, configs first. */
type TopicMap = Map<string, string>;

/**
 * Publishes the doors of a {@link HomeAssistantSource} to Home Assistant; see the module
 * comment. `start()` connects, `stop()` says `offline` and disconnects (entities stay in HA,
 * unavailable, until the hub comes back).
 */
export class HomeAssistantBridge {
  readonly hubId: string;
  readonly discoveryPrefix: string;
  readonly baseTopic: string;
  /** The bridge's availability topic (`online` / `offline`, retained). */
  readonly availabilityTopic: string;
  /** HA's node id for this hub's configs. */
  readonly nodeId: string;
  private readonly options: HomeAssistantBridgeOptions;
  private readonly logger: DeviceLogger;
  private client: MqttClient | undefined;
  private closing: Promise<void> | undefined;
  /** Per door: what is on the broker now (as far as this bridge published it). */
  private readonly published = new Map<string, TopicMap>();
  private readonly doorListeners = new Map<string, () => void>();
  private readonly unusableIds = new Set<string>();
  private stopSourceListener: (() => void) | undefined;
  private connections = 0;
  private commandsForwarded = 0;
  private staleConfigsDeleted = 0;
  private readonly refused: Record<HomeAssistantCommandRefusal, number> = {
    retained: 0,
    'bad-payload': 0,
    'unknown-door': 0,
    'unlock-not-allowed': 0,
    'handler-failed': 0,
  };

  /** Checks the settings; nothing connects until {@link HomeAssistantBridge.start}. */
  constructor(options: HomeAssistantBridgeOptions) {
    if (!ID_PATTERN.test(options.hubId)) {
      throw new RangeError(
        `hubId must match ${String(ID_PATTERN)}: ${JSON.stringify(options.hubId)}`,
      );
    }
    const url = new URL(options.brokerUrl);
    if (!['mqtt:', 'mqtts:', 'tcp:'].includes(url.protocol)) {
      throw new RangeError(`unsupported broker URL ${options.brokerUrl}`);
    }
    this.options = options;
    this.hubId = options.hubId;
    this.logger = options.logger ?? silentLogger;
    this.discoveryPrefix = checkTopicRoot(
      'discoveryPrefix',
      options.discoveryPrefix ?? 'homeassistant',
    );
    this.baseTopic = checkTopicRoot(
      'baseTopic',
      options.baseTopic ?? `threshold-hub/${options.hubId}`,
    );
    this.availabilityTopic = `${this.baseTopic}/availability`;
    this.nodeId = `threshold_${options.hubId}`;
  }

  /**
   * Connects and publishes every door; resolves once connected. Rejects after
   * `startTimeoutMs` (the bridge keeps retrying until {@link HomeAssistantBridge.stop}).
   */
  start(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('the bridge is stopped'));
    if (this.client) {
      return this.client.connected ? Promise.resolve() : this.waitForConnection();
    }
    const clientOptions: IClientOptions = {
      clientId: `${this.nodeId}-${randomUUID().slice(0, 8)}`,
      protocolVersion: 4,
      clean: true,
      keepalive: this.options.keepaliveSeconds ?? 30,
      reconnectPeriod: this.options.reconnectPeriodMs ?? 2_000,
      connectTimeout: this.options.startTimeoutMs ?? 10_000,
      // Nothing is queued while the link is down: on every connection the bridge republishes
      // the current values, so an old queued value can never land after a newer one.
      queueQoSZero: false,
      resubscribe: false,
      will: {
        topic: this.availabilityTopic,
        payload: Buffer.from(HA_NOT_AVAILABLE),
        qos: 1,
        retain: true,
      },
      ...(this.options.username === undefined ? {} : { username: this.options.username }),
      ...(this.options.password === undefined ? {} : { password: this.options.password }),
    };
    const client = mqtt.connect(this.options.brokerUrl, clientOptions);
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
    client.on('error', (err) => this.logger.warn({ err: err.message }, 'home assistant broker'));
    client.on('close', () => {
      // QoS 1 messages in flight would be resent after reconnecting, possibly after newer
      // values; the reconnection republishes everything instead.
      for (const [id, entry] of Object.entries(client.outgoing)) {
        if (entry.cmd === 'publish') client.removeOutgoingMessage(Number(id));
      }
    });
    this.stopSourceListener = this.options.source.onDoorsChanged(() => this.syncDoors());
    this.attachDoors();
    return this.waitForConnection();
  }

  /**
   * Publishes `offline` (retained) and disconnects. Entities stay in HA, unavailable. Idempotent;
   * the bridge cannot be started again.
   */
  stop(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /** Whether the bridge is connected to the broker now. */
  isConnected(): boolean {
    return this.client?.connected ?? false;
  }

  /** The bridge's counters. */
  stats(): HomeAssistantBridgeStats {
    return {
      connections: this.connections,
      commandsForwarded: this.commandsForwarded,
      commandsRefused: { ...this.refused },
      staleConfigsDeleted: this.staleConfigsDeleted,
    };
  }

  /** The retained messages that describe `door` now: configs first, then state topics. */
  private render(door: HomeAssistantDoor): TopicMap {
    const out: TopicMap = new Map();
    const state = door.state();
    const base = `${this.baseTopic}/${door.id}`;
    const device = {
      identifiers: [`${this.nodeId}_${door.id}`],
      name: door.name,
      manufacturer: 'Threshold',
      model: 'Door watched by a Threshold hub',
      ...(this.options.swVersion === undefined ? {} : { sw_version: this.options.swVersion }),
    };
    const origin = {
      name: 'Threshold',
      ...(this.options.swVersion === undefined ? {} : { sw_version: this.options.swVersion }),
    };
    // Shared by every entity: the device block groups them under one HA device (HA only links
    // an entity to a device when it has a unique_id); availability follows the bridge.
    const common = (key: string): Record<string, unknown> => ({
      unique_id: `${this.nodeId}_${door.id}_${key}`,
      availability_topic: this.availabilityTopic,
      payload_available: HA_AVAILABLE,
      payload_not_available: HA_NOT_AVAILABLE,
      qos: 1,
      device,
      origin,
    });
    const configTopic = (component: string, key: string): string =>
      `${this.discoveryPrefix}/${component}/${this.nodeId}/${door.id}_${key}/config`;
    const states: [string, string][] = [];

    const boltTopic = `${base}/lock`;
    const boltPayload = state.bolt === 'unknown' ? HA_PAYLOAD_UNKNOWN : state.bolt;
    if (this.options.lockCommands) {
      // lock.mqtt: state_* name the payloads of state_topic; payload_reset (default "None")
      // resets to unknown; command_topic is required by MQTT_RW_SCHEMA.
      out.set(
        configTopic('lock', 'lock'),
        JSON.stringify({
          name: 'Lock',
          ...common('lock'),
          state_topic: boltTopic,
          state_locked: 'locked',
          state_unlocked: 'unlocked',
          state_jammed: 'jammed',
          payload_reset: HA_PAYLOAD_UNKNOWN,
          command_topic: `${base}/lock/set`,
          payload_lock: HA_PAYLOAD_LOCK,
          payload_unlock: HA_PAYLOAD_UNLOCK,
          optimistic: false,
          retain: false,
        }),
      );
    } else {
      // sensor.mqtt with device_class enum: `options` lists every state it may take; "None"
      // makes it unknown.
      out.set(
        configTopic('sensor', 'lock'),
        JSON.stringify({
          name: 'Lock',
          ...common('lock_state'),
          state_topic: boltTopic,
          device_class: 'enum',
          options: ['locked', 'unlocked', 'jammed'],
          icon: 'mdi:lock',
        }),
      );
    }
    states.push([boltTopic, boltPayload]);

    if (state.position !== null) {
      const topic = `${base}/door`;
      // binary_sensor.mqtt, device_class door: on means open, off means closed.
      out.set(
        configTopic('binary_sensor', 'door'),
        JSON.stringify({
          name: 'Door',
          ...common('door'),
          state_topic: topic,
          device_class: 'door',
          payload_on: 'open',
          payload_off: 'closed',
        }),
      );
      states.push([topic, state.position === 'unknown' ? HA_PAYLOAD_UNKNOWN : state.position]);
    }

    if (state.camera !== null) {
      const topic = `${base}/camera`;
      out.set(
        configTopic('sensor', 'camera'),
        JSON.stringify({
          name: 'Camera',
          ...common('camera'),
          state_topic: topic,
          device_class: 'enum',
          options: ['live', 'offline', 'frozen'],
          icon: 'mdi:cctv',
        }),
      );
      states.push([topic, state.camera === 'unknown' ? HA_PAYLOAD_UNKNOWN : state.camera]);
    }

    const alarmTopic = `${base}/alarm`;
    const alarmAttributesTopic = `${base}/alarms`;
    // binary_sensor.mqtt, device_class problem: on means a problem. The list of alarms goes to
    // json_attributes_topic, whose JSON object becomes the entity's attributes.
    out.set(
      configTopic('binary_sensor', 'alarm'),
      JSON.stringify({
        name: 'Alarm',
        ...common('alarm'),
        state_topic: alarmTopic,
        device_class: 'problem',
        payload_on: 'alarm',
        payload_off: 'clear',
        json_attributes_topic: alarmAttributesTopic,
      }),
    );
    states.push([alarmTopic, state.alarms.length > 0 ? 'alarm' : 'clear']);
    states.push([
      alarmAttributesTopic,
      JSON.stringify({
        alarms: state.alarms.map((a) => ({
          type: a.type,
          since: new Date(a.sinceMs).toISOString(),
          message: a.message,
        })),
      }),
    ]);

    for (const [topic, payload] of states) out.set(topic, payload);
    return out;
  }

  private waitForConnection(): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('the bridge was not started'));
    const timeoutMs = this.options.startTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('connect', onConnect);
        reject(new Error(`no connection to ${this.options.brokerUrl} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        resolve();
      };
      client.once('connect', onConnect);
    });
  }

  private onConnect(): void {
    const client = this.client;
    if (!client || this.closing) return;
    this.connections += 1;
    this.logger.info({ broker: this.options.brokerUrl }, 'home assistant bridge connected');
    const subscriptions: Record<string, { qos: 0 | 1 }> = {
      // HA's birth message: HA (re)started and wants discovery again.
      [`${this.discoveryPrefix}/status`]: { qos: 1 },
      // Our own retained configs, to delete those no door accounts for.
      [`${this.discoveryPrefix}/+/${this.nodeId}/+/config`]: { qos: 1 },
    };
    if (this.options.lockCommands) subscriptions[`${this.baseTopic}/+/lock/set`] = { qos: 1 };
    client.subscribe(subscriptions, (err) => {
      if (err) this.logger.error({ err: err.message }, 'home assistant subscriptions failed');
    });
    this.syncDoors(true);
    this.publish(this.availabilityTopic, HA_AVAILABLE);
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    if (this.closing) return;
    if (topic === `${this.discoveryPrefix}/status`) {
      if (payload.toString() === 'online') this.syncDoors(true);
      return;
    }
    if (topic.startsWith(`${this.discoveryPrefix}/`) && topic.endsWith('/config')) {
      // Only retained deliveries (made when we subscribe) describe what an earlier run left;
      // a live one is the echo of our own publish, possibly of a door removed since.
      if (retained) this.onConfigSeen(topic, payload);
      return;
    }
    const prefix = `${this.baseTopic}/`;
    const suffix = '/lock/set';
    if (topic.startsWith(prefix) && topic.endsWith(suffix)) {
      this.onLockCommand(topic.slice(prefix.length, -suffix.length), payload, retained);
    }
  }

  /** A retained config under our node id: delete it unless a current door published it. */
  private onConfigSeen(topic: string, payload: Buffer): void {
    if (payload.length === 0) return;
    for (const topics of this.published.values()) if (topics.has(topic)) return;
    this.staleConfigsDeleted += 1;
    this.logger.info({ topic }, 'deleting a stale home assistant config');
    this.publish(topic, '');
  }

  private onLockCommand(doorId: string, payload: Buffer, retained: boolean): void {
    const commands = this.options.lockCommands;
    if (!commands) return;
    const refuse = (reason: HomeAssistantCommandRefusal): void => {
      this.refused[reason] += 1;
      this.logger.warn({ doorId, reason }, 'home assistant lock command refused');
    };
    // A retained command would be replayed on every reconnection: never act on one, and
    // delete it from the broker.
    if (retained) {
      if (payload.length > 0) this.publish(`${this.baseTopic}/${doorId}/lock/set`, '');
      return payload.length > 0 ? refuse('retained') : undefined;
    }
    const text = payload.toString();
    let command: HomeAssistantLockCommand;
    if (text === HA_PAYLOAD_LOCK) command = 'lock';
    else if (text === HA_PAYLOAD_UNLOCK) command = 'unlock';
    else return refuse('bad-payload');
    if (!this.options.source.doors().some((d) => d.id === doorId)) return refuse('unknown-door');
    if (command === 'unlock' && commands.allowUnlock !== true) return refuse('unlock-not-allowed');
    this.commandsForwarded += 1;
    commands.handle(doorId, command).catch((err: unknown) => {
      refuse('handler-failed');
      this.logger.warn({ doorId, err: String(err) }, 'lock command from home assistant failed');
    });
  }

  /** Follows the source's door list: listens to new doors, forgets removed ones. */
  private attachDoors(): void {
    const present = new Set<string>();
    for (const door of this.options.source.doors()) {
      if (!ID_PATTERN.test(door.id)) {
        // One misconfigured door must not hide the others; said once, not at every change.
        if (!this.unusableIds.has(door.id)) {
          this.unusableIds.add(door.id);
          this.logger.error({ doorId: door.id }, 'door id unusable in home assistant; skipped');
        }
        continue;
      }
      present.add(door.id);
      if (!this.doorListeners.has(door.id)) {
        this.doorListeners.set(
          door.id,
          door.onChange(() => this.syncDoor(door, false)),
        );
      }
    }
    for (const [id, stop] of this.doorListeners) {
      if (!present.has(id)) {
        stop();
        this.doorListeners.delete(id);
      }
    }
  }

  private syncDoors(force = false): void {
    if (this.closing) return;
    this.attachDoors();
    const present = new Set<string>();
    for (const door of this.options.source.doors()) {
      if (!ID_PATTERN.test(door.id)) continue;
      present.add(door.id);
      this.syncDoor(door, force);
    }
    if (!this.isConnected()) return;
    for (const [id, topics] of this.published) {
      if (present.has(id)) continue;
      this.apply(topics, new Map(), false);
      this.published.delete(id);
    }
  }

  /** Publishes what changed for `door` (everything when `force`). */
  private syncDoor(door: HomeAssistantDoor, force: boolean): void {
    if (this.closing || !this.isConnected() || !this.doorListeners.has(door.id)) return;
    const prev = this.published.get(door.id) ?? new Map<string, string>();
    const next = this.render(door);
    this.apply(prev, next, force);
    this.published.set(door.id, next);
  }

  /**
   * Moves the broker from `prev` to `next`: new or changed messages (configs before states, so
   * HA has the entity before its state), then empty retained payloads for what is gone
   * (configs first, so HA deletes the entity before its state disappears).
   */
  private apply(prev: TopicMap, next: TopicMap, force: boolean): void {
    for (const [topic, payload] of next) {
      if (force || prev.get(topic) !== payload) this.publish(topic, payload);
    }
    for (const topic of prev.keys()) {
      if (!next.has(topic)) this.publish(topic, '');
    }
  }

  private publish(topic: string, payload: string): void {
    const client = this.client;
    // Skipped while disconnected: the next connection republishes the current values.
    if (!client?.connected) return;
    client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (err) this.logger.debug({ topic, err: err.message }, 'home assistant publish lost');
    });
  }

  private async shutDown(): Promise<void> {
    this.stopSourceListener?.();
    this.stopSourceListener = undefined;
    for (const stop of this.doorListeners.values()) stop();
    this.doorListeners.clear();
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      await withTimeout(
        client.publishAsync(this.availabilityTopic, HA_NOT_AVAILABLE, { qos: 1, retain: true }),
        CLOSE_TIMEOUT_MS,
      ).catch(() => undefined);
    }
    await withTimeout(client.endAsync(!client.connected), CLOSE_TIMEOUT_MS).catch(() =>
      client.endAsync(true),
    );
  }
}

/**
 * An in-memory {@link HomeAssistantSource}: doors are set and changed by hand. For tests, and
 * for feeding the bridge without a hub (a script that mirrors some other system's doors).
 */
export class MemoryHomeAssistantSource implements HomeAssistantSource {
  private readonly entries = new Map<string, MemoryDoor>();
  private readonly listeners = new Set<() => void>();

  /** The doors, in the order they were added. */
  doors(): readonly HomeAssistantDoor[] {
    return [...this.entries.values()];
  }

  onDoorsChanged(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Adds a door (bolt `unknown`, no sensor, no camera, no alarms unless `state` says otherwise),
   * or renames an existing one and applies `state` to it.
   */
  setDoor(id: string, name: string, state: Partial<HomeAssistantDoorState> = {}): void {
    const existing = this.entries.get(id);
    if (existing) {
      existing.name = name;
      existing.patch(state);
      return;
    }
    this.entries.set(
      id,
      new MemoryDoor(id, name, {
        bolt: 'unknown',
        position: null,
        camera: null,
        alarms: [],
        ...state,
      }),
    );
    notify(this.listeners);
  }

  /** Changes some values of a door; throws when there is no such door. */
  update(id: string, patch: Partial<HomeAssistantDoorState>): void {
    const door = this.entries.get(id);
    if (!door) throw new Error(`no door ${id}`);
    door.patch(patch);
  }

  /** Removes a door (the bridge then deletes its entities from HA); false if there was none. */
  removeDoor(id: string): boolean {
    const removed = this.entries.delete(id);
    if (removed) notify(this.listeners);
    return removed;
  }
}

class MemoryDoor implements HomeAssistantDoor {
  private current: HomeAssistantDoorState;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly id: string,
    public name: string,
    initial: HomeAssistantDoorState,
  ) {
    this.current = initial;
  }

  state(): HomeAssistantDoorState {
    return this.current;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  patch(patch: Partial<HomeAssistantDoorState>): void {
    this.current = { ...this.current, ...patch };
    notify(this.listeners);
  }
}

/** Calls every listener; one that throws does not stop the others. */
function notify(listeners: ReadonlySet<() => void>): void {
  for (const listener of [...listeners]) {
    try {
      listener();
    } catch {
      // A listener's failure is its own; the source's state is already updated.
    }
  }
}

/** A topic root the bridge publishes under: no wildcards, no empty levels at the ends. */
function checkTopicRoot(name: string, value: string): string {
  if (
    value === '' ||
    /[+#]/.test(value) ||
    value.includes('\u0000') ||
    value.startsWith('/') ||
    value.endsWith('/')
  ) {
    throw new RangeError(`${name} is not a usable MQTT topic root: ${JSON.stringify(value)}`);
  }
  return value;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

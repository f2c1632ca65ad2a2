/**
 * A stand-in for Zigbee2MQTT and two real Zigbee devices behind it, for tests and demos: it
 * publishes on a real broker what Zigbee2MQTT publishes for a Yale Assure lock (YRD226HA2619,
 * or a keypad-less Kwikset 66492-001) and an Aqara MCCGQ11LM door sensor, and answers `/set`
 * and `/get` as Zigbee2MQTT with those devices' converters does. Sources, all in
 * Koenkk/zigbee2mqtt and Koenkk/zigbee-herdsman-converters:
 *
 * - `bridge/state` `{"state":"online"}` retained, last will `offline`; per-device availability
 *   `{"state":"online"|"offline"}` retained, QoS 1 (`lib/extension/availability.ts`).
 * - `bridge/devices`: `Zigbee2MQTTDevice[]` (`lib/types/api.ts`) with each definition's exposes
 *   serialised as `src/lib/exposes.ts` does (the Yale's from `lockExtend` in
 *   `src/devices/yale.ts`, the Aqara's from `src/devices/lumi.ts`).
 * - Device state: the whole cached state on every report (`publishEntityState`), `action*`
 *   keys only in the report of the event (`CACHE_IGNORE_PROPERTIES`), retained when the
 *   device's `retain` option is on, QoS 0.
 * - Lock reports: `fz.lock` (`state` LOCK/UNLOCK, `lock_state` from ZCL lockState 0/1/2),
 *   `fz.lock_operation_event` (`action`, `action_user`, `action_source`, `action_source_name`),
 *   `fz.lock_pin_code_response` (`users.<n>.status`).
 * - Lock requests: `tz.lock` (`state` LOCK/UNLOCK/TOGGLE, string or `{state, code}`; no
 *   optimistic state: the bolt is reported by the lock after it moved), `tz.pincode_lock`
 *   (`pin_code` `{user, user_type, user_enabled, pin_code}` or `pin_code: null`; user in
 *   0…pinCodeCount-1; `/get` with a user reads one, without reads all).
 * - Contact reports: `lumi_contact` (`contact: true` = closed) plus the `lumi_basic` values.
 *
 * A request Zigbee2MQTT would reject (bad value, offline device whose command times out) is
 * dropped without an answer, as Zigbee2MQTT only logs it.
 */
import { connect, type MqttClient } from 'mqtt';

/** Where the emulated Zigbee2MQTT runs. */
export interface Zigbee2MqttEmulatorOptions {
  /** The broker, `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  /** `mqtt.base_topic`. Default `zigbee2mqtt`. */
  readonly baseTopic?: string;
  /**
   * The devices' `retain` option: whether state reports are retained. Zigbee2MQTT's default is
   * off; docs/devices.md recommends it on. Default true.
   */
  readonly retain?: boolean;
}

/** The lock models the emulator knows. */
export type EmulatedLockModel = 'YRD226HA2619' | '66492-001';

/** Settings of an emulated lock. */
export interface EmulatedLockOptions {
  /** Default YRD226HA2619 (Yale Assure, keypad); 66492-001 is a Kwikset kit without PINs. */
  readonly model?: EmulatedLockModel;
  /** Bolt at start. Default 'locked'. */
  readonly bolt?: 'locked' | 'unlocked';
  /** Time from command to the lockState report, ms. Default 50. */
  readonly motorDelayMs?: number;
  /** Whether it is online at start. Default true. */
  readonly online?: boolean;
  /** Whether it reports its state once at start (as after pairing). Default true. */
  readonly reportAtStart?: boolean;
}

/** Settings of an emulated contact sensor. */
export interface EmulatedContactOptions {
  /** Door at start. Default closed. */
  readonly closed?: boolean;
  readonly online?: boolean;
  readonly reportAtStart?: boolean;
}

/** One request the emulated bridge received. */
export interface ReceivedRequest {
  readonly topic: string;
  readonly payload: string;
}

type Json = Record<string, unknown>;

/** ZCL Door Lock lockState values (`fz.lock`'s lookup index). */
type LockState = 0 | 1 | 2;

const LOCK_STATE_NAMES = ['not_fully_locked', 'locked', 'unlocked'] as const;

/** `constants.lockSourceName`. */
const SOURCE_NAME: Readonly<Record<number, string>> = {
  0: 'keypad',
  1: 'rf',
  2: 'manual',
  3: 'rfid',
  4: 'fingerprint',
};

/** Serialised exposes of `e.lock()` (`Lock.withState` / `withLockState`). */
const LOCK_EXPOSE = {
  type: 'lock',
  features: [
    {
      type: 'binary',
      name: 'state',
      label: 'State',
      property: 'state',
      access: 7,
      value_on: 'LOCK',
      value_off: 'UNLOCK',
      description: 'State of the lock',
    },
    {
      type: 'enum',
      name: 'lock_state',
      label: 'Lock state',
      property: 'lock_state',
      access: 1,
      values: ['not_fully_locked', 'locked', 'unlocked'],
      description: 'Actual state of the lock',
    },
  ],
};

const BATTERY_EXPOSE = {
  type: 'numeric',
  name: 'battery',
  label: 'Battery',
  property: 'battery',
  access: 5,
  unit: '%',
  value_min: 0,
  value_max: 100,
  description: 'Remaining battery in %',
  category: 'diagnostic',
};

/** `e.pincode()`. */
const PIN_CODE_EXPOSE = {
  type: 'composite',
  name: 'pin_code',
  label: 'Pin code',
  property: 'pin_code',
  access: 7,
  features: [
    {
      type: 'numeric',
      name: 'user',
      label: 'User',
      property: 'user',
      access: 2,
      description: 'User ID to set or clear the pincode for',
    },
    {
      type: 'enum',
      name: 'user_type',
      label: 'User type',
      property: 'user_type',
      access: 2,
      values: ['unrestricted', 'year_day_schedule', 'week_day_schedule', 'master', 'non_access'],
    },
    {
      type: 'binary',
      name: 'user_enabled',
      label: 'User enabled',
      property: 'user_enabled',
      access: 2,
      value_on: true,
      value_off: false,
    },
    {
      type: 'numeric',
      name: 'pin_code',
      label: 'PIN code',
      property: 'pin_code',
      access: 2,
      description: 'Pincode to set, set pincode to null to clear',
    },
  ],
};

/** `e.lock_action()`, `e.lock_action_source_name()`, `e.lock_action_user()`. */
const LOCK_ACTION_EXPOSES = [
  {
    type: 'enum',
    name: 'action',
    label: 'Action',
    property: 'action',
    access: 1,
    values: [
      'unknown',
      'lock',
      'unlock',
      'lock_failure_invalid_pin_or_id',
      'lock_failure_invalid_schedule',
      'unlock_failure_invalid_pin_or_id',
      'unlock_failure_invalid_schedule',
      'one_touch_lock',
      'key_lock',
      'key_unlock',
      'auto_lock',
      'schedule_lock',
      'schedule_unlock',
      'manual_lock',
      'manual_unlock',
      'non_access_user_operational_event',
    ],
    description: 'Triggered action on the lock',
  },
  {
    type: 'enum',
    name: 'action_source_name',
    label: 'Action source name',
    property: 'action_source_name',
    access: 1,
    values: ['keypad', 'rfid', 'manual', 'rf'],
    description: 'Source of the triggered action on the lock',
  },
  {
    type: 'numeric',
    name: 'action_user',
    label: 'Action user',
    property: 'action_user',
    access: 1,
    description: 'ID of user that triggered the action on the lock',
  },
];

const LOCK_MODELS: Readonly<
  Record<
    EmulatedLockModel,
    {
      vendor: string;
      description: string;
      modelId: string;
      pinCodeCount: number;
      exposes: unknown[];
    }
  >
> = {
  // src/devices/yale.ts: zigbeeModel "YRD226 TSDB", extend lockExtend() (pinCodeCount 250).
  YRD226HA2619: {
    vendor: 'Yale',
    description: 'Assure lock',
    modelId: 'YRD226 TSDB',
    pinCodeCount: 250,
    exposes: [LOCK_EXPOSE, BATTERY_EXPOSE, PIN_CODE_EXPOSE, ...LOCK_ACTION_EXPOSES],
  },
  // src/devices/kwikset.ts: "SMARTCODE_CONVERT_GEN1", fz.lock + lock_operation_event, tz.lock
  // only: no pin_code.
  '66492-001': {
    vendor: 'Kwikset',
    description: 'Home connect smart lock conversion kit',
    modelId: 'SMARTCODE_CONVERT_GEN1',
    pinCodeCount: 0,
    exposes: [LOCK_EXPOSE, BATTERY_EXPOSE, ...LOCK_ACTION_EXPOSES],
  },
};

/** MCCGQ11LM exposes (src/devices/lumi.ts). */
const CONTACT_EXPOSES = [
  BATTERY_EXPOSE,
  {
    type: 'binary',
    name: 'contact',
    label: 'Contact',
    property: 'contact',
    access: 1,
    value_on: false,
    value_off: true,
    description: 'Indicates if the contact is closed (= true) or open (= false)',
  },
  {
    type: 'numeric',
    name: 'device_temperature',
    label: 'Device temperature',
    property: 'device_temperature',
    access: 1,
    unit: '°C',
  },
  {
    type: 'numeric',
    name: 'voltage',
    label: 'Voltage',
    property: 'voltage',
    access: 1,
    unit: 'mV',
  },
];

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

let ieeeCounter = 0x1000;

/** Something behind the emulated bridge. */
abstract class EmulatedDevice {
  readonly ieeeAddress: string;
  /** Zigbee2MQTT's state cache for this device (without `action*`). */
  protected cache: Json = {};
  online: boolean;

  constructor(
    protected readonly bridge: Zigbee2MqttEmulator,
    readonly friendlyName: string,
    online: boolean,
  ) {
    this.online = online;
    this.ieeeAddress = `0x00158d0000${(ieeeCounter++).toString(16).padStart(6, '0')}`;
  }

  abstract deviceEntry(): Json;
  /** Handles `/set` or `/get`; the payload is already JSON. */
  abstract handle(kind: 'set' | 'get', message: Json): void;

  /** Makes the device unreachable: Zigbee2MQTT's availability check marks it offline. */
  async goOffline(): Promise<void> {
    this.online = false;
    await this.bridge.publishAvailability(this);
  }

  /** The device answers again; Zigbee2MQTT marks it online. */
  async goOnline(): Promise<void> {
    this.online = true;
    await this.bridge.publishAvailability(this);
  }

  /** What `publishEntityState` does: merge into the cache, publish the cache plus the update. */
  protected report(update: Json): Promise<void> {
    const message: Json = { ...this.cache, ...update, linkquality: 116 };
    const cached: Json = { ...this.cache };
    for (const [key, value] of Object.entries(update)) {
      if (key === 'action' || key.startsWith('action_')) continue;
      cached[key] = isObject(value) && isObject(cached[key]) ? { ...cached[key], ...value } : value;
      // Nested objects (users) are merged deeply, as object-assign-deep does.
      if (isObject(value) && isObject(this.cache[key])) message[key] = cached[key];
    }
    this.cache = cached;
    return this.bridge.publishState(this, message);
  }
}

/** An emulated Zigbee lock (see {@link Zigbee2MqttEmulator}). */
export class EmulatedLock extends EmulatedDevice {
  readonly model: EmulatedLockModel;
  private lockState: LockState;
  private readonly motorDelayMs: number;
  private jamNext = false;
  private holding = false;
  private readonly held: (() => void)[] = [];
  /** ZCL user status by user id: 1 enabled, 3 disabled; absent = 0 available. */
  private readonly users = new Map<number, { status: 1 | 3; code: string }>();

  constructor(bridge: Zigbee2MqttEmulator, friendlyName: string, options: EmulatedLockOptions) {
    super(bridge, friendlyName, options.online ?? true);
    this.model = options.model ?? 'YRD226HA2619';
    this.lockState = (options.bolt ?? 'locked') === 'locked' ? 1 : 2;
    this.motorDelayMs = options.motorDelayMs ?? 50;
  }

  /** `meta.pinCodeCount` of the model's definition. */
  get pinCodeCount(): number {
    return LOCK_MODELS[this.model].pinCodeCount;
  }

  /** The bolt as the lock itself has it. */
  bolt(): 'locked' | 'unlocked' | 'jammed' {
    return this.lockState === 1 ? 'locked' : this.lockState === 2 ? 'unlocked' : 'jammed';
  }

  /** Slots holding a code now (user ids), as the lock's memory has them. */
  codes(): ReadonlyMap<number, string> {
    return new Map([...this.users].map(([user, u]) => [user, u.code]));
  }

  /** The next movement (commanded or by hand) stops part-way: lockState 0. */
  jamNextMove(): void {
    this.jamNext = true;
  }

  /** Holds movements after the command was taken, until {@link releaseMovements}. */
  holdMovements(): void {
    this.holding = true;
  }

  /** Lets held movements run. */
  releaseMovements(): void {
    this.holding = false;
    for (const run of this.held.splice(0)) run();
  }

  /** Someone turns the key or thumb-turn: operation event 13/14, source manual (2). */
  async turnByHand(bolt: 'locked' | 'unlocked'): Promise<void> {
    await this.operationEvent(bolt === 'locked' ? 'manual_lock' : 'manual_unlock', 2, 0);
    await this.settle(bolt === 'locked' ? 1 : 2);
  }

  /** A right code for `user` at the keypad: operation event `unlock`, source keypad (0). */
  async keypadUnlock(user: number): Promise<void> {
    await this.operationEvent('unlock', 0, user);
    await this.settle(2);
  }

  /** Enters `code` at the keypad: unlocks for the user holding it, else a failed attempt. */
  async enterCode(code: string): Promise<void> {
    for (const [user, u] of this.users) {
      if (u.code === code && u.status === 1) return this.keypadUnlock(user);
    }
    await this.operationEvent('unlock_failure_invalid_pin_or_id', 0, 0);
  }

  override deviceEntry(): Json {
    const m = LOCK_MODELS[this.model];
    return deviceEntry(this, m.modelId, m.vendor, m.description, this.model, m.exposes);
  }

  /** Publishes `fz.lock`'s reading of the current lockState (attribute report/read response). */
  reportLockState(): Promise<void> {
    return this.report({
      state: this.lockState === 1 ? 'LOCK' : 'UNLOCK',
      lock_state: LOCK_STATE_NAMES[this.lockState],
    });
  }

  override handle(kind: 'set' | 'get', message: Json): void {
    // An offline device's command times out in zigbee-herdsman; Zigbee2MQTT only logs it.
    if (!this.online) return;
    for (const [key, value] of Object.entries(message)) {
      if (key === 'state') this.onState(kind, value);
      else if (key === 'pin_code' && this.pinCodeCount > 0) this.onPinCode(kind, value);
      // Other keys: "No converter available", logged and dropped.
    }
  }

  private onState(kind: 'set' | 'get', value: unknown): void {
    if (kind === 'get') {
      void this.reportLockState();
      return;
    }
    // tz.lock: a string, or {state, code}; upper-cased; LOCK, UNLOCK or TOGGLE.
    let state: string | null = typeof value === 'string' ? value.toUpperCase() : null;
    if (isObject(value) && typeof value.state === 'string') state = value.state.toUpperCase();
    if (state === 'TOGGLE') state = this.lockState === 1 ? 'UNLOCK' : 'LOCK';
    if (state !== 'LOCK' && state !== 'UNLOCK') return;
    const target: LockState = state === 'LOCK' ? 1 : 2;
    this.move(() => void this.settle(target));
  }

  private onPinCode(kind: 'set' | 'get', value: unknown): void {
    const count = this.pinCodeCount;
    if (kind === 'get') {
      // tz.pincode_lock convertGet: with a user, getPinCode for it; without, for every user.
      const user = isObject(value) ? value.user : undefined;
      if (user === undefined) {
        for (let u = 0; u < count; u++) void this.reportUser(u);
      } else if (typeof user === 'number' && Number.isInteger(user) && user >= 0 && user < count) {
        void this.reportUser(user);
      }
      return;
    }
    if (!isObject(value)) return;
    const user = value.user;
    if (typeof user !== 'number' || !Number.isInteger(user) || user < 0 || user >= count) return;
    const pin = value.pin_code;
    if (pin === null || pin === undefined) {
      // clearPinCode
      this.users.delete(user);
      return;
    }
    if (
      (typeof pin !== 'string' && typeof pin !== 'number') ||
      Number.isNaN(Number(pin)) ||
      !/^[0-9]+$/.test(String(pin))
    ) {
      return;
    }
    // setPinCode: userstatus enabled (1) unless user_enabled is false (3).
    this.users.set(user, { status: value.user_enabled === false ? 3 : 1, code: String(pin) });
  }

  /** `fz.lock_pin_code_response` for one user (status from `constants.lockUserStatus`). */
  private reportUser(user: number): Promise<void> {
    const u = this.users.get(user);
    const status = u === undefined ? 'available' : u.status === 1 ? 'enabled' : 'disabled';
    return this.report({ users: { [String(user)]: { status } } });
  }

  private operationEvent(action: string, source: number, user: number): Promise<void> {
    return this.report({
      action,
      action_source: source,
      action_source_name: SOURCE_NAME[source],
      action_user: user,
    });
  }

  /** Runs a movement after the motor delay, or when released if movements are held. */
  private move(run: () => void): void {
    const start = (): void => {
      this.bridge.later(this.motorDelayMs, run);
    };
    if (this.holding) this.held.push(start);
    else start();
  }

  private settle(target: LockState): Promise<void> {
    this.lockState = this.jamNext ? 0 : target;
    this.jamNext = false;
    return this.reportLockState();
  }
}

/** An emulated Aqara MCCGQ11LM door and window sensor. */
export class EmulatedContact extends EmulatedDevice {
  private closed: boolean;

  constructor(bridge: Zigbee2MqttEmulator, friendlyName: string, options: EmulatedContactOptions) {
    super(bridge, friendlyName, options.online ?? true);
    this.closed = options.closed ?? true;
  }

  /** The door opens: the magnet leaves the reed switch (genOnOff 1, `contact: false`). */
  open(): Promise<void> {
    this.closed = false;
    return this.reportContact();
  }

  /** The door closes (genOnOff 0, `contact: true`). */
  close(): Promise<void> {
    this.closed = true;
    return this.reportContact();
  }

  /** Publishes the sensor's report as `lumi_contact` and `lumi_basic` give it. */
  reportContact(): Promise<void> {
    return this.report({
      battery: 100,
      contact: this.closed,
      device_temperature: 24,
      power_outage_count: 3,
      voltage: 3015,
    });
  }

  override deviceEntry(): Json {
    return deviceEntry(
      this,
      'lumi.sensor_magnet.aq2',
      'Aqara',
      'Door and window sensor',
      'MCCGQ11LM',
      CONTACT_EXPOSES,
    );
  }

  override handle(): void {
    // No toZigbee converters: Zigbee2MQTT logs "No converter available" for every key.
  }
}

function deviceEntry(
  device: EmulatedDevice,
  modelId: string,
  vendor: string,
  description: string,
  model: string,
  exposes: unknown[],
): Json {
  return {
    ieee_address: device.ieeeAddress,
    type: 'EndDevice',
    network_address: Number.parseInt(device.ieeeAddress.slice(-4), 16),
    supported: true,
    friendly_name: device.friendlyName,
    disabled: false,
    definition: {
      source: 'native',
      model,
      vendor,
      description,
      exposes,
      supports_ota: false,
      options: [],
    },
    power_source: 'Battery',
    model_id: modelId,
    manufacturer: vendor,
    interviewing: false,
    interview_completed: true,
    interview_state: 'SUCCESSFUL',
    software_build_id: null,
    date_code: null,
    endpoints: {},
  };
}

/** See the module comment. */
export class Zigbee2MqttEmulator {
  /** Every `/set` and `/get` received, in order. */
  readonly received: ReceivedRequest[] = [];
  private readonly devices = new Map<string, EmulatedDevice>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  private constructor(
    private readonly client: MqttClient,
    readonly baseTopic: string,
    private readonly retain: boolean,
  ) {
    client.on('message', (topic, payload) => this.onRequest(topic, payload.toString('utf8')));
  }

  /** Connects as Zigbee2MQTT does: last will `bridge/state` offline, then `online`. */
  static async start(options: Zigbee2MqttEmulatorOptions): Promise<Zigbee2MqttEmulator> {
    const base = options.baseTopic ?? 'zigbee2mqtt';
    const client = connect(options.url, {
      clientId: `z2m-emulator-${Math.random().toString(16).slice(2, 10)}`,
      reconnectPeriod: 0,
      will: {
        topic: `${base}/bridge/state`,
        payload: Buffer.from(JSON.stringify({ state: 'offline' })),
        retain: true,
        qos: 1,
      },
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const emulator = new Zigbee2MqttEmulator(client, base, options.retain ?? true);
    await emulator.publish(`${base}/bridge/state`, JSON.stringify({ state: 'online' }), true, 1);
    await emulator.publishDevices();
    return emulator;
  }

  /** Pairs a lock: lists it, subscribes to its requests, publishes availability and state. */
  async addLock(friendlyName: string, options: EmulatedLockOptions = {}): Promise<EmulatedLock> {
    const lock = new EmulatedLock(this, friendlyName, options);
    await this.add(lock);
    if (options.reportAtStart ?? true) await lock.reportLockState();
    return lock;
  }

  /** Pairs an Aqara door sensor. */
  async addContact(
    friendlyName: string,
    options: EmulatedContactOptions = {},
  ): Promise<EmulatedContact> {
    const contact = new EmulatedContact(this, friendlyName, options);
    await this.add(contact);
    if (options.reportAtStart ?? true) await contact.reportContact();
    return contact;
  }

  /** Zigbee2MQTT shuts down cleanly: `bridge/state` offline (device availability stays). */
  async stopBridge(): Promise<void> {
    await this.publish(
      `${this.baseTopic}/bridge/state`,
      JSON.stringify({ state: 'offline' }),
      true,
      1,
    );
  }

  /** Zigbee2MQTT starts again. */
  async startBridge(): Promise<void> {
    await this.publish(
      `${this.baseTopic}/bridge/state`,
      JSON.stringify({ state: 'online' }),
      true,
      1,
    );
  }

  /** Publishes raw text on a topic (for tests of malformed input). */
  publishRaw(topic: string, payload: string, retain = false): Promise<void> {
    return this.publish(topic, payload, retain, 1);
  }

  /** The local port of the emulator's own broker connection (to tell it from others in tests). */
  localPort(): number | undefined {
    const stream = this.client.stream as { localPort?: number } | undefined;
    return stream?.localPort;
  }

  /** Drops the broker connection without DISCONNECT, as a crash does: the broker sends the will. */
  crash(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.client.stream.destroy();
    this.client.end(true);
  }

  /** Disconnects and cancels pending movements; retained messages stay on the broker. */
  async stop(): Promise<void> {
    if (this.stopped) {
      if (this.client.connected) await this.client.endAsync(true);
      return;
    }
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.client.endAsync();
  }

  /** @internal Runs `fn` after `ms`, unless the emulator stops first. */
  later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(timer);
  }

  /** @internal */
  publishAvailability(device: EmulatedDevice): Promise<void> {
    const payload = JSON.stringify({ state: device.online ? 'online' : 'offline' });
    return this.publish(`${this.baseTopic}/${device.friendlyName}/availability`, payload, true, 1);
  }

  /** @internal */
  publishState(device: EmulatedDevice, message: Json): Promise<void> {
    return this.publish(
      `${this.baseTopic}/${device.friendlyName}`,
      JSON.stringify(message),
      this.retain,
      0,
    );
  }

  private async add(device: EmulatedDevice): Promise<void> {
    if (this.devices.has(device.friendlyName)) {
      throw new Error(`emulator: ${device.friendlyName} is already paired`);
    }
    this.devices.set(device.friendlyName, device);
    const topic = `${this.baseTopic}/${device.friendlyName}`;
    await this.client.subscribeAsync([`${topic}/set`, `${topic}/get`], { qos: 1 });
    await this.publishDevices();
    await this.publishAvailability(device);
  }

  private publishDevices(): Promise<void> {
    const coordinator = {
      ieee_address: '0x00124b0000000001',
      type: 'Coordinator',
      network_address: 0,
      supported: true,
      friendly_name: 'Coordinator',
      disabled: false,
      power_source: 'Mains (single phase)',
      interviewing: false,
      interview_completed: true,
      interview_state: 'SUCCESSFUL',
      endpoints: {},
    };
    const list = [coordinator, ...[...this.devices.values()].map((d) => d.deviceEntry())];
    return this.publish(`${this.baseTopic}/bridge/devices`, JSON.stringify(list), true, 1);
  }

  private onRequest(topic: string, payload: string): void {
    if (this.stopped) return;
    this.received.push({ topic, payload });
    const prefix = `${this.baseTopic}/`;
    if (!topic.startsWith(prefix)) return;
    const rest = topic.slice(prefix.length);
    const kind = rest.endsWith('/set') ? 'set' : rest.endsWith('/get') ? 'get' : null;
    if (!kind) return;
    const device = this.devices.get(rest.slice(0, -4));
    if (!device) return;
    // publish.ts parseMessage: JSON, else a bare state word becomes {state}; anything else is
    // "Invalid message ..., skipping".
    const message = parseJson(payload);
    if (isObject(message)) device.handle(kind, message);
    else if (
      message === undefined &&
      ['lock', 'unlock', 'toggle'].includes(payload.toLowerCase())
    ) {
      device.handle(kind, { state: payload });
    }
  }

  private publish(topic: string, payload: string, retain: boolean, qos: 0 | 1): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.client.publishAsync(topic, payload, { retain, qos }).then(() => undefined);
  }
}

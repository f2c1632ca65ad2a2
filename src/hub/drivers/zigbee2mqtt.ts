/**
 * Zigbee2MQTT drivers: a Zigbee lock ({@link Zigbee2MqttLock}) and a Zigbee door contact
 * ({@link Zigbee2MqttContact}), spoken to through Zigbee2MQTT's MQTT API on the home's broker.
 *
 * Every payload below is the one Zigbee2MQTT and zigbee-herdsman-converters publish or accept;
 * the source of each is named where it is used. In short (`<base>` defaults to `zigbee2mqtt`):
 *
 * - `<base>/bridge/state`: `{"state":"online"|"offline"}`, retained; Zigbee2MQTT's last will is
 *   `offline` (zigbee2mqtt `lib/types/api.ts` "bridge/state"). Older versions sent the bare
 *   words. While the bridge is offline no device is reachable, whatever its last availability.
 * - `<base>/bridge/devices`: the retained device list (`Zigbee2MQTTDevice[]` in `api.ts`); used
 *   to learn the model and whether the lock exposes `pin_code`.
 * - `<base>/<friendly_name>/availability`: `{"state":"online"|"offline"}`, retained, QoS 1
 *   (zigbee2mqtt `lib/extension/availability.ts`); legacy bare `online`/`offline` too; an empty
 *   payload (the topic was cleared after a rename) means gone. Availability must be enabled
 *   in Zigbee2MQTT: without it the device is never considered reachable.
 * - `<base>/<friendly_name>`: the device's whole cached state as JSON (`publishEntityState` in
 *   zigbee2mqtt `lib/controller.ts`); `action*` keys appear only in the message of the event
 *   itself (`CACHE_IGNORE_PROPERTIES` in `lib/state.ts`), so a *retained* copy of an action is
 *   an old event and is ignored.
 * - `<base>/<friendly_name>/set` and `/get`: requests. Zigbee2MQTT answers neither (a failed
 *   request is only logged), so a command is "accepted" once the broker acknowledged it (QoS 1)
 *   and its result is the next state report.
 */
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { Type } from 'typebox';
import { PIN_CODE_PATTERN } from '../../protocol/device-messages.ts';
import type { DriverFactory } from '../driver-registry.ts';
import {
  DriverError,
  type ContactDriver,
  type ContactDriverEvent,
  type DriverBolt,
  type DriverPosition,
  type LockDriver,
  type LockDriverEvent,
  type PinDriver,
} from './driver.ts';

/** How to reach one device through Zigbee2MQTT. */
export interface Zigbee2MqttOptions {
  /** The hub's id for this device (the device id presented upstream). */
  readonly id: string;
  /** The broker Zigbee2MQTT uses: `mqtt://host:port` or `mqtts://host:port`. */
  readonly url: string;
  /** Zigbee2MQTT's `mqtt.base_topic`. Default `zigbee2mqtt`. */
  readonly baseTopic?: string;
  /** The device's friendly name in Zigbee2MQTT (may contain `/`, not `+` or `#`). */
  readonly friendlyName: string;
  readonly username?: string;
  readonly password?: string;
  /** The hub's clock, ms; stamps the events' `at`. Default `Date.now`. */
  readonly now?: () => number;
  /** How long `start()` waits for the device's state before resolving with `unknown`. Default 3000 ms. */
  readonly startTimeoutMs?: number;
  /** How long a request may wait for the broker's acknowledgement. Default 5000 ms. */
  readonly commandTimeoutMs?: number;
  /** Delay between reconnection attempts to the broker. Default 1000 ms. */
  readonly reconnectPeriodMs?: number;
}

/** A lock through Zigbee2MQTT. */
export interface Zigbee2MqttLockOptions extends Zigbee2MqttOptions {
  /**
   * The lock's `pinCodeCount` (Zigbee user ids 0…count-1), as its zigbee-herdsman-converters
   * definition says: 250 for the Yale Assure locks (`lockExtend` in `src/devices/yale.ts`), 30
   * for a Weiser SmartCode 10. Slots 1…count-1 are used; 0 disables PIN management
   * (`pins` is null). Default 250.
   */
  readonly pinCodeCount?: number;
  /**
   * How long `pins.occupied()` waits for the lock's answers to the user-code reads it asked for
   * (a Yale answers its 250 reads one radio round-trip at a time). Default 30 000 ms.
   */
  readonly pinReadTimeoutMs?: number;
}

/** What Zigbee2MQTT's device list says about a device. */
export interface Zigbee2MqttDeviceInfo {
  readonly model: string | null;
  readonly vendor: string | null;
  /** Whether its definition exposes `pin_code` (a keypad Zigbee2MQTT can program). */
  readonly exposesPinCode: boolean;
}

const DEFAULT_BASE_TOPIC = 'zigbee2mqtt';
const DEFAULT_START_TIMEOUT_MS = 3000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
const DEFAULT_PIN_CODE_COUNT = 250;
const DEFAULT_PIN_READ_TIMEOUT_MS = 30_000;
const PIN_CODE_RE = new RegExp(PIN_CODE_PATTERN);

type JsonObject = Record<string, unknown>;

function parseJsonObject(text: string): JsonObject | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as JsonObject)
      : null;
  } catch {
    return null;
  }
}

/**
 * Reads an availability-style payload (`bridge/state`, `<name>/availability`): the JSON form of
 * Zigbee2MQTT ≥ 1.22 or the bare word of older versions. Anything else, the empty payload of a
 * cleared topic included, counts as offline: reachability we cannot read is not reachability.
 */
function parseOnline(text: string): boolean {
  const trimmed = text.trim();
  if (trimmed === 'online') return true;
  if (trimmed === 'offline' || trimmed === '') return false;
  const obj = parseJsonObject(trimmed);
  return obj?.state === 'online';
}

/** Whether an expose list (zigbee-herdsman-converters `exposes`, serialised) holds `name`. */
function exposesName(exposes: unknown, name: string): boolean {
  if (!Array.isArray(exposes)) return false;
  return exposes.some((item: unknown) => {
    if (typeof item !== 'object' || item === null) return false;
    const e = item as JsonObject;
    return e.name === name || e.property === name || exposesName(e.features, name);
  });
}

function assertFriendlyName(name: string): void {
  // `+` and `#` would turn our subscriptions into wildcards and read other devices' reports.
  if (name === '' || /[+#]/.test(name) || name.startsWith('/') || name.endsWith('/')) {
    throw new Error(`zigbee2mqtt: invalid friendly name ${JSON.stringify(name)}`);
  }
}

/**
 * What both drivers share: one MQTT connection, the subscriptions, availability (connection ×
 * bridge × device), listener dispatch, and `start`/`stop`.
 */
abstract class Zigbee2MqttDevice<E> {
  readonly id: string;
  protected readonly now: () => number;
  protected readonly base: string;
  protected readonly stateTopic: string;
  private readonly availabilityTopic: string;
  private readonly bridgeStateTopic: string;
  private readonly bridgeDevicesTopic: string;
  private readonly url: string;
  private readonly mqttOptions: IClientOptions;
  private readonly startTimeoutMs: number;
  protected readonly commandTimeoutMs: number;
  protected readonly friendlyName: string;

  private client: MqttClient | undefined;
  private connected = false;
  private bridgeOnline = false;
  /** null until the availability topic said something. */
  private deviceOnline: boolean | null = null;
  private info: Zigbee2MqttDeviceInfo | null = null;
  protected stopped = false;
  private readonly listeners = new Set<(e: E) => void>();
  /** Requests waiting for the broker's PUBACK; stop() settles them and their timers. */
  private readonly inFlight = new Set<() => void>();
  /** Called after every message, to wake whoever waits for a condition (start, occupied). */
  private readonly waiters = new Set<() => void>();

  constructor(options: Zigbee2MqttOptions) {
    assertFriendlyName(options.friendlyName);
    const url = new URL(options.url);
    if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(url.protocol)) {
      throw new Error(`zigbee2mqtt: unsupported broker URL ${options.url}`);
    }
    this.id = options.id;
    this.url = options.url;
    this.friendlyName = options.friendlyName;
    this.now = options.now ?? Date.now;
    this.base = options.baseTopic ?? DEFAULT_BASE_TOPIC;
    this.stateTopic = `${this.base}/${options.friendlyName}`;
    this.availabilityTopic = `${this.stateTopic}/availability`;
    this.bridgeStateTopic = `${this.base}/bridge/state`;
    this.bridgeDevicesTopic = `${this.base}/bridge/devices`;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.mqttOptions = {
      clientId: `threshold-hub-${options.id}-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      // We subscribe again ourselves on every connection (see start()); mqtt.js doing it too
      // would deliver every retained message twice.
      resubscribe: false,
      reconnectPeriod: options.reconnectPeriodMs ?? 1000,
      connectTimeout: this.commandTimeoutMs,
      // Requests are not queued while the broker is away: a lock command sent minutes late is
      // worse than a refused one.
      queueQoSZero: false,
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
    };
  }

  /** Whether the device (through the broker and Zigbee2MQTT) is reachable now. */
  available(): boolean {
    return !this.stopped && this.connected && this.bridgeOnline && this.deviceOnline === true;
  }

  /** The model and exposes Zigbee2MQTT lists for the device, once `bridge/devices` arrived. */
  deviceInfo(): Zigbee2MqttDeviceInfo | null {
    return this.info;
  }

  /** Listens to reports; returns the function that stops listening. */
  on(listener: (e: E) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Connects, subscribes and waits (at most `startTimeoutMs`) for the device's state. */
  async start(): Promise<void> {
    if (this.client || this.stopped) return;
    const client = connect(this.url, this.mqttOptions);
    this.client = client;
    client.on('connect', () => {
      client.subscribe(
        [this.stateTopic, this.availabilityTopic, this.bridgeStateTopic, this.bridgeDevicesTopic],
        { qos: 1 },
        (err) => {
          if (err || this.stopped) return;
          this.change(() => {
            this.connected = true;
          });
          this.onSubscribed();
        },
      );
    });
    const lost = (): void => {
      this.change(() => {
        this.connected = false;
        // What the bridge and the device said is stale once we stop hearing them: on the next
        // connection their retained availability tells us again.
        this.bridgeOnline = false;
        this.deviceOnline = null;
      });
    };
    client.on('close', lost);
    client.on('offline', lost);
    // Connection errors are retried by mqtt.js; availability already says the device is away.
    client.on('error', () => undefined);
    client.on('message', (topic, payload, packet) => {
      if (this.stopped) return;
      this.onMessage(topic, payload.toString('utf8'), packet.retain);
      for (const wake of [...this.waiters]) wake();
    });
    await this.waitFor(() => this.settled(), this.startTimeoutMs).catch(() => undefined);
  }

  /** Releases the connection and every timer; idempotent. Nothing is emitted afterwards. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.listeners.clear();
    for (const wake of [...this.waiters]) wake();
    for (const abandon of [...this.inFlight]) abandon();
    const client = this.client;
    this.client = undefined;
    this.connected = false;
    if (client) await client.endAsync(true);
  }

  /** Whether `start()` may resolve: the device is known to be away, or its state is known. */
  protected abstract settled(): boolean;
  /** Called (once per connection) when the subscriptions are in place. */
  protected abstract onSubscribed(): void;
  /** A state report on `<base>/<name>`. */
  protected abstract onState(report: JsonObject, retained: boolean): void;
  /** Forgets the reported state: the device went away, or our view of it did. */
  protected abstract forgetState(): void;
  /** The current reported fact, for change detection (`bolt()`/`position()`). */
  protected abstract fact(): string;
  /** The event that says the fact changed. */
  protected abstract factEvent(at: number): E;
  /** Called when the device became reachable again. */
  protected onAvailable(): void {}

  /** Whether the device is known to be offline (its availability topic says so). */
  protected knownOffline(): boolean {
    return this.deviceOnline === false;
  }

  /**
   * Applies `mutate` and emits what changed, availability first: a device that went away makes
   * its state `unknown` at the same moment, and one that came back reports its state after.
   */
  protected change(mutate: () => void): void {
    const wasAvailable = this.available();
    const before = this.fact();
    mutate();
    const isAvailable = this.available();
    if (wasAvailable && !isAvailable) this.forgetState();
    if (this.stopped) return;
    const at = this.now();
    if (wasAvailable !== isAvailable) {
      this.emit({ type: 'availability', available: isAvailable, at } as E);
    }
    if (before !== this.fact()) this.emit(this.factEvent(at));
    if (!wasAvailable && isAvailable) this.onAvailable();
  }

  /** Calls every listener; one that throws does not stop the others. */
  protected emit(event: E): void {
    if (this.stopped) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not hide the report from the others.
      }
    }
  }

  private onMessage(topic: string, text: string, retained: boolean): void {
    if (topic === this.bridgeStateTopic) {
      const online = parseOnline(text);
      this.change(() => {
        this.bridgeOnline = online;
      });
    } else if (topic === this.availabilityTopic) {
      const online = parseOnline(text);
      this.change(() => {
        this.deviceOnline = online;
        // A device that says it is offline has no state we can trust, even if our view of it
        // (e.g. at start, before the bridge's state arrived) was not "available" yet.
        if (!online) this.forgetState();
      });
    } else if (topic === this.bridgeDevicesTopic) {
      this.onDeviceList(text);
    } else if (topic === this.stateTopic) {
      const report = parseJsonObject(text);
      if (!report) return;
      // A retained report while the device is known to be offline is the state from before it
      // went away; a live one means the device is talking again (its availability follows).
      if (retained && this.knownOffline()) return;
      this.change(() => this.onState(report, retained));
    }
  }

  private onDeviceList(text: string): void {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch {
      return;
    }
    if (!Array.isArray(list)) return;
    const entry = list.find(
      (d: unknown) =>
        typeof d === 'object' &&
        d !== null &&
        (d as JsonObject).friendly_name === this.friendlyName,
    ) as JsonObject | undefined;
    if (!entry) {
      this.info = null;
      return;
    }
    const definition =
      typeof entry.definition === 'object' && entry.definition !== null
        ? (entry.definition as JsonObject)
        : {};
    this.info = {
      model: typeof definition.model === 'string' ? definition.model : null,
      vendor: typeof definition.vendor === 'string' ? definition.vendor : null,
      exposesPinCode: exposesName(definition.exposes, 'pin_code'),
    };
  }

  /** Resolves when `condition()` holds (checked after each message), rejects after `ms`. */
  protected waitFor(condition: () => boolean, ms: number): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = (): void => {
        if (this.stopped) {
          done();
          reject(new DriverError('device.unavailable', `${this.id}: driver stopped`));
        } else if (condition()) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new DriverError('device.timeout', `${this.id}: no answer within ${ms} ms`));
      }, ms);
      this.waiters.add(check);
    });
  }

  /**
   * Publishes a request on `<base>/<name>/<kind>` with QoS 1; resolves on the broker's PUBACK.
   * Refuses at once when the device is not reachable: Zigbee2MQTT would take the request and
   * fail it silently.
   */
  protected async request(kind: 'set' | 'get', payload: JsonObject): Promise<void> {
    const client = this.client;
    if (this.stopped || !client || !this.available()) {
      throw new DriverError('device.unavailable', `${this.id}: device is not reachable`);
    }
    await new Promise<void>((resolve, reject) => {
      const settle = (err: DriverError | null): void => {
        clearTimeout(timer);
        this.inFlight.delete(abandon);
        if (err) reject(err);
        else resolve();
      };
      const abandon = (): void =>
        settle(new DriverError('device.unavailable', `${this.id}: driver stopped`));
      const timer = setTimeout(
        () =>
          settle(new DriverError('device.timeout', `${this.id}: the broker did not acknowledge`)),
        this.commandTimeoutMs,
      );
      this.inFlight.add(abandon);
      client.publish(`${this.stateTopic}/${kind}`, JSON.stringify(payload), { qos: 1 }, (err) =>
        settle(err ? new DriverError('device.unavailable', `${this.id}: ${err.message}`) : null),
      );
    });
  }

  /** Like {@link request}, but for housekeeping reads whose failure changes nothing. */
  protected requestQuietly(kind: 'set' | 'get', payload: JsonObject): void {
    this.request(kind, payload).catch(() => undefined);
  }
}

/** `lock_state` (zigbee-herdsman-converters `fz.lock`: lockState 0/1/2) to a bolt. */
const LOCK_STATE: Readonly<Record<string, DriverBolt>> = {
  locked: 'locked',
  unlocked: 'unlocked',
  // ZCL lockState 0 "Not Fully Locked": the bolt stopped part-way, which is what a jam is.
  not_fully_locked: 'jammed',
};

/**
 * `state` to a bolt, when `lock_state` is absent: `LOCK`/`UNLOCK` from `fz.lock`; Yale's C4
 * module converter (`c4_alarm` in `src/devices/yale.ts`) spells them `LOCKED`/`UNLOCKED`.
 */
const STATE: Readonly<Record<string, DriverBolt>> = {
  LOCK: 'locked',
  UNLOCK: 'unlocked',
  LOCKED: 'locked',
  UNLOCKED: 'unlocked',
};

/**
 * `action` values of a hand turn (`fz.lock_operation_event` codes 8, 9, 13, 14, and 7 for the
 * outside "one touch" button; the C4 module's `manual_*_key_or_thumbturn`).
 */
const MANUAL_ACTIONS: Readonly<Record<string, 'locked' | 'unlocked'>> = {
  key_lock: 'locked',
  key_unlock: 'unlocked',
  manual_lock: 'locked',
  manual_unlock: 'unlocked',
  one_touch_lock: 'locked',
  manual_lock_key_or_thumbturn: 'locked',
  manual_unlock_key_or_thumbturn: 'unlocked',
};

/**
 * A Zigbee lock through Zigbee2MQTT. Checked against the payloads of zigbee-herdsman-converters'
 * generic lock converters (`fz.lock`, `fz.lock_operation_event`, `fz.lock_pin_code_response`,
 * `tz.lock`, `tz.pincode_lock`) as the Yale Assure YRD226HA2619 / YRD256HA20BP definitions use
 * them.
 *
 * - Bolt: `lock_state` `locked`/`unlocked`/`not_fully_locked` (jammed), else `state`.
 * - Commands: `/set {"state":"LOCK"|"UNLOCK"}` (`tz.lock`).
 * - Keypad: `action` `unlock` with `action_source_name` `keypad` and `action_user` (the ZCL
 *   Operation Event Notification, `fz.lock_operation_event`), or `keypad_unlock` (Yale C4
 *   module, EasyAccess); `unlock_failure_invalid_pin_or_id` from the keypad is a wrong code;
 *   the C4 module's `alarm: "tamper_alarm_keypad_attempts"` is a keypad lockout.
 * - PINs: slot n is Zigbee user n (user 0 is left alone so that slots, Zigbee2MQTT's user
 *   numbers and the `action_user` of a keypad unlock are one number). `/set {"pin_code":{"user":
 *   n,"user_type":"unrestricted","user_enabled":true,"pin_code":"1234"}}` sets, `"pin_code":
 *   null` clears (`tz.pincode_lock`); the lock's answers to `/get {"pin_code":{"user":n}}` come
 *   back as `users.<n>.status` `available`/`enabled`/`disabled` (`fz.lock_pin_code_response`,
 *   `constants.lockUserStatus`), and an occupied slot is one that is `enabled` or `disabled`.
 */
export class Zigbee2MqttLock extends Zigbee2MqttDevice<LockDriverEvent> implements LockDriver {
  readonly kind = 'lock' as const;
  readonly pins: PinDriver | null;
  private reported: DriverBolt = 'unknown';
  /** The lock's user statuses as last reported, by user number. */
  private readonly users = new Map<number, string>();
  /** Statuses we wrote and expect the lock to report (`enabled` / `available`), by user. */
  private readonly expected = new Map<number, { status: string; until: number }>();
  private readonly pinCodeCount: number;
  private readonly pinReadTimeoutMs: number;

  constructor(options: Zigbee2MqttLockOptions) {
    super(options);
    this.pinCodeCount = options.pinCodeCount ?? DEFAULT_PIN_CODE_COUNT;
    if (!Number.isInteger(this.pinCodeCount) || this.pinCodeCount < 0) {
      throw new Error(`zigbee2mqtt: invalid pinCodeCount ${this.pinCodeCount}`);
    }
    this.pinReadTimeoutMs = options.pinReadTimeoutMs ?? DEFAULT_PIN_READ_TIMEOUT_MS;
    this.pins = this.pinCodeCount > 1 ? new Zigbee2MqttPins(this) : null;
  }

  /** The bolt as last reported; `unknown` while unavailable or never reported. */
  bolt(): DriverBolt {
    return this.available() ? this.reported : 'unknown';
  }

  /** Asks for `{"state":"LOCK"}`; resolves when the broker took it. */
  lock(): Promise<void> {
    return this.request('set', { state: 'LOCK' });
  }

  /** Asks for `{"state":"UNLOCK"}`; resolves when the broker took it. */
  unlock(): Promise<void> {
    return this.request('set', { state: 'UNLOCK' });
  }

  protected override settled(): boolean {
    return this.knownOffline() || this.bolt() !== 'unknown';
  }

  protected override onSubscribed(): void {
    // Zigbee2MQTT does not retain states unless told to: ask the lock for its bolt (`tz.lock`
    // convertGet reads lockState). Refused while unavailable; onAvailable asks again.
    this.requestQuietly('get', { state: '' });
  }

  protected override onAvailable(): void {
    // The bolt may have moved while we could not see it: read it rather than trust a report
    // from before.
    this.requestQuietly('get', { state: '' });
  }

  protected override forgetState(): void {
    this.reported = 'unknown';
  }

  protected override fact(): string {
    return this.bolt();
  }

  protected override factEvent(at: number): LockDriverEvent {
    return { type: 'state', bolt: this.bolt(), at };
  }

  protected override onState(report: JsonObject, retained: boolean): void {
    const bolt = readBolt(report);
    if (bolt) this.reported = bolt;
    const users = report.users;
    if (typeof users === 'object' && users !== null) {
      for (const [key, value] of Object.entries(users as JsonObject)) {
        const user = Number(key);
        if (!Number.isInteger(user)) continue;
        const status =
          typeof value === 'object' && value !== null ? (value as JsonObject).status : undefined;
        if (typeof status === 'string') this.users.set(user, status);
      }
    }
    // Events are only in the message of the event; a retained copy is history.
    if (!retained) this.queueAction(report);
  }

  /** Events carried by `action`: emitted after the state change of the same message. */
  private pendingActions: LockDriverEvent[] = [];

  private queueAction(report: JsonObject): void {
    const at = this.now();
    const action = typeof report.action === 'string' ? report.action : null;
    const source = typeof report.action_source_name === 'string' ? report.action_source_name : null;
    const user =
      typeof report.action_user === 'number' && Number.isInteger(report.action_user)
        ? report.action_user
        : null;
    if (action === 'keypad_unlock' || (action === 'unlock' && source === 'keypad')) {
      this.pendingActions.push({ type: 'keypad-unlocked', slot: user, at });
    } else if (
      (action === 'unlock_failure_invalid_pin_or_id' ||
        action === 'lock_failure_invalid_pin_or_id') &&
      (source === 'keypad' || source === null)
    ) {
      this.pendingActions.push({ type: 'keypad-wrong-code', at });
    } else if (action !== null && MANUAL_ACTIONS[action]) {
      this.pendingActions.push({ type: 'manual', bolt: MANUAL_ACTIONS[action], at });
    } else if ((action === 'lock' || action === 'unlock') && source === 'manual') {
      this.pendingActions.push({
        type: 'manual',
        bolt: action === 'lock' ? 'locked' : 'unlocked',
        at,
      });
    }
    if (report.alarm === 'tamper_alarm_keypad_attempts') {
      this.pendingActions.push({ type: 'keypad-lockout', untilMs: null, at });
    }
  }

  protected override change(mutate: () => void): void {
    super.change(mutate);
    const actions = this.pendingActions;
    this.pendingActions = [];
    for (const event of actions) this.emit(event);
  }

  // ---- PIN management, used by Zigbee2MqttPins ----

  /** @internal */
  pinCapacity(): number {
    return this.pinCodeCount - 1;
  }

  /** @internal */
  async writePin(slot: number, code: string | null): Promise<void> {
    if (!Number.isInteger(slot) || slot < 1 || slot > this.pinCapacity()) {
      throw new DriverError(
        'device.refused',
        `${this.id}: slot ${slot} is outside 1…${this.pinCapacity()}`,
      );
    }
    if (code !== null && !PIN_CODE_RE.test(code)) {
      throw new DriverError('device.refused', `${this.id}: a code is 4 to 10 digits`);
    }
    this.assertPinSupport();
    await this.request('set', {
      pin_code:
        code === null
          ? { user: slot, pin_code: null }
          : { user: slot, user_type: 'unrestricted', user_enabled: true, pin_code: code },
    });
    this.expected.set(slot, {
      status: code === null ? 'available' : 'enabled',
      // Real time, not the hub's clock: this bounds a wait on real timers.
      until: Date.now() + this.pinReadTimeoutMs,
    });
    // Zigbee2MQTT does not read the slot back by itself after a write: ask, so that the
    // lock's own answer (users.<n>.status) is what occupied() reports.
    await this.request('get', { pin_code: { user: slot } });
  }

  /** @internal */
  async readOccupied(): Promise<number[]> {
    this.assertPinSupport();
    if (!this.available()) {
      throw new DriverError('device.unavailable', `${this.id}: device is not reachable`);
    }
    const capacity = this.pinCapacity();
    const missing = (): boolean => {
      for (let user = 1; user <= capacity; user++) if (!this.users.has(user)) return true;
      return false;
    };
    if (missing()) {
      // Never read: `{"pin_code": ""}` makes tz.pincode_lock's convertGet read every user.
      await this.request('get', { pin_code: '' });
      await this.waitFor(() => !missing(), this.pinReadTimeoutMs);
    }
    // Wait for the lock's answers to our own writes; a lock that dropped a write never gives
    // the expected status, and after the deadline its report is what we return.
    const pending = (): boolean => {
      const t = Date.now();
      for (const [user, want] of this.expected) {
        if (this.users.get(user) === want.status || t >= want.until) this.expected.delete(user);
      }
      return this.expected.size > 0;
    };
    if (pending()) {
      const wait = Math.max(...[...this.expected.values()].map((w) => w.until - Date.now()));
      await this.waitFor(() => !pending(), Math.max(wait, 0)).catch((err: unknown) => {
        if (!(err instanceof DriverError && err.code === 'device.timeout')) throw err;
      });
    }
    const slots: number[] = [];
    for (const [user, status] of this.users) {
      if (user >= 1 && user <= capacity && (status === 'enabled' || status === 'disabled')) {
        slots.push(user);
      }
    }
    return slots.sort((a, b) => a - b);
  }

  private assertPinSupport(): void {
    const info = this.deviceInfo();
    if (info && !info.exposesPinCode) {
      throw new DriverError(
        'device.unsupported',
        `${this.id}: Zigbee2MQTT lists ${info.model ?? 'this device'} without pin_code`,
      );
    }
  }
}

function readBolt(report: JsonObject): DriverBolt | null {
  if ('lock_state' in report) {
    const value = report.lock_state;
    return typeof value === 'string' ? (LOCK_STATE[value] ?? 'unknown') : 'unknown';
  }
  if (typeof report.state === 'string') return STATE[report.state] ?? 'unknown';
  return null;
}

/** The keypad codes of a {@link Zigbee2MqttLock}. */
class Zigbee2MqttPins implements PinDriver {
  constructor(private readonly lock: Zigbee2MqttLock) {}

  capacity(): number {
    return this.lock.pinCapacity();
  }

  set(slot: number, code: string): Promise<void> {
    return this.lock.writePin(slot, code);
  }

  clear(slot: number): Promise<void> {
    return this.lock.writePin(slot, null);
  }

  occupied(): Promise<number[]> {
    return this.lock.readOccupied();
  }
}

/**
 * A Zigbee door contact through Zigbee2MQTT: `contact` true = closed (`e.contact()` in
 * zigbee-herdsman-converters `src/lib/exposes.ts`; for the Aqara MCCGQ11LM, `lumi_contact` in
 * `src/lib/lumi.ts` maps genOnOff 0 to `contact: true`). Such sensors sleep and cannot be read
 * on demand: after the sensor was away its position stays `unknown` until it reports again.
 */
export class Zigbee2MqttContact
  extends Zigbee2MqttDevice<ContactDriverEvent>
  implements ContactDriver
{
  readonly kind = 'door-sensor' as const;
  private reported: DriverPosition = 'unknown';

  /** The door as last reported; `unknown` while unavailable or never reported. */
  position(): DriverPosition {
    return this.available() ? this.reported : 'unknown';
  }

  protected override settled(): boolean {
    return this.knownOffline() || this.position() !== 'unknown';
  }

  protected override onSubscribed(): void {}

  protected override forgetState(): void {
    this.reported = 'unknown';
  }

  protected override fact(): string {
    return this.position();
  }

  protected override factEvent(at: number): ContactDriverEvent {
    return { type: 'state', position: this.position(), at };
  }

  protected override onState(report: JsonObject): void {
    if (!('contact' in report)) return;
    const contact = report.contact;
    this.reported = contact === true ? 'closed' : contact === false ? 'open' : 'unknown';
  }
}

const Z2M_COMMON = {
  /** The broker Zigbee2MQTT uses: `mqtt://host:port` or `mqtts://host:port`. */
  url: Type.String({ pattern: '^(mqtt|mqtts|tcp|ssl|ws|wss)://[^\\s]+$' }),
  /** Zigbee2MQTT's `mqtt.base_topic`. Default `zigbee2mqtt`. */
  baseTopic: Type.Optional(Type.String({ minLength: 1, pattern: '^[^+#]+$' })),
  /** The device's friendly name in Zigbee2MQTT. */
  friendlyName: Type.String({ minLength: 1, pattern: '^[^+#/](?:[^+#]*[^+#/])?$' }),
  username: Type.Optional(Type.String({ minLength: 1 })),
  /** The broker password, inline. */
  password: Type.Optional(Type.String({ minLength: 1 })),
  /** Or a file holding it (relative to the config file). */
  passwordFile: Type.Optional(Type.String({ minLength: 1 })),
  /** How long start() waits for the state, ms. */
  startTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000 })),
};

const Zigbee2MqttLockConfig = Type.Object(
  {
    ...Z2M_COMMON,
    /** The lock's `pinCodeCount` (0: do not manage codes). */
    pinCodeCount: Type.Optional(Type.Integer({ minimum: 0, maximum: 65_536 })),
  },
  { additionalProperties: false },
);

const Zigbee2MqttContactConfig = Type.Object(Z2M_COMMON, { additionalProperties: false });

interface Zigbee2MqttConfigValue {
  url: string;
  baseTopic?: string;
  friendlyName: string;
  username?: string;
  password?: string;
  passwordFile?: string;
  startTimeoutMs?: number;
  pinCodeCount?: number;
}

/**
 * `driver: zigbee2mqtt` in a hub config: a `lock` or a `door-sensor` behind Zigbee2MQTT, with
 * `options: {url, friendlyName, baseTopic?, username?, password? | passwordFile?,
 * startTimeoutMs?, pinCodeCount? (locks)}`.
 */
export const zigbee2mqttDriverFactory: DriverFactory = {
  kinds: ['lock', 'door-sensor'],
  optionsSchema(kind) {
    return kind === 'lock' ? Zigbee2MqttLockConfig : Zigbee2MqttContactConfig;
  },
  create(ctx, options) {
    const o = options as Zigbee2MqttConfigValue;
    if (o.password !== undefined && o.passwordFile !== undefined) {
      throw new Error(`${ctx.id}: give the broker password as password or passwordFile, not both`);
    }
    if ((o.password !== undefined || o.passwordFile !== undefined) && o.username === undefined) {
      // MQTT 3.1.1 (3.1.2.9) has no password without a user name; brokers drop such a CONNECT.
      throw new Error(`${ctx.id}: a broker password needs a username`);
    }
    const password =
      o.passwordFile === undefined
        ? o.password
        : readFileSync(resolvePath(ctx.configDir, o.passwordFile), 'utf8').trim();
    const common: Zigbee2MqttOptions = {
      id: ctx.id,
      url: o.url,
      friendlyName: o.friendlyName,
      now: () => ctx.clock.now(),
      ...(o.baseTopic === undefined ? {} : { baseTopic: o.baseTopic }),
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(password === undefined ? {} : { password }),
      ...(o.startTimeoutMs === undefined ? {} : { startTimeoutMs: o.startTimeoutMs }),
    };
    switch (ctx.kind) {
      case 'lock':
        return new Zigbee2MqttLock({
          ...common,
          ...(o.pinCodeCount === undefined ? {} : { pinCodeCount: o.pinCodeCount }),
        });
      case 'door-sensor':
        return new Zigbee2MqttContact(common);
      case 'camera':
        throw new Error(`${ctx.id}: Zigbee2MQTT has no cameras`);
    }
  },
};

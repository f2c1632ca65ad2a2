/**
 * A Z-Wave door lock through zwave-js ({@link ZWaveLock}), one node on a {@link ZWaveNetwork}.
 *
 * Which command classes say what (names and numbers as zwave-js and the Z-Wave specification
 * give them; `packages/cc/src/cc/DoorLockCC.ts`, `UserCodeCC.ts`, `NotificationCC.ts` and the
 * notification registry of `@zwave-js/core`):
 *
 * - **Door Lock CC (0x62)**: the bolt. `Operation Set` with mode Secured (0xff) or Unsecured
 *   (0x00) locks and unlocks; the node's `Operation Report` sets zwave-js's `currentMode` value,
 *   which is the only source of `locked`/`unlocked`. Commands go through the CC API, never
 *   `setValue`, because zwave-js's `setValue` for `targetMode` updates `currentMode`
 *   *optimistically* — it would report a lock as locked before the lock said so.
 * - **Supervision CC**: when the lock supports it, a command is accepted on `Success` or
 *   `Working` and refused on `Fail`; without it, the radio acknowledgement is the acceptance.
 *   Either way the bolt is then read back (`Operation Get`) in case the lock does not report by
 *   itself, and read again after the duration a `Working` answer or a report announced.
 * - **Notification CC (0x71), Access Control (0x06)**: state `Lock state` = 0x0b "Lock jammed"
 *   makes the bolt `jammed` until zwave-js returns that state to idle (it does on the next
 *   lock/unlock event); events 0x01/0x02 "Manual lock/unlock operation" → `manual`;
 *   0x06 "Keypad unlock operation" (its parameter is a User Code Report, so zwave-js gives the
 *   `userId`) and 0x22 "Unlock operation with User Code" (`user ID`) → `keypad-unlocked` with
 *   the slot; 0x13 "Manually enter user access code exceeds code limit" and the state
 *   `Keypad state` = 0x10 "Keypad temporary disabled" → `keypad-lockout`; 0x32 "Invalid
 *   credential used" → `keypad-wrong-code`. zwave-js also maps the lock/unlock events onto
 *   `currentMode`, so a lock that only sends notifications still reports its bolt.
 * - **User Code CC (0x63)**: `pins`. The capacity is the node's `Users Number Report` (read by
 *   the interview); `set` stores a code as Enabled, `clear` makes the slot Available, and
 *   `occupied` asks the lock for every slot (a slot whose status is not Available holds a
 *   code). zwave-js picks the V1 `User Code Set` or the V2 `Extended User Code Set`. A User
 *   Code Report carries the code itself (under S2 encryption on the air); zwave-js stores it as
 *   a value, and the driver removes that value as soon as it appears, so codes do not stay in
 *   zwave-js's memory (its cache file may hold one until zwave-js compacts it: keep the cache
 *   folder private).
 *
 * Availability is the controller's readiness and the node's status: Alive (or Awake) is
 * reachable; Dead, Asleep and not-yet-known are not. zwave-js only learns that a lock went away
 * when a transmission fails, so the driver pings the node every `livenessIntervalMs` while it
 * is alive and every `deadProbeIntervalMs` while it is not; a lock that comes back is read
 * afresh before its bolt is reported again.
 *
 * Security: a lock must be included with S2 Access Control (Door Lock and User Code are only
 * granted under that key). A node included with a lower class is refused at `start()` unless
 * `requireSecurityClass` is `'none'` (the mock node in tests, which has no S2).
 */
import {
  DoorLockMode,
  NodeStatus,
  UserIDStatus,
  ZWaveError,
  ZWaveErrorCodes,
  type Driver,
  type Endpoint,
  type ZWaveNode,
  type ZWaveNodeValueAddedArgs,
  type ZWaveNodeValueUpdatedArgs,
} from 'zwave-js';
import {
  DriverError,
  type DriverBolt,
  type DriverErrorCode,
  type LockDriver,
  type LockDriverEvent,
  type PinDriver,
} from './driver.ts';
import { DriverTimers } from './driver-timers.ts';
import { LockReporter } from './lock-reporter.ts';
import { checkPinCode, checkPinSlot } from './pin-checks.ts';
import { ProbeSchedule } from './probe-schedule.ts';
import { ControllerLease } from './shared-controller.ts';
import type { ZWaveNetwork } from './zwave-network.ts';

/** How to reach one lock on a Z-Wave network. */
export interface ZWaveLockOptions {
  /** The hub's id for this device (the device id presented upstream). */
  readonly id: string;
  /** The controller the lock is included in. */
  readonly network: ZWaveNetwork;
  /** The lock's node id in that network (1…232, or a Long Range id). */
  readonly nodeId: number;
  /** The endpoint that implements Door Lock CC. Default 0 (the root device). */
  readonly endpoint?: number;
  /**
   * The lowest security class the lock must have been included with. Default
   * `'S2_AccessControl'`; `'none'` accepts any (only for tests and for locks that cannot do S2).
   */
  readonly requireSecurityClass?: 'S2_AccessControl' | 'none';
  /** The hub's clock, ms; stamps the events' `at`. Default `Date.now`. */
  readonly now?: () => number;
  /** How long `start()` waits for the controller and the node's interview. Default 60 000 ms. */
  readonly startTimeoutMs?: number;
  /** How long a command may wait for the lock's acceptance. Default 15 000 ms. */
  readonly commandTimeoutMs?: number;
  /**
   * How often a reachable lock is pinged to notice it went away, ms; 0 never. Each ping wakes a
   * battery lock's radio for a moment. Default 300 000 (5 minutes).
   */
  readonly livenessIntervalMs?: number;
  /**
   * How often an unreachable lock (or a controller that did not open, or a lock whose bolt is
   * unknown) is tried again, ms; 0 never. Default 30 000.
   */
  readonly deadProbeIntervalMs?: number;
  /** How often the controller's and the node's status are looked at (no radio), ms. Default 1000. */
  readonly checkIntervalMs?: number;
  /** Called when a listener throws; default a process warning. */
  readonly onListenerError?: (err: unknown) => void;
}

/** Command class ids (`CommandClasses` in `@zwave-js/core`). */
const CC_DOOR_LOCK = 0x62;
const CC_USER_CODE = 0x63;
const CC_NOTIFICATION = 0x71;

/** Notification type Access Control and the events and states this driver reads. */
const ACCESS_CONTROL = 0x06;
const EV_MANUAL_LOCK = 0x01;
const EV_MANUAL_UNLOCK = 0x02;
const EV_KEYPAD_UNLOCK = 0x06;
const EV_LOCK_JAMMED = 0x0b;
const EV_KEYPAD_DISABLED = 0x10;
const EV_CODE_LIMIT_EXCEEDED = 0x13;
const EV_UNLOCK_WITH_USER_CODE = 0x22;
const EV_INVALID_CREDENTIAL = 0x32;

/** `SecurityClass.S2_AccessControl` in `@zwave-js/core`. */
const SECURITY_S2_ACCESS_CONTROL = 2;
/** `SupervisionStatus` in `@zwave-js/core`. */
const SUPERVISION_NO_SUPPORT = 0;
const SUPERVISION_WORKING = 1;
const SUPERVISION_FAIL = 2;

const DEFAULT_START_TIMEOUT_MS = 60_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 15_000;
const DEFAULT_LIVENESS_INTERVAL_MS = 300_000;
const DEFAULT_DEAD_PROBE_INTERVAL_MS = 30_000;
const DEFAULT_CHECK_INTERVAL_MS = 1000;
/** A lock that announced a movement is read again this long after it should have ended. */
const SETTLE_MARGIN_MS = 500;
/** Follow-up reads after one command, at most (a lock whose report never settles). */
const MAX_FOLLOW_UP_READS = 3;

/**
 * Where the bolt is for a Door Lock mode. Only Secured throws the bolt for everybody; the
 * "inside unsecured" modes leave it thrown for the outside handle, which is what matters to
 * who can come in; every other mode lets the outside handle open the door.
 */
export function boltOfDoorLockMode(mode: unknown): DriverBolt {
  switch (mode) {
    case DoorLockMode.Secured:
    case DoorLockMode.InsideUnsecured:
    case DoorLockMode.InsideUnsecuredWithTimeout:
      return 'locked';
    case DoorLockMode.Unsecured:
    case DoorLockMode.UnsecuredWithTimeout:
    case DoorLockMode.OutsideUnsecured:
    case DoorLockMode.OutsideUnsecuredWithTimeout:
      return 'unlocked';
    default:
      return 'unknown';
  }
}

const TIMEOUT_ERRORS: ReadonlySet<ZWaveErrorCodes> = new Set([
  ZWaveErrorCodes.Controller_NodeTimeout,
  ZWaveErrorCodes.Controller_Timeout,
  ZWaveErrorCodes.Controller_ResponseNOK,
]);
const REFUSED_ERRORS: ReadonlySet<ZWaveErrorCodes> = new Set([
  ZWaveErrorCodes.SupervisionCC_CommandFailed,
  ZWaveErrorCodes.Argument_Invalid,
]);
const UNSUPPORTED_ERRORS: ReadonlySet<ZWaveErrorCodes> = new Set([
  ZWaveErrorCodes.CC_NotSupported,
  ZWaveErrorCodes.CC_NotImplemented,
  ZWaveErrorCodes.CC_NoAPI,
]);

/** Turns what zwave-js threw into a {@link DriverError}. */
export function driverErrorOf(err: unknown, what: string): DriverError {
  if (err instanceof DriverError) return err;
  const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  // No acknowledgement (Controller_CallbackNOK), a dropped or expired message, a driver that is
  // not ready or was destroyed: the lock could not be reached.
  let code: DriverErrorCode = 'device.unavailable';
  if (err instanceof ZWaveError) {
    if (TIMEOUT_ERRORS.has(err.code)) code = 'device.timeout';
    else if (REFUSED_ERRORS.has(err.code)) code = 'device.refused';
    else if (UNSUPPORTED_ERRORS.has(err.code)) code = 'device.unsupported';
  }
  return new DriverError(code, message);
}

/** What a supervised command answered; `undefined` when the lock does not supervise. */
interface SupervisionLike {
  readonly status: number;
  readonly remainingDuration?: { toMilliseconds(): number | undefined } | undefined;
}

/** Refuses a command the lock answered with Fail or NoSupport; returns how long it will take. */
function acceptedAfter(result: SupervisionLike | undefined, what: string): number {
  if (result === undefined) return 0;
  if (result.status === SUPERVISION_FAIL)
    throw new DriverError('device.refused', `${what}: the lock refused`);
  if (result.status === SUPERVISION_NO_SUPPORT)
    throw new DriverError('device.unsupported', `${what}: the lock does not support it`);
  if (result.status === SUPERVISION_WORKING) return result.remainingDuration?.toMilliseconds() ?? 0;
  return 0;
}

/** See the module comment. */
export class ZWaveLock implements LockDriver {
  readonly kind = 'lock' as const;
  readonly id: string;
  private readonly network: ZWaveNetwork;
  private readonly nodeId: number;
  private readonly endpointIndex: number;
  private readonly requireS2: boolean;
  private readonly now: () => number;
  private readonly startTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly pinDriver: ZWavePins;
  /** This driver's share of the network. */
  private readonly share: ControllerLease<Driver>;
  private readonly reporter: LockReporter;
  private readonly probes: ProbeSchedule;
  private readonly timers = new DriverTimers();

  private started = false;
  private stopped = false;
  private driver: Driver | null = null;
  private node: ZWaveNode | null = null;
  /** Set when the node turned out unusable (missing, insecure, no Door Lock CC). */
  private fault: string | null = null;
  /** Whether a Door Lock report arrived since the lock last became reachable. */
  private fresh = false;
  private jammed = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(options: ZWaveLockOptions) {
    if (!Number.isInteger(options.nodeId) || options.nodeId < 1 || options.nodeId > 4000) {
      throw new RangeError(
        `zwave: nodeId must be an integer from 1 to 4000, not ${options.nodeId}`,
      );
    }
    this.id = options.id;
    this.network = options.network;
    this.nodeId = options.nodeId;
    this.endpointIndex = options.endpoint ?? 0;
    this.requireS2 = (options.requireSecurityClass ?? 'S2_AccessControl') !== 'none';
    this.now = options.now ?? Date.now;
    this.startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.share = new ControllerLease(this.network);
    this.reporter = new LockReporter(this.id, options.onListenerError);
    this.probes = new ProbeSchedule({
      checkIntervalMs: options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
      livenessIntervalMs: options.livenessIntervalMs ?? DEFAULT_LIVENESS_INTERVAL_MS,
      deadProbeIntervalMs: options.deadProbeIntervalMs ?? DEFAULT_DEAD_PROBE_INTERVAL_MS,
      settled: () => this.available() && this.fresh,
      probe: () => this.probe(),
      refresh: () => this.update(),
    });
    this.pinDriver = new ZWavePins(this);
  }

  /** Keypad codes through User Code CC; null once the node turned out to have none. */
  get pins(): PinDriver | null {
    const endpoint = this.endpoint();
    if (endpoint !== null && !endpoint.supportsCC(CC_USER_CODE)) return null;
    return this.pinDriver;
  }

  /**
   * Opens (or joins) the network, finds the node, reads the bolt, and resolves. A controller
   * that does not open, or a lock that does not answer, leaves the lock unavailable and is
   * tried again every `deadProbeIntervalMs`. Rejects when the node cannot be this lock at all
   * (not in the network, no Door Lock CC, not included securely).
   */
  async start(): Promise<void> {
    if (this.stopped) throw new DriverError('device.unavailable', 'stopped');
    if (this.started) return;
    this.started = true;
    try {
      await this.connect();
    } catch (err) {
      if (err instanceof DriverError && this.fault !== null) {
        await this.stop();
        throw err;
      }
      // The controller did not open or the lock did not answer: unknown, tried again later.
    }
    if (this.stopped) return;
    this.reporter.begin(this.available(), this.bolt(), this.now());
    // The start-up read counts as a probe: the next one is due an interval from now.
    this.probes.probedNow();
    this.probes.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.reporter.close();
    for (const off of this.unsubscribe.splice(0)) off();
    this.timers.clear();
    this.probes.stop();
    this.node = null;
    this.driver = null;
    await this.share.giveBack();
  }

  available(): boolean {
    if (!this.started || this.stopped || this.fault !== null) return false;
    if (this.driver === null || !this.driver.ready || this.node === null) return false;
    const status = this.node.status;
    return status === NodeStatus.Alive || status === NodeStatus.Awake;
  }

  bolt(): DriverBolt {
    if (!this.available()) return 'unknown';
    if (this.jammed) return 'jammed';
    if (!this.fresh) return 'unknown';
    return boltOfDoorLockMode(this.node?.getValue(this.valueId('currentMode')));
  }

  lock(): Promise<void> {
    return this.move(DoorLockMode.Secured, 'lock');
  }

  unlock(): Promise<void> {
    return this.move(DoorLockMode.Unsecured, 'unlock');
  }

  on(listener: (e: LockDriverEvent) => void): () => void {
    return this.reporter.on(listener);
  }

  /**
   * What this driver holds now: its subscriptions to the zwave-js node and driver, its timers,
   * and its share of the network. Zero after `stop()` (tests check it).
   */
  heldResources(): number {
    return (
      this.unsubscribe.length +
      this.timers.size +
      (this.probes.armed ? 1 : 0) +
      (this.share.taken ? 1 : 0)
    );
  }

  // --- inside ----------------------------------------------------------------------------

  /** The Door Lock CC endpoint, once the node is known. */
  endpoint(): Endpoint | null {
    return this.node?.getEndpoint(this.endpointIndex) ?? null;
  }

  /** Throws unless a command can be sent now. */
  assertAvailable(): Endpoint {
    const endpoint = this.available() ? this.endpoint() : null;
    if (endpoint === null) {
      throw new DriverError(
        'device.unavailable',
        this.fault ?? `${this.id} (Z-Wave node ${this.nodeId}) is not reachable`,
      );
    }
    return endpoint;
  }

  /** Runs one zwave-js call with the command timeout, its errors as {@link DriverError}s. */
  call<T>(what: string, run: () => Promise<T>): Promise<T> {
    return this.timers.command(what, run, this.commandTimeoutMs, driverErrorOf);
  }

  /** A value zwave-js holds for the lock's endpoint (what the node last reported). */
  value(property: string, commandClass: number, propertyKey?: string): unknown {
    return this.node?.getValue(this.valueId(property, commandClass, propertyKey));
  }

  private valueId(property: string, commandClass = CC_DOOR_LOCK, propertyKey?: string) {
    return propertyKey === undefined
      ? { commandClass, endpoint: this.endpointIndex, property }
      : { commandClass, endpoint: this.endpointIndex, property, propertyKey };
  }

  private async connect(): Promise<void> {
    if (!this.share.taken) {
      // Bounded by the network's own open timeout; a timeout here could not tell the network
      // that this user gave up, and its share would never be released.
      const driver = await this.share
        .take(() => this.stopped)
        .catch((err: unknown) => {
          throw driverErrorOf(err, 'open the Z-Wave controller');
        });
      // Stopped meanwhile: the share went back at once.
      if (driver === null) return;
      this.driver = driver;
      this.subscribeDriver(driver);
    }
    const driver = this.driver;
    if (driver === null) return;
    const node = driver.controller.nodes.get(this.nodeId);
    if (node === undefined) {
      this.fault = `Z-Wave node ${this.nodeId} is not in this network`;
      throw new DriverError('device.unavailable', this.fault);
    }
    if (!node.ready)
      await this.withStartTimeout(onceReady(node), `the interview of node ${this.nodeId}`);
    if (this.stopped) return;
    this.checkNode(node);
    this.node = node;
    this.subscribeNode(node);
    this.jammed =
      node.getValue(this.valueId('Access Control', CC_NOTIFICATION, 'Lock state')) ===
      EV_LOCK_JAMMED;
    // zwave-js may still believe a lock is alive that left minutes ago, or dead that came back:
    // ask it, then read the bolt.
    if (await node.ping()) await this.readBolt();
    this.update();
  }

  /** Refuses a node that cannot be this lock (and says why), before anything is sent to it. */
  private checkNode(node: ZWaveNode): void {
    const endpoint = node.getEndpoint(this.endpointIndex);
    if (endpoint === undefined || !endpoint.supportsCC(CC_DOOR_LOCK)) {
      this.fault = `Z-Wave node ${this.nodeId} has no Door Lock command class on endpoint ${this.endpointIndex}`;
      throw new DriverError('device.unsupported', this.fault);
    }
    if (
      this.requireS2 &&
      (node.getHighestSecurityClass() as number | undefined) !== SECURITY_S2_ACCESS_CONTROL
    ) {
      this.fault =
        `Z-Wave node ${this.nodeId} is not included with S2 Access Control; ` +
        'exclude it and include it again securely';
      throw new DriverError('device.unsupported', this.fault);
    }
  }

  private async withStartTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    try {
      return await this.timers.within(
        promise,
        this.startTimeoutMs,
        () =>
          new DriverError(
            'device.timeout',
            `${what} did not get ready in ${this.startTimeoutMs} ms`,
          ),
      );
    } catch (err) {
      throw driverErrorOf(err, what);
    }
  }

  private subscribeDriver(driver: Driver): void {
    // A controller that fails (a stick pulled out) makes every lock on it unreachable.
    const onError = (): void => this.update();
    const onReady = (): void => this.update();
    driver.on('error', onError);
    driver.on('driver ready', onReady);
    this.unsubscribe.push(() => {
      driver.off('error', onError);
      driver.off('driver ready', onReady);
    });
  }

  private subscribeNode(node: ZWaveNode): void {
    // zwave-js announces a value's first report as 'value added', later ones as 'value updated'.
    const onAdded = (_node: ZWaveNode, args: ZWaveNodeValueAddedArgs): void => this.onValue(args);
    const onUpdated = (_node: ZWaveNode, args: ZWaveNodeValueUpdatedArgs): void =>
      this.onValue(args);
    // One function per status event: zwave-js keys its listener wrappers by function, so one
    // function on four events could be removed from only one of them.
    const statusEvents = ['alive', 'dead', 'sleep', 'wake up'] as const;
    const onStatus = statusEvents.map((event) => [event, (): void => this.onStatus()] as const);
    const onNotification = (endpoint: Endpoint, ccId: number, args: unknown): void =>
      this.onNotification(endpoint, ccId, args);
    node.on('value added', onAdded);
    node.on('value updated', onUpdated);
    node.on('notification', onNotification);
    for (const [event, listener] of onStatus) node.on(event, listener);
    this.unsubscribe.push(() => {
      node.off('value added', onAdded);
      node.off('value updated', onUpdated);
      node.off('notification', onNotification);
      for (const [event, listener] of onStatus) node.off(event, listener);
    });
  }

  private onValue(args: ZWaveNodeValueAddedArgs | ZWaveNodeValueUpdatedArgs): void {
    if ((args.endpoint ?? 0) !== this.endpointIndex) return;
    const commandClass = args.commandClass as number;
    if (commandClass === CC_USER_CODE && args.property === 'userCode') {
      // A User Code Report carries the code itself, and zwave-js would keep it in memory and in
      // its cache file. The hub keeps only digests of codes: forget it at once.
      this.node?.valueDB.removeValue(args, { noEvent: true });
      return;
    }
    if (commandClass === CC_DOOR_LOCK && args.property === 'currentMode') {
      this.fresh = true;
      this.update();
    } else if (commandClass === CC_NOTIFICATION && args.property === 'Access Control') {
      if (args.propertyKey === 'Lock state') {
        this.jammed = args.newValue === EV_LOCK_JAMMED;
        this.update();
      } else if (args.propertyKey === 'Keypad state' && args.newValue === EV_KEYPAD_DISABLED) {
        this.emit({ type: 'keypad-lockout', untilMs: null, at: this.now() });
      }
    }
  }

  private onNotification(endpoint: Endpoint, ccId: number, args: unknown): void {
    if (ccId !== CC_NOTIFICATION || endpoint.index !== this.endpointIndex) return;
    // Narrowed by the command class: Notification CC's arguments.
    const { type, event, parameters } = args as {
      type: number;
      event: number;
      parameters?: unknown;
    };
    if (type !== ACCESS_CONTROL) return;
    const at = this.now();
    switch (event) {
      case EV_MANUAL_LOCK:
        this.emit({ type: 'manual', bolt: 'locked', at });
        break;
      case EV_MANUAL_UNLOCK:
        this.emit({ type: 'manual', bolt: 'unlocked', at });
        break;
      case EV_KEYPAD_UNLOCK:
        this.emit({ type: 'keypad-unlocked', slot: slotOf(parameters, 'userId'), at });
        break;
      case EV_UNLOCK_WITH_USER_CODE:
        this.emit({ type: 'keypad-unlocked', slot: slotOf(parameters, 'user ID'), at });
        break;
      case EV_CODE_LIMIT_EXCEEDED:
        this.emit({ type: 'keypad-lockout', untilMs: null, at });
        break;
      case EV_INVALID_CREDENTIAL:
        this.emit({ type: 'keypad-wrong-code', at });
        break;
      default:
        break;
    }
  }

  private onStatus(): void {
    const wasAvailable = this.reporter.lastAvailable;
    // A lock that was away may have been turned meanwhile: its bolt is unknown until it reports.
    if (!this.available()) this.fresh = false;
    this.update();
    if (!wasAvailable && this.available() && !this.fresh) this.readBoltQuietly();
  }

  /** Emits availability, then the bolt, each only when it changed (and not while starting). */
  private update(): void {
    if (!this.reporter.live) return;
    const at = this.now();
    const available = this.available();
    if (!available) this.fresh = false;
    this.reporter.availability(available, at);
    this.reporter.bolt(this.bolt(), at);
  }

  private emit(e: LockDriverEvent): void {
    this.reporter.emit(e);
  }

  private async move(mode: DoorLockMode, what: 'lock' | 'unlock'): Promise<void> {
    const endpoint = this.assertAvailable();
    const result = await this.call(what, () => endpoint.commandClasses['Door Lock'].set(mode));
    const durationMs = acceptedAfter(result, what);
    // Accepted; the bolt is whatever the lock reports next. Most locks report by themselves;
    // reading it back covers those that do not.
    this.followUp(durationMs > 0 ? durationMs + SETTLE_MARGIN_MS : 0, MAX_FOLLOW_UP_READS);
  }

  /** Reads the bolt after `delayMs`, and again while the lock says it is still moving. */
  private followUp(delayMs: number, readsLeft: number): void {
    if (this.stopped || readsLeft <= 0) return;
    this.timers.after(delayMs, () => {
      this.readBolt().then(
        (movingForMs) => {
          if (movingForMs > 0) this.followUp(movingForMs + SETTLE_MARGIN_MS, readsLeft - 1);
        },
        () => undefined,
      );
    });
  }

  /**
   * Asks the lock for its Operation Report (zwave-js stores `currentMode` from it, which
   * reaches {@link onValue}); resolves with how long the lock says it is still moving.
   */
  private async readBolt(): Promise<number> {
    const endpoint = this.endpoint();
    if (endpoint === null || this.stopped) return 0;
    const report = await this.call('read the bolt', () =>
      endpoint.commandClasses['Door Lock'].get(),
    );
    if (report === undefined) return 0;
    const moving = report.targetMode !== undefined && report.targetMode !== report.currentMode;
    return moving ? (report.duration?.toMilliseconds() ?? 0) : 0;
  }

  private readBoltQuietly(): void {
    this.readBolt().catch(() => undefined);
  }

  /**
   * One probe of the schedule ({@link ProbeSchedule}): every `checkIntervalMs` the schedule
   * looks at the controller and the node (no radio traffic; a controller that failed shows up
   * there, as zwave-js emits nothing for it on every path), and when a ping is due it comes
   * here: every `deadProbeIntervalMs` while the lock is unreachable or its bolt unknown, every
   * `livenessIntervalMs` otherwise.
   */
  private async probe(): Promise<void> {
    if (!this.share.taken || this.node === null) {
      // The controller did not open at start, or the node was not reachable to set up.
      if (this.fault === null) await this.connect();
    } else if (this.driver?.ready === true) {
      const wasAvailable = this.available();
      const alive = await this.node.ping();
      if (alive && (!wasAvailable || !this.fresh)) await this.readBolt();
    }
  }
}

/** Resolves when the node's interview has finished (restored nodes are ready at once). */
function onceReady(node: ZWaveNode): Promise<void> {
  return new Promise((resolve) => {
    if (node.ready) resolve();
    else node.once('ready', () => resolve());
  });
}

/** The user id in a notification's parameters, when there is one. */
function slotOf(parameters: unknown, key: string): number | null {
  if (typeof parameters !== 'object' || parameters === null || !(key in parameters)) return null;
  const value = (parameters as Record<string, unknown>)[key];
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null;
}

/** A {@link ZWaveLock}'s keypad user codes through User Code CC. */
class ZWavePins implements PinDriver {
  constructor(private readonly lock: ZWaveLock) {}

  capacity(): number {
    const users = this.lock.value('supportedUsers', CC_USER_CODE);
    return typeof users === 'number' && Number.isInteger(users) && users > 0 ? users : 0;
  }

  async set(slot: number, code: string): Promise<void> {
    checkPinSlot(slot, this.capacity());
    checkPinCode(code);
    const endpoint = this.lock.assertAvailable();
    const result = await this.lock.call(`set the code of slot ${slot}`, () =>
      endpoint.commandClasses['User Code'].set(slot, UserIDStatus.Enabled, code),
    );
    acceptedAfter(result, `set the code of slot ${slot}`);
  }

  async clear(slot: number): Promise<void> {
    checkPinSlot(slot, this.capacity());
    const endpoint = this.lock.assertAvailable();
    const result = await this.lock.call(`clear slot ${slot}`, () =>
      endpoint.commandClasses['User Code'].clear(slot),
    );
    acceptedAfter(result, `clear slot ${slot}`);
  }

  /** Asks the lock slot by slot: one radio round-trip each (a 250-slot lock takes a while). */
  async occupied(): Promise<number[]> {
    const endpoint = this.lock.assertAvailable();
    const slots: number[] = [];
    const capacity = this.capacity();
    for (let slot = 1; slot <= capacity; slot += 1) {
      const report = await this.lock.call(`read slot ${slot}`, () =>
        endpoint.commandClasses['User Code'].get(slot),
      );
      if (report === undefined)
        throw new DriverError('device.timeout', `read slot ${slot}: no answer`);
      const status = report.userIdStatus;
      if (status !== UserIDStatus.Available && status !== UserIDStatus.StatusNotAvailable) {
        slots.push(slot);
      }
    }
    return slots;
  }
}

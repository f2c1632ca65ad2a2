/**
 * A Matter door lock through matter.js as a controller ({@link MatterLock}): one commissioned
 * node of the hub's {@link MatterFabric}, and its endpoint with the Door Lock cluster (0x0101).
 *
 * What says what (Matter 1.4 Application Cluster specification, § 5.2 Door Lock):
 *
 * - **`LockState` attribute**: the bolt. `Locked` → `locked`; `Unlocked` and `Unlatched` →
 *   `unlocked`; `NotFullyLocked` (the bolt stopped part-way) → `jammed`; null → `unknown`. It
 *   is the only source of `locked`/`unlocked`: `LockDoor`/`UnlockDoor` resolve when the lock
 *   accepted them, and the bolt is whatever the lock reports afterwards.
 * - **`DoorLockAlarm` event**: `LockJammed` makes the bolt `jammed` until the next `LockState`
 *   report; `WrongCodeEntryLimit` → `keypad-lockout` until `UserCodeTemporaryDisableTime`
 *   seconds from now (when the lock has that attribute).
 * - **`LockOperation` event**: source `Manual` → `manual`; source `Keypad` with an unlock →
 *   `keypad-unlocked`, its slot the PIN credential's index (else the user index).
 *   `LockOperationError` with source `Keypad` and `InvalidCredential` → `keypad-wrong-code`.
 *   An event and the `LockState` change it explains usually arrive in one report; the state is
 *   emitted once the whole report was read, so listeners hear *why* before *what*.
 * - **Users and credentials (features PIN credential and User)**: `pins`. Slot N is user N
 *   holding PIN credential N. `set` adds the user and the credential (or modifies the
 *   credential's code), `clear` removes both, `occupied` walks the PIN credentials with
 *   `GetCredentialStatus` and its `NextCredentialIndex`. Codes are never read back: with users
 *   and credentials, no Door Lock command returns one.
 *
 * Reachability: matter.js keeps a subscription to the node and re-establishes it, but notices a
 * lock that went away only when a report is overdue (a minute or more). The driver therefore
 * reads `LockState` every `livenessIntervalMs` while the lock is reachable and every
 * `deadProbeIntervalMs` while it is not, each read bounded by `probeTimeoutMs`. A lock that
 * comes back is read afresh before its bolt is reported again; what it reported while away
 * arrives late (its retransmissions, on the subscription it still has) and is emitted after
 * the availability that says it is back. A lock away for `resubscribeAfterMs` or more gave up
 * on the reports it could not deliver and sends nothing more on that subscription until its
 * next report is due (a minute or more), so it is subscribed to again; matter.js would only
 * notice when that report is overdue. The lock is available while the last read was answered.
 */
import type { ClientNode, Endpoint } from '@matter/main';
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
import type { MatterFabric, MatterModules, OpenMatterFabric } from './matter-factory.ts';
import { checkPinCode, checkPinSlot } from './pin-checks.ts';
import { ProbeSchedule } from './probe-schedule.ts';
import { ControllerLease } from './shared-controller.ts';

/** How to reach one Matter lock. */
export interface MatterLockOptions {
  /** The hub's id for this device (the device id presented upstream). */
  readonly id: string;
  /** The hub's fabric, which the lock was commissioned into. */
  readonly fabric: MatterFabric;
  /** The lock's node id in that fabric. */
  readonly nodeId: bigint;
  /** The endpoint with the Door Lock cluster; default the first that has one. */
  readonly endpoint?: number;
  /** The hub's clock, ms; stamps the events' `at`. Default `Date.now`. */
  readonly now?: () => number;
  /** How long a command may wait for the lock's answer, ms. Default 10 000. */
  readonly commandTimeoutMs?: number;
  /** How long a liveness read may take before the lock counts as away, ms. Default 5000. */
  readonly probeTimeoutMs?: number;
  /** How often a reachable lock is read to notice it went away, ms; 0 never. Default 60 000. */
  readonly livenessIntervalMs?: number;
  /** How often an unreachable lock is tried again, ms; 0 never. Default 10 000. */
  readonly deadProbeIntervalMs?: number;
  /**
   * A lock away for at least this long is subscribed to afresh on its return, ms. Default 5000:
   * a lock whose report goes unacknowledged for longer than its retransmission window (about
   * 14 s for matter.js) gives up on it and reports again only when the next report is due.
   */
  readonly resubscribeAfterMs?: number;
  /** How often the driver looks whether a read is due (no traffic), ms. Default 1000. */
  readonly checkIntervalMs?: number;
  /** Called when a listener throws; default a process warning. */
  readonly onListenerError?: (err: unknown) => void;
}

/** Door Lock cluster values (Matter 1.4 Application Cluster specification, § 5.2.6). */
const LOCK_STATE = { notFullyLocked: 0, locked: 1, unlocked: 2, unlatched: 3 } as const;
const ALARM = { lockJammed: 0, wrongCodeEntryLimit: 4 } as const;
const OPERATION = { lock: 0, unlock: 1, unlatch: 4 } as const;
const SOURCE = { manual: 1, keypad: 3 } as const;
const OPERATION_ERROR_INVALID_CREDENTIAL = 1;
const CREDENTIAL_PIN = 1;
const DATA_ADD = 0;
const DATA_MODIFY = 2;
const USER_OCCUPIED_ENABLED = 1;
const USER_TYPE_UNRESTRICTED = 0;
const CREDENTIAL_RULE_SINGLE = 0;

/** Interaction Model status codes (Matter Core specification, § 8.10). */
const STATUS = {
  success: 0x00,
  failure: 0x01,
  invalidCommand: 0x85,
  unsupportedCommand: 0x81,
  constraintError: 0x87,
  resourceExhausted: 0x89,
  unsupportedEndpoint: 0x7f,
  unsupportedCluster: 0xc3,
  timeout: 0x94,
  busy: 0x9c,
} as const;
const REFUSED_STATUSES: ReadonlySet<number> = new Set([
  STATUS.failure,
  STATUS.invalidCommand,
  STATUS.constraintError,
  STATUS.resourceExhausted,
]);
const UNSUPPORTED_STATUSES: ReadonlySet<number> = new Set([
  STATUS.unsupportedCommand,
  STATUS.unsupportedEndpoint,
  STATUS.unsupportedCluster,
]);

const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
const DEFAULT_PROBE_TIMEOUT_MS = 5_000;
const DEFAULT_LIVENESS_INTERVAL_MS = 60_000;
const DEFAULT_DEAD_PROBE_INTERVAL_MS = 10_000;
const DEFAULT_CHECK_INTERVAL_MS = 1000;
const DEFAULT_RESUBSCRIBE_AFTER_MS = 5000;
/**
 * A `LockState` change waits at most this long for the rest of its report (the event that
 * explains it) before it is emitted anyway, ms.
 */
const REPORT_SETTLE_MS = 50;
/** Events kept for a lock that counts as away, at most. */
const MAX_HELD_EVENTS = 32;

/** Where the bolt is for a `LockState` value. */
export function boltOfLockState(state: unknown): DriverBolt {
  switch (state) {
    case LOCK_STATE.locked:
      return 'locked';
    case LOCK_STATE.unlocked:
    case LOCK_STATE.unlatched:
      return 'unlocked';
    case LOCK_STATE.notFullyLocked:
      return 'jammed';
    default:
      return 'unknown';
  }
}

/** The status of an Interaction Model error, when it is one (matter.js's `StatusResponseError`). */
function statusOf(err: unknown): number | null {
  if (typeof err !== 'object' || err === null || !('code' in err)) return null;
  const code = err.code;
  return typeof code === 'number' ? code : null;
}

/** Turns what matter.js threw into a {@link DriverError}. */
export function driverErrorOf(err: unknown, what: string): DriverError {
  if (err instanceof DriverError) return err;
  const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  const status = statusOf(err);
  // The lock answered with a status: it was reached, and said no (or cannot).
  let code: DriverErrorCode = 'device.unavailable';
  if (status !== null && REFUSED_STATUSES.has(status)) code = 'device.refused';
  else if (status !== null && UNSUPPORTED_STATUSES.has(status)) code = 'device.unsupported';
  else if (status === STATUS.timeout || status === STATUS.busy) code = 'device.timeout';
  return new DriverError(code, message);
}

/** The Door Lock events this driver reads (fields as the specification names them). */
interface LockOperationEvent {
  readonly lockOperationType: number;
  readonly operationSource: number;
  readonly userIndex?: number | null;
  readonly credentials?: readonly { credentialType: number; credentialIndex: number }[] | null;
}
interface LockOperationErrorEvent {
  readonly operationSource: number;
  readonly operationError: number;
}
interface DoorLockAlarmEvent {
  readonly alarmCode: number;
}

/** What the driver needs of an observable (matter.js's `Observable`). */
interface ObservableLike<T extends unknown[]> {
  on(listener: (...args: T) => void): void;
  off(listener: (...args: T) => void): void;
}

/** See the module comment. */
export class MatterLock implements LockDriver {
  readonly kind = 'lock' as const;
  readonly id: string;
  private readonly fabric: MatterFabric;
  private readonly nodeId: bigint;
  private readonly endpointNumber: number | undefined;
  private readonly now: () => number;
  private readonly commandTimeoutMs: number;
  private readonly probeTimeoutMs: number;
  private readonly resubscribeAfterMs: number;
  private readonly pinDriver: MatterPins;
  /** This driver's share of the fabric. */
  private readonly share: ControllerLease<OpenMatterFabric>;
  private readonly reporter: LockReporter;
  private readonly probes: ProbeSchedule;
  private readonly timers = new DriverTimers();

  private started = false;
  private stopped = false;
  private modules: MatterModules | null = null;
  private node: ClientNode | null = null;
  private endpoint: Endpoint | null = null;
  /** Set when the node turned out unusable (not in the fabric, no Door Lock cluster). */
  private fault: string | null = null;
  /** Whether the last read (or command) was answered. */
  private reachable = false;
  /** Since when the lock has not answered (process clock, ms); null while it answers. */
  private awaySince: number | null = null;
  /** Whether matter.js said it lost its subscription and has not said it got one again. */
  private subscriptionLost = false;
  /** `LockState` as the lock last reported it since it last became reachable. */
  private lockState: number | null = null;
  private fresh = false;
  private jammed = false;
  /**
   * What the report being read says of the bolt, applied (and emitted) once the whole report
   * was read: `bolt()` never shows a value before listeners heard it.
   */
  private pending: { lockState?: number | null; jammed?: boolean } | null = null;
  /**
   * Events that arrived while the lock counted as away (sent while its link was down, delivered
   * on its return): emitted after the availability that says it is back, before its bolt.
   */
  private held: LockDriverEvent[] = [];
  private readonly unsubscribe: (() => void)[] = [];
  private settleTimer: NodeJS.Timeout | undefined;

  constructor(options: MatterLockOptions) {
    if (options.nodeId < 1n) {
      throw new RangeError(`matter: nodeId must be a positive node id, not ${options.nodeId}`);
    }
    this.id = options.id;
    this.fabric = options.fabric;
    this.nodeId = options.nodeId;
    this.endpointNumber = options.endpoint;
    this.now = options.now ?? Date.now;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.resubscribeAfterMs = options.resubscribeAfterMs ?? DEFAULT_RESUBSCRIBE_AFTER_MS;
    this.share = new ControllerLease(this.fabric);
    this.reporter = new LockReporter(this.id, options.onListenerError);
    this.probes = new ProbeSchedule({
      checkIntervalMs: options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
      livenessIntervalMs: options.livenessIntervalMs ?? DEFAULT_LIVENESS_INTERVAL_MS,
      deadProbeIntervalMs: options.deadProbeIntervalMs ?? DEFAULT_DEAD_PROBE_INTERVAL_MS,
      settled: () => this.available() && this.fresh,
      probe: () => this.readBolt(),
      refresh: () => this.update(),
    });
    this.pinDriver = new MatterPins(this);
  }

  /** Keypad codes through users and PIN credentials; null once the lock turned out to have none. */
  get pins(): PinDriver | null {
    if (this.endpoint !== null && !this.pinDriver.supported()) return null;
    return this.pinDriver;
  }

  /**
   * Opens (or joins) the fabric, finds the node and its Door Lock endpoint, reads the bolt, and
   * resolves. A lock that does not answer leaves the driver unavailable and is tried again every
   * `deadProbeIntervalMs`. Rejects when the node cannot be this lock at all (not commissioned
   * into the fabric, no Door Lock cluster) or the fabric cannot be opened.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new DriverError('device.unavailable', 'stopped');
    if (this.started) return;
    this.started = true;
    try {
      await this.connect();
    } catch (err) {
      await this.stop();
      throw driverErrorOf(err, `${this.id}: start`);
    }
    if (this.stopped) return;
    this.reporter.begin(this.available(), this.bolt(), this.now());
    // The start-up read does not count as a probe: the lock is read again at the first look.
    this.probes.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.reporter.close();
    for (const off of this.unsubscribe.splice(0)) off();
    this.timers.clear();
    this.probes.stop();
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.pending = null;
    this.held = [];
    this.node = null;
    this.endpoint = null;
    await this.share.giveBack();
  }

  available(): boolean {
    if (!this.started || this.stopped || this.fault !== null) return false;
    return this.endpoint !== null && this.reachable;
  }

  bolt(): DriverBolt {
    if (!this.available() || !this.fresh) return 'unknown';
    if (this.jammed) return 'jammed';
    return boltOfLockState(this.lockState);
  }

  lock(): Promise<void> {
    return this.move('lock');
  }

  unlock(): Promise<void> {
    return this.move('unlock');
  }

  on(listener: (e: LockDriverEvent) => void): () => void {
    return this.reporter.on(listener);
  }

  /**
   * What this driver holds now: its listeners on the matter.js node, its timers, and its share
   * of the fabric. Zero after `stop()` (tests check it).
   */
  heldResources(): number {
    return (
      this.unsubscribe.length +
      this.timers.size +
      (this.probes.armed ? 1 : 0) +
      (this.settleTimer === undefined ? 0 : 1) +
      (this.share.taken ? 1 : 0)
    );
  }

  // --- inside ----------------------------------------------------------------------------

  /** The Door Lock attributes matter.js holds for the endpoint (what the lock last reported). */
  attributes(): Record<string, unknown> | null {
    const endpoint = this.endpoint;
    const modules = this.modules;
    if (endpoint === null || modules === null) return null;
    return endpoint.stateOf(modules.DoorLockClient);
  }

  /** The Door Lock commands of the endpoint; throws unless one can be sent now. */
  commands(): Record<string, (fields: unknown) => Promise<unknown>> {
    const endpoint = this.available() ? this.endpoint : null;
    const modules = this.modules;
    if (endpoint === null || modules === null) {
      throw new DriverError(
        'device.unavailable',
        this.fault ?? `${this.id} (Matter node ${this.nodeId}) is not reachable`,
      );
    }
    return endpoint.commandsOf(modules.DoorLockClient) as unknown as Record<
      string,
      (fields: unknown) => Promise<unknown>
    >;
  }

  /** Runs one command with the command timeout, its errors as {@link DriverError}s. */
  async call<T>(
    what: string,
    run: () => Promise<T>,
    timeoutMs = this.commandTimeoutMs,
  ): Promise<T> {
    try {
      return await this.timers.command(what, run, timeoutMs, driverErrorOf);
    } catch (err) {
      const error = driverErrorOf(err, what);
      // No answer at all: the lock may be gone; a read settles it sooner than the schedule.
      if (error.code === 'device.unavailable' || error.code === 'device.timeout') {
        this.probes.soon();
      }
      throw error;
    }
  }

  private async connect(): Promise<void> {
    if (!this.share.taken) {
      // Bounded by the fabric's own open timeout; a timeout here could not tell the fabric that
      // this user gave up, and its share would never be released.
      const open = await this.share
        .take(() => this.stopped)
        .catch((err: unknown) => {
          throw driverErrorOf(err, 'open the Matter fabric');
        });
      // Stopped meanwhile: the share went back at once.
      if (open === null) return;
      this.modules = open.modules;
    }
    const node = this.fabric.peer(this.nodeId);
    if (node === undefined) {
      this.fault = `Matter node ${this.nodeId} is not commissioned into this hub's fabric (pair it first)`;
      throw new DriverError('device.unavailable', this.fault);
    }
    const endpoint = this.findEndpoint(node);
    if (endpoint === null) {
      this.fault =
        this.endpointNumber === undefined
          ? `Matter node ${this.nodeId} has no endpoint with the Door Lock cluster`
          : `Matter node ${this.nodeId} has no Door Lock cluster on endpoint ${this.endpointNumber}`;
      throw new DriverError('device.unsupported', this.fault);
    }
    this.node = node;
    this.endpoint = endpoint;
    this.observe(node, endpoint);
    // A node commissioned with another controller's defaults (or turned off) is not
    // subscribed to; the hub needs its reports.
    if (this.modules && !node.stateOf(this.modules.main.NetworkClient).autoSubscribe) {
      await node.set({ network: { autoSubscribe: true } });
    }
    await this.readBolt().catch(() => undefined);
  }

  private findEndpoint(node: ClientNode): Endpoint | null {
    const modules = this.modules;
    if (modules === null) return null;
    const candidates =
      this.endpointNumber === undefined
        ? [...node.endpoints]
        : [...node.endpoints].filter((e) => e.number === this.endpointNumber);
    return candidates.find((e) => e.behaviors.has(modules.DoorLockClient)) ?? null;
  }

  private observe(node: ClientNode, endpoint: Endpoint): void {
    const modules = this.modules;
    if (modules === null) return;
    const events = endpoint.eventsOf(modules.DoorLockClient) as unknown as {
      lockState$Changed: ObservableLike<[value: number | null]>;
      lockOperation?: ObservableLike<[LockOperationEvent]>;
      lockOperationError?: ObservableLike<[LockOperationErrorEvent]>;
      doorLockAlarm?: ObservableLike<[DoorLockAlarmEvent]>;
    };
    const network = node.eventsOf(modules.main.NetworkClient) as unknown as {
      subscriptionStatusChanged: ObservableLike<[isActive: boolean]>;
      subscriptionAlive: ObservableLike<[]>;
    };
    this.listen(events.lockState$Changed, (value) => {
      // A new report of the bolt supersedes an earlier jam alarm.
      this.pending = { ...this.pending, lockState: value, jammed: false };
      this.settleSoon();
    });
    if (events.lockOperation) this.listen(events.lockOperation, (e) => this.onOperation(e));
    if (events.lockOperationError) {
      this.listen(events.lockOperationError, (e) => this.onOperationError(e));
    }
    if (events.doorLockAlarm) this.listen(events.doorLockAlarm, (e) => this.onAlarm(e));
    this.listen(network.subscriptionStatusChanged, (active) => {
      // matter.js lost the subscription (and re-establishes it by itself): whether the lock
      // is still there is for a read to tell, now rather than at the next scheduled one.
      this.subscriptionLost = !active;
      if (!active) this.probes.soon();
    });
    // matter.js emits this once a report was read whole: the state it changed can go out now.
    this.listen(network.subscriptionAlive, () => {
      this.subscriptionLost = false;
      this.settle();
    });
  }

  private listen<T extends unknown[]>(
    observable: ObservableLike<T>,
    listener: (...args: T) => void,
  ): void {
    const guarded = (...args: T): void => {
      if (!this.stopped) listener(...args);
    };
    observable.on(guarded);
    this.unsubscribe.push(() => observable.off(guarded));
  }

  private onOperation(e: LockOperationEvent): void {
    const at = this.now();
    const bolt =
      e.lockOperationType === OPERATION.lock
        ? 'locked'
        : e.lockOperationType === OPERATION.unlock || e.lockOperationType === OPERATION.unlatch
          ? 'unlocked'
          : null;
    if (bolt === null) return;
    if (e.operationSource === SOURCE.manual) {
      this.tell({ type: 'manual', bolt, at });
    } else if (e.operationSource === SOURCE.keypad && bolt === 'unlocked') {
      this.tell({ type: 'keypad-unlocked', slot: slotOf(e), at });
    }
  }

  private onOperationError(e: LockOperationErrorEvent): void {
    if (
      e.operationSource === SOURCE.keypad &&
      e.operationError === OPERATION_ERROR_INVALID_CREDENTIAL
    ) {
      this.tell({ type: 'keypad-wrong-code', at: this.now() });
    }
  }

  private onAlarm(e: DoorLockAlarmEvent): void {
    if (e.alarmCode === ALARM.lockJammed) {
      this.pending = { ...this.pending, jammed: true };
      this.settleSoon();
    } else if (e.alarmCode === ALARM.wrongCodeEntryLimit) {
      const at = this.now();
      const seconds = this.attributes()?.userCodeTemporaryDisableTime;
      const untilMs = typeof seconds === 'number' && seconds > 0 ? at + seconds * 1000 : null;
      this.tell({ type: 'keypad-lockout', untilMs, at });
    }
  }

  /** Emits the state once the report being read is read whole (or soon, whatever comes). */
  private settleSoon(): void {
    if (this.settleTimer !== undefined || this.stopped) return;
    this.settleTimer = setTimeout(() => this.settle(), REPORT_SETTLE_MS);
  }

  private settle(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) {
      if (pending.lockState !== undefined) {
        this.lockState = pending.lockState;
        this.fresh = true;
      }
      if (pending.jammed !== undefined) this.jammed = pending.jammed;
    }
    this.update();
  }

  /**
   * Emits availability, then what the lock said while it counted as away, then the bolt, each
   * only when there is something new (and not while starting).
   */
  private update(): void {
    if (!this.reporter.live) return;
    const at = this.now();
    const available = this.available();
    if (!available) this.fresh = false;
    this.reporter.availability(available, at);
    if (available) for (const e of this.held.splice(0)) this.reporter.emit(e);
    this.reporter.bolt(this.bolt(), at);
  }

  /** Emits what the lock said happened, or holds it while the lock counts as away. */
  private tell(e: LockDriverEvent): void {
    if (this.available() || this.reporter.starting) {
      this.reporter.emit(e);
      return;
    }
    // It spoke, so it may well be back: ask now rather than at the next scheduled read.
    this.probes.soon();
    if (this.held.length < MAX_HELD_EVENTS) this.held.push(e);
  }

  private async move(what: 'lock' | 'unlock'): Promise<void> {
    const commands = this.commands();
    await this.call(what, () =>
      what === 'lock' ? commands.lockDoor!({}) : commands.unlockDoor!({}),
    );
    // Accepted; the bolt is whatever the lock reports next.
  }

  /**
   * Reads `LockState` from the lock (not matter.js's copy), bounded by `probeTimeoutMs`. An
   * answer makes the lock reachable and its bolt fresh; a lock that was away is subscribed to
   * again, since the lock may have dropped the subscription while its reports went nowhere.
   */
  private async readBolt(): Promise<void> {
    const node = this.node;
    const modules = this.modules;
    const endpoint = this.endpoint;
    if (node === null || modules === null || endpoint === null || this.stopped) return;
    const { Read } = modules.protocol;
    const request = Read(
      { fabricFilter: true },
      Read.Attribute({
        endpoint: endpoint.number,
        cluster: modules.DoorLockClient.cluster,
        attributes: 'lockState',
      }),
    );
    let value: unknown;
    let answered = false;
    try {
      await this.call(
        'read the bolt',
        async () => {
          for await (const chunk of node.interaction.read(request)) {
            for await (const entry of chunk) {
              // A status instead of a value is an answer too: the lock is there, its bolt unknown.
              if (entry.kind === 'attr-value' || entry.kind === 'attr-status') {
                value = entry.kind === 'attr-value' ? entry.value : null;
                answered = true;
              }
            }
          }
        },
        this.probeTimeoutMs,
      );
    } catch (err) {
      this.reachable = false;
      this.fresh = false;
      this.awaySince ??= Date.now();
      this.update();
      throw err;
    }
    if (this.stopped || !answered) return;
    // The answer is newer than any report still being read.
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.pending = null;
    this.lockState = typeof value === 'number' ? value : null;
    this.fresh = true;
    this.jammed = false;
    this.reachable = true;
    const awayMs = this.awaySince === null ? 0 : Date.now() - this.awaySince;
    this.awaySince = null;
    this.update();
    // After a short absence the lock's retransmissions deliver what it reported meanwhile, on
    // the subscription it still has; after a long one it dropped the subscription.
    if (this.subscriptionLost || awayMs >= this.resubscribeAfterMs) await this.resubscribe();
  }

  /** Drops and re-establishes matter.js's subscription to the node. */
  private async resubscribe(): Promise<void> {
    const node = this.node;
    if (node === null || this.stopped) return;
    this.subscriptionLost = false;
    await node.set({ network: { autoSubscribe: false } });
    // Stopped meanwhile: the next start() turns it back on (see connect()).
    if (this.stopped) return;
    await node.set({ network: { autoSubscribe: true } });
  }
}

/** The slot of a keypad operation: its PIN credential's index, else its user index. */
function slotOf(e: LockOperationEvent): number | null {
  const pin = e.credentials?.find((c) => c.credentialType === CREDENTIAL_PIN);
  if (pin && pin.credentialIndex > 0) return pin.credentialIndex;
  const user = e.userIndex;
  return typeof user === 'number' && user > 0 ? user : null;
}

/** What `GetCredentialStatus` answers. */
interface CredentialStatus {
  readonly credentialExists: boolean;
  readonly userIndex: number | null;
  readonly nextCredentialIndex?: number | null;
}

/** What `SetCredential` answers. */
interface SetCredentialResponse {
  readonly status: number;
}

/** A {@link MatterLock}'s keypad codes through users and PIN credentials. */
class MatterPins implements PinDriver {
  constructor(private readonly lock: MatterLock) {}

  /** Whether the lock has the PIN credential and User features. */
  supported(): boolean {
    const features = this.lock.attributes()?.featureMap as
      { pinCredential?: boolean; user?: boolean } | undefined;
    return features?.pinCredential === true && features.user === true;
  }

  capacity(): number {
    const attributes = this.lock.attributes();
    const pins = attributes?.numberOfPinUsersSupported;
    const users = attributes?.numberOfTotalUsersSupported;
    if (typeof pins !== 'number' || typeof users !== 'number') return 0;
    // Slot N is user N holding PIN credential N: both must exist.
    return Math.max(0, Math.min(pins, users));
  }

  async set(slot: number, code: string): Promise<void> {
    checkPinSlot(slot, this.capacity());
    checkPinCode(code);
    const commands = this.lock.commands();
    const what = `set the code of slot ${slot}`;
    const credential = { credentialType: CREDENTIAL_PIN, credentialIndex: slot };
    const status = await this.status(slot);
    let response: SetCredentialResponse;
    if (status.credentialExists) {
      response = (await this.lock.call(what, () =>
        commands.setCredential!({
          operationType: DATA_MODIFY,
          credential,
          credentialData: Buffer.from(code, 'ascii'),
          userIndex: status.userIndex,
          userStatus: null,
          userType: null,
        }),
      )) as SetCredentialResponse;
    } else {
      const user = (await this.lock.call(`read user ${slot}`, () =>
        commands.getUser!({ userIndex: slot }),
      )) as { userStatus: number | null };
      if (user.userStatus === null) {
        await this.lock.call(`add user ${slot}`, () =>
          commands.setUser!({
            operationType: DATA_ADD,
            userIndex: slot,
            userName: null,
            userUniqueId: null,
            userStatus: USER_OCCUPIED_ENABLED,
            userType: USER_TYPE_UNRESTRICTED,
            credentialRule: CREDENTIAL_RULE_SINGLE,
          }),
        );
      }
      response = (await this.lock.call(what, () =>
        commands.setCredential!({
          operationType: DATA_ADD,
          credential,
          credentialData: Buffer.from(code, 'ascii'),
          userIndex: slot,
          userStatus: null,
          userType: null,
        }),
      )) as SetCredentialResponse;
    }
    if (response.status !== STATUS.success) {
      // Duplicate: another slot holds the same code (the lock would not know whom it opens for).
      throw new DriverError(
        'device.refused',
        `${what}: the lock answered status ${response.status}`,
      );
    }
  }

  async clear(slot: number): Promise<void> {
    checkPinSlot(slot, this.capacity());
    const commands = this.lock.commands();
    const status = await this.status(slot);
    if (status.credentialExists) {
      await this.lock.call(`clear the code of slot ${slot}`, () =>
        commands.clearCredential!({
          credential: { credentialType: CREDENTIAL_PIN, credentialIndex: slot },
        }),
      );
    }
    // ClearUser of a slot without a user is a no-op; it also drops any other credential of it.
    await this.lock.call(`clear user ${slot}`, () => commands.clearUser!({ userIndex: slot }));
  }

  /** Walks the PIN credentials: one round-trip per occupied slot, plus one. */
  async occupied(): Promise<number[]> {
    const capacity = this.capacity();
    // Refuses at once, before the first round-trip, when the lock is away.
    this.lock.commands();
    const slots: number[] = [];
    let index: number | null = 1;
    while (index !== null && index >= 1 && index <= capacity) {
      const status = await this.status(index);
      if (status.credentialExists) slots.push(index);
      const next: number | null = status.nextCredentialIndex ?? null;
      // A lock that points backwards (or at itself) would loop for ever.
      index = next !== null && next > index ? next : null;
    }
    return slots;
  }

  private async status(slot: number): Promise<CredentialStatus> {
    const commands = this.lock.commands();
    return (await this.lock.call(`read slot ${slot}`, () =>
      commands.getCredentialStatus!({
        credential: { credentialType: CREDENTIAL_PIN, credentialIndex: slot },
      }),
    )) as CredentialStatus;
  }
}

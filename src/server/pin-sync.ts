/**
 * Keypad PINs: the server writes codes to locks, reads them back to be sure, and keeps each
 * slot's sync state (see {@link PinSyncState}) and its validity window (see pin-window.ts).
 *
 * - `assign` records what Threshold wants in a slot (the code's keyed digest only, never the
 *   code), sends `pin.set`, then reads the slots back with `pin.list`. The slot is `confirmed`
 *   only when the lock lists the slot with the digest of the code written: a lock that
 *   acknowledged the write but did not keep it is caught here. Otherwise the pair is tried
 *   again after 2 s, 4 s, 8 s … (capped); a write of a code is given up after `maxAttempts`
 *   (the slot is `failed`), a write that needs no code (a clear, a window) goes on until it
 *   lands, so a revocation reaches a lock that was away as soon as it is back.
 * - The code lives in this process's memory only while its write is being tried, then it is
 *   forgotten. A restart in between cannot resume the write: the slot is marked `failed` and
 *   the owner assigns a new code. (Clears and writes of a window alone need no code and are
 *   resumed.)
 * - Each code carries the validity window its holder should have (`desiredPinWindow`: the
 *   owner's none, a member's a day ahead, a guest's the first stretch their grants allow, at
 *   most an hour ahead), written with the code (`pin.set`) or alone (`pin.window`) and confirmed
 *   by the read-back like the code. `refreshWindows` recomputes the windows and writes those
 *   that `needsRewrite` says must change: a shrink (revocation, a used-up grant) at once, a
 *   renewal when the lock's window has less than half a lease left. It runs every quarter of
 *   the shorter lease, at the end of each slot's window, when a lock comes online, and when
 *   routes call it. So a lock that cannot be reached stops taking a revoked guest's code at
 *   most `guestLeaseMs` after the last write that reached it.
 * - `reconcile` (when a lock comes online, and every `reconcileEveryMs`) lists the lock's slots
 *   and flags what differs: a slot the lock holds that Threshold did not write is
 *   `unknown-on-lock`, a confirmed slot that changed or vanished is `out-of-sync`. Nothing found
 *   this way is changed on the lock without the owner, except a window that differs on a slot
 *   that holds Threshold's code: that needs no code, and is written again at once.
 * - A lock that keeps dropping off the network does not pile work up. Its coming online starts
 *   one pass (reconcile, then its windows); coming online again while that pass runs only asks
 *   for one more after it, however many times it happens, so a lock has at most one pass under
 *   way and one waiting. Going offline ends at once every wait on that lock (a
 *   reconcile's listing, an attempt's write or read-back) and drops the pass waiting, rather
 *   than waiting out a command's timeout for a lock known to be away; an attempt cut short this
 *   way counts like any other that got no answer, and the next is not due before the command
 *   cut short would have timed out, so a flapping lock uses up a code's attempts no faster than
 *   a silent one. {@link PinSync.stop} ends every wait the same way, so it returns promptly,
 *   and nothing is sent after it.
 * - Keypad events from locks are audited (`keypad.unlocked` with the slot and whose it is,
 *   `keypad.wrong-code`, `keypad.outside-window` for a right code at the wrong time,
 *   `keypad.lockout`); a lockout, a code outside its hours, and an opening with a code Threshold
 *   did not write, are told to the owner through `notify`. Each opening is also handed to
 *   `onKeypadEntry` once audited.
 *
 * PINs never appear in the audit log, the store, the logs or any event: only slot numbers.
 * Commands to one lock are sent one pair at a time, so a read-back always follows its write.
 */
import type { AuditActor, AuditFact } from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import { ok, problem, refuse, type Result } from '../core/errors.ts';
import type { Device } from '../core/model.ts';
import {
  checkLeases,
  DEFAULT_PIN_LEASES,
  desiredPinWindow,
  leaseFor,
  needsRewrite,
  sameWindow,
  type PinWindow,
} from '../core/pin-window.ts';
import { deriveDeviceKey } from '../protocol/device-auth.ts';
import {
  decodePinList,
  MAX_PIN_NAME_LENGTH,
  MAX_PIN_SLOT,
  PIN_CODE_PATTERN,
  PIN_LIST_PAGE_SIZE,
  pinWindowFields,
  readPinWindow,
  type DeviceEventMessage,
} from '../protocol/device-messages.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
import type { Store } from '../store/index.ts';
import {
  PinSlotRepository,
  type PinSlot,
  type PinSyncState,
} from '../store/pin-slot-repository.ts';
import type { AuditLog } from './audit-log.ts';
import { deviceEventKey } from './device-event-key.ts';
import type {
  CommandOptions,
  CommandOutcome,
  DeviceGateway,
  DeviceGatewayListener,
  RegisteredDevice,
} from './device-gateway.ts';

/** Retry and reconciliation timings of {@link PinSync}, ms. */
export interface PinSyncTiming {
  /** Wait before the second attempt; it doubles for each further one. Default 2 000. */
  readonly retryBaseMs: number;
  /** Longest wait between attempts. Default 60 000. */
  readonly retryMaxMs: number;
  /** Attempts (a write and its read-back each) before a slot is `failed`. Default 6. */
  readonly maxAttempts: number;
  /** How long to wait for each reply. Default 10 000 (the gateway's command lifetime). */
  readonly commandTimeoutMs: number;
  /** Reconcile every known lock this often; null for only when a lock comes online. Default 1 h. */
  readonly reconcileEveryMs: number | null;
  /**
   * How far ahead a guest's window may reach: a lock that cannot be reached stops taking a
   * revoked guest's code at most this long after the last write that reached it. Whole
   * seconds. Default 1 h.
   */
  readonly guestLeaseMs: number;
  /** The same for a household member's code. Whole seconds. Default 24 h. */
  readonly memberLeaseMs: number;
}

/** Defaults of {@link PinSyncTiming}. */
export const DEFAULT_PIN_SYNC_TIMING: PinSyncTiming = {
  retryBaseMs: 2_000,
  retryMaxMs: 60_000,
  maxAttempts: 6,
  commandTimeoutMs: 10_000,
  reconcileEveryMs: 60 * 60_000,
  guestLeaseMs: DEFAULT_PIN_LEASES.guestLeaseMs,
  memberLeaseMs: DEFAULT_PIN_LEASES.memberLeaseMs,
};

/** What {@link PinSync} needs of the device gateway. */
export type PinGateway = Pick<DeviceGateway, 'command'>;

/** Settings of a {@link PinSync}. */
export interface PinSyncOptions {
  readonly gateway: PinGateway;
  /**
   * Locks, principals and guest grants (for the windows) are looked up here; slots are kept in
   * `pinSlots` or on `db`.
   */
  readonly store: Pick<Store, 'db' | 'homes' | 'principals' | 'guestGrants'>;
  /** The slot repository; default one on `store.db`. */
  readonly pinSlots?: PinSlotRepository;
  /**
   * Whether {@link PinSync.start} settles the writes a previous run left pending (default
   * true). Replicas say false: a write pending in the store may be one another live replica is
   * making.
   */
  readonly settlePendingOnStart?: boolean;
  /**
   * Whether keypad events are audited with `appendOnce` (default false). Replicas say true:
   * every replica hears each keypad event and handles it, so none is lost while no replica
   * leads; the first to commit its audit entry alone tells the owner, and entries are recorded
   * under an id of the event's own (see device-event-key.ts), so each is recorded once.
   */
  readonly auditEventsOnce?: boolean;
  /**
   * Whether this process runs the pass of a lock that comes online (default: always). Replicas
   * say "while this one leads": a pass sends commands and one replica's is enough. A lock that
   * comes online meanwhile is remembered, and {@link PinSync.catchUpPasses} runs the passes a
   * leader may have missed once this replica leads. Every replica still handles going offline
   * and the writes it makes itself.
   */
  readonly runsPasses?: () => boolean;
  readonly audit: Pick<AuditLog, 'append' | 'appendOnce'>;
  readonly clock: Clock;
  /** The server's master key: device keys, and from them PIN digests, derive from it. */
  readonly masterKey: Uint8Array;
  /** Tells a home's owner something that needs their attention (a keypad lockout). */
  readonly notify: (homeId: string, message: string) => void;
  /**
   * Called once a `keypad.unlocked` is audited (e.g. to record who unlocked and count a
   * guest's use); the lock's event is acknowledged once what it returns settles. A throw or a
   * rejection is logged, never passed on. With {@link auditEventsOnce} it is called on every
   * replica, whichever audited the event: it must do its work once per `(lockId, deviceAt,
   * seq)`.
   */
  readonly onKeypadEntry?: (entry: KeypadEntryReport) => void | Promise<unknown>;
  readonly logger?: {
    warn(obj: object, msg: string): void;
    info(obj: object, msg: string): void;
  };
  readonly timing?: Partial<PinSyncTiming>;
}

/** Who a slot's code is for. */
export interface PinAssignment {
  /** The person whose code it is; must belong to the lock's home. */
  readonly principalId: string;
  /** A label for people and for the lock ("Cleaner"), 1–32 characters. */
  readonly name?: string;
  /** Who asked for it (the owner); the system by default. */
  readonly actor?: AuditActor;
}

/** An opening by keypad code, as {@link PinSyncOptions.onKeypadEntry} hears of it. */
export interface KeypadEntryReport {
  readonly homeId: string;
  readonly lockId: string;
  /** The slot the lock named, or null. */
  readonly slot: number | null;
  /** Whose code it is, when the slot holds a code Threshold wrote and confirmed; else null. */
  readonly principalId: string | null;
  /** When the lock says it happened, ms by the lock's clock. */
  readonly deviceAt: number;
  /** The event's `seq`: with `lockId` and `deviceAt`, it names the event (device-event-key.ts). */
  readonly seq: number;
}

/** One set slot as the lock listed it. */
interface ListedSlot {
  readonly digest: string;
  /** Its validity window; null for at all times. */
  readonly window: PinWindow | null;
}

/** What the lock listed: its set slots, and how many slots it has. */
interface LockListing {
  readonly capacity: number;
  readonly slots: ReadonlyMap<number, ListedSlot>;
}

/** What the lock last listed for one slot (digest and window), and when. */
interface SeenOnLock {
  readonly lockDigest: string | null;
  readonly lockWindow: PinWindow | null;
  readonly checkedAt: number | null;
}

/**
 * A write being tried for one slot. It carries the slot as requested (`intent`; its window is
 * recomputed before each attempt), and `code`, the PIN itself, held only as long as this object
 * lives (null for a clear and for a write of the window alone).
 */
interface SlotOperation {
  readonly token: number;
  intent: PinSlot;
  readonly code: string | null;
  attempts: number;
  /** What the lock last listed for the slot, and when. */
  seen: SeenOnLock;
  cancelTimer: (() => void) | null;
  /**
   * No attempt before this time, ms (0: none). Set when the lock's going offline cut an attempt
   * short: to when its command would have timed out, the pace a silent lock sets.
   */
  notBefore: number;
}

/** What a slot's holder should have on the lock now, and the lease that bounds it. */
interface WantedWindow {
  readonly window: PinWindow | null;
  readonly leaseMs: number;
}

/**
 * What a command sent to a lock came to: the gateway's outcome, or a wait ended here because
 * the lock went offline (`offline`) or PIN sync stopped (`stopped`).
 */
type LockAnswer = CommandOutcome | { readonly status: 'offline' | 'stopped' };

/** A lock's online pass under way; `again` asks for one more once it ends. */
interface OnlinePass {
  again: boolean;
}

/** Runs tasks one after another per key; a task that fails does not stop the next. */
class SerialQueues {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const run = before.then(task, task);
    const tail = run.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }
}

const SYSTEM: AuditActor = { type: 'system', id: 'pin-sync' };
const CODE_RE = new RegExp(PIN_CODE_PATTERN);
/** Lock error codes a retry cannot cure: the lock understood and refused. */
const PERMANENT_ERRORS = new Set(['command.invalid', 'command.unsupported']);
const MAX_ERROR_TEXT = 200;
/** Locks whose slots one query reads when every lock's windows are refreshed. */
const SLOT_READ_CHUNK = 500;

/** See the module comment. */
export class PinSync implements DeviceGatewayListener {
  private readonly gateway: PinGateway;
  private readonly store: PinSyncOptions['store'];
  private readonly repo: PinSlotRepository;
  private readonly audit: Pick<AuditLog, 'append' | 'appendOnce'>;
  private readonly auditEventsOnce: boolean;
  private readonly clock: Clock;
  private readonly masterKey: Uint8Array;
  private readonly notify: PinSyncOptions['notify'];
  private readonly logger: PinSyncOptions['logger'];
  private readonly settlePending: boolean;
  private readonly timing: PinSyncTiming;
  /** The write under way per slot: while one is, it alone writes the slot's row. */
  private readonly ops = new Map<string, SlotOperation>();
  private readonly settleWaiters = new Map<string, (() => void)[]>();
  /** Per lock: a write and its read-back are never interleaved with another's. */
  private readonly lockQueues = new SerialQueues();
  /** Per slot: requests and reconciliation change a slot one at a time. */
  private readonly slotQueues = new SerialQueues();
  /** Per lock: keypad events are audited in the order the lock sent them. */
  private readonly eventQueues = new SerialQueues();
  /** Slot counts locks reported, to refuse a slot a lock does not have. */
  private readonly capacities = new Map<string, number>();
  private readonly running = new Set<Promise<unknown>>();
  private readonly onKeypadEntry: PinSyncOptions['onKeypadEntry'];
  /** Per lock: the timer that refreshes its windows when the first one ends. */
  private readonly windowEndTimers = new Map<string, { at: number; cancel: () => void }>();
  /**
   * Per lock: aborted (and forgotten) when the lock goes offline or PIN sync stops, which ends
   * every wait on that lock at once. Work on a lock takes the signal when it starts, so work
   * that started before the lock went away never waits on it, even if it had sent nothing yet.
   */
  private readonly presence = new Map<string, AbortController>();
  /** Per lock: the online pass under way (at most one; see the module comment). */
  private readonly passes = new Map<string, OnlinePass>();
  private readonly runsPasses: () => boolean;
  /**
   * Locks that came online while this process did not run passes, with when (oldest first):
   * what {@link catchUpPasses} looks at. Each lock at most once.
   */
  private readonly passesNotRun = new Map<string, number>();
  private nextToken = 1;
  private started = false;
  private stopped = false;
  private cancelReconcile: (() => void) | null = null;
  private cancelRefresh: (() => void) | null = null;

  constructor(options: PinSyncOptions) {
    this.gateway = options.gateway;
    this.store = options.store;
    this.repo = options.pinSlots ?? new PinSlotRepository(options.store.db);
    this.settlePending = options.settlePendingOnStart ?? true;
    this.audit = options.audit;
    this.auditEventsOnce = options.auditEventsOnce ?? false;
    this.runsPasses = options.runsPasses ?? (() => true);
    this.clock = options.clock;
    this.masterKey = options.masterKey;
    this.notify = options.notify;
    this.onKeypadEntry = options.onKeypadEntry;
    this.logger = options.logger;
    this.timing = { ...DEFAULT_PIN_SYNC_TIMING, ...options.timing };
    const t = this.timing;
    if (!(t.retryBaseMs > 0 && t.retryMaxMs >= t.retryBaseMs))
      throw new RangeError('retryBaseMs must be > 0 and retryMaxMs >= retryBaseMs');
    if (!Number.isInteger(t.maxAttempts) || t.maxAttempts < 1)
      throw new RangeError('maxAttempts must be an integer >= 1');
    if (!(t.commandTimeoutMs > 0)) throw new RangeError('commandTimeoutMs must be > 0');
    if (t.reconcileEveryMs !== null && !(t.reconcileEveryMs > 0))
      throw new RangeError('reconcileEveryMs must be > 0 or null');
    checkLeases({ guestLeaseMs: t.guestLeaseMs, memberLeaseMs: t.memberLeaseMs });
  }

  /**
   * Picks up after a restart: pending clears and window writes are tried again; pending writes
   * of a code cannot be (the code was only in memory) and become `failed`. Starts periodic
   * reconciliation and window refreshes, and refreshes the windows now.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const pending = this.settlePending === false ? [] : await this.repo.listBySyncState('pending');
    for (const row of pending) {
      if (row.desired === 'clear' || row.windowOnly) {
        const op = this.register(row, null);
        this.schedule(op, row.nextAttemptAt ?? this.clock.now());
        continue;
      }
      const error = 'the server restarted before the lock confirmed this code; assign a new one';
      await this.repo.save({
        ...row,
        sync: 'failed',
        nextAttemptAt: null,
        lastError: error,
        updatedAt: this.clock.now(),
      });
      await this.audit.append({
        kind: 'pin.failed',
        actor: SYSTEM,
        subject: `device:${row.lockDeviceId}`,
        data: { slot: row.slot, desired: row.desired, attempts: row.attempts, error },
      });
    }
    this.scheduleReconcile();
    this.scheduleRefresh();
    this.track(this.refreshWindows());
  }

  /**
   * Stops timers; writes in flight are left `pending` (a later {@link start} settles them).
   * Every wait on a lock's answer ends at once, so this resolves promptly, once work in flight
   * has ended; nothing is sent or recorded after it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const controller of this.presence.values()) controller.abort();
    this.presence.clear();
    for (const pass of this.passes.values()) pass.again = false;
    this.cancelReconcile?.();
    this.cancelReconcile = null;
    this.cancelRefresh?.();
    this.cancelRefresh = null;
    for (const timer of this.windowEndTimers.values()) timer.cancel();
    this.windowEndTimers.clear();
    for (const op of this.ops.values()) op.cancelTimer?.();
    this.ops.clear();
    for (const waiters of this.settleWaiters.values()) for (const w of waiters) w();
    this.settleWaiters.clear();
    // Work that ends may have handed on work of its own (it finds `stopped` and returns at
    // once): wait until there is none left.
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * Puts `code` in `slot` of the lock for a principal of its home. Resolves once the wish is
   * recorded (sync state `pending`) and its first attempt is due; {@link settled} waits for
   * the outcome. Refusals: `device.not-found` (no such lock), `request.invalid` (slot, code,
   * name, or a principal of another home). Replaces whatever the slot was meant to hold.
   */
  async assign(
    lockId: string,
    slot: number,
    code: string,
    assignment: PinAssignment,
  ): Promise<Result<PinSlot>> {
    const lock = await this.lock(lockId);
    if (!lock.ok) return lock;
    const slotProblem = this.slotProblem(lockId, slot);
    if (slotProblem !== null) return refuse(problem('request.invalid', slotProblem));
    if (typeof code !== 'string' || !CODE_RE.test(code))
      return refuse(problem('request.invalid', 'A code is 4 to 10 digits.'));
    const name = assignment.name ?? null;
    if (name !== null && (name.length < 1 || name.length > MAX_PIN_NAME_LENGTH))
      return refuse(
        problem('request.invalid', `A name is 1 to ${MAX_PIN_NAME_LENGTH} characters.`),
      );
    const principal = await this.store.principals.get(assignment.principalId);
    if (principal === null || principal.homeId !== lock.value.homeId)
      return refuse(problem('request.invalid', 'That person does not belong to this home.'));
    const { window } = await this.wantedWindow(lock.value, principal.id);
    const row = await this.request(
      lockId,
      slot,
      code,
      (previous, now) => ({
        lockDeviceId: lockId,
        slot,
        principalId: principal.id,
        name,
        codeDigest: this.digest(lockId, slot, code),
        desired: 'set',
        sync: 'pending',
        attempts: 0,
        nextAttemptAt: now,
        lastError: null,
        lockDigest: previous?.lockDigest ?? null,
        checkedAt: previous?.checkedAt ?? null,
        updatedAt: now,
        window,
        lockWindow: previous?.lockWindow ?? null,
        windowOnly: false,
      }),
      () => ({
        kind: 'pin.assigned',
        actor: assignment.actor ?? SYSTEM,
        subject: `device:${lockId}`,
        data: { slot, principalId: principal.id, ...(name === null ? {} : { name }) },
      }),
    );
    return ok(row);
  }

  /**
   * Empties `slot` of the lock, confirmed by read-back like {@link assign}. Clearing a slot
   * flagged `unknown-on-lock` is how the owner removes a code set at the lock by hand.
   */
  async clear(lockId: string, slot: number, actor: AuditActor = SYSTEM): Promise<Result<PinSlot>> {
    const lock = await this.lock(lockId);
    if (!lock.ok) return lock;
    const slotProblem = this.slotProblem(lockId, slot);
    if (slotProblem !== null) return refuse(problem('request.invalid', slotProblem));
    let held: string | null = null;
    const row = await this.request(
      lockId,
      slot,
      null,
      (previous, now) => {
        held = previous?.principalId ?? null;
        return {
          lockDeviceId: lockId,
          slot,
          principalId: null,
          name: null,
          codeDigest: null,
          desired: 'clear',
          sync: 'pending',
          attempts: 0,
          nextAttemptAt: now,
          lastError: null,
          lockDigest: previous?.lockDigest ?? null,
          checkedAt: previous?.checkedAt ?? null,
          updatedAt: now,
          window: null,
          lockWindow: previous?.lockWindow ?? null,
          windowOnly: false,
        };
      },
      () => ({
        kind: 'pin.cleared',
        actor,
        subject: `device:${lockId}`,
        data: { slot, principalId: held },
      }),
    );
    return ok(row);
  }

  /** Every recorded slot of a lock, by slot number. */
  slots(lockId: string): Promise<PinSlot[]> {
    return this.repo.listForLock(lockId);
  }

  /** Resolves with the slot once no write is being tried for it (at once if none is). */
  async settled(lockId: string, slot: number): Promise<PinSlot | null> {
    const key = slotKey(lockId, slot);
    // A request still being recorded comes first.
    await this.slotQueues.run(key, () => Promise.resolve());
    if (this.ops.has(key)) {
      await new Promise<void>((resolve) => {
        const list = this.settleWaiters.get(key) ?? [];
        list.push(resolve);
        this.settleWaiters.set(key, list);
      });
    }
    return this.repo.get(lockId, slot);
  }

  /**
   * Lists the lock's slots and compares them with what Threshold wants (see the module
   * comment); slots with a write under way are left to it. Resolves with the lock's slots
   * afterwards, or a refusal: `device.not-found`, or `lock.offline` when the lock did not list.
   */
  async reconcile(lockId: string): Promise<Result<PinSlot[]>> {
    return this.reconcileLock(lockId, null);
  }

  /**
   * {@link reconcile}, its waits ended when `presence` is aborted; null takes the lock's signal
   * once the lock is known (an unknown id must not leave an entry behind).
   */
  private async reconcileLock(
    lockId: string,
    presence: AbortSignal | null,
  ): Promise<Result<PinSlot[]>> {
    const lock = await this.lock(lockId);
    if (!lock.ok) return lock;
    const signal = presence ?? this.presenceOf(lockId);
    const listing = await this.lockQueues.run(lockId, () => this.list(lockId, signal));
    if (!listing.ok) return refuse(problem('lock.offline', listing.error));
    const now = this.clock.now();
    const recorded = (await this.repo.listForLock(lockId)).map((r) => r.slot);
    const slots = new Set([...recorded, ...listing.value.slots.keys()]);
    for (const slot of [...slots].sort((a, b) => a - b)) {
      const onLock = listing.value.slots.get(slot) ?? null;
      await this.slotQueues.run(slotKey(lockId, slot), () =>
        this.judgeSlot(lock.value, slot, onLock, now),
      );
    }
    return ok(await this.repo.listForLock(lockId));
  }

  /**
   * Recomputes the window of every set slot (of the home's locks, or of all locks) for now and
   * writes those that must change: call it after a grant is created, accepted or revoked, and
   * after a guest's use is counted. A slot with a write under way gets it at once; a slot whose
   * lock holds Threshold's code gets a write of the window alone; for any other slot (a code
   * not on the lock) only the wish is recorded. Never rejects: a failure is logged.
   */
  async refreshWindows(homeId?: string): Promise<void> {
    try {
      const locks = (await this.store.homes.listDevices(homeId)).filter((d) => d.kind === 'lock');
      // The slots of many locks are read with one query (a chunk at a time), not one per lock:
      // with thousands of locks a pass costs a few reads rather than thousands.
      for (let from = 0; from < locks.length; from += SLOT_READ_CHUNK) {
        if (this.stopped) return;
        const chunk = locks.slice(from, from + SLOT_READ_CHUNK);
        const slots = await this.repo.listForLocks(chunk.map((l) => l.id));
        for (const lock of chunk) {
          if (this.stopped) return;
          await this.refreshLock(lock, slots.get(lock.id) ?? []);
        }
      }
    } catch (err) {
      this.logger?.warn(
        { homeId: homeId ?? null, err: err instanceof Error ? err.message : String(err) },
        'PIN window refresh failed',
      );
    }
  }

  /**
   * Gateway listener: keypad events are audited, in the order the lock sent them; a lockout is
   * told to the owner. The event is acknowledged once that is done (or failed, which is logged:
   * the event itself is on record by then, and a copy sent again would fail the same).
   */
  onEvent(device: RegisteredDevice, event: DeviceEventMessage): Promise<void> | undefined {
    if (this.stopped || device.kind !== 'lock' || !event.name.startsWith('keypad.')) return;
    return this.tracked(this.eventQueues.run(device.id, () => this.keypadEvent(device, event)));
  }

  /**
   * Gateway listener: a lock that comes (back) online is reconciled and its windows refreshed
   * (one pass at a time; see the module comment), and waiting writes go now. A lock that goes
   * offline: every wait on it ends at once.
   */
  onAvailability(device: RegisteredDevice, online: boolean): void {
    if (device.kind !== 'lock' || !this.started || this.stopped) return;
    this.passesNotRun.delete(device.id);
    if (!online) {
      this.wentOffline(device.id);
      return;
    }
    for (const op of this.ops.values()) {
      if (op.intent.lockDeviceId === device.id && op.cancelTimer !== null) {
        op.cancelTimer();
        this.schedule(op, Math.max(this.clock.now(), op.notBefore));
      }
    }
    if (this.runsPasses()) this.requestPass(device.id);
    else this.passesNotRun.set(device.id, this.clock.now());
  }

  /**
   * Runs the passes this process did not run (see {@link PinSyncOptions.runsPasses}) for the
   * locks that came online in the last `withinMs` and are still online as far as it knows: a
   * replica that has just become the leader calls it with the longest a replica set can go
   * without one, so a lock that came online while none led is not left without its pass. Older
   * ones are forgotten: the leader of their time ran them.
   */
  catchUpPasses(withinMs: number): number {
    if (!this.started || this.stopped) return 0;
    const since = this.clock.now() - withinMs;
    let n = 0;
    for (const [lockId, at] of this.passesNotRun) {
      if (at < since) continue;
      this.requestPass(lockId);
      n++;
    }
    this.passesNotRun.clear();
    return n;
  }

  /**
   * Starts the lock's online pass, or, while one runs, asks for one more after it: any number
   * of requests meanwhile come to that one.
   */
  private requestPass(lockId: string): void {
    const running = this.passes.get(lockId);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const pass: OnlinePass = { again: false };
    this.passes.set(lockId, pass);
    this.track(this.runPasses(lockId, pass));
  }

  /** Runs online passes for the lock until none more is asked for. */
  private async runPasses(lockId: string, pass: OnlinePass): Promise<void> {
    try {
      // Taken before the first await: an offline that comes while the pass gets going ends it.
      let signal = this.presenceOf(lockId);
      for (;;) {
        try {
          await this.onlinePass(lockId, signal);
        } catch (err) {
          this.logger?.warn(
            { lockId, err: err instanceof Error ? err.message : String(err) },
            'PIN sync of a lock that came online failed',
          );
        }
        if (!pass.again || this.stopped) return;
        pass.again = false;
        signal = this.presenceOf(lockId);
      }
    } finally {
      this.passes.delete(lockId);
    }
  }

  /** One online pass: what the lock holds is reconciled, then its windows are refreshed. */
  private async onlinePass(lockId: string, signal: AbortSignal): Promise<void> {
    await this.reconcileLock(lockId, signal);
    if (this.stopped) return;
    const lock = await this.lock(lockId);
    if (lock.ok) await this.refreshLock(lock.value);
  }

  /**
   * The lock went offline: every wait on it ends now, and a pass asked for meanwhile is dropped
   * (the lock's next coming online asks again).
   */
  private wentOffline(lockId: string): void {
    const pass = this.passes.get(lockId);
    if (pass !== undefined) pass.again = false;
    this.presence.get(lockId)?.abort();
    this.presence.delete(lockId);
  }

  /** The signal that ends waits on the lock when it goes offline (see `presence`). */
  private presenceOf(lockId: string): AbortSignal {
    // Once stopped, nothing is sent: no new entry either.
    if (this.stopped) return AbortSignal.abort();
    let controller = this.presence.get(lockId);
    if (controller === undefined) {
      controller = new AbortController();
      this.presence.set(lockId, controller);
    }
    return controller.signal;
  }

  /**
   * Sends a command through the gateway, and stops waiting for its answer as soon as `signal`
   * is aborted (the lock went offline, or PIN sync stopped); nothing is sent once it is. The
   * gateway's own wait is left to run out: a late reply then still finds it and is dropped as
   * an answer nobody needs, not taken for a forged one.
   */
  private async send(
    lockId: string,
    action: 'pin.set' | 'pin.window' | 'pin.clear' | 'pin.list',
    options: CommandOptions,
    signal: AbortSignal,
  ): Promise<LockAnswer> {
    const cut = (): LockAnswer => ({ status: this.stopped ? 'stopped' : 'offline' });
    if (this.stopped || signal.aborted) return cut();
    let onAbort = (): void => undefined;
    const aborted = new Promise<LockAnswer>((resolve) => {
      onAbort = () => resolve(cut());
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([this.gateway.command(lockId, action, options), aborted]);
    } finally {
      // A lock's signal lives as long as the lock stays online: no listener may pile up on it.
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Records a new wish for a slot and starts its write: one request per slot at a time, so the
   * stored row and the write under way always belong to the same (last) request.
   */
  private request(
    lockId: string,
    slot: number,
    code: string | null,
    build: (previous: PinSlot | null, now: number) => PinSlot,
    fact: () => AuditFact,
  ): Promise<PinSlot> {
    return this.slotQueues.run(slotKey(lockId, slot), async () => {
      const row = build(await this.repo.get(lockId, slot), this.clock.now());
      // Registered before the row is written, so a reconciliation running now keeps off it.
      const op = this.register(row, code);
      await this.repo.save(row);
      await this.audit.append(fact());
      this.schedule(op, row.nextAttemptAt ?? this.clock.now());
      return row;
    });
  }

  /**
   * Brings one settled slot in line with what the lock listed (`listed`: digest and window, or
   * null for an empty slot). A slot that holds Threshold's code with another window is flagged
   * and its window written again (no code needed).
   */
  private async judgeSlot(
    lock: Device,
    slot: number,
    listed: ListedSlot | null,
    now: number,
  ): Promise<void> {
    const row = await this.repo.get(lock.id, slot);
    if (this.ops.has(slotKey(lock.id, slot)) || row?.sync === 'pending') return;
    const onLock = listed?.digest ?? null;
    const lockWindow = listed?.window ?? null;
    if (row === null) {
      if (onLock === null) return;
      const found: PinSlot = {
        lockDeviceId: lock.id,
        slot,
        principalId: null,
        name: null,
        codeDigest: null,
        desired: 'clear',
        sync: 'unknown-on-lock',
        attempts: 0,
        nextAttemptAt: null,
        lastError: null,
        lockDigest: onLock,
        checkedAt: now,
        updatedAt: now,
        window: null,
        lockWindow,
        windowOnly: false,
      };
      await this.repo.save(found);
      await this.flag(found, lock);
      return;
    }
    const next = judge(row, onLock, lockWindow);
    const updated: PinSlot = {
      ...row,
      sync: next,
      lockDigest: onLock,
      lockWindow,
      checkedAt: now,
      updatedAt: this.clock.now(),
    };
    await this.repo.save(updated);
    if (next !== row.sync) await this.flag(updated, lock);
    if (row.desired === 'set' && onLock === row.codeDigest && next === 'out-of-sync')
      await this.startWindowWrite(updated);
  }

  /**
   * Refreshes the windows of one lock's set slots (see {@link refreshWindows}): those in `read`
   * when its slots were just read with other locks', else those read now. Each slot is read
   * again before it is refreshed; a slot added since `read` gets its window from its own write.
   */
  private async refreshLock(lock: Device, read?: readonly PinSlot[]): Promise<void> {
    if (this.stopped) return;
    const rows = read ?? (await this.repo.listForLock(lock.id));
    for (const row of rows) {
      if (row.desired !== 'set' || row.principalId === null) continue;
      await this.slotQueues.run(slotKey(lock.id, row.slot), () => this.refreshSlot(lock, row.slot));
    }
    // A lock without slots has no window to end: no need to read them again.
    await this.armWindowEnd(lock.id, rows.length === 0 ? rows : undefined);
  }

  /** Refreshes one slot's window; the caller holds the slot's queue. */
  private async refreshSlot(lock: Device, slot: number): Promise<void> {
    const row = await this.repo.get(lock.id, slot);
    if (this.stopped || row === null || row.desired !== 'set' || row.principalId === null) return;
    const wanted = await this.wantedWindow(lock, row.principalId);
    const now = this.clock.now();
    const op = this.ops.get(slotKey(lock.id, slot));
    if (op !== undefined) {
      // Its next attempt recomputes the window; a change that matters moves it to now. (An
      // attempt in flight is checked again once it is confirmed.)
      if (
        op.cancelTimer !== null &&
        needsRewrite(op.intent.window, wanted.window, now, wanted.leaseMs)
      ) {
        op.cancelTimer();
        op.cancelTimer = null;
        this.schedule(op, Math.max(now, op.notBefore));
      }
      return;
    }
    const ours = row.lockDigest !== null && row.lockDigest === row.codeDigest;
    // What the lock holds: the confirmed window, else the one it last listed with our code.
    const onLock = row.sync === 'confirmed' ? row.window : row.lockWindow;
    if (ours && needsRewrite(onLock, wanted.window, now, wanted.leaseMs)) {
      await this.startWindowWrite({ ...row, window: wanted.window });
    } else if (!ours && !sameWindow(row.window, wanted.window)) {
      // No code of ours on the lock to narrow: the wish is kept for the next write of a code.
      await this.repo.save({ ...row, window: wanted.window, updatedAt: now });
    }
  }

  /**
   * Starts a write of `row`'s window alone (the lock holds Threshold's code already); the caller
   * holds the slot's queue. Not audited until it is confirmed (renewals are frequent).
   */
  private async startWindowWrite(row: PinSlot): Promise<void> {
    if (this.stopped) return;
    const now = this.clock.now();
    const intent: PinSlot = {
      ...row,
      sync: 'pending',
      windowOnly: true,
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      updatedAt: now,
    };
    const op = this.register(intent, null);
    await this.repo.save(intent);
    this.schedule(op, now);
  }

  /**
   * Arms the timer that refreshes a lock's windows when the first of them ends, so the next
   * window of a slot is written as soon as the current one is over. `read`: the lock's slots,
   * when they were just read.
   */
  private async armWindowEnd(lockId: string, read?: readonly PinSlot[]): Promise<void> {
    const rows = read ?? (await this.repo.listForLock(lockId));
    const now = this.clock.now();
    let next: number | null = null;
    for (const row of rows) {
      const end = row.desired === 'set' ? (row.window?.untilMs ?? null) : null;
      if (end !== null && end > now && (next === null || end < next)) next = end;
    }
    const armed = this.windowEndTimers.get(lockId);
    if (this.stopped || armed?.at === next) return;
    armed?.cancel();
    this.windowEndTimers.delete(lockId);
    if (next === null) return;
    const cancel = this.clock.schedule(next, () => {
      this.windowEndTimers.delete(lockId);
      this.track(
        this.lock(lockId).then(async (lock) => {
          if (lock.ok) await this.refreshLock(lock.value);
        }),
      );
    });
    this.windowEndTimers.set(lockId, { at: next, cancel });
  }

  /** The window a principal's code should have on `lock` now, and their lease. */
  private async wantedWindow(lock: Device, principalId: string): Promise<WantedWindow> {
    const leases = {
      guestLeaseMs: this.timing.guestLeaseMs,
      memberLeaseMs: this.timing.memberLeaseMs,
    };
    const principal = await this.store.principals.get(principalId);
    // A person of another home, or one removed, has no business at this keypad.
    const role =
      principal !== null &&
      principal.homeId === lock.homeId &&
      !(await this.store.principals.isDisabled(principalId))
        ? principal.role
        : null;
    let grants: Awaited<ReturnType<Store['guestGrants']['listForPrincipal']>> = [];
    if (role === 'guest') {
      const doors = new Set(
        (await this.store.homes.listDoors(lock.homeId))
          .filter((d) => d.lockDeviceId === lock.id)
          .map((d) => d.id),
      );
      grants = (await this.store.guestGrants.listForPrincipal(principalId)).filter(
        (g) => g.homeId === lock.homeId && doors.has(g.doorId),
      );
    }
    const timeZone = (await this.store.homes.getHome(lock.homeId))?.timeZone ?? 'UTC';
    return {
      window: desiredPinWindow({ role, grants }, timeZone, this.clock.now(), leases),
      leaseMs: leaseFor(role, leases),
    };
  }

  /**
   * Audits a keypad event's fact: true when this call recorded it, false when another replica
   * had (with {@link PinSyncOptions.auditEventsOnce}; then it has told the owner, too).
   */
  private async auditKeypad(
    device: RegisteredDevice,
    event: DeviceEventMessage,
    fact: AuditFact,
  ): Promise<boolean> {
    if (!this.auditEventsOnce) {
      await this.audit.append(fact);
      return true;
    }
    return (
      (await this.audit.appendOnce(fact, `keypad:${deviceEventKey(device.id, event)}`)) !== null
    );
  }

  private async keypadEvent(device: RegisteredDevice, event: DeviceEventMessage): Promise<void> {
    const subject = `device:${device.id}`;
    const actor: AuditActor = { type: 'device', id: device.id };
    const facts = { at: event.at, seq: event.seq };
    switch (event.name) {
      case 'keypad.unlocked': {
        const slot = event.slot ?? null;
        const row = slot === null ? null : await this.repo.get(device.id, slot);
        // Only a confirmed code is known to be the one Threshold wrote for this person. While a
        // write is under way the slot may still hold the code it replaces: nobody is named, but
        // nothing is foreign either. Anything else opened with a code Threshold did not set.
        const ours = row?.desired === 'set' && row.sync === 'confirmed';
        const uncertain = row?.desired === 'set' && row.sync === 'pending';
        const first = await this.auditKeypad(device, event, {
          kind: 'keypad.unlocked',
          actor,
          subject,
          data: {
            slot,
            principalId: ours ? row.principalId : null,
            slotState: row?.sync ?? null,
            ...facts,
          },
          deviceMac: event.mac,
        });
        // Reported even when another replica audited it first: that one may have died before
        // recording the entry, and the entry is recorded once whoever reports it.
        await this.reportEntry({
          homeId: device.homeId,
          lockId: device.id,
          slot,
          principalId: ours ? row.principalId : null,
          deviceAt: event.at,
          seq: event.seq,
        });
        if (first && !ours && !uncertain) {
          const which = slot === null ? 'an unnamed slot' : `slot ${slot}`;
          this.notify(
            device.homeId,
            `${await this.lockName(device.id)} was opened with a keypad code Threshold did not set (${which}).`,
          );
        }
        return;
      }
      case 'keypad.wrong-code': {
        if (event.slot === undefined) {
          await this.auditKeypad(device, event, {
            kind: 'keypad.wrong-code',
            actor,
            subject,
            data: { attempt: event.attempt ?? null, ...facts },
            deviceMac: event.mac,
          });
          return;
        }
        // A slot's own code, but outside the window the lock holds for it.
        const slot = event.slot;
        const row = await this.repo.get(device.id, slot);
        const held = row?.desired === 'set' ? row : null;
        const first = await this.auditKeypad(device, event, {
          kind: 'keypad.outside-window',
          actor,
          subject,
          data: {
            slot,
            principalId: held?.principalId ?? null,
            attempt: event.attempt ?? null,
            ...facts,
          },
          deviceMac: event.mac,
        });
        if (!first) return;
        const lockName = await this.lockName(device.id);
        this.notify(
          device.homeId,
          held?.name
            ? `${held.name}'s code was entered outside their hours on ${lockName}.`
            : `A code was entered outside its hours on ${lockName}.`,
        );
        return;
      }
      case 'keypad.lockout': {
        const untilMs = event.untilMs ?? null;
        const first = await this.auditKeypad(device, event, {
          kind: 'keypad.lockout',
          actor,
          subject,
          data: { untilMs, ...facts },
          deviceMac: event.mac,
        });
        if (!first) return;
        // Both times are the lock's own clock, so the length holds even if its clock is off.
        const seconds = untilMs === null ? null : Math.round((untilMs - event.at) / 1000);
        this.notify(
          device.homeId,
          `Too many wrong codes on the keypad of ${await this.lockName(device.id)}: ` +
            (seconds === null ? 'it is locked out.' : `it takes no codes for ${seconds} s.`),
        );
        return;
      }
      case 'lock.auto-relocked':
      case 'lock.jammed':
      case 'lock.manual':
      case 'door.opened':
      case 'door.closed':
      case 'command.rejected':
      case 'hub.relocked':
      case 'hub.relock-failed':
      case 'hub.dead-man':
      case 'hub.cut-off':
      case 'hub.observed':
        return;
    }
  }

  /** Makes `intent` the write under way for its slot, replacing (and silencing) any other. */
  private register(intent: PinSlot, code: string | null): SlotOperation {
    const key = slotKey(intent.lockDeviceId, intent.slot);
    this.ops.get(key)?.cancelTimer?.();
    const op: SlotOperation = {
      token: this.nextToken++,
      intent,
      code,
      attempts: intent.attempts,
      seen: {
        lockDigest: intent.lockDigest,
        lockWindow: intent.lockWindow,
        checkedAt: intent.checkedAt,
      },
      cancelTimer: null,
      notBefore: 0,
    };
    if (!this.stopped) this.ops.set(key, op);
    return op;
  }

  private schedule(op: SlotOperation, atMs: number): void {
    if (!this.current(op)) return;
    op.cancelTimer = this.clock.schedule(atMs, () => {
      op.cancelTimer = null;
      this.track(this.attempt(op));
    });
  }

  private current(op: SlotOperation): boolean {
    const key = slotKey(op.intent.lockDeviceId, op.intent.slot);
    return !this.stopped && this.ops.get(key)?.token === op.token;
  }

  /**
   * One attempt: the write (with the window the holder should have now), then the read-back,
   * then confirmed, another try, or failed. A write of the window alone is not given up (it
   * needs no code, and the lock must get it) unless the lock refuses it for good or no longer
   * holds the code.
   */
  private async attempt(op: SlotOperation): Promise<void> {
    const { lockDeviceId: lockId, slot, desired } = op.intent;
    // Taken now, not when the lock's queue gets to it: if the lock goes offline while this
    // attempt waits its turn, it ends without sending anything.
    const signal = this.presenceOf(lockId);
    const startedAt = this.clock.now();
    const outcome = await this.lockQueues.run(lockId, async () => {
      if (!this.current(op)) return null;
      await this.updateWindow(op);
      if (!this.current(op)) return null;
      const write = await this.write(op, signal);
      if (!this.current(op) || write.permanent) return { write, listing: null };
      // Even a write whose reply was lost may have landed: the read-back decides. (When the
      // lock has gone offline meanwhile, the listing ends at once, unsent.)
      const listing = write.sent ? await this.list(lockId, signal) : null;
      return { write, listing };
    });
    // From here to each save there is no await: a newer request cannot slip in between.
    if (outcome === null || !this.current(op)) return;
    const now = this.clock.now();
    op.attempts += 1;
    // Cut short by the lock going offline, it still counts; but the next waits for when this
    // one's command would have timed out, else a lock that flaps would use up a code's attempts
    // one per flap, where a silent one uses one per timeout.
    op.notBefore = signal.aborted ? startedAt + this.timing.commandTimeoutMs : 0;
    const { write, listing } = outcome;
    if (listing?.ok === true) {
      const listed = listing.value.slots.get(slot);
      op.seen = {
        lockDigest: listed?.digest ?? null,
        lockWindow: listed?.window ?? null,
        checkedAt: now,
      };
    }
    const onLock = op.seen.lockDigest;
    const codeThere = onLock === op.intent.codeDigest;
    const matches =
      desired === 'set'
        ? codeThere && sameWindow(op.seen.lockWindow, op.intent.window)
        : onLock === null;
    const windowOnly = desired === 'set' && op.code === null;
    if (listing?.ok === true && matches) {
      await this.saveOp(op, { sync: 'confirmed', nextAttemptAt: null, lastError: null });
      const window = op.intent.window;
      await this.audit.append(
        windowOnly
          ? {
              kind: 'pin.window',
              actor: SYSTEM,
              subject: `device:${lockId}`,
              data: {
                slot,
                principalId: op.intent.principalId,
                fromMs: window?.fromMs ?? null,
                untilMs: window?.untilMs ?? null,
                attempts: op.attempts,
              },
            }
          : {
              kind: 'pin.confirmed',
              actor: SYSTEM,
              subject: `device:${lockId}`,
              data: { slot, desired, attempts: op.attempts },
            },
      );
      this.finish(op);
      if (desired === 'set') this.recheck(lockId, slot);
      return;
    }
    if (windowOnly && listing?.ok === true && !codeThere) {
      // The code this window was for is gone from the lock: nothing to narrow, the owner acts.
      await this.saveOp(op, {
        sync: 'out-of-sync',
        nextAttemptAt: null,
        lastError: 'the lock no longer holds this code',
      });
      await this.audit.append({
        kind: 'pin.out-of-sync',
        actor: SYSTEM,
        subject: `device:${lockId}`,
        data: { slot, desired, principalId: op.intent.principalId },
      });
      this.finish(op);
      return;
    }
    const error = redact(
      write.error ??
        (listing === null || listing.ok
          ? 'the lock acknowledged the write, but its read-back does not show it'
          : `no read-back: ${listing.error}`),
      op.code,
    );
    // A write that needs no code (a clear, a window) goes on until it lands: a revocation must
    // reach the lock once it is back, and nothing secret is held meanwhile.
    const codeless = op.code === null;
    if (write.permanent || (!codeless && op.attempts >= this.timing.maxAttempts)) {
      await this.saveOp(op, { sync: 'failed', nextAttemptAt: null, lastError: error });
      this.logger?.warn(
        { lockId, slot, attempts: op.attempts, error },
        'PIN write not confirmed; giving up',
      );
      await this.audit.append({
        kind: 'pin.failed',
        actor: SYSTEM,
        subject: `device:${lockId}`,
        data: {
          slot,
          desired,
          attempts: op.attempts,
          error,
          ...(windowOnly ? { windowOnly } : {}),
        },
      });
      this.finish(op);
      return;
    }
    const delay = Math.min(
      this.timing.retryBaseMs * 2 ** (op.attempts - 1),
      this.timing.retryMaxMs,
    );
    const due = Math.max(now, op.notBefore) + delay;
    await this.saveOp(op, { sync: 'pending', nextAttemptAt: due, lastError: error });
    // Said once past the last attempt a code write would get, not every minute after.
    if (op.attempts < this.timing.maxAttempts)
      this.logger?.info(
        { lockId, slot, attempts: op.attempts, retryInMs: delay, error },
        'PIN write not confirmed yet; retrying',
      );
    else if (op.attempts === this.timing.maxAttempts)
      this.logger?.warn(
        { lockId, slot, attempts: op.attempts, retryInMs: delay, error },
        'PIN write needs no code and is not given up; retrying until the lock takes it',
      );
    this.schedule(op, due);
  }

  /** Writes the slot's row as this operation sees it; the newest request's op only. */
  private async saveOp(
    op: SlotOperation,
    patch: Pick<PinSlot, 'sync' | 'nextAttemptAt' | 'lastError'>,
  ): Promise<void> {
    if (!this.current(op)) return;
    await this.repo.save({
      ...op.intent,
      ...patch,
      attempts: op.attempts,
      lockDigest: op.seen.lockDigest,
      lockWindow: op.seen.lockWindow,
      checkedAt: op.seen.checkedAt,
      updatedAt: this.clock.now(),
    });
  }

  /**
   * Before a write of a code or a window: the window its holder should have now (the wish may
   * be minutes old when a retry goes out, and a renewal must reach as far as it can).
   */
  private async updateWindow(op: SlotOperation): Promise<void> {
    const { desired, principalId, lockDeviceId } = op.intent;
    if (desired !== 'set' || principalId === null) return;
    const lock = await this.lock(lockDeviceId);
    if (!lock.ok) return;
    const { window } = await this.wantedWindow(lock.value, principalId);
    if (this.current(op)) op.intent = { ...op.intent, window };
  }

  /** After a confirmed write: the slot's window is looked at again (a change may have come). */
  private recheck(lockId: string, slot: number): void {
    this.track(
      this.lock(lockId).then(async (lock) => {
        if (!lock.ok) return;
        await this.slotQueues.run(slotKey(lockId, slot), () => this.refreshSlot(lock.value, slot));
        await this.armWindowEnd(lockId);
      }),
    );
  }

  /** Hands an opening to `onKeypadEntry`; its failure is logged, never passed on. */
  private async reportEntry(entry: KeypadEntryReport): Promise<void> {
    if (this.onKeypadEntry === undefined) return;
    try {
      await this.onKeypadEntry(entry);
    } catch (err) {
      this.logger?.warn(
        { lockId: entry.lockId, err: err instanceof Error ? err.message : String(err) },
        'keypad entry listener failed',
      );
    }
  }

  /**
   * The write of an attempt: `pin.set` with the code and its window, `pin.window` with the
   * window alone, or `pin.clear`.
   */
  private async write(
    op: SlotOperation,
    signal: AbortSignal,
  ): Promise<{ sent: boolean; permanent: boolean; error: string | null }> {
    const { lockDeviceId: lockId, slot, name, desired, window } = op.intent;
    const timeoutMs = this.timing.commandTimeoutMs;
    let outcome: LockAnswer;
    if (desired === 'clear') {
      outcome = await this.send(lockId, 'pin.clear', { pin: { slot }, timeoutMs }, signal);
    } else if (op.code === null) {
      outcome = await this.send(
        lockId,
        'pin.window',
        { pin: { slot, ...pinWindowFields(window) }, timeoutMs },
        signal,
      );
    } else {
      outcome = await this.send(
        lockId,
        'pin.set',
        {
          pin: {
            slot,
            code: op.code,
            ...(name === null ? {} : { name }),
            ...pinWindowFields(window),
          },
          timeoutMs,
        },
        signal,
      );
    }
    switch (outcome.status) {
      case 'ok':
        return { sent: true, permanent: false, error: null };
      case 'not-sent':
        return { sent: false, permanent: false, error: 'the write could not be sent' };
      case 'timeout':
        // Sent, so it may have landed: the read-back still runs.
        return { sent: true, permanent: false, error: 'the lock did not answer the write' };
      case 'offline':
        // It may have landed before the lock went: the read-back is asked for, and ends at
        // once (the next attempt, or the reconcile when the lock is back, reads the slot).
        return {
          sent: true,
          permanent: false,
          error: 'the lock went offline before it answered the write',
        };
      case 'stopped':
        return { sent: false, permanent: false, error: 'PIN sync stopped' };
      case 'error': {
        const reply = outcome.reply;
        const err =
          reply.status === 'error' ? reply.error : { code: 'command.failed', message: '' };
        const permanent = PERMANENT_ERRORS.has(err.code);
        return {
          sent: !permanent,
          permanent,
          error: `the lock refused the write: ${err.code}${err.message ? ` (${err.message})` : ''}`,
        };
      }
    }
  }

  /** Every set slot of the lock, page by page; its waits end when `signal` is aborted. */
  private async list(
    lockId: string,
    signal: AbortSignal,
  ): Promise<{ ok: true; value: LockListing } | { ok: false; error: string }> {
    const slots = new Map<number, ListedSlot>();
    let from = 1;
    let capacity = 0;
    // A lock answers at most PIN_LIST_PAGE_SIZE slots a page; bound the pages so a lock that
    // keeps answering cannot keep us here.
    for (let page = 0; page <= Math.ceil(MAX_PIN_SLOT / PIN_LIST_PAGE_SIZE); page++) {
      const outcome = await this.send(
        lockId,
        'pin.list',
        { pin: { slot: from }, timeoutMs: this.timing.commandTimeoutMs },
        signal,
      );
      if (outcome.status === 'offline')
        return { ok: false, error: 'the lock went offline before it listed its slots' };
      if (!('reply' in outcome))
        return { ok: false, error: `the lock did not list its slots (${outcome.status})` };
      const reply = outcome.reply;
      if (reply.status === 'error')
        return { ok: false, error: `the lock refused to list its slots: ${reply.error.code}` };
      const data = decodePinList(reply.data);
      if (data === null) return { ok: false, error: 'the lock listed its slots wrongly' };
      for (const entry of data.slots) {
        if (entry.slot < from || entry.slot > data.capacity)
          return { ok: false, error: 'the lock listed a slot out of range' };
        // decodePinList has checked the window; a failed reading cannot get here.
        const read = readPinWindow(entry);
        slots.set(entry.slot, { digest: entry.digest, window: read.ok ? read.window : null });
      }
      capacity = data.capacity;
      if (data.next === null) {
        this.capacities.set(lockId, capacity);
        return { ok: true, value: { capacity, slots } };
      }
      const last = data.slots.at(-1)?.slot ?? from - 1;
      if (data.next <= last || data.next <= from)
        return { ok: false, error: 'the lock listed its slots wrongly' };
      from = data.next;
    }
    return { ok: false, error: 'the lock listed too many pages' };
  }

  /**
   * A write settled: the code goes with the operation, and waiters are told. (If a newer request
   * replaced it meanwhile, the waiters wait for that one.)
   */
  private finish(op: SlotOperation): void {
    const key = slotKey(op.intent.lockDeviceId, op.intent.slot);
    if (this.ops.get(key)?.token !== op.token) return;
    this.ops.delete(key);
    const waiters = this.settleWaiters.get(key) ?? [];
    this.settleWaiters.delete(key);
    for (const w of waiters) w();
  }

  /** Audits a slot whose state reconciliation changed; tells the owner of a stranger's code. */
  private async flag(row: PinSlot, lock: Device): Promise<void> {
    const kind =
      row.sync === 'unknown-on-lock'
        ? 'pin.unknown-on-lock'
        : row.sync === 'out-of-sync'
          ? 'pin.out-of-sync'
          : row.sync === 'confirmed'
            ? 'pin.confirmed'
            : null;
    if (kind === null) return;
    await this.audit.append({
      kind,
      actor: SYSTEM,
      subject: `device:${row.lockDeviceId}`,
      data: { slot: row.slot, desired: row.desired, principalId: row.principalId },
    });
    if (row.sync === 'unknown-on-lock') {
      this.notify(
        lock.homeId,
        `${lock.name} holds a keypad code in slot ${row.slot} that Threshold did not set.`,
      );
    }
  }

  private async lock(lockId: string): Promise<Result<Device>> {
    const device = await this.store.homes.getDevice(lockId);
    if (device === null || device.kind !== 'lock')
      return refuse(problem('device.not-found', 'No such lock.'));
    return ok(device);
  }

  private async lockName(lockId: string): Promise<string> {
    return (await this.store.homes.getDevice(lockId))?.name ?? lockId;
  }

  private slotProblem(lockId: string, slot: number): string | null {
    const capacity = this.capacities.get(lockId) ?? MAX_PIN_SLOT;
    return Number.isInteger(slot) && slot >= 1 && slot <= capacity
      ? null
      : `This lock has slots 1 to ${capacity}.`;
  }

  private digest(lockId: string, slot: number, code: string): string {
    return pinDigest(deriveDeviceKey(this.masterKey, lockId), slot, code);
  }

  private scheduleReconcile(): void {
    const every = this.timing.reconcileEveryMs;
    if (every === null || this.stopped) return;
    this.cancelReconcile = this.clock.schedule(this.clock.now() + every, () => {
      this.cancelReconcile = null;
      this.track(this.reconcileAll().finally(() => this.scheduleReconcile()));
    });
  }

  /** Refreshes every lock's windows every quarter of the shorter lease. */
  private scheduleRefresh(): void {
    if (this.stopped) return;
    const every = Math.min(this.timing.guestLeaseMs, this.timing.memberLeaseMs) / 4;
    this.cancelRefresh = this.clock.schedule(this.clock.now() + every, () => {
      this.cancelRefresh = null;
      this.track(this.refreshWindows().finally(() => this.scheduleRefresh()));
    });
  }

  private async reconcileAll(): Promise<void> {
    for (const device of await this.store.homes.listDevices()) {
      if (device.kind === 'lock' && !this.stopped) await this.reconcile(device.id);
    }
  }

  /** Keeps background work in view for {@link stop}; a failure is logged, never thrown. */
  /** Keeps `work` until it settles (see {@link stop}); a failure is logged. */
  private track(work: Promise<unknown>): void {
    void this.tracked(work);
  }

  /** {@link track}, resolving once `work` settles; never rejects. */
  private tracked(work: Promise<unknown>): Promise<void> {
    const p = work.then(
      () => undefined,
      (err: unknown) => {
        this.logger?.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'PIN sync step failed',
        );
      },
    );
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
    return p;
  }
}

/**
 * The state a settled slot moves to after a listing showed digest `onLock` and window
 * `lockWindow` for it.
 */
function judge(row: PinSlot, onLock: string | null, lockWindow: PinWindow | null): PinSyncState {
  if (row.desired === 'clear') return onLock === null ? 'confirmed' : 'unknown-on-lock';
  // Threshold's code with another window (changed at the lock, or a window write given up).
  if (onLock === row.codeDigest)
    return sameWindow(lockWindow, row.window) ? 'confirmed' : 'out-of-sync';
  // A write Threshold gave up on stays failed until someone acts; a confirmed code that
  // changed or vanished on the lock is out of sync.
  return row.sync === 'failed' ? 'failed' : 'out-of-sync';
}

function slotKey(lockId: string, slot: number): string {
  return `${lockId}\u0000${slot}`;
}

/** Error text as stored and audited: clipped, and never with the code in it. */
function redact(text: string, code: string | null): string {
  return (code === null ? text : text.split(code).join('****')).slice(0, MAX_ERROR_TEXT);
}

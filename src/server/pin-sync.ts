/**
 * Keypad PINs: the server writes codes to locks, reads them back to be sure, and keeps each
 * slot's sync state (see {@link PinSyncState}).
 *
 * - `assign` records what Threshold wants in a slot (the code's keyed digest only, never the
 *   code), sends `pin.set`, then reads the slots back with `pin.list`. The slot is `confirmed`
 *   only when the lock lists the slot with the digest of the code written: a lock that
 *   acknowledged the write but did not keep it is caught here. Otherwise the pair is tried
 *   again after 2 s, 4 s, 8 s … (capped), and after `maxAttempts` the slot is `failed`.
 * - The code lives in this process's memory only while its write is being tried, then it is
 *   forgotten. A restart in between cannot resume the write: the slot is marked `failed` and
 *   the owner assigns a new code. (Clears need no code and are resumed.)
 * - `reconcile` (when a lock comes online, and every `reconcileEveryMs`) lists the lock's slots
 *   and flags what differs: a slot the lock holds that Threshold did not write is
 *   `unknown-on-lock`, a confirmed slot that changed or vanished is `out-of-sync`. Nothing found
 *   this way is changed on the lock without the owner.
 * - Keypad events from locks are audited (`keypad.unlocked` with the slot and whose it is,
 *   `keypad.wrong-code`, `keypad.lockout`); a lockout, and an opening with a code Threshold did
 *   not write, are told to the owner through `notify`.
 *
 * PINs never appear in the audit log, the store, the logs or any event: only slot numbers.
 * Commands to one lock are sent one pair at a time, so a read-back always follows its write.
 */
import type { AuditActor, AuditFact } from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import { ok, problem, refuse, type Result } from '../core/errors.ts';
import type { Device } from '../core/model.ts';
import { deriveDeviceKey } from '../protocol/device-auth.ts';
import {
  decodePinList,
  MAX_PIN_NAME_LENGTH,
  MAX_PIN_SLOT,
  PIN_CODE_PATTERN,
  PIN_LIST_PAGE_SIZE,
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
import type {
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
}

/** Defaults of {@link PinSyncTiming}. */
export const DEFAULT_PIN_SYNC_TIMING: PinSyncTiming = {
  retryBaseMs: 2_000,
  retryMaxMs: 60_000,
  maxAttempts: 6,
  commandTimeoutMs: 10_000,
  reconcileEveryMs: 60 * 60_000,
};

/** What {@link PinSync} needs of the device gateway. */
export type PinGateway = Pick<DeviceGateway, 'command'>;

/** Settings of a {@link PinSync}. */
export interface PinSyncOptions {
  readonly gateway: PinGateway;
  /** Locks and principals are looked up here; slots are kept in `pinSlots` or on `db`. */
  readonly store: Pick<Store, 'db' | 'homes' | 'principals'>;
  /** The slot repository; default one on `store.db`. */
  readonly pinSlots?: PinSlotRepository;
  readonly audit: Pick<AuditLog, 'append'>;
  readonly clock: Clock;
  /** The server's master key: device keys, and from them PIN digests, derive from it. */
  readonly masterKey: Uint8Array;
  /** Tells a home's owner something that needs their attention (a keypad lockout). */
  readonly notify: (homeId: string, message: string) => void;
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

/** What the lock listed: slot → digest, and how many slots it has. */
interface LockListing {
  readonly capacity: number;
  readonly digests: ReadonlyMap<number, string>;
}

/**
 * A write being tried for one slot. It carries the slot as requested (`intent`), and `code`,
 * the PIN itself, held only as long as this object lives.
 */
interface SlotOperation {
  readonly token: number;
  readonly intent: PinSlot;
  readonly code: string | null;
  attempts: number;
  /** What the lock last listed for the slot, and when. */
  seen: { readonly lockDigest: string | null; readonly checkedAt: number | null };
  cancelTimer: (() => void) | null;
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

/** See the module comment. */
export class PinSync implements DeviceGatewayListener {
  private readonly gateway: PinGateway;
  private readonly store: PinSyncOptions['store'];
  private readonly repo: PinSlotRepository;
  private readonly audit: Pick<AuditLog, 'append'>;
  private readonly clock: Clock;
  private readonly masterKey: Uint8Array;
  private readonly notify: PinSyncOptions['notify'];
  private readonly logger: PinSyncOptions['logger'];
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
  private nextToken = 1;
  private started = false;
  private stopped = false;
  private cancelReconcile: (() => void) | null = null;

  constructor(options: PinSyncOptions) {
    this.gateway = options.gateway;
    this.store = options.store;
    this.repo = options.pinSlots ?? new PinSlotRepository(options.store.db);
    this.audit = options.audit;
    this.clock = options.clock;
    this.masterKey = options.masterKey;
    this.notify = options.notify;
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
  }

  /**
   * Picks up after a restart: pending clears are tried again; pending writes of a code cannot
   * be (the code was only in memory) and become `failed`. Starts periodic reconciliation.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const row of await this.repo.listBySyncState('pending')) {
      if (row.desired === 'clear') {
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
  }

  /**
   * Stops timers; writes in flight are left `pending` (a later {@link start} settles them).
   * Resolves once work in flight has ended.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelReconcile?.();
    this.cancelReconcile = null;
    for (const op of this.ops.values()) op.cancelTimer?.();
    this.ops.clear();
    for (const waiters of this.settleWaiters.values()) for (const w of waiters) w();
    this.settleWaiters.clear();
    await Promise.allSettled([...this.running]);
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
    const lock = await this.lock(lockId);
    if (!lock.ok) return lock;
    const listing = await this.lockQueues.run(lockId, () => this.list(lockId));
    if (!listing.ok) return refuse(problem('lock.offline', listing.error));
    const now = this.clock.now();
    const recorded = (await this.repo.listForLock(lockId)).map((r) => r.slot);
    const slots = new Set([...recorded, ...listing.value.digests.keys()]);
    for (const slot of [...slots].sort((a, b) => a - b)) {
      const onLock = listing.value.digests.get(slot) ?? null;
      await this.slotQueues.run(slotKey(lockId, slot), () =>
        this.judgeSlot(lock.value, slot, onLock, now),
      );
    }
    return ok(await this.repo.listForLock(lockId));
  }

  /**
   * Gateway listener: keypad events are audited, in the order the lock sent them; a lockout is
   * told to the owner.
   */
  onEvent(device: RegisteredDevice, event: DeviceEventMessage): void {
    if (this.stopped || device.kind !== 'lock' || !event.name.startsWith('keypad.')) return;
    this.track(this.eventQueues.run(device.id, () => this.keypadEvent(device, event)));
  }

  /** Gateway listener: a lock that comes (back) online is reconciled, and waiting writes go now. */
  onAvailability(device: RegisteredDevice, online: boolean): void {
    if (!online || device.kind !== 'lock' || !this.started || this.stopped) return;
    for (const op of this.ops.values()) {
      if (op.intent.lockDeviceId === device.id && op.cancelTimer !== null) {
        op.cancelTimer();
        this.schedule(op, this.clock.now());
      }
    }
    this.track(this.reconcile(device.id));
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

  /** Brings one settled slot in line with what the lock listed (`onLock`: digest or null). */
  private async judgeSlot(
    lock: Device,
    slot: number,
    onLock: string | null,
    now: number,
  ): Promise<void> {
    const row = await this.repo.get(lock.id, slot);
    if (this.ops.has(slotKey(lock.id, slot)) || row?.sync === 'pending') return;
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
      };
      await this.repo.save(found);
      await this.flag(found, lock);
      return;
    }
    const next = judge(row, onLock);
    const updated: PinSlot = {
      ...row,
      sync: next,
      lockDigest: onLock,
      checkedAt: now,
      updatedAt: this.clock.now(),
    };
    await this.repo.save(updated);
    if (next !== row.sync) await this.flag(updated, lock);
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
        await this.audit.append({
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
        if (!ours && !uncertain) {
          const which = slot === null ? 'an unnamed slot' : `slot ${slot}`;
          this.notify(
            device.homeId,
            `${await this.lockName(device.id)} was opened with a keypad code Threshold did not set (${which}).`,
          );
        }
        return;
      }
      case 'keypad.wrong-code':
        await this.audit.append({
          kind: 'keypad.wrong-code',
          actor,
          subject,
          data: { attempt: event.attempt ?? null, ...facts },
          deviceMac: event.mac,
        });
        return;
      case 'keypad.lockout': {
        const untilMs = event.untilMs ?? null;
        await this.audit.append({
          kind: 'keypad.lockout',
          actor,
          subject,
          data: { untilMs, ...facts },
          deviceMac: event.mac,
        });
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
      seen: { lockDigest: intent.lockDigest, checkedAt: intent.checkedAt },
      cancelTimer: null,
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

  /** One attempt: the write, then the read-back, then confirmed, another try, or failed. */
  private async attempt(op: SlotOperation): Promise<void> {
    const { lockDeviceId: lockId, slot, desired } = op.intent;
    const outcome = await this.lockQueues.run(lockId, async () => {
      if (!this.current(op)) return null;
      const write = await this.write(op);
      if (!this.current(op) || write.permanent) return { write, listing: null };
      // Even a write whose reply was lost may have landed: the read-back decides.
      const listing = write.sent ? await this.list(lockId) : null;
      return { write, listing };
    });
    // From here to each save there is no await: a newer request cannot slip in between.
    if (outcome === null || !this.current(op)) return;
    const now = this.clock.now();
    op.attempts += 1;
    const { write, listing } = outcome;
    if (listing?.ok === true) {
      op.seen = { lockDigest: listing.value.digests.get(slot) ?? null, checkedAt: now };
    }
    const onLock = op.seen.lockDigest;
    const matches = desired === 'set' ? onLock === op.intent.codeDigest : onLock === null;
    if (listing?.ok === true && matches) {
      await this.saveOp(op, { sync: 'confirmed', nextAttemptAt: null, lastError: null });
      await this.audit.append({
        kind: 'pin.confirmed',
        actor: SYSTEM,
        subject: `device:${lockId}`,
        data: { slot, desired, attempts: op.attempts },
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
    if (write.permanent || op.attempts >= this.timing.maxAttempts) {
      await this.saveOp(op, { sync: 'failed', nextAttemptAt: null, lastError: error });
      this.logger?.warn(
        { lockId, slot, attempts: op.attempts, error },
        'PIN write not confirmed; giving up',
      );
      await this.audit.append({
        kind: 'pin.failed',
        actor: SYSTEM,
        subject: `device:${lockId}`,
        data: { slot, desired, attempts: op.attempts, error },
      });
      this.finish(op);
      return;
    }
    const delay = Math.min(
      this.timing.retryBaseMs * 2 ** (op.attempts - 1),
      this.timing.retryMaxMs,
    );
    await this.saveOp(op, { sync: 'pending', nextAttemptAt: now + delay, lastError: error });
    this.logger?.info(
      { lockId, slot, attempts: op.attempts, retryInMs: delay, error },
      'PIN write not confirmed yet; retrying',
    );
    this.schedule(op, now + delay);
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
      checkedAt: op.seen.checkedAt,
      updatedAt: this.clock.now(),
    });
  }

  /** The write of an attempt: `pin.set` with the code, or `pin.clear`. */
  private async write(
    op: SlotOperation,
  ): Promise<{ sent: boolean; permanent: boolean; error: string | null }> {
    const { lockDeviceId: lockId, slot, name } = op.intent;
    const timeoutMs = this.timing.commandTimeoutMs;
    const outcome: CommandOutcome =
      op.code === null
        ? await this.gateway.command(lockId, 'pin.clear', { pin: { slot }, timeoutMs })
        : await this.gateway.command(lockId, 'pin.set', {
            pin: { slot, code: op.code, ...(name === null ? {} : { name }) },
            timeoutMs,
          });
    switch (outcome.status) {
      case 'ok':
        return { sent: true, permanent: false, error: null };
      case 'not-sent':
        return { sent: false, permanent: false, error: 'the write could not be sent' };
      case 'timeout':
        // Sent, so it may have landed: the read-back still runs.
        return { sent: true, permanent: false, error: 'the lock did not answer the write' };
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

  /** Every set slot of the lock, page by page. */
  private async list(
    lockId: string,
  ): Promise<{ ok: true; value: LockListing } | { ok: false; error: string }> {
    const digests = new Map<number, string>();
    let from = 1;
    let capacity = 0;
    // A lock answers at most PIN_LIST_PAGE_SIZE slots a page; bound the pages so a lock that
    // keeps answering cannot keep us here.
    for (let page = 0; page <= Math.ceil(MAX_PIN_SLOT / PIN_LIST_PAGE_SIZE); page++) {
      const outcome = await this.gateway.command(lockId, 'pin.list', {
        pin: { slot: from },
        timeoutMs: this.timing.commandTimeoutMs,
      });
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
        digests.set(entry.slot, entry.digest);
      }
      capacity = data.capacity;
      if (data.next === null) {
        this.capacities.set(lockId, capacity);
        return { ok: true, value: { capacity, digests } };
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

  private async reconcileAll(): Promise<void> {
    for (const device of await this.store.homes.listDevices()) {
      if (device.kind === 'lock' && !this.stopped) await this.reconcile(device.id);
    }
  }

  /** Keeps background work in view for {@link stop}; a failure is logged, never thrown. */
  private track(work: Promise<unknown>): void {
    const p = work.catch((err: unknown) => {
      this.logger?.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'PIN sync step failed',
      );
    });
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }
}

/** The state a settled slot moves to after a listing showed `onLock` for it. */
function judge(row: PinSlot, onLock: string | null): PinSyncState {
  if (row.desired === 'clear') return onLock === null ? 'confirmed' : 'unknown-on-lock';
  if (onLock === row.codeDigest) return 'confirmed';
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

/**
 * The hub's side of a lock's keypad slots (docs/device-protocol.md, section 11). A driver's
 * {@link PinDriver} writes and clears codes but never reads one back, and knows nothing of
 * validity windows; the control plane expects a lock that lists each slot's *digest* and
 * window, and opens a code only inside its window. So the hub keeps, per slot:
 *
 * - the digest of the code it wrote (`pinDigest` with the lock's device key), computed when it
 *   wrote it: that is what `pin.list` answers, never a code;
 * - the window, which the hub enforces by putting the code on the lock when the window opens
 *   and clearing it from the lock when it closes (the lock itself is told no window);
 * - the code itself, in memory only, for as long as the slot is set, because a window that
 *   opens later needs the code written then.
 *
 * Digests and windows (never codes) are kept in a JSON file when a path is given, so a hub that
 * restarts still lists what it wrote. After a restart the hub no longer has the codes: a slot
 * whose code is on the lock stays listed and its window is still closed on time (clearing needs
 * no code), but a window that opens later cannot put the code back — such a slot is listed as
 * missing, so the control plane sees it out of sync and the owner assigns a new code.
 *
 * A slot the lock holds that the hub did not write (set at the lock by hand) is listed with a
 * digest no code can have, so the control plane flags it as a code it did not write.
 *
 * **Offline, the grant list extends a slot.** The window the control plane writes reaches at
 * most a lease ahead (a guest's an hour), so a guest whose visit is later than that would find
 * their code off the lock while the internet is down. With the lock's grant list
 * ({@link GrantBook}) a slot's code is also on the lock while the list has an entry for that
 * slot *with the digest of the code the hub wrote*, before the list's horizon, and inside one of
 * the entry's windows (or at all times when it lists none). The two are joined: the code is on
 * the lock when either allows it. A list that drops the slot (or names another code) ends the
 * extension at once, the horizon ends it for good, and `pin.clear` clears at once whatever the
 * list says. `pin.list` answers with the command's window only: that is what the control plane
 * wrote and compares.
 *
 * Every change of a slot (a command, a window bound, a new list) runs after the one before it
 * on that slot, so a `pin.clear` cannot be undone by a list that arrived while it ran.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Clock } from '../core/clock.ts';
import { windowAllows, type PinWindow } from '../core/pin-window.ts';
import {
  PIN_LIST_PAGE_SIZE,
  pinWindowFields,
  type PinListDataMessage,
} from '../protocol/device-messages.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
import { CommandFailure, type DeviceLogger } from '../devices/device-connection.ts';
import { DriverError, type PinDriver } from './drivers/driver.ts';
import type { GrantBook } from './grant-book.ts';

/** What the hub keeps about one slot. */
interface SlotRecord {
  readonly digest: string;
  readonly window: PinWindow | null;
  readonly name: string | null;
  /**
   * When the control plane issued the last `pin.set` / `pin.window` for the slot (its clock,
   * the command's `issuedAt`); null when unknown (a slot from an older state file). A grant list
   * issued after it that no longer names the slot's code ends the slot at once (see `allows`).
   */
  readonly writtenAt?: number | null;
}

/** Settings of a {@link PinBook}. */
export interface PinBookOptions {
  readonly pins: PinDriver;
  /** The lock's device key: digests are keyed with it, as the control plane computes them. */
  readonly deviceKey: Uint8Array;
  readonly clock: Clock;
  /** Where digests and windows are kept across restarts; null keeps them in memory only. */
  readonly statePath: string | null;
  readonly logger: DeviceLogger;
  /** A failed write at a window's bound is tried again after this long, ms. Default 30 000. */
  readonly retryMs?: number;
  /** The lock's grant list, which extends slots while offline (module comment); none: null. */
  readonly grants?: GrantBook | null;
}

/** What no code can be: a slot set at the lock by hand gets the digest of this. */
const NOT_A_CODE = 'set-at-the-lock';

/** The reply error for a driver's refusal: a refusal is permanent, the rest is "try later". */
function commandFailure(err: unknown): CommandFailure {
  if (err instanceof CommandFailure) return err;
  if (err instanceof DriverError) {
    if (err.code === 'device.refused') return new CommandFailure('command.invalid', err.message);
    if (err.code === 'device.unsupported')
      return new CommandFailure('command.unsupported', err.message);
    return new CommandFailure('command.failed', err.message);
  }
  return new CommandFailure('command.failed', err instanceof Error ? err.message : String(err));
}

/** See the module comment. */
export class PinBook {
  private readonly o: PinBookOptions;
  private readonly records = new Map<number, SlotRecord>();
  /** Codes held in memory for windows that open later; never written anywhere. */
  private readonly codes = new Map<number, string>();
  private readonly timers = new Map<number, () => void>();
  /** Whether the hub last put the slot's code on the lock (true) or took it off (false). */
  private readonly onLock = new Map<number, boolean>();
  /** The last change under way on each slot; the next one starts after it. */
  private readonly queues = new Map<number, Promise<unknown>>();
  private readonly offList: () => void;
  private stopped = false;

  constructor(options: PinBookOptions) {
    this.o = options;
    if (options.statePath !== null) this.load(options.statePath);
    this.offList =
      options.grants?.onList(() => {
        for (const slot of this.records.keys()) void this.reapply(slot);
      }) ?? (() => {});
  }

  /** Schedules the window bounds of the slots loaded from the state file. */
  start(): void {
    for (const slot of this.records.keys()) this.scheduleBound(slot);
  }

  /** `pin.set`: stores `code` in `slot` with `window` (null: at all times). */
  async set(
    slot: number,
    code: string,
    name: string | null,
    window: PinWindow | null,
    writtenAt: number | null = null,
  ): Promise<void> {
    this.checkSlot(slot);
    for (const [other, held] of this.codes) {
      // The message may name the slot but never the code: replies end up in logs.
      if (other !== slot && held === code)
        throw new CommandFailure('command.invalid', 'the code is already used by another slot');
    }
    const digest = pinDigest(this.o.deviceKey, slot, code);
    return this.serial(slot, async () => {
      const allowed = this.allows(slot, digest, window, this.o.clock.now(), writtenAt);
      try {
        if (allowed) await this.o.pins.set(slot, code);
        else await this.o.pins.clear(slot);
      } catch (err) {
        throw commandFailure(err);
      }
      this.records.set(slot, { digest, window, name, writtenAt });
      this.codes.set(slot, code);
      this.onLock.set(slot, allowed);
      this.save();
      this.scheduleBound(slot);
    });
  }

  /** `pin.window`: a new window for the code `slot` holds. */
  async setWindow(
    slot: number,
    window: PinWindow | null,
    writtenAt: number | null = null,
  ): Promise<void> {
    this.checkSlot(slot);
    return this.serial(slot, async () => {
      const record = this.records.get(slot);
      if (record === undefined)
        throw new CommandFailure('command.invalid', `slot ${slot} is empty`);
      await this.apply(
        slot,
        this.allows(slot, record.digest, window, this.o.clock.now(), writtenAt),
      );
      this.records.set(slot, { ...record, window, writtenAt });
      this.save();
      this.scheduleBound(slot);
    });
  }

  /** `pin.clear`: empties `slot` (already empty is fine), whatever the grant list says. */
  async clear(slot: number): Promise<void> {
    this.checkSlot(slot);
    return this.serial(slot, async () => {
      try {
        await this.o.pins.clear(slot);
      } catch (err) {
        throw commandFailure(err);
      }
      this.forget(slot);
      this.save();
    });
  }

  /** `pin.list`: the set slots from `from` on, as digests with their windows. */
  async list(from: number): Promise<PinListDataMessage> {
    let occupied: number[];
    try {
      occupied = await this.o.pins.occupied();
    } catch (err) {
      throw commandFailure(err);
    }
    const onLock = new Set(occupied);
    const now = this.o.clock.now();
    const slots = [...new Set([...occupied, ...this.records.keys()])]
      .filter((s) => s >= from)
      .sort((a, b) => a - b);
    const entries: PinListDataMessage['slots'][number][] = [];
    for (const slot of slots) {
      const record = this.records.get(slot);
      if (record === undefined) {
        entries.push({ slot, set: true, digest: pinDigest(this.o.deviceKey, slot, NOT_A_CODE) });
        continue;
      }
      // Inside its window the code must be on the lock; if the lock lost it, say so by its
      // absence (the control plane then writes it again or flags it).
      if (windowAllows(record.window, now) && !onLock.has(slot)) continue;
      entries.push({ slot, set: true, digest: record.digest, ...pinWindowFields(record.window) });
    }
    const page = entries.slice(0, PIN_LIST_PAGE_SIZE);
    return {
      capacity: this.o.pins.capacity(),
      slots: page,
      next: entries[PIN_LIST_PAGE_SIZE]?.slot ?? null,
    };
  }

  /** Stops every timer and forgets the codes. */
  stop(): void {
    this.stopped = true;
    this.offList();
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    this.codes.clear();
  }

  private checkSlot(slot: number): void {
    const capacity = this.o.pins.capacity();
    if (!Number.isInteger(slot) || slot < 1 || slot > capacity)
      throw new CommandFailure('command.invalid', `this lock has slots 1 to ${capacity}`);
  }

  /**
   * Runs `change` after the change under way on `slot`, if any (at once otherwise, so a command
   * on an idle slot reaches the driver without a detour).
   */
  private serial<T>(slot: number, change: () => Promise<T>): Promise<T> {
    const before = this.queues.get(slot);
    const run = before === undefined ? change() : before.then(change);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(slot, settled);
    void settled.then(() => {
      if (this.queues.get(slot) === settled) this.queues.delete(slot);
    });
    return run;
  }

  /**
   * Whether a slot whose code has `digest` may be on the lock at `now`: its command `window`
   * allows it, or the grant list does (module comment).
   */
  private allows(
    slot: number,
    digest: string,
    window: PinWindow | null,
    now: number,
    writtenAt: number | null = null,
  ): boolean {
    const list = this.o.grants?.current() ?? null;
    // A list the control plane issued after its last write to this slot, that no longer names
    // the slot's code: the control plane no longer wants it (a revocation that reached the hub
    // before the `pin.clear` did). It ends at once, whatever window was written.
    if (
      list !== null &&
      writtenAt !== null &&
      list.issuedAtMs > writtenAt &&
      this.listed(slot, digest) === null
    )
      return false;
    if (windowAllows(window, now)) return true;
    if (list === null || now >= list.horizonMs) return false;
    const entry = this.listed(slot, digest);
    return (
      entry !== null &&
      (entry.windows === null || entry.windows.some((w) => w.fromMs <= now && now < w.untilMs))
    );
  }

  /** The grant list's entry for `slot` if it names the code with `digest`, else null. */
  private listed(slot: number, digest: string) {
    return this.o.grants?.pins().find((p) => p.slot === slot && p.digest === digest) ?? null;
  }

  /** Puts the code on the lock (`allowed`) or takes it off. */
  private async apply(slot: number, allowed: boolean): Promise<void> {
    try {
      if (!allowed) {
        await this.o.pins.clear(slot);
        this.onLock.set(slot, false);
        return;
      }
      const code = this.codes.get(slot);
      if (code !== undefined) {
        await this.o.pins.set(slot, code);
        this.onLock.set(slot, true);
        return;
      }
      if (!(await this.o.pins.occupied()).includes(slot))
        throw new CommandFailure(
          'command.failed',
          `the hub no longer holds the code of slot ${slot} (it restarted); set the code again`,
        );
      this.onLock.set(slot, true);
    } catch (err) {
      throw commandFailure(err);
    }
  }

  /**
   * Brings the lock in line with what the slot's window and the grant list say now (a bound
   * passed, a new list), then arms the next bound. A failed write is tried again.
   */
  private reapply(slot: number): Promise<void> {
    return this.serial(slot, async () => {
      const record = this.records.get(slot);
      if (this.stopped || record === undefined) return;
      const now = this.o.clock.now();
      const allowed = this.allows(
        slot,
        record.digest,
        record.window,
        now,
        record.writtenAt ?? null,
      );
      // Only the list allows it and the code went with the hub's last run: nothing can put it
      // back (the command's own window opening says so, as before).
      const lost = allowed && !this.codes.has(slot) && !windowAllows(record.window, now);
      if (!lost && this.onLock.get(slot) !== allowed) {
        try {
          await this.apply(slot, allowed);
        } catch (err) {
          this.o.logger.warn(
            { slot, err: err instanceof Error ? err.message : String(err) },
            'keypad window: could not update the lock; trying again',
          );
          // A window that closed must close on the lock: keep trying until it does.
          this.scheduleBound(slot, this.o.clock.now() + (this.o.retryMs ?? 30_000));
          return;
        }
      }
      this.scheduleBound(slot);
    });
  }

  private forget(slot: number): void {
    this.records.delete(slot);
    this.codes.delete(slot);
    this.onLock.delete(slot);
    this.timers.get(slot)?.();
    this.timers.delete(slot);
  }

  /**
   * The next instant after `now` at which what the slot may do can change: a bound of its
   * command window, of its grant-list windows, or the list's horizon. Null: none ahead.
   */
  private nextBound(slot: number, record: SlotRecord, now: number): number | null {
    // At all times: no bound, and no list can add to it.
    if (record.window === null) return null;
    const bounds = [record.window.fromMs, record.window.untilMs];
    const list = this.o.grants?.current() ?? null;
    const entry = this.listed(slot, record.digest);
    if (list !== null && entry !== null) {
      bounds.push(list.horizonMs);
      for (const w of entry.windows ?? []) bounds.push(w.fromMs, w.untilMs);
    }
    const ahead = bounds.filter((b) => b > now);
    return ahead.length === 0 ? null : Math.min(...ahead);
  }

  /** Arms the timer for the slot's next bound (or for `at`, a retry). */
  private scheduleBound(slot: number, at?: number): void {
    this.timers.get(slot)?.();
    this.timers.delete(slot);
    const record = this.records.get(slot);
    if (this.stopped || record === undefined) return;
    const next = at ?? this.nextBound(slot, record, this.o.clock.now());
    if (next === null) return;
    const cancel = this.o.clock.schedule(next, () => {
      this.timers.delete(slot);
      if (this.stopped || this.records.get(slot) !== record) return;
      void this.reapply(slot);
    });
    this.timers.set(slot, cancel);
  }

  private load(path: string): void {
    if (!existsSync(path)) return;
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      this.o.logger.warn(
        { path, err: err instanceof Error ? err.message : String(err) },
        'keypad state unreadable: starting with none (the control plane will see the slots as changed)',
      );
      return;
    }
    const slots = (value as { slots?: unknown } | null)?.slots;
    if (typeof slots !== 'object' || slots === null) return;
    for (const [key, raw] of Object.entries(slots)) {
      const slot = Number(key);
      const r = raw as Partial<SlotRecord> | null;
      if (!Number.isInteger(slot) || typeof r?.digest !== 'string') continue;
      const w = r.window;
      const window =
        w != null && Number.isSafeInteger(w.fromMs) && Number.isSafeInteger(w.untilMs)
          ? { fromMs: w.fromMs, untilMs: w.untilMs }
          : null;
      this.records.set(slot, {
        digest: r.digest,
        window,
        name: typeof r.name === 'string' ? r.name : null,
        writtenAt: Number.isSafeInteger(r.writtenAt) ? (r.writtenAt as number) : null,
      });
    }
  }

  private save(): void {
    const path = this.o.statePath;
    if (path === null) return;
    const slots = Object.fromEntries([...this.records].map(([slot, r]) => [String(slot), r]));
    // Written aside and renamed, so a crash never leaves half a file.
    writeFileSync(`${path}.tmp`, `${JSON.stringify({ slots })}\n`, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }
}

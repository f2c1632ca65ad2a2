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

/** What the hub keeps about one slot. */
interface SlotRecord {
  readonly digest: string;
  readonly window: PinWindow | null;
  readonly name: string | null;
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
  private stopped = false;

  constructor(options: PinBookOptions) {
    this.o = options;
    if (options.statePath !== null) this.load(options.statePath);
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
  ): Promise<void> {
    this.checkSlot(slot);
    for (const [other, held] of this.codes) {
      // The message may name the slot but never the code: replies end up in logs.
      if (other !== slot && held === code)
        throw new CommandFailure('command.invalid', 'the code is already used by another slot');
    }
    try {
      if (windowAllows(window, this.o.clock.now())) await this.o.pins.set(slot, code);
      else await this.o.pins.clear(slot);
    } catch (err) {
      throw commandFailure(err);
    }
    this.records.set(slot, { digest: pinDigest(this.o.deviceKey, slot, code), window, name });
    this.codes.set(slot, code);
    this.save();
    this.scheduleBound(slot);
  }

  /** `pin.window`: a new window for the code `slot` holds. */
  async setWindow(slot: number, window: PinWindow | null): Promise<void> {
    this.checkSlot(slot);
    const record = this.records.get(slot);
    if (record === undefined) throw new CommandFailure('command.invalid', `slot ${slot} is empty`);
    await this.apply(slot, window);
    this.records.set(slot, { ...record, window });
    this.save();
    this.scheduleBound(slot);
  }

  /** `pin.clear`: empties `slot` (already empty is fine). */
  async clear(slot: number): Promise<void> {
    this.checkSlot(slot);
    try {
      await this.o.pins.clear(slot);
    } catch (err) {
      throw commandFailure(err);
    }
    this.forget(slot);
    this.save();
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
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    this.codes.clear();
  }

  private checkSlot(slot: number): void {
    const capacity = this.o.pins.capacity();
    if (!Number.isInteger(slot) || slot < 1 || slot > capacity)
      throw new CommandFailure('command.invalid', `this lock has slots 1 to ${capacity}`);
  }

  /** Puts the code on the lock or takes it off, as `window` says for now. */
  private async apply(slot: number, window: PinWindow | null): Promise<void> {
    try {
      if (!windowAllows(window, this.o.clock.now())) {
        await this.o.pins.clear(slot);
        return;
      }
      const code = this.codes.get(slot);
      if (code !== undefined) {
        await this.o.pins.set(slot, code);
        return;
      }
      if (!(await this.o.pins.occupied()).includes(slot))
        throw new CommandFailure(
          'command.failed',
          `the hub no longer holds the code of slot ${slot} (it restarted); set the code again`,
        );
    } catch (err) {
      throw commandFailure(err);
    }
  }

  private forget(slot: number): void {
    this.records.delete(slot);
    this.codes.delete(slot);
    this.timers.get(slot)?.();
    this.timers.delete(slot);
  }

  /** Arms the timer for the slot's next window bound (its opening or its closing). */
  private scheduleBound(slot: number, at?: number): void {
    this.timers.get(slot)?.();
    this.timers.delete(slot);
    const record = this.records.get(slot);
    if (this.stopped || record === undefined || record.window === null) return;
    const now = this.o.clock.now();
    const { fromMs, untilMs } = record.window;
    const next = at ?? (now < fromMs ? fromMs : now < untilMs ? untilMs : null);
    if (next === null) return;
    const cancel = this.o.clock.schedule(next, () => {
      this.timers.delete(slot);
      const current = this.records.get(slot);
      if (this.stopped || current !== record) return;
      this.apply(slot, record.window).then(
        () => this.scheduleBound(slot),
        (err: unknown) => {
          const retryAt = this.o.clock.now() + (this.o.retryMs ?? 30_000);
          this.o.logger.warn(
            { slot, err: err instanceof Error ? err.message : String(err) },
            'keypad window: could not update the lock; trying again',
          );
          // A window that closed must close on the lock: keep trying until it does.
          this.scheduleBound(slot, retryAt);
        },
      );
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

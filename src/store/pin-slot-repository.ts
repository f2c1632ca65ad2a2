/**
 * Keypad PIN slots of locks: what Threshold wants in each slot and what the lock last
 * confirmed, validity windows included (0006). A PIN itself is never stored, only its keyed
 * digest (see the 0004 migration).
 */
import type { Kysely, Selectable } from 'kysely';
import type { PinWindow } from '../core/pin-window.ts';
import { groupedByKey } from './id-chunks.ts';
import { fromFlag, toFlag } from './row-codec.ts';
import type { Database, PinSlotRow } from './schema.ts';

/** What Threshold wants in a slot: a code (`set`) or nothing (`clear`). */
export type PinDesiredState = PinSlotRow['desired_state'];

/**
 * Where a slot stands between Threshold and the lock:
 * - `pending`: a write is under way (or waits for its next attempt);
 * - `confirmed`: the lock's read-back matches what Threshold wants;
 * - `failed`: every attempt ended without a matching read-back; Threshold gave up;
 * - `out-of-sync`: was confirmed (or given up), but the lock now lists something else;
 * - `unknown-on-lock`: the lock holds a code Threshold did not write (set by hand, or left
 *   there after Threshold cleared the slot). It is flagged, never removed without the owner.
 */
export type PinSyncState = PinSlotRow['sync_state'];

/** Every {@link PinSyncState}, for validation and display. */
export const PIN_SYNC_STATES: readonly PinSyncState[] = [
  'pending',
  'confirmed',
  'failed',
  'out-of-sync',
  'unknown-on-lock',
];

/** One slot of one lock. Times are ms since the epoch by the server's clock. */
export interface PinSlot {
  readonly lockDeviceId: string;
  /** 1-based slot number on the lock. */
  readonly slot: number;
  /** Whose code it is; null for a slot found on the lock that Threshold did not write. */
  readonly principalId: string | null;
  /** A label for people ("Cleaner"); null if none. */
  readonly name: string | null;
  /** Keyed digest of the code Threshold wrote (desired `set`), else null. Never the code. */
  readonly codeDigest: string | null;
  readonly desired: PinDesiredState;
  readonly sync: PinSyncState;
  /** Write attempts made for the current desired state. */
  readonly attempts: number;
  /** When the next attempt is due (pending only), else null. */
  readonly nextAttemptAt: number | null;
  /** Why the last attempt did not confirm, in words without the code; null after a success. */
  readonly lastError: string | null;
  /** What the lock last listed for the slot: its digest, or null for an empty slot. */
  readonly lockDigest: string | null;
  /** When the lock last listed its slots for this row, or null. */
  readonly checkedAt: number | null;
  readonly updatedAt: number;
  /**
   * The validity window Threshold wants the code to have on the lock (ms, lock clock), or null
   * for at all times (the owner's codes, and every cleared slot).
   */
  readonly window: PinWindow | null;
  /** The window the lock last listed for the slot; null for none (or no code listed). */
  readonly lockWindow: PinWindow | null;
  /**
   * Whether the slot's write (under way, or the last one) is of the window alone, for a code
   * the lock holds already: it needs no code, so it can be resumed after a restart (as a clear
   * can). Always false for a clear.
   */
  readonly windowOnly: boolean;
}

/** Stores keypad slots, one row per (lock, slot). */
export class PinSlotRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Writes the slot, replacing what was stored for the same lock and slot. */
  async save(slot: PinSlot): Promise<void> {
    const row = toRow(slot);
    await this.db
      .insertInto('pin_slots')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['lock_device_id', 'slot']).doUpdateSet({
          principal_id: row.principal_id,
          name: row.name,
          code_digest: row.code_digest,
          desired_state: row.desired_state,
          sync_state: row.sync_state,
          attempts: row.attempts,
          next_attempt_at: row.next_attempt_at,
          last_error: row.last_error,
          lock_digest: row.lock_digest,
          checked_at: row.checked_at,
          updated_at: row.updated_at,
          window_from: row.window_from,
          window_until: row.window_until,
          lock_window_from: row.lock_window_from,
          lock_window_until: row.lock_window_until,
          window_only: row.window_only,
        }),
      )
      .execute();
  }

  /** One slot of a lock, or null if Threshold has no record of it. */
  async get(lockDeviceId: string, slot: number): Promise<PinSlot | null> {
    const row = await this.db
      .selectFrom('pin_slots')
      .selectAll()
      .where('lock_device_id', '=', lockDeviceId)
      .where('slot', '=', slot)
      .executeTakeFirst();
    return row ? fromRow(row) : null;
  }

  /** Every recorded slot of a lock, by slot number. */
  async listForLock(lockDeviceId: string): Promise<PinSlot[]> {
    const rows = await this.db
      .selectFrom('pin_slots')
      .selectAll()
      .where('lock_device_id', '=', lockDeviceId)
      .orderBy('slot')
      .execute();
    return rows.map(fromRow);
  }

  /**
   * {@link listForLock} for many locks, by lock (a few queries for any number of locks), each
   * lock's by slot number; a lock without slots maps to an empty array.
   */
  async listForLocks(lockDeviceIds: readonly string[]): Promise<Map<string, PinSlot[]>> {
    const rows = await groupedByKey(
      lockDeviceIds,
      (chunk) =>
        this.db
          .selectFrom('pin_slots')
          .selectAll()
          .where('lock_device_id', 'in', chunk)
          .orderBy('lock_device_id')
          .orderBy('slot')
          .execute(),
      (row) => row.lock_device_id,
    );
    return new Map([...rows].map(([id, list]) => [id, list.map(fromRow)]));
  }

  /** Every slot holding (or meant to hold) a principal's code, e.g. to clear them on revocation. */
  async listByPrincipal(principalId: string): Promise<PinSlot[]> {
    const rows = await this.db
      .selectFrom('pin_slots')
      .selectAll()
      .where('principal_id', '=', principalId)
      .orderBy('lock_device_id')
      .orderBy('slot')
      .execute();
    return rows.map(fromRow);
  }

  /** Every slot in a sync state, by lock and slot (e.g. the pending ones after a restart). */
  async listBySyncState(state: PinSyncState): Promise<PinSlot[]> {
    const rows = await this.db
      .selectFrom('pin_slots')
      .selectAll()
      .where('sync_state', '=', state)
      .orderBy('lock_device_id')
      .orderBy('slot')
      .execute();
    return rows.map(fromRow);
  }
}

function toRow(s: PinSlot): PinSlotRow {
  for (const w of [s.window, s.lockWindow]) {
    if (w !== null && !(Number.isInteger(w.fromMs) && w.fromMs >= 0 && w.fromMs <= w.untilMs))
      throw new RangeError(
        `a window runs from a time >= 0 to one not before it, not ${w.fromMs}–${w.untilMs}`,
      );
  }
  return {
    lock_device_id: s.lockDeviceId,
    slot: s.slot,
    principal_id: s.principalId,
    name: s.name,
    code_digest: s.codeDigest,
    desired_state: s.desired,
    sync_state: s.sync,
    attempts: s.attempts,
    next_attempt_at: s.nextAttemptAt,
    last_error: s.lastError,
    lock_digest: s.lockDigest,
    checked_at: s.checkedAt,
    updated_at: s.updatedAt,
    window_from: s.window?.fromMs ?? null,
    window_until: s.window?.untilMs ?? null,
    lock_window_from: s.lockWindow?.fromMs ?? null,
    lock_window_until: s.lockWindow?.untilMs ?? null,
    window_only: toFlag(s.windowOnly),
  };
}

function fromRow(r: Selectable<PinSlotRow>): PinSlot {
  return {
    lockDeviceId: r.lock_device_id,
    slot: Number(r.slot),
    principalId: r.principal_id,
    name: r.name,
    codeDigest: r.code_digest,
    desired: r.desired_state,
    sync: r.sync_state,
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at === null ? null : Number(r.next_attempt_at),
    lastError: r.last_error,
    lockDigest: r.lock_digest,
    checkedAt: r.checked_at === null ? null : Number(r.checked_at),
    updatedAt: Number(r.updated_at),
    window: windowOf(r.window_from, r.window_until),
    lockWindow: windowOf(r.lock_window_from, r.lock_window_until),
    windowOnly: fromFlag(Number(r.window_only)),
  };
}

/** A window from its two columns; a half-written pair is corruption, not "at all times". */
function windowOf(from: number | null, until: number | null): PinWindow | null {
  if (from === null && until === null) return null;
  if (from === null || until === null || Number(from) > Number(until))
    throw new Error(`pin_slots holds a broken window (${String(from)}, ${String(until)})`);
  return { fromMs: Number(from), untilMs: Number(until) };
}

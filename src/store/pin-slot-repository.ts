/**
 * Keypad PIN slots of locks: what Threshold wants in each slot and what the lock last
 * confirmed. A PIN itself is never stored, only its keyed digest (see the 0004 migration).
 */
import type { Kysely, Selectable } from 'kysely';
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
  };
}

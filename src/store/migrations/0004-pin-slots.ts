/**
 * Migration 0004: keypad PIN slots. One row per slot of a lock that Threshold wrote, cleared
 * or found set on the lock, with what Threshold wants in it and whether the lock confirmed it.
 *
 * A PIN is never stored: `code_digest` is the keyed digest the lock reports for the slot
 * (HMAC under a key derived from the server's master key through the device key; see
 * docs/device-protocol.md), so the database alone cannot tell a code, not even by trying all
 * 10 000 four-digit ones. Portable SQL only, as in 0001.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable('pin_slots')
    .addColumn('lock_device_id', t.text, (c) => c.notNull().references('devices.id'))
    .addColumn('slot', t.integer, (c) => c.notNull().check(sql`slot >= 1`))
    // Whose PIN it is; null for a slot Threshold found on the lock without having written it.
    .addColumn('principal_id', t.text, (c) => c.references('principals.id'))
    .addColumn('name', t.text)
    // The digest of the code Threshold wrote (desired 'set'); null when it wants the slot empty.
    .addColumn('code_digest', t.text)
    .addColumn('desired_state', t.text, (c) =>
      c.notNull().check(sql`desired_state in ('set', 'clear')`),
    )
    .addColumn('sync_state', t.text, (c) =>
      c
        .notNull()
        .check(
          sql`sync_state in ('pending', 'confirmed', 'failed', 'out-of-sync', 'unknown-on-lock')`,
        ),
    )
    .addColumn('attempts', t.integer, (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('last_error', t.text)
    // What the lock last reported for the slot: its digest, or null for an empty slot.
    .addColumn('lock_digest', t.text)
    // When the lock last listed its slots, null if never since this row was written.
    .addColumn('checked_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('pin_slots_pk', ['lock_device_id', 'slot'])
    .addCheckConstraint(
      'pin_slots_set_has_digest',
      sql`desired_state = 'clear' or code_digest is not null`,
    )
    .execute();
  await db.schema
    .createIndex('pin_slots_principal_id_idx')
    .on('pin_slots')
    .column('principal_id')
    .execute();
  await db.schema
    .createIndex('pin_slots_sync_state_idx')
    .on('pin_slots')
    .column('sync_state')
    .execute();
}

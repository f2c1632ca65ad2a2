/**
 * Migration 0003: guests. A guest grant lets one principal into one home's door under a
 * schedule (always, a date range, weekly slots, one time), with optional limits; `granted_by`
 * records who shared it, so revoking a member revokes what they shared. Invites are links an
 * owner sends; only a hash of the link's token is stored. Portable SQL only, as in 0001.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable('guest_grants')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('door_id', t.text, (c) => c.notNull().references('doors.id'))
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('granted_by', t.text, (c) => c.notNull().references('principals.id'))
    // JSON text: a GrantSchedule (src/core/grant-schedule.ts).
    .addColumn('schedule', t.text, (c) => c.notNull())
    .addColumn('max_uses', t.integer)
    .addColumn('uses', t.integer, (c) => c.notNull().defaultTo(0))
    .addColumn('max_minutes_per_entry', t.integer)
    .addColumn('requires_recording', t.integer, (c) =>
      c.notNull().check(sql`requires_recording in (0, 1)`),
    )
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_by', t.text, (c) => c.references('principals.id'))
    .addColumn('revoke_reason', t.text)
    .execute();
  for (const col of ['home_id', 'door_id', 'principal_id', 'granted_by', 'revoked_by']) {
    await db.schema.createIndex(`guest_grants_${col}_idx`).on('guest_grants').column(col).execute();
  }

  await db.schema
    .createTable('invites')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('token_hash', t.text, (c) => c.notNull().unique())
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('door_id', t.text, (c) => c.notNull().references('doors.id'))
    .addColumn('created_by', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('display_name', t.text, (c) => c.notNull())
    // JSON text: the grant the guest gets on accepting (schedule and limits).
    .addColumn('grant_spec', t.text, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('accepted_at', 'bigint')
    .addColumn('accepted_by', t.text, (c) => c.references('principals.id'))
    .addColumn('revoked_at', 'bigint')
    .execute();
  for (const col of ['home_id', 'door_id', 'created_by', 'accepted_by']) {
    await db.schema.createIndex(`invites_${col}_idx`).on('invites').column(col).execute();
  }
}

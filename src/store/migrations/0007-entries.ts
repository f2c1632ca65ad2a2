/**
 * Migration 0007: "who unlocked". Every unlock of a home's lock, by whom and how (the app, a
 * keypad slot, a key or the thumb-turn), kept for the owner's page; and who wants to be told
 * of whose entries (each household person's own choice). Portable SQL only, as in 0001.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable('entries')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('lock_device_id', t.text, (c) => c.notNull().references('devices.id'))
    .addColumn('door_id', t.text, (c) => c.references('doors.id'))
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('method', t.text, (c) =>
      c.notNull().check(sql`method in ('app', 'remote', 'pin', 'manual')`),
    )
    .addColumn('principal_id', t.text, (c) => c.references('principals.id'))
    .addColumn('slot', t.integer)
    // An app entry's access session: one entry per session, however often it is reported.
    .addColumn('session_id', t.text, (c) => c.unique())
    .execute();
  await db.schema
    .createIndex('entries_home_at_idx')
    .on('entries')
    .columns(['home_id', 'at'])
    .execute();

  // Each owner's or member's choice: told of every entry, of chosen people's, or of none.
  await db.schema
    .createTable('entry_alert_settings')
    .addColumn('principal_id', t.text, (c) => c.primaryKey().references('principals.id'))
    .addColumn('mode', t.text, (c) => c.notNull().check(sql`mode in ('all', 'chosen', 'off')`))
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('entry_alert_people')
    .addColumn('watcher_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('subject_id', t.text, (c) => c.notNull().references('principals.id'))
    .addPrimaryKeyConstraint('entry_alert_people_pk', ['watcher_id', 'subject_id'])
    .execute();
}

/**
 * Migration 0001: the first schema. Portable SQL only (Kysely's schema builder): times are
 * `bigint` milliseconds, booleans integers 0 / 1 with a check, JSON is text, coordinates are
 * `double precision`; text and integers take the words of column-types.ts, so they compare and
 * hold the same on SQLite and PostgreSQL. Every foreign key has an index, and so has every
 * lookup a repository does.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

/** Creates every table and index. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable('homes')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('name', t.text, (c) => c.notNull())
    .addColumn('address', t.text, (c) => c.notNull())
    .addColumn('geofence_lat', 'double precision', (c) => c.notNull())
    .addColumn('geofence_lon', 'double precision', (c) => c.notNull())
    .addColumn('geofence_radius_m', 'double precision', (c) => c.notNull())
    .addColumn('time_zone', t.text, (c) => c.notNull())
    .addColumn('in_home_delivery', t.integer, (c) =>
      c.notNull().check(sql`in_home_delivery in (0, 1)`),
    )
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('kind', t.text, (c) => c.notNull())
    .addColumn('name', t.text, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('devices_home_id_idx').on('devices').column('home_id').execute();

  await db.schema
    .createTable('doors')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('name', t.text, (c) => c.notNull())
    .addColumn('lock_device_id', t.text, (c) => c.notNull().references('devices.id'))
    .addColumn('door_sensor_device_id', t.text, (c) => c.references('devices.id'))
    .addColumn('camera_device_ids', t.text, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('doors_home_id_idx').on('doors').column('home_id').execute();
  await db.schema
    .createIndex('doors_lock_device_id_idx')
    .on('doors')
    .column('lock_device_id')
    .execute();
  await db.schema
    .createIndex('doors_door_sensor_device_id_idx')
    .on('doors')
    .column('door_sensor_device_id')
    .execute();

  await db.schema
    .createTable('carriers')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('name', t.text, (c) => c.notNull())
    .execute();

  // Which carriers a home lets in; in-home delivery is off for a carrier until allowed.
  await db.schema
    .createTable('home_carriers')
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('allowed_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('home_carriers_pk', ['home_id', 'carrier_id'])
    .execute();
  await db.schema
    .createIndex('home_carriers_carrier_id_idx')
    .on('home_carriers')
    .column('carrier_id')
    .execute();

  await db.schema
    .createTable('principals')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('username', t.text, (c) => c.notNull().unique())
    .addColumn('password_hash', t.text, (c) => c.notNull())
    .addColumn('role', t.text, (c) => c.notNull())
    .addColumn('display_name', t.text, (c) => c.notNull())
    .addColumn('home_id', t.text, (c) => c.references('homes.id'))
    .addColumn('carrier_id', t.text, (c) => c.references('carriers.id'))
    .execute();
  await db.schema
    .createIndex('principals_home_id_idx')
    .on('principals')
    .column('home_id')
    .execute();
  await db.schema
    .createIndex('principals_carrier_id_idx')
    .on('principals')
    .column('carrier_id')
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('key_hash', t.text, (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('last_used_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('api_keys_carrier_id_idx')
    .on('api_keys')
    .column('carrier_id')
    .execute();

  await db.schema
    .createTable('auth_sessions')
    .addColumn('token_hash', t.text, (c) => c.primaryKey())
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('auth_sessions_principal_id_idx')
    .on('auth_sessions')
    .column('principal_id')
    .execute();
  await db.schema
    .createIndex('auth_sessions_expires_at_idx')
    .on('auth_sessions')
    .column('expires_at')
    .execute();

  await db.schema
    .createTable('deliveries')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('door_id', t.text, (c) => c.notNull().references('doors.id'))
    .addColumn('package_ref', t.text, (c) => c.notNull())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('window_end', 'bigint', (c) => c.notNull())
    .addColumn('courier_id', t.text, (c) => c.references('principals.id'))
    .addColumn('status', t.text, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  // The lists are ordered by window start, so the foreign-key indexes carry it too.
  await db.schema
    .createIndex('deliveries_carrier_id_idx')
    .on('deliveries')
    .columns(['carrier_id', 'window_start'])
    .execute();
  await db.schema
    .createIndex('deliveries_home_id_idx')
    .on('deliveries')
    .columns(['home_id', 'window_start'])
    .execute();
  await db.schema
    .createIndex('deliveries_courier_id_idx')
    .on('deliveries')
    .columns(['courier_id', 'window_start'])
    .execute();
  await db.schema
    .createIndex('deliveries_door_id_idx')
    .on('deliveries')
    .column('door_id')
    .execute();

  await db.schema
    .createTable('grants')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('kind', t.text, (c) => c.notNull())
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('door_id', t.text, (c) => c.notNull().references('doors.id'))
    .addColumn('delivery_id', t.text, (c) => c.notNull().references('deliveries.id'))
    .addColumn('valid_from', 'bigint', (c) => c.notNull())
    .addColumn('valid_until', 'bigint', (c) => c.notNull())
    .addColumn('max_uses', t.integer, (c) => c.notNull())
    .addColumn('uses', t.integer, (c) => c.notNull())
    .addColumn('max_open_ms', 'bigint', (c) => c.notNull())
    .addColumn('requires_recording', t.integer, (c) =>
      c.notNull().check(sql`requires_recording in (0, 1)`),
    )
    .addColumn('requires_presence', t.integer, (c) =>
      c.notNull().check(sql`requires_presence in (0, 1)`),
    )
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('grants_principal_id_idx')
    .on('grants')
    .column('principal_id')
    .execute();
  await db.schema.createIndex('grants_home_id_idx').on('grants').column('home_id').execute();
  await db.schema.createIndex('grants_door_id_idx').on('grants').column('door_id').execute();
  await db.schema
    .createIndex('grants_delivery_id_idx')
    .on('grants')
    .column('delivery_id')
    .execute();

  await db.schema
    .createTable('access_sessions')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('door_id', t.text, (c) => c.notNull().references('doors.id'))
    .addColumn('delivery_id', t.text, (c) => c.references('deliveries.id'))
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('state', t.text, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('ended_at', 'bigint')
    .addColumn('data', t.text, (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('access_sessions_home_id_idx')
    .on('access_sessions')
    .columns(['home_id', 'created_at'])
    .execute();
  await db.schema
    .createIndex('access_sessions_door_id_idx')
    .on('access_sessions')
    .columns(['door_id', 'ended_at'])
    .execute();
  await db.schema
    .createIndex('access_sessions_delivery_id_idx')
    .on('access_sessions')
    .columns(['delivery_id', 'created_at'])
    .execute();
  await db.schema
    .createIndex('access_sessions_principal_id_idx')
    .on('access_sessions')
    .column('principal_id')
    .execute();
  await db.schema
    .createIndex('access_sessions_ended_at_idx')
    .on('access_sessions')
    .column('ended_at')
    .execute();

  await db.schema
    .createTable('clip_frames')
    .addColumn('session_id', t.text, (c) => c.notNull().references('access_sessions.id'))
    .addColumn('seq', t.integer, (c) => c.notNull())
    .addColumn('captured_at', 'bigint', (c) => c.notNull())
    .addColumn('received_at', 'bigint', (c) => c.notNull())
    .addColumn('digest', t.text, (c) => c.notNull())
    .addColumn('path', t.text, (c) => c.notNull())
    .addColumn('bytes', t.integer, (c) => c.notNull())
    .addPrimaryKeyConstraint('clip_frames_pk', ['session_id', 'seq'])
    .execute();
  await db.schema
    .createIndex('clip_frames_session_captured_idx')
    .on('clip_frames')
    .columns(['session_id', 'captured_at', 'seq'])
    .execute();
  await db.schema
    .createIndex('clip_frames_session_received_idx')
    .on('clip_frames')
    .columns(['session_id', 'received_at'])
    .execute();

  // No foreign keys into or out of the audit log: it must stand on its own, and a tampered
  // database (rows deleted behind our back) must still be readable so verification can say so.
  await db.schema
    .createTable('audit_entries')
    .addColumn('seq', t.integer, (c) => c.primaryKey())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('kind', t.text, (c) => c.notNull())
    .addColumn('actor_type', t.text, (c) => c.notNull())
    .addColumn('actor_id', t.text, (c) => c.notNull())
    .addColumn('subject', t.text, (c) => c.notNull())
    .addColumn('data', t.text, (c) => c.notNull())
    .addColumn('device_mac', t.text)
    .addColumn('prev_hash', t.text, (c) => c.notNull())
    .addColumn('hash', t.text, (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('audit_entries_subject_idx')
    .on('audit_entries')
    .columns(['subject', 'seq'])
    .execute();

  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('seq', t.integer, (c) => c.primaryKey())
    .addColumn('hash', t.text, (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('public_key', t.text, (c) => c.notNull())
    .addColumn('signature', t.text, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('device_status')
    .addColumn('device_id', t.text, (c) => c.primaryKey().references('devices.id'))
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('online', t.integer, (c) => c.notNull().check(sql`online in (0, 1)`))
    .addColumn('last_seen_at', 'bigint')
    .addColumn('state', t.text, (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('device_status_home_id_idx')
    .on('device_status')
    .column('home_id')
    .execute();
}

/** Drops everything {@link up} created, dependants first. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'device_status',
    'audit_checkpoints',
    'audit_entries',
    'clip_frames',
    'access_sessions',
    'grants',
    'deliveries',
    'auth_sessions',
    'api_keys',
    'principals',
    'home_carriers',
    'carriers',
    'doors',
    'devices',
    'homes',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}

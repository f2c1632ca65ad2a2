/**
 * Migration 0002: what the web app needs. The owner's in-home delivery settings on the home
 * (days off, "ask me first"), passkeys (WebAuthn credentials), Web Push subscriptions and
 * alarm acknowledgements. Portable SQL only, as in 0001.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  // Days off as JSON text (an array of 'mon'…'sun'); "ask me first" and how long to wait, ms.
  await db.schema
    .alterTable('homes')
    .addColumn('delivery_days_off', t.text, (c) => c.notNull().defaultTo('[]'))
    .execute();
  await db.schema
    .alterTable('homes')
    .addColumn('delivery_ask_first', t.integer, (c) =>
      c
        .notNull()
        .defaultTo(0)
        .check(sql`delivery_ask_first in (0, 1)`),
    )
    .execute();
  await db.schema
    .alterTable('homes')
    .addColumn('delivery_ask_timeout_ms', 'bigint', (c) => c.notNull().defaultTo(60_000))
    .execute();

  await db.schema
    .createTable('passkeys')
    // The credential id, base64url, as the authenticator gave it.
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('name', t.text, (c) => c.notNull())
    // COSE public key, base64url.
    .addColumn('public_key', t.text, (c) => c.notNull())
    .addColumn('counter', 'bigint', (c) => c.notNull())
    // JSON text: an array of transports ('internal', 'usb', 'hybrid', …).
    .addColumn('transports', t.text, (c) => c.notNull())
    .addColumn('device_type', t.text, (c) => c.notNull())
    .addColumn('backed_up', t.integer, (c) => c.notNull().check(sql`backed_up in (0, 1)`))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('passkeys_principal_id_idx')
    .on('passkeys')
    .column('principal_id')
    .execute();

  await db.schema
    .createTable('push_subscriptions')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('endpoint', t.text, (c) => c.notNull().unique())
    .addColumn('p256dh', t.text, (c) => c.notNull())
    .addColumn('auth', t.text, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_success_at', 'bigint')
    .addColumn('failures', t.integer, (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex('push_subscriptions_principal_id_idx')
    .on('push_subscriptions')
    .column('principal_id')
    .execute();
  await db.schema
    .createIndex('push_subscriptions_home_id_idx')
    .on('push_subscriptions')
    .column('home_id')
    .execute();

  // One acknowledgement per alarm (a session raises each alarm type at most once).
  await db.schema
    .createTable('alarm_acks')
    .addColumn('session_id', t.text, (c) => c.notNull().references('access_sessions.id'))
    .addColumn('alarm_type', t.text, (c) => c.notNull())
    .addColumn('principal_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('acknowledged_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('alarm_acks_pk', ['session_id', 'alarm_type'])
    .execute();
  await db.schema
    .createIndex('alarm_acks_principal_id_idx')
    .on('alarm_acks')
    .column('principal_id')
    .execute();
}

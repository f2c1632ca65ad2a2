/**
 * Migration 0008: the carrier platform. Scoped, named API keys; carrier admins are principals of
 * role `carrier` who sign in; courier invitations; an owner's per-home choice for each carrier
 * (allowed or blocked) and blocked couriers; a delivery's placement preference and its history
 * of state changes; idempotency keys; webhooks and their delivery log. Portable SQL only, as in
 * 0001.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  // ---- API keys: a name, scopes (JSON array), who made it, what it replaced ----
  await db.schema
    .alterTable('api_keys')
    .addColumn('name', t.text, (c) => c.notNull().defaultTo('API key'))
    .execute();
  // Keys made before scopes existed keep every power they had.
  await db.schema
    .alterTable('api_keys')
    .addColumn('scopes', t.text, (c) =>
      c
        .notNull()
        .defaultTo(
          '["deliveries:read","deliveries:write","couriers:manage","webhooks:manage","keys:manage"]',
        ),
    )
    .execute();
  // The first characters of the key, to tell keys apart in lists ("thk_AbCd…").
  await db.schema
    .alterTable('api_keys')
    .addColumn('prefix', t.text, (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema.alterTable('api_keys').addColumn('created_by', t.text).execute();
  await db.schema.alterTable('api_keys').addColumn('replaced_by', t.text).execute();

  // ---- The owner's choice per carrier: allowed or blocked (no row: not decided, so off) ----
  await db.schema
    .alterTable('home_carriers')
    .addColumn('status', t.text, (c) =>
      c
        .notNull()
        .defaultTo('allowed')
        .check(sql`status in ('allowed', 'blocked')`),
    )
    .execute();
  await db.schema.alterTable('home_carriers').addColumn('decided_by', t.text).execute();

  // A courier an owner does not want at their door, whatever the carrier says.
  await db.schema
    .createTable('home_blocked_couriers')
    .addColumn('home_id', t.text, (c) => c.notNull().references('homes.id'))
    .addColumn('courier_id', t.text, (c) => c.notNull().references('principals.id'))
    .addColumn('blocked_at', 'bigint', (c) => c.notNull())
    .addColumn('blocked_by', t.text, (c) => c.notNull().references('principals.id'))
    .addPrimaryKeyConstraint('home_blocked_couriers_pk', ['home_id', 'courier_id'])
    .execute();

  // ---- Courier invitations: a link a carrier admin sends; the courier chooses a password ----
  await db.schema
    .createTable('courier_invites')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('token_hash', t.text, (c) => c.notNull().unique())
    .addColumn('display_name', t.text, (c) => c.notNull())
    .addColumn('created_by', t.text, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('accepted_by', t.text, (c) => c.references('principals.id'))
    .addColumn('accepted_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('courier_invites_carrier_id_idx')
    .on('courier_invites')
    .column('carrier_id')
    .execute();

  // ---- Deliveries: where the carrier would leave it, when it last changed ----
  await db.schema
    .alterTable('deliveries')
    .addColumn('placement', t.text, (c) =>
      c
        .notNull()
        .defaultTo('in-home')
        .check(sql`placement in ('in-home', 'doorstep')`),
    )
    .execute();
  await db.schema.alterTable('deliveries').addColumn('updated_at', 'bigint').execute();

  // Every state change of a delivery, in order: what webhooks send and proofs show.
  await db.schema
    .createTable('delivery_events')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('delivery_id', t.text, (c) => c.notNull().references('deliveries.id'))
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('seq', t.integer, (c) => c.notNull())
    .addColumn('type', t.text, (c) => c.notNull())
    .addColumn('status', t.text, (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    // JSON text: what else the event says (courier, session, reason).
    .addColumn('data', t.text, (c) => c.notNull())
    .addUniqueConstraint('delivery_events_delivery_seq_uq', ['delivery_id', 'seq'])
    .execute();
  await db.schema
    .createIndex('delivery_events_carrier_at_idx')
    .on('delivery_events')
    .columns(['carrier_id', 'at'])
    .execute();

  // ---- Idempotency: a retried create or change answers what the first one answered ----
  await db.schema
    .createTable('idempotency_keys')
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('key', t.text, (c) => c.notNull())
    // Method and route, and a hash of the body: the same key for another request is refused.
    .addColumn('request', t.text, (c) => c.notNull())
    .addColumn('request_hash', t.text, (c) => c.notNull())
    // Null while the first request is still being answered.
    .addColumn('status_code', t.integer)
    .addColumn('response', t.text)
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['carrier_id', 'key'])
    .execute();

  // ---- Webhooks ----
  await db.schema
    .createTable('webhooks')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('url', t.text, (c) => c.notNull())
    // The signing secret is derived from the server's master key and this salt; never stored.
    .addColumn('secret_salt', t.text, (c) => c.notNull())
    // JSON array of event types, or ["*"].
    .addColumn('events', t.text, (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', t.text, (c) => c.notNull())
    .addColumn('disabled_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('webhooks_carrier_id_idx')
    .on('webhooks')
    .column('carrier_id')
    .execute();
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', t.text, (c) => c.primaryKey())
    .addColumn('webhook_id', t.text, (c) => c.notNull().references('webhooks.id'))
    .addColumn('carrier_id', t.text, (c) => c.notNull().references('carriers.id'))
    .addColumn('event_id', t.text, (c) => c.notNull())
    .addColumn('event_type', t.text, (c) => c.notNull())
    // The exact body sent (and signed), so a resend or a retry sends the same bytes.
    .addColumn('payload', t.text, (c) => c.notNull())
    .addColumn('status', t.text, (c) =>
      c.notNull().check(sql`status in ('pending', 'delivered', 'failed')`),
    )
    .addColumn('attempts', t.integer, (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('last_status_code', t.integer)
    .addColumn('last_error', t.text)
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('delivered_at', 'bigint')
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_webhook_idx')
    .on('webhook_deliveries')
    .columns(['webhook_id', 'created_at'])
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_due_idx')
    .on('webhook_deliveries')
    .columns(['status', 'next_attempt_at'])
    .execute();
}

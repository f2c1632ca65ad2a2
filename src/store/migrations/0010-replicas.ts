/**
 * Migration 0010: replicas (issue 8). Several `threshold serve` processes may share one
 * PostgreSQL database and one broker:
 *
 * - `replicas`: each running replica's lease, renewed while it lives. A replica whose lease has
 *   run out is dead to the others, which take over its sessions.
 * - `access_sessions.owner`: the replica driving a live session (null: a single server, or a
 *   session from before this migration). Only the owner writes an open session's row.
 * - `audit_once`: keys of audit facts recorded once however many replicas receive them (every
 *   replica receives every device event; the first to commit it records it).
 *
 * Portable SQL only, as in 0001.
 */
import type { Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable('replicas')
    .addColumn('id', t.text, (c) => c.primaryKey())
    // When the replica first took its lease, and when it runs out, ms (the replica's clock).
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.alterTable('access_sessions').addColumn('owner', t.text).execute();
  await db.schema
    .createTable('audit_once')
    .addColumn('key', t.text, (c) => c.primaryKey())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .execute();
}

/**
 * Migration 0005: a principal can be disabled (a household member removed by the owner). A
 * disabled principal cannot sign in and its sign-in sessions stop working; its rows stay, so
 * the audit log's references keep their meaning.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('principals').addColumn('disabled_at', 'bigint').execute();
}

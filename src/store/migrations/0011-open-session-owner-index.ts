/**
 * Migration 0011: an index for the replicas' round (issue 8). Every replica, every second,
 * lists the open sessions whose owner is not a live replica (`listOpenToTakeOver`): the open
 * sessions are few beside every session ever recorded, so the index holds only those
 * (`ended_at is null`: a partial index, which SQLite and PostgreSQL both have), in the order
 * the round takes them (`created_at`, `id`), with their `owner` to filter on without reading
 * the row. The round reads that index, and the rows it returns, whatever the size of the
 * history; so does every other query on `ended_at` (all ask for `is null`: the open sessions
 * at a restart, a claim, a door's open session).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('access_sessions_open_owner_idx')
    .on('access_sessions')
    .columns(['created_at', 'id', 'owner'])
    .where(sql.ref('ended_at'), 'is', null)
    .execute();
  // Every query on `ended_at` asks for `is null`, which the index above answers with only the
  // open rows, in order. With both, SQLite's planner (no statistics) kept taking the old one.
  await db.schema.dropIndex('access_sessions_ended_at_idx').execute();
}

/**
 * Migration 0009: the offline grant lists (issue 6). One row per lock: the version of the last
 * grant list the control plane signed for it, and when that list was issued. A hub never takes
 * a list older than the one it holds, so a lock's version must only grow, across restarts too:
 * it is kept here, and written before the list it numbers is published. Portable SQL only, as
 * in 0001.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable('grant_list_versions')
    .addColumn('lock_device_id', t.text, (c) => c.primaryKey().references('devices.id'))
    .addColumn('version', 'bigint', (c) => c.notNull().check(sql`version >= 1`))
    // The issuing time of the list with this version, ms (the control plane's clock).
    .addColumn('issued_at', 'bigint', (c) => c.notNull())
    .execute();
}

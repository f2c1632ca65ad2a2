/**
 * Migration 0006: keypad codes follow their holder's access. Each slot keeps the validity
 * window Threshold wants on the lock (`window_from`/`window_until`, both null: at all times),
 * the window the lock last listed (`lock_window_from`/`lock_window_until`), and whether the
 * slot's write is of the window alone (`window_only`): that needs no code, so it survives a
 * restart, while a write of a code cannot (the code lives in memory only).
 *
 * Times are `bigint` ms by the lock's clock; a window is `from <= until` (equal: never valid).
 * Portable SQL only, as in 0001: one column per statement (SQLite adds one at a time), checks
 * that name only their own column (PostgreSQL's rule for column constraints); the pairing of
 * the bounds is kept by the repository.
 */
import { sql, type Kysely } from 'kysely';
import { columnTypes } from './column-types.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  const t = columnTypes(db);
  for (const column of ['window_from', 'window_until', 'lock_window_from', 'lock_window_until']) {
    await db.schema
      .alterTable('pin_slots')
      .addColumn(column, 'bigint', (c) => c.check(sql`${sql.ref(column)} >= 0`))
      .execute();
  }
  // Every write before this migration carried its code (or was a clear).
  await db.schema
    .alterTable('pin_slots')
    .addColumn('window_only', t.integer, (c) =>
      c
        .notNull()
        .defaultTo(0)
        .check(sql`window_only in (0, 1)`),
    )
    .execute();
}

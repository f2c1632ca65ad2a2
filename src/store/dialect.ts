/**
 * Database dialects. This is the only file that knows it is talking to SQLite; everything else
 * in the store uses Kysely's query builder, so PostgreSQL can be added here without touching
 * the repositories.
 */
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database } from './schema.ts';

/** Every dialect Threshold is meant to run on. */
export type DialectName = 'sqlite' | 'postgres';

/** The dialects that can be opened today; the store's tests run once per entry. */
export const DIALECTS = ['sqlite'] as const satisfies readonly DialectName[];

/** A dialect from {@link DIALECTS}. */
export type AvailableDialect = (typeof DIALECTS)[number];

/**
 * Opens (creating if needed) the SQLite database file at `path`, or a private in-memory
 * database for `':memory:'`.
 *
 * The connection runs with `busy_timeout=5000` (ms to wait for another writer),
 * `journal_mode=WAL`, `synchronous=FULL` (a committed session or audit write survives a power
 * cut, not only a crash) and `foreign_keys=ON`. In-memory databases report journal mode
 * `memory`. The caller owns the result and closes it with `destroy()`.
 */
export function openSqlite(path: string): Kysely<Database> {
  const sqlite = new SqliteDatabase(path);
  try {
    // busy_timeout first, so switching to WAL waits for another process instead of failing.
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
  } catch (error) {
    sqlite.close();
    throw error;
  }
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
}

/**
 * Whether `error` is a database's unique or primary-key violation (SQLite's
 * `SQLITE_CONSTRAINT_UNIQUE` / `_PRIMARYKEY`, PostgreSQL's `23505`), so callers can answer
 * "already taken" without knowing the dialect.
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('code' in error)) return false;
  const { code } = error;
  return (
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === '23505'
  );
}

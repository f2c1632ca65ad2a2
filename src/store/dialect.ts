/**
 * Database dialects. These are the only lines that know whether they talk to SQLite or
 * PostgreSQL: opening a database, and the few places where the two must be told apart to
 * behave the same (locks, see {@link dialectOf}). The repositories use Kysely's query builder
 * and run unchanged on both.
 */
import { createRequire } from 'node:module';
import SqliteDatabase from 'better-sqlite3';
import {
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  SqliteDialect,
  sql,
  type SqliteDatabase as KyselySqliteDatabase,
} from 'kysely';
import type Pg from 'pg';
import { NulTextGuard } from './nul-text-guard.ts';
import type { Database } from './schema.ts';

/** Every dialect Threshold runs on. */
export type DialectName = 'sqlite' | 'postgres';

/**
 * The dialects that can be opened; the store's tests (and, in CI, the integration tests) run
 * once per entry.
 */
export const DIALECTS = ['sqlite', 'postgres'] as const satisfies readonly DialectName[];

/** A dialect from {@link DIALECTS}. */
export type AvailableDialect = (typeof DIALECTS)[number];

/**
 * Opens (creating if needed) the SQLite database file at `path`, or a private in-memory
 * database for `':memory:'`.
 *
 * The connection runs with `busy_timeout=5000` (ms to wait for another writer),
 * `journal_mode=WAL`, `synchronous=FULL` (a committed session or audit write survives a power
 * cut, not only a crash) and `foreign_keys=ON`. In-memory databases report journal mode
 * `memory`. Text holding U+0000 is refused, as on PostgreSQL (see nul-text-guard.ts). Prepared
 * statements are kept and reused (see {@link cachingStatements}). The caller owns the result
 * and closes it with `destroy()`.
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
  return new Kysely<Database>({
    dialect: new SqliteDialect({ database: cachingStatements(sqlite, STATEMENT_CACHE_SIZE) }),
    plugins: [new NulTextGuard()],
  });
}

/**
 * Prepared statements {@link openSqlite} keeps. The repositories' queries are a few hundred
 * distinct SQL texts at most (parameters are bound, not spliced in); the bound only matters for
 * texts that vary with a list's length (`in (?, ?, …)`, multi-row inserts).
 */
export const STATEMENT_CACHE_SIZE = 500;

/**
 * The SQLite handle Kysely is given, with `prepare` answered from a cache of at most
 * `maxEntries` statements by SQL text, least recently used dropped first.
 *
 * Kysely's SQLite driver prepares every query afresh (`db.prepare(sql)`, then `all` or `run`),
 * and preparing — parsing the SQL and planning it — costs about as much as running a typical
 * one-row query: `sessions.get` took 25.6 µs of CPU without the cache and 13.3 µs with it,
 * `sessions.save` (an upsert, committed) 213 and 139 µs (medians of 5 rounds of 100,000 and
 * 1,000 calls, alternating). A better-sqlite3 statement can be run any number of times: `all` and `run`
 * bind the parameters given, run to completion synchronously and reset the statement, so two
 * queries never share one half-way. The exception is `iterate` (Kysely's `stream()`): the
 * statement stays locked (`busy`) until its iterator is done, so a busy statement is never
 * handed out again; a fresh one is prepared for that caller instead (and cached in its place).
 * Nothing else changes a statement's state: Kysely never calls `bind`, `pluck`, `raw`,
 * `expand` or `safeIntegers`, and this handle is not shared with anything that does. A
 * statement that no longer matches the schema (after a migration) is prepared again by SQLite
 * itself. Errors from `prepare` (bad SQL) are not cached: each attempt throws. `close` closes
 * the database, which finalizes every statement, cached or not.
 */
export function cachingStatements(
  database: SqliteDatabase.Database,
  maxEntries: number,
): KyselySqliteDatabase {
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`a statement cache holds at least 1 entry; not ${maxEntries}`);
  }
  // A Map iterates in insertion order: deleting and re-inserting on each hit keeps the least
  // recently used statement first, where eviction takes it.
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => {
      statements.clear();
      database.close();
    },
    prepare: (text) => {
      const cached = statements.get(text);
      if (cached !== undefined) {
        statements.delete(text);
        if (!cached.busy) {
          statements.set(text, cached);
          return cached;
        }
      }
      const fresh = database.prepare(text);
      statements.set(text, fresh);
      if (statements.size > maxEntries) {
        const oldest = statements.keys().next();
        if (oldest.done !== true) statements.delete(oldest.value);
      }
      return fresh;
    },
  };
}

/** Options of {@link openPostgres}. */
export interface PostgresOptions {
  /** Most connections the pool opens at once; default 10. */
  readonly maxConnections?: number;
}

/**
 * Opens a pool of connections to the PostgreSQL database at `url`
 * (`postgres://user:password@host:port/database`, libpq's parameters such as `sslmode` in the
 * query string). Nothing connects until the first query, so a wrong URL or a server that is
 * down shows up there, not here. The caller owns the result and closes it with `destroy()`.
 *
 * Column values come back as the SQLite dialect returns them: `bigint` (ms timestamps,
 * counters, COUNT) as JS numbers, not strings; one outside ±2^53 throws rather than losing
 * digits. The parser is this pool's own, so other users of `pg` in the process are unaffected.
 * Durability is the server's (`fsync` and `synchronous_commit`, both on by default): a
 * committed write is on disk when the promise resolves, as with SQLite's `synchronous=FULL`.
 * Text holding U+0000, which PostgreSQL cannot store, is refused as a bad request before it is
 * sent (see nul-text-guard.ts).
 */
export function openPostgres(url: string, options: PostgresOptions = {}): Kysely<Database> {
  const pg = loadPg();
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    // A server that does not answer fails the query within this bound instead of hanging it.
    connectionTimeoutMillis: 10_000,
    types: { getTypeParser: typeParser },
    application_name: 'threshold',
    // Idle connections do not keep the process alive (as an open SQLite file does not): a
    // process that is done exits even if nobody closed the store.
    allowExitOnIdle: true,
  });
  // An idle connection the server closes (a restart, an administrator) must not crash the
  // process: the pool drops it, and the next query opens a new one or reports the failure.
  pool.on('error', () => undefined);
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    plugins: [new NulTextGuard()],
  });
}

const requirePackage = createRequire(import.meta.url);

/**
 * The `pg` module, loaded on first use rather than with this module: a server on SQLite never
 * needs it (about 1.4 MB of heap and 4 MB resident, measured). `pg` is CommonJS, so it loads
 * synchronously and {@link openPostgres} stays synchronous.
 */
function loadPg(): typeof Pg {
  return (pgModule ??= requirePackage('pg') as typeof Pg);
}
let pgModule: typeof Pg | undefined;

function typeParser(oid: number, format?: 'text' | 'binary'): unknown {
  const { types } = loadPg();
  const int8: number = types.builtins.INT8;
  if (oid === int8 && format !== 'binary') return parseInt8;
  return types.getTypeParser(oid, format);
}

/** A PostgreSQL `bigint` as a number; throws for one a number cannot hold exactly. */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`a bigint column holds ${text}, beyond what a JS number holds exactly`);
  }
  return n;
}

/**
 * The dialect of a database handle (or of a transaction on one). For the few statements that
 * differ: PostgreSQL runs a pool of connections side by side, where SQLite runs one at a time,
 * so a read followed by a write needs a lock on PostgreSQL that SQLite gives for free.
 */
export function dialectOf(db: Pick<Kysely<unknown>, 'getExecutor'>): DialectName {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * Serializes the rest of transaction `trx` with every other transaction that takes the lock
 * named `key` (e.g. `webhooks:carrier-1`), so a read and the write it decides (a count, then
 * an insert within a limit) happen as one step. `trx` must be a transaction.
 *
 * On PostgreSQL a transaction-scoped advisory lock on a 64-bit hash of the key (two keys that
 * collide only wait for each other needlessly). On SQLite nothing needs doing: one connection
 * runs one transaction at a time, and a transaction that read before another process wrote
 * cannot write after it (SQLITE_BUSY), so it fails rather than act on what it read.
 */
export async function lockKey(trx: Kysely<Database>, key: string): Promise<void> {
  if (!trx.isTransaction) throw new Error('lockKey needs a transaction');
  if (dialectOf(trx) === 'postgres') {
    await sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(trx);
  }
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

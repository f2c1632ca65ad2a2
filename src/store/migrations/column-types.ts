/**
 * The column types the migrations use where SQLite and PostgreSQL need different words for the
 * same behaviour. Everything else in the migrations is written once (Kysely's schema builder):
 * `bigint` ms timestamps, `double precision` coordinates, booleans as integers 0 / 1 with a
 * check, JSON as text, no blobs and no auto-increment (the audit log numbers its own entries).
 */
import { sql, type ColumnDataType, type Expression, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.ts';

/** A column type as Kysely's `addColumn` takes it: a name, or SQL. */
export type DataTypeExpression = ColumnDataType | Expression<unknown>;

/** Column types for one dialect. */
export interface ColumnTypes {
  /**
   * Text compared and sorted byte by byte (by code point). SQLite's `text` always is; on
   * PostgreSQL the column gets the `C` collation, so `ORDER BY name`, keyset pages (`id < …`)
   * and `lower()` (ASCII letters only) give what SQLite gives, whatever locale the database
   * was created with.
   */
  readonly text: DataTypeExpression;
  /**
   * An integer of 64 bits: SQLite's `integer` is, PostgreSQL's is 32, so there it is `bigint`
   * (read back as a JS number, see `openPostgres`). A value SQLite takes is never refused.
   */
  readonly integer: DataTypeExpression;
}

const SQLITE: ColumnTypes = { text: 'text', integer: 'integer' };
const POSTGRES: ColumnTypes = { text: sql`text collate "C"`, integer: 'bigint' };

/** The column types of the database a migration runs on. */
export function columnTypes(db: Kysely<unknown>): ColumnTypes {
  return dialectOf(db) === 'postgres' ? POSTGRES : SQLITE;
}

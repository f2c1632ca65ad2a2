/**
 * "A rejected request changes nothing", made checkable: a snapshot of every row of every table
 * of the store, and the difference between two snapshots in words.
 *
 * Every table is compared, with the exceptions listed in {@link SNAPSHOT_RULES}: each names what
 * changes there without any request asking for it (a timer, a device), or what a request
 * records by design before it can be refused, and why that is right. The audit log is compared
 * separately by {@link auditHead} and the callers (new entries are checked one by one).
 */
import { sql, type Kysely } from 'kysely';
import { dialectOf } from '../../src/store/dialect.ts';
import type { Database } from '../../src/store/index.ts';

/** How one table is compared; tables not listed are compared row for row, every column. */
export interface SnapshotRule {
  /** `skip`: not compared. `append-only`: new rows may appear, old ones must not change. */
  readonly mode: 'skip' | 'append-only' | 'omit-columns';
  readonly columns?: readonly string[];
  readonly why: string;
}

/** The tables that may change while a rejected request is answered, and why. */
export const SNAPSHOT_RULES: Readonly<Record<string, SnapshotRule>> = {
  audit_entries: {
    mode: 'skip',
    why: 'compared on its own: the old entries must stay as they were (head hash), and each new entry must be one a refusal writes by design (a denial, a failed sign-in) or a checkpoint record',
  },
  audit_checkpoints: {
    mode: 'append-only',
    why: 'the audit log signs a checkpoint by timer, about a second after any new entry (a denial is one)',
  },
  device_status: {
    mode: 'skip',
    why: 'written only from device reports: every device re-reports its state every 15 s, and a request reaches a device only through a command, which the audit log records',
  },
  api_keys: {
    mode: 'omit-columns',
    columns: ['last_used_at'],
    why: "a presented API key's last use is recorded when the key is recognised, before the route decides (the carrier's key list shows it)",
  },
  pin_slots: {
    mode: 'omit-columns',
    columns: [
      'sync_state',
      'attempts',
      'next_attempt_at',
      'last_error',
      'lock_digest',
      'checked_at',
      'updated_at',
      'lock_window_from',
      'lock_window_until',
    ],
    why: 'PIN sync writes each slot to its lock and reads it back on its own timers (retries after 2 s, 4 s, 8 s …, an hourly reconcile); what a request sets — desired state, code digest, holder, name, window — is compared',
  },
  grant_list_versions: {
    mode: 'skip',
    why: "the version counter of each lock's offline grant list, which the control plane re-signs on its own schedule (every 5 min, and after audited changes in the home); what a list says comes from the tables compared here",
  },
  webhook_deliveries: {
    mode: 'omit-columns',
    columns: [
      'status',
      'attempts',
      'next_attempt_at',
      'last_status_code',
      'last_error',
      'delivered_at',
    ],
    why: "the dispatcher's retry timer updates attempts of queued deliveries on its own schedule",
  },
};

/** Every row of every table: table → row key → the row's JSON. */
export type Snapshot = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** The store's dialect, the names of its tables, and how each table's rows are told apart. */
interface Layout {
  readonly postgres: boolean;
  readonly tables: readonly string[];
  /** PostgreSQL: each table's primary key columns (SQLite tells rows apart by `rowid`). */
  readonly keys: ReadonlyMap<string, readonly string[]>;
}

const layouts = new WeakMap<Kysely<Database>, Layout>();

async function layoutOf(db: Kysely<Database>): Promise<Layout> {
  const known = layouts.get(db);
  if (known) return known;
  const postgres = dialectOf(db) === 'postgres';
  // Kysely's own migration tables included: nothing should write there either.
  const tables = (await db.introspection.getTables({ withInternalKyselyTables: true }))
    .filter((t) => !t.isView)
    .map((t) => t.name)
    .sort();
  const keys = new Map<string, string[]>();
  if (postgres) {
    const r = await sql<{ table: string; column: string }>`
      select c.relname as "table", a.attname as "column"
      from pg_index i
      join pg_class c on c.oid = i.indrelid
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
      where i.indisprimary
      order by c.relname, a.attnum`.execute(db);
    for (const { table, column } of r.rows) keys.set(table, [...(keys.get(table) ?? []), column]);
  }
  const layout = { postgres, tables, keys };
  layouts.set(db, layout);
  return layout;
}

/** The names of the store's tables, and the rule each is compared by (`row` for every column). */
export async function comparedTables(db: Kysely<Database>): Promise<Record<string, string>> {
  return Object.fromEntries(
    (await layoutOf(db)).tables.map((t) => [t, SNAPSHOT_RULES[t]?.mode ?? 'row']),
  );
}

/**
 * Reads every compared table. A row is known by its `rowid` on SQLite, by its primary key on
 * PostgreSQL (by its whole content in a table without one), so a changed row reads as changed.
 */
export async function snapshot(db: Kysely<Database>): Promise<Snapshot> {
  const layout = await layoutOf(db);
  const out = new Map<string, Map<string, string>>();
  for (const table of layout.tables) {
    const rule = SNAPSHOT_RULES[table];
    if (rule?.mode === 'skip') continue;
    const r = layout.postgres
      ? await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db)
      : await sql<
          Record<string, unknown>
        >`select rowid as "__rowid", * from ${sql.table(table)}`.execute(db);
    const key = layout.keys.get(table);
    const rows = new Map<string, string>();
    for (const row of r.rows) {
      const { __rowid: rowid, ...rest } = row;
      const id = layout.postgres
        ? JSON.stringify(key === undefined ? rest : key.map((c) => rest[c]))
        : String(rowid);
      if (rule?.mode === 'omit-columns') for (const c of rule.columns ?? []) delete rest[c];
      const json = JSON.stringify(rest);
      // Twin rows in a table without a key: numbered, so both are seen.
      let unique = id;
      for (let n = 2; rows.has(unique); n++) unique = `${id}#${n}`;
      rows.set(unique, json);
    }
    out.set(table, rows);
  }
  return out;
}

/**
 * A number that moves whenever something was written since it was last read: on SQLite, the
 * rows inserted, updated or deleted through the store's one connection (`total_changes()`); on
 * PostgreSQL, the next transaction id, which every writing transaction takes (so writes to
 * other databases of the server move it too: then the snapshot is read again for nothing,
 * never skipped when something changed). Unchanged means nothing was written at all.
 */
export async function changeCount(db: Kysely<Database>): Promise<number> {
  if ((await layoutOf(db)).postgres) {
    const r = await sql<{
      n: string;
    }>`select pg_snapshot_xmax(pg_current_snapshot())::text as n`.execute(db);
    return Number(r.rows[0]?.n ?? 0);
  }
  const r = await sql<{ n: number }>`select total_changes() as n`.execute(db);
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Snapshots that are only read again when something was written since the last one: a case
 * that wrote nothing costs two {@link changeCount} queries instead of two full reads.
 */
export class SnapshotCache {
  private last: { readonly count: number; readonly snapshot: Snapshot } | null = null;

  constructor(private readonly db: Kysely<Database>) {}

  /** The store as it is now. */
  async now(): Promise<{ readonly count: number; readonly snapshot: Snapshot }> {
    const count = await changeCount(this.db);
    if (this.last?.count !== count) this.last = { count, snapshot: await snapshot(this.db) };
    return this.last;
  }

  /** What changed since `before` (see {@link differences}); nothing written: nothing read. */
  async changesSince(before: {
    readonly count: number;
    readonly snapshot: Snapshot;
  }): Promise<string[]> {
    const after = await this.now();
    return after.count === before.count ? [] : differences(before.snapshot, after.snapshot);
  }
}

/** What changed from `before` to `after`, one line per row (empty: nothing). */
export function differences(before: Snapshot, after: Snapshot): string[] {
  const lines: string[] = [];
  for (const [table, rowsAfter] of after) {
    const rowsBefore = before.get(table) ?? new Map<string, string>();
    const appendOnly = SNAPSHOT_RULES[table]?.mode === 'append-only';
    for (const [id, row] of rowsAfter) {
      const old = rowsBefore.get(id);
      if (old === undefined) {
        if (!appendOnly) lines.push(`${table}: added ${row.slice(0, 400)}`);
      } else if (old !== row) {
        lines.push(`${table}: changed ${old.slice(0, 300)} → ${row.slice(0, 300)}`);
      }
    }
    for (const [id, row] of rowsBefore)
      if (!rowsAfter.has(id)) lines.push(`${table}: removed ${row.slice(0, 400)}`);
  }
  return lines;
}

/** The audit log's newest entry: sequence number and hash (0 and '' when empty). */
export async function auditHead(db: Kysely<Database>): Promise<{ seq: number; hash: string }> {
  const row = await db
    .selectFrom('audit_entries')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? { seq: Number(row.seq), hash: row.hash } : { seq: 0, hash: '' };
}

/** The hash of the entry `seq` now (to see that an old head was not rewritten). */
export async function auditHashAt(db: Kysely<Database>, seq: number): Promise<string> {
  const row = await db
    .selectFrom('audit_entries')
    .select('hash')
    .where('seq', '=', seq)
    .executeTakeFirst();
  return row?.hash ?? '';
}

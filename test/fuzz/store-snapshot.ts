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

let tableNames: string[] | null = null;

async function tables(db: Kysely<Database>): Promise<string[]> {
  if (tableNames) return tableNames;
  const r = await sql<{
    name: string;
  }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name`.execute(
    db,
  );
  tableNames = r.rows.map((row) => row.name);
  return tableNames;
}

/** The names of the store's tables, and the rule each is compared by (`row` for every column). */
export async function comparedTables(db: Kysely<Database>): Promise<Record<string, string>> {
  return Object.fromEntries((await tables(db)).map((t) => [t, SNAPSHOT_RULES[t]?.mode ?? 'row']));
}

/** Reads every compared table. */
export async function snapshot(db: Kysely<Database>): Promise<Snapshot> {
  const out = new Map<string, Map<string, string>>();
  for (const table of await tables(db)) {
    const rule = SNAPSHOT_RULES[table];
    if (rule?.mode === 'skip') continue;
    const r = await sql<
      Record<string, unknown>
    >`select rowid as "__rowid", * from ${sql.table(table)}`.execute(db);
    const rows = new Map<string, string>();
    for (const row of r.rows) {
      const { __rowid: id, ...rest } = row;
      if (rule?.mode === 'omit-columns') for (const c of rule.columns ?? []) delete rest[c];
      rows.set(String(id), JSON.stringify(rest));
    }
    out.set(table, rows);
  }
  return out;
}

/**
 * Rows inserted, updated or deleted through the store's connection since it opened (SQLite's
 * `total_changes()`). The store has one connection, so an unchanged count means nothing was
 * written at all.
 */
export async function changeCount(db: Kysely<Database>): Promise<number> {
  const r = await sql<{ n: number }>`select total_changes() as n`.execute(db);
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Snapshots that are only read again when something was written since the last one: a case
 * that wrote nothing costs two `total_changes()` queries instead of two full reads.
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

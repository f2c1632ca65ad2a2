/**
 * The audit log's storage: chained entries and signed checkpoints.
 *
 * The log is one chain, however many processes write to it: every append takes the append
 * lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: the database's write lock,
 * taken before the head is read) and refuses entries that do not continue the stored head. Two
 * writers can never both chain onto the same entry, and no seq is skipped.
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import { GENESIS_HASH, type AuditCheckpoint, type AuditEntry } from '../core/audit-chain.ts';
import { ThresholdError } from '../core/errors.ts';
import { dialectOf } from './dialect.ts';
import { recordFromJson, toJsonText } from './row-codec.ts';
import type { AuditCheckpointRow, AuditEntryRow, Database } from './schema.ts';

/**
 * A write of another repository made in the same transaction as audit entries, so a state
 * change and the record of it are committed together (one durable commit, not two).
 */
export type AlongsideWrite = (db: Kysely<Database>) => Promise<void>;

/** Entries to store, and optionally a checkpoint, as one append. */
export interface AuditAppend {
  readonly entries: readonly AuditEntry[];
  readonly checkpoint?: AuditCheckpoint;
}

/**
 * Chains what is to be appended onto `head`, the stored entry with the highest seq (null for
 * an empty log). Called by {@link AuditRepository.appendChained} while it holds the append
 * lock; synchronous, so the lock is held no longer than the writes take.
 */
export type AuditChainer = (head: AuditEntry | null) => AuditAppend;

/**
 * Rows per insert statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound
 * parameters (10 per entry).
 */
const INSERT_CHUNK = 500;

/**
 * The key of PostgreSQL's advisory lock on appending to the audit log (one for the whole
 * database: the log is one chain). Any constant no other lock uses; this one is "THRAUD" in
 * ASCII.
 */
const AUDIT_APPEND_LOCK = 0x5448_5241_5544;

/**
 * Stores the audit log. It only appends and reads: chaining and verification are the core's
 * (`chainEntry`, `AuditVerifier`); the store keeps entries exactly as given, so hashes verify
 * after a round trip.
 */
export class AuditRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Appends entries and, optionally, a checkpoint, in one transaction with the `alongside`
   * writes: either all are stored or none. Rejected, storing nothing, when the entries do not
   * continue the stored head (the first one's seq and prevHash must follow it, each next one
   * the one before: another writer appended meanwhile, see {@link appendChained}), or when a
   * seq exists already.
   */
  async append(
    entries: readonly AuditEntry[],
    checkpoint?: AuditCheckpoint,
    alongside: readonly AlongsideWrite[] = [],
  ): Promise<void> {
    if (entries.length === 0 && checkpoint === undefined && alongside.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      if (entries.length > 0) await lockForAppend(trx);
      for (const write of alongside) await write(trx);
      if (entries.length > 0) checkContinues(await headOf(trx), entries);
      await insert(trx, entries, checkpoint);
    });
  }

  /**
   * Appends what `chain` builds on the stored head, in one transaction with the `alongside`
   * writes, and returns it. The head is read, and the entries chained and stored, under the
   * append lock: any number of processes may call this at once, and the log stays one chain
   * with no gap. The `alongside` writes run first, inside the lock.
   */
  async appendChained(
    chain: AuditChainer,
    alongside: readonly AlongsideWrite[] = [],
  ): Promise<AuditAppend> {
    return this.db.transaction().execute(async (trx) => {
      await lockForAppend(trx);
      for (const write of alongside) await write(trx);
      const head = await headOf(trx);
      const built = chain(head);
      // A chainer that ignored the head it was given must not fork the log either.
      checkContinues(head, built.entries);
      await insert(trx, built.entries, built.checkpoint);
      return built;
    });
  }

  /**
   * Stores the keys of `AuditLog.appendOnce`'s facts in `db` (a transaction holding the append
   * lock) and returns those that were not stored yet: the facts to record. Each key is
   * returned to one writer only, however many try it at once.
   */
  async claimOnceKeys(
    db: Kysely<Database>,
    keys: readonly string[],
    at: number,
  ): Promise<string[]> {
    if (keys.length === 0) return [];
    const rows = await db
      .insertInto('audit_once')
      .values(keys.map((key) => ({ key, at })))
      .onConflict((oc) => oc.column('key').doNothing())
      .returning('key')
      .execute();
    return rows.map((r) => r.key);
  }

  /** The entry with the highest seq, or null when the log is empty. */
  async last(): Promise<AuditEntry | null> {
    return headOf(this.db);
  }

  /** The entries with `fromSeq <= seq <= toSeq`, in seq order. */
  async getRange(fromSeq: number, toSeq: number): Promise<AuditEntry[]> {
    const rows = await this.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('seq', '>=', fromSeq)
      .where('seq', '<=', toSeq)
      .orderBy('seq')
      .execute();
    return rows.map(toEntry);
  }

  /**
   * Every entry in seq order, read `batchSize` at a time (keyset pagination on seq), so the
   * whole log never sits in memory. Entries appended while iterating are included.
   */
  async *iterate(batchSize = 5000): AsyncGenerator<AuditEntry, void, undefined> {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    }
    let after: number | null = null;
    for (;;) {
      let query = this.db.selectFrom('audit_entries').selectAll();
      if (after !== null) query = query.where('seq', '>', after);
      const rows = await query.orderBy('seq').limit(batchSize).execute();
      for (const row of rows) yield toEntry(row);
      const lastRow = rows.at(-1);
      if (lastRow === undefined || rows.length < batchSize) return;
      after = lastRow.seq;
    }
  }

  /** Every checkpoint, in seq order. */
  async listCheckpoints(): Promise<AuditCheckpoint[]> {
    const rows = await this.db.selectFrom('audit_checkpoints').selectAll().orderBy('seq').execute();
    return rows.map(toCheckpoint);
  }

  /** The entries about one subject (e.g. "session:…"), in seq order. */
  async entriesForSubject(subject: string): Promise<AuditEntry[]> {
    const rows = await this.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('subject', '=', subject)
      .orderBy('seq')
      .execute();
    return rows.map(toEntry);
  }

  /** How many entries the log holds. */
  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('audit_entries')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}

/**
 * Takes the append lock for the rest of the transaction `trx`: PostgreSQL's advisory lock; on
 * SQLite a write that changes nothing, which takes the database's write lock before the head is
 * read (a deferred transaction would read first and could not write after another process did).
 */
async function lockForAppend(trx: Kysely<Database>): Promise<void> {
  if (dialectOf(trx) === 'postgres') {
    await sql`select pg_advisory_xact_lock(${sql.lit(AUDIT_APPEND_LOCK)})`.execute(trx);
  } else {
    await sql`update audit_entries set seq = seq where 0`.execute(trx);
  }
}

/** The stored entry with the highest seq, or null. */
async function headOf(db: Kysely<Database>): Promise<AuditEntry | null> {
  const row = await db
    .selectFrom('audit_entries')
    .selectAll()
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row === undefined ? null : toEntry(row);
}

/** Throws unless `entries` continue `head` link by link (seq + 1, prevHash = hash). */
function checkContinues(head: AuditEntry | null, entries: readonly AuditEntry[]): void {
  let prev: Pick<AuditEntry, 'seq' | 'hash'> = head ?? { seq: 0, hash: GENESIS_HASH };
  for (const [i, e] of entries.entries()) {
    if (e.seq !== prev.seq + 1 || e.prevHash !== prev.hash) {
      throw new ThresholdError(
        'internal.error',
        i === 0
          ? `audit entry ${e.seq} does not continue the stored log, whose last entry is ` +
              `${prev.seq}: it was chained on another head (another writer appended first?)`
          : `audit entry ${e.seq} does not follow entry ${prev.seq} of its batch`,
        { seq: e.seq, after: prev.seq },
      );
    }
    prev = e;
  }
}

async function insert(
  trx: Kysely<Database>,
  entries: readonly AuditEntry[],
  checkpoint: AuditCheckpoint | undefined,
): Promise<void> {
  for (let i = 0; i < entries.length; i += INSERT_CHUNK) {
    await trx
      .insertInto('audit_entries')
      .values(entries.slice(i, i + INSERT_CHUNK).map(toEntryRow))
      .execute();
  }
  if (checkpoint !== undefined) {
    await trx
      .insertInto('audit_checkpoints')
      .values({
        seq: checkpoint.seq,
        hash: checkpoint.hash,
        at: checkpoint.at,
        public_key: checkpoint.publicKey,
        signature: checkpoint.signature,
      })
      .execute();
  }
}

function toEntryRow(e: AuditEntry): AuditEntryRow {
  return {
    seq: e.seq,
    at: e.at,
    kind: e.kind,
    actor_type: e.actor.type,
    actor_id: e.actor.id,
    subject: e.subject,
    data: toJsonText(e.data),
    device_mac: e.deviceMac ?? null,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

function toEntry(row: Selectable<AuditEntryRow>): AuditEntry {
  const base = {
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    actor: { type: row.actor_type, id: row.actor_id },
    subject: row.subject,
    data: recordFromJson(row.data, `audit_entries.data of entry ${row.seq}`),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
  return row.device_mac === null ? base : { ...base, deviceMac: row.device_mac };
}

function toCheckpoint(row: Selectable<AuditCheckpointRow>): AuditCheckpoint {
  return {
    seq: row.seq,
    hash: row.hash,
    at: row.at,
    publicKey: row.public_key,
    signature: row.signature,
  };
}

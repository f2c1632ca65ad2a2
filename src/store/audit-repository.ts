/** The audit log's storage: chained entries and signed checkpoints. */
/**
 * A write of another repository made in the same transaction as audit entries, so a state
 * change and the record of it are committed together (one durable commit, not two).
 */
export type AlongsideWrite = (db: Kysely<Database>) => Promise<void>;

import type { Kysely, Selectable } from 'kysely';
import type { AuditCheckpoint, AuditEntry } from '../core/audit-chain.ts';
import { recordFromJson, toJsonText } from './row-codec.ts';
import type { AuditCheckpointRow, AuditEntryRow, Database } from './schema.ts';

/**
 * Rows per insert statement: well under SQLite's 32,766 and PostgreSQL's 65,535 bound
 * parameters (10 per entry).
 */
const INSERT_CHUNK = 500;

/**
 * Stores the audit log. It only appends and reads: chaining and verification are the core's
 * (`chainEntry`, `AuditVerifier`); the store keeps entries exactly as given, so hashes verify
 * after a round trip.
 */
export class AuditRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Appends entries and, optionally, a checkpoint, in one transaction: either all are stored
   * or none (e.g. a seq that exists already rejects the whole batch).
   */
  async append(
    entries: readonly AuditEntry[],
    checkpoint?: AuditCheckpoint,
    alongside: readonly AlongsideWrite[] = [],
  ): Promise<void> {
    if (entries.length === 0 && checkpoint === undefined && alongside.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      for (const write of alongside) await write(trx);
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
    });
  }

  /** The entry with the highest seq, or null when the log is empty. */
  async last(): Promise<AuditEntry | null> {
    const row = await this.db
      .selectFrom('audit_entries')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row === undefined ? null : toEntry(row);
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

/**
 * Replicas' leases (migration 0010). A replica renews its lease while it runs; one whose
 * lease has run out is dead to the others, which take over its sessions. Times are ms since
 * the epoch on the replicas' clocks, which must agree to well within a lease (NTP does).
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** A replica's lease as stored. */
export interface ReplicaLease {
  readonly id: string;
  readonly startedAt: number;
  readonly expiresAt: number;
}

/** Reads and writes the `replicas` table. */
export class ReplicaRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Takes or renews `id`'s lease until `expiresAt`. `startedAt` is kept from an existing row
   * whose lease is still running (a renewal), and set to `now` otherwise (a new life: the
   * replica restarted, or its lease had run out and others may have taken its sessions).
   * Returns the lease as stored.
   */
  async renew(id: string, now: number, expiresAt: number): Promise<ReplicaLease> {
    // One statement: atomic on both dialects, with no read-then-write to lock.
    const row = await this.db
      .insertInto('replicas')
      .values({ id, started_at: now, expires_at: expiresAt })
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({
          expires_at: expiresAt,
          started_at: sql<number>`case when replicas.expires_at > ${now} then replicas.started_at else ${now} end`,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return { id: row.id, startedAt: Number(row.started_at), expiresAt: Number(row.expires_at) };
  }

  /** Every lease, live or not, oldest start first. */
  async list(): Promise<ReplicaLease[]> {
    const rows = await this.db
      .selectFrom('replicas')
      .selectAll()
      .orderBy('started_at')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, startedAt: r.started_at, expiresAt: r.expires_at }));
  }

  /** Ends `id`'s lease at once (a clean stop: the others need not wait for it to run out). */
  async release(id: string, now: number): Promise<void> {
    await this.db.updateTable('replicas').set({ expires_at: now }).where('id', '=', id).execute();
  }
}

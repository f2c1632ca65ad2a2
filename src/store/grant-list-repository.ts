/**
 * The versions of the offline grant lists (0009): per lock, the version of the last list the
 * control plane signed, so that a lock's versions only ever grow, across restarts too.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** The last version signed for a lock, and when that list was issued (ms). */
export interface GrantListVersion {
  readonly lockDeviceId: string;
  readonly version: number;
  readonly issuedAt: number;
}

/** Stores one version counter per lock. */
export class GrantListRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Claims the next version of a lock's list, issued at `issuedAt`, atomically, and returns it:
   * the larger of the last version + 1 and `issuedAt` itself (ms). Called before the list is
   * published: a version handed out is never handed out again, whether or not its list reached
   * anyone. Following the clock keeps versions growing even when this table starts over (a
   * database restored from a backup, or a new one with the same keys): a hub holding a list
   * from before still takes the next one, and an old list replayed to it still loses.
   */
  async next(lockDeviceId: string, issuedAt: number): Promise<number> {
    return nextVersion(this.db, lockDeviceId, issuedAt);
  }

  /**
   * {@link next} for many lists at once, in one transaction: one commit (one flush to disk)
   * where a claim each would cost one each. Resolves with the version of each lock's list, by
   * lock id; a lock named twice gets the later claim's.
   */
  async nextMany(
    claims: readonly { readonly lockDeviceId: string; readonly issuedAt: number }[],
  ): Promise<Map<string, number>> {
    if (claims.length === 0) return new Map();
    return this.db.transaction().execute(async (trx) => {
      const out = new Map<string, number>();
      for (const c of claims)
        out.set(c.lockDeviceId, await nextVersion(trx, c.lockDeviceId, c.issuedAt));
      return out;
    });
  }

  /** The last version claimed for a lock, or null if none was. */
  async get(lockDeviceId: string): Promise<GrantListVersion | null> {
    const row = await this.db
      .selectFrom('grant_list_versions')
      .selectAll()
      .where('lock_device_id', '=', lockDeviceId)
      .executeTakeFirst();
    return row === undefined
      ? null
      : {
          lockDeviceId: row.lock_device_id,
          version: Number(row.version),
          issuedAt: Number(row.issued_at),
        };
  }
}

/** One claim of {@link GrantListRepository.next}, on `db` or within a transaction. */
async function nextVersion(
  db: Kysely<Database>,
  lockDeviceId: string,
  issuedAt: number,
): Promise<number> {
  const row = await db
    .insertInto('grant_list_versions')
    .values({ lock_device_id: lockDeviceId, version: Math.max(1, issuedAt), issued_at: issuedAt })
    .onConflict((oc) =>
      oc.column('lock_device_id').doUpdateSet({
        version: sql<number>`case when grant_list_versions.version + 1 > ${issuedAt} then grant_list_versions.version + 1 else ${issuedAt} end`,
        issued_at: issuedAt,
      }),
    )
    .returning('version')
    .executeTakeFirstOrThrow();
  return Number(row.version);
}

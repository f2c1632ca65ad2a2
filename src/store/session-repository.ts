/** Access sessions, stored generically until the core's session type settles. */
import type { Kysely, Selectable, SelectQueryBuilder } from 'kysely';
import { fromJsonText, toJsonText } from './row-codec.ts';
import type { AccessSessionRow, Database } from './schema.ts';

/**
 * An access session as stored: the fields the store looks sessions up by, plus `data`, the
 * full snapshot the orchestrator resumes from after a restart. Times are ms since the epoch.
 */
export interface StoredSession {
  readonly id: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly deliveryId: string | null;
  readonly principalId: string;
  /** The state machine's state, e.g. "open". */
  readonly state: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When the session reached a final state; null while it is running. */
  readonly endedAt: number | null;
  /** The full session as JSON-serialisable data. */
  readonly data: unknown;
  /**
   * The replica driving the session (replicas only; see {@link SessionRepository.saveOwned}).
   * Read back, never written by {@link SessionRepository.save}.
   */
  readonly owner?: string | null;
}

/** Options for {@link SessionRepository.listForHome}. */
export interface SessionListOptions {
  /** At most this many sessions; default 100. */
  readonly limit?: number;
}

/** Stores access sessions. "Newest first" means by `createdAt` descending, then id. */
export class SessionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Inserts the session, or replaces everything but `id` and `createdAt` if it exists. The
   * write is committed durably before the promise resolves.
   */
  async save(session: StoredSession): Promise<void> {
    const { id, created_at, ...changes } = toRow(session);
    await this.db
      .insertInto('access_sessions')
      .values({ id, created_at, ...changes })
      .onConflict((oc) => oc.column('id').doUpdateSet(changes))
      .execute();
  }

  /**
   * Saves the session as replica `owner`'s: inserted with that owner, or updated only while
   * the stored row is still `owner`'s. False, writing nothing, when another replica has taken
   * the session over: the caller no longer drives it (the fence against a replica that lost
   * its lease and has not noticed yet).
   */
  async saveOwned(session: StoredSession, owner: string): Promise<boolean> {
    const { id, created_at, ...changes } = toRow(session);
    const r = await this.db
      .insertInto('access_sessions')
      .values({ id, created_at, ...changes, owner })
      .onConflict((oc) =>
        oc.column('id').doUpdateSet(changes).where('access_sessions.owner', '=', owner),
      )
      .executeTakeFirst();
    return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /**
   * Makes `to` the owner of the open session `id` if `from` still owns it (`null`: nobody,
   * e.g. a session a single server left). True when this call moved it: of several replicas
   * claiming the same session at once, exactly one gets true.
   */
  async claim(id: string, from: string | null, to: string): Promise<boolean> {
    const r = await this.db
      .updateTable('access_sessions')
      .set({ owner: to })
      .where('id', '=', id)
      .where('ended_at', 'is', null)
      .where((eb) => (from === null ? eb('owner', 'is', null) : eb('owner', '=', from)))
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** The session with this id, or null. */
  async get(id: string): Promise<StoredSession | null> {
    const row = await this.db
      .selectFrom('access_sessions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : fromRow(row);
  }

  /** A home's sessions, newest first. */
  async listForHome(homeId: string, options: SessionListOptions = {}): Promise<StoredSession[]> {
    const rows = await this.db
      .selectFrom('access_sessions')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(options.limit ?? 100)
      .execute();
    return rows.map(fromRow);
  }

  /** Every session that has not ended, oldest first (what to resume after a restart). */
  async listOpen(): Promise<StoredSession[]> {
    const rows = await this.db
      .selectFrom('access_sessions')
      .selectAll()
      .where('ended_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(fromRow);
  }

  /**
   * Open sessions nobody alive drives: owned by none of `liveOwners` (replicas whose lease
   * runs), or by nobody, or by `self` (this replica's own, e.g. from before it restarted
   * within its lease); `self` is in `liveOwners`. Oldest first, at most `limit`.
   */
  async listOpenToTakeOver(
    liveOwners: readonly string[],
    self: string,
    limit = 1_000,
  ): Promise<StoredSession[]> {
    const rows = await openToTakeOverQuery(this.db, liveOwners, self, limit).execute();
    return rows.map(fromRow);
  }

  /** The newest session at this door that has not ended, or null. */
  async findActiveForDoor(doorId: string): Promise<StoredSession | null> {
    const row = await this.db
      .selectFrom('access_sessions')
      .selectAll()
      .where('door_id', '=', doorId)
      .where('ended_at', 'is', null)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row === undefined ? null : fromRow(row);
  }

  /** The sessions of a delivery, newest first. */
  async findForDelivery(deliveryId: string): Promise<StoredSession[]> {
    const rows = await this.db
      .selectFrom('access_sessions')
      .selectAll()
      .where('delivery_id', '=', deliveryId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(fromRow);
  }
}

function toRow(s: StoredSession): Omit<AccessSessionRow, 'owner'> {
  return {
    id: s.id,
    home_id: s.homeId,
    door_id: s.doorId,
    delivery_id: s.deliveryId,
    principal_id: s.principalId,
    state: s.state,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    ended_at: s.endedAt,
    data: toJsonText(s.data),
  };
}

function fromRow(row: Selectable<AccessSessionRow>): StoredSession {
  return {
    id: row.id,
    homeId: row.home_id,
    doorId: row.door_id,
    deliveryId: row.delivery_id,
    principalId: row.principal_id,
    state: row.state,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    endedAt: row.ended_at,
    data: fromJsonText(row.data, `access_sessions.data of ${row.id}`),
    // Only replicas' sessions have one (a single server's rows read as they always did).
    ...(row.owner ? { owner: row.owner } : {}),
  };
}

/**
 * The query of {@link SessionRepository.listOpenToTakeOver} (exported so a test can ask each
 * database how it runs it). Every replica runs it every second: it is answered from the
 * partial index of open sessions (`access_sessions_open_owner_idx`, migration 0011), in its
 * order, so its cost follows the open sessions, not every session ever recorded.
 */
export function openToTakeOverQuery(
  db: Kysely<Database>,
  liveOwners: readonly string[],
  self: string,
  limit: number,
): SelectQueryBuilder<Database, 'access_sessions', Selectable<AccessSessionRow>> {
  const others = liveOwners.filter((o) => o !== self);
  return db
    .selectFrom('access_sessions')
    .selectAll()
    .where('ended_at', 'is', null)
    .$if(others.length > 0, (qb) =>
      qb.where((eb) => eb.or([eb('owner', 'is', null), eb('owner', 'not in', others)])),
    )
    .orderBy('created_at')
    .orderBy('id')
    .limit(limit);
}

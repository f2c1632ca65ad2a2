/** Guest grants and the invites that create them. */
import type { Kysely, Selectable } from 'kysely';
import type { GrantSchedule } from '../core/grant-schedule.ts';
import type { GuestGrant } from '../core/model.ts';
import { groupedByKey } from './id-chunks.ts';
import { fromFlag, toFlag } from './row-codec.ts';
import type { Database, GuestGrantRow, InviteRow } from './schema.ts';

/** What an invite will grant once accepted. */
export interface InviteGrantSpec {
  readonly schedule: GrantSchedule;
  readonly maxUses: number | null;
  readonly maxMinutesPerEntry: number | null;
  readonly requiresRecording: boolean;
}

/** An invite link (its token is never stored, only the token's hash). */
export interface Invite {
  readonly id: string;
  readonly tokenHash: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly createdBy: string;
  readonly displayName: string;
  readonly grant: InviteGrantSpec;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly acceptedAt: number | null;
  readonly acceptedBy: string | null;
  readonly revokedAt: number | null;
}

/** Stores guest grants and invites. Lists are ordered by creation time, then id. */
export class GuestGrantRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async create(g: GuestGrant): Promise<void> {
    await this.db
      .insertInto('guest_grants')
      .values({
        id: g.id,
        home_id: g.homeId,
        door_id: g.doorId,
        principal_id: g.principalId,
        granted_by: g.grantedBy,
        schedule: JSON.stringify(g.schedule),
        max_uses: g.limits.maxUses,
        uses: g.uses,
        max_minutes_per_entry: g.limits.maxMinutesPerEntry,
        requires_recording: toFlag(g.limits.requiresRecording),
        created_at: g.createdAt,
        revoked_at: g.revokedAt,
        revoked_by: g.revokedBy,
        revoke_reason: g.revokeReason,
      })
      .execute();
  }

  async get(id: string): Promise<GuestGrant | null> {
    const row = await this.db
      .selectFrom('guest_grants')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toGrant(row);
  }

  /** The grants of a home, revoked ones included. */
  async listForHome(homeId: string): Promise<GuestGrant[]> {
    const rows = await this.db
      .selectFrom('guest_grants')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toGrant);
  }

  /**
   * {@link listForHome} for many homes, by home (a few queries for any number of homes), each
   * home's in the same order.
   */
  async listForHomes(homeIds: readonly string[]): Promise<Map<string, GuestGrant[]>> {
    const rows = await groupedByKey(
      homeIds,
      (chunk) =>
        this.db
          .selectFrom('guest_grants')
          .selectAll()
          .where('home_id', 'in', chunk)
          .orderBy('created_at')
          .orderBy('id')
          .execute(),
      (row) => row.home_id,
    );
    return new Map([...rows].map(([id, list]) => [id, list.map(toGrant)]));
  }

  /** The grants held by a principal, revoked ones included. */
  async listForPrincipal(principalId: string): Promise<GuestGrant[]> {
    const rows = await this.db
      .selectFrom('guest_grants')
      .selectAll()
      .where('principal_id', '=', principalId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toGrant);
  }

  /** Counts one entry; false when the grant's use limit is reached or it is revoked. */
  async use(id: string): Promise<boolean> {
    const r = await this.db
      .updateTable('guest_grants')
      .set((eb) => ({ uses: eb('uses', '+', 1) }))
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Revokes one grant; false when there is none or it was already revoked. */
  async revoke(id: string, by: string, atMs: number, reason: string): Promise<boolean> {
    const r = await this.db
      .updateTable('guest_grants')
      .set({ revoked_at: atMs, revoked_by: by, revoke_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Revokes every grant held by `principalId` and, transitively, every grant shared by them
   * or by anyone whose grant this revokes (cascading). Returns the ids revoked, in order.
   */
  async revokeCascading(
    principalId: string,
    by: string,
    atMs: number,
    reason: string,
  ): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const revoked: string[] = [];
      const seen = new Set<string>();
      const queue = [principalId];
      while (queue.length > 0) {
        const who = queue.shift()!;
        if (seen.has(who)) continue;
        seen.add(who);
        const rows = await trx
          .selectFrom('guest_grants')
          .select(['id', 'principal_id'])
          .where('revoked_at', 'is', null)
          .where((eb) => eb.or([eb('principal_id', '=', who), eb('granted_by', '=', who)]))
          .orderBy('created_at')
          .orderBy('id')
          .execute();
        for (const r of rows) {
          await trx
            .updateTable('guest_grants')
            .set({ revoked_at: atMs, revoked_by: by, revoke_reason: reason })
            .where('id', '=', r.id)
            .where('revoked_at', 'is', null)
            .execute();
          revoked.push(r.id);
          if (r.principal_id !== who) queue.push(r.principal_id);
        }
      }
      return revoked;
    });
  }

  async createInvite(i: Invite): Promise<void> {
    await this.db
      .insertInto('invites')
      .values({
        id: i.id,
        token_hash: i.tokenHash,
        home_id: i.homeId,
        door_id: i.doorId,
        created_by: i.createdBy,
        display_name: i.displayName,
        grant_spec: JSON.stringify(i.grant),
        created_at: i.createdAt,
        expires_at: i.expiresAt,
        accepted_at: i.acceptedAt,
        accepted_by: i.acceptedBy,
        revoked_at: i.revokedAt,
      })
      .execute();
  }

  async findInviteByTokenHash(tokenHash: string): Promise<Invite | null> {
    const row = await this.db
      .selectFrom('invites')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row === undefined ? null : toInvite(row);
  }

  async listInvitesForHome(homeId: string): Promise<Invite[]> {
    const rows = await this.db
      .selectFrom('invites')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toInvite);
  }

  /** Marks an invite accepted, once: false if it was accepted, revoked or expired already. */
  async acceptInvite(id: string, by: string, atMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable('invites')
      .set({ accepted_at: atMs, accepted_by: by })
      .where('id', '=', id)
      .where('accepted_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', atMs)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async revokeInvite(id: string, atMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable('invites')
      .set({ revoked_at: atMs })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where('accepted_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}

function toGrant(row: Selectable<GuestGrantRow>): GuestGrant {
  return {
    id: row.id,
    homeId: row.home_id,
    doorId: row.door_id,
    principalId: row.principal_id,
    grantedBy: row.granted_by,
    schedule: JSON.parse(row.schedule) as GrantSchedule,
    limits: {
      maxUses: row.max_uses === null ? null : Number(row.max_uses),
      maxMinutesPerEntry:
        row.max_minutes_per_entry === null ? null : Number(row.max_minutes_per_entry),
      requiresRecording: fromFlag(row.requires_recording),
    },
    uses: Number(row.uses),
    createdAt: Number(row.created_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    revokedBy: row.revoked_by,
    revokeReason: row.revoke_reason,
  };
}

function toInvite(row: Selectable<InviteRow>): Invite {
  return {
    id: row.id,
    tokenHash: row.token_hash,
    homeId: row.home_id,
    doorId: row.door_id,
    createdBy: row.created_by,
    displayName: row.display_name,
    grant: JSON.parse(row.grant_spec) as InviteGrantSpec,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    acceptedAt: row.accepted_at === null ? null : Number(row.accepted_at),
    acceptedBy: row.accepted_by,
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

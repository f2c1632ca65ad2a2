/** Principals and how they prove who they are: passwords, carrier API keys, sign-in sessions. */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { Principal } from '../core/model.ts';
import { lockKey } from './dialect.ts';
import { groupedByKey } from './id-chunks.ts';
import type { ApiKeyRow, CourierInviteRow, Database, PrincipalRow } from './schema.ts';

/** How a principal signs in. `username` is unique across all principals. */
export interface PrincipalCredentials {
  readonly username: string;
  /** A password hash in the hasher's own self-describing format (e.g. argon2id PHC string). */
  readonly passwordHash: string;
}

/** A principal found by user name, with the hash to check the password against. */
export interface PrincipalWithPassword {
  readonly principal: Principal;
  readonly passwordHash: string;
}

/** A carrier organisation. */
export interface Carrier {
  readonly id: string;
  readonly name: string;
}

/** A carrier's API key. Only a hash of the key is stored; the key itself is shown once. */
export interface ApiKey {
  readonly id: string;
  readonly carrierId: string;
  /** Hash of the secret key, unique. */
  readonly keyHash: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** ms since the epoch, or null while the key is valid. */
  readonly revokedAt: number | null;
  /** ms since the epoch of the last accepted request, or null if never used. */
  readonly lastUsedAt: number | null;
  /** A label the carrier chose. */
  readonly name: string;
  /** What the key may do (see CARRIER_SCOPES in src/server/routes/carrier-auth.ts). */
  readonly scopes: readonly string[];
  /** The key's first characters, to tell keys apart; '' for keys made before scopes. */
  readonly prefix: string;
  /** Who made it (an admin's or a key's id); null for keys made before scopes. */
  readonly createdBy: string | null;
  /** The key that replaced it when rotated, or null. */
  readonly replacedBy: string | null;
}

/** A courier of a carrier, as the carrier's admins see it. */
export interface CarrierCourier {
  readonly principal: Principal;
  readonly username: string;
  /** ms since the epoch when the carrier revoked the courier, or null while they may work. */
  readonly disabledAt: number | null;
}

/**
 * An invitation a carrier admin sends a courier: a link whose token only the courier holds
 * (the store keeps its hash). Accepting it makes the courier's account.
 */
export interface CourierInvite {
  readonly id: string;
  readonly carrierId: string;
  /** SHA-256 of the link's token, unique. */
  readonly tokenHash: string;
  /** The name the courier will go by ("Sam"); the courier chooses only a user name. */
  readonly displayName: string;
  /** Who sent it: an admin's principal id, or `apikey:<id>`. */
  readonly createdBy: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** ms since the epoch; the link is dead from this instant on. */
  readonly expiresAt: number;
  /** The courier the invitation made, once accepted. */
  readonly acceptedBy: string | null;
  readonly acceptedAt: number | null;
  readonly revokedAt: number | null;
}

/** A sign-in session, keyed by a hash of its bearer token. */
export interface AuthSession {
  readonly tokenHash: string;
  readonly principalId: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** ms since the epoch; the session is invalid from this instant on. */
  readonly expiresAt: number;
}

/** Stores principals, carriers, carrier API keys and sign-in sessions. */
export class PrincipalRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Adds a principal with its credentials. Rejects if the id or the user name is taken (see
   * `isUniqueViolation`), or if its home or carrier does not exist.
   */
  async create(principal: Principal, credentials: PrincipalCredentials): Promise<void> {
    await this.db
      .insertInto('principals')
      .values({
        id: principal.id,
        username: credentials.username,
        password_hash: credentials.passwordHash,
        role: principal.role,
        display_name: principal.displayName,
        home_id: principal.homeId,
        carrier_id: principal.carrierId,
      })
      .execute();
  }

  /** The principal with this id, or null. */
  async get(id: string): Promise<Principal | null> {
    const row = await this.db
      .selectFrom('principals')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toPrincipal(row);
  }

  /** The people of a home who are not disabled (owner, members, guests), oldest first. */
  async listForHome(homeId: string): Promise<Principal[]> {
    const rows = await this.db
      .selectFrom('principals')
      .selectAll()
      .where('home_id', '=', homeId)
      .where('disabled_at', 'is', null)
      .where('role', 'in', ['owner', 'member', 'guest'])
      .orderBy('id')
      .execute();
    return rows.map(toPrincipal);
  }

  /**
   * {@link listForHome} for many homes, by home (a few queries for any number of homes): each
   * home's people who are not disabled, in the same order.
   */
  async listForHomes(homeIds: readonly string[]): Promise<Map<string, Principal[]>> {
    const rows = await groupedByKey(
      homeIds,
      (chunk) =>
        this.db
          .selectFrom('principals')
          .selectAll()
          .where('home_id', 'in', chunk)
          .where('disabled_at', 'is', null)
          .where('role', 'in', ['owner', 'member', 'guest'])
          .orderBy('id')
          .execute(),
      (row) => row.home_id ?? '',
    );
    return new Map([...rows].map(([id, list]) => [id, list.map(toPrincipal)]));
  }

  /** The principal with this user name (exact match) and its password hash, or null. */
  async getByUsername(username: string): Promise<PrincipalWithPassword | null> {
    const row = await this.db
      .selectFrom('principals')
      .selectAll()
      .where('username', '=', username)
      .executeTakeFirst();
    return row === undefined
      ? null
      : { principal: toPrincipal(row), passwordHash: row.password_hash };
  }

  /**
   * Disables a principal: it can no longer sign in, and all its sign-in sessions end. False
   * when there is no such principal or it was disabled already.
   */
  async disable(id: string, atMs: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('principals')
        .set({ disabled_at: atMs })
        .where('id', '=', id)
        .where('disabled_at', 'is', null)
        .executeTakeFirst();
      await trx.deleteFrom('auth_sessions').where('principal_id', '=', id).execute();
      return r.numUpdatedRows > 0n;
    });
  }

  /** Whether the principal is disabled (or does not exist). */
  async isDisabled(id: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('principals')
      .select('disabled_at')
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined || row.disabled_at !== null;
  }

  /** Whether a user name is taken, whatever its capitalisation ("Owner" is "owner"). */
  async usernameTaken(username: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('principals')
      .select('id')
      .where(sql<string>`lower(username)`, '=', username.toLowerCase())
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Adds a carrier; rejects if the id exists. */
  async createCarrier(carrier: Carrier): Promise<void> {
    await this.db.insertInto('carriers').values({ id: carrier.id, name: carrier.name }).execute();
  }

  /** The carrier with this id, or null. */
  async getCarrier(id: string): Promise<Carrier | null> {
    const row = await this.db
      .selectFrom('carriers')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : { id: row.id, name: row.name };
  }

  /** Every carrier on this server, by name, then id. */
  async listCarriers(): Promise<Carrier[]> {
    const rows = await this.db
      .selectFrom('carriers')
      .selectAll()
      .orderBy('name')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, name: r.name }));
  }

  /** The couriers of a carrier, revoked ones too, oldest id first. */
  async listCouriers(carrierId: string): Promise<CarrierCourier[]> {
    const rows = await this.db
      .selectFrom('principals')
      .selectAll()
      .where('carrier_id', '=', carrierId)
      .where('role', '=', 'courier')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      principal: toPrincipal(r),
      username: r.username,
      disabledAt: r.disabled_at,
    }));
  }

  /** Adds a courier invitation; rejects if the id or token hash exists. */
  async createCourierInvite(invite: CourierInvite): Promise<void> {
    await this.db
      .insertInto('courier_invites')
      .values({
        id: invite.id,
        carrier_id: invite.carrierId,
        token_hash: invite.tokenHash,
        display_name: invite.displayName,
        created_by: invite.createdBy,
        created_at: invite.createdAt,
        expires_at: invite.expiresAt,
        accepted_by: invite.acceptedBy,
        accepted_at: invite.acceptedAt,
        revoked_at: invite.revokedAt,
      })
      .execute();
  }

  /** The courier invitation with this id, or null. */
  async getCourierInvite(id: string): Promise<CourierInvite | null> {
    const row = await this.db
      .selectFrom('courier_invites')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toCourierInvite(row);
  }

  /** The courier invitation whose token has this hash, or null (whatever its state). */
  async findCourierInviteByTokenHash(tokenHash: string): Promise<CourierInvite | null> {
    const row = await this.db
      .selectFrom('courier_invites')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row === undefined ? null : toCourierInvite(row);
  }

  /** A carrier's courier invitations, newest first. */
  async listCourierInvites(carrierId: string): Promise<CourierInvite[]> {
    const rows = await this.db
      .selectFrom('courier_invites')
      .selectAll()
      .where('carrier_id', '=', carrierId)
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .execute();
    return rows.map(toCourierInvite);
  }

  /** Withdraws an invitation not yet accepted; false if it was accepted or withdrawn already. */
  async revokeCourierInvite(id: string, atMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable('courier_invites')
      .set({ revoked_at: atMs })
      .where('id', '=', id)
      .where('accepted_at', 'is', null)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Claims an invitation for the courier it made: only a pending, unexpired one, once. False
   * when someone else claimed it first, or it was withdrawn or expired meanwhile.
   */
  async acceptCourierInvite(id: string, courierId: string, atMs: number): Promise<boolean> {
    const r = await this.db
      .updateTable('courier_invites')
      .set({ accepted_by: courierId, accepted_at: atMs })
      .where('id', '=', id)
      .where('accepted_at', 'is', null)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', atMs)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Adds a new, unused, unrevoked API key; rejects if the id or hash exists. */
  async createApiKey(
    key: Pick<ApiKey, 'id' | 'carrierId' | 'keyHash' | 'createdAt'> &
      Partial<Pick<ApiKey, 'name' | 'scopes' | 'prefix' | 'createdBy'>>,
  ): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: key.id,
        carrier_id: key.carrierId,
        key_hash: key.keyHash,
        created_at: key.createdAt,
        revoked_at: null,
        last_used_at: null,
        ...(key.name === undefined ? {} : { name: key.name }),
        ...(key.scopes === undefined ? {} : { scopes: JSON.stringify(key.scopes) }),
        ...(key.prefix === undefined ? {} : { prefix: key.prefix }),
        ...(key.createdBy === undefined ? {} : { created_by: key.createdBy }),
      })
      .execute();
  }

  /**
   * Adds a key like {@link createApiKey}, unless its carrier already has `maxWorking` keys not
   * revoked; the count and the insert are one step (a lock per carrier), so keys made at once,
   * by one server or several, cannot pass the limit. Returns whether it was added.
   */
  async createApiKeyWithin(
    key: Parameters<PrincipalRepository['createApiKey']>[0],
    maxWorking: number,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await lockKey(trx, `api_keys:${key.carrierId}`);
      const row = await trx
        .selectFrom('api_keys')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('carrier_id', '=', key.carrierId)
        .where('revoked_at', 'is', null)
        .executeTakeFirstOrThrow();
      if (Number(row.n) >= maxWorking) return false;
      await new PrincipalRepository(trx).createApiKey(key);
      return true;
    });
  }

  /**
   * Revokes a key like {@link revokeApiKey}, but, when `keepScope` is given, not the last
   * working key of its carrier holding that scope (e.g. `keys:manage`: a carrier must not lock
   * itself out). The check and the revocation are one step (a lock per carrier), so two keys
   * revoking each other at once cannot both go. Returns what happened.
   */
  async revokeApiKeyKeeping(
    id: string,
    atMs: number,
    keepScope: string | null,
  ): Promise<'revoked' | 'not-found' | 'already-revoked' | 'last-with-scope'> {
    const key = await this.getApiKey(id);
    if (key === null) return 'not-found';
    return this.db.transaction().execute(async (trx) => {
      await lockKey(trx, `api_keys:${key.carrierId}`);
      const repo = new PrincipalRepository(trx);
      const now = await repo.getApiKey(id);
      if (now === null) return 'not-found';
      if (now.revokedAt !== null) return 'already-revoked';
      if (keepScope !== null && now.scopes.includes(keepScope)) {
        const others = (await repo.listApiKeys(now.carrierId)).filter(
          (k) => k.id !== id && k.revokedAt === null && k.scopes.includes(keepScope),
        );
        if (others.length === 0) return 'last-with-scope';
      }
      return (await repo.revokeApiKey(id, atMs)) ? 'revoked' : 'already-revoked';
    });
  }

  /** The key with this hash, or null. Revoked keys are returned too: check `revokedAt`. */
  async findApiKeyByHash(keyHash: string): Promise<ApiKey | null> {
    const row = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('key_hash', '=', keyHash)
      .executeTakeFirst();
    return row === undefined ? null : toApiKey(row);
  }

  /** The key with this id, or null. */
  async getApiKey(id: string): Promise<ApiKey | null> {
    const row = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toApiKey(row);
  }

  /** A carrier's API keys, revoked ones too, oldest first. */
  async listApiKeys(carrierId: string): Promise<ApiKey[]> {
    const rows = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('carrier_id', '=', carrierId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toApiKey);
  }

  /**
   * Rotates a key: adds `next` and revokes the old one, pointing it at its replacement, in one
   * transaction. False (and nothing added) when the old key is revoked already, so one key
   * is never replaced twice.
   */
  async replaceApiKey(
    oldId: string,
    next: Pick<ApiKey, 'id' | 'carrierId' | 'keyHash' | 'createdAt'> &
      Pick<ApiKey, 'name' | 'scopes' | 'prefix' | 'createdBy'>,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('api_keys')
        .set({ revoked_at: next.createdAt, replaced_by: next.id })
        .where('id', '=', oldId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) return false;
      await new PrincipalRepository(trx).createApiKey(next);
      return true;
    });
  }

  /** Records that the key was used at `atMs`; false if there is no such key. */
  async touchApiKey(id: string, atMs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('api_keys')
      .set({ last_used_at: atMs })
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Revokes the key at `atMs`; a key already revoked keeps its first time. False if none. */
  async revokeApiKey(id: string, atMs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: atMs })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Adds a sign-in session; its principal must exist. */
  async createAuthSession(session: AuthSession): Promise<void> {
    await this.db
      .insertInto('auth_sessions')
      .values({
        token_hash: session.tokenHash,
        principal_id: session.principalId,
        created_at: session.createdAt,
        expires_at: session.expiresAt,
      })
      .execute();
  }

  /**
   * The session with this token hash, or null. Expired sessions are returned until deleted:
   * the store has no clock, so the caller compares `expiresAt` with its own.
   */
  async getAuthSession(tokenHash: string): Promise<AuthSession | null> {
    const row = await this.db
      .selectFrom('auth_sessions')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row === undefined
      ? null
      : {
          tokenHash: row.token_hash,
          principalId: row.principal_id,
          createdAt: row.created_at,
          expiresAt: row.expires_at,
        };
  }

  /** Ends a sign-in session; false if there was none. */
  async deleteAuthSession(tokenHash: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('auth_sessions')
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Deletes every session with `expiresAt <= nowMs` and returns how many. */
  async deleteExpiredAuthSessions(nowMs: number): Promise<number> {
    const result = await this.db
      .deleteFrom('auth_sessions')
      .where('expires_at', '<=', nowMs)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

function toPrincipal(row: Selectable<PrincipalRow>): Principal {
  return {
    id: row.id,
    role: row.role,
    displayName: row.display_name,
    homeId: row.home_id,
    carrierId: row.carrier_id,
  };
}

function toCourierInvite(row: Selectable<CourierInviteRow>): CourierInvite {
  return {
    id: row.id,
    carrierId: row.carrier_id,
    tokenHash: row.token_hash,
    displayName: row.display_name,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    acceptedBy: row.accepted_by,
    acceptedAt: row.accepted_at === null ? null : Number(row.accepted_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

function toApiKey(row: Selectable<ApiKeyRow>): ApiKey {
  return {
    id: row.id,
    carrierId: row.carrier_id,
    keyHash: row.key_hash,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    name: row.name,
    scopes: parseScopes(row.scopes),
    prefix: row.prefix,
    createdBy: row.created_by,
    replacedBy: row.replaced_by,
  };
}

/** A key's scopes as stored (a JSON array of strings); anything else reads as no scope. */
function parseScopes(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

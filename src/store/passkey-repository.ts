/** Passkeys: the WebAuthn credentials principals sign in with instead of a password. */
import type { Kysely, Selectable } from 'kysely';
import { lockKey } from './dialect.ts';
import { fromFlag, stringArrayFromJson, toFlag, toJsonText } from './row-codec.ts';
import type { Database, PasskeyRow } from './schema.ts';

/**
 * One registered passkey. Only public material is stored: the credential's public key cannot
 * sign anything, so a copy of the database lets nobody sign in.
 */
export interface Passkey {
  /** The credential id, base64url, exactly as the authenticator gave it. Unique. */
  readonly id: string;
  readonly principalId: string;
  /** A name the principal chose ("Laptop", "Phone"), shown in the passkey list. */
  readonly name: string;
  /** The COSE-encoded public key, base64url. */
  readonly publicKey: string;
  /** The authenticator's signature counter at the last accepted use (0 if it keeps none). */
  readonly counter: number;
  /** How the browser may reach the authenticator ('internal', 'usb', 'hybrid', …). */
  readonly transports: readonly string[];
  /** 'singleDevice' (bound to one authenticator) or 'multiDevice' (synced). */
  readonly deviceType: string;
  /** Whether a multi-device credential is backed up (synced). */
  readonly backedUp: boolean;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** ms since the epoch of the last accepted sign-in, or null if never used. */
  readonly lastUsedAt: number | null;
}

/** Stores principals' passkeys. */
export class PasskeyRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Adds a passkey. Rejects if the credential id is taken (see `isUniqueViolation`), even by
   * another principal, or if the principal does not exist.
   */
  async add(passkey: Passkey): Promise<void> {
    await this.db
      .insertInto('passkeys')
      .values({
        id: passkey.id,
        principal_id: passkey.principalId,
        name: passkey.name,
        public_key: passkey.publicKey,
        counter: passkey.counter,
        transports: toJsonText(passkey.transports),
        device_type: passkey.deviceType,
        backed_up: toFlag(passkey.backedUp),
        created_at: passkey.createdAt,
        last_used_at: passkey.lastUsedAt,
      })
      .execute();
  }

  /**
   * Adds a passkey like {@link add}, unless its principal has `max` already; the count and the
   * insert are one step (a lock per principal), so registrations at once, by one server or
   * several, cannot pass the limit. Returns whether it was added; rejects as {@link add} does.
   */
  async addWithin(passkey: Passkey, max: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await lockKey(trx, `passkeys:${passkey.principalId}`);
      const row = await trx
        .selectFrom('passkeys')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('principal_id', '=', passkey.principalId)
        .executeTakeFirstOrThrow();
      if (Number(row.n) >= max) return false;
      await new PasskeyRepository(trx).add(passkey);
      return true;
    });
  }

  /** A principal's passkeys, oldest first (then by id, so the order is stable). */
  async listForPrincipal(principalId: string): Promise<Passkey[]> {
    const rows = await this.db
      .selectFrom('passkeys')
      .selectAll()
      .where('principal_id', '=', principalId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toPasskey);
  }

  /** The passkey with this credential id, whoever it belongs to, or null. */
  async get(id: string): Promise<Passkey | null> {
    const row = await this.db
      .selectFrom('passkeys')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toPasskey(row);
  }

  /**
   * Records an accepted sign-in: the authenticator's new signature counter and the time (ms
   * since the epoch). The counter only moves forward: the row is updated only if `counter` is
   * greater than the stored one, or both are 0 (an authenticator that keeps no counter), so two
   * sign-ins racing with the same counter cannot both be recorded. False if nothing was updated
   * (no such passkey, or its counter is already at or past `counter`).
   */
  async updateCounter(id: string, counter: number, lastUsedAt: number): Promise<boolean> {
    const result = await this.db
      .updateTable('passkeys')
      .set({ counter, last_used_at: lastUsedAt })
      .where('id', '=', id)
      .where('counter', counter === 0 ? '=' : '<', counter)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Deletes the passkey if it belongs to `principalId`. False if there is no such passkey or it
   * is someone else's: the caller cannot tell the two apart, so ids of others' passkeys leak
   * nothing.
   */
  async remove(id: string, principalId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('passkeys')
      .where('id', '=', id)
      .where('principal_id', '=', principalId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}

function toPasskey(row: Selectable<PasskeyRow>): Passkey {
  return {
    id: row.id,
    principalId: row.principal_id,
    name: row.name,
    publicKey: row.public_key,
    counter: row.counter,
    transports: stringArrayFromJson(row.transports, 'passkeys.transports'),
    deviceType: row.device_type,
    backedUp: fromFlag(row.backed_up),
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

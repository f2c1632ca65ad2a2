/**
 * Web Push subscriptions: one row per browser endpoint that asked to get a home's alarms. The
 * endpoint is unique, so one browser is subscribed once, for the principal who last subscribed
 * it (a shared browser signed in to another household moves with its user).
 */
import type { Kysely } from 'kysely';
import { lockKey } from './dialect.ts';
import type { Database, PushSubscriptionRow } from './schema.ts';

/** A stored Web Push subscription. */
export interface StoredPushSubscription {
  readonly id: string;
  /** Who subscribed this browser; the subscription goes when they unsubscribe. */
  readonly principalId: string;
  /** Whose alarms this browser gets. */
  readonly homeId: string;
  /** The push service URL the browser gave (an absolute https: URL in production). */
  readonly endpoint: string;
  /** The browser's P-256 public key, base64url (uncompressed point, 65 bytes). */
  readonly p256dh: string;
  /** The browser's auth secret, base64url (16 bytes). */
  readonly auth: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  /** When a push was last accepted by the push service, ms; null if never. */
  readonly lastSuccessAt: number | null;
  /** Failed sends since the last accepted one. */
  readonly failures: number;
}

/** What a browser sends to subscribe, with the id to use if the endpoint is new. */
export type NewPushSubscription = Pick<
  StoredPushSubscription,
  'id' | 'principalId' | 'homeId' | 'endpoint' | 'p256dh' | 'auth' | 'createdAt'
>;

/** The outcome of {@link PushSubscriptionRepository.upsert}. */
export interface PushUpsertResult {
  /** The subscription's id: the existing one when the endpoint was already stored. */
  readonly id: string;
  /** The row as it was before, when the endpoint was already stored; null when new. */
  readonly previous: StoredPushSubscription | null;
}

function fromRow(row: PushSubscriptionRow): StoredPushSubscription {
  return {
    id: row.id,
    principalId: row.principal_id,
    homeId: row.home_id,
    endpoint: row.endpoint,
    p256dh: row.p256dh,
    auth: row.auth,
    createdAt: row.created_at,
    lastSuccessAt: row.last_success_at,
    failures: row.failures,
  };
}

/** Stores the Web Push subscriptions of household members' browsers. */
export class PushSubscriptionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Stores a subscription. Subscribing an endpoint that is already stored keeps its id and
   * creation time, takes the new keys, principal and home, and clears its failure count (new
   * keys deserve a fresh start).
   */
  async upsert(sub: NewPushSubscription): Promise<PushUpsertResult> {
    return this.db.transaction().execute(async (trx) => {
      // Two subscriptions of one endpoint at once (PostgreSQL runs them side by side) must not
      // both report it as new.
      await lockKey(trx, `push_subscriptions:${sub.endpoint}`);
      const before = await trx
        .selectFrom('push_subscriptions')
        .selectAll()
        .where('endpoint', '=', sub.endpoint)
        .executeTakeFirst();
      const row = await trx
        .insertInto('push_subscriptions')
        .values({
          id: sub.id,
          principal_id: sub.principalId,
          home_id: sub.homeId,
          endpoint: sub.endpoint,
          p256dh: sub.p256dh,
          auth: sub.auth,
          created_at: sub.createdAt,
          last_success_at: null,
          failures: 0,
        })
        .onConflict((oc) =>
          oc.column('endpoint').doUpdateSet({
            principal_id: sub.principalId,
            home_id: sub.homeId,
            p256dh: sub.p256dh,
            auth: sub.auth,
            failures: 0,
          }),
        )
        .returning('id')
        .executeTakeFirstOrThrow();
      return { id: row.id, previous: before ? fromRow(before) : null };
    });
  }

  /** One subscription by id, or null. */
  async get(id: string): Promise<StoredPushSubscription | null> {
    const row = await this.db
      .selectFrom('push_subscriptions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? fromRow(row) : null;
  }

  /** One subscription by endpoint, or null. */
  async getByEndpoint(endpoint: string): Promise<StoredPushSubscription | null> {
    const row = await this.db
      .selectFrom('push_subscriptions')
      .selectAll()
      .where('endpoint', '=', endpoint)
      .executeTakeFirst();
    return row ? fromRow(row) : null;
  }

  /** Every subscription that gets a home's alarms, oldest first. */
  async listForHome(homeId: string): Promise<StoredPushSubscription[]> {
    const rows = await this.db
      .selectFrom('push_subscriptions')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(fromRow);
  }

  /** Every subscription a principal made, oldest first. */
  async listForPrincipal(principalId: string): Promise<StoredPushSubscription[]> {
    const rows = await this.db
      .selectFrom('push_subscriptions')
      .selectAll()
      .where('principal_id', '=', principalId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(fromRow);
  }

  /**
   * Removes the subscription of `endpoint` if `principalId` made it; returns whether one was
   * removed. Someone else's subscription is left alone, so knowing an endpoint is not enough
   * to silence another person's alarms.
   */
  async removeByEndpoint(endpoint: string, principalId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('push_subscriptions')
      .where('endpoint', '=', endpoint)
      .where('principal_id', '=', principalId)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Records a push the push service accepted at `atMs`: the failure count starts again. */
  async markSuccess(id: string, atMs: number): Promise<void> {
    await this.db
      .updateTable('push_subscriptions')
      .set({ last_success_at: atMs, failures: 0 })
      .where('id', '=', id)
      .execute();
  }

  /**
   * Counts one more failed push; returns the failures since the last success, or null when the
   * subscription is gone (removed meanwhile).
   */
  async markFailure(id: string): Promise<number | null> {
    const row = await this.db
      .updateTable('push_subscriptions')
      .set((eb) => ({ failures: eb('failures', '+', 1) }))
      .where('id', '=', id)
      .returning('failures')
      .executeTakeFirst();
    return row ? row.failures : null;
  }

  /** Removes a subscription by id; returns whether it existed. */
  async remove(id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('push_subscriptions')
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /**
   * Keeps only a principal's `keep` newest subscriptions (by creation, and always `keepId`) and
   * returns the ones removed, so one account cannot make every alarm fan out to an unbounded
   * number of endpoints.
   */
  async pruneForPrincipal(
    principalId: string,
    keep: number,
    keepId: string,
  ): Promise<StoredPushSubscription[]> {
    const all = await this.listForPrincipal(principalId);
    const others = all.filter((s) => s.id !== keepId);
    const room = Math.max(0, keep - (all.length - others.length));
    const doomed = others.slice(0, Math.max(0, others.length - room));
    for (const s of doomed) await this.remove(s.id);
    return doomed;
  }
}

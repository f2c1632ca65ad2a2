/**
 * Carriers' webhooks and their delivery log. A webhook is a URL a carrier wants delivery events
 * posted to; its signing secret is never stored, only the salt it is derived from (with the
 * server's master key). Each event sent to a webhook is one row of `webhook_deliveries` holding
 * the exact body sent, so a retry or a resend posts the same bytes; the row records every
 * attempt's outcome and when the next one is due, so a restart carries on where it stopped.
 */
import type { Kysely } from 'kysely';
import { lockKey } from './dialect.ts';
import { stringArrayFromJson, toJsonText } from './row-codec.ts';
import type { Database, WebhookDeliveryRow, WebhookRow } from './schema.ts';

/** A stored webhook. */
export interface StoredWebhook {
  readonly id: string;
  readonly carrierId: string;
  /** Where events are posted. */
  readonly url: string;
  /** The salt its signing secret is derived from (base64url); changed by a rotation. */
  readonly secretSalt: string;
  /** The event types it wants, or `["*"]` for all. */
  readonly events: readonly string[];
  /** ms since the epoch. */
  readonly createdAt: number;
  /** The audit actor id of who registered it (`apikey:<id>` or a carrier admin's id). */
  readonly createdBy: string;
  /** When it was disabled, ms; null while active. A disabled webhook gets nothing more. */
  readonly disabledAt: number | null;
}

/** Where a delivery of an event to a webhook stands. */
export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One event sent (or being sent) to one webhook. */
export interface StoredWebhookDelivery {
  readonly id: string;
  readonly webhookId: string;
  readonly carrierId: string;
  /** The delivery event's id (the same for every webhook, retry and resend of it). */
  readonly eventId: string;
  readonly eventType: string;
  /** The exact JSON body sent and signed. */
  readonly payload: string;
  /** `pending` until a 2xx answer (`delivered`) or the last attempt failed (`failed`). */
  readonly status: WebhookDeliveryStatus;
  /** Attempts made so far. */
  readonly attempts: number;
  /** When the next attempt is due, ms; null when none will be made. */
  readonly nextAttemptAt: number | null;
  /** The HTTP status of the last answer; null if none came. */
  readonly lastStatusCode: number | null;
  /** Why the last attempt failed, clipped; null after a success or before any attempt. */
  readonly lastError: string | null;
  readonly createdAt: number;
  readonly deliveredAt: number | null;
}

/** What an attempt changed in a delivery's row. */
export type WebhookAttemptOutcome = Pick<
  StoredWebhookDelivery,
  'status' | 'attempts' | 'nextAttemptAt' | 'lastStatusCode' | 'lastError' | 'deliveredAt'
>;

function webhookFromRow(r: WebhookRow): StoredWebhook {
  return {
    id: r.id,
    carrierId: r.carrier_id,
    url: r.url,
    secretSalt: r.secret_salt,
    events: stringArrayFromJson(r.events, 'webhooks.events'),
    createdAt: Number(r.created_at),
    createdBy: r.created_by,
    disabledAt: r.disabled_at === null ? null : Number(r.disabled_at),
  };
}

function deliveryFromRow(r: WebhookDeliveryRow): StoredWebhookDelivery {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    carrierId: r.carrier_id,
    eventId: r.event_id,
    eventType: r.event_type,
    payload: r.payload,
    status: r.status,
    attempts: Number(r.attempts),
    nextAttemptAt: r.next_attempt_at === null ? null : Number(r.next_attempt_at),
    lastStatusCode: r.last_status_code === null ? null : Number(r.last_status_code),
    lastError: r.last_error,
    createdAt: Number(r.created_at),
    deliveredAt: r.delivered_at === null ? null : Number(r.delivered_at),
  };
}

/** Stores webhooks and their delivery log. */
export class WebhookRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Stores a new webhook unless its carrier already has `maxActive` active ones; the count and
   * the insert are one transaction, so two registrations at once cannot pass the limit.
   * Returns whether it was stored.
   */
  async createWithin(w: StoredWebhook, maxActive: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // PostgreSQL runs registrations side by side: without the lock, two could both count
      // one below the limit and both insert.
      await lockKey(trx, `webhooks:${w.carrierId}`);
      const row = await trx
        .selectFrom('webhooks')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('carrier_id', '=', w.carrierId)
        .where('disabled_at', 'is', null)
        .executeTakeFirstOrThrow();
      if (Number(row.n) >= maxActive) return false;
      await trx
        .insertInto('webhooks')
        .values({
          id: w.id,
          carrier_id: w.carrierId,
          url: w.url,
          secret_salt: w.secretSalt,
          events: toJsonText(w.events),
          created_at: w.createdAt,
          created_by: w.createdBy,
          disabled_at: w.disabledAt,
        })
        .execute();
      return true;
    });
  }

  /** A webhook by id, whoever's, or null. */
  async get(id: string): Promise<StoredWebhook | null> {
    const r = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return r ? webhookFromRow(r) : null;
  }

  /** A carrier's webhooks, disabled ones included, newest first. */
  async listForCarrier(carrierId: string): Promise<StoredWebhook[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('carrier_id', '=', carrierId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
    return rows.map(webhookFromRow);
  }

  /** A carrier's active webhooks, oldest first. */
  async activeForCarrier(carrierId: string): Promise<StoredWebhook[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('carrier_id', '=', carrierId)
      .where('disabled_at', 'is', null)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(webhookFromRow);
  }

  /**
   * Disables an active webhook and gives up its pending deliveries (`failed`, with the reason),
   * in one transaction. Returns false when it was already disabled (nothing changes) or is
   * unknown.
   */
  async disable(id: string, at: number, reason: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('webhooks')
        .set({ disabled_at: at })
        .where('id', '=', id)
        .where('disabled_at', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'failed', next_attempt_at: null, last_error: reason })
        .where('webhook_id', '=', id)
        .where('status', '=', 'pending')
        .execute();
      return true;
    });
  }

  /** Gives an active webhook a new secret salt. Returns false if it is disabled or unknown. */
  async setSecretSalt(id: string, salt: string): Promise<boolean> {
    const r = await this.db
      .updateTable('webhooks')
      .set({ secret_salt: salt })
      .where('id', '=', id)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Stores new delivery rows (one transaction: all or none). */
  async insertDeliveries(rows: readonly StoredWebhookDelivery[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db
      .insertInto('webhook_deliveries')
      .values(
        rows.map((d) => ({
          id: d.id,
          webhook_id: d.webhookId,
          carrier_id: d.carrierId,
          event_id: d.eventId,
          event_type: d.eventType,
          payload: d.payload,
          status: d.status,
          attempts: d.attempts,
          next_attempt_at: d.nextAttemptAt,
          last_status_code: d.lastStatusCode,
          last_error: d.lastError,
          created_at: d.createdAt,
          delivered_at: d.deliveredAt,
        })),
      )
      .execute();
  }

  /** A delivery row by id, whoever's, or null. */
  async getDelivery(id: string): Promise<StoredWebhookDelivery | null> {
    const r = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return r ? deliveryFromRow(r) : null;
  }

  /** A webhook's delivery log, newest first, at most `limit` rows. */
  async listDeliveries(webhookId: string, limit: number): Promise<StoredWebhookDelivery[]> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', webhookId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(deliveryFromRow);
  }

  /**
   * Pending deliveries due at `now`, soonest first, at most `limit`, leaving out `exclude` (the
   * ones already queued or being sent).
   */
  async due(
    now: number,
    limit: number,
    exclude: ReadonlySet<string> = new Set(),
  ): Promise<StoredWebhookDelivery[]> {
    let q = this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now);
    if (exclude.size > 0) q = q.where('id', 'not in', [...exclude]);
    const rows = await q.orderBy('next_attempt_at').orderBy('id').limit(limit).execute();
    return rows.map(deliveryFromRow);
  }

  /** When the soonest pending delivery after `now` is due, ms, or null if none is. */
  async nextDueAfter(now: number): Promise<number | null> {
    const r = await this.db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.min('next_attempt_at').as('at'))
      .where('status', '=', 'pending')
      .where('next_attempt_at', '>', now)
      .executeTakeFirst();
    return r?.at == null ? null : Number(r.at);
  }

  /**
   * Records an attempt's outcome on a delivery that is still pending. Returns false when it no
   * longer is (its webhook was disabled meanwhile): that answer is not recorded.
   */
  async recordAttempt(id: string, o: WebhookAttemptOutcome): Promise<boolean> {
    const r = await this.db
      .updateTable('webhook_deliveries')
      .set({
        status: o.status,
        attempts: o.attempts,
        next_attempt_at: o.nextAttemptAt,
        last_status_code: o.lastStatusCode,
        last_error: o.lastError,
        delivered_at: o.deliveredAt,
      })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}

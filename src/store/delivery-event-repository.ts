/** Every state change of a delivery, numbered per delivery: what webhooks send, proofs show. */
import type { Kysely } from 'kysely';
import type { DeliveryEventType, DeliveryStatus } from '../core/model.ts';
import { lockKey } from './dialect.ts';
import type { Database, DeliveryEventRow } from './schema.ts';

export { DELIVERY_EVENT_TYPES, type DeliveryEventType } from '../core/model.ts';

/** One state change. */
export interface DeliveryEvent {
  readonly id: string;
  readonly deliveryId: string;
  readonly carrierId: string;
  /** 1, 2, 3… per delivery, in the order they happened. */
  readonly seq: number;
  readonly type: DeliveryEventType;
  /** The delivery's status after it. */
  readonly status: DeliveryStatus;
  /** ms since the epoch, server clock. */
  readonly at: number;
  /** What else it says (courier, session, reason). */
  readonly data: Readonly<Record<string, unknown>>;
}

/** Stores delivery events. Use inside the transaction that changes the delivery. */
export class DeliveryEventRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Appends an event with the delivery's next number; returns it. Events of one delivery
   * appended at once (by several processes, on PostgreSQL) get one number each, in turn.
   */
  async append(e: Omit<DeliveryEvent, 'seq'>): Promise<DeliveryEvent> {
    if (!this.db.isTransaction) {
      return this.db.transaction().execute((trx) => new DeliveryEventRepository(trx).append(e));
    }
    await lockKey(this.db, `delivery_events:${e.deliveryId}`);
    const last = await this.db
      .selectFrom('delivery_events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .where('delivery_id', '=', e.deliveryId)
      .executeTakeFirst();
    const seq = Number(last?.seq ?? 0) + 1;
    const event: DeliveryEvent = { ...e, seq };
    await this.db
      .insertInto('delivery_events')
      .values({
        id: event.id,
        delivery_id: event.deliveryId,
        carrier_id: event.carrierId,
        seq,
        type: event.type,
        status: event.status,
        at: event.at,
        data: JSON.stringify(event.data),
      })
      .execute();
    return event;
  }

  /** A delivery's events, in order. */
  async listForDelivery(deliveryId: string): Promise<DeliveryEvent[]> {
    const rows = await this.db
      .selectFrom('delivery_events')
      .selectAll()
      .where('delivery_id', '=', deliveryId)
      .orderBy('seq')
      .execute();
    return rows.map(fromRow);
  }

  /** One event, or null. */
  async get(id: string): Promise<DeliveryEvent | null> {
    const row = await this.db
      .selectFrom('delivery_events')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? fromRow(row) : null;
  }
}

function fromRow(r: DeliveryEventRow): DeliveryEvent {
  return {
    id: r.id,
    deliveryId: r.delivery_id,
    carrierId: r.carrier_id,
    seq: Number(r.seq),
    type: r.type as DeliveryEventType,
    status: r.status as DeliveryStatus,
    at: Number(r.at),
    data: JSON.parse(r.data) as Record<string, unknown>,
  };
}

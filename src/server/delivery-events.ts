/**
 * Delivery state changes, recorded in order and announced in-process: the webhook dispatcher
 * listens here. Record inside the transaction that changes the delivery (so a change and its
 * event are never apart), then {@link DeliveryEventLog.publish} once it committed.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.ts';
import type { Delivery, DeliveryStatus } from '../core/model.ts';
import type { CarrierDeliveryView, DeliveryEventView } from '../protocol/views.ts';
import {
  DeliveryEventRepository,
  type DeliveryEvent,
  type DeliveryEventType,
} from '../store/delivery-event-repository.ts';
import type { Database } from '../store/index.ts';

/** See the module comment. */
export class DeliveryEventLog {
  private readonly listeners = new Set<(e: DeliveryEvent) => void>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  /**
   * Appends an event to the delivery's history, in `db` (a transaction) or the store's
   * database. Not yet announced: call {@link publish} after the commit.
   */
  record(
    input: {
      deliveryId: string;
      carrierId: string;
      type: DeliveryEventType;
      status: DeliveryStatus;
      data?: Record<string, unknown>;
    },
    db: Kysely<Database> = this.db,
  ): Promise<DeliveryEvent> {
    return new DeliveryEventRepository(db).append({
      id: `evt-${randomUUID()}`,
      deliveryId: input.deliveryId,
      carrierId: input.carrierId,
      type: input.type,
      status: input.status,
      at: this.clock.now(),
      data: input.data ?? {},
    });
  }

  /** Records (outside any transaction) and announces at once. */
  async recordAndPublish(input: Parameters<DeliveryEventLog['record']>[0]): Promise<DeliveryEvent> {
    const e = await this.record(input);
    this.publish(e);
    return e;
  }

  /** Announces a committed event to the listeners; one that throws does not stop the others. */
  publish(e: DeliveryEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Listens; returns the function that stops listening. */
  subscribe(listener: (e: DeliveryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A delivery's history, in order. */
  listForDelivery(deliveryId: string): Promise<DeliveryEvent[]> {
    return new DeliveryEventRepository(this.db).listForDelivery(deliveryId);
  }
}

/** A delivery as its carrier sees it (the carrier API and webhook payloads). */
export function carrierDeliveryView(d: Delivery): CarrierDeliveryView {
  return {
    id: d.id,
    carrierId: d.carrierId,
    homeId: d.homeId,
    doorId: d.doorId,
    packageRef: d.packageRef,
    placement: d.placement ?? 'in-home',
    windowStart: d.windowStart,
    windowEnd: d.windowEnd,
    courierId: d.courierId,
    status: d.status,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt ?? d.createdAt,
  };
}

/** An event of a delivery's history as its carrier reads it. */
export function deliveryEventView(e: DeliveryEvent): DeliveryEventView {
  return { id: e.id, seq: e.seq, type: e.type, status: e.status, at: e.at, data: e.data };
}

/** Deliveries and the grants that let a courier in for one. */
import type { Kysely, Selectable } from 'kysely';
import type { Delivery, DeliveryStatus, Grant } from '../core/model.ts';
import { groupedByKey } from './id-chunks.ts';
import { fromFlag, toFlag } from './row-codec.ts';
import type { Database, DeliveryRow, GrantRow } from './schema.ts';

/** Stores deliveries and their grants. Delivery lists are ordered by window start, then id. */
export class DeliveryRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Adds a delivery; its carrier, home, door and courier (if any) must exist. Without a
   * placement it is in-home; without `updatedAt` it last changed when it was created.
   */
  async create(delivery: Delivery): Promise<void> {
    await this.db
      .insertInto('deliveries')
      .values({
        id: delivery.id,
        carrier_id: delivery.carrierId,
        home_id: delivery.homeId,
        door_id: delivery.doorId,
        package_ref: delivery.packageRef,
        window_start: delivery.windowStart,
        window_end: delivery.windowEnd,
        courier_id: delivery.courierId,
        status: delivery.status,
        created_at: delivery.createdAt,
        placement: delivery.placement ?? 'in-home',
        updated_at: delivery.updatedAt ?? delivery.createdAt,
      })
      .execute();
  }

  /** The delivery with this id, or null. */
  async get(id: string): Promise<Delivery | null> {
    const row = await this.db
      .selectFrom('deliveries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toDelivery(row);
  }

  /** The deliveries assigned to a courier. */
  async listForCourier(courierId: string): Promise<Delivery[]> {
    return this.listWhere('courier_id', courierId);
  }

  /** The deliveries of a carrier. */
  async listForCarrier(carrierId: string): Promise<Delivery[]> {
    return this.listWhere('carrier_id', carrierId);
  }

  /** The deliveries to a home. */
  async listForHome(homeId: string): Promise<Delivery[]> {
    return this.listWhere('home_id', homeId);
  }

  /**
   * {@link listForHome} for many homes, by home (a few queries for any number of homes), each
   * home's in the same order.
   */
  async listForHomes(homeIds: readonly string[]): Promise<Map<string, Delivery[]>> {
    const rows = await groupedByKey(
      homeIds,
      (chunk) =>
        this.db
          .selectFrom('deliveries')
          .selectAll()
          .where('home_id', 'in', chunk)
          .orderBy('window_start')
          .orderBy('id')
          .execute(),
      (row) => row.home_id,
    );
    return new Map([...rows].map(([id, list]) => [id, list.map(toDelivery)]));
  }

  /**
   * One page of a carrier's deliveries, newest first (by creation, then id), optionally only
   * those in one status. `after` continues after that delivery of the listing (a delivery of
   * this carrier); `next` names the last delivery of the page when more may follow, else null.
   */
  async pageForCarrier(
    carrierId: string,
    options: {
      readonly status?: DeliveryStatus;
      readonly limit: number;
      readonly after?: Delivery;
    },
  ): Promise<{ deliveries: Delivery[]; next: string | null }> {
    let query = this.db.selectFrom('deliveries').selectAll().where('carrier_id', '=', carrierId);
    if (options.status !== undefined) query = query.where('status', '=', options.status);
    const after = options.after;
    if (after !== undefined) {
      // Keyset paging: stable while deliveries are added (new ones come first, not in between).
      query = query.where((eb) =>
        eb.or([
          eb('created_at', '<', after.createdAt),
          eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)]),
        ]),
      );
    }
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(options.limit + 1)
      .execute();
    const deliveries = rows.slice(0, options.limit).map(toDelivery);
    const more = rows.length > options.limit;
    return { deliveries, next: more ? (deliveries.at(-1)?.id ?? null) : null };
  }

  /**
   * Sets a delivery's status (and when it changed, `atMs`, if given); false if there is no
   * such delivery.
   */
  async updateStatus(id: string, status: DeliveryStatus, atMs?: number): Promise<boolean> {
    const result = await this.db
      .updateTable('deliveries')
      .set(atMs === undefined ? { status } : { status, updated_at: atMs })
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Moves a delivery to `to` only while it is in one of `from`, atomically: a change racing
   * another (a cancel and a courier at the door) cannot both win. Returns whether it moved.
   */
  async transition(
    id: string,
    from: readonly DeliveryStatus[],
    to: DeliveryStatus,
    atMs: number,
  ): Promise<boolean> {
    if (from.length === 0) return false;
    const result = await this.db
      .updateTable('deliveries')
      .set({ status: to, updated_at: atMs })
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Assigns (or reassigns) the courier of a delivery that is still scheduled, atomically;
   * false if there is no such delivery or it is no longer scheduled.
   */
  async reassign(id: string, courierId: string, atMs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('deliveries')
      .set({ courier_id: courierId, updated_at: atMs })
      .where('id', '=', id)
      .where('status', '=', 'scheduled')
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Revokes, at `atMs`, every grant of a delivery not revoked yet; returns their ids (so the
   * caller can end any access session running under one).
   */
  async revokeGrantsOfDelivery(deliveryId: string, atMs: number): Promise<string[]> {
    const live = await this.db
      .selectFrom('grants')
      .select('id')
      .where('delivery_id', '=', deliveryId)
      .where('revoked_at', 'is', null)
      .execute();
    const ids: string[] = [];
    for (const { id } of live) if (await this.revokeGrant(id, atMs)) ids.push(id);
    return ids;
  }

  /** Assigns a courier (who must exist) to a delivery; false if there is no such delivery. */
  async assignCourier(id: string, courierId: string): Promise<boolean> {
    const result = await this.db
      .updateTable('deliveries')
      .set({ courier_id: courierId })
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Adds a grant; its principal, home, door and delivery must exist. */
  async createGrant(grant: Grant): Promise<void> {
    await this.db
      .insertInto('grants')
      .values({
        id: grant.id,
        kind: grant.kind,
        principal_id: grant.principalId,
        home_id: grant.homeId,
        door_id: grant.doorId,
        delivery_id: grant.deliveryId,
        valid_from: grant.validFrom,
        valid_until: grant.validUntil,
        max_uses: grant.maxUses,
        uses: grant.uses,
        max_open_ms: grant.maxOpenMs,
        requires_recording: toFlag(grant.requiresRecording),
        requires_presence: toFlag(grant.requiresPresence),
        revoked_at: grant.revokedAt,
      })
      .execute();
  }

  /** The grant with this id, or null. */
  async getGrant(id: string): Promise<Grant | null> {
    const row = await this.db
      .selectFrom('grants')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toGrant(row);
  }

  /**
   * The grant of a delivery, or null. Should a delivery have several (a revoked one and its
   * replacement after reassignment), the unrevoked one wins, then the most recently revoked,
   * then the latest `validFrom`.
   */
  async getGrantForDelivery(deliveryId: string): Promise<Grant | null> {
    const row = await this.db
      .selectFrom('grants')
      .selectAll()
      .where('delivery_id', '=', deliveryId)
      .orderBy((eb) => eb.case().when('revoked_at', 'is', null).then(0).else(1).end())
      .orderBy('revoked_at', 'desc')
      .orderBy('valid_from', 'desc')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    return row === undefined ? null : toGrant(row);
  }

  /**
   * {@link getGrantForDelivery} for many deliveries (a few queries for any number): the grant
   * each would get, by delivery id; a delivery without a grant is not in the map.
   */
  async getGrantsForDeliveries(deliveryIds: readonly string[]): Promise<Map<string, Grant>> {
    const rows = await groupedByKey(
      deliveryIds,
      (chunk) =>
        this.db
          .selectFrom('grants')
          .selectAll()
          .where('delivery_id', 'in', chunk)
          // The order getGrantForDelivery takes the first of, within each delivery.
          .orderBy('delivery_id')
          .orderBy((eb) => eb.case().when('revoked_at', 'is', null).then(0).else(1).end())
          .orderBy('revoked_at', 'desc')
          .orderBy('valid_from', 'desc')
          .orderBy('id')
          .execute(),
      (row) => row.delivery_id ?? '',
    );
    const out = new Map<string, Grant>();
    for (const [id, list] of rows) {
      const first = list[0];
      if (first !== undefined) out.set(id, toGrant(first));
    }
    return out;
  }

  /**
   * Claims one use of a grant, atomically: increments `uses` only while it is below `maxUses`
   * and the grant is not revoked, so two replicas racing for the last use cannot both win.
   * Returns whether the use was claimed.
   */
  async incrementGrantUses(id: string): Promise<boolean> {
    const result = await this.db
      .updateTable('grants')
      .set((eb) => ({ uses: eb('uses', '+', 1) }))
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb('uses', '<', eb.ref('max_uses')))
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Revokes a grant at `atMs` (ms since the epoch). A grant already revoked keeps its first
   * revocation time. Returns whether this call revoked it.
   */
  async revokeGrant(id: string, atMs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('grants')
      .set({ revoked_at: atMs })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  private async listWhere(
    column: 'courier_id' | 'carrier_id' | 'home_id',
    value: string,
  ): Promise<Delivery[]> {
    const rows = await this.db
      .selectFrom('deliveries')
      .selectAll()
      .where(column, '=', value)
      .orderBy('window_start')
      .orderBy('id')
      .execute();
    return rows.map(toDelivery);
  }
}

function toDelivery(row: Selectable<DeliveryRow>): Delivery {
  return {
    id: row.id,
    carrierId: row.carrier_id,
    homeId: row.home_id,
    doorId: row.door_id,
    packageRef: row.package_ref,
    windowStart: row.window_start,
    windowEnd: row.window_end,
    courierId: row.courier_id,
    status: row.status,
    createdAt: row.created_at,
    placement: row.placement,
    updatedAt: row.updated_at ?? row.created_at,
  };
}

function toGrant(row: Selectable<GrantRow>): Grant {
  return {
    id: row.id,
    kind: row.kind,
    principalId: row.principal_id,
    homeId: row.home_id,
    doorId: row.door_id,
    deliveryId: row.delivery_id,
    validFrom: row.valid_from,
    validUntil: row.valid_until,
    maxUses: row.max_uses,
    uses: row.uses,
    maxOpenMs: row.max_open_ms,
    requiresRecording: fromFlag(row.requires_recording),
    requiresPresence: fromFlag(row.requires_presence),
    revokedAt: row.revoked_at,
  };
}

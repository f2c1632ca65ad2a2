/** Homes, their doors and their devices. */
import type { Kysely, Selectable } from 'kysely';
import type { OwnersRefusal } from '../core/access-decision.ts';
import {
  isWeekday,
  type DeliveryPreferences,
  type Device,
  type Door,
  type Home,
} from '../core/model.ts';
import { lockKey } from './dialect.ts';
import { groupedByKey } from './id-chunks.ts';
import { fromFlag, stringArrayFromJson, toFlag, toJsonText } from './row-codec.ts';
import type { Database, DeviceRow, DoorRow, HomeRow } from './schema.ts';

/** The owner's choice for one carrier at one home; `undecided` (no row) means not allowed. */
export type CarrierDecision = 'allowed' | 'blocked' | 'undecided';

/** A carrier the owner decided on, and when and by whom. */
export interface HomeCarrierDecision {
  readonly carrierId: string;
  readonly decision: Exclude<CarrierDecision, 'undecided'>;
  /** ms since the epoch. */
  readonly decidedAt: number;
  /** The owner or member who decided; null for decisions made before they were recorded. */
  readonly decidedBy: string | null;
}

/** A courier an owner does not want at the door of a home. */
export interface BlockedCourier {
  readonly courierId: string;
  /** ms since the epoch. */
  readonly blockedAt: number;
  readonly blockedBy: string;
}

/** Stores homes, doors and devices. Lists are ordered by name, then id. */
export class HomeRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Adds a home; rejects if the id exists. */
  async createHome(home: Home): Promise<void> {
    await this.db
      .insertInto('homes')
      .values({
        id: home.id,
        name: home.name,
        address: home.address,
        geofence_lat: home.geofence.lat,
        geofence_lon: home.geofence.lon,
        geofence_radius_m: home.geofence.radiusM,
        time_zone: home.timeZone,
        in_home_delivery: toFlag(home.inHomeDelivery),
        delivery_days_off: toJsonText(home.delivery.daysOff),
        delivery_ask_first: toFlag(home.delivery.askFirst),
        delivery_ask_timeout_ms: home.delivery.askTimeoutMs,
      })
      .execute();
  }

  /** Replaces a home's in-home delivery settings; false when there is no such home. */
  async updateDeliverySettings(
    homeId: string,
    inHomeDelivery: boolean,
    delivery: DeliveryPreferences,
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('homes')
      .set({
        in_home_delivery: toFlag(inHomeDelivery),
        delivery_days_off: toJsonText(delivery.daysOff),
        delivery_ask_first: toFlag(delivery.askFirst),
        delivery_ask_timeout_ms: delivery.askTimeoutMs,
      })
      .where('id', '=', homeId)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** The home with this id, or null. */
  async getHome(id: string): Promise<Home | null> {
    const row = await this.db
      .selectFrom('homes')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toHome(row);
  }

  /** Every home. */
  async listHomes(): Promise<Home[]> {
    const rows = await this.db
      .selectFrom('homes')
      .selectAll()
      .orderBy('name')
      .orderBy('id')
      .execute();
    return rows.map(toHome);
  }

  /**
   * The doors of many homes, by home: each home's in the order {@link listDoors} gives (a few
   * queries for any number of homes, where one per home would be as many as there are homes).
   */
  async listDoorsByHome(homeIds: readonly string[]): Promise<Map<string, Door[]>> {
    const rows = await groupedByKey(
      homeIds,
      (chunk) =>
        this.db
          .selectFrom('doors')
          .selectAll()
          .where('home_id', 'in', chunk)
          .orderBy('name')
          .orderBy('id')
          .execute(),
      (row) => row.home_id,
    );
    return new Map([...rows].map(([id, list]) => [id, list.map(toDoor)]));
  }

  /** Adds a door; its home and devices must exist. */
  async createDoor(door: Door): Promise<void> {
    await this.db
      .insertInto('doors')
      .values({
        id: door.id,
        home_id: door.homeId,
        name: door.name,
        lock_device_id: door.lockDeviceId,
        door_sensor_device_id: door.doorSensorDeviceId,
        camera_device_ids: toJsonText(door.cameraDeviceIds),
      })
      .execute();
  }

  /** The door with this id, or null. */
  async getDoor(id: string): Promise<Door | null> {
    const row = await this.db
      .selectFrom('doors')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toDoor(row);
  }

  /** The doors of a home. */
  async listDoors(homeId: string): Promise<Door[]> {
    const rows = await this.db
      .selectFrom('doors')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('name')
      .orderBy('id')
      .execute();
    return rows.map(toDoor);
  }

  /** Adds a device; its home must exist. */
  async createDevice(device: Device): Promise<void> {
    await this.db
      .insertInto('devices')
      .values({ id: device.id, home_id: device.homeId, kind: device.kind, name: device.name })
      .execute();
  }

  /** The device with this id, or null. */
  async getDevice(id: string): Promise<Device | null> {
    const row = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row === undefined ? null : toDevice(row);
  }

  /** The devices of one home, or of every home when `homeId` is omitted. */
  async listDevices(homeId?: string): Promise<Device[]> {
    let query = this.db.selectFrom('devices').selectAll();
    if (homeId !== undefined) query = query.where('home_id', '=', homeId);
    const rows = await query.orderBy('name').orderBy('id').execute();
    return rows.map(toDevice);
  }

  /**
   * The devices of many homes, by home: each home's in the order {@link listDevices} gives (a
   * few queries for any number of homes).
   */
  async listDevicesByHome(homeIds: readonly string[]): Promise<Map<string, Device[]>> {
    const rows = await groupedByKey(
      homeIds,
      (chunk) =>
        this.db
          .selectFrom('devices')
          .selectAll()
          .where('home_id', 'in', chunk)
          .orderBy('name')
          .orderBy('id')
          .execute(),
      (row) => row.home_id,
    );
    return new Map([...rows].map(([id, list]) => [id, list.map(toDevice)]));
  }

  /**
   * How many devices there are. Devices are only ever added (never removed, never changed), so
   * a count that has not moved means no device was added since it was last read: a replica
   * polls this rather than reading every device (see ReplicaCoordinator).
   */
  async countDevices(): Promise<number> {
    const row = await this.db
      .selectFrom('devices')
      .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * Lets a carrier deliver inside a home; a carrier blocked before is allowed from now on.
   * Idempotent: allowing an allowed carrier keeps its first decision.
   */
  async allowCarrier(
    homeId: string,
    carrierId: string,
    atMs: number,
    decidedBy: string | null = null,
  ): Promise<CarrierDecision> {
    return this.decideCarrier(homeId, carrierId, 'allowed', atMs, decidedBy);
  }

  /** Blocks a carrier at a home: it may not deliver there. Returns the decision before. */
  async blockCarrier(
    homeId: string,
    carrierId: string,
    atMs: number,
    decidedBy: string | null,
  ): Promise<CarrierDecision> {
    return this.decideCarrier(homeId, carrierId, 'blocked', atMs, decidedBy);
  }

  /**
   * Records the owner's decision for a carrier at a home, in one transaction with reading the
   * decision it replaces, which it returns. Deciding what was decided already changes nothing
   * (the first time and decider are kept). The home and the carrier must exist.
   */
  async decideCarrier(
    homeId: string,
    carrierId: string,
    decision: Exclude<CarrierDecision, 'undecided'>,
    atMs: number,
    decidedBy: string | null,
  ): Promise<CarrierDecision> {
    return this.db.transaction().execute(async (trx) => {
      // Two decisions at once (PostgreSQL runs them side by side) must not both report the
      // decision before them as the one they replace.
      await lockKey(trx, `home_carriers:${homeId}:${carrierId}`);
      const before = await new HomeRepository(trx).carrierDecision(homeId, carrierId);
      if (before === decision) return before;
      await trx
        .insertInto('home_carriers')
        .values({
          home_id: homeId,
          carrier_id: carrierId,
          allowed_at: atMs,
          status: decision,
          decided_by: decidedBy,
        })
        .onConflict((oc) =>
          oc
            .columns(['home_id', 'carrier_id'])
            .doUpdateSet({ allowed_at: atMs, status: decision, decided_by: decidedBy }),
        )
        .execute();
      return before;
    });
  }

  /** Forgets the owner's decision for a carrier (back to undecided); whether there was one. */
  async disallowCarrier(homeId: string, carrierId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('home_carriers')
      .where('home_id', '=', homeId)
      .where('carrier_id', '=', carrierId)
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  /** The owner's decision for a carrier at a home. */
  async carrierDecision(homeId: string, carrierId: string): Promise<CarrierDecision> {
    const row = await this.db
      .selectFrom('home_carriers')
      .select('status')
      .where('home_id', '=', homeId)
      .where('carrier_id', '=', carrierId)
      .executeTakeFirst();
    return row?.status ?? 'undecided';
  }

  /** Whether a home lets a carrier deliver inside: allowed, and not blocked or undecided. */
  async isCarrierAllowed(homeId: string, carrierId: string): Promise<boolean> {
    return (await this.carrierDecision(homeId, carrierId)) === 'allowed';
  }

  /** Every decision the owner made for carriers at a home, by carrier id. */
  async listCarrierDecisions(homeId: string): Promise<HomeCarrierDecision[]> {
    const rows = await this.db
      .selectFrom('home_carriers')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('carrier_id')
      .execute();
    return rows.map((r) => ({
      carrierId: r.carrier_id,
      decision: r.status,
      decidedAt: Number(r.allowed_at),
      decidedBy: r.decided_by,
    }));
  }

  /**
   * Blocks a courier at a home, whatever their carrier says. False when they were blocked
   * already (the first block is kept). The courier and the one who blocks must exist.
   */
  async blockCourier(
    homeId: string,
    courierId: string,
    atMs: number,
    blockedBy: string,
  ): Promise<boolean> {
    const r = await this.db
      .insertInto('home_blocked_couriers')
      .values({ home_id: homeId, courier_id: courierId, blocked_at: atMs, blocked_by: blockedBy })
      .onConflict((oc) => oc.columns(['home_id', 'courier_id']).doNothing())
      .executeTakeFirst();
    return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /** Lifts a courier's block at a home; false when they were not blocked. */
  async unblockCourier(homeId: string, courierId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('home_blocked_couriers')
      .where('home_id', '=', homeId)
      .where('courier_id', '=', courierId)
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  /** Whether a courier is blocked at a home. */
  async isCourierBlocked(homeId: string, courierId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('home_blocked_couriers')
      .select('courier_id')
      .where('home_id', '=', homeId)
      .where('courier_id', '=', courierId)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** The couriers blocked at a home, most recent first. */
  async listBlockedCouriers(homeId: string): Promise<BlockedCourier[]> {
    const rows = await this.db
      .selectFrom('home_blocked_couriers')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('blocked_at', 'desc')
      .orderBy('courier_id')
      .execute();
    return rows.map((r) => ({
      courierId: r.courier_id,
      blockedAt: Number(r.blocked_at),
      blockedBy: r.blocked_by,
    }));
  }

  /**
   * Whether a courier has, or had, a delivery to this home: assigned to it now, or granted
   * access to it once (a delivery reassigned since still counts). Only such couriers are
   * known to the household, so only they may be blocked by id.
   */
  async hasCourierServed(homeId: string, courierId: string): Promise<boolean> {
    const delivery = await this.db
      .selectFrom('deliveries')
      .select('id')
      .where('home_id', '=', homeId)
      .where('courier_id', '=', courierId)
      .executeTakeFirst();
    if (delivery !== undefined) return true;
    const grant = await this.db
      .selectFrom('grants')
      .select('id')
      .where('home_id', '=', homeId)
      .where('principal_id', '=', courierId)
      .executeTakeFirst();
    return grant !== undefined;
  }

  /**
   * The couriers who have or had a delivery to this home (assigned, or granted access once),
   * the most recent first, at most `limit`.
   */
  async listCouriersServed(homeId: string, limit: number): Promise<string[]> {
    const assigned = await this.db
      .selectFrom('deliveries')
      .select(['courier_id', 'created_at'])
      .where('home_id', '=', homeId)
      .where('courier_id', 'is not', null)
      .execute();
    const granted = await this.db
      .selectFrom('grants')
      .innerJoin('deliveries', 'deliveries.id', 'grants.delivery_id')
      .select(['grants.principal_id', 'deliveries.created_at'])
      .where('grants.home_id', '=', homeId)
      .execute();
    const latest = new Map<string, number>();
    const seen = (id: string, at: number) => latest.set(id, Math.max(latest.get(id) ?? 0, at));
    for (const r of assigned) if (r.courier_id !== null) seen(r.courier_id, Number(r.created_at));
    for (const r of granted) seen(r.principal_id, Number(r.created_at));
    return [...latest.entries()]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, limit)
      .map(([id]) => id);
  }

  /**
   * The owner's choice that stops this courier of this carrier at this home, for the access
   * decision: the courier blocked, or the carrier not allowed (blocked, or never allowed); null
   * when neither. A blocked courier is named first: it is the more particular reason.
   */
  async ownersRefusal(
    homeId: string,
    carrierId: string,
    courierId: string,
  ): Promise<OwnersRefusal | null> {
    if (await this.isCourierBlocked(homeId, courierId)) return 'courier-blocked';
    if (!(await this.isCarrierAllowed(homeId, carrierId))) return 'carrier-not-allowed';
    return null;
  }
}

function toHome(row: Selectable<HomeRow>): Home {
  return {
    id: row.id,
    name: row.name,
    address: row.address,
    geofence: { lat: row.geofence_lat, lon: row.geofence_lon, radiusM: row.geofence_radius_m },
    timeZone: row.time_zone,
    inHomeDelivery: fromFlag(row.in_home_delivery),
    delivery: {
      daysOff: stringArrayFromJson(
        row.delivery_days_off,
        `homes.delivery_days_off of ${row.id}`,
      ).filter(isWeekday),
      askFirst: fromFlag(row.delivery_ask_first),
      askTimeoutMs: Number(row.delivery_ask_timeout_ms),
    },
  };
}

function toDoor(row: Selectable<DoorRow>): Door {
  return {
    id: row.id,
    homeId: row.home_id,
    name: row.name,
    lockDeviceId: row.lock_device_id,
    doorSensorDeviceId: row.door_sensor_device_id,
    cameraDeviceIds: stringArrayFromJson(
      row.camera_device_ids,
      `doors.camera_device_ids of ${row.id}`,
    ),
  };
}

function toDevice(row: Selectable<DeviceRow>): Device {
  return { id: row.id, homeId: row.home_id, kind: row.kind, name: row.name };
}

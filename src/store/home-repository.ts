/** Homes, their doors and their devices. */
import type { Kysely, Selectable } from 'kysely';
import {
  isWeekday,
  type DeliveryPreferences,
  type Device,
  type Door,
  type Home,
} from '../core/model.ts';
import { fromFlag, stringArrayFromJson, toFlag, toJsonText } from './row-codec.ts';
import type { Database, DeviceRow, DoorRow, HomeRow } from './schema.ts';

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

  /** Lets a carrier deliver inside a home (idempotent). */
  async allowCarrier(homeId: string, carrierId: string, atMs: number): Promise<void> {
    await this.db
      .insertInto('home_carriers')
      .values({ home_id: homeId, carrier_id: carrierId, allowed_at: atMs })
      .onConflict((oc) => oc.columns(['home_id', 'carrier_id']).doNothing())
      .execute();
  }

  /** Withdraws a carrier's permission; returns whether it had one. */
  async disallowCarrier(homeId: string, carrierId: string): Promise<boolean> {
    const r = await this.db
      .deleteFrom('home_carriers')
      .where('home_id', '=', homeId)
      .where('carrier_id', '=', carrierId)
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  /** Whether a home lets a carrier deliver inside. */
  async isCarrierAllowed(homeId: string, carrierId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('home_carriers')
      .select('home_id')
      .where('home_id', '=', homeId)
      .where('carrier_id', '=', carrierId)
      .executeTakeFirst();
    return row !== undefined;
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

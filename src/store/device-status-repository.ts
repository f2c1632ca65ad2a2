/** The last known facts about each device, so the status view survives a restart. */
import type { Kysely, Selectable } from 'kysely';
import { fromFlag, fromJsonText, toFlag, toJsonText } from './row-codec.ts';
import type { Database, DeviceStatusRow } from './schema.ts';

/**
 * What was last known about a device. It is history, not truth: a reader shows it with its
 * times ("last seen 12:03:04"), never as the device's current state.
 */
export interface DeviceStatus {
  readonly deviceId: string;
  readonly homeId: string;
  /** Whether the device was online when last updated. */
  readonly online: boolean;
  /** ms since the epoch of the last message from the device, or null if never heard from. */
  readonly lastSeenAt: number | null;
  /** The device's last reported state, as JSON-serialisable data. */
  readonly state: unknown;
  /** ms since the epoch of this record. */
  readonly updatedAt: number;
}

/** Stores the last known status of each device. */
export class DeviceStatusRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Inserts or replaces a device's status; the device and home must exist. */
  async upsert(status: DeviceStatus): Promise<void> {
    const { device_id, ...changes } = toRow(status);
    await this.db
      .insertInto('device_status')
      .values({ device_id, ...changes })
      .onConflict((oc) => oc.column('device_id').doUpdateSet(changes))
      .execute();
  }

  /** A device's last known status, or null if none was recorded. */
  async get(deviceId: string): Promise<DeviceStatus | null> {
    const row = await this.db
      .selectFrom('device_status')
      .selectAll()
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    return row === undefined ? null : fromRow(row);
  }

  /** The last known status of every device of a home that has one, by device id. */
  async listForHome(homeId: string): Promise<DeviceStatus[]> {
    const rows = await this.db
      .selectFrom('device_status')
      .selectAll()
      .where('home_id', '=', homeId)
      .orderBy('device_id')
      .execute();
    return rows.map(fromRow);
  }
}

function toRow(s: DeviceStatus): DeviceStatusRow {
  return {
    device_id: s.deviceId,
    home_id: s.homeId,
    online: toFlag(s.online),
    last_seen_at: s.lastSeenAt,
    state: toJsonText(s.state),
    updated_at: s.updatedAt,
  };
}

function fromRow(row: Selectable<DeviceStatusRow>): DeviceStatus {
  return {
    deviceId: row.device_id,
    homeId: row.home_id,
    online: fromFlag(row.online),
    lastSeenAt: row.last_seen_at,
    state: fromJsonText(row.state, `device_status.state of ${row.device_id}`),
    updatedAt: row.updated_at,
  };
}

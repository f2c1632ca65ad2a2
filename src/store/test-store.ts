/**
 * Test support for the store's own tests: a fresh, empty database per test for each dialect,
 * and a small home to hang rows on (the schema enforces foreign keys).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Carrier } from './principal-repository.ts';
import type { AvailableDialect } from './dialect.ts';
import { openStore, type Store, type StoreOptions } from './store.ts';
import { createTestDatabase } from './test-postgres.ts';
import {
  DEFAULT_DELIVERY_PREFERENCES,
  type Delivery,
  type Device,
  type Door,
  type Grant,
  type Home,
  type Principal,
} from '../core/model.ts';

/** A store on a fresh database, with the options to open the same database again. */
export interface TestStore {
  readonly store: Store;
  readonly options: StoreOptions;
  /** Closes the store (if still open) and deletes the database. */
  cleanup(): Promise<void>;
}

/**
 * Opens a store on a new, empty database of the dialect: a SQLite file in a temporary
 * directory, or a database of its own on the test run's PostgreSQL server.
 */
export async function openTestStore(dialect: AvailableDialect): Promise<TestStore> {
  switch (dialect) {
    case 'sqlite': {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'threshold-store-'));
      const options: StoreOptions = { dialect, path: path.join(dir, 'threshold.db') };
      const store = await openStore(options);
      return {
        store,
        options,
        cleanup: async () => {
          await store.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    case 'postgres': {
      const database = await createTestDatabase();
      const options: StoreOptions = { dialect, url: database.url };
      let store: Store;
      try {
        store = await openStore(options);
      } catch (error) {
        await database.drop();
        throw error;
      }
      return {
        store,
        options,
        cleanup: async () => {
          await store.close();
          await database.drop();
        },
      };
    }
  }
}

/** Fixture: a home with in-home delivery on. */
export const HOME: Home = {
  id: 'home-1',
  name: 'Elm Street',
  address: '1 Elm Street, Springfield',
  geofence: { lat: 52.520008, lon: 13.404954, radiusM: 35.5 },
  timeZone: 'Europe/Berlin',
  inHomeDelivery: true,
  delivery: DEFAULT_DELIVERY_PREFERENCES,
};
/** Fixture: the lock of {@link DOOR}. */
export const LOCK: Device = { id: 'lock-1', homeId: HOME.id, kind: 'lock', name: 'Front lock' };
/** Fixture: the door sensor of {@link DOOR}. */
export const SENSOR: Device = {
  id: 'sensor-1',
  homeId: HOME.id,
  kind: 'door-sensor',
  name: 'Front door contact',
};
/** Fixture: the camera watching {@link DOOR}. */
export const CAMERA: Device = {
  id: 'camera-1',
  homeId: HOME.id,
  kind: 'camera',
  name: 'Hall camera',
};
/** Fixture: the front door of {@link HOME}. */
export const DOOR: Door = {
  id: 'door-1',
  homeId: HOME.id,
  name: 'Front door',
  lockDeviceId: LOCK.id,
  doorSensorDeviceId: SENSOR.id,
  cameraDeviceIds: [CAMERA.id],
};
/** Fixture: a carrier. */
export const CARRIER: Carrier = { id: 'carrier-1', name: 'Parcel Co' };
/** Fixture: the owner of {@link HOME}. */
export const OWNER: Principal = {
  id: 'owner-1',
  role: 'owner',
  displayName: 'Olivia Owner',
  homeId: HOME.id,
  carrierId: null,
};
/** Fixture: a courier of {@link CARRIER}. */
export const COURIER: Principal = {
  id: 'courier-1',
  role: 'courier',
  displayName: 'Carl Courier',
  homeId: null,
  carrierId: CARRIER.id,
};
/** Fixture: a delivery by {@link COURIER} to {@link DOOR}. */
export const DELIVERY: Delivery = {
  id: 'delivery-1',
  carrierId: CARRIER.id,
  homeId: HOME.id,
  doorId: DOOR.id,
  packageRef: 'PKG-0001',
  windowStart: 1_700_000_000_000,
  windowEnd: 1_700_003_600_000,
  courierId: COURIER.id,
  status: 'scheduled',
  createdAt: 1_699_990_000_000,
};

/**
 * Fixture: the delivery grant of `delivery` (by default {@link DELIVERY}): id `grant-1`, for
 * its courier at its door, valid over its window, one use, the door open for a minute at most,
 * recording and presence required, not revoked. `patch` changes any of it (a delivery with no
 * courier needs a `principalId`).
 */
export function deliveryGrant(
  patch: Partial<Grant> = {},
  delivery: Pick<
    Delivery,
    'id' | 'homeId' | 'doorId' | 'windowStart' | 'windowEnd' | 'courierId'
  > = DELIVERY,
): Grant {
  const principalId = patch.principalId ?? delivery.courierId;
  if (principalId === null) throw new Error(`delivery ${delivery.id} has no courier to grant`);
  return {
    id: 'grant-1',
    kind: 'delivery',
    homeId: delivery.homeId,
    doorId: delivery.doorId,
    deliveryId: delivery.id,
    validFrom: delivery.windowStart,
    validUntil: delivery.windowEnd,
    maxUses: 1,
    uses: 0,
    maxOpenMs: 60_000,
    requiresRecording: true,
    requiresPresence: true,
    revokedAt: null,
    ...patch,
    principalId,
  };
}

/** Stores {@link HOME} with its devices and door, {@link CARRIER}, {@link OWNER} and {@link COURIER}. */
export async function seedHome(store: Store): Promise<void> {
  await store.homes.createHome(HOME);
  for (const device of [LOCK, SENSOR, CAMERA]) await store.homes.createDevice(device);
  await store.homes.createDoor(DOOR);
  await store.principals.createCarrier(CARRIER);
  await store.principals.create(OWNER, { username: 'olivia', passwordHash: 'hash-olivia' });
  await store.principals.create(COURIER, { username: 'carl', passwordHash: 'hash-carl' });
}

/** {@link seedHome} plus {@link DELIVERY}. */
export async function seedDelivery(store: Store): Promise<void> {
  await seedHome(store);
  await store.deliveries.create(DELIVERY);
}

/**
 * For the tests of reads over many homes at once: `count` more homes (`home-b0`, `home-b1`…),
 * each with two doors, a lock at each (named so that name order is not id order), an owner, a
 * guest and a disabled member, a guest grant, deliveries, delivery grants (the first delivery's
 * first grant revoked and replaced), and keypad slots. Needs {@link seedHome} first.
 */
export async function seedMoreHomes(store: Store, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const h = `home-b${i}`;
    ids.push(h);
    await store.homes.createHome({ ...HOME, id: h, name: `Home ${count - i}` });
    for (const [d, name] of [
      ['x', 'Zed'],
      ['y', 'Alpha'],
    ] as const) {
      await store.homes.createDevice({ id: `${h}-lock-${d}`, homeId: h, kind: 'lock', name });
      await store.homes.createDoor({
        id: `${h}-door-${d}`,
        homeId: h,
        name: `${name} door`,
        lockDeviceId: `${h}-lock-${d}`,
        doorSensorDeviceId: null,
        cameraDeviceIds: [],
      });
    }
    for (const [p, role] of [
      ['owner', 'owner'],
      ['guest', 'guest'],
      ['gone', 'member'],
    ] as const) {
      await store.principals.create(
        { id: `${h}-${p}`, role, displayName: p, homeId: h, carrierId: null },
        { username: `${h}-${p}`, passwordHash: 'hash' },
      );
    }
    await store.principals.disable(`${h}-gone`, 1);
    for (const [k, created] of [
      [1, 20],
      [2, 10],
    ] as const) {
      await store.guestGrants.create({
        id: `${h}-gg${k}`,
        homeId: h,
        doorId: `${h}-door-x`,
        principalId: `${h}-guest`,
        grantedBy: `${h}-owner`,
        schedule: { kind: 'always' },
        limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
        uses: 0,
        createdAt: created,
        revokedAt: null,
        revokedBy: null,
        revokeReason: null,
      });
    }
    for (const [k, start] of [
      [1, 300],
      [2, 100],
    ] as const) {
      const deliveryId = `${h}-del${k}`;
      const delivery: Delivery = {
        ...DELIVERY,
        id: deliveryId,
        homeId: h,
        doorId: `${h}-door-x`,
        windowStart: start,
        windowEnd: start + 100,
      };
      await store.deliveries.create(delivery);
      const grant = (id: string, validFrom: number, revokedAt: number | null) =>
        store.deliveries.createGrant(deliveryGrant({ id, validFrom, revokedAt }, delivery));
      if (k === 1) {
        await grant(`${deliveryId}-old`, start - 50, 5);
        await grant(`${deliveryId}-older`, start - 60, 4);
      }
      await grant(`${deliveryId}-grant`, start, null);
    }
    for (const slot of [3, 1]) {
      await store.pinSlots.save({
        lockDeviceId: `${h}-lock-x`,
        slot,
        principalId: `${h}-owner`,
        name: null,
        codeDigest: 'm0xG3Gk6v0j6yq2v7o5F7tq1D9m0xG3Gk6v0j6yq2v7',
        desired: 'set',
        sync: 'confirmed',
        attempts: 1,
        nextAttemptAt: null,
        lastError: null,
        lockDigest: null,
        checkedAt: null,
        updatedAt: 1,
        window: null,
        lockWindow: null,
        windowOnly: false,
      });
    }
  }
  return ids;
}

/**
 * Seeds a demo home: one door with a lock, a door sensor and a camera; an owner; a carrier
 * with an API key and an admin who signs in, allowed by the home; a courier with a delivery due
 * now. Idempotent: a data directory seeded before is left as it is, and its credentials are
 * read back (a carrier admin is added to one seeded before admins existed).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DEFAULT_DELIVERY_PREFERENCES,
  type Delivery,
  type Grant,
  type Home,
} from '../core/model.ts';
import { hashPassword } from './auth.ts';
import { DELIVERY_MAX_OPEN_MS } from './routes/carrier-routes.ts';
import type { RunningSystem } from './system.ts';

/** Everything needed to drive the demo home: sign-ins, the API key and device secrets. */
export interface DemoCredentials {
  readonly homeId: string;
  readonly doorId: string;
  readonly owner: { readonly username: string; readonly password: string };
  readonly courier: { readonly id: string; readonly username: string; readonly password: string };
  readonly carrier: { readonly id: string; readonly apiKey: string };
  /** The carrier's admin: signs in like everyone, holds every carrier scope. */
  readonly carrierAdmin: {
    readonly id: string;
    readonly username: string;
    readonly password: string;
  };
  readonly deliveryId: string;
  readonly devices: {
    readonly lock: { readonly id: string; readonly secret: string };
    readonly doorSensor: { readonly id: string; readonly secret: string };
    readonly camera: { readonly id: string; readonly secret: string };
  };
}

export const DEMO_HOME: Home = {
  id: 'home-maple-12',
  name: 'Maple Street 12',
  address: 'Maple Street 12, 10115 Berlin',
  geofence: { lat: 52.5321, lon: 13.3849, radiusM: 80 },
  timeZone: 'Europe/Berlin',
  inHomeDelivery: true,
  delivery: DEFAULT_DELIVERY_PREFERENCES,
};

/** A phone position at the demo home's front door. */
export const DEMO_DOORSTEP = { lat: 52.53212, lon: 13.38492, accuracyM: 8 } as const;

const password = (): string => randomBytes(9).toString('base64url');

/** The demo carrier's admin. */
const DEMO_CARRIER_ADMIN = { id: 'carrier-admin-parcelco', username: 'parcelco-admin' } as const;

/** Creates the demo carrier's admin (a principal of role `carrier`); returns its credentials. */
async function createCarrierAdmin(
  sys: RunningSystem,
  carrierId: string,
): Promise<DemoCredentials['carrierAdmin']> {
  const adminPassword = password();
  await sys.store.principals.create(
    {
      id: DEMO_CARRIER_ADMIN.id,
      role: 'carrier',
      displayName: 'ParcelCo admin',
      homeId: null,
      carrierId,
    },
    { username: DEMO_CARRIER_ADMIN.username, passwordHash: await hashPassword(adminPassword) },
  );
  return { ...DEMO_CARRIER_ADMIN, password: adminPassword };
}

export interface SeedOptions {
  /** Delivery window start relative to now, ms (default: 1 h ago). */
  readonly windowStartOffsetMs?: number;
  /** Delivery window length, ms (default 9 h). */
  readonly windowMs?: number;
  /** Where to keep the credentials file; default `<data>/demo-credentials.json`. */
  readonly credentialsFile?: string;
}

/** Seeds the demo home (once) and returns its credentials. */
export async function seedDemo(
  sys: RunningSystem,
  dataDir: string,
  opts: SeedOptions = {},
): Promise<DemoCredentials> {
  const file = opts.credentialsFile ?? join(dataDir, 'demo-credentials.json');
  if (existsSync(file) && (await sys.store.homes.getHome(DEMO_HOME.id))) {
    let known = JSON.parse(readFileSync(file, 'utf8')) as DemoCredentials;
    // Seeded before carriers had admins: the admin is added once, and kept in the file.
    if ((known as Partial<DemoCredentials>).carrierAdmin === undefined) {
      const existing = await sys.store.principals.get(DEMO_CARRIER_ADMIN.id);
      if (existing === null) {
        known = { ...known, carrierAdmin: await createCarrierAdmin(sys, known.carrier.id) };
        writeFileSync(file, `${JSON.stringify(known, null, 2)}\n`, { mode: 0o600 });
      }
    }
    // A demo started again later gets a delivery it can still use: a fresh one when the last
    // one's window has passed (or is about to) or it was already delivered.
    const now = sys.clock.now();
    const last = await sys.store.deliveries.get(known.deliveryId);
    if (last && last.status === 'scheduled' && last.windowEnd > now + 3_600_000) return known;
    const fresh = await createDemoDelivery(
      sys,
      known.homeId,
      known.doorId,
      known.carrier.id,
      known.courier.id,
      now + (opts.windowStartOffsetMs ?? -3_600_000),
      opts.windowMs ?? 9 * 3_600_000,
    );
    const updated: DemoCredentials = { ...known, deliveryId: fresh.id };
    writeFileSync(file, `${JSON.stringify(updated, null, 2)}\n`, { mode: 0o600 });
    return updated;
  }
  const { store, clock } = sys;
  const now = clock.now();
  const home = DEMO_HOME;
  await store.homes.createHome(home);
  const ids = {
    lock: 'front-lock',
    doorSensor: 'front-door-sensor',
    camera: 'front-camera',
  } as const;
  const lockSecret = await sys.provisionDevice({
    id: ids.lock,
    homeId: home.id,
    kind: 'lock',
    name: 'Front door lock',
  });
  const sensorSecret = await sys.provisionDevice({
    id: ids.doorSensor,
    homeId: home.id,
    kind: 'door-sensor',
    name: 'Front door sensor',
  });
  const cameraSecret = await sys.provisionDevice({
    id: ids.camera,
    homeId: home.id,
    kind: 'camera',
    name: 'Hallway camera',
  });
  const doorId = 'front-door';
  await store.homes.createDoor({
    id: doorId,
    homeId: home.id,
    name: 'Front door',
    lockDeviceId: ids.lock,
    doorSensorDeviceId: ids.doorSensor,
    cameraDeviceIds: [ids.camera],
  });

  const ownerPassword = password();
  await store.principals.create(
    {
      id: 'owner-alex',
      role: 'owner',
      displayName: 'Alex',
      homeId: home.id,
      carrierId: null,
    },
    { username: 'owner', passwordHash: await hashPassword(ownerPassword) },
  );
  const carrierId = 'carrier-parcelco';
  await store.principals.createCarrier({ id: carrierId, name: 'ParcelCo' });
  await store.homes.allowCarrier(home.id, carrierId, now);
  const { key: apiKey } = await sys.auth.createApiKey(carrierId, { name: 'Demo dispatch' });
  const carrierAdmin = await createCarrierAdmin(sys, carrierId);
  const courierPassword = password();
  const courierId = 'courier-sam';
  await store.principals.create(
    { id: courierId, role: 'courier', displayName: 'Sam (ParcelCo)', homeId: null, carrierId },
    { username: 'courier', passwordHash: await hashPassword(courierPassword) },
  );
  const delivery = await createDemoDelivery(
    sys,
    home.id,
    doorId,
    carrierId,
    courierId,
    now + (opts.windowStartOffsetMs ?? -3_600_000),
    opts.windowMs ?? 9 * 3_600_000,
  );
  const creds: DemoCredentials = {
    homeId: home.id,
    doorId,
    owner: { username: 'owner', password: ownerPassword },
    courier: { id: courierId, username: 'courier', password: courierPassword },
    carrier: { id: carrierId, apiKey },
    carrierAdmin,
    deliveryId: delivery.id,
    devices: {
      lock: { id: ids.lock, secret: lockSecret },
      doorSensor: { id: ids.doorSensor, secret: sensorSecret },
      camera: { id: ids.camera, secret: cameraSecret },
    },
  };
  writeFileSync(file, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  return creds;
}

/** Creates a delivery with its courier grant (as the carrier API does). */
export async function createDemoDelivery(
  sys: RunningSystem,
  homeId: string,
  doorId: string,
  carrierId: string,
  courierId: string,
  windowStart: number,
  windowMs: number,
  maxOpenMs: number = DELIVERY_MAX_OPEN_MS,
): Promise<Delivery> {
  const delivery: Delivery = {
    id: randomUUID(),
    carrierId,
    homeId,
    doorId,
    packageRef: `PKG-${randomBytes(3).toString('hex').toUpperCase()}`,
    windowStart,
    windowEnd: windowStart + windowMs,
    courierId,
    status: 'scheduled',
    createdAt: sys.clock.now(),
  };
  await sys.store.deliveries.create(delivery);
  const grant: Grant = {
    id: randomUUID(),
    kind: 'delivery',
    principalId: courierId,
    homeId,
    doorId,
    deliveryId: delivery.id,
    validFrom: delivery.windowStart,
    validUntil: delivery.windowEnd,
    maxUses: 1,
    uses: 0,
    maxOpenMs,
    requiresRecording: true,
    requiresPresence: true,
    revokedAt: null,
  };
  await sys.store.deliveries.createGrant(grant);
  // Made behind the API's back (no audit entry to follow): tell the door's hub at once.
  sys.grantLists.changed(homeId);
  return delivery;
}

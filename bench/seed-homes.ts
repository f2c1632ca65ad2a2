/**
 * Seeding many homes for the benches that need a populated store before the server starts
 * (bench/startup.ts, bench/sessions-per-node.ts). Every home has the same core: a door with a
 * lock and a camera (no door sensor), and an in-home delivery to it by the bench's one courier
 * with its grant. A bench adds its own rows to each home through `perHome`.
 *
 * Rows are written through the store's repositories in batched transactions (one per
 * {@link SEED_BATCH} homes): one transaction per home would make seeding 10,000 homes take
 * minutes on SQLite.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { DEFAULT_DELIVERY_PREFERENCES, type Home } from '../src/core/model.ts';
import {
  DeliveryRepository,
  HomeRepository,
  type Database,
  type Store,
} from '../src/store/index.ts';

/** Homes written per transaction. */
export const SEED_BATCH = 500;

/** The ids of one seeded home's rows. */
export interface SeededHomeIds {
  readonly homeId: string;
  readonly doorId: string;
  readonly lockId: string;
  readonly cameraId: string;
}

/**
 * The ids of home `i` of a bench whose ids start with `prefix`: `${prefix}-home-000042`, and
 * `-door-`, `-lock-`, `-cam-` likewise (six digits, so that id order is index order).
 */
export function seededHomeIds(prefix: string, i: number): SeededHomeIds {
  const n = String(i).padStart(6, '0');
  return {
    homeId: `${prefix}-home-${n}`,
    doorId: `${prefix}-door-${n}`,
    lockId: `${prefix}-lock-${n}`,
    cameraId: `${prefix}-cam-${n}`,
  };
}

/** What {@link seedHomes} writes. */
export interface SeedHomesOptions {
  /** Homes to seed, numbered 0 to `count - 1`. */
  readonly count: number;
  /** The start of every home's ids (see {@link seededHomeIds}). */
  readonly prefix: string;
  /** The carrier of every delivery. */
  readonly carrier: { readonly id: string; readonly name: string };
  /** The courier of every delivery, a member of `carrier`. */
  readonly courier: {
    readonly id: string;
    readonly username: string;
    readonly displayName: string;
    readonly passwordHash: string;
  };
  /** Home `i`'s name, address and geofence. */
  readonly home: (i: number) => Pick<Home, 'name' | 'address' | 'geofence'>;
  /**
   * Every delivery's window (its grant is valid over the same span) and creation time, epoch
   * ms; and how long its grant lets the door stay open, ms.
   */
  readonly delivery: {
    readonly windowStart: number;
    readonly windowEnd: number;
    readonly createdAt: number;
    readonly maxOpenMs: number;
  };
  /**
   * The bench's own rows of home `i`, written in the batch's transaction `trx` after the
   * home's door and before its delivery.
   */
  readonly perHome?: (trx: Kysely<Database>, i: number, ids: SeededHomeIds) => Promise<void>;
  /** Told the number of homes seeded so far after every tenth batch. */
  readonly progress?: (seeded: number) => void;
}

/**
 * Seeds the carrier, the courier and `count` homes (see the module comment) into `store`;
 * returns the delivery ids, home 0's first.
 */
export async function seedHomes(store: Store, opts: SeedHomesOptions): Promise<string[]> {
  const { carrier, courier, delivery } = opts;
  await store.principals.createCarrier({ id: carrier.id, name: carrier.name });
  await store.principals.create(
    {
      id: courier.id,
      role: 'courier',
      displayName: courier.displayName,
      homeId: null,
      carrierId: carrier.id,
    },
    { username: courier.username, passwordHash: courier.passwordHash },
  );
  const deliveryIds: string[] = [];
  for (let from = 0; from < opts.count; from += SEED_BATCH) {
    await store.db.transaction().execute(async (trx) => {
      const homes = new HomeRepository(trx);
      const deliveries = new DeliveryRepository(trx);
      for (let i = from; i < Math.min(opts.count, from + SEED_BATCH); i++) {
        const ids = seededHomeIds(opts.prefix, i);
        await homes.createHome({
          id: ids.homeId,
          ...opts.home(i),
          timeZone: 'Europe/Berlin',
          inHomeDelivery: true,
          delivery: DEFAULT_DELIVERY_PREFERENCES,
        });
        await homes.createDevice({
          id: ids.lockId,
          homeId: ids.homeId,
          kind: 'lock',
          name: 'Lock',
        });
        await homes.createDevice({
          id: ids.cameraId,
          homeId: ids.homeId,
          kind: 'camera',
          name: 'Camera',
        });
        await homes.createDoor({
          id: ids.doorId,
          homeId: ids.homeId,
          name: 'Front door',
          lockDeviceId: ids.lockId,
          doorSensorDeviceId: null,
          cameraDeviceIds: [ids.cameraId],
        });
        await opts.perHome?.(trx, i, ids);
        const deliveryId = randomUUID();
        await deliveries.create({
          id: deliveryId,
          carrierId: carrier.id,
          homeId: ids.homeId,
          doorId: ids.doorId,
          packageRef: `PKG-${i}`,
          windowStart: delivery.windowStart,
          windowEnd: delivery.windowEnd,
          courierId: courier.id,
          status: 'scheduled',
          createdAt: delivery.createdAt,
        });
        await deliveries.createGrant({
          id: randomUUID(),
          kind: 'delivery',
          principalId: courier.id,
          homeId: ids.homeId,
          doorId: ids.doorId,
          deliveryId,
          validFrom: delivery.windowStart,
          validUntil: delivery.windowEnd,
          maxUses: 1,
          uses: 0,
          maxOpenMs: delivery.maxOpenMs,
          requiresRecording: true,
          requiresPresence: true,
          revokedAt: null,
        });
        deliveryIds.push(deliveryId);
      }
    });
    if ((from / SEED_BATCH) % 10 === 9) opts.progress?.(from + SEED_BATCH);
  }
  return deliveryIds;
}

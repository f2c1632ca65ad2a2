/**
 * The lists {@link GrantLists} publishes at start, for many homes at once: the facts of every
 * home are read a chunk of homes at a time (a few queries per chunk), and the lists built from
 * them must be exactly the lists built one home at a time.
 *
 * Two checks, on each dialect:
 * - the signed lists are byte for byte the ones stored in `__snapshots__/grant-lists-start.json`,
 *   which were made by the builder that read each home (and each lock's slots, each delivery's
 *   grant) with queries of its own, before the reads were batched (a fixed clock and a fixed
 *   Ed25519 key make the bytes reproducible: Ed25519 signatures are deterministic);
 * - rebuilding each home on its own afterwards (one home's facts read alone) finds nothing new
 *   to say for any lock.
 */
import { createHash, createPrivateKey } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { GrantSchedule } from '../core/grant-schedule.ts';
import {
  DEFAULT_DELIVERY_PREFERENCES,
  type Delivery,
  type DeliveryStatus,
  type Role,
} from '../core/model.ts';
import { DIALECTS } from '../store/dialect.ts';
import type { Store } from '../store/index.ts';
import { deliveryGrant, openTestStore, type TestStore } from '../store/test-store.ts';
import { GrantLists } from './grant-lists.ts';
import { ed25519Signer } from './keys.ts';

/** Thursday 15 January 2026, 12:00 UTC. */
const T0 = 1_768_478_400_000;
const HOUR = 3_600_000;
const HOMES = 7;

/** A fixed Ed25519 key (PKCS#8 around a 32-byte seed), so signatures are reproducible. */
function fixedSigner(): ReturnType<typeof ed25519Signer> {
  const der = Buffer.concat([
    Buffer.from('302e020100300506032b657004220420', 'hex'),
    Buffer.alloc(32, 7),
  ]);
  const pem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
  return ed25519Signer(pem);
}

/** A keypad code's digest as a lock reports it: 43 base64url characters. */
const digestOf = (s: string): string => createHash('sha256').update(s).digest('base64url');

const WEEKDAYS_9_TO_5: GrantSchedule = {
  kind: 'weekly',
  slots: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' }],
};

/**
 * Seeds `HOMES` homes that differ from each other: two doors with a lock each (some homes), an
 * owner, a member, guests with live, revoked and used-up grants, a disabled member, keypad
 * slots wanted set and wanted empty, deliveries open, finished, cancelled and left at the door,
 * a delivery whose first grant was revoked and replaced.
 */
async function seedHomes(store: Store): Promise<void> {
  await store.principals.createCarrier({ id: 'carrier', name: 'Carrier' });
  await store.principals.create(
    { id: 'courier', role: 'courier', displayName: 'C', homeId: null, carrierId: 'carrier' },
    { username: 'courier', passwordHash: 'x' },
  );
  for (let i = 0; i < HOMES; i++) {
    const h = `home-${i}`;
    const twoDoors = i % 2 === 0;
    await store.homes.createHome({
      id: h,
      // Names out of id order: homes are listed by name.
      name: `Home ${HOMES - i}`,
      address: `Street ${i}`,
      geofence: { lat: 52.5, lon: 13.4, radiusM: 80 },
      timeZone: i % 3 === 0 ? 'America/New_York' : 'Europe/Berlin',
      inHomeDelivery: true,
      delivery: DEFAULT_DELIVERY_PREFERENCES,
    });
    const doors = twoDoors ? ['front', 'back'] : ['front'];
    for (const d of doors) {
      await store.homes.createDevice({ id: `${h}-${d}-lock`, homeId: h, kind: 'lock', name: d });
      await store.homes.createDoor({
        id: `${h}-${d}`,
        homeId: h,
        name: `${d} door`,
        lockDeviceId: `${h}-${d}-lock`,
        doorSensorDeviceId: null,
        cameraDeviceIds: [],
      });
    }
    const people: [string, Role][] = [
      [`${h}-owner`, 'owner'],
      [`${h}-member`, 'member'],
      [`${h}-guest-a`, 'guest'],
      [`${h}-guest-b`, 'guest'],
      [`${h}-gone`, 'member'],
    ];
    for (const [id, role] of people) {
      await store.principals.create(
        { id, role, displayName: id, homeId: h, carrierId: null },
        { username: id, passwordHash: 'x' },
      );
    }
    await store.principals.disable(`${h}-gone`, T0 - HOUR);
    const grant = (
      id: string,
      principalId: string,
      door: string,
      schedule: GrantSchedule,
      extra: { revokedAt?: number; uses?: number; maxUses?: number } = {},
    ) =>
      store.guestGrants.create({
        id,
        homeId: h,
        doorId: `${h}-${door}`,
        principalId,
        grantedBy: `${h}-owner`,
        schedule,
        limits: {
          maxUses: extra.maxUses ?? null,
          maxMinutesPerEntry: null,
          requiresRecording: true,
        },
        uses: extra.uses ?? 0,
        createdAt: T0 - 2 * HOUR + i,
        revokedAt: extra.revokedAt ?? null,
        revokedBy: extra.revokedAt === undefined ? null : `${h}-owner`,
        revokeReason: extra.revokedAt === undefined ? null : 'moved out',
      });
    await grant(`${h}-g1`, `${h}-guest-a`, 'front', WEEKDAYS_9_TO_5);
    await grant(`${h}-g2`, `${h}-guest-a`, 'front', {
      kind: 'one-time',
      from: '2026-01-15T18:00',
      until: '2026-01-15T20:30',
    });
    await grant(`${h}-g3`, `${h}-guest-b`, 'front', { kind: 'always' }, { revokedAt: T0 - HOUR });
    await grant(`${h}-g4`, `${h}-guest-b`, 'front', { kind: 'always' }, { uses: 2, maxUses: 2 });
    if (twoDoors) await grant(`${h}-g5`, `${h}-guest-b`, 'back', { kind: 'always' });
    const slot = async (
      lock: string,
      n: number,
      principalId: string | null,
      desired: 'set' | 'clear',
    ): Promise<void> =>
      store.pinSlots.save({
        lockDeviceId: `${h}-${lock}-lock`,
        slot: n,
        principalId,
        name: null,
        codeDigest: desired === 'set' ? digestOf(`${h}-${lock}-${n}`) : null,
        desired,
        sync: n % 2 === 0 ? 'pending' : 'confirmed',
        attempts: 1,
        nextAttemptAt: null,
        lastError: null,
        lockDigest: null,
        checkedAt: null,
        updatedAt: T0,
        window: null,
        lockWindow: null,
        windowOnly: false,
      });
    await slot('front', 1, `${h}-owner`, 'set');
    await slot('front', 2, `${h}-member`, 'set');
    await slot('front', 3, `${h}-guest-a`, 'set');
    await slot('front', 4, null, 'clear');
    await slot('front', 5, `${h}-gone`, 'set');
    await slot('front', 6, `${h}-guest-b`, 'set');
    if (twoDoors) await slot('back', 1, `${h}-guest-b`, 'set');
    const statuses: [DeliveryStatus, 'in-home' | 'doorstep'][] = [
      ['scheduled', 'in-home'],
      ['in-progress', 'in-home'],
      ['delivered', 'in-home'],
      ['cancelled', 'in-home'],
      ['scheduled', 'doorstep'],
    ];
    for (const [k, [status, placement]] of statuses.entries()) {
      const id = `${h}-d${k}`;
      const door = twoDoors && k === 1 ? 'back' : 'front';
      const delivery: Delivery = {
        id,
        carrierId: 'carrier',
        homeId: h,
        doorId: `${h}-${door}`,
        packageRef: id,
        windowStart: T0 + k * HOUR,
        windowEnd: T0 + (k + 2) * HOUR,
        courierId: 'courier',
        status,
        createdAt: T0 - HOUR,
        placement,
      };
      await store.deliveries.create(delivery);
      const grant = (gid: string, validFrom: number, revokedAt: number | null) =>
        store.deliveries.createGrant(
          deliveryGrant({ id: gid, validFrom, maxOpenMs: 600_000, revokedAt }, delivery),
        );
      // The first delivery was reassigned: its first grant revoked, a new one made.
      if (k === 0) await grant(`${id}-grant-old`, T0 - HOUR, T0 - HOUR / 2);
      await grant(`${id}-grant`, T0 + k * HOUR, null);
    }
    // A delivery with no grant at all is not listed.
    await store.deliveries.create({
      id: `${h}-d-nogrant`,
      carrierId: 'carrier',
      homeId: h,
      doorId: `${h}-front`,
      packageRef: 'none',
      windowStart: T0,
      windowEnd: T0 + HOUR,
      courierId: null,
      status: 'scheduled',
      createdAt: T0,
    });
  }
}

for (const dialect of DIALECTS) {
  describe(`grant lists at start, many homes (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHomes(t.store);
    });
    afterEach(() => t.cleanup());

    it('publishes, for every lock, the lists the home-by-home builder published', async () => {
      const clock = new FakeClock(T0);
      const published: { lockId: string; payload: string }[] = [];
      const problems: string[] = [];
      const lists = new GrantLists({
        store: t.store,
        publisher: {
          publishGrants: (_homeId, lockId, payload) => {
            published.push({ lockId, payload });
            return Promise.resolve(true);
          },
        },
        signer: fixedSigner(),
        clock,
        offlineHorizonMs: 72 * HOUR,
        debounceMs: 0,
        logger: { error: (_o, m) => problems.push(m), warn: (_o, m) => problems.push(m) },
      });
      try {
        await lists.start();
        published.sort((a, b) => (a.lockId < b.lockId ? -1 : a.lockId > b.lockId ? 1 : 0));
        expect(problems).toEqual([]);
        // 4 homes with two locks, 3 with one.
        expect(published).toHaveLength(11);
        // The lists say something: every part of the format is exercised.
        const first = JSON.parse(published[0]?.payload ?? '{}') as {
          list: { pins: unknown[]; deliveries: unknown[]; guests: unknown[] };
        };
        expect(first.list.pins.length).toBeGreaterThan(0);
        expect(published.some((p) => p.payload.includes('"deliveries":[{'))).toBe(true);
        expect(published.some((p) => p.payload.includes('"guests":[{'))).toBe(true);
        await expect(
          `${JSON.stringify(Object.fromEntries(published.map((p) => [p.lockId, p.payload])), null, 1)}\n`,
        ).toMatchFileSnapshot('./__snapshots__/grant-lists-start.json');

        // Each home rebuilt alone: nothing new for any lock.
        for (let i = 0; i < HOMES; i++) lists.changed(`home-${i}`);
        clock.advance(0);
        for (let k = 0; k < 500 && lists.stats().unchanged < 11; k++)
          await new Promise((r) => setTimeout(r, 10));
        expect(lists.stats()).toMatchObject({ published: 11, unchanged: 11, tooLarge: 0 });
      } finally {
        await lists.stop();
      }
    });
  });
}

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery, Grant } from '../core/model.ts';
import { DeliveryEventRepository } from './delivery-event-repository.ts';
import { DIALECTS } from './dialect.ts';
import {
  CARRIER,
  COURIER,
  DELIVERY,
  HOME,
  deliveryGrant,
  openTestStore,
  seedDelivery,
  seedMoreHomes,
  type TestStore,
} from './test-store.ts';

/** {@link DELIVERY} as the store reads it back: in-home, last changed when created. */
const STORED: Delivery = { ...DELIVERY, placement: 'in-home', updatedAt: DELIVERY.createdAt };

const GRANT: Grant = deliveryGrant({ maxOpenMs: 120_000, requiresPresence: false });

for (const dialect of DIALECTS) {
  describe(`DeliveryRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedDelivery(t.store);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores deliveries and lists them per courier, carrier and home by window', async () => {
      const { deliveries } = t.store;
      const earlier: Delivery = {
        ...DELIVERY,
        id: 'delivery-0',
        windowStart: DELIVERY.windowStart - 10_000,
        courierId: null,
      };
      await deliveries.create(earlier);
      const storedEarlier = { ...earlier, placement: 'in-home', updatedAt: earlier.createdAt };

      expect(await deliveries.get(DELIVERY.id)).toEqual(STORED);
      expect(await deliveries.get('nope')).toBeNull();
      expect(await deliveries.listForCourier(COURIER.id)).toEqual([STORED]);
      expect(await deliveries.listForCarrier(CARRIER.id)).toEqual([storedEarlier, STORED]);
      expect(await deliveries.listForHome(HOME.id)).toEqual([storedEarlier, STORED]);
      expect(await deliveries.listForHome('other-home')).toEqual([]);
    });

    it('updates status and assigns couriers', async () => {
      const { deliveries } = t.store;
      const unassigned: Delivery = { ...DELIVERY, id: 'delivery-2', courierId: null };
      await deliveries.create(unassigned);

      expect(await deliveries.updateStatus(DELIVERY.id, 'delivered')).toBe(true);
      expect(await deliveries.assignCourier(unassigned.id, COURIER.id)).toBe(true);
      expect(await deliveries.updateStatus('nope', 'cancelled')).toBe(false);

      expect(await deliveries.get(DELIVERY.id)).toEqual({ ...STORED, status: 'delivered' });
      expect((await deliveries.listForCourier(COURIER.id)).map((d) => d.id)).toEqual([
        DELIVERY.id,
        unassigned.id,
      ]);
    });

    it('stores grants and finds them by id and by delivery', async () => {
      const { deliveries } = t.store;
      await deliveries.createGrant(GRANT);
      expect(await deliveries.getGrant(GRANT.id)).toEqual(GRANT);
      expect(await deliveries.getGrantForDelivery(DELIVERY.id)).toEqual(GRANT);
      expect(await deliveries.getGrantForDelivery('nope')).toBeNull();
      expect(await deliveries.getGrant('nope')).toBeNull();
    });

    it('claims grant uses only up to maxUses and never on a revoked grant', async () => {
      const { deliveries } = t.store;
      await deliveries.createGrant({ ...GRANT, maxUses: 2 });
      await deliveries.createGrant({ ...GRANT, id: 'grant-2', revokedAt: 5 });

      expect(await deliveries.incrementGrantUses(GRANT.id)).toBe(true);
      expect(await deliveries.incrementGrantUses(GRANT.id)).toBe(true);
      expect(await deliveries.incrementGrantUses(GRANT.id)).toBe(false);
      expect(await deliveries.incrementGrantUses('grant-2')).toBe(false);
      expect((await deliveries.getGrant(GRANT.id))?.uses).toBe(2);
      expect((await deliveries.getGrant('grant-2'))?.uses).toBe(0);
    });

    it('revokes a grant once and prefers the live replacement', async () => {
      const { deliveries } = t.store;
      await deliveries.createGrant(GRANT);
      expect(await deliveries.revokeGrant(GRANT.id, 1000)).toBe(true);
      expect(await deliveries.revokeGrant(GRANT.id, 2000)).toBe(false);
      expect(await deliveries.getGrantForDelivery(DELIVERY.id)).toEqual({
        ...GRANT,
        revokedAt: 1000,
      });

      const replacement: Grant = { ...GRANT, id: 'grant-0', validFrom: GRANT.validFrom - 1 };
      await deliveries.createGrant(replacement);
      expect(await deliveries.getGrantForDelivery(DELIVERY.id)).toEqual(replacement);
    });

    it('keeps the placement and when the delivery last changed', async () => {
      const { deliveries } = t.store;
      const doorstep: Delivery = { ...DELIVERY, id: 'delivery-d', placement: 'doorstep' };
      await deliveries.create(doorstep);
      expect(await deliveries.get(doorstep.id)).toMatchObject({
        placement: 'doorstep',
        updatedAt: DELIVERY.createdAt,
      });
      expect(await deliveries.updateStatus(doorstep.id, 'left-at-door', 1_700_000_500_000)).toBe(
        true,
      );
      expect(await deliveries.get(doorstep.id)).toMatchObject({
        status: 'left-at-door',
        updatedAt: 1_700_000_500_000,
      });
    });

    it('moves a status only from the states given, and says whether it moved', async () => {
      const { deliveries } = t.store;
      expect(await deliveries.transition(DELIVERY.id, ['in-progress'], 'delivered', 5)).toBe(false);
      expect((await deliveries.get(DELIVERY.id))?.status).toBe('scheduled');
      expect(await deliveries.transition(DELIVERY.id, ['scheduled'], 'cancelled', 6)).toBe(true);
      expect(await deliveries.get(DELIVERY.id)).toMatchObject({
        status: 'cancelled',
        updatedAt: 6,
      });
      // A second cancel (or a courier arriving) no longer finds it scheduled.
      expect(await deliveries.transition(DELIVERY.id, ['scheduled'], 'cancelled', 7)).toBe(false);
      expect(await deliveries.transition(DELIVERY.id, [], 'delivered', 8)).toBe(false);
      expect(await deliveries.transition('nope', ['scheduled'], 'cancelled', 9)).toBe(false);
    });

    it('reassigns only a scheduled delivery, and revokes every live grant of a delivery once', async () => {
      const { deliveries, principals } = t.store;
      await principals.create(
        { ...COURIER, id: 'courier-2', displayName: 'Cora' },
        { username: 'cora', passwordHash: 'x' },
      );
      await deliveries.createGrant(GRANT);
      await deliveries.createGrant({ ...GRANT, id: 'grant-old', revokedAt: 3 });
      expect(await deliveries.reassign(DELIVERY.id, 'courier-2', 10)).toBe(true);
      expect(await deliveries.get(DELIVERY.id)).toMatchObject({
        courierId: 'courier-2',
        updatedAt: 10,
      });
      expect(await deliveries.revokeGrantsOfDelivery(DELIVERY.id, 11)).toEqual([GRANT.id]);
      expect(await deliveries.revokeGrantsOfDelivery(DELIVERY.id, 12)).toEqual([]);
      expect((await deliveries.getGrant(GRANT.id))?.revokedAt).toBe(11);
      expect((await deliveries.getGrant('grant-old'))?.revokedAt).toBe(3);

      await deliveries.updateStatus(DELIVERY.id, 'in-progress');
      expect(await deliveries.reassign(DELIVERY.id, COURIER.id, 13)).toBe(false);
      expect((await deliveries.get(DELIVERY.id))?.courierId).toBe('courier-2');
    });

    it('pages a carrier’s deliveries newest first, by status, with a cursor that holds', async () => {
      const { deliveries } = t.store;
      // DELIVERY (created at T) plus four more, one a millisecond later each; two cancelled.
      const made: Delivery[] = [];
      for (let i = 1; i <= 4; i++) {
        const d: Delivery = {
          ...DELIVERY,
          id: `delivery-p${i}`,
          createdAt: DELIVERY.createdAt + i,
          status: i % 2 === 0 ? 'cancelled' : 'scheduled',
        };
        await deliveries.create(d);
        made.push(d);
      }
      const first = await deliveries.pageForCarrier(CARRIER.id, { limit: 2 });
      expect(first.deliveries.map((d) => d.id)).toEqual(['delivery-p4', 'delivery-p3']);
      expect(first.next).toBe('delivery-p3');
      const after = await deliveries.get('delivery-p3');
      if (!after) throw new Error('no delivery-p3');
      // One made meanwhile is newer: it does not shift the next page.
      await deliveries.create({
        ...DELIVERY,
        id: 'delivery-p9',
        createdAt: DELIVERY.createdAt + 9,
      });
      const second = await deliveries.pageForCarrier(CARRIER.id, { limit: 2, after });
      expect(second.deliveries.map((d) => d.id)).toEqual(['delivery-p2', 'delivery-p1']);
      expect(second.next).toBe('delivery-p1');
      const last = await deliveries.get('delivery-p1');
      if (!last) throw new Error('no delivery-p1');
      const third = await deliveries.pageForCarrier(CARRIER.id, { limit: 2, after: last });
      expect(third).toEqual({ deliveries: [STORED], next: null });

      const cancelled = await deliveries.pageForCarrier(CARRIER.id, {
        limit: 10,
        status: 'cancelled',
      });
      expect(cancelled.deliveries.map((d) => d.id)).toEqual(['delivery-p4', 'delivery-p2']);
      expect(cancelled.next).toBeNull();
      expect(await deliveries.pageForCarrier('carrier-nobody', { limit: 10 })).toEqual({
        deliveries: [],
        next: null,
      });
    });

    it('numbers a delivery’s events 1, 2, 3 and reads them back in order', async () => {
      const events = new DeliveryEventRepository(t.store.db);
      const base = { deliveryId: DELIVERY.id, carrierId: CARRIER.id, data: {} };
      const a = await events.append({
        ...base,
        id: 'evt-a',
        type: 'delivery.created',
        status: 'scheduled',
        at: 1,
      });
      const b = await events.append({
        ...base,
        id: 'evt-b',
        type: 'delivery.cancelled',
        status: 'cancelled',
        at: 2,
        data: { reason: 'customer moved' },
      });
      expect([a.seq, b.seq]).toEqual([1, 2]);
      expect(await events.listForDelivery(DELIVERY.id)).toEqual([a, b]);
      expect(await events.get('evt-b')).toEqual(b);
      expect(await events.get('nope')).toBeNull();
    });

    it('lists the deliveries of many homes and their grants, each as one at a time', async () => {
      const deliveries = t.store.deliveries;
      const ids = [HOME.id, ...(await seedMoreHomes(t.store, 3)), 'no-such-home'];
      const byHome = await deliveries.listForHomes(ids);
      for (const id of ids) expect(byHome.get(id)).toEqual(await deliveries.listForHome(id));
      expect(byHome.get('home-b0')?.map((d) => d.id)).toEqual(['home-b0-del2', 'home-b0-del1']);
      const all = [...byHome.values()].flat().map((d) => d.id);
      const grants = await deliveries.getGrantsForDeliveries([...all, 'no-such-delivery']);
      for (const id of all) {
        expect(grants.get(id) ?? null).toEqual(await deliveries.getGrantForDelivery(id));
      }
      // The unrevoked grant wins over the revoked ones, as getGrantForDelivery picks it.
      expect(grants.get('home-b0-del1')?.id).toBe('home-b0-del1-grant');
      expect(grants.has('no-such-delivery')).toBe(false);
    });
  });
}

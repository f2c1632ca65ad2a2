import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery, Grant } from '../core/model.ts';
import { DIALECTS } from './dialect.ts';
import {
  CARRIER,
  COURIER,
  DELIVERY,
  DOOR,
  HOME,
  openTestStore,
  seedDelivery,
  type TestStore,
} from './test-store.ts';

const GRANT: Grant = {
  id: 'grant-1',
  kind: 'delivery',
  principalId: COURIER.id,
  homeId: HOME.id,
  doorId: DOOR.id,
  deliveryId: DELIVERY.id,
  validFrom: DELIVERY.windowStart,
  validUntil: DELIVERY.windowEnd,
  maxUses: 1,
  uses: 0,
  maxOpenMs: 120_000,
  requiresRecording: true,
  requiresPresence: false,
  revokedAt: null,
};

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

      expect(await deliveries.get(DELIVERY.id)).toEqual(DELIVERY);
      expect(await deliveries.get('nope')).toBeNull();
      expect(await deliveries.listForCourier(COURIER.id)).toEqual([DELIVERY]);
      expect(await deliveries.listForCarrier(CARRIER.id)).toEqual([earlier, DELIVERY]);
      expect(await deliveries.listForHome(HOME.id)).toEqual([earlier, DELIVERY]);
      expect(await deliveries.listForHome('other-home')).toEqual([]);
    });

    it('updates status and assigns couriers', async () => {
      const { deliveries } = t.store;
      const unassigned: Delivery = { ...DELIVERY, id: 'delivery-2', courierId: null };
      await deliveries.create(unassigned);

      expect(await deliveries.updateStatus(DELIVERY.id, 'delivered')).toBe(true);
      expect(await deliveries.assignCourier(unassigned.id, COURIER.id)).toBe(true);
      expect(await deliveries.updateStatus('nope', 'cancelled')).toBe(false);

      expect(await deliveries.get(DELIVERY.id)).toEqual({ ...DELIVERY, status: 'delivered' });
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
  });
}

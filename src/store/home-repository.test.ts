import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_DELIVERY_PREFERENCES, type Door, type Home } from '../core/model.ts';
import { DIALECTS, isUniqueViolation } from './dialect.ts';
import {
  CAMERA,
  CARRIER,
  COURIER,
  DELIVERY,
  DOOR,
  HOME,
  LOCK,
  OWNER,
  SENSOR,
  deliveryGrant,
  openTestStore,
  seedHome,
  seedMoreHomes,
  type TestStore,
} from './test-store.ts';

for (const dialect of DIALECTS) {
  describe(`HomeRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores and reads back a home, its devices and its doors', async () => {
      const { homes } = t.store;
      await homes.createHome(HOME);
      for (const device of [LOCK, SENSOR, CAMERA]) await homes.createDevice(device);
      const secondCamera = { ...CAMERA, id: 'camera-2', name: 'Porch camera' };
      await homes.createDevice(secondCamera);
      const door: Door = { ...DOOR, cameraDeviceIds: [CAMERA.id, secondCamera.id] };
      await homes.createDoor(door);
      const backDoor: Door = {
        id: 'door-2',
        homeId: HOME.id,
        name: 'Back door',
        lockDeviceId: LOCK.id,
        doorSensorDeviceId: null,
        cameraDeviceIds: [],
      };
      await homes.createDoor(backDoor);

      expect(await homes.getHome(HOME.id)).toEqual(HOME);
      expect(await homes.getDevice(SENSOR.id)).toEqual(SENSOR);
      expect(await homes.getDoor(door.id)).toEqual(door);
      expect(await homes.getDoor(backDoor.id)).toEqual(backDoor);
      expect(await homes.listDoors(HOME.id)).toEqual([backDoor, door]);
      expect((await homes.listDevices(HOME.id)).map((d) => d.id)).toEqual([
        'sensor-1', // Front door contact
        'lock-1', // Front lock
        'camera-1', // Hall camera
        'camera-2',
      ]);
    });

    it('answers null for unknown ids and empty lists for unknown homes', async () => {
      const { homes } = t.store;
      expect(await homes.getHome('nope')).toBeNull();
      expect(await homes.getDoor('nope')).toBeNull();
      expect(await homes.getDevice('nope')).toBeNull();
      expect(await homes.listDoors('nope')).toEqual([]);
      expect(await homes.listHomes()).toEqual([]);
    });

    it('lists homes by name and devices of one home or of all', async () => {
      const { homes } = t.store;
      const other: Home = { ...HOME, id: 'home-0', name: 'Birch Road', inHomeDelivery: false };
      await homes.createHome(HOME);
      await homes.createHome(other);
      await homes.createDevice(LOCK);
      await homes.createDevice({ id: 'lock-9', homeId: other.id, kind: 'lock', name: 'Gate' });

      expect(await homes.listHomes()).toEqual([other, HOME]);
      expect((await homes.listDevices(other.id)).map((d) => d.id)).toEqual(['lock-9']);
      expect((await homes.listDevices()).map((d) => d.id)).toEqual(['lock-1', 'lock-9']);
    });

    it('rejects a duplicate home id and a door of a home that does not exist', async () => {
      const { homes } = t.store;
      await homes.createHome(HOME);
      const duplicate = await homes.createHome(HOME).catch((e: unknown) => e);
      expect(isUniqueViolation(duplicate)).toBe(true);
      await expect(homes.createDevice({ ...LOCK, homeId: 'no-such-home' })).rejects.toThrow(
        /FOREIGN KEY|foreign key/,
      );
      expect(await homes.listDevices()).toEqual([]);
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`HomeRepository delivery settings (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores and reads back in-home delivery settings, and says when there is no such home', async () => {
      expect((await t.store.homes.getHome(HOME.id))?.delivery).toEqual(
        DEFAULT_DELIVERY_PREFERENCES,
      );
      const prefs = { daysOff: ['sat', 'sun'] as const, askFirst: true, askTimeoutMs: 90_000 };
      expect(await t.store.homes.updateDeliverySettings(HOME.id, false, prefs)).toBe(true);
      const h = await t.store.homes.getHome(HOME.id);
      expect(h?.inHomeDelivery).toBe(false);
      expect(h?.delivery).toEqual(prefs);
      expect(await t.store.homes.updateDeliverySettings('home-none', true, prefs)).toBe(false);
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`HomeRepository: the owner's choice of carriers and couriers (${dialect})`, () => {
    let t: TestStore;
    const OTHER_CARRIER = { id: 'carrier-2', name: 'Birch Express' };
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      await t.store.principals.createCarrier(OTHER_CARRIER);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('starts undecided (not allowed), then allows and blocks, returning the decision before', async () => {
      const { homes } = t.store;
      expect(await homes.carrierDecision(HOME.id, CARRIER.id)).toBe('undecided');
      expect(await homes.isCarrierAllowed(HOME.id, CARRIER.id)).toBe(false);
      expect(await homes.ownersRefusal(HOME.id, CARRIER.id, COURIER.id)).toBe(
        'carrier-not-allowed',
      );

      expect(await homes.allowCarrier(HOME.id, CARRIER.id, 1_000, OWNER.id)).toBe('undecided');
      expect(await homes.isCarrierAllowed(HOME.id, CARRIER.id)).toBe(true);
      expect(await homes.ownersRefusal(HOME.id, CARRIER.id, COURIER.id)).toBeNull();
      // Allowing again keeps the first decision's time.
      expect(await homes.allowCarrier(HOME.id, CARRIER.id, 2_000, OWNER.id)).toBe('allowed');

      expect(await homes.blockCarrier(HOME.id, CARRIER.id, 3_000, OWNER.id)).toBe('allowed');
      expect(await homes.carrierDecision(HOME.id, CARRIER.id)).toBe('blocked');
      expect(await homes.isCarrierAllowed(HOME.id, CARRIER.id)).toBe(false);
      expect(await homes.ownersRefusal(HOME.id, CARRIER.id, COURIER.id)).toBe(
        'carrier-not-allowed',
      );
      expect(await homes.listCarrierDecisions(HOME.id)).toEqual([
        { carrierId: CARRIER.id, decision: 'blocked', decidedAt: 3_000, decidedBy: OWNER.id },
      ]);
      // The other carrier is untouched; another home sees nothing.
      expect(await homes.carrierDecision(HOME.id, OTHER_CARRIER.id)).toBe('undecided');
      expect(await homes.listCarrierDecisions('home-none')).toEqual([]);

      expect(await homes.allowCarrier(HOME.id, CARRIER.id, 4_000, OWNER.id)).toBe('blocked');
      expect(await homes.listCarrierDecisions(HOME.id)).toEqual([
        { carrierId: CARRIER.id, decision: 'allowed', decidedAt: 4_000, decidedBy: OWNER.id },
      ]);
      expect(await homes.disallowCarrier(HOME.id, CARRIER.id)).toBe(true);
      expect(await homes.carrierDecision(HOME.id, CARRIER.id)).toBe('undecided');
    });

    it('refuses a decision for a carrier that does not exist, and keeps none', async () => {
      const error = await t.store.homes.blockCarrier(HOME.id, 'carrier-none', 1_000, OWNER.id).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).not.toBeNull();
      expect(await t.store.homes.listCarrierDecisions(HOME.id)).toEqual([]);
    });

    it('blocks and unblocks a courier, once each; a blocked courier outranks an allowed carrier', async () => {
      const { homes } = t.store;
      await homes.allowCarrier(HOME.id, CARRIER.id, 1_000, OWNER.id);
      expect(await homes.isCourierBlocked(HOME.id, COURIER.id)).toBe(false);
      expect(await homes.blockCourier(HOME.id, COURIER.id, 2_000, OWNER.id)).toBe(true);
      expect(await homes.blockCourier(HOME.id, COURIER.id, 3_000, OWNER.id)).toBe(false);
      expect(await homes.isCourierBlocked(HOME.id, COURIER.id)).toBe(true);
      expect(await homes.listBlockedCouriers(HOME.id)).toEqual([
        { courierId: COURIER.id, blockedAt: 2_000, blockedBy: OWNER.id },
      ]);
      expect(await homes.ownersRefusal(HOME.id, CARRIER.id, COURIER.id)).toBe('courier-blocked');
      await homes.blockCarrier(HOME.id, CARRIER.id, 4_000, OWNER.id);
      expect(await homes.ownersRefusal(HOME.id, CARRIER.id, COURIER.id)).toBe('courier-blocked');

      expect(await homes.unblockCourier(HOME.id, COURIER.id)).toBe(true);
      expect(await homes.unblockCourier(HOME.id, COURIER.id)).toBe(false);
      expect(await homes.listBlockedCouriers(HOME.id)).toEqual([]);
      expect(await homes.ownersRefusal(HOME.id, CARRIER.id, COURIER.id)).toBe(
        'carrier-not-allowed',
      );
    });

    it('knows a courier who has or had a delivery to the home, and no other', async () => {
      const { homes, deliveries } = t.store;
      expect(await homes.hasCourierServed(HOME.id, COURIER.id)).toBe(false);
      await deliveries.create(DELIVERY);
      expect(await homes.hasCourierServed(HOME.id, COURIER.id)).toBe(true);
      expect(await homes.hasCourierServed('home-none', COURIER.id)).toBe(false);
      expect(await homes.hasCourierServed(HOME.id, OWNER.id)).toBe(false);
      expect(await homes.listCouriersServed(HOME.id, 10)).toEqual([COURIER.id]);
      expect(await homes.listCouriersServed('home-none', 10)).toEqual([]);
    });

    it('lists the couriers served, most recent delivery first, within the limit', async () => {
      const { homes, deliveries, principals } = t.store;
      await principals.create(
        { ...COURIER, id: 'courier-2' },
        { username: 'dana', passwordHash: 'x' },
      );
      await deliveries.create(DELIVERY);
      await deliveries.create({
        ...DELIVERY,
        id: 'delivery-2',
        courierId: 'courier-2',
        createdAt: DELIVERY.createdAt + 5,
      });
      expect(await homes.listCouriersServed(HOME.id, 10)).toEqual(['courier-2', COURIER.id]);
      expect(await homes.listCouriersServed(HOME.id, 1)).toEqual(['courier-2']);
    });

    it('still knows a courier whose delivery was reassigned, by the grant they held', async () => {
      const { homes, deliveries } = t.store;
      await deliveries.create({ ...DELIVERY, courierId: null });
      expect(await homes.hasCourierServed(HOME.id, COURIER.id)).toBe(false);
      // The grant the courier held before the delivery lost its courier.
      await deliveries.createGrant(deliveryGrant({ revokedAt: 1 }));
      expect(await homes.hasCourierServed(HOME.id, COURIER.id)).toBe(true);
    });

    it('lists the doors and devices of many homes, each as for one home, and counts devices', async () => {
      const homes = t.store.homes;
      const ids = [HOME.id, ...(await seedMoreHomes(t.store, 3)), 'no-such-home'];
      const doors = await homes.listDoorsByHome(ids);
      const devices = await homes.listDevicesByHome(ids);
      expect([...doors.keys()]).toEqual(ids);
      for (const id of ids) {
        expect(doors.get(id)).toEqual(await homes.listDoors(id));
        expect(devices.get(id)).toEqual(await homes.listDevices(id));
      }
      expect(devices.get('no-such-home')).toEqual([]);
      // More homes than one query names (500): every one is answered.
      const many = [...Array.from({ length: 1_200 }, (_, i) => `none-${i}`), 'home-b2'];
      expect((await homes.listDevicesByHome(many)).get('home-b2')).toEqual(
        await homes.listDevices('home-b2'),
      );
      expect(await homes.countDevices()).toBe(3 + 3 * 2);
      await homes.createDevice({ id: 'cam-9', homeId: HOME.id, kind: 'camera', name: 'C' });
      expect(await homes.countDevices()).toBe(10);
    });
  });
}

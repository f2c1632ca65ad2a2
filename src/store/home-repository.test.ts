import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_DELIVERY_PREFERENCES, type Door, type Home } from '../core/model.ts';
import { DIALECTS, isUniqueViolation } from './dialect.ts';
import {
  CAMERA,
  DOOR,
  HOME,
  LOCK,
  SENSOR,
  openTestStore,
  seedHome,
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

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeviceStatus } from './device-status-repository.ts';
import { DIALECTS } from './dialect.ts';
import { CAMERA, HOME, LOCK, openTestStore, seedHome, type TestStore } from './test-store.ts';

for (const dialect of DIALECTS) {
  describe(`DeviceStatusRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('inserts, replaces and lists the last known status of devices', async () => {
      const { deviceStatus } = t.store;
      const lock: DeviceStatus = {
        deviceId: LOCK.id,
        homeId: HOME.id,
        online: true,
        lastSeenAt: 1000,
        state: { bolt: 'locked', battery: 0.8 },
        updatedAt: 1000,
      };
      const camera: DeviceStatus = {
        deviceId: CAMERA.id,
        homeId: HOME.id,
        online: false,
        lastSeenAt: null,
        state: null,
        updatedAt: 900,
      };
      await deviceStatus.upsert(lock);
      await deviceStatus.upsert(camera);
      expect(await deviceStatus.get(LOCK.id)).toEqual(lock);

      const later: DeviceStatus = {
        ...lock,
        online: false,
        state: { bolt: 'unknown' },
        updatedAt: 2000,
      };
      await deviceStatus.upsert(later);
      expect(await deviceStatus.get(LOCK.id)).toEqual(later);
      expect(await deviceStatus.listForHome(HOME.id)).toEqual([camera, later]);
      expect(await deviceStatus.get('nope')).toBeNull();
    });
  });
}

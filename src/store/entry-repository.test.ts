import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import type { Entry } from './entry-repository.ts';
import {
  COURIER,
  DOOR,
  HOME,
  LOCK,
  OWNER,
  openTestStore,
  seedHome,
  type TestStore,
} from './test-store.ts';

const entry = (id: string, at: number, more: Partial<Entry> = {}): Entry => ({
  id,
  homeId: HOME.id,
  lockDeviceId: LOCK.id,
  doorId: DOOR.id,
  at,
  method: 'manual',
  principalId: null,
  slot: null,
  sessionId: null,
  ...more,
});

for (const dialect of DIALECTS) {
  describe(`EntryRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      await t.store.sessions.save({
        id: 's1',
        homeId: HOME.id,
        doorId: DOOR.id,
        deliveryId: null,
        principalId: COURIER.id,
        state: 'completed',
        createdAt: 0,
        updatedAt: 0,
        endedAt: 1,
        data: {},
      });
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('records one entry per session and lists a home’s entries newest first, by page', async () => {
      const app = entry('e1', 100, { method: 'app', principalId: COURIER.id, sessionId: 's1' });
      expect(await t.store.entries.record(app)).toBe(true);
      // The same session reported again is not a second entry.
      expect(await t.store.entries.record({ ...app, id: 'e1-again', at: 150 })).toBe(false);
      await t.store.entries.record(
        entry('e2', 200, { method: 'pin', principalId: OWNER.id, slot: 3 }),
      );
      await t.store.entries.record(entry('e3', 300));
      // A device event's entry, recorded by a second replica under the same id: kept as first
      // written, and not an error.
      expect(await t.store.entries.record(entry('e3', 310, { method: 'pin', slot: 9 }))).toBe(
        false,
      );
      expect(await t.store.entries.get('e3')).toEqual(entry('e3', 300));
      expect((await t.store.entries.listForHome(HOME.id, null, 10)).map((e) => e.id)).toEqual([
        'e3',
        'e2',
        'e1',
      ]);
      expect(await t.store.entries.listForHome(HOME.id, 300, 1)).toEqual([
        entry('e2', 200, { method: 'pin', principalId: OWNER.id, slot: 3 }),
      ]);
      expect(await t.store.entries.get('e1')).toEqual(app);
      expect(await t.store.entries.listForHome('another-home', null, 10)).toEqual([]);
    });

    it('refuses a method it does not know, and writes nothing', async () => {
      await expect(
        t.store.entries.record(entry('bad', 1, { method: 'telepathy' as Entry['method'] })),
      ).rejects.toThrow();
      expect(await t.store.entries.get('bad')).toBeNull();
    });

    it('replaces a person’s alert choice as a whole, and falls back to the default until they choose', async () => {
      expect(await t.store.entries.alertSetting(OWNER.id, 'all')).toEqual({
        mode: 'all',
        people: [],
        chosen: false,
      });
      await t.store.entries.setAlertSetting(OWNER.id, 'chosen', [COURIER.id, COURIER.id], 5);
      expect(await t.store.entries.alertSetting(OWNER.id, 'all')).toEqual({
        mode: 'chosen',
        people: [COURIER.id],
        chosen: true,
      });
      expect(await t.store.entries.watchersOf(COURIER.id)).toEqual([OWNER.id]);
      await t.store.entries.setAlertSetting(OWNER.id, 'off', [], 6);
      expect(await t.store.entries.alertSetting(OWNER.id, 'all')).toEqual({
        mode: 'off',
        people: [],
        chosen: true,
      });
      expect(await t.store.entries.watchersOf(COURIER.id)).toEqual([]);
    });
  });
}

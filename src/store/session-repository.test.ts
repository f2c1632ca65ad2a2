import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import type { StoredSession } from './session-repository.ts';
import {
  COURIER,
  DELIVERY,
  DOOR,
  HOME,
  openTestStore,
  seedDelivery,
  type TestStore,
} from './test-store.ts';

function session(
  id: string,
  createdAt: number,
  changes: Partial<StoredSession> = {},
): StoredSession {
  return {
    id,
    homeId: HOME.id,
    doorId: DOOR.id,
    deliveryId: DELIVERY.id,
    principalId: COURIER.id,
    state: 'requested',
    createdAt,
    updatedAt: createdAt,
    endedAt: null,
    data: { id, state: 'requested', alarms: [], coverage: { gaps: [[1, 2.5]] } },
    ...changes,
  };
}

for (const dialect of DIALECTS) {
  describe(`SessionRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedDelivery(t.store);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('saves and reads back a session with its snapshot', async () => {
      const s = session('s1', 1000, { deliveryId: null });
      await t.store.sessions.save(s);
      expect(await t.store.sessions.get('s1')).toEqual(s);
      expect(await t.store.sessions.get('nope')).toBeNull();
    });

    it('upserts by id, replacing everything but createdAt', async () => {
      const { sessions } = t.store;
      await sessions.save(session('s1', 1000));
      const ended = session('s1', 1000, {
        state: 'completed',
        updatedAt: 5000,
        endedAt: 5000,
        data: { id: 's1', state: 'completed', coverage: 0.98 },
      });
      await sessions.save({ ...ended, createdAt: 9999 });

      expect(await sessions.get('s1')).toEqual(ended);
      expect(await sessions.listForHome(HOME.id)).toHaveLength(1);
    });

    it('lists, finds the active one per door and the ones per delivery', async () => {
      const { sessions } = t.store;
      await sessions.save(session('s1', 1000, { state: 'refused', endedAt: 1001 }));
      await sessions.save(session('s2', 2000, { state: 'aborted', endedAt: 2500 }));
      await sessions.save(session('s3', 3000, { state: 'open' }));

      expect((await sessions.listForHome(HOME.id)).map((s) => s.id)).toEqual(['s3', 's2', 's1']);
      expect((await sessions.listForHome(HOME.id, { limit: 2 })).map((s) => s.id)).toEqual([
        's3',
        's2',
      ]);
      expect((await sessions.listOpen()).map((s) => s.id)).toEqual(['s3']);
      expect((await sessions.findActiveForDoor(DOOR.id))?.id).toBe('s3');
      expect((await sessions.findForDelivery(DELIVERY.id)).map((s) => s.id)).toEqual([
        's3',
        's2',
        's1',
      ]);

      await sessions.save(session('s3', 3000, { state: 'completed', endedAt: 4000 }));
      expect(await sessions.findActiveForDoor(DOOR.id)).toBeNull();
      expect(await sessions.listOpen()).toEqual([]);
    });
  });
}

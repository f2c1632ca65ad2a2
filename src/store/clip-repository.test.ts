import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClipFrame } from './clip-repository.ts';
import { DIALECTS } from './dialect.ts';
import { COURIER, DOOR, HOME, openTestStore, seedHome, type TestStore } from './test-store.ts';

function frame(sessionId: string, seq: number, capturedAt: number, receivedAt: number): ClipFrame {
  return {
    sessionId,
    seq,
    capturedAt,
    receivedAt,
    digest: seq.toString(16).padStart(64, '0'),
    path: `clips/${sessionId}/${seq}.jpg`,
    bytes: 20_000 + seq,
  };
}

for (const dialect of DIALECTS) {
  describe(`ClipRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      for (const id of ['s1', 's2']) {
        await t.store.sessions.save({
          id,
          homeId: HOME.id,
          doorId: DOOR.id,
          deliveryId: null,
          principalId: COURIER.id,
          state: 'open',
          createdAt: 0,
          updatedAt: 0,
          endedAt: null,
          data: {},
        });
      }
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('lists frames by capture time, then seq', async () => {
      const { clips } = t.store;
      const f3 = frame('s1', 3, 1000, 1300);
      const f1 = frame('s1', 1, 2000, 2100);
      const f2 = frame('s1', 2, 1000, 1200);
      for (const f of [f3, f1, f2]) await clips.add(f);
      await clips.add(frame('s2', 1, 500, 600));

      expect(await clips.list('s1')).toEqual([f2, f3, f1]);
      expect(await clips.list('nope')).toEqual([]);
      await expect(clips.add(f1)).rejects.toThrow();
    });

    it('finds sessions whose newest frame was received before the cutoff and deletes rows', async () => {
      const { clips } = t.store;
      await clips.add(frame('s1', 1, 100, 1000));
      await clips.add(frame('s1', 2, 200, 5000));
      // s2's camera clock is far behind; retention goes by the server's receive time.
      await clips.add(frame('s2', 1, 1, 3000));

      expect(await clips.listSessionsOlderThan(3000)).toEqual([]);
      expect(await clips.listSessionsOlderThan(3001)).toEqual(['s2']);
      expect(await clips.listSessionsOlderThan(5001)).toEqual(['s1', 's2']);

      expect(await clips.deleteForSession('s1')).toBe(2);
      expect(await clips.list('s1')).toEqual([]);
      expect(await clips.list('s2')).toHaveLength(1);
    });
  });
}

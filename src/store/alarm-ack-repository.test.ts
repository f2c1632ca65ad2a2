import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import { COURIER, DOOR, HOME, openTestStore, seedHome, type TestStore } from './test-store.ts';

for (const dialect of DIALECTS) {
  describe(`AlarmAckRepository (${dialect})`, () => {
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
          state: 'aborted',
          createdAt: 0,
          updatedAt: 0,
          endedAt: 1,
          data: {},
        });
      }
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('keeps the first acknowledgement of an alarm and reports later ones as not created', async () => {
      const first = {
        sessionId: 's1',
        alarmType: 'observation-lost',
        principalId: COURIER.id,
        acknowledgedAt: 10,
      };
      expect(await t.store.alarmAcks.acknowledge(first)).toEqual({ ack: first, created: true });
      const again = await t.store.alarmAcks.acknowledge({ ...first, acknowledgedAt: 99 });
      expect(again).toEqual({ ack: first, created: false });
      expect(await t.store.alarmAcks.listForSession('s1')).toEqual([first]);
    });

    it('lists by session, and an unknown session is refused by its foreign key', async () => {
      await t.store.alarmAcks.acknowledge({
        sessionId: 's1',
        alarmType: 'lock-jammed',
        principalId: COURIER.id,
        acknowledgedAt: 1,
      });
      await t.store.alarmAcks.acknowledge({
        sessionId: 's2',
        alarmType: 'lock-jammed',
        principalId: COURIER.id,
        acknowledgedAt: 2,
      });
      expect(
        (await t.store.alarmAcks.listForSessions(['s1', 's2'])).map((a) => a.sessionId),
      ).toEqual(['s1', 's2']);
      expect(await t.store.alarmAcks.listForSessions([])).toEqual([]);
      await expect(
        t.store.alarmAcks.acknowledge({
          sessionId: 'nope',
          alarmType: 'lock-jammed',
          principalId: COURIER.id,
          acknowledgedAt: 3,
        }),
      ).rejects.toThrow();
    });
  });
}

import { CompiledQuery, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import { openToTakeOverQuery, type StoredSession } from './session-repository.ts';
import {
  COURIER,
  DELIVERY,
  DOOR,
  HOME,
  openTestStore,
  seedDelivery,
  type TestStore,
} from './test-store.ts';

function session(id: string, createdAt: number, endedAt: number | null = null): StoredSession {
  return {
    id,
    homeId: HOME.id,
    doorId: DOOR.id,
    deliveryId: DELIVERY.id,
    principalId: COURIER.id,
    state: endedAt === null ? 'open' : 'completed',
    createdAt,
    updatedAt: createdAt,
    endedAt,
    data: { id },
  };
}

for (const dialect of DIALECTS) {
  describe(`replica leases and session owners (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedDelivery(t.store);
    });
    afterEach(() => t.cleanup());

    it('renews a running lease keeping its start, and starts a new life after it ran out', async () => {
      const r = t.store.replicas;
      expect(await r.renew('a', 1_000, 4_000)).toEqual({
        id: 'a',
        startedAt: 1_000,
        expiresAt: 4_000,
      });
      expect(await r.renew('a', 2_000, 5_000)).toEqual({
        id: 'a',
        startedAt: 1_000,
        expiresAt: 5_000,
      });
      await r.renew('b', 2_500, 5_500);
      // Past its expiry: a new life, started now.
      expect(await r.renew('a', 6_000, 9_000)).toEqual({
        id: 'a',
        startedAt: 6_000,
        expiresAt: 9_000,
      });
      expect((await r.list()).map((l) => l.id)).toEqual(['b', 'a']);
      await r.release('b', 7_000);
      expect((await r.list()).find((l) => l.id === 'b')?.expiresAt).toBe(7_000);
    });

    it("writes a session only while it is the writer's, and lets exactly one claim win", async () => {
      const s = t.store.sessions;
      expect(await s.saveOwned(session('s1', 10), 'a')).toBe(true);
      expect((await s.get('s1'))?.owner).toBe('a');
      expect(await s.saveOwned({ ...session('s1', 10), state: 'relocking' }, 'a')).toBe(true);
      // B takes it over; A's claim from the old owner loses, and A can no longer write it.
      const claims = await Promise.all([s.claim('s1', 'a', 'b'), s.claim('s1', 'a', 'c')]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      const winner = claims[0] ? 'b' : 'c';
      expect(await s.saveOwned({ ...session('s1', 10), state: 'verifying' }, 'a')).toBe(false);
      expect((await s.get('s1'))?.state).toBe('relocking');
      expect((await s.get('s1'))?.owner).toBe(winner);
      // A plain save (a single server) leaves the owner as it is.
      await s.save({ ...session('s1', 10), state: 'verifying' });
      expect((await s.get('s1'))?.owner).toBe(winner);
      // An ended session is not claimed.
      await s.saveOwned(session('s2', 20, 30), 'a');
      expect(await s.claim('s2', 'a', 'b')).toBe(false);
    });

    it('lists the open sessions of dead owners, of nobody, and its own', async () => {
      const s = t.store.sessions;
      await s.saveOwned(session('dead', 1), 'x');
      await s.saveOwned(session('live', 2), 'b');
      await s.saveOwned(session('mine', 3), 'a');
      await s.save(session('nobody', 4));
      await s.saveOwned(session('over', 5, 6), 'x');
      const ids = async (live: string[]): Promise<string[]> =>
        (await s.listOpenToTakeOver(live, 'a')).map((r) => r.id);
      expect(await ids(['a', 'b'])).toEqual(['dead', 'mine', 'nobody']);
      expect(await ids(['a'])).toEqual(['dead', 'live', 'mine', 'nobody']);
    });

    it("answers the round's query from the partial index of open sessions", async () => {
      const s = t.store.sessions;
      // A history: many ended sessions, a few open ones.
      for (let i = 0; i < 300; i++) await s.saveOwned(session(`ended-${i}`, i, i + 1), 'x');
      for (let i = 0; i < 3; i++) await s.saveOwned(session(`open-${i}`, 1_000 + i), 'x');
      const query = openToTakeOverQuery(t.store.db, ['a', 'b'], 'a', 1_000).compile();
      let plan: string;
      if (dialect === 'sqlite') {
        const r = await t.store.db.executeQuery<{ detail: string }>(
          CompiledQuery.raw(`explain query plan ${query.sql}`, [...query.parameters]),
        );
        plan = r.rows.map((row) => row.detail).join('\n');
        // In the index's order: no sort of its own.
        expect(plan).not.toContain('TEMP B-TREE');
      } else {
        plan = await t.store.db.transaction().execute(async (trx) => {
          await sql`analyze access_sessions`.execute(trx);
          // On a table this small a scan of the table may well be cheaper; what is checked is
          // that the index answers the query once the table is large.
          await sql`set local enable_seqscan = off`.execute(trx);
          const r = await trx.executeQuery<{ 'QUERY PLAN': string }>(
            CompiledQuery.raw(`explain ${query.sql}`, [...query.parameters]),
          );
          return r.rows.map((row) => row['QUERY PLAN']).join('\n');
        });
      }
      expect(plan).toContain('access_sessions_open_owner_idx');
      // And it answers: the open sessions of the dead owner, oldest first.
      expect((await s.listOpenToTakeOver(['a', 'b'], 'a')).map((r) => r.id)).toEqual([
        'open-0',
        'open-1',
        'open-2',
      ]);
    });
  });
}

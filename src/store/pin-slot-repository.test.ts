import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import { PinSlotRepository, type PinSlot } from './pin-slot-repository.ts';
import {
  LOCK,
  OWNER,
  openTestStore,
  seedHome,
  seedMoreHomes,
  type TestStore,
} from './test-store.ts';

const DIGEST = 'm0xG3Gk6v0j6yq2v7o5F7tq1D9m0xG3Gk6v0j6yq2v7';

function slot(overrides: Partial<PinSlot> = {}): PinSlot {
  return {
    lockDeviceId: LOCK.id,
    slot: 3,
    principalId: OWNER.id,
    name: 'Cleaner',
    codeDigest: DIGEST,
    desired: 'set',
    sync: 'pending',
    attempts: 0,
    nextAttemptAt: 1_000,
    lastError: null,
    lockDigest: null,
    checkedAt: null,
    updatedAt: 500,
    window: null,
    lockWindow: null,
    windowOnly: false,
    ...overrides,
  };
}

for (const dialect of DIALECTS) {
  describe(`PinSlotRepository (${dialect})`, () => {
    let t: TestStore;
    let repo: PinSlotRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      repo = new PinSlotRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores a slot and replaces it on the next save of the same lock and slot', async () => {
      expect(await repo.get(LOCK.id, 3)).toBeNull();
      await repo.save(slot());
      expect(await repo.get(LOCK.id, 3)).toEqual(slot());
      const confirmed = slot({
        sync: 'confirmed',
        attempts: 2,
        nextAttemptAt: null,
        lockDigest: DIGEST,
        checkedAt: 1_700_000_000_123,
        updatedAt: 1_700_000_000_123,
      });
      await repo.save(confirmed);
      expect(await repo.get(LOCK.id, 3)).toEqual(confirmed);
      expect(await repo.listForLock(LOCK.id)).toEqual([confirmed]);
    });

    it('lists by lock in slot order, by principal and by sync state', async () => {
      await repo.save(slot({ slot: 9 }));
      await repo.save(
        slot({
          slot: 2,
          principalId: null,
          name: null,
          codeDigest: null,
          desired: 'clear',
          sync: 'unknown-on-lock',
          lockDigest: DIGEST,
        }),
      );
      await repo.save(slot({ slot: 5, sync: 'failed', lastError: 'no read-back' }));
      expect((await repo.listForLock(LOCK.id)).map((s) => s.slot)).toEqual([2, 5, 9]);
      expect((await repo.listByPrincipal(OWNER.id)).map((s) => s.slot)).toEqual([5, 9]);
      expect((await repo.listBySyncState('pending')).map((s) => s.slot)).toEqual([9]);
      expect((await repo.listBySyncState('unknown-on-lock')).map((s) => s.slot)).toEqual([2]);
      expect(await repo.listForLock('no-such-lock')).toEqual([]);
    });

    it('refuses rows that break the rules: unknown lock or principal, slot 0, set without digest', async () => {
      await expect(repo.save(slot({ lockDeviceId: 'no-such-lock' }))).rejects.toThrow();
      await expect(repo.save(slot({ principalId: 'nobody' }))).rejects.toThrow();
      await expect(repo.save(slot({ slot: 0 }))).rejects.toThrow();
      await expect(repo.save(slot({ codeDigest: null }))).rejects.toThrow();
      await expect(repo.save(slot({ sync: 'half-done' as PinSlot['sync'] }))).rejects.toThrow();
      expect(await repo.listForLock(LOCK.id)).toEqual([]);
    });

    it('keeps the wanted window, the one the lock listed, and whether only the window is written', async () => {
      const windowed = slot({
        window: { fromMs: 1_768_478_400_000, untilMs: 1_768_482_000_000 },
        lockWindow: { fromMs: 0, untilMs: 0 },
        windowOnly: true,
      });
      await repo.save(windowed);
      expect(await repo.get(LOCK.id, 3)).toEqual(windowed);
      // Back to "at all times" (the owner's code): both bounds go.
      await repo.save(slot({ window: null, lockWindow: null }));
      expect(await repo.get(LOCK.id, 3)).toEqual(slot());
      const row = await t.store.db.selectFrom('pin_slots').selectAll().executeTakeFirstOrThrow();
      expect([row.window_from, row.window_until, row.window_only]).toEqual([null, null, 0]);
    });

    it('refuses a window that ends before it starts or starts before 0, and reads no half window', async () => {
      for (const window of [
        { fromMs: 2_000, untilMs: 1_000 },
        { fromMs: -1, untilMs: 1_000 },
        { fromMs: 1.5, untilMs: 1_000 },
      ]) {
        await expect(repo.save(slot({ window }))).rejects.toThrow(RangeError);
        await expect(repo.save(slot({ lockWindow: window }))).rejects.toThrow(RangeError);
      }
      expect(await repo.listForLock(LOCK.id)).toEqual([]);
      // A row broken behind the repository's back is corruption, not "at all times".
      await repo.save(slot());
      await t.store.db.updateTable('pin_slots').set({ window_from: 5 }).execute();
      await expect(repo.get(LOCK.id, 3)).rejects.toThrow(/broken window/);
      // And the database itself refuses negative times.
      await expect(
        t.store.db.updateTable('pin_slots').set({ window_from: -5, window_until: 1 }).execute(),
      ).rejects.toThrow();
    });

    it('has no column that could hold a code in clear', async () => {
      const tables = await t.store.db.introspection.getTables();
      const columns = tables.find((tb) => tb.name === 'pin_slots')?.columns.map((c) => c.name);
      expect(columns?.filter((n) => /code|pin/.test(n))).toEqual(['code_digest']);
    });

    it('lists the slots of many locks, each as for one lock', async () => {
      await seedMoreHomes(t.store, 3);
      await repo.save(slot());
      const locks = [LOCK.id, 'home-b0-lock-x', 'home-b0-lock-y', 'home-b2-lock-x', 'no-lock'];
      const byLock = await repo.listForLocks(locks);
      for (const id of locks) expect(byLock.get(id)).toEqual(await repo.listForLock(id));
      expect(byLock.get('home-b2-lock-x')?.map((s) => s.slot)).toEqual([1, 3]);
      expect(byLock.get('home-b0-lock-y')).toEqual([]);
      // More locks than one query names (500): every one is answered.
      const many = [...Array.from({ length: 1_100 }, (_, i) => `none-${i}`), 'home-b1-lock-x'];
      expect((await repo.listForLocks(many)).get('home-b1-lock-x')?.map((s) => s.slot)).toEqual([
        1, 3,
      ]);
    });
  });
}

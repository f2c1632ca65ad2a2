import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import { GrantListRepository } from './grant-list-repository.ts';
import { LOCK, openTestStore, seedHome, type TestStore } from './test-store.ts';
import { openStore } from './store.ts';

for (const dialect of DIALECTS) {
  describe(`GrantListRepository (${dialect})`, () => {
    let t: TestStore;
    let repo: GrantListRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      repo = new GrantListRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('hands out the issue time, or the last version + 1 when that is larger, and remembers the last', async () => {
      const now = 1_795_000_000_000;
      expect(await repo.get(LOCK.id)).toBeNull();
      expect(await repo.next(LOCK.id, now)).toBe(now);
      // Two lists in the same millisecond, and a clock that stepped back: still growing.
      expect(await repo.next(LOCK.id, now)).toBe(now + 1);
      expect(await repo.next(LOCK.id, now - 60_000)).toBe(now + 2);
      expect(await repo.next(LOCK.id, now + 5_000)).toBe(now + 5_000);
      expect(await repo.get(LOCK.id)).toEqual({
        lockDeviceId: LOCK.id,
        version: now + 5_000,
        issuedAt: now + 5_000,
      });
    });

    it('keeps growing after the database is opened again (a restart)', async () => {
      const now = 1_795_000_000_000;
      await repo.next(LOCK.id, now);
      await repo.next(LOCK.id, now);
      await t.store.close();
      const again = await openStore(t.options);
      try {
        expect(await new GrantListRepository(again.db).next(LOCK.id, now)).toBe(now + 2);
      } finally {
        await again.close();
      }
    });

    it('keeps growing when the table starts over (a database restored from an older backup)', async () => {
      const before = await repo.next(LOCK.id, 1_795_000_000_000);
      await t.store.db.deleteFrom('grant_list_versions').execute();
      expect(await repo.next(LOCK.id, 1_795_000_060_000)).toBeGreaterThan(before);
    });

    it('claims many versions in one transaction, each as one claim would, or none', async () => {
      const now = 1_795_000_000_000;
      await t.store.homes.createDevice({ ...LOCK, id: 'lock-2' });
      await repo.next(LOCK.id, now);
      const versions = await repo.nextMany([
        { lockDeviceId: LOCK.id, issuedAt: now },
        { lockDeviceId: 'lock-2', issuedAt: now + 10 },
      ]);
      expect(versions).toEqual(
        new Map([
          [LOCK.id, now + 1],
          ['lock-2', now + 10],
        ]),
      );
      expect(await repo.nextMany([])).toEqual(new Map());
      // One claim that fails (no such device) takes the others back with it: nothing is claimed.
      await expect(
        repo.nextMany([
          { lockDeviceId: LOCK.id, issuedAt: now },
          { lockDeviceId: 'no-such-lock', issuedAt: now },
        ]),
      ).rejects.toThrow();
      expect((await repo.get(LOCK.id))?.version).toBe(now + 1);
    });

    it('refuses a version for a device that does not exist', async () => {
      await expect(repo.next('no-such-lock', 1_000)).rejects.toThrow();
      expect(await repo.get('no-such-lock')).toBeNull();
    });
  });
}

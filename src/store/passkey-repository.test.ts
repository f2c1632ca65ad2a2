import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS, isUniqueViolation } from './dialect.ts';
import { PasskeyRepository, type Passkey } from './passkey-repository.ts';
import { COURIER, OWNER, openTestStore, seedHome, type TestStore } from './test-store.ts';

function passkey(id: string, principalId: string, createdAt: number): Passkey {
  return {
    id,
    principalId,
    name: `Key ${id}`,
    publicKey: `pk-${id}`,
    counter: 0,
    transports: ['internal', 'hybrid'],
    deviceType: 'multiDevice',
    backedUp: true,
    createdAt,
    lastUsedAt: null,
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e,
  );
}

for (const dialect of DIALECTS) {
  describe(`PasskeyRepository (${dialect})`, () => {
    let t: TestStore;
    let repo: PasskeyRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      repo = new PasskeyRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores passkeys and lists each principal’s own, oldest first', async () => {
      await repo.add(passkey('cred-b', OWNER.id, 2000));
      await repo.add(passkey('cred-a', OWNER.id, 1000));
      await repo.add(passkey('cred-c', COURIER.id, 500));
      await repo.add({ ...passkey('cred-d', OWNER.id, 2000), backedUp: false, transports: [] });

      expect((await repo.listForPrincipal(OWNER.id)).map((p) => p.id)).toEqual([
        'cred-a',
        'cred-b',
        'cred-d',
      ]);
      expect(await repo.listForPrincipal(COURIER.id)).toEqual([passkey('cred-c', COURIER.id, 500)]);
      expect(await repo.listForPrincipal('nobody')).toEqual([]);
      expect(await repo.get('cred-a')).toEqual(passkey('cred-a', OWNER.id, 1000));
      expect(await repo.get('cred-d')).toMatchObject({ backedUp: false, transports: [] });
      expect(await repo.get('nope')).toBeNull();
    });

    it('refuses a credential id that is taken, even by another principal, and keeps the first', async () => {
      await repo.add(passkey('cred-a', OWNER.id, 1000));
      const error = await rejection(repo.add({ ...passkey('cred-a', COURIER.id, 2000) }));
      expect(isUniqueViolation(error)).toBe(true);
      expect(await repo.get('cred-a')).toEqual(passkey('cred-a', OWNER.id, 1000));
      expect(await repo.listForPrincipal(COURIER.id)).toEqual([]);
    });

    it('refuses a passkey of a principal that does not exist', async () => {
      const error = await rejection(repo.add(passkey('cred-x', 'ghost', 1000)));
      expect(error).not.toBeNull();
      expect(await repo.get('cred-x')).toBeNull();
    });

    it('records the counter and last use of a sign-in, and never moves the counter back', async () => {
      await repo.add(passkey('cred-a', OWNER.id, 1000));
      expect(await repo.updateCounter('cred-a', 7, 5000)).toBe(true);
      expect(await repo.get('cred-a')).toMatchObject({ counter: 7, lastUsedAt: 5000 });

      expect(await repo.updateCounter('cred-a', 7, 6000)).toBe(false);
      expect(await repo.updateCounter('cred-a', 3, 6000)).toBe(false);
      expect(await repo.updateCounter('cred-a', 0, 6000)).toBe(false);
      expect(await repo.get('cred-a')).toMatchObject({ counter: 7, lastUsedAt: 5000 });

      expect(await repo.updateCounter('cred-a', 8, 7000)).toBe(true);
      expect(await repo.get('cred-a')).toMatchObject({ counter: 8, lastUsedAt: 7000 });
      expect(await repo.updateCounter('nope', 1, 6000)).toBe(false);
    });

    it('records each use of a passkey whose authenticator keeps no counter (always 0)', async () => {
      await repo.add(passkey('cred-z', OWNER.id, 1000));
      expect(await repo.updateCounter('cred-z', 0, 2000)).toBe(true);
      expect(await repo.updateCounter('cred-z', 0, 3000)).toBe(true);
      expect(await repo.get('cred-z')).toMatchObject({ counter: 0, lastUsedAt: 3000 });
    });

    it('removes a passkey only for its own principal', async () => {
      await repo.add(passkey('cred-a', OWNER.id, 1000));
      await repo.add(passkey('cred-c', COURIER.id, 1000));

      expect(await repo.remove('cred-a', COURIER.id)).toBe(false);
      expect(await repo.get('cred-a')).not.toBeNull();
      expect(await repo.remove('cred-a', OWNER.id)).toBe(true);
      expect(await repo.get('cred-a')).toBeNull();
      expect(await repo.remove('cred-a', OWNER.id)).toBe(false);
      expect(await repo.get('cred-c')).not.toBeNull();
    });

    it('treats a stored transports value that is not a string array as corruption', async () => {
      await repo.add(passkey('cred-a', OWNER.id, 1000));
      await t.store.db
        .updateTable('passkeys')
        .set({ transports: '{"not":"an array"}' })
        .where('id', '=', 'cred-a')
        .execute();
      const error = await rejection(repo.get('cred-a'));
      expect(error).toMatchObject({ code: 'internal.error' });
    });

    it('adds a passkey only while its principal has fewer than the limit', async () => {
      expect(await repo.addWithin(passkey('cred-1', OWNER.id, 1000), 2)).toBe(true);
      expect(await repo.addWithin(passkey('cred-2', OWNER.id, 2000), 2)).toBe(true);
      expect(await repo.addWithin(passkey('cred-3', OWNER.id, 3000), 2)).toBe(false);
      // The limit is each principal's own.
      expect(await repo.addWithin(passkey('cred-4', COURIER.id, 3000), 2)).toBe(true);
      expect((await repo.listForPrincipal(OWNER.id)).map((p) => p.id)).toEqual([
        'cred-1',
        'cred-2',
      ]);
      expect(
        isUniqueViolation(await rejection(repo.addWithin(passkey('cred-1', COURIER.id, 1), 5))),
      ).toBe(true);
    });
  });
}

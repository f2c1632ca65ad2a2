import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS, isUniqueViolation } from './dialect.ts';
import { CARRIER, COURIER, OWNER, openTestStore, seedHome, type TestStore } from './test-store.ts';

for (const dialect of DIALECTS) {
  describe(`PrincipalRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores principals and finds them by id and by user name', async () => {
      const { principals } = t.store;
      expect(await principals.get(OWNER.id)).toEqual(OWNER);
      expect(await principals.get(COURIER.id)).toEqual(COURIER);
      expect(await principals.getByUsername('carl')).toEqual({
        principal: COURIER,
        passwordHash: 'hash-carl',
      });
      expect(await principals.getByUsername('Carl')).toBeNull();
      expect(await principals.get('nope')).toBeNull();
    });

    it('refuses a second principal with a taken user name and keeps the first', async () => {
      const { principals } = t.store;
      const intruder = { ...OWNER, id: 'owner-2', displayName: 'Impostor' };
      const error = await principals
        .create(intruder, { username: 'olivia', passwordHash: 'other' })
        .then(
          () => null,
          (e: unknown) => e,
        );

      expect(error).not.toBeNull();
      expect(isUniqueViolation(error)).toBe(true);
      expect(await principals.get('owner-2')).toBeNull();
      expect(await principals.getByUsername('olivia')).toEqual({
        principal: OWNER,
        passwordHash: 'hash-olivia',
      });
    });

    it('stores carriers', async () => {
      expect(await t.store.principals.getCarrier(CARRIER.id)).toEqual(CARRIER);
      expect(await t.store.principals.getCarrier('nope')).toBeNull();
    });

    it('stores API keys by hash, records use and revocation', async () => {
      const { principals } = t.store;
      await principals.createApiKey({
        id: 'key-1',
        carrierId: CARRIER.id,
        keyHash: 'h1',
        createdAt: 1000,
      });
      expect(await principals.findApiKeyByHash('h1')).toEqual({
        id: 'key-1',
        carrierId: CARRIER.id,
        keyHash: 'h1',
        createdAt: 1000,
        revokedAt: null,
        lastUsedAt: null,
      });

      expect(await principals.touchApiKey('key-1', 2000)).toBe(true);
      expect(await principals.touchApiKey('nope', 2000)).toBe(false);
      expect(await principals.revokeApiKey('key-1', 3000)).toBe(true);
      expect(await principals.revokeApiKey('key-1', 4000)).toBe(false);
      expect(await principals.findApiKeyByHash('h1')).toMatchObject({
        lastUsedAt: 2000,
        revokedAt: 3000,
      });
      expect(await principals.findApiKeyByHash('h2')).toBeNull();

      const duplicate = await principals
        .createApiKey({ id: 'key-2', carrierId: CARRIER.id, keyHash: 'h1', createdAt: 5000 })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(isUniqueViolation(duplicate)).toBe(true);
    });

    it('stores sign-in sessions and deletes them singly or when expired', async () => {
      const { principals } = t.store;
      const s = (tokenHash: string, expiresAt: number) => ({
        tokenHash,
        principalId: OWNER.id,
        createdAt: 100,
        expiresAt,
      });
      await principals.createAuthSession(s('t1', 1000));
      await principals.createAuthSession(s('t2', 2000));
      await principals.createAuthSession(s('t3', 3000));

      expect(await principals.getAuthSession('t2')).toEqual(s('t2', 2000));
      expect(await principals.deleteExpiredAuthSessions(2000)).toBe(2);
      expect(await principals.getAuthSession('t1')).toBeNull();
      expect(await principals.getAuthSession('t2')).toBeNull();
      expect(await principals.getAuthSession('t3')).toEqual(s('t3', 3000));
      expect(await principals.deleteAuthSession('t3')).toBe(true);
      expect(await principals.deleteAuthSession('t3')).toBe(false);
      expect(await principals.getAuthSession('t3')).toBeNull();
    });
  });
}

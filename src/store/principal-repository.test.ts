import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS, isUniqueViolation } from './dialect.ts';
import {
  CARRIER,
  COURIER,
  HOME,
  OWNER,
  openTestStore,
  seedHome,
  seedMoreHomes,
  type TestStore,
} from './test-store.ts';

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
        // A key made without scopes keeps every power keys had before scopes existed.
        name: 'API key',
        scopes: [
          'deliveries:read',
          'deliveries:write',
          'couriers:manage',
          'webhooks:manage',
          'keys:manage',
        ],
        prefix: '',
        createdBy: null,
        replacedBy: null,
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

    it('adds a key only below the limit of working keys, and never revokes the last one with a scope', async () => {
      const { principals } = t.store;
      const key = (id: string, scopes: string[]) => ({
        id,
        carrierId: CARRIER.id,
        keyHash: `hash-${id}`,
        createdAt: 1000,
        scopes,
      });
      expect(await principals.createApiKeyWithin(key('k1', ['keys:manage']), 2)).toBe(true);
      expect(await principals.createApiKeyWithin(key('k2', ['deliveries:read']), 2)).toBe(true);
      expect(await principals.createApiKeyWithin(key('k3', ['keys:manage']), 2)).toBe(false);
      expect(await principals.getApiKey('k3')).toBeNull();

      // k1 is the only key that may manage keys: it stays, unless nobody asked to keep one.
      expect(await principals.revokeApiKeyKeeping('k1', 2000, 'keys:manage')).toBe(
        'last-with-scope',
      );
      expect(await principals.revokeApiKeyKeeping('k2', 2000, 'keys:manage')).toBe('revoked');
      expect(await principals.revokeApiKeyKeeping('k2', 3000, 'keys:manage')).toBe(
        'already-revoked',
      );
      expect(await principals.revokeApiKeyKeeping('nope', 3000, null)).toBe('not-found');
      // A revoked key no longer counts against the limit.
      expect(await principals.createApiKeyWithin(key('k3', ['keys:manage']), 2)).toBe(true);
      expect(await principals.revokeApiKeyKeeping('k1', 4000, 'keys:manage')).toBe('revoked');
      expect(await principals.revokeApiKeyKeeping('k3', 4000, null)).toBe('revoked');
      expect((await principals.getApiKey('k3'))?.revokedAt).toBe(4000);
    });

    it('lists a carrier’s keys with their name, scopes and maker, and reads one by id', async () => {
      const { principals } = t.store;
      await principals.createCarrier({ id: 'carrier-2', name: 'Birch Express' });
      await principals.createApiKey({
        id: 'key-b',
        carrierId: CARRIER.id,
        keyHash: 'hb',
        createdAt: 2000,
        name: 'Dispatch',
        scopes: ['deliveries:read'],
        prefix: 'AbCdEfGh',
        createdBy: 'admin-1',
      });
      await principals.createApiKey({
        id: 'key-a',
        carrierId: CARRIER.id,
        keyHash: 'ha',
        createdAt: 1000,
      });
      await principals.createApiKey({
        id: 'key-x',
        carrierId: 'carrier-2',
        keyHash: 'hx',
        createdAt: 1500,
      });

      expect((await principals.listApiKeys(CARRIER.id)).map((k) => k.id)).toEqual([
        'key-a',
        'key-b',
      ]);
      expect(await principals.getApiKey('key-b')).toMatchObject({
        name: 'Dispatch',
        scopes: ['deliveries:read'],
        prefix: 'AbCdEfGh',
        createdBy: 'admin-1',
        replacedBy: null,
      });
      expect(await principals.getApiKey('nope')).toBeNull();
      expect(await principals.listApiKeys('carrier-none')).toEqual([]);
    });

    it('rotates a key in one step: the new one added, the old one revoked and pointing at it, once', async () => {
      const { principals } = t.store;
      await principals.createApiKey({
        id: 'key-old',
        carrierId: CARRIER.id,
        keyHash: 'h-old',
        createdAt: 1000,
        name: 'Dispatch',
        scopes: ['deliveries:read', 'keys:manage'],
        prefix: 'old00000',
        createdBy: 'admin-1',
      });
      const next = {
        id: 'key-new',
        carrierId: CARRIER.id,
        keyHash: 'h-new',
        createdAt: 5000,
        name: 'Dispatch',
        scopes: ['deliveries:read', 'keys:manage'],
        prefix: 'new00000',
        createdBy: 'apikey:key-old',
      };
      expect(await principals.replaceApiKey('key-old', next)).toBe(true);
      expect(await principals.getApiKey('key-old')).toMatchObject({
        revokedAt: 5000,
        replacedBy: 'key-new',
      });
      expect(await principals.getApiKey('key-new')).toMatchObject({
        revokedAt: null,
        replacedBy: null,
        scopes: ['deliveries:read', 'keys:manage'],
      });
      // A revoked key is not rotated again, and nothing is added.
      expect(
        await principals.replaceApiKey('key-old', { ...next, id: 'key-3', keyHash: 'h-3' }),
      ).toBe(false);
      expect(await principals.getApiKey('key-3')).toBeNull();
      // A failing insert (a hash taken) leaves the old key as it was.
      await principals.createApiKey({
        id: 'key-4',
        carrierId: CARRIER.id,
        keyHash: 'h-4',
        createdAt: 1,
      });
      const clash = await principals
        .replaceApiKey('key-4', { ...next, id: 'key-5', keyHash: 'h-new' })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(isUniqueViolation(clash)).toBe(true);
      expect(await principals.getApiKey('key-4')).toMatchObject({
        revokedAt: null,
        replacedBy: null,
      });
    });

    it('lists every carrier, and a carrier’s couriers with their revoked state', async () => {
      const { principals } = t.store;
      await principals.createCarrier({ id: 'carrier-0', name: 'Birch Express' });
      expect(await principals.listCarriers()).toEqual([
        { id: 'carrier-0', name: 'Birch Express' },
        CARRIER,
      ]);
      await principals.create(
        { ...COURIER, id: 'courier-2', displayName: 'Dana' },
        { username: 'dana', passwordHash: 'x' },
      );
      await principals.create(
        { ...COURIER, id: 'courier-3', carrierId: 'carrier-0' },
        { username: 'eve', passwordHash: 'x' },
      );
      await principals.disable('courier-2', 7000);
      expect(await principals.listCouriers(CARRIER.id)).toEqual([
        { principal: COURIER, username: 'carl', disabledAt: null },
        {
          principal: { ...COURIER, id: 'courier-2', displayName: 'Dana' },
          username: 'dana',
          disabledAt: 7000,
        },
      ]);
    });

    it('stores courier invitations by token hash; one acceptance, none after expiry or withdrawal', async () => {
      const { principals } = t.store;
      const invite = {
        id: 'cinv-1',
        carrierId: CARRIER.id,
        tokenHash: 'th-1',
        displayName: 'Sam',
        createdBy: 'admin-1',
        createdAt: 1000,
        expiresAt: 10_000,
        acceptedBy: null,
        acceptedAt: null,
        revokedAt: null,
      };
      await principals.createCourierInvite(invite);
      await principals.createCourierInvite({
        ...invite,
        id: 'cinv-2',
        tokenHash: 'th-2',
        createdAt: 2000,
      });
      await principals.createCourierInvite({ ...invite, id: 'cinv-3', tokenHash: 'th-3' });
      expect(await principals.getCourierInvite('cinv-1')).toEqual(invite);
      expect(await principals.findCourierInviteByTokenHash('th-1')).toEqual(invite);
      expect(await principals.findCourierInviteByTokenHash('nope')).toBeNull();
      expect((await principals.listCourierInvites(CARRIER.id)).map((i) => i.id)).toEqual([
        'cinv-2',
        'cinv-1',
        'cinv-3',
      ]);

      // Expired: no acceptance.
      expect(await principals.acceptCourierInvite('cinv-1', COURIER.id, 10_000)).toBe(false);
      // Once.
      expect(await principals.acceptCourierInvite('cinv-1', COURIER.id, 9_999)).toBe(true);
      expect(await principals.acceptCourierInvite('cinv-1', COURIER.id, 9_999)).toBe(false);
      expect(await principals.revokeCourierInvite('cinv-1', 9_999)).toBe(false);
      expect(await principals.getCourierInvite('cinv-1')).toMatchObject({
        acceptedBy: COURIER.id,
        acceptedAt: 9_999,
        revokedAt: null,
      });
      // Withdrawn: no acceptance, and withdrawn once.
      expect(await principals.revokeCourierInvite('cinv-2', 3000)).toBe(true);
      expect(await principals.revokeCourierInvite('cinv-2', 4000)).toBe(false);
      expect(await principals.acceptCourierInvite('cinv-2', COURIER.id, 5000)).toBe(false);
      expect(await principals.getCourierInvite('cinv-2')).toMatchObject({
        acceptedBy: null,
        revokedAt: 3000,
      });

      const taken = await principals.createCourierInvite({ ...invite, id: 'cinv-4' }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isUniqueViolation(taken)).toBe(true);
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

    it('lists the people of many homes, each as for one home', async () => {
      const principals = t.store.principals;
      const ids = [HOME.id, ...(await seedMoreHomes(t.store, 3)), 'no-such-home'];
      const byHome = await principals.listForHomes(ids);
      for (const id of ids) expect(byHome.get(id)).toEqual(await principals.listForHome(id));
      // The disabled member is left out, as listForHome leaves them out.
      expect(byHome.get('home-b1')?.map((p) => p.id)).toEqual(['home-b1-guest', 'home-b1-owner']);
    });
  });
}

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Home, Principal } from '../core/model.ts';
import { DIALECTS } from './dialect.ts';
import type { NewPushSubscription } from './push-subscription-repository.ts';
import { PushSubscriptionRepository } from './push-subscription-repository.ts';
import { HOME, OWNER, openTestStore, seedHome, type TestStore } from './test-store.ts';

const OTHER_HOME: Home = { ...HOME, id: 'home-2', name: 'Oak Lane' };
const MEMBER: Principal = { ...OWNER, id: 'member-1', role: 'member', displayName: 'Max Member' };
const NEIGHBOUR: Principal = { ...OWNER, id: 'owner-2', homeId: OTHER_HOME.id };

const P256DH = `B${'a'.repeat(86)}`;
const AUTH = 'b'.repeat(22);

function sub(id: string, over: Partial<NewPushSubscription> = {}): NewPushSubscription {
  return {
    id,
    principalId: OWNER.id,
    homeId: HOME.id,
    endpoint: `https://push.example.com/send/${id}`,
    p256dh: P256DH,
    auth: AUTH,
    createdAt: 1_000,
    ...over,
  };
}

for (const dialect of DIALECTS) {
  describe(`PushSubscriptionRepository (${dialect})`, () => {
    let t: TestStore;
    let repo: PushSubscriptionRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      await t.store.homes.createHome(OTHER_HOME);
      await t.store.principals.create(MEMBER, { username: 'max', passwordHash: 'hash-max' });
      await t.store.principals.create(NEIGHBOUR, { username: 'nina', passwordHash: 'hash-nina' });
      repo = new PushSubscriptionRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores a new subscription and lists it for its home only', async () => {
      expect(await repo.upsert(sub('s1'))).toEqual({ id: 's1', previous: null });
      await repo.upsert(sub('s2', { principalId: NEIGHBOUR.id, homeId: OTHER_HOME.id }));

      expect(await repo.listForHome(HOME.id)).toEqual([
        {
          id: 's1',
          principalId: OWNER.id,
          homeId: HOME.id,
          endpoint: 'https://push.example.com/send/s1',
          p256dh: P256DH,
          auth: AUTH,
          createdAt: 1_000,
          lastSuccessAt: null,
          failures: 0,
        },
      ]);
      expect((await repo.listForHome(OTHER_HOME.id)).map((s) => s.id)).toEqual(['s2']);
      expect(await repo.listForHome('nope')).toEqual([]);
    });

    it('re-subscribing an endpoint keeps its id, takes the new keys and owner, and clears failures', async () => {
      await repo.upsert(sub('s1'));
      await repo.markFailure('s1');
      const endpoint = 'https://push.example.com/send/s1';

      const again = await repo.upsert(
        sub('ignored-new-id', {
          endpoint,
          principalId: NEIGHBOUR.id,
          homeId: OTHER_HOME.id,
          p256dh: `B${'c'.repeat(86)}`,
          auth: 'd'.repeat(22),
          createdAt: 9_000,
        }),
      );

      expect(again.id).toBe('s1');
      expect(again.previous).toMatchObject({ principalId: OWNER.id, homeId: HOME.id, failures: 1 });
      expect(await repo.get('s1')).toMatchObject({
        principalId: NEIGHBOUR.id,
        homeId: OTHER_HOME.id,
        p256dh: `B${'c'.repeat(86)}`,
        auth: 'd'.repeat(22),
        createdAt: 1_000,
        failures: 0,
      });
      expect(await repo.get('ignored-new-id')).toBeNull();
      expect(await repo.listForHome(HOME.id)).toEqual([]);
    });

    it('removes by endpoint only for the principal who subscribed it', async () => {
      await repo.upsert(sub('s1'));
      const endpoint = 'https://push.example.com/send/s1';

      expect(await repo.removeByEndpoint(endpoint, NEIGHBOUR.id)).toBe(false);
      expect(await repo.removeByEndpoint(endpoint, MEMBER.id)).toBe(false);
      expect(await repo.getByEndpoint(endpoint)).not.toBeNull();

      expect(await repo.removeByEndpoint(endpoint, OWNER.id)).toBe(true);
      expect(await repo.getByEndpoint(endpoint)).toBeNull();
      expect(await repo.removeByEndpoint(endpoint, OWNER.id)).toBe(false);
    });

    it('counts failures until a success resets them', async () => {
      await repo.upsert(sub('s1'));
      expect(await repo.markFailure('s1')).toBe(1);
      expect(await repo.markFailure('s1')).toBe(2);
      await repo.markSuccess('s1', 5_000);
      expect(await repo.get('s1')).toMatchObject({ failures: 0, lastSuccessAt: 5_000 });
      expect(await repo.markFailure('s1')).toBe(1);
      expect(await repo.markFailure('gone')).toBeNull();
    });

    it('removes by id', async () => {
      await repo.upsert(sub('s1'));
      expect(await repo.remove('s1')).toBe(true);
      expect(await repo.remove('s1')).toBe(false);
      expect(await repo.listForHome(HOME.id)).toEqual([]);
    });

    it('keeps only the newest subscriptions of a principal, and always the one just made', async () => {
      for (let i = 1; i <= 4; i += 1) await repo.upsert(sub(`s${i}`, { createdAt: i * 1_000 }));
      await repo.upsert(sub('m1', { principalId: MEMBER.id, createdAt: 1 }));
      // s1 was re-subscribed just now: it keeps its old creation time but must survive.
      const removed = await repo.pruneForPrincipal(OWNER.id, 2, 's1');

      expect(removed.map((s) => s.id)).toEqual(['s2', 's3']);
      expect((await repo.listForPrincipal(OWNER.id)).map((s) => s.id)).toEqual(['s1', 's4']);
      expect((await repo.listForPrincipal(MEMBER.id)).map((s) => s.id)).toEqual(['m1']);
      expect(await repo.pruneForPrincipal(OWNER.id, 2, 's4')).toEqual([]);
    });

    it('refuses a subscription for a principal or home that does not exist', async () => {
      await expect(repo.upsert(sub('s1', { principalId: 'nobody' }))).rejects.toThrow();
      await expect(repo.upsert(sub('s2', { homeId: 'nowhere' }))).rejects.toThrow();
      expect(await repo.listForHome(HOME.id)).toEqual([]);
    });
  });
}

/**
 * Several processes (replicas) writing one PostgreSQL database at once: every read-then-write
 * the repositories make must still hold. Two stores, each with its own pool of connections,
 * stand for two processes. (SQLite runs one writer at a time; two SQLite connections in one
 * process cannot race either, as SQLite waits for a lock by blocking the event loop.)
 *
 * The audit log's own test of this is in audit-repository.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeliveryEventRepository } from './delivery-event-repository.ts';
import { GrantListRepository } from './grant-list-repository.ts';
import { IdempotencyRepository } from './idempotency-repository.ts';
import { openStore, type Store } from './store.ts';
import {
  CARRIER,
  DELIVERY,
  HOME,
  LOCK,
  OWNER,
  deliveryGrant,
  openTestStore,
  seedDelivery,
  type TestStore,
} from './test-store.ts';
import { WebhookRepository } from './webhook-repository.ts';

describe('concurrent writers on one database (postgres)', () => {
  let t: TestStore;
  let stores: [Store, Store];
  beforeEach(async () => {
    t = await openTestStore('postgres');
    await seedDelivery(t.store);
    stores = [t.store, await openStore(t.options)];
  });
  afterEach(async () => {
    await stores[1].close();
    await t.cleanup();
  });

  /** Runs `fn(store, i)` `perStore` times from each store, all at once. */
  async function race<T>(perStore: number, fn: (store: Store, i: number) => Promise<T>) {
    return Promise.all(
      stores.flatMap((store, s) =>
        Array.from({ length: perStore }, (_, i) => fn(store, s * perStore + i)),
      ),
    );
  }

  it('numbers the events of one delivery 1, 2, 3… with none twice', async () => {
    const events = await race(15, (store, i) =>
      new DeliveryEventRepository(store.db).append({
        id: `evt-${i}`,
        deliveryId: DELIVERY.id,
        carrierId: CARRIER.id,
        type: 'delivery.created',
        status: 'scheduled',
        at: 1_000 + i,
        data: { i },
      }),
    );
    const seqs = events.map((e) => e.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const stored = await new DeliveryEventRepository(t.store.db).listForDelivery(DELIVERY.id);
    expect(stored.map((e) => e.seq)).toEqual(seqs);
  });

  it('never lets registrations at once pass the limit of active webhooks', async () => {
    const created = await race(6, (store, i) =>
      new WebhookRepository(store.db).createWithin(
        {
          id: `w${i}`,
          carrierId: CARRIER.id,
          url: `https://hooks.example.com/${i}`,
          secretSalt: `salt-${i}`,
          events: ['*'],
          createdAt: 1_000 + i,
          createdBy: 'apikey:k1',
          disabledAt: null,
        },
        5,
      ),
    );
    expect(created.filter(Boolean)).toHaveLength(5);
    expect(await new WebhookRepository(t.store.db).activeForCarrier(CARRIER.id)).toHaveLength(5);
  });

  it('hands out each grant-list version once', async () => {
    const issuedAt = 1_795_000_000_000;
    const versions = await race(20, (store) =>
      new GrantListRepository(store.db).next(LOCK.id, issuedAt),
    );
    expect(versions.sort((a, b) => a - b)).toEqual(
      Array.from({ length: 40 }, (_, i) => issuedAt + i),
    );
  });

  it('lets one request claim an idempotency key, and one take over a stale claim', async () => {
    const request = {
      carrierId: CARRIER.id,
      key: 'key-1',
      request: 'POST /api/carrier/deliveries',
      requestHash: 'h'.repeat(64),
      createdAt: 1_000,
    };
    const claims = await race(10, (store) => new IdempotencyRepository(store.db).claim(request));
    expect(claims.filter(Boolean)).toHaveLength(1);
    const takeOvers = await race(10, (store, i) =>
      new IdempotencyRepository(store.db).takeOver(request, 2_000, 3_000 + i),
    );
    expect(takeOvers.filter(Boolean)).toHaveLength(1);
  });

  it('counts each use of a grant once, never past its limit', async () => {
    await t.store.deliveries.createGrant(deliveryGrant({ maxUses: 3 }));
    const uses = await race(10, (store) => store.deliveries.incrementGrantUses('grant-1'));
    expect(uses.filter(Boolean)).toHaveLength(3);
    expect((await t.store.deliveries.getGrant('grant-1'))?.uses).toBe(3);
  });

  it('takes one Web Push endpoint subscribed at once as new only once', async () => {
    const results = await race(8, (store, i) =>
      store.pushSubscriptions.upsert({
        id: `push-${i}`,
        principalId: OWNER.id,
        homeId: HOME.id,
        endpoint: 'https://push.example.com/endpoint-1',
        p256dh: `key-${i}`,
        auth: `auth-${i}`,
        createdAt: 1_000 + i,
      }),
    );
    expect(results.filter((r) => r.previous === null)).toHaveLength(1);
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
  });

  it('never lets keys made at once pass the limit, nor keys revoked at once leave no manager', async () => {
    const made = await race(6, (store, i) =>
      store.principals.createApiKeyWithin(
        {
          id: `k${i}`,
          carrierId: CARRIER.id,
          keyHash: `hash-${i}`,
          createdAt: 1_000 + i,
          scopes: ['keys:manage'],
        },
        5,
      ),
    );
    expect(made.filter(Boolean)).toHaveLength(5);
    const working = await t.store.principals.listApiKeys(CARRIER.id);
    expect(working).toHaveLength(5);
    // Every manager key revoked at once, each keeping a manager: exactly one must stay.
    const revoked = await Promise.all(
      working.map((k, i) =>
        stores[i % 2]!.principals.revokeApiKeyKeeping(k.id, 2_000, 'keys:manage'),
      ),
    );
    expect(revoked.filter((r) => r === 'revoked')).toHaveLength(4);
    expect(revoked.filter((r) => r === 'last-with-scope')).toHaveLength(1);
  });

  it('never lets passkeys registered at once pass the limit', async () => {
    const added = await race(6, (store, i) =>
      store.passkeys.addWithin(
        {
          id: `cred-${i}`,
          principalId: OWNER.id,
          name: `Key ${i}`,
          publicKey: `pk-${i}`,
          counter: 0,
          transports: ['internal'],
          deviceType: 'multiDevice',
          backedUp: true,
          createdAt: 1_000 + i,
          lastUsedAt: null,
        },
        5,
      ),
    );
    expect(added.filter(Boolean)).toHaveLength(5);
    expect(await t.store.passkeys.listForPrincipal(OWNER.id)).toHaveLength(5);
  });

  it('reports the decision each carrier decision replaced: only the first finds none', async () => {
    const decisions = ['allowed', 'blocked'] as const;
    const befores = await race(10, (store, i) =>
      store.homes.decideCarrier(HOME.id, CARRIER.id, decisions[i % 2]!, 1_000 + i, null),
    );
    // One after another, only the first decision replaces "undecided"; two reading at once
    // would both report it.
    expect(befores.filter((b) => b === 'undecided')).toHaveLength(1);
    expect(decisions).toContain(await t.store.homes.carrierDecision(HOME.id, CARRIER.id));
  });
});

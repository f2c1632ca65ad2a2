import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import { CARRIER, openTestStore, seedHome, type TestStore } from './test-store.ts';
import {
  WebhookRepository,
  type StoredWebhook,
  type StoredWebhookDelivery,
} from './webhook-repository.ts';

const OTHER_CARRIER = { id: 'carrier-2', name: 'Birch Express' };

function hook(id: string, over: Partial<StoredWebhook> = {}): StoredWebhook {
  return {
    id,
    carrierId: CARRIER.id,
    url: `https://hooks.example.com/${id}`,
    secretSalt: `salt-${id}`,
    events: ['*'],
    createdAt: 1_000,
    createdBy: 'apikey:k1',
    disabledAt: null,
    ...over,
  };
}

function row(id: string, over: Partial<StoredWebhookDelivery> = {}): StoredWebhookDelivery {
  return {
    id,
    webhookId: 'w1',
    carrierId: CARRIER.id,
    eventId: `evt-${id}`,
    eventType: 'delivery.created',
    payload: `{"id":"evt-${id}"}`,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: 5_000,
    lastStatusCode: null,
    lastError: null,
    createdAt: 2_000,
    deliveredAt: null,
    ...over,
  };
}

for (const dialect of DIALECTS) {
  describe(`WebhookRepository (${dialect})`, () => {
    let t: TestStore;
    let repo: WebhookRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      await t.store.principals.createCarrier(OTHER_CARRIER);
      repo = new WebhookRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores webhooks up to the limit of active ones per carrier, and lists them per carrier', async () => {
      expect(await repo.createWithin(hook('w1', { events: ['delivery.created'] }), 2)).toBe(true);
      expect(await repo.createWithin(hook('w2', { createdAt: 2_000 }), 2)).toBe(true);
      expect(await repo.createWithin(hook('w3'), 2)).toBe(false);
      // Another carrier has its own count.
      expect(await repo.createWithin(hook('w4', { carrierId: OTHER_CARRIER.id }), 2)).toBe(true);

      expect(await repo.get('w1')).toEqual(hook('w1', { events: ['delivery.created'] }));
      expect(await repo.get('w3')).toBeNull();
      expect((await repo.listForCarrier(CARRIER.id)).map((w) => w.id)).toEqual(['w2', 'w1']);
      expect((await repo.activeForCarrier(OTHER_CARRIER.id)).map((w) => w.id)).toEqual(['w4']);

      // A disabled one frees its place.
      expect(await repo.disable('w1', 3_000, 'gone')).toBe(true);
      expect(await repo.createWithin(hook('w3'), 2)).toBe(true);
    });

    it('disables once, giving up the pending deliveries of that webhook only', async () => {
      await repo.createWithin(hook('w1'), 10);
      await repo.createWithin(hook('w2'), 10);
      await repo.insertDeliveries([
        row('d1'),
        row('d2', { status: 'delivered', deliveredAt: 3_000, nextAttemptAt: null }),
        row('d3', { webhookId: 'w2' }),
      ]);

      expect(await repo.disable('w1', 4_000, 'The webhook was disabled.')).toBe(true);
      expect(await repo.disable('w1', 5_000, 'again')).toBe(false);
      expect(await repo.disable('unknown', 5_000, 'again')).toBe(false);

      expect((await repo.get('w1'))?.disabledAt).toBe(4_000);
      expect(await repo.getDelivery('d1')).toMatchObject({
        status: 'failed',
        nextAttemptAt: null,
        lastError: 'The webhook was disabled.',
      });
      expect((await repo.getDelivery('d2'))?.status).toBe('delivered');
      expect((await repo.getDelivery('d3'))?.status).toBe('pending');
      // A disabled webhook gets no new secret.
      expect(await repo.setSecretSalt('w1', 'new')).toBe(false);
      expect(await repo.setSecretSalt('w2', 'new')).toBe(true);
      expect((await repo.get('w2'))?.secretSalt).toBe('new');
    });

    it('finds due deliveries soonest first, leaving out those already taken, and the next one due', async () => {
      await repo.createWithin(hook('w1'), 10);
      await repo.insertDeliveries([
        row('d1', { nextAttemptAt: 5_000 }),
        row('d2', { nextAttemptAt: 4_000 }),
        row('d3', { nextAttemptAt: 9_000 }),
        row('d4', { nextAttemptAt: 7_000 }),
        row('d5', { status: 'failed', nextAttemptAt: null }),
      ]);

      expect((await repo.due(6_000, 10)).map((d) => d.id)).toEqual(['d2', 'd1']);
      expect((await repo.due(6_000, 1)).map((d) => d.id)).toEqual(['d2']);
      expect((await repo.due(6_000, 10, new Set(['d2']))).map((d) => d.id)).toEqual(['d1']);
      expect(await repo.nextDueAfter(6_000)).toBe(7_000);
      expect(await repo.nextDueAfter(9_000)).toBeNull();
    });

    it('records an attempt only while the delivery is pending', async () => {
      await repo.createWithin(hook('w1'), 10);
      await repo.insertDeliveries([row('d1')]);
      const retry = {
        status: 'pending',
        attempts: 1,
        nextAttemptAt: 15_000,
        lastStatusCode: 500,
        lastError: 'HTTP 500',
        deliveredAt: null,
      } as const;
      expect(await repo.recordAttempt('d1', retry)).toBe(true);
      expect(await repo.getDelivery('d1')).toEqual(row('d1', retry));

      const done = {
        status: 'delivered',
        attempts: 2,
        nextAttemptAt: null,
        lastStatusCode: 204,
        lastError: null,
        deliveredAt: 16_000,
      } as const;
      expect(await repo.recordAttempt('d1', done)).toBe(true);
      // Delivered is final: a late answer changes nothing.
      expect(await repo.recordAttempt('d1', retry)).toBe(false);
      expect(await repo.getDelivery('d1')).toEqual(row('d1', done));
    });

    it('lists a webhook’s log newest first, up to the limit', async () => {
      await repo.createWithin(hook('w1'), 10);
      await repo.createWithin(hook('w2'), 10);
      await repo.insertDeliveries([
        row('d1', { createdAt: 1 }),
        row('d2', { createdAt: 3 }),
        row('d3', { createdAt: 2 }),
        row('d4', { createdAt: 4, webhookId: 'w2' }),
      ]);
      expect((await repo.listDeliveries('w1', 10)).map((d) => d.id)).toEqual(['d2', 'd3', 'd1']);
      expect((await repo.listDeliveries('w1', 2)).map((d) => d.id)).toEqual(['d2', 'd3']);
    });
  });
}

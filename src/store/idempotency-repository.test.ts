import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS } from './dialect.ts';
import { IdempotencyRepository } from './idempotency-repository.ts';
import { CARRIER, openTestStore, seedHome, type TestStore } from './test-store.ts';

const OTHER_CARRIER = { id: 'carrier-2', name: 'Other Parcels' };
const ASK = {
  carrierId: CARRIER.id,
  key: 'key-1',
  request: 'POST /api/carrier/deliveries',
  requestHash: 'a'.repeat(64),
  createdAt: 1_000,
};

for (const dialect of DIALECTS) {
  describe(`IdempotencyRepository (${dialect})`, () => {
    let t: TestStore;
    let keys: IdempotencyRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      await t.store.principals.createCarrier(OTHER_CARRIER);
      keys = new IdempotencyRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('lets one claim a key, keeps the answer, and never answers twice', async () => {
      expect(await keys.claim(ASK)).toBe(true);
      expect(await keys.claim(ASK)).toBe(false);
      expect(await keys.get(CARRIER.id, 'key-1')).toEqual({
        ...ASK,
        statusCode: null,
        response: null,
      });
      expect(await keys.complete(CARRIER.id, 'key-1', 201, '{"delivery":{}}')).toBe(true);
      expect(await keys.complete(CARRIER.id, 'key-1', 500, '{}')).toBe(false);
      expect(await keys.get(CARRIER.id, 'key-1')).toMatchObject({
        statusCode: 201,
        response: '{"delivery":{}}',
      });
      expect(await keys.complete(CARRIER.id, 'never-claimed', 201, '{}')).toBe(false);
    });

    it('keeps keys per carrier: the same key of another carrier is another key', async () => {
      expect(await keys.claim(ASK)).toBe(true);
      expect(await keys.claim({ ...ASK, carrierId: OTHER_CARRIER.id })).toBe(true);
      await keys.complete(CARRIER.id, 'key-1', 201, '"first"');
      expect((await keys.get(OTHER_CARRIER.id, 'key-1'))?.response).toBeNull();
    });

    it('releases an unanswered claim, never an answered one', async () => {
      await keys.claim(ASK);
      expect(await keys.release(CARRIER.id, 'key-1')).toBe(true);
      expect(await keys.get(CARRIER.id, 'key-1')).toBeNull();
      expect(await keys.claim(ASK)).toBe(true);
      await keys.complete(CARRIER.id, 'key-1', 200, '{}');
      expect(await keys.release(CARRIER.id, 'key-1')).toBe(false);
      expect(await keys.get(CARRIER.id, 'key-1')).not.toBeNull();
    });

    it('takes over a stale unanswered claim for the same request only, once', async () => {
      await keys.claim(ASK);
      // Not stale yet.
      expect(await keys.takeOver(ASK, 1_000, 2_000)).toBe(false);
      // Another body under the same key: never.
      expect(await keys.takeOver({ ...ASK, requestHash: 'b'.repeat(64) }, 5_000, 6_000)).toBe(
        false,
      );
      expect(await keys.takeOver(ASK, 5_000, 6_000)).toBe(true);
      expect((await keys.get(CARRIER.id, 'key-1'))?.createdAt).toBe(6_000);
      // The winner's claim is fresh: a second taker loses.
      expect(await keys.takeOver(ASK, 5_000, 6_001)).toBe(false);
      await keys.complete(CARRIER.id, 'key-1', 201, '{}');
      expect(await keys.takeOver(ASK, 9_000, 9_001)).toBe(false);
    });

    it('purges keys older than a time, one or all', async () => {
      await keys.claim(ASK);
      await keys.claim({ ...ASK, key: 'key-2', createdAt: 5_000 });
      expect(await keys.deleteIfOlder(CARRIER.id, 'key-2', 5_000)).toBe(false);
      expect(await keys.deleteIfOlder(CARRIER.id, 'key-1', 1_001)).toBe(true);
      await keys.claim({ ...ASK, key: 'key-3', createdAt: 2_000 });
      expect(await keys.purgeOlderThan(4_000)).toBe(1);
      expect(await keys.get(CARRIER.id, 'key-3')).toBeNull();
      expect(await keys.get(CARRIER.id, 'key-2')).not.toBeNull();
    });
  });
}

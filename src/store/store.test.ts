import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ThresholdError } from '../core/errors.ts';
import { chainEntry } from '../core/audit-chain.ts';
import { DIALECTS } from './dialect.ts';
import { MIGRATIONS } from './migrations/index.ts';
import { migrateToLatest } from './migrator.ts';
import { openStore } from './store.ts';
import {
  COURIER,
  DELIVERY,
  DOOR,
  HOME,
  openTestStore,
  seedDelivery,
  type TestStore,
} from './test-store.ts';

for (const dialect of DIALECTS) {
  describe(`openStore (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('migrates once: opening the same database again applies nothing', async () => {
      await seedDelivery(t.store);
      await t.store.close();

      const again = await openStore(t.options);
      try {
        expect(await migrateToLatest(again.db)).toEqual([]);
        const applied = await again.db
          .withTables<{ kysely_migration: { name: string } }>()
          .selectFrom('kysely_migration')
          .select('name')
          .execute();
        expect(applied.map((m) => m.name)).toEqual(Object.keys(MIGRATIONS));
        expect(await again.deliveries.get(DELIVERY.id)).toMatchObject(DELIVERY);
      } finally {
        await again.close();
      }
    });

    it('keeps data across close and reopen', async () => {
      await seedDelivery(t.store);
      const session = {
        id: 's1',
        homeId: HOME.id,
        doorId: DOOR.id,
        deliveryId: DELIVERY.id,
        principalId: COURIER.id,
        state: 'open',
        createdAt: 10,
        updatedAt: 20,
        endedAt: null,
        data: { deadline: 130 },
      };
      await t.store.sessions.save(session);
      const entry = chainEntry(
        () => 'f'.repeat(64),
        null,
        {
          kind: 'session.state',
          actor: { type: 'system', id: 'server' },
          subject: 'session:s1',
          data: {},
        },
        20,
      );
      await t.store.audit.append([entry]);
      await t.store.close();

      const reopened = await openStore(t.options);
      try {
        expect(await reopened.homes.getHome(HOME.id)).toEqual(HOME);
        expect(await reopened.sessions.get('s1')).toEqual(session);
        expect(await reopened.audit.last()).toEqual(entry);
      } finally {
        await reopened.close();
      }
    });

    it('fails loudly, naming the migration that failed', async () => {
      const broken = {
        ...MIGRATIONS,
        '9999-broken': {
          up: () => Promise.reject(new Error('disk on fire')),
        },
      };
      const error = await migrateToLatest(t.store.db, broken).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ThresholdError);
      expect((error as ThresholdError).message).toBe(
        'database migration "9999-broken" failed: disk on fire',
      );
      expect((error as ThresholdError).detail).toEqual({ migration: '9999-broken' });
    });
  });
}

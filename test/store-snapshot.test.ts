/**
 * The fuzzers' "a rejected request changes nothing" rests on the store snapshot seeing every
 * write: on each dialect, a row added, changed or removed shows up in words, an omitted column
 * does not, and the change count moves with every write and only then (on SQLite) or at least
 * then (on PostgreSQL, where other databases' writes move it too).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DIALECTS } from '../src/store/dialect.ts';
import { CARRIER, openTestStore, type TestStore } from '../src/store/test-store.ts';
import {
  changeCount,
  comparedTables,
  differences,
  SnapshotCache,
  snapshot,
} from './fuzz/store-snapshot.ts';

let opened: TestStore | null = null;
afterEach(async () => {
  await opened?.cleanup();
  opened = null;
});

describe.each(DIALECTS)('store snapshot on %s', (dialect) => {
  it('names every table, and sees a row added, changed and removed', async () => {
    opened = await openTestStore(dialect);
    const { db, principals } = opened.store;
    const tables = await comparedTables(db);
    expect(tables.carriers).toBe('row');
    expect(tables.api_keys).toBe('omit-columns');
    expect(tables.audit_entries).toBe('skip');

    const empty = await snapshot(db);
    await principals.createCarrier(CARRIER);
    const added = await snapshot(db);
    expect(differences(empty, added)).toEqual([
      expect.stringMatching(/^carriers: added .*"Parcel Co"/),
    ]);
    await db.updateTable('carriers').set({ name: 'Parcel Co Ltd' }).execute();
    const changed = await snapshot(db);
    expect(differences(added, changed)).toEqual([
      expect.stringMatching(/^carriers: changed .*"Parcel Co".* → .*"Parcel Co Ltd"/),
    ]);
    await principals.createApiKey({
      id: 'key-1',
      carrierId: CARRIER.id,
      keyHash: 'h',
      createdAt: 1,
    });
    const withKey = await snapshot(db);
    // The key's last use is not compared: recording it changes nothing that counts.
    await principals.touchApiKey('key-1', 2);
    expect(differences(withKey, await snapshot(db))).toEqual([]);
    await db.deleteFrom('api_keys').execute();
    await db.deleteFrom('carriers').execute();
    // Tables in name order.
    expect(differences(withKey, await snapshot(db))).toEqual([
      expect.stringMatching(/^api_keys: removed /),
      expect.stringMatching(/^carriers: removed /),
    ]);
  });

  it('moves the change count with a write, and the cache reads again only then', async () => {
    opened = await openTestStore(dialect);
    const { db, principals } = opened.store;
    const cache = new SnapshotCache(db);
    const before = await cache.now();
    if (dialect === 'sqlite') {
      // Reading changes nothing.
      await principals.getCarrier(CARRIER.id);
      expect(await changeCount(db)).toBe(before.count);
      expect(await cache.changesSince(before)).toEqual([]);
    }
    await principals.createCarrier(CARRIER);
    expect(await changeCount(db)).toBeGreaterThan(before.count);
    expect(await cache.changesSince(before)).toEqual([expect.stringMatching(/^carriers: added /)]);
  });
});

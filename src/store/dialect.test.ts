import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUniqueViolation } from './dialect.ts';
import { openStore } from './store.ts';
import { HOME, openTestStore, type TestStore } from './test-store.ts';

describe('SQLite dialect', () => {
  let t: TestStore;
  beforeEach(async () => {
    t = await openTestStore('sqlite');
  });
  afterEach(async () => {
    await t.cleanup();
  });

  /** The value of a pragma, read from its result `column` (its own name unless given). */
  async function pragma(name: string, column = name): Promise<unknown> {
    const { rows } = await sql<Record<string, unknown>>`pragma ${sql.raw(name)}`.execute(
      t.store.db,
    );
    return rows[0]?.[column];
  }

  it('runs with WAL, synchronous=FULL, foreign keys and a busy timeout', async () => {
    expect(await pragma('journal_mode')).toBe('wal');
    expect(await pragma('synchronous')).toBe(2); // 2 = FULL
    expect(await pragma('foreign_keys')).toBe(1);
    expect(await pragma('busy_timeout', 'timeout')).toBe(5000);
  });

  it('opens an in-memory database for tests', async () => {
    const store = await openStore({ dialect: 'sqlite', path: ':memory:' });
    try {
      await store.homes.createHome(HOME);
      expect(await store.homes.getHome(HOME.id)).toEqual(HOME);
    } finally {
      await store.close();
    }
  });

  it('tells unique violations from other errors', () => {
    expect(
      isUniqueViolation(Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT_UNIQUE' })),
    ).toBe(true);
    expect(
      isUniqueViolation(Object.assign(new Error('x'), { code: 'SQLITE_CONSTRAINT_FOREIGNKEY' })),
    ).toBe(false);
    expect(isUniqueViolation(new Error('x'))).toBe(false);
    expect(isUniqueViolation(null)).toBe(false);
  });
});

import { sql } from 'kysely';
import { ThresholdError } from '../core/errors.ts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIALECTS, dialectOf, isUniqueViolation, openPostgres } from './dialect.ts';
import { openStore } from './store.ts';
import { HOME, OWNER, openTestStore, seedHome, type TestStore } from './test-store.ts';

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

for (const dialect of DIALECTS) {
  describe(`what differs between the dialects, made the same (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('knows its dialect, also inside a transaction', async () => {
      expect(dialectOf(t.store.db)).toBe(dialect);
      expect(await t.store.db.transaction().execute((trx) => Promise.resolve(dialectOf(trx)))).toBe(
        dialect,
      );
    });

    it('sorts and compares text byte by byte, whatever the database locale', async () => {
      const names = ['b', 'B', 'a', 'Z', '_z', 'é', 'e', 'A'];
      for (const [i, name] of names.entries()) {
        await t.store.homes.createHome({ ...HOME, id: `home-${i}`, name });
      }
      const listed = (await t.store.homes.listHomes()).map((h) => h.name);
      // Code point order, as SQLite's BINARY collation and PostgreSQL's "C" have it; a
      // natural-language collation would give a, A, b, B, e, é, _z, Z or similar.
      expect(listed).toEqual(['A', 'B', 'Z', '_z', 'a', 'b', 'e', 'é']);
    });

    it('folds only ASCII letters when it compares user names without case', async () => {
      await seedHome(t.store);
      await t.store.principals.create(
        { ...OWNER, id: 'owner-2' },
        { username: 'ÄRGER', passwordHash: 'x' },
      );
      expect(await t.store.principals.usernameTaken('OLIVIA')).toBe(true);
      // SQLite's lower() leaves "Ä" as it is ("Ärger"), and so does PostgreSQL's under the "C"
      // collation; under a natural-language one it would give "ärger".
      expect(await t.store.principals.usernameTaken('ärger')).toBe(false);
    });

    it('keeps 64-bit integers in integer columns, and reads every integer back as a number', async () => {
      await seedHome(t.store);
      const big = 2 ** 40;
      await t.store.sessions.save({
        id: 's1',
        homeId: HOME.id,
        doorId: 'door-1',
        deliveryId: null,
        principalId: OWNER.id,
        state: 'open',
        createdAt: 1_700_000_000_000,
        updatedAt: 1_700_000_000_001,
        endedAt: null,
        data: {},
      });
      await t.store.clips.add({
        sessionId: 's1',
        seq: big,
        capturedAt: 1_700_000_000_002,
        receivedAt: 1_700_000_000_003,
        digest: 'd'.repeat(64),
        path: 'clips/s1/1.jpg',
        bytes: big + 1,
      });
      expect(await t.store.clips.list('s1')).toEqual([
        expect.objectContaining({ seq: big, bytes: big + 1, capturedAt: 1_700_000_000_002 }),
      ]);
      const session = await t.store.sessions.get('s1');
      expect(typeof session?.createdAt).toBe('number');
      expect(await t.store.audit.count()).toBe(0);
    });

    it('refuses text holding U+0000 as a bad request, storing nothing; JSON escapes it', async () => {
      await seedHome(t.store);
      const refused = await t.store.homes
        .createHome({ ...HOME, id: 'home-2', name: 'Elm\u0000Street' })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(refused).toBeInstanceOf(ThresholdError);
      expect(refused).toMatchObject({ code: 'request.invalid' });
      expect(await t.store.homes.getHome('home-2')).toBeNull();
      // In a condition too: PostgreSQL would fail the statement.
      await expect(t.store.principals.getByUsername('olivia\u0000')).rejects.toThrow(
        'NUL character',
      );
      // JSON text carries it escaped, so it round-trips.
      const session = {
        id: 's1',
        homeId: HOME.id,
        doorId: 'door-1',
        deliveryId: null,
        principalId: OWNER.id,
        state: 'open',
        createdAt: 1,
        updatedAt: 2,
        endedAt: null,
        data: { note: 'a\u0000b' },
      };
      await t.store.sessions.save(session);
      expect(await t.store.sessions.get('s1')).toEqual(session);
    });

    it('reports a real unique violation as one', async () => {
      await t.store.homes.createHome(HOME);
      const error = await t.store.homes.createHome(HOME).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isUniqueViolation(error)).toBe(true);
    });
  });
}

describe('PostgreSQL dialect', () => {
  let t: TestStore;
  beforeEach(async () => {
    t = await openTestStore('postgres');
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('refuses to read a bigint a number cannot hold exactly, rather than round it', async () => {
    await expect(sql`select 9007199254740993::bigint as n`.execute(t.store.db)).rejects.toThrow(
      'beyond what a JS number holds exactly',
    );
    const { rows } = await sql<{ n: unknown }>`select 9007199254740991::bigint as n`.execute(
      t.store.db,
    );
    expect(rows[0]?.n).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('gives every text column the byte-order collation', async () => {
    const { rows } = await sql<{ table_name: string; column_name: string }>`
      select table_name, column_name from information_schema.columns
      where table_schema = 'public' and data_type = 'text'
        and table_name not like 'kysely%'
        and coalesce(collation_name, '') <> 'C'`.execute(t.store.db);
    expect(rows).toEqual([]);
  });

  it('reports an unreachable server at the first query, not at opening', async () => {
    const db = openPostgres('postgres://nobody:wrong@127.0.0.1:1/none');
    try {
      await expect(sql`select 1`.execute(db)).rejects.toThrow();
    } finally {
      await db.destroy();
    }
  });
});

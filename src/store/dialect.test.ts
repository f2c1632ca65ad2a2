import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { ThresholdError } from '../core/errors.ts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DIALECTS,
  cachingStatements,
  dialectOf,
  isUniqueViolation,
  openPostgres,
} from './dialect.ts';
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

describe('the SQLite statement cache', () => {
  let sqlite: SqliteDatabase.Database;
  beforeEach(() => {
    sqlite = new SqliteDatabase(':memory:');
    sqlite.exec('create table t (n integer primary key, v text)');
    sqlite.exec("insert into t values (1, 'a'), (2, 'b'), (3, 'c')");
  });
  afterEach(() => {
    if (sqlite.open) sqlite.close();
  });

  it('hands out one statement per SQL text, and it runs again with new parameters', () => {
    const db = cachingStatements(sqlite, 10);
    const first = db.prepare('select v from t where n = ?');
    expect(db.prepare('select v from t where n = ?')).toBe(first);
    expect(db.prepare('select v from t where n = ? ')).not.toBe(first);
    expect(first.all([1])).toEqual([{ v: 'a' }]);
    expect(db.prepare('select v from t where n = ?').all([2])).toEqual([{ v: 'b' }]);
    const insert = db.prepare('insert into t (v) values (?)');
    expect(insert.run(['d']).lastInsertRowid).toBe(4);
    expect(db.prepare('insert into t (v) values (?)').run(['e']).lastInsertRowid).toBe(5);
  });

  it('drops the least recently used statement beyond its bound', () => {
    const db = cachingStatements(sqlite, 2);
    const a = db.prepare('select 1');
    const b = db.prepare('select 2');
    expect(db.prepare('select 1')).toBe(a); // a is now the most recently used
    const c = db.prepare('select 3'); // evicts b
    expect(db.prepare('select 1')).toBe(a);
    expect(db.prepare('select 3')).toBe(c);
    const b2 = db.prepare('select 2');
    expect(b2).not.toBe(b);
    expect(b2.all([])).toEqual([{ 2: 2 }]);
    // Bringing b back evicted a (least recently used of a and c).
    expect(db.prepare('select 3')).toBe(c);
    expect(db.prepare('select 1')).not.toBe(a);
  });

  it('never hands out a statement that is being iterated', () => {
    const db = cachingStatements(sqlite, 10);
    const text = 'select n from t order by n';
    const streaming = db.prepare(text);
    const rows = streaming.iterate([]);
    expect(rows.next().value).toEqual({ n: 1 });
    const other = db.prepare(text);
    expect(other).not.toBe(streaming);
    // The iteration goes on undisturbed, and ends.
    expect([...rows]).toEqual([{ n: 2 }, { n: 3 }]);
    // The fresh statement took the cached one's place.
    expect(db.prepare(text)).toBe(other);
    expect(other.all([])).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it('does not cache SQL that fails to prepare', () => {
    const db = cachingStatements(sqlite, 10);
    expect(() => db.prepare('select * from missing')).toThrow('no such table');
    sqlite.exec('create table missing (x integer)');
    expect(db.prepare('select * from missing').all([])).toEqual([]);
  });

  it('closes the database on close', () => {
    cachingStatements(sqlite, 10).close();
    expect(sqlite.open).toBe(false);
  });

  it('refuses a bound below one entry', () => {
    expect(() => cachingStatements(sqlite, 0)).toThrow(RangeError);
    expect(() => cachingStatements(sqlite, 1.5)).toThrow(RangeError);
  });

  it('streams through Kysely and runs the same query again once the stream is done', async () => {
    const db = new Kysely<{ t: { n: number; v: string } }>({
      dialect: new SqliteDialect({ database: cachingStatements(sqlite, 10) }),
    });
    try {
      const query = db.selectFrom('t').select('n').orderBy('n');
      const streamed: number[] = [];
      for await (const row of query.stream()) {
        streamed.push(row.n);
        if (streamed.length === 2) break; // an abandoned stream frees its statement too
      }
      expect(streamed).toEqual([1, 2]);
      expect((await query.execute()).map((r) => r.n)).toEqual([1, 2, 3]);
      expect(sqlite.inTransaction).toBe(false);
    } finally {
      await db.destroy();
    }
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

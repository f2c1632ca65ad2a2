/**
 * The database option: `threshold serve --database-url`, `startSystem({ databaseUrl })` and a
 * scenario world's `database` keep everything but keys and clips in PostgreSQL, and nothing in
 * a SQLite file of the data directory.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../src/cli/store-options.ts';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { verifyEd25519 } from '../src/server/keys.ts';
import { seedDemo } from '../src/server/seed.ts';
import { startSystem, systemStoreOptions, type RunningSystem } from '../src/server/system.ts';
import { dialectOf } from '../src/store/dialect.ts';
import { createTestDatabase, type TestDatabase } from '../src/store/test-postgres.ts';

describe('--database-url', () => {
  it('takes a postgres: or postgresql: URL naming a database, and says what it wants otherwise', () => {
    for (const url of [
      'postgres://threshold:secret@db.example.com:5432/threshold',
      'postgresql://127.0.0.1/threshold?sslmode=require',
    ]) {
      expect(parseDatabaseUrl(url)).toBe(url);
    }
    expect(() => parseDatabaseUrl('db.example.com/threshold')).toThrow(
      'a URL such as postgres://user:password@host:5432/database',
    );
    expect(() => parseDatabaseUrl('mysql://db.example.com/threshold')).toThrow(
      'a postgres:// URL (only PostgreSQL is taken here; SQLite is the default), not mysql:',
    );
    expect(() => parseDatabaseUrl('postgres://db.example.com')).toThrow('names the database');
    expect(() => parseDatabaseUrl('postgres://db.example.com/')).toThrow('names the database');
  });
});

describe('a system on PostgreSQL', () => {
  let database: TestDatabase;
  let dir: string;
  let sys: RunningSystem | null = null;
  let world: ScenarioWorld | null = null;
  beforeEach(async () => {
    database = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'threshold-pg-option-'));
  });
  afterEach(async () => {
    await sys?.close();
    sys = null;
    await world?.close();
    world = null;
    rmSync(dir, { recursive: true, force: true });
    await database.drop();
  });

  it('keeps its data in the database across a restart, and no SQLite file in the data directory', async () => {
    expect(await systemStoreOptions({ dataDir: dir, databaseUrl: database.url })).toEqual({
      dialect: 'postgres',
      url: database.url,
    });
    sys = await startSystem({ dataDir: dir, databaseUrl: database.url, port: 0, mqttPort: 0 });
    expect(dialectOf(sys.store.db)).toBe('postgres');
    const creds = await seedDemo(sys, dir);
    const noted = await sys.audit.append({
      kind: 'test.note',
      actor: { type: 'system', id: 'test' },
      subject: 'test',
      data: { before: 'restart' },
    });
    await sys.close();
    sys = null;
    expect(existsSync(join(dir, 'threshold.db'))).toBe(false);

    sys = await startSystem({ dataDir: dir, databaseUrl: database.url, port: 0, mqttPort: 0 });
    expect((await sys.store.homes.getHome(creds.homeId))?.id).toBe(creds.homeId);
    expect(await sys.store.audit.entriesForSubject('test')).toEqual([noted]);
    const verdict = await sys.audit.verify(verifyEd25519);
    expect(verdict.ok).toBe(true);
    expect(existsSync(join(dir, 'threshold.db'))).toBe(false);
  });

  it('runs a scenario world on the database it is given', async () => {
    world = await ScenarioWorld.create({
      dataDir: dir,
      database: { dialect: 'postgres', url: database.url },
    });
    expect(dialectOf(world.sys.store.db)).toBe('postgres');
    expect(await world.sys.store.homes.getHome(world.creds.homeId)).not.toBeNull();
    expect(existsSync(join(dir, 'threshold.db'))).toBe(false);
  });
});

/**
 * Test support: throwaway PostgreSQL databases on the server a test run provides (started by
 * test/postgres-global-setup.ts, or given as `THRESHOLD_TEST_POSTGRES_URL`). Each database is
 * named after the run, so the run's teardown drops whatever a test left behind, and runs
 * sharing one server do not touch each other's databases.
 */
import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import pg from 'pg';

/** The environment variable holding the test server's URL (its maintenance database). */
export const TEST_POSTGRES_URL_ENV = 'THRESHOLD_TEST_POSTGRES_URL';
/** The environment variable naming this test run; part of every database name it makes. */
export const TEST_POSTGRES_RUN_ENV = 'THRESHOLD_TEST_POSTGRES_RUN';
/**
 * The environment variable naming the run's template database: every migration applied, no
 * rows. A test's database is a copy of it, which takes a fraction of migrating each one.
 */
export const TEST_POSTGRES_TEMPLATE_ENV = 'THRESHOLD_TEST_POSTGRES_TEMPLATE';

/** The test server's URL; throws, saying what to do, when the run provides none. */
export function testPostgresUrl(): string {
  const url = process.env[TEST_POSTGRES_URL_ENV];
  if (url === undefined || url === '') {
    throw new Error(
      `${TEST_POSTGRES_URL_ENV} is not set: the PostgreSQL tests run under vitest, whose global ` +
        "setup (test/postgres-global-setup.ts) starts a throwaway server; install Debian's " +
        '"postgresql" package for it, or set the variable to a server of your own.',
    );
  }
  return url;
}

/** The prefix of every database this test run makes (lower case: PostgreSQL folds names). */
export function testDatabasePrefix(): string {
  const run = (process.env[TEST_POSTGRES_RUN_ENV] ?? 'adhoc').toLowerCase();
  if (!/^[a-z0-9]{1,16}$/.test(run)) {
    throw new Error(`${TEST_POSTGRES_RUN_ENV} must be 1-16 letters or digits, not "${run}"`);
  }
  return `threshold_test_${run}_`;
}

/** The URL of database `name` on the server at `serverUrl`. */
export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** Runs `fn` with a connection to the server's maintenance database, then closes it. */
export async function withAdminClient<T>(
  serverUrl: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 10_000 });
  // A connection the server ends mid-test (a dropped database) must not crash the worker.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A database made for one test. */
export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** Drops the database, closing any connection still open to it. Idempotent. */
  drop(): Promise<void>;
}

/**
 * Makes a template database on the server at `serverUrl` (named after this run) and gives it
 * to `migrate`, which must apply the migrations and close every connection it opened; returns
 * its name, for {@link TEST_POSTGRES_TEMPLATE_ENV}.
 */
export async function createTemplateDatabase(
  serverUrl: string,
  migrate: (url: string) => Promise<void>,
): Promise<string> {
  const name = `${testDatabasePrefix()}template`;
  await withAdminClient(serverUrl, (c) => c.query(`create database ${quoteIdent(name)}`));
  await migrate(databaseUrl(serverUrl, name));
  return name;
}

/** `create database` for `name`, copying the run's template when there is one. */
function createDatabaseSql(name: string): string {
  const template = process.env[TEST_POSTGRES_TEMPLATE_ENV];
  return template === undefined || template === ''
    ? `create database ${quoteIdent(name)}`
    : `create database ${quoteIdent(name)} template ${quoteIdent(template)}`;
}

/**
 * Makes a new database on the test server, empty but for the store's tables when the run has
 * a template (they are made again, or found made, when the store opens it either way).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = testPostgresUrl();
  const name = `${testDatabasePrefix()}${randomBytes(8).toString('hex')}`;
  await withAdminClient(serverUrl, (c) => c.query(createDatabaseSql(name)));
  return {
    name,
    url: databaseUrl(serverUrl, name),
    drop: () => dropDatabase(serverUrl, name),
  };
}

/**
 * The URL of the test database that stands for a data directory: the same directory (in
 * any process of this run, e.g. a server restarted on it) always gets the same database, made
 * on first use as {@link createTestDatabase} makes one. What SQLite keeps in
 * `<dataDir>/threshold.db`.
 */
export async function testDatabaseForDataDir(dataDir: string): Promise<string> {
  const serverUrl = testPostgresUrl();
  const digest = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 24);
  const name = `${testDatabasePrefix()}d${digest}`;
  await withAdminClient(serverUrl, async (c) => {
    const { rowCount } = await c.query('select 1 from pg_database where datname = $1', [name]);
    if (rowCount !== 0) return;
    try {
      await c.query(createDatabaseSql(name));
    } catch (error) {
      // Another process made it between the look and the create: that is the one to use.
      const code = (error as { code?: unknown }).code;
      if (code !== '42P04' && code !== '23505') throw error;
    }
  });
  return databaseUrl(serverUrl, name);
}

/**
 * Makes a new test database holding what the database at `sourceUrl` (on the test server)
 * holds: PostgreSQL's own copy (`template`), which needs no connection open to the source. What
 * copying a data directory is to SQLite.
 */
export async function copyTestDatabase(sourceUrl: string): Promise<TestDatabase> {
  const serverUrl = testPostgresUrl();
  const source = decodeURIComponent(new URL(sourceUrl).pathname.slice(1));
  const name = `${testDatabasePrefix()}${randomBytes(8).toString('hex')}`;
  await withAdminClient(serverUrl, (c) =>
    c.query(`create database ${quoteIdent(name)} template ${quoteIdent(source)}`),
  );
  return { name, url: databaseUrl(serverUrl, name), drop: () => dropDatabase(serverUrl, name) };
}

/**
 * The environment variable that puts the systems a test starts on the run's PostgreSQL server:
 * `postgres` (the integration tests' PostgreSQL project sets it), else SQLite. Only the test
 * helpers below and the scenario harness read it; a server never does.
 */
export const TEST_DIALECT_ENV = 'THRESHOLD_TEST_DIALECT';

/** Whether this test run puts its systems on PostgreSQL ({@link TEST_DIALECT_ENV}). */
export function testRunOnPostgres(): boolean {
  return process.env[TEST_DIALECT_ENV] === 'postgres';
}

/**
 * The database options of a system a test starts on `dataDir`, to spread into `startSystem`'s
 * (or `systemStoreOptions`') options: in a PostgreSQL run, the data directory's own database
 * ({@link testDatabaseForDataDir}, so a restart on the same directory finds its rows), else
 * none, and the system keeps SQLite in the data directory.
 */
export async function testDatabaseOptions(dataDir: string): Promise<{ databaseUrl?: string }> {
  return testRunOnPostgres() ? { databaseUrl: await testDatabaseForDataDir(dataDir) } : {};
}

/** Drops database `name`, closing the connections still open to it. */
export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  await withAdminClient(serverUrl, (c) =>
    c.query(`drop database if exists ${quoteIdent(name)} with (force)`),
  );
}

/** Drops every database whose name starts with `prefix`; returns how many. */
export async function dropDatabasesWithPrefix(serverUrl: string, prefix: string): Promise<number> {
  return withAdminClient(serverUrl, async (c) => {
    const { rows } = await c.query<{ datname: string }>(
      'select datname from pg_database where starts_with(datname, $1)',
      [prefix],
    );
    for (const { datname } of rows) {
      await c.query(`drop database if exists ${quoteIdent(datname)} with (force)`);
    }
    return rows.length;
  });
}

/** `name` as a quoted SQL identifier. */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

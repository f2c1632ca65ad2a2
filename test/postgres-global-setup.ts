/**
 * Vitest global setup: the PostgreSQL server the tests' second dialect runs on.
 *
 * With `THRESHOLD_TEST_POSTGRES_URL` set (a superuser's URL to a server's maintenance
 * database), the tests use that server. Otherwise this starts a throwaway cluster from Debian's
 * `postgresql` binaries (/usr/lib/postgresql/<version>/bin): a fresh data directory in a
 * temporary folder, listening on 127.0.0.1 only, on a free port, with its socket in that folder
 * and `fsync` on (commits are as durable as in production). Root cannot run PostgreSQL, so as
 * root the cluster runs as the `postgres` system user. Teardown stops it and deletes the folder;
 * on a server of one's own, it drops the databases this run made.
 *
 * The cluster sorts text the way most production databases do (an ICU locale, not "C"), so a
 * column that forgot the store's byte-order collation shows up in the store's tests.
 *
 * Neither a URL nor the binaries: the run fails, saying what to install. It is never skipped.
 */
import { randomBytes } from 'node:crypto';
import { startPostgresCluster } from '../src/harness/postgres-cluster.ts';
import { openStore } from '../src/store/store.ts';
import {
  TEST_POSTGRES_RUN_ENV,
  TEST_POSTGRES_TEMPLATE_ENV,
  TEST_POSTGRES_URL_ENV,
  createTemplateDatabase,
  dropDatabasesWithPrefix,
  testDatabasePrefix,
  testPostgresUrl,
  withAdminClient,
} from '../src/store/test-postgres.ts';

/** A running server of this run, and how to stop it. */
interface Server {
  stop(): Promise<void>;
}

/** What the projects of one run share (one process, one `globalThis`). */
interface Shared {
  users: number;
  server: Promise<Server> | null;
}

/**
 * Starts (or finds) the server, publishes its URL and this run's name in the environment the
 * test workers inherit, and returns the teardown. Each project of the run calls it; the first
 * starts the server, and the teardown that ends the last use stops it, in whatever order the
 * projects finish.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const holder = globalThis as { thresholdPostgres?: Shared };
  const shared = (holder.thresholdPostgres ??= { users: 0, server: null });
  shared.users++;
  shared.server ??= startServer();
  const server = shared.server;
  try {
    await server;
  } catch (error) {
    shared.users--;
    if (shared.server === server) shared.server = null;
    throw error;
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--shared.users > 0 || shared.server !== server) return;
    shared.server = null;
    await (await server).stop();
  };
}

/** The server the tests use, with its template database made. */
async function startServer(): Promise<Server> {
  process.env[TEST_POSTGRES_RUN_ENV] = randomBytes(4).toString('hex');
  const given = process.env[TEST_POSTGRES_URL_ENV];
  let stop: () => Promise<void>;
  if (given !== undefined && given !== '') {
    await withAdminClient(given, (c) => c.query('select 1')).catch((error: unknown) => {
      throw new Error(`${TEST_POSTGRES_URL_ENV} is set, but its server does not answer`, {
        cause: error,
      });
    });
    stop = async () => {
      delete process.env[TEST_POSTGRES_TEMPLATE_ENV];
      await dropDatabasesWithPrefix(given, testDatabasePrefix());
    };
  } else {
    const cluster = await startPostgresCluster(
      {},
      `, or set ${TEST_POSTGRES_URL_ENV} to a superuser's URL of a server of your own (postgres://user:password@127.0.0.1:5432/postgres)`,
    );
    process.env[TEST_POSTGRES_URL_ENV] = cluster.url;
    stop = async () => {
      delete process.env[TEST_POSTGRES_URL_ENV];
      delete process.env[TEST_POSTGRES_TEMPLATE_ENV];
      await cluster.stop();
    };
  }
  try {
    process.env[TEST_POSTGRES_TEMPLATE_ENV] = await createTemplateDatabase(
      testPostgresUrl(),
      async (url) => {
        const store = await openStore({ dialect: 'postgres', url, maxConnections: 1 });
        await store.close();
      },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}

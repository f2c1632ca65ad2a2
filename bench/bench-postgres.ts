/**
 * The PostgreSQL server the benches' second dialect runs on: a throwaway cluster from Debian's
 * binaries (src/harness/postgres-cluster.ts: 127.0.0.1 only, `fsync` and `synchronous_commit`
 * on, as in production), started once per bench process on first use and stopped at its end;
 * or, with `THRESHOLD_BENCH_POSTGRES_URL` (a superuser's URL of a server's maintenance
 * database), that server. Each bench gets a database of its own, dropped when it is done.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startPostgresCluster, type PostgresCluster } from '../src/harness/postgres-cluster.ts';

/** The environment variable naming a server of one's own instead of a throwaway cluster. */
export const BENCH_POSTGRES_URL_ENV = 'THRESHOLD_BENCH_POSTGRES_URL';

let cluster: Promise<PostgresCluster> | null = null;

async function serverUrl(): Promise<string> {
  const given = process.env[BENCH_POSTGRES_URL_ENV];
  if (given !== undefined && given !== '') return given;
  cluster ??= startPostgresCluster(
    // The sessions bench's server and the bench itself each open a pool; a few benches run
    // one after the other on the same cluster.
    { maxConnections: 200 },
    `, or set ${BENCH_POSTGRES_URL_ENV} to a superuser's URL of a server of your own`,
  );
  return (await cluster).url;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: await serverUrl(), connectionTimeoutMillis: 10_000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new, empty database for one bench; `drop()` removes it. */
export async function benchDatabase(
  purpose: string,
): Promise<{ readonly url: string; drop(): Promise<void> }> {
  const name = `threshold_bench_${purpose}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`create database ${name}`));
  const url = new URL(await serverUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () =>
      admin(async (c) => {
        await c.query(`drop database if exists ${name} with (force)`);
      }),
  };
}

/** Stops the throwaway cluster, if one was started; idempotent. */
export async function stopBenchPostgres(): Promise<void> {
  const c = cluster;
  cluster = null;
  if (c) await (await c).stop();
}

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
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const SUPERUSER = 'threshold';

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
    const cluster = await startCluster();
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

interface Cluster {
  readonly url: string;
  stop(): Promise<void>;
}

/** The newest Debian PostgreSQL's bin folder, or null. */
function debianBinaries(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], 'bin');
}

async function startCluster(): Promise<Cluster> {
  const bin = debianBinaries();
  if (bin === null) {
    throw new Error(
      'The PostgreSQL tests need a PostgreSQL server. Install Debian\'s "postgresql" package ' +
        '(apt-get install -y postgresql; the tests start their own throwaway cluster from ' +
        `/usr/lib/postgresql/<version>/bin), or set ${TEST_POSTGRES_URL_ENV} to a superuser's ` +
        'URL of a server of your own (postgres://user:password@127.0.0.1:5432/postgres).',
    );
  }
  const asRoot = process.getuid?.() === 0;
  const pgCtl = join(bin, 'pg_ctl');
  const dir = mkdtempSync(join(tmpdir(), 'threshold-postgres-'));
  const data = join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
    chownSync(passwordFile, uid, gid);
  }
  chmodSync(dir, 0o700);
  /** Runs one of the server's programs, as `postgres` when we are root. */
  const run = (program: string, args: readonly string[]): void => {
    const command = asRoot ? 'runuser' : join(bin, program);
    const argv = asRoot ? ['-u', 'postgres', '--', join(bin, program), ...args] : [...args];
    const r = spawnSync(command, argv, { encoding: 'utf8', cwd: dir, timeout: 120_000 });
    if (r.status !== 0) {
      throw new Error(
        `${program} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr || r.stdout}`,
      );
    }
  };
  try {
    run('initdb', [
      '--pgdata',
      data,
      '--username',
      SUPERUSER,
      '--pwfile',
      passwordFile,
      '--auth',
      'scram-sha-256',
      '--encoding',
      'UTF8',
      '--locale-provider',
      'icu',
      '--icu-locale',
      'en',
      '--locale',
      'C.UTF-8',
    ]);
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        run('pg_ctl', [
          'start',
          '--pgdata',
          data,
          '--wait',
          '--timeout',
          '60',
          '--log',
          join(dir, 'server.log'),
          '-o',
          [
            '-c listen_addresses=127.0.0.1',
            `-c port=${port}`,
            `-c unix_socket_directories=${dir}`,
            '-c fsync=on',
            '-c synchronous_commit=on',
            // Each test opens its own pool; the integration tests run two servers at once.
            '-c max_connections=300',
          ].join(' '),
        ]);
        break;
      } catch (error) {
        // The port was taken between our look and the server's bind: try another.
        if (attempt >= 3) throw error;
      }
    }
    watchOver(dir, asRoot ? ['runuser', '-u', 'postgres', '--', pgCtl] : [pgCtl]);
    const url = `postgres://${SUPERUSER}:${password}@127.0.0.1:${port}/postgres`;
    return {
      url,
      stop: () => {
        try {
          run('pg_ctl', ['stop', '--pgdata', data, '--mode', 'fast', '--wait']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        return Promise.resolve();
      },
    };
  } catch (error) {
    spawnSync(asRoot ? 'runuser' : pgCtl, [
      ...(asRoot ? ['-u', 'postgres', '--', pgCtl] : []),
      'stop',
      '--pgdata',
      data,
      '--mode',
      'immediate',
    ]);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * A run that is killed (a timeout, ^C twice) never reaches its teardown, and a cluster left
 * behind would run until the machine stops. So a small watcher outside this process, in a
 * session of its own, waits for the process to end and then stops the cluster and deletes its
 * folder, unless the teardown did so already (it leaves as soon as the folder is gone).
 */
function watchOver(dir: string, pgCtl: readonly string[]): void {
  const script = [
    'pid=$1; dir=$2; shift 2',
    'while kill -0 "$pid" 2>/dev/null && [ -d "$dir" ]; do sleep 2; done',
    'if [ -d "$dir/data" ]; then',
    '  "$@" stop --pgdata "$dir/data" --mode immediate >/dev/null 2>&1',
    '  rm -rf "$dir"',
    'fi',
  ].join('\n');
  const watcher = spawn('sh', ['-c', script, 'sh', String(process.pid), dir, ...pgCtl], {
    detached: true,
    stdio: 'ignore',
  });
  watcher.unref();
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

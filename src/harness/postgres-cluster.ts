/**
 * A throwaway PostgreSQL cluster from Debian's `postgresql` binaries
 * (/usr/lib/postgresql/<version>/bin): a fresh data directory in a temporary folder, listening
 * on 127.0.0.1 only, on a free port, with its socket in that folder and `fsync` on (commits are
 * as durable as in production). Root cannot run PostgreSQL, so as root the cluster runs as the
 * `postgres` system user. `stop()` stops it and deletes the folder; a watcher outside the
 * process does the same if the process dies first.
 *
 * The cluster sorts text the way most production databases do (an ICU locale, not "C"), so a
 * column that forgot the store's byte-order collation shows up in the store's tests.
 *
 * Used by the test run's global setup (test/postgres-global-setup.ts) and by the benchmarks'
 * PostgreSQL runs (bench/).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.ts';

/** The superuser every cluster is made with. */
export const POSTGRES_CLUSTER_SUPERUSER = 'threshold';

/** A running throwaway cluster. */
export interface PostgresCluster {
  /** The superuser's URL of the maintenance database (`postgres`). */
  readonly url: string;
  /** The folder holding the data directory, the socket and the server's log. */
  readonly dir: string;
  /** Stops the server (fast shutdown) and deletes its folder. */
  stop(): Promise<void>;
}

/** Settings of {@link startPostgresCluster}. */
export interface PostgresClusterOptions {
  /** `max_connections` (default 300: each test opens its own pool). */
  readonly maxConnections?: number;
  /** More `-c name=value` server settings. */
  readonly settings?: Readonly<Record<string, string | number>>;
}

/** The newest Debian PostgreSQL's bin folder, or null. */
export function debianPostgresBinaries(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : join(root, versions[0], 'bin');
}

/**
 * Starts a throwaway cluster; throws, saying what to install, when Debian's binaries are not
 * there. `missingHint` ends that sentence (e.g. what else the caller accepts instead).
 */
export async function startPostgresCluster(
  opts: PostgresClusterOptions = {},
  missingHint = '',
): Promise<PostgresCluster> {
  const bin = debianPostgresBinaries();
  if (bin === null) {
    throw new Error(
      'No PostgreSQL server binaries: install Debian\'s "postgresql" package ' +
        '(apt-get install -y postgresql; a throwaway cluster is started from ' +
        `/usr/lib/postgresql/<version>/bin)${missingHint}.`,
    );
  }
  const SUPERUSER = POSTGRES_CLUSTER_SUPERUSER;
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
            `-c max_connections=${opts.maxConnections ?? 300}`,
            ...Object.entries(opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`),
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
      dir,
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

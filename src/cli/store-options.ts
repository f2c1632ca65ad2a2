/**
 * Where a command that opens a data directory's database finds it, the same for every command
 * (`serve`, `audit verify`, `carrier add`): `--database-url`, else the environment's
 * `THRESHOLD_DATABASE_URL`, else SQLite in `--data`.
 */
import type { StoreOptions } from '../store/index.ts';
import { systemStoreOptions } from '../server/store-location.ts';
import { InvalidArgumentError } from 'commander';

/**
 * The database URL from the `--database-url` flag (already parsed) or, without it,
 * {@link DATABASE_URL_ENV}; undefined for SQLite. A bad URL in the environment ends the
 * process with a usage error (exit 2) naming `command`, as the flag's own would.
 */
export function databaseUrlFrom(flag: string | undefined, command: string): string | undefined {
  if (flag !== undefined) return flag;
  const fromEnv = process.env[DATABASE_URL_ENV];
  if (fromEnv === undefined || fromEnv === '') return undefined;
  try {
    return parseDatabaseUrl(fromEnv);
  } catch (err) {
    console.error(`${command}: ${DATABASE_URL_ENV} must be ${(err as Error).message}`);
    process.exit(2);
  }
}

/** The store of data directory `data`: PostgreSQL at `databaseUrl`, else its SQLite file. */
export function commandStoreOptions(
  data: string,
  databaseUrl: string | undefined,
): Promise<StoreOptions> {
  // From its own light module: src/server/system.ts wires the whole server, and loading it would
  // cost `audit verify` and `carrier add` about a second before they open anything.
  return systemStoreOptions({
    dataDir: data,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
  });
}

/** The environment variable holding the database URL when `--database-url` is not given. */
export const DATABASE_URL_ENV = 'THRESHOLD_DATABASE_URL';

/** The `--help` text of `--database-url`. */
export const DATABASE_URL_HELP = `keep the data in PostgreSQL instead of SQLite in --data (keys and clips stay there): postgres://user:password@host:5432/database, an existing database whose tables are made on start; better given as ${DATABASE_URL_ENV}, as a password on the command line is visible to every user of the machine`;

/**
 * Parses `--database-url <url>` (or {@link DATABASE_URL_ENV}): a `postgres:` or `postgresql:`
 * URL naming a database. Anything else is a usage error (exit 2) that says what is allowed.
 */
export function parseDatabaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('a URL such as postgres://user:password@host:5432/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new InvalidArgumentError(
      `a postgres:// URL (only PostgreSQL is taken here; SQLite is the default), not ${url.protocol}`,
    );
  }
  if (url.pathname.length <= 1) {
    throw new InvalidArgumentError('a URL that names the database, e.g. postgres://host/threshold');
  }
  return value;
}

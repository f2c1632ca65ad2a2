/**
 * Where a command that opens a data directory's database finds it, the same for every command
 * (`serve`, `audit verify`, `carrier add`): `--database-url`, else the environment's
 * `THRESHOLD_DATABASE_URL`, else SQLite in `--data`.
 */
import type { StoreOptions } from '../store/index.ts';
import { systemStoreOptions } from '../server/system.ts';
import { DATABASE_URL_ENV, parseDatabaseUrl } from './serve-command.ts';

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
  return systemStoreOptions({
    dataDir: data,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
  });
}

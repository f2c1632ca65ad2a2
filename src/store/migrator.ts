/** Applies the store's migrations. */
import { inspect } from 'node:util';
import { Migrator, type Kysely, type Migration } from 'kysely';
import { ThresholdError } from '../core/errors.ts';
import { MIGRATIONS } from './migrations/index.ts';
import type { Database } from './schema.ts';

/**
 * Brings the database up to the newest migration and returns the names of the migrations it
 * applied (empty when it was already current). Safe to call at every start-up.
 *
 * Throws a {@link ThresholdError} `internal.error` naming the failed migration (also in
 * `detail.migration`, with the database's error as `cause`) when one fails; Kysely rolls back
 * a failed migration where the dialect has transactional DDL.
 *
 * @param migrations the migrations to apply; tests pass their own, everyone else the default.
 */
export async function migrateToLatest(
  db: Kysely<Database>,
  migrations: Readonly<Record<string, Migration>> = MIGRATIONS,
): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve({ ...migrations }) },
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    const reason = error instanceof Error ? error.message : inspect(error);
    const failure = new ThresholdError(
      'internal.error',
      failed === undefined
        ? `database migrations could not run: ${reason}`
        : `database migration "${failed}" failed: ${reason}`,
      failed === undefined ? {} : { migration: failed },
    );
    failure.cause = error;
    throw failure;
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * Where a Threshold keeps its store: PostgreSQL when it is given a database URL, else the SQLite
 * file in its data directory. A module of its own, with nothing heavy to load, so that commands
 * that only open the store (`audit verify`, `carrier add`) find it where `threshold serve` does
 * without loading the server.
 */
import { join } from 'node:path';
import type { StoreOptions } from '../store/index.ts';

/**
 * Where a system's database is: `databaseUrl`, else SQLite in the data directory. For the server,
 * and whatever opens a stopped system's store (`threshold audit verify --data`, a test reading
 * what a server left). Tests choose their dialect themselves and pass `databaseUrl`.
 */
export function systemStoreOptions(opts: {
  readonly dataDir: string;
  readonly databaseUrl?: string;
}): Promise<StoreOptions> {
  return Promise.resolve<StoreOptions>(
    opts.databaseUrl !== undefined
      ? { dialect: 'postgres', url: opts.databaseUrl }
      : { dialect: 'sqlite', path: join(opts.dataDir, 'threshold.db') },
  );
}

/**
 * A second floor: one durable SQLite commit, as the store makes them (WAL, synchronous=FULL, so
 * every commit waits for an fsync), on the same file system as the world's data directory.
 *
 * The orchestrator persists each session step and commits its audit entries before it sends
 * the step's commands (principle: what the server acts on is on record), so the unlock path's
 * server share contains several such commits. This measures one, bare: a prepared INSERT of a
 * row about the size of an audit entry, in its own transaction, through better-sqlite3
 * directly (no Kysely, no hashing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export class CommitFloor {
  private readonly insert: Database.Statement<[string]>;
  private readonly row = 'x'.repeat(400);

  private constructor(
    private readonly db: Database.Database,
    private readonly dir: string,
  ) {
    db.exec('create table if not exists floor (id integer primary key, data text not null)');
    this.insert = db.prepare<[string]>('insert into floor (data) values (?)');
  }

  /** Opens a scratch database in a new directory under `parent`. */
  static open(parent: string): CommitFloor {
    const dir = mkdtempSync(join(parent, 'threshold-bench-commit-'));
    const db = new Database(join(dir, 'floor.db'));
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      return new CommitFloor(db, dir);
    } catch (err) {
      db.close();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** `n` commits, ms each. */
  commits(n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      this.insert.run(this.row);
      out.push(performance.now() - t0);
    }
    return out;
  }

  close(): void {
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

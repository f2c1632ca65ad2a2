/**
 * The audit bench's floors on PostgreSQL, through `pg` directly (no Kysely, no hashing), on the
 * same server and database the log is in: a durable one-row commit, raw group commits of
 * prebuilt audit rows into a table of the audit table's shape, and reading every row of the
 * log once. The SQLite twins are in commit-floor.ts and audit-log.ts.
 */
import pg from 'pg';

/** A connection of its own to `url`. */
async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** One durable commit of a 400-byte row (synchronous_commit on: the WAL is flushed), ms each. */
export class PgCommitFloor {
  private constructor(private readonly c: pg.Client) {}

  static async open(url: string): Promise<PgCommitFloor> {
    const c = await client(url);
    await c.query('create table if not exists bench_floor (id serial primary key, data text)');
    return new PgCommitFloor(c);
  }

  /** `n` commits, ms each. */
  async commits(n: number): Promise<number[]> {
    const row = 'x'.repeat(400);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await this.c.query({
        name: 'bench-floor',
        text: 'insert into bench_floor (data) values ($1)',
        values: [row],
      });
      out.push(performance.now() - t0);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.c.end();
  }
}

/** Raw group commits: `size` prebuilt rows in one INSERT, in one transaction. */
export class PgRawGroupCommit {
  private seq = 0;

  private constructor(
    private readonly c: pg.Client,
    private readonly rows: readonly (readonly unknown[])[],
  ) {}

  static async open(url: string, rows: readonly (readonly unknown[])[]): Promise<PgRawGroupCommit> {
    const c = await client(url);
    await c.query(`create table if not exists bench_raw_entries (
      seq bigint primary key, at bigint not null, kind text not null, actor_type text not null,
      actor_id text not null, subject text not null, data text not null, device_mac text,
      prev_hash text not null, hash text not null)`);
    await c.query(
      'create index if not exists bench_raw_entries_subject_idx on bench_raw_entries (subject, seq)',
    );
    return new PgRawGroupCommit(c, rows);
  }

  /** `commits` transactions of `size` rows each; rows per second. */
  async rowsPerSecond(size: number, commits: number): Promise<number> {
    const placeholders = Array.from(
      { length: size },
      (_, r) => `(${Array.from({ length: 10 }, (_, k) => `$${r * 10 + k + 1}`).join(', ')})`,
    ).join(', ');
    const text = `insert into bench_raw_entries values ${placeholders}`;
    const batches = Array.from({ length: commits }, () =>
      Array.from({ length: size }, (_, i) => [
        ++this.seq,
        ...this.rows[i % this.rows.length]!,
      ]).flat(),
    );
    const t0 = performance.now();
    for (const values of batches) {
      await this.c.query('begin');
      await this.c.query({ name: `bench-raw-${size}`, text, values });
      await this.c.query('commit');
    }
    return (size * commits) / ((performance.now() - t0) / 1000);
  }

  async close(): Promise<void> {
    await this.c.end();
  }
}

/** Reads every row of the log once, in keyset pages of 10,000; seconds. */
export async function readAllRowsPostgres(url: string): Promise<number> {
  const c = await client(url);
  try {
    const t0 = performance.now();
    let last = 0;
    let n = 0;
    for (;;) {
      const r = await c.query({
        name: 'bench-read-page',
        text: 'select * from audit_entries where seq > $1 order by seq limit 10000',
        values: [last],
      });
      if (r.rows.length === 0) break;
      n += r.rows.length;
      last = Number((r.rows.at(-1) as { seq: number | string }).seq);
    }
    if (n === 0) throw new Error('the log to read is empty');
    return (performance.now() - t0) / 1000;
  } finally {
    await c.end();
  }
}

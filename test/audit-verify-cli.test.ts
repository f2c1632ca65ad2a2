/**
 * `threshold audit verify` as an operator runs it: a real child process on a closed data
 * directory. Someone with write access to the database edits the audit table behind the
 * server's back — change, delete, reorder, truncate, rewrite with fresh hashes — and the
 * command exits 1 naming where the log breaks (principle 5).
 *
 * One system writes 12 facts with a checkpoint after the sixth and one on closing the log.
 * Each checkpoint is also recorded in the chain, as the entry right after the one it signs, so
 * the log is: facts at 1–6, checkpoint over 6 recorded at 7, facts at 8–13, checkpoint over 13
 * recorded at 14. Each case tampers with its own copy of that data directory (and, on
 * PostgreSQL, of its database), through the store's own SQL handle, so the same edits run on
 * either dialect.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainEntry, type AuditEntry } from '../src/core/audit-chain.ts';
import { sha256Hex } from '../src/server/keys.ts';
import { startSystem, systemStoreOptions } from '../src/server/system.ts';
import { openStore } from '../src/store/index.ts';
import type { AuditEntryRow, Database } from '../src/store/schema.ts';
import {
  copyTestDatabase,
  testDatabaseOptions,
  type TestDatabase,
} from '../src/store/test-postgres.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI_TIMEOUT_MS = 20_000;
const FACTS = 12;
const FIRST_CHECKPOINT = 6;
/** Seq of the last fact, signed by the closing checkpoint. */
const LAST_FACT = 13;
/** Every entry: the facts and the two checkpoint records. */
const ENTRIES = 14;

let workDir: string;
let pristine: string;
/** The pristine system's PostgreSQL database, in a PostgreSQL run; SQLite in its directory else. */
let pristineDatabase: { databaseUrl?: string } = {};
/** The copies' databases, dropped at the end. */
const copiedDatabases: TestDatabase[] = [];

/** A tampered data directory, and its database when it is not the directory's SQLite file. */
interface Copy {
  readonly dir: string;
  readonly databaseUrl?: string;
}

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node bin/threshold.js audit verify --data <dir>`, with `THRESHOLD_DATABASE_URL` when the
 * copy's database is PostgreSQL (as an operator would), and collects its output.
 */
function auditVerify(copy: Copy): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.THRESHOLD_DATABASE_URL;
  if (copy.databaseUrl !== undefined) env.THRESHOLD_DATABASE_URL = copy.databaseUrl;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['bin/threshold.js', 'audit', 'verify', '--data', copy.dir],
      { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`threshold audit verify did not finish in ${CLI_TIMEOUT_MS} ms`));
    }, CLI_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

type Db = Kysely<Database>;

let copies = 0;
/** A fresh copy of the pristine data directory (and database), edited by `tamper`. */
async function tamperedCopy(tamper: (db: Db) => Promise<void>): Promise<Copy> {
  const dir = join(workDir, `copy-${++copies}`);
  cpSync(pristine, dir, { recursive: true });
  let copy: Copy = { dir };
  if (pristineDatabase.databaseUrl !== undefined) {
    const database = await copyTestDatabase(pristineDatabase.databaseUrl);
    copiedDatabases.push(database);
    copy = { dir, databaseUrl: database.url };
  }
  const store = await openStore(await systemStoreOptions({ dataDir: dir, ...copy }));
  try {
    await tamper(store.db);
  } finally {
    await store.close();
  }
  return copy;
}

async function rowsOf(db: Db): Promise<AuditEntryRow[]> {
  return db.selectFrom('audit_entries').selectAll().orderBy('seq').execute();
}

/** What the pristine system's database holds, read through the store's SQL handle. */
async function readPristine<T>(read: (db: Db) => Promise<T>): Promise<T> {
  const store = await openStore(
    await systemStoreOptions({ dataDir: pristine, ...pristineDatabase }),
  );
  try {
    return await read(store.db);
  } finally {
    await store.close();
  }
}

function entryOf(row: AuditEntryRow): AuditEntry {
  const base = {
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    actor: { type: row.actor_type, id: row.actor_id },
    subject: row.subject,
    data: JSON.parse(row.data) as Record<string, unknown>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
  return row.device_mac === null ? base : { ...base, deviceMac: row.device_mac };
}

/**
 * What a careful forger does: changes entry `fromSeq` and re-chains it and every later entry
 * with freshly computed hashes, so the chain itself verifies again.
 */
async function rewriteChainFrom(db: Db, fromSeq: number): Promise<void> {
  const rows = await rowsOf(db);
  let prev: Pick<AuditEntry, 'seq' | 'hash'> | null = null;
  for (const row of rows) {
    const e = entryOf(row);
    if (e.seq < fromSeq) {
      prev = e;
      continue;
    }
    const data = e.seq === fromSeq ? { ...e.data, amount: 'rewritten' } : e.data;
    const next = chainEntry(sha256Hex, prev, { ...e, data }, e.at);
    expect(next.seq).toBe(e.seq);
    await db
      .updateTable('audit_entries')
      .set({ data: JSON.stringify(next.data), prev_hash: next.prevHash, hash: next.hash })
      .where('seq', '=', next.seq)
      .execute();
    prev = next;
  }
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'threshold-audit-cli-'));
  pristine = join(workDir, 'pristine');
  pristineDatabase = await testDatabaseOptions(pristine);
  const sys = await startSystem({ dataDir: pristine, port: 0, mqttPort: 0, ...pristineDatabase });
  try {
    for (let i = 1; i <= FACTS; i++) {
      await sys.audit.append({
        kind: 'test.fact',
        actor: { type: 'principal', id: 'owner-alex' },
        subject: 'home:home-maple-12',
        data: { n: i, amount: `entry ${i}` },
        ...(i % 4 === 0 ? { deviceMac: `mac-${i}` } : {}),
      });
      if (i === FIRST_CHECKPOINT) await sys.audit.checkpoint();
    }
  } finally {
    // Closing the log signs the final checkpoint, over entry 13.
    await sys.close();
  }
  await readPristine(async (db) => {
    expect((await rowsOf(db)).map((r) => r.seq)).toEqual(
      Array.from({ length: ENTRIES }, (_, i) => i + 1),
    );
    const checkpoints = await db
      .selectFrom('audit_checkpoints')
      .select('seq')
      .orderBy('seq')
      .execute();
    expect(checkpoints.map((r) => r.seq)).toEqual([FIRST_CHECKPOINT, LAST_FACT]);
    const records = await db
      .selectFrom('audit_entries')
      .select('seq')
      .where('kind', '=', 'audit.checkpoint')
      .orderBy('seq')
      .execute();
    expect(records.map((r) => r.seq)).toEqual([FIRST_CHECKPOINT + 1, ENTRIES]);
  });
});

afterAll(async () => {
  for (const database of copiedDatabases) await database.drop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('threshold audit verify', () => {
  it('given an untouched data directory, when verified, then exit 0 and "intact"', async () => {
    const r = await auditVerify(await tamperedCopy(() => Promise.resolve()));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('intact');
    expect(r.stdout).toContain(`${ENTRIES} entries, 2 signed checkpoints`);
  });

  it("given one entry's data was changed, when verified, then exit 1 naming that entry", async () => {
    const dir = await tamperedCopy(async (db) => {
      await db
        .updateTable('audit_entries')
        .set({ data: JSON.stringify({ n: 4, amount: 'nothing happened' }) })
        .where('seq', '=', 4)
        .execute();
    });
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/BROKEN at entry 4\b/);
    expect(r.stderr).toContain('hash-mismatch');
    expect(r.stdout).not.toContain('intact');
  });

  it('given a middle entry was deleted, when verified, then exit 1 naming the missing entry', async () => {
    const dir = await tamperedCopy(async (db) => {
      await db.deleteFrom('audit_entries').where('seq', '=', 8).execute();
    });
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('entry 9 found where entry 8 was expected');
    expect(r.stderr).toContain('sequence-gap');
  });

  it('given two entries swapped their seq, when verified, then exit 1 naming the first of them', async () => {
    const dir = await tamperedCopy(async (db) => {
      await db.transaction().execute(async (trx) => {
        const move = (from: number, to: number) =>
          trx.updateTable('audit_entries').set({ seq: to }).where('seq', '=', from).execute();
        await move(3, -1);
        await move(4, 3);
        await move(-1, 4);
      });
    });
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/BROKEN at entry 3\b/);
    expect(r.stderr).toContain('prev-hash-mismatch');
  });

  it('given the entries from 10 to the end (checkpointed at 13) were deleted, when verified, then exit 1 reporting truncation', async () => {
    const dir = await tamperedCopy(async (db) => {
      await db.deleteFrom('audit_entries').where('seq', '>=', 10).execute();
    });
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('truncated');
    expect(r.stderr).toContain(
      `the log ends at entry 9 but a signed checkpoint covers entry ${LAST_FACT}`,
    );
  });

  it('given the chain was rewritten from entry 8 on with recomputed hashes, when verified, then exit 1: the checkpoint recorded at 14 no longer signs entry 13', async () => {
    const dir = await tamperedCopy((db) => rewriteChainFrom(db, 8));
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`BROKEN at entry ${ENTRIES}\\b`));
    expect(r.stderr).toContain('checkpoint-record-invalid');
  });

  it('given the chain was rewritten from entry 3 on and the checkpoint rows updated to match, when verified, then exit 1: the checkpoint recorded at 7 no longer holds', async () => {
    const dir = await tamperedCopy(async (db) => {
      await rewriteChainFrom(db, 3);
      await sql`UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit_entries WHERE audit_entries.seq = audit_checkpoints.seq)`.execute(
        db,
      );
    });
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`BROKEN at entry ${FIRST_CHECKPOINT + 1}\\b`));
    expect(r.stderr).toContain('checkpoint-record-invalid');
  });

  it('given entries 8 on were rewritten and every later signature removed (rows and records), when verified, then exit 1: the rewritten end carries no signature', async () => {
    const dir = await tamperedCopy(async (db) => {
      await db.deleteFrom('audit_entries').where('seq', '=', ENTRIES).execute();
      await db.deleteFrom('audit_checkpoints').where('seq', '>=', 8).execute();
      await rewriteChainFrom(db, 8);
    });
    const r = await auditVerify(dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `NOT PROVEN: entries ${FIRST_CHECKPOINT + 2} to ${LAST_FACT} carry no signature`,
    );
    expect(r.stdout).not.toContain('intact');
  });
});

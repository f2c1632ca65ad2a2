/**
 * The audit log's throughput (see docs/benchmarks.md): appends per second through the real
 * `AuditLog` with signed checkpoints, and the time `threshold audit verify` takes over a log of
 * a million entries; each next to floors measured in the same run.
 *
 * Everything is production's: the store opened by `openStore` on a SQLite file (WAL,
 * synchronous=FULL, so every commit waits for an fsync) or, with `--dialect postgres`, on a
 * PostgreSQL database (fsync and synchronous_commit on; floors through `pg` on the same
 * database, postgres-floors.ts), the keys `loadOrCreateKeys` makes
 * (Ed25519 checkpoint signatures), `sha256Hex`, the default checkpoint policy (every 1000
 * entries, or 1 s after the last one while entries wait), the wall clock.
 *
 * Appends: `callers` concurrent callers, each appending one fact at a time and awaiting it
 * (resolved only once the entry is committed). Each append is made from an event-loop task of
 * its own (`setImmediate`), as a request handler's is (every HTTP request is handled in an I/O
 * callback of its own), so appends share a commit only if the log's group commit makes them.
 * Rate = entries ÷ wall time of the round. The commits are counted through a counting
 * `AuditRepository`, so entries per commit are reported.
 *
 * Verification: the log is filled to `verifyEntries` facts (plus its checkpoint records), the
 * log and store are closed, and `node bin/threshold.js audit verify --data DIR --json` runs as a
 * child process, as an operator runs it. Wall time from spawn to exit; peak RSS and CPU time as
 * the child reports them on exit (`process.resourceUsage()`, through a module given to
 * `--import`). The same command on an empty log is the startup floor.
 *
 * Floors, measured before every round, so they see the machine at the same moments:
 * - a durable commit of one row, as bench/commit-floor.ts makes it (its own file in the same
 *   directory);
 * - raw group commits: `k` prebuilt audit rows (hashes already computed) inserted with one
 *   prepared statement in one transaction, through better-sqlite3 directly, into a table of the
 *   audit table's shape in the same database file, for k = each caller count;
 * - SHA-256 of entry-sized texts with production's `sha256Hex` (no canonical JSON);
 * - Ed25519 signatures and verifications of checkpoint messages with production's signer and
 *   verifier.
 * And for verification: reading every row of the log once through better-sqlite3 (no hashing).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import {
  chainEntry,
  checkpointMessage,
  entryHashInput,
  type AuditEntry,
  type AuditFact,
  type AuditVerification,
} from '../src/core/audit-chain.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { AuditLog } from '../src/server/audit-log.ts';
import { loadOrCreateKeys, sha256Hex, verifyEd25519 } from '../src/server/keys.ts';
import {
  AuditRepository,
  openStore,
  type AlongsideWrite,
  type AuditAppend,
  type AuditChainer,
  type Store,
  type StoreOptions,
} from '../src/store/index.ts';
import { CommitFloor } from './commit-floor.ts';
import { ratio, summarize, type Summary } from './sample-stats.ts';
import {
  benchMain,
  fmt,
  goalText,
  loadNow,
  machineOf,
  parseDialects,
  RANGE_HEAD,
  rangeRow,
  round2,
  type BenchContext,
  type BenchRun,
  type Dialect,
} from './bench-report.ts';
import { benchDatabase, stopBenchPostgres } from './bench-postgres.ts';
import { PgCommitFloor, PgRawGroupCommit, readAllRowsPostgres } from './postgres-floors.ts';

/** What one run does: how many rounds, callers, entries. */
export interface AuditLogBenchPlan {
  readonly rounds: number;
  /** Concurrent callers per append level, and entries appended per round at that level. */
  readonly levels: readonly { readonly callers: number; readonly entriesPerRound: number }[];
  /** Facts in the log that is verified (the append rounds count towards it). */
  readonly verifyEntries: number;
  readonly verifyRuns: number;
  readonly startupRuns: number;
  readonly readFloorRuns: number;
  /** Per floor batch: one-row commits, raw group commits per level, hashes, signatures. */
  readonly floor: {
    readonly commits: number;
    readonly rawCommits: number;
    readonly hashes: number;
    readonly signatures: number;
  };
}

/** Concurrent callers at each append level; the full and the quick run measure the same ones. */
const AUDIT_LEVEL_CALLERS = [1, 16, 256] as const;

/**
 * A plan at the levels of {@link AUDIT_LEVEL_CALLERS}, each appending ten times the entries of
 * the one before it per round; the rest of the plan as given.
 */
function auditPlan(
  p: Omit<AuditLogBenchPlan, 'levels'> & { readonly entriesAtOneCaller: number },
): AuditLogBenchPlan {
  const { entriesAtOneCaller, ...rest } = p;
  return {
    ...rest,
    levels: AUDIT_LEVEL_CALLERS.map((callers, i) => ({
      callers,
      entriesPerRound: entriesAtOneCaller * 10 ** i,
    })),
  };
}

/** The full run (about 2–4 minutes on 2 cores) and the quick one (well under a minute). */
export const AUDIT_PLANS: { readonly full: AuditLogBenchPlan; readonly quick: AuditLogBenchPlan } =
  {
    full: auditPlan({
      rounds: 5,
      entriesAtOneCaller: 1_000,
      verifyEntries: 1_000_000,
      verifyRuns: 3,
      startupRuns: 3,
      readFloorRuns: 2,
      floor: { commits: 100, rawCommits: 40, hashes: 50_000, signatures: 300 },
    }),
    quick: auditPlan({
      rounds: 3,
      entriesAtOneCaller: 200,
      verifyEntries: 100_000,
      verifyRuns: 2,
      startupRuns: 2,
      readFloorRuns: 1,
      floor: { commits: 50, rawCommits: 15, hashes: 20_000, signatures: 100 },
    }),
  };

/** Goals from issue 8. */
export const AUDIT_GOALS = { appendsPerSecond: 20_000, verifyMillionSeconds: 10 } as const;

/** How the bench is run. */
export interface AuditLogBenchOptions extends BenchContext {
  /** Where the log is kept (default SQLite); PostgreSQL runs on bench/bench-postgres.ts's server. */
  readonly dialect?: Dialect;
}

/** One append level's figures. */
export interface AppendLevelResult {
  readonly callers: number;
  readonly entriesPerRound: number;
  /** Appends per second, one sample per round. */
  readonly appendsPerSecond: Summary;
  /** Entries (facts and checkpoint records) per commit, one sample per round. */
  readonly entriesPerCommit: Summary;
  /** The bench process's CPU time per append, µs, one sample per round. */
  readonly cpuMicrosPerAppend: Summary;
  /** Floor: raw group commits of `callers` rows each, rows per second. */
  readonly rawRowsPerSecond: Summary;
  /** Median appends/s ÷ median raw rows/s at the same rows per commit. */
  readonly ratioToRaw: number | null;
}

/** The audit bench's result: one JSON-able object. */
export interface AuditLogBenchResult extends BenchRun {
  readonly dialect: Dialect;
  readonly rounds: number;
  /** The checkpoint policy in force (production's defaults) and what it signed. */
  readonly checkpoints: {
    readonly every: number;
    readonly intervalMs: number;
    /** Checkpoints signed over the whole run (append rounds and fill). */
    readonly signed: number;
  };
  /** Mean size of a stored entry's `data` JSON text, bytes. */
  readonly meanDataBytes: number;
  readonly appends: readonly AppendLevelResult[];
  readonly goalAppendsPerSecond: number;
  /** The goal is read at the highest caller count. */
  readonly meetsAppendGoal: boolean | null;
  readonly verify: {
    /** Entries in the verified log (facts and checkpoint records), as the verdict counts them. */
    readonly entries: number;
    readonly checkpoints: number;
    /** Every run said intact (exit 0, `ok`, no unsigned tail). */
    readonly allIntact: boolean;
    readonly failures: readonly string[];
    /** `threshold audit verify` wall time, s. */
    readonly cliSeconds: Summary;
    /** The same command on an empty log (start-up), s. */
    readonly startupSeconds: Summary;
    /** The child's CPU time (user + system), s. */
    readonly cliCpuSeconds: Summary;
    /** The child's peak resident set, MB (10^6 bytes). */
    readonly peakRssMb: Summary;
    /** The empty log's peak resident set, MB: what loading the command costs. */
    readonly startupPeakRssMb: Summary;
    /** (median wall − median start-up) scaled to 1,000,000 entries, s. */
    readonly secondsPerMillionExcludingStartup: number | null;
    /**
     * The goal's measure for 1,000,000 entries, s: median start-up + the rest of the median
     * wall time scaled to 1,000,000 entries (equal to the median wall time in a full run).
     */
    readonly secondsPerMillion: number | null;
    readonly goalSecondsPerMillion: number;
    readonly meetsGoal: boolean | null;
  };
  readonly floor: {
    /** One durable commit (bench/commit-floor.ts), ms. */
    readonly durableCommitMs: Summary;
    /** SHA-256 (`sha256Hex`) of an entry's hash input, hashes per second. */
    readonly sha256PerSecond: Summary;
    readonly sha256InputBytes: number;
    readonly ed25519SignPerSecond: Summary;
    readonly ed25519VerifyPerSecond: Summary;
    /** Reading every row of the verified log once through better-sqlite3, s. */
    readonly readAllSeconds: Summary;
    /** read + hashing every entry at the SHA-256 floor + checking every signature, s. */
    readonly verifyFloorSeconds: number | null;
  };
  readonly ratios: {
    /** Verification wall time excluding start-up ÷ the verify floor. */
    readonly verifyToFloor: number | null;
    /** Highest-caller appends/s ÷ one-row durable commits/s. */
    readonly appendsToCommitRate: number | null;
  };
}

/** A fact about the size of the log's common entries, cycling through three real shapes. */
function benchFact(i: number): AuditFact {
  const id = `3f1c2b9e-5d4a-4c1e-9f8b-${i.toString(16).padStart(12, '0')}`;
  switch (i % 3) {
    case 0:
      return {
        kind: 'access.refused',
        actor: { type: 'principal', id: 'courier-ana' },
        subject: `delivery:${id}`,
        data: { code: 'presence.off-site', message: 'You are not at the delivery address.' },
      };
    case 1:
      return {
        kind: 'session.state',
        actor: { type: 'system', id: 'orchestrator' },
        subject: `session:${id}`,
        data: { from: 'unlocking', to: 'open', reason: 'lock reported unlocked' },
      };
    default:
      return {
        kind: 'command.sent',
        actor: { type: 'system', id: 'orchestrator' },
        subject: `session:${id}`,
        data: { device: 'lock-front', action: 'unlock', commandId: id, relockAfterMs: 120_000 },
        deviceMac: 'q3J0bV9ZZmZ3N0h6cE1fYkJkS2x1T0pZc0xSUzBqNWc',
      };
  }
}

/** An `AuditRepository` that counts its transactions and the entries they carry. */
class CountingAuditRepository extends AuditRepository {
  commits = 0;
  entries = 0;

  override async appendChained(
    chain: AuditChainer,
    alongside?: readonly AlongsideWrite[],
  ): Promise<AuditAppend> {
    const written = await super.appendChained(chain, alongside);
    this.commits += 1;
    this.entries += written.entries.length;
    return written;
  }
}

function nextTask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Raw group commits through better-sqlite3, in a table of the audit table's shape. */
class RawGroupCommit {
  private readonly insert: Database.Statement<unknown[]>;
  private readonly batch: (rows: readonly unknown[][]) => void;
  private seq = 0;

  constructor(
    private readonly db: Database.Database,
    private readonly rows: readonly (readonly unknown[])[],
  ) {
    db.exec(`create table if not exists bench_raw_entries (
      seq integer primary key, at bigint not null, kind text not null, actor_type text not null,
      actor_id text not null, subject text not null, data text not null, device_mac text,
      prev_hash text not null, hash text not null)`);
    db.exec(
      'create index if not exists bench_raw_entries_subject_idx on bench_raw_entries (subject, seq)',
    );
    this.insert = db.prepare('insert into bench_raw_entries values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.batch = db.transaction((batch: readonly unknown[][]) => {
      for (const r of batch) this.insert.run(...r);
    });
  }

  /** Opens a second connection to `path` with the store's settings. */
  static open(path: string, rows: readonly (readonly unknown[])[]): RawGroupCommit {
    const db = new Database(path);
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    return new RawGroupCommit(db, rows);
  }

  /** `commits` transactions of `size` rows each; rows per second. */
  rowsPerSecond(size: number, commits: number): number {
    const make = (): unknown[][] =>
      Array.from({ length: size }, (_, i) => {
        const r = this.rows[i % this.rows.length]!;
        return [++this.seq, ...r];
      });
    const batches = Array.from({ length: commits }, make);
    const t0 = performance.now();
    for (const b of batches) this.batch(b);
    return (size * commits) / ((performance.now() - t0) / 1000);
  }

  close(): void {
    this.db.close();
  }
}

/** Prebuilt rows (without seq) of real chained entries, for the raw floor. */
function sampleRows(n: number): { rows: unknown[][]; inputs: string[] } {
  const rows: unknown[][] = [];
  const inputs: string[] = [];
  let prev: AuditEntry | null = null;
  for (let i = 0; i < n; i++) {
    const e: AuditEntry = chainEntry(sha256Hex, prev, benchFact(i), Date.now());
    prev = e;
    inputs.push(entryHashInput(e));
    rows.push([
      e.at,
      e.kind,
      e.actor.type,
      e.actor.id,
      e.subject,
      JSON.stringify(e.data),
      e.deviceMac ?? null,
      e.prevHash,
      e.hash,
    ]);
  }
  return { rows, inputs };
}

/** The floors measured before each round. */
class AuditFloors {
  readonly commits: number[] = [];
  readonly raw = new Map<number, number[]>();
  readonly hashes: number[] = [];
  readonly signs: number[] = [];
  readonly verifies: number[] = [];

  constructor(
    private readonly plan: AuditLogBenchPlan,
    private readonly commit: {
      commits(n: number): number[] | Promise<number[]>;
    },
    private readonly rawCommit: {
      rowsPerSecond(size: number, commits: number): number | Promise<number>;
    },
    private readonly inputs: readonly string[],
    private readonly signer: { sign(m: string): string; readonly publicKey: string },
  ) {}

  /** One sample of each floor; kept unless `keep` is false (warm-up). */
  async batch(keep = true): Promise<void> {
    const f = this.plan.floor;
    const commits = await this.commit.commits(f.commits);
    const raw: number[] = [];
    for (const { callers } of this.plan.levels) {
      // Fewer transactions for big batches keep each sample about as long as the others.
      raw.push(await this.rawCommit.rowsPerSecond(callers, callers >= 64 ? 4 : f.rawCommits));
    }
    let t0 = performance.now();
    let sink = 0;
    for (let i = 0; i < f.hashes; i++) {
      sink += sha256Hex(this.inputs[i % this.inputs.length]!).length;
    }
    const hashes = f.hashes / ((performance.now() - t0) / 1000);
    const messages = Array.from({ length: f.signatures }, (_, i) =>
      checkpointMessage(i + 1, sha256Hex(String(i)), Date.now()),
    );
    t0 = performance.now();
    const signatures = messages.map((m) => this.signer.sign(m));
    const signs = f.signatures / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    for (let i = 0; i < messages.length; i++) {
      if (!verifyEd25519(messages[i]!, signatures[i]!, this.signer.publicKey)) sink = -1;
    }
    const verifies = f.signatures / ((performance.now() - t0) / 1000);
    if (sink < 0) throw new Error('an Ed25519 signature of the floor did not verify');
    if (!keep) return;
    this.commits.push(...commits);
    this.plan.levels.forEach(({ callers }, i) => {
      this.raw.set(callers, [...(this.raw.get(callers) ?? []), raw[i]!]);
    });
    this.hashes.push(hashes);
    this.signs.push(signs);
    this.verifies.push(verifies);
  }
}

/** One round of appends at `callers` concurrent callers; appends per second and more. */
async function appendRound(
  log: AuditLog,
  repo: CountingAuditRepository,
  callers: number,
  entries: number,
  firstFact: number,
): Promise<{ perSecond: number; perCommit: number; cpuMicrosPerAppend: number }> {
  const commits0 = repo.commits;
  const entries0 = repo.entries;
  let issued = 0;
  const caller = async (): Promise<void> => {
    while (issued < entries) {
      const i = firstFact + issued++;
      await nextTask();
      await log.append(benchFact(i));
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: callers }, caller));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const commits = repo.commits - commits0;
  return {
    perSecond: entries / seconds,
    perCommit: commits === 0 ? 0 : (repo.entries - entries0) / commits,
    cpuMicrosPerAppend: (cpu.user + cpu.system) / entries,
  };
}

/** Source of the module given to the CLI's `--import`: it reports resource use on exit. */
const EXIT_REPORT_MARK = 'bench-resource-usage ';
const EXIT_REPORT_URL = `data:text/javascript,${encodeURIComponent(
  `import { writeSync } from 'node:fs';
process.on('exit', () => {
  const u = process.resourceUsage();
  writeSync(2, '\\n${EXIT_REPORT_MARK}' + JSON.stringify({ maxRssKb: u.maxRSS, cpuUs: u.userCPUTime + u.systemCPUTime }) + '\\n');
});`,
)}`;

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

interface CliRun {
  readonly code: number | null;
  readonly seconds: number;
  readonly maxRssKb: number | null;
  readonly cpuSeconds: number | null;
  readonly verdict: AuditVerification | null;
  readonly stderr: string;
}

/** Where a verified log is: a data directory, and for PostgreSQL its database. */
type LogLocation =
  | { readonly dialect: 'sqlite'; readonly dataDir: string }
  | { readonly dialect: 'postgres'; readonly dataDir: string; readonly url: string };

/**
 * `node bin/threshold.js audit verify --data DIR --json`, timed from spawn to exit; for
 * PostgreSQL with the database in `THRESHOLD_DATABASE_URL`, as an operator keeps it (not on the
 * command line, where every user of the machine sees it).
 */
function runVerifyCli(where: LogLocation): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [
        '--import',
        EXIT_REPORT_URL,
        'bin/threshold.js',
        'audit',
        'verify',
        '--data',
        where.dataDir,
        '--json',
      ],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          THRESHOLD_DATABASE_URL: where.dialect === 'postgres' ? where.url : '',
        },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const line = stderr.split('\n').find((l) => l.startsWith(EXIT_REPORT_MARK));
      const usage = line
        ? (JSON.parse(line.slice(EXIT_REPORT_MARK.length)) as { maxRssKb: number; cpuUs: number })
        : null;
      let verdict: AuditVerification | null = null;
      try {
        verdict = JSON.parse(stdout) as AuditVerification;
      } catch {
        verdict = null;
      }
      resolvePromise({
        code,
        seconds,
        maxRssKb: usage?.maxRssKb ?? null,
        cpuSeconds: usage === null ? null : usage.cpuUs / 1e6,
        verdict,
        stderr: stderr.replace(line ?? '', '').trim(),
      });
    });
  });
}

/** Reads every row of the log once, through better-sqlite3 with row objects; seconds. */
function readAllRows(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    const t0 = performance.now();
    let n = 0;
    for (const row of db.prepare('select * from audit_entries order by seq').iterate()) {
      if (row !== undefined) n++;
    }
    if (n === 0) throw new Error('the log to read is empty');
    return (performance.now() - t0) / 1000;
  } finally {
    db.close();
  }
}

/** An empty, signed log with its keys, for the start-up floor. */
async function emptyLog(dir: string, options: StoreOptions): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const store = await openStore(options);
  try {
    const keys = loadOrCreateKeys(dir);
    const log = await AuditLog.open(store.audit, systemClock, keys.auditSigner, sha256Hex);
    await log.close();
  } finally {
    await store.close();
  }
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

/** Runs the audit bench once. */
export async function runAuditLogBench(opts: AuditLogBenchOptions): Promise<AuditLogBenchResult> {
  const plan = opts.quick ? AUDIT_PLANS.quick : AUDIT_PLANS.full;
  const dialect = opts.dialect ?? 'sqlite';
  const stop = opts.stopRequested ?? (() => false);
  const loadStart = loadNow();
  const dir = mkdtempSync(join(opts.dataParent, 'threshold-bench-audit-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const dbPath = join(dataDir, 'threshold.db');
  let store: Store | undefined;
  let log: AuditLog | undefined;
  const closers: (() => unknown)[] = [];
  try {
    const database = dialect === 'postgres' ? await benchDatabase('audit') : null;
    if (database) closers.push(() => database.drop());
    const emptyDatabase = dialect === 'postgres' ? await benchDatabase('audit_empty') : null;
    if (emptyDatabase) closers.push(() => emptyDatabase.drop());
    const storeOptions: StoreOptions = database
      ? { dialect: 'postgres', url: database.url }
      : { dialect: 'sqlite', path: dbPath };
    store = await openStore(storeOptions);
    const keys = loadOrCreateKeys(dataDir);
    const repo = new CountingAuditRepository(store.db);
    log = await AuditLog.open(repo, systemClock, keys.auditSigner, sha256Hex);
    const samples = sampleRows(512);
    const commit = database ? await PgCommitFloor.open(database.url) : CommitFloor.open(dir);
    closers.push(() => commit.close());
    const raw = database
      ? await PgRawGroupCommit.open(database.url, samples.rows)
      : RawGroupCommit.open(dbPath, samples.rows);
    closers.push(() => raw.close());
    const floors = new AuditFloors(plan, commit, raw, samples.inputs, keys.auditSigner);

    // Warm-up (not counted): JIT, statement caches, the floors' files.
    await floors.batch(false);
    let facts = 0;
    await appendRound(log, repo, 64, 2_000, facts);
    facts += 2_000;

    const perLevel = new Map<number, { perSecond: number[]; perCommit: number[]; cpu: number[] }>();
    for (let r = 0; r < plan.rounds && !stop(); r++) {
      await floors.batch();
      for (const { callers, entriesPerRound } of plan.levels) {
        const s = await appendRound(log, repo, callers, entriesPerRound, facts);
        facts += entriesPerRound;
        const l = perLevel.get(callers) ?? { perSecond: [], perCommit: [], cpu: [] };
        l.perSecond.push(s.perSecond);
        l.perCommit.push(s.perCommit);
        l.cpu.push(s.cpuMicrosPerAppend);
        perLevel.set(callers, l);
        opts.progress(
          `audit round ${r + 1}/${plan.rounds}, ${callers} callers: ${Math.round(s.perSecond)} appends/s, ${s.perCommit.toFixed(1)} entries per commit`,
        );
      }
    }

    // Fill the log to the size that is verified, as fast as 256 callers go.
    if (!stop() && facts < plan.verifyEntries) {
      opts.progress(`filling the log to ${plan.verifyEntries} facts`);
      while (facts < plan.verifyEntries && !stop()) {
        const n = Math.min(50_000, plan.verifyEntries - facts);
        await appendRound(log, repo, 256, n, facts);
        facts += n;
      }
    }
    await log.close();
    log = undefined;
    const signed = (await store.audit.listCheckpoints()).length;
    const meanDataBytes = await meanDataLength(store, dialect);
    await store.close();
    store = undefined;

    const emptyDir = join(dir, 'empty');
    await emptyLog(
      emptyDir,
      emptyDatabase
        ? { dialect: 'postgres', url: emptyDatabase.url }
        : { dialect: 'sqlite', path: join(emptyDir, 'threshold.db') },
    );
    const full: LogLocation = database
      ? { dialect: 'postgres', dataDir, url: database.url }
      : { dialect: 'sqlite', dataDir };
    const empty: LogLocation = emptyDatabase
      ? { dialect: 'postgres', dataDir: emptyDir, url: emptyDatabase.url }
      : { dialect: 'sqlite', dataDir: emptyDir };
    const runs: CliRun[] = [];
    const startups: CliRun[] = [];
    const reads: number[] = [];
    const failures: string[] = [];
    for (let i = 0; i < Math.max(plan.verifyRuns, plan.startupRuns) && !stop(); i++) {
      if (i < plan.startupRuns) startups.push(await runVerifyCli(empty));
      if (i < plan.readFloorRuns)
        reads.push(database ? await readAllRowsPostgres(database.url) : readAllRows(dbPath));
      if (i < plan.verifyRuns) {
        const run = await runVerifyCli(full);
        runs.push(run);
        const v = run.verdict;
        if (run.code !== 0 || v === null || !v.ok || v.unsignedTail !== 0) {
          failures.push(
            `run ${i + 1}: exit ${run.code}, ${v === null ? 'no verdict' : `ok ${v.ok}, unsigned tail ${v.unsignedTail}, ${v.firstBreak?.message ?? 'no break'}`} ${run.stderr.slice(-300)}`,
          );
        }
        opts.progress(
          `audit verify ${i + 1}/${plan.verifyRuns}: ${run.seconds.toFixed(2)} s, peak RSS ${run.maxRssKb === null ? '?' : Math.round(run.maxRssKb / 1000)} MB, ${v?.entries ?? '?'} entries`,
        );
      }
    }

    const levels: AppendLevelResult[] = plan.levels.map(({ callers, entriesPerRound }) => {
      const l = perLevel.get(callers) ?? { perSecond: [], perCommit: [], cpu: [] };
      const perSecond = summarize(l.perSecond, 0);
      const rawRows = summarize(floors.raw.get(callers) ?? [], 0);
      return {
        callers,
        entriesPerRound,
        appendsPerSecond: perSecond,
        entriesPerCommit: summarize(l.perCommit, 1),
        cpuMicrosPerAppend: summarize(l.cpu, 1),
        rawRowsPerSecond: rawRows,
        ratioToRaw: ratio(perSecond.median, rawRows.median),
      };
    });
    const top = levels.at(-1);
    const verdict = runs.find((r) => r.verdict !== null)?.verdict ?? null;
    const entries = verdict?.entries ?? 0;
    const cli = summarize(
      runs.map((r) => r.seconds),
      2,
    );
    const startup = summarize(
      startups.map((r) => r.seconds),
      2,
    );
    const readAll = summarize(reads, 2);
    const hashRate = summarize(floors.hashes, 0);
    const verifyRate = summarize(floors.verifies, 0);
    const commitMs = summarize(floors.commits, 3);
    const perMillion = (s: number | null): number | null =>
      s === null || entries === 0 ? null : round2((s * 1_000_000) / entries);
    const excluding =
      cli.median === null || startup.median === null ? null : cli.median - startup.median;
    const verifyFloor =
      readAll.median === null || hashRate.median === null || verifyRate.median === null
        ? null
        : round2(
            readAll.median +
              entries / hashRate.median +
              (2 * (verdict?.checkpoints ?? 0)) / verifyRate.median,
          );
    const scaledRest = perMillion(excluding);
    const secondsPerMillion =
      scaledRest === null || startup.median === null ? null : round2(startup.median + scaledRest);
    return {
      date: new Date().toISOString(),
      quick: opts.quick,
      machine: machineOf(loadStart, opts.dataParent),
      dialect,
      rounds: plan.rounds,
      checkpoints: { every: 1_000, intervalMs: 1_000, signed },
      meanDataBytes: round1(meanDataBytes),
      appends: levels,
      goalAppendsPerSecond: AUDIT_GOALS.appendsPerSecond,
      meetsAppendGoal:
        top?.appendsPerSecond.median == null
          ? null
          : top.appendsPerSecond.median >= AUDIT_GOALS.appendsPerSecond,
      verify: {
        entries,
        checkpoints: verdict?.checkpoints ?? 0,
        allIntact: runs.length > 0 && failures.length === 0,
        failures,
        cliSeconds: cli,
        startupSeconds: startup,
        cliCpuSeconds: summarize(
          runs.flatMap((r) => (r.cpuSeconds === null ? [] : [r.cpuSeconds])),
          2,
        ),
        peakRssMb: summarize(
          runs.flatMap((r) => (r.maxRssKb === null ? [] : [r.maxRssKb / 1000])),
          0,
        ),
        startupPeakRssMb: summarize(
          startups.flatMap((r) => (r.maxRssKb === null ? [] : [r.maxRssKb / 1000])),
          0,
        ),
        secondsPerMillionExcludingStartup: perMillion(excluding),
        secondsPerMillion,
        goalSecondsPerMillion: AUDIT_GOALS.verifyMillionSeconds,
        meetsGoal:
          secondsPerMillion === null || failures.length > 0
            ? null
            : secondsPerMillion <= AUDIT_GOALS.verifyMillionSeconds,
      },
      floor: {
        durableCommitMs: commitMs,
        sha256PerSecond: hashRate,
        sha256InputBytes: Math.round(
          samples.inputs.reduce((a, s) => a + Buffer.byteLength(s), 0) / samples.inputs.length,
        ),
        ed25519SignPerSecond: summarize(floors.signs, 0),
        ed25519VerifyPerSecond: verifyRate,
        readAllSeconds: readAll,
        verifyFloorSeconds: verifyFloor,
      },
      ratios: {
        verifyToFloor: ratio(excluding, verifyFloor),
        appendsToCommitRate:
          commitMs.median === null
            ? null
            : ratio(top?.appendsPerSecond.median ?? null, 1000 / commitMs.median),
      },
    };
  } finally {
    await log?.close().catch(() => undefined);
    await store?.close().catch(() => undefined);
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function meanDataLength(store: Store, dialect: Dialect): Promise<number> {
  const { rows } = await (
    dialect === 'postgres'
      ? sql<{ n: number }>`select avg(octet_length(data)) as n from audit_entries`
      : sql<{ n: number }>`select avg(length(data)) as n from audit_entries`
  ).execute(store.db);
  return Number(rows[0]?.n ?? 0);
}

/** The result as a plain-text table. */
export function renderAuditLogTable(r: AuditLogBenchResult): string {
  const v = r.verify;
  const f = r.floor;
  const goal = goalText;
  const row = rangeRow;
  return [
    `Audit log (${r.dialect}) — ${r.date}${r.quick ? ' (quick)' : ''}; ${r.rounds} rounds; checkpoints every ${r.checkpoints.every} entries or ${r.checkpoints.intervalMs} ms (${r.checkpoints.signed} signed); data ${r.meanDataBytes} B/entry`,
    RANGE_HEAD,
    ...r.appends.flatMap((a) => [
      row(
        `  appends, ${a.callers} caller${a.callers === 1 ? '' : 's'}`,
        a.appendsPerSecond,
        0,
        '/s',
      ),
      row('    entries per commit', a.entriesPerCommit, 1, ''),
      row('    bench CPU per append', a.cpuMicrosPerAppend, 1, 'µs'),
      row(
        `    floor: raw commits of ${a.callers} row${a.callers === 1 ? '' : 's'}`,
        a.rawRowsPerSecond,
        0,
        'rows/s',
      ),
      `    appends ÷ raw rows: ${fmt(a.ratioToRaw, 2)}`,
    ]),
    `  goal ≥ ${r.goalAppendsPerSecond}/s at ${r.appends.at(-1)?.callers ?? '?'} callers: ${goal(r.meetsAppendGoal)}`,
    row(`  threshold audit verify, ${v.entries} entries`, v.cliSeconds, 2, 's'),
    row('    start-up (empty log)', v.startupSeconds, 2, 's'),
    row('    CPU time', v.cliCpuSeconds, 2, 's'),
    row('    peak RSS', v.peakRssMb, 0, 'MB'),
    row('    peak RSS, empty log', v.startupPeakRssMb, 0, 'MB'),
    `    per 1,000,000 entries: ${fmt(v.secondsPerMillion, 2)} s (${fmt(v.secondsPerMillionExcludingStartup, 2)} s without start-up); goal ≤ ${v.goalSecondsPerMillion} s: ${goal(v.meetsGoal)}; intact: ${v.allIntact}`,
    ...v.failures.map((l) => `    failed: ${l}`),
    'Floors',
    row('  durable commit, one row', f.durableCommitMs, 3, 'ms'),
    row(`  SHA-256 of ${f.sha256InputBytes} B`, f.sha256PerSecond, 0, '/s'),
    row('  Ed25519 sign', f.ed25519SignPerSecond, 0, '/s'),
    row('  Ed25519 verify', f.ed25519VerifyPerSecond, 0, '/s'),
    row('  read every row once', f.readAllSeconds, 2, 's'),
    `  verify floor (read + hash + signatures): ${fmt(f.verifyFloorSeconds, 2)} s; verify ÷ floor ${fmt(r.ratios.verifyToFloor, 2)}`,
    `  appends at ${r.appends.at(-1)?.callers ?? '?'} callers ÷ one-row commits per second: ${fmt(r.ratios.appendsToCommitRate, 1)}`,
    '',
  ].join('\n');
}

const USAGE = `usage: node bin/run-ts.js bench/audit-log.ts [--quick] [--json] [--data-dir DIR] [--dialect sqlite|postgres|both]
  --quick         3 rounds, a log of 100,000 entries verified (under a minute)
  --json          print one JSON object instead of the table
  --data-dir DIR  put the log (and the floors' files) under DIR instead of the temporary directory
  --dialect D     sqlite (default), postgres (a throwaway cluster, or THRESHOLD_BENCH_POSTGRES_URL), or both
`;

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await benchMain(USAGE, { dialect: { type: 'string' } }, async (args, ctx) => {
    const dialects = parseDialects(args.dialect, ['sqlite']);
    if (typeof dialects === 'string') return dialects;
    const results: AuditLogBenchResult[] = [];
    try {
      for (const dialect of dialects) {
        if (ctx.stopRequested?.()) break;
        results.push(await runAuditLogBench({ ...ctx, dialect }));
      }
    } finally {
      await stopBenchPostgres();
    }
    return {
      json: results.length === 1 ? results[0]! : { auditLog: results },
      table: results.map(renderAuditLogTable).join('\n'),
    };
  });
}

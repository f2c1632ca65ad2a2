/**
 * Threshold's benchmarks (see docs/benchmarks.md):
 *
 * 1. detection latency under camera jamming (deauth-detection.ts),
 * 2. the unlock path's server time (unlock-path.ts),
 * 3. their floors: raw MQTT round trips on the same broker (mqtt-floor.ts) and durable SQLite
 *    commits on the same file system (commit-floor.ts), measured in small batches between the
 *    runs of 1 and 2, so they see the same machine at the same moments;
 * 4. the audit log's appends per second and `threshold audit verify` over a large log
 *    (audit-log.ts), with their floors (durable and raw group commits, SHA-256, Ed25519);
 * 5. requests per second of the courier's access route against a bare Fastify route of the
 *    same shape (api-throughput.ts);
 * 6. sessions watched per node: concurrent sessions with heartbeats at 2 Hz, raised in steps,
 *    beside mosquitto's raw QoS 1 rate (sessions-per-node.ts).
 *
 * 1–3 run in one ScenarioWorld (control plane, embedded broker and simulated home in this
 * process, loopback only), 4–6 after it, one after the other, each on data of its own; all of
 * them on SQLite, then on PostgreSQL (`--dialect`). Progress goes to stderr; stdout gets the tables,
 * or with --json one JSON object.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SCENARIO_TIMING, ScenarioWorld } from '../src/harness/scenario-world.ts';
import { renderApiTable, runApiBench, type ApiBenchResult } from './api-throughput.ts';
import { renderAuditLogTable, runAuditLogBench, type AuditLogBenchResult } from './audit-log.ts';
import {
  benchMain,
  DIALECTS,
  errorText,
  loadNow,
  machineOf,
  parseDialects,
  progress,
  renderTable,
  type BenchContext,
  type BenchResult,
  type Dialect,
} from './bench-report.ts';
import { benchDatabase, stopBenchPostgres } from './bench-postgres.ts';
import {
  renderSessionsTable,
  runSessionsBench,
  type SessionsBenchResult,
} from './sessions-per-node.ts';
import { runDeauthOnce, type DeauthSample } from './deauth-detection.ts';
import { Floors } from './floors.ts';
import { RunAnomaly } from './run-anomaly.ts';
import { ratio, summarize } from './sample-stats.ts';
import { TraceRecorder } from './trace-recorder.ts';
import { runUnlockOnce, type UnlockSample } from './unlock-path.ts';

/** The simulated camera's default heartbeat interval, which the scenario world keeps. */
const HEARTBEAT_INTERVAL_MS = 500;
const DETECTION_GOAL_P99_MS = 1_500;
const SERVER_SHARE_GOAL_P99_MS = 5;
const UNLOCK_WARMUP_RUNS = 3;
const FLOOR_WARMUP = 50;
/** A benchmark stops after this many failed runs in a row: the world is likely broken. */
const MAX_FAILURES_IN_A_ROW = 3;

const USAGE = `usage: npm run bench [-- --quick] [-- --json] [-- --data-dir DIR] [-- --only LIST] [-- --dialect D]
  --quick         fewer runs (deauth 5, unlock 20, floor samples 100 each; audit log 3 rounds
                  and 100,000 entries verified; API 2 rounds of 3 s; sessions 100 and 200)
  --json          print one JSON object instead of the tables
  --data-dir DIR  put every bench's database (and the commit floors) under DIR
                  instead of the system's temporary directory
  --only LIST     run only these, comma-separated: world (detection, unlock path and their
                  floors), audit, api, sessions; default all
  --dialect D     where every bench's server keeps its data: sqlite, postgres (a
                  throwaway cluster, or THRESHOLD_BENCH_POSTGRES_URL) or both (default)
`;

/** The benches `--only` can name. */
const PARTS = ['world', 'audit', 'api', 'sessions'] as const;
type Part = (typeof PARTS)[number];

/** Set by {@link benchMain}'s arguments before anything runs. */
const args = { quick: false, 'data-dir': undefined as string | undefined };

/** What `--only` selects; a name that is not a bench is a usage error. */
function selectedParts(only: string | undefined): readonly Part[] | string {
  if (only === undefined) return PARTS;
  const names = only.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !(PARTS as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    return `--only takes ${PARTS.join(', ')}; not ${unknown.join(', ') || 'nothing'}`;
  }
  return PARTS.filter((p) => names.includes(p));
}

const countsOf = (quick: boolean): { deauth: number; unlock: number; floor: number } =>
  quick ? { deauth: 5, unlock: 20, floor: 100 } : { deauth: 30, unlock: 200, floor: 1_000 };
let counts = countsOf(false);

let stopRequested = (): boolean => false;

/** After a failed run: wait until no session is running, so the next run starts clean. */
async function settle(world: ScenarioWorld): Promise<void> {
  await world.waitFor(
    () => world.sys.orchestrator.stats().liveSessions === 0 && !world.home.camera.isRecording(),
    30_000,
    'no session is running',
  );
}

/**
 * Runs `once` `n` times with a floor batch before each run; a failed run (or a
 * {@link RunAnomaly}) is recorded and the world settled. Stops early on SIGINT or after {@link MAX_FAILURES_IN_A_ROW} failures.
 */
async function repeat<T>(
  name: string,
  n: number,
  world: ScenarioWorld,
  floors: Floors,
  once: () => Promise<T>,
  report: (i: number, sample: T) => void,
): Promise<{ samples: T[]; failures: string[]; anomalies: string[] }> {
  const samples: T[] = [];
  const failures: string[] = [];
  const anomalies: string[] = [];
  let inARow = 0;
  for (let i = 0; i < n && !stopRequested() && inARow < MAX_FAILURES_IN_A_ROW; i++) {
    await floors.batch();
    try {
      const s = await once();
      samples.push(s);
      inARow = 0;
      report(i, s);
    } catch (err) {
      inARow += 1;
      const anomaly = err instanceof RunAnomaly;
      (anomaly ? anomalies : failures).push(`run ${i + 1}: ${errorText(err)}`);
      progress(`${name} run ${i + 1} ${anomaly ? 'anomaly' : 'failed'}: ${errorText(err)}`);
      await settle(world);
    }
  }
  return { samples, failures, anomalies };
}

/**
 * The detection, unlock-path and floor benches, in one world whose server keeps its data on
 * `dialect` (PostgreSQL: a database of its own on the bench's cluster, dropped after).
 */
async function runWorld(dataParent: string, dialect: Dialect): Promise<BenchResult> {
  const loadStart = loadNow();
  const recorder = new TraceRecorder();
  progress(
    `runs: deauth ${counts.deauth}, unlock ${counts.unlock}; floor samples ${counts.floor} each`,
  );
  const dataDir = mkdtempSync(join(dataParent, 'threshold-bench-'));
  let world: ScenarioWorld | undefined;
  let floors: Floors | undefined;
  const db = dialect === 'postgres' ? await benchDatabase('world') : null;
  try {
    world = await ScenarioWorld.create({
      dataDir,
      trace: recorder.trace,
      database: db === null ? { dialect: 'sqlite' } : { dialect: 'postgres', url: db.url },
    });
    const w = world;
    recorder.attach(w.sys.gateway);
    const perBatch = Math.ceil(counts.floor / (counts.deauth + counts.unlock));
    floors = await Floors.start(w.sys, w.creds.homeId, dataParent, counts.floor, perBatch);
    const f = floors;

    // Warm-up (not counted): JIT, SQLite statement caches, HTTP keep-alive, MQTT sessions.
    await f.warmUp(FLOOR_WARMUP);
    for (let i = 0; i < UNLOCK_WARMUP_RUNS; i++) await runUnlockOnce(w, recorder);

    const unlock = await repeat<UnlockSample>(
      'unlock',
      counts.unlock,
      w,
      f,
      () => runUnlockOnce(w, recorder),
      (i, s) => {
        if (s.anomaly !== null) progress(`unlock run ${i + 1} anomaly: ${s.anomaly}`);
        if ((i + 1) % 20 === 0)
          progress(`unlock ${i + 1}/${counts.unlock} (share ${s.serverShareMs.toFixed(2)} ms)`);
      },
    );
    recorder.clear();
    const deauth = await repeat<DeauthSample>(
      'deauth',
      counts.deauth,
      w,
      f,
      async () => {
        const s = await runDeauthOnce(w);
        recorder.clear();
        return s;
      },
      (i, s) =>
        progress(
          `deauth ${i + 1}/${counts.deauth}: detection ${s.detectionMs} ms, relock ${s.relockMs} ms`,
        ),
    );
    while (!stopRequested() && !f.done()) await f.batch();

    const rtt = summarize(f.samples.rttNoDelay);
    const detection = summarize(
      deauth.samples.map((s) => s.detectionMs),
      1,
    );
    const share = summarize(unlock.samples.map((s) => s.serverShareMs));
    const silenceMs = SCENARIO_TIMING.watchdog.silenceMs;
    const u = unlock.samples;
    const d = deauth.samples;
    return {
      date: new Date().toISOString(),
      quick: args.quick,
      machine: machineOf(
        loadStart,
        args['data-dir'] === undefined ? 'os temporary directory' : dataParent,
      ),
      detection: {
        runs: counts.deauth,
        failures: deauth.failures,
        anomalies: deauth.anomalies,
        heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
        silenceMs,
        goalP99Ms: DETECTION_GOAL_P99_MS,
        detectionMs: detection,
        cutToAlarmMs: summarize(
          d.map((s) => s.cutToAlarmMs),
          1,
        ),
        relockMs: summarize(
          d.map((s) => s.relockMs),
          1,
        ),
        runMs: summarize(
          d.map((s) => s.runMs),
          0,
        ),
        // A failed run (e.g. no alarm within 5 s) counts against the goal.
        meetsGoal: meets(detection.p99, DETECTION_GOAL_P99_MS, deauth.failures.length),
      },
      unlock: {
        runs: counts.unlock,
        warmupRuns: UNLOCK_WARMUP_RUNS,
        failures: unlock.failures,
        anomalies: [
          ...unlock.anomalies,
          ...u.flatMap((x, i) => (x.anomaly === null ? [] : [`sample ${i + 1}: ${x.anomaly}`])),
        ],
        goalServerShareP99Ms: SERVER_SHARE_GOAL_P99_MS,
        serverShareMs: share,
        httpToArmMs: summarize(u.map((s) => s.httpToArmMs)),
        heartbeatToUnlockMs: summarize(u.map((s) => s.heartbeatToUnlockMs)),
        cameraMs: summarize(u.map((s) => s.cameraMs)),
        wholeMs: summarize(u.map((s) => s.wholeMs)),
        runMs: summarize(
          u.map((s) => s.runMs),
          0,
        ),
        meetsGoal: meets(share.p99, SERVER_SHARE_GOAL_P99_MS, unlock.failures.length),
      },
      floor: {
        mqttRoundTripMs: rtt,
        mqttRoundTripDefaultSocketsMs: summarize(f.samples.rttDefault),
        durableCommitMs: summarize(f.samples.commits),
        warmupSamples: FLOOR_WARMUP,
        gatewayDrops: w.sys.gateway.drops(),
      },
      ratios: {
        serverShareToRttMedian: ratio(share.median, rtt.median),
        serverShareToRttP99: ratio(share.p99, rtt.p99),
        detectionToHeartbeatMedian: ratio(detection.median, HEARTBEAT_INTERVAL_MS),
        detectionToHeartbeatP99: ratio(detection.p99, HEARTBEAT_INTERVAL_MS),
        detectionToSilenceMedian: ratio(detection.median, silenceMs),
        detectionToSilenceP99: ratio(detection.p99, silenceMs),
      },
    };
  } finally {
    await floors?.close();
    await world?.close();
    await db?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function meets(p99: number | null, goal: number, failures: number): boolean | null {
  if (p99 === null) return null;
  return failures === 0 && p99 <= goal;
}

/** The world's, audit, API and sessions benches' results on one dialect. */
interface DialectResults {
  world?: BenchResult;
  auditLog?: AuditLogBenchResult;
  api?: ApiBenchResult;
  sessions?: SessionsBenchResult;
}

/**
 * Everything selected, one after the other. The JSON object is the world's result (when run)
 * with `auditLog`, `api` and `sessions` on SQLite beside it, and the same on PostgreSQL under
 * `postgres`.
 */
async function main(
  ctx: BenchContext,
  parts: readonly Part[],
  dialects: readonly Dialect[],
): Promise<{ json: object; table: string }> {
  const byDialect = new Map<Dialect, DialectResults>();
  const tables: string[] = [];
  let floorMeasured = false;
  try {
    for (const dialect of dialects) {
      const r: DialectResults = {};
      byDialect.set(dialect, r);
      if (parts.includes('world') && !stopRequested()) {
        progress(`detection and unlock-path benches (${dialect})`);
        r.world = await runWorld(ctx.dataParent, dialect);
        tables.push(`${dialect === 'sqlite' ? 'SQLite' : 'PostgreSQL'}\n${renderTable(r.world)}`);
      }
      if (parts.includes('audit') && !stopRequested()) {
        progress(`audit log bench (${dialect})`);
        r.auditLog = await runAuditLogBench({ ...ctx, dialect });
        tables.push(renderAuditLogTable(r.auditLog));
      }
      if (parts.includes('api') && !stopRequested()) {
        progress(`API bench (${dialect})`);
        r.api = await runApiBench({ ...ctx, dialect });
        tables.push(renderApiTable(r.api));
      }
      if (parts.includes('sessions') && !stopRequested()) {
        progress(`sessions bench (${dialect})`);
        // mosquitto's rate does not depend on the store: measured once, in the first run.
        r.sessions = await runSessionsBench({ ...ctx, dialect, skipFloor: floorMeasured });
        floorMeasured ||= r.sessions.floor !== null;
        tables.push(renderSessionsTable(r.sessions));
      }
    }
  } finally {
    await stopBenchPostgres();
  }
  const { world, ...sqlite } = byDialect.get('sqlite') ?? {};
  const pg = byDialect.get('postgres');
  // On PostgreSQL the world's figures sit beside the others under `postgres`, as on SQLite
  // at the top.
  const postgres = pg === undefined ? undefined : { ...pg.world, ...pg, world: undefined };
  const first = sqlite.auditLog ?? sqlite.api ?? sqlite.sessions ?? pg?.world ?? pg?.auditLog;
  const json = {
    ...(world ?? {
      date: new Date().toISOString(),
      quick: ctx.quick,
      machine: (first ?? pg?.api ?? pg?.sessions)?.machine ?? null,
    }),
    ...sqlite,
    ...(postgres === undefined ? {} : { postgres }),
  };
  return { json, table: tables.join('\n') };
}

await benchMain(
  USAGE,
  { only: { type: 'string' }, dialect: { type: 'string' } },
  async (a, ctx) => {
    const parts = selectedParts(a.only);
    if (typeof parts === 'string') return parts;
    const dialects = parseDialects(a.dialect, DIALECTS);
    if (typeof dialects === 'string') return dialects;
    args.quick = ctx.quick;
    args['data-dir'] = a['data-dir'];
    counts = countsOf(ctx.quick);
    stopRequested = ctx.stopRequested ?? stopRequested;
    return main(ctx, parts, dialects);
  },
);

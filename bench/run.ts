/**
 * Threshold's benchmarks (see docs/benchmarks.md):
 *
 * 1. detection latency under camera jamming (deauth-detection.ts),
 * 2. the unlock path's server time (unlock-path.ts),
 * 3. their floors: raw MQTT round trips on the same broker (mqtt-floor.ts) and durable SQLite
 *    commits on the same file system (commit-floor.ts), measured in small batches between the
 *    runs of 1 and 2, so they see the same machine at the same moments.
 *
 * Everything runs in one ScenarioWorld (control plane, embedded broker and simulated home in
 * this process, loopback only). Progress goes to stderr; stdout gets the table, or with --json
 * one JSON object.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SCENARIO_TIMING, ScenarioWorld } from '../src/harness/scenario-world.ts';
import { renderTable, type BenchResult } from './bench-report.ts';
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

const USAGE = `usage: npm run bench [-- --quick] [-- --json] [-- --data-dir DIR]
  --quick         fewer runs (deauth 5, unlock 20, floor samples 100 each)
  --json          print one JSON object instead of the table
  --data-dir DIR  put the world's database (and the commit floor) under DIR
                  instead of the system's temporary directory
`;

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'data-dir': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

const counts = args.quick
  ? { deauth: 5, unlock: 20, floor: 100 }
  : { deauth: 30, unlock: 200, floor: 1_000 };

let stopRequested = false;

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

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
  for (let i = 0; i < n && !stopRequested && inARow < MAX_FAILURES_IN_A_ROW; i++) {
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

async function main(dataParent: string): Promise<BenchResult> {
  const loadStart = loadavg()[0] ?? 0;
  const recorder = new TraceRecorder();
  progress(
    `runs: deauth ${counts.deauth}, unlock ${counts.unlock}; floor samples ${counts.floor} each`,
  );
  const dataDir = mkdtempSync(join(dataParent, 'threshold-bench-'));
  let world: ScenarioWorld | undefined;
  let floors: Floors | undefined;
  try {
    world = await ScenarioWorld.create({ dataDir, trace: recorder.trace });
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
    while (!stopRequested && !f.done()) await f.batch();

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
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
        loadAvg1m: { start: round2(loadStart), end: round2(loadavg()[0] ?? 0) },
        dataDir: args['data-dir'] === undefined ? 'os temporary directory' : dataParent,
      },
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
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function meets(p99: number | null, goal: number, failures: number): boolean | null {
  if (p99 === null) return null;
  return failures === 0 && p99 <= goal;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

if (args.help) {
  process.stdout.write(USAGE);
} else {
  process.once('SIGINT', () => {
    stopRequested = true;
    progress('interrupted: finishing the current run, then reporting what was measured');
  });
  try {
    const result = await main(resolve(args['data-dir'] ?? tmpdir()));
    process.stdout.write(args.json ? `${JSON.stringify(result, null, 2)}\n` : renderTable(result));
  } catch (err) {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  }
  // Everything is closed by now; if a stray handle still keeps the process up, say so and leave.
  setTimeout(() => {
    progress('a handle was still open after closing everything; exiting');
    process.exit();
  }, 5_000).unref();
}

/**
 * What the benches share: the result's common head (date, machine), the same as a table for
 * people, the database dialects they run on, and the entry point of a bench run on its own
 * (arguments, `--help`, `--json`, Ctrl-C, exit codes).
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Summary } from './sample-stats.ts';

/** What every bench's result starts with: when, whether it was the short version, and on what machine. */
export interface BenchRun {
  readonly date: string;
  readonly quick: boolean;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly node: string;
    readonly platform: string;
    /** 1-minute load average at the start and at the end of the bench. */
    readonly loadAvg1m: { readonly start: number; readonly end: number };
    /** Where the world's database lived (its file system decides what an fsync costs). */
    readonly dataDir: string;
  };
}

/** The detection and unlock-path bench's result (bench/run.ts). */
export interface BenchResult extends BenchRun {
  readonly detection: {
    /** Runs planned; each summary's n counts the runs that succeeded. */
    readonly runs: number;
    /** Runs where the jam was applied but no alarm (or no relock) came in time. */
    readonly failures: readonly string[];
    /** Runs where the session was not open and quiet before the jam, so no jam was applied. */
    readonly anomalies: readonly string[];
    readonly heartbeatIntervalMs: number;
    readonly silenceMs: number;
    readonly goalP99Ms: number;
    readonly detectionMs: Summary;
    readonly cutToAlarmMs: Summary;
    readonly relockMs: Summary;
    readonly runMs: Summary;
    readonly meetsGoal: boolean | null;
  };
  readonly unlock: {
    /** Runs planned (after the warm-up runs); each summary's n counts those that succeeded. */
    readonly runs: number;
    readonly warmupRuns: number;
    readonly failures: readonly string[];
    /** Runs whose session went an abnormal way after the measured part (samples kept). */
    readonly anomalies: readonly string[];
    readonly goalServerShareP99Ms: number;
    readonly serverShareMs: Summary;
    readonly httpToArmMs: Summary;
    readonly heartbeatToUnlockMs: Summary;
    readonly cameraMs: Summary;
    readonly wholeMs: Summary;
    readonly runMs: Summary;
    readonly meetsGoal: boolean | null;
  };
  readonly floor: {
    /** Raw MQTT command → echo round trip, both client sockets with TCP_NODELAY. */
    readonly mqttRoundTripMs: Summary;
    /** The same with mqtt.js's default sockets (no TCP_NODELAY), as Threshold's clients use. */
    readonly mqttRoundTripDefaultSocketsMs: Summary;
    /** One durable SQLite commit (WAL, synchronous=FULL) on the data directory's file system. */
    readonly durableCommitMs: Summary;
    /** Uncounted samples of each floor before measuring. */
    readonly warmupSamples: number;
    /** The gateway's drop counters at the end; the echoes count as `schema` (see mqtt-floor.ts). */
    readonly gatewayDrops: Record<string, number>;
  };
  readonly ratios: {
    readonly serverShareToRttMedian: number | null;
    readonly serverShareToRttP99: number | null;
    readonly detectionToHeartbeatMedian: number | null;
    readonly detectionToHeartbeatP99: number | null;
    readonly detectionToSilenceMedian: number | null;
    readonly detectionToSilenceP99: number | null;
  };
}

function row(label: string, s: Summary, digits: number, unit = 'ms'): string {
  return [
    label.padEnd(44),
    String(s.n).padStart(5),
    fmt(s.median, digits).padStart(10),
    fmt(s.p99, digits).padStart(10),
    fmt(s.max, digits).padStart(10),
    `  ${unit}`,
  ].join('');
}

function listed(title: string, lines: readonly string[]): string[] {
  return lines.length === 0 ? [] : [`${title}:`, ...lines.map((l) => `  - ${l}`), ''];
}

/** The result as a plain-text table. */
export function renderTable(r: BenchResult): string {
  const d = r.detection;
  const u = r.unlock;
  const head = `${'measure'.padEnd(44)}${'n'.padStart(5)}${'median'.padStart(10)}${'p99'.padStart(10)}${'max'.padStart(10)}`;
  const goal = (ok: boolean | null): string => (ok === null ? 'no data' : ok ? 'met' : 'NOT met');
  const m = r.machine;
  return [
    `Threshold bench — ${r.date}${r.quick ? ' (quick)' : ''}`,
    `node ${m.node}, ${m.cpus} × ${m.cpuModel}, ${m.platform}, load ${m.loadAvg1m.start} → ${m.loadAvg1m.end}`,
    `data: ${m.dataDir}`,
    '',
    head,
    `Detection under jamming (heartbeat ${d.heartbeatIntervalMs} ms, silence threshold ${d.silenceMs} ms)`,
    row('  last valid heartbeat → observation-lost', d.detectionMs, 0),
    row('  link cut → alarm', d.cutToAlarmMs, 0),
    row('  alarm → lock confirms locked', d.relockMs, 0),
    `  goal p99 ≤ ${d.goalP99Ms} ms: ${goal(d.meetsGoal)}; failed runs: ${d.failures.length}; anomalies: ${d.anomalies.length}`,
    '',
    'Unlock path (server time)',
    row('  server share (HTTP→arm + heartbeat→unlock)', u.serverShareMs, 2),
    row('    HTTP request → arm command', u.httpToArmMs, 2),
    row('    first heartbeat → unlock command', u.heartbeatToUnlockMs, 2),
    row('  camera part, excluded (arm → heartbeat)', u.cameraMs, 2),
    row('  whole: HTTP request → unlock command', u.wholeMs, 2),
    `  goal server share p99 ≤ ${u.goalServerShareP99Ms} ms: ${goal(u.meetsGoal)}; failed runs: ${u.failures.length}; anomalies: ${u.anomalies.length}`,
    '',
    'Floors',
    row('  raw MQTT round trip (TCP_NODELAY)', r.floor.mqttRoundTripMs, 3),
    row('  raw MQTT round trip (default sockets)', r.floor.mqttRoundTripDefaultSocketsMs, 3),
    row('  durable SQLite commit (WAL, sync=FULL)', r.floor.durableCommitMs, 3),
    '',
    'Ratios (median / p99)',
    `  server share ÷ raw RTT          ${fmt(r.ratios.serverShareToRttMedian, 2)} / ${fmt(r.ratios.serverShareToRttP99, 2)}`,
    `  detection ÷ heartbeat interval  ${fmt(r.ratios.detectionToHeartbeatMedian, 2)} / ${fmt(r.ratios.detectionToHeartbeatP99, 2)}`,
    `  detection ÷ silence threshold   ${fmt(r.ratios.detectionToSilenceMedian, 2)} / ${fmt(r.ratios.detectionToSilenceP99, 2)}`,
    '',
    ...listed('Detection: failed runs', d.failures),
    ...listed('Detection: anomalies', d.anomalies),
    ...listed('Unlock: failed runs', u.failures),
    ...listed('Unlock: anomalies', u.anomalies),
  ].join('\n');
}

/** Writes one progress line to stderr (stdout is kept for the result). */
export function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** An error as one line of text. */
export const errorText = (err: unknown): string =>
  err instanceof Error ? err.message : String(err);

/** `v` rounded to two decimals. */
export const round2 = (v: number): number => Math.round(v * 100) / 100;

/** A figure with `digits` decimals, or a dash when there is none. */
export const fmt = (v: number | null, digits = 0): string => (v === null ? '—' : v.toFixed(digits));

/** "met", "NOT met", or "no data" for a goal. */
export const goalText = (ok: boolean | null): string =>
  ok === null ? 'no data' : ok ? 'met' : 'NOT met';

/** One table row of a summary: label, n, median, min, max, unit. */
export function rangeRow(label: string, s: Summary, digits: number, unit: string): string {
  return [
    label.padEnd(44),
    String(s.n).padStart(5),
    fmt(s.median, digits).padStart(10),
    fmt(s.min, digits).padStart(10),
    fmt(s.max, digits).padStart(10),
    `  ${unit}`,
  ].join('');
}

/** The header line of {@link rangeRow} tables. */
export const RANGE_HEAD = `${'measure'.padEnd(44)}${'n'.padStart(5)}${'median'.padStart(10)}${'min'.padStart(10)}${'max'.padStart(10)}`;

/** The machine a bench ran on; `loadStart` is the 1-minute load average when it started. */
export function machineOf(loadStart: number, dataDir: string): BenchRun['machine'] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAvg1m: { start: round2(loadStart), end: round2(loadavg()[0] ?? 0) },
    dataDir,
  };
}

/** The 1-minute load average now. */
export const loadNow = (): number => loadavg()[0] ?? 0;

/** The databases a bench can run on. */
export const DIALECTS = ['sqlite', 'postgres'] as const;
/** One of {@link DIALECTS}. */
export type Dialect = (typeof DIALECTS)[number];

/** `--dialect sqlite|postgres|both` → the dialects to run, in order; a message when invalid. */
export function parseDialects(
  value: string | undefined,
  fallback: readonly Dialect[],
): readonly Dialect[] | string {
  if (value === undefined) return fallback;
  if (value === 'both') return DIALECTS;
  for (const d of DIALECTS) if (d === value) return [d];
  return `--dialect takes sqlite, postgres or both; not ${value}`;
}

/** What every bench's options start with (bench/run.ts passes the same to each). */
export interface BenchContext {
  readonly quick: boolean;
  /** Data directories are made under this one (its file system decides what an fsync costs). */
  readonly dataParent: string;
  readonly progress: (line: string) => void;
  /** Polled between steps; true stops the bench after the current one (SIGINT). */
  readonly stopRequested?: () => boolean;
}

/** The options every bench entry point takes, beside its own. */
export const COMMON_OPTIONS = {
  quick: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** What a bench's `run` returns: the JSON object, and the same as a table. */
export interface BenchOutput {
  readonly json: object;
  readonly table: string;
}

/**
 * The entry point of a bench run on its own (or of bench/run.ts): parses the arguments
 * (`options` beside {@link COMMON_OPTIONS}), prints `usage` for `--help` and, with exit 2, for
 * bad arguments (`run` may return a string to say what is wrong); on Ctrl-C sets the stop flag
 * the bench polls and lets it report what it measured; prints the table or, with `--json`, one
 * JSON object on stdout; exit 1 only when the bench itself breaks. A handle left open after
 * everything is closed does not keep the process alive.
 */
export async function benchMain<O extends NonNullable<ParseArgsConfig['options']>>(
  usage: string,
  options: O,
  run: (
    args: ReturnType<
      typeof parseArgs<{ options: O & typeof COMMON_OPTIONS; strict: true }>
    >['values'],
    ctx: BenchContext,
  ) => Promise<BenchOutput | string>,
): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: { ...COMMON_OPTIONS, ...options },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`${errorText(err)}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  const args = parsed.values as unknown as Parameters<typeof run>[0];
  const common = args as { help?: boolean; quick?: boolean; json?: boolean; 'data-dir'?: string };
  if (common.help === true) {
    process.stdout.write(usage);
    return;
  }
  let stopRequested = false;
  process.once('SIGINT', () => {
    stopRequested = true;
    progress('interrupted: finishing the current step, then reporting what was measured');
  });
  try {
    const out = await run(args, {
      quick: common.quick === true,
      dataParent: resolve(common['data-dir'] ?? tmpdir()),
      progress,
      stopRequested: () => stopRequested,
    });
    if (typeof out === 'string') {
      process.stderr.write(`${out}\n${usage}`);
      process.exitCode = 2;
      return;
    }
    process.stdout.write(
      common.json === true ? `${JSON.stringify(out.json, null, 2)}\n` : `${out.table}\n`,
    );
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

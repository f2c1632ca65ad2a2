/** The bench's result: one JSON-able object, and the same as a table for people. */
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

const fmt = (v: number | null, digits: number): string => (v === null ? '—' : v.toFixed(digits));

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

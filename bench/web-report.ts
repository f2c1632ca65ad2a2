/** The web bench's result: one JSON-able object, and the same as a table for people. */
import type { BundleResult } from './web-bundle.ts';
import { KB } from './web-bundle.ts';
import type { LiveMemoryResult } from './web-live-memory.ts';
import { median, percentile } from './sample-stats.ts';

/** Median, p90 (nearest rank) and extremes of a measure; every figure null when n = 0. */
export interface Summary90 {
  readonly n: number;
  readonly median: number | null;
  readonly p90: number | null;
  readonly min: number | null;
  readonly max: number | null;
}

/** The summary of `samples` (any order), rounded to `digits` decimals. */
export function summarize90(samples: readonly number[], digits = 1): Summary90 {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (v: number | null): number | null =>
    v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits;
  return {
    n: sorted.length,
    median: round(median(sorted)),
    p90: round(percentile(sorted, 90)),
    min: round(sorted[0] ?? null),
    max: round(sorted.at(-1) ?? null),
  };
}

/** One measure of the first load, for the app and the baseline, with app ÷ baseline. */
export interface PairedMeasure {
  readonly app: Summary90;
  readonly baseline: Summary90;
  /** app median ÷ baseline median. */
  readonly ratioMedian: number | null;
  /** app p90 ÷ baseline p90. */
  readonly ratioP90: number | null;
}

/** The first-load part of the result. */
export interface FirstLoadResult {
  /** Runs planned, each one app load and one baseline load in fresh contexts. */
  readonly runs: number;
  readonly warmupRuns: number;
  readonly appUrl: string;
  readonly baselineBytes: number;
  readonly loadEventEndMs: PairedMeasure;
  readonly doorCardLaidOutMs: PairedMeasure;
  readonly doorCardPaintedMs: PairedMeasure;
  readonly firstContentfulPaintMs: PairedMeasure;
  readonly transferBytes: PairedMeasure;
  /** Of the app's transfer: `/assets/` only, bytes. */
  readonly appAssetBytes: Summary90;
  readonly appApiBytes: Summary90;
  readonly appRequests: Summary90;
  /** The app's phases (see LoadSample.phases), ms since navigation start. */
  readonly appPhasesMs: {
    readonly assetsReceived: Summary90;
    readonly firstApiRequest: Summary90;
    readonly lastApiAnswerBeforeCard: Summary90;
  };
  /** The response headers of the largest script asked for with `accept-encoding: gzip, br`. */
  readonly scriptContentEncoding: string;
  readonly goalDoorCardMedianMs: number;
  /** Median of door card painted under the goal, with no failed app run. */
  readonly meetsGoal: boolean | null;
  readonly failures: readonly string[];
  /**
   * Counted app loads that fetched an asset the measured bundle does not have: web/dist was
   * rebuilt under the bench (the sample is kept, and listed here).
   */
  readonly loadsFromOtherBuild: readonly string[];
  /** Console errors and uncaught exceptions on the app's pages (first ten). */
  readonly pageProblems: readonly string[];
}

/** Everything `bench/web.ts` reports. */
export interface WebBenchResult {
  readonly date: string;
  readonly quick: boolean;
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly node: string;
    readonly platform: string;
    readonly chromium: string;
    /** 1-minute load average at the start and at the end of the bench. */
    readonly loadAvg1m: { readonly start: number; readonly end: number };
  };
  readonly build: {
    /** Fingerprint of web/dist when the bundle was measured. */
    readonly fingerprint: string;
    /** web/dist differed at the end (the other checks say whether measured pages were affected). */
    readonly distChanged: boolean;
    /** The live view's page fetched an asset the measured bundle does not have; null if not run. */
    readonly liveViewFromOtherBuild: boolean | null;
  };
  readonly bundle: BundleResult;
  readonly firstLoad: FirstLoadResult;
  /** Null when `--minutes 0`. */
  readonly liveMemory: LiveMemoryResult | null;
}

const fmt = (v: number | null, digits: number): string => (v === null ? '—' : v.toFixed(digits));
const kb = (bytes: number): string => (bytes / KB).toFixed(1);
const goal = (ok: boolean | null): string => (ok === null ? 'no data' : ok ? 'met' : 'NOT met');

function row(label: string, s: Summary90, digits: number, unit: string, ratio?: string): string {
  return [
    label.padEnd(40),
    String(s.n).padStart(4),
    fmt(s.median, digits).padStart(10),
    fmt(s.p90, digits).padStart(10),
    fmt(s.max, digits).padStart(10),
    `  ${unit.padEnd(4)}`,
    ratio ?? '',
  ].join('');
}

function paired(label: string, p: PairedMeasure, digits: number, unit: string): string[] {
  return [
    row(
      `  ${label}, app`,
      p.app,
      digits,
      unit,
      `  ×${fmt(p.ratioMedian, 2)} / ×${fmt(p.ratioP90, 2)}`,
    ),
    row(`  ${label}, baseline`, p.baseline, digits, unit),
  ];
}

function listed(title: string, lines: readonly string[]): string[] {
  return lines.length === 0 ? [] : [`${title}:`, ...lines.map((l) => `  - ${l}`), ''];
}

/** The result as a plain-text table. */
export function renderWebTable(r: WebBenchResult): string {
  const m = r.machine;
  const b = r.bundle;
  const f = r.firstLoad;
  const l = r.liveMemory;
  const head = `${'measure'.padEnd(40)}${'n'.padStart(4)}${'median'.padStart(10)}${'p90'.padStart(10)}${'max'.padStart(10)}        app÷baseline (median / p90)`;
  const fileRows = b.files.map(
    (x) =>
      `  ${x.path.padEnd(40)}${kb(x.rawBytes).padStart(10)}${kb(x.gzipBytes).padStart(10)}  KB`,
  );
  const memoryLines: string[] = [];
  if (l) {
    const first = l.samples[0];
    const last = l.samples.at(-1);
    const mb = (v: number | undefined) => (v === undefined ? '—' : (v / 1e6).toFixed(2));
    memoryLines.push(
      `Live view kept open ${l.minutes} min, sample every ${l.sampleEverySeconds} s after a forced GC${l.stoppedEarly ? ' (stopped early)' : ''}`,
      `  live after ${l.timeToLiveMs} ms; ${l.samples.length} samples; not live at ${l.notLiveSamples} of them`,
      `  ${''.padEnd(28)}${'first'.padStart(12)}${'last'.padStart(12)}`,
      `  ${'JS heap used (MB)'.padEnd(28)}${mb(first?.heapUsedBytes).padStart(12)}${mb(last?.heapUsedBytes).padStart(12)}`,
      `  ${'DOM nodes'.padEnd(28)}${String(first?.nodes ?? '—').padStart(12)}${String(last?.nodes ?? '—').padStart(12)}`,
      `  ${'JS event listeners'.padEnd(28)}${String(first?.listeners ?? '—').padStart(12)}${String(last?.listeners ?? '—').padStart(12)}`,
      `  ${'documents'.padEnd(28)}${String(first?.documents ?? '—').padStart(12)}${String(last?.documents ?? '—').padStart(12)}`,
      `  second half (from ${l.warmupMinutes} min), least-squares slopes:`,
      `    heap ${fmt(l.heapGrowthMBPerMin, 3)} MB/min; nodes ${fmt(l.nodesGrowthPerMin, 2)}/min (${fmt(l.nodesGainedSecondHalf, 1)} over the half); listeners ${fmt(l.listenersGrowthPerMin, 2)}/min`,
      `  frames shown ${fmt(l.framesShownPerMin, 1)}/min; published by the server ${fmt(l.framesPublishedPerMin, 1)}/min`,
      `  goal heap growth < ${l.goal.heapMBPerMin} MB/min: ${goal(l.goal.heapMet)}; DOM nodes not growing (gain < ${l.goal.nodesTolerance}): ${goal(l.goal.nodesMet)}`,
      '',
      ...listed('Live view: page problems', l.pageProblems.slice(0, 10)),
    );
  } else {
    memoryLines.push('Live view memory: not run (--minutes 0)', '');
  }
  return [
    `Threshold web bench — ${r.date}${r.quick ? ' (quick)' : ''}`,
    `node ${m.node}, ${m.cpus} × ${m.cpuModel}, ${m.platform}, Chromium ${m.chromium}, load ${m.loadAvg1m.start} → ${m.loadAvg1m.end}`,
    `web/dist built ${b.builtAt}, fingerprint ${r.build.fingerprint}${r.build.distChanged ? ' (rebuilt by someone during the run)' : ''}; ` +
      `pages from another build: ${f.loadsFromOtherBuild.length} of the app's first loads, ` +
      `live view ${r.build.liveViewFromOtherBuild === null ? '—' : r.build.liveViewFromOtherBuild ? 'YES' : 'no'}`,
    '',
    `Bundle (1 KB = 1000 bytes)${''.padEnd(18)}${'raw'.padStart(10)}${'gzip -9'.padStart(10)}`,
    ...fileRows,
    `  ${'JavaScript total'.padEnd(40)}${kb(b.js.rawBytes).padStart(10)}${kb(b.js.gzipBytes).padStart(10)}  KB`,
    `  ${'CSS total'.padEnd(40)}${kb(b.css.rawBytes).padStart(10)}${kb(b.css.gzipBytes).padStart(10)}  KB`,
    `  goal JavaScript gzipped < ${kb(b.goalJsGzipBytes)} KB: ${goal(b.meetsGoal)}; the server sends scripts with content-encoding: ${f.scriptContentEncoding}`,
    '',
    head,
    `First load, signed in, fresh context each run (${f.runs} runs + ${f.warmupRuns} warm-up; baseline: ${f.baselineBytes}-byte static page)`,
    ...paired('door card painted', f.doorCardPaintedMs, 0, 'ms'),
    ...paired('door card laid out', f.doorCardLaidOutMs, 0, 'ms'),
    ...paired('loadEventEnd', f.loadEventEndMs, 0, 'ms'),
    ...paired('first contentful paint', f.firstContentfulPaintMs, 0, 'ms'),
    ...paired('transferred', f.transferBytes, 0, 'B'),
    row('    of which /assets/', f.appAssetBytes, 0, 'B'),
    row('    of which /api/', f.appApiBytes, 0, 'B'),
    row('  requests finished by then', f.appRequests, 0, ''),
    "The app's phases (ms since navigation start)",
    row('  last /assets/ file received', f.appPhasesMs.assetsReceived, 0, 'ms'),
    row('  first /api/ request sent', f.appPhasesMs.firstApiRequest, 0, 'ms'),
    row('  last /api/ answer before the door card', f.appPhasesMs.lastApiAnswerBeforeCard, 0, 'ms'),
    row('  door card painted (as above)', f.doorCardPaintedMs.app, 0, 'ms'),
    `  goal door card painted, median < ${f.goalDoorCardMedianMs} ms: ${goal(f.meetsGoal)}; failed runs: ${f.failures.length}`,
    '',
    ...listed('First load: failed runs', f.failures),
    ...listed('First load: app loads served from another build', f.loadsFromOtherBuild),
    ...listed('First load: page problems', f.pageProblems),
    ...memoryLines,
  ].join('\n');
}

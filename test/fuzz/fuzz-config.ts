/**
 * How much the fuzzers run, and where they report: `FUZZ_RUNS` (cases per property), `FUZZ_SEED`
 * (fast-check's seed, printed with any failure, to replay it), and `FUZZ_REPORT` (a file each
 * property appends one JSON line to: suite, property, cases run, seconds).
 */
import { appendFileSync } from 'node:fs';
import type fc from 'fast-check';

/** Cases per property: `FUZZ_RUNS`, or `fallback`. */
export function fuzzRuns(fallback: number): number {
  const v = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/** fast-check parameters for one property with `runs` cases (the seed from `FUZZ_SEED`). */
export function fuzzParameters<T>(runs: number): fc.Parameters<T> {
  const seed = Number(process.env.FUZZ_SEED);
  return {
    numRuns: runs,
    // The failing check's own message (what was sent, what came back) in the report.
    includeErrorInReport: true,
    ...(process.env.FUZZ_SEED !== undefined && Number.isInteger(seed) ? { seed } : {}),
  };
}

/**
 * A test timeout for `cases` cases of about `msPerCase` each: three times that, and at least a
 * minute (the bench raises `FUZZ_RUNS` far past what CI runs).
 */
export function fuzzTimeout(cases: number, msPerCase: number): number {
  return Math.max(60_000, Math.ceil(cases * msPerCase * 3));
}

/** One line of the bench report. */
export interface FuzzReportLine {
  readonly suite: 'api' | 'device';
  readonly property: string;
  /** Requests or messages actually sent (including those of shrinking, if any). */
  readonly cases: number;
  readonly seconds: number;
  readonly failed: boolean;
}

/** Appends a line to `FUZZ_REPORT` when it is set. */
export function reportRun(line: FuzzReportLine): void {
  const file = process.env.FUZZ_REPORT;
  if (file) appendFileSync(file, `${JSON.stringify(line)}\n`);
}

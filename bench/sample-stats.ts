/**
 * Summaries of a benchmark's samples: the median and the 99th percentile, with n, min, max.
 *
 * Percentiles use the nearest-rank method (the smallest sample with at least p % of the samples
 * at or below it), so p99 is always a value that was actually measured; with fewer than 100
 * samples it is the largest one. The median is the usual one (mean of the two middle samples
 * for an even n).
 */

/** What {@link summarize} reports; every figure in the samples' unit, null when n = 0. */
export interface Summary {
  readonly n: number;
  readonly median: number | null;
  readonly p99: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

/** Nearest-rank percentile of ascending `sorted`, 0 < p ≤ 100; null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? null;
}

/** Median of ascending `sorted`; null when empty. */
export function median(sorted: readonly number[]): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const hi = sorted[Math.floor(n / 2)]!;
  return n % 2 === 1 ? hi : (sorted[n / 2 - 1]! + hi) / 2;
}

/** The summary of `samples` (any order), rounded to `digits` decimals. */
export function summarize(samples: readonly number[], digits = 3): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (v: number | null): number | null =>
    v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits;
  const n = sorted.length;
  return {
    n,
    median: round(median(sorted)),
    p99: round(percentile(sorted, 99)),
    min: round(sorted[0] ?? null),
    max: round(sorted[n - 1] ?? null),
    mean: round(n === 0 ? null : sorted.reduce((a, b) => a + b, 0) / n),
  };
}

/** a / b rounded to 2 decimals; null when either is missing or b is 0. */
export function ratio(a: number | null, b: number | null): number | null {
  if (a === null || b === null || b === 0) return null;
  return Math.round((a / b) * 100) / 100;
}

/**
 * The owner's live view kept open: one signed-in owner page on `/` showing the live view while
 * the simulated camera streams, sampled at a fixed interval. Each sample first forces a full
 * garbage collection through the DevTools protocol (`HeapProfiler.collectGarbage`, which with
 * Chromium's unified heap also collects unreachable DOM), then reads `Performance.getMetrics`:
 * what is left is what the page holds on to.
 *
 * Frames shown are counted from the page's requests for `/frames/` (each fresh frame has its
 * own immutable URL, fetched once by the `<img>`), so the count needs nothing inside the page.
 * The frames the server published for the camera in the same interval are counted beside them:
 * the view is updating if the page fetched about as many as were published.
 */
import type { Browser, CDPSession } from 'playwright-core';
import type { SignInCookie } from './web-first-load.ts';

/** One sample, taken after a forced GC. */
export interface MemorySample {
  /** Minutes since the live view first showed `live`. */
  readonly atMin: number;
  /** `JSHeapUsedSize`, bytes. */
  readonly heapUsedBytes: number;
  /** `JSHeapTotalSize`, bytes. */
  readonly heapTotalBytes: number;
  /** `Nodes`: DOM nodes alive in the page's renderer. */
  readonly nodes: number;
  /** `JSEventListeners`. */
  readonly listeners: number;
  /** `Documents`. */
  readonly documents: number;
  /** Frames the page fetched since the previous sample. */
  readonly framesShown: number;
  /** Fresh frames the server published for the camera since the previous sample. */
  readonly framesPublished: number;
  /** The live view's `data-live-status` at the sample. */
  readonly liveStatus: string;
}

/** What {@link runLiveMemory} reports. */
export interface LiveMemoryResult {
  readonly minutes: number;
  readonly sampleEverySeconds: number;
  /** Samples before this time are warm-up; the fits use the rest (the second half). */
  readonly warmupMinutes: number;
  /** ms from navigation until the live view showed `live`. */
  readonly timeToLiveMs: number;
  /** Paths of the `/assets/` files the page loaded, to tell which build was served. */
  readonly assetPaths: readonly string[];
  readonly samples: readonly MemorySample[];
  /** Least-squares slope over the samples after warm-up, MB (10^6 bytes) per minute. */
  readonly heapGrowthMBPerMin: number | null;
  /** Least-squares slope of DOM nodes after warm-up, nodes per minute. */
  readonly nodesGrowthPerMin: number | null;
  /** The nodes slope times the second half's length: nodes gained over it. */
  readonly nodesGainedSecondHalf: number | null;
  readonly listenersGrowthPerMin: number | null;
  /** Frames the page fetched per minute, over the whole run. */
  readonly framesShownPerMin: number | null;
  /** Fresh frames the server published per minute, over the whole run. */
  readonly framesPublishedPerMin: number | null;
  /** Samples at which the view did not say `live`. */
  readonly notLiveSamples: number;
  readonly pageProblems: readonly string[];
  readonly goal: {
    readonly heapMBPerMin: number;
    readonly nodesTolerance: number;
    readonly heapMet: boolean | null;
    readonly nodesMet: boolean | null;
    readonly met: boolean | null;
  };
  /** True when the run was stopped before `minutes` (SIGINT). */
  readonly stoppedEarly: boolean;
}

/** Goal: the heap grows less than this over the second half, MB per minute. */
export const HEAP_GOAL_MB_PER_MIN = 1;
/**
 * "DOM nodes not growing": the fitted gain over the second half stays under this many nodes.
 * A leak of one node per frame or per re-render (4 a second) would gain hundreds a minute.
 */
export const NODES_TOLERANCE = 10;
const MB = 1_000_000;
const LIVE_TIMEOUT_MS = 20_000;

/** Options of {@link runLiveMemory}. */
export interface LiveMemoryOptions {
  readonly browser: Browser;
  readonly url: string;
  readonly cookie: SignInCookie;
  readonly minutes: number;
  readonly sampleEverySeconds: number;
  /** Fresh frames the server has published for the camera so far (a running count). */
  readonly framesPublished: () => number;
  readonly stopRequested: () => boolean;
  readonly progress: (line: string) => void;
}

/** Least-squares slope of y over x; null with fewer than two distinct x. */
export function slope(
  points: readonly { readonly x: number; readonly y: number }[],
): number | null {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  return sxx === 0 ? null : sxy / sxx;
}

/** Page-side (plain JavaScript): the paths of the `/assets/` files the page loaded. */
const ASSET_PATHS = `performance.getEntriesByType('resource')
  .map((r) => new URL(r.name).pathname)
  .filter((p) => p.startsWith('/assets/'))`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

async function metrics(cdp: CDPSession): Promise<Record<string, number>> {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics: list } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(list.map((m) => [m.name, m.value]));
}

/** Keeps the owner's page open on the live view for `minutes` and samples its memory. */
export async function runLiveMemory(o: LiveMemoryOptions): Promise<LiveMemoryResult> {
  const ctx = await o.browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    await ctx.addCookies([o.cookie]);
    const page = await ctx.newPage();
    const pageProblems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') pageProblems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageProblems.push(`uncaught: ${e.message}`));
    let framesShown = 0;
    page.on('request', (r) => {
      if (r.url().includes('/frames/')) framesShown += 1;
    });
    const t0 = performance.now();
    await page.goto(o.url, { waitUntil: 'load' });
    const view = page.locator('[data-testid="live-view"]');
    await page
      .locator('[data-testid="live-view"][data-live-status="live"]')
      .waitFor({ timeout: LIVE_TIMEOUT_MS });
    const timeToLiveMs = Math.round(performance.now() - t0);
    const assetPaths = await page.evaluate<string[]>(ASSET_PATHS);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Performance.enable');

    const samples: MemorySample[] = [];
    const start = performance.now();
    let shownBefore = framesShown;
    let publishedBefore = o.framesPublished();
    const every = o.sampleEverySeconds * 1000;
    const total = o.minutes * 60_000;
    let stoppedEarly = false;
    for (let k = 0; k * every <= total; k++) {
      if (o.stopRequested()) {
        stoppedEarly = true;
        break;
      }
      await sleep(start + k * every - performance.now());
      const atMin = (performance.now() - start) / 60_000;
      const m = await metrics(cdp);
      const liveStatus = (await view.getAttribute('data-live-status')) ?? 'missing';
      const shown = framesShown;
      const published = o.framesPublished();
      const s: MemorySample = {
        atMin: Math.round(atMin * 1000) / 1000,
        heapUsedBytes: m.JSHeapUsedSize ?? 0,
        heapTotalBytes: m.JSHeapTotalSize ?? 0,
        nodes: m.Nodes ?? 0,
        listeners: m.JSEventListeners ?? 0,
        documents: m.Documents ?? 0,
        framesShown: shown - shownBefore,
        framesPublished: published - publishedBefore,
        liveStatus,
      };
      shownBefore = shown;
      publishedBefore = published;
      samples.push(s);
      o.progress(
        `live view ${s.atMin.toFixed(2)} min: heap ${(s.heapUsedBytes / MB).toFixed(2)} MB, ` +
          `nodes ${s.nodes}, listeners ${s.listeners}, frames ${s.framesShown}/${s.framesPublished} ` +
          `(shown/published), ${liveStatus}`,
      );
    }
    return summarizeRun(o, samples, { timeToLiveMs, assetPaths, pageProblems, stoppedEarly });
  } finally {
    await ctx.close();
  }
}

function summarizeRun(
  o: LiveMemoryOptions,
  samples: readonly MemorySample[],
  seen: Pick<LiveMemoryResult, 'timeToLiveMs' | 'assetPaths' | 'pageProblems' | 'stoppedEarly'>,
): LiveMemoryResult {
  const warmupMinutes = o.minutes / 2;
  const after = samples.filter((s) => s.atMin >= warmupMinutes - 1e-9);
  const fit = (y: (s: MemorySample) => number) =>
    slope(after.map((s) => ({ x: s.atMin, y: y(s) })));
  const heapSlope = fit((s) => s.heapUsedBytes);
  const nodesSlope = fit((s) => s.nodes);
  const listenersSlope = fit((s) => s.listeners);
  const span = samples.length > 1 ? samples.at(-1)!.atMin - samples[0]!.atMin : 0;
  const secondHalf = after.length > 1 ? after.at(-1)!.atMin - after[0]!.atMin : 0;
  const perMin = (count: (s: MemorySample) => number) =>
    span > 0 ? round(samples.slice(1).reduce((a, s) => a + count(s), 0) / span, 1) : null;
  const heapGrowthMBPerMin = heapSlope === null ? null : round(heapSlope / MB, 3);
  const nodesGained = nodesSlope === null ? null : round(nodesSlope * secondHalf, 1);
  const heapMet = heapGrowthMBPerMin === null ? null : heapGrowthMBPerMin < HEAP_GOAL_MB_PER_MIN;
  const nodesMet = nodesGained === null ? null : nodesGained < NODES_TOLERANCE;
  return {
    minutes: o.minutes,
    sampleEverySeconds: o.sampleEverySeconds,
    warmupMinutes,
    timeToLiveMs: seen.timeToLiveMs,
    assetPaths: seen.assetPaths,
    samples,
    heapGrowthMBPerMin,
    nodesGrowthPerMin: nodesSlope === null ? null : round(nodesSlope, 2),
    nodesGainedSecondHalf: nodesGained,
    listenersGrowthPerMin: listenersSlope === null ? null : round(listenersSlope, 2),
    framesShownPerMin: perMin((s) => s.framesShown),
    framesPublishedPerMin: perMin((s) => s.framesPublished),
    notLiveSamples: samples.filter((s) => s.liveStatus !== 'live').length,
    pageProblems: seen.pageProblems,
    goal: {
      heapMBPerMin: HEAP_GOAL_MB_PER_MIN,
      nodesTolerance: NODES_TOLERANCE,
      heapMet,
      nodesMet,
      met: heapMet === null || nodesMet === null ? null : heapMet && nodesMet,
    },
    stoppedEarly: seen.stoppedEarly,
  };
}

function round(v: number, digits: number): number {
  return Math.round(v * 10 ** digits) / 10 ** digits;
}

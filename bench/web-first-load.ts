/**
 * First load of a page in a fresh browser context (cold HTTP cache, new connections), already
 * signed in by cookie: the app's owner page, and as the baseline a bare 1 KB HTML page from a
 * throwaway `node:http` server on the same loopback, measured the same way in the same run.
 *
 * The page's own clock does the measuring (times are `performance.now()`, i.e. ms since the
 * navigation started). An init script, injected before any of the page's scripts run, watches
 * the DOM for the first `[data-testid="door-card"]` with a non-empty box: *door card laid out*
 * is when it appears, *door card painted* is when a task queued from the next animation frame
 * runs (just after that frame is painted). No polling runs in the page meanwhile.
 *
 * Page-side code is plain JavaScript in strings: the bench's TypeScript has no DOM types, and
 * a function passed to Playwright would be serialised after tsx's transform.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';

/** What the page reports about one load, ms since navigation start unless stated. */
export interface LoadSample {
  /** Navigation Timing `loadEventEnd`. */
  readonly loadEventEndMs: number;
  /** The first door card is in the DOM with a non-empty box. */
  readonly doorCardLaidOutMs: number;
  /** Just after the next frame following {@link doorCardLaidOutMs} was painted. */
  readonly doorCardPaintedMs: number;
  /** First Contentful Paint, if the browser reported it. */
  readonly firstContentfulPaintMs: number | null;
  /** Sum of `transferSize` of the navigation and every resource entry, bytes. */
  readonly transferBytes: number;
  /** The part for `/assets/` (scripts, styles), bytes. */
  readonly assetBytes: number;
  /** The part for `/api/` calls finished by then (the event stream is still open), bytes. */
  readonly apiBytes: number;
  /** How many resource entries (requests other than the page itself) had finished. */
  readonly requests: number;
  /**
   * Where the time goes, ms since navigation start (null on a page without such requests):
   * the last `/assets/` file received; the first `/api/` request sent (the app's code is
   * running); the last `/api/` answer received before the door card appeared.
   */
  readonly phases: {
    readonly assetsReceivedMs: number | null;
    readonly firstApiRequestMs: number | null;
    readonly lastApiAnswerBeforeCardMs: number | null;
  };
  /** Paths of the `/assets/` files loaded, to tell which build was served. */
  readonly assetPaths: readonly string[];
  /** Console errors and uncaught exceptions seen on the page. */
  readonly pageProblems: readonly string[];
}

/** A cookie as `BrowserContext.addCookies` takes it. */
export interface SignInCookie {
  readonly name: string;
  readonly value: string;
  readonly url: string;
  readonly httpOnly: boolean;
  readonly sameSite: 'Strict' | 'Lax' | 'None';
  readonly expires: number;
}

/** How long a load may take before the run counts as failed, ms. */
const LOAD_TIMEOUT_MS = 15_000;

const INIT_SCRIPT = `(() => {
  const b = { doorCardAt: null, doorCardFrameAt: null };
  let resolveDone = () => {};
  b.done = new Promise((r) => { resolveDone = r; });
  Object.defineProperty(window, '__thresholdBench', { value: b });
  const check = () => {
    if (b.doorCardAt !== null) return true;
    const el = document.querySelector('[data-testid="door-card"]');
    if (!el) return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0 || getComputedStyle(el).visibility === 'hidden') return false;
    b.doorCardAt = performance.now();
    requestAnimationFrame(() => setTimeout(() => {
      b.doorCardFrameAt = performance.now();
      resolveDone();
    }, 0));
    return true;
  };
  const mo = new MutationObserver(() => { if (check()) mo.disconnect(); });
  mo.observe(document, { childList: true, subtree: true });
  addEventListener('load', () => { if (check()) mo.disconnect(); });
})();`;

/** Waits (in the page) for the door card to be painted and the load event to end, then reports. */
const COLLECT = `(async () => {
  const b = window.__thresholdBench;
  const deadline = performance.now() + ${LOAD_TIMEOUT_MS};
  await Promise.race([b.done, new Promise((r) => setTimeout(r, ${LOAD_TIMEOUT_MS}))]);
  let nav = performance.getEntriesByType('navigation')[0];
  while ((!nav || nav.loadEventEnd === 0) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    nav = performance.getEntriesByType('navigation')[0];
  }
  // The paint entry is queued once the frame is presented, which can be after the marker.
  let fcp = performance.getEntriesByName('first-contentful-paint')[0];
  while (!fcp && performance.now() < deadline && performance.now() - b.doorCardFrameAt < 1000) {
    await new Promise((r) => setTimeout(r, 20));
    fcp = performance.getEntriesByName('first-contentful-paint')[0];
  }
  return {
    loadEventEnd: nav ? nav.loadEventEnd : 0,
    documentTransfer: nav ? nav.transferSize : 0,
    doorCardAt: b.doorCardAt,
    doorCardFrameAt: b.doorCardFrameAt,
    fcp: fcp ? fcp.startTime : null,
    resources: performance.getEntriesByType('resource').map((r) => ({
      path: new URL(r.name).pathname,
      transferSize: r.transferSize,
      startTime: r.startTime,
      responseEnd: r.responseEnd,
    })),
  };
})()`;

interface RawLoad {
  readonly loadEventEnd: number;
  readonly documentTransfer: number;
  readonly doorCardAt: number | null;
  readonly doorCardFrameAt: number | null;
  readonly fcp: number | null;
  readonly resources: readonly {
    readonly path: string;
    readonly transferSize: number;
    readonly startTime: number;
    readonly responseEnd: number;
  }[];
}

/**
 * Loads `url` once in a new context of `browser` carrying `cookie`, and reports the page's
 * timings. Throws if the door card does not appear or the load does not end in time.
 */
export async function loadOnce(
  browser: Browser,
  url: string,
  cookie: SignInCookie,
): Promise<LoadSample> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  try {
    await ctx.addCookies([cookie]);
    await ctx.addInitScript({ content: INIT_SCRIPT });
    const page = await ctx.newPage();
    const pageProblems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') pageProblems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageProblems.push(`uncaught: ${e.message}`));
    await page.goto(url, { waitUntil: 'load', timeout: LOAD_TIMEOUT_MS });
    const raw = await page.evaluate<RawLoad>(COLLECT);
    if (raw.doorCardAt === null || raw.doorCardFrameAt === null) {
      throw new Error(`no door card on ${url} within ${LOAD_TIMEOUT_MS} ms`);
    }
    if (raw.loadEventEnd === 0) throw new Error(`the load event of ${url} did not end`);
    const assets = raw.resources.filter((r) => r.path.startsWith('/assets/'));
    const apis = raw.resources.filter((r) => r.path.startsWith('/api/'));
    const cardAt = raw.doorCardAt;
    const maxOf = (xs: readonly number[]) => (xs.length === 0 ? null : Math.max(...xs));
    const minOf = (xs: readonly number[]) => (xs.length === 0 ? null : Math.min(...xs));
    const bytes = (pred: (path: string) => boolean) =>
      raw.resources.filter((r) => pred(r.path)).reduce((a, r) => a + r.transferSize, 0);
    return {
      loadEventEndMs: raw.loadEventEnd,
      doorCardLaidOutMs: raw.doorCardAt,
      doorCardPaintedMs: raw.doorCardFrameAt,
      firstContentfulPaintMs: raw.fcp,
      transferBytes: raw.documentTransfer + bytes(() => true),
      assetBytes: bytes((p) => p.startsWith('/assets/')),
      apiBytes: bytes((p) => p.startsWith('/api/')),
      requests: raw.resources.length,
      phases: {
        assetsReceivedMs: maxOf(assets.map((r) => r.responseEnd)),
        firstApiRequestMs: minOf(apis.map((r) => r.startTime)),
        lastApiAnswerBeforeCardMs: maxOf(
          apis.map((r) => r.responseEnd).filter((t) => t > 0 && t <= cardAt),
        ),
      },
      assetPaths: assets.map((r) => r.path),
      pageProblems,
    };
  } finally {
    await ctx.close();
  }
}

/** The baseline page: 1 KB of static HTML holding the same marker the app's home shows. */
export const BASELINE_HTML = ((): string => {
  const head =
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Baseline</title></head>' +
    '<body><main><article data-testid="door-card"><h2>Front door</h2><p>';
  const tail = '</p></article></main></body></html>\n';
  const filler = 'Locked. Closed. Camera online. '.repeat(40);
  return head + filler.slice(0, 1024 - head.length - tail.length) + tail;
})();

/**
 * A throwaway HTTP server on 127.0.0.1 answering `/` with {@link BASELINE_HTML} and anything
 * else (the browser's own `/favicon.ico`) with an empty 404.
 */
export class BaselineServer {
  private constructor(
    private readonly server: Server,
    /** Its port on 127.0.0.1. */
    readonly port: number,
  ) {}

  /** Starts listening on an ephemeral port of 127.0.0.1. */
  static async start(): Promise<BaselineServer> {
    const server = createServer((req, res) => {
      if (req.url !== '/') {
        res.writeHead(404, { 'content-length': 0 });
        res.end();
        return;
      }
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(BASELINE_HTML),
        'cache-control': 'no-cache',
      });
      res.end(BASELINE_HTML);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new BaselineServer(server, (server.address() as AddressInfo).port);
  }

  /** Stops listening and drops kept-alive connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

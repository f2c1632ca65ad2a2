/**
 * The web app's benchmarks (see docs/benchmarks.md, "Web app"):
 *
 * 1. bundle size: every file of web/dist/assets and web/dist/sw.js, raw and gzipped
 *    (web-bundle.ts);
 * 2. first load of the signed-in owner page in a fresh browser context, against a bare 1 KB
 *    page from a throwaway server on the same loopback, interleaved run by run
 *    (web-first-load.ts);
 * 3. the live view kept open for minutes: heap, DOM nodes and listeners after forced GCs, and
 *    frames shown (web-live-memory.ts).
 *
 * The system runs in this process as `ScenarioWorld` starts it (control plane, embedded broker,
 * SQLite, the demo home and its simulated devices, loopback only); the browser is Debian's
 * Chromium driven by playwright-core. The pages come from web/dist as it is when the bench
 * starts: build it first (`npm run build:web`, or `--build`). Progress goes to stderr; stdout
 * gets the table, or with --json one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { SESSION_COOKIE } from '../src/server/routes/route-helpers.ts';
import { WEB_DIST_DIR } from '../src/server/routes/web-app-route.ts';
import { buildFingerprint, measureBundle, type BundleResult } from './web-bundle.ts';
import {
  BASELINE_HTML,
  BaselineServer,
  loadOnce,
  type LoadSample,
  type SignInCookie,
} from './web-first-load.ts';
import { runLiveMemory } from './web-live-memory.ts';
import {
  renderWebTable,
  summarize90,
  type FirstLoadResult,
  type PairedMeasure,
  type WebBenchResult,
} from './web-report.ts';
import { ratio } from './sample-stats.ts';

const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const DOOR_CARD_GOAL_MEDIAN_MS = 1_000;
const LOAD_WARMUP_RUNS = 2;
/** The first-load part stops after this many failed app loads in a row. */
const MAX_FAILURES_IN_A_ROW = 3;

const USAGE = `usage: npm run bench:web [-- --quick] [-- --json] [-- --minutes N] [-- --runs N] [-- --build]
  --quick      fewer runs: 5 first loads, 1 minute of live view sampled every 10 s
               (full: 30 first loads, 10 minutes sampled every 30 s)
  --json       print one JSON object instead of the table
  --minutes N  keep the live view open N minutes (0: skip that part)
  --runs N     first loads of each page (after ${LOAD_WARMUP_RUNS} uncounted warm-up loads of each)
  --build      run \`npm run build:web\` first (otherwise web/dist is measured as it is)
`;

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    minutes: { type: 'string' },
    runs: { type: 'string' },
    build: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

function count(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} takes a number ≥ 0, not ${value}`);
  return n;
}

let stopRequested = false;

function progress(line: string): void {
  process.stderr.write(`[bench:web] ${line}\n`);
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Signs the owner in through the API and returns the session cookie for `origin`. */
async function ownerCookie(world: ScenarioWorld, origin: string): Promise<SignInCookie> {
  const res = await fetch(`${world.sys.url}/api/auth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      username: world.creds.owner.username,
      password: world.creds.owner.password,
    }),
  });
  const body = (await res.json()) as { token?: string; expiresAt?: number };
  if (res.status !== 200 || !body.token || !body.expiresAt) {
    throw new Error(`owner sign-in failed: ${res.status} ${JSON.stringify(body)}`);
  }
  return {
    name: SESSION_COOKIE,
    value: body.token,
    url: origin,
    httpOnly: true,
    sameSite: 'Strict',
    expires: Math.floor(body.expiresAt / 1000),
  };
}

/** The content-encoding the server answers the largest script with, when the client accepts gzip and br. */
async function scriptEncoding(world: ScenarioWorld, bundle: BundleResult): Promise<string> {
  const js = bundle.files
    .filter((f) => f.kind === 'js' && f.path.startsWith('assets/'))
    .sort((a, b) => b.rawBytes - a.rawBytes)[0];
  if (!js) return 'no script';
  const res = await fetch(`${world.sys.url}/${js.path}`, {
    headers: { 'accept-encoding': 'gzip, br' },
  });
  await res.arrayBuffer();
  return res.headers.get('content-encoding') ?? 'none';
}

function pairOf(
  app: readonly LoadSample[],
  base: readonly LoadSample[],
  pick: (s: LoadSample) => number | null,
): PairedMeasure {
  const values = (xs: readonly LoadSample[]) => xs.map(pick).filter((v): v is number => v !== null);
  const a = summarize90(values(app));
  const b = summarize90(values(base));
  return {
    app: a,
    baseline: b,
    ratioMedian: ratio(a.median, b.median),
    ratioP90: ratio(a.p90, b.p90),
  };
}

function phase(
  samples: readonly LoadSample[],
  pick: (p: LoadSample['phases']) => number | null,
): number[] {
  return samples.map((s) => pick(s.phases)).filter((v): v is number => v !== null);
}

async function firstLoads(
  browser: Browser,
  world: ScenarioWorld,
  bundle: BundleResult,
  runs: number,
): Promise<FirstLoadResult> {
  const appUrl = `http://localhost:${world.sys.port}/`;
  const baseline = await BaselineServer.start();
  try {
    const baseUrl = `http://localhost:${baseline.port}/`;
    const cookie = await ownerCookie(world, `http://localhost:${world.sys.port}`);
    const app: LoadSample[] = [];
    const base: LoadSample[] = [];
    const failures: string[] = [];
    const problems: string[] = [];
    const otherBuild: string[] = [];
    const measured = new Set(bundle.files.map((f) => `/${f.path}`));
    let inARow = 0;
    const total = LOAD_WARMUP_RUNS + runs;
    for (let i = 0; i < total && !stopRequested && inARow < MAX_FAILURES_IN_A_ROW; i++) {
      const counted = i >= LOAD_WARMUP_RUNS;
      const label = counted ? `run ${i - LOAD_WARMUP_RUNS + 1}/${runs}` : `warm-up ${i + 1}`;
      // Alternate which page goes first, so neither always follows the other's work.
      const order = i % 2 === 0 ? (['app', 'baseline'] as const) : (['baseline', 'app'] as const);
      const line: string[] = [];
      for (const which of order) {
        try {
          const s = await loadOnce(browser, which === 'app' ? appUrl : baseUrl, cookie);
          if (which === 'app') {
            problems.push(...s.pageProblems.map((p) => `${label}: ${p}`));
            inARow = 0;
          }
          if (counted) (which === 'app' ? app : base).push(s);
          if (counted && which === 'app' && s.assetPaths.some((p) => !measured.has(p))) {
            otherBuild.push(`${label}: ${s.assetPaths.join(', ')}`);
          }
          line.push(
            `${which} painted ${s.doorCardPaintedMs.toFixed(0)} ms, load ${s.loadEventEndMs.toFixed(0)} ms`,
          );
        } catch (err) {
          if (which === 'app') inARow += 1;
          if (counted) failures.push(`${label} ${which}: ${errorText(err)}`);
          line.push(`${which} FAILED: ${errorText(err)}`);
        }
      }
      progress(`first load ${label}: ${line.join('; ')}`);
    }
    const appFailures = failures.filter((f) => f.includes(' app: ')).length;
    const painted = pairOf(app, base, (s) => s.doorCardPaintedMs);
    return {
      runs,
      warmupRuns: LOAD_WARMUP_RUNS,
      appUrl,
      baselineBytes: Buffer.byteLength(BASELINE_HTML),
      loadEventEndMs: pairOf(app, base, (s) => s.loadEventEndMs),
      doorCardLaidOutMs: pairOf(app, base, (s) => s.doorCardLaidOutMs),
      doorCardPaintedMs: painted,
      firstContentfulPaintMs: pairOf(app, base, (s) => s.firstContentfulPaintMs),
      transferBytes: pairOf(app, base, (s) => s.transferBytes),
      appAssetBytes: summarize90(
        app.map((s) => s.assetBytes),
        0,
      ),
      appApiBytes: summarize90(
        app.map((s) => s.apiBytes),
        0,
      ),
      appRequests: summarize90(
        app.map((s) => s.requests),
        0,
      ),
      appPhasesMs: {
        assetsReceived: summarize90(
          phase(app, (p) => p.assetsReceivedMs),
          0,
        ),
        firstApiRequest: summarize90(
          phase(app, (p) => p.firstApiRequestMs),
          0,
        ),
        lastApiAnswerBeforeCard: summarize90(
          phase(app, (p) => p.lastApiAnswerBeforeCardMs),
          0,
        ),
      },
      scriptContentEncoding: await scriptEncoding(world, bundle),
      goalDoorCardMedianMs: DOOR_CARD_GOAL_MEDIAN_MS,
      meetsGoal:
        painted.app.median === null
          ? null
          : appFailures === 0 && painted.app.median < DOOR_CARD_GOAL_MEDIAN_MS,
      failures,
      loadsFromOtherBuild: otherBuild,
      pageProblems: problems.slice(0, 10),
    };
  } finally {
    await baseline.close();
  }
}

async function main(): Promise<WebBenchResult> {
  const loadStart = loadavg()[0] ?? 0;
  const plan = args.quick
    ? { runs: 5, minutes: 1, everyS: 10 }
    : { runs: 30, minutes: 10, everyS: 30 };
  const runs = Math.round(count('runs', args.runs, plan.runs));
  const minutes = count('minutes', args.minutes, plan.minutes);
  if (args.build) {
    progress('building the web app (npm run build:web)');
    const b = spawnSync('npm', ['run', '-s', 'build:web'], { stdio: ['ignore', 2, 2] });
    if (b.status !== 0) throw new Error(`npm run build:web failed (exit ${b.status})`);
  }
  const bundle = measureBundle(WEB_DIST_DIR);
  const fingerprint = buildFingerprint(WEB_DIST_DIR);
  progress(
    `bundle: JS ${(bundle.js.gzipBytes / 1000).toFixed(1)} KB gzipped; ` +
      `first loads ${runs} (+${LOAD_WARMUP_RUNS} warm-up) each; live view ${minutes} min`,
  );

  let world: ScenarioWorld | undefined;
  let browser: Browser | undefined;
  let off: (() => void) | undefined;
  try {
    world = await ScenarioWorld.create();
    const w = world;
    // Fresh frames the server publishes for the camera: what the page could have shown.
    let published = 0;
    let lastDigest: string | null = null;
    off = w.sys.events.subscribe((e) => {
      if (e.type !== 'live' || e.view.cameraId !== w.creds.devices.camera.id) return;
      const digest = e.view.frame?.digest ?? null;
      if (digest !== null && digest !== lastDigest) published += 1;
      lastDigest = digest;
    });
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    const b = browser;
    const firstLoad = await firstLoads(b, w, bundle, runs);
    const liveMemory =
      minutes > 0 && !stopRequested
        ? await runLiveMemory({
            browser: b,
            url: `http://localhost:${w.sys.port}/`,
            cookie: await ownerCookie(w, `http://localhost:${w.sys.port}`),
            minutes,
            sampleEverySeconds: plan.everyS,
            framesPublished: () => published,
            stopRequested: () => stopRequested,
            progress,
          })
        : null;
    const fingerprintEnd = buildFingerprint(WEB_DIST_DIR);
    return {
      date: new Date().toISOString(),
      quick: args.quick,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        node: process.version,
        platform: `${process.platform}-${process.arch}`,
        chromium: b.version(),
        loadAvg1m: { start: round2(loadStart), end: round2(loadavg()[0] ?? 0) },
      },
      build: {
        fingerprint,
        distChanged: fingerprintEnd !== fingerprint,
        liveViewFromOtherBuild:
          liveMemory === null
            ? null
            : liveMemory.assetPaths.some((p) => !bundle.files.some((f) => `/${f.path}` === p)),
      },
      bundle,
      firstLoad,
      liveMemory,
    };
  } finally {
    off?.();
    await browser?.close();
    await world?.close();
  }
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

if (args.help) {
  process.stdout.write(USAGE);
} else {
  process.once('SIGINT', () => {
    stopRequested = true;
    progress('interrupted: finishing the current step, then reporting what was measured');
  });
  try {
    const result = await main();
    process.stdout.write(
      args.json ? `${JSON.stringify(result, null, 2)}\n` : `${renderWebTable(result)}\n`,
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

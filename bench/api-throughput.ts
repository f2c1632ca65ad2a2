/**
 * API throughput (see docs/benchmarks.md): requests per second of the courier's "I'm at the
 * door" route (`POST /api/courier/deliveries/:deliveryId/access`) against a bare Fastify route
 * of the same shape (bench/api-bare-server.ts), both loaded by autocannon from this process.
 *
 * Threshold runs as production runs it: `node bin/threshold.js serve` on a data directory
 * seeded with the demo home (`seedDemo`), its simulated lock, door sensor and camera connected
 * by `threshold sim` in a process of their own. The courier signs in (a real sign-in token) and
 * has a valid delivery for today with its grant; before measuring, the bench checks through the
 * owner's API that the lock says locked, the door closed and the camera idle, and through the
 * courier's that the delivery is to do — so the door would open for the courier at the door.
 *
 * The request measured is the same courier asking from 450 m away (outside the home's 80 m
 * geofence): `presence.off-site`, 403. It runs every step of the route up to the decision —
 * the token lookup, the delivery, its sessions, the home, the door, the grant, the devices'
 * liveness, any session at the door, the owner's refusals, the decision — then records the
 * refusal in the audit log (one durable write, as the allowed request's first step is) and
 * answers. It never unlocks, so it can be repeated at full rate, and the state it reads stays
 * the same. What it leaves out is what follows an allowed decision: creating and persisting
 * the session and waiting for the devices (seconds of device time; bench/unlock-path.ts
 * measures that path's server time). A refusal is also what an attacker, or a confused app
 * retrying, can repeat at will.
 *
 * Rounds alternate Threshold and the bare route, `connections` keep-alive connections each,
 * `duration` seconds each, after an uncounted warm-up of each. Every answer must be the 403
 * with the catalogue's body (autocannon's `expectBody`); CPU time of each server process per
 * request comes from /proc (Linux). After the rounds, the server is stopped and its audit log
 * is checked: every refusal answered is on record, and the chain verifies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { sql } from 'kysely';
import { freePort } from '../src/harness/free-port.ts';
import { startServeChild, stopChildProcess } from '../src/harness/serve-child.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { verifyStoredLog } from '../src/server/audit-log.ts';
import { sha256Hex, verifyEd25519 } from '../src/server/keys.ts';
import { seedDemo, type DemoCredentials } from '../src/server/seed.ts';
import { startSystem } from '../src/server/system.ts';
import { openStore, type StoreOptions } from '../src/store/index.ts';
import { ratio, summarize, type Summary } from './sample-stats.ts';
import {
  benchMain,
  fmt,
  loadNow,
  machineOf,
  parseDialects,
  RANGE_HEAD,
  rangeRow,
  type BenchContext,
  type BenchRun,
  type Dialect,
} from './bench-report.ts';
import { benchDatabase, stopBenchPostgres } from './bench-postgres.ts';

/** 450 m north of the demo home's door (its geofence is 80 m): a courier still in the van. */
const OFF_SITE = { lat: 52.5361, lon: 13.3849, accuracyM: 8 } as const;

/** What one run does. */
export interface ApiBenchPlan {
  readonly rounds: number;
  /** Seconds per measured round of each server. */
  readonly durationS: number;
  /** Seconds of uncounted warm-up of each server. */
  readonly warmupS: number;
  readonly connections: number;
}

/** The full run (about 3 minutes) and the quick one (well under a minute). */
export const API_PLANS: { readonly full: ApiBenchPlan; readonly quick: ApiBenchPlan } = {
  full: { rounds: 5, durationS: 10, warmupS: 3, connections: 16 },
  quick: { rounds: 2, durationS: 3, warmupS: 1, connections: 16 },
};

/** How the bench is run. */
export interface ApiBenchOptions extends BenchContext {
  /** Where the server keeps its data (default SQLite in its data directory). */
  readonly dialect?: Dialect;
  /** Overrides the plan's connection count. */
  readonly connections?: number;
  /** Node options for the server process, e.g. `--cpu-prof --cpu-prof-dir DIR` to profile it. */
  readonly serveNodeArgs?: readonly string[];
}

/** One server's figures over the rounds. */
export interface ServerFigures {
  /** Requests answered per second, one sample per round. */
  readonly requestsPerSecond: Summary;
  /** Latency percentiles per round (autocannon, ms): the median of the rounds' values. */
  readonly latencyP50Ms: Summary;
  readonly latencyP99Ms: Summary;
  /** The server process's CPU time (user + system) per request, µs; null off Linux. */
  readonly cpuMicrosPerRequest: Summary;
  /** Answers that were not the expected status and body, errors and timeouts, all rounds. */
  readonly unexpected: number;
}

/** The API bench's result: one JSON-able object. */
export interface ApiBenchResult extends BenchRun {
  readonly dialect: Dialect;
  readonly route: string;
  readonly request: {
    readonly bodyBytes: number;
    readonly status: number;
    readonly responseBodyBytes: number;
    readonly code: string;
  };
  readonly rounds: number;
  readonly durationS: number;
  readonly connections: number;
  readonly threshold: ServerFigures;
  readonly bare: ServerFigures;
  readonly ratios: {
    /** Threshold's requests/s ÷ the bare route's (median of rounds). */
    readonly throughput: number | null;
    /** Threshold's CPU per request ÷ the bare route's (median of rounds). */
    readonly cpuPerRequest: number | null;
    readonly latencyP50: number | null;
  };
  /** After the rounds: the refusals answered and the ones the audit log holds. */
  readonly audit: {
    readonly refusalsAnswered: number;
    readonly refusalsRecorded: number;
    readonly chainVerifies: boolean;
    readonly entries: number;
  };
}

/** What autocannon v8 reports, as far as the bench reads it. */
interface CannonResult {
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly mismatches: number;
  readonly non2xx: number;
  readonly statusCodeStats: Record<string, { count: number }>;
  readonly latency: { readonly p50: number; readonly p99: number };
  readonly requests: { readonly total: number };
}

interface CannonOptions {
  readonly url: string;
  readonly method: 'POST';
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly connections: number;
  readonly duration: number;
  readonly expectBody: string;
}

// autocannon ships no types; these are the parts used here (see its README).
const autocannon = createRequire(import.meta.url)('autocannon') as (
  opts: CannonOptions,
) => Promise<CannonResult>;

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A child process whose output goes to `logPath`; ended by `stopChildProcess`. */
function startChild(args: readonly string[], logPath: string): ChildProcess {
  const fd = openSync(logPath, 'a');
  try {
    return spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

/** Polls `fn` every 100 ms until it returns true; throws with `what` after `timeoutMs`. */
async function waitUntil(
  fn: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  child?: ChildProcess,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`${what}: the process exited`);
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** User + system CPU time of a process, µs, from /proc; null where there is no /proc. */
function cpuMicros(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    // Linux reports in clock ticks; USER_HZ is 100 on every Linux Node runs on.
    return Number.isFinite(ticks) ? ticks * 10_000 : null;
  } catch {
    return null;
  }
}

async function http(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  token: string | null,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, text: await res.text() };
}

async function signIn(base: string, username: string, password: string): Promise<string> {
  const r = await http(base, 'POST', '/api/auth/sign-in', null, { username, password });
  const token = (JSON.parse(r.text) as { token?: unknown }).token;
  if (r.status !== 200 || typeof token !== 'string') {
    throw new Error(`sign-in of ${username} failed: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  }
  return token;
}

/** The door would open for the courier at the doorstep: devices live, locked, closed, idle. */
async function doorReady(
  base: string,
  ownerToken: string,
  creds: DemoCredentials,
): Promise<boolean> {
  const r = await http(base, 'GET', `/api/homes/${creds.homeId}`, ownerToken);
  if (r.status !== 200) return false;
  type Fact = { value: string; online: boolean };
  const home = JSON.parse(r.text) as {
    doors: { doorId: string; lock: Fact; door: Fact; camera: Fact }[];
  };
  const d = home.doors.find((x) => x.doorId === creds.doorId);
  return (
    d !== undefined &&
    d.lock.online &&
    d.lock.value === 'locked' &&
    d.door.online &&
    d.door.value === 'closed' &&
    d.camera.online &&
    d.camera.value === 'idle'
  );
}

/** Seeds the demo home into `dataDir` (and the database) with a system of its own, then stops it. */
async function seed(dataDir: string, databaseUrl: string | null): Promise<DemoCredentials> {
  const sys = await startSystem({
    dataDir,
    ...(databaseUrl === null ? {} : { databaseUrl }),
    port: 0,
    mqttPort: 0,
    clock: systemClock,
  });
  try {
    return await seedDemo(sys, dataDir);
  } finally {
    await sys.close();
  }
}

interface RoundSample {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuMicrosPerRequest: number | null;
  readonly unexpected: number;
  readonly answered: number;
}

async function round(
  url: string,
  pid: number | undefined,
  headers: Record<string, string>,
  body: string,
  expect: { status: number; body: string },
  connections: number,
  durationS: number,
): Promise<RoundSample> {
  const cpu0 = cpuMicros(pid);
  const r = await autocannon({
    url,
    method: 'POST',
    headers,
    body,
    connections,
    duration: durationS,
    expectBody: expect.body,
  });
  const cpu1 = cpuMicros(pid);
  const answered = r.requests.total;
  const expected = r.statusCodeStats[String(expect.status)]?.count ?? 0;
  return {
    rps: answered / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuMicrosPerRequest:
      cpu0 === null || cpu1 === null || answered === 0 ? null : (cpu1 - cpu0) / answered,
    unexpected: r.errors + r.timeouts + r.mismatches + Math.max(0, answered - expected),
    answered,
  };
}

function figures(samples: readonly RoundSample[]): ServerFigures {
  return {
    requestsPerSecond: summarize(
      samples.map((s) => s.rps),
      0,
    ),
    latencyP50Ms: summarize(
      samples.map((s) => s.p50),
      2,
    ),
    latencyP99Ms: summarize(
      samples.map((s) => s.p99),
      2,
    ),
    cpuMicrosPerRequest: summarize(
      samples.flatMap((s) => (s.cpuMicrosPerRequest === null ? [] : [s.cpuMicrosPerRequest])),
      1,
    ),
    unexpected: samples.reduce((a, s) => a + s.unexpected, 0),
  };
}

/** Runs the API bench once. */
export async function runApiBench(opts: ApiBenchOptions): Promise<ApiBenchResult> {
  const plan = opts.quick ? API_PLANS.quick : API_PLANS.full;
  const connections = opts.connections ?? plan.connections;
  const stop = opts.stopRequested ?? (() => false);
  const dialect = opts.dialect ?? 'sqlite';
  const loadStart = loadNow();
  const dir = mkdtempSync(join(opts.dataParent, 'threshold-bench-api-'));
  const dataDir = join(dir, 'data');
  const children: ChildProcess[] = [];
  let database: { url: string; drop(): Promise<void> } | null = null;
  try {
    if (dialect === 'postgres') database = await benchDatabase('api');
    opts.progress(`api (${dialect}): seeding the demo home`);
    const creds = await seed(dataDir, database?.url ?? null);
    const [port, mqttPort, barePort] = [await freePort(), await freePort(), await freePort()];
    const serve = await startServeChild({
      dataDir,
      httpPort: port,
      mqttPort,
      args: database === null ? [] : ['--database-url', database.url],
      ...(opts.serveNodeArgs ? { nodeArgs: opts.serveNodeArgs } : {}),
      // Relative paths in the Node options (a --cpu-prof-dir) are the repository's.
      cwd: REPO_ROOT,
      logFile: join(dir, 'serve.log'),
      startTimeoutMs: 120_000,
    });
    children.push(serve.child);
    const base = serve.url;
    opts.progress(`api: threshold serve (pid ${serve.pid}) is up`);
    const sim = startChild(
      [
        'bin/threshold.js',
        'sim',
        '--config',
        join(dataDir, 'demo-credentials.json'),
        '--broker',
        `mqtt://127.0.0.1:${mqttPort}`,
      ],
      join(dir, 'sim.log'),
    );
    children.push(sim);
    const courierToken = await signIn(base, creds.courier.username, creds.courier.password);
    const ownerToken = await signIn(base, creds.owner.username, creds.owner.password);
    await waitUntil(
      () => doorReady(base, ownerToken, creds),
      120_000,
      'the door is locked and closed and every device is live',
      sim,
    );
    const mine = await http(base, 'GET', '/api/courier/deliveries', courierToken);
    const delivery = (
      JSON.parse(mine.text) as { deliveries: { id: string; status: string }[] }
    ).deliveries.find((d) => d.id === creds.deliveryId);
    if (delivery?.status !== 'scheduled') {
      throw new Error(`the courier's delivery is not to do: ${mine.text.slice(0, 300)}`);
    }

    const path = `/api/courier/deliveries/${creds.deliveryId}/access`;
    const body = JSON.stringify({ position: OFF_SITE });
    const probe = await http(base, 'POST', path, courierToken, { position: OFF_SITE });
    const code = (JSON.parse(probe.text) as { error?: { code?: string } }).error?.code ?? '';
    if (probe.status !== 403 || code !== 'presence.off-site') {
      throw new Error(`the off-site request was answered ${probe.status} ${probe.text}`);
    }
    const expected = { status: probe.status, body: probe.text };
    const bare = startChild(
      [
        'bin/run-ts.js',
        'bench/api-bare-server.ts',
        '--port',
        String(barePort),
        '--status',
        String(probe.status),
        '--body',
        probe.text,
      ],
      join(dir, 'bare.log'),
    );
    children.push(bare);
    const bareBase = `http://127.0.0.1:${barePort}`;
    await waitUntil(
      async () => (await http(bareBase, 'GET', '/api/health', null)).status === 200,
      120_000,
      'the bare server answers /api/health',
      bare,
    );
    const bareProbe = await http(bareBase, 'POST', path, courierToken, { position: OFF_SITE });
    if (bareProbe.status !== probe.status || bareProbe.text !== probe.text) {
      throw new Error(`the bare route answered ${bareProbe.status} ${bareProbe.text}`);
    }

    const headers = { authorization: `Bearer ${courierToken}`, 'content-type': 'application/json' };
    let answeredByThreshold = 1;
    const runOn = async (which: 'threshold' | 'bare', seconds: number): Promise<RoundSample> => {
      const s = await round(
        `${which === 'threshold' ? base : bareBase}${path}`,
        (which === 'threshold' ? serve : bare).pid,
        headers,
        body,
        expected,
        connections,
        seconds,
      );
      if (which === 'threshold') answeredByThreshold += s.answered;
      return s;
    };
    opts.progress(`api: warm-up, ${plan.warmupS} s each`);
    await runOn('threshold', plan.warmupS);
    await runOn('bare', plan.warmupS);
    const t: RoundSample[] = [];
    const b: RoundSample[] = [];
    for (let i = 0; i < plan.rounds && !stop(); i++) {
      // Alternating, and each pair in the other order, so neither always follows the other.
      const order =
        i % 2 === 0 ? (['threshold', 'bare'] as const) : (['bare', 'threshold'] as const);
      for (const which of order) {
        const s = await runOn(which, plan.durationS);
        (which === 'threshold' ? t : b).push(s);
        opts.progress(
          `api round ${i + 1}/${plan.rounds} ${which}: ${Math.round(s.rps)} req/s, p50 ${s.p50} ms, p99 ${s.p99} ms, CPU ${s.cpuMicrosPerRequest?.toFixed(0) ?? '?'} µs/req${s.unexpected > 0 ? `, ${s.unexpected} unexpected` : ''}`,
        );
      }
    }

    // Stop the server (it signs a last checkpoint), then check its log.
    await stopChildProcess(sim);
    await serve.stop();
    const storeOptions: StoreOptions =
      database === null
        ? { dialect: 'sqlite', path: join(dataDir, 'threshold.db') }
        : { dialect: 'postgres', url: database.url };
    const store = await openStore(storeOptions);
    let audit: ApiBenchResult['audit'];
    try {
      const { rows } = await sql<{ n: number }>`select count(*) as n from audit_entries
        where kind = 'access.refused' and subject = ${`delivery:${creds.deliveryId}`}`.execute(
        store.db,
      );
      const key = readFileSync(join(dataDir, 'keys', 'audit-ed25519.pub'), 'utf8').trim();
      const v = await verifyStoredLog(store.audit, sha256Hex, verifyEd25519, [key]);
      audit = {
        refusalsAnswered: answeredByThreshold,
        refusalsRecorded: Number(rows[0]?.n ?? 0),
        chainVerifies: v.ok && v.unsignedTail === 0,
        entries: v.entries,
      };
    } finally {
      await store.close();
    }

    const threshold = figures(t);
    const bareFigures = figures(b);
    return {
      date: new Date().toISOString(),
      quick: opts.quick,
      machine: machineOf(loadStart, opts.dataParent),
      dialect,
      route: 'POST /api/courier/deliveries/:deliveryId/access',
      request: {
        bodyBytes: Buffer.byteLength(body),
        status: expected.status,
        responseBodyBytes: Buffer.byteLength(expected.body),
        code,
      },
      rounds: t.length,
      durationS: plan.durationS,
      connections,
      threshold,
      bare: bareFigures,
      ratios: {
        throughput: ratio(threshold.requestsPerSecond.median, bareFigures.requestsPerSecond.median),
        cpuPerRequest: ratio(
          threshold.cpuMicrosPerRequest.median,
          bareFigures.cpuMicrosPerRequest.median,
        ),
        latencyP50: ratio(threshold.latencyP50Ms.median, bareFigures.latencyP50Ms.median),
      },
      audit,
    };
  } finally {
    for (const c of children.reverse()) await stopChildProcess(c);
    await database?.drop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The result as a plain-text table. */
export function renderApiTable(r: ApiBenchResult): string {
  const row = rangeRow;
  const server = (name: string, f: ServerFigures): string[] => [
    row(`  ${name}: requests per second`, f.requestsPerSecond, 0, '/s'),
    row('    latency p50', f.latencyP50Ms, 2, 'ms'),
    row('    latency p99', f.latencyP99Ms, 2, 'ms'),
    row('    server CPU per request', f.cpuMicrosPerRequest, 1, 'µs'),
    ...(f.unexpected > 0 ? [`    UNEXPECTED answers, errors or timeouts: ${f.unexpected}`] : []),
  ];
  const a = r.audit;
  return [
    `API (${r.dialect}) — ${r.date}${r.quick ? ' (quick)' : ''}; ${r.route}, ${r.request.bodyBytes} B body → ${r.request.status} ${r.request.code} (${r.request.responseBodyBytes} B); ${r.rounds} rounds × ${r.durationS} s, ${r.connections} connections`,
    RANGE_HEAD,
    ...server('Threshold', r.threshold),
    ...server('bare Fastify route', r.bare),
    `  Threshold ÷ bare: throughput ${fmt(r.ratios.throughput, 2)}, CPU per request ${fmt(r.ratios.cpuPerRequest, 2)}, p50 latency ${fmt(r.ratios.latencyP50, 2)}`,
    `  audit: ${a.refusalsRecorded} of ${a.refusalsAnswered} refusals answered are on record; chain ${a.chainVerifies ? 'verifies' : 'DOES NOT verify'} (${a.entries} entries)`,
    '',
  ].join('\n');
}

const USAGE = `usage: node bin/run-ts.js bench/api-throughput.ts [--quick] [--json] [--data-dir DIR] [--dialect sqlite|postgres|both] [--connections N] [--profile DIR]
  --quick          2 rounds of 3 s per server (under a minute)
  --json           print one JSON object instead of the table
  --data-dir DIR   put the server's data directory under DIR instead of the temporary directory
  --dialect D      sqlite (default), postgres (a throwaway cluster, or THRESHOLD_BENCH_POSTGRES_URL), or both
  --connections N  keep-alive connections autocannon keeps open (default 16)
  --profile DIR    run the server under node --cpu-prof; its profile is written to DIR
`;

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await benchMain(
    USAGE,
    { dialect: { type: 'string' }, connections: { type: 'string' }, profile: { type: 'string' } },
    async (args, ctx) => {
      const dialects = parseDialects(args.dialect, ['sqlite']);
      if (typeof dialects === 'string') return dialects;
      const connections = args.connections === undefined ? undefined : Number(args.connections);
      if (connections !== undefined && (!Number.isInteger(connections) || connections < 1))
        return `--connections takes a whole number of at least 1; not ${args.connections}`;
      const results: ApiBenchResult[] = [];
      try {
        for (const dialect of dialects) {
          if (ctx.stopRequested?.()) break;
          results.push(
            await runApiBench({
              ...ctx,
              dialect,
              ...(connections === undefined ? {} : { connections }),
              ...(args.profile === undefined
                ? {}
                : { serveNodeArgs: ['--cpu-prof', '--cpu-prof-dir', resolve(args.profile)] }),
            }),
          );
        }
      } finally {
        await stopBenchPostgres();
      }
      return {
        json: results.length === 1 ? results[0]! : { api: results },
        table: results.map(renderApiTable).join('\n'),
      };
    },
  );
}

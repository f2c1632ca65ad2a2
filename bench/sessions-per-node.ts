/**
 * Sessions watched per node (see docs/benchmarks.md): how many concurrent access sessions one
 * Threshold control plane watches, each with a camera sending heartbeats at 2 Hz over MQTT,
 * before it notices a silenced camera too late (detection p99 > 1.5 s) or misses a heartbeat
 * (an honest camera's session raises an alarm). Beside it, the floor: mosquitto's raw QoS 1
 * message rate on the same machine in the same run.
 *
 * The server runs as production runs it, in a process of its own so that its resident memory
 * and CPU time are its own: `node bin/threshold.js serve` with its embedded broker (the one
 * process a node runs), on SQLite in its data directory or on PostgreSQL (`--database-url`),
 * with `/metrics` on. Before it starts, the bench seeds the store directly (batched
 * transactions through the store's repositories): one carrier, one courier, and per home a
 * door with a lock and a camera, the carrier allowed, and a delivery due now with its grant
 * (the door may stay open for an hour, the longest a lock takes, so no session reaches its own
 * deadline).
 *
 * Devices come from load generator processes (bench/sessions-load.ts): each home's lock and
 * camera, each its own authenticated MQTT connection to the server's broker. Sessions are real
 * sessions: the courier asks for each door over HTTP (`POST
 * /api/courier/deliveries/:id/access`, from the home's doorstep), the server arms the camera,
 * takes its first heartbeat, unlocks, the lock reports unlocked, and the session is `open` and
 * watched. The lock of a session that is not to be silenced then disconnects (cleanly, so no
 * will message): on this machine a process may hold at most 20,000 sockets (hard limit), so a
 * watched session keeps one connection at the server, its camera's.
 *
 * Steps (e.g. 500, 1,000, 2,000, 5,000, 10,000…): sessions are added up to the step's count;
 * then for `holdSeconds` the bench measures the server's heartbeat ingest (authentic heartbeats
 * counted by its /metrics, per second, against the 2 per second per session offered), its CPU
 * time (/proc) and resident set (VmRSS, sampled every second); then it silences a sample of
 * sessions' cameras at random moments: detection = the alarm's time − the time the server took
 * the last heartbeat (`atMs − sinceMs` of the session's observation-lost alarm, both server
 * clock), and last heartbeat sent → alarm (same machine, wall clocks). At the end of each step
 * every other running session must be `open` and alarm-free (a false alarm = a missed
 * heartbeat); any camera told to disarm that was not silenced counts too. The bench stops at
 * the first step that fails (detection p99 > 1.5 s, a silenced camera not detected within 5 s,
 * a false alarm, a session that did not open) or after the last step.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/harness/free-port.ts';
import { startMosquitto } from '../src/harness/mosquitto.ts';
import { startServeChild } from '../src/harness/serve-child.ts';
import { hashPassword } from '../src/server/auth.ts';
import { loadOrCreateKeys } from '../src/server/keys.ts';
import { openStore, type Store, type StoreOptions } from '../src/store/index.ts';
import {
  benchMain,
  errorText,
  fmt,
  goalText,
  loadNow,
  machineOf,
  parseDialects,
  type BenchContext,
  type BenchRun,
  type Dialect,
} from './bench-report.ts';
import { benchDatabase, stopBenchPostgres } from './bench-postgres.ts';
import type { LoadHome, LoadRequest, LoadStats } from './sessions-load.ts';
import { ratio, summarize, type Summary } from './sample-stats.ts';
import { seededHomeIds, seedHomes } from './seed-homes.ts';

/** Goals from issue 8. */
export const SESSIONS_GOALS = {
  sessions: 10_000,
  rssMb: 300,
  detectionP99Ms: 1_500,
  ingestToFloor: 0.5,
} as const;

const HEARTBEAT_INTERVAL_MS = 500;
/** The server's silence threshold (production's default). */
const SILENCE_MS = 1_250;
/** A silenced camera not detected within this is a failed detection. */
const DETECTION_TIMEOUT_MS = 5_000;
/** The demo home's doorstep; every bench home stands there (the geofence is per home). */
const DOORSTEP = { lat: 52.53212, lon: 13.38492, accuracyM: 8 } as const;
/** Most sockets one load generator holds (the machine's hard limit is 20,000 per process). */
const HOMES_PER_LOADGEN = 8_000;
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What one run does. */
export interface SessionsBenchPlan {
  /** Concurrent watched sessions at each step. */
  readonly steps: readonly number[];
  /** Seconds of steady measurement at each step. */
  readonly holdSeconds: number;
  /** Cameras silenced at each step (detection samples). */
  readonly silencedPerStep: number;
  /** Seconds over which the silences are spread. */
  readonly silenceSpreadSeconds: number;
  /** The floor: rounds, seconds each, publisher connections, unacknowledged messages each. */
  readonly floor: {
    readonly rounds: number;
    readonly seconds: number;
    readonly publishers: number;
    readonly window: number;
  };
}

/** The full run and the quick one. */
export const SESSIONS_PLANS: {
  readonly full: SessionsBenchPlan;
  readonly quick: SessionsBenchPlan;
} = {
  full: {
    steps: [500, 1_000, 2_000, 5_000, 10_000, 15_000, 18_000],
    holdSeconds: 20,
    silencedPerStep: 40,
    silenceSpreadSeconds: 4,
    floor: { rounds: 3, seconds: 5, publishers: 100, window: 10 },
  },
  quick: {
    steps: [100, 200],
    holdSeconds: 5,
    silencedPerStep: 10,
    silenceSpreadSeconds: 2,
    floor: { rounds: 1, seconds: 3, publishers: 50, window: 10 },
  },
};

/** How the bench is run. */
export interface SessionsBenchOptions extends BenchContext {
  readonly dialect: Dialect;
  /** Overrides the plan's steps. */
  readonly steps?: readonly number[];
  /** Overrides the plan's hold time, s. */
  readonly holdSeconds?: number;
  /** Skip the mosquitto floor (e.g. when it was measured by a run on the other dialect). */
  readonly skipFloor?: boolean;
  /** Node options for the server process, e.g. `--cpu-prof --cpu-prof-dir DIR`. */
  readonly serveNodeArgs?: readonly string[];
  /** Leave the data directory and logs behind (their path is printed). */
  readonly keep?: boolean;
}

/** One step's figures. */
export interface SessionsStep {
  /** Watched sessions during the steady measurement. */
  readonly sessions: number;
  /** Sessions asked for in this step that did not reach `open`, with why. */
  readonly notOpened: readonly string[];
  /** Seconds the step's new sessions took to open, all of them. */
  readonly rampSeconds: number;
  /** Heartbeats offered per second (2 per session). */
  readonly offeredPerSecond: number;
  /** Authentic heartbeats the server took per second (its /metrics), steady part. */
  readonly ingestPerSecond: number;
  /** Heartbeats the load generators wrote per second, steady part. */
  readonly sentPerSecond: number;
  /** Server CPU, cores (CPU seconds per second), steady part. */
  readonly serverCpuCores: number;
  /** Server CPU per heartbeat taken, µs. */
  readonly serverCpuMicrosPerHeartbeat: number | null;
  /** Load generators' CPU, cores, steady part. */
  readonly loadCpuCores: number;
  /** Server resident set, MB (10^6 bytes): highest sample and at the end of the steady part. */
  readonly serverRssMb: { readonly max: number; readonly end: number };
  /** The server's V8 heap in use and external memory at the end of the steady part, MB. */
  readonly serverHeapMb: { readonly used: number; readonly external: number };
  /** The server's longest event-loop delay, s: in the steady part, and while silencing. */
  readonly loopDelayMaxS: { readonly steady: number; readonly silencing: number };
  /** Heartbeat lag (capture → server), upper bound of the bucket holding the p99, s. */
  readonly heartbeatLagP99S: number | null;
  /** Detection: last heartbeat taken → observation-lost, ms (server clock). */
  readonly detectionMs: Summary;
  /** Last heartbeat sent → alarm, ms (the generator's and the server's wall clocks, same machine). */
  readonly sentToAlarmMs: Summary;
  /** Silenced cameras whose alarm did not come within the timeout. */
  readonly undetected: number;
  /** Running, not silenced sessions that are not `open` or carry an alarm; and why. */
  readonly falseAlarms: readonly string[];
  /** Heartbeats written later than due by the load generators (they lagged). */
  readonly generatorLateBeats: number;
  readonly passed: boolean;
}

/** The floor: mosquitto, QoS 1, many publishers → one subscriber. */
export interface MosquittoFloor {
  readonly publishers: number;
  readonly window: number;
  readonly payloadBytes: number;
  /** Messages the subscriber received per second, one sample per round. */
  readonly receivedPerSecond: Summary;
  /** Messages the publishers had acknowledged by the broker per second. */
  readonly publishedPerSecond: Summary;
}

/** The sessions bench's result: one JSON-able object. */
export interface SessionsBenchResult extends BenchRun {
  readonly dialect: Dialect;
  readonly server: string;
  /** Homes seeded (every step's sessions and the silenced ones), and the server's start-up, s. */
  readonly homes: number;
  readonly serverStartSeconds: number;
  readonly heartbeatIntervalMs: number;
  readonly silenceMs: number;
  readonly steps: readonly SessionsStep[];
  /** The largest step that passed, sessions. */
  readonly maxSessions: number;
  /** Its server RSS (highest sample), MB. */
  readonly rssMbAtMax: number | null;
  /** The highest ingest of a passing step, heartbeats/s. */
  readonly maxIngestPerSecond: number | null;
  readonly floor: MosquittoFloor | null;
  readonly ratios: {
    /** Highest passing ingest ÷ mosquitto's median received rate. */
    readonly ingestToFloor: number | null;
  };
  readonly goals: typeof SESSIONS_GOALS;
  readonly meetsGoal: {
    readonly sessions: boolean | null;
    readonly rss: boolean | null;
    readonly ingest: boolean | null;
  };
  /** Why the bench stopped raising. */
  readonly stoppedBecause: string;
}

/** A load generator child and its request channel. */
class LoadGen {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();

  private constructor(readonly child: ChildProcess) {
    child.on('error', () => undefined);
    child.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(m.error));
      else w?.resolve(m.result);
    });
    child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`load generator exited (${code})`));
      this.waiting.clear();
    });
  }

  static start(logPath: string): LoadGen {
    const fd = openSync(logPath, 'a');
    try {
      return new LoadGen(
        fork(join(REPO_ROOT, 'bin', 'run-ts.js'), ['bench/sessions-load.ts'], {
          cwd: REPO_ROOT,
          stdio: ['ignore', fd, fd, 'ipc'],
        }),
      );
    } finally {
      closeSync(fd);
    }
  }

  ask<T>(request: LoadRequest): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) {
        reject(new Error('the load generator is gone (see its log)'));
        return;
      }
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, request }, (err) => {
        if (err === null) return;
        this.waiting.delete(id);
        reject(err);
      });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    await this.ask({ type: 'exit' }).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** User + system CPU time of a process, µs (Linux /proc); null without /proc. */
function cpuMicros(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

/** Resident set of a process, bytes (Linux /proc); null without /proc. */
function rssBytes(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The homes: ids, derived from the index. */
function homeOf(i: number): LoadHome & { doorId: string } {
  return seededHomeIds('bench', i);
}

const COURIER = { id: 'bench-courier', username: 'bench-courier' } as const;
const CARRIER_ID = 'bench-carrier';

/** Seeds `count` homes (each with a delivery due now) and the courier; returns delivery ids. */
async function seed(
  store: Store,
  count: number,
  courierPassword: string,
  progress: (l: string) => void,
): Promise<string[]> {
  const now = Date.now();
  return seedHomes(store, {
    count,
    prefix: 'bench',
    carrier: { id: CARRIER_ID, name: 'Bench carrier' },
    courier: {
      id: COURIER.id,
      username: COURIER.username,
      displayName: 'Bench courier',
      passwordHash: await hashPassword(courierPassword),
    },
    home: (i) => ({
      name: `Bench home ${i}`,
      address: `Bench street ${i}`,
      geofence: { lat: DOORSTEP.lat, lon: DOORSTEP.lon, radiusM: 80 },
    }),
    delivery: {
      windowStart: now - 3_600_000,
      windowEnd: now + 9 * 3_600_000,
      createdAt: now,
      // Longer than any run: no session reaches its own deadline while it is measured.
      maxOpenMs: 3_600_000,
    },
    perHome: async (trx, _i, h) => {
      // The row allowCarrier writes (it opens a transaction of its own, not nestable here).
      await trx
        .insertInto('home_carriers')
        .values({
          home_id: h.homeId,
          carrier_id: CARRIER_ID,
          allowed_at: now,
          status: 'allowed',
          decided_by: null,
        })
        .execute();
    },
    progress: (seeded) => progress(`sessions: seeded ${seeded} of ${count} homes`),
  });
}

/** What /metrics says about heartbeats: the count and the lag histogram's buckets. */
interface HeartbeatMetrics {
  readonly count: number;
  readonly buckets: ReadonlyMap<number, number>;
  /** The server's V8 heap in use and its external memory (Buffers…), bytes. */
  readonly heapUsed: number;
  readonly external: number;
  /** The longest event-loop delay since the last scrape (prom-client resets it), s. */
  readonly loopLagMax: number;
}

async function heartbeatMetrics(base: string, token: string): Promise<HeartbeatMetrics> {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  let count = 0;
  let heapUsed = 0;
  let external = 0;
  let loopLagMax = 0;
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('nodejs_heap_size_used_bytes ')) heapUsed = Number(line.split(' ')[1]);
    if (line.startsWith('nodejs_external_memory_bytes ')) external = Number(line.split(' ')[1]);
    if (line.startsWith('nodejs_eventloop_lag_max_seconds '))
      loopLagMax = Number(line.split(' ')[1]);
    if (line.startsWith('threshold_heartbeat_lag_seconds_count'))
      count = Number(line.split(' ')[1]);
    const m = /^threshold_heartbeat_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(line);
    if (m) buckets.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  }
  return { count, buckets, heapUsed, external, loopLagMax };
}

/** The upper bound of the bucket that holds the p99 of the heartbeats between two scrapes. */
function lagP99(a: HeartbeatMetrics, b: HeartbeatMetrics): number | null {
  const total = b.count - a.count;
  if (total <= 0) return null;
  for (const [le, n] of [...b.buckets].sort((x, y) => x[0] - y[0])) {
    if (n - (a.buckets.get(le) ?? 0) >= 0.99 * total) return le;
  }
  return null;
}

interface Alarm {
  readonly type: string;
  readonly atMs: number;
  readonly sinceMs: number;
}

function alarmsOf(data: unknown): Alarm[] {
  const d = (typeof data === 'string' ? JSON.parse(data) : data) as { alarms?: Alarm[] } | null;
  return d?.alarms ?? [];
}

/** Measures mosquitto's raw QoS 1 rate: publishers in one generator, the subscriber in another. */
async function mosquittoFloor(
  plan: SessionsBenchPlan['floor'],
  payloadBytes: number,
  dir: string,
  progress: (l: string) => void,
): Promise<MosquittoFloor> {
  const broker = await startMosquitto();
  const pub = LoadGen.start(join(dir, 'floor-pub.log'));
  const sub = LoadGen.start(join(dir, 'floor-sub.log'));
  try {
    await sub.ask({ type: 'floorSubscribe', port: broker.port });
    const received: number[] = [];
    const published: number[] = [];
    for (let r = 0; r < plan.rounds; r++) {
      const before = await sub.ask<{ received: number }>({ type: 'floorCount' });
      const p = await pub.ask<{ published: number; acked: number; seconds: number }>({
        type: 'floorPublish',
        port: broker.port,
        connections: plan.publishers,
        window: plan.window,
        payloadBytes,
        seconds: plan.seconds,
      });
      // What was published has reached the subscriber, or never will.
      await sleep(500);
      const after = await sub.ask<{ received: number }>({ type: 'floorCount' });
      received.push((after.received - before.received) / p.seconds);
      published.push(p.acked / p.seconds);
      progress(
        `sessions: mosquitto floor round ${r + 1}/${plan.rounds}: ${Math.round(received.at(-1) ?? 0)} received/s, ${Math.round(published.at(-1) ?? 0)} published/s`,
      );
    }
    return {
      publishers: plan.publishers,
      window: plan.window,
      payloadBytes,
      receivedPerSecond: summarize(received, 0),
      publishedPerSecond: summarize(published, 0),
    };
  } finally {
    await pub.stop();
    await sub.stop();
    await broker.stop();
  }
}

/** A heartbeat's size on the wire (payload), bytes, as the generators write it. */
const HEARTBEAT_PAYLOAD_BYTES = 280;

/** Runs the sessions bench once, on one dialect. */
export async function runSessionsBench(opts: SessionsBenchOptions): Promise<SessionsBenchResult> {
  const plan = opts.quick ? SESSIONS_PLANS.quick : SESSIONS_PLANS.full;
  const steps = opts.steps ?? plan.steps;
  const holdSeconds = opts.holdSeconds ?? plan.holdSeconds;
  const stop = opts.stopRequested ?? (() => false);
  const say = opts.progress;
  const loadStart = loadNow();
  const dir = mkdtempSync(join(opts.dataParent, 'threshold-bench-sessions-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const children: { stop(): Promise<void> }[] = [];
  let store: Store | undefined;
  let database: { url: string; drop(): Promise<void> } | undefined;
  try {
    const floor = opts.skipFloor
      ? null
      : await mosquittoFloor(plan.floor, HEARTBEAT_PAYLOAD_BYTES, dir, say);

    const maxSessions = Math.max(...steps);
    const homesNeeded = maxSessions + plan.silencedPerStep * steps.length;
    const storeOptions: StoreOptions =
      opts.dialect === 'sqlite'
        ? { dialect: 'sqlite', path: join(dataDir, 'threshold.db') }
        : { dialect: 'postgres', url: (database = await benchDatabase('sessions')).url };
    store = await openStore(storeOptions);
    const keys = loadOrCreateKeys(dataDir);
    const courierPassword = randomBytes(12).toString('base64url');
    say(`sessions (${opts.dialect}): seeding ${homesNeeded} homes`);
    const deliveries = await seed(store, homesNeeded, courierPassword, say);

    const [port, mqttPort] = [await freePort(), await freePort()];
    const token = randomBytes(32).toString('hex');
    const tokenFile = join(dir, 'metrics-token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const startedAt = performance.now();
    const server = await startServeChild({
      dataDir,
      httpPort: port,
      mqttPort,
      args: [
        '--metrics-token-file',
        tokenFile,
        ...(database ? ['--database-url', database.url] : []),
      ],
      ...(opts.serveNodeArgs ? { nodeArgs: opts.serveNodeArgs } : {}),
      // Relative paths in the Node options (a --cpu-prof-dir) are the repository's.
      cwd: REPO_ROOT,
      logFile: join(dir, 'serve.log'),
      startTimeoutMs: 600_000,
      pollMs: 200,
    });
    children.push({ stop: () => server.stop(30_000) });
    const base = server.url;
    const serverStartSeconds = Math.round((performance.now() - startedAt) / 100) / 10;
    say(`sessions: threshold serve (pid ${server.pid}) is up after ${serverStartSeconds} s`);
    const signIn = await fetch(`${base}/api/auth/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: COURIER.username, password: courierPassword }),
    });
    const courierToken = ((await signIn.json()) as { token?: string }).token;
    if (signIn.status !== 200 || courierToken === undefined)
      throw new Error(`the courier could not sign in: ${signIn.status}`);

    // Homes are dealt round-robin to the generators; a generator knows the homes by index.
    const genCount = Math.max(1, Math.ceil(homesNeeded / HOMES_PER_LOADGEN));
    const gens: LoadGen[] = [];
    for (let g = 0; g < genCount; g++) {
      const gen = LoadGen.start(join(dir, `load-${g}.log`));
      gens.push(gen);
      children.push(gen);
    }
    const allHomes = Array.from({ length: homesNeeded }, (_, i) => homeOf(i));
    await Promise.all(
      gens.map((gen, g) =>
        gen.ask({
          type: 'init',
          port: mqttPort,
          masterKey: Buffer.from(keys.masterKey).toString('base64url'),
          homes: allHomes,
          // Source addresses: a loopback connection needs a source port of its own.
          localAddresses: [`127.0.${g + 1}.1`, `127.0.${g + 1}.2`],
          heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
        }),
      ),
    );
    const genOf = (i: number): LoadGen => gens[i % genCount]!;
    const byGen = (indices: readonly number[]): Map<LoadGen, number[]> => {
      const m = new Map<LoadGen, number[]>();
      for (const i of indices) {
        const g = genOf(i);
        const list = m.get(g) ?? [];
        list.push(i);
        m.set(g, list);
      }
      return m;
    };
    const genStats = async (): Promise<LoadStats[]> =>
      Promise.all(gens.map((g) => g.ask<LoadStats>({ type: 'stats' })));

    /** Opens sessions on homes `indices`; returns the session ids and what did not open. */
    const openSessions = async (
      indices: readonly number[],
      keepLocks: ReadonlySet<number>,
    ): Promise<{ ids: Map<number, string>; failed: string[] }> => {
      const ids = new Map<number, string>();
      const failed: string[] = [];
      const CHUNK = 250;
      for (let from = 0; from < indices.length; from += CHUNK) {
        const chunk = indices.slice(from, from + CHUNK);
        for (const [gen, list] of byGen(chunk)) {
          const r = await gen.ask<{ connected: number; errors: string[] }>({
            type: 'connect',
            homes: list,
          });
          if (r.errors.length > 0) failed.push(...r.errors.map((e) => `connect ${e}`));
        }
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < chunk.length) {
            const i = chunk[next++]!;
            const res = await fetch(`${base}/api/courier/deliveries/${deliveries[i]}/access`, {
              method: 'POST',
              headers: {
                authorization: `Bearer ${courierToken}`,
                'content-type': 'application/json',
              },
              body: JSON.stringify({ position: DOORSTEP }),
            }).catch((err: unknown) => ({
              status: 0,
              text: () => Promise.resolve(errorText(err)),
            }));
            const text = await res.text();
            let state = '';
            try {
              const s = (JSON.parse(text) as { session?: { id: string; state: string } }).session;
              if (s) {
                ids.set(i, s.id);
                state = s.state;
              }
            } catch {
              state = '';
            }
            if (res.status !== 200 || state !== 'open')
              failed.push(`home ${i}: HTTP ${res.status} ${state} ${text.slice(0, 160)}`);
          }
        };
        await Promise.all(Array.from({ length: 24 }, worker));
        const release = chunk.filter((i) => !keepLocks.has(i));
        for (const [gen, list] of byGen(release))
          await gen.ask({ type: 'releaseLocks', homes: list });
      }
      return { ids, failed };
    };

    const results: SessionsStep[] = [];
    const honest = new Map<number, string>();
    let nextHome = 0;
    let stoppedBecause = 'every step passed';
    for (const target of steps) {
      if (stop()) {
        stoppedBecause = 'interrupted';
        break;
      }
      // New sessions up to the target, plus the ones to silence (kept apart, locks connected).
      const add = Math.max(0, target - honest.size);
      const fresh = Array.from({ length: add + plan.silencedPerStep }, (_, k) => nextHome + k);
      nextHome += fresh.length;
      const sample = new Set(fresh.slice(add));
      say(`sessions: step ${target}: opening ${fresh.length} sessions`);
      const t0 = performance.now();
      const stepStart = Date.now();
      const opened = await openSessions(fresh, sample);
      const rampSeconds = (performance.now() - t0) / 1000;
      for (const [i, id] of opened.ids) if (!sample.has(i)) honest.set(i, id);
      const watched = honest.size + sample.size;
      say(
        `sessions: step ${target}: ${watched} sessions watched (${opened.failed.length} did not open), ramp ${rampSeconds.toFixed(1)} s`,
      );
      // Let the new sessions' first heartbeats settle, then measure the steady state.
      await sleep(2_000);
      const m0 = await heartbeatMetrics(base, token);
      const c0 = cpuMicros(server.pid);
      const g0 = await genStats();
      const w0 = performance.now();
      const rss: number[] = [];
      while (performance.now() - w0 < holdSeconds * 1000) {
        await sleep(1_000);
        const r = rssBytes(server.pid);
        if (r !== null) rss.push(r);
      }
      const m1 = await heartbeatMetrics(base, token);
      const c1 = cpuMicros(server.pid);
      const g1 = await genStats();
      const secs = (performance.now() - w0) / 1000;
      const sum = (s: LoadStats[], f: (x: LoadStats) => number): number =>
        s.reduce((a, x) => a + f(x), 0);
      const ingest = (m1.count - m0.count) / secs;
      const cpuCores = c0 === null || c1 === null ? 0 : (c1 - c0) / 1e6 / secs;

      // Silence the sample at random moments over the spread; note each camera's last heartbeat.
      const lastSent = new Map<number, number>();
      await Promise.all(
        [...sample].map(async (i) => {
          await sleep(Math.random() * plan.silenceSpreadSeconds * 1000);
          const r = await genOf(i).ask<{ lastSent: Record<number, number | null> }>({
            type: 'silence',
            homes: [i],
          });
          const t = r.lastSent[i];
          if (t !== null && t !== undefined) lastSent.set(i, t);
        }),
      );
      const detection: number[] = [];
      const sentToAlarm: number[] = [];
      const waitUntil = Date.now() + DETECTION_TIMEOUT_MS;
      const pendingIds = new Map(
        [...sample].flatMap((i) => {
          const id = opened.ids.get(i);
          return id === undefined ? [] : [[i, id] as const];
        }),
      );
      while (pendingIds.size > 0 && Date.now() < waitUntil) {
        await sleep(250);
        for (const [i, id] of [...pendingIds]) {
          const row = await store.sessions.get(id);
          const lost = alarmsOf(row?.data).find((a) => a.type === 'observation-lost');
          if (!lost) continue;
          pendingIds.delete(i);
          detection.push(lost.atMs - lost.sinceMs);
          const sent = lastSent.get(i);
          if (sent !== undefined) sentToAlarm.push(lost.atMs - sent);
        }
      }
      const undetected = pendingIds.size;
      const m2 = await heartbeatMetrics(base, token);

      // Every other session must still be open and quiet.
      const falseAlarms: string[] = [];
      const running = new Map((await store.sessions.listOpen()).map((s) => [s.id, s]));
      for (const [i, id] of honest) {
        const s = running.get(id);
        const alarms = alarmsOf(s?.data);
        if (!s || s.state !== 'open' || alarms.length > 0) {
          falseAlarms.push(
            `home ${i}: ${s?.state ?? 'ended'}${alarms.length > 0 ? `, ${alarms.map((a) => `${a.type} ${((a.atMs - stepStart) / 1000).toFixed(1)} s into the step`).join(', ')}` : ''}`,
          );
        }
      }
      const g2 = await genStats();
      for (const g of g2)
        for (const i of g.unexpectedDisarms)
          if (!falseAlarms.some((f) => f.startsWith(`home ${i}:`)))
            falseAlarms.push(`home ${i}: its camera was told to disarm`);
      const det = summarize(detection, 0);
      const notOpened = opened.failed;
      const passed =
        notOpened.length === 0 &&
        falseAlarms.length === 0 &&
        undetected === 0 &&
        det.p99 !== null &&
        det.p99 <= SESSIONS_GOALS.detectionP99Ms;
      const step: SessionsStep = {
        sessions: watched,
        notOpened: notOpened.slice(0, 20),
        rampSeconds: Math.round(rampSeconds * 10) / 10,
        offeredPerSecond: watched * (1000 / HEARTBEAT_INTERVAL_MS),
        ingestPerSecond: Math.round(ingest),
        sentPerSecond: Math.round(
          (sum(g1, (x) => x.heartbeatsSent) - sum(g0, (x) => x.heartbeatsSent)) / secs,
        ),
        serverCpuCores: Math.round(cpuCores * 100) / 100,
        serverCpuMicrosPerHeartbeat:
          ingest > 0 ? Math.round(((cpuCores * 1e6) / ingest) * 10) / 10 : null,
        loadCpuCores:
          Math.round(
            ((sum(g1, (x) => x.cpuMicros) - sum(g0, (x) => x.cpuMicros)) / 1e6 / secs) * 100,
          ) / 100,
        serverRssMb: {
          max: Math.round(Math.max(0, ...rss) / 1e6),
          end: Math.round((rss.at(-1) ?? 0) / 1e6),
        },
        serverHeapMb: {
          used: Math.round(m1.heapUsed / 1e6),
          external: Math.round(m1.external / 1e6),
        },
        loopDelayMaxS: { steady: m1.loopLagMax, silencing: m2.loopLagMax },
        heartbeatLagP99S: lagP99(m0, m1),
        detectionMs: det,
        sentToAlarmMs: summarize(sentToAlarm, 0),
        undetected,
        falseAlarms: falseAlarms.slice(0, 20),
        generatorLateBeats: sum(g1, (x) => x.lateBeats) - sum(g0, (x) => x.lateBeats),
        passed,
      };
      results.push(step);
      say(
        `sessions: step ${target}: ingest ${step.ingestPerSecond}/s of ${step.offeredPerSecond} offered, server CPU ${step.serverCpuCores} cores (${fmt(step.serverCpuMicrosPerHeartbeat)} µs/heartbeat), RSS ${step.serverRssMb.max} MB (heap ${step.serverHeapMb.used} MB), generators ${step.loadCpuCores} cores, loop delay max ${step.loopDelayMaxS.steady} / ${step.loopDelayMaxS.silencing} s, detection p50 ${fmt(det.median)} / p99 ${fmt(det.p99)} ms, ${undetected} undetected, ${falseAlarms.length} false alarms → ${passed ? 'passed' : 'FAILED'}`,
      );
      if (!passed) {
        stoppedBecause = `step ${target} failed: ${[
          notOpened.length > 0 ? `${notOpened.length} sessions did not open` : '',
          falseAlarms.length > 0 ? `${falseAlarms.length} false alarms` : '',
          undetected > 0 ? `${undetected} silenced cameras not detected within 5 s` : '',
          det.p99 !== null && det.p99 > SESSIONS_GOALS.detectionP99Ms
            ? `detection p99 ${det.p99} ms`
            : '',
        ]
          .filter((x) => x !== '')
          .join('; ')}`;
        break;
      }
    }

    const best = [...results].reverse().find((s) => s.passed) ?? null;
    const passing = results.filter((s) => s.passed);
    const maxIngest =
      passing.length > 0 ? Math.max(...passing.map((s) => s.ingestPerSecond)) : null;
    const ingestToFloor = ratio(maxIngest, floor?.receivedPerSecond.median ?? null);
    return {
      date: new Date().toISOString(),
      quick: opts.quick,
      machine: machineOf(loadStart, opts.dataParent),
      dialect: opts.dialect,
      server: 'threshold serve (own process), embedded broker',
      homes: homesNeeded,
      serverStartSeconds,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
      silenceMs: SILENCE_MS,
      steps: results,
      maxSessions: best?.sessions ?? 0,
      rssMbAtMax: best?.serverRssMb.max ?? null,
      maxIngestPerSecond: maxIngest,
      floor,
      ratios: { ingestToFloor },
      goals: SESSIONS_GOALS,
      meetsGoal: {
        sessions: best === null ? false : best.sessions >= SESSIONS_GOALS.sessions,
        rss:
          best === null
            ? null
            : best.sessions >= SESSIONS_GOALS.sessions &&
              best.serverRssMb.max <= SESSIONS_GOALS.rssMb,
        ingest: ingestToFloor === null ? null : ingestToFloor >= SESSIONS_GOALS.ingestToFloor,
      },
      stoppedBecause,
    };
  } finally {
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    await database?.drop().catch(() => undefined);
    if (opts.keep) say(`sessions: data and logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/** The result as a plain-text table. */
export function renderSessionsTable(r: SessionsBenchResult): string {
  const head = [
    'sessions'.padStart(9),
    'ingest/s'.padStart(10),
    'offered'.padStart(9),
    'CPU'.padStart(6),
    'µs/hb'.padStart(7),
    'RSS MB'.padStart(7),
    'det p50'.padStart(8),
    'det p99'.padStart(8),
    'sent→al p99'.padStart(12),
    'missed'.padStart(7),
    'gen CPU'.padStart(8),
    '  ',
  ].join('');
  const rows = r.steps.map((s) =>
    [
      String(s.sessions).padStart(9),
      String(s.ingestPerSecond).padStart(10),
      String(s.offeredPerSecond).padStart(9),
      s.serverCpuCores.toFixed(2).padStart(6),
      fmt(s.serverCpuMicrosPerHeartbeat, 1).padStart(7),
      String(s.serverRssMb.max).padStart(7),
      fmt(s.detectionMs.median).padStart(8),
      fmt(s.detectionMs.p99).padStart(8),
      fmt(s.sentToAlarmMs.p99).padStart(12),
      String(s.falseAlarms.length + s.undetected).padStart(7),
      s.loadCpuCores.toFixed(2).padStart(8),
      `  ${s.passed ? 'passed' : 'FAILED'}`,
    ].join(''),
  );
  const f = r.floor;
  const m = r.machine;
  return [
    `Sessions watched per node (${r.dialect}) — ${r.date}${r.quick ? ' (quick)' : ''}; ${r.server}; heartbeats every ${r.heartbeatIntervalMs} ms, silence threshold ${r.silenceMs} ms`,
    `node ${m.node}, ${m.cpus} × ${m.cpuModel}, load ${m.loadAvg1m.start} → ${m.loadAvg1m.end}`,
    head,
    ...rows,
    ...r.steps.flatMap((s) => [
      ...s.notOpened.map((x) => `  ${s.sessions}: did not open: ${x}`),
      ...s.falseAlarms.map((x) => `  ${s.sessions}: false alarm: ${x}`),
    ]),
    `largest step passed: ${r.maxSessions} sessions (RSS ${fmt(r.rssMbAtMax)} MB); goal ≥ ${r.goals.sessions} with RSS ≤ ${r.goals.rssMb} MB: sessions ${goalText(r.meetsGoal.sessions)}, RSS ${goalText(r.meetsGoal.rss)}; stopped: ${r.stoppedBecause}`,
    f === null
      ? 'floor: not measured in this run'
      : `floor: mosquitto QoS 1, ${f.publishers} publishers (window ${f.window}) → 1 subscriber, ${f.payloadBytes} B: ${fmt(f.receivedPerSecond.median)} received/s (${fmt(f.receivedPerSecond.min)}–${fmt(f.receivedPerSecond.max)}), ${fmt(f.publishedPerSecond.median)} published/s`,
    `Threshold's highest passing ingest ÷ mosquitto's rate: ${fmt(r.ratios.ingestToFloor, 2)} (goal ≥ ${r.goals.ingestToFloor}: ${goalText(r.meetsGoal.ingest)})`,
    '',
  ].join('\n');
}

const USAGE = `usage: node bin/run-ts.js bench/sessions-per-node.ts [--quick] [--json] [--data-dir DIR] [--dialect sqlite|postgres|both] [--steps LIST] [--hold S] [--profile DIR]
  --quick          steps of 100 and 200 sessions, 5 s each (about a minute)
  --json           print one JSON object instead of the table
  --data-dir DIR   put the server's data directory under DIR instead of the temporary directory
  --dialect D      sqlite (default), postgres (a throwaway cluster), or both
  --steps LIST     comma-separated session counts, e.g. 500,1000,2000
  --hold S         seconds of steady measurement per step
  --profile DIR    run the server under node --cpu-prof; its profile is written to DIR
  --skip-floor     do not measure mosquitto's rate
  --keep           keep the data directory and the processes' logs (the path is printed)
`;

/** Parses `--steps`: positive integers, comma-separated. */
export function parseSteps(v: string | undefined): number[] | string | undefined {
  if (v === undefined) return undefined;
  const steps = v.split(',').map((x) => Number(x.trim()));
  if (steps.length === 0 || steps.some((n) => !Number.isInteger(n) || n < 1 || n > 19_000))
    return `--steps takes session counts from 1 to 19000, comma-separated; not ${v}`;
  return steps;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await benchMain(
    USAGE,
    {
      dialect: { type: 'string' },
      steps: { type: 'string' },
      hold: { type: 'string' },
      profile: { type: 'string' },
      'skip-floor': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
    async (args, ctx) => {
      const dialects = parseDialects(args.dialect, ['sqlite']);
      if (typeof dialects === 'string') return dialects;
      const steps = parseSteps(args.steps);
      if (typeof steps === 'string') return steps;
      const hold = args.hold === undefined ? undefined : Number(args.hold);
      if (hold !== undefined && !(Number.isFinite(hold) && hold >= 1 && hold <= 600))
        return `--hold takes seconds from 1 to 600; not ${args.hold}`;
      const results: SessionsBenchResult[] = [];
      try {
        for (const dialect of dialects) {
          if (ctx.stopRequested?.()) break;
          results.push(
            await runSessionsBench({
              ...ctx,
              dialect,
              // The floor does not depend on the store: measured once.
              skipFloor: args['skip-floor'] === true || results.length > 0,
              keep: args.keep === true,
              ...(steps === undefined ? {} : { steps }),
              ...(hold === undefined ? {} : { holdSeconds: hold }),
              ...(args.profile === undefined
                ? {}
                : { serveNodeArgs: ['--cpu-prof', '--cpu-prof-dir', args.profile] }),
            }),
          );
        }
      } finally {
        await stopBenchPostgres();
      }
      return {
        json: results.length === 1 ? results[0]! : { sessions: results },
        table: results.map(renderSessionsTable).join('\n'),
      };
    },
  );
}

/**
 * The crash-safety loop (bench mode): one `threshold serve` child process on fixed loopback
 * ports, one simulated home connected to its broker, a courier over HTTP. Each cycle books a
 * new delivery through the carrier API, drives its session to a random point (requested,
 * armed, unlocked, door open, door closed, relocking, just completed), waits a random
 * 0–300 ms (0–30 ms at the two short early stages), `kill -9`s the control plane and starts
 * it again on the same data directory and ports. Then it checks what docs/threat-model.md promises for a crash:
 *
 * - the audit chain verifies (`threshold audit verify`);
 * - nothing acknowledged is lost: every HTTP request answered 2xx before the kill and every
 *   device event the broker acknowledged (PUBACK) before the kill is in the audit log;
 * - the session that was open is ended `aborted` with `session.interrupted` (one that had
 *   completed stays completed), and once the door is closed the lock reports locked, with
 *   `recovery.door-secured` on record when the door had been told to unlock.
 *
 * The randomness is seeded, so a failing cycle can be replayed with the same seed.
 */
import { freePort } from './free-port.ts';
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AccessSession } from '../core/access-session.ts';
import { CHECKPOINT_ENTRY_KIND } from '../core/audit-chain.ts';
import type { SimHome } from '../devices/index.ts';
import { systemClock } from '../protocol/system-clock.ts';
import { DEMO_DOORSTEP, seedDemo, type DemoCredentials } from '../server/seed.ts';
import { startSystem } from '../server/system.ts';
import { simHomeFor } from './demo-sim-home.ts';
import { sleep } from './scenario-world.ts';
import {
  auditVerifyCli,
  httpAt,
  signInAt,
  startServe,
  within,
  type Answer,
  type ServeProcess,
} from './scenarios/steps-integrity.ts';

/** Where in a session the control plane is killed. */
export type KillPoint =
  'requested' | 'armed' | 'unlocked' | 'door-open' | 'door-closed' | 'relocking' | 'completed';

/**
 * How long a (re)started control plane may take to answer its health check. Generous: on a
 * loaded machine loading the server alone has taken over 30 s, and a slow start is measured
 * (restart times), not a safety failure.
 */
const START_TIMEOUT_MS = 180_000;

/** Every {@link KillPoint}, in the order a session passes them. */
export const KILL_POINTS: readonly KillPoint[] = [
  'requested',
  'armed',
  'unlocked',
  'door-open',
  'door-closed',
  'relocking',
  'completed',
];

/** Settings of {@link runCrashLoop}. */
export interface CrashLoopOptions {
  /** How many kill-and-restart cycles. */
  readonly cycles: number;
  /** Seed of the random points and delays (the same seed replays the same choices). */
  readonly seed: number;
  /** The data directory to use (kept); default a fresh temporary one, removed at the end. */
  readonly dataDir?: string;
  /** Told one line per cycle and per problem. */
  readonly log?: (line: string) => void;
}

/** One thing a cycle found wrong. */
export interface CrashLoopFailure {
  readonly cycle: number;
  readonly point: KillPoint;
  readonly problem: string;
}

/** What {@link runCrashLoop} found. */
export interface CrashLoopReport {
  readonly cycles: number;
  /** Cycles with no problem. */
  readonly passed: number;
  readonly failures: readonly CrashLoopFailure[];
  /** How many cycles were killed at each point. */
  readonly points: Readonly<Record<KillPoint, number>>;
  /** How many sessions were in each state when the kill came (`none`: not stored yet). */
  readonly statesAtKill: Readonly<Record<string, number>>;
  /** From the kill to the restarted server answering `/api/health`, ms. */
  readonly medianRestartMs: number;
  readonly p99RestartMs: number;
  /** Every restart time, ms, in cycle order (what the median and p99 are taken from). */
  readonly restartsMs: readonly number[];
  readonly wallMs: number;
}

/**
 * One report for loops that ran side by side (`bench:crash --workers N`): cycles, passes,
 * points and states added up; failures kept with their loop's cycle numbers; the restart
 * quantiles taken over every loop's restarts; the wall time of the longest loop.
 */
export function mergeCrashLoopReports(reports: readonly CrashLoopReport[]): CrashLoopReport {
  const points = Object.fromEntries(KILL_POINTS.map((p) => [p, 0])) as Record<KillPoint, number>;
  const statesAtKill: Record<string, number> = {};
  const restartsMs: number[] = [];
  for (const r of reports) {
    for (const p of KILL_POINTS) points[p] += r.points[p];
    for (const [k, v] of Object.entries(r.statesAtKill))
      statesAtKill[k] = (statesAtKill[k] ?? 0) + v;
    restartsMs.push(...r.restartsMs);
  }
  return {
    cycles: reports.reduce((n, r) => n + r.cycles, 0),
    passed: reports.reduce((n, r) => n + r.passed, 0),
    failures: reports.flatMap((r) => r.failures),
    points,
    statesAtKill,
    medianRestartMs: quantile(restartsMs, 0.5),
    p99RestartMs: quantile(restartsMs, 0.99),
    restartsMs,
    wallMs: Math.max(0, ...reports.map((r) => r.wallMs)),
  };
}

/** Session states that are over. */
const TERMINAL = new Set(['completed', 'aborted', 'refused']);
/** States in which the lock has been (or may have been) told to unlock. */
const UNLOCK_SENT = new Set(['unlocking', 'open', 'relocking', 'verifying']);
/** Witness events are sent this often while a cycle runs, ms. */
const WITNESS_EVERY_MS = 40;

/** A small seeded generator (mulberry32): enough for picking points and delays. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The `q` quantile (nearest rank) of `xs`; 0 for none. */
function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

interface AuditRow {
  readonly seq: number;
  readonly kind: string;
  readonly subject: string;
  readonly data: Record<string, unknown>;
}

/** Read-only look at the data directory's database (the server may be running or dead). */
function withDb<T>(dir: string, f: (db: Database.Database) => T): T {
  const db = new Database(join(dir, 'threshold.db'), { readonly: true, fileMustExist: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}

function lastSeq(dir: string): number {
  return withDb(
    dir,
    (db) =>
      (db.prepare('SELECT max(seq) AS seq FROM audit_entries').get() as { seq: number | null })
        .seq ?? 0,
  );
}

function entriesAfter(dir: string, seq: number): AuditRow[] {
  return withDb(dir, (db) =>
    (
      db
        .prepare('SELECT seq, kind, subject, data FROM audit_entries WHERE seq > ? ORDER BY seq')
        .all(seq) as { seq: number; kind: string; subject: string; data: string }[]
    ).map((r) => ({ ...r, data: JSON.parse(r.data) as Record<string, unknown> })),
  );
}

/** The stored session of a delivery, if any (the newest). */
function sessionOfDelivery(dir: string, deliveryId: string): AccessSession | null {
  return withDb(dir, (db) => {
    const rows = db.prepare('SELECT data FROM access_sessions').all() as { data: string }[];
    let found: AccessSession | null = null;
    for (const r of rows) {
      const s = JSON.parse(r.data) as AccessSession;
      if (s.deliveryId === deliveryId && (found === null || s.createdAt >= found.createdAt))
        found = s;
    }
    return found;
  });
}

/** An HTTP request the loop made, and whether it was answered 2xx (acknowledged). */
interface Sent {
  readonly what: string;
  answer: Answer | null;
}

/** Sends `hub.observed` events through a device link, keeping those the broker acknowledged. */
class Witness {
  readonly acked: string[] = [];
  private readonly pending: Promise<void>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private n = 0;

  constructor(
    private readonly home: SimHome,
    private readonly cycle: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      const detail = JSON.stringify({ why: 'crash-loop', cycle: this.cycle, n: ++this.n });
      this.pending.push(
        this.home.links.lock.publishEventAcked({ name: 'hub.observed', detail }).then((ok) => {
          if (ok) this.acked.push(detail);
        }),
      );
    }, WITNESS_EVERY_MS);
  }

  /** Stops sending (before the kill, so nothing new goes out to a dying broker). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Every event's answer; an acknowledgement that came late still counts. */
  async settled(): Promise<readonly string[]> {
    await Promise.all(this.pending);
    return this.acked;
  }
}

/** Runs the loop; see the module comment. */
export async function runCrashLoop(opts: CrashLoopOptions): Promise<CrashLoopReport> {
  const log = opts.log ?? (() => undefined);
  const rand = seeded(opts.seed);
  const started = Date.now();
  const own = opts.dataDir === undefined;
  const dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'threshold-crash-loop-'));
  const failures: CrashLoopFailure[] = [];
  const restarts: number[] = [];
  const points = Object.fromEntries(KILL_POINTS.map((p) => [p, 0])) as Record<KillPoint, number>;
  const statesAtKill: Record<string, number> = {};
  let passed = 0;
  let serve: ServeProcess | null = null;
  let home: SimHome | null = null;
  try {
    // Seeded in-process once, as the scenario does: the child then only ever restarts on it.
    const seeding = await startSystem({ dataDir: dir, port: 0, mqttPort: 0 });
    let creds: DemoCredentials;
    try {
      creds = await seedDemo(seeding, dir, {
        credentialsFile: join(dir, 'crash-loop-credentials.json'),
      });
    } finally {
      await seeding.close();
    }
    const [httpPort, mqttPort] = [await freePort(), await freePort()];
    serve = await startServe(dir, httpPort, mqttPort, START_TIMEOUT_MS);
    home = simHomeFor(creds, `mqtt://127.0.0.1:${mqttPort}`, systemClock, {
      // Back quickly after a restart; an acknowledgement that does not come is not waited for long.
      link: { reconnectPeriodMs: 200, ackTimeoutMs: 2_000 },
    });
    await home.start();
    const url = serve.url;
    let owner = await signInAt(url, creds.owner.username, creds.owner.password);
    let courier = await signInAt(url, creds.courier.username, creds.courier.password);

    // A block of 7 cycles takes every point once, in a random order: random, and a short run
    // still meets every point.
    let block: KillPoint[] = [];
    for (let cycle = 1; cycle <= opts.cycles; cycle++) {
      if (block.length === 0) {
        block = [...KILL_POINTS];
        for (let i = block.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [block[i], block[j]] = [block[j]!, block[i]!];
        }
      }
      const point = block.shift()!;
      // The request and arming stages last tens of ms: a 300 ms wait would land every such kill
      // in a later stage, so their wait is 0–30 ms.
      const early = point === 'requested' || point === 'armed';
      const delayMs = Math.floor(rand() * (early ? 31 : 301));
      points[point] += 1;
      const problems: string[] = [];
      const problem = (p: string): void => {
        problems.push(p);
        log(`cycle ${cycle} (${point}): ${p}`);
      };
      const h = home;

      // ---- Ready: door closed, nobody inside, devices online and the bolt thrown ----
      h.camera.setPerson(false);
      h.doorSensor.close();
      const ready = await within(async () => {
        if (h.lock.bolt() !== 'locked') return false;
        const st = await httpAt(url, 'GET', `/api/homes/${creds.homeId}`, owner);
        if (st.status === 401)
          owner = await signInAt(url, creds.owner.username, creds.owner.password);
        const d = (st.body.doors as Record<string, { online?: boolean }>[] | undefined)?.[0];
        return d?.lock?.online === true && d.door?.online === true && d.camera?.online === true;
      }, 20_000);
      if (!ready) problem(`the door was not ready (bolt ${h.lock.bolt()}, devices not all online)`);
      const fromSeq = lastSeq(dir);

      // ---- A new delivery, booked through the carrier API ----
      const now = Date.now();
      const booked: Sent = { what: 'POST /api/carrier/deliveries', answer: null };
      booked.answer = await carrierPost(url, creds.carrier.apiKey, '/api/carrier/deliveries', {
        homeId: creds.homeId,
        packageRef: `CRASH-${cycle}`,
        windowStart: now - 60_000,
        windowEnd: now + 3_600_000,
        courierId: creds.courier.id,
      });
      const deliveryId = (booked.answer.body.delivery as { id?: string } | undefined)?.id;
      if (booked.answer.status !== 201 || deliveryId === undefined) {
        problem(`the delivery was not booked (HTTP ${booked.answer.status})`);
        failures.push(...problems.map((p) => ({ cycle, point, problem: p })));
        continue;
      }

      // ---- Driven to the point, with acknowledged events going out all along ----
      const witness = new Witness(h, cycle);
      witness.start();
      const requests: Sent[] = [booked];
      const inFlight: Promise<unknown>[] = [];
      const send = (what: string, call: () => Promise<Answer>): Promise<Answer | null> => {
        const s: Sent = { what, answer: null };
        requests.push(s);
        const p = call().then(
          (a) => (s.answer = a),
          () => null,
        );
        inFlight.push(p);
        return p;
      };
      const access = send('POST access', () =>
        httpAt(url, 'POST', `/api/courier/deliveries/${deliveryId}/access`, courier, {
          position: DEMO_DOORSTEP,
        }),
      );
      let sessionId: string | null = null;
      const viewState = async (): Promise<{ state?: string; door?: string }> => {
        if (sessionId === null) return {};
        const v = await httpAt(url, 'GET', `/api/courier/sessions/${sessionId}`, courier);
        return (v.body.session as { state?: string; door?: string } | undefined) ?? {};
      };
      const stage = KILL_POINTS.indexOf(point);
      if (point === 'armed') {
        await within(
          () => {
            const s = sessionOfDelivery(dir, deliveryId);
            return s !== null && s.state !== 'requested' && s.state !== 'awaiting-owner';
          },
          10_000,
          2,
        );
      }
      if (stage >= KILL_POINTS.indexOf('unlocked')) {
        const a = await access;
        const s = a?.body.session as { id?: string; state?: string } | undefined;
        sessionId = s?.id ?? null;
        if (a?.status !== 200 || s?.state !== 'open')
          problem(`the door did not open (HTTP ${a?.status ?? 'none'} ${s?.state ?? ''})`);
      }
      if (stage >= KILL_POINTS.indexOf('door-open') && sessionId !== null) {
        h.doorSensor.open();
        h.camera.setPerson(true);
        if (!(await within(async () => (await viewState()).door === 'open', 5_000)))
          problem('the control plane never saw the door open');
      }
      if (stage >= KILL_POINTS.indexOf('door-closed') && sessionId !== null) {
        h.camera.setPerson(false);
        h.doorSensor.close();
        if (!(await within(async () => (await viewState()).door === 'closed', 5_000)))
          problem('the control plane never saw the door closed');
      }
      if (stage >= KILL_POINTS.indexOf('relocking') && sessionId !== null) {
        const sid = sessionId;
        const relock = send('POST relock', () =>
          httpAt(url, 'POST', `/api/courier/sessions/${sid}/relock`, courier, {}),
        );
        if (point === 'completed') {
          await relock;
          if (!(await within(async () => (await viewState()).state === 'completed', 10_000)))
            problem(`the session did not complete (${(await viewState()).state ?? '?'})`);
        }
      }
      await sleep(delayMs);

      // ---- kill -9 ----
      witness.stop();
      const killedAt = Date.now();
      const dying = serve;
      serve = null;
      dying.child.kill('SIGKILL');
      await dying.exited;
      await Promise.all(inFlight);
      const atKill = sessionOfDelivery(dir, deliveryId);
      sessionId ??= atKill?.id ?? null;
      const stateAtKill = atKill?.state ?? 'none';
      statesAtKill[stateAtKill] = (statesAtKill[stateAtKill] ?? 0) + 1;

      // ---- Started again on the same data and ports ----
      serve = await startServe(dir, httpPort, mqttPort, START_TIMEOUT_MS);
      const restartMs = Date.now() - killedAt;
      restarts.push(restartMs);
      const acked = await witness.settled();
      const relogin = await httpAt(
        url,
        'GET',
        `/api/courier/sessions/${sessionId ?? 'none'}`,
        courier,
      );
      if (relogin.status === 401)
        courier = await signInAt(url, creds.courier.username, creds.courier.password);

      // (c) the session: ended safely (or completed before the kill), the door secured.
      if (atKill !== null && sessionId !== null) {
        const wasTerminal = TERMINAL.has(atKill.state);
        if (!wasTerminal) {
          // The courier walks out and shuts the door (if the cycle left it open).
          h.camera.setPerson(false);
          h.doorSensor.close();
        }
        const after = withDb(dir, (db) => {
          const row = db.prepare('SELECT data FROM access_sessions WHERE id = ?').get(sessionId) as
            { data: string } | undefined;
          return row === undefined ? null : (JSON.parse(row.data) as AccessSession);
        });
        if (wasTerminal) {
          if (after?.state !== atKill.state)
            problem(`the session ended ${atKill.state} before the kill is now ${after?.state}`);
        } else if (after?.state !== 'aborted' || after.outcome?.code !== 'session.interrupted') {
          problem(
            `the session open at the kill (${atKill.state}) is ${after?.state ?? 'gone'} ${after?.outcome?.code ?? ''}, not aborted session.interrupted`,
          );
        }
        const locked = await within(() => h.lock.bolt() === 'locked', 15_000);
        if (!locked)
          problem(`the lock did not report locked once the door was closed (${h.lock.bolt()})`);
        if (!wasTerminal) {
          const subject = `session:${sessionId}`;
          const interrupted = await within(
            () =>
              entriesAfter(dir, fromSeq).some(
                (e) =>
                  e.subject === subject &&
                  e.kind === 'session.state' &&
                  e.data.reason === 'session.interrupted',
              ),
            5_000,
          );
          if (!interrupted) problem('no session.state session.interrupted on record');
          if (UNLOCK_SENT.has(atKill.state)) {
            const secured = await within(
              () =>
                entriesAfter(dir, fromSeq).some(
                  (e) => e.subject === subject && e.kind === 'recovery.door-secured',
                ),
              15_000,
            );
            if (!secured) problem('no recovery.door-secured on record');
          }
        }
      } else {
        // No session was stored: then no request for one may have been acknowledged.
        const a = await access;
        if (a !== null && a.status >= 200 && a.status < 300)
          problem('the access request was answered 2xx but no session was stored');
      }

      // (b) nothing acknowledged lost.
      const log2 = entriesAfter(dir, fromSeq);
      const recorded = new Set(
        log2
          .filter((e) => e.kind === 'device.event' && e.data.name === 'hub.observed')
          .map((e) => String(e.data.detail)),
      );
      const lostEvents = acked.filter((d) => !recorded.has(d));
      if (lostEvents.length > 0)
        problem(
          `${lostEvents.length} of ${acked.length} broker-acknowledged events are not in the audit log (first: ${lostEvents[0]})`,
        );
      for (const r of requests) {
        if (r.answer === null || r.answer.status < 200 || r.answer.status >= 300) continue;
        const missing = missingFor(r, log2, deliveryId, sessionId);
        if (missing !== null) problem(`${r.what} was answered ${r.answer.status} but ${missing}`);
      }

      // (a) the chain verifies. The server is running: what it wrote last is signed by its next
      // checkpoint, at most a second later (audit-log.ts), and `audit verify` rightly fails on
      // an unsigned tail. So first wait for the checkpoint over it, within a bound.
      const signed = await within(
        () => entriesAfter(dir, fromSeq).at(-1)?.kind === CHECKPOINT_ENTRY_KIND,
        5_000,
      );
      if (!signed) problem('the newest audit entries were not signed by a checkpoint within 5 s');
      const verify = await auditVerifyCli(dir);
      if (verify.code !== 0 || verify.verdict?.ok !== true)
        problem(
          `threshold audit verify failed (exit ${verify.code}: ${verify.verdict?.firstBreak?.message ?? verify.stderr.slice(-300)})`,
        );

      if (problems.length === 0) passed += 1;
      failures.push(...problems.map((p) => ({ cycle, point, problem: p })));
      log(
        `cycle ${cycle}/${opts.cycles} ${point} +${delayMs} ms: session ${atKill?.state ?? 'none'} at the kill, restart ${restartMs} ms, ${acked.length} acked events, ${problems.length === 0 ? 'ok' : `${problems.length} problem(s)`}`,
      );
    }
    return {
      cycles: opts.cycles,
      passed,
      failures,
      points,
      statesAtKill,
      medianRestartMs: quantile(restarts, 0.5),
      p99RestartMs: quantile(restarts, 0.99),
      restartsMs: restarts,
      wallMs: Date.now() - started,
    };
  } finally {
    if (serve !== null) {
      serve.child.kill('SIGKILL');
      await serve.exited;
    }
    await home?.stop();
    if (own) rmSync(dir, { recursive: true, force: true });
  }
}

/** What an acknowledged request must have left in the log, or null when it is there. */
function missingFor(
  r: Sent,
  log: readonly AuditRow[],
  deliveryId: string,
  sessionId: string | null,
): string | null {
  const subject = `session:${sessionId ?? ''}`;
  if (r.what === 'POST /api/carrier/deliveries') {
    return log.some((e) => e.kind === 'delivery.created' && e.data.deliveryId === deliveryId)
      ? null
      : 'no delivery.created is on record';
  }
  if (r.what === 'POST access') {
    if (!log.some((e) => e.kind === 'session.requested' && e.subject === subject))
      return 'no session.requested is on record';
    // Answered with the door open: the unlock and the open state were committed first.
    return log.some(
      (e) => e.kind === 'session.state' && e.subject === subject && e.data.to === 'open',
    )
      ? null
      : 'no session.state → open is on record';
  }
  if (r.what === 'POST relock') {
    return log.some(
      (e) => e.kind === 'session.state' && e.subject === subject && e.data.to === 'relocking',
    )
      ? null
      : 'no session.state → relocking is on record';
  }
  return null;
}

/** A carrier API POST with its API key and a fresh Idempotency-Key. */
async function carrierPost(
  baseUrl: string,
  apiKey: string,
  path: string,
  body: unknown,
): Promise<Answer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed };
}

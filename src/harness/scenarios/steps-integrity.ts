/**
 * Steps the `integrity` scenarios share (forged and impersonating devices, clocks, crashes,
 * tampering): an attacker's own MQTT connection to the broker; the courier's delivery as far as
 * "door closed"; the audit log read by kind; the `threshold` command run as its own process
 * (`audit verify`, a `serve` that can be killed); and a door whose simulated devices can be
 * swapped for ones on another clock, on the world's control plane or on one of the story's own.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import mqtt, { type MqttClient } from 'mqtt';
import type { AuditEntry, AuditVerification } from '../../core/audit-chain.ts';
import { mqttPassword } from '../../protocol/device-auth.ts';
import type { SimHome } from '../../devices/index.ts';
import {
  createDemoDelivery,
  DEMO_DOORSTEP,
  seedDemo,
  type DemoCredentials,
} from '../../server/seed.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import { startSystem, type RunningSystem } from '../../server/system.ts';
import { simHomeFor } from '../demo-sim-home.ts';
import { startServeChild, THRESHOLD_BIN, type ServeChild } from '../serve-child.ts';
import {
  SCENARIO_TIMING,
  sleep,
  type ScenarioWorld,
  type WorldDatabase,
} from '../scenario-world.ts';
import { testDatabaseOptions } from '../../store/test-postgres.ts';
import { shiftedClock } from '../shifted-clock.ts';

/** The MQTT password a device presents, from its provisioned secret (base64url key). */
export function passwordOfSecret(secret: string): string {
  return mqttPassword(Buffer.from(secret, 'base64url'));
}

/** What the broker said to an attacker's CONNECT. */
export type AttackerConnect =
  | { readonly accepted: true; readonly client: MqttClient }
  | { readonly accepted: false; readonly reason: string };

/**
 * Connects to the broker as an attacker would, with whatever user name, password and client id
 * it has, never retrying. Resolves with the connected client, or with why the broker refused.
 */
export async function attackerConnect(
  brokerUrl: string,
  who: { readonly username: string; readonly password: string; readonly clientId: string },
): Promise<AttackerConnect> {
  try {
    const client = await mqtt.connectAsync(brokerUrl, {
      username: who.username,
      password: who.password,
      clientId: who.clientId,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    return { accepted: true, client };
  } catch (err) {
    return { accepted: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Publishes `payload` on `topic` through `client` and reports whether the broker then closed
 * the connection (how it refuses a publish under MQTT 3.1.1) within `withinMs`, and how long
 * that took. The client is ended either way.
 */
export async function publishAndWatchClose(
  client: MqttClient,
  topic: string,
  payload: string,
  withinMs = 3_000,
): Promise<{ closed: boolean; closedAfterMs: number | null }> {
  const started = Date.now();
  const closed = new Promise<number>((resolve) => {
    client.once('close', () => resolve(Date.now() - started));
  });
  // QoS 1: a broker that took the message would answer PUBACK and keep the connection.
  client.publish(topic, payload, { qos: 1 }, () => undefined);
  const after = await Promise.race([closed, sleep(withinMs).then(() => null)]);
  client.end(true);
  return { closed: after !== null, closedAfterMs: after };
}

/** Subscribes and reports whether the broker granted the subscription (QoS) or refused it (0x80). */
export async function trySubscribe(client: MqttClient, topic: string): Promise<boolean> {
  try {
    const granted = await client.subscribeAsync(topic, { qos: 1 });
    return granted.every((g) => g.qos !== 128);
  } catch {
    return false;
  }
}

/**
 * The courier's delivery up to "door closed": a new delivery, "I'm at the door", the door
 * opens, the courier walks in, leaves the parcel and walks out. Records whether it opened.
 */
export async function courierInsideAndOut(
  world: ScenarioWorld,
  expect: { that(ok: boolean, message: string): void },
): Promise<{ deliveryId: string; sessionId: string | null }> {
  const { deliveryId, access, sessionId } = await world.deliverInside();
  expect.that(
    access.status === 200 && sessionId !== null,
    `the door opens for the courier (HTTP ${access.status})`,
  );
  return { deliveryId, sessionId: access.status === 200 ? sessionId : null };
}

/** Every audit entry of `kind` about `subject` (or any subject), oldest first. */
export async function auditEntries(
  sys: RunningSystem,
  kind: string,
  subject?: string,
): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  if (subject !== undefined) {
    for (const e of await sys.store.audit.entriesForSubject(subject))
      if (e.kind === kind) out.push(e);
    return out;
  }
  for await (const e of sys.store.audit.iterate()) if (e.kind === kind) out.push(e);
  return out;
}

/** Polls until `pred` holds or `timeoutMs` passed; returns whether it held. */
export async function within(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 20,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
  return true;
}

/** What a finished `threshold` command printed, and how it exited. */
export interface CliRun {
  /** Exit code, or null if it was killed (timeout). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `threshold <args>` as its own process, as an operator would, on `database` (default:
 * SQLite in the data directory it is given), and waits for it to end (killed after `timeoutMs`).
 */
export function runThreshold(
  args: readonly string[],
  timeoutMs = 30_000,
  database: WorldDatabase = { dialect: 'sqlite' },
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [THRESHOLD_BIN, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 8 * 1024 * 1024,
        env: databaseEnv(database),
      },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof err.code === 'number' ? err.code : err.killed ? null : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * The environment of a `threshold` process on `database`: this one's, quieter, with
 * `THRESHOLD_DATABASE_URL` for PostgreSQL and without it for SQLite in the data directory.
 */
function databaseEnv(database: WorldDatabase): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  delete env.THRESHOLD_DATABASE_URL;
  if (database.dialect === 'postgres') env.THRESHOLD_DATABASE_URL = database.url;
  return env;
}

/**
 * `threshold audit verify --data <dir> --json`, on the data directory's SQLite file or on
 * `database` (a world's `database`): the verdict as printed, and the exit code.
 */
export async function auditVerifyCli(
  dataDir: string,
  database: WorldDatabase = { dialect: 'sqlite' },
): Promise<{ code: number | null; verdict: AuditVerification | null; stderr: string }> {
  const run = await runThreshold(
    ['audit', 'verify', '--data', dataDir, '--json'],
    undefined,
    database,
  );
  let verdict: AuditVerification | null = null;
  try {
    verdict = JSON.parse(run.stdout) as AuditVerification;
  } catch {
    // Not JSON: the exit code and stderr say what went wrong.
  }
  return { code: run.code, verdict, stderr: run.stderr.trim() };
}

/** The SQLite file the running system keeps its data in. */
export async function databaseFileOf(sys: RunningSystem): Promise<string> {
  const rows = await sql<{ name: string; file: string }>`PRAGMA database_list`.execute(
    sys.store.db,
  );
  const main = rows.rows.find((r) => r.name === 'main');
  if (!main?.file) throw new Error('the system’s database has no file');
  return main.file;
}

/** One HTTP answer: status and parsed body. */
export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** Calls a control plane's API at `baseUrl` as whoever holds `token` (none: signed out). */
export async function httpAt(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  token: string | null,
  body?: unknown,
): Promise<Answer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
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

/** Signs in at `baseUrl`; returns the bearer token. Throws if refused. */
export async function signInAt(
  baseUrl: string,
  username: string,
  password: string,
): Promise<string> {
  const r = await httpAt(baseUrl, 'POST', '/api/auth/sign-in', null, { username, password });
  if (r.status !== 200) throw new Error(`sign-in of ${username} failed: HTTP ${r.status}`);
  return String(r.body.token);
}

/**
 * The demo door of a running control plane with simulated devices that can be swapped for
 * others (devices whose clock is off, say): the system, its credentials, the courier's token and
 * the devices now connected.
 */
export interface SwappableDoor {
  readonly sys: RunningSystem;
  readonly creds: DemoCredentials;
  readonly courierToken: string;
  home: SimHome | null;
}

/**
 * A control plane of its own for a story (in a temporary folder, on the test run's database:
 * SQLite there, or PostgreSQL in the integration tests' PostgreSQL run), the demo home seeded.
 */
export async function startOwnControlPlane(): Promise<{
  readonly door: SwappableDoor;
  close(): Promise<void>;
}> {
  const dataDir = mkdtempSync(join(tmpdir(), 'threshold-own-'));
  const sys = await startSystem({
    dataDir,
    port: 0,
    mqttPort: 0,
    watchdog: SCENARIO_TIMING.watchdog,
    timing: SCENARIO_TIMING.session,
    ...(await testDatabaseOptions(dataDir)),
  });
  try {
    const creds = await seedDemo(sys, dataDir, {
      credentialsFile: join(dataDir, 'scenario-credentials.json'),
    });
    const courierToken = await signInAt(sys.url, creds.courier.username, creds.courier.password);
    const door: SwappableDoor = { sys, creds, courierToken, home: null };
    return {
      door,
      async close() {
        await door.home?.stop();
        await sys.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await sys.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Replaces the door's devices with the same devices on a clock `offsetMs` from the control
 * plane's, and waits until the control plane holds a state report of each made by that clock.
 */
export async function devicesWithClockOffset(door: SwappableDoor, offsetMs: number): Promise<void> {
  await door.home?.stop();
  const home = simHomeFor(door.creds, door.sys.brokerUrl, shiftedClock(offsetMs));
  door.home = home;
  await home.start();
  const ids = Object.values(door.creds.devices).map((d) => d.id);
  const took = await within(
    () =>
      ids.every((id) => {
        const s = door.sys.gateway.liveStatus(id);
        return (
          s?.online === true &&
          s.state !== null &&
          Math.abs(s.state.at - (door.sys.clock.now() + offsetMs)) < 20_000
        );
      }),
    10_000,
  );
  if (!took) throw new Error(`the devices on a clock ${offsetMs} ms off were not heard from`);
}

/** What a courier's visit at a {@link SwappableDoor} came to. */
export interface VisitOutcome {
  readonly access: Answer;
  readonly session: SessionView | null;
  /** Error codes the devices answered this session's commands with, by action, and when. */
  readonly deviceRefusals: readonly { action: string; error: string; at: number }[];
}

/**
 * A courier's whole visit: a delivery due now, "I'm at the door", and — if the door opens — in,
 * parcel, out, door closed, "lock"; then waits for the session to end.
 */
export async function courierVisit(door: SwappableDoor): Promise<VisitOutcome> {
  const { sys, creds } = door;
  const home = door.home;
  if (home === null) throw new Error('the door has no devices');
  const now = sys.clock.now();
  const d = await createDemoDelivery(
    sys,
    creds.homeId,
    creds.doorId,
    creds.carrier.id,
    creds.courier.id,
    now - 60_000,
    3_600_000,
    60_000,
  );
  const access = await httpAt(
    sys.url,
    'POST',
    `/api/courier/deliveries/${d.id}/access`,
    door.courierToken,
    { position: DEMO_DOORSTEP },
  );
  // A refused request answers with the refusal alone; its session is found by its delivery.
  const sessionId =
    (access.body.session as { id?: string } | undefined)?.id ??
    (await sys.store.sessions.findForDelivery(d.id))[0]?.id ??
    null;
  if (sessionId === null) return { access, session: null, deviceRefusals: [] };
  const view = async (): Promise<SessionView | null> => sys.orchestrator.view(sessionId);
  const terminal = ['completed', 'aborted', 'refused'];
  await within(async () => {
    const v = await view();
    return v === null || v.state === 'open' || terminal.includes(v.state);
  }, 15_000);
  if ((await view())?.state === 'open') {
    home.doorSensor.open();
    home.camera.setPerson(true);
    await sleep(800);
    home.camera.setPerson(false);
    home.doorSensor.close();
    await sleep(600);
    await httpAt(
      sys.url,
      'POST',
      `/api/courier/sessions/${sessionId}/relock`,
      door.courierToken,
      {},
    );
  }
  await within(async () => terminal.includes((await view())?.state ?? 'completed'), 20_000);
  const deviceRefusals = (await sys.store.audit.entriesForSubject(`session:${sessionId}`))
    .filter((e) => e.kind === 'command.outcome' && e.data.status === 'error')
    .map((e) => ({ action: String(e.data.action), error: String(e.data.error), at: e.at }));
  return { access, session: await view(), deviceRefusals };
}

/** A `threshold serve` running as a process of its own (see {@link startServe}). */
export type ServeProcess = ServeChild;

/**
 * Starts `threshold serve` on `dataDir` with the scenarios' watchdog timings, HTTP and MQTT on
 * the given loopback ports, on `database` (default: SQLite in `dataDir`), and waits until it
 * answers. Throws (with the process ended) if it does not within `timeoutMs`.
 */
export async function startServe(
  dataDir: string,
  httpPort: number,
  mqttPort: number,
  timeoutMs = 30_000,
  extraArgs: readonly string[] = [],
  database: WorldDatabase = { dialect: 'sqlite' },
): Promise<ServeProcess> {
  return startServeChild({
    dataDir,
    httpPort,
    mqttPort,
    args: [
      '--silence-ms',
      String(SCENARIO_TIMING.watchdog.silenceMs),
      '--freeze-ms',
      String(SCENARIO_TIMING.watchdog.freezeMs),
      ...extraArgs,
    ],
    env: databaseEnv(database),
    startTimeoutMs: timeoutMs,
  });
}

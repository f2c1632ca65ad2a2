/**
 * A scenario's world: a fresh control plane (embedded broker, SQLite, real HTTP on loopback),
 * the demo home seeded in it, and that home's simulated lock, door sensor and camera connected
 * over MQTT — the same parts `threshold demo` runs, with timings short enough for a test.
 *
 * The courier acts through the real HTTP API, as the courier app would.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AccessSession, AlarmType, SessionAlarm } from '../core/access-session.ts';
import type { Coverage } from '../core/observation-watchdog.ts';
import { systemClock } from '../protocol/system-clock.ts';
import type { SimHome } from '../devices/index.ts';
import { simHomeFor } from './demo-sim-home.ts';
import { FaultProxy } from './fault-proxy.ts';
import {
  addMosquittoObserver,
  startMosquitto,
  type MqttCredentials,
  type TestMosquitto,
} from './mosquitto.ts';
import { serverMqttCredentials } from '../broker/server-credentials.ts';
import { testDatabaseForDataDir, testRunOnPostgres } from '../store/test-postgres.ts';
import { shiftedClock } from './shifted-clock.ts';
import { verifyEd25519 } from '../server/keys.ts';
import {
  createDemoDelivery,
  DEMO_DOORSTEP,
  seedDemo,
  type DemoCredentials,
} from '../server/seed.ts';
import { startSystem, type RunningSystem, type SystemOptions } from '../server/system.ts';
import type { SessionView } from '../server/session-orchestrator.ts';

/** Timings for scenarios: the production shape, shortened so a scenario takes seconds. */
export const SCENARIO_TIMING = {
  watchdog: { silenceMs: 1_250, freezeMs: 2_500 },
  session: {
    armingTimeoutMs: 5_000,
    unlockTimeoutMs: 5_000,
    relockTimeoutMs: 2_500,
    verifyTimeoutMs: 4_000,
    relockGiveUpMs: 60_000,
  },
} as const;

export interface WorldOptions {
  /** Data directory; a temporary one (deleted on close) when omitted. */
  readonly dataDir?: string;
  /** The door may stay unlocked this long; the lock relocks itself after it, ms. */
  readonly maxOpenMs?: number;
  /** Benchmark trace points (see DeviceGatewayOptions.trace). */
  readonly trace?: SystemOptions['trace'];
  /**
   * Runs the server and the simulated devices on a clock this far from the wall clock, ms (e.g.
   * to stand on a given Saturday at the home). Timers still run in real time.
   */
  readonly clockOffsetMs?: number;
  /**
   * Accept webhook receivers and push endpoints on loopback or plain http (a receiver in the
   * same test), as the demo does; off, the production rules hold.
   */
  readonly allowLocalEndpoints?: boolean;
  /**
   * Puts a fault-injecting proxy (fault-proxy.ts) between each simulated device and the broker,
   * one per device, as {@link ScenarioWorld.net}; the devices' MQTT keepalive is then this many
   * seconds (a jammed link is noticed by keepalive, as on a real network). The server's own
   * connection stays direct.
   */
  readonly faultProxies?: { readonly keepaliveSeconds: number };
  /**
   * The database: PostgreSQL at `url`, or SQLite in the data directory. The default is SQLite,
   * except in the integration tests' PostgreSQL run (`THRESHOLD_TEST_DIALECT=postgres`), where
   * it is the data directory's own database on the run's server.
   */
  readonly database?: WorldDatabase;
  /**
   * The broker: the embedded one (the default), or a private mosquitto with the dynamic
   * security plugin, whose accounts and ACL the server writes, as an installation with an
   * external broker runs. The integration tests' mosquitto run sets `THRESHOLD_TEST_BROKER`.
   */
  readonly broker?: 'embedded' | 'mosquitto';
}

/** The broker a world uses when its options do not say. */
function defaultBroker(): 'embedded' | 'mosquitto' {
  return process.env.THRESHOLD_TEST_BROKER === 'mosquitto' ? 'mosquitto' : 'embedded';
}

/** The database a world uses when its options do not say (see `WorldOptions.database`). */
async function defaultDatabase(dataDir: string): Promise<WorldDatabase> {
  return testRunOnPostgres()
    ? { dialect: 'postgres', url: await testDatabaseForDataDir(dataDir) }
    : { dialect: 'sqlite' };
}

/** Where a world keeps its data. */
export type WorldDatabase =
  { readonly dialect: 'sqlite' } | { readonly dialect: 'postgres'; readonly url: string };

/** The world's fault proxies, one in front of each device's link. */
export interface WorldNetwork {
  readonly lock: FaultProxy;
  readonly doorSensor: FaultProxy;
  readonly camera: FaultProxy;
}

/** One HTTP answer: status and parsed body. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export class ScenarioWorld {
  readonly alarms: { alarm: SessionAlarm; sessionId: string }[] = [];
  private courierToken = '';
  private offEvents: (() => void) | null = null;
  /** The devices' links, through fault proxies (`faultProxies`); null without them. */
  net: WorldNetwork | null = null;
  /** The world's private mosquitto, when it runs on one (`broker: 'mosquitto'`). */
  mosquitto: TestMosquitto | null = null;
  /**
   * Credentials that may watch every topic, commands included, and publish commands (the
   * history recorder, the broker spy): on mosquitto, the observer account only tests make
   * (the server's own account cannot read commands there); on the embedded broker, the
   * server's credentials, which may.
   */
  observerCredentials: MqttCredentials = { username: '', password: '' };
  /** Where the world keeps its data (what a story that opens it behind the server's back opens). */
  database: WorldDatabase = { dialect: 'sqlite' };

  private constructor(
    readonly sys: RunningSystem,
    readonly home: SimHome,
    readonly creds: DemoCredentials,
    private readonly dataDir: string,
    private readonly tempDir: boolean,
    readonly maxOpenMs: number,
  ) {}

  static async create(opts: WorldOptions = {}): Promise<ScenarioWorld> {
    const tempDir = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'threshold-scenario-'));
    const clock = opts.clockOffsetMs ? shiftedClock(opts.clockOffsetMs) : systemClock;
    const admin = { adminUsername: 'threshold-admin', adminPassword: randomUUID() };
    const database = opts.database ?? (await defaultDatabase(dataDir));
    const mosquitto =
      (opts.broker ?? defaultBroker()) === 'mosquitto'
        ? await startMosquitto({ dynsec: admin })
        : null;
    let observer: MqttCredentials | null = null;
    if (mosquitto) {
      observer = await addMosquittoObserver(mosquitto, admin).catch(async (err: unknown) => {
        await mosquitto.stop();
        throw err;
      });
    }
    const sys = await startSystem({
      clock,
      dataDir,
      port: 0,
      mqttPort: 0,
      watchdog: SCENARIO_TIMING.watchdog,
      timing: SCENARIO_TIMING.session,
      ...(opts.trace ? { trace: opts.trace } : {}),
      ...(opts.allowLocalEndpoints ? { allowInsecurePushEndpoints: true } : {}),
      ...(database.dialect === 'postgres' ? { databaseUrl: database.url } : {}),
      ...(mosquitto
        ? {
            mqttUrl: mosquitto.url,
            mqttAdmin: { username: admin.adminUsername, password: admin.adminPassword },
          }
        : {}),
    }).catch(async (err: unknown) => {
      await mosquitto?.stop();
      throw err;
    });
    let net: WorldNetwork | null = null;
    try {
      const maxOpenMs = opts.maxOpenMs ?? 60_000;
      const creds = await seedDemo(sys, dataDir, {
        credentialsFile: join(dataDir, 'scenario-credentials.json'),
      });
      if (opts.faultProxies) {
        const proxy = async (seed: number): Promise<FaultProxy> => {
          const p = new FaultProxy({ upstream: sys.brokerUrl, seed });
          await p.start();
          return p;
        };
        net = { lock: await proxy(1), doorSensor: await proxy(2), camera: await proxy(3) };
      }
      const home = simHomeFor(
        creds,
        sys.brokerUrl,
        clock,
        net === null
          ? undefined
          : { link: { keepaliveSeconds: opts.faultProxies!.keepaliveSeconds } },
        net === null
          ? undefined
          : { lock: net.lock.url, doorSensor: net.doorSensor.url, camera: net.camera.url },
      );
      await home.start();
      const world = new ScenarioWorld(sys, home, creds, dataDir, tempDir, maxOpenMs);
      world.net = net;
      world.mosquitto = mosquitto;
      world.database = database;
      world.observerCredentials = observer ?? serverMqttCredentials(sys.keys.masterKey);
      world.offEvents = sys.events.subscribe((e) => {
        if (e.type === 'alarm') world.alarms.push({ alarm: e.alarm, sessionId: e.sessionId });
      });
      await world.signInCourier();
      // The server has heard every device before the courier arrives.
      await world.waitFor(
        () => {
          const ids = [creds.devices.lock.id, creds.devices.doorSensor.id, creds.devices.camera.id];
          return ids.every((id) => sys.gateway.liveStatus(id)?.state != null);
        },
        10_000,
        'every device reported its state',
      );
      return world;
    } catch (err) {
      if (net !== null) await Promise.all(Object.values(net).map((p: FaultProxy) => p.close()));
      await sys.close();
      await mosquitto?.stop();
      throw err;
    }
  }

  /** A new delivery for the courier, due now, with this world's maxOpenMs. */
  async newDelivery(): Promise<string> {
    const now = this.sys.clock.now();
    const d = await createDemoDelivery(
      this.sys,
      this.creds.homeId,
      this.creds.doorId,
      this.creds.carrier.id,
      this.creds.courier.id,
      now - 60_000,
      3_600_000,
      this.maxOpenMs,
    );
    return d.id;
  }

  private async signInCourier(): Promise<void> {
    const r = await this.http(
      'POST',
      '/api/auth/sign-in',
      { username: this.creds.courier.username, password: this.creds.courier.password },
      false,
    );
    if (r.status !== 200) throw new Error(`courier sign-in failed: ${r.status}`);
    this.courierToken = String(r.body.token);
  }

  /** Calls the API as the courier. */
  async http(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    auth = true,
  ): Promise<HttpAnswer> {
    const res = await fetch(`${this.sys.url}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(auth ? { authorization: `Bearer ${this.courierToken}` } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  /** "I'm at the door", from the doorstep. */
  requestAccess(
    deliveryId: string,
    position: { lat: number; lon: number; accuracyM: number } | null = DEMO_DOORSTEP,
  ): Promise<HttpAnswer> {
    return this.http('POST', `/api/courier/deliveries/${deliveryId}/access`, { position });
  }

  /** "Door closed — lock". */
  requestRelock(sessionId: string): Promise<HttpAnswer> {
    return this.http('POST', `/api/courier/sessions/${sessionId}/relock`, {});
  }

  /** The courier walks in, leaves the parcel and walks out; the door closes behind. */
  async dropParcel(): Promise<void> {
    this.home.doorSensor.open();
    this.home.camera.setPerson(true);
    await sleep(800);
    this.home.camera.setPerson(false);
    this.home.doorSensor.close();
    await sleep(600);
  }

  /**
   * A delivery under way: the courier asked to open (the answer is returned), and when the door
   * opened, walked in, left the parcel and closed the door. `sessionId` is null if it did not open.
   */
  async deliverInside(): Promise<{
    deliveryId: string;
    access: HttpAnswer;
    sessionId: string | null;
  }> {
    const deliveryId = await this.newDelivery();
    const access = await this.requestAccess(deliveryId);
    const sessionId = (access.body.session as { id?: string } | undefined)?.id ?? null;
    if (access.status === 200 && sessionId !== null) await this.dropParcel();
    return { deliveryId, access, sessionId };
  }

  /** Waits until the lock's own report confirmed the session's relock; returns the session, or null. */
  async relockConfirmed(sessionId: string, timeoutMs: number): Promise<SessionView | null> {
    try {
      await this.waitFor(
        async () => (await this.session(sessionId)).lockConfirmedAt !== null,
        timeoutMs,
        'the lock confirms it locked',
      );
      return await this.session(sessionId);
    } catch {
      return null;
    }
  }

  async session(sessionId: string): Promise<SessionView> {
    const v = await this.sys.orchestrator.view(sessionId);
    if (!v) throw new Error(`no session ${sessionId}`);
    return v;
  }

  /** Polls until `pred` holds; throws with `what` after `timeoutMs`. */
  async waitFor(
    pred: () => boolean | Promise<boolean>,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await pred())) {
      if (Date.now() > end)
        throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
      await sleep(25);
    }
  }

  async waitForState(
    sessionId: string,
    states: readonly AccessSession['state'][],
    timeoutMs: number,
  ): Promise<SessionView> {
    await this.waitFor(
      async () => states.includes((await this.session(sessionId)).state),
      timeoutMs,
      `the session is ${states.join(' or ')}`,
    );
    return this.session(sessionId);
  }

  async waitForAlarm(sessionId: string, type: AlarmType, timeoutMs: number): Promise<SessionAlarm> {
    await this.waitFor(
      () => this.alarms.some((a) => a.sessionId === sessionId && a.alarm.type === type),
      timeoutMs,
      `alarm ${type}`,
    );
    return this.alarms.find((a) => a.sessionId === sessionId && a.alarm.type === type)!.alarm;
  }

  /** Verifies the whole stored audit chain against the server's key. */
  async auditVerified(): Promise<{ ok: boolean; firstBreak: string | null }> {
    const v = await this.sys.audit.verify(verifyEd25519);
    return { ok: v.ok, firstBreak: v.firstBreak?.message ?? null };
  }

  async close(): Promise<void> {
    this.offEvents?.();
    await this.home.stop();
    if (this.net !== null)
      await Promise.all(Object.values(this.net).map((p: FaultProxy) => p.close()));
    await this.sys.close();
    await this.mosquitto?.stop();
    if (this.tempDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Coverage as reported: ratio rounded to 4 places, gaps relative to the session start. */
export function reportCoverage(
  c: Coverage,
  origin: number,
): { coverage: number; gaps: { startMs: number; endMs: number | null; cause: string }[] } {
  return {
    coverage: Math.round(c.ratio * 10_000) / 10_000,
    gaps: c.gaps.map((g) => ({
      startMs: g.startMs - origin,
      endMs: g.endMs === null ? null : g.endMs - origin,
      cause: g.cause,
    })),
  };
}

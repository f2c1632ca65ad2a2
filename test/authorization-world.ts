/**
 * The world of the authorization matrix (authorization-matrix.test.ts): one real control plane
 * (server, embedded broker, SQLite in a temp dir, the demo home with its simulated lock, door
 * sensor and camera, all on loopback), and a second tenant beside it, created through the store
 * and the authenticator: the Birch Road home with its own door and simulated devices, its
 * household (owner, member, guest), its carrier with an API key and that carrier's courier.
 *
 * Each tenant holds real objects for the routes to name: a scheduled delivery, a finished access
 * session with an alarm and a recorded clip (driven through the simulated devices, as a courier
 * does it), passkeys, a guest grant and a pending invitation. The callers' tenant also holds
 * objects that belong to someone else there ({@link Peers}). Everything in the second tenant
 * has "birch" in its name or is listed in {@link AuthzWorld.otherMarkers}, so an answer that
 * leaks it is easy to find.
 *
 * The routes the app registers are collected as they are registered: Fastify publishes every new
 * instance on the `fastify.initialization` diagnostics channel before any route is added, and an
 * `onRoute` hook added there sees every route, hidden ones included.
 */
import { createECDH, randomBytes, randomUUID } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { FastifyInstance } from 'fastify';
import type { AccessSession } from '../src/core/access-session.ts';
import type { AuditEntry } from '../src/core/audit-chain.ts';
import type { Position } from '../src/core/geo.ts';
import {
  DEFAULT_DELIVERY_PREFERENCES,
  type DeliveryPreferences,
  type Principal,
  type Role,
} from '../src/core/model.ts';
import type { SimHome } from '../src/devices/index.ts';
import { simHomeFor } from '../src/harness/demo-sim-home.ts';
import { ScenarioWorld, sleep } from '../src/harness/scenario-world.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import type { ServerEvent, SessionView } from '../src/protocol/views.ts';
import { hashPassword, tokenHash } from '../src/server/auth.ts';
import { createDemoDelivery, DEMO_DOORSTEP } from '../src/server/seed.ts';
import type { RunningSystem } from '../src/server/system.ts';

/** A route as Fastify registered it: method and URL template, and whether the docs hide it. */
export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
  readonly hidden: boolean;
}

/** One person of a tenant, signed in. */
export interface Person {
  readonly id: string;
  readonly role: Exclude<Role, 'carrier'>;
  readonly username: string;
  readonly password: string;
  /** A sign-in token of this person (Bearer). */
  readonly token: string;
}

/** A passkey of a person: its id, and the software authenticator that holds its key. */
export interface RegisteredPasskey {
  readonly id: string;
  readonly authenticator: SoftAuthenticator;
}

/** One tenant: a home with its household, and a carrier serving it with its courier. */
export interface Tenant {
  /** `own` is the callers' tenant (the demo home), `other` the second one. */
  readonly key: 'own' | 'other';
  readonly homeId: string;
  readonly doorId: string;
  readonly devices: { readonly lock: string; readonly doorSensor: string; readonly camera: string };
  readonly sim: SimHome;
  /** A phone position at this home's door. */
  readonly doorstep: Position;
  readonly carrier: { readonly id: string; readonly apiKey: string };
  readonly owner: Person;
  readonly member: Person;
  readonly guest: Person;
  readonly courier: Person;
  /** A scheduled delivery of this tenant's courier, never used. */
  readonly deliveryId: string;
  // The next three are set once, while the world is built (the session needs the tenant).
  /** A finished access session of this tenant's courier, with an alarm and a recorded clip. */
  sessionId: string;
  /** The alarm raised in {@link sessionId}. */
  alarmType: string;
  /** The sequence number of a recorded frame of {@link sessionId}. */
  frameSeq: number;
  /** A guest grant ("any time") of this tenant's guest at its door. */
  guestGrantId: string;
  /** A pending invitation to this tenant's home, and its link token. */
  invite: { readonly id: string; readonly token: string };
  /** A passkey of each person who has one, by person id. */
  readonly passkeys: Map<string, RegisteredPasskey>;
}

/**
 * Objects of the callers' own tenant that belong to someone else than the caller: a second
 * courier of the same carrier with a delivery and a finished session, and a delivery of the
 * caller's courier whose window ended the day before.
 */
export interface Peers {
  /** Another courier of the own tenant's carrier. */
  readonly courier: Person;
  /** A scheduled delivery of {@link courier} to the own home. */
  readonly deliveryId: string;
  /** A finished access session of {@link courier} at the own home's door. */
  readonly sessionId: string;
  /** A delivery of the own tenant's courier whose window ended yesterday (delivered). */
  readonly pastDeliveryId: string;
  /** Another guest of the own home, and that guest's grant. */
  readonly guest: Person;
  readonly guestGrantId: string;
}

/** One HTTP answer: status, headers, the raw bytes and text, and the JSON body if any. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly bytes: Buffer;
  readonly text: string;
  readonly body: Record<string, unknown> & { error?: { code?: string; message?: string } };
}

/** Session states after which a session changes no more. */
const TERMINAL: readonly AccessSession['state'][] = ['completed', 'refused', 'aborted'];

const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

export {
  SoftAuthenticator,
  type CreationOptions,
  type RequestOptions,
} from './soft-authenticator.ts';
import { SoftAuthenticator, type CreationOptions } from './soft-authenticator.ts';

/**
 * Runs `start` while collecting the routes of every Fastify instance created meanwhile, by
 * instance.
 */
export async function collectingRoutes<T>(
  start: () => Promise<T>,
): Promise<{ value: T; routes: Map<object, RegisteredRoute[]> }> {
  const routes = new Map<object, RegisteredRoute[]>();
  const onInit = (message: unknown): void => {
    const { fastify } = message as { fastify: FastifyInstance };
    const list: RegisteredRoute[] = [];
    routes.set(fastify, list);
    fastify.addHook('onRoute', (r) => {
      const methods = Array.isArray(r.method) ? r.method : [r.method];
      const hidden = (r.schema as { hide?: boolean } | undefined)?.hide === true;
      for (const method of methods) list.push({ method, url: r.url, hidden });
    });
  };
  subscribe('fastify.initialization', onInit);
  try {
    return { value: await start(), routes };
  } finally {
    unsubscribe('fastify.initialization', onInit);
  }
}

/** Polls until `pred` holds; throws with `what` after `timeoutMs`. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(25);
  }
}

/** The second tenant's names. */
const BIRCH = {
  homeId: 'home-birch-7',
  doorId: 'birch-front-door',
  devices: { lock: 'birch-lock', doorSensor: 'birch-door-sensor', camera: 'birch-camera' },
  geofence: { lat: 48.1372, lon: 11.5756, radiusM: 80 },
  doorstep: { lat: 48.13722, lon: 11.57562, accuracyM: 8 },
  carrierId: 'carrier-birch-express',
} as const;

/** The matrix's world; see the module comment. */
export class AuthzWorld {
  /** Routes the app registered, in registration order. */
  readonly routes: readonly RegisteredRoute[];
  private readonly extraMarkers: string[] = [];

  private peerObjects: Peers | null = null;

  private constructor(
    readonly world: ScenarioWorld,
    readonly own: Tenant,
    readonly other: Tenant,
    routes: readonly RegisteredRoute[],
  ) {
    this.routes = routes;
  }

  get sys(): RunningSystem {
    return this.world.sys;
  }

  /** Objects of the own tenant that are not the caller's. */
  get peers(): Peers {
    if (!this.peerObjects) throw new Error('the world is not built yet');
    return this.peerObjects;
  }

  /** Starts the system, creates the second tenant and the objects of both tenants. */
  static async create(): Promise<AuthzWorld> {
    const { value: world, routes } = await collectingRoutes(() => ScenarioWorld.create());
    let otherSim: SimHome | null = null;
    try {
      const appRoutes = routes.get(world.sys.app);
      if (!appRoutes) throw new Error('the app was not seen while it was built');
      const own = await AuthzWorld.ownTenant(world);
      const other = await AuthzWorld.otherTenant(world);
      otherSim = other.sim;
      const x = new AuthzWorld(world, own, other, appRoutes);
      // Both tenants get a finished session with an alarm and a clip, at the same time (two
      // doors, two sets of devices).
      const [ownSession, otherSession] = await Promise.all([
        x.sessionWithAlarm(own),
        x.sessionWithAlarm(other),
      ]);
      Object.assign(own, ownSession);
      Object.assign(other, otherSession);
      for (const p of [own.owner, own.member, own.guest, own.courier]) {
        own.passkeys.set(p.id, await x.registerPasskey(p.token));
      }
      other.passkeys.set(other.owner.id, await x.registerPasskey(other.owner.token));
      for (const t of [own, other]) {
        t.guestGrantId = await x.guestGrant(
          t,
          t.guest.id,
          `grant-${t.key === 'own' ? 'matrix' : 'birch'}-guest`,
        );
        t.invite = await x.invitation(t, t.key === 'own' ? 'matrix' : 'birch');
      }
      x.peerObjects = await x.createPeers();
      return x;
    } catch (err) {
      await otherSim?.stop();
      await world.close();
      throw err;
    }
  }

  /** The demo home as the callers' tenant, with a member and a guest added. */
  private static async ownTenant(world: ScenarioWorld): Promise<Tenant> {
    const { sys, creds } = world;
    const homeId = creds.homeId;
    const signedIn = async (
      username: string,
      password: string,
      role: Person['role'],
    ): Promise<Person> => {
      const r = await call(sys, 'POST', '/api/auth/sign-in', { json: { username, password } });
      if (r.status !== 200) throw new Error(`sign-in of ${username} failed: ${r.status}`);
      const principal = r.body.principal as Principal;
      return { id: principal.id, role, username, password, token: String(r.body.token) };
    };
    return {
      key: 'own',
      homeId,
      doorId: creds.doorId,
      devices: {
        lock: creds.devices.lock.id,
        doorSensor: creds.devices.doorSensor.id,
        camera: creds.devices.camera.id,
      },
      sim: world.home,
      doorstep: DEMO_DOORSTEP,
      carrier: { id: creds.carrier.id, apiKey: creds.carrier.apiKey },
      owner: await signedIn(creds.owner.username, creds.owner.password, 'owner'),
      member: await createPerson(sys, 'member-robin', 'member', 'robin', homeId, null),
      guest: await createPerson(sys, 'guest-kim', 'guest', 'kim', homeId, null),
      courier: await signedIn(creds.courier.username, creds.courier.password, 'courier'),
      deliveryId: await newDelivery(sys, homeId, creds.doorId, creds.carrier.id, creds.courier.id),
      sessionId: '',
      alarmType: '',
      frameSeq: -1,
      guestGrantId: '',
      invite: { id: '', token: '' },
      passkeys: new Map(),
    };
  }

  /** The second tenant, created through the store and the authenticator. */
  private static async otherTenant(world: ScenarioWorld): Promise<Tenant> {
    const { sys } = world;
    const now = sys.clock.now();
    await sys.store.homes.createHome({
      id: BIRCH.homeId,
      name: 'Birch Road 7',
      address: 'Birch Road 7, 80331 München',
      geofence: BIRCH.geofence,
      timeZone: 'Europe/Berlin',
      inHomeDelivery: true,
      delivery: DEFAULT_DELIVERY_PREFERENCES,
    });
    const secret = (id: string, kind: 'lock' | 'door-sensor' | 'camera', name: string) =>
      sys.provisionDevice({ id, homeId: BIRCH.homeId, kind, name });
    const devices = {
      lock: { id: BIRCH.devices.lock, secret: await secret(BIRCH.devices.lock, 'lock', 'Lock') },
      doorSensor: {
        id: BIRCH.devices.doorSensor,
        secret: await secret(BIRCH.devices.doorSensor, 'door-sensor', 'Door sensor'),
      },
      camera: {
        id: BIRCH.devices.camera,
        secret: await secret(BIRCH.devices.camera, 'camera', 'Camera'),
      },
    };
    await sys.store.homes.createDoor({
      id: BIRCH.doorId,
      homeId: BIRCH.homeId,
      name: 'Birch front door',
      lockDeviceId: BIRCH.devices.lock,
      doorSensorDeviceId: BIRCH.devices.doorSensor,
      cameraDeviceIds: [BIRCH.devices.camera],
    });
    await sys.store.principals.createCarrier({ id: BIRCH.carrierId, name: 'Birch Express' });
    await sys.store.homes.allowCarrier(BIRCH.homeId, BIRCH.carrierId, now);
    const { key: apiKey } = await sys.auth.createApiKey(BIRCH.carrierId);
    const sim = simHomeFor({ homeId: BIRCH.homeId, devices }, sys.brokerUrl, systemClock);
    await sim.start();
    try {
      return await AuthzWorld.otherPeople(sys, sim, apiKey);
    } catch (err) {
      await sim.stop();
      throw err;
    }
  }

  /** The second tenant's people and delivery, once its home, carrier and devices exist. */
  private static async otherPeople(
    sys: RunningSystem,
    sim: SimHome,
    apiKey: string,
  ): Promise<Tenant> {
    const courier = await createPerson(
      sys,
      'courier-birch-ana',
      'courier',
      'birch-courier',
      null,
      BIRCH.carrierId,
    );
    await waitFor(
      () => Object.values(BIRCH.devices).every((id) => sys.gateway.liveStatus(id)?.state != null),
      10_000,
      'every device of the second home reported its state',
    );
    return {
      key: 'other',
      homeId: BIRCH.homeId,
      doorId: BIRCH.doorId,
      devices: BIRCH.devices,
      sim,
      doorstep: BIRCH.doorstep,
      carrier: { id: BIRCH.carrierId, apiKey },
      owner: await createPerson(sys, 'owner-birch-jo', 'owner', 'birch-owner', BIRCH.homeId, null),
      member: await createPerson(
        sys,
        'member-birch-lee',
        'member',
        'birch-member',
        BIRCH.homeId,
        null,
      ),
      guest: await createPerson(sys, 'guest-birch-max', 'guest', 'birch-guest', BIRCH.homeId, null),
      courier,
      deliveryId: await newDelivery(sys, BIRCH.homeId, BIRCH.doorId, BIRCH.carrierId, courier.id),
      sessionId: '',
      alarmType: '',
      frameSeq: -1,
      guestGrantId: '',
      invite: { id: '', token: '' },
      passkeys: new Map(),
    };
  }

  private readonly webhookFixtures = new Map<
    Tenant['key'],
    Promise<{ readonly webhookId: string; readonly deliveryLogId: string }>
  >();

  /**
   * A webhook of the tenant's carrier with one delivered row in its log, made on first use.
   * Its URL is under `.invalid`, a name that never resolves: nothing sent leaves the machine.
   */
  webhookOf(t: Tenant): Promise<{ readonly webhookId: string; readonly deliveryLogId: string }> {
    let f = this.webhookFixtures.get(t.key);
    if (!f) {
      f = this.makeWebhook(t);
      this.webhookFixtures.set(t.key, f);
    }
    return f;
  }

  /** A new active webhook of the tenant's carrier, in the store; returns its id. */
  async newWebhook(t: Tenant): Promise<string> {
    const label = t.key === 'own' ? 'matrix' : 'birch';
    const made = await this.sys.webhooks.register({
      carrierId: t.carrier.id,
      url: `https://hooks.${label}.invalid/${randomBytes(4).toString('hex')}`,
      events: ['*'],
      createdBy: `matrix-${label}`,
    });
    if (!made) throw new Error(`too many webhooks for ${t.carrier.id}`);
    if (t.key === 'other') this.markOther(made.webhook.id);
    return made.webhook.id;
  }

  private async makeWebhook(
    t: Tenant,
  ): Promise<{ readonly webhookId: string; readonly deliveryLogId: string }> {
    const webhookId = await this.newWebhook(t);
    const deliveryLogId = `whd-${randomUUID()}`;
    const eventId = `evt-${randomUUID()}`;
    const now = this.sys.clock.now();
    const payload = {
      id: eventId,
      type: 'delivery.created',
      createdAt: now,
      data: {
        delivery: { id: t.deliveryId, carrierId: t.carrier.id },
        event: { seq: 1, status: 'scheduled', at: now, data: {} },
      },
    };
    await this.sys.webhooks.repo.insertDeliveries([
      {
        id: deliveryLogId,
        webhookId,
        carrierId: t.carrier.id,
        eventId,
        eventType: 'delivery.created',
        payload: JSON.stringify(payload),
        status: 'delivered',
        attempts: 1,
        nextAttemptAt: null,
        lastStatusCode: 200,
        lastError: null,
        createdAt: now,
        deliveredAt: now,
      },
    ]);
    if (t.key === 'other') this.markOther(deliveryLogId);
    return { webhookId, deliveryLogId };
  }

  /** Calls the API of this world. */
  call(
    method: string,
    path: string,
    opts: { token?: string | null; json?: unknown } = {},
  ): Promise<Answer> {
    return call(this.sys, method, path, opts);
  }

  /** Every string that names an object of the second tenant (ids, passkeys, endpoints). */
  otherMarkers(): string[] {
    return [
      'birch',
      this.other.deliveryId,
      this.other.sessionId,
      ...[...this.other.passkeys.values()].map((p) => p.id),
      ...this.extraMarkers,
    ].filter((m) => m.length > 0);
  }

  /** Adds a string that names an object of the second tenant. */
  markOther(marker: string): void {
    this.extraMarkers.push(marker);
  }

  /** The sequence number of the newest audit entry, once pending appends are written. */
  async auditHead(): Promise<number> {
    await this.sys.audit.drain();
    return (await this.sys.store.audit.last())?.seq ?? 0;
  }

  /** Audit entries appended after `seq`. */
  async auditAfter(seq: number): Promise<AuditEntry[]> {
    const head = await this.auditHead();
    return head > seq ? this.sys.store.audit.getRange(seq + 1, head) : [];
  }

  /** A fresh sign-in token of a person (so that signing it out leaves the others alone). */
  async freshToken(p: Person): Promise<string> {
    const r = await this.call('POST', '/api/auth/sign-in', {
      json: { username: p.username, password: p.password },
    });
    if (r.status !== 200) throw new Error(`sign-in of ${p.username} failed: ${r.status}`);
    return String(r.body.token);
  }

  /** A new scheduled delivery of the tenant's courier, due now. */
  newDelivery(t: Tenant): Promise<string> {
    return newDelivery(this.sys, t.homeId, t.doorId, t.carrier.id, t.courier.id);
  }

  /** Waits until the tenant's lock, door sensor and camera are online. */
  async devicesReady(t: Tenant): Promise<void> {
    await waitFor(
      () =>
        Object.values(t.devices).every((id) => {
          const s = this.sys.gateway.liveStatus(id);
          return s?.online === true && s.state !== null;
        }),
      10_000,
      `the devices of ${t.homeId} are online`,
    );
  }

  /**
   * A courier of the tenant's carrier (its own courier by default) says "I'm at the door" for a
   * new delivery; returns the answer's session.
   */
  async courierAtDoor(t: Tenant, courier: Person = t.courier): Promise<SessionView> {
    await this.devicesReady(t);
    const deliveryId = await newDelivery(this.sys, t.homeId, t.doorId, t.carrier.id, courier.id);
    const r = await this.call('POST', `/api/courier/deliveries/${deliveryId}/access`, {
      token: courier.token,
      json: { position: t.doorstep },
    });
    if (r.status !== 200) throw new Error(`access at ${t.homeId}: ${r.status} ${r.text}`);
    return r.body.session as SessionView;
  }

  /** An access session of a courier of the tenant with the door unlocked (state `open`). */
  async openSession(t: Tenant, courier: Person = t.courier): Promise<string> {
    const s = await this.courierAtDoor(t, courier);
    if (s.state !== 'open') throw new Error(`the door of ${t.homeId} did not open: ${s.state}`);
    return s.id;
  }

  /** An access session waiting for the owner's answer ("ask me first" must be on). */
  async waitingSession(t: Tenant): Promise<string> {
    const s = await this.courierAtDoor(t);
    if (s.state !== 'awaiting-owner') throw new Error(`not waiting for the owner: ${s.state}`);
    return s.id;
  }

  /** Turns "ask me first" on or off, keeping the other settings; returns the previous ones. */
  async setAskFirst(t: Tenant, askFirst: boolean): Promise<DeliveryPreferences> {
    const home = await this.sys.store.homes.getHome(t.homeId);
    if (!home) throw new Error(`no home ${t.homeId}`);
    await this.sys.store.homes.updateDeliverySettings(t.homeId, home.inHomeDelivery, {
      ...home.delivery,
      askFirst,
      askTimeoutMs: 120_000,
    });
    return home.delivery;
  }

  /** The session as the orchestrator sees it. */
  async session(sessionId: string): Promise<SessionView> {
    const v = await this.sys.orchestrator.view(sessionId);
    if (!v) throw new Error(`no session ${sessionId}`);
    return v;
  }

  /** Waits until the session has ended. */
  async settled(sessionId: string): Promise<SessionView> {
    await waitFor(
      async () => TERMINAL.includes((await this.session(sessionId)).state),
      25_000,
      `session ${sessionId} ends`,
    );
    return this.session(sessionId);
  }

  /** Ends a session: a waiting one is answered "leave at door", an open one relocked. */
  async endSession(sessionId: string, t: Tenant): Promise<void> {
    const v = await this.session(sessionId);
    if (TERMINAL.includes(v.state)) return;
    if (v.state === 'awaiting-owner') {
      const owner = await this.sys.store.principals.get(t.owner.id);
      if (!owner) throw new Error(`no owner ${t.owner.id}`);
      await this.sys.orchestrator.decide(owner, sessionId, 'leave-at-door');
    } else if (v.state === 'open') {
      const courier = await this.sys.store.principals.get(v.principalId);
      if (!courier) throw new Error(`no courier ${v.principalId}`);
      await this.sys.orchestrator.requestRelock(courier, sessionId);
    }
    await this.settled(sessionId);
  }

  /** Locks a lock through the device gateway and waits until the lock itself reports locked. */
  async lockDoor(t: Tenant): Promise<void> {
    if (t.sim.lock.bolt() !== 'locked') await this.sys.gateway.command(t.devices.lock, 'lock', {});
    await waitFor(
      () => {
        const s = this.sys.gateway.liveStatus(t.devices.lock)?.state;
        return t.sim.lock.bolt() === 'locked' && s?.kind === 'lock' && s.bolt === 'locked';
      },
      10_000,
      `the lock of ${t.homeId} reports locked`,
    );
  }

  /**
   * A finished session of the tenant's courier with an `observation-lost` alarm and a clip:
   * the courier is let in and walks in and out, then the camera's link is cut until the alarm
   * is raised.
   */
  private async sessionWithAlarm(
    t: Tenant,
  ): Promise<{ sessionId: string; alarmType: string; frameSeq: number }> {
    const sessionId = await this.openSession(t);
    t.sim.doorSensor.open();
    t.sim.camera.setPerson(true);
    await sleep(800);
    t.sim.camera.setPerson(false);
    t.sim.doorSensor.close();
    await waitFor(
      async () => (await this.sys.store.clips.list(sessionId)).length > 0,
      8_000,
      'a frame of the session is recorded',
    );
    t.sim.links.camera.cutLink();
    try {
      await waitFor(
        async () =>
          (await this.session(sessionId)).alarms.some((a) => a.type === 'observation-lost'),
        8_000,
        'the observation-lost alarm',
      );
    } finally {
      t.sim.links.camera.restoreLink();
    }
    await this.settled(sessionId);
    const frames = await this.sys.store.clips.list(sessionId);
    const first = frames[0];
    if (!first) throw new Error('no clip frame');
    await this.lockDoor(t);
    await this.devicesReady(t);
    return { sessionId, alarmType: 'observation-lost', frameSeq: first.seq };
  }

  /** See {@link Peers}. */
  private async createPeers(): Promise<Peers> {
    const t = this.own;
    const courier = await createPerson(
      this.sys,
      'courier-lou',
      'courier',
      'lou',
      null,
      t.carrier.id,
    );
    const sessionId = await this.openSession(t, courier);
    await this.endSession(sessionId, t);
    await this.lockDoor(t);
    const now = this.sys.clock.now();
    const past = await createDemoDelivery(
      this.sys,
      t.homeId,
      t.doorId,
      t.carrier.id,
      t.courier.id,
      now - 30 * 3_600_000,
      3 * 3_600_000,
    );
    await this.sys.store.deliveries.updateStatus(past.id, 'delivered');
    const guest = await createPerson(this.sys, 'guest-noor', 'guest', 'noor', t.homeId, null);
    return {
      courier,
      deliveryId: await newDelivery(this.sys, t.homeId, t.doorId, t.carrier.id, courier.id),
      sessionId,
      pastDeliveryId: past.id,
      guest,
      guestGrantId: await this.guestGrant(t, guest.id, 'grant-matrix-noor'),
    };
  }

  /** Gives a guest an "any time" grant at the tenant's door, granted by its owner; returns its id. */
  async guestGrant(t: Tenant, principalId: string, id: string): Promise<string> {
    await this.sys.store.guestGrants.create({
      id,
      homeId: t.homeId,
      doorId: t.doorId,
      principalId,
      grantedBy: t.owner.id,
      schedule: { kind: 'always' },
      limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
      uses: 0,
      createdAt: this.sys.clock.now(),
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    });
    return id;
  }

  /** A new guest of the tenant's home with an "any time" grant (a grant revoked takes all the guest's). */
  async newGuestGrant(t: Tenant): Promise<string> {
    const tag = randomBytes(4).toString('hex');
    const label = t.key === 'own' ? 'matrix' : 'birch';
    const guest = await createPerson(
      this.sys,
      `guest-${label}-${tag}`,
      'guest',
      `${label}-guest-${tag}`,
      t.homeId,
      null,
    );
    return this.guestGrant(t, guest.id, `grant-${label}-${tag}`);
  }

  /** A pending invitation to the tenant's home made by its owner, and its link token. */
  async invitation(t: Tenant, label: string): Promise<{ id: string; token: string }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.sys.clock.now();
    const id = `invite-${label}-${randomBytes(4).toString('hex')}`;
    await this.sys.store.guestGrants.createInvite({
      id,
      tokenHash: tokenHash(token),
      homeId: t.homeId,
      doorId: t.doorId,
      createdBy: t.owner.id,
      displayName: `Visitor of ${label}`,
      grant: {
        schedule: { kind: 'always' },
        maxUses: null,
        maxMinutesPerEntry: null,
        requiresRecording: true,
      },
      createdAt: now,
      expiresAt: now + 7 * 24 * 3_600_000,
      acceptedAt: null,
      acceptedBy: null,
      revokedAt: null,
    });
    return { id, token };
  }

  /** A guest of the tenant opens the door under a grant; returns the open session's id. */
  async guestEntry(t: Tenant, guest: Person, grantId: string): Promise<string> {
    await this.devicesReady(t);
    const r = await this.call('POST', `/api/guest/grants/${grantId}/access`, {
      token: guest.token,
      json: {},
    });
    const s = r.body.session as SessionView | undefined;
    if (r.status !== 200 || s?.state !== 'open') {
      throw new Error(`guest entry at ${t.homeId}: ${r.status} ${r.text}`);
    }
    return s.id;
  }

  /** Registers a passkey for the principal of `token` through the API. */
  async registerPasskey(token: string): Promise<RegisteredPasskey> {
    const authenticator = this.authenticator();
    const o = await this.call('POST', '/api/auth/passkeys/registration/options', {
      token,
      json: {},
    });
    if (o.status !== 200) throw new Error(`passkey options: ${o.status} ${o.text}`);
    const r = await this.call('POST', '/api/auth/passkeys/registration', {
      token,
      json: {
        name: 'Matrix key',
        response: authenticator.create(o.body.options as CreationOptions),
      },
    });
    if (r.status !== 200) throw new Error(`passkey registration: ${r.status} ${r.text}`);
    return { id: (r.body.passkey as { id: string }).id, authenticator };
  }

  /** A software authenticator for this server's relying party. */
  authenticator(): SoftAuthenticator {
    return new SoftAuthenticator('localhost', `http://localhost:${this.sys.port}`);
  }

  /** Browser keys a push can be encrypted with: a P-256 public key and an auth secret. */
  pushKeys(): { p256dh: string; auth: string } {
    const ecdh = createECDH('prime256v1');
    return { p256dh: b64u(ecdh.generateKeys()), auth: b64u(randomBytes(16)) };
  }

  /** Subscribes a browser of `principalId` to the alarms of a home, in the store. */
  async pushSubscription(principalId: string, homeId: string, label: string): Promise<string> {
    const endpoint = `https://push.example.net/send/${label}-${randomUUID()}`;
    await this.sys.store.pushSubscriptions.upsert({
      id: randomUUID(),
      principalId,
      homeId,
      endpoint,
      ...this.pushKeys(),
      createdAt: this.sys.clock.now(),
    });
    return endpoint;
  }

  /** Removes a push subscription by its endpoint, whoever holds it. */
  async removePushSubscription(endpoint: string): Promise<void> {
    const sub = await this.sys.store.pushSubscriptions.getByEndpoint(endpoint);
    if (sub) await this.sys.store.pushSubscriptions.remove(sub.id);
  }

  /**
   * The digest of a fresh frame of the tenant's live view: its owner starts watching (as the
   * page does) and the newest fresh frame is taken.
   */
  async liveFrameDigest(t: Tenant): Promise<string> {
    const path = `/api/homes/${t.homeId}/cameras/${t.devices.camera}/live`;
    const watch = await this.call('POST', path, { token: t.owner.token, json: {} });
    if (watch.status !== 200) throw new Error(`watching ${t.homeId}: ${watch.status}`);
    let digest: string | null = null;
    await waitFor(
      async () => {
        const r = await this.call('GET', path, { token: t.owner.token });
        const view = r.body.view as { status: string; frame: { digest: string } | null };
        digest = view.status === 'live' && view.frame ? view.frame.digest : null;
        return digest !== null;
      },
      10_000,
      `the live view of ${t.homeId} shows a fresh frame`,
    );
    return digest ?? '';
  }

  /** An event of the tenant that the given kind of caller would see on `GET /api/events`. */
  async eventOf(t: Tenant, audience: 'household' | 'courier'): Promise<ServerEvent> {
    if (audience === 'courier') {
      const row = await this.sys.store.sessions.get(t.sessionId);
      if (!row) throw new Error(`no session ${t.sessionId}`);
      return { type: 'session', homeId: t.homeId, session: row.data as AccessSession };
    }
    const device = this.sys.gateway.liveStatus(t.devices.lock);
    if (!device) throw new Error(`no status of ${t.devices.lock}`);
    return { type: 'device', homeId: t.homeId, device };
  }

  /**
   * Opens `GET /api/events` with `token`; once connected, calls `publish`, then reads until
   * `until` holds for the text received since (or 5 s pass). A refusal is returned as it came.
   */
  async watchEvents(
    token: string | null,
    publish: () => void,
    until: (text: string) => boolean,
  ): Promise<Answer> {
    const ac = new AbortController();
    const res = await fetch(`${this.sys.url}/api/events`, {
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
      signal: ac.signal,
    });
    if (res.status !== 200 || !res.body) return answerOf(res);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    let published = false;
    // Only what arrives after publishing counts for `until`: an earlier event must not end the
    // read before the published ones have come.
    let sincePublished = '';
    const end = Date.now() + 5_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      while (Date.now() < end && !(published && until(sincePublished))) {
        const timeout = new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), Math.max(1, end - Date.now()));
        });
        const chunk = await Promise.race([reader.read(), timeout]);
        clearTimeout(timer);
        if (chunk === null || chunk.done) break;
        const piece = decoder.decode(chunk.value, { stream: true });
        text += piece;
        if (published) sincePublished += piece;
        if (!published && text.includes(': connected')) {
          published = true;
          publish();
        }
      }
    } finally {
      clearTimeout(timer);
      ac.abort();
      await reader.cancel().catch(() => undefined);
    }
    const bytes = Buffer.from(text);
    return { status: res.status, headers: res.headers, bytes, text, body: {} };
  }

  async close(): Promise<void> {
    await this.other.sim.stop();
    await this.world.close();
  }
}

async function createPerson(
  sys: RunningSystem,
  id: string,
  role: Person['role'],
  username: string,
  homeId: string | null,
  carrierId: string | null,
): Promise<Person> {
  const password = randomBytes(12).toString('base64url');
  await sys.store.principals.create(
    { id, role, displayName: `${username} (${role})`, homeId, carrierId },
    { username, passwordHash: await hashPassword(password) },
  );
  const r = await call(sys, 'POST', '/api/auth/sign-in', { json: { username, password } });
  if (r.status !== 200) throw new Error(`sign-in of ${username} failed: ${r.status}`);
  return { id, role, username, password, token: String(r.body.token) };
}

async function newDelivery(
  sys: RunningSystem,
  homeId: string,
  doorId: string,
  carrierId: string,
  courierId: string,
): Promise<string> {
  const now = sys.clock.now();
  const d = await createDemoDelivery(
    sys,
    homeId,
    doorId,
    carrierId,
    courierId,
    now - 60_000,
    3 * 3_600_000,
    60_000,
  );
  return d.id;
}

async function answerOf(res: Response): Promise<Answer> {
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let body: Answer['body'] = {};
  if ((res.headers.get('content-type') ?? '').includes('json') && text.length > 0) {
    body = JSON.parse(text) as Answer['body'];
  }
  return { status: res.status, headers: res.headers, bytes, text, body };
}

async function call(
  sys: RunningSystem,
  method: string,
  path: string,
  opts: { token?: string | null; json?: unknown },
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token != null) headers.authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${sys.url}${path}`, {
    method,
    headers,
    ...(opts.json === undefined ? {} : { body: JSON.stringify(opts.json) }),
  });
  return answerOf(res);
}

/**
 * The control plane's side of the home hubs' offline grant lists (issue 6), against the real
 * system: SQLite on a temporary data directory, the embedded broker, HTTP on loopback, and MQTT
 * clients that connect with a lock's own credentials, as its home hub does.
 *
 * The home is the demo home in Europe/Berlin. The story starts on Saturday 28 March 2026 at
 * 07:00 at the home (winter time, UTC+1); the clocks go forward that night, so Monday's hours
 * are summer time (UTC+2). Lists reach 72 hours ahead.
 *
 * Then, at one door whose hub has no current list: a courier's unlock is refused by the hub,
 * and the session ends at once, in plain words, the door locked and the camera disarmed.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../src/core/clock.ts';
import type { GrantSchedule } from '../src/core/grant-schedule.ts';
import {
  WEEKDAYS,
  type Delivery,
  type Grant,
  type GuestGrant,
  type Principal,
} from '../src/core/model.ts';
import {
  CommandFailure,
  DeviceLink,
  SimCamera,
  SimDoorSensor,
  SimLock,
  type DeviceBehaviour,
  type DeviceConnection,
  type DeviceErrorCode,
  type EventBody,
  type HeartbeatBody,
  type StateBody,
} from '../src/devices/index.ts';
import { shiftedClock } from '../src/harness/shifted-clock.ts';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import type {
  CommandMessage,
  FrameMessage,
  HeartbeatMessage,
} from '../src/protocol/device-messages.ts';
import { readGrantList } from '../src/protocol/grant-list-check.ts';
import {
  MAX_GRANT_LIST_BYTES,
  type GrantListMessage,
  type SignedGrantListMessage,
} from '../src/protocol/grant-list.ts';
import { pinDigest } from '../src/protocol/pin-digest.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import type { SessionView } from '../src/protocol/views.ts';
import { parseOfflineGrantsHours } from '../src/cli/serve-command.ts';
import { hashPassword } from '../src/server/auth.ts';
import { offlineHorizonFromHours } from '../src/server/grant-lists.ts';
import { DEMO_DOORSTEP, seedDemo, type DemoCredentials } from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import type { PinSlot } from '../src/store/index.ts';
import { deliveryGrant } from '../src/store/test-store.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const utc = (y: number, mo: number, d: number, h = 0, mi = 0): number =>
  Date.UTC(y, mo - 1, d, h, mi);

/** Saturday 28 March 2026, 07:00 at the home (CET, UTC+1). */
const T0 = utc(2026, 3, 28, 6);
/** The hours the guest's grants give, as instants (Saturday CET, Monday CEST). */
const SAT_09 = utc(2026, 3, 28, 8);
const SAT_11 = utc(2026, 3, 28, 10);
const SAT_12 = utc(2026, 3, 28, 11);
const SAT_13 = utc(2026, 3, 28, 12);
const MON_09 = utc(2026, 3, 30, 7);
const MON_12 = utc(2026, 3, 30, 10);

const HORIZON_HOURS = 72;
const BACK_LOCK = 'back-lock';
const BACK_DOOR = 'back-door';

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** One `grants` message as the hub's client got it. */
interface Received {
  /** When it arrived, by the wall clock (ms). */
  readonly arrivedAt: number;
  readonly retained: boolean;
  readonly payload: Buffer;
}

/**
 * An MQTT client with a lock's own credentials, as its home hub connects, subscribed to that
 * lock's `grants` topic: it keeps every list it is sent.
 */
class HubClient {
  readonly received: Received[] = [];

  private constructor(
    readonly client: MqttClient,
    readonly homeId: string,
    readonly lockId: string,
  ) {
    client.on('message', (topic, payload, packet) => {
      if (topic === deviceTopic(homeId, lockId, 'grants'))
        this.received.push({ arrivedAt: Date.now(), retained: packet.retain, payload });
    });
  }

  static async connect(
    brokerUrl: string,
    homeId: string,
    lockId: string,
    secret: string,
  ): Promise<HubClient> {
    const client = await mqtt.connectAsync(brokerUrl, {
      clientId: lockId,
      username: lockId,
      password: mqttPassword(Buffer.from(secret, 'base64url')),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    const hub = new HubClient(client, homeId, lockId);
    const granted = await client.subscribeAsync(deviceTopic(homeId, lockId, 'grants'), { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    return hub;
  }

  /** Waits for the message after the first `count`, and returns it with its list (unverified). */
  async nth(
    count: number,
    timeoutMs = 3_000,
  ): Promise<Received & { signed: SignedGrantListMessage }> {
    await until(() => this.received.length > count, timeoutMs, `grant list #${count + 1}`);
    const r = this.received[count]!;
    return { ...r, signed: JSON.parse(r.payload.toString('utf8')) as SignedGrantListMessage };
  }

  last(): GrantListMessage {
    const r = this.received.at(-1);
    if (!r) throw new Error('no grant list yet');
    return (JSON.parse(r.payload.toString('utf8')) as SignedGrantListMessage).list;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

function guestGrant(
  id: string,
  homeId: string,
  principalId: string,
  schedule: GrantSchedule,
  extra: Partial<GuestGrant> = {},
): GuestGrant {
  return {
    id,
    homeId,
    doorId: 'front-door',
    principalId,
    grantedBy: 'owner-alex',
    schedule,
    limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
    uses: 0,
    createdAt: T0 - HOUR,
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
    ...extra,
  };
}

async function call(
  sys: RunningSystem,
  method: 'GET' | 'POST',
  path: string,
  token: string | null,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${sys.url}${path}`, {
    method,
    headers: {
      ...headers,
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Waits until no rebuild of the grant lists has run for a while (none pending either). */
async function quietLists(sys: RunningSystem): Promise<void> {
  let before = JSON.stringify(sys.grantLists.stats());
  for (let i = 0; i < 40; i++) {
    await sleep(250);
    const now = JSON.stringify(sys.grantLists.stats());
    if (now === before) return;
    before = now;
  }
  throw new Error('the grant lists never went quiet');
}

async function signIn(sys: RunningSystem, username: string, password: string): Promise<string> {
  const r = await call(sys, 'POST', '/api/auth/sign-in', null, { username, password });
  expect(r.status).toBe(200);
  return String(r.body.token);
}

describe('the offline grant list of each lock, signed, versioned and kept current', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'threshold-grant-lists-'));
  const clock: Clock = shiftedClock(T0 - Date.now());
  /** Everything the systems log at warn and above, one JSON object a line. */
  const logLines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logLines.push(line) });
  let sys: RunningSystem;
  let creds: DemoCredentials;
  let front: HubClient;
  let ownerToken = '';
  let publicKey = '';
  let inHome: Delivery;
  let backSecret = '';

  async function start(refreshMs?: number): Promise<RunningSystem> {
    return startSystem({
      clock,
      dataDir,
      port: 0,
      mqttPort: 0,
      offlineGrantsHours: HORIZON_HOURS,
      ...(refreshMs === undefined ? {} : { grantListRefreshMs: refreshMs }),
      logger,
    });
  }

  function frontHub(): Promise<HubClient> {
    return HubClient.connect(
      sys.brokerUrl,
      creds.homeId,
      creds.devices.lock.id,
      creds.devices.lock.secret,
    );
  }

  beforeAll(async () => {
    // The home is set up on a first run; the lists are then published by a second start, as
    // after any restart.
    const first = await start();
    try {
      creds = await seedDemo(first, dataDir);
      const { store } = first;
      const homeId = creds.homeId;
      const person = (id: string, role: Principal['role']): Principal => ({
        id,
        role,
        displayName: id,
        homeId,
        carrierId: null,
      });
      for (const p of [
        person('member-max', 'member'),
        person('member-old', 'member'),
        person('guest-gina', 'guest'),
      ])
        await store.principals.create(p, { username: p.id, passwordHash: 'unused' });
      await store.principals.disable('member-old', T0 - HOUR);

      // A second door with its own lock: its list is its own.
      backSecret = await first.provisionDevice({
        id: BACK_LOCK,
        homeId,
        kind: 'lock',
        name: 'Back door lock',
      });
      await store.homes.createDoor({
        id: BACK_DOOR,
        homeId,
        name: 'Back door',
        lockDeviceId: BACK_LOCK,
        doorSensorDeviceId: null,
        cameraDeviceIds: [],
      });

      // Keypad slots of the front lock, in the states a slot can be in.
      const lockKey = deriveDeviceKey(first.keys.masterKey, creds.devices.lock.id);
      const slot = (n: number, patch: Partial<PinSlot>): PinSlot => ({
        lockDeviceId: creds.devices.lock.id,
        slot: n,
        principalId: null,
        name: null,
        codeDigest: pinDigest(lockKey, n, `48291${n}`),
        desired: 'set',
        sync: 'confirmed',
        attempts: 1,
        nextAttemptAt: null,
        lastError: null,
        lockDigest: null,
        checkedAt: null,
        updatedAt: T0 - HOUR,
        window: null,
        lockWindow: null,
        windowOnly: false,
        ...patch,
      });
      await store.pinSlots.save(slot(1, { principalId: 'owner-alex' }));
      await store.pinSlots.save(slot(2, { principalId: 'member-max', sync: 'failed' }));
      await store.pinSlots.save(slot(3, { principalId: 'guest-gina', sync: 'out-of-sync' }));
      // Found set by hand: Threshold wants it empty, and never names it.
      await store.pinSlots.save(
        slot(4, {
          desired: 'clear',
          sync: 'unknown-on-lock',
          codeDigest: null,
          lockDigest: pinDigest(lockKey, 4, '000000'),
        }),
      );
      // A removed member's code, not emptied yet.
      await store.pinSlots.save(slot(5, { principalId: 'member-old', sync: 'pending' }));

      // Gina's grants at the front door: two that overlap on Saturday, one used up, one revoked.
      const weekly: GrantSchedule = {
        kind: 'weekly',
        slots: [{ days: ['sat', 'mon'], start: '09:00', end: '12:00' }],
      };
      for (const g of [
        guestGrant('grant-gina-weekly', homeId, 'guest-gina', weekly),
        guestGrant('grant-gina-saturday', homeId, 'guest-gina', {
          kind: 'date-range',
          from: '2026-03-28T11:00',
          until: '2026-03-28T13:00',
        }),
        guestGrant(
          'grant-gina-used',
          homeId,
          'guest-gina',
          { kind: 'one-time', from: '2026-03-28T14:00', until: '2026-03-28T16:00' },
          { uses: 1 },
        ),
        guestGrant(
          'grant-gina-revoked',
          homeId,
          'guest-gina',
          { kind: 'always' },
          { revokedAt: T0 - MIN, revokedBy: 'owner-alex', revokeReason: 'revoked' },
        ),
      ])
        await store.guestGrants.create(g);

      // Deliveries at the front door besides the demo's (in-home, due now): one for the
      // doorstep, one cancelled, one delivered, and one due after the lists' horizon.
      inHome = (await store.deliveries.get(creds.deliveryId))!;
      const delivery = async (
        id: string,
        patch: Partial<Delivery>,
        grantPatch: Partial<Grant> = {},
      ): Promise<void> => {
        const d: Delivery = { ...inHome, id, packageRef: id, ...patch };
        await store.deliveries.create(d);
        // For the demo's courier, as every delivery here copies the demo's.
        await store.deliveries.createGrant(
          deliveryGrant({ id: `grant-${id}`, maxOpenMs: 5 * MIN, ...grantPatch }, d),
        );
      };
      await delivery('delivery-doorstep', { placement: 'doorstep' });
      await delivery('delivery-cancelled', { status: 'cancelled' }, { revokedAt: T0 - MIN });
      await delivery('delivery-done', { status: 'delivered' });
      await delivery('delivery-next-week', {
        windowStart: T0 + 5 * 24 * HOUR,
        windowEnd: T0 + 5 * 24 * HOUR + 2 * HOUR,
      });
    } finally {
      await first.close();
    }
    sys = await start();
    publicKey = readFileSync(join(dataDir, 'keys', 'grants-ed25519.pub'), 'utf8').trim();
    ownerToken = await signIn(sys, creds.owner.username, creds.owner.password);
  }, 60_000);

  afterAll(async () => {
    await front?.close();
    await sys?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("a lock's hub gets its list at once, retained; it verifies with grants-ed25519.pub, and not with another key or a changed byte", async () => {
    const pub = readFileSync(join(dataDir, 'keys', 'grants-ed25519.pub'), 'utf8');
    expect(pub).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    // A key of its own: not the audit log's.
    expect(publicKey).not.toBe(sys.audit.publicKey);
    expect(publicKey).toBe(sys.grantLists.publicKey);

    front = await frontHub();
    const first = await front.nth(0, 2_000);
    expect(first.retained).toBe(true);
    const forFrontLock = { homeId: creds.homeId, lockId: creds.devices.lock.id, publicKey };
    const read = readGrantList(first.payload, forFrontLock);
    expect(read.ok).toBe(true);
    expect(first.signed).toEqual(sys.grantLists.listFor(creds.devices.lock.id));

    // Another key (the audit log's) does not verify it.
    expect(
      readGrantList(first.payload, { ...forFrontLock, publicKey: sys.audit.publicKey }),
    ).toEqual({
      ok: false,
      reason: 'bad signature',
    });
    // Nor does a list with one byte changed: a guest's hour moved by a second.
    const text = first.payload.toString('utf8');
    const changed = text.replace(`"fromMs":${SAT_09}`, `"fromMs":${SAT_09 + 1000}`);
    expect(changed).not.toBe(text);
    expect(readGrantList(Buffer.from(changed), forFrontLock)).toEqual({
      ok: false,
      reason: 'bad signature',
    });
    // And it is this lock's only: for the back lock, it is refused whatever the signature.
    expect(readGrantList(first.payload, { ...forFrontLock, lockId: BACK_LOCK }).ok).toBe(false);
  });

  it("names the owner's, a member's and a guest's codes (the guest's hours in Berlin, across the clock change) and the in-home delivery; nothing doorstep, cancelled, finished, used up, revoked or of a removed member", async () => {
    const list = front.last();
    expect(list.format).toBe(1);
    expect(list.horizonMs - list.issuedAtMs).toBe(HORIZON_HOURS * HOUR);
    expect(Math.abs(list.issuedAtMs - clock.now())).toBeLessThan(60_000);
    const lockKey = deriveDeviceKey(sys.keys.masterKey, creds.devices.lock.id);
    expect(list.pins).toEqual([
      {
        slot: 1,
        digest: pinDigest(lockKey, 1, '482911'),
        holder: 'owner',
        principalId: 'owner-alex',
        windows: null,
      },
      {
        slot: 2,
        digest: pinDigest(lockKey, 2, '482912'),
        holder: 'member',
        principalId: 'member-max',
        windows: [{ fromMs: list.issuedAtMs, untilMs: list.horizonMs }],
      },
      {
        slot: 3,
        digest: pinDigest(lockKey, 3, '482913'),
        holder: 'guest',
        principalId: 'guest-gina',
        // Saturday 09:00–12:00 and 11:00–13:00 (CET) are one stretch; Monday is in CEST.
        windows: [
          { fromMs: SAT_09, untilMs: SAT_13 },
          { fromMs: MON_09, untilMs: MON_12 },
        ],
      },
    ]);
    const grant = await sys.store.deliveries.getGrantForDelivery(inHome.id);
    expect(list.deliveries).toEqual([
      {
        grantId: grant!.id,
        deliveryId: inHome.id,
        courierId: creds.courier.id,
        fromMs: grant!.validFrom,
        untilMs: grant!.validUntil,
      },
    ]);
    expect(list.guests).toEqual([
      {
        grantId: 'grant-gina-saturday',
        principalId: 'guest-gina',
        windows: [{ fromMs: SAT_11, untilMs: SAT_13 }],
      },
      {
        grantId: 'grant-gina-weekly',
        principalId: 'guest-gina',
        windows: [
          { fromMs: SAT_09, untilMs: SAT_12 },
          { fromMs: MON_09, untilMs: MON_12 },
        ],
      },
    ]);

    // The back lock's list is its own: no code, no delivery, no guest at its door.
    const back = sys.grantLists.listFor(BACK_LOCK);
    expect(back?.list).toMatchObject({ lockId: BACK_LOCK, pins: [], deliveries: [], guests: [] });
  });

  it('revoking a guest grant, then cancelling the delivery, each publish the next version without it within a second', async () => {
    const before = front.received.length;
    const v0 = front.last().version;

    const revokedAt = Date.now();
    const r = await call(
      sys,
      'POST',
      `/api/homes/${creds.homeId}/grants/grant-gina-saturday/revoke`,
      ownerToken,
      {},
    );
    expect(r.status).toBe(200);
    const afterRevoke = await front.nth(before, 1_000);
    expect(afterRevoke.arrivedAt - revokedAt).toBeLessThan(1_000);
    expect(
      readGrantList(afterRevoke.payload, {
        homeId: creds.homeId,
        lockId: creds.devices.lock.id,
        publicKey,
      }).ok,
    ).toBe(true);
    const l1 = afterRevoke.signed.list;
    expect(l1.version).toBeGreaterThan(v0);
    expect(l1.guests.map((g) => g.grantId)).toEqual(['grant-gina-weekly']);
    expect(l1.pins.find((p) => p.slot === 3)?.windows).toEqual([
      { fromMs: SAT_09, untilMs: SAT_12 },
      { fromMs: MON_09, untilMs: MON_12 },
    ]);

    const apiKey = creds.carrier.apiKey;
    const cancelledAt = Date.now();
    const c = await call(
      sys,
      'POST',
      `/api/carrier/deliveries/${inHome.id}/cancel`,
      apiKey,
      { reason: 'customer asked' },
      { 'idempotency-key': randomUUID() },
    );
    expect(c.status).toBe(200);
    const afterCancel = await front.nth(before + 1, 1_000);
    expect(afterCancel.arrivedAt - cancelledAt).toBeLessThan(1_000);
    expect(afterCancel.signed.list.version).toBeGreaterThan(l1.version);
    expect(afterCancel.signed.list.deliveries).toEqual([]);
    // Nothing else changed, so nothing else was sent.
    await sleep(300);
    expect(front.received.length).toBe(before + 2);
  });

  it("a lock's hub cannot read another lock's list: the broker refuses the subscription", async () => {
    // SUBACK failure (0x80) for the back lock's topic.
    await expect(
      front.client.subscribeAsync(deviceTopic(creds.homeId, BACK_LOCK, 'grants'), { qos: 1 }),
    ).rejects.toMatchObject({ packet: { cmd: 'suback', granted: [128] } });
    // The back lock's own hub reads its own.
    const back = await HubClient.connect(sys.brokerUrl, creds.homeId, BACK_LOCK, backSecret);
    try {
      const got = await back.nth(0, 2_000);
      expect(
        readGrantList(got.payload, { homeId: creds.homeId, lockId: BACK_LOCK, publicKey }).ok,
      ).toBe(true);
    } finally {
      await back.close();
    }
    await sleep(200);
    expect(
      front.received.every((r) => r.payload.includes(`"lockId":"${creds.devices.lock.id}"`)),
    ).toBe(true);
  });

  it('versions grow across a restart; an unchanged home is published again only each refreshMs', async () => {
    const before = front.last().version;
    await front.close();
    await sys.close();
    const refreshMs = 1_500;
    sys = await start(refreshMs);
    ownerToken = await signIn(sys, creds.owner.username, creds.owner.password);
    front = await frontHub();
    const first = await front.nth(0, 2_000);
    expect(first.retained).toBe(true);
    expect(first.signed.list.version).toBeGreaterThan(before);

    // A change that does not touch the list (an invitation, not a grant yet) is rebuilt, and
    // found to say nothing new.
    const unchanged = sys.grantLists.stats().unchanged;
    const inv = await call(sys, 'POST', `/api/homes/${creds.homeId}/invites`, ownerToken, {
      displayName: 'Cousin',
      doorId: 'front-door',
      schedule: { kind: 'always' },
    });
    expect(inv.status).toBe(200);
    await until(() => sys.grantLists.stats().unchanged > unchanged, 1_000, 'a rebuild');

    // Left alone, the list is issued again each refreshMs, and only then: the next two lists
    // have ever larger versions, each issued refreshMs after the one before.
    await until(() => front.received.length >= 3, 3 * refreshMs + 2_000, 'two refreshes');
    const lists = front.received
      .slice(1, 3)
      .map((r) => (JSON.parse(r.payload.toString('utf8')) as SignedGrantListMessage).list);
    expect(lists[0]!.version).toBeGreaterThan(first.signed.list.version);
    expect(lists[1]!.version).toBeGreaterThan(lists[0]!.version);
    /** What a list says, the member's whole range aside (it moves with every issue). */
    const says = (l: GrantListMessage): unknown => ({
      pins: l.pins.map((p) => (p.holder === 'member' ? { ...p, windows: 'range' } : p)),
      deliveries: l.deliveries,
      guests: l.guests,
    });
    let previous = first.signed.list;
    for (const list of lists) {
      const gap = list.issuedAtMs - previous.issuedAtMs;
      expect(gap).toBeGreaterThanOrEqual(refreshMs);
      expect(gap).toBeLessThan(refreshMs + 750);
      expect(says(list)).toEqual(says(previous));
      expect(list.pins.find((p) => p.holder === 'member')?.windows).toEqual([
        { fromMs: list.issuedAtMs, untilMs: list.horizonMs },
      ]);
      previous = list;
    }
  }, 20_000);

  it('paused, nothing is published, not even a revocation; resumed, every lock gets its list at once', async () => {
    const { refreshMs } = sys.grantLists;
    const count = front.received.length;
    const v0 = front.last().version;
    const backBefore = sys.grantLists.listFor(BACK_LOCK)!.list.version;
    sys.grantLists.pause();
    // Gina's last grant is revoked: her code goes too.
    const r = await call(
      sys,
      'POST',
      `/api/homes/${creds.homeId}/grants/grant-gina-weekly/revoke`,
      ownerToken,
      {},
    );
    expect(r.status).toBe(200);
    await sleep(2 * refreshMs + 300);
    expect(front.received.length).toBe(count);
    expect(sys.grantLists.listFor(creds.devices.lock.id)!.list.version).toBe(v0);

    const resumedAt = Date.now();
    await sys.grantLists.resume();
    const next = await front.nth(count, 1_000);
    expect(next.arrivedAt - resumedAt).toBeLessThan(1_000);
    expect(next.signed.list.version).toBeGreaterThan(v0);
    expect(next.signed.list.guests).toEqual([]);
    expect(next.signed.list.pins.map((p) => p.holder)).toEqual(['owner', 'member']);
    expect(sys.grantLists.listFor(BACK_LOCK)!.list.version).toBeGreaterThan(backBefore);
  }, 20_000);

  it('a list too large to publish is not published; the error names the lock and its size', async () => {
    const count = front.received.length;
    const version = front.last().version;
    const tooLarge = sys.grantLists.stats().tooLarge;
    // Thirty guests with twenty half-hours a day: some 60 windows each in 72 hours, ~3 KB a grant.
    const slots = Array.from({ length: 20 }, (_, h) => ({
      days: [...WEEKDAYS],
      start: `${String(h + 2).padStart(2, '0')}:00`,
      end: `${String(h + 2).padStart(2, '0')}:30`,
    }));
    for (let i = 0; i < 30; i++) {
      const id = `guest-many-${i}`;
      await sys.store.principals.create(
        { id, role: 'guest', displayName: id, homeId: creds.homeId, carrierId: null },
        { username: id, passwordHash: 'unused' },
      );
      await sys.store.guestGrants.create(
        guestGrant(`grant-many-${i}`, creds.homeId, id, { kind: 'weekly', slots }),
      );
    }
    logLines.length = 0;
    // The grants were written behind the API's back: say so, as a route's audit entry would.
    sys.grantLists.changed(creds.homeId);
    await until(() => sys.grantLists.stats().tooLarge > tooLarge, 2_000, 'the build');
    await sleep(300);
    expect(front.received.length).toBe(count);
    expect(sys.grantLists.listFor(creds.devices.lock.id)!.list.version).toBe(version);
    const errors = logLines
      .map((l) => JSON.parse(l) as { level: number; lockId?: string; bytes?: number; msg: string })
      .filter((l) => l.level >= 50);
    // Said at each attempt (a rebuild, a refresh), and each time it names the lock and size.
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors[0]).toMatchObject({
      lockId: creds.devices.lock.id,
      limitBytes: MAX_GRANT_LIST_BYTES,
    });
    expect(errors[0]!.bytes).toBeGreaterThan(MAX_GRANT_LIST_BYTES);
    expect(errors[0]!.msg).toContain(`${errors[0]!.bytes} bytes`);
    expect(errors[0]!.msg).toContain(creds.devices.lock.id);
    // The back lock's list (no guests at its door) still goes out.
    expect(sys.grantLists.listFor(BACK_LOCK)!.list.guests).toEqual([]);
  }, 20_000);
});

/**
 * A device's connection with a say in its commands: `handle` sees each authentic command first
 * and passes it on to the device (`next`), or answers it itself. Everything the device
 * publishes goes out unchanged.
 */
class CommandHook implements DeviceConnection {
  readonly homeId: string;
  readonly deviceId: string;

  constructor(
    private readonly link: DeviceLink,
    private readonly handle: (
      command: CommandMessage,
      next: (command: CommandMessage) => Promise<Record<string, unknown>>,
    ) => Promise<Record<string, unknown>>,
  ) {
    this.homeId = link.homeId;
    this.deviceId = link.deviceId;
  }

  attach(behaviour: DeviceBehaviour): void {
    this.link.attach({
      onConnect: () => behaviour.onConnect(),
      handleCommand: (command) => this.handle(command, (c) => behaviour.handleCommand(c)),
    });
  }

  isConnected(): boolean {
    return this.link.isConnected();
  }
  publishState(body: StateBody): ReturnType<DeviceConnection['publishState']> {
    return this.link.publishState(body);
  }
  publishEvent(body: EventBody): ReturnType<DeviceConnection['publishEvent']> {
    return this.link.publishEvent(body);
  }
  publishHeartbeat(
    sessionKey: Uint8Array,
    body: HeartbeatBody,
  ): ReturnType<DeviceConnection['publishHeartbeat']> {
    return this.link.publishHeartbeat(sessionKey, body);
  }
  publishSignedHeartbeat(
    message: HeartbeatMessage,
  ): ReturnType<DeviceConnection['publishSignedHeartbeat']> {
    return this.link.publishSignedHeartbeat(message);
  }
  publishFrame(frame: FrameMessage): boolean {
    return this.link.publishFrame(frame);
  }
}

/** One unlock as the door's hub got it, and what the published list said at that moment. */
interface HubUnlock {
  readonly command: CommandMessage;
  /** The grants the lock's last published list named for deliveries, when the unlock came. */
  readonly listedDeliveryGrants: readonly string[];
}

describe('a hub that refuses the unlock ends the session at once', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'threshold-hub-refusal-'));
  let sys: RunningSystem;
  let creds: DemoCredentials;
  /** What the hub answers a visitor's unlock with. */
  const refusal: string = 'grants.stale';
  const unlocks: HubUnlock[] = [];
  let lock: SimLock;
  let camera: SimCamera;
  const links: DeviceLink[] = [];

  beforeAll(async () => {
    sys = await startSystem({
      dataDir,
      port: 0,
      mqttPort: 0,
      timing: { armingTimeoutMs: 5_000, unlockTimeoutMs: 5_000 },
    });
    creds = await seedDemo(sys, dataDir);
    const link = (d: { id: string; secret: string }): DeviceLink => {
      const l = new DeviceLink({
        brokerUrl: sys.brokerUrl,
        homeId: creds.homeId,
        deviceId: d.id,
        deviceKey: Buffer.from(d.secret, 'base64url'),
        clock: systemClock,
      });
      links.push(l);
      return l;
    };
    const lockLink = link(creds.devices.lock);
    const sensorLink = link(creds.devices.doorSensor);
    const cameraLink = link(creds.devices.camera);
    // The lock behind a home hub with no current list: it answers every visitor's unlock with
    // `grants.stale`, as the hub of issue 6 does; the household's and all else reach the lock.
    const hubLock = new CommandHook(lockLink, async (command, next) => {
      if (command.action === 'unlock') {
        const list = sys.grantLists.listFor(creds.devices.lock.id)?.list;
        unlocks.push({
          command,
          listedDeliveryGrants: list?.deliveries.map((d) => d.grantId) ?? [],
        });
        if (command.accessKind !== 'household')
          // The hub's codes are its own, beyond the simulated devices' union.
          throw new CommandFailure(
            refusal as DeviceErrorCode,
            'the hub’s grant list is older than its bound',
          );
      }
      return next(command);
    });
    // A camera that takes a moment to start recording, as real ones do.
    const slowCamera = new CommandHook(cameraLink, async (command, next) => {
      if (command.action === 'arm') await sleep(400);
      return next(command);
    });
    const door = new SimDoorSensor(sensorLink, { clock: systemClock });
    lock = new SimLock(hubLock, {
      clock: systemClock,
      door,
      deviceKey: Buffer.from(creds.devices.lock.secret, 'base64url'),
    });
    camera = new SimCamera(slowCamera, {
      clock: systemClock,
      door,
      deviceKey: Buffer.from(creds.devices.camera.secret, 'base64url'),
    });
    await Promise.all(links.map((l) => l.start()));
    const ids = [creds.devices.lock.id, creds.devices.doorSensor.id, creds.devices.camera.id];
    await until(
      () => ids.every((id) => sys.gateway.liveStatus(id)?.state != null),
      10_000,
      'every device reported its state',
    );
  }, 30_000);

  afterAll(async () => {
    lock?.stop();
    camera?.stop();
    await Promise.all(links.map((l) => l.close()));
    await sys?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("a courier's unlock answered grants.stale: refused at once with door.hub-list-stale, in plain words; the door stays locked, the camera is disarmed, the delivery stays open", async () => {
    // Once the start's rebuilds are over, a delivery written straight into the store, behind
    // the API's back: no change is heard of until the courier asks to open.
    await quietLists(sys);
    const now = Date.now();
    const delivery: Delivery = {
      id: randomUUID(),
      carrierId: creds.carrier.id,
      homeId: creds.homeId,
      doorId: creds.doorId,
      packageRef: 'PKG-BEHIND-THE-API',
      windowStart: now - MIN,
      windowEnd: now + HOUR,
      courierId: creds.courier.id,
      status: 'scheduled',
      createdAt: now,
    };
    await sys.store.deliveries.create(delivery);
    await sys.store.deliveries.createGrant(
      deliveryGrant({ id: randomUUID(), maxOpenMs: 5 * MIN }, delivery),
    );
    const grant = await sys.store.deliveries.getGrantForDelivery(delivery.id);
    await sleep(300);
    const listed = (): string[] =>
      sys.grantLists.listFor(creds.devices.lock.id)?.list.deliveries.map((d) => d.grantId) ?? [];
    expect(listed()).not.toContain(grant!.id);

    const courier = await signIn(sys, creds.courier.username, creds.courier.password);
    const askedAt = Date.now();
    const r = await call(sys, 'POST', `/api/courier/deliveries/${delivery.id}/access`, courier, {
      position: DEMO_DOORSTEP,
    });
    const took = Date.now() - askedAt;
    expect(r.status).toBe(409);
    expect(r.body.error).toEqual({
      code: 'door.hub-list-stale',
      message:
        'The door’s hub has no current access list, so it lets no courier in; the owner can check the hub.',
    });
    // Well before the unlock's own timeout (5 s) would have ended it.
    expect(took).toBeLessThan(4_000);

    // The unlock said whom it was for; the courier's request had the list brought up to date
    // while the camera armed, so the hub's list named the grant by the time the unlock came.
    expect(unlocks).toHaveLength(1);
    expect(unlocks[0]!.command).toMatchObject({ accessKind: 'courier', grantId: grant!.id });
    expect(unlocks[0]!.listedDeliveryGrants).toContain(grant!.id);

    const [row] = await sys.store.sessions.findForDelivery(delivery.id);
    const view = (await sys.orchestrator.view(row!.id)) as SessionView;
    expect(view.state).toBe('refused');
    expect(view.outcome).toMatchObject({
      code: 'door.hub-list-stale',
      detail: { hubCode: 'grants.stale' },
    });
    expect(view.unlockedAt).toBeNull();
    expect(lock.bolt()).toBe('locked');
    await until(() => !camera.isRecording(), 3_000, 'the camera disarmed');
    expect((await sys.store.deliveries.get(delivery.id))?.status).toBe('scheduled');
    expect((await sys.store.deliveries.getGrant(grant!.id))?.uses).toBe(0);

    const trail = await sys.store.audit.entriesForSubject(`session:${row!.id}`);
    expect(
      trail.find((e) => e.kind === 'command.outcome' && e.data.action === 'unlock')?.data,
    ).toMatchObject({
      status: 'error',
      error: 'grants.stale',
    });
    expect(trail.some((e) => e.kind === 'command.sent' && e.data.action === 'disarm')).toBe(true);
    expect(trail.find((e) => e.kind === 'session.ended')?.data).toMatchObject({
      state: 'refused',
      outcome: { code: 'door.hub-list-stale' },
    });
  }, 20_000);

  it("a guest's unlock says so and is refused in the guest's words; the household's remote unlock says it is the household's and goes through", async () => {
    const guest: Principal = {
      id: 'guest-gina',
      role: 'guest',
      displayName: 'Gina',
      homeId: creds.homeId,
      carrierId: null,
    };
    await sys.store.principals.create(guest, {
      username: 'gina',
      passwordHash: await hashPassword('gina-password-1'),
    });
    await sys.store.guestGrants.create({
      ...guestGrant('grant-gina', creds.homeId, guest.id, { kind: 'always' }),
      createdAt: Date.now() - HOUR,
      limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: false },
    });
    const token = await signIn(sys, 'gina', 'gina-password-1');
    const r = await call(sys, 'POST', '/api/guest/grants/grant-gina/access', token, {});
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({
      code: 'door.hub-list-stale',
      message: expect.stringContaining('for your visit') as unknown,
    });
    expect(unlocks.at(-1)?.command).toMatchObject({ accessKind: 'guest', grantId: 'grant-gina' });
    expect(lock.bolt()).toBe('locked');

    const owner = await signIn(sys, creds.owner.username, creds.owner.password);
    const remote = await call(
      sys,
      'POST',
      `/api/homes/${creds.homeId}/doors/${creds.doorId}/command`,
      owner,
      { action: 'unlock', confirm: true },
    );
    expect(remote.status).toBe(200);
    expect(unlocks.at(-1)?.command).toMatchObject({ accessKind: 'household' });
    expect(unlocks.at(-1)?.command.grantId).toBeUndefined();
    await until(() => lock.bolt() === 'unlocked', 3_000, 'the lock opened');
  }, 20_000);
});

describe('the offline horizon option', () => {
  it('takes 1 to 168 hours, and says so for anything else', async () => {
    expect(offlineHorizonFromHours(24)).toBe(24 * HOUR);
    expect(offlineHorizonFromHours(1)).toBe(HOUR);
    expect(offlineHorizonFromHours(168)).toBe(168 * HOUR);
    for (const bad of [0.5, 169, 0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => offlineHorizonFromHours(bad)).toThrow(/from 1 to 168 hours/);
    // `threshold serve --offline-grants-hours <n>`: a usage error in words.
    expect(parseOfflineGrantsHours('48')).toBe(48);
    for (const bad of ['', 'a day', '0', '200', '1e9'])
      expect(() => parseOfflineGrantsHours(bad)).toThrow(
        'a number of hours from 1 to 168 (7 days)',
      );

    // The system does not start with one out of range, and says why.
    const dataDir = mkdtempSync(join(tmpdir(), 'threshold-horizon-'));
    try {
      await expect(
        startSystem({ dataDir, port: 0, mqttPort: 0, offlineGrantsHours: 200 }),
      ).rejects.toThrow(/offline grant horizon is from 1 to 168 hours/);
      await expect(
        startSystem({ dataDir, port: 0, mqttPort: 0, grantListRefreshMs: 100 }),
      ).rejects.toThrow(/refreshMs must be whole ms from 1 s/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

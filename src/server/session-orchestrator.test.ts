/**
 * The orchestrator's heartbeat path on a fake clock: a real SQLite store, the real audit log,
 * and the real device gateway, fed signed device messages through its broker-link port (no
 * broker: the test hands each message to the gateway as the broker would). What is checked is
 * what the hot path's shortcuts must keep: a fresh frame still confirms a relock when a lock
 * report ahead of it is still being applied, a silenced camera is still detected exactly at
 * the silence bound, and a heartbeat of a watched session costs no timer of its own.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSession } from '../core/access-session.ts';
import { FakeClock } from '../core/clock.ts';
import { DEFAULT_WATCHDOG_CONFIG } from '../core/observation-watchdog.ts';
import type { BrokerLink, DeliverDeviceMessage } from '../broker/broker-link.ts';
import { deriveDeviceKey, deriveSessionKey, sign } from '../protocol/device-auth.ts';
import { deviceTopic, type UpChannel } from '../protocol/topics.ts';
import type { SessionView } from '../protocol/views.ts';
import { openStore, type Store } from '../store/index.ts';
import {
  CAMERA,
  CARRIER,
  COURIER,
  DELIVERY,
  DOOR,
  HOME,
  LOCK,
  SENSOR,
  deliveryGrant,
  seedDelivery,
} from '../store/test-store.ts';
import { AuditLog } from './audit-log.ts';
import { ClipStore } from './clip-store.ts';
import { DeviceGateway } from './device-gateway.ts';
import { EventBus } from './event-bus.ts';
import { loadOrCreateKeys, sha256Hex } from './keys.ts';
import { DEVICE_STATUS_WRITE_DELAY_MS, SessionOrchestrator } from './session-orchestrator.ts';

/** A fake clock that counts the timers armed on it. */
class CountingClock extends FakeClock {
  scheduled = 0;
  override schedule(atMs: number, fn: () => void): () => void {
    this.scheduled++;
    return super.schedule(atMs, fn);
  }
}

/**
 * A fake clock whose timers can be held, as a stalled event loop holds them: while `stalled`,
 * a timer that falls due is kept, and `release` runs the kept ones late (at the clock's now).
 */
class StallingClock extends CountingClock {
  stalled = false;
  private held: (() => void)[] = [];
  override schedule(atMs: number, fn: () => void): () => void {
    let cancelled = false;
    const cancel = super.schedule(atMs, () => {
      if (this.stalled) this.held.push(() => cancelled || fn());
      else fn();
    });
    return () => {
      cancelled = true;
      cancel();
    };
  }
  release(): void {
    this.stalled = false;
    const held = this.held;
    this.held = [];
    for (const fn of held) fn();
  }
}

/** Lets the store's and the audit log's real I/O run until `pred` holds (15 s at most). */
async function until<T>(what: string, get: () => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  const end = Date.now() + 15_000;
  for (;;) {
    const v = await get();
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A heartbeat's frame digest: a new picture each time unless `digest` is given. */
const pictureDigest = (n: number): string =>
  createHash('sha256').update(`frame ${n}`).digest('hex');

class Home {
  private deliver: DeliverDeviceMessage | null = null;
  private seq = 0;
  private hbSeq = 0;
  private picture = 0;
  private readonly masterKey: Buffer;

  private constructor(
    readonly dir: string,
    readonly store: Store,
    readonly clock: StallingClock,
    readonly orchestrator: SessionOrchestrator,
    readonly gateway: DeviceGateway,
    masterKey: Buffer,
  ) {
    this.masterKey = masterKey;
  }

  /** Topics of the commands the server published. */
  readonly commands: string[] = [];

  /** `replica`: the orchestrator runs as this replica (no others reachable). */
  static async open(replica?: string): Promise<Home> {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-orchestrator-'));
    const store = await openStore({ dialect: 'sqlite', path: join(dir, 'threshold.db') });
    const clock = new StallingClock(DELIVERY.windowStart + 60_000);
    await seedDelivery(store);
    await store.homes.allowCarrier(HOME.id, CARRIER.id, clock.now());
    await store.deliveries.createGrant(deliveryGrant({ maxOpenMs: 10 * 60_000 }));
    const keys = loadOrCreateKeys(dir);
    const gateway = new DeviceGateway({ masterKey: keys.masterKey, clock });
    for (const d of [LOCK, SENSOR, CAMERA]) gateway.register(d);
    const audit = await AuditLog.open(store.audit, clock, keys.auditSigner, sha256Hex, {
      checkpointIntervalMs: 24 * 3_600_000,
    });
    const orchestrator = new SessionOrchestrator({
      store,
      gateway,
      audit,
      clock,
      clips: new ClipStore(dir, store.clips),
      events: new EventBus(),
      ...(replica === undefined ? {} : { replica: { id: replica } }),
    });
    gateway.addListener(orchestrator);
    const home = new Home(dir, store, clock, orchestrator, gateway, keys.masterKey);
    // The broker's side: messages are handed to the gateway; commands go nowhere (the test
    // plays the devices' reports itself).
    const link: BrokerLink = {
      start: (deliver) => {
        home.deliver = deliver;
        return Promise.resolve();
      },
      publish: (topic) => {
        home.commands.push(topic);
        return Promise.resolve();
      },
      stop: () => Promise.resolve(),
    };
    await gateway.start(link);
    return home;
  }

  private send(deviceId: string, channel: UpChannel, key: Buffer, body: object): void {
    const topic = deviceTopic(HOME.id, deviceId, channel);
    const msg = sign(key, topic, body);
    void this.deliver!(topic, Buffer.from(JSON.stringify(msg)));
  }

  lock(bolt: 'locked' | 'unlocked'): void {
    const now = this.clock.now();
    this.send(LOCK.id, 'state', deriveDeviceKey(this.masterKey, LOCK.id), {
      kind: 'lock',
      seq: ++this.seq,
      at: now,
      bolt,
      changedAt: now,
      autoRelockAt: null,
    });
  }

  door(position: 'open' | 'closed'): void {
    const now = this.clock.now();
    this.send(SENSOR.id, 'state', deriveDeviceKey(this.masterKey, SENSOR.id), {
      kind: 'door-sensor',
      seq: ++this.seq,
      at: now,
      position,
      changedAt: now,
    });
  }

  camera(): void {
    this.send(CAMERA.id, 'state', deriveDeviceKey(this.masterKey, CAMERA.id), {
      kind: 'camera',
      seq: ++this.seq,
      at: this.clock.now(),
      recording: false,
      sessionId: null,
    });
  }

  /** A signed heartbeat of the camera for `sessionId`, with a new picture unless `frozen`. */
  heartbeat(sessionId: string, frozen = false): void {
    const key = deriveSessionKey(deriveDeviceKey(this.masterKey, CAMERA.id), sessionId);
    this.send(CAMERA.id, 'heartbeat', key, {
      sessionId,
      seq: ++this.hbSeq,
      capturedAt: this.clock.now(),
      frameDigest: pictureDigest(frozen ? this.picture : ++this.picture),
      recording: true,
    });
  }

  view(id: string): Promise<SessionView | null> {
    return this.orchestrator.view(id);
  }

  state(id: string, what: string, pred: (v: SessionView) => boolean): Promise<SessionView> {
    return until(
      what,
      () => this.view(id),
      (v) => v !== null && pred(v),
    ) as Promise<SessionView>;
  }

  /** A courier's session, armed, unlocked, and open with the door closed behind them. */
  async openSession(): Promise<string> {
    this.lock('locked');
    this.door('closed');
    this.camera();
    const r = await this.orchestrator.requestAccess(COURIER, DELIVERY.id, {
      lat: HOME.geofence.lat,
      lon: HOME.geofence.lon,
      accuracyM: 5,
    });
    if (!r.ok) throw new Error(`access refused: ${r.problem.code}`);
    const id = r.value.id;
    await this.state(id, 'arming', (v) => v.state === 'arming');
    this.heartbeat(id);
    await this.state(id, 'unlocking', (v) => v.state === 'unlocking');
    this.clock.advance(300);
    this.lock('unlocked');
    await this.state(id, 'open', (v) => v.state === 'open');
    return id;
  }

  async close(): Promise<void> {
    await this.orchestrator.stop();
    await this.gateway.stop();
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let home: Home | null = null;
beforeEach(async () => {
  home = await Home.open();
});
afterEach(async () => {
  await home?.close();
  home = null;
});

describe('the heartbeat hot path', () => {
  it('a fresh frame right behind the lock report that starts verifying still confirms the relock', async () => {
    const h = home!;
    const id = await h.openSession();
    for (let i = 0; i < 4; i++) {
      h.clock.advance(500);
      h.heartbeat(id);
    }
    void h.orchestrator.requestRelock(COURIER, id);
    await h.state(id, 'relocking', (v) => v.state === 'relocking');
    h.clock.advance(300);
    // The lock's report and a fresh heartbeat arrive together: the report is still queued
    // (being written) when the heartbeat comes, so the frame must not be skipped as useless.
    h.lock('locked');
    h.heartbeat(id);
    const done = await h.state(
      id,
      'ended',
      (v) => v.state !== 'relocking' && v.state !== 'verifying',
    );
    expect(done.state).toBe('completed');
    expect(done.alarms).toEqual([]);
  });

  it('without a frame after the lock report, the session verifies until the next fresh one', async () => {
    const h = home!;
    const id = await h.openSession();
    void h.orchestrator.requestRelock(COURIER, id);
    await h.state(id, 'relocking', (v) => v.state === 'relocking');
    h.clock.advance(300);
    h.lock('locked');
    await h.state(id, 'verifying', (v) => v.state === 'verifying');
    h.clock.advance(200);
    h.heartbeat(id);
    const done = await h.state(id, 'ended', (v) => v.state !== 'verifying');
    expect(done.state).toBe('completed');
  });

  it('a silenced camera is detected exactly at the silence bound, with no timer per heartbeat', async () => {
    const h = home!;
    const id = await h.openSession();
    const before = h.clock.scheduled;
    const beats = 40;
    for (let i = 0; i < beats; i++) {
      h.clock.advance(500);
      h.heartbeat(id);
      // Let each heartbeat's (and each watchdog check's) work finish before time moves on.
      await new Promise((r) => setTimeout(r, 2));
    }
    // One timer per watchdog check, not per heartbeat: armed for the silence bound, it fires
    // (after two heartbeats moved the bound) and is armed again, about once a second. And a
    // fresh frame of a live, open session queues no step (each would arm the deadline again).
    expect(h.clock.scheduled - before).toBeLessThanOrEqual(beats / 2 + 1);
    const v = await h.view(id);
    expect(v?.state).toBe('open');
    expect(v?.alarms).toEqual([]);

    // The camera goes silent: not lost a millisecond early, lost at the bound.
    const last = h.clock.now();
    h.clock.advanceTo(last + DEFAULT_WATCHDOG_CONFIG.silenceMs - 1);
    await new Promise((r) => setTimeout(r, 50));
    expect((await h.view(id))?.alarms).toEqual([]);
    h.clock.advance(1);
    const lost = await h.state(id, 'observation lost', (s) => s.alarms.length > 0);
    expect(lost.alarms.map((a) => a.type)).toEqual(['observation-lost']);
    expect(lost.alarms[0]!.sinceMs).toBe(last);
    expect(lost.alarms[0]!.atMs).toBe(last + DEFAULT_WATCHDOG_CONFIG.silenceMs);
  });

  it('a frozen picture is detected exactly at the freeze bound while heartbeats go on', async () => {
    const h = home!;
    const id = await h.openSession();
    h.clock.advance(500);
    h.heartbeat(id);
    await new Promise((r) => setTimeout(r, 5));
    const lastFresh = h.clock.now();
    // Authentic heartbeats go on, all with the same picture.
    for (let t = 500; t < DEFAULT_WATCHDOG_CONFIG.freezeMs; t += 500) {
      h.clock.advanceTo(lastFresh + t);
      h.heartbeat(id, true);
      await new Promise((r) => setTimeout(r, 2));
    }
    h.clock.advanceTo(lastFresh + DEFAULT_WATCHDOG_CONFIG.freezeMs - 1);
    await new Promise((r) => setTimeout(r, 50));
    expect((await h.view(id))?.alarms).toEqual([]);
    h.clock.advance(1);
    const frozen = await h.state(id, 'frozen', (s) => s.alarms.length > 0);
    expect(frozen.alarms.map((a) => a.type)).toEqual(['observation-frozen']);
    expect(frozen.alarms[0]!.sinceMs).toBe(lastFresh);
    expect(frozen.alarms[0]!.atMs).toBe(lastFresh + DEFAULT_WATCHDOG_CONFIG.freezeMs);
  });
});

describe('an event loop that stalls', () => {
  /** Beats for a few seconds, then stalls past the silence bound; returns the last beat's time. */
  async function stallAfterBeats(h: Home, id: string): Promise<number> {
    for (let i = 0; i < 6; i++) {
      h.clock.advance(500);
      h.heartbeat(id);
      await new Promise((r) => setTimeout(r, 2));
    }
    const last = h.clock.now();
    // The loop stalls: the watchdog's check falls due at the silence bound but cannot run.
    h.clock.stalled = true;
    h.clock.advance(DEFAULT_WATCHDOG_CONFIG.silenceMs + 400);
    // The loop wakes: the timers phase runs the late check before the poll phase reads the
    // heartbeat the camera sent during the stall.
    h.clock.release();
    return last;
  }

  it('does not call a camera lost whose heartbeat was waiting behind the stall', async () => {
    const h = home!;
    const id = await h.openSession();
    await stallAfterBeats(h, id);
    h.heartbeat(id);
    await new Promise((r) => setTimeout(r, 5));
    h.clock.advance(0);
    await new Promise((r) => setTimeout(r, 50));
    const v = await h.view(id);
    expect(v?.state).toBe('open');
    expect(v?.alarms).toEqual([]);
  });

  it('still reports a camera that went silent, a turn later, from its last heartbeat', async () => {
    const h = home!;
    const id = await h.openSession();
    const last = await stallAfterBeats(h, id);
    h.clock.advance(0);
    const lost = await h.state(id, 'observation lost', (s) => s.alarms.length > 0);
    expect(lost.alarms.map((a) => a.type)).toEqual(['observation-lost']);
    expect(lost.alarms[0]!.sinceMs).toBe(last);
    expect(lost.alarms[0]!.atMs).toBe(last + DEFAULT_WATCHDOG_CONFIG.silenceMs + 400);
  });
});

describe('replicas: a camera streaming for another replica’s session', () => {
  it('is not read from the store per heartbeat, and is still disarmed once the session ended', async () => {
    await home?.close();
    const h = (home = await Home.open('replica-a'));
    // A session replica B drives (stored as B's), its camera beating to every replica.
    const session = createSession(
      {
        id: 'session-of-b',
        homeId: HOME.id,
        doorId: DOOR.id,
        deliveryId: DELIVERY.id,
        grantId: 'grant-1',
        principalId: COURIER.id,
        lockDeviceId: LOCK.id,
        doorSensorDeviceId: SENSOR.id,
        cameraDeviceId: CAMERA.id,
        maxOpenMs: 60_000,
        bolt: 'locked',
        door: 'closed',
      },
      h.clock.now(),
    );
    const row = {
      id: session.id,
      homeId: HOME.id,
      doorId: DOOR.id,
      deliveryId: DELIVERY.id,
      principalId: COURIER.id,
      state: session.state,
      createdAt: session.createdAt,
      updatedAt: session.updatedAt,
      endedAt: null,
      data: session,
    };
    expect(await h.store.sessions.saveOwned(row, 'replica-b')).toBe(true);
    let reads = 0;
    let lastRead: Promise<unknown> = Promise.resolve();
    const get = h.store.sessions.get.bind(h.store.sessions);
    h.store.sessions.get = (id) => {
      reads++;
      const read = get(id);
      lastRead = read;
      return read;
    };
    const disarm = deviceTopic(HOME.id, CAMERA.id, 'command');
    const beat = async (): Promise<void> => {
      h.clock.advance(500);
      h.heartbeat(session.id);
      // The server's read (if any) is answered before the next heartbeat, however slow the
      // machine: what is counted is reads per heartbeat, not how fast SQLite answers.
      await lastRead;
      await new Promise((r) => setTimeout(r, 2));
    };
    // A minute of heartbeats: the session is read open once, not every few seconds.
    for (let i = 0; i < 110; i++) await beat();
    expect(reads).toBe(1);
    expect(h.commands).toEqual([]);

    // B ends the session, and its `disarm` is lost: a later read finds it ended and disarms.
    await h.store.sessions.saveOwned({ ...row, endedAt: h.clock.now() }, 'replica-b');
    for (let i = 0; i < 20 && !h.commands.includes(disarm); i++) await beat();
    await until(
      'the camera is told to disarm',
      () => Promise.resolve(h.commands),
      (c) => c.includes(disarm),
    );
    expect(reads).toBe(2);
  });
});

describe("devices' reported states", () => {
  it('are stored together once the delay has passed, the newest of each device, and at stop', async () => {
    const h = home!;
    const stored = async () => ({
      lock: await h.store.deviceStatus.get(LOCK.id),
      door: await h.store.deviceStatus.get(SENSOR.id),
      camera: await h.store.deviceStatus.get(CAMERA.id),
    });
    h.lock('locked');
    h.door('closed');
    h.camera();
    h.lock('unlocked');
    // Not written while a session step may need the event loop: nothing before the delay.
    await new Promise((r) => setTimeout(r, 50));
    expect(await stored()).toEqual({ lock: null, door: null, camera: null });
    h.clock.advance(DEVICE_STATUS_WRITE_DELAY_MS - 1);
    await new Promise((r) => setTimeout(r, 50));
    expect((await stored()).lock).toBeNull();
    h.clock.advance(1);
    const all = await until(
      'the three statuses are stored',
      stored,
      (s) => s.lock !== null && s.door !== null && s.camera !== null,
    );
    // The newest report of each device, as the gateway received it.
    expect(all.lock?.state).toMatchObject({ kind: 'lock', bolt: 'unlocked' });
    expect(all.door?.state).toMatchObject({ kind: 'door-sensor', position: 'closed' });
    expect(all.camera?.state).toMatchObject({ kind: 'camera', recording: false });
    expect(all.lock?.lastSeenAt).toBe(h.clock.now() - DEVICE_STATUS_WRITE_DELAY_MS);

    // What is still waiting when the orchestrator stops is stored before the store closes.
    h.clock.advance(10);
    h.lock('locked');
    await new Promise((r) => setTimeout(r, 20));
    await h.orchestrator.stop();
    expect((await h.store.deviceStatus.get(LOCK.id))?.state).toMatchObject({ bolt: 'locked' });
  });
});

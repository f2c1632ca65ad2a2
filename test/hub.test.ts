/**
 * The home hub against a real control plane (embedded broker, SQLite, HTTP on loopback), with
 * the demo home's lock, door sensor and camera as the hub's in-memory devices:
 *
 * - the control plane sees the hub's devices as it sees the simulated ones: a courier delivery
 *   completes through the hub, and nothing the hub sends is dropped;
 * - with the control plane stopped, the hub relocks at the session's deadline, once the door
 *   is closed, and the fact reaches the audit log when the control plane is back;
 * - with the control plane unreachable and the camera stalled, the hub's dead-man's switch
 *   locks as soon as the door closes, and its alarm reaches the audit log when the link returns.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ScenarioWorld, SCENARIO_TIMING, sleep } from '../src/harness/scenario-world.ts';
import { startHubHome } from '../src/harness/scenarios/hub-home.ts';
import { verifyHubLog } from '../src/hub/hub-log.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import type { AuditEntry } from '../src/core/audit-chain.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A control plane with the demo home, whose door is bridged by a hub. */
async function worldWithHub(
  opts: { maxOpenMs?: number; dataDir?: string } = {},
  settings: Parameters<typeof startHubHome>[4] = {},
) {
  const world = await ScenarioWorld.create(opts);
  cleanups.push(() => world.close());
  // The simulated devices leave; the hub speaks for the same devices from now on.
  await world.home.stop();
  const hubDir = mkdtempSync(join(tmpdir(), 'threshold-hub-'));
  cleanups.push(() => Promise.resolve(rmSync(hubDir, { recursive: true, force: true })));
  const withKey = { grantKey: world.sys.keys.grantSigner.publicKey, ...settings };
  const home = await startHubHome(world.creds, world.sys.brokerUrl, hubDir, systemClock, withKey);
  cleanups.push(() => home.hub.stop());
  /** Stops this hub and starts a new one from the same folder (its config and its log). */
  const restartHub = async () => {
    await home.hub.stop();
    const again = await startHubHome(
      world.creds,
      world.sys.brokerUrl,
      hubDir,
      systemClock,
      withKey,
    );
    cleanups.push(() => again.hub.stop());
    return again;
  };
  await world.waitFor(
    () => {
      const ids = Object.values(world.creds.devices).map((d) => d.id);
      return ids.every((id) => world.sys.gateway.liveStatus(id)?.online === true);
    },
    10_000,
    'the control plane sees the hub’s devices online',
  );
  return { world, home, restartHub };
}

async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

/** The audit entries of hub events (`device.event` named `hub.*`) in a control plane's log. */
async function hubEvents(sys: RunningSystem): Promise<AuditEntry[]> {
  const last = await sys.store.audit.last();
  if (last === null) return [];
  const all = await sys.store.audit.getRange(1, last.seq);
  return all.filter(
    (e) =>
      e.kind === 'device.event' && String((e.data as { name?: unknown }).name).startsWith('hub.'),
  );
}

/** The courier opens the door: a delivery, "I'm at the door", the session open. */
async function courierOpens(world: ScenarioWorld): Promise<string> {
  const deliveryId = await world.newDelivery();
  const access = await world.requestAccess(deliveryId);
  expect(access.status, JSON.stringify(access.body)).toBe(200);
  const sessionId = (access.body.session as { id: string }).id;
  expect((await world.session(sessionId)).state).toBe('open');
  return sessionId;
}

describe('the hub bridges devices to the control plane', () => {
  it('a courier delivery completes through the hub exactly as with the simulated devices', async () => {
    const { world, home } = await worldWithHub();
    const sessionId = await courierOpens(world);
    expect(home.lock.actualBolt()).toBe('unlocked');
    // The camera recorded first, with the hub's heartbeats.
    const opened = await world.session(sessionId);
    expect(opened.armedAt).not.toBeNull();
    expect(opened.armedAt!).toBeLessThanOrEqual(opened.unlockedAt!);

    home.door.open();
    await sleep(800);
    home.door.close();
    await sleep(600);
    const relock = await world.requestRelock(sessionId);
    expect(relock.status).toBe(200);
    expect(relock.body.confirmed).toBe(true);
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect(done.state).toBe('completed');
    expect(done.coverage.ratio).toBe(1);
    expect(done.alarms).toEqual([]);
    expect(home.lock.actualBolt()).toBe('locked');
    expect((await world.sys.store.clips.list(sessionId)).length).toBeGreaterThanOrEqual(3);
    // Nothing the hub published was dropped by the gateway; no alarm of the hub's own.
    expect(world.sys.gateway.drops()).toEqual({});
    expect(await hubEvents(world.sys)).toEqual([]);
    expect((await world.auditVerified()).ok).toBe(true);
  }, 60_000);
});

describe('the hub enforces on its own', () => {
  it('with the control plane stopped, relocks at the deadline once the door is closed; the audit log hears of it later', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'threshold-hub-cp-'));
    cleanups.push(() => Promise.resolve(rmSync(dataDir, { recursive: true, force: true })));
    const maxOpenMs = 4_000;
    const { world, home } = await worldWithHub({ maxOpenMs, dataDir }, { cutOffMs: 60_000 });
    const sessionId = await courierOpens(world);
    const deadline = home.hub.guard(world.creds.doorId).relockAt();
    expect(deadline).not.toBeNull();

    // The control plane stops; the courier is inside with the door open.
    home.door.open();
    const mqttPort = Number(new URL(world.sys.brokerUrl).port);
    await world.sys.close();
    await until(() => !home.hub.isConnected(), 5_000, 'the hub notices');
    // The door stays open past the deadline: no bolt into an open door.
    await until(() => Date.now() >= deadline! + 500, 10_000, 'the deadline passed');
    expect(home.lock.actualBolt()).toBe('unlocked');
    home.door.close();
    const closedAt = Date.now();
    await until(() => home.lock.actualBolt() === 'locked', 3_000, 'the hub relocks');
    expect(Date.now() - closedAt).toBeLessThan(1_500);
    expect(home.hub.isConnected()).toBe(false);

    // Its log holds the relock, not yet sent, and verifies.
    const log = verifyHubLog(readFileSync(join(home.dataDir, 'hub-log.jsonl'), 'utf8'));
    expect(log.ok).toBe(true);
    const unsent = home.hub.log.unsent();
    expect(unsent.map((f) => [f.name, f.why, f.sessionId])).toContainEqual([
      'hub.relocked',
      'deadline',
      sessionId,
    ]);
    const relockFact = unsent.find((f) => f.name === 'hub.relocked')!;

    // The control plane comes back on the same data and broker port; the hub reconnects and
    // its log reaches the audit log, with the hub's time of the relock.
    const sys = await startSystem({
      clock: systemClock,
      dataDir,
      port: 0,
      mqttPort,
      watchdog: SCENARIO_TIMING.watchdog,
      timing: SCENARIO_TIMING.session,
    });
    cleanups.push(() => sys.close());
    await until(
      async () =>
        (await hubEvents(sys)).some((e) => (e.data as { name: string }).name === 'hub.relocked'),
      10_000,
      'the relock reaches the audit log',
    );
    const entry = (await hubEvents(sys)).find(
      (e) => (e.data as { name: string }).name === 'hub.relocked',
    )!;
    expect(entry.actor).toEqual({ type: 'device', id: world.creds.devices.lock.id });
    const detail = JSON.parse((entry.data as { detail: string }).detail) as Record<string, unknown>;
    expect(detail).toEqual({
      hubAt: relockFact.at,
      hubSeq: relockFact.n,
      session: sessionId,
      why: 'deadline',
    });
    await until(() => home.hub.log.unsent().length === 0, 5_000, 'the hub marks its log sent');
    // The control plane sees the lock locked, with the time the hub threw the bolt.
    const lockState = sys.gateway.liveStatus(world.creds.devices.lock.id)?.state;
    expect(lockState).toMatchObject({ kind: 'lock', bolt: 'locked' });
  }, 60_000);

  it("with the link cut and the camera stalled, the dead-man's switch locks once the door closes; the alarm arrives with the link", async () => {
    const { world, home } = await worldWithHub({ maxOpenMs: 120_000 }, { cutOffMs: 60_000 });
    const sessionId = await courierOpens(world);
    home.door.open();
    await sleep(300);

    // The hub's uplink is cut and the camera's stream stalls (a jammer on the home's Wi-Fi).
    home.hub.cutUplink();
    home.camera.setMode('stalled');
    const stalledAt = Date.now();
    await until(
      () => home.hub.log.unsent().some((f) => f.name === 'hub.dead-man'),
      6_000,
      "the hub's dead-man's switch trips",
    );
    const tripMs = Date.now() - stalledAt;
    expect(tripMs).toBeLessThan(4_000);
    // The door is open: the bolt stays drawn until it closes.
    await sleep(500);
    expect(home.lock.actualBolt()).toBe('unlocked');
    home.door.close();
    await until(() => home.lock.actualBolt() === 'locked', 3_000, 'the hub locks');

    // The link returns: the alarm and the relock reach the audit log, and the owner's page.
    const notices: string[] = [];
    const offNotices = world.sys.events.subscribe((e) => {
      if (e.type === 'notice' && e.homeId === world.creds.homeId) notices.push(e.message);
    });
    home.hub.restoreUplink();
    await until(
      async () => {
        const names = (await hubEvents(world.sys)).map((e) => (e.data as { name: string }).name);
        return names.includes('hub.dead-man') && names.includes('hub.relocked');
      },
      10_000,
      'the alarm reaches the audit log',
    );
    const alarm = (await hubEvents(world.sys)).find(
      (e) => (e.data as { name: string }).name === 'hub.dead-man',
    )!;
    const detail = JSON.parse((alarm.data as { detail: string }).detail) as { why: string };
    expect(detail.why).toMatch(/^observation lost since \d+$/);
    expect(alarm.subject).toMatch(/^(session|device):/);
    // The session cannot open the door again through the hub.
    expect(home.hub.guard(world.creds.doorId).unlockRefusal(sessionId)).not.toBeNull();
    await until(() => home.hub.log.unsent().length === 0, 5_000, 'the hub marks its log sent');
    const names = (await hubEvents(world.sys)).map((e) => (e.data as { name: string }).name);
    expect(names.filter((n) => n === 'hub.dead-man')).toHaveLength(1);
    offNotices();
    expect(notices.filter((m) => /hub locked the door on its own/.test(m))).toHaveLength(1);
    expect((await world.auditVerified()).ok).toBe(true);
  }, 60_000);

  it('cut off during a session, ends it safely; its log survives a hub restart and is sent once', async () => {
    const { world, home, restartHub } = await worldWithHub(
      { maxOpenMs: 120_000 },
      { cutOffMs: 2_000 },
    );
    const sessionId = await courierOpens(world);
    home.door.open();
    await sleep(300);
    home.door.close();

    // The courier left without pressing "lock", and the hub loses the control plane.
    home.hub.cutUplink();
    await until(() => home.lock.actualBolt() === 'locked', 6_000, 'the hub ends the session');
    const facts = home.hub.log.unsent();
    expect(facts.map((f) => f.name)).toEqual(
      expect.arrayContaining(['hub.cut-off', 'hub.relocked']),
    );
    expect(facts.find((f) => f.name === 'hub.cut-off')!.sessionId).toBe(sessionId);
    expect(home.hub.guard(world.creds.doorId).sessionId()).toBeNull();

    // The hub restarts before the link returns; the new one sends what the old one kept.
    const unsent = facts.length;
    const again = await restartHub();
    await until(() => again.hub.log.unsent().length === 0, 10_000, 'the log is sent');
    await sleep(1_000);
    const events = await hubEvents(world.sys);
    expect(events).toHaveLength(unsent);
    const seqs = events.map(
      (e) => (JSON.parse((e.data as { detail: string }).detail) as { hubSeq: number }).hubSeq,
    );
    expect(new Set(seqs).size).toBe(unsent);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // The camera says it no longer records.
    expect(world.sys.gateway.liveStatus(world.creds.devices.camera.id)?.state).toMatchObject({
      kind: 'camera',
      recording: false,
    });
    expect((await world.auditVerified()).ok).toBe(true);
  }, 60_000);
});

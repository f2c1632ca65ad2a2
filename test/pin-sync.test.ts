/**
 * Keypad PINs end to end: the server's PinSync writes codes to the simulated lock, reads them
 * back, retries with backoff when the lock swallows writes, flags codes it did not write, and
 * audits the keypad. Two worlds:
 *
 * - a fake clock: the lock's real endpoint (signed commands, the command gate, signed replies)
 *   over an in-memory link, a real SQLite store and audit log, so every backoff is checked to
 *   the millisecond without sleeping;
 * - the real thing: a running control plane (embedded broker, gateway, store, audit log) and
 *   the demo home's lock connected over MQTT, with short backoff timings; and a second lock
 *   that keeps dropping off the network while it answers nothing (an MQTT client connected
 *   with the lock's own credentials), then works again.
 *
 * Throughout, the PIN must appear nowhere but in the `pin.set` command itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { CHECKPOINT_ENTRY_KIND } from '../src/core/audit-chain.ts';
import type { Principal } from '../src/core/model.ts';
import { DeviceLink, MemoryLink, SimLock } from '../src/devices/index.ts';
import { ScenarioWorld, sleep } from '../src/harness/scenario-world.ts';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import type { DeviceEventMessage } from '../src/protocol/device-messages.ts';
import { pinDigest } from '../src/protocol/pin-digest.ts';
import { SERVER_SUBSCRIPTION, deviceTopic, parseDeviceTopic } from '../src/protocol/topics.ts';
import { AuditLog } from '../src/server/audit-log.ts';
import { loadOrCreateKeys, sha256Hex } from '../src/server/keys.ts';
import {
  DEFAULT_PIN_SYNC_TIMING,
  PinSync,
  type PinSyncOptions,
  type PinSyncTiming,
} from '../src/server/pin-sync.ts';
import { PinSlotRepository, type PinSlot } from '../src/store/pin-slot-repository.ts';
import {
  COURIER,
  HOME,
  LOCK,
  OWNER,
  openTestStore,
  seedHome,
  type TestStore,
} from '../src/store/test-store.ts';
import { flush, LinkGateway, SteppingClock } from './pin-link.ts';

const FAST: Partial<PinSyncTiming> = {
  retryBaseMs: 2_000,
  retryMaxMs: 60_000,
  maxAttempts: 6,
  commandTimeoutMs: 10_000,
  reconcileEveryMs: null,
};

describe('PinSync on a fake clock', () => {
  let t: TestStore;
  let dir: string;
  let clock: SteppingClock;
  let link: MemoryLink;
  let lock: SimLock;
  let gateway: LinkGateway;
  let audit: AuditLog;
  let sync: PinSync;
  let notes: { homeId: string; message: string }[];
  let master: Buffer;
  let lockKey: Buffer;

  function newSync(
    timing: Partial<PinSyncTiming> = FAST,
    more: Partial<PinSyncOptions> = {},
  ): PinSync {
    return new PinSync({
      gateway,
      store: t.store,
      audit,
      clock,
      masterKey: master,
      notify: (homeId, message) => notes.push({ homeId, message }),
      timing,
      ...more,
    });
  }

  beforeEach(async () => {
    t = await openTestStore('sqlite');
    await seedHome(t.store);
    dir = mkdtempSync(join(tmpdir(), 'threshold-pin-keys-'));
    const keys = loadOrCreateKeys(dir);
    master = keys.masterKey;
    lockKey = deriveDeviceKey(master, LOCK.id);
    clock = new SteppingClock();
    link = new MemoryLink({ homeId: HOME.id, deviceId: LOCK.id, deviceKey: lockKey, clock });
    lock = new SimLock(link, { clock, deviceKey: lockKey, motorDelayMs: 300 });
    link.connect();
    gateway = new LinkGateway(link, clock, lockKey);
    audit = await AuditLog.open(t.store.audit, clock, keys.auditSigner, sha256Hex);
    notes = [];
    sync = newSync();
    await sync.start();
  });

  afterEach(async () => {
    await sync.stop();
    await audit.close();
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the clock from timer to timer until `done` holds. */
  async function runUntil(done: () => boolean, limitMs = 10 * 60_000): Promise<void> {
    const end = clock.now() + limitMs;
    for (;;) {
      await flush();
      if (done()) return;
      const next = clock.nextDue();
      if (next === null || next > end) throw new Error('nothing left to run, and not done');
      clock.advanceTo(next);
    }
  }

  async function settle(slot: number): Promise<PinSlot> {
    let result: PinSlot | null | undefined;
    void sync.settled(LOCK.id, slot).then((r) => (result = r));
    await runUntil(() => result !== undefined);
    if (!result) throw new Error(`slot ${slot} has no record`);
    return result;
  }

  async function assign(slot: number, code: string, name?: string): Promise<PinSlot> {
    const r = await sync.assign(LOCK.id, slot, code, {
      principalId: OWNER.id,
      ...(name === undefined ? {} : { name }),
    });
    if (!r.ok) throw new Error(r.problem.message);
    return r.value;
  }

  async function auditText(): Promise<string> {
    await audit.drain();
    const last = (await t.store.audit.last())?.seq ?? 0;
    return JSON.stringify(await t.store.audit.getRange(1, last));
  }

  /** The kinds of audit entries so far, without the log's own checkpoint records. */
  async function auditKinds(): Promise<string[]> {
    await audit.drain();
    const last = (await t.store.audit.last())?.seq ?? 0;
    return (await t.store.audit.getRange(1, last))
      .map((e) => e.kind)
      .filter((k) => k !== CHECKPOINT_ENTRY_KIND);
  }

  it('confirms a code once the read-back shows its digest, and keeps only the digest', async () => {
    const t0 = clock.now();
    const pending = await assign(4, '482915', 'Cleaner');
    expect(pending).toMatchObject({ sync: 'pending', desired: 'set', attempts: 0 });
    const done = await settle(4);
    expect(done).toMatchObject({
      sync: 'confirmed',
      attempts: 1,
      principalId: OWNER.id,
      name: 'Cleaner',
      codeDigest: pinDigest(lockKey, 4, '482915'),
      lockDigest: pinDigest(lockKey, 4, '482915'),
      lastError: null,
      nextAttemptAt: null,
      checkedAt: t0,
    });
    expect(lock.pinSlots()).toEqual([4]);
    expect(lock.pinName(4)).toBe('Cleaner');
    expect(gateway.sent.map((s) => s.action)).toEqual(['pin.set', 'pin.list']);
    expect(await auditKinds()).toEqual(['pin.assigned', 'pin.confirmed']);
    const text = (await auditText()) + JSON.stringify(await sync.slots(LOCK.id));
    expect(text).not.toContain('482915');
  });

  it('retries after 2 s and 4 s when the lock swallows the first two writes', async () => {
    lock.dropPinWrites(2);
    const t0 = clock.now();
    await assign(7, '7319');
    const done = await settle(7);
    expect(done).toMatchObject({ sync: 'confirmed', attempts: 3, lastError: null });
    expect(gateway.writes('pin.set')).toEqual([t0, t0 + 2_000, t0 + 6_000]);
    expect(lock.pinSlots()).toEqual([7]);
  });

  it('gives up after six attempts, waiting 2, 4, 8, 16 and 32 s between them', async () => {
    lock.dropPinWrites('all');
    const t0 = clock.now();
    await assign(2, '5555');
    const done = await settle(2);
    expect(gateway.writes('pin.set')).toEqual([
      t0,
      t0 + 2_000,
      t0 + 6_000,
      t0 + 14_000,
      t0 + 30_000,
      t0 + 62_000,
    ]);
    expect(done).toMatchObject({ sync: 'failed', attempts: 6, nextAttemptAt: null });
    expect(done.lastError).toMatch(/read-back does not show it/);
    expect(lock.pinSlots()).toEqual([]);
    expect(await auditKinds()).toEqual(['pin.assigned', 'pin.failed']);
    expect(await auditText()).not.toContain('5555');
  });

  it('caps the wait between attempts', async () => {
    await sync.stop();
    sync = newSync({ ...FAST, retryMaxMs: 5_000, maxAttempts: 5 });
    lock.dropPinWrites('all');
    const t0 = clock.now();
    await assign(2, '5555');
    await settle(2);
    expect(gateway.writes('pin.set').map((at) => at - t0)).toEqual([
      0, 2_000, 6_000, 11_000, 16_000,
    ]);
  });

  it('stops at once when the lock refuses the code, without repeating it', async () => {
    lock.setPinLocally(1, '246810');
    await assign(3, '246810');
    const done = await settle(3);
    expect(done).toMatchObject({ sync: 'failed', attempts: 1 });
    expect(done.lastError).toMatch(/command.invalid.*another slot/);
    expect(gateway.writes('pin.set')).toHaveLength(1);
    expect((await auditText()) + JSON.stringify(done)).not.toContain('246810');
  });

  it('keeps trying while the lock is away, and goes again as soon as it is back', async () => {
    gateway.reachable = false;
    const t0 = clock.now();
    await assign(5, '9090');
    await runUntil(() => gateway.writes('pin.set').length === 2);
    expect((await t.store.db.selectFrom('pin_slots').selectAll().execute())[0]).toMatchObject({
      sync_state: 'pending',
      attempts: 2,
      next_attempt_at: t0 + 6_000,
    });
    clock.advance(1_000);
    gateway.reachable = true;
    sync.onAvailability({ id: LOCK.id, homeId: HOME.id, kind: 'lock' }, true);
    const done = await settle(5);
    expect(done).toMatchObject({ sync: 'confirmed', attempts: 3 });
    expect(gateway.writes('pin.set')).toEqual([t0, t0 + 2_000, t0 + 3_000]);
  });

  it('clears a slot, retrying a swallowed clear like a swallowed write', async () => {
    await assign(6, '1357');
    await settle(6);
    lock.dropPinWrites(1);
    const t0 = clock.now();
    const r = await sync.clear(LOCK.id, 6);
    expect(r.ok).toBe(true);
    const done = await settle(6);
    expect(done).toMatchObject({
      desired: 'clear',
      sync: 'confirmed',
      attempts: 2,
      codeDigest: null,
      principalId: null,
      lockDigest: null,
    });
    expect(gateway.writes('pin.clear')).toEqual([t0, t0 + 2_000]);
    expect(lock.pinSlots()).toEqual([]);
    expect(await auditKinds()).toEqual([
      'pin.assigned',
      'pin.confirmed',
      'pin.cleared',
      'pin.confirmed',
    ]);
  });

  it('a newer wish for a slot replaces the write under way', async () => {
    lock.dropPinWrites(1);
    const t0 = clock.now();
    await assign(8, '1111');
    await runUntil(() => gateway.writes('pin.set').length === 1);
    // The first write was swallowed; its retry is due at t0 + 2 s. A new code comes first.
    clock.advance(500);
    await assign(8, '2222');
    const done = await settle(8);
    expect(done).toMatchObject({
      sync: 'confirmed',
      attempts: 1,
      codeDigest: pinDigest(lockKey, 8, '2222'),
    });
    // The old write's retry never goes out.
    clock.advance(10_000);
    await flush();
    expect(gateway.writes('pin.set')).toEqual([t0, t0 + 500]);
    expect(lock.enterCode('1111').result).toBe('wrong-code');
    expect(lock.enterCode('2222')).toEqual({ result: 'unlocked', slot: 8 });
  });

  it('a request made while the lock is busy with the previous write of that slot wins', async () => {
    const release = gateway.hold();
    await assign(8, '1111');
    await runUntil(() => gateway.writes('pin.set').length === 1);
    // The first write is on its way to the lock when the slot is given another code.
    await assign(8, '2222');
    release();
    const done = await settle(8);
    expect(done).toMatchObject({
      sync: 'confirmed',
      codeDigest: pinDigest(lockKey, 8, '2222'),
      lockDigest: pinDigest(lockKey, 8, '2222'),
    });
    expect(gateway.writes('pin.set')).toHaveLength(2);
    expect(lock.enterCode('1111').result).toBe('wrong-code');
    expect(lock.enterCode('2222')).toEqual({ result: 'unlocked', slot: 8 });
    expect(await auditKinds()).toEqual(['pin.assigned', 'pin.assigned', 'pin.confirmed']);
  });

  it('reconciliation leaves a write under way alone', async () => {
    lock.dropPinWrites(1);
    const t0 = clock.now();
    await assign(5, '5050');
    await runUntil(() => gateway.writes('pin.set').length === 1);
    const r = await sync.reconcile(LOCK.id);
    expect(r.ok && r.value).toEqual([
      expect.objectContaining({ slot: 5, sync: 'pending', attempts: 1, nextAttemptAt: t0 + 2_000 }),
    ]);
    expect(await settle(5)).toMatchObject({ sync: 'confirmed', attempts: 2 });
    expect(notes).toEqual([]);
  });

  it('flags what the lock holds that Threshold did not write, and what changed behind its back', async () => {
    await assign(1, '1212');
    await settle(1);
    await assign(2, '3434');
    await settle(2);
    await assign(3, '5656');
    await settle(3);
    lock.setPinLocally(12, '7777');
    lock.setPinLocally(2, '9898');
    lock.clearPinLocally(3);
    const r = await sync.reconcile(LOCK.id);
    if (!r.ok) throw new Error(r.problem.message);
    expect(r.value.map((s) => [s.slot, s.desired, s.sync, s.principalId])).toEqual([
      [1, 'set', 'confirmed', OWNER.id],
      [2, 'set', 'out-of-sync', OWNER.id],
      [3, 'set', 'out-of-sync', OWNER.id],
      [12, 'clear', 'unknown-on-lock', null],
    ]);
    expect(r.value.find((s) => s.slot === 12)?.lockDigest).toBe(pinDigest(lockKey, 12, '7777'));
    expect(notes).toEqual([
      {
        homeId: HOME.id,
        message: 'Front lock holds a keypad code in slot 12 that Threshold did not set.',
      },
    ]);
    const kinds = await auditKinds();
    expect(kinds.filter((k) => k === 'pin.out-of-sync')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'pin.unknown-on-lock')).toHaveLength(1);
    // Flagged, never removed without the owner; clearing it is the owner's call.
    expect(lock.pinSlots()).toEqual([1, 2, 12]);
    await sync.clear(LOCK.id, 12);
    expect(await settle(12)).toMatchObject({ sync: 'confirmed', desired: 'clear' });
    // A second look changes nothing that is already known.
    const again = await sync.reconcile(LOCK.id);
    expect(again.ok && again.value.map((s) => s.sync)).toEqual([
      'confirmed',
      'out-of-sync',
      'out-of-sync',
      'confirmed',
    ]);
    expect(notes).toHaveLength(1);
    expect(await auditText()).not.toMatch(/7777|9898|1212|3434|5656/);
  });

  it('reconciles when the lock comes online, and on its period', async () => {
    await sync.stop();
    sync = newSync({ ...FAST, reconcileEveryMs: 60_000 });
    await sync.start();
    lock.setPinLocally(20, '2020');
    sync.onAvailability({ id: LOCK.id, homeId: HOME.id, kind: 'lock' }, true);
    await runUntil(() => notes.length === 1);
    lock.setPinLocally(21, '2121');
    const t0 = clock.now();
    await runUntil(() => notes.length === 2);
    expect(clock.now()).toBe(t0 + 60_000);
    expect((await sync.slots(LOCK.id)).map((s) => [s.slot, s.sync])).toEqual([
      [20, 'unknown-on-lock'],
      [21, 'unknown-on-lock'],
    ]);
  });

  it('after a restart, a code still unconfirmed is failed (it was never stored), a clear goes on', async () => {
    gateway.reachable = false;
    await assign(9, '8642');
    await flush();
    lock.setPinLocally(10, '1010');
    await sync.clear(LOCK.id, 10);
    await flush();
    await sync.stop();
    gateway.reachable = true;
    sync = newSync();
    await sync.start();
    expect(await sync.settled(LOCK.id, 9)).toMatchObject({ sync: 'failed' });
    expect((await sync.settled(LOCK.id, 9))?.lastError).toMatch(/restarted/);
    expect(await settle(10)).toMatchObject({ sync: 'confirmed', desired: 'clear' });
    expect(lock.pinSlots()).toEqual([]);
  });

  it('refuses bad requests and stores nothing for them', async () => {
    const cases: [string, number, string, Partial<{ principalId: string; name: string }>][] = [
      [LOCK.id, 4, '123', {}],
      [LOCK.id, 4, '12345678901', {}],
      [LOCK.id, 4, '12a4', {}],
      [LOCK.id, 0, '1234', {}],
      [LOCK.id, 1.5, '1234', {}],
      [LOCK.id, 4, '1234', { name: '' }],
      [LOCK.id, 4, '1234', { name: 'x'.repeat(33) }],
      [LOCK.id, 4, '1234', { principalId: COURIER.id }],
      [LOCK.id, 4, '1234', { principalId: 'nobody' }],
      ['camera-1', 4, '1234', {}],
      ['no-such-lock', 4, '1234', {}],
    ];
    for (const [lockId, slot, code, extra] of cases) {
      const r = await sync.assign(lockId, slot, code, { principalId: OWNER.id, ...extra });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(['request.invalid', 'device.not-found']).toContain(r.problem.code);
        expect(r.problem.message).not.toContain(code);
      }
    }
    // Once the lock has said it has 30 slots, slot 31 is refused too.
    await sync.reconcile(LOCK.id);
    const beyond = await sync.assign(LOCK.id, 31, '1234', { principalId: OWNER.id });
    expect(!beyond.ok && beyond.problem).toMatchObject({ code: 'request.invalid' });
    expect((await sync.clear(LOCK.id, 31)).ok).toBe(false);
    expect(await sync.slots(LOCK.id)).toEqual([]);
    expect(gateway.writes('pin.set')).toEqual([]);
  });

  it('audits keypad events with the slot and whose code it was, and tells the owner of a lockout', async () => {
    await assign(4, '482915');
    await settle(4);
    lock.setPinLocally(13, '1313');
    const events = (): DeviceEventMessage[] => link.payloads('event');
    const feed = (from: number) => {
      for (const e of events().slice(from))
        void sync.onEvent({ id: LOCK.id, homeId: HOME.id, kind: 'lock' }, e);
    };
    let seen = events().length;
    lock.enterCode('482915');
    lock.enterCode('1313');
    feed(seen);
    seen = events().length;
    lock.enterCode('0000');
    lock.enterCode('0001');
    lock.enterCode('0002');
    lock.enterCode('482915');
    feed(seen);
    await runUntil(() => notes.length === 2);
    await audit.drain();
    const last = (await t.store.audit.last())?.seq ?? 0;
    const keypad = (await t.store.audit.getRange(1, last)).filter((e) =>
      e.kind.startsWith('keypad.'),
    );
    expect(keypad.map((e) => [e.kind, e.data])).toEqual([
      [
        'keypad.unlocked',
        expect.objectContaining({ slot: 4, principalId: OWNER.id, slotState: 'confirmed' }),
      ],
      [
        'keypad.unlocked',
        expect.objectContaining({ slot: 13, principalId: null, slotState: null }),
      ],
      ['keypad.wrong-code', expect.objectContaining({ attempt: 1 })],
      ['keypad.wrong-code', expect.objectContaining({ attempt: 2 })],
      ['keypad.wrong-code', expect.objectContaining({ attempt: 3 })],
      ['keypad.lockout', expect.objectContaining({ untilMs: clock.now() + 15_000 })],
    ]);
    // Each keeps the lock's own MAC of what it said.
    for (const e of keypad) expect(e.deviceMac).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(notes).toEqual([
      {
        homeId: HOME.id,
        message: 'Front lock was opened with a keypad code Threshold did not set (slot 13).',
      },
      {
        homeId: HOME.id,
        message: 'Too many wrong codes on the keypad of Front lock: it takes no codes for 15 s.',
      },
    ]);
    expect(await auditText()).not.toMatch(/482915|1313/);
  });

  describe('on replicas: every one hears each keypad event', () => {
    const device = { id: LOCK.id, homeId: HOME.id, kind: 'lock' as const };

    it('audits each event once whichever replicas hear it, tells the owner once, and reports each opening from each', async () => {
      await sync.stop();
      const reports: { replica: string; slot: number | null; seq: number }[] = [];
      const other = await AuditLog.open(
        t.store.audit,
        clock,
        loadOrCreateKeys(dir).auditSigner,
        sha256Hex,
      );
      const replica = (name: string, log: AuditLog): PinSync =>
        newSync(FAST, {
          audit: log,
          onKeypadEntry: (e) => {
            reports.push({ replica: name, slot: e.slot, seq: e.seq });
          },
          auditEventsOnce: true,
          settlePendingOnStart: false,
        });
      const a = replica('a', audit);
      const b = replica('b', other);
      try {
        await a.start();
        await b.start();
        lock.setPinLocally(13, '1313');
        lock.enterCode('1313');
        lock.enterCode('0000');
        lock.enterCode('0001');
        lock.enterCode('0002');
        const heard = link.payloads('event');
        expect(heard.map((e) => e.name)).toEqual([
          'keypad.unlocked',
          'keypad.wrong-code',
          'keypad.wrong-code',
          'keypad.wrong-code',
          'keypad.lockout',
        ]);
        // Both hear everything, in their own order of arrival; b hears the first one twice
        // (a broker's resend).
        const done = [
          ...heard.map((e) => a.onEvent(device, e)),
          ...[...heard].reverse().map((e) => b.onEvent(device, e)),
          b.onEvent(device, heard[0]!),
        ];
        // Each returns what the event's acknowledgement waits for.
        const waits = done.filter((p): p is Promise<void> => p !== undefined);
        expect(waits).toHaveLength(11);
        await Promise.all(waits);
        await audit.drain();
        await other.drain();
        const last = (await t.store.audit.last())?.seq ?? 0;
        const keypad = (await t.store.audit.getRange(1, last)).filter((e) =>
          e.kind.startsWith('keypad.'),
        );
        expect(keypad.map((e) => e.kind).sort()).toEqual([
          'keypad.lockout',
          'keypad.unlocked',
          'keypad.wrong-code',
          'keypad.wrong-code',
          'keypad.wrong-code',
        ]);
        expect(notes.map((n) => n.message).sort()).toEqual([
          'Front lock was opened with a keypad code Threshold did not set (slot 13).',
          'Too many wrong codes on the keypad of Front lock: it takes no codes for 15 s.',
        ]);
        // The entry is recorded where it is reported, once per event (see entries.ts): each
        // replica reports it, in case the one that audited it died before recording it.
        const seq = heard[0]!.seq;
        expect(reports).toEqual([
          { replica: 'a', slot: 13, seq },
          { replica: 'b', slot: 13, seq },
          { replica: 'b', slot: 13, seq },
        ]);
      } finally {
        await a.stop();
        await b.stop();
        await other.close();
      }
      sync = newSync();
    });

    it('a replica that does not lead runs no pass for a lock coming online, then runs those of the last gap once it leads', async () => {
      await sync.stop();
      let leads = false;
      const replica = newSync(FAST, { runsPasses: () => leads, settlePendingOnStart: false });
      const lists = (): number => gateway.sent.filter((x) => x.action === 'pin.list').length;
      try {
        await replica.start();
        await flush();
        const before = lists();
        replica.onAvailability(device, true);
        await flush();
        expect(lists(), 'no pass while another replica leads').toBe(before);
        // Long ago: the leader of that time ran its pass; it is not run again.
        clock.advanceTo(clock.now() + 60_000);
        expect(replica.catchUpPasses(5_000)).toBe(0);
        replica.onAvailability(device, true);
        clock.advanceTo(clock.now() + 2_000);
        leads = true;
        expect(replica.catchUpPasses(5_000)).toBe(1);
        await runUntil(() => lists() > before);
        expect(lists()).toBe(before + 1);
        // Remembered once: a second catch-up has nothing left to run.
        expect(replica.catchUpPasses(5_000)).toBe(0);
        // A lock that went offline meanwhile is not passed.
        leads = false;
        replica.onAvailability(device, true);
        replica.onAvailability(device, false);
        leads = true;
        expect(replica.catchUpPasses(5_000)).toBe(0);
      } finally {
        await replica.stop();
      }
      sync = newSync();
    });
  });

  describe('a lock that answers nothing and keeps coming and going', () => {
    const device = { id: LOCK.id, homeId: HOME.id, kind: 'lock' as const };
    const lists = (): number => gateway.sent.filter((s) => s.action === 'pin.list').length;

    it('coming online twenty times while a reconcile waits gives one reconcile after it, not nineteen', async () => {
      const release = gateway.hold();
      for (let i = 0; i < 20; i++) {
        sync.onAvailability(device, true);
        await flush();
      }
      // One listing is out; the other nineteen reports come to one more pass.
      expect(lists()).toBe(1);
      release();
      await runUntil(() => lists() >= 2);
      expect(await settlesWithin(sync.stop(), 5_000), 'stop() has returned').toBe(true);
      expect(lists()).toBe(2);
      expect(gateway.sent.every((s) => s.action === 'pin.list')).toBe(true);
    });

    it('going offline ends every wait on the lock at once; an attempt cut short counts, and goes again when the lock is back', async () => {
      const release = gateway.hold();
      const t0 = clock.now();
      await assign(5, '5151');
      await runUntil(() => gateway.writes('pin.set').length === 1);
      // Behind the write that gets no answer: a reconcile asked for by hand, and the lock's own
      // online pass with a second report that asks for one more.
      const byHand = sync.reconcile(LOCK.id);
      sync.onAvailability(device, true);
      await flush();
      sync.onAvailability(device, true);
      await flush();
      sync.onAvailability(device, false);
      expect(await settlesWithin(byHand, 5_000), 'the reconcile has ended').toBe(true);
      const result = await byHand;
      expect(!result.ok && result.problem).toMatchObject({
        code: 'lock.offline',
        message: 'the lock went offline before it listed its slots',
      });
      await flush();
      // Nothing waiting its turn was sent to a lock known to be away, and the pass asked for
      // meanwhile was dropped with it.
      expect(gateway.sent.map((c) => c.action)).toEqual(['pin.set']);
      // It counts, and the next is due when the write would have timed out, plus the backoff.
      expect(await sync.slots(LOCK.id)).toEqual([
        expect.objectContaining({
          slot: 5,
          sync: 'pending',
          attempts: 1,
          nextAttemptAt: t0 + 10_000 + 2_000,
          lastError: 'the lock went offline before it answered the write',
        }),
      ]);
      // Flapping does not use the code's attempts up faster than a silent lock would.
      for (let i = 0; i < 10; i++) {
        sync.onAvailability(device, true);
        await flush();
        sync.onAvailability(device, false);
        await flush();
      }
      expect(gateway.writes('pin.set')).toEqual([t0]);
      // Back and answering: the waiting attempt goes as soon as that pace allows, and lands.
      release();
      sync.onAvailability(device, true);
      expect(await settle(5)).toMatchObject({ sync: 'confirmed', attempts: 2, lastError: null });
      expect(gateway.writes('pin.set')).toEqual([t0, t0 + 10_000]);
      expect(lock.enterCode('5151')).toEqual({ result: 'unlocked', slot: 5 });
      expect(await auditText()).not.toContain('5151');
    });

    it('stop returns at once while the lock holds every command, and nothing is sent after it', async () => {
      gateway.hold();
      await assign(6, '6161');
      await runUntil(() => gateway.writes('pin.set').length === 1);
      for (let i = 0; i < 20; i++) {
        sync.onAvailability(device, i % 2 === 0);
        await flush();
      }
      sync.onAvailability(device, true);
      await flush();
      const before = gateway.sent.length;
      expect(await settlesWithin(sync.stop(), 5_000), 'stop() has returned').toBe(true);
      sync.onAvailability(device, false);
      sync.onAvailability(device, true);
      clock.advance(10 * 60_000);
      await flush();
      expect(gateway.sent).toHaveLength(before);
      // The write is left pending for the next start, as a stop always leaves it.
      expect(await sync.slots(LOCK.id)).toEqual([
        expect.objectContaining({ slot: 6, sync: 'pending', attempts: 1 }),
      ]);
    });
  });
});

describe('PinSync against the real broker and the simulated lock', () => {
  let world: ScenarioWorld;
  let sync: PinSync;
  let wiretap: MqttClient;
  let lockId: string;
  let guest: Principal;
  const notes: { homeId: string; message: string }[] = [];
  const logLines: string[] = [];
  /** Everything on the wire under the Threshold root, as a server-side tap sees it. */
  const traffic: { topic: string; text: string }[] = [];
  /** Everything the gateway handed to its listeners (or dropped), as text. */
  const gatewaySeen: string[] = [];
  /** Every code written or typed in these tests: none may leak. */
  const codes: string[] = [];

  function newCode(): string {
    // Ten digits: no timestamp, sequence number or base64 text will contain it by chance.
    const code = String(randomInt(1_000_000_000, 10_000_000_000));
    codes.push(code);
    return code;
  }

  async function auditEntries() {
    await world.sys.audit.drain();
    const last = (await world.sys.store.audit.last())?.seq ?? 0;
    return world.sys.store.audit.getRange(1, last);
  }

  beforeAll(async () => {
    world = await ScenarioWorld.create();
    const { sys } = world;
    lockId = world.creds.devices.lock.id;
    guest = {
      id: 'guest-gina',
      role: 'guest',
      displayName: 'Gina Guest',
      homeId: world.creds.homeId,
      carrierId: null,
    };
    await sys.store.principals.create(guest, { username: 'gina', passwordHash: 'unused' });
    // "Any time" at the front door: her codes' windows reach a lease ahead, renewed as they go.
    const owner = await sys.store.principals.getByUsername(world.creds.owner.username);
    await sys.store.guestGrants.create({
      id: 'grant-gina',
      homeId: world.creds.homeId,
      doorId: world.creds.doorId,
      principalId: guest.id,
      grantedBy: owner!.principal.id,
      schedule: { kind: 'always' },
      limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
      uses: 0,
      createdAt: sys.clock.now(),
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    });
    const credentials = serverMqttCredentials(sys.keys.masterKey);
    wiretap = await connectAsync(sys.brokerUrl, {
      ...credentials,
      clientId: `${credentials.username}-wiretap-${randomInt(1e9)}`,
      protocolVersion: 4,
    });
    wiretap.on('message', (topic, payload) =>
      traffic.push({ topic, text: payload.toString('utf8') }),
    );
    await wiretap.subscribeAsync(SERVER_SUBSCRIPTION, { qos: 1 });
    sys.gateway.addListener({
      onState: (_d, s) => void gatewaySeen.push(JSON.stringify(s)),
      onEvent: (_d, e) => void gatewaySeen.push(JSON.stringify(e)),
      onDrop: (reason, topic, detail) => void gatewaySeen.push(`${reason} ${topic} ${detail}`),
    });
    // This test runs its own PinSync (short retry timings, its own notify and log capture):
    // the system's own one is stopped, so each keypad event is handled once.
    await sys.pins.stop();
    sync = new PinSync({
      gateway: sys.gateway,
      store: sys.store,
      pinSlots: new PinSlotRepository(sys.store.db),
      audit: sys.audit,
      clock: sys.clock,
      masterKey: sys.keys.masterKey,
      notify: (homeId, message) => notes.push({ homeId, message }),
      logger: {
        warn: (o, m) => void logLines.push(`${JSON.stringify(o)} ${m}`),
        info: (o, m) => void logLines.push(`${JSON.stringify(o)} ${m}`),
      },
      timing: {
        retryBaseMs: 100,
        retryMaxMs: 400,
        maxAttempts: 4,
        commandTimeoutMs: 3_000,
        reconcileEveryMs: null,
      },
    });
    sys.gateway.addListener(sync);
    await sync.start();
  });

  afterAll(async () => {
    await sync?.stop();
    await wiretap?.endAsync();
    await world?.close();
  });

  it('writes a code, confirms it by read-back, and the keypad then opens with the slot named', async () => {
    const code = newCode();
    const r = await sync.assign(lockId, 1, code, { principalId: guest.id, name: 'Gina' });
    expect(r.ok && r.value.sync).toBe('pending');
    expect(await sync.settled(lockId, 1)).toMatchObject({
      sync: 'confirmed',
      attempts: 1,
      principalId: guest.id,
      lastError: null,
    });
    expect(world.home.lock.pinSlots()).toContain(1);
    expect(world.home.lock.pinName(1)).toBe('Gina');

    expect(world.home.lock.enterCode(code)).toEqual({ result: 'unlocked', slot: 1 });
    await world.waitFor(
      () =>
        world.sys.gateway.liveStatus(lockId)?.state?.kind === 'lock' &&
        (world.sys.gateway.liveStatus(lockId)?.state as { bolt?: string }).bolt === 'unlocked',
      5_000,
      'the lock reports its bolt drawn',
    );
    const events = traffic.filter((m) => parseDeviceTopic(m.topic)?.channel === 'event');
    expect(events.map((m) => JSON.parse(m.text) as DeviceEventMessage)).toContainEqual(
      expect.objectContaining({ name: 'keypad.unlocked', slot: 1 }),
    );
    await world.waitFor(
      async () => (await auditEntries()).some((e) => e.kind === 'keypad.unlocked'),
      5_000,
      'the keypad opening is audited',
    );
    const opened = (await auditEntries()).find((e) => e.kind === 'keypad.unlocked');
    expect(opened).toMatchObject({
      actor: { type: 'device', id: lockId },
      subject: `device:${lockId}`,
      data: { slot: 1, principalId: guest.id },
    });
    const relock = await world.sys.gateway.command(lockId, 'lock');
    expect(relock.status).toBe('ok');
  });

  it('retries when the lock acknowledges but drops the first two writes, then confirms', async () => {
    world.home.lock.dropPinWrites(2);
    const code = newCode();
    await sync.assign(lockId, 2, code, { principalId: guest.id });
    expect(await sync.settled(lockId, 2)).toMatchObject({
      sync: 'confirmed',
      attempts: 3,
      lastError: null,
    });
    expect(world.home.lock.pinSlots()).toContain(2);
  });

  it('fails after the last attempt when the lock drops every write', async () => {
    world.home.lock.dropPinWrites('all');
    try {
      await sync.assign(lockId, 3, newCode(), { principalId: guest.id });
      const done = await sync.settled(lockId, 3);
      expect(done).toMatchObject({ sync: 'failed', attempts: 4 });
      expect(done?.lastError).toMatch(/read-back does not show it/);
      expect(world.home.lock.pinSlots()).not.toContain(3);
      const failed = (await auditEntries()).filter((e) => e.kind === 'pin.failed');
      expect(failed.map((e) => [e.data.slot, e.data.attempts])).toEqual([[3, 4]]);
    } finally {
      world.home.lock.dropPinWrites(0);
    }
  });

  it('flags a code set by hand at the lock when the lock comes back online', async () => {
    const confirmedBefore = (await sync.slots(lockId))
      .filter((s) => s.sync === 'confirmed')
      .map((s) => s.slot);
    world.home.lock.setPinLocally(9, newCode());
    world.home.links.lock.cutLink();
    await world.waitFor(
      () => world.sys.gateway.liveStatus(lockId)?.online === false,
      5_000,
      'the server sees the lock go',
    );
    world.home.links.lock.restoreLink();
    // The slot is recorded, then audited and told: wait for the last of them.
    await world.waitFor(
      async () =>
        (await sync.slots(lockId)).some((s) => s.slot === 9) &&
        notes.some((n) => n.message.includes('slot 9')),
      10_000,
      'slot 9 is reconciled and the owner told',
    );
    const slots = await sync.slots(lockId);
    expect(slots.find((s) => s.slot === 9)).toMatchObject({
      sync: 'unknown-on-lock',
      desired: 'clear',
      principalId: null,
    });
    // What Threshold wrote and the lock kept is still confirmed.
    expect(slots.filter((s) => s.sync === 'confirmed').map((s) => s.slot)).toEqual(confirmedBefore);
    expect(notes).toContainEqual({
      homeId: world.creds.homeId,
      message: 'Front door lock holds a keypad code in slot 9 that Threshold did not set.',
    });
    expect((await auditEntries()).map((e) => e.kind)).toContain('pin.unknown-on-lock');
  });

  it('locks the keypad out for at least 15 s after three wrong codes, refuses the right one, audits and tells the owner', async () => {
    const code = newCode();
    await sync.assign(lockId, 4, code, { principalId: guest.id });
    expect(await sync.settled(lockId, 4)).toMatchObject({ sync: 'confirmed' });
    const lock = world.home.lock;
    const audited = (await auditEntries()).length;
    expect(lock.enterCode(newCode())).toMatchObject({ result: 'wrong-code', attempt: 1 });
    expect(lock.enterCode(newCode())).toMatchObject({ result: 'wrong-code', attempt: 2 });
    const enteredAt = Date.now();
    const third = lock.enterCode(newCode());
    expect(third).toMatchObject({ result: 'wrong-code', attempt: 3 });
    const until = third.result === 'wrong-code' ? third.lockedOutUntil : null;
    // At least 15 s from the third wrong code (the lock runs on this machine's clock).
    expect(until).not.toBeNull();
    expect(until! - enteredAt).toBeGreaterThanOrEqual(15_000);
    expect(lock.enterCode(code)).toEqual({ result: 'ignored', lockedOutUntil: until });
    await world.waitFor(
      () => notes.some((n) => n.message.includes('Too many wrong codes')),
      5_000,
      'the owner is told',
    );
    expect(notes).toContainEqual({
      homeId: world.creds.homeId,
      message: 'Too many wrong codes on the keypad of Front door lock: it takes no codes for 15 s.',
    });
    await world.waitFor(
      async () => (await auditEntries()).some((e) => e.kind === 'keypad.lockout'),
      5_000,
      'the lockout is audited',
    );
    const keypad = (await auditEntries())
      .slice(audited)
      .filter((e) => e.kind.startsWith('keypad.'));
    expect(keypad.map((e) => [e.kind, e.data.attempt ?? null])).toEqual([
      ['keypad.wrong-code', 1],
      ['keypad.wrong-code', 2],
      ['keypad.wrong-code', 3],
      ['keypad.lockout', null],
    ]);
    const lockout = keypad.at(-1)!;
    expect(lockout.data.untilMs).toBe(until);
    // The right code did nothing: the bolt stays thrown and no opening is reported.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(lock.bolt()).toBe('locked');
    const after = (await auditEntries()).slice(audited);
    expect(after.filter((e) => e.kind === 'keypad.unlocked')).toEqual([]);
  });

  it('never lets a PIN out: not in the audit log, the store, the logs or anything devices send', async () => {
    await world.sys.audit.drain();
    expect(codes.length).toBeGreaterThanOrEqual(8);
    const auditText = JSON.stringify(await auditEntries());
    const tables = await world.sys.store.db.introspection.getTables();
    let storeText = '';
    for (const table of tables) {
      const rows = await sql`select * from ${sql.table(table.name)}`.execute(world.sys.store.db);
      storeText += JSON.stringify(rows.rows);
    }
    // The scan reads real rows: the guest's slots are there, by digest.
    expect(storeText).toContain(
      pinDigest(deriveDeviceKey(world.sys.keys.masterKey, lockId), 1, codes[0]!),
    );
    const logText = logLines.join('\n');
    const seenText = gatewaySeen.join('\n');
    // The tap works: it saw each code written in its pin.set command...
    const pinSets = traffic.filter((m) => {
      const t = parseDeviceTopic(m.topic);
      return (
        t?.channel === 'command' && (JSON.parse(m.text) as { action?: string }).action === 'pin.set'
      );
    });
    expect(pinSets.some((m) => m.text.includes(codes[0]!))).toBe(true);
    const elsewhere = traffic
      .filter((m) => !pinSets.includes(m))
      .map((m) => m.text)
      .join('\n');
    for (const code of codes) {
      expect(auditText).not.toContain(code);
      expect(storeText).not.toContain(code);
      expect(logText).not.toContain(code);
      expect(seenText).not.toContain(code);
      // ...and nowhere else on the wire: not in replies, events, states or other commands.
      expect(elsewhere).not.toContain(code);
    }
    expect(gatewaySeen.length).toBeGreaterThan(0);
    // And the log these entries went into still verifies.
    expect(await world.auditVerified()).toEqual({ ok: true, firstBreak: null });
    expect(traffic.some((m) => parseDeviceTopic(m.topic)?.channel === 'reply')).toBe(true);
  });
});

describe('PinSync and a lock that keeps dropping off the network (real broker)', () => {
  /** The command timeout of the PinSync under test, ms. */
  const TIMEOUT_MS = 1_500;
  const flapId = 'lock-back-door';
  let world: ScenarioWorld;
  let homeId: string;
  let deviceKey: Buffer;
  /** The lock while it works: the simulated lock on its own MQTT link. */
  let healthy: { link: DeviceLink; lock: SimLock };
  /** The lock while it is broken: connected as the lock, it hears commands and answers none. */
  let mute: MqttClient | null = null;
  /**
   * Every command the broken lock heard, with when (performance.now()) and when the server
   * issued it (its signed `issuedAt`, the server's clock).
   */
  const heard: { action: string; at: number; issuedAt: number }[] = [];
  const syncs: PinSync[] = [];

  function newSync(timing: Partial<PinSyncTiming>): PinSync {
    const { sys } = world;
    const sync = new PinSync({
      gateway: sys.gateway,
      store: sys.store,
      audit: sys.audit,
      clock: sys.clock,
      masterKey: sys.keys.masterKey,
      notify: () => undefined,
      timing: { reconcileEveryMs: null, ...timing },
    });
    sys.gateway.addListener(sync);
    syncs.push(sync);
    return sync;
  }

  const online = (): boolean | undefined => world.sys.gateway.liveStatus(flapId)?.online;
  const listsSince = (at: number): number =>
    heard.filter((h) => h.action === 'pin.list' && h.at >= at).length;

  /** The working lock drops off, and the broken one takes its place (online, as the server sees). */
  async function breakLock(): Promise<void> {
    if (mute !== null) return flip(true);
    healthy.link.cutLink();
    await world.waitFor(() => online() === false, 10_000, 'the server sees the lock go');
    const client = await connectAsync(world.sys.brokerUrl, {
      clientId: flapId,
      username: flapId,
      password: mqttPassword(deviceKey),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
    });
    client.on('message', (_topic, payload) => {
      const command = JSON.parse(payload.toString('utf8')) as { action: string; issuedAt: number };
      heard.push({ action: command.action, at: performance.now(), issuedAt: command.issuedAt });
    });
    await client.subscribeAsync(deviceTopic(homeId, flapId, 'command'), { qos: 1 });
    mute = client;
    await flip(true);
  }

  /** The broken lock says it is online or offline, and the server has taken it in. */
  async function flip(isOnline: boolean): Promise<void> {
    await mute!.publishAsync(
      deviceTopic(homeId, flapId, 'availability'),
      JSON.stringify({ online: isOnline }),
      { qos: 1, retain: true },
    );
    await world.waitFor(() => online() === isOnline, 10_000, `the server sees online=${isOnline}`);
  }

  /** The broken lock flips `times` times from online to offline and back, ending online. */
  async function flap(times: number): Promise<void> {
    for (let i = 0; i < times; i++) {
      await flip(false);
      await flip(true);
    }
  }

  /** The broken lock goes away for good, and the working one comes back. */
  async function repairLock(): Promise<void> {
    await flip(false);
    await mute!.endAsync();
    mute = null;
    healthy.link.restoreLink();
    await world.waitFor(
      () => online() === true && healthy.link.isConnected(),
      10_000,
      'the working lock is back',
    );
  }

  beforeAll(async () => {
    world = await ScenarioWorld.create();
    const { sys } = world;
    homeId = world.creds.homeId;
    // Only the PinSyncs of these tests talk to the lock.
    await sys.pins.stop();
    const key = await sys.provisionDevice({
      id: flapId,
      homeId,
      kind: 'lock',
      name: 'Back door lock',
    });
    deviceKey = Buffer.from(key, 'base64url');
    const link = new DeviceLink({
      brokerUrl: sys.brokerUrl,
      homeId,
      deviceId: flapId,
      deviceKey,
      clock: sys.clock,
    });
    healthy = { link, lock: new SimLock(link, { clock: sys.clock, deviceKey }) };
    await link.start();
    await world.waitFor(() => online() === true, 10_000, 'the server sees the lock');
  });

  // A test that failed half-way must not leave its PinSync talking to the lock in the next.
  afterEach(async () => {
    for (const sync of syncs) await sync.stop();
  });

  afterAll(async () => {
    await mute?.endAsync(true);
    healthy?.lock.stop();
    await healthy?.link.close();
    await world?.close();
  });

  it('a flapping lock that answers nothing gets one reconcile at a time, and its codes converge once it works', async () => {
    const owner = (await world.sys.store.principals.getByUsername(world.creds.owner.username))!
      .principal;
    const sync = newSync({
      retryBaseMs: 100,
      retryMaxMs: 400,
      maxAttempts: 4,
      commandTimeoutMs: TIMEOUT_MS,
    });
    await sync.start();
    const codes = ['4817263951', '5928374061', '6039485172'];
    for (const [i, code] of codes.slice(0, 2).entries()) {
      await sync.assign(flapId, i + 1, code, { principalId: owner.id });
      expect(await sync.settled(flapId, i + 1)).toMatchObject({ sync: 'confirmed' });
    }

    // Broken: it comes and goes twenty times, and answers nothing while it is there. Someone
    // also sets a code at its keypad by hand meanwhile.
    await breakLock();
    healthy.lock.setPinLocally(7, codes[2]!);
    await flap(19);
    await flip(false);
    const lastFlip = performance.now();
    await flip(true);
    // After the last report: the reconcile it started (or the one it asked for after the one
    // under way) and nothing more, however long the lock stays silent. (One more is allowed
    // for a listing that was already on its way to the lock when the report came.)
    await sleep(4 * TIMEOUT_MS);
    const after = listsSince(lastFlip);
    expect(after).toBeGreaterThanOrEqual(1);
    expect(after).toBeLessThanOrEqual(2);

    // A wait on the broken lock ends because it went offline, not because the command expired:
    // the refusal says which.
    const listed = heard.length;
    const byHand = sync.reconcile(flapId);
    await world.waitFor(() => heard.length > listed, 5_000, 'the lock hears the listing');
    await flip(false);
    const result = await byHand;
    expect(!result.ok && result.problem).toMatchObject({
      code: 'lock.offline',
      message: 'the lock went offline before it listed its slots',
    });

    // While it still flaps, the owner takes the second code away; the clear goes on until it
    // lands.
    await flip(true);
    expect((await sync.clear(flapId, 2)).ok).toBe(true);
    await flap(5);

    // Working again: everything comes into line.
    await repairLock();
    await world.waitFor(
      async () => {
        const slots = await sync.slots(flapId);
        return (
          slots.find((s) => s.slot === 2)?.sync === 'confirmed' &&
          slots.find((s) => s.slot === 7)?.sync === 'unknown-on-lock'
        );
      },
      15_000,
      'the lock is reconciled and the clear has landed',
    );
    expect(
      (await sync.slots(flapId)).map((s) => [s.slot, s.desired, s.sync, s.principalId]),
    ).toEqual([
      [1, 'set', 'confirmed', owner.id],
      [2, 'clear', 'confirmed', null],
      [7, 'clear', 'unknown-on-lock', null],
    ]);
    expect(healthy.lock.pinSlots()).toEqual([1, 7]);
    expect(healthy.lock.enterCode(codes[0]!)).toEqual({ result: 'unlocked', slot: 1 });
    expect(healthy.lock.enterCode(codes[1]!).result).toBe('wrong-code');
    // Nothing is left over from the flapping: a new code lands at the first attempt.
    const code = '7140596283';
    await sync.assign(flapId, 3, code, { principalId: owner.id });
    expect(await sync.settled(flapId, 3)).toMatchObject({ sync: 'confirmed', attempts: 1 });
    await sync.stop();
  });

  it('stop returns within a bound whatever waits on a flapping lock, and nothing is sent after it', async () => {
    const owner = (await world.sys.store.principals.getByUsername(world.creds.owner.username))!
      .principal;
    // The production command timeout: without cutting waits short, stop would take 10 s for
    // each reconcile piled up.
    const sync = newSync({ commandTimeoutMs: 10_000 });
    await sync.start();
    const began = performance.now();
    await breakLock();
    // A code to write, behind the reconcile that waits on the silent lock.
    await sync.assign(flapId, 4, '8251607394', { principalId: owner.id });
    await flap(20);
    // Reconciles have reached the silent lock; each would wait 10 s for it.
    await world.waitFor(() => listsSince(began) >= 1, 5_000, 'the lock hears a listing');
    const t0 = performance.now();
    const stoppedIn = sync.stop().then(() => performance.now() - t0);
    expect(await settlesWithin(stoppedIn, 10_000), 'stop() has returned').toBe(true);
    expect(await stoppedIn).toBeLessThan(2_000);
    const stoppedAt = world.sys.clock.now();
    const repo = new PinSlotRepository(world.sys.store.db);
    const rows = JSON.stringify(await repo.listForLock(flapId));
    await flap(3);
    await sleep(1_000);
    // A command issued before stop returned may still be on its way through the broker (a
    // loaded machine delays it); none may have been issued after.
    expect(heard.filter((h) => h.issuedAt > stoppedAt)).toEqual([]);
    expect(JSON.stringify(await repo.listForLock(flapId))).toBe(rows);
    // The write is left pending for the next start; flapping did not use its attempts up.
    const left = await repo.get(flapId, 4);
    expect(left).toMatchObject({ sync: 'pending' });
    expect(left!.attempts).toBeLessThan(DEFAULT_PIN_SYNC_TIMING.maxAttempts);
  });
});

/**
 * Whether `work` settles within `ms` of real time: a generous bound that makes a hang fail
 * as itself rather than as the test's timeout.
 */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

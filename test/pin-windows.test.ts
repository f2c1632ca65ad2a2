/**
 * Keypad codes that follow their holder's access, and the stated bound on revocation while a
 * lock is offline (issue 4). One fake clock drives everything: the server's PinSync (real
 * SQLite store and audit log), and a simulated lock behind its real endpoint (signed commands,
 * the command gate, signed replies) that checks each code's window against that same clock as
 * its own.
 *
 * The home is in Europe/Berlin; the story starts on Monday 23 March 2026 at 07:00 (winter time),
 * a week before the clocks go forward.
 *
 * The bound: a guest's code stops working on a lock that cannot be reached no later than
 * `guestLeaseMs` (1 h) after the last write that reached it; a household member's after
 * `memberLeaseMs` (24 h); online, a revocation narrows the window at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CHECKPOINT_ENTRY_KIND } from '../src/core/audit-chain.ts';
import type { GrantSchedule } from '../src/core/grant-schedule.ts';
import type { GuestGrant, Principal } from '../src/core/model.ts';
import { NEVER } from '../src/core/pin-window.ts';
import { MemoryLink, SimLock } from '../src/devices/index.ts';
import { deriveDeviceKey } from '../src/protocol/device-auth.ts';
import { AuditLog } from '../src/server/audit-log.ts';
import type { RegisteredDevice } from '../src/server/device-gateway.ts';
import { loadOrCreateKeys, sha256Hex } from '../src/server/keys.ts';
import { PinSync, type KeypadEntryReport, type PinSyncTiming } from '../src/server/pin-sync.ts';
import type { PinSlot } from '../src/store/pin-slot-repository.ts';
import {
  DOOR,
  HOME,
  LOCK,
  OWNER,
  openTestStore,
  seedHome,
  type TestStore,
} from '../src/store/test-store.ts';
import { flush, LinkGateway, SteppingClock } from './pin-link.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const GUEST_LEASE = HOUR;
const MEMBER_LEASE = 24 * HOUR;
/** An instant, month 1-based for readability. */
const utc = (y: number, mo: number, d: number, h = 0, mi = 0): number =>
  Date.UTC(y, mo - 1, d, h, mi);

/** Monday 23 March 2026, 07:00 at the home (CET, UTC+1). */
const T0 = utc(2026, 3, 23, 6);
/** 09:00 and 12:00 that Monday at the home. */
const NINE = utc(2026, 3, 23, 8);
const NOON = utc(2026, 3, 23, 11);
/** 09:00 the next Monday, after the clocks went forward (CEST, UTC+2). */
const NEXT_NINE = utc(2026, 3, 30, 7);

const MONDAYS: GrantSchedule = {
  kind: 'weekly',
  slots: [{ days: ['mon'], start: '09:00', end: '12:00' }],
};
const CODE = '482915';

const GUEST: Principal = {
  id: 'guest-gina',
  role: 'guest',
  displayName: 'Gina Guest',
  homeId: HOME.id,
  carrierId: null,
};
const MEMBER: Principal = {
  id: 'member-max',
  role: 'member',
  displayName: 'Max Member',
  homeId: HOME.id,
  carrierId: null,
};
const LOCK_DEVICE: RegisteredDevice = { id: LOCK.id, homeId: HOME.id, kind: 'lock' };

const TIMING: Partial<PinSyncTiming> = {
  retryBaseMs: 2_000,
  retryMaxMs: 60_000,
  maxAttempts: 6,
  commandTimeoutMs: 10_000,
  reconcileEveryMs: null,
  guestLeaseMs: GUEST_LEASE,
  memberLeaseMs: MEMBER_LEASE,
};

function grant(id: string, schedule: GrantSchedule, extra: Partial<GuestGrant> = {}): GuestGrant {
  return {
    id,
    homeId: HOME.id,
    doorId: DOOR.id,
    principalId: GUEST.id,
    grantedBy: OWNER.id,
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

describe('keypad codes with validity windows, on one fake clock', () => {
  let t: TestStore;
  let dir: string;
  let clock: SteppingClock;
  let link: MemoryLink;
  let lock: SimLock;
  let gateway: LinkGateway;
  let audit: AuditLog;
  let sync: PinSync;
  let notes: string[];
  let entries: KeypadEntryReport[];
  let master: Buffer;

  function newSync(): PinSync {
    return new PinSync({
      gateway,
      store: t.store,
      audit,
      clock,
      masterKey: master,
      notify: (_homeId, message) => notes.push(message),
      onKeypadEntry: (entry) => {
        entries.push(entry);
      },
      timing: TIMING,
    });
  }

  beforeEach(async () => {
    t = await openTestStore('sqlite');
    await seedHome(t.store);
    await t.store.principals.create(GUEST, { username: 'gina', passwordHash: 'unused' });
    await t.store.principals.create(MEMBER, { username: 'max', passwordHash: 'unused' });
    dir = mkdtempSync(join(tmpdir(), 'threshold-pin-windows-'));
    const keys = loadOrCreateKeys(dir);
    master = keys.masterKey;
    const lockKey = deriveDeviceKey(master, LOCK.id);
    clock = new SteppingClock(T0);
    link = new MemoryLink({ homeId: HOME.id, deviceId: LOCK.id, deviceKey: lockKey, clock });
    lock = new SimLock(link, { clock, deviceKey: lockKey, motorDelayMs: 300 });
    link.connect();
    gateway = new LinkGateway(link, clock, lockKey);
    audit = await AuditLog.open(t.store.audit, clock, keys.auditSigner, sha256Hex);
    notes = [];
    entries = [];
    sync = newSync();
    await sync.start();
    await flush();
  });

  afterEach(async () => {
    await sync.stop();
    lock.stop();
    await audit.close();
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs the clock to `atMs`, timer by timer, letting the work each one starts finish. (The
   * fake clock runs a timer due now only when it is moved: `runTo(clock.now())` does that.)
   */
  async function runTo(atMs: number): Promise<void> {
    for (;;) {
      await flush();
      const next = clock.nextDue();
      if (next === null || next > atMs) break;
      clock.advanceTo(next);
    }
    clock.advanceTo(atMs);
    await flush();
  }

  /** Runs timers until the slot has no write under way (the lock must be reachable). */
  async function settle(slot: number): Promise<PinSlot> {
    let result: PinSlot | null | undefined;
    void sync.settled(LOCK.id, slot).then((r) => (result = r));
    const end = clock.now() + 10 * MIN;
    while (result === undefined) {
      await flush();
      if (result !== undefined) break;
      const next = clock.nextDue();
      if (next === null || next > end) throw new Error(`slot ${slot} did not settle`);
      clock.advanceTo(next);
    }
    if (result === null) throw new Error(`slot ${slot} has no record`);
    return result;
  }

  async function assign(
    slot: number,
    principalId: string,
    name: string,
    code = CODE,
  ): Promise<PinSlot> {
    const r = await sync.assign(LOCK.id, slot, code, { principalId, name });
    if (!r.ok) throw new Error(r.problem.message);
    return r.value;
  }

  /** Someone types the code at the keypad; the server hears the lock's events (if online). */
  function keypad(code = CODE) {
    const before = link.payloads('event').length;
    const outcome = lock.enterCode(code);
    if (gateway.reachable)
      for (const e of link.payloads('event').slice(before)) void sync.onEvent(LOCK_DEVICE, e);
    return outcome;
  }

  async function auditEntries() {
    await audit.drain();
    const last = (await t.store.audit.last())?.seq ?? 0;
    return (await t.store.audit.getRange(1, last)).filter((e) => e.kind !== CHECKPOINT_ENTRY_KIND);
  }

  function goOffline(): void {
    gateway.reachable = false;
    sync.onAvailability(LOCK_DEVICE, false);
  }

  function comeBack(): void {
    gateway.reachable = true;
    sync.onAvailability(LOCK_DEVICE, true);
  }

  it('a weekly guest’s code opens inside the window only, by the lock’s own clock, this week and next (summer time)', async () => {
    await t.store.guestGrants.create(grant('grant-mondays', MONDAYS));
    await assign(3, GUEST.id, 'Cleaner');
    // Two hours early: the window is more than a lease away, so the lock holds "never".
    expect(await settle(3)).toMatchObject({ sync: 'confirmed', window: NEVER, lockWindow: NEVER });
    expect(lock.pinWindow(3)).toEqual(NEVER);
    expect(keypad()).toEqual({ result: 'wrong-code', attempt: 1, lockedOutUntil: null });
    await flush();
    expect(notes).toEqual(["Cleaner's code was entered outside their hours on Front lock."]);
    const outside = (await auditEntries()).filter((e) => e.kind === 'keypad.outside-window');
    expect(outside.map((e) => e.data)).toEqual([
      expect.objectContaining({ slot: 3, principalId: GUEST.id, attempt: 1, at: T0 }),
    ]);
    expect(outside[0]?.deviceMac).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // The window is written ahead of time, with its real start.
    await runTo(NINE - 1);
    expect(lock.pinWindow(3)?.fromMs).toBe(NINE);
    const firstAhead = gateway.writes('pin.window')[0]!;
    expect(NINE - firstAhead).toBeGreaterThanOrEqual(45 * MIN);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
    await runTo(NINE);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    await flush();
    expect(entries).toEqual([
      {
        homeId: HOME.id,
        lockId: LOCK.id,
        slot: 3,
        principalId: GUEST.id,
        deviceAt: NINE,
        seq: link.payloads('event').at(-1)?.seq,
      },
    ]);
    await runTo(NOON - 1);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    // Renewed on the way, up to the window's real end.
    expect(lock.pinWindow(3)).toEqual({ fromMs: NINE, untilMs: NOON });
    await runTo(NOON);
    expect(keypad()).toMatchObject({ result: 'wrong-code', attempt: 1 });

    // A week later the clocks have gone forward: 09:00 at the home is 07:00 UTC.
    await runTo(NEXT_NINE - 1);
    expect(lock.pinWindow(3)).toMatchObject({ fromMs: NEXT_NINE });
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
    await runTo(NEXT_NINE);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    // Nothing was written to the lock between the two windows (no churn).
    const between = gateway.sent.filter((s) => s.at > NOON && s.at < NEXT_NINE - GUEST_LEASE);
    expect(between).toEqual([]);
    expect(JSON.stringify(await auditEntries())).not.toContain(CODE);
  });

  it('writes the next window ahead; it opens while the lock is offline, until a lease after the last write that reached the lock', async () => {
    await t.store.guestGrants.create(grant('grant-mondays', MONDAYS));
    await assign(3, GUEST.id, 'Cleaner');
    await settle(3);
    await runTo(NINE - 30 * MIN);
    expect(lock.pinWindow(3)?.fromMs).toBe(NINE);
    goOffline();
    const lastWrite = gateway.lastDeliveredWrite()!;
    const bound = lock.pinWindow(3)!.untilMs;
    expect(bound).toBeLessThanOrEqual(lastWrite + GUEST_LEASE);
    expect(bound).toBeGreaterThan(NINE);

    // The window written before the lock went away opens the door on time, offline.
    await runTo(NINE);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    await runTo(bound - 1);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    await runTo(bound);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
    // The server tried to renew it all along.
    const tried = gateway.sent.filter((s) => s.action === 'pin.window' && !s.delivered);
    expect(tried.length).toBeGreaterThan(0);
    expect(await t.store.pinSlots.get(LOCK.id, 3)).toMatchObject({
      sync: 'pending',
      windowOnly: true,
    });

    // Back online: the waiting write goes at once, reaching a lease ahead again.
    const back = bound + 10 * MIN;
    await runTo(back);
    comeBack();
    await runTo(back);
    expect(lock.pinWindow(3)).toEqual({ fromMs: NINE, untilMs: back + GUEST_LEASE });
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    expect(await settle(3)).toMatchObject({ sync: 'confirmed', windowOnly: true });
  });

  it('when one window ends, the next is written at once, so it opens even if the lock goes away right after', async () => {
    // Mondays 09:00–11:50, and once the same day 12:00–13:00 (11:00–12:00 UTC): ten minutes apart.
    await t.store.guestGrants.create(
      grant('grant-mornings', {
        kind: 'weekly',
        slots: [{ days: ['mon'], start: '09:00', end: '11:50' }],
      }),
    );
    await t.store.guestGrants.create(
      grant('grant-lunch', {
        kind: 'one-time',
        from: '2026-03-23T12:00',
        until: '2026-03-23T13:00',
      }),
    );
    await assign(3, GUEST.id, 'Cleaner');
    await settle(3);
    const morningEnd = utc(2026, 3, 23, 10, 50);
    const lunch = utc(2026, 3, 23, 11);
    await runTo(morningEnd - 1);
    expect(lock.pinWindow(3)).toEqual({ fromMs: NINE, untilMs: morningEnd });
    await runTo(morningEnd);
    expect(gateway.writes('pin.window').at(-1)).toBe(morningEnd);
    expect(lock.pinWindow(3)).toEqual({ fromMs: lunch, untilMs: morningEnd + GUEST_LEASE });
    await runTo(morningEnd + 5 * MIN);
    goOffline();
    await runTo(lunch - 1);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
    await runTo(lunch);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
  });

  it('a guest revoked while the lock is offline: the code stops no later than the lease after the last write that reached the lock', async () => {
    await t.store.guestGrants.create(grant('grant-always', { kind: 'always' }));
    await assign(3, GUEST.id, 'Gina');
    await settle(3);
    expect(lock.pinWindow(3)).toEqual({ fromMs: 0, untilMs: T0 + GUEST_LEASE });
    // Renewed on its way while the lock is online.
    await runTo(T0 + 40 * MIN);
    goOffline();
    const lastWrite = gateway.lastDeliveredWrite()!;
    expect(lastWrite).toBe(T0 + 30 * MIN);

    // The owner revokes the guest's only grant; the route empties her slot too.
    const revokedAt = T0 + 41 * MIN;
    await runTo(revokedAt);
    await t.store.guestGrants.revoke('grant-always', OWNER.id, revokedAt, 'no longer needed');
    await sync.clear(LOCK.id, 3, { type: 'principal', id: OWNER.id });
    await sync.refreshWindows(HOME.id);
    await runTo(revokedAt);

    // The lock cannot hear of it: the code keeps working, but never past the bound.
    const until = lock.pinWindow(3)!.untilMs;
    expect(until).toBeLessThanOrEqual(lastWrite + GUEST_LEASE);
    await runTo(until - 1);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    await runTo(until);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
    await runTo(until + 3 * HOUR);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });

    // When the lock is back the emptying lands, however long it was away.
    comeBack();
    expect(await settle(3)).toMatchObject({ desired: 'clear', sync: 'confirmed' });
    expect(lock.pinSlots()).toEqual([]);
    expect(notes).toEqual([]);
  });

  it('online, a revocation narrows the window at once, and so does a use that uses a grant up', async () => {
    await t.store.guestGrants.create(grant('grant-always', { kind: 'always' }));
    await t.store.guestGrants.create(grant('grant-mondays', MONDAYS));
    await assign(3, GUEST.id, 'Gina');
    await settle(3);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    const at = clock.now();
    await t.store.guestGrants.revoke('grant-always', OWNER.id, at, 'only Mondays now');
    await sync.refreshWindows(HOME.id);
    await runTo(at);
    // Written at the same instant; Monday's window is more than a lease away.
    expect(gateway.writes('pin.window')).toEqual([at]);
    expect(lock.pinWindow(3)).toEqual(NEVER);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
    const windows = (await auditEntries()).filter((e) => e.kind === 'pin.window');
    expect(windows.map((e) => e.data)).toEqual([
      { slot: 3, principalId: GUEST.id, fromMs: 0, untilMs: 0, attempts: 1 },
    ]);

    // A one-time grant that is used up closes as soon as its use is counted.
    await t.store.guestGrants.create(
      grant('grant-once', {
        kind: 'one-time',
        from: '2026-03-23T07:00',
        until: '2026-03-23T13:00',
      }),
    );
    await sync.refreshWindows(HOME.id);
    await runTo(at);
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });
    expect(await t.store.guestGrants.use('grant-once')).toBe(true);
    await sync.refreshWindows(HOME.id);
    await runTo(at);
    expect(lock.pinWindow(3)).toEqual(NEVER);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
  });

  it('a household member’s code reaches a day ahead and is renewed when half of it is left', async () => {
    await assign(5, MEMBER.id, 'Max');
    expect(await settle(5)).toMatchObject({ window: { fromMs: 0, untilMs: T0 + MEMBER_LEASE } });
    expect(lock.pinWindow(5)).toEqual({ fromMs: 0, untilMs: T0 + MEMBER_LEASE });
    await runTo(T0 + MEMBER_LEASE / 2 - 1);
    expect(gateway.writes('pin.window')).toEqual([]);
    await runTo(T0 + MEMBER_LEASE / 2);
    expect(gateway.writes('pin.window')).toEqual([T0 + MEMBER_LEASE / 2]);
    expect(lock.pinWindow(5)).toEqual({ fromMs: 0, untilMs: T0 + 1.5 * MEMBER_LEASE });
    expect(keypad()).toEqual({ result: 'unlocked', slot: 5 });
    // The owner's own code has no window at all.
    await assign(6, OWNER.id, 'Olivia', '135790');
    expect(await settle(6)).toMatchObject({ sync: 'confirmed', window: null });
    expect(lock.pinWindow(6)).toBeNull();
  });

  it('a window write waiting for an offline lock survives a restart; a code write cannot', async () => {
    await t.store.guestGrants.create(grant('grant-always', { kind: 'always' }));
    await t.store.guestGrants.create(grant('grant-mondays', MONDAYS));
    await assign(3, GUEST.id, 'Gina');
    await settle(3);
    goOffline();
    await t.store.guestGrants.revoke('grant-always', OWNER.id, clock.now(), 'only Mondays now');
    await sync.refreshWindows(HOME.id);
    await assign(4, MEMBER.id, 'Max');
    await runTo(clock.now() + 5 * MIN);
    expect(await t.store.pinSlots.get(LOCK.id, 3)).toMatchObject({
      sync: 'pending',
      windowOnly: true,
      window: NEVER,
    });

    await sync.stop();
    sync = newSync();
    await sync.start();
    await flush();
    // The code was only in the old process's memory; the window needs none.
    expect(await t.store.pinSlots.get(LOCK.id, 4)).toMatchObject({ sync: 'failed' });
    expect(await t.store.pinSlots.get(LOCK.id, 3)).toMatchObject({ sync: 'pending' });
    expect(keypad()).toEqual({ result: 'unlocked', slot: 3 });

    comeBack();
    expect(await settle(3)).toMatchObject({ sync: 'confirmed', window: NEVER, lockWindow: NEVER });
    expect(lock.pinWindow(3)).toEqual(NEVER);
    expect(keypad()).toMatchObject({ result: 'wrong-code' });
  });

  it('reconciliation finds a window changed at the lock, flags it and writes it back', async () => {
    await t.store.guestGrants.create(grant('grant-always', { kind: 'always' }));
    await assign(3, GUEST.id, 'Gina');
    await settle(3);
    const wanted = lock.pinWindow(3);
    // Someone widens the code to "at all times" in the lock's own menu.
    lock.setPinLocally(3, CODE, 'Gina', null);
    const r = await sync.reconcile(LOCK.id);
    expect(r.ok).toBe(true);
    expect(await settle(3)).toMatchObject({ sync: 'confirmed', lockWindow: wanted });
    expect(lock.pinWindow(3)).toEqual(wanted);
    const kinds = (await auditEntries()).map((e) => e.kind);
    expect(kinds.slice(-2)).toEqual(['pin.out-of-sync', 'pin.window']);
    expect(notes).toEqual([]);
  });

  it('refuses leases that are not whole seconds', () => {
    expect(
      () =>
        new PinSync({
          gateway,
          store: t.store,
          audit,
          clock,
          masterKey: master,
          notify: () => {},
          timing: { ...TIMING, guestLeaseMs: 1_500 },
        }),
    ).toThrow(RangeError);
  });
});

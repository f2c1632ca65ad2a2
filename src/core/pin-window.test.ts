import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.ts';
import { scheduleAllows, type GrantSchedule } from './grant-schedule.ts';
import type { GuestGrant, Role } from './model.ts';
import {
  DEFAULT_PIN_LEASES,
  NEVER,
  desiredPinWindow,
  needsRewrite,
  sameWindow,
  windowAllows,
  type PinWindow,
} from './pin-window.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const BERLIN = 'Europe/Berlin';
const GUEST_LEASE = DEFAULT_PIN_LEASES.guestLeaseMs;

/** An instant, month 1-based for readability. */
const utc = (y: number, mo: number, d: number, h = 0, mi = 0): number =>
  Date.UTC(y, mo - 1, d, h, mi);

/** Sundays 09:00–12:00 at the home. */
const SUNDAY_MORNINGS: GrantSchedule = {
  kind: 'weekly',
  slots: [{ days: ['sun'], start: '09:00', end: '12:00' }],
};

function grant(schedule: GrantSchedule, extra: Partial<GuestGrant> = {}): GuestGrant {
  return {
    id: 'grant-1',
    homeId: 'home-1',
    doorId: 'door-1',
    principalId: 'guest-1',
    grantedBy: 'owner-1',
    schedule,
    limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
    uses: 0,
    createdAt: utc(2026, 1, 1),
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
    ...extra,
  };
}

const guest = (...grants: GuestGrant[]) => ({ role: 'guest' as const, grants });

describe('desiredPinWindow', () => {
  const now = utc(2026, 3, 25, 10) + 123; // a Wednesday, not on a whole second

  it('gives the owner no window, a member a day, and nobody else anything', () => {
    expect(desiredPinWindow({ role: 'owner', grants: [] }, BERLIN, now)).toBeNull();
    expect(desiredPinWindow({ role: 'member', grants: [] }, BERLIN, now)).toEqual({
      fromMs: 0,
      untilMs: now - 123 + DAY,
    });
    for (const role of ['courier', 'carrier', null] as (Role | null)[]) {
      const always = grant({ kind: 'always' });
      expect(desiredPinWindow({ role, grants: [always] }, BERLIN, now)).toEqual(NEVER);
    }
    expect(desiredPinWindow(guest(), BERLIN, now)).toEqual(NEVER);
  });

  it('gives an "always" guest an hour from the beginning of time, whole seconds', () => {
    const w = desiredPinWindow(guest(grant({ kind: 'always' })), BERLIN, now);
    expect(w).toEqual({ fromMs: 0, untilMs: now - 123 + HOUR });
  });

  it('leaves out grants that are revoked or used up, and cuts one at its revocation', () => {
    const revoked = grant({ kind: 'always' }, { revokedAt: now - 1 });
    const usedUp = grant(
      { kind: 'one-time', from: '2026-03-25T08:00', until: '2026-03-25T20:00' },
      { uses: 1 },
    );
    const capped = grant(
      { kind: 'date-range', from: '2026-03-20T08:00', until: '2026-03-30T08:00' },
      { limits: { maxUses: 3, maxMinutesPerEntry: null, requiresRecording: true }, uses: 3 },
    );
    expect(desiredPinWindow(guest(revoked, usedUp, capped), BERLIN, now)).toEqual(NEVER);
    const later = grant({ kind: 'always' }, { revokedAt: now + 10 * MIN });
    expect(desiredPinWindow(guest(later), BERLIN, now)).toEqual({
      fromMs: 0,
      untilMs: now + 10 * MIN,
    });
  });

  it('keeps the real start of a date range, however often it is computed', () => {
    // 20 Mar 08:00 CET is 07:00 UTC.
    const range = grant({
      kind: 'date-range',
      from: '2026-03-20T08:00',
      until: '2026-04-30T08:00',
    });
    const a = desiredPinWindow(guest(range), BERLIN, now);
    const b = desiredPinWindow(guest(range), BERLIN, now + 17 * MIN);
    expect(a?.fromMs).toBe(utc(2026, 3, 20, 7));
    expect(b?.fromMs).toBe(a?.fromMs);
    expect(b!.untilMs - a!.untilMs).toBe(17 * MIN);
  });

  it('writes a weekly window with its real start and end, across the change to summer time', () => {
    const sunday = guest(grant(SUNDAY_MORNINGS));
    // Sunday 22 March, winter time (UTC+1): 09:00–12:00 is 08:00–11:00 UTC.
    expect(desiredPinWindow(sunday, BERLIN, utc(2026, 3, 22, 7, 30))).toEqual({
      fromMs: utc(2026, 3, 22, 8),
      untilMs: utc(2026, 3, 22, 8, 30),
    });
    expect(desiredPinWindow(sunday, BERLIN, utc(2026, 3, 22, 10, 30))).toEqual({
      fromMs: utc(2026, 3, 22, 8),
      untilMs: utc(2026, 3, 22, 11),
    });
    expect(desiredPinWindow(sunday, BERLIN, utc(2026, 3, 22, 11))).toEqual(NEVER);
    // Sunday 29 March, the clocks went forward at 02:00: 09:00–12:00 is 07:00–10:00 UTC.
    expect(desiredPinWindow(sunday, BERLIN, utc(2026, 3, 29, 6, 15))).toEqual({
      fromMs: utc(2026, 3, 29, 7),
      untilMs: utc(2026, 3, 29, 7, 15),
    });
    expect(desiredPinWindow(sunday, BERLIN, utc(2026, 3, 29, 9))).toEqual({
      fromMs: utc(2026, 3, 29, 7),
      untilMs: utc(2026, 3, 29, 10),
    });
    // More than a lease ahead of the next window: nothing yet.
    expect(desiredPinWindow(sunday, BERLIN, utc(2026, 3, 29, 5, 59))).toEqual(NEVER);
  });

  it('joins the stretches of several grants that touch, and takes the first one only', () => {
    const morning = grant(SUNDAY_MORNINGS);
    // 12:00–13:30 the same Sunday (CEST): touches the weekly window.
    const lunch = grant({ kind: 'one-time', from: '2026-03-29T12:00', until: '2026-03-29T13:30' });
    // 14:00–15:00: a gap after lunch, so not part of the first stretch.
    const tea = grant({ kind: 'date-range', from: '2026-03-29T14:00', until: '2026-03-29T15:00' });
    const w = desiredPinWindow(guest(tea, lunch, morning), BERLIN, utc(2026, 3, 29, 9), {
      guestLeaseMs: 8 * HOUR,
      memberLeaseMs: DAY,
    });
    expect(w).toEqual({ fromMs: utc(2026, 3, 29, 7), untilMs: utc(2026, 3, 29, 11, 30) });
  });

  it('refuses leases that are not whole seconds', () => {
    expect(() =>
      desiredPinWindow(guest(), BERLIN, now, { guestLeaseMs: 1_500, memberLeaseMs: DAY }),
    ).toThrow(RangeError);
    expect(() =>
      desiredPinWindow(guest(), BERLIN, now, { guestLeaseMs: HOUR, memberLeaseMs: 0 }),
    ).toThrow(RangeError);
  });
});

describe('needsRewrite', () => {
  const now = utc(2026, 3, 25, 10);
  const w = (fromMs: number, untilMs: number): PinWindow => ({ fromMs, untilMs });

  it('writes a shrink at once, a renewal only within half a lease, and nothing for a recompute', () => {
    const onLock = w(0, now + 40 * MIN);
    // A recompute a little later reaches further: not worth a write yet.
    expect(needsRewrite(onLock, w(0, now + HOUR), now, GUEST_LEASE)).toBe(false);
    // 30 minutes left of a one-hour lease: renew.
    expect(needsRewrite(onLock, w(0, now + HOUR), now + 10 * MIN, GUEST_LEASE)).toBe(true);
    // Renewal has nothing to add when the real end is reached.
    expect(needsRewrite(onLock, onLock, now + 39 * MIN, GUEST_LEASE)).toBe(false);
    // Revoked: ends earlier, or never again.
    expect(needsRewrite(onLock, w(0, now + 5 * MIN), now, GUEST_LEASE)).toBe(true);
    expect(needsRewrite(onLock, NEVER, now, GUEST_LEASE)).toBe(true);
  });

  it('compares starts only where they still matter', () => {
    const onLock = w(now - HOUR, now + 40 * MIN);
    expect(needsRewrite(onLock, w(0, now + 40 * MIN), now, GUEST_LEASE)).toBe(false);
    expect(needsRewrite(onLock, w(now + 5 * MIN, now + 40 * MIN), now, GUEST_LEASE)).toBe(true);
    const ahead = w(now + HOUR, now + 2 * HOUR);
    expect(needsRewrite(ahead, w(now + 2 * HOUR, now + 3 * HOUR), now, GUEST_LEASE)).toBe(true);
  });

  it('treats two windows that let nobody in from now on as the same', () => {
    expect(needsRewrite(w(now - 2 * HOUR, now - HOUR), NEVER, now, GUEST_LEASE)).toBe(false);
    expect(needsRewrite(NEVER, w(now - 2 * HOUR, now), now, GUEST_LEASE)).toBe(false);
    expect(needsRewrite(NEVER, w(now + HOUR, now + 2 * HOUR), now, GUEST_LEASE)).toBe(true);
  });

  it('writes between "at all times" and a window either way', () => {
    expect(needsRewrite(null, null, now, GUEST_LEASE)).toBe(false);
    expect(needsRewrite(null, w(0, now + HOUR), now, GUEST_LEASE)).toBe(true);
    expect(needsRewrite(w(0, now + HOUR), null, now, GUEST_LEASE)).toBe(true);
  });
});

describe('a weekly guest on a fake clock', () => {
  it('has a lock window that opens exactly when the grant does, every minute of two weeks across the change to summer time, with few writes', () => {
    // Monday 16 March to Monday 30 March 2026: two Sunday windows, the second after the change.
    const clock = new FakeClock(utc(2026, 3, 16, 0, 0));
    const end = utc(2026, 3, 30, 0, 0);
    const holder = guest(grant(SUNDAY_MORNINGS));
    let onLock: PinWindow | null = NEVER;
    const writes: { at: number; window: PinWindow | null }[] = [];
    // The server looks every quarter of the lease, as PinSync does; the lock is always online.
    const look = (): void => {
      const now = clock.now();
      const desired = desiredPinWindow(holder, BERLIN, now);
      if (needsRewrite(onLock, desired, now, GUEST_LEASE)) {
        expect(sameWindow(onLock, desired)).toBe(false);
        onLock = desired;
        writes.push({ at: now, window: desired });
      }
      clock.schedule(now + GUEST_LEASE / 4, look);
    };
    look();
    const mismatches: string[] = [];
    for (let t = clock.now(); t < end; t += MIN) {
      clock.advanceTo(t);
      const allowed = scheduleAllows(SUNDAY_MORNINGS, BERLIN, t).allowed;
      if (windowAllows(onLock, t) !== allowed) mismatches.push(new Date(t).toISOString());
    }
    expect(mismatches).toEqual([]);
    // Each window: written 45–60 min ahead, then renewed about every half hour until its end.
    const starts = [...new Set(writes.map((x) => x.window?.fromMs))];
    expect(starts).toEqual([utc(2026, 3, 22, 8), utc(2026, 3, 29, 7)]);
    expect(writes.length).toBeLessThanOrEqual(2 * 8);
    expect(writes[0]!.at).toBeGreaterThanOrEqual(utc(2026, 3, 22, 7));
  });
});

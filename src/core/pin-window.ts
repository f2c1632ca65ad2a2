/**
 * The validity window a keypad code keeps on the lock, so the code follows its holder's access
 * even while the lock cannot be reached. Pure: the instant, the time zone and the grants are
 * passed in.
 *
 * A lock keeps, per slot, a window `[fromMs, untilMs)` by its own clock (Matter Door Lock
 * year-day schedules, Z-Wave Schedule Entry Lock do the same) and takes the code only inside
 * it. The server cannot change the window of a lock it cannot reach, so a window never reaches
 * further than a **lease** past the moment it is computed: an online lock gets its window
 * renewed before it runs out, and an offline one stops taking a code no later than a lease
 * after the last write that reached it. That is the stated bound on revocation while offline.
 *
 * - the owner's own codes have no window (`null`): they work at all times;
 * - a household member's window is `[0, now + memberLeaseMs)`;
 * - a guest's is the first stretch of time in which any of their grants at this lock (not
 *   revoked, not used up) lets them in, cut to end at `now + guestLeaseMs` at the latest; a
 *   guest with no such stretch gets {@link NEVER};
 * - anyone else gets {@link NEVER}.
 *
 * A window starts where its stretch really starts (not at `now`), and one that began longer
 * ago than this module looks back starts at 0, so recomputing it gives the same start and the
 * lock is not written again for nothing. {@link needsRewrite} decides when a write is worth it.
 */
import { DAY_MS } from './calendar.ts';
import { scheduleWindows, type TimeWindow } from './grant-schedule.ts';
import { isUsedUp } from './guest-access.ts';
import type { GuestGrant, Role } from './model.ts';

/**
 * A keypad slot's validity window: the code opens from `fromMs` (inclusive) to `untilMs`
 * (exclusive), ms since the epoch by the lock's clock. `fromMs <= untilMs`; equal means never.
 */
export interface PinWindow {
  readonly fromMs: number;
  readonly untilMs: number;
}

/** The window of a code that must not open at all. */
export const NEVER: PinWindow = { fromMs: 0, untilMs: 0 };

/** How far past its computation a window may reach, per kind of holder, ms. */
export interface PinLeases {
  /** A guest's code stops at most this long after the last write reached the lock. */
  readonly guestLeaseMs: number;
  /** A household member's code, likewise. */
  readonly memberLeaseMs: number;
}

/** The defaults: one hour for guests, a day for household members. */
export const DEFAULT_PIN_LEASES: PinLeases = {
  guestLeaseMs: 60 * 60_000,
  memberLeaseMs: 24 * 60 * 60_000,
};

/** What {@link desiredPinWindow} needs to know about a slot's holder. */
export interface PinHolder {
  /** The holder's role; null when the slot has no holder Threshold knows (or one disabled). */
  readonly role: Role | null;
  /** The holder's guest grants at doors of this lock, revoked and used-up ones included. */
  readonly grants: readonly GuestGrant[];
}

/**
 * How far back a guest's stretch is looked for, by schedule kind: weekly stretches are shorter
 * than a week (a whole week is "always"), a date range can be long.
 */
const WEEKLY_LOOKBACK_MS = 8 * DAY_MS;
const RANGE_LOOKBACK_MS = 366 * DAY_MS;
/** `scheduleWindows` looks at most 400 days. */
const MAX_RANGE_MS = 400 * DAY_MS;
/** Locks keep whole seconds (Matter, Z-Wave); a lease end in whole seconds reads back exactly. */
const SECOND_MS = 1_000;

/**
 * The window a holder's code should have on the lock now (see the module comment): `null` for
 * at all times, else a window whose end is at most `nowMs` plus the holder's lease. Throws a
 * RangeError on a lease that is not a positive number of whole seconds.
 */
export function desiredPinWindow(
  holder: PinHolder,
  timeZone: string,
  nowMs: number,
  leases: PinLeases = DEFAULT_PIN_LEASES,
): PinWindow | null {
  checkLeases(leases);
  switch (holder.role) {
    case 'owner':
      return null;
    case 'member':
      return { fromMs: 0, untilMs: leaseEnd(nowMs, leases.memberLeaseMs) };
    case 'guest':
      return guestWindow(holder.grants, timeZone, nowMs, leaseEnd(nowMs, leases.guestLeaseMs));
    case 'courier':
    case 'carrier':
    case null:
      return NEVER;
  }
}

/** Whether a lease is usable: a positive whole number of seconds, at most 366 days. */
export function checkLeases(leases: PinLeases): void {
  for (const [name, ms] of Object.entries(leases) as [string, number][]) {
    if (!(Number.isInteger(ms) && ms >= SECOND_MS && ms % SECOND_MS === 0 && ms <= 366 * DAY_MS))
      throw new RangeError(`${name} must be whole seconds from 1 s to 366 days`);
  }
}

/** The lease's end in whole seconds, never later than `nowMs + leaseMs`. */
function leaseEnd(nowMs: number, leaseMs: number): number {
  return Math.floor((nowMs + leaseMs) / SECOND_MS) * SECOND_MS;
}

function guestWindow(
  grants: readonly GuestGrant[],
  timeZone: string,
  nowMs: number,
  horizonMs: number,
): PinWindow {
  const stretches: TimeWindow[] = [];
  for (const grant of grants) {
    if (isUsedUp(grant)) continue;
    // A grant revoked at some instant lets in nothing from then on.
    const endsAt = grant.revokedAt ?? Infinity;
    if (endsAt <= nowMs) continue;
    for (const w of grantStretches(grant, timeZone, nowMs, horizonMs)) {
      const end = Math.min(w.end, endsAt);
      if (end > w.start) stretches.push({ start: w.start, end });
    }
  }
  stretches.sort((a, b) => a.start - b.start);
  // The first stretch of the union that is not over yet: overlapping or touching ones are one.
  let first: TimeWindow | null = null;
  for (const s of stretches) {
    if (first === null) {
      if (s.end > nowMs) first = s;
    } else if (s.start <= first.end) {
      first = { start: first.start, end: Math.max(first.end, s.end) };
    } else {
      break;
    }
  }
  if (first === null || first.start >= horizonMs) return NEVER;
  return { fromMs: first.start, untilMs: Math.min(first.end, horizonMs) };
}

/**
 * The stretches in which a grant lets its holder in that end after the look-back and start
 * before `horizonMs`, with their real starts; a start at or before the look-back (the stretch
 * began earlier, or has no beginning, as "always") is 0.
 */
function grantStretches(
  grant: GuestGrant,
  timeZone: string,
  nowMs: number,
  horizonMs: number,
): readonly TimeWindow[] {
  const lookback = grant.schedule.kind === 'weekly' ? WEEKLY_LOOKBACK_MS : RANGE_LOOKBACK_MS;
  const fromMs = Math.max(0, nowMs - lookback, horizonMs - MAX_RANGE_MS);
  return scheduleWindows(grant.schedule, timeZone, fromMs, horizonMs)
    .filter((w) => w.end > nowMs)
    .map((w) => (w.start <= fromMs ? { start: 0, end: w.end } : w));
}

/**
 * Whether a slot whose lock holds window `onLock` should be written with `desired` now:
 *
 * - the start differs, and either start is still ahead (a past start opens the same from now);
 * - the end comes earlier than on the lock (a revocation, a use that used the grant up, a
 *   schedule change): at once;
 * - the lock's window ends within half a lease of now and `desired` reaches further (renewal);
 * - the lock's window is unbounded (`null`) and `desired` is not, or the other way round.
 *
 * Two windows that both let in nothing from now on are the same. `leaseMs` is the lease of the
 * slot's holder (see {@link PinLeases}).
 */
export function needsRewrite(
  onLock: PinWindow | null,
  desired: PinWindow | null,
  nowMs: number,
  leaseMs: number,
): boolean {
  if (desired === null || onLock === null) return desired !== onLock;
  const lockOver = onLock.untilMs <= nowMs || onLock.untilMs <= onLock.fromMs;
  const desiredOver = desired.untilMs <= nowMs || desired.untilMs <= desired.fromMs;
  if (desiredOver || lockOver) return desiredOver !== lockOver;
  if (onLock.fromMs !== desired.fromMs && (onLock.fromMs > nowMs || desired.fromMs > nowMs))
    return true;
  if (desired.untilMs < onLock.untilMs) return true;
  return desired.untilMs > onLock.untilMs && onLock.untilMs - nowMs <= leaseMs / 2;
}

/** Whether two windows are the same (both `null`, or equal bounds). */
export function sameWindow(a: PinWindow | null, b: PinWindow | null): boolean {
  if (a === null || b === null) return a === b;
  return a.fromMs === b.fromMs && a.untilMs === b.untilMs;
}

/** Whether a code with window `w` opens at `atMs` (`null`: at all times). */
export function windowAllows(w: PinWindow | null, atMs: number): boolean {
  return w === null || (w.fromMs <= atMs && atMs < w.untilMs);
}

/** The lease that applies to a holder of `role` (the guest's for anyone not of the household). */
export function leaseFor(role: Role | null, leases: PinLeases = DEFAULT_PIN_LEASES): number {
  return role === 'member' ? leases.memberLeaseMs : leases.guestLeaseMs;
}

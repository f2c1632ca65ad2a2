import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.ts';
import {
  MAX_WEEKLY_SLOTS,
  defaultGrantLimits,
  defaultRequiresRecording,
  describeSchedule,
  effectiveMaxUses,
  entryDeadline,
  scheduleAllows,
  scheduleWindows,
  validateLimits,
  validateSchedule,
  type GrantLimits,
  type GrantSchedule,
  type ScheduleVerdict,
  type WeeklySlot,
} from './grant-schedule.ts';
import { WEEKDAYS, type Role, type Weekday } from './model.ts';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** An instant, month 1-based for readability. */
const utc = (y: number, mo: number, d: number, h = 0, mi = 0): number =>
  Date.UTC(y, mo - 1, d, h, mi);

const weekly = (...slots: WeeklySlot[]): GrantSchedule => ({ kind: 'weekly', slots });
const slot = (days: Weekday[], start: string, end: string): WeeklySlot => ({ days, start, end });

const open = (windowEndsAt: number | null): ScheduleVerdict => ({ allowed: true, windowEndsAt });
const outside = (nextStartsAt: number | null): ScheduleVerdict => ({
  allowed: false,
  reason: 'outside-schedule',
  nextStartsAt,
});

/** Checks that a weekly window is open exactly over [start, end) and says when it ends. */
function expectWindow(schedule: GrantSchedule, zone: string, start: number, end: number): void {
  expect(scheduleAllows(schedule, zone, start - 1)).toEqual(outside(start));
  expect(scheduleAllows(schedule, zone, start)).toEqual(open(end));
  expect(scheduleAllows(schedule, zone, Math.floor((start + end) / 2))).toEqual(open(end));
  expect(scheduleAllows(schedule, zone, end - 1)).toEqual(open(end));
  const after = scheduleAllows(schedule, zone, end);
  expect(after.allowed).toBe(false);
}

describe('limits', () => {
  it('require recording by default for anyone outside the household', () => {
    const expected: Record<Role, boolean> = {
      owner: false,
      member: false,
      guest: true,
      courier: true,
      carrier: true,
    };
    for (const [role, recording] of Object.entries(expected) as [Role, boolean][]) {
      expect(defaultRequiresRecording(role)).toBe(recording);
      expect(defaultGrantLimits(role)).toEqual({
        maxUses: null,
        maxMinutesPerEntry: null,
        requiresRecording: recording,
      });
    }
  });

  it('give a one-time grant one entry whatever maxUses says', () => {
    const limits: GrantLimits = { maxUses: 5, maxMinutesPerEntry: null, requiresRecording: true };
    const once: GrantSchedule = {
      kind: 'one-time',
      from: '2026-12-12T10:00',
      until: '2026-12-12T12:00',
    };
    expect(effectiveMaxUses(once, limits)).toBe(1);
    expect(effectiveMaxUses(once, { ...limits, maxUses: null })).toBe(1);
    expect(effectiveMaxUses({ kind: 'always' }, limits)).toBe(5);
    expect(effectiveMaxUses({ kind: 'always' }, { ...limits, maxUses: null })).toBeNull();
  });

  it('cap an entry by the per-entry limit and by the end of the window, whichever is first', () => {
    const t = utc(2026, 6, 1, 10);
    const limits: GrantLimits = { maxUses: null, maxMinutesPerEntry: 30, requiresRecording: true };
    expect(entryDeadline(t, limits, null)).toBe(t + 30 * MIN);
    expect(entryDeadline(t, limits, t + 10 * MIN)).toBe(t + 10 * MIN);
    expect(entryDeadline(t, limits, t + 45 * MIN)).toBe(t + 30 * MIN);
    expect(entryDeadline(t, { ...limits, maxMinutesPerEntry: null }, t + 45 * MIN)).toBe(
      t + 45 * MIN,
    );
    expect(entryDeadline(t, { ...limits, maxMinutesPerEntry: null }, null)).toBeNull();
  });
});

describe('always', () => {
  it('lets in at any instant, with no end', () => {
    for (const t of [0, utc(2026, 3, 29, 1), utc(2099, 12, 31, 23, 59)]) {
      expect(scheduleAllows({ kind: 'always' }, 'Europe/Berlin', t)).toEqual(open(null));
    }
  });
});

describe('date range and one time', () => {
  const range: GrantSchedule = {
    kind: 'date-range',
    from: '2026-12-12T10:00',
    until: '2026-12-14T18:00',
  };
  const start = utc(2026, 12, 12, 9); // 10:00 CET
  const end = utc(2026, 12, 14, 17); // 18:00 CET

  it('is open from its start (inclusive) to its end (exclusive), in the home’s zone', () => {
    expect(scheduleAllows(range, 'Europe/Berlin', start - 1)).toEqual({
      allowed: false,
      reason: 'not-yet',
      nextStartsAt: start,
    });
    expect(scheduleAllows(range, 'Europe/Berlin', start)).toEqual(open(end));
    expect(scheduleAllows(range, 'Europe/Berlin', end - 1)).toEqual(open(end));
    expect(scheduleAllows(range, 'Europe/Berlin', end)).toEqual({
      allowed: false,
      reason: 'ended',
      nextStartsAt: null,
    });
    // The same wall-clock times in New York are other instants.
    expect(scheduleAllows(range, 'America/New_York', start)).toEqual({
      allowed: false,
      reason: 'not-yet',
      nextStartsAt: utc(2026, 12, 12, 15),
    });
  });

  it('keeps wall-clock times across a daylight-saving change (a 25-hour day)', () => {
    const overFallBack: GrantSchedule = {
      kind: 'date-range',
      from: '2026-10-24T12:00',
      until: '2026-10-25T12:00',
    };
    expect(scheduleAllows(overFallBack, 'Europe/Berlin', utc(2026, 10, 24, 10))).toEqual(
      open(utc(2026, 10, 25, 11)),
    );
    expect(scheduleAllows(overFallBack, 'Europe/Berlin', utc(2026, 10, 25, 11)).allowed).toBe(
      false,
    );
  });

  it('starts in a skipped time after the gap and ends in a repeated time at its second pass', () => {
    const summer: GrantSchedule = {
      kind: 'date-range',
      from: '2026-03-29T02:30',
      until: '2026-10-25T02:30',
    };
    const start = utc(2026, 3, 29, 1); // 03:00 CEST
    const end = utc(2026, 10, 25, 1, 30); // 02:30 CET, the second 02:30
    expect(scheduleAllows(summer, 'Europe/Berlin', start - 1)).toEqual({
      allowed: false,
      reason: 'not-yet',
      nextStartsAt: start,
    });
    expect(scheduleAllows(summer, 'Europe/Berlin', start)).toEqual(open(end));
    expect(scheduleAllows(summer, 'Europe/Berlin', utc(2026, 10, 25, 0, 30))).toEqual(open(end));
    expect(scheduleAllows(summer, 'Europe/Berlin', end)).toMatchObject({ reason: 'ended' });
  });

  it('evaluates a one-time window like a date range', () => {
    const once: GrantSchedule = {
      kind: 'one-time',
      from: '2026-12-12T10:00',
      until: '2026-12-12T12:00',
    };
    expect(scheduleAllows(once, 'Asia/Kolkata', utc(2026, 12, 12, 4, 29))).toEqual({
      allowed: false,
      reason: 'not-yet',
      nextStartsAt: utc(2026, 12, 12, 4, 30),
    });
    expect(scheduleAllows(once, 'Asia/Kolkata', utc(2026, 12, 12, 4, 30))).toEqual(
      open(utc(2026, 12, 12, 6, 30)),
    );
    expect(scheduleAllows(once, 'Asia/Kolkata', utc(2026, 12, 12, 6, 30))).toEqual({
      allowed: false,
      reason: 'ended',
      nextStartsAt: null,
    });
  });
});

describe('weekly schedules across daylight-saving changes', () => {
  const sundayNight = weekly(slot(['sun'], '01:00', '04:00'));

  it('Sunday 01:00–04:00 in Berlin lasts 2 hours on the spring-forward day and 4 on the fall-back day', () => {
    // 2026-03-29: 01:00 CET = 00:00 UTC, 04:00 CEST = 02:00 UTC.
    expectWindow(sundayNight, 'Europe/Berlin', utc(2026, 3, 29, 0), utc(2026, 3, 29, 2));
    expect(scheduleAllows(sundayNight, 'Europe/Berlin', utc(2026, 3, 29, 2))).toEqual(
      outside(utc(2026, 4, 4, 23)), // next Sunday 01:00 CEST
    );
    // 2026-10-25: 01:00 CEST = 23:00 UTC the day before, 04:00 CET = 03:00 UTC.
    expectWindow(sundayNight, 'Europe/Berlin', utc(2026, 10, 24, 23), utc(2026, 10, 25, 3));
    // Inside the repeated hour, on its second pass (02:30 CET).
    expect(scheduleAllows(sundayNight, 'Europe/Berlin', utc(2026, 10, 25, 1, 30))).toEqual(
      open(utc(2026, 10, 25, 3)),
    );
    expect(scheduleAllows(sundayNight, 'Europe/Berlin', utc(2026, 10, 25, 3))).toEqual(
      outside(utc(2026, 11, 1, 0)), // next Sunday 01:00 CET
    );
  });

  it('Sunday 01:00–04:00 in New York around 2026-03-08 and 2026-11-01', () => {
    // 01:00 EST = 06:00 UTC, 04:00 EDT = 08:00 UTC.
    expectWindow(sundayNight, 'America/New_York', utc(2026, 3, 8, 6), utc(2026, 3, 8, 8));
    // 01:00 EDT (its first pass) = 05:00 UTC, 04:00 EST = 09:00 UTC.
    expectWindow(sundayNight, 'America/New_York', utc(2026, 11, 1, 5), utc(2026, 11, 1, 9));
  });

  it('a slot that starts in the skipped hour opens at the first instant after the gap', () => {
    const s = weekly(slot(['sun'], '02:30', '05:00'));
    // An ordinary Sunday: 02:30 CET = 01:30 UTC.
    expectWindow(s, 'Europe/Berlin', utc(2026, 3, 22, 1, 30), utc(2026, 3, 22, 4));
    // The next Sunday's window is found across the week and the change: 03:00 CEST = 01:00 UTC.
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 22, 4))).toEqual(
      outside(utc(2026, 3, 29, 1)),
    );
    expectWindow(s, 'Europe/Berlin', utc(2026, 3, 29, 1), utc(2026, 3, 29, 3));
    // New York: 03:00 EDT = 07:00 UTC to 05:00 EDT = 09:00 UTC.
    expectWindow(s, 'America/New_York', utc(2026, 3, 8, 7), utc(2026, 3, 8, 9));
  });

  it('a slot that ends in the skipped hour closes when the clocks jump', () => {
    const s = weekly(slot(['sun'], '00:30', '02:30'));
    expectWindow(s, 'Europe/Berlin', utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 1));
  });

  it('a slot wholly in the skipped hour does not happen that day', () => {
    const s = weekly(slot(['sun'], '02:00', '02:45'));
    expectWindow(s, 'Europe/Berlin', utc(2026, 3, 22, 1), utc(2026, 3, 22, 1, 45));
    // From before the gap the next window is a week later: 02:00 CEST = 00:00 UTC.
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 29, 0, 30))).toEqual(
      outside(utc(2026, 4, 5, 0)),
    );
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 29, 1))).toEqual(
      outside(utc(2026, 4, 5, 0)),
    );
  });

  it('a slot that ends in the repeated hour runs to its second pass, unbroken', () => {
    const s = weekly(slot(['sun'], '00:00', '02:30'));
    // 00:00 CEST = 22:00 UTC on Saturday; 02:30 CET = 01:30 UTC.
    expectWindow(s, 'Europe/Berlin', utc(2026, 10, 24, 22), utc(2026, 10, 25, 1, 30));
    // 02:45 CEST shows a time after the end, but the clock will show 02:xx again: still open.
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 10, 25, 0, 45))).toEqual(
      open(utc(2026, 10, 25, 1, 30)),
    );
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 10, 25, 1, 30))).toEqual(
      outside(utc(2026, 10, 31, 23)),
    );
    // New York: 00:00 EDT = 04:00 UTC to 01:30 EST = 06:30 UTC.
    const ny = weekly(slot(['sun'], '00:00', '01:30'));
    expectWindow(ny, 'America/New_York', utc(2026, 11, 1, 4), utc(2026, 11, 1, 6, 30));
  });

  it('a slot that ends at the first repeated time ends at its first pass', () => {
    // After 02:00 CEST Berlin's clock never again shows a time before 02:00 that night.
    const s = weekly(slot(['sun'], '00:00', '02:00'));
    expectWindow(s, 'Europe/Berlin', utc(2026, 10, 24, 22), utc(2026, 10, 25, 0));
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 10, 25, 1))).toEqual(
      outside(utc(2026, 10, 31, 23)),
    );
    const ny = weekly(slot(['sun'], '00:00', '01:00'));
    expectWindow(ny, 'America/New_York', utc(2026, 11, 1, 4), utc(2026, 11, 1, 5));
  });

  it('a slot that starts in the repeated hour opens at its first pass', () => {
    const s = weekly(slot(['sun'], '02:30', '04:00'));
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 10, 24, 12))).toEqual(
      outside(utc(2026, 10, 25, 0, 30)),
    );
    expectWindow(s, 'Europe/Berlin', utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3));
    const ny = weekly(slot(['sun'], '01:30', '03:00'));
    expectWindow(ny, 'America/New_York', utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8));
  });

  it('an overnight slot belongs to its start day and keeps its wall-clock end over a change', () => {
    const s = weekly(slot(['sat'], '22:00', '06:00'));
    // Sat 22:00 CEST = 20:00 UTC to Sun 06:00 CET = 05:00 UTC: 9 hours.
    expectWindow(s, 'Europe/Berlin', utc(2026, 10, 24, 20), utc(2026, 10, 25, 5));
    // Sat 22:00 CET = 21:00 UTC to Sun 06:00 CEST = 04:00 UTC: 7 hours.
    expectWindow(s, 'Europe/Berlin', utc(2026, 3, 28, 21), utc(2026, 3, 29, 4));
    // Sunday 05:00 is open only as the tail of Saturday's slot.
    expect(
      scheduleAllows(weekly(slot(['sun'], '22:00', '06:00')), 'Europe/Berlin', utc(2026, 10, 25, 4))
        .allowed,
    ).toBe(false);
  });

  it('finds the next start across a week and a change (Saturday 14:00–18:00)', () => {
    const s = weekly(slot(['sat'], '14:00', '18:00'));
    // Saturday 18:00 CEST; the next Saturday 14:00 is CET: 13:00 UTC, 7 days and 1 hour later.
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 10, 24, 16))).toEqual(
      outside(utc(2026, 10, 31, 13)),
    );
    // Spring: Saturday 14:00 CET the day before the change, then 14:00 CEST.
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 28, 17))).toEqual(
      outside(utc(2026, 4, 4, 12)),
    );
  });

  it('in Adelaide (UTC+9:30, +10:30 in summer) and Lord Howe (half-hour change)', () => {
    // DST ends 2026-04-05 03:00 ACDT: Sunday 01:00 ACDT = 14:30 UTC, 04:00 ACST = 18:30 UTC.
    expectWindow(
      sundayNight,
      'Australia/Adelaide',
      utc(2026, 4, 4, 14, 30),
      utc(2026, 4, 4, 18, 30),
    );
    // DST starts 2026-10-04 02:00 ACST: 01:00 ACST = 15:30 UTC, 04:00 ACDT = 17:30 UTC.
    expectWindow(
      sundayNight,
      'Australia/Adelaide',
      utc(2026, 10, 3, 15, 30),
      utc(2026, 10, 3, 17, 30),
    );
    const inGap = weekly(slot(['sun'], '02:30', '03:30'));
    expectWindow(inGap, 'Australia/Adelaide', utc(2026, 10, 3, 16, 30), utc(2026, 10, 3, 17));
    // Lord Howe: 02:00 -> 02:30 on 2026-10-04; a 02:00–03:00 slot lasts half an hour.
    const lordHowe = weekly(slot(['sun'], '02:00', '03:00'));
    expectWindow(lordHowe, 'Australia/Lord_Howe', utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 16));
  });

  it('in a zone without DST and a non-hour offset (Asia/Kolkata, UTC+5:30)', () => {
    const office = weekly(slot(['mon', 'tue', 'wed', 'thu', 'fri'], '09:00', '17:30'));
    expectWindow(office, 'Asia/Kolkata', utc(2026, 1, 5, 3, 30), utc(2026, 1, 5, 12));
    // Friday 17:30 IST: the next window is Monday 09:00 IST, over the weekend.
    expect(scheduleAllows(office, 'Asia/Kolkata', utc(2026, 1, 9, 12))).toEqual(
      outside(utc(2026, 1, 12, 3, 30)),
    );
  });

  it('over midnight that Santiago skips (clocks go from 00:00 to 01:00 on 2026-09-06)', () => {
    const s = weekly(slot(['sat'], '20:00', '24:00'), slot(['sun'], '00:00', '02:00'));
    // Sat 20:00 -04 = Sun 00:00 UTC; Sun 02:00 -03 = 05:00 UTC; the two slots touch.
    expectWindow(s, 'America/Santiago', utc(2026, 9, 6, 0), utc(2026, 9, 6, 5));
  });
});

describe('weekly schedules across the week boundary', () => {
  it('joins Sunday evening and Monday morning slots into one window', () => {
    const s = weekly(slot(['sun'], '20:00', '24:00'), slot(['mon'], '00:00', '08:00'));
    // Sun 2026-01-11 20:00 CET = 19:00 UTC to Mon 08:00 CET = 07:00 UTC.
    expectWindow(s, 'Europe/Berlin', utc(2026, 1, 11, 19), utc(2026, 1, 12, 7));
  });

  it('runs a Sunday overnight slot into Monday, and finds it again next Sunday', () => {
    const s = weekly(slot(['sun'], '22:00', '06:00'));
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 1, 12, 4))).toEqual(
      open(utc(2026, 1, 12, 5)),
    );
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 1, 12, 5))).toEqual(
      outside(utc(2026, 1, 18, 21)),
    );
  });

  it('finds Monday’s slot from Sunday, and next Monday’s at the end of it', () => {
    const s = weekly(slot(['mon'], '09:00', '10:00'));
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 1, 11, 11))).toEqual(
      outside(utc(2026, 1, 12, 8)),
    );
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 1, 12, 9))).toEqual(
      outside(utc(2026, 1, 19, 8)),
    );
  });

  it('merges overlapping slots and reports the end of the merged window', () => {
    const s = weekly(slot(['tue'], '09:00', '12:00'), slot(['tue'], '11:00', '14:00'));
    expectWindow(s, 'Europe/Berlin', utc(2026, 1, 13, 8), utc(2026, 1, 13, 13));
  });

  it('never ends when the slots cover the whole week', () => {
    const everyDay = weekly(slot([...WEEKDAYS], '00:00', '24:00'));
    const halves = weekly(
      slot([...WEEKDAYS], '12:00', '00:00'),
      slot([...WEEKDAYS], '00:00', '12:00'),
    );
    const overnight = weekly(
      slot([...WEEKDAYS], '18:00', '19:00'),
      slot([...WEEKDAYS], '19:00', '18:00'),
    );
    for (const s of [everyDay, halves, overnight]) {
      for (const t of [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1, 30), utc(2026, 6, 1)]) {
        expect(scheduleAllows(s, 'Europe/Berlin', t)).toEqual(open(null));
      }
    }
  });

  it('chains windows over the week when the only uncovered hour is skipped by DST', () => {
    // Everything but Sunday 02:00–03:00, which does not exist on 2026-03-29 in Berlin.
    const s = weekly(
      slot(['mon', 'tue', 'wed', 'thu', 'fri', 'sat'], '00:00', '24:00'),
      slot(['sun'], '00:00', '02:00'),
      slot(['sun'], '03:00', '24:00'),
    );
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 28, 12))).toEqual(
      open(utc(2026, 4, 5, 0)), // Sunday 5 April 02:00 CEST
    );
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 22, 1, 30))).toEqual(
      outside(utc(2026, 3, 22, 2)),
    );
    // From the Sunday before, the window runs on for two weeks, past the first look-ahead.
    expect(scheduleAllows(s, 'Europe/Berlin', utc(2026, 3, 22, 2))).toEqual(
      open(utc(2026, 4, 5, 0)),
    );
  });
});

describe('on a fake clock', () => {
  it('a Saturday guest is let in, sent out at the window’s end, and told the next start', () => {
    const zone = 'Europe/Berlin';
    const saturdays = weekly(slot(['sat'], '14:00', '18:00'));
    // Saturday 2026-10-24 13:00 CEST: an hour early.
    const clock = new FakeClock(utc(2026, 10, 24, 11));
    const early = scheduleAllows(saturdays, zone, clock.now());
    expect(early).toEqual(outside(utc(2026, 10, 24, 12)));
    if (early.allowed || early.nextStartsAt === null) throw new Error('expected a next start');

    clock.advanceTo(early.nextStartsAt);
    const entry = scheduleAllows(saturdays, zone, clock.now());
    expect(entry).toEqual(open(utc(2026, 10, 24, 16)));
    if (!entry.allowed) throw new Error('expected to be let in');

    // The entry's deadline: 90 minutes allowed per entry, capped by the window's end.
    const limits: GrantLimits = { maxUses: null, maxMinutesPerEntry: 90, requiresRecording: true };
    clock.advance(3 * HOUR);
    const late = scheduleAllows(saturdays, zone, clock.now()); // 17:00 CEST
    if (!late.allowed) throw new Error('expected to be let in');
    const deadline = entryDeadline(clock.now(), limits, late.windowEndsAt);
    expect(deadline).toBe(utc(2026, 10, 24, 16));
    if (deadline === null) throw new Error('expected a deadline');
    const fired: number[] = [];
    clock.schedule(deadline, () => fired.push(clock.now()));
    clock.advance(2 * HOUR);
    expect(fired).toEqual([utc(2026, 10, 24, 16)]);

    // Over the change to winter time, the next Saturday 14:00 is 13:00 UTC.
    expect(scheduleAllows(saturdays, zone, clock.now())).toEqual(outside(utc(2026, 10, 31, 13)));
    clock.advanceTo(utc(2026, 10, 31, 13) - 1);
    expect(scheduleAllows(saturdays, zone, clock.now()).allowed).toBe(false);
    clock.advance(1);
    expect(scheduleAllows(saturdays, zone, clock.now())).toEqual(open(utc(2026, 10, 31, 17)));
  });
});

describe('scheduleWindows', () => {
  it('lists the windows in a range, across a change, cut to the range', () => {
    const s = weekly(slot(['sat'], '14:00', '18:00'), slot(['sun'], '10:00', '12:00'));
    expect(
      scheduleWindows(s, 'Europe/Berlin', utc(2026, 10, 17, 13), utc(2026, 10, 25, 10)),
    ).toEqual([
      { start: utc(2026, 10, 17, 13), end: utc(2026, 10, 17, 16) },
      { start: utc(2026, 10, 18, 8), end: utc(2026, 10, 18, 10) },
      { start: utc(2026, 10, 24, 12), end: utc(2026, 10, 24, 16) },
      { start: utc(2026, 10, 25, 9), end: utc(2026, 10, 25, 10) },
    ]);
  });

  it('gives the range itself for always, the window for a date range, nothing outside it', () => {
    const from = utc(2026, 1, 1);
    const until = utc(2026, 1, 8);
    expect(scheduleWindows({ kind: 'always' }, 'UTC', from, until)).toEqual([
      { start: from, end: until },
    ]);
    const range: GrantSchedule = {
      kind: 'date-range',
      from: '2026-01-02T10:00',
      until: '2026-01-03T10:00',
    };
    expect(scheduleWindows(range, 'UTC', from, until)).toEqual([
      { start: utc(2026, 1, 2, 10), end: utc(2026, 1, 3, 10) },
    ]);
    expect(scheduleWindows(range, 'UTC', utc(2026, 2, 1), utc(2026, 2, 2))).toEqual([]);
    expect(scheduleWindows(range, 'UTC', from, from)).toEqual([]);
  });

  it('refuses a range longer than 400 days or backwards', () => {
    expect(() => scheduleWindows({ kind: 'always' }, 'UTC', 0, 401 * DAY)).toThrow(RangeError);
    expect(() => scheduleWindows({ kind: 'always' }, 'UTC', DAY, 0)).toThrow(RangeError);
  });
});

describe('validateSchedule', () => {
  const zone = 'Europe/Berlin';
  /** The problems as "path: message" lines, easy to read in a failing test. */
  const problems = (s: unknown, timeZone = zone, nowMs?: number): string[] =>
    validateSchedule(s as GrantSchedule, timeZone, nowMs === undefined ? {} : { nowMs }).map(
      (p) => `${p.path}: ${p.message}`,
    );

  it('accepts every kind when it is well formed', () => {
    const good: GrantSchedule[] = [
      { kind: 'always' },
      { kind: 'date-range', from: '2026-12-12T10:00', until: '2026-12-14T18:00' },
      { kind: 'one-time', from: '2026-12-12T10:00', until: '2026-12-12T12:00' },
      weekly(slot(['sat'], '14:00', '18:00'), slot(['mon', 'fri'], '22:00', '06:00')),
      weekly(slot([...WEEKDAYS], '00:00', '24:00')),
      weekly(slot(['sun'], '02:30', '05:00')), // starts in a gap once a year: still a schedule
    ];
    for (const s of good) expect(problems(s)).toEqual([]);
  });

  it('names an unknown time zone', () => {
    expect(problems({ kind: 'always' }, 'Mars/Olympus_Mons')).toEqual([
      'timeZone: "Mars/Olympus_Mons" is not a time zone this server knows; use an IANA name such as Europe/Berlin.',
    ]);
  });

  it('names an unknown kind', () => {
    expect(problems({ kind: 'sometimes' })).toEqual([
      'kind: "sometimes" is not a kind of schedule; use one of always, date-range, weekly, one-time.',
    ]);
    expect(problems(null)).toEqual([
      'kind: A schedule needs a kind: one of always, date-range, weekly, one-time.',
    ]);
    expect(problems({})).toEqual([
      'kind: A schedule needs a kind: one of always, date-range, weekly, one-time.',
    ]);
  });

  it('explains each bad date and time of a range', () => {
    expect(
      problems({ kind: 'date-range', from: '12.12.2026 10:00', until: '2026-02-30T10:00' }),
    ).toEqual([
      'from: from ("12.12.2026 10:00") is not a local date and time like 2026-12-12T10:00.',
      'until: until ("2026-02-30T10:00") has day 30, but that month has 28 days.',
    ]);
    expect(
      problems({ kind: 'one-time', from: 1_765_000_000_000, until: '2026-12-12T25:00' }),
    ).toEqual([
      'from: from must be a local date and time like 2026-12-12T10:00.',
      'until: until ("2026-12-12T25:00") has hour 25, not 00–23.',
    ]);
  });

  it('refuses a range that ends before it starts, or at its start', () => {
    expect(
      problems({ kind: 'date-range', from: '2026-12-14T18:00', until: '2026-12-12T10:00' }),
    ).toEqual(['until: until (2026-12-12T10:00) must be after from (2026-12-14T18:00).']);
    expect(
      problems({ kind: 'one-time', from: '2026-12-12T10:00', until: '2026-12-12T10:00' }),
    ).toEqual(['until: until (2026-12-12T10:00) must be after from (2026-12-12T10:00).']);
  });

  it('refuses a range that lies wholly in the hour skipped by the change to summer time', () => {
    expect(
      problems({ kind: 'one-time', from: '2026-03-29T02:00', until: '2026-03-29T02:45' }),
    ).toEqual([
      'until: 2026-03-29T02:00 to 2026-03-29T02:45 does not happen in Europe/Berlin: the clocks skip that time when they go forward.',
    ]);
    // The same wall-clock times exist in New York, whose change is three weeks earlier.
    expect(
      problems(
        { kind: 'one-time', from: '2026-03-29T02:00', until: '2026-03-29T02:45' },
        'America/New_York',
      ),
    ).toEqual([]);
  });

  it('refuses a range that is already over, when told the time', () => {
    const range = { kind: 'date-range', from: '2026-12-12T10:00', until: '2026-12-14T18:00' };
    expect(problems(range, zone, utc(2026, 12, 14, 17))).toEqual([
      'until: until (2026-12-14T18:00) is already past.',
    ]);
    expect(problems(range, zone, utc(2026, 12, 14, 17) - 1)).toEqual([]);
  });

  it('needs at least one slot, and not too many', () => {
    expect(problems({ kind: 'weekly', slots: [] })).toEqual([
      'slots: A weekly schedule needs at least one slot.',
    ]);
    expect(problems({ kind: 'weekly' })).toEqual([
      'slots: A weekly schedule needs at least one slot.',
    ]);
    const many = Array.from({ length: MAX_WEEKLY_SLOTS + 1 }, () =>
      slot(['mon'], '09:00', '10:00'),
    );
    expect(problems(weekly(...many))).toEqual([
      `slots: A weekly schedule may have at most ${MAX_WEEKLY_SLOTS} slots, not ${MAX_WEEKLY_SLOTS + 1}; a slot can cover several days.`,
    ]);
    expect(problems(weekly(...many.slice(1)))).toEqual([]);
  });

  it('explains each bad slot', () => {
    expect(
      problems({
        kind: 'weekly',
        slots: [
          { days: [], start: '09:00', end: '10:00' },
          { days: ['monday', 'tue', 'tue'], start: '9:00', end: '10:00' },
          { days: ['wed'], start: '24:00', end: '24:30' },
          { days: ['thu'], start: '10:00', end: '10:00' },
          { days: ['fri'], start: '10:60', end: 1000 },
          null,
          { start: '09:00', end: '10:00' },
        ],
      }),
    ).toEqual([
      'slots[0].days: slots[0] needs at least one day.',
      'slots[1].days[0]: "monday" is not a day; use mon, tue, wed, thu, fri, sat, sun.',
      'slots[1].days[2]: slots[1] lists tue twice.',
      'slots[1].start: slots[1].start ("9:00") is not a time of day like 09:30.',
      'slots[2].start: slots[2].start ("24:00") is 24:00, which only an end time may be.',
      'slots[2].end: slots[2].end ("24:30") has hour 24, not 00–23.',
      'slots[3].end: slots[3] starts and ends at 10:00; for a whole day use 00:00–24:00.',
      'slots[4].start: slots[4].start ("10:60") has minute 60, not 00–59.',
      'slots[4].end: slots[4].end must be a time of day like 09:30.',
      'slots[5]: slots[5] must be a slot with days, start and end.',
      'slots[6].days: slots[6] needs at least one day.',
    ]);
  });

  it('reports problems of the zone and the schedule together', () => {
    expect(
      problems({ kind: 'date-range', from: 'x', until: '2026-12-12T10:00' }, 'Nowhere'),
    ).toEqual([
      'timeZone: "Nowhere" is not a time zone this server knows; use an IANA name such as Europe/Berlin.',
      'from: from ("x") is not a local date and time like 2026-12-12T10:00.',
    ]);
  });
});

describe('validateLimits', () => {
  const ok: GrantLimits = { maxUses: 3, maxMinutesPerEntry: 90, requiresRecording: true };
  const problems = (limits: unknown, schedule?: GrantSchedule): string[] =>
    validateLimits(limits as GrantLimits, schedule).map((p) => `${p.path}: ${p.message}`);

  it('accepts sensible limits and no limits', () => {
    expect(problems(ok)).toEqual([]);
    expect(problems({ maxUses: null, maxMinutesPerEntry: null, requiresRecording: false })).toEqual(
      [],
    );
    expect(
      problems(
        { ...ok, maxUses: 1 },
        { kind: 'one-time', from: '2026-12-12T10:00', until: '2026-12-12T12:00' },
      ),
    ).toEqual([]);
  });

  it('explains each bad limit', () => {
    for (const maxUses of [0, -1, 2.5, 10_001, Number.NaN, '3']) {
      expect(problems({ ...ok, maxUses })).toEqual([
        `maxUses: maxUses must be a whole number from 1 to 10000, or none for no limit; not ${String(maxUses)}.`,
      ]);
    }
    for (const maxMinutesPerEntry of [0, 1441, 0.5, Number.POSITIVE_INFINITY]) {
      expect(problems({ ...ok, maxMinutesPerEntry })).toEqual([
        `maxMinutesPerEntry: maxMinutesPerEntry must be a whole number of minutes from 1 to 1440, or none for no limit; not ${String(maxMinutesPerEntry)}.`,
      ]);
    }
    expect(problems({ ...ok, requiresRecording: 'yes' })).toEqual([
      'requiresRecording: requiresRecording must be true or false.',
    ]);
  });

  it('refuses more than one use for a one-time grant', () => {
    expect(
      problems(ok, { kind: 'one-time', from: '2026-12-12T10:00', until: '2026-12-12T12:00' }),
    ).toEqual(['maxUses: A one-time grant allows one entry, not 3; use a date range for more.']);
  });
});

describe('describeSchedule', () => {
  const zone = 'Europe/Berlin';
  const in2026 = utc(2026, 6, 1);

  it('says each kind in a plain sentence, naming the home’s zone', () => {
    expect(describeSchedule({ kind: 'always' }, zone)).toBe('Any time');
    expect(describeSchedule(weekly(slot(['sat'], '14:00', '18:00')), zone)).toBe(
      'Saturdays 14:00–18:00 (Europe/Berlin)',
    );
    expect(
      describeSchedule(
        { kind: 'date-range', from: '2026-12-12T10:00', until: '2026-12-14T18:00' },
        zone,
        { nowMs: in2026 },
      ),
    ).toBe('From 12 Dec 10:00 to 14 Dec 18:00 (Europe/Berlin)');
    expect(
      describeSchedule(
        { kind: 'one-time', from: '2026-12-12T10:00', until: '2026-12-12T12:00' },
        zone,
        { nowMs: in2026 },
      ),
    ).toBe('Once, on 12 Dec between 10:00 and 12:00 (Europe/Berlin)');
  });

  it('shows years that are not this year, and every year when it does not know the date', () => {
    const range: GrantSchedule = {
      kind: 'date-range',
      from: '2026-12-30T10:00',
      until: '2027-01-02T18:00',
    };
    expect(describeSchedule(range, zone, { nowMs: in2026 })).toBe(
      'From 30 Dec 10:00 to 2 Jan 2027 18:00 (Europe/Berlin)',
    );
    expect(describeSchedule(range, zone)).toBe(
      'From 30 Dec 2026 10:00 to 2 Jan 2027 18:00 (Europe/Berlin)',
    );
    // "This year" is the home's: 23:30 UTC on 31 Dec 2026 is already 2027 in Berlin.
    expect(describeSchedule(range, zone, { nowMs: utc(2026, 12, 31, 23, 30) })).toBe(
      'From 30 Dec 2026 10:00 to 2 Jan 18:00 (Europe/Berlin)',
    );
  });

  it('describes one-time windows that run to midnight or over it', () => {
    expect(
      describeSchedule(
        { kind: 'one-time', from: '2026-12-12T22:00', until: '2026-12-13T00:00' },
        zone,
        { nowMs: in2026 },
      ),
    ).toBe('Once, on 12 Dec between 22:00 and 24:00 (Europe/Berlin)');
    expect(
      describeSchedule(
        { kind: 'one-time', from: '2026-12-12T22:00', until: '2026-12-13T02:00' },
        zone,
        { nowMs: in2026 },
      ),
    ).toBe('Once, between 12 Dec 22:00 and 13 Dec 02:00 (Europe/Berlin)');
  });

  it('groups days and marks overnight slots', () => {
    const s = weekly(
      slot(['fri', 'mon', 'tue', 'wed'], '09:00', '12:00'),
      slot(['sun', 'sat'], '22:00', '06:00'),
      slot([...WEEKDAYS], '12:00', '13:00'),
      slot(['thu'], '20:00', '00:00'),
    );
    expect(describeSchedule(s, zone)).toBe(
      'Mondays to Wednesdays and Fridays 09:00–12:00; Saturdays and Sundays 22:00–06:00 the next day; Every day 12:00–13:00; Thursdays 20:00–24:00 (Europe/Berlin)',
    );
    expect(
      describeSchedule(weekly(slot(['mon', 'wed', 'fri'], '08:00', '24:00')), 'Asia/Kolkata'),
    ).toBe('Mondays, Wednesdays and Fridays 08:00–24:00 (Asia/Kolkata)');
  });

  it('writes dates in the locale asked for', () => {
    expect(
      describeSchedule(
        { kind: 'date-range', from: '2026-12-12T10:00', until: '2026-12-14T18:00' },
        zone,
        {
          locale: 'en-US',
          nowMs: in2026,
        },
      ),
    ).toBe('From Dec 12 10:00 to Dec 14 18:00 (Europe/Berlin)');
  });
});

/**
 * A brute-force reference for schedules, built only from Intl's local date and time parts.
 *
 * The rule under test: a window is open while the home's clock has already shown its start
 * (the highest reading so far is at or after the start) and will still show a time before its
 * end (the lowest reading from now on is before the end). This reference reads the clock
 * minute by minute around the instant to find those two readings.
 */
describe('agrees with a minute-by-minute reference (seeded)', () => {
  const ZONES = [
    'Europe/Berlin',
    'America/New_York',
    'Australia/Adelaide',
    'Australia/Lord_Howe',
    'America/Santiago',
    'Pacific/Chatham',
    'Asia/Kolkata',
    'Asia/Kathmandu',
  ];
  const QUARTER = 15 * MIN;
  // Every offset of these zones and every schedule time below is a multiple of 15 minutes, so
  // whether a schedule is open changes only at instants that are multiples of 15 minutes.

  const readers = new Map<string, Intl.DateTimeFormat>();
  const seen = new Map<string, number>();
  /** The home's clock at `t`, as ms since 1970-01-01 00:00 on that clock. */
  function clockAt(zone: string, t: number): number {
    const key = `${zone} ${t}`;
    const known = seen.get(key);
    if (known !== undefined) return known;
    const reading = readClock(zone, t);
    seen.set(key, reading);
    return reading;
  }
  function readClock(zone: string, t: number): number {
    let f = readers.get(zone);
    if (f === undefined) {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      });
      readers.set(zone, f);
    }
    const p: Record<string, number> = {};
    for (const part of f.formatToParts(t)) p[part.type] = Number(part.value);
    return Date.UTC(
      p.year ?? 0,
      (p.month ?? 1) - 1,
      p.day ?? 1,
      p.hour ?? 0,
      p.minute ?? 0,
      p.second ?? 0,
    );
  }

  /** Instants around which the zone's offset changes, to the hour, from Dec 2025 to Feb 2027. */
  const changesOf = new Map<string, number[]>();
  function changes(zone: string): number[] {
    let found = changesOf.get(zone);
    if (found === undefined) {
      found = [];
      let previous: number | null = null;
      for (let t = utc(2025, 12, 1); t < utc(2027, 3, 1); t += HOUR) {
        const offset = clockAt(zone, t) - t;
        if (previous !== null && offset !== previous) found.push(t);
        previous = offset;
      }
      changesOf.set(zone, found);
    }
    return found;
  }

  /** The highest reading up to `t` and the lowest from `t` on (t a whole minute). */
  function readings(zone: string, t: number): { highest: number; lowest: number } {
    const here = clockAt(zone, t);
    const far = 3 * HOUR; // more than any change of offset in these zones
    // Away from a change the clock simply runs; near one, read it minute by minute.
    if (!changes(zone).some((c) => Math.abs(c - t) < far + HOUR)) {
      return { highest: here, lowest: here };
    }
    let highest = here;
    let lowest = here;
    for (let k = 1; k <= far / MIN; k++) {
      highest = Math.max(highest, clockAt(zone, t - k * MIN));
      lowest = Math.min(lowest, clockAt(zone, t + k * MIN));
    }
    return { highest, lowest };
  }

  const minutesOf = (hhmm: string): number => {
    const [h, m] = hhmm.split(':').map(Number);
    return (h ?? 0) * 60 + (m ?? 0);
  };
  const localMs = (text: string): number => Date.parse(`${text}:00Z`);

  function referenceOpen(schedule: GrantSchedule, zone: string, t: number): boolean {
    const { highest, lowest } = readings(zone, t);
    const within = (start: number, end: number): boolean => highest >= start && lowest < end;
    switch (schedule.kind) {
      case 'always':
        return true;
      case 'date-range':
      case 'one-time':
        return within(localMs(schedule.from), localMs(schedule.until));
      case 'weekly':
        for (let day = Math.floor(lowest / DAY) - 1; day <= Math.floor(highest / DAY); day++) {
          const weekday = WEEKDAYS[(new Date(day * DAY).getUTCDay() + 6) % 7] ?? 'mon';
          for (const s of schedule.slots) {
            if (!s.days.includes(weekday)) continue;
            const start = minutesOf(s.start);
            let end = minutesOf(s.end);
            if (end <= start) end += 24 * 60;
            if (within(day * DAY + start * MIN, day * DAY + end * MIN)) return true;
          }
        }
        return false;
    }
  }

  function seeded(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
  }

  it('on random schedules and instants over 2026 in eight zones', () => {
    const random = seeded(29_03_2026);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const hhmm = (minutes: number): string =>
      `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
    // Times near the small hours, where clocks change, half of the time.
    const quarterOfDay = (): number =>
      random() < 0.5 ? Math.floor(random() * 20) * 15 : Math.floor(random() * 96) * 15;

    let instants = 0;
    let opened = 0;
    for (const zone of ZONES) {
      const changesIn2026 = changes(zone).filter(
        (c) => c >= utc(2026, 1, 1) && c < utc(2027, 1, 1),
      );
      for (let n = 0; n < 10; n++) {
        // A period of two weeks, around a change of offset half of the time.
        const around = changesIn2026.length > 0 && random() < 0.5 ? pick(changesIn2026) : null;
        const periodStart =
          Math.floor(
            (around === null
              ? utc(2026, 1, 1) + random() * 350 * DAY
              : around - random() * 10 * DAY) / QUARTER,
          ) * QUARTER;
        const periodEnd = periodStart + 14 * DAY;
        const gridEnd = periodEnd + 9 * DAY; // far enough to see any weekly slot come round

        let schedule: GrantSchedule;
        if (random() < 0.25) {
          const from = Math.floor((periodStart + random() * 12 * DAY) / QUARTER) * QUARTER;
          const fromText = new Date(clockAt(zone, from)).toISOString().slice(0, 16);
          const untilText = new Date(localMs(fromText) + (1 + Math.floor(random() * 200)) * QUARTER)
            .toISOString()
            .slice(0, 16);
          schedule = {
            kind: random() < 0.5 ? 'date-range' : 'one-time',
            from: fromText,
            until: untilText,
          };
        } else {
          const slots: WeeklySlot[] = [];
          const count = 1 + Math.floor(random() * 3);
          for (let i = 0; i < count; i++) {
            const days = WEEKDAYS.filter(() => random() < 0.4);
            const start = quarterOfDay();
            let end = quarterOfDay() + 15;
            if (end === start) end += 15;
            slots.push(
              slot(
                days.length > 0 ? days : [pick(WEEKDAYS)],
                hhmm(start),
                hhmm(Math.min(end, 1440)),
              ),
            );
          }
          schedule = weekly(...slots);
        }
        expect(validateSchedule(schedule, zone)).toEqual([]);

        // The reference on a 15-minute grid: grid[i] is whether it is open from
        // periodStart + i quarters for one quarter.
        const grid: boolean[] = [];
        for (let t = periodStart; t < gridEnd; t += QUARTER)
          grid.push(referenceOpen(schedule, zone, t));
        const openAt = (t: number): boolean =>
          grid[Math.floor((t - periodStart) / QUARTER)] ?? false;
        const firstChangeAfter = (t: number, open: boolean): number | null => {
          for (let i = Math.floor((t - periodStart) / QUARTER) + 1; i < grid.length; i++) {
            if (grid[i] !== open) return periodStart + i * QUARTER;
          }
          return null;
        };

        // The windows listed for the period agree with the grid.
        const windows = scheduleWindows(schedule, zone, periodStart, periodEnd);
        for (let t = periodStart; t < periodEnd; t += QUARTER) {
          expect(
            windows.some((w) => w.start <= t && t < w.end),
            `${zone} ${JSON.stringify(schedule)} at ${new Date(t).toISOString()}`,
          ).toBe(openAt(t));
        }

        for (let k = 0; k < 50; k++) {
          // A random instant, to the millisecond; every fifth exactly on a quarter, where
          // windows start and end.
          let t = periodStart + Math.floor(random() * (periodEnd - periodStart));
          if (k % 5 === 0) t = Math.floor(t / QUARTER) * QUARTER;
          const wholeMinute = Math.floor(t / MIN) * MIN;
          const where = `${zone} ${JSON.stringify(schedule)} at ${new Date(t).toISOString()}`;
          // The grid's assumption holds here too.
          expect(referenceOpen(schedule, zone, wholeMinute), where).toBe(openAt(t));

          const verdict = scheduleAllows(schedule, zone, t);
          expect(verdict.allowed, where).toBe(openAt(t));
          instants++;
          if (verdict.allowed) {
            opened++;
            const end = firstChangeAfter(t, true);
            if (end === null)
              expect(verdict.windowEndsAt === null || verdict.windowEndsAt >= gridEnd, where).toBe(
                true,
              );
            else expect(verdict.windowEndsAt, where).toBe(end);
          } else {
            const next = firstChangeAfter(t, false);
            if (schedule.kind === 'weekly') {
              expect(verdict.reason, where).toBe('outside-schedule');
              expect(verdict.nextStartsAt, where).toBe(next);
            } else if (next !== null) {
              expect(verdict, where).toEqual({
                allowed: false,
                reason: 'not-yet',
                nextStartsAt: next,
              });
            } else {
              expect(verdict, where).toEqual({
                allowed: false,
                reason: 'ended',
                nextStartsAt: null,
              });
            }
          }
        }
      }
    }
    // The sample really explored both answers.
    expect(instants).toBe(ZONES.length * 10 * 50);
    expect(opened).toBeGreaterThan(instants / 10);
    expect(instants - opened).toBeGreaterThan(instants / 10);
  });
});

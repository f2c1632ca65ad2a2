import { describe, expect, it } from 'vitest';
import {
  DAY_MS,
  HOUR_MS,
  civilFromDays,
  daysFromCivil,
  daysInMonth,
  formatLocalDateTime,
  formatTimeOfDay,
  instantOfWallClock,
  isKnownTimeZone,
  offsetAt,
  parseLocalDateTime,
  parseTimeOfDay,
  wallClockAt,
  weekdayIn,
  weekdayOfDay,
} from './calendar.ts';
import { WEEKDAYS } from './model.ts';

describe('weekdayIn', () => {
  // 2026-11-27 is a Friday. 23:30 UTC is already Saturday in Berlin and still Friday in New York.
  const fridayLateUtc = Date.UTC(2026, 10, 27, 23, 30);

  it('gives the weekday in the home’s zone, not in UTC', () => {
    expect(weekdayIn('UTC', fridayLateUtc)).toBe('fri');
    expect(weekdayIn('Europe/Berlin', fridayLateUtc)).toBe('sat');
    expect(weekdayIn('America/New_York', fridayLateUtc)).toBe('fri');
    expect(weekdayIn('Pacific/Auckland', Date.UTC(2026, 10, 27, 12, 0))).toBe('sat');
  });

  it('follows daylight-saving changes (Berlin leaves summer time on 2026-10-25)', () => {
    // 22:30 UTC on Saturday 24 Oct is 00:30 Sunday in summer time (UTC+2).
    expect(weekdayIn('Europe/Berlin', Date.UTC(2026, 9, 24, 22, 30))).toBe('sun');
    // 22:30 UTC on Sunday 25 Oct is 23:30 Sunday in winter time (UTC+1).
    expect(weekdayIn('Europe/Berlin', Date.UTC(2026, 9, 25, 22, 30))).toBe('sun');
    expect(weekdayIn('Europe/Berlin', Date.UTC(2026, 9, 25, 23, 30))).toBe('mon');
  });

  it('knows real zones and refuses made-up ones', () => {
    expect(isKnownTimeZone('Europe/Berlin')).toBe(true);
    expect(isKnownTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(() => weekdayIn('Mars/Olympus_Mons', 0)).toThrow(RangeError);
  });
});

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number =>
  Date.UTC(y, mo - 1, d, h, mi, s);

/** The wall-clock time of a local date and time, built independently of the code under test. */
const wall = (y: number, mo: number, d: number, h = 0, mi = 0): number => utc(y, mo, d, h, mi);

describe('civil dates as day numbers', () => {
  it('agree with Date.UTC for every day from 1900 to 2200', () => {
    const wrong: number[] = [];
    for (let days = -25_567; days <= 84_000; days++) {
      const date = new Date(days * DAY_MS);
      const civil = civilFromDays(days);
      if (
        civil.year !== date.getUTCFullYear() ||
        civil.month !== date.getUTCMonth() + 1 ||
        civil.day !== date.getUTCDate() ||
        daysFromCivil(civil.year, civil.month, civil.day) !== days ||
        WEEKDAYS.indexOf(weekdayOfDay(days)) !== (date.getUTCDay() + 6) % 7
      ) {
        wrong.push(days);
      }
    }
    expect(wrong).toEqual([]);
    expect(civilFromDays(0)).toEqual({ year: 1970, month: 1, day: 1 });
    expect(weekdayOfDay(0)).toBe('thu');
  });

  it('know the lengths of months, leap years included', () => {
    expect(daysInMonth(2026, 2)).toBe(28);
    expect(daysInMonth(2024, 2)).toBe(29);
    expect(daysInMonth(2000, 2)).toBe(29);
    expect(daysInMonth(2100, 2)).toBe(28);
    expect(daysInMonth(2026, 4)).toBe(30);
    expect(daysInMonth(2026, 12)).toBe(31);
  });
});

describe('wallClockAt and offsetAt', () => {
  it('read the home’s clock, whole-hour and non-hour offsets alike', () => {
    expect(wallClockAt('Europe/Berlin', utc(2026, 1, 15, 12))).toBe(wall(2026, 1, 15, 13));
    expect(wallClockAt('Europe/Berlin', utc(2026, 7, 15, 12))).toBe(wall(2026, 7, 15, 14));
    expect(offsetAt('Asia/Kolkata', utc(2026, 7, 15, 12))).toBe(5.5 * HOUR_MS);
    expect(offsetAt('Asia/Kathmandu', utc(2026, 7, 15, 12))).toBe(5.75 * HOUR_MS);
    expect(offsetAt('America/New_York', utc(2026, 1, 15, 12))).toBe(-5 * HOUR_MS);
    expect(offsetAt('Australia/Adelaide', utc(2026, 1, 15, 12))).toBe(10.5 * HOUR_MS);
    expect(offsetAt('UTC', 0)).toBe(0);
  });

  it('keep milliseconds and read midnight as 00, not 24', () => {
    expect(wallClockAt('Europe/Berlin', utc(2026, 1, 14, 23) + 123)).toBe(wall(2026, 1, 15) + 123);
    expect(wallClockAt('Europe/Berlin', utc(2026, 1, 14, 23) - 1)).toBe(wall(2026, 1, 15) - 1);
  });

  it('follow the change to summer time at the instant it happens', () => {
    // Berlin: 2026-03-29 01:00 UTC, 02:00 CET becomes 03:00 CEST.
    expect(wallClockAt('Europe/Berlin', utc(2026, 3, 29, 1) - 1)).toBe(wall(2026, 3, 29, 2) - 1);
    expect(wallClockAt('Europe/Berlin', utc(2026, 3, 29, 1))).toBe(wall(2026, 3, 29, 3));
  });

  it('refuse an unknown zone', () => {
    expect(() => wallClockAt('Mars/Olympus_Mons', 0)).toThrow(RangeError);
    expect(() => instantOfWallClock('Mars/Olympus_Mons', 0, 'start')).toThrow(RangeError);
  });
});

describe('instantOfWallClock', () => {
  it('gives the one instant of an ordinary time, for a start and an end alike', () => {
    for (const edge of ['start', 'end'] as const) {
      expect(instantOfWallClock('Europe/Berlin', wall(2026, 1, 15, 13), edge)).toBe(
        utc(2026, 1, 15, 12),
      );
      expect(instantOfWallClock('Asia/Kolkata', wall(2026, 1, 5, 9), edge)).toBe(
        utc(2026, 1, 5, 3, 30),
      );
      expect(instantOfWallClock('America/New_York', wall(2026, 7, 4, 12), edge)).toBe(
        utc(2026, 7, 4, 16),
      );
    }
  });

  it('takes the first instant after the gap for a time skipped when clocks go forward', () => {
    const cases: [string, number, number][] = [
      // 02:00 CET -> 03:00 CEST at 01:00 UTC.
      ['Europe/Berlin', wall(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1)],
      ['Europe/Berlin', wall(2026, 3, 29, 2), utc(2026, 3, 29, 1)],
      ['Europe/Berlin', wall(2026, 3, 29, 2, 59), utc(2026, 3, 29, 1)],
      // 02:00 EST -> 03:00 EDT at 07:00 UTC.
      ['America/New_York', wall(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7)],
      // 02:00 ACST -> 03:00 ACDT at 16:30 UTC the day before.
      ['Australia/Adelaide', wall(2026, 10, 4, 2, 30), utc(2026, 10, 3, 16, 30)],
      // Lord Howe moves by half an hour: 02:00 -> 02:30 at 15:30 UTC.
      ['Australia/Lord_Howe', wall(2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 30)],
      // Santiago skips midnight: Saturday 24:00 is Sunday 01:00.
      ['America/Santiago', wall(2026, 9, 6), utc(2026, 9, 6, 4)],
    ];
    for (const [zone, local, expected] of cases) {
      expect(instantOfWallClock(zone, local, 'start')).toBe(expected);
      expect(instantOfWallClock(zone, local, 'end')).toBe(expected);
    }
    // Just outside the gap, times are ordinary.
    expect(instantOfWallClock('Europe/Berlin', wall(2026, 3, 29, 3), 'start')).toBe(
      utc(2026, 3, 29, 1),
    );
    expect(instantOfWallClock('Europe/Berlin', wall(2026, 3, 29, 1, 59), 'end')).toBe(
      utc(2026, 3, 29, 0, 59),
    );
  });

  it('starts at the first and ends at the second occurrence of a time the clock shows twice', () => {
    const cases: [string, number, number, number][] = [
      // 03:00 CEST -> 02:00 CET at 01:00 UTC: 02:00–02:59 happen twice.
      [
        'Europe/Berlin',
        wall(2026, 10, 25, 2, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
      ],
      [
        'Europe/Berlin',
        wall(2026, 10, 25, 2, 59),
        utc(2026, 10, 25, 0, 59),
        utc(2026, 10, 25, 1, 59),
      ],
      // 02:00 EDT -> 01:00 EST at 06:00 UTC: 01:00–01:59 happen twice.
      [
        'America/New_York',
        wall(2026, 11, 1, 1, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6, 30),
      ],
      // 03:00 ACDT -> 02:00 ACST at 16:30 UTC.
      [
        'Australia/Adelaide',
        wall(2026, 4, 5, 2, 15),
        utc(2026, 4, 4, 15, 45),
        utc(2026, 4, 4, 16, 45),
      ],
      // Lord Howe: 02:00 -> 01:30 at 15:00 UTC.
      [
        'Australia/Lord_Howe',
        wall(2026, 4, 5, 1, 45),
        utc(2026, 4, 4, 14, 45),
        utc(2026, 4, 4, 15, 15),
      ],
    ];
    for (const [zone, local, first, second] of cases) {
      expect(instantOfWallClock(zone, local, 'start')).toBe(first);
      expect(instantOfWallClock(zone, local, 'end')).toBe(second);
    }
  });

  it('ends at the first occurrence of the first repeated time: the clock never goes below it again', () => {
    // After 02:00 CEST (00:00 UTC) Berlin's clock never shows a time before 02:00 that day.
    expect(instantOfWallClock('Europe/Berlin', wall(2026, 10, 25, 2), 'start')).toBe(
      utc(2026, 10, 25, 0),
    );
    expect(instantOfWallClock('Europe/Berlin', wall(2026, 10, 25, 2), 'end')).toBe(
      utc(2026, 10, 25, 0),
    );
    expect(instantOfWallClock('America/New_York', wall(2026, 11, 1, 1), 'end')).toBe(
      utc(2026, 11, 1, 5),
    );
    // The first time after the repeated hour is ordinary.
    expect(instantOfWallClock('Europe/Berlin', wall(2026, 10, 25, 3), 'start')).toBe(
      utc(2026, 10, 25, 2),
    );
  });

  it('round-trips every instant of a year in several zones (seeded)', () => {
    const random = seeded(20_260_101);
    const zones = ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'];
    for (let i = 0; i < 2000; i++) {
      const zone = zones[i % zones.length] ?? 'UTC';
      const t = utc(2026, 1, 1) + Math.floor(random() * 365 * DAY_MS);
      const local = wallClockAt(zone, t);
      const start = instantOfWallClock(zone, local, 'start');
      const end = instantOfWallClock(zone, local, 'end');
      expect(wallClockAt(zone, start)).toBe(local);
      expect(wallClockAt(zone, end)).toBe(local);
      expect(start).toBeLessThanOrEqual(end);
      // t is one of them, unless it is the very instant the clocks went back.
      if (wallClockAt(zone, t - 1) < local) expect([start, end]).toContain(t);
    }
  });
});

describe('text forms', () => {
  it('read and write local dates and times', () => {
    expect(parseLocalDateTime('2026-12-12T10:00')).toEqual({
      ok: true,
      value: wall(2026, 12, 12, 10),
    });
    expect(parseLocalDateTime('2024-02-29T23:59')).toEqual({
      ok: true,
      value: wall(2024, 2, 29, 23, 59),
    });
    expect(formatLocalDateTime(wall(2026, 3, 9, 7, 5))).toBe('2026-03-09T07:05');
    expect(formatLocalDateTime(wall(2026, 3, 9, 7, 5) + 59_999)).toBe('2026-03-09T07:05');
  });

  it('say what is wrong with a local date and time', () => {
    const reason = (text: string): string => {
      const r = parseLocalDateTime(text);
      return r.ok ? 'ok' : r.reason;
    };
    expect(reason('2026-12-12 10:00')).toBe('is not a local date and time like 2026-12-12T10:00');
    expect(reason('2026-12-12T10:00:00')).toBe(
      'is not a local date and time like 2026-12-12T10:00',
    );
    expect(reason('2026-12-12T10:00Z')).toBe('is not a local date and time like 2026-12-12T10:00');
    expect(reason('1969-12-31T23:00')).toBe('has year 1969, outside 1970–9999');
    expect(reason('2026-13-01T10:00')).toBe('has month 13, not 01–12');
    expect(reason('2026-02-29T10:00')).toBe('has day 29, but that month has 28 days');
    expect(reason('2026-04-00T10:00')).toBe('has day 0, but that month has 30 days');
    expect(reason('2026-04-01T24:00')).toBe('has hour 24, not 00–23');
    expect(reason('2026-04-01T10:60')).toBe('has minute 60, not 00–59');
  });

  it('read times of day, with 24:00 only for an end', () => {
    expect(parseTimeOfDay('00:00')).toEqual({ ok: true, value: 0 });
    expect(parseTimeOfDay('23:59')).toEqual({ ok: true, value: 23 * 60 + 59 });
    expect(parseTimeOfDay('24:00', true)).toEqual({ ok: true, value: 24 * 60 });
    expect(parseTimeOfDay('24:00')).toEqual({
      ok: false,
      reason: 'is 24:00, which only an end time may be',
    });
    expect(parseTimeOfDay('9:30')).toEqual({
      ok: false,
      reason: 'is not a time of day like 09:30',
    });
    expect(parseTimeOfDay('24:30', true)).toEqual({ ok: false, reason: 'has hour 24, not 00–23' });
    expect(parseTimeOfDay('12:60')).toEqual({ ok: false, reason: 'has minute 60, not 00–59' });
    expect(formatTimeOfDay(9 * 60 + 5)).toBe('09:05');
    expect(formatTimeOfDay(24 * 60)).toBe('24:00');
  });
});

/** A small seeded generator (mulberry32), so a failing case can be replayed. */
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

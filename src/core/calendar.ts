/**
 * Calendar arithmetic in a home's time zone. Pure: the time zone database comes with the
 * JavaScript runtime (Intl), and the instant is passed in.
 *
 * Two kinds of time appear here. An *instant* is milliseconds since the Unix epoch, as
 * everywhere in Threshold. A *wall-clock time* is what a clock on the home's wall shows,
 * written as milliseconds since 1970-01-01 00:00 *on that clock* (the local date and time
 * encoded as if it were UTC): plain integer arithmetic on it gives dates, weekdays and "next
 * day" without any time zone, and {@link instantOfWallClock} turns it back into an instant.
 */
import { WEEKDAYS, type Weekday } from './model.ts';

/** One minute, ms. */
export const MINUTE_MS = 60_000;
/** One hour, ms. */
export const HOUR_MS = 3_600_000;
/** One calendar day on a wall clock, ms (a day between two instants may be 23 or 25 hours). */
export const DAY_MS = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function weekdayFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    // Throws a RangeError for an unknown zone: homes are validated when they are saved.
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short' });
    formatters.set(timeZone, f);
  }
  return f;
}

const BY_SHORT_NAME: Readonly<Record<string, Weekday>> = {
  Mon: 'mon',
  Tue: 'tue',
  Wed: 'wed',
  Thu: 'thu',
  Fri: 'fri',
  Sat: 'sat',
  Sun: 'sun',
};

/** The day of the week at instant `atMs` (ms since the epoch) in `timeZone` (IANA). */
export function weekdayIn(timeZone: string, atMs: number): Weekday {
  const name = weekdayFormatter(timeZone).format(atMs);
  const day = BY_SHORT_NAME[name];
  if (day === undefined) throw new RangeError(`unexpected weekday name ${name}`);
  return day;
}

/** Whether `timeZone` is an IANA time zone this runtime knows. */
export function isKnownTimeZone(timeZone: string): boolean {
  try {
    weekdayFormatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Civil dates as day numbers (days since 1970-01-01), proleptic Gregorian. The algorithms are
// Howard Hinnant's "chrono-compatible low-level date algorithms": exact integer arithmetic,
// no Date needed.

/** A date on the calendar, without a time zone. `month` is 1–12. */
export interface CivilDate {
  readonly year: number;
  readonly month: number;
  readonly day: number;
}

/** The day number (days since 1970-01-01) of a civil date. */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const monthFromMarch = (month + 9) % 12;
  const dayOfYear = Math.floor((153 * monthFromMarch + 2) / 5) + day - 1;
  const dayOfEra =
    yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The civil date of a day number (days since 1970-01-01). */
export function civilFromDays(days: number): CivilDate {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra -
      Math.floor(dayOfEra / 1460) +
      Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) /
      365,
  );
  const dayOfYear =
    dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

/** How many days `month` (1–12) of `year` has. */
export function daysInMonth(year: number, month: number): number {
  const next = month === 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1);
  return next - daysFromCivil(year, month, 1);
}

/** The day of the week of a day number (1970-01-01 was a Thursday). */
export function weekdayOfDay(days: number): Weekday {
  const index = (((days + 3) % 7) + 7) % 7;
  const day = WEEKDAYS[index];
  if (day === undefined) throw new RangeError(`no weekday ${index}`);
  return day;
}

// ---------------------------------------------------------------------------------------------
// Wall clock <-> instant.

const partsFormatters = new Map<string, Intl.DateTimeFormat>();

function partsFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = partsFormatters.get(timeZone);
  if (f === undefined) {
    // hourCycle h23: some runtimes print midnight as "24" with hour12: false.
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    partsFormatters.set(timeZone, f);
  }
  return f;
}

/**
 * The wall-clock time (see the module comment) at instant `atMs` in `timeZone`. Throws a
 * RangeError for an unknown zone.
 */
export function wallClockAt(timeZone: string, atMs: number): number {
  const wholeSecond = Math.floor(atMs / 1000) * 1000;
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  for (const { type, value } of partsFormatter(timeZone).formatToParts(wholeSecond)) {
    if (type === 'year') year = Number(value);
    else if (type === 'month') month = Number(value);
    else if (type === 'day') day = Number(value);
    else if (type === 'hour') hour = Number(value);
    else if (type === 'minute') minute = Number(value);
    else if (type === 'second') second = Number(value);
  }
  // Intl prints whole seconds; the milliseconds carry over unchanged (every offset in the
  // time zone database is a whole number of seconds).
  return (
    daysFromCivil(year, month, day) * DAY_MS +
    hour * HOUR_MS +
    minute * MINUTE_MS +
    second * 1000 +
    (atMs - wholeSecond)
  );
}

/** The offset of `timeZone` from UTC at instant `atMs`, ms (e.g. +3 600 000 for CET). */
export function offsetAt(timeZone: string, atMs: number): number {
  return wallClockAt(timeZone, atMs) - atMs;
}

/**
 * Which instant of a wall-clock time to take when the clock shows it twice or never:
 * `'start'` for the beginning of a period, `'end'` for its (exclusive) end.
 */
export type WallClockEdge = 'start' | 'end';

// Resolving wall-clock times is the hot path of schedule evaluation (the same slot starts are
// resolved again at every check), and the answer never changes within a process.
const resolved = new Map<string, number>();
const RESOLVED_CACHE_LIMIT = 50_000;

/**
 * The instant at which the home's wall clock shows `wallMs`, in `timeZone`.
 *
 * A period is the time during which the clock shows its start or later and not yet its end,
 * read so that it is one unbroken stretch of time:
 * - `'start'`: the first instant at which the clock shows `wallMs` or later;
 * - `'end'`: the first instant from which the clock never again shows a time before `wallMs`.
 *
 * For ordinary times both are simply the instant the clock shows `wallMs`. For a time that
 * does not exist (skipped when the clocks go forward, e.g. 02:30 on 2026-03-29 in
 * Europe/Berlin) both are the instant of the change, the first instant after the gap (03:00
 * CEST). For a time that happens twice (clocks go back, e.g. 02:30 on 2026-10-25 in Berlin), a
 * start is the first occurrence and an end the second, so a period never loses part of the
 * repeated hour; the one exception follows from the rule: an end at the very first repeated
 * time (02:00 in Berlin) is its first occurrence, because after it the clock never shows a time
 * before 02:00 again.
 *
 * Assumes, as holds for every zone in use, that a zone's offset changes at most twice within
 * a day of `wallMs`. Throws a RangeError for an unknown zone.
 */
export function instantOfWallClock(timeZone: string, wallMs: number, edge: WallClockEdge): number {
  const key = `${timeZone}|${wallMs}|${edge}`;
  const cached = resolved.get(key);
  if (cached !== undefined) return cached;
  const answer = resolveWallClock(timeZone, wallMs, edge);
  if (resolved.size >= RESOLVED_CACHE_LIMIT) resolved.clear();
  resolved.set(key, answer);
  return answer;
}

function resolveWallClock(timeZone: string, wallMs: number, edge: WallClockEdge): number {
  // The offsets in force around the wall-clock time; the instant, if it exists, is wallMs
  // minus one of them.
  const offsets = new Set([
    offsetAt(timeZone, wallMs - DAY_MS),
    offsetAt(timeZone, wallMs),
    offsetAt(timeZone, wallMs + DAY_MS),
  ]);
  const occurrences = [...offsets]
    .map((offset) => wallMs - offset)
    .filter((t) => wallClockAt(timeZone, t) === wallMs)
    .sort((a, b) => a - b);
  const first = occurrences[0];
  if (first === undefined)
    return endOfGap(timeZone, wallMs, Math.min(...offsets), Math.max(...offsets));
  if (edge === 'start') return first;
  // The end is the last occurrence that the clock reaches from below, i.e. after having gone
  // back to an earlier time; an occurrence reached only by running on is no new end.
  let end = first;
  for (const t of occurrences.slice(1)) {
    if (wallClockAt(timeZone, t - 1) < wallMs) end = t;
  }
  return end;
}

/** The first instant at which the clock shows `wallMs` or later, for a time in a gap. */
function endOfGap(timeZone: string, wallMs: number, minOffset: number, maxOffset: number): number {
  // Before lo the clock shows less than wallMs, from hi on more; the clock only moves forward
  // in between, so bisect for the jump.
  let lo = wallMs - maxOffset;
  let hi = wallMs - minOffset;
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (wallClockAt(timeZone, mid) >= wallMs) hi = mid;
    else lo = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------------------------
// Text forms.

/** Why a text is not a local date and time, or a time of day. */
export type ParseResult =
  { readonly ok: true; readonly value: number } | { readonly ok: false; readonly reason: string };

const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/;
const TIME_OF_DAY = /^(\d{2}):(\d{2})$/;

/** The earliest and latest years a local date may have (sanity bounds, not policy). */
export const MIN_YEAR = 1970;
export const MAX_YEAR = 9999;

/**
 * Reads a local date and time `YYYY-MM-DDTHH:MM` (no seconds, no offset: the zone is the
 * home's) as a wall-clock time; the reason, if it is not one, is a sentence for a person.
 */
export function parseLocalDateTime(text: string): ParseResult {
  const m = LOCAL_DATE_TIME.exec(text);
  if (m === null) {
    return { ok: false, reason: 'is not a local date and time like 2026-12-12T10:00' };
  }
  const [year, month, day, hour, minute] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  if (year < MIN_YEAR || year > MAX_YEAR) {
    return { ok: false, reason: `has year ${year}, outside ${MIN_YEAR}–${MAX_YEAR}` };
  }
  if (month < 1 || month > 12) return { ok: false, reason: `has month ${month}, not 01–12` };
  const monthDays = daysInMonth(year, month);
  if (day < 1 || day > monthDays) {
    return { ok: false, reason: `has day ${day}, but that month has ${monthDays} days` };
  }
  if (hour > 23) return { ok: false, reason: `has hour ${hour}, not 00–23` };
  if (minute > 59) return { ok: false, reason: `has minute ${minute}, not 00–59` };
  return {
    ok: true,
    value: daysFromCivil(year, month, day) * DAY_MS + hour * HOUR_MS + minute * MINUTE_MS,
  };
}

/** Writes a wall-clock time as `YYYY-MM-DDTHH:MM` (seconds are dropped). */
export function formatLocalDateTime(wallMs: number): string {
  const days = Math.floor(wallMs / DAY_MS);
  const { year, month, day } = civilFromDays(days);
  const minutes = Math.floor((wallMs - days * DAY_MS) / MINUTE_MS);
  return `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)}T${formatTimeOfDay(minutes)}`;
}

/**
 * Reads a time of day `HH:MM` as minutes after midnight. `24:00` (1440) is accepted only when
 * `allowEndOfDay` is set, for the end of a period that runs to midnight.
 */
export function parseTimeOfDay(text: string, allowEndOfDay = false): ParseResult {
  const m = TIME_OF_DAY.exec(text);
  if (m === null) return { ok: false, reason: 'is not a time of day like 09:30' };
  const hour = Number(m[1]);
  const minute = Number(m[2]);
  if (hour === 24 && minute === 0) {
    return allowEndOfDay
      ? { ok: true, value: 24 * 60 }
      : { ok: false, reason: 'is 24:00, which only an end time may be' };
  }
  if (hour > 23) return { ok: false, reason: `has hour ${hour}, not 00–23` };
  if (minute > 59) return { ok: false, reason: `has minute ${minute}, not 00–59` };
  return { ok: true, value: hour * 60 + minute };
}

/** Writes minutes after midnight (0–1440) as `HH:MM`. */
export function formatTimeOfDay(minutes: number): string {
  return `${pad2(Math.floor(minutes / 60))}:${pad2(minutes % 60)}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * When a guest grant lets its holder in, and under which limits: the schedule kinds, their
 * validation, their evaluation at an instant, and a sentence that describes them. Pure: the
 * instant and the home's time zone are passed in.
 *
 * Every time in a schedule is a wall-clock time of the home (its IANA time zone), because that
 * is how owners think: "Saturdays 14:00–18:00" stays 14:00–18:00 on the home's clocks across
 * daylight-saving changes, and "from 12 Dec 10:00" means 10:00 at the home, wherever the owner
 * typed it. Storing wall-clock times (not instants) also keeps that meaning if the time zone
 * rules change between granting and visiting. Instants appear only in answers
 * ({@link scheduleAllows}), resolved with the rules of {@link instantOfWallClock}:
 *
 * - a window starts at the first instant the home's clock shows its start time or later, and
 *   ends (exclusive) at the first instant from which the clock never again shows a time before
 *   its end;
 * - so a time skipped when clocks go forward (02:30 on 2026-03-29 in Europe/Berlin) starts or
 *   ends a window at the first instant after the gap (03:00 CEST), and a window that lies
 *   wholly in the gap does not happen that day;
 * - a time that happens twice when clocks go back (02:30 on 2026-10-25 in Berlin) starts a
 *   window at its first occurrence and ends one at its second, so a window is one unbroken
 *   stretch and is never cut short by the repeated hour (the rule makes one exception: an end
 *   at exactly the first repeated time, 02:00 in Berlin, is its first occurrence, because from
 *   then on the clock never shows a time before 02:00 again).
 *
 * Weekly slots that overlap or touch form one window, also across midnight and the week's
 * end, so `windowEndsAt` is when the holder really has to be out.
 */
import {
  DAY_MS,
  MINUTE_MS,
  civilFromDays,
  formatTimeOfDay,
  instantOfWallClock,
  isKnownTimeZone,
  parseLocalDateTime,
  parseTimeOfDay,
  wallClockAt,
  weekdayOfDay,
} from './calendar.ts';
import { WEEKDAYS, isWeekday, type Role, type Weekday } from './model.ts';

/**
 * A date and time on the home's wall clock, `YYYY-MM-DDTHH:MM` (no seconds, no offset), e.g.
 * `2026-12-12T10:00`.
 */
export type LocalDateTime = string;

/** A time of day on the home's wall clock, `HH:MM` from 00:00 to 23:59; an end may be 24:00. */
export type TimeOfDay = string;

/**
 * One weekly recurring window: on each of `days`, from `start` (inclusive) to `end`
 * (exclusive). `end` may be `24:00` (to midnight). An `end` at or before `start` (e.g.
 * 22:00–06:00) is an overnight slot: it belongs to its start day and ends on the next day, so
 * "Fridays 22:00–06:00" runs from Friday 22:00 to Saturday 06:00. `end` equal to `start` is
 * refused (a whole day is 00:00–24:00).
 */
export interface WeeklySlot {
  readonly days: readonly Weekday[];
  readonly start: TimeOfDay;
  readonly end: TimeOfDay;
}

/**
 * When a grant lets its holder in, in the home's time zone.
 *
 * - `always`: at any time (until revoked).
 * - `date-range`: from `from` (inclusive) to `until` (exclusive), for any number of entries.
 * - `weekly`: in any of the slots, every week.
 * - `one-time`: one visit between `from` and `until`: evaluated like a date range, but the
 *   grant allows a single entry (see {@link effectiveMaxUses}).
 *
 * Slots that overlap or touch form one window.
 */
export type GrantSchedule =
  | { readonly kind: 'always' }
  | { readonly kind: 'date-range'; readonly from: LocalDateTime; readonly until: LocalDateTime }
  | { readonly kind: 'weekly'; readonly slots: readonly WeeklySlot[] }
  | { readonly kind: 'one-time'; readonly from: LocalDateTime; readonly until: LocalDateTime };

/** The kinds of {@link GrantSchedule}. */
export const GRANT_SCHEDULE_KINDS = ['always', 'date-range', 'weekly', 'one-time'] as const;
export type GrantScheduleKind = (typeof GRANT_SCHEDULE_KINDS)[number];

/** The limits and requirements of a grant beyond its schedule. */
export interface GrantLimits {
  /** How many entries the grant allows in all, or null for no limit. */
  readonly maxUses: number | null;
  /**
   * The longest one entry may last, minutes, or null for no limit other than the end of the
   * schedule's window (see {@link entryDeadline}).
   */
  readonly maxMinutesPerEntry: number | null;
  /** Whether a door camera must confirm it is recording before the door unlocks. */
  readonly requiresRecording: boolean;
}

/** The most slots a weekly schedule may have (a week of two slots a day is 14). */
export const MAX_WEEKLY_SLOTS = 20;
/** The highest use count a grant may be limited to; beyond it, leave the count unlimited. */
export const MAX_USES_LIMIT = 10_000;
/** The longest entry a grant may allow, minutes (one day). */
export const MAX_MINUTES_PER_ENTRY = 24 * 60;

const HOUSEHOLD: ReadonlySet<Role> = new Set<Role>(['owner', 'member']);

/**
 * Whether a grant for a principal of `role` requires recording unless the owner says
 * otherwise: yes for anyone who is not of the household (owner or member).
 */
export function defaultRequiresRecording(role: Role): boolean {
  return !HOUSEHOLD.has(role);
}

/** The limits a new grant for a principal of `role` gets unless the owner sets others. */
export function defaultGrantLimits(role: Role): GrantLimits {
  return {
    maxUses: null,
    maxMinutesPerEntry: null,
    requiresRecording: defaultRequiresRecording(role),
  };
}

/**
 * How many entries a grant allows in all, or null for no limit: `limits.maxUses`, except that
 * a one-time grant allows one entry whatever its limits say.
 */
export function effectiveMaxUses(schedule: GrantSchedule, limits: GrantLimits): number | null {
  return schedule.kind === 'one-time' ? 1 : limits.maxUses;
}

/**
 * The instant an entry that began at `enteredAtMs` must end: the earlier of the per-entry
 * limit and the end of the schedule window it began in (`windowEndsAt` from
 * {@link scheduleAllows}), or null if neither limits it.
 */
export function entryDeadline(
  enteredAtMs: number,
  limits: GrantLimits,
  windowEndsAt: number | null,
): number | null {
  const byLimit =
    limits.maxMinutesPerEntry === null ? null : enteredAtMs + limits.maxMinutesPerEntry * MINUTE_MS;
  if (byLimit === null) return windowEndsAt;
  return windowEndsAt === null ? byLimit : Math.min(byLimit, windowEndsAt);
}

// ---------------------------------------------------------------------------------------------
// Validation.

/**
 * One thing wrong with a schedule or limits: where (`from`, `slots[2].end`, `timeZone`,
 * `maxUses`…) and a sentence for the person who typed it.
 */
export interface ScheduleProblem {
  readonly path: string;
  readonly message: string;
}

/** Options of {@link validateSchedule}. */
export interface ValidateScheduleOptions {
  /** If given, a date range or one-time window that has already ended is a problem. */
  readonly nowMs?: number;
}

/**
 * Everything wrong with `schedule` in a home in `timeZone`, or an empty list if it can be
 * granted. Checks the shapes a type cannot (formats, ranges, order), so data that arrived
 * through a schema still gets a clear sentence for each mistake.
 */
export function validateSchedule(
  schedule: GrantSchedule,
  timeZone: string,
  options: ValidateScheduleOptions = {},
): readonly ScheduleProblem[] {
  const problems: ScheduleProblem[] = [];
  const zoneKnown = typeof timeZone === 'string' && isKnownTimeZone(timeZone);
  if (!zoneKnown) {
    problems.push({
      path: 'timeZone',
      message: `${JSON.stringify(timeZone)} is not a time zone this server knows; use an IANA name such as Europe/Berlin.`,
    });
  }
  const kind: unknown =
    typeof schedule === 'object' && schedule !== null
      ? (schedule as { kind?: unknown }).kind
      : undefined;
  switch (kind) {
    case 'always':
      break;
    case 'date-range':
    case 'one-time': {
      const s = schedule as Extract<GrantSchedule, { kind: 'date-range' | 'one-time' }>;
      const from = readLocal(s.from, 'from', problems);
      const until = readLocal(s.until, 'until', problems);
      if (from === null || until === null) break;
      if (until <= from) {
        problems.push({
          path: 'until',
          message: `until (${s.until}) must be after from (${s.from}).`,
        });
        break;
      }
      if (!zoneKnown) break;
      const start = instantOfWallClock(timeZone, from, 'start');
      const end = instantOfWallClock(timeZone, until, 'end');
      if (end <= start) {
        problems.push({
          path: 'until',
          message: `${s.from} to ${s.until} does not happen in ${timeZone}: the clocks skip that time when they go forward.`,
        });
      } else if (options.nowMs !== undefined && end <= options.nowMs) {
        problems.push({ path: 'until', message: `until (${s.until}) is already past.` });
      }
      break;
    }
    case 'weekly': {
      const slots = (schedule as { slots?: unknown }).slots;
      if (!Array.isArray(slots) || slots.length === 0) {
        problems.push({ path: 'slots', message: 'A weekly schedule needs at least one slot.' });
        break;
      }
      if (slots.length > MAX_WEEKLY_SLOTS) {
        problems.push({
          path: 'slots',
          message: `A weekly schedule may have at most ${MAX_WEEKLY_SLOTS} slots, not ${slots.length}; a slot can cover several days.`,
        });
      }
      slots.forEach((slot: WeeklySlot, i) => validateSlot(slot, `slots[${i}]`, problems));
      break;
    }
    default:
      problems.push({
        path: 'kind',
        message:
          kind === undefined
            ? `A schedule needs a kind: one of ${GRANT_SCHEDULE_KINDS.join(', ')}.`
            : `${JSON.stringify(kind)} is not a kind of schedule; use one of ${GRANT_SCHEDULE_KINDS.join(', ')}.`,
      });
  }
  return problems;
}

function readLocal(value: unknown, path: string, problems: ScheduleProblem[]): number | null {
  if (typeof value !== 'string') {
    problems.push({
      path,
      message: `${path} must be a local date and time like 2026-12-12T10:00.`,
    });
    return null;
  }
  const parsed = parseLocalDateTime(value);
  if (!parsed.ok) {
    problems.push({ path, message: `${path} (${JSON.stringify(value)}) ${parsed.reason}.` });
    return null;
  }
  return parsed.value;
}

function readTime(
  value: unknown,
  path: string,
  allowEndOfDay: boolean,
  problems: ScheduleProblem[],
): number | null {
  if (typeof value !== 'string') {
    problems.push({ path, message: `${path} must be a time of day like 09:30.` });
    return null;
  }
  const parsed = parseTimeOfDay(value, allowEndOfDay);
  if (!parsed.ok) {
    problems.push({ path, message: `${path} (${JSON.stringify(value)}) ${parsed.reason}.` });
    return null;
  }
  return parsed.value;
}

function validateSlot(slot: WeeklySlot, path: string, problems: ScheduleProblem[]): void {
  if (typeof slot !== 'object' || slot === null) {
    problems.push({ path, message: `${path} must be a slot with days, start and end.` });
    return;
  }
  const days = (slot as { days?: unknown }).days;
  if (!Array.isArray(days) || days.length === 0) {
    problems.push({ path: `${path}.days`, message: `${path} needs at least one day.` });
  } else {
    const seen = new Set<string>();
    days.forEach((day: unknown, j) => {
      if (typeof day !== 'string' || !isWeekday(day)) {
        problems.push({
          path: `${path}.days[${j}]`,
          message: `${JSON.stringify(day)} is not a day; use ${WEEKDAYS.join(', ')}.`,
        });
      } else if (seen.has(day)) {
        problems.push({ path: `${path}.days[${j}]`, message: `${path} lists ${day} twice.` });
      } else {
        seen.add(day);
      }
    });
  }
  const start = readTime(slot.start, `${path}.start`, false, problems);
  const end = readTime(slot.end, `${path}.end`, true, problems);
  if (start !== null && end !== null && start === end) {
    problems.push({
      path: `${path}.end`,
      message: `${path} starts and ends at ${slot.start}; for a whole day use 00:00–24:00.`,
    });
  }
}

/**
 * Everything wrong with `limits` (for a grant with `schedule`), or an empty list.
 */
export function validateLimits(
  limits: GrantLimits,
  schedule?: GrantSchedule,
): readonly ScheduleProblem[] {
  const problems: ScheduleProblem[] = [];
  const { maxUses, maxMinutesPerEntry, requiresRecording } = limits;
  if (
    maxUses !== null &&
    !(Number.isInteger(maxUses) && maxUses >= 1 && maxUses <= MAX_USES_LIMIT)
  ) {
    problems.push({
      path: 'maxUses',
      message: `maxUses must be a whole number from 1 to ${MAX_USES_LIMIT}, or none for no limit; not ${String(maxUses)}.`,
    });
  } else if (schedule?.kind === 'one-time' && maxUses !== null && maxUses !== 1) {
    problems.push({
      path: 'maxUses',
      message: `A one-time grant allows one entry, not ${maxUses}; use a date range for more.`,
    });
  }
  if (
    maxMinutesPerEntry !== null &&
    !(
      Number.isInteger(maxMinutesPerEntry) &&
      maxMinutesPerEntry >= 1 &&
      maxMinutesPerEntry <= MAX_MINUTES_PER_ENTRY
    )
  ) {
    problems.push({
      path: 'maxMinutesPerEntry',
      message: `maxMinutesPerEntry must be a whole number of minutes from 1 to ${MAX_MINUTES_PER_ENTRY}, or none for no limit; not ${String(maxMinutesPerEntry)}.`,
    });
  }
  if (typeof requiresRecording !== 'boolean') {
    problems.push({
      path: 'requiresRecording',
      message: 'requiresRecording must be true or false.',
    });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/**
 * Whether a schedule lets its holder in at an instant.
 *
 * - allowed: `windowEndsAt` is the instant the current window ends (exclusive), so an entry's
 *   deadline can be capped by it, or null if it never ends (`always`, or weekly slots that
 *   cover the whole week).
 * - refused: `reason` says why — `not-yet` (before a date range or one-time window), `ended`
 *   (after it), `outside-schedule` (between weekly slots) — and `nextStartsAt` is the next
 *   instant it lets in, or null if never again.
 */
export type ScheduleVerdict =
  | { readonly allowed: true; readonly windowEndsAt: number | null }
  | {
      readonly allowed: false;
      readonly reason: 'not-yet' | 'ended' | 'outside-schedule';
      readonly nextStartsAt: number | null;
    };

/** A stretch of time between two instants, `start` inclusive and `end` exclusive, ms. */
export interface TimeWindow {
  readonly start: number;
  readonly end: number;
}

/**
 * Whether `schedule` lets its holder in at instant `atMs` in a home in `timeZone`. The
 * schedule must have passed {@link validateSchedule}; a malformed one throws a RangeError (a
 * bug, not a refusal).
 */
export function scheduleAllows(
  schedule: GrantSchedule,
  timeZone: string,
  atMs: number,
): ScheduleVerdict {
  switch (schedule.kind) {
    case 'always':
      return { allowed: true, windowEndsAt: null };
    case 'date-range':
    case 'one-time': {
      const { start, end } = rangeWindow(schedule, timeZone);
      if (atMs < start) return { allowed: false, reason: 'not-yet', nextStartsAt: start };
      if (atMs >= end) return { allowed: false, reason: 'ended', nextStartsAt: null };
      return { allowed: true, windowEndsAt: end };
    }
    case 'weekly':
      return weeklyVerdict(compileSlots(schedule.slots), timeZone, atMs);
  }
}

/**
 * The stretches of time within `[fromMs, untilMs)` during which `schedule` lets its holder in,
 * in order, cut to that range (e.g. for a home hub that keeps the next week of windows). The
 * range may be at most 400 days.
 */
export function scheduleWindows(
  schedule: GrantSchedule,
  timeZone: string,
  fromMs: number,
  untilMs: number,
): readonly TimeWindow[] {
  if (!(untilMs >= fromMs) || untilMs - fromMs > 400 * DAY_MS) {
    throw new RangeError('scheduleWindows needs a range of at most 400 days');
  }
  if (untilMs === fromMs) return [];
  let windows: readonly TimeWindow[];
  switch (schedule.kind) {
    case 'always':
      windows = [{ start: fromMs, end: untilMs }];
      break;
    case 'date-range':
    case 'one-time':
      windows = [rangeWindow(schedule, timeZone)];
      break;
    case 'weekly': {
      const slots = compileSlots(schedule.slots);
      if (coversWholeWeek(slots)) {
        windows = [{ start: fromMs, end: untilMs }];
        break;
      }
      // Two days either side: a window of an earlier day can reach into the range (overnight
      // slots, and wall-clock days that are longer than 24 hours).
      const firstDay = Math.floor(wallClockAt(timeZone, fromMs) / DAY_MS) - 2;
      const lastDay = Math.floor(wallClockAt(timeZone, untilMs) / DAY_MS) + 1;
      windows = weeklyWindows(slots, timeZone, firstDay, lastDay);
      break;
    }
  }
  return windows
    .filter((w) => w.end > fromMs && w.start < untilMs)
    .map((w) => ({ start: Math.max(w.start, fromMs), end: Math.min(w.end, untilMs) }));
}

function rangeWindow(
  schedule: Extract<GrantSchedule, { kind: 'date-range' | 'one-time' }>,
  timeZone: string,
): TimeWindow {
  return {
    start: instantOfWallClock(timeZone, mustParseLocal(schedule.from), 'start'),
    end: instantOfWallClock(timeZone, mustParseLocal(schedule.until), 'end'),
  };
}

function mustParseLocal(text: string): number {
  const parsed = parseLocalDateTime(text);
  if (!parsed.ok) throw new RangeError(`${JSON.stringify(text)} ${parsed.reason}`);
  return parsed.value;
}

function mustParseTime(text: string, allowEndOfDay: boolean): number {
  const parsed = parseTimeOfDay(text, allowEndOfDay);
  if (!parsed.ok) throw new RangeError(`${JSON.stringify(text)} ${parsed.reason}`);
  return parsed.value;
}

/** A weekly slot as minutes: `end` is after `start`, up to 2 × 1440 for overnight slots. */
interface CompiledSlot {
  readonly days: ReadonlySet<Weekday>;
  readonly startMin: number;
  readonly endMin: number;
}

function compileSlots(slots: readonly WeeklySlot[]): readonly CompiledSlot[] {
  return slots.map((slot) => {
    const startMin = mustParseTime(slot.start, false);
    const endOfDay = mustParseTime(slot.end, true);
    if (endOfDay === startMin) throw new RangeError(`slot ${slot.start}–${slot.end} is empty`);
    // An end at or before the start is on the next day: the slot belongs to its start day.
    const endMin = endOfDay > startMin ? endOfDay : endOfDay + 24 * 60;
    return { days: new Set(slot.days), startMin, endMin };
  });
}

const WEEK_MIN = 7 * 24 * 60;

/**
 * Whether the slots cover every minute of the week on the wall clock. Then they cover every
 * instant too: adjacent slots resolve their shared wall-clock time to touching or overlapping
 * instants, so daylight-saving changes open no gap.
 */
function coversWholeWeek(slots: readonly CompiledSlot[]): boolean {
  const spans: [number, number][] = [];
  for (const slot of slots) {
    WEEKDAYS.forEach((day, index) => {
      if (!slot.days.has(day)) return;
      const start = index * 24 * 60 + slot.startMin;
      const end = index * 24 * 60 + slot.endMin;
      if (end <= WEEK_MIN) spans.push([start, end]);
      else spans.push([start, WEEK_MIN], [0, end - WEEK_MIN]); // Sunday night into Monday
    });
  }
  spans.sort((a, b) => a[0] - b[0]);
  let covered = 0;
  for (const [start, end] of spans) {
    if (start > covered) return false;
    covered = Math.max(covered, end);
  }
  return covered >= WEEK_MIN;
}

/**
 * The windows of the slots that start on wall-clock days `firstDay` to `lastDay` (day numbers),
 * as instants, sorted, with overlapping and touching windows merged and empty ones (wholly in
 * a daylight-saving gap) dropped.
 */
function weeklyWindows(
  slots: readonly CompiledSlot[],
  timeZone: string,
  firstDay: number,
  lastDay: number,
): TimeWindow[] {
  const raw: TimeWindow[] = [];
  for (let day = firstDay; day <= lastDay; day++) {
    const weekday = weekdayOfDay(day);
    for (const slot of slots) {
      if (!slot.days.has(weekday)) continue;
      const start = instantOfWallClock(timeZone, day * DAY_MS + slot.startMin * MINUTE_MS, 'start');
      const end = instantOfWallClock(timeZone, day * DAY_MS + slot.endMin * MINUTE_MS, 'end');
      if (end > start) raw.push({ start, end });
    }
  }
  raw.sort((a, b) => a.start - b.start);
  const merged: TimeWindow[] = [];
  for (const w of raw) {
    const last = merged[merged.length - 1];
    if (last !== undefined && w.start <= last.end) {
      merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, w.end) };
    } else {
      merged.push(w);
    }
  }
  return merged;
}

function weeklyVerdict(
  slots: readonly CompiledSlot[],
  timeZone: string,
  atMs: number,
): ScheduleVerdict {
  if (coversWholeWeek(slots)) return { allowed: true, windowEndsAt: null };
  const today = Math.floor(wallClockAt(timeZone, atMs) / DAY_MS);
  // A week and a day ahead finds the next window of any slot; the look-ahead grows only when
  // windows chain on beyond it (slots that touch all week except a time skipped by DST).
  for (let lastDay = today + 8; lastDay <= today + 8 + 7 * 8; lastDay += 7) {
    const windows = weeklyWindows(slots, timeZone, today - 2, lastDay);
    // Windows of later days start at or after this instant.
    const horizon = instantOfWallClock(timeZone, (lastDay + 1) * DAY_MS, 'start');
    const current = windows.find((w) => w.start <= atMs && atMs < w.end);
    if (current !== undefined) {
      if (current.end < horizon) return { allowed: true, windowEndsAt: current.end };
      continue;
    }
    const next = windows.find((w) => w.start > atMs);
    if (next !== undefined) {
      return { allowed: false, reason: 'outside-schedule', nextStartsAt: next.start };
    }
  }
  // Not reachable for validated slots: every weekday with a slot comes round within a week,
  // and the whole-week case is answered above.
  throw new RangeError('weekly schedule evaluation did not converge');
}

// ---------------------------------------------------------------------------------------------
// Description.

/** Options of {@link describeSchedule}. */
export interface DescribeScheduleOptions {
  /** BCP 47 locale for day and month names in dates, e.g. `en-GB` (the default): "12 Dec". */
  readonly locale?: string;
  /**
   * Now, to leave out the year of dates in the current year (in the home's zone). Without it
   * every date shows its year.
   */
  readonly nowMs?: number;
}

const PLURAL_DAY_NAMES: Readonly<Record<Weekday, string>> = {
  mon: 'Mondays',
  tue: 'Tuesdays',
  wed: 'Wednesdays',
  thu: 'Thursdays',
  fri: 'Fridays',
  sat: 'Saturdays',
  sun: 'Sundays',
};

/**
 * A plain English sentence for the guest and the owner: "Any time", "Saturdays 14:00–18:00
 * (Europe/Berlin)", "From 12 Dec 10:00 to 14 Dec 18:00 (Europe/Berlin)", "Once, on 12 Dec
 * between 10:00 and 12:00 (Europe/Berlin)". Times are the home's wall-clock times, so the zone
 * is named. The schedule must have passed {@link validateSchedule}.
 */
export function describeSchedule(
  schedule: GrantSchedule,
  timeZone: string,
  options: DescribeScheduleOptions = {},
): string {
  const locale = options.locale ?? 'en-GB';
  const currentYear =
    options.nowMs === undefined
      ? null
      : civilFromDays(Math.floor(wallClockAt(timeZone, options.nowMs) / DAY_MS)).year;
  const date = (wallMs: number): string => {
    const { year } = civilFromDays(Math.floor(wallMs / DAY_MS));
    // The wall-clock time encodes the local date as if it were UTC, so format it in UTC.
    return new Intl.DateTimeFormat(locale, {
      timeZone: 'UTC',
      day: 'numeric',
      month: 'short',
      ...(year === currentYear ? {} : { year: 'numeric' }),
    }).format(wallMs);
  };
  const time = (wallMs: number): string =>
    formatTimeOfDay(Math.floor((wallMs - Math.floor(wallMs / DAY_MS) * DAY_MS) / MINUTE_MS));

  switch (schedule.kind) {
    case 'always':
      return 'Any time';
    case 'date-range': {
      const from = mustParseLocal(schedule.from);
      const until = mustParseLocal(schedule.until);
      return `From ${date(from)} ${time(from)} to ${date(until)} ${time(until)} (${timeZone})`;
    }
    case 'one-time': {
      const from = mustParseLocal(schedule.from);
      const until = mustParseLocal(schedule.until);
      const fromDay = Math.floor(from / DAY_MS);
      if (until === (fromDay + 1) * DAY_MS) {
        return `Once, on ${date(from)} between ${time(from)} and 24:00 (${timeZone})`;
      }
      if (Math.floor(until / DAY_MS) === fromDay) {
        return `Once, on ${date(from)} between ${time(from)} and ${time(until)} (${timeZone})`;
      }
      return `Once, between ${date(from)} ${time(from)} and ${date(until)} ${time(until)} (${timeZone})`;
    }
    case 'weekly': {
      const parts = schedule.slots.map((slot) => {
        const end = mustParseTime(slot.end, true);
        // An overnight slot to 00:00 is simply a slot to midnight.
        if (end === 0) return `${describeDays(slot.days)} ${slot.start}–24:00`;
        const overnight = end <= mustParseTime(slot.start, false);
        return `${describeDays(slot.days)} ${slot.start}–${slot.end}${overnight ? ' the next day' : ''}`;
      });
      return `${parts.join('; ')} (${timeZone})`;
    }
  }
}

/** "Every day", "Mondays to Fridays", "Mondays, Wednesdays and Saturdays". */
function describeDays(days: readonly Weekday[]): string {
  const chosen = WEEKDAYS.filter((d) => days.includes(d));
  if (chosen.length === WEEKDAYS.length) return 'Every day';
  // Runs of three or more consecutive days read better as "X to Y".
  const runs: Weekday[][] = [];
  let previous = -2;
  for (const day of chosen) {
    const index = WEEKDAYS.indexOf(day);
    const run = runs[runs.length - 1];
    if (run !== undefined && index === previous + 1) run.push(day);
    else runs.push([day]);
    previous = index;
  }
  const phrases = runs.flatMap((run) => {
    const first = run[0];
    const last = run[run.length - 1];
    if (run.length >= 3 && first !== undefined && last !== undefined) {
      return [`${PLURAL_DAY_NAMES[first]} to ${PLURAL_DAY_NAMES[last]}`];
    }
    return run.map((d) => PLURAL_DAY_NAMES[d]);
  });
  const last = phrases.pop() ?? '';
  return phrases.length === 0 ? last : `${phrases.join(', ')} and ${last}`;
}

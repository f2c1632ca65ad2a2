/**
 * Calendar arithmetic in a home's time zone. Pure: the time zone database comes with the
 * JavaScript runtime (Intl), and the instant is passed in.
 */
import type { Weekday } from './model.ts';

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

/**
 * Times as people at the door read them: always in the home's time zone (not the browser's),
 * 24-hour, with seconds where precision matters. No date library: `Intl.DateTimeFormat` does it.
 */
import { useEffect, useState } from 'react';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string, kind: string, opts: Intl.DateTimeFormatOptions) {
  const key = `${timeZone}|${kind}`;
  let f = formatters.get(key);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(undefined, { timeZone, hourCycle: 'h23', ...opts });
    } catch {
      // An unknown zone name must not break the page: fall back to UTC, which is at least exact.
      f = new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', hourCycle: 'h23', ...opts });
    }
    formatters.set(key, f);
  }
  return f;
}

/** "12:03:04" in the home's zone. */
export function formatTime(ms: number, timeZone: string): string {
  return formatter(timeZone, 'time', {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).format(ms);
}

/** "12:03" in the home's zone. */
export function formatHourMinute(ms: number, timeZone: string): string {
  return formatter(timeZone, 'hm', { hour: '2-digit', minute: '2-digit' }).format(ms);
}

/** "Tue, 28 Nov" (the reader's locale) in the home's zone. */
export function formatDay(ms: number, timeZone: string): string {
  return formatter(timeZone, 'day', { weekday: 'short', day: 'numeric', month: 'short' }).format(
    ms,
  );
}

/** "Tue, 28 Nov, 12:03:04" in the home's zone. */
export function formatDateTime(ms: number, timeZone: string): string {
  return formatter(timeZone, 'datetime', {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).format(ms);
}

/** "0:42", "12:05": a countdown or a duration in minutes and seconds. */
export function formatCountdown(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "42 s", "3 min 5 s", "1 h 12 min": how long something took. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function zoneParts(ms: number, timeZone: string): Record<string, number> {
  const parts = formatter(timeZone, 'parts', {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(ms);
  const out: Record<string, number> = {};
  for (const p of parts) if (p.type !== 'literal') out[p.type] = Number(p.value);
  return out;
}

/** How far the zone is ahead of UTC at `ms`, in ms. */
function zoneOffsetMs(ms: number, timeZone: string): number {
  const p = zoneParts(ms, timeZone);
  const asUtc = Date.UTC(
    p.year ?? 1970,
    (p.month ?? 1) - 1,
    p.day ?? 1,
    (p.hour ?? 0) % 24,
    p.minute ?? 0,
    p.second ?? 0,
  );
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant a calendar day ("2026-11-28") starts in the home's zone, in ms. Checked twice
 * because the zone's offset at midnight may differ from the first guess around a DST change.
 */
export function startOfZonedDay(isoDate: string, timeZone: string): number {
  const [y, m, d] = isoDate.split('-').map(Number);
  const guess = Date.UTC(y ?? 1970, (m ?? 1) - 1, d ?? 1);
  let at = guess - zoneOffsetMs(guess, timeZone);
  at = guess - zoneOffsetMs(at, timeZone);
  return at;
}

/** The calendar day ("2026-11-28") that `ms` falls on in the home's zone. */
export function zonedIsoDate(ms: number, timeZone: string): string {
  const p = zoneParts(ms, timeZone);
  const pad = (n: number | undefined, w = 2) => String(n ?? 0).padStart(w, '0');
  return `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}`;
}

/** The day after an ISO date ("2026-02-28" → "2026-03-01"). */
export function nextIsoDate(isoDate: string): string {
  const [y, m, d] = isoDate.split('-').map(Number);
  return new Date(Date.UTC(y ?? 1970, (m ?? 1) - 1, (d ?? 1) + 1)).toISOString().slice(0, 10);
}

/** The current time, refreshed every `everyMs` while the component is mounted. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

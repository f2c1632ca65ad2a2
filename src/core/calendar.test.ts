import { describe, expect, it } from 'vitest';
import { isKnownTimeZone, weekdayIn } from './calendar.ts';

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

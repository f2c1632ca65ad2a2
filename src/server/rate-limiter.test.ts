import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { FixedWindowLimiter } from './rate-limiter.ts';

describe('FixedWindowLimiter', () => {
  it('allows up to the limit in a window, then refuses until the window ends', () => {
    const clock = new FakeClock();
    const l = new FixedWindowLimiter(clock, 3, 60_000);
    expect([l.allow('a'), l.allow('a'), l.allow('a'), l.allow('a')]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(l.isBlocked('a')).toBe(true);
    expect(l.allow('b')).toBe(true);
    clock.advance(59_999);
    expect(l.retryAfterMs('a')).toBe(1);
    expect(l.isBlocked('a')).toBe(true);
    clock.advance(1);
    expect(l.isBlocked('a')).toBe(false);
    expect(l.retryAfterMs('a')).toBe(0);
    expect(l.allow('a')).toBe(true);
  });

  it('counts failures separately from checks: isBlocked does not count', () => {
    const l = new FixedWindowLimiter(new FakeClock(), 2, 1_000);
    for (let i = 0; i < 10; i++) expect(l.isBlocked('x')).toBe(false);
    expect(l.hit('x')).toBe(1);
    expect(l.isBlocked('x')).toBe(false);
    expect(l.hit('x')).toBe(2);
    expect(l.isBlocked('x')).toBe(true);
    l.reset('x');
    expect(l.isBlocked('x')).toBe(false);
  });

  it('keeps a bounded table under a flood of keys, forgetting the oldest first', () => {
    const clock = new FakeClock();
    const l = new FixedWindowLimiter(clock, 1, 60_000, 100);
    l.hit('first');
    for (let i = 0; i < 1_000; i++) l.hit(`flood-${i}`);
    // The oldest key was dropped to make room; the newest are still counted.
    expect(l.isBlocked('first')).toBe(false);
    expect(l.isBlocked('flood-999')).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import type { LockDriverEvent } from './driver.ts';
import { LockReporter } from './lock-reporter.ts';

describe('LockReporter', () => {
  it('tells nothing while starting, the picture once at begin, then only changes', () => {
    const reporter = new LockReporter('front-door');
    const seen: LockDriverEvent[] = [];
    reporter.on((e) => seen.push(e));
    reporter.emit({ type: 'manual', bolt: 'locked', at: 1 });
    reporter.availability(true, 1);
    reporter.bolt('locked', 1);
    expect(seen).toEqual([]);
    expect(reporter.starting).toBe(true);

    reporter.begin(false, 'unknown', 2);
    expect(reporter.live).toBe(true);
    reporter.availability(false, 3);
    reporter.bolt('unknown', 3);
    reporter.availability(true, 4);
    reporter.bolt('locked', 4);
    reporter.bolt('locked', 5);
    reporter.emit({ type: 'keypad-wrong-code', at: 6 });
    expect(seen).toEqual([
      { type: 'availability', available: false, at: 2 },
      { type: 'state', bolt: 'unknown', at: 2 },
      { type: 'availability', available: true, at: 4 },
      { type: 'state', bolt: 'locked', at: 4 },
      { type: 'keypad-wrong-code', at: 6 },
    ]);
    expect(reporter.lastAvailable).toBe(true);
  });

  it('tells nothing after close, not even to listeners added then', () => {
    const reporter = new LockReporter('front-door');
    const seen: LockDriverEvent[] = [];
    reporter.on((e) => seen.push(e));
    reporter.begin(true, 'locked', 1);
    reporter.close();
    reporter.on((e) => seen.push(e))();
    reporter.availability(false, 2);
    reporter.emit({ type: 'manual', bolt: 'unlocked', at: 2 });
    reporter.begin(true, 'unlocked', 3);
    expect(seen).toHaveLength(2);
    expect(reporter.live).toBe(false);
    expect(reporter.starting).toBe(false);
  });

  it('hands what a listener throws to onListenerError and still tells the others', () => {
    const errors: unknown[] = [];
    const reporter = new LockReporter('front-door', (err) => errors.push(err));
    const seen: LockDriverEvent[] = [];
    reporter.on(() => {
      throw new Error('listener bug');
    });
    reporter.on((e) => seen.push(e));
    reporter.begin(true, 'locked', 1);
    expect(seen).toHaveLength(2);
    expect(errors).toEqual([new Error('listener bug'), new Error('listener bug')]);
  });
});

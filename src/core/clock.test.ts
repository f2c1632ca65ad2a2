import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.ts';

const START = 1_000_000;

describe('FakeClock', () => {
  it('starts at the given time, or at the fixed default', () => {
    expect(new FakeClock(START).now()).toBe(START);
    expect(new FakeClock().now()).toBe(Date.UTC(2026, 0, 15, 12, 0, 0));
  });

  it('does not move unless told to', () => {
    const clock = new FakeClock(START);
    clock.schedule(START + 10, () => undefined);
    expect(clock.now()).toBe(START);
    expect(clock.pending()).toBe(1);
  });

  it('fires timers in order of due time, with now() equal to each due time', () => {
    const clock = new FakeClock(START);
    const fired: [string, number][] = [];
    clock.schedule(START + 300, () => fired.push(['c', clock.now()]));
    clock.schedule(START + 100, () => fired.push(['a', clock.now()]));
    clock.schedule(START + 200, () => fired.push(['b', clock.now()]));

    clock.advance(500);

    expect(fired).toEqual([
      ['a', START + 100],
      ['b', START + 200],
      ['c', START + 300],
    ]);
    expect(clock.now()).toBe(START + 500);
    expect(clock.pending()).toBe(0);
  });

  it('fires timers due at the same time in the order they were scheduled', () => {
    const clock = new FakeClock(START);
    const fired: string[] = [];
    for (const name of ['first', 'second', 'third'])
      clock.schedule(START + 50, () => fired.push(name));
    clock.advance(50);
    expect(fired).toEqual(['first', 'second', 'third']);
  });

  it('fires a timer exactly at its due time, not before', () => {
    const clock = new FakeClock(START);
    let firedAt: number | null = null;
    clock.schedule(START + 100, () => (firedAt = clock.now()));
    clock.advance(99);
    expect(firedAt).toBeNull();
    expect(clock.pending()).toBe(1);
    clock.advance(1);
    expect(firedAt).toBe(START + 100);
  });

  it('fires each timer once', () => {
    const clock = new FakeClock(START);
    let count = 0;
    clock.schedule(START + 10, () => count++);
    clock.advance(10);
    clock.advance(1000);
    clock.advanceTo(START + 5000);
    expect(count).toBe(1);
  });

  it('runs a timer scheduled in the past on the next advance, at the current time', () => {
    const clock = new FakeClock(START);
    let firedAt: number | null = null;
    clock.schedule(START - 5000, () => (firedAt = clock.now()));
    expect(firedAt).toBeNull();
    clock.advance(0);
    expect(firedAt).toBe(START);
  });

  it('cancels a timer, and cancelling twice is harmless', () => {
    const clock = new FakeClock(START);
    const fired: string[] = [];
    const cancelA = clock.schedule(START + 100, () => fired.push('a'));
    clock.schedule(START + 200, () => fired.push('b'));
    cancelA();
    cancelA();
    expect(clock.pending()).toBe(1);
    clock.advance(1000);
    expect(fired).toEqual(['b']);
  });

  it('lets a timer cancel another one due at the same time', () => {
    const clock = new FakeClock(START);
    const fired: string[] = [];
    let cancelB: () => void = () => undefined;
    clock.schedule(START + 100, () => {
      fired.push('a');
      cancelB();
    });
    cancelB = clock.schedule(START + 100, () => fired.push('b'));
    clock.advance(100);
    expect(fired).toEqual(['a']);
    expect(clock.pending()).toBe(0);
  });

  it('cancelling a timer that already fired changes nothing', () => {
    const clock = new FakeClock(START);
    let count = 0;
    const cancel = clock.schedule(START + 1, () => count++);
    clock.advance(1);
    clock.schedule(START + 2, () => count++);
    cancel();
    expect(clock.pending()).toBe(1);
    clock.advance(1);
    expect(count).toBe(2);
  });

  it('never goes back', () => {
    const clock = new FakeClock(START);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(clock.now()).toBe(START);
    clock.advance(1000);
    clock.advanceTo(START + 10);
    expect(clock.now()).toBe(START + 1000);
  });

  it('advanceTo moves to an absolute time, firing due timers on the way', () => {
    const clock = new FakeClock(START);
    const fired: number[] = [];
    clock.schedule(START + 700, () => fired.push(clock.now()));
    clock.schedule(START + 1500, () => fired.push(clock.now()));
    clock.advanceTo(START + 1000);
    expect(fired).toEqual([START + 700]);
    expect(clock.now()).toBe(START + 1000);
    expect(clock.pending()).toBe(1);
  });

  it('runs timers scheduled by a timer when they fall due within the same advance', () => {
    const clock = new FakeClock(START);
    const fired: [string, number][] = [];
    clock.schedule(START + 100, () => {
      fired.push(['outer', clock.now()]);
      clock.schedule(clock.now() + 50, () => fired.push(['inner', clock.now()]));
      clock.schedule(clock.now() + 5000, () => fired.push(['later', clock.now()]));
    });
    clock.schedule(START + 200, () => fired.push(['other', clock.now()]));

    clock.advance(1000);

    expect(fired).toEqual([
      ['outer', START + 100],
      ['inner', START + 150],
      ['other', START + 200],
    ]);
    expect(clock.pending()).toBe(1);
    clock.advance(4100);
    expect(fired.at(-1)).toEqual(['later', START + 5100]);
  });

  it('runs a timer that a timer schedules for "now" in the same advance, without moving back', () => {
    const clock = new FakeClock(START);
    const fired: [string, number][] = [];
    clock.schedule(START + 100, () => {
      clock.schedule(START, () => fired.push(['past', clock.now()]));
    });
    clock.advance(300);
    expect(fired).toEqual([['past', START + 100]]);
    expect(clock.now()).toBe(START + 300);
  });

  it('a periodic timer that reschedules itself fires once per period', () => {
    const clock = new FakeClock(START);
    const ticks: number[] = [];
    const tick = (): void => {
      ticks.push(clock.now() - START);
      // Bounded, so a clock that does not move fails the test instead of running away.
      if (ticks.length < 10) clock.schedule(clock.now() + 500, tick);
    };
    clock.schedule(START + 500, tick);
    clock.advance(2_000);
    expect(ticks).toEqual([500, 1000, 1500, 2000]);
    expect(clock.pending()).toBe(1);
  });
});

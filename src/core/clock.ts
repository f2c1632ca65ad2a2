/**
 * Time comes into Threshold only through this port: the core never reads the wall clock or
 * starts a timer of its own, so every deadline and watchdog can be tested by advancing a
 * {@link FakeClock}, never by sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Calls `fn` once when the clock reaches `atMs` (at once, on the next turn, if that is in the
   * past). Returns a function that cancels the call; cancelling twice is harmless.
   */
  schedule(atMs: number, fn: () => void): () => void;
}

interface FakeTimer {
  readonly id: number;
  readonly atMs: number;
  readonly fn: () => void;
}

/**
 * A clock that moves only when told to. `advance(ms)` fires every timer that falls due, in
 * order of due time (then of scheduling), with `now()` equal to each timer's due time while it
 * runs, so code under test sees exactly the times it would see in production.
 */
export class FakeClock implements Clock {
  private current: number;
  private nextId = 1;
  private timers: FakeTimer[] = [];

  // 2026-01-15T12:00:00Z: a fixed, readable start for tests.
  constructor(startMs = 1_768_478_400_000) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  schedule(atMs: number, fn: () => void): () => void {
    const timer: FakeTimer = { id: this.nextId++, atMs: Math.max(atMs, this.current), fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t.id !== timer.id);
    };
  }

  /** Moves time forward by `ms`, firing due timers on the way. */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError('A clock cannot go back.');
    this.advanceTo(this.current + ms);
  }

  /** Moves time forward to `atMs`, firing due timers on the way. */
  advanceTo(atMs: number): void {
    for (;;) {
      const due = this.timers
        .filter((t) => t.atMs <= atMs)
        .sort((a, b) => a.atMs - b.atMs || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t.id !== due.id);
      this.current = Math.max(this.current, due.atMs);
      due.fn();
    }
    this.current = Math.max(this.current, atMs);
  }

  /** How many timers are waiting. */
  pending(): number {
    return this.timers.length;
  }
}

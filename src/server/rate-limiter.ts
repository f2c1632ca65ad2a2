/**
 * Counting requests (or failures) per key in fixed windows, in memory, on the server's clock.
 * The table is bounded: when full, finished windows are dropped, then the oldest, so a flood
 * from many addresses or user names costs a fixed amount of memory.
 */
import type { Clock } from '../core/clock.ts';

/** Keys tracked at once by a limiter; beyond it the oldest window is forgotten. */
export const LIMITER_MAX_KEYS = 10_000;

export class FixedWindowLimiter {
  private readonly windows = new Map<string, { startMs: number; count: number }>();

  /**
   * @param limit how many counts a key may have in one window
   * @param windowMs the window's length, ms
   */
  constructor(
    private readonly clock: Clock,
    private readonly limit: number,
    private readonly windowMs: number = 60_000,
    private readonly maxKeys: number = LIMITER_MAX_KEYS,
  ) {}

  /** Counts one and says whether the key is still within its limit. */
  allow(key: string): boolean {
    return this.hit(key) <= this.limit;
  }

  /** Counts one for the key; returns its count in the current window. */
  hit(key: string): number {
    const now = this.clock.now();
    const w = this.current(key, now);
    if (w !== undefined) {
      w.count += 1;
      return w.count;
    }
    this.windows.delete(key);
    if (this.windows.size >= this.maxKeys) this.prune(now);
    this.windows.set(key, { startMs: now, count: 1 });
    return 1;
  }

  /** Whether the key has used up its limit in the current window (without counting). */
  isBlocked(key: string): boolean {
    const w = this.current(key, this.clock.now());
    return w !== undefined && w.count >= this.limit;
  }

  /** How long until the key's current window ends, ms (0 when it has none). */
  retryAfterMs(key: string): number {
    const now = this.clock.now();
    const w = this.current(key, now);
    return w === undefined ? 0 : w.startMs + this.windowMs - now;
  }

  /** Forgets the key (e.g. after a successful sign-in). */
  reset(key: string): void {
    this.windows.delete(key);
  }

  private current(key: string, now: number): { startMs: number; count: number } | undefined {
    const w = this.windows.get(key);
    return w !== undefined && now - w.startMs < this.windowMs ? w : undefined;
  }

  private prune(now: number): void {
    for (const [key, w] of this.windows) {
      if (now - w.startMs >= this.windowMs) this.windows.delete(key);
    }
    // Map order is window start order, so the first key is the oldest.
    while (this.windows.size >= this.maxKeys) {
      const oldest = this.windows.keys().next();
      if (oldest.done === true) break;
      this.windows.delete(oldest.value);
    }
  }
}

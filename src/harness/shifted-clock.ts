/**
 * A wall clock moved by a fixed offset, for scenarios that must happen at a given local time
 * (a weekly guest slot on a Saturday, either side of a daylight-saving change) while the system
 * still runs on real timers. The server and the simulated devices share one such clock, so
 * deadlines, heartbeats and audit times all agree with each other.
 */
import type { Clock } from '../core/clock.ts';

/** Node's timers cap a delay at 2^31-1 ms; longer waits are re-armed in steps. */
const MAX_DELAY_MS = 2_147_483_647;

/** A {@link Clock} whose `now()` is `Date.now() + offsetMs`; its timers run in real time. */
export function shiftedClock(offsetMs: number): Clock {
  const now = (): number => Date.now() + offsetMs;
  return {
    now,
    schedule(atMs: number, fn: () => void): () => void {
      let timer: NodeJS.Timeout | undefined;
      let cancelled = false;
      const arm = (): void => {
        const delay = atMs - now();
        if (delay > MAX_DELAY_MS) {
          timer = setTimeout(arm, MAX_DELAY_MS);
        } else {
          timer = setTimeout(
            () => {
              if (!cancelled) fn();
            },
            Math.max(0, delay),
          );
        }
        // As the system clock's: a pending deadline must not keep a finished process alive.
        timer.unref();
      };
      arm();
      return () => {
        cancelled = true;
        if (timer) clearTimeout(timer);
      };
    },
  };
}

/**
 * The production {@link Clock}: the wall clock and Node's timers. Shared by the server, the hub
 * and the device simulators; the core only ever sees the port.
 */
import type { Clock } from '../core/clock.ts';

/** Node's timers cap a delay at 2^31-1 ms; longer waits are re-armed in steps. */
const MAX_DELAY_MS = 2_147_483_647;

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(atMs: number, fn: () => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = (): void => {
      const delay = atMs - Date.now();
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
      // Deadlines must not keep a process alive that is otherwise done (CLI one-shots, tests).
      timer.unref();
    };
    arm();
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  },
};

/**
 * The production {@link Clock}: the wall clock and Node's timers. Shared by the server, the hub
 * and the device simulators; the core only ever sees the port.
 */
import type { Clock } from '../core/clock.ts';

/** Node's timers cap a delay at 2^31-1 ms; longer waits are re-armed in steps. */
const MAX_DELAY_MS = 2_147_483_647;

/**
 * The production clock. A scheduled call runs from `setImmediate` once its timer fires: when
 * the event loop was held up (a long GC, a big synchronous job), the timers phase comes before
 * the poll phase that reads what arrived meanwhile, so a deadline would be judged without the
 * messages that were already there in time (an observation watchdog would call every camera
 * lost after a stall of its silence bound). From the check phase it runs after them.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(atMs: number, fn: () => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    let immediate: NodeJS.Immediate | undefined;
    let cancelled = false;
    const arm = (): void => {
      const delay = atMs - Date.now();
      if (delay > MAX_DELAY_MS) {
        timer = setTimeout(arm, MAX_DELAY_MS);
      } else {
        timer = setTimeout(
          () => {
            timer = undefined;
            if (cancelled) return;
            immediate = setImmediate(() => {
              immediate = undefined;
              if (!cancelled) fn();
            });
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
      if (immediate) clearImmediate(immediate);
    };
  },
};

/**
 * The timers a device driver holds besides its probe schedule: command timeouts and delayed
 * reads. All of them are cleared by {@link DriverTimers.clear} (the driver's `stop()`), and
 * {@link DriverTimers.size} counts them, so a test can prove a stopped driver holds none.
 */
import { DriverError } from './driver.ts';

/** See the module comment. */
export class DriverTimers {
  private readonly timers = new Set<NodeJS.Timeout>();

  /** How many timers are pending. */
  get size(): number {
    return this.timers.size;
  }

  /** Calls `fn` once after `ms`, unless {@link clear} comes first. */
  after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  /**
   * Settles as `work` does, or rejects with `timeoutError()` if `work` has not settled in `ms`.
   * Work that lost the race still settles later; its result is of no interest then.
   */
  async within<T>(work: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeoutError()), ms);
      this.timers.add(timer);
    });
    work.catch(() => undefined);
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
      if (timer) this.timers.delete(timer);
    }
  }

  /**
   * Runs one call of a device library (`run`) with a timeout: no answer in `timeoutMs` is
   * `device.timeout`, and whatever it throws becomes a {@link DriverError} through `errorOf`.
   */
  async command<T>(
    what: string,
    run: () => Promise<T>,
    timeoutMs: number,
    errorOf: (err: unknown, what: string) => DriverError,
  ): Promise<T> {
    // Through a promise, so that a call that throws at once (a command class the node lacks) is
    // a rejection like any other, and the timer is always cleared.
    const work = Promise.resolve().then(run);
    try {
      return await this.within(
        work,
        timeoutMs,
        () => new DriverError('device.timeout', `${what}: no answer in ${timeoutMs} ms`),
      );
    } catch (err) {
      throw errorOf(err, what);
    }
  }

  /** Clears every pending timer. */
  clear(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

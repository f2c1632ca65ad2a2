/**
 * How a long-running command (`serve`, `demo`, `hub`, `sim`) starts and stops: exit 3 with a
 * sentence when it cannot start, and one clean close on SIGINT or SIGTERM. Kept apart from
 * serve-command.ts so that the hub and the simulators do not load the server to get them.
 */

/** Closes the system on SIGINT/SIGTERM, once: exit 0 once closed, 1 if closing failed. */
export function closeOnSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    void close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** Runs `start`; if it throws, says why on standard error and exits 3 (could not start). */
export async function startOrExit<T>(start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    console.error(
      `threshold: could not start: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(3);
  }
}

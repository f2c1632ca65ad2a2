/**
 * Small helpers shared by the driver contract suites.
 */
import { Socket } from 'node:net';
import { expect } from 'vitest';
import { DriverError, type DriverErrorCode } from '../../src/hub/drivers/driver.ts';

/** Polls `condition` every 10 ms; fails with `what` after `ms`. */
export async function waitUntil(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Waits `ms` of real time (to show that something does *not* happen). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Expects `promise` to reject with a {@link DriverError} of `code`. */
export async function expectDriverError(
  promise: Promise<unknown>,
  code: DriverErrorCode,
): Promise<void> {
  const error: unknown = await promise.then(
    () => new Error('expected a rejection, but it resolved'),
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(DriverError);
  expect((error as DriverError).code).toBe(code);
}

/**
 * The open TCP connections from this process to `port` (a test broker), leaving out the local
 * ports in `except` (the device side's own connections): what a driver under test still holds.
 */
export function openConnectionsTo(port: number, except: readonly (number | undefined)[]): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter(
    (h) =>
      h instanceof Socket && !h.destroyed && h.remotePort === port && !except.includes(h.localPort),
  ).length;
}

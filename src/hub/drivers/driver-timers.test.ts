import { describe, expect, it } from 'vitest';
import { DriverError } from './driver.ts';
import { DriverTimers } from './driver-timers.ts';

const never = new Promise<never>(() => undefined);
const asDriverError = (err: unknown, what: string): DriverError =>
  err instanceof DriverError
    ? err
    : new DriverError('device.unavailable', `${what}: ${(err as Error).message}`);

describe('DriverTimers', () => {
  it('answers with the command, holding no timer after it', async () => {
    const timers = new DriverTimers();
    const answer = timers.command('read', () => Promise.resolve(42), 5_000, asDriverError);
    expect(timers.size).toBe(1);
    expect(await answer).toBe(42);
    expect(timers.size).toBe(0);
  });

  it('turns a command that throws, at once or later, into a DriverError', async () => {
    const timers = new DriverTimers();
    const thrown = timers.command(
      'lock',
      () => {
        throw new Error('no such command class');
      },
      5_000,
      asDriverError,
    );
    await expect(thrown).rejects.toEqual(
      new DriverError('device.unavailable', 'lock: no such command class'),
    );
    const rejected = timers.command(
      'unlock',
      () => Promise.reject(new Error('gone')),
      5_000,
      asDriverError,
    );
    await expect(rejected).rejects.toMatchObject({ code: 'device.unavailable' });
    expect(timers.size).toBe(0);
  });

  it('gives up on a command with no answer as device.timeout', async () => {
    const timers = new DriverTimers();
    await expect(timers.command('read', () => never, 20, asDriverError)).rejects.toEqual(
      new DriverError('device.timeout', 'read: no answer in 20 ms'),
    );
    expect(timers.size).toBe(0);
  });

  it('clears delayed calls that have not run', async () => {
    const timers = new DriverTimers();
    const ran: string[] = [];
    timers.after(10, () => ran.push('first'));
    timers.after(10_000, () => ran.push('never'));
    expect(timers.size).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(ran).toEqual(['first']);
    expect(timers.size).toBe(1);
    timers.clear();
    expect(timers.size).toBe(0);
  });
});

/**
 * The crash-safety loop as CI runs it: a real `threshold serve` child process killed with
 * SIGKILL at the points of a delivery's session (blocks of 7 cycles, each point once, in a
 * seeded random order), 24 times, restarted on the same data each time, and checked: the
 * audit chain verifies, nothing acknowledged (HTTP 2xx, device events' PUBACK) is lost, the
 * open session is closed safely and the door locked. The bench (bench/crash.ts) runs the same
 * loop for 1,000 cycles.
 */
import { describe, expect, it } from 'vitest';
import { KILL_POINTS, runCrashLoop } from '../src/harness/crash-loop.ts';

describe('crash-safety loop', () => {
  it('given a delivery killed at every point of its session, when the control plane restarts, then every check holds', async () => {
    const lines: string[] = [];
    const report = await runCrashLoop({ cycles: 24, seed: 7, log: (l) => lines.push(l) });
    expect(report.failures, lines.join('\n')).toEqual([]);
    expect(report.passed).toBe(24);
    for (const p of KILL_POINTS) expect(report.points[p], p).toBeGreaterThanOrEqual(1);
    // The kills landed in more than one state: the loop does more than crash idle servers.
    expect(Object.keys(report.statesAtKill).length).toBeGreaterThanOrEqual(3);
    expect(report.medianRestartMs).toBeGreaterThan(0);
    // Device events were acknowledged in the cycles, so "none lost" was checked on something.
    expect(
      lines.some((l) => / [1-9]\d* acked events/.test(l)),
      lines.join('\n'),
    ).toBe(true);
  }, 1_200_000);
});

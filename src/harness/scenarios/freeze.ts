/**
 * freeze — the picture freezes while the camera keeps sending heartbeats (a camera that is
 * compromised or wedged, showing a closed door for ever).
 *
 * Given a delivery in progress with the parcel dropped and the door closed,
 * when the camera keeps its heartbeats going but the frame never changes,
 * then `observation-frozen` is raised, the lock is relocked and confirms, a second "open" is
 * refused, the session ends aborted with a frozen gap, and the audit log verifies.
 */
import type { Scenario } from '../scenario.ts';
import { reopenIsRefused } from './common-steps.ts';

export const freeze: Scenario = {
  name: 'freeze',
  expected:
    'observation-frozen, lock relocked, re-unlock refused, coverage < 1 with a frozen gap, audit verified',
  async story({ world, expect }) {
    const { deliveryId, access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };

    world.home.camera.freeze();
    const alarm = await world.waitForAlarm(sessionId, 'observation-frozen', 8_000);
    const detectionMs = alarm.atMs - alarm.sinceMs;
    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(relocked !== null, 'the lock was commanded locked and confirmed it');
    const relockMs =
      relocked?.lockConfirmedAt != null ? relocked.lockConfirmedAt - alarm.atMs : null;

    // The courier comes back and asks to open again.
    const reunlock = await reopenIsRefused(world, expect, deliveryId);

    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(done.state === 'aborted', `the session is aborted (was ${done.state})`);
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    expect.that(
      done.coverage.gaps.some((g) => g.cause === 'frozen'),
      'a frozen gap is listed',
    );
    return {
      session: done,
      extra: { detectionMs, relockMs, reunlock },
    };
  },
};

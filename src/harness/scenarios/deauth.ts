/**
 * deauth — the article's attack (2017): after the drop-off the camera's Wi-Fi is flooded with
 * deauthentication frames, the feed freezes on a closed door, and the courier tries to come back.
 *
 * Given a delivery in progress (door unlocked, parcel dropped, door closed),
 * when the camera's link is cut and kept cut, and the courier asks to open again,
 * then `observation-lost` is raised within 2 s of the last valid heartbeat, the lock is
 * commanded locked at once (the door is closed) and confirms it, the second "open" is refused,
 * the session ends aborted with the gap on record (coverage below 1), and the audit log verifies.
 */
import type { Scenario } from '../scenario.ts';
import { reopenIsRefused } from './common-steps.ts';

export const deauth: Scenario = {
  name: 'deauth',
  expected:
    'observation-lost within 2 s, lock relocked, re-unlock refused, coverage < 1 with the gap, audit verified',
  async story({ world, expect }) {
    const { deliveryId, access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };

    // The jammer starts: the camera's connection dies and cannot come back.
    world.home.links.camera.cutLink();
    const alarm = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
    const detectionMs = alarm.atMs - alarm.sinceMs;
    expect.that(
      detectionMs <= 2_000,
      `observation-lost within 2 s of the last valid heartbeat (took ${detectionMs} ms)`,
    );

    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(relocked !== null, 'the lock was commanded locked and confirmed it');
    const relockMs =
      relocked?.lockConfirmedAt != null ? relocked.lockConfirmedAt - alarm.atMs : null;
    expect.that(
      world.home.lock.bolt() === 'locked',
      `the bolt is thrown (${world.home.lock.bolt()})`,
    );

    // The courier comes back and asks to open again.
    const reunlock = await reopenIsRefused(world, expect, deliveryId);

    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(
      done.state === 'aborted',
      `the session is aborted: the camera never confirmed the door after the relock (was ${done.state})`,
    );
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    expect.that(done.coverage.gaps.length >= 1, `the gap is listed (${done.coverage.gaps.length})`);
    const gapsInAudit = (
      await world.sys.store.audit.entriesForSubject(`session:${sessionId}`)
    ).filter((e) => e.kind === 'observation.gap');
    expect.that(gapsInAudit.length >= 1, 'the gap is written to the audit log');
    return {
      session: done,
      extra: {
        detectionMs,
        relockMs,
        reunlock,
      },
    };
  },
};

/**
 * loop-freeze — a slow-motion freeze: the camera's picture keeps changing, but only cycles
 * through its last two seconds of frames (four frames, captured 500 ms apart), each sent again
 * with a fresh capture time and a valid session MAC, as a compromised camera would. A check
 * that only compares each frame with the one before is fooled; `freeze` does not test this.
 *
 * Given a delivery in progress with the parcel dropped and the door closed,
 * when the camera loops its last 2 s of frames, through its own signing path,
 * then every looping heartbeat is accepted as authentic (nothing is rejected: only the
 * pictures repeat) while consecutive pictures differ, and `observation-frozen` is raised within
 * the freeze bound of the last new picture; the lock is relocked and confirms, a second "open"
 * is refused, the session ends aborted with a frozen gap (coverage below 1), and the audit log
 * verifies.
 */
import type { Scenario } from '../scenario.ts';
import { SCENARIO_TIMING } from '../scenario-world.ts';
import { reopenIsRefused } from './common-steps.ts';
import { sessionAudit } from './steps-net.ts';

/** Frames in the loop: 2 s at the camera's 500 ms frame interval. */
const LOOP_FRAMES = 4;
/** Slack on the freeze bound for the check's timer and the heartbeat interval, ms. */
const FREEZE_SLACK_MS = 500;

export const loopFreeze: Scenario = {
  name: 'loop-freeze',
  expected:
    'picture loops through its last 2 s (authentic heartbeats, changing digests) → observation-frozen within the freeze bound, lock relocked, re-unlock refused, aborted with a frozen gap',
  async story({ world, expect }) {
    const { sys } = world;
    const { deliveryId, access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };

    world.home.camera.loop(LOOP_FRAMES);
    const loopedAt = sys.clock.now();
    const alarm = await world.waitForAlarm(sessionId, 'observation-frozen', 8_000);
    const detectionMs = alarm.atMs - alarm.sinceMs;
    const fromLoopMs = alarm.atMs - loopedAt;
    const bound = SCENARIO_TIMING.watchdog.freezeMs + FREEZE_SLACK_MS;
    expect.that(
      detectionMs <= bound,
      `observation-frozen within ${bound} ms of the last new picture (took ${detectionMs} ms)`,
    );
    expect.that(
      fromLoopMs <= bound,
      `…and within ${bound} ms of the loop's start (${fromLoopMs} ms)`,
    );

    // What the camera sent while looping: authentic, fresh-stamped, changing — and repeating.
    const looped = world.home.camera
      .recordedHeartbeats(sessionId)
      .filter((h) => h.capturedAt >= loopedAt && h.capturedAt <= alarm.atMs);
    const digests = looped.map((h) => h.frameDigest);
    const distinct = new Set(digests).size;
    const changes = digests.filter((d, i) => i > 0 && d !== digests[i - 1]).length;
    expect.that(
      looped.length >= LOOP_FRAMES && changes === looped.length - 1,
      `the picture kept changing at every heartbeat (${changes} changes in ${looped.length})`,
    );
    expect.that(
      distinct <= LOOP_FRAMES && distinct >= 2,
      `…through no more than ${LOOP_FRAMES} pictures (${distinct} distinct)`,
    );
    const stamps = looped.map((h) => h.capturedAt);
    expect.that(
      stamps.every((t, i) => i === 0 || t > (stamps[i - 1] ?? t)),
      'each looping heartbeat carried a fresh capture time',
    );
    const rejected = (await sessionAudit(world, sessionId)).filter(
      (e) => e.kind === 'heartbeat.rejected',
    );
    expect.that(
      rejected.length === 0,
      `no heartbeat was rejected: the loop is authentic, only its pictures repeat (${rejected.length})`,
    );

    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(relocked !== null, 'the lock was commanded locked and confirmed it');
    const relockMs =
      relocked?.lockConfirmedAt != null ? relocked.lockConfirmedAt - alarm.atMs : null;
    const reunlock = await reopenIsRefused(world, expect, deliveryId);

    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    world.home.camera.unfreeze();
    expect.that(
      done.state === 'aborted' && done.outcome?.code === 'camera.frozen',
      `the session is aborted: the picture was frozen (${done.state}, ${done.outcome?.code ?? 'no reason'})`,
    );
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    expect.that(
      done.coverage.gaps.some((g) => g.cause === 'frozen'),
      `a frozen gap is listed (${done.coverage.gaps.map((g) => g.cause).join(', ') || 'none'})`,
    );
    return {
      session: done,
      extra: {
        detectionMs,
        fromLoopMs,
        loopHeartbeats: looped.length,
        loopPictures: distinct,
        relockMs,
        reunlock,
      },
    };
  },
};

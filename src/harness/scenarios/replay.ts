/**
 * replay — heartbeats captured in an earlier session are replayed to cover a gap.
 *
 * Given a first delivery completed normally (its heartbeats captured by the attacker), and a
 * second delivery in progress with the parcel dropped and the door closed,
 * when the camera's real heartbeats stop and the captured ones are sent in their place,
 * then every replayed heartbeat is rejected (it names another session, and its MAC is bound to
 * that session's key), `observation-forged` and `observation-lost` are raised, the lock is
 * relocked and confirms, coverage is below 1, and the audit log verifies.
 */
import type { Scenario } from '../scenario.ts';

export const replay: Scenario = {
  name: 'replay',
  expected:
    'replayed heartbeats rejected, observation-forged and observation-lost raised, lock relocked, coverage < 1, audit verified',
  async story({ world, expect }) {
    // An earlier, normal delivery: the attacker records the camera's heartbeats.
    const first = await world.deliverInside();
    expect.that(
      first.access.status === 200,
      `the first delivery opens (HTTP ${first.access.status})`,
    );
    if (first.sessionId === null) return { session: null };
    await world.requestRelock(first.sessionId);
    await world.waitForState(first.sessionId, ['completed', 'aborted', 'refused'], 10_000);
    const captured = world.home.camera.recordedHeartbeats(first.sessionId);
    expect.that(
      captured.length >= 4,
      `heartbeats of the first session were captured (${captured.length})`,
    );

    // The second delivery.
    const { access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the second delivery opens (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };

    world.home.camera.startReplay(captured);
    const forged = await world.waitForAlarm(sessionId, 'observation-forged', 5_000);
    const lost = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(relocked !== null, 'the lock was relocked and confirmed it');
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    world.home.camera.stopReplay();
    const rejected = (await world.sys.store.audit.entriesForSubject(`session:${sessionId}`)).filter(
      (e) => e.kind === 'heartbeat.rejected',
    );
    expect.that(
      rejected.length >= 1,
      `the replayed heartbeats are rejected on record (${rejected.length})`,
    );
    expect.that(done.state === 'aborted', `the session is aborted (was ${done.state})`);
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    return {
      session: done,
      extra: {
        replayedHeartbeats: captured.length,
        rejectedOnRecord: rejected.length,
        rejectReasons: [...new Set(rejected.map((e) => String(e.data.reason)))],
        forgedAlarmAfterLostMs: forged.atMs - lost.atMs,
      },
    };
  },
};

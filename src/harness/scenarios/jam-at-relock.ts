/**
 * jam-at-relock — the camera (not the lock, as in `relock-jam`) is jammed exactly as the
 * courier taps "Door closed — lock": the lock obeys, but nothing can show the door after it.
 *
 * Given a delivery in progress with the parcel dropped and the door closed,
 * when the camera's link is jammed (both directions blackholed) as the courier asks to lock,
 * then the lock locks and says so, and the courier is told "locked, checking on camera" — not
 * "confirmed"; the session never shows the door locked before the lock's own report, and never
 * completes: no fresh frame confirms the relock, so `observation-lost` is raised (the right
 * alarm: the lock did confirm, so no `lock-unconfirmed`), the owner sees it in the home's
 * alarms, and the session ends aborted with the gap listed (coverage below 1); the audit log
 * verifies.
 */
import type { Scenario } from '../scenario.ts';
import { call, signInOwner } from './common-steps.ts';
import { NET_WORLD, proxiesOf, sessionAudit, SessionTrace } from './steps-net.ts';

export const jamAtRelock: Scenario = {
  name: 'jam-at-relock',
  expected:
    'camera jammed as the courier asks to lock → lock confirms but no fresh frame: never "completed", observation-lost to the owner, aborted with coverage < 1',
  world: NET_WORLD,
  async story({ world, expect }) {
    const net = proxiesOf(world);
    const { sys } = world;
    const lockId = world.creds.devices.lock.id;
    const { access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };

    // What the server hears from the lock, and what it shows of the session, from here on.
    let lockSaidLockedAt: number | null = null;
    const offLock = sys.events.subscribe((e) => {
      if (
        lockSaidLockedAt === null &&
        e.type === 'device' &&
        e.device.deviceId === lockId &&
        e.device.state?.kind === 'lock' &&
        e.device.state.bolt === 'locked'
      )
        lockSaidLockedAt = sys.clock.now();
    });
    const trace = new SessionTrace(world, () => sessionId);

    // The jammer hits the camera as the courier taps "lock".
    net.camera.set({ type: 'blackhole' });
    const jammedAt = sys.clock.now();
    const relock = await world.requestRelock(sessionId);
    const answer = relock.body as {
      confirmed?: boolean;
      message?: string;
      session?: { state?: string };
    };
    expect.that(
      relock.status === 200 && answer.confirmed === true && answer.session?.state === 'verifying',
      `the courier is told the lock locked and the camera is being checked (HTTP ${relock.status}, confirmed ${answer.confirmed}, ${answer.session?.state})`,
    );
    expect.that(
      !/locked and confirmed/i.test(answer.message ?? ''),
      `…not that all is confirmed (${JSON.stringify(answer.message)})`,
    );

    const alarm = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
    const detectionMs = alarm.atMs - alarm.sinceMs;
    const fromJamMs = alarm.atMs - jammedAt;
    expect.that(
      detectionMs <= 2_000,
      `observation-lost within 2 s of the last valid heartbeat (took ${detectionMs} ms)`,
    );
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    trace.stop();
    offLock();

    const shownLocked = trace.changes.find((c) => c.session.lockConfirmedAt !== null);
    expect.that(
      lockSaidLockedAt !== null && shownLocked !== undefined && lockSaidLockedAt <= shownLocked.at,
      `the session showed "locked" only after the lock said so (lock ${lockSaidLockedAt}, shown ${shownLocked?.at ?? 'never'})`,
    );
    expect.that(
      done.lockedAtByLock === world.home.lock.changedAt(),
      `the session records when the lock locked by its own clock (${done.lockedAtByLock} vs ${world.home.lock.changedAt()})`,
    );
    expect.that(
      !trace.changes.some((c) => c.session.state === 'completed'),
      `the session never shows completed (${[...new Set(trace.changes.map((c) => c.session.state))].join(' → ')})`,
    );
    expect.that(
      done.freshFrameAfterLockAt === null,
      'no fresh frame confirmed the door after the relock',
    );
    expect.that(
      done.state === 'aborted' && done.outcome?.code === 'session.observation-lost',
      `the session is aborted: locked, but unseen (${done.state}, ${done.outcome?.code ?? 'no reason'})`,
    );
    expect.that(
      !done.alarms.some((a) => a.type === 'lock-unconfirmed'),
      `no lock-unconfirmed: the lock did confirm (${done.alarms.map((a) => a.type).join(', ')})`,
    );
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    expect.that(done.coverage.gaps.length >= 1, `the gap is listed (${done.coverage.gaps.length})`);
    const gapsInAudit = (await sessionAudit(world, sessionId)).filter(
      (e) => e.kind === 'observation.gap',
    );
    expect.that(gapsInAudit.length >= 1, `the gap is in the audit log (${gapsInAudit.length})`);

    // The owner sees the alarm on the home's alarm list.
    const owner = await signInOwner(world);
    const list = await call(world, 'GET', `/api/homes/${world.creds.homeId}/alarms`, owner);
    const ownerSees = (
      (list.body.alarms as { sessionId: string; type: string }[] | undefined) ?? []
    )
      .filter((a) => a.sessionId === sessionId)
      .map((a) => a.type);
    expect.that(
      list.status === 200 && ownerSees.includes('observation-lost'),
      `the owner sees observation-lost (HTTP ${list.status}: ${ownerSees.join(', ') || 'none'})`,
    );

    return {
      session: done,
      extra: {
        detectionMs,
        fromJamMs,
        courierMessage: answer.message ?? null,
        lockConfirmedAfterJamMs:
          done.lockConfirmedAt !== null ? done.lockConfirmedAt - jammedAt : null,
        ownerSees,
      },
    };
  },
};

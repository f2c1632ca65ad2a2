/**
 * relock-jam — the 2018 variant: Wi-Fi is jammed just as the courier asks to relock, so the
 * door "sounds" locked in the app but stays open.
 *
 * Given a delivery in progress with the parcel dropped and the door closed, and a lock whose
 * own deadline (auto-relock) is 8 s after it opened,
 * when the lock's link is cut as the courier asks to lock,
 * then the courier is told "not confirmed", the owner gets `lock-unconfirmed`, the session
 * never says locked until the lock itself does; the lock's own deadline throws the bolt; when
 * its link returns, its report — with the time it locked by its own clock — completes the
 * session, and the audit log verifies.
 */
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';

const LOCK_OWN_DEADLINE_MS = 8_000;

export const relockJam: Scenario = {
  name: 'relock-jam',
  expected:
    'courier told "not confirmed", lock-unconfirmed alarm, no "locked" before the lock says so, lock relocks by its own deadline and the session records when',
  world: { maxOpenMs: LOCK_OWN_DEADLINE_MS },
  async story({ world, expect }) {
    const { access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };

    // The jammer hits the lock's link as the courier taps "lock".
    world.home.links.lock.cutLink();
    const relock = await world.requestRelock(sessionId);
    expect.that(
      relock.status === 200 && relock.body.confirmed === false,
      `the courier is told it is not confirmed (${JSON.stringify(relock.body.message)})`,
    );
    const midway = await world.session(sessionId);
    expect.that(
      midway.lockConfirmedAt === null && midway.state === 'relocking',
      `the session does not say locked (${midway.state})`,
    );

    const alarm = await world.waitForAlarm(sessionId, 'lock-unconfirmed', 8_000);
    // The lock's own deadline throws the bolt while it is still cut off.
    await world.waitFor(
      () => world.home.lock.bolt() === 'locked',
      LOCK_OWN_DEADLINE_MS + 4_000,
      'the lock relocks by its own deadline',
    );
    const lockedByLockAt = world.home.lock.changedAt();
    await sleep(300);
    const stillUnconfirmed = await world.session(sessionId);
    expect.that(
      stillUnconfirmed.lockConfirmedAt === null,
      'no "locked" before the lock itself reports it',
    );

    // The jamming stops; the lock reconnects and reports.
    const restoredAt = Date.now();
    world.home.links.lock.restoreLink();
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 15_000);
    expect.that(
      done.state === 'completed',
      `the session completes once the lock has spoken (was ${done.state}: ${done.outcome?.message ?? ''})`,
    );
    expect.that(
      done.lockConfirmedAt !== null && done.lockConfirmedAt >= restoredAt,
      'the confirmation came from the lock after its link returned',
    );
    expect.that(
      done.lockedAtByLock === lockedByLockAt,
      `the session records when the lock locked by its own clock (${done.lockedAtByLock} vs ${lockedByLockAt})`,
    );
    expect.that(
      done.alarms.some((a) => a.type === 'lock-unconfirmed'),
      'the lock-unconfirmed alarm stays on the session',
    );
    return {
      session: done,
      extra: {
        courierMessage: relock.body.message,
        alarmAfterRelockRequestMs: alarm.atMs - (midway.relockRequestedAt ?? alarm.atMs),
        lockedAtByLock: done.lockedAtByLock,
        lockedAtByLockRelMs:
          done.lockedAtByLock !== null ? done.lockedAtByLock - done.createdAt : null,
        lockConfirmedRelMs:
          done.lockConfirmedAt !== null ? done.lockConfirmedAt - done.createdAt : null,
      },
    };
  },
};

/**
 * lock-door-mismatch — the lock says locked while the door stands open: the bolt was thrown
 * into an open door (the courier pulled it open again as the motor ran, or it bounced off the
 * frame), so "locked" is not secure.
 *
 * Given a delivery in progress with the parcel dropped and the door closed,
 * when the courier asks to lock and the door swings open again before the bolt is thrown, so
 * the lock reports its bolt locked while the door sensor reports the door open,
 * then the session never completes and never calls the door secure: `lock-state-mismatch` is
 * raised (by the verifying deadline at the latest), the session ends aborted with `door.open`,
 * the owner's home view shows the door open beside the locked bolt, and the audit log holds
 * both devices' own reports and verifies.
 */
import type { Scenario } from '../scenario.ts';
import { SCENARIO_TIMING, sleep } from '../scenario-world.ts';
import { call, signInOwner } from './common-steps.ts';
import { courierInsideAndOut } from './steps-integrity.ts';

export const lockDoorMismatch: Scenario = {
  name: 'lock-door-mismatch',
  expected:
    'lock reports locked while the door sensor says open: lock-state-mismatch, never completed or shown secure, aborted door.open',
  async story({ world, expect }) {
    const { sys, creds } = world;
    const owner = await signInOwner(world);
    const { sessionId } = await courierInsideAndOut(world, expect);
    if (sessionId === null) return { session: null };

    // The moment the lock is told to lock, the door swings open again.
    let openedAt: number | null = null;
    const states: string[] = [];
    const off = sys.events.subscribe((e) => {
      if (e.type !== 'session' || e.session.id !== sessionId) return;
      states.push(e.session.state);
      if (e.session.state === 'relocking' && openedAt === null) {
        openedAt = sys.clock.now();
        world.home.doorSensor.open();
      }
    });
    let relock: Awaited<ReturnType<typeof world.requestRelock>> | null = null;
    let done: Awaited<ReturnType<typeof world.session>>;
    try {
      relock = await world.requestRelock(sessionId);
      await world
        .waitFor(() => world.home.lock.bolt() === 'locked', 3_000, 'the bolt is thrown')
        .catch(() => undefined);
      expect.that(
        world.home.lock.bolt() === 'locked' && world.home.doorSensor.position() === 'open',
        `the lock is locked while the door is open (${world.home.lock.bolt()}, ${world.home.doorSensor.position()})`,
      );
      done = await world.waitForState(
        sessionId,
        ['completed', 'aborted', 'refused'],
        SCENARIO_TIMING.session.verifyTimeoutMs + 5_000,
      );
    } finally {
      off();
    }
    const alarm = done.alarms.find((a) => a.type === 'lock-state-mismatch') ?? null;
    expect.that(alarm !== null, 'lock-state-mismatch is raised');
    // From the lock's own "locked" (the moment the two reports first disagree) to the alarm.
    const detectionMs =
      alarm !== null && done.lockConfirmedAt !== null ? alarm.atMs - done.lockConfirmedAt : null;
    expect.that(
      detectionMs !== null && detectionMs <= SCENARIO_TIMING.session.verifyTimeoutMs + 500,
      `by the verifying deadline at the latest (${detectionMs} ms after the lock said locked)`,
    );
    expect.that(
      !states.includes('completed') &&
        done.state === 'aborted' &&
        done.outcome?.code === 'door.open',
      `the session never completes: it ends ${done.state} ${done.outcome?.code ?? ''} (states: ${[...new Set(states)].join(' → ')})`,
    );
    expect.that(
      relock?.body.message !== 'Locked and confirmed. You can go to the next stop.',
      `the courier is not told it is done (${JSON.stringify(relock?.body.message)})`,
    );

    // What the owner sees: the bolt and the door, each as its device says, side by side.
    const home = await call(world, 'GET', `/api/homes/${creds.homeId}`, owner);
    const door = (
      home.body.doors as { lock: { value: string }; door: { value: string } }[] | undefined
    )?.[0];
    expect.that(
      door?.lock.value === 'locked' && door.door.value === 'open',
      `the owner’s home view shows the door open beside the locked bolt (${door?.lock.value}, ${door?.door.value})`,
    );
    const reports = (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).filter(
      (e) => e.kind === 'device.state',
    );
    const onRecord = {
      lockLocked: reports.some(
        (e) => e.actor.id === creds.devices.lock.id && e.data.bolt === 'locked' && !!e.deviceMac,
      ),
      doorOpen: reports.some(
        (e) =>
          e.actor.id === creds.devices.doorSensor.id && e.data.position === 'open' && !!e.deviceMac,
      ),
    };
    expect.that(
      onRecord.lockLocked && onRecord.doorOpen,
      `both devices’ own reports are on record (${JSON.stringify(onRecord)})`,
    );
    // The courier shuts the door properly; nothing rewrites what happened.
    world.home.doorSensor.close();
    await sleep(300);
    const after = await world.session(sessionId);
    expect.that(after.state === 'aborted', `the record stays aborted (${after.state})`);
    return {
      session: done,
      extra: {
        detectionMs,
        doorOpenedAfterLockRequestMs:
          openedAt !== null && done.relockRequestedAt !== null
            ? openedAt - done.relockRequestedAt
            : null,
        courierConfirmed: relock?.body.confirmed ?? null,
        courierMessage: relock?.body.message ?? null,
        ownerView: door ? { lock: door.lock.value, door: door.door.value } : null,
      },
    };
  },
};

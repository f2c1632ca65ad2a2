/**
 * camera-cut-after-open — the camera is jammed the moment the courier is inside with the door
 * open (unlike `deauth`, which cuts after the drop-off with the door already closed): the
 * courier could wander the home unseen, or walk out leaving the door unlocked.
 *
 * Given a delivery whose door opened, with the courier stepping in through the open door,
 * when the camera's link is jammed (both directions blackholed) and stays jammed,
 * then `observation-lost` is raised within the watchdog's bound of the last valid heartbeat,
 * no further unlock is allowed, the lock is not commanded while the door stands open (a bolt
 * thrown into an open door would stop it closing), and is commanded locked as soon as the door
 * closes and confirms it; the session ends aborted (the camera never saw the door after the
 * relock) with the gap listed (coverage below 1) and written to the audit log, which verifies.
 */
import type { Scenario } from '../scenario.ts';
import { SCENARIO_TIMING, sleep } from '../scenario-world.ts';
import { errorCode } from './common-steps.ts';
import {
  commandsSent,
  DoorWatch,
  lockedIntoOpenDoor,
  NET_WORLD,
  proxiesOf,
  sessionAudit,
} from './steps-net.ts';

/** How long the courier stays inside after the alarm, ms: long enough to see nothing is sent. */
const INSIDE_AFTER_ALARM_MS = 1_500;
/** "As soon as the door closes": the lock command must leave within this, ms. */
const COMMAND_AFTER_CLOSE_MS = 1_000;

export const cameraCutAfterOpen: Scenario = {
  name: 'camera-cut-after-open',
  expected:
    'camera jammed with the door open → observation-lost within 2 s, no lock into the open door, lock commanded as the door closes and confirmed, aborted with the gap on record',
  world: NET_WORLD,
  async story({ world, expect }) {
    const net = proxiesOf(world);
    const { sys } = world;
    const deliveryId = await world.newDelivery();
    const access = await world.requestAccess(deliveryId);
    const opened = access.body.session as { id?: string; state?: string } | undefined;
    expect.that(
      access.status === 200 && opened?.state === 'open',
      `the door opens for the courier (HTTP ${access.status} ${opened?.state ?? errorCode(access)})`,
    );
    if (access.status !== 200 || opened?.id === undefined) return { session: null };
    const sessionId = opened.id;

    // The courier opens the door and steps in; the camera goes dark.
    const watch = new DoorWatch(world);
    world.home.doorSensor.open();
    world.home.camera.setPerson(true);
    // The server knows the door stands open before the camera goes dark.
    await world.waitFor(
      async () => (await world.session(sessionId)).door === 'open',
      2_000,
      'the server hears the door open',
    );
    net.camera.set({ type: 'blackhole' });
    const jammedAt = sys.clock.now();

    const alarm = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
    const detectionMs = alarm.atMs - alarm.sinceMs;
    const fromJamMs = alarm.atMs - jammedAt;
    expect.that(
      detectionMs <= 2_000,
      `observation-lost within 2 s of the last valid heartbeat (took ${detectionMs} ms)`,
    );
    expect.that(
      fromJamMs <= SCENARIO_TIMING.watchdog.silenceMs + 750,
      `…and within ${SCENARIO_TIMING.watchdog.silenceMs + 750} ms of the jam (${fromJamMs} ms)`,
    );

    // The courier is still inside, the door open: nothing may be thrown into it.
    await sleep(INSIDE_AFTER_ALARM_MS);
    const whileOpen = await world.session(sessionId);
    expect.that(
      whileOpen.unlockBlocked !== null,
      `further unlocks are blocked (${whileOpen.unlockBlocked})`,
    );
    const sentWhileOpen = commandsSent(await sessionAudit(world, sessionId), 'lock');
    expect.that(
      sentWhileOpen.length === 0,
      `no lock command while the door stands open (${sentWhileOpen.length} sent)`,
    );
    expect.that(
      world.home.lock.bolt() === 'unlocked',
      `the bolt stays drawn while the door is open (${world.home.lock.bolt()})`,
    );

    // The courier walks out and pulls the door shut.
    world.home.camera.setPerson(false);
    world.home.doorSensor.close();
    const closedAt = sys.clock.now();
    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(relocked !== null, 'the lock was commanded locked and confirmed it');
    const lockCommands = commandsSent(await sessionAudit(world, sessionId), 'lock');
    const firstLock = lockCommands[0] ?? null;
    const commandAfterCloseMs = firstLock === null ? null : firstLock.at - closedAt;
    expect.that(
      commandAfterCloseMs !== null &&
        commandAfterCloseMs >= 0 &&
        commandAfterCloseMs <= COMMAND_AFTER_CLOSE_MS,
      `the lock is commanded as soon as the door closes (${commandAfterCloseMs} ms after)`,
    );
    const relockMs = relocked?.lockConfirmedAt != null ? relocked.lockConfirmedAt - closedAt : null;

    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    const samples = watch.stop();
    const intoOpen = lockedIntoOpenDoor(samples);
    expect.that(
      intoOpen.length === 0,
      `the bolt was never thrown into the open door (${intoOpen.length} looks)`,
    );
    expect.that(
      world.home.lock.bolt() === 'locked',
      `the bolt is thrown at the end (${world.home.lock.bolt()})`,
    );
    expect.that(
      done.state === 'aborted' && done.outcome?.code === 'session.observation-lost',
      `the session is aborted: the camera never saw the door after the relock (${done.state}, ${done.outcome?.code ?? 'no reason'})`,
    );
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    expect.that(done.coverage.gaps.length >= 1, `the gap is listed (${done.coverage.gaps.length})`);
    const gapsInAudit = (await sessionAudit(world, sessionId)).filter(
      (e) => e.kind === 'observation.gap',
    );
    expect.that(gapsInAudit.length >= 1, `the gap is in the audit log (${gapsInAudit.length})`);

    return {
      session: done,
      extra: {
        detectionMs,
        fromJamMs,
        commandAfterCloseMs,
        relockMs,
        lockCommandsWhileOpen: sentWhileOpen.length,
      },
    };
  },
};

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
import { errorCode } from './common-steps.ts';
import {
  courierLeavesAndDoorRelocks,
  courierStepsIn,
  expectAbortedUnseen,
  expectNothingThrownWhileInside,
  expectObservationLostAfterCut,
  NET_WORLD,
  proxiesOf,
  type CameraSees,
} from './steps-net.ts';

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
    // The in-process camera, behind its fault proxy: it sees the courier in the doorway.
    const cameraSees: CameraSees = (inside) => world.home.camera.setPerson(inside);

    // The courier opens the door and steps in; the camera goes dark: its proxy drops everything.
    const watch = await courierStepsIn(world, sessionId, cameraSees);
    net.camera.set({ type: 'blackhole' });
    const jammedAt = sys.clock.now();
    const { detectionMs, fromCutMs: fromJamMs } = await expectObservationLostAfterCut(
      world,
      expect,
      sessionId,
      jammedAt,
      'the jam',
    );

    // The courier is still inside, the door open: nothing may be thrown into it.
    const lockCommandsWhileOpen = await expectNothingThrownWhileInside(world, expect, sessionId);
    const whileOpen = await world.session(sessionId);
    expect.that(
      whileOpen.unlockBlocked !== null,
      `further unlocks are blocked (${whileOpen.unlockBlocked})`,
    );

    const { commandAfterCloseMs, relockMs } = await courierLeavesAndDoorRelocks(
      world,
      expect,
      sessionId,
      cameraSees,
    );
    const done = await expectAbortedUnseen(world, expect, sessionId, watch);

    return {
      session: done,
      extra: { detectionMs, fromJamMs, commandAfterCloseMs, relockMs, lockCommandsWhileOpen },
    };
  },
};

/**
 * courier-reuse — a courier tries to get back in with what they had: the visit that just ended
 * and the delivery it was for.
 *
 * Given ParcelCo's courier with an in-home delivery booked through the carrier API, who is let
 * in, leaves the parcel, and has the door locked and the visit completed on the lock's word
 * (asking to open a second time while the door is open is refused `session.wrong-state`),
 * when the courier, still at the doorstep and inside the window, asks to lock the finished visit
 * again, asks to open for the same delivery again (twice), and says "left at the door" for it,
 * then the finished visit answers 409 `session.finished`, the delivery 403 `grant.used` (each
 * recorded as `access.refused` naming the courier), "left at the door" 409
 * `delivery.wrong-state`; the lock never moves and gets no command, no second session starts,
 * the grant stays spent once, and the delivery stays `delivered`.
 */
import { DEMO_DOORSTEP } from '../../server/seed.ts';
import type { Scenario } from '../scenario.ts';
import { call, errorCode, signIn } from './common-steps.ts';
import {
  askAtDoor,
  bookDelivery,
  deliveryMark,
  expectRefusedUntouched,
  sessionOf,
  type RefusedAttempt,
} from './steps-courier.ts';

export const courierReuse: Scenario = {
  name: 'courier-reuse',
  expected:
    'a finished visit or its delivery reused → 409 session.finished / 403 grant.used / 409 delivery.wrong-state, audited, lock untouched, one session per grant',
  async story({ world, expect }) {
    const { carrier, courier } = world.creds;
    const sam = await signIn(world, courier.username, courier.password);
    const now = world.sys.clock.now();
    const deliveryId = await bookDelivery(world, carrier.apiKey, {
      courierId: courier.id,
      windowStart: now - 60_000,
      windowEnd: now + 60 * 60_000,
    });

    // ---- The visit ----
    const access = await askAtDoor(world, sam, deliveryId, DEMO_DOORSTEP);
    const opened = sessionOf(access);
    expect.that(
      access.status === 200 && opened?.state === 'open',
      `the door opens for the courier (HTTP ${access.status} ${errorCode(access) ?? opened?.state})`,
    );
    if (opened === null || opened.state !== 'open') return { session: null };
    world.home.doorSensor.open();
    world.home.camera.setPerson(true);
    const during = await askAtDoor(world, sam, deliveryId, DEMO_DOORSTEP);
    expect.that(
      during.status === 409 && errorCode(during) === 'session.wrong-state',
      `a second "open" while the door is open is refused (HTTP ${during.status} ${errorCode(during)})`,
    );
    await world.dropParcel();
    const relock = await call(world, 'POST', `/api/courier/sessions/${opened.id}/relock`, sam, {});
    expect.that(
      relock.status === 200 && relock.body.confirmed === true,
      `the courier's "lock" is confirmed by the lock (HTTP ${relock.status})`,
    );
    const done = await world.waitForState(opened.id, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(done.state === 'completed', `the visit completes (was ${done.state})`);
    const spent = await deliveryMark(world, deliveryId);
    expect.that(
      spent.status === 'delivered' && spent.grantUses === 1 && spent.sessions === 1,
      `the delivery is delivered, its grant spent once, one session (${JSON.stringify(spent)})`,
    );

    // ---- The courier tries again ----
    const attempts: RefusedAttempt[] = [];
    attempts.push(
      await expectRefusedUntouched(
        world,
        expect,
        {
          what: 'locking the finished visit again',
          status: 409,
          code: 'session.finished',
          audit: null,
          actorId: courier.id,
        },
        () => call(world, 'POST', `/api/courier/sessions/${opened.id}/relock`, sam, {}),
        deliveryId,
      ),
    );
    for (const n of [1, 2]) {
      attempts.push(
        await expectRefusedUntouched(
          world,
          expect,
          {
            what: `opening for the same delivery again (${n})`,
            status: 403,
            code: 'grant.used',
            audit: 'access.refused',
            actorId: courier.id,
          },
          () => askAtDoor(world, sam, deliveryId, DEMO_DOORSTEP),
          deliveryId,
        ),
      );
    }
    attempts.push(
      await expectRefusedUntouched(
        world,
        expect,
        {
          what: '"left at the door" for the delivered parcel',
          status: 409,
          code: 'delivery.wrong-state',
          audit: null,
          actorId: courier.id,
        },
        () => call(world, 'POST', `/api/courier/deliveries/${deliveryId}/left-at-door`, sam, {}),
        deliveryId,
      ),
    );
    const visit = await call(world, 'GET', `/api/courier/sessions/${opened.id}`, sam);
    const seen = (visit.body.session as { state?: string } | undefined)?.state;
    expect.that(
      visit.status === 200 && seen === 'completed',
      `the courier can still read their own finished visit, shown completed (HTTP ${visit.status} ${seen})`,
    );
    return {
      session: await world.session(opened.id),
      extra: {
        during: { status: during.status, code: errorCode(during) },
        attempts,
        detectionMs: Math.max(...attempts.map((a) => a.answeredMs)),
      },
    };
  },
};

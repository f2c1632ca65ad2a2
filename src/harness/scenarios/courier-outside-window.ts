/**
 * courier-outside-window — a courier tries the door before the delivery window opens, and
 * again after it closed.
 *
 * Given ParcelCo's courier at the doorstep (an accurate fix inside the geofence) with two
 * in-home deliveries booked through the carrier API: one whose window opens in 3 s and one
 * whose window closes in 3 s,
 * when the courier asks to open the first before its window opens, and the second once its
 * window has closed,
 * then each is refused 403 with the window's own code (`grant.not-yet-valid` naming
 * `validFrom`, `grant.expired` naming `validUntil`) and recorded as `access.refused` naming the
 * courier; the lock never moves and gets no command, no session starts, neither grant is
 * spent; the closed delivery leaves the courier's list; and once the first window opens, the
 * very same request from the same place opens the door and the visit completes — the window,
 * and nothing else, was the reason.
 */
import { DEMO_DOORSTEP } from '../../server/seed.ts';
import type { Scenario } from '../scenario.ts';
import { call, signIn } from './common-steps.ts';
import {
  askAtDoor,
  bookDelivery,
  courierVisit,
  expectRefusedUntouched,
  untilServerTime,
} from './steps-courier.ts';

/** How far ahead the first window opens, and the second closes, ms. */
const EDGE_MS = 3_000;

export const courierOutsideWindow: Scenario = {
  name: 'courier-outside-window',
  expected:
    'courier outside the delivery window → 403 grant.not-yet-valid / grant.expired, audited, lock untouched, grant unspent; the same request opens once the window opens',
  async story({ world, expect }) {
    const { carrier, courier } = world.creds;
    const sam = await signIn(world, courier.username, courier.password);
    const now = world.sys.clock.now();
    const early = {
      courierId: courier.id,
      windowStart: now + EDGE_MS,
      windowEnd: now + 60 * 60_000,
    };
    const late = {
      courierId: courier.id,
      windowStart: now - 60 * 60_000,
      windowEnd: now + EDGE_MS,
    };
    const earlyId = await bookDelivery(world, carrier.apiKey, early);
    const lateId = await bookDelivery(world, carrier.apiKey, late);

    // ---- Too early ----
    const before = await expectRefusedUntouched(
      world,
      expect,
      {
        what: 'asking before the window opens',
        status: 403,
        code: 'grant.not-yet-valid',
        audit: 'access.refused',
        actorId: courier.id,
      },
      async () => {
        const r = await askAtDoor(world, sam, earlyId, DEMO_DOORSTEP);
        const validFrom = (r.body.error as { detail?: { validFrom?: number } } | undefined)?.detail
          ?.validFrom;
        expect.that(
          validFrom === early.windowStart,
          `the refusal says when the window opens (${validFrom} vs ${early.windowStart})`,
        );
        return r;
      },
      earlyId,
    );
    const refusedBeforeOpenByMs = early.windowStart - world.sys.clock.now();

    // ---- Too late ----
    await untilServerTime(world, late.windowEnd);
    const after = await expectRefusedUntouched(
      world,
      expect,
      {
        what: 'asking after the window closed',
        status: 403,
        code: 'grant.expired',
        audit: 'access.refused',
        actorId: courier.id,
      },
      async () => {
        const r = await askAtDoor(world, sam, lateId, DEMO_DOORSTEP);
        const validUntil = (r.body.error as { detail?: { validUntil?: number } } | undefined)
          ?.detail?.validUntil;
        expect.that(
          validUntil === late.windowEnd,
          `the refusal says when the window closed (${validUntil} vs ${late.windowEnd})`,
        );
        return r;
      },
      lateId,
    );
    const refusedAfterCloseByMs = world.sys.clock.now() - late.windowEnd;
    const mine = await call(world, 'GET', '/api/courier/deliveries', sam);
    const listed = ((mine.body.deliveries as { id: string }[] | undefined) ?? []).map((d) => d.id);
    expect.that(
      mine.status === 200 && !listed.includes(lateId),
      `the closed delivery is no longer on the courier's list (HTTP ${mine.status}, listed: ${listed.includes(lateId)})`,
    );
    expect.that(listed.includes(earlyId), 'the coming delivery is on the courier’s list');

    // ---- The window opens: the same request, from the same place, now opens ----
    await untilServerTime(world, early.windowStart);
    const done = await courierVisit(world, expect, sam, earlyId, DEMO_DOORSTEP, 'the courier');
    const openedAfterWindowStartMs =
      done?.unlockedAt != null ? done.unlockedAt - early.windowStart : null;
    return {
      session: done,
      extra: {
        attempts: [before, after],
        refusedBeforeOpenByMs,
        refusedAfterCloseByMs,
        // The attack is detected when it is answered: the slower of the two refusals.
        detectionMs: Math.max(before.answeredMs, after.answeredMs),
        openedAfterWindowStartMs,
      },
    };
  },
};

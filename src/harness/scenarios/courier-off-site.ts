/**
 * courier-off-site — a courier asks to open the door from somewhere else, or with a fix too
 * vague to prove where they are.
 *
 * Given ParcelCo's courier with an in-home delivery due now (booked through the carrier API) at
 * the demo home (geofence: 80 m around the front door),
 * when the courier asks to open it from 2 km away, from 150 m away, from the doorstep with an
 * accuracy circle (90 m) that reaches outside the fence, from the doorstep with a 500 m fix,
 * with no position at all, and with two malformed fixes (a negative accuracy, a latitude of 91),
 * then the first three are refused 403 `presence.off-site`, the vague fix 403
 * `presence.inaccurate`, no position 403 `presence.missing`, each recorded as `access.refused`
 * naming the courier; the malformed fixes get 400 `request.invalid`; every time the lock does
 * not move and gets no command, no session starts and the grant is not spent; and then the
 * same courier at the doorstep with an accurate fix is let in and the visit completes — the
 * position, and nothing else, was the reason.
 *
 * What this cannot catch: the position is what the phone says. A courier (or a thief) who
 * spoofs the doorstep's coordinates passes this check; the camera's proof and the one session
 * per grant still hold (see stolen-token).
 */
import type { Position } from '../../core/geo.ts';
import { DEMO_DOORSTEP, DEMO_HOME } from '../../server/seed.ts';
import type { Scenario } from '../scenario.ts';
import { call, errorCode, signIn } from './common-steps.ts';
import {
  askAtDoor,
  bookDelivery,
  courierVisit,
  expectRefusedUntouched,
  type RefusedAttempt,
} from './steps-courier.ts';

/** Metres per degree of latitude, near enough for offsets of a few hundred metres. */
const M_PER_DEG_LAT = 111_320;

export const courierOffSite: Scenario = {
  name: 'courier-off-site',
  expected:
    'courier off-site or with a vague fix → 403 presence.off-site / presence.inaccurate / presence.missing, audited, lock untouched, grant unspent; the doorstep then opens',
  async story({ world, expect }) {
    const { carrier, courier } = world.creds;
    const sam = await signIn(world, courier.username, courier.password);
    const now = world.sys.clock.now();
    const deliveryId = await bookDelivery(world, carrier.apiKey, {
      courierId: courier.id,
      windowStart: now - 60_000,
      windowEnd: now + 60 * 60_000,
    });
    const fence = DEMO_HOME.geofence;

    const attempts: { what: string; position: Position | null; code: string }[] = [
      {
        what: 'from 2 km away (Alexanderplatz)',
        position: { lat: 52.5219, lon: 13.4132, accuracyM: 10 },
        code: 'presence.off-site',
      },
      {
        what: 'from 150 m away, accurately',
        position: { lat: fence.lat + 150 / M_PER_DEG_LAT, lon: fence.lon, accuracyM: 5 },
        code: 'presence.off-site',
      },
      {
        what: 'from the doorstep with a 90 m accuracy circle reaching outside the fence',
        position: { ...DEMO_DOORSTEP, accuracyM: 90 },
        code: 'presence.off-site',
      },
      {
        what: 'from the doorstep with a 500 m fix',
        position: { ...DEMO_DOORSTEP, accuracyM: 500 },
        code: 'presence.inaccurate',
      },
      { what: 'with no position', position: null, code: 'presence.missing' },
    ];
    const results: RefusedAttempt[] = [];
    for (const a of attempts) {
      results.push(
        await expectRefusedUntouched(
          world,
          expect,
          {
            what: `asking ${a.what}`,
            status: 403,
            code: a.code,
            audit: 'access.refused',
            actorId: courier.id,
          },
          () => askAtDoor(world, sam, deliveryId, a.position),
          deliveryId,
        ),
      );
    }

    // Malformed fixes never reach the decision: the schema refuses them, and nothing changes.
    for (const [what, position] of [
      ['a negative accuracy', { ...DEMO_DOORSTEP, accuracyM: -1 }],
      ['a latitude of 91°', { ...DEMO_DOORSTEP, lat: 91 }],
    ] as const) {
      results.push(
        await expectRefusedUntouched(
          world,
          expect,
          {
            what: `asking with ${what}`,
            status: 400,
            code: 'request.invalid',
            audit: null,
            actorId: courier.id,
          },
          () =>
            call(world, 'POST', `/api/courier/deliveries/${deliveryId}/access`, sam, { position }),
          deliveryId,
        ),
      );
    }

    // ---- At the doorstep, accurately: the same delivery opens ----
    const done = await courierVisit(world, expect, sam, deliveryId, DEMO_DOORSTEP, 'the courier');
    const requested = done
      ? (await world.sys.store.audit.entriesForSubject(`session:${done.id}`)).find(
          (e) => e.kind === 'session.requested',
        )
      : undefined;
    expect.that(
      JSON.stringify(requested?.data.position) === JSON.stringify(DEMO_DOORSTEP),
      `the position the door opened on is on record (${JSON.stringify(requested?.data.position)})`,
    );
    const again = await askAtDoor(world, sam, deliveryId, DEMO_DOORSTEP);
    expect.that(
      again.status === 403 && errorCode(again) === 'grant.used',
      `after the visit the delivery cannot open the door again (HTTP ${again.status} ${errorCode(again)})`,
    );
    return {
      session: done,
      extra: {
        attempts: results,
        refused: results.filter((r) => r.status === 403 || r.status === 400).length,
        audited: results.filter((r) => r.audited).length,
        detectionMs: Math.max(...results.map((r) => r.answeredMs)),
      },
    };
  },
};

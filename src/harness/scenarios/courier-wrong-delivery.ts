/**
 * courier-wrong-delivery — a courier uses their own sign-in on deliveries that are not theirs.
 *
 * Given the demo home with ParcelCo's courier Sam, a second ParcelCo courier Robin and a courier
 * Riley of another carrier (Rival Freight, which the owner allowed in), each invited by their
 * carrier's API; Robin with a delivery at the demo home and one at another home on the same
 * server (Elm Road 3), and Riley with one at the demo home — all due now,
 * when Sam, standing at the right doorstep each time, asks to open each of those three
 * deliveries and an id that exists nowhere, says "left at the door" for Robin's, and — while
 * Robin's visit is under way — reads Robin's visit and asks to lock it,
 * then every one of Sam's requests answers 404 exactly as the unknown id does (same status, code
 * and message: no existence oracle); none of those deliveries is on Sam's list; each reach for
 * someone else's existing delivery or visit is on record as `auth.object-denied` naming Sam;
 * the lock never moves and gets no command for Sam, no session starts, no grant is spent,
 * Robin's visit is left alone (still open, the bolt still drawn for him); and Robin's own
 * delivery then completes normally.
 */
import { randomUUID } from 'node:crypto';
import type { Position } from '../../core/geo.ts';
import { DEMO_DOORSTEP, DEMO_HOME } from '../../server/seed.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import type { Scenario } from '../scenario.ts';
import { call, errorCode, signIn, signInOwner, type CallAnswer } from './common-steps.ts';
import {
  askAtDoor,
  auditHead,
  auditSince,
  bookDelivery,
  deliveryMark,
  inviteCourier,
  lockCommands,
  lockMark,
  lockUntouched,
  sessionOf,
} from './steps-courier.ts';

/** Another home on the same server, with its own door (its lock is never online here). */
const ELM = {
  id: 'home-elm-3',
  doorId: 'elm-front-door',
  lockId: 'elm-front-lock',
  doorstep: { lat: 52.5409, lon: 13.4101, accuracyM: 8 } satisfies Position,
} as const;

const RIVAL = { id: 'carrier-rival', name: 'Rival Freight' } as const;

/** How an answer looks to the caller: what must not differ between "not yours" and "none". */
function face(a: CallAnswer): string {
  const e = a.body.error as { code?: string; message?: string } | undefined;
  return `${a.status} ${e?.code ?? '-'} ${e?.message ?? '-'}`;
}

interface Probe {
  readonly what: string;
  readonly status: number;
  readonly code: string | null;
  readonly sameAsUnknown: boolean;
  readonly audited: boolean;
  /** From sending the request to its answer, ms. */
  readonly answeredMs: number;
}

export const courierWrongDelivery: Scenario = {
  name: 'courier-wrong-delivery',
  expected:
    "courier on another courier's, carrier's or home's delivery or visit → 404 exactly as an unknown id, audited, lock untouched, nothing spent; the owner's delivery then completes",
  async story({ world, expect }) {
    const { sys, creds } = world;
    const { homeId, carrier } = creds;
    const sam = await signIn(world, creds.courier.username, creds.courier.password);

    // ---- Given: another carrier, two more couriers, another home ----
    await sys.store.principals.createCarrier(RIVAL);
    const { key: rivalKey } = await sys.auth.createApiKey(RIVAL.id);
    const owner = await signInOwner(world);
    const allowed = await call(world, 'PUT', `/api/homes/${homeId}/carriers/${RIVAL.id}`, owner, {
      decision: 'allowed',
    });
    if (allowed.status !== 200) throw new Error(`the owner could not allow ${RIVAL.name}`);
    await sys.store.homes.createHome({
      ...DEMO_HOME,
      id: ELM.id,
      name: 'Elm Road 3',
      address: 'Elm Road 3, 10405 Berlin',
      geofence: { lat: ELM.doorstep.lat, lon: ELM.doorstep.lon, radiusM: 80 },
    });
    await sys.provisionDevice({ id: ELM.lockId, homeId: ELM.id, kind: 'lock', name: 'Elm lock' });
    await sys.store.homes.createDoor({
      id: ELM.doorId,
      homeId: ELM.id,
      name: 'Front door',
      lockDeviceId: ELM.lockId,
      doorSensorDeviceId: null,
      cameraDeviceIds: [],
    });
    await sys.store.homes.allowCarrier(ELM.id, carrier.id, sys.clock.now());
    const robin = await inviteCourier(world, carrier.apiKey, 'Robin');
    const riley = await inviteCourier(world, rivalKey, 'Riley');

    const now = sys.clock.now();
    const window = { windowStart: now - 60_000, windowEnd: now + 60 * 60_000 };
    const robinHere = await bookDelivery(world, carrier.apiKey, { courierId: robin.id, ...window });
    const robinElm = await bookDelivery(world, carrier.apiKey, {
      courierId: robin.id,
      homeId: ELM.id,
      ...window,
    });
    const rileyHere = await bookDelivery(world, rivalKey, { courierId: riley.id, ...window });
    const foreign = [robinHere, robinElm, rileyHere];
    const marks = async () => Promise.all(foreign.map((id) => deliveryMark(world, id)));
    const before = await marks();

    // ---- When: Sam reaches for each ----
    const probes: Probe[] = [];
    const probe = async (
      what: string,
      object: string,
      send: () => Promise<CallAnswer>,
      unknown: () => Promise<CallAnswer>,
      status: number,
      code: string,
    ): Promise<void> => {
      const lock = lockMark(world);
      const head = await auditHead(world);
      const sent = Date.now();
      const r = await send();
      const answeredMs = Date.now() - sent;
      const fresh = await auditSince(world, head);
      const u = await unknown();
      const sameAsUnknown = face(r) === face(u);
      expect.that(
        r.status === status && errorCode(r) === code,
        `${what} answers ${status} ${code} (HTTP ${r.status} ${errorCode(r)})`,
      );
      expect.that(
        sameAsUnknown,
        `${what} answers exactly as an unknown id does ("${face(r)}" vs "${face(u)}")`,
      );
      const audited = fresh.some(
        (e) =>
          e.kind === 'auth.object-denied' &&
          e.actor.id === creds.courier.id &&
          e.subject === object,
      );
      expect.that(
        audited,
        `${what} is on record as auth.object-denied naming the courier (saw: ${
          fresh.map((e) => `${e.kind} ${e.subject}`).join(', ') || 'nothing'
        })`,
      );
      const commands = lockCommands(world, fresh);
      expect.that(
        lockUntouched(world, lock) && commands.length === 0,
        `${what}: the lock did not move and got no command (${commands.length} commands)`,
      );
      probes.push({
        what,
        status: r.status,
        code: errorCode(r),
        sameAsUnknown,
        audited,
        answeredMs,
      });
    };
    const nobody = randomUUID();
    const askFor = (id: string, at: Position) => () => askAtDoor(world, sam, id, at);
    await probe(
      "opening Robin's delivery (same carrier, same home)",
      `delivery:${robinHere}`,
      askFor(robinHere, DEMO_DOORSTEP),
      askFor(nobody, DEMO_DOORSTEP),
      404,
      'delivery.not-found',
    );
    await probe(
      "opening Riley's delivery (another carrier)",
      `delivery:${rileyHere}`,
      askFor(rileyHere, DEMO_DOORSTEP),
      askFor(nobody, DEMO_DOORSTEP),
      404,
      'delivery.not-found',
    );
    await probe(
      "opening Robin's delivery at another home",
      `delivery:${robinElm}`,
      askFor(robinElm, ELM.doorstep),
      askFor(nobody, ELM.doorstep),
      404,
      'delivery.not-found',
    );
    const leftAt = (id: string) => () =>
      call(world, 'POST', `/api/courier/deliveries/${id}/left-at-door`, sam, {});
    await probe(
      `"left at the door" for Robin's delivery`,
      `delivery:${robinHere}`,
      leftAt(robinHere),
      leftAt(nobody),
      404,
      'delivery.not-found',
    );
    const mine = await call(world, 'GET', '/api/courier/deliveries', sam);
    const listed = ((mine.body.deliveries as { id: string }[] | undefined) ?? []).map((d) => d.id);
    expect.that(
      mine.status === 200 && foreign.every((id) => !listed.includes(id)),
      `Sam's list shows none of the others' deliveries (HTTP ${mine.status}, ${listed.length} listed)`,
    );
    const after = await marks();
    expect.that(
      JSON.stringify(after) === JSON.stringify(before),
      `none of the others' deliveries changed (${JSON.stringify(before)} → ${JSON.stringify(after)})`,
    );

    // ---- Robin's visit is under way; Sam reaches for it ----
    const open = await askAtDoor(world, robin.token, robinHere, DEMO_DOORSTEP);
    const opened = sessionOf(open);
    expect.that(
      open.status === 200 && opened?.state === 'open',
      `the door opens for Robin on his own delivery (HTTP ${open.status} ${errorCode(open) ?? opened?.state})`,
    );
    let done: SessionView | null = null;
    if (opened !== null && opened.state === 'open') {
      const other = opened.id;
      await probe(
        "reading Robin's visit",
        `session:${other}`,
        () => call(world, 'GET', `/api/courier/sessions/${other}`, sam),
        () => call(world, 'GET', `/api/courier/sessions/${randomUUID()}`, sam),
        404,
        'session.not-found',
      );
      await probe(
        "locking Robin's visit",
        `session:${other}`,
        () => call(world, 'POST', `/api/courier/sessions/${other}/relock`, sam, {}),
        () => call(world, 'POST', `/api/courier/sessions/${randomUUID()}/relock`, sam, {}),
        404,
        'session.not-found',
      );
      const still = await world.session(other);
      expect.that(
        still.state === 'open' && world.home.lock.bolt() === 'unlocked',
        `Robin's visit is left alone (${still.state}, bolt ${world.home.lock.bolt()})`,
      );
      await world.dropParcel();
      const relock = await call(
        world,
        'POST',
        `/api/courier/sessions/${other}/relock`,
        robin.token,
        {},
      );
      expect.that(
        relock.status === 200 && relock.body.confirmed === true,
        `Robin's own "lock" is confirmed (HTTP ${relock.status})`,
      );
      done = await world.waitForState(other, ['completed', 'aborted', 'refused'], 10_000);
      expect.that(done.state === 'completed', `Robin's visit completes (was ${done.state})`);
      expect.that(world.home.lock.bolt() === 'locked', 'the door is locked after Robin’s visit');
    }
    const rileyLeft = await deliveryMark(world, rileyHere);
    expect.that(
      rileyLeft.sessions === 0 && rileyLeft.grantUses === 0 && rileyLeft.status === 'scheduled',
      `Riley's delivery is untouched (${JSON.stringify(rileyLeft)})`,
    );
    return {
      session: done,
      extra: {
        probes,
        answeredAsUnknown: probes.filter((p) => p.sameAsUnknown).length,
        audited: probes.filter((p) => p.audited).length,
        detectionMs: Math.max(...probes.map((p) => p.answeredMs)),
      },
    };
  },
};

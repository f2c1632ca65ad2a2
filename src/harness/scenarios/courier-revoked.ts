/**
 * courier-revoked — a courier's access is taken away during their visit: first by their
 * carrier, then by the home's owner.
 *
 * Given ParcelCo's courier Sam and a second ParcelCo courier Robin (invited through the carrier
 * API), each with two in-home deliveries at the demo home booked through the carrier API,
 * when ParcelCo revokes Sam through its API (`POST /api/carrier/couriers/:id/revoke`) while the
 * door is unlocked for him and already closed behind him, and later the owner blocks Robin
 * through the owner API (`POST /api/homes/:homeId/couriers/:id/block`) while Robin is inside
 * with the door open,
 * then each visit is ended at once and the door locked on the lock's own word: for Sam within
 * 2 s of the revocation; for Robin not while the door stands open (a bolt thrown into an open
 * door cannot secure it) but within 2 s of the door closing; each session ends `aborted`
 * (`grant.revoked`), never `completed`. Sam's next requests (his other delivery, his list,
 * "lock") are refused `401 auth.required` and his password no longer signs in; ParcelCo's answer
 * lists both his grants, revoked. Robin is still signed in (the block holds at this home) but
 * his next requests at this door, for either delivery, are refused `403 courier.blocked`,
 * recorded as `access.refused`; after every refusal the lock has not moved and got no command.
 * The revocation and the block are on record naming the carrier's key and the owner.
 */
import { DEMO_DOORSTEP } from '../../server/seed.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import type { Expectations, Scenario } from '../scenario.ts';
import { sleep, type ScenarioWorld } from '../scenario-world.ts';
import { call, errorCode, signIn, signInOwner, type CallAnswer } from './common-steps.ts';
import {
  askAtDoor,
  auditHead,
  auditSince,
  bookDelivery,
  expectRefusedUntouched,
  inviteCourier,
  lockCommands,
  sessionOf,
  type RefusedAttempt,
} from './steps-courier.ts';

/** How a visit under way ended after its courier's access was taken away. */
interface Ended {
  readonly session: SessionView | null;
  /**
   * From the moment the door could be locked to the lock's own "locked", ms (server clock): the
   * revoking request when the door was closed, the door closing when it was open.
   */
  readonly relockMs: number | null;
  readonly answer: CallAnswer;
}

/** Where the courier is when their access is taken away. */
type Whereabouts = 'out, door closed' | 'inside, door open';

/**
 * Opens the door for `token`'s delivery, then `takeAway()`s their access while the courier is
 * `where`, and checks the visit ends at once with the door locked on the lock's word — with the
 * door open, only once it is closed: never a bolt thrown into an open door.
 */
async function visitEndedBy(
  world: ScenarioWorld,
  expect: Expectations,
  who: string,
  token: string,
  deliveryId: string,
  where: Whereabouts,
  takeAway: () => Promise<CallAnswer>,
): Promise<Ended | null> {
  const access = await askAtDoor(world, token, deliveryId, DEMO_DOORSTEP);
  const opened = sessionOf(access);
  expect.that(
    access.status === 200 && opened?.state === 'open',
    `the door opens for ${who} (HTTP ${access.status} ${errorCode(access) ?? opened?.state})`,
  );
  if (opened === null || opened.state !== 'open') return null;
  if (where === 'out, door closed') {
    // In and out again, the door closed behind them: nothing stops the bolt.
    await world.dropParcel();
  } else {
    world.home.doorSensor.open();
    world.home.camera.setPerson(true);
    await sleep(300);
  }
  expect.that(world.home.lock.bolt() === 'unlocked', `the bolt is still drawn for ${who}`);
  let from = world.sys.clock.now();
  const head = await auditHead(world);
  const answer = await takeAway();
  if (where === 'inside, door open') {
    // The door cannot be locked while it stands open: the bolt would go into thin air and the
    // door could not shut on it. It must wait for the door. (1 s: long enough for a command and
    // the lock's motor.)
    await sleep(1_000);
    const intoOpenDoor = lockCommands(world, await auditSince(world, head)).filter(
      (c) => c.data.action === 'lock',
    );
    expect.that(
      world.home.lock.bolt() === 'unlocked' && intoOpenDoor.length === 0,
      `with ${who} inside and the door open, the bolt is not thrown into the open door (bolt ${world.home.lock.bolt()}, ${intoOpenDoor.length} lock commands)`,
    );
    world.home.camera.setPerson(false);
    from = world.sys.clock.now();
    world.home.doorSensor.close();
  }
  const relocked = await world.relockConfirmed(opened.id, 5_000);
  expect.that(
    relocked !== null,
    `${who}'s visit is ended: the lock was commanded locked and confirmed it`,
  );
  const relockMs = relocked?.lockConfirmedAt != null ? relocked.lockConfirmedAt - from : null;
  expect.that(
    relockMs !== null && relockMs >= 0 && relockMs <= 2_000,
    `the bolt is thrown within 2 s of ${
      where === 'out, door closed' ? 'the revocation' : 'the door closing'
    }, not before (${relockMs} ms)`,
  );
  expect.that(
    world.home.lock.bolt() === 'locked',
    `the bolt is thrown after ${who}'s access was taken away (${world.home.lock.bolt()})`,
  );
  const done = await world.waitForState(opened.id, ['completed', 'aborted', 'refused'], 10_000);
  expect.that(
    done.state === 'aborted' && done.outcome?.code === 'grant.revoked',
    `${who}'s visit ends aborted, grant revoked, not completed (${done.state} ${done.outcome?.code ?? ''})`,
  );
  return { session: done, relockMs, answer };
}

export const courierRevoked: Scenario = {
  name: 'courier-revoked',
  expected:
    'courier revoked by the carrier / blocked by the owner mid-visit → visit ended, door relocked at once (once closed, never into an open door); next request 401 / 403 courier.blocked, lock untouched',
  async story({ world, expect }) {
    const { creds } = world;
    const { homeId, carrier, courier } = creds;
    const sam = await signIn(world, courier.username, courier.password);
    const robin = await inviteCourier(world, carrier.apiKey, 'Robin');
    const owner = await signInOwner(world);
    const now = world.sys.clock.now();
    const window = { windowStart: now - 60_000, windowEnd: now + 60 * 60_000 };
    const book = (courierId: string) =>
      bookDelivery(world, carrier.apiKey, { courierId, ...window });
    const [samNow, samNext, robinNow, robinNext] = [
      await book(courier.id),
      await book(courier.id),
      await book(robin.id),
      await book(robin.id),
    ];
    const attempts: RefusedAttempt[] = [];

    // ---- The carrier revokes Sam during his visit ----
    let head = await auditHead(world);
    const revoked = await visitEndedBy(world, expect, 'Sam', sam, samNow, 'out, door closed', () =>
      call(world, 'POST', `/api/carrier/couriers/${courier.id}/revoke`, carrier.apiKey, {}),
    );
    if (revoked) {
      const grants = (revoked.answer.body.revokedGrants as string[] | undefined) ?? [];
      const open = await Promise.all(
        [samNow, samNext].map((id) => world.sys.store.deliveries.getGrantForDelivery(id)),
      );
      expect.that(
        revoked.answer.status === 200 && open.every((g) => g !== null && grants.includes(g.id)),
        `the carrier's revocation answers with the grants of both of Sam's deliveries (HTTP ${revoked.answer.status}, ${grants.length} grants)`,
      );
      expect.that(
        open.every((g) => g?.revokedAt != null),
        'both grants are revoked in the store',
      );
    }
    const samRecord = (await auditSince(world, head)).find(
      (e) => e.kind === 'courier.revoked' && e.data.courierId === courier.id,
    );
    expect.that(
      samRecord !== undefined && samRecord.actor.id.startsWith('apikey:'),
      `the revocation is on record naming the carrier's key (${samRecord?.actor.id ?? 'none'})`,
    );
    for (const [what, send] of [
      ['Sam asks to open his other delivery', () => askAtDoor(world, sam, samNext, DEMO_DOORSTEP)],
      ['Sam reads his list', () => call(world, 'GET', '/api/courier/deliveries', sam)],
      [
        'Sam asks to lock his ended visit',
        () =>
          call(
            world,
            'POST',
            `/api/courier/sessions/${revoked?.session?.id ?? 'none'}/relock`,
            sam,
            {},
          ),
      ],
    ] as const) {
      attempts.push(
        await expectRefusedUntouched(
          world,
          expect,
          { what, status: 401, code: 'auth.required', audit: null, actorId: courier.id },
          send,
          samNext,
        ),
      );
    }
    const again = await call(world, 'POST', '/api/auth/sign-in', null, {
      username: courier.username,
      password: courier.password,
    });
    expect.that(
      again.status === 401,
      `Sam's password no longer signs in (HTTP ${again.status} ${errorCode(again)})`,
    );

    // ---- The owner blocks Robin during his visit ----
    head = await auditHead(world);
    const blocked = await visitEndedBy(
      world,
      expect,
      'Robin',
      robin.token,
      robinNow,
      'inside, door open',
      () => call(world, 'POST', `/api/homes/${homeId}/couriers/${robin.id}/block`, owner, {}),
    );
    if (blocked) {
      const by = (blocked.answer.body.courier as { blocked?: { by?: { id?: string } } } | undefined)
        ?.blocked?.by?.id;
      expect.that(
        blocked.answer.status === 200 && by !== undefined,
        `the owner's block answers with who blocked him (HTTP ${blocked.answer.status}, by ${by})`,
      );
    }
    const robinRecord = (await auditSince(world, head)).find(
      (e) => e.kind === 'courier.blocked' && e.data.courierId === robin.id,
    );
    const me = await call(world, 'GET', '/api/me', owner);
    const ownerId = (me.body.principal as { id?: string } | undefined)?.id;
    expect.that(
      robinRecord !== undefined && ownerId !== undefined && robinRecord.actor.id === ownerId,
      `the block is on record naming the owner (${robinRecord?.actor.id ?? 'none'} vs ${ownerId})`,
    );
    for (const [what, id] of [
      ['Robin asks to open the same delivery again', robinNow],
      ['Robin asks to open his other delivery', robinNext],
    ] as const) {
      attempts.push(
        await expectRefusedUntouched(
          world,
          expect,
          {
            what,
            status: 403,
            code: 'courier.blocked',
            audit: 'access.refused',
            actorId: robin.id,
          },
          () => askAtDoor(world, robin.token, id, DEMO_DOORSTEP),
          id,
        ),
      );
    }
    const robinList = await call(world, 'GET', '/api/courier/deliveries', robin.token);
    expect.that(
      robinList.status === 200,
      `Robin is still signed in: the block holds at this home only (HTTP ${robinList.status})`,
    );

    return {
      session: revoked?.session ?? null,
      extra: {
        revokedRelockMs: revoked?.relockMs ?? null,
        blockedRelockMs: blocked?.relockMs ?? null,
        // Taking access away reaches the door when the bolt is thrown.
        detectionMs:
          revoked?.relockMs != null && blocked?.relockMs != null
            ? Math.max(revoked.relockMs, blocked.relockMs)
            : null,
        robinSession: blocked?.session?.id ?? null,
        robinOutcome: blocked?.session?.state ?? null,
        attempts,
      },
    };
  },
};

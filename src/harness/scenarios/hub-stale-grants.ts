/**
 * hub-stale-grants — the home hub has not had a current grant list for longer than its bound.
 *
 * Given the demo door bridged by a home hub that lets couriers in only on a grant list at most
 * 10 s old, and the owner's own keypad code written to the lock,
 * when the control plane stops sending lists (its publisher paused: from the hub's side the
 * same as a list channel that is blocked or a control plane whose signing broke, while
 * commands still arrive) and the hub's newest list grows older than the bound,
 * then a courier's unlock is refused by the hub itself (`grants.stale`): the bolt never moves,
 * the courier is told plainly at once (`door.hub-list-stale`), and the refusal is in the hub's
 * log and so in the control plane's audit log; the household's keypad code still opens the
 * door; and once lists flow again, the next courier is let in.
 */
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { call, errorCode, signInOwner } from './common-steps.ts';
import { auditedHubEvents, eventually, withHubHome } from './hub-home.ts';

/** The hub's bound: the lowest its config takes. */
const MAX_AGE_MS = 10_000;
const OWNER_SLOT = 2;

export const hubStaleGrants: Scenario = {
  name: 'hub-stale-grants',
  expected:
    'hub grant list older than its bound: a courier unlock is refused by the hub (door stays locked); the household PIN still opens; fresh lists let the next courier in',
  story: ({ world, expect }) =>
    withHubHome(world, { grantsMaxAgeMs: MAX_AGE_MS }, async (home) => {
      const { homeId } = world.creds;
      const lockId = world.creds.devices.lock.id;
      const book = home.hub.grantBook(lockId);
      await eventually(() => book.isFresh(Date.now()), 5_000);
      expect.that(book.isFresh(Date.now()), 'the hub starts with a current, verified list');

      // ---- The owner's own code is on the lock ----
      const owner = await signInOwner(world);
      const me = await call(world, 'GET', '/api/me', owner);
      const ownerId = (me.body.principal as { id?: string } | undefined)?.id ?? '';
      const put = await call(
        world,
        'PUT',
        `/api/homes/${homeId}/locks/${lockId}/pins/${OWNER_SLOT}`,
        owner,
        { principalId: ownerId, name: 'Alex' },
      );
      const code = typeof put.body.code === 'string' ? put.body.code : null;
      expect.that(
        put.status === 200 && code !== null,
        `the owner sets a code (HTTP ${put.status})`,
      );
      await world.waitFor(
        async () =>
          (
            (await call(world, 'GET', `/api/homes/${homeId}/locks/${lockId}/pins`, owner)).body
              .slots as { slot: number; sync: string }[] | undefined
          )?.find((s) => s.slot === OWNER_SLOT)?.sync === 'confirmed',
        10_000,
        'the owner’s code confirmed on the lock',
      );

      // ---- Lists stop; the hub's grows old ----
      world.sys.grantLists.pause();
      const deliveryId = await world.newDelivery();
      await eventually(() => !book.isFresh(Date.now()), MAX_AGE_MS + 5_000);
      const ageS = Math.round((book.ageMs(Date.now()) ?? 0) / 1000);
      expect.that(!book.isFresh(Date.now()), `the hub's list is past its bound (${ageS} s old)`);

      // ---- A courier asks to open ----
      const askedAt = Date.now();
      const access = await world.requestAccess(deliveryId);
      const answeredMs = Date.now() - askedAt;
      expect.that(
        access.status === 409 && errorCode(access) === 'door.hub-list-stale',
        `the courier is refused: ${access.status} ${errorCode(access)}`,
      );
      expect.that(answeredMs < 5_000, `and told at once (${answeredMs} ms)`);
      expect.that(
        home.lock.actualBolt() === 'locked',
        `the bolt never moved (${home.lock.actualBolt()})`,
      );
      const logged = await eventually(
        async () =>
          (await auditedHubEvents(world.sys)).some(
            (e) =>
              e.name === 'hub.observed' &&
              typeof e.detail.why === 'string' &&
              e.detail.why.includes('courier unlock refused'),
          ),
        10_000,
      );
      expect.that(logged, 'the hub logged its refusal, and it reached the audit log');

      // ---- The household's code still opens ----
      const keypad = code === null ? 'ignored' : home.lock.enterCode(code);
      const opened = await eventually(() => home.lock.actualBolt() === 'unlocked', 3_000);
      expect.that(
        keypad === 'unlocked' && opened,
        `the owner's code opens the door on the stale list (${keypad})`,
      );
      // The door relocks by itself (the hub's deadline for keypad entries) or is locked here.
      await home.lock.lock();
      await eventually(() => home.lock.actualBolt() === 'locked', 3_000);

      // ---- Lists flow again: the next courier is let in ----
      await world.sys.grantLists.resume();
      await eventually(() => book.isFresh(Date.now()), 5_000);
      expect.that(book.isFresh(Date.now()), 'a current list reaches the hub');
      const next = await world.newDelivery();
      const again = await world.requestAccess(next);
      const sessionId = (again.body.session as { id?: string } | undefined)?.id ?? null;
      expect.that(again.status === 200, `the next courier is let in (HTTP ${again.status})`);
      if (sessionId !== null) {
        // The courier walks in, leaves the parcel, walks out; the door closes behind.
        home.door.open();
        await sleep(800);
        home.door.close();
        await sleep(300);
        await world.requestRelock(sessionId);
        const relocked = await world.relockConfirmed(sessionId, 10_000);
        expect.that(relocked !== null, 'and the door is relocked behind them');
        const done = await world.waitForState(sessionId, ['completed'], 10_000);
        expect.that(done.state === 'completed', `the visit completes (${done.state})`);
      }
      return {
        session: sessionId === null ? null : await world.session(sessionId),
        extra: {
          staleListAgeS: ageS,
          refusedInMs: answeredMs,
          refusal: errorCode(access),
          hubEvents: (await auditedHubEvents(world.sys)).map((e) => e.name),
        },
      };
    }),
};

/**
 * hub-revoked-pin — the owner takes a guest's access back while the home hub is cut off from
 * Threshold, and the guest types their keypad code anyway.
 *
 * What Threshold claims (docs/access.md, "Offline: the home hub's grant list"): behind a hub, a
 * guest's code is on the lock while the control plane's last write allows it (a window reaching
 * at most a guest lease ahead) *or* the hub's signed grant list does (the guest's hours up to the
 * list's horizon). So offline a revoked guest's code keeps opening until the later of the two,
 * and not after; when the hub is back, the new list (without the code) and the control plane's
 * `pin.clear` reach it at once.
 *
 * The production bounds are an hour (lease) and 24 h (horizon; `--offline-grants-hours`, at
 * least 1 h). The system here runs on the real clock, so the story runs its own PinSync with a
 * 4-second guest lease (as `revoke-offline` does) and its own GrantLists whose lists reach
 * 8 s past now: built by the same code on the system's store, gateway, grant key, clock and
 * audit log, with an 8-second horizon (the class takes down to a second; `threshold serve`
 * takes at least an hour). The system's own are stopped and paused meanwhile.
 *
 * Given the demo door bridged by a hub, and two guests with "any time" grants and keypad codes
 * on the lock, listed in the hub's grant list,
 * when the hub is cut off and the owner revokes the first guest through the API,
 * then the first guest's code still opens the door just before the bound (the later of the
 * last write's window and the last list's horizon; the hub cannot know), that bound is at most
 * 8 s (the horizon) after the cut, and just after it the code is refused with the door staying
 * locked; once the hub is back, a list without the code and the clear are taken at once.
 * And when the hub is cut off again and the second guest revoked, their code opens offline
 * until the link returns, and is off the keypad at once (within 1 s) of its return.
 */
import type { PinSync } from '../../server/pin-sync.ts';
import { GrantLists } from '../../server/grant-lists.ts';
import type { Scenario } from '../scenario.ts';
import { sleep, type ScenarioWorld } from '../scenario-world.ts';
import {
  call,
  errorCode,
  inviteGuest,
  shortLeasePins,
  signInOwner,
  type InvitedGuest,
} from './common-steps.ts';
import { withHubHome, type HubHome } from './hub-home.ts';
import { within } from './steps-integrity.ts';

/** The guest lease of this story, ms (1 h in production). */
const LEASE_MS = 4_000;
/** How far this story's grant lists reach past now, ms (24 h by default in production). */
const REACH_MS = 8_000;
/** How far either side of the bound the code is tried, ms. */
const MARGIN_MS = 700;
/**
 * "At once" after the hub's link returns, ms: its reconnection (200 ms here) and a round trip,
 * with room to spare (the new list arrives in about 150 ms).
 */
const AT_ONCE_MS = 1_000;
const GUEST_A = { slot: 7, code: '58302917' };
const GUEST_B = { slot: 8, code: '71946208' };

/** GrantLists like the system's, whose lists reach {@link REACH_MS} past now (module comment). */
function shortReachLists(world: ScenarioWorld): GrantLists {
  const { sys } = world;
  return new GrantLists({
    store: sys.store,
    publisher: sys.gateway,
    signer: sys.keys.grantSigner,
    clock: sys.clock,
    audit: sys.audit,
    offlineHorizonMs: REACH_MS,
    // Issued again every second while the hub hears us, as production does every 5 min.
    refreshMs: 1_000,
  });
}

/**
 * The owner revokes `guest`'s grant through the API; then what the route does for keypad codes
 * is done on this story's PinSync (the route's own calls reach the system's, stopped here): the
 * guest's codes are cleared and the windows refreshed.
 */
async function revokeGuest(
  world: ScenarioWorld,
  pins: PinSync,
  owner: string,
  guest: InvitedGuest,
): Promise<{ status: number; code: string | null }> {
  const slots = (await world.sys.store.pinSlots.listByPrincipal(guest.guestId)).filter(
    (s) => s.desired === 'set',
  );
  const r = await call(
    world,
    'POST',
    `/api/homes/${world.creds.homeId}/grants/${guest.grantId}/revoke`,
    owner,
    {},
  );
  for (const slot of slots) await pins.clear(slot.lockDeviceId, slot.slot);
  await pins.refreshWindows(world.creds.homeId);
  return { status: r.status, code: errorCode(r) };
}

/** Types a code at `atMs` (wall clock); the door is locked again by hand if it opened. */
async function typeAt(home: HubHome, code: string, atMs: number): Promise<string> {
  await sleep(Math.max(0, atMs - Date.now()));
  const outcome = home.lock.enterCode(code);
  if (outcome === 'unlocked') {
    await within(() => home.lock.actualBolt() === 'unlocked', 2_000);
    home.lock.turnByHand('locked');
  }
  return outcome;
}

export const hubRevokedPin: Scenario = {
  name: 'hub-revoked-pin',
  expected:
    'guest revoked while the hub is cut off: the code opens until at most the list’s horizon (8 s here, 24 h by default) after the cut, then is refused; back online, the revocation reaches the hub at once',
  story: ({ world, expect }) =>
    withHubHome(world, {}, async (home) => {
      const { sys, creds } = world;
      const lockId = creds.devices.lock.id;
      const book = home.hub.grantBook(lockId);
      await sys.pins.stop();
      sys.grantLists.pause();
      const pins = shortLeasePins(world, { leaseMs: LEASE_MS, retryMaxMs: 500 });
      sys.gateway.addListener(pins);
      await pins.start();
      const lists = shortReachLists(world);
      await lists.start();
      try {
        // ---- Two guests, "any time", each with a code on the lock and in the hub's list ----
        const owner = await signInOwner(world);
        const a = await inviteGuest(world, owner, 'Robin', { kind: 'always' });
        const b = await inviteGuest(world, owner, 'Kim', { kind: 'always' });
        for (const [g, c, name] of [
          [a, GUEST_A, 'Robin'],
          [b, GUEST_B, 'Kim'],
        ] as const) {
          const given = await pins.assign(lockId, c.slot, c.code, {
            principalId: g.guestId,
            name,
          });
          expect.that(given.ok, `the owner gives a guest a code in slot ${c.slot}`);
          const written = await pins.settled(lockId, c.slot);
          expect.that(
            written?.sync === 'confirmed',
            `the hub confirms slot ${c.slot} (${written?.sync})`,
          );
        }
        const listed = await within(
          () =>
            [GUEST_A.slot, GUEST_B.slot].every((s) => book.pins().some((p) => p.slot === s)) &&
            (book.current()?.horizonMs ?? 0) > Date.now(),
          5_000,
        );
        expect.that(listed, 'the hub’s grant list names both codes');
        const online = await typeAt(home, GUEST_A.code, Date.now());
        expect.that(online === 'unlocked', `online, the first guest’s code opens (${online})`);

        // ---- The hub is cut off; the owner revokes the first guest ----
        home.hub.cutUplink();
        const cutAt = Date.now();
        const listAtCut = book.current();
        const heldVersion = listAtCut?.version ?? 0;
        const horizonMs = listAtCut?.horizonMs ?? 0;
        const writtenUntil =
          (await sys.store.pinSlots.get(lockId, GUEST_A.slot))?.window?.untilMs ?? 0;
        const bound = Math.max(horizonMs, writtenUntil);
        const boundMs = bound - cutAt;
        expect.that(
          horizonMs > cutAt && horizonMs - cutAt <= REACH_MS && writtenUntil - cutAt <= LEASE_MS,
          `the list reaches ${horizonMs - cutAt} ms and the last write ${writtenUntil - cutAt} ms past the cut (at most ${REACH_MS} and ${LEASE_MS})`,
        );
        await within(() => !home.hub.isConnected(), 3_000);
        const revoke = await revokeGuest(world, pins, owner, a);
        expect.that(
          revoke.status === 200,
          `the owner revokes the first guest (HTTP ${revoke.status} ${revoke.code ?? ''})`,
        );

        // ---- Just before the bound the code opens; just after, it is refused ----
        const before = await typeAt(home, GUEST_A.code, bound - MARGIN_MS);
        expect.that(
          before === 'unlocked' && !home.hub.isConnected(),
          `${MARGIN_MS} ms before the bound the cut-off hub still opens for the code (${before})`,
        );
        const after = await typeAt(home, GUEST_A.code, bound + MARGIN_MS);
        expect.that(
          after === 'wrong-code',
          `${MARGIN_MS} ms after it the code is refused (${after})`,
        );
        await sleep(400);
        expect.that(
          home.lock.actualBolt() === 'locked',
          `the door stays locked (${home.lock.actualBolt()})`,
        );

        // ---- The hub is back: the new list and the clear reach it at once ----
        home.hub.restoreUplink();
        const backAt = Date.now();
        const newList = await within(
          () =>
            (book.current()?.version ?? 0) > heldVersion &&
            !book.pins().some((p) => p.slot === GUEST_A.slot),
          10_000,
        );
        const listReachedMs = Date.now() - backAt;
        expect.that(
          newList && listReachedMs <= AT_ONCE_MS,
          `a list without the revoked code reaches the hub within ${AT_ONCE_MS} ms (${listReachedMs} ms)`,
        );
        const cleared = await within(async () => {
          const row = await sys.store.pinSlots.get(lockId, GUEST_A.slot);
          return row !== null && row.desired !== 'set' && row.sync === 'confirmed';
        }, 10_000);
        const clearedMs = Date.now() - backAt;
        expect.that(cleared, `the slot’s clear is confirmed by the hub (${clearedMs} ms)`);

        // ---- Cut off again; the second guest revoked; the link returns before the bound ----
        home.hub.cutUplink();
        await within(() => !home.hub.isConnected(), 3_000);
        const revokeB = await revokeGuest(world, pins, owner, b);
        expect.that(
          revokeB.status === 200,
          `the owner revokes the second guest (HTTP ${revokeB.status} ${revokeB.code ?? ''})`,
        );
        const offline = await typeAt(home, GUEST_B.code, Date.now());
        expect.that(
          offline === 'unlocked',
          `cut off, the hub still opens for the second guest’s code (${offline})`,
        );
        home.hub.restoreUplink();
        const backAt2 = Date.now();
        const gone = await within(() => home.lock.pins?.codeIn(GUEST_B.slot) === undefined, 5_000);
        const revokedOnHubMs = Date.now() - backAt2;
        expect.that(
          gone && revokedOnHubMs <= AT_ONCE_MS,
          `the code is off the keypad within ${AT_ONCE_MS} ms of the link’s return (${revokedOnHubMs} ms)`,
        );
        const refusedB = home.lock.enterCode(GUEST_B.code);
        expect.that(refusedB === 'wrong-code', `and it is refused (${refusedB})`);
        let leaks = 0;
        for await (const e of sys.store.audit.iterate()) {
          const text = JSON.stringify(e);
          if (text.includes(GUEST_A.code) || text.includes(GUEST_B.code)) leaks++;
        }
        expect.that(leaks === 0, `no code in the audit log (${leaks} entries)`);
        return {
          session: null,
          extra: {
            leaseMs: LEASE_MS,
            reachMs: REACH_MS,
            boundMs,
            worksJustBefore: before === 'unlocked',
            refusedJustAfter: after === 'wrong-code',
            listReachedMs,
            clearConfirmedMs: clearedMs,
            detectionMs: revokedOnHubMs,
            codeLeaks: leaks,
          },
        };
      } finally {
        await lists.stop();
        await pins.stop();
      }
    }),
};

/**
 * revoke-offline — the owner takes a guest's access back while the lock cannot be reached.
 *
 * A keypad code lives on the lock, so a revocation must reach the lock; when it cannot (Wi-Fi
 * down, hub unplugged) the lock goes on deciding alone. Threshold bounds that: each code
 * carries a validity window that reaches at most a *lease* past the moment it was written, and
 * the server renews it while the lock is online. An offline lock therefore stops taking a
 * revoked guest's code no later than a lease after the last write that reached it.
 *
 * The production lease is one hour for guests. The system here runs on the real clock, so the
 * story runs its own PinSync with a 6-second lease (the system's own is stopped, as the PIN
 * tests do), on the same gateway, broker, store and audit log; the code is given through it
 * directly, as the owner's "give a code" route does.
 *
 * Given a guest with two grants — "any time" (invited through the API) and one visit a week
 * from now — and a keypad code the lock holds and confirmed, renewed as it runs,
 * when the lock's link is cut and the owner revokes the "any time" grant through the API,
 * then the code still opens the door just before the end of the window the lock last got (the
 * lock cannot know), that end is at most one lease after the link went, and just after it the
 * code is refused like a wrong one with the door staying locked; once the link is back, the
 * narrowed window ("not before next week") is written and confirmed, and the code stays
 * refused.
 */
import type { GrantSchedule } from '../../core/grant-schedule.ts';
import { NEVER } from '../../core/pin-window.ts';
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { call, errorCode, inviteGuest, signInOwner, shortLeasePins } from './common-steps.ts';

/** The guest lease of this story, ms (the production default is 1 h). */
const LEASE_MS = 6_000;
/** How far either side of the window's end the code is tried, ms. */
const MARGIN_MS = 800;
const SLOT = 6;
const CODE = '6048213957';
const WEEK_MS = 7 * 24 * 3_600_000;

/** `YYYY-MM-DDTHH:MM` on the home's wall clock. */
function localDateTime(ms: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(ms);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '00';
  return `${get('year')}-${get('month')}-${get('day')}T${get('hour')}:${get('minute')}`;
}

export const revokeOffline: Scenario = {
  name: 'revoke-offline',
  expected:
    'grant revoked while the lock is offline: the code opens until at most one lease (6 s here, 1 h in production) after the last write reached the lock, then is refused; the narrowed window lands when the lock is back',
  async story({ world, expect }) {
    const { sys } = world;
    const { homeId } = world.creds;
    const lockId = world.creds.devices.lock.id;
    const lock = world.home.lock;
    await sys.pins.stop();
    const pins = shortLeasePins(world, { leaseMs: LEASE_MS, retryMaxMs: 1_000 });
    sys.gateway.addListener(pins);
    await pins.start();
    try {
      // ---- A guest with "any time" and a visit next week, and a code on the lock ----
      const owner = await signInOwner(world);
      const guest = await inviteGuest(world, owner, 'Robin', { kind: 'always' });
      const home = await sys.store.homes.getHome(homeId);
      const timeZone = home?.timeZone ?? 'UTC';
      const nextWeek = sys.clock.now() + WEEK_MS;
      const visit: GrantSchedule = {
        kind: 'one-time',
        from: localDateTime(nextWeek, timeZone),
        until: localDateTime(nextWeek + 3_600_000, timeZone),
      };
      const ownerRecord = await sys.store.principals.getByUsername(world.creds.owner.username);
      await sys.store.guestGrants.create({
        id: `grant-visit-${guest.guestId}`,
        homeId,
        doorId: world.creds.doorId,
        principalId: guest.guestId,
        grantedBy: ownerRecord?.principal.id ?? guest.guestId,
        schedule: visit,
        limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
        uses: 0,
        createdAt: sys.clock.now(),
        revokedAt: null,
        revokedBy: null,
        revokeReason: null,
      });
      const given = await pins.assign(lockId, SLOT, CODE, {
        principalId: guest.guestId,
        name: 'Robin',
      });
      expect.that(given.ok, 'the owner gives the guest a code');
      const written = await pins.settled(lockId, SLOT);
      expect.that(
        written?.sync === 'confirmed',
        `the lock confirms it holds the code (${written?.sync})`,
      );
      const firstUntil = lock.pinWindow(SLOT)?.untilMs ?? null;
      expect.that(
        firstUntil !== null && firstUntil <= sys.clock.now() + LEASE_MS,
        'the code carries a window that ends within a lease',
      );

      // ---- While online, the window is renewed before it runs out ----
      await world
        .waitFor(
          () => (lock.pinWindow(SLOT)?.untilMs ?? 0) > (firstUntil ?? Infinity),
          3 * LEASE_MS,
          'the window is renewed',
        )
        .catch(() => undefined);
      expect.that(
        (lock.pinWindow(SLOT)?.untilMs ?? 0) > (firstUntil ?? Infinity),
        'the window is renewed while the lock is online',
      );

      // ---- The lock's link is cut; the owner revokes "any time" ----
      world.home.links.lock.cutLink();
      const cutAt = sys.clock.now();
      const until = lock.pinWindow(SLOT)?.untilMs ?? null;
      const boundMs = until === null ? null : until - cutAt;
      expect.that(
        boundMs !== null && boundMs > 0 && boundMs <= LEASE_MS,
        `the lock's window ends within one lease of the last write it got (${boundMs} ms after the cut)`,
      );
      await world
        .waitFor(
          () => sys.gateway.liveStatus(lockId)?.online === false,
          5_000,
          'the server sees the lock go',
        )
        .catch(() => undefined);
      const revoke = await call(
        world,
        'POST',
        `/api/homes/${homeId}/grants/${guest.grantId}/revoke`,
        owner,
        {},
      );
      expect.that(
        revoke.status === 200,
        `the owner revokes "any time" (HTTP ${revoke.status} ${errorCode(revoke) ?? ''})`,
      );
      // What the revoke route does for keypad codes, on this story's PinSync.
      await pins.refreshWindows(homeId);

      // ---- Just before the window's end the code still opens; just after, it is refused ----
      let before: string | null = null;
      let after: string | null = null;
      if (until !== null) {
        await sleep(Math.max(0, until - MARGIN_MS - sys.clock.now()));
        const beforeAt = sys.clock.now();
        before = lock.enterCode(CODE).result;
        expect.that(
          before === 'unlocked' && beforeAt < until,
          `${until - beforeAt} ms before the end the offline lock still takes the code (${before})`,
        );
        // The guest locks up behind them (the lock cannot be told to: it is offline).
        await world
          .waitFor(() => lock.bolt() === 'unlocked', 2_000, 'the bolt is drawn')
          .catch(() => undefined);
        lock.turnByHand('locked');
        await sleep(Math.max(0, until + MARGIN_MS - sys.clock.now()));
        after = lock.enterCode(CODE).result;
        expect.that(
          after === 'wrong-code',
          `${sys.clock.now() - until} ms after the end the code is refused (${after})`,
        );
        await sleep(500);
        expect.that(lock.bolt() === 'locked', `the door stays locked (${lock.bolt()})`);
      }

      // ---- The link comes back: the narrowed window lands ----
      const backAt = sys.clock.now();
      world.home.links.lock.restoreLink();
      await world
        .waitFor(
          async () => {
            const row = await sys.store.pinSlots.get(lockId, SLOT);
            const w = lock.pinWindow(SLOT);
            return (
              row?.sync === 'confirmed' && w?.fromMs === NEVER.fromMs && w.untilMs === NEVER.untilMs
            );
          },
          15_000,
          'the narrowed window is confirmed',
        )
        .catch(() => undefined);
      const resyncMs = sys.clock.now() - backAt;
      const onLock = lock.pinWindow(SLOT);
      expect.that(
        onLock?.fromMs === 0 && onLock.untilMs === 0,
        `once back, the lock holds "not before next week" (${JSON.stringify(onLock)})`,
      );
      const again = lock.enterCode(CODE).result;
      expect.that(again === 'wrong-code', `the code stays refused (${again})`);
      let leaks = 0;
      for await (const e of sys.store.audit.iterate())
        if (JSON.stringify(e).includes(CODE)) leaks++;
      expect.that(leaks === 0, `no code in the audit log (${leaks} entries)`);

      return {
        session: null,
        extra: {
          leaseMs: LEASE_MS,
          boundMs,
          worksJustBefore: before === 'unlocked',
          refusedJustAfter: after === 'wrong-code',
          revokeStatus: revoke.status,
          resyncMs,
          windowAfter: onLock ?? null,
          codeLeaks: leaks,
        },
      };
    } finally {
      await pins.stop();
    }
  },
};

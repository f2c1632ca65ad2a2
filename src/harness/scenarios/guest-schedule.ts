/**
 * guest-schedule — a weekly guest ("Saturdays 14:00–18:00") across the change from summer to
 * winter time at the home (Europe/Berlin: Sunday 25 Oct 2026, 03:00 CEST → 02:00 CET).
 *
 * The system runs on the real clock, so each Saturday is its own world on a shifted clock (the
 * server and the simulated devices share it), created one after the other:
 *
 * Given the home on Saturday 24 Oct 2026 at 15:00 local (summer time, 13:00 UTC),
 * when the owner invites a guest for "Saturdays 14:00–18:00" and the guest asks to open,
 * then the door opens on camera, is locked again on the lock's word, and the visit completes.
 * Given the same home a week later, Saturday 31 Oct 2026 at 13:30 local (winter time, 12:30 UTC),
 * when a guest with the same kind of grant asks to open,
 * then they are refused with `grant.outside-schedule`, told the schedule, the lock untouched —
 * the window opens at 14:00 local, which is 13:00 UTC now (it was 12:00 UTC in summer);
 * and at 17:30 local (16:30 UTC — 18:30 had it still been summer time) they are let in.
 */
import type { Expectations, Scenario } from '../scenario.ts';
import { ScenarioWorld } from '../scenario-world.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import { call, errorCode, guestVisit, inviteGuest, signInOwner } from './common-steps.ts';

const SATURDAYS = { kind: 'weekly', slots: [{ days: ['sat'], start: '14:00', end: '18:00' }] };

/** The instants the story stands at, UTC. */
const SUMMER_1500 = Date.UTC(2026, 9, 24, 13, 0); // 15:00 CEST
const WINTER_1330 = Date.UTC(2026, 9, 31, 12, 30); // 13:30 CET
const WINTER_1730 = Date.UTC(2026, 9, 31, 16, 30); // 17:30 CET

/** A time as the home's clock shows it, with its offset name (e.g. "2026-10-24 15:00 GMT+2"). */
function local(ms: number): string {
  return new Intl.DateTimeFormat('sv-SE', {
    timeZone: 'Europe/Berlin',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  }).format(new Date(ms));
}

/** What the guest's grant says about now, from their own view. */
type GrantNow = { allowed: boolean; until?: number; nextStartsAt?: number | null; reason?: string };

/** Within a minute: the worlds' clocks have run on a little since they were set. */
const near = (ms: number, target: number): boolean => Math.abs(ms - target) < 60_000;

/** Runs `fn` in a world whose clock stands at `atMs` now; the world is closed afterwards. */
async function atInstant<T>(atMs: number, fn: (w: ScenarioWorld) => Promise<T>): Promise<T> {
  const world = await ScenarioWorld.create({ clockOffsetMs: atMs - Date.now() });
  try {
    const r = await fn(world);
    await world.sys.audit.checkpoint();
    return r;
  } finally {
    await world.close();
  }
}

/** A guest with "Saturdays 14:00–18:00" in `world`, and what their grant says about now. */
async function saturdayGuest(world: ScenarioWorld, expect: Expectations, name: string) {
  const owner = await signInOwner(world);
  const guest = await inviteGuest(world, owner, name, SATURDAYS);
  expect.that(
    String(guest.grant.description).includes('14:00–18:00'),
    `${name}'s grant reads "Saturdays 14:00–18:00" (${String(guest.grant.description)})`,
  );
  return { guest, now: guest.grant.now as GrantNow };
}

/** The audit chain of a world that is about to close verifies. */
async function auditHolds(world: ScenarioWorld, expect: Expectations, which: string) {
  const v = await world.auditVerified();
  expect.that(v.ok, `the audit chain of ${which} verifies (${v.firstBreak ?? 'ok'})`);
}

export const guestSchedule: Scenario = {
  name: 'guest-schedule',
  expected:
    'Saturdays 14:00–18:00 at the home: let in at 15:00 CEST; a week later (CET) refused at 13:30 with the schedule, let in at 17:30',
  // The first Saturday is the world the runner makes (its audit is verified at the end).
  get world() {
    return { clockOffsetMs: SUMMER_1500 - Date.now() };
  },
  async story({ world, expect }) {
    // ---- Saturday 24 Oct, 15:00 CEST: inside the window ----
    const summerAt = world.sys.clock.now();
    expect.that(near(summerAt, SUMMER_1500), `the first world stands at ${local(summerAt)}`);
    const summer = await saturdayGuest(world, expect, 'Sunny');
    expect.that(summer.now.allowed, `at 15:00 summer time the grant allows entry`);
    // The window ends at 18:00 CEST = 16:00 UTC.
    expect.that(
      summer.now.until === Date.UTC(2026, 9, 24, 16, 0),
      `the summer window ends at 16:00 UTC (${summer.now.until ? local(summer.now.until) : '-'})`,
    );
    const summerVisit = await guestVisit(world, expect, summer.guest, 'the guest in summer');

    // ---- Saturday 31 Oct, 13:30 CET: before the window, which now opens at 13:00 UTC ----
    const early = await atInstant(WINTER_1330, async (w) => {
      const at = w.sys.clock.now();
      const { guest, now } = await saturdayGuest(w, expect, 'Winnie');
      expect.that(!now.allowed, 'at 13:30 winter time the grant does not allow entry');
      expect.that(
        now.nextStartsAt === Date.UTC(2026, 9, 31, 13, 0),
        `the next window opens at 14:00 CET = 13:00 UTC (${now.nextStartsAt ? local(now.nextStartsAt) : '-'})`,
      );
      const r = await call(w, 'POST', `/api/guest/grants/${guest.grantId}/access`, guest.token, {});
      const message = (r.body.error as { message?: string } | undefined)?.message ?? '';
      expect.that(
        r.status === 403 && errorCode(r) === 'grant.outside-schedule',
        `the guest is refused outside the window (HTTP ${r.status} ${errorCode(r)})`,
      );
      expect.that(
        message.includes('Saturdays 14:00–18:00'),
        `the refusal names the schedule ("${message}")`,
      );
      expect.that(w.home.lock.bolt() === 'locked', 'the lock is untouched (still locked)');
      expect.that(
        (await w.sys.store.guestGrants.get(guest.grantId))?.uses === 0,
        'the refused request used no entry',
      );
      await auditHolds(w, expect, 'the 13:30 world');
      return { at, status: r.status, code: errorCode(r), message };
    });

    // ---- Saturday 31 Oct, 17:30 CET (18:30 had it been summer time): inside the window ----
    const late = await atInstant(WINTER_1730, async (w) => {
      const at = w.sys.clock.now();
      const { guest, now } = await saturdayGuest(w, expect, 'Winnie');
      expect.that(now.allowed, 'at 17:30 winter time the grant allows entry');
      expect.that(
        now.until === Date.UTC(2026, 9, 31, 17, 0),
        `the winter window ends at 18:00 CET = 17:00 UTC (${now.until ? local(now.until) : '-'})`,
      );
      const visit = await guestVisit(w, expect, guest, 'the guest in winter');
      await auditHolds(w, expect, 'the 17:30 world');
      return { at, session: visit.session };
    });

    const session: SessionView | null = summerVisit.session;
    return {
      session,
      extra: {
        summerInside: { utc: new Date(summerAt).toISOString(), local: local(summerAt) },
        winterEarly: {
          utc: new Date(early.at).toISOString(),
          local: local(early.at),
          status: early.status,
          code: early.code,
          message: early.message,
        },
        winterInside: {
          utc: new Date(late.at).toISOString(),
          local: local(late.at),
          outcome: late.session?.state ?? 'none',
        },
      },
    };
  },
};

/**
 * The guest's access decision: may this guest open this door now, under this grant? Pure, like
 * the courier's (`access-decision.ts`), and with the same fail-closed device checks, the
 * camera included when the grant asks for recording.
 *
 * Order: who and which grant, revoked, used up, when (the schedule, in the home's time zone),
 * one session per door, then the devices. An allowed entry comes with its deadline: the
 * earlier of the grant's minutes per entry and the end of the schedule's window.
 */
import {
  checkDoorDevices,
  DEFAULT_ACCESS_POLICY,
  type AccessPolicy,
  type DoorDevices,
} from './access-decision.ts';
import { problem, type Problem } from './errors.ts';
import {
  describeSchedule,
  effectiveMaxUses,
  entryDeadline,
  scheduleAllows,
} from './grant-schedule.ts';
import type { Door, GuestGrant, Home, Principal } from './model.ts';

export interface GuestEntryRequest extends DoorDevices {
  readonly principal: Principal;
  readonly home: Home;
  readonly door: Door;
  /** The grant the guest asks under, or null if none was found. */
  readonly grant: GuestGrant | null;
  /** An access session already running at this door. */
  readonly activeSessionAtDoor: boolean;
}

export type GuestEntryDecision =
  | {
      readonly allow: true;
      readonly grant: GuestGrant;
      /** When this entry must end (the door relocks), or null for no bound but the lock's. */
      readonly deadlineAt: number | null;
    }
  | { readonly allow: false; readonly refusal: Problem };

const deny = (p: Problem): GuestEntryDecision => ({ allow: false, refusal: p });

/** Whether the grant has no entries left (a one-time grant after its one entry). */
export function isUsedUp(grant: GuestGrant): boolean {
  const maxUses = effectiveMaxUses(grant.schedule, grant.limits);
  return maxUses !== null && grant.uses >= maxUses;
}

/** Decides a guest's request to open a door under a grant. */
export function decideGuestEntry(
  req: GuestEntryRequest,
  policy: AccessPolicy = DEFAULT_ACCESS_POLICY,
): GuestEntryDecision {
  const { principal, home, door, grant, now } = req;
  if (grant === null) return deny(problem('grant.not-found'));
  if (grant.principalId !== principal.id) return deny(problem('grant.wrong-principal'));
  if (grant.homeId !== home.id || grant.doorId !== door.id || door.homeId !== home.id)
    return deny(problem('grant.wrong-door'));
  if (grant.revokedAt !== null && grant.revokedAt <= now)
    return deny(problem('grant.revoked', 'Your access was withdrawn.'));
  if (isUsedUp(grant))
    return deny(problem('grant.used', 'You have used every entry this access allows.'));

  const verdict = scheduleAllows(grant.schedule, home.timeZone, now);
  if (!verdict.allowed) {
    const when = describeSchedule(grant.schedule, home.timeZone, { nowMs: now });
    const detail = verdict.nextStartsAt === null ? {} : { nextStartsAt: verdict.nextStartsAt };
    switch (verdict.reason) {
      case 'not-yet':
        return deny(problem('grant.not-yet-valid', `Your access starts later: ${when}.`, detail));
      case 'ended':
        return deny(problem('grant.expired', `Your access has ended: ${when}.`, detail));
      case 'outside-schedule':
        return deny(
          problem('grant.outside-schedule', `You may come in at these times: ${when}.`, detail),
        );
    }
  }

  if (req.activeSessionAtDoor) return deny(problem('session.active'));
  const devices = checkDoorDevices(req, grant.limits.requiresRecording, policy);
  if (devices) return deny(devices);
  return {
    allow: true,
    grant,
    deadlineAt: entryDeadline(now, grant.limits, verdict.windowEndsAt),
  };
}

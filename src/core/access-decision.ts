/**
 * The access decision: may this principal open this door now, for this delivery, from where
 * they stand? Pure: everything it needs is passed in, and a refusal is a value with a code.
 *
 * The order of checks is the order a person would ask them in (who, which delivery, when,
 * where, and only then whether the door's devices can prove what happens), so the reason given
 * is the most fundamental one.
 */
import { problem, type Problem } from './errors.ts';
import { weekdayIn } from './calendar.ts';
import { insideGeofence, type Position } from './geo.ts';
import type { Delivery, Door, Grant, Home, Principal } from './model.ts';

/** What the server knows of a device at the moment of the decision. */
export interface DeviceLiveness {
  /** Connected to the broker and not announced offline. */
  readonly online: boolean;
  /** When a valid message from the device last arrived (server clock), or null if never. */
  readonly lastSeenAt: number | null;
}

export interface LockLiveness extends DeviceLiveness {
  readonly bolt: 'locked' | 'unlocked' | 'jammed' | 'unknown';
}

export interface DoorSensorLiveness extends DeviceLiveness {
  readonly position: 'open' | 'closed' | 'unknown';
}

/**
 * What the home's owner decided that stops this courier, whatever the delivery says: the
 * carrier is not (or no longer) allowed in, or this courier is blocked at this home.
 */
export type OwnersRefusal = 'carrier-not-allowed' | 'courier-blocked';

export interface AccessRequest {
  readonly principal: Principal;
  readonly home: Home;
  readonly door: Door;
  readonly delivery: Delivery;
  /** The grant for this delivery, or null if none exists. */
  readonly grant: Grant | null;
  /** Where the courier's phone says it is, or null if it did not say. */
  readonly position: Position | null;
  readonly now: number;
  readonly camera: DeviceLiveness | null;
  readonly lock: LockLiveness;
  readonly doorSensor: DoorSensorLiveness | null;
  /** An access session already running at this door, if any. */
  readonly activeSessionAtDoor: boolean;
  /**
   * The owner's choice against this delivery's carrier or courier at this home, or null (or
   * absent) when there is none. Read at the moment of the request, so a block takes effect on
   * deliveries already made.
   */
  readonly ownersRefusal?: OwnersRefusal | null;
}

export interface AccessPolicy {
  /** A device counts as offline when it has been silent this long, ms. */
  readonly deviceStaleMs: number;
  /** Phone fixes less precise than this are refused, metres. */
  readonly maxPositionAccuracyM: number;
}

export const DEFAULT_ACCESS_POLICY: AccessPolicy = {
  deviceStaleMs: 60_000,
  maxPositionAccuracyM: 100,
};

export type AccessDecision =
  | { readonly allow: true; readonly grant: Grant }
  | { readonly allow: false; readonly refusal: Problem };

const deny = (
  code: Parameters<typeof problem>[0],
  message?: string,
  detail?: Record<string, unknown>,
): AccessDecision => ({
  allow: false,
  refusal: problem(code, message, detail),
});

function isLive(d: DeviceLiveness, now: number, policy: AccessPolicy): boolean {
  return d.online && d.lastSeenAt !== null && now - d.lastSeenAt <= policy.deviceStaleMs;
}

/** What the door's devices must show before any unlock. */
export type DoorDevices = Pick<AccessRequest, 'now' | 'camera' | 'lock' | 'doorSensor'>;

/**
 * The device checks every unlock shares (couriers and guests alike): the camera live when
 * recording is required, the lock live and not jammed, the door sensor (if fitted) live and
 * reporting closed. Returns the refusal, or null when the devices can prove what happens.
 */
export function checkDoorDevices(
  req: DoorDevices,
  requiresRecording: boolean,
  policy: AccessPolicy = DEFAULT_ACCESS_POLICY,
): Problem | null {
  const { now } = req;
  if (requiresRecording) {
    if (req.camera === null || !isLive(req.camera, now, policy)) {
      return problem(
        'camera.offline',
        undefined,
        req.camera?.lastSeenAt ? { since: req.camera.lastSeenAt } : {},
      );
    }
  }
  if (!isLive(req.lock, now, policy)) {
    return problem(
      'lock.offline',
      undefined,
      req.lock.lastSeenAt ? { since: req.lock.lastSeenAt } : {},
    );
  }
  if (req.lock.bolt === 'jammed') return problem('lock.jammed');
  if (req.doorSensor !== null) {
    if (!isLive(req.doorSensor, now, policy) || req.doorSensor.position === 'unknown') {
      return problem('door.unknown');
    }
    if (req.doorSensor.position === 'open') return problem('door.open');
  }
  return null;
}

/** Decides a courier's request to open the door for a delivery. */
export function decideAccess(
  req: AccessRequest,
  policy: AccessPolicy = DEFAULT_ACCESS_POLICY,
): AccessDecision {
  const { principal, home, door, delivery, grant, now } = req;

  // Who, and which delivery.
  if (principal.role !== 'courier')
    return deny('auth.forbidden', 'Only the assigned courier may open the door.');
  if (delivery.courierId !== principal.id) return deny('grant.wrong-principal');
  if (delivery.homeId !== home.id || door.homeId !== home.id) return deny('grant.wrong-door');
  // The owner's word on who may come in outranks every grant the carrier holds.
  if (req.ownersRefusal === 'courier-blocked') return deny('courier.blocked');
  if (req.ownersRefusal === 'carrier-not-allowed') return deny('carrier.not-allowed');
  if (!home.inHomeDelivery) return deny('delivery.in-home-disabled');
  if (home.delivery.daysOff.includes(weekdayIn(home.timeZone, now))) {
    return deny('delivery.day-off', undefined, { day: weekdayIn(home.timeZone, now) });
  }
  if (grant === null) return deny('grant.not-found');
  if (grant.principalId !== principal.id) return deny('grant.wrong-principal');
  if (grant.doorId !== door.id || grant.deliveryId !== delivery.id) return deny('grant.wrong-door');
  if (grant.revokedAt !== null && grant.revokedAt <= now) return deny('grant.revoked');
  if (delivery.status === 'cancelled') return deny('grant.revoked', 'The delivery was cancelled.');
  if (delivery.status === 'left-at-door') {
    return deny('grant.used', 'The owner asked for this parcel to be left at the door.');
  }
  if (grant.uses >= grant.maxUses) return deny('grant.used');

  // When.
  if (now < grant.validFrom) {
    return deny('grant.not-yet-valid', undefined, { validFrom: grant.validFrom });
  }
  if (now >= grant.validUntil)
    return deny('grant.expired', undefined, { validUntil: grant.validUntil });

  // Where.
  if (grant.requiresPresence) {
    if (req.position === null) return deny('presence.missing');
    if (req.position.accuracyM > policy.maxPositionAccuracyM) {
      return deny('presence.inaccurate', undefined, { accuracyM: req.position.accuracyM });
    }
    if (!insideGeofence(home.geofence, req.position)) return deny('presence.off-site');
  }

  // Only one session at a door at a time: two would share one camera's proof.
  if (req.activeSessionAtDoor) return deny('session.active');

  // The door's devices must be able to prove what happens (principle 1). The camera's
  // recording of *this* session is confirmed later, in the session's arming step.
  const devices = checkDoorDevices(req, grant.requiresRecording, policy);
  if (devices) return { allow: false, refusal: devices };
  return { allow: true, grant };
}

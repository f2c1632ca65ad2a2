/**
 * Threshold's domain: homes, doors, devices, principals, deliveries and grants.
 *
 * These are plain, immutable data. Ids are opaque strings (they come in through the id port);
 * times are milliseconds since the Unix epoch.
 */
import type { GrantLimits, GrantSchedule } from './grant-schedule.ts';

/** A circle around the home inside which a courier counts as "at the door". */
export interface Geofence {
  /** Degrees, WGS 84. */
  readonly lat: number;
  /** Degrees, WGS 84. */
  readonly lon: number;
  /** Metres. */
  readonly radiusM: number;
}

export interface Home {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly geofence: Geofence;
  /** IANA time zone, e.g. "Europe/Berlin"; times are shown to people in this zone. */
  readonly timeZone: string;
  /** Whether the owner allows in-home delivery at all. */
  readonly inHomeDelivery: boolean;
  /** When and how the owner lets couriers in. */
  readonly delivery: DeliveryPreferences;
}

/** Days of the week, as used in settings and schedules (in the home's time zone). */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export function isWeekday(s: string): s is Weekday {
  return (WEEKDAYS as readonly string[]).includes(s);
}

/** The owner's in-home delivery preferences beyond on / off. */
export interface DeliveryPreferences {
  /** Weekdays, in the home's time zone, without in-home delivery. */
  readonly daysOff: readonly Weekday[];
  /** "Ask me first": each courier waits for the owner's "let in" or "leave at door". */
  readonly askFirst: boolean;
  /** How long the courier waits for that answer before it is "leave at door", ms. */
  readonly askTimeoutMs: number;
}

/** Preferences of a home whose owner has not changed them. */
export const DEFAULT_DELIVERY_PREFERENCES: DeliveryPreferences = {
  daysOff: [],
  askFirst: false,
  askTimeoutMs: 60_000,
};

export interface Door {
  readonly id: string;
  readonly homeId: string;
  readonly name: string;
  readonly lockDeviceId: string;
  readonly doorSensorDeviceId: string | null;
  /** The cameras that watch this door; a courier unlock needs one of them recording. */
  readonly cameraDeviceIds: readonly string[];
}

export type DeviceKind = 'lock' | 'door-sensor' | 'camera';

export interface Device {
  readonly id: string;
  readonly homeId: string;
  readonly kind: DeviceKind;
  readonly name: string;
}

export type Role = 'owner' | 'member' | 'guest' | 'courier' | 'carrier';

export interface Principal {
  readonly id: string;
  readonly role: Role;
  readonly displayName: string;
  /** The home of an owner, member or guest; null for couriers and carriers. */
  readonly homeId: string | null;
  /** The carrier organisation a courier belongs to (or is, for role "carrier"). */
  readonly carrierId: string | null;
}

export type DeliveryStatus =
  'scheduled' | 'in-progress' | 'delivered' | 'left-at-door' | 'needs-review' | 'cancelled';

/**
 * Where the carrier means to leave a parcel: `in-home` (the courier is let in, under the
 * camera) or `doorstep` (left outside: the door never opens for it, so it needs no grant).
 */
export type DeliveryPlacement = 'in-home' | 'doorstep';

/** Every {@link DeliveryPlacement}. */
export const DELIVERY_PLACEMENTS: readonly DeliveryPlacement[] = ['in-home', 'doorstep'];

/** Every {@link DeliveryStatus}, in the order a delivery goes through them. */
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = [
  'scheduled',
  'in-progress',
  'delivered',
  'left-at-door',
  'needs-review',
  'cancelled',
];

/** Statuses a delivery never leaves. */
export const FINISHED_DELIVERY_STATUSES: readonly DeliveryStatus[] = [
  'delivered',
  'left-at-door',
  'needs-review',
  'cancelled',
];

/** What happened to a delivery: one event per change of its status (or of its courier). */
export type DeliveryEventType =
  | 'delivery.created'
  | 'delivery.assigned'
  | 'delivery.in-progress'
  | 'delivery.delivered'
  | 'delivery.left-at-door'
  | 'delivery.needs-review'
  | 'delivery.cancelled';

/** Every {@link DeliveryEventType}. */
export const DELIVERY_EVENT_TYPES: readonly DeliveryEventType[] = [
  'delivery.created',
  'delivery.assigned',
  'delivery.in-progress',
  'delivery.delivered',
  'delivery.left-at-door',
  'delivery.needs-review',
  'delivery.cancelled',
];

export interface Delivery {
  readonly id: string;
  readonly carrierId: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly packageRef: string;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly courierId: string | null;
  readonly status: DeliveryStatus;
  readonly createdAt: number;
  /**
   * Where the parcel is to be left. Absent means `in-home` (what every delivery was before
   * carriers could choose); the store always says which.
   */
  readonly placement?: DeliveryPlacement;
  /** When the delivery last changed (its creation, if it never did), ms; the store says. */
  readonly updatedAt?: number;
}

/**
 * Permission for one principal to open one door under conditions. For now the only kind is a
 * courier's grant for one delivery: valid in the delivery window, for one access session.
 */
export interface Grant {
  readonly id: string;
  readonly kind: 'delivery';
  readonly principalId: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly deliveryId: string;
  readonly validFrom: number;
  readonly validUntil: number;
  /** How many access sessions the grant allows (1 for a delivery). */
  readonly maxUses: number;
  readonly uses: number;
  /** The longest a door may stay unlocked in one session, ms. */
  readonly maxOpenMs: number;
  readonly requiresRecording: boolean;
  readonly requiresPresence: boolean;
  readonly revokedAt: number | null;
}

/**
 * A guest's permission to open one door of a home: when (a {@link GrantSchedule} in the home's
 * time zone), how often and how long, and whether the camera must record. Shared by an owner
 * or a member (`grantedBy`); revoking that person's access revokes it too.
 */
export interface GuestGrant {
  readonly id: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly principalId: string;
  readonly grantedBy: string;
  readonly schedule: GrantSchedule;
  readonly limits: GrantLimits;
  readonly uses: number;
  readonly createdAt: number;
  readonly revokedAt: number | null;
  readonly revokedBy: string | null;
  readonly revokeReason: string | null;
}

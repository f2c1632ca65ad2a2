/**
 * What the JSON API answers with, and the live events it streams: the read side of the
 * contract between the server and its clients. The server builds these values; the web app
 * imports these types and nothing else of the server (requests are in ./http.ts).
 */
import type { AccessSession, SessionAlarm } from '../core/access-session.ts';
import type { AuditCheckpoint, ExportedAuditEntry } from '../core/audit-chain.ts';
import type {
  Delivery,
  DeliveryEventType,
  DeliveryPlacement,
  DeliveryStatus,
  DeviceKind,
  Home,
  Role,
  Weekday,
} from '../core/model.ts';
import type { GrantLimits, GrantSchedule } from '../core/grant-schedule.ts';
import type { Coverage } from '../core/observation-watchdog.ts';
import type { DeviceStateMessage } from './device-messages.ts';

export type {
  AccessSession,
  AlarmType,
  SessionAlarm,
  SessionState,
} from '../core/access-session.ts';
export type { Coverage } from '../core/observation-watchdog.ts';
export type { Delivery, DeliveryStatus, Home, Role, Weekday } from '../core/model.ts';
export type { ExportedAuditEntry, AuditCheckpoint } from '../core/audit-chain.ts';

/** Who is signed in. */
export interface PrincipalSummary {
  readonly id: string;
  readonly role: Role;
  readonly displayName: string;
  readonly homeId: string | null;
  readonly carrierId: string | null;
}

/** What the server knows of one device right now. */
export interface DeviceLiveStatus {
  readonly deviceId: string;
  readonly homeId: string;
  readonly kind: DeviceKind;
  /** From the device's retained availability and its last will. */
  readonly online: boolean;
  /** Server time of the last valid message, or null. */
  readonly lastSeenAt: number | null;
  /** Server time the device went offline, or null while online. */
  readonly offlineSince: number | null;
  /** The last valid state report, or null. */
  readonly state: DeviceStateMessage | null;
}

/** One fact of a door (lock, door, camera) with unknown and stale shown as such. */
export interface FactView<T extends string> {
  /** The current value, or `unknown` when the device is offline, stale or never reported. */
  readonly value: T | 'unknown';
  /** The last value the device reported, if any (never to be shown as current). */
  readonly lastKnown: T | null;
  readonly online: boolean;
  /** Server time of the last valid message. */
  readonly lastSeenAt: number | null;
  /** When the device went offline or stale, or null while live. */
  readonly offlineSince: number | null;
  readonly deviceId: string | null;
}

export interface DoorStatusView {
  readonly doorId: string;
  readonly name: string;
  readonly lock: FactView<'locked' | 'unlocked' | 'jammed'>;
  readonly door: FactView<'open' | 'closed'>;
  readonly camera: FactView<'recording' | 'idle'>;
}

/** `GET /api/homes/:homeId`: the home at a glance. */
export interface HomeStatusView {
  readonly home: Home;
  readonly doors: readonly DoorStatusView[];
  readonly at: number;
}

/** An alarm of a session, with its acknowledgement. */
export interface AlarmView extends SessionAlarm {
  readonly sessionId: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly acknowledged: {
    readonly by: string;
    readonly byName: string;
    readonly at: number;
  } | null;
}

/** The owner's answer to an "ask me first" delivery. */
export type OwnerDecision = 'let-in' | 'leave-at-door';

/**
 * An access session as the API shows it: its state machine snapshot plus its coverage. A
 * session with `cameraDeviceId: null` was not recorded (a guest grant without "camera must
 * record"): its coverage is empty by design, not a gap, and is shown as "Not recorded".
 */
export interface SessionView extends AccessSession {
  readonly coverage: Coverage;
  /** Who the session is for (display name and role), when known. */
  readonly who: { readonly id: string; readonly displayName: string; readonly role: Role } | null;
  /** The session's alarms with their acknowledgements. */
  readonly alarmViews: readonly AlarmView[];
}

/** `GET /api/sessions/:id/clip`: the recorded frames, in order. */
export interface ClipFrameView {
  readonly seq: number;
  /** When the camera says it captured the frame, ms. */
  readonly capturedAt: number;
  /** When the server received it, ms. */
  readonly receivedAt: number;
  /** SHA-256 of the JPEG, hex. */
  readonly digest: string;
  readonly bytes: number;
  /** Where the JPEG is (same origin, needs the sign-in cookie). */
  readonly url: string;
}

/** `GET /api/homes/:homeId/audit`: a verifiable piece of the audit chain. */
export interface AuditExport {
  readonly format: 'threshold-audit-export/v1';
  readonly homeId: string;
  readonly sessionId?: string;
  readonly publicKey: string;
  readonly fromSeq: number | null;
  readonly toSeq: number | null;
  readonly serverVerification: {
    readonly ok: boolean;
    readonly entries: number;
    readonly lastSeq: number | null;
    readonly firstBreak: unknown;
  };
  readonly entries: readonly ExportedAuditEntry[];
  readonly checkpoints: readonly AuditCheckpoint[];
}

/**
 * The owner's live view of one camera. `live` only while fresh, authenticated frames arrive;
 * otherwise `offline` or `frozen` since the last fresh frame. `starting` while the camera is
 * being asked to send.
 */
export interface LiveViewStatus {
  readonly homeId: string;
  readonly cameraId: string;
  readonly status: 'starting' | 'live' | 'offline' | 'frozen';
  /** Since when the status holds (for offline / frozen: the last fresh frame), ms. */
  readonly since: number | null;
  /** The newest fresh frame, or null. Never replaced by a stale one. */
  readonly frame: {
    readonly digest: string;
    readonly capturedAt: number;
    readonly receivedAt: number;
    readonly url: string;
  } | null;
  /** The access session the camera is recording for, if any. */
  readonly sessionId: string | null;
  /** Server time of this status. */
  readonly at: number;
}

/** `GET/PUT /api/homes/:homeId/settings`: in-home delivery settings. */
export interface DeliverySettingsView {
  readonly inHomeDelivery: boolean;
  readonly daysOff: readonly Weekday[];
  readonly askFirst: boolean;
  /** How long a courier waits for the owner's answer before "leave at door", seconds. */
  readonly askTimeoutS: number;
}

/** `GET /api/courier/deliveries`: one delivery with its home, as the courier sees it. */
export interface CourierDeliveryView extends Delivery {
  readonly home: {
    readonly name: string;
    readonly address: string;
    readonly timeZone: string;
  } | null;
}

/** A passkey of the signed-in principal (`GET /api/auth/passkeys`). */
export interface PasskeyView {
  readonly id: string;
  readonly name: string;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
  readonly backedUp: boolean;
}

/** A guest's grant as the owner and the guest see it. */
export interface GuestGrantView {
  readonly id: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly doorName: string;
  readonly guest: { readonly id: string; readonly displayName: string };
  readonly grantedBy: { readonly id: string; readonly displayName: string };
  readonly schedule: GrantSchedule;
  /** The schedule in plain words, in the home's time zone. */
  readonly description: string;
  /**
   * Entries in all, minutes per entry, and `requiresRecording`: whether the camera must prove
   * it records before the door opens (false: this guest's entries are not recorded).
   */
  readonly limits: GrantLimits;
  readonly uses: number;
  readonly createdAt: number;
  readonly revokedAt: number | null;
  readonly revokeReason: string | null;
  /** Whether the grant lets its guest in right now, and until / from when. */
  readonly now:
    | { readonly allowed: true; readonly until: number | null }
    | { readonly allowed: false; readonly nextStartsAt: number | null; readonly reason: string };
}

/** An invitation link, without its secret token. */
export interface InviteView {
  readonly id: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly displayName: string;
  readonly description: string;
  /** Whether the camera must record each entry of the grant this invitation makes. */
  readonly requiresRecording: boolean;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly status: 'pending' | 'accepted' | 'expired' | 'revoked';
  readonly acceptedBy: string | null;
}

/** One keypad slot of a lock, as the household sees it (never the code). */
export interface PinSlotView {
  readonly lockId: string;
  readonly slot: number;
  readonly principalId: string | null;
  readonly name: string | null;
  readonly desired: 'set' | 'clear';
  /** pending, confirmed, failed, out-of-sync, unknown-on-lock (see docs/device-protocol.md). */
  readonly sync: string;
  readonly attempts: number;
  readonly nextAttemptAt: number | null;
  readonly lastError: string | null;
  readonly checkedAt: number | null;
  readonly updatedAt: number;
  /**
   * When the code opens, as Threshold writes it to the lock: from `fromMs` (inclusive) to
   * `untilMs` (exclusive), ms by the lock's clock; null for at all times (the owner's codes,
   * and empty slots). `fromMs` 0: open since ever. It never reaches more than a lease ahead (a
   * guest's 1 h, a member's 24 h) and is renewed while the lock is online, so an offline lock
   * stops taking a revoked code by `untilMs`. `fromMs === untilMs`, or an `untilMs` in the
   * past: the code opens nothing now.
   */
  readonly window: { readonly fromMs: number; readonly untilMs: number } | null;
  /** The window the lock last listed for the slot (null: none, or no code listed). */
  readonly lockWindow: { readonly fromMs: number; readonly untilMs: number } | null;
}

/**
 * One unlock of a home's door, by whom and how ("who unlocked"): `GET
 * /api/homes/:homeId/entries` and the `entry` event.
 */
export interface EntryView {
  readonly id: string;
  /** When, ms since the epoch (server clock). */
  readonly at: number;
  readonly lockId: string;
  readonly doorId: string | null;
  /** The door's name, or the lock's when it is fitted to no door on record. */
  readonly doorName: string;
  /**
   * `app`: with the app at the door (a courier's or guest's visit, `sessionId`); `remote`: from
   * the app, from afar (owner or member); `pin`: a keypad code (`slot`); `manual`: a key or
   * the thumb-turn, which the lock cannot attribute.
   */
  readonly method: 'app' | 'remote' | 'pin' | 'manual';
  /** Who, when known. */
  readonly principalId: string | null;
  /** Their name as the household knows it; null when unknown. */
  readonly who: string | null;
  /** Their role; null when unknown. */
  readonly role: 'owner' | 'member' | 'guest' | 'courier' | 'carrier' | null;
  readonly slot: number | null;
  readonly sessionId: string | null;
  /** One line for people: "Sam (guest) unlocked Front door with keypad code, slot 3". */
  readonly summary: string;
}

/**
 * Whose entries the signed-in owner or member is told about by push (`GET`/`PUT
 * /api/homes/:homeId/entry-alerts`). Every entry is shown in the page either way.
 */
export interface EntryAlertsView {
  /** `all`: every entry but their own; `chosen`: the entries of `people`; `off`: none. */
  readonly mode: 'all' | 'chosen' | 'off';
  /** Principal ids whose entries they chose (used with `chosen`). */
  readonly people: readonly string[];
  /** The people they may choose from: the home's members, guests and couriers of record. */
  readonly candidates: readonly {
    readonly id: string;
    readonly name: string;
    readonly role: 'owner' | 'member' | 'guest';
  }[];
  /** False until they chose: `mode` is then their role's default (owner all, member chosen). */
  readonly chosen: boolean;
}

/**
 * Events on `GET /api/events` (text/event-stream): the SSE event name is `type`, the data is
 * the JSON of the whole event.
 */
export type ServerEvent =
  | { readonly type: 'session'; readonly homeId: string; readonly session: AccessSession }
  | {
      readonly type: 'alarm';
      readonly homeId: string;
      readonly sessionId: string;
      readonly alarm: SessionAlarm;
    }
  | { readonly type: 'alarm-ack'; readonly homeId: string; readonly alarm: AlarmView }
  | { readonly type: 'device'; readonly homeId: string; readonly device: DeviceLiveStatus }
  | { readonly type: 'live'; readonly homeId: string; readonly view: LiveViewStatus }
  | { readonly type: 'entry'; readonly homeId: string; readonly entry: EntryView }
  | {
      /** Something at the home that needs the owner's attention (e.g. a keypad lockout). */
      readonly type: 'notice';
      readonly homeId: string;
      readonly message: string;
      readonly at: number;
    };

/** A carrier's webhook (`/api/carrier/webhooks`). Its signing secret is shown once, never here. */
export interface WebhookView {
  readonly id: string;
  /** Where delivery events are posted. */
  readonly url: string;
  /** The delivery event types it gets, or `["*"]` for all. */
  readonly events: readonly string[];
  /** ms since the epoch. */
  readonly createdAt: number;
  /** Who registered it: `apikey:<key id>` or a carrier admin's id. */
  readonly createdBy: string;
  /** When it was disabled, ms; null while active. */
  readonly disabledAt: number | null;
}

/**
 * The JSON body of every webhook request: one delivery event. The same event may arrive more
 * than once (retries, resends): `id` tells them apart; `data.event.seq` orders a delivery's
 * events.
 */
export interface WebhookPayload {
  /** The event's id (`evt-…`), the same in every retry and resend. */
  readonly id: string;
  /** `delivery.created`, `delivery.assigned`, `delivery.in-progress`, `delivery.delivered`… */
  readonly type: string;
  /** When the event happened, ms since the epoch. */
  readonly createdAt: number;
  readonly data: {
    /** The delivery as `GET /api/carrier/deliveries/:deliveryId` shows it, when sent. */
    readonly delivery: CarrierDeliveryView | null;
    readonly event: {
      /** 1, 2, 3… per delivery. */
      readonly seq: number;
      /** The delivery's status right after this event. */
      readonly status: string;
      /** ms since the epoch. */
      readonly at: number;
      /** What else the event says (courier, session, reason). */
      readonly data: Readonly<Record<string, unknown>>;
    };
  };
}

/** One event sent (or being sent) to a webhook: the webhook's delivery log. */
export interface WebhookDeliveryView {
  readonly id: string;
  readonly webhookId: string;
  readonly eventId: string;
  readonly eventType: string;
  /** `pending` until answered 2xx (`delivered`) or the last attempt failed (`failed`). */
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly attempts: number;
  /** The HTTP status of the last answer; null if none came (timeout, refused connection). */
  readonly lastStatusCode: number | null;
  /** Why the last attempt failed, clipped; null after success or before any attempt. */
  readonly lastError: string | null;
  /** When the next attempt is due, ms; null when none will be made. */
  readonly nextAttemptAt: number | null;
  readonly createdAt: number;
  readonly deliveredAt: number | null;
  /** The body sent, parsed (the bytes sent are its JSON exactly as stored). */
  readonly payload: WebhookPayload;
}

/**
 * A carrier's API key as `GET /api/carrier/keys` shows it: never the key itself nor its hash.
 */
export interface ApiKeyView {
  readonly id: string;
  /** A label the carrier chose ("Dispatch system"). */
  readonly name: string;
  /** The first 8 characters after `thk_`, to tell keys apart; '' for keys made before names. */
  readonly prefix: string;
  /** What the key may do: `deliveries:read`, `deliveries:write`, `couriers:manage`, … */
  readonly scopes: readonly string[];
  readonly createdAt: number;
  /** The admin's principal id, or `apikey:<id>` of the key that made it; null if unknown. */
  readonly createdBy: string | null;
  /** When the key last made an accepted request, or null if never. */
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
  /** The key that replaced it when it was rotated, or null. */
  readonly replacedBy: string | null;
  readonly status: 'active' | 'revoked';
}

/** A courier invitation a carrier sent (`/api/carrier/couriers`). */
export interface CourierInviteView {
  readonly id: string;
  /** The name the courier will go by. */
  readonly displayName: string;
  readonly createdAt: number;
  /** The link is dead from this instant on. */
  readonly expiresAt: number;
  readonly createdBy: string;
  readonly status: 'pending' | 'accepted' | 'revoked' | 'expired';
  /** The courier the invitation made, once accepted. */
  readonly acceptedBy: string | null;
}

/** A courier of a carrier, as its admins see it. */
export interface CarrierCourierView {
  readonly id: string;
  readonly displayName: string;
  readonly username: string;
  /** `revoked`: disabled by the carrier; they can no longer sign in or open any door. */
  readonly status: 'active' | 'revoked';
  readonly revokedAt: number | null;
}

/** A carrier and the home's decision about it (`GET /api/homes/:homeId/carriers`). */
export interface HomeCarrierView {
  readonly id: string;
  readonly name: string;
  /** `undecided`: the owner has not chosen; the carrier may not deliver inside until allowed. */
  readonly decision: 'allowed' | 'blocked' | 'undecided';
  readonly decidedAt: number | null;
  /** Who decided, when known. */
  readonly decidedBy: { readonly id: string; readonly displayName: string } | null;
}

/** A courier a home knows: one who has or had a delivery there. */
export interface HomeCourierView {
  readonly id: string;
  readonly displayName: string;
  readonly carrier: { readonly id: string; readonly name: string } | null;
  /** When and by whom the courier was blocked at this home, or null. */
  readonly blocked: {
    readonly at: number;
    readonly by: { readonly id: string; readonly displayName: string };
  } | null;
}

/**
 * A delivery as its carrier sees it: every `/api/carrier/deliveries…` answer and the
 * `delivery` of webhook payloads.
 */
export interface CarrierDeliveryView {
  readonly id: string;
  readonly carrierId: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly packageRef: string;
  /** Inside (the courier is let in) or at the door. */
  readonly placement: DeliveryPlacement;
  /** ms since the epoch. */
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly courierId: string | null;
  readonly status: DeliveryStatus;
  readonly createdAt: number;
  /** When it last changed, ms. */
  readonly updatedAt: number;
}

/** One state change in a delivery's history (`GET /api/carrier/deliveries/:deliveryId`). */
export interface DeliveryEventView {
  /** Unique; also the `id` of the webhook payload that announced it. */
  readonly id: string;
  /** 1, 2, 3… within the delivery, in the order they happened. */
  readonly seq: number;
  readonly type: DeliveryEventType;
  /** The delivery's status after it. */
  readonly status: DeliveryStatus;
  /** ms since the epoch, server clock. */
  readonly at: number;
  /** What else it says: courier, access session, reason. */
  readonly data: Readonly<Record<string, unknown>>;
}

/**
 * `GET /api/carrier/deliveries/:deliveryId/proof`: what happened, and a signed receipt. The
 * receipt (`publicKey` … `checkpoints`) is a piece of the audit chain in the format of the
 * owner's audit export, so `threshold audit verify --file proof.json` checks it: the entries
 * about this delivery whole, everything else in between redacted to the hashes that link the
 * chain, ending on a checkpoint signed by the server. No video, no frames.
 */
export interface DeliveryProofView {
  readonly format: 'threshold-delivery-proof/v1';
  readonly delivery: CarrierDeliveryView;
  /** The final status, and for a delivery at the door the session's own outcome code. */
  readonly outcome: {
    readonly status: DeliveryStatus;
    readonly code: string | null;
    readonly message: string | null;
  };
  /** ms since the epoch; null where it did not happen. */
  readonly times: {
    readonly windowStart: number;
    readonly windowEnd: number;
    /** The courier asked to open the door (the last access session). */
    readonly requestedAt: number | null;
    /** The lock confirmed it opened. */
    readonly unlockedAt: number | null;
    /** The lock confirmed it locked again. */
    readonly lockConfirmedAt: number | null;
    /** The access session ended, or the courier left the parcel at the door. */
    readonly endedAt: number | null;
  };
  /** How much of the last session the camera proved it watched; null without a session. */
  readonly coverage: {
    /** 0..1. */
    readonly ratio: number;
    readonly startMs: number | null;
    readonly endMs: number | null;
    /** How many gaps, and their total length, ms. */
    readonly gaps: number;
    readonly gapMs: number;
  } | null;
  /** The access sessions of the delivery, oldest first. */
  readonly sessionIds: readonly string[];
  /** The server's audit signing key (Ed25519, as `keys/audit-ed25519.pub`). */
  readonly publicKey: string;
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly entries: readonly ExportedAuditEntry[];
  readonly checkpoints: readonly AuditCheckpoint[];
}

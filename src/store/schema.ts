/**
 * The tables of Threshold's store, as Kysely sees them.
 *
 * These row shapes stay inside `src/store`: repositories map them to and from the core types.
 * Column conventions, chosen so the same schema works on SQLite and PostgreSQL:
 * - names are snake_case;
 * - times are integer milliseconds since the Unix epoch (`bigint` columns, read as numbers);
 * - booleans are integers 0 / 1;
 * - JSON is text.
 */
import type { ColumnType, Generated } from 'kysely';
import type { DeliveryStatus, DeviceKind, Role } from '../core/model.ts';
import type { AuditActor } from '../core/audit-chain.ts';

/** `homes`: one row per home. */
export interface HomeRow {
  id: string;
  name: string;
  address: string;
  /** Degrees, WGS 84. */
  geofence_lat: number;
  /** Degrees, WGS 84. */
  geofence_lon: number;
  /** Metres. */
  geofence_radius_m: number;
  /** IANA time zone. */
  time_zone: string;
  /** 0 / 1. */
  in_home_delivery: number;
  /** JSON text: the weekdays ('mon'…'sun') without in-home delivery. */
  delivery_days_off: string;
  /** 0 / 1: the owner is asked before each in-home delivery. */
  delivery_ask_first: number;
  /** How long a courier waits for the owner's answer before "leave at door", ms. */
  delivery_ask_timeout_ms: number;
}

/** `devices`: locks, door sensors and cameras, each in one home. */
export interface DeviceRow {
  id: string;
  home_id: string;
  kind: DeviceKind;
  name: string;
}

/** `doors`: a door of a home and the devices that guard it. */
export interface DoorRow {
  id: string;
  home_id: string;
  name: string;
  lock_device_id: string;
  door_sensor_device_id: string | null;
  /** JSON text: an array of device ids. */
  camera_device_ids: string;
}

/** `carriers`: delivery organisations. */
export interface CarrierRow {
  id: string;
  name: string;
}

/** `principals`: everyone who signs in, with their unique user name and password hash. */
export interface PrincipalRow {
  id: string;
  username: string;
  password_hash: string;
  role: Role;
  display_name: string;
  home_id: string | null;
  carrier_id: string | null;
  /** When the principal was disabled (removed from the household), or null. */
  disabled_at: number | null;
}

/** `api_keys`: carrier API credentials; only a hash of the key is stored. */
export interface ApiKeyRow {
  id: string;
  carrier_id: string;
  key_hash: string;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
  /** A label the carrier chose ("Dispatch system"). */
  name: Generated<string>;
  /** JSON text: an array of scopes (`deliveries:read`, …). */
  scopes: Generated<string>;
  /** The key's first characters, to tell keys apart; '' for keys made before 0008. */
  prefix: Generated<string>;
  /** The principal (admin) or key that made it; null for keys made before 0008. */
  created_by: Generated<string | null>;
  /** The key that replaced it when it was rotated, or null. */
  replaced_by: Generated<string | null>;
}

/** `auth_sessions`: sign-in sessions, keyed by a hash of the bearer token. */
export interface AuthSessionRow {
  token_hash: string;
  principal_id: string;
  created_at: number;
  expires_at: number;
}

/** `deliveries`. */
export interface DeliveryRow {
  id: string;
  carrier_id: string;
  home_id: string;
  door_id: string;
  package_ref: string;
  window_start: number;
  window_end: number;
  courier_id: string | null;
  status: DeliveryStatus;
  created_at: number;
  /** Where the carrier would leave it: inside, or at the door. */
  placement: Generated<'in-home' | 'doorstep'>;
  /** When it last changed; null for deliveries made before 0008. */
  updated_at: Generated<number | null>;
}

/** `grants`: permissions to open a door. */
export interface GrantRow {
  id: string;
  kind: 'delivery';
  principal_id: string;
  home_id: string;
  door_id: string;
  delivery_id: string;
  valid_from: number;
  valid_until: number;
  max_uses: number;
  uses: number;
  max_open_ms: number;
  /** 0 / 1. */
  requires_recording: number;
  /** 0 / 1. */
  requires_presence: number;
  revoked_at: number | null;
}

/** `access_sessions`: the indexed fields of a session plus its full JSON snapshot. */
export interface AccessSessionRow {
  id: string;
  home_id: string;
  door_id: string;
  delivery_id: string | null;
  principal_id: string;
  state: string;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  /** JSON text. */
  data: string;
  /** The replica driving the live session (migration 0010); null for a single server. */
  owner: ColumnType<string | null, string | null | undefined, string | null>;
}

/** `clip_frames`: the frames recorded for a session; the image bytes live in files. */
export interface ClipFrameRow {
  session_id: string;
  seq: number;
  captured_at: number;
  received_at: number;
  digest: string;
  path: string;
  bytes: number;
}

/** `audit_entries`: the hash-chained audit log. */
export interface AuditEntryRow {
  seq: number;
  at: number;
  kind: string;
  actor_type: AuditActor['type'];
  actor_id: string;
  subject: string;
  /** JSON text of an object. */
  data: string;
  device_mac: string | null;
  prev_hash: string;
  hash: string;
}

/** `audit_checkpoints`: signed checkpoints over the audit chain. */
export interface AuditCheckpointRow {
  seq: number;
  hash: string;
  at: number;
  public_key: string;
  signature: string;
}

/** `device_status`: the last known facts about each device. */
export interface DeviceStatusRow {
  device_id: string;
  home_id: string;
  /** 0 / 1. */
  online: number;
  last_seen_at: number | null;
  /** JSON text. */
  state: string;
  updated_at: number;
}

/** Every table of the store, by name. */
/** A carrier a home allows to deliver inside. */
export interface HomeCarrierRow {
  home_id: string;
  carrier_id: string;
  /** ms since the epoch: when the owner decided (allowed or blocked). */
  allowed_at: number;
  status: Generated<'allowed' | 'blocked'>;
  /** Who decided; null for rows made before 0008. */
  decided_by: Generated<string | null>;
}

/** `home_blocked_couriers`: couriers an owner does not want at their door. */
export interface HomeBlockedCourierRow {
  home_id: string;
  courier_id: string;
  blocked_at: number;
  blocked_by: string;
}

/** `courier_invites`: a link a carrier admin sends a courier, by the hash of its token. */
export interface CourierInviteRow {
  id: string;
  carrier_id: string;
  token_hash: string;
  display_name: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  accepted_by: string | null;
  accepted_at: number | null;
  revoked_at: number | null;
}

/** `delivery_events`: every state change of a delivery, numbered per delivery. */
export interface DeliveryEventRow {
  id: string;
  delivery_id: string;
  carrier_id: string;
  seq: number;
  type: string;
  status: string;
  at: number;
  /** JSON text. */
  data: string;
}

/** `idempotency_keys`: the first answer to a carrier's request, by its Idempotency-Key. */
export interface IdempotencyKeyRow {
  carrier_id: string;
  key: string;
  request: string;
  request_hash: string;
  status_code: number | null;
  response: string | null;
  created_at: number;
}

/** `webhooks`: where a carrier wants delivery events posted. */
export interface WebhookRow {
  id: string;
  carrier_id: string;
  url: string;
  secret_salt: string;
  /** JSON text: event types, or ["*"]. */
  events: string;
  created_at: number;
  created_by: string;
  disabled_at: number | null;
}

/** `webhook_deliveries`: each event sent (or being sent) to a webhook. */
export interface WebhookDeliveryRow {
  id: string;
  webhook_id: string;
  carrier_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
}

/** `passkeys`: WebAuthn credentials of principals. */
export interface PasskeyRow {
  /** Credential id, base64url. */
  id: string;
  principal_id: string;
  name: string;
  /** COSE public key, base64url. */
  public_key: string;
  counter: number;
  /** JSON text: an array of transports. */
  transports: string;
  /** 'singleDevice' or 'multiDevice'. */
  device_type: string;
  /** 0 / 1. */
  backed_up: number;
  created_at: number;
  last_used_at: number | null;
}

/** `push_subscriptions`: Web Push endpoints of household members' browsers. */
export interface PushSubscriptionRow {
  id: string;
  principal_id: string;
  home_id: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  created_at: number;
  last_success_at: number | null;
  failures: number;
}

/** `alarm_acks`: who acknowledged which alarm of a session, and when. */
export interface AlarmAckRow {
  session_id: string;
  alarm_type: string;
  principal_id: string;
  acknowledged_at: number;
}

/** `guest_grants`: a guest's permission to open a door of a home under a schedule. */
export interface GuestGrantRow {
  id: string;
  home_id: string;
  door_id: string;
  principal_id: string;
  /** Who shared it (an owner or member); revoking them revokes this too. */
  granted_by: string;
  /** JSON text: a GrantSchedule. */
  schedule: string;
  max_uses: number | null;
  uses: number;
  max_minutes_per_entry: number | null;
  /** 0 / 1. */
  requires_recording: number;
  created_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  revoke_reason: string | null;
}

/** `invites`: links an owner sends to a guest; only the token's hash is stored. */
export interface InviteRow {
  id: string;
  token_hash: string;
  home_id: string;
  door_id: string;
  created_by: string;
  display_name: string;
  /** JSON text: schedule and limits of the grant the guest gets. */
  grant_spec: string;
  created_at: number;
  expires_at: number;
  accepted_at: number | null;
  accepted_by: string | null;
  revoked_at: number | null;
}

/**
 * `pin_slots`: keypad slots of locks, as Threshold wants them and as the lock last confirmed.
 * Codes are never stored, only their keyed digests.
 */
export interface PinSlotRow {
  lock_device_id: string;
  slot: number;
  principal_id: string | null;
  name: string | null;
  /** Keyed digest of the code Threshold wrote; null when it wants the slot empty. */
  code_digest: string | null;
  desired_state: 'set' | 'clear';
  sync_state: 'pending' | 'confirmed' | 'failed' | 'out-of-sync' | 'unknown-on-lock';
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  /** What the lock last reported for the slot: its digest, or null for empty. */
  lock_digest: string | null;
  checked_at: number | null;
  updated_at: number;
  /** The validity window Threshold wants on the lock, ms (lock clock); both null: at all times. */
  window_from: number | null;
  window_until: number | null;
  /** The window the lock last listed for the slot; both null: none (or no code). */
  lock_window_from: number | null;
  lock_window_until: number | null;
  /** 1 when the slot's write is of the window alone (no code), else 0. */
  window_only: number;
}

/** `entries`: every unlock of a home's lock, by whom and how ("who unlocked"). */
export interface EntryRow {
  id: string;
  home_id: string;
  lock_device_id: string;
  door_id: string | null;
  at: number;
  method: 'app' | 'remote' | 'pin' | 'manual';
  principal_id: string | null;
  slot: number | null;
  session_id: string | null;
}

/** `entry_alert_settings`: whose entries an owner or member wants pushed to them. */
export interface EntryAlertSettingRow {
  principal_id: string;
  mode: 'all' | 'chosen' | 'off';
  updated_at: number;
}

/** `entry_alert_people`: the people a watcher chose to be told about (mode 'chosen'). */
export interface EntryAlertPersonRow {
  watcher_id: string;
  subject_id: string;
}

/**
 * `grant_list_versions`: per lock, the version of the last offline grant list signed for it
 * (only ever grows) and when that list was issued.
 */
export interface GrantListVersionRow {
  lock_device_id: string;
  version: number;
  /** ms since the epoch, the control plane's clock. */
  issued_at: number;
}

/** `replicas`: each running replica's lease (migration 0010). */
export interface ReplicaRow {
  id: string;
  /** ms since the epoch. */
  started_at: number;
  /** ms since the epoch: past this the replica counts as dead. */
  expires_at: number;
}

/** `audit_once`: keys of audit facts recorded once across replicas (migration 0010). */
export interface AuditOnceRow {
  key: string;
  /** ms since the epoch. */
  at: number;
}

export interface Database {
  homes: HomeRow;
  devices: DeviceRow;
  doors: DoorRow;
  carriers: CarrierRow;
  home_carriers: HomeCarrierRow;
  principals: PrincipalRow;
  api_keys: ApiKeyRow;
  auth_sessions: AuthSessionRow;
  deliveries: DeliveryRow;
  grants: GrantRow;
  access_sessions: AccessSessionRow;
  clip_frames: ClipFrameRow;
  audit_entries: AuditEntryRow;
  audit_checkpoints: AuditCheckpointRow;
  device_status: DeviceStatusRow;
  passkeys: PasskeyRow;
  push_subscriptions: PushSubscriptionRow;
  alarm_acks: AlarmAckRow;
  guest_grants: GuestGrantRow;
  invites: InviteRow;
  entries: EntryRow;
  home_blocked_couriers: HomeBlockedCourierRow;
  courier_invites: CourierInviteRow;
  delivery_events: DeliveryEventRow;
  idempotency_keys: IdempotencyKeyRow;
  webhooks: WebhookRow;
  webhook_deliveries: WebhookDeliveryRow;
  entry_alert_settings: EntryAlertSettingRow;
  entry_alert_people: EntryAlertPersonRow;
  pin_slots: PinSlotRow;
  grant_list_versions: GrantListVersionRow;
  replicas: ReplicaRow;
  audit_once: AuditOnceRow;
}

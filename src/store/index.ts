/** The store's public API: open it, then use its repositories. */
export { openStore, type Store, type StoreOptions } from './store.ts';
export {
  DIALECTS,
  dialectOf,
  isUniqueViolation,
  lockKey,
  openPostgres,
  openSqlite,
  type AvailableDialect,
  type DialectName,
  type PostgresOptions,
} from './dialect.ts';
export { migrateToLatest } from './migrator.ts';
export { MIGRATIONS } from './migrations/index.ts';
export type { Database } from './schema.ts';
export { HomeRepository } from './home-repository.ts';
export {
  PrincipalRepository,
  type ApiKey,
  type AuthSession,
  type Carrier,
  type PrincipalCredentials,
  type PrincipalWithPassword,
} from './principal-repository.ts';
export { DeliveryRepository } from './delivery-repository.ts';
export {
  SessionRepository,
  type SessionListOptions,
  type StoredSession,
} from './session-repository.ts';
export { ClipRepository, type ClipFrame } from './clip-repository.ts';
export {
  AuditRepository,
  type AlongsideWrite,
  type AuditAppend,
  type AuditChainer,
} from './audit-repository.ts';
export { DeviceStatusRepository, type DeviceStatus } from './device-status-repository.ts';
export { AlarmAckRepository, type AlarmAck } from './alarm-ack-repository.ts';
export {
  PushSubscriptionRepository,
  type NewPushSubscription,
  type PushUpsertResult,
  type StoredPushSubscription,
} from './push-subscription-repository.ts';
export { PasskeyRepository, type Passkey } from './passkey-repository.ts';
export {
  GuestGrantRepository,
  type Invite,
  type InviteGrantSpec,
} from './guest-grant-repository.ts';
export {
  PinSlotRepository,
  PIN_SYNC_STATES,
  type PinSlot,
  type PinDesiredState,
  type PinSyncState,
} from './pin-slot-repository.ts';
export {
  EntryRepository,
  ENTRY_ALERT_MODES,
  ENTRY_METHODS,
  MAX_ENTRY_PAGE,
  type Entry,
  type EntryAlertMode,
  type EntryAlertSetting,
  type EntryMethod,
} from './entry-repository.ts';
export { GrantListRepository, type GrantListVersion } from './grant-list-repository.ts';
export { ReplicaRepository, type ReplicaLease } from './replica-repository.ts';
export {
  DeliveryEventRepository,
  DELIVERY_EVENT_TYPES,
  type DeliveryEvent,
  type DeliveryEventType,
} from './delivery-event-repository.ts';

/** Opening the store: a database, migrated, with one repository per aggregate. */
import type { Kysely } from 'kysely';
import { AlarmAckRepository } from './alarm-ack-repository.ts';
import { PasskeyRepository } from './passkey-repository.ts';
import { GuestGrantRepository } from './guest-grant-repository.ts';
import { PinSlotRepository } from './pin-slot-repository.ts';
import { PushSubscriptionRepository } from './push-subscription-repository.ts';
import { AuditRepository } from './audit-repository.ts';
import { EntryRepository } from './entry-repository.ts';
import { ClipRepository } from './clip-repository.ts';
import { DeliveryRepository } from './delivery-repository.ts';
import { DeviceStatusRepository } from './device-status-repository.ts';
import { openPostgres, openSqlite } from './dialect.ts';
import { HomeRepository } from './home-repository.ts';
import { migrateToLatest } from './migrator.ts';
import { PrincipalRepository } from './principal-repository.ts';
import type { Database } from './schema.ts';
import { SessionRepository } from './session-repository.ts';
import { ReplicaRepository } from './replica-repository.ts';

/** The open store. Repositories share one database handle; close it once, when done. */
export interface Store {
  /** The underlying Kysely handle, for transactions that span repositories. */
  readonly db: Kysely<Database>;
  readonly homes: HomeRepository;
  readonly principals: PrincipalRepository;
  readonly deliveries: DeliveryRepository;
  readonly sessions: SessionRepository;
  readonly clips: ClipRepository;
  readonly audit: AuditRepository;
  readonly deviceStatus: DeviceStatusRepository;
  readonly alarmAcks: AlarmAckRepository;
  readonly passkeys: PasskeyRepository;
  readonly guestGrants: GuestGrantRepository;
  readonly pinSlots: PinSlotRepository;
  readonly pushSubscriptions: PushSubscriptionRepository;
  readonly entries: EntryRepository;
  /** Replicas' leases (several servers on one PostgreSQL database). */
  readonly replicas: ReplicaRepository;
  /** Closes the database; idempotent. The store must not be used afterwards. */
  close(): Promise<void>;
}

/** Where the store lives: a SQLite file, or a PostgreSQL database. */
export type StoreOptions =
  | {
      readonly dialect: 'sqlite';
      /** SQLite file path (created if missing), or `':memory:'`. */
      readonly path: string;
    }
  | {
      readonly dialect: 'postgres';
      /**
       * `postgres://user:password@host:port/database`; the database must exist (the store
       * creates its tables, not the database). See {@link openPostgres}.
       */
      readonly url: string;
      /** Most connections the store opens at once; default 10. */
      readonly maxConnections?: number;
    };

/**
 * Opens the database, applies any pending migrations and builds the repositories. Rejects,
 * with the database closed again, if a migration fails (the error names it).
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  const db = openDatabase(options);
  try {
    await migrateToLatest(db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return {
    db,
    homes: new HomeRepository(db),
    principals: new PrincipalRepository(db),
    deliveries: new DeliveryRepository(db),
    sessions: new SessionRepository(db),
    clips: new ClipRepository(db),
    audit: new AuditRepository(db),
    deviceStatus: new DeviceStatusRepository(db),
    alarmAcks: new AlarmAckRepository(db),
    passkeys: new PasskeyRepository(db),
    guestGrants: new GuestGrantRepository(db),
    pinSlots: new PinSlotRepository(db),
    pushSubscriptions: new PushSubscriptionRepository(db),
    entries: new EntryRepository(db),
    replicas: new ReplicaRepository(db),
    close: () => db.destroy(),
  };
}

function openDatabase(options: StoreOptions): Kysely<Database> {
  switch (options.dialect) {
    case 'sqlite':
      return openSqlite(options.path);
    case 'postgres':
      return openPostgres(
        options.url,
        options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections },
      );
  }
}

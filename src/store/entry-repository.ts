/**
 * "Who unlocked": every unlock of a home's lock, by whom and how, and each household person's
 * choice of whose entries they are told about.
 */
import type { Kysely } from 'kysely';
import type { Database, EntryRow } from './schema.ts';

/** How a door was unlocked. */
export type EntryMethod =
  /** With the app at the door: an access session (courier or guest). */
  | 'app'
  /** From the app, from afar, by an owner or household member. */
  | 'remote'
  /** A keypad code (`slot` says whose). */
  | 'pin'
  /** A key or the thumb-turn: the lock cannot tell who. */
  | 'manual';

/** Every {@link EntryMethod}. */
export const ENTRY_METHODS: readonly EntryMethod[] = ['app', 'remote', 'pin', 'manual'];

/** One unlock. */
export interface Entry {
  readonly id: string;
  readonly homeId: string;
  readonly lockDeviceId: string;
  /** The door the lock is fitted to, when one is on record. */
  readonly doorId: string | null;
  /** When it happened, server clock, ms since the epoch. */
  readonly at: number;
  readonly method: EntryMethod;
  /** Who, when known: null for a key or thumb-turn, and for a code Threshold did not set. */
  readonly principalId: string | null;
  /** The keypad slot, for `pin`. */
  readonly slot: number | null;
  /** The access session, for `app`. */
  readonly sessionId: string | null;
}

/** Whose entries a person is told about by push: everyone's, chosen people's, or nobody's. */
export type EntryAlertMode = 'all' | 'chosen' | 'off';

/** Every {@link EntryAlertMode}. */
export const ENTRY_ALERT_MODES: readonly EntryAlertMode[] = ['all', 'chosen', 'off'];

/** A person's entry-alert choice. */
export interface EntryAlertSetting {
  readonly mode: EntryAlertMode;
  /** The people whose entries they want, for `chosen` (kept, though unused, for the others). */
  readonly people: readonly string[];
  /** False when the person never chose, and `mode` is their role's default. */
  readonly chosen: boolean;
}

/** Most entries one {@link EntryRepository.listForHome} returns. */
export const MAX_ENTRY_PAGE = 200;

/** Stores entries and entry-alert choices. */
export class EntryRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Records an entry. An app entry is recorded once per session, and an entry once per id (a
   * device event's entry has an id of the event's own, the same on every replica): false when
   * its session or its id already has one (nothing is written then).
   */
  async record(entry: Entry): Promise<boolean> {
    const r = await this.db
      .insertInto('entries')
      .values(toRow(entry))
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /** One entry, or null. */
  async get(id: string): Promise<Entry | null> {
    const row = await this.db
      .selectFrom('entries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? fromRow(row) : null;
  }

  /**
   * A home's entries, newest first: at most `limit` (1…{@link MAX_ENTRY_PAGE}) of those before
   * `beforeMs` (all when null).
   */
  async listForHome(homeId: string, beforeMs: number | null, limit: number): Promise<Entry[]> {
    const n = Math.max(1, Math.min(MAX_ENTRY_PAGE, Math.floor(limit)));
    let q = this.db.selectFrom('entries').selectAll().where('home_id', '=', homeId);
    if (beforeMs !== null) q = q.where('at', '<', beforeMs);
    const rows = await q.orderBy('at', 'desc').orderBy('id', 'desc').limit(n).execute();
    return rows.map(fromRow);
  }

  /**
   * A person's entry-alert choice; `defaultMode` when they never chose (the owner is told of
   * every entry, a member of the people they choose).
   */
  async alertSetting(principalId: string, defaultMode: EntryAlertMode): Promise<EntryAlertSetting> {
    const [row, people] = await Promise.all([
      this.db
        .selectFrom('entry_alert_settings')
        .select('mode')
        .where('principal_id', '=', principalId)
        .executeTakeFirst(),
      this.db
        .selectFrom('entry_alert_people')
        .select('subject_id')
        .where('watcher_id', '=', principalId)
        .orderBy('subject_id')
        .execute(),
    ]);
    return {
      mode: row?.mode ?? defaultMode,
      people: people.map((p) => p.subject_id),
      chosen: row !== undefined,
    };
  }

  /** Replaces a person's entry-alert choice, in one transaction. */
  async setAlertSetting(
    principalId: string,
    mode: EntryAlertMode,
    people: readonly string[],
    atMs: number,
  ): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('entry_alert_settings')
        .values({ principal_id: principalId, mode, updated_at: atMs })
        .onConflict((oc) => oc.column('principal_id').doUpdateSet({ mode, updated_at: atMs }))
        .execute();
      await trx.deleteFrom('entry_alert_people').where('watcher_id', '=', principalId).execute();
      const unique = [...new Set(people)];
      if (unique.length > 0) {
        await trx
          .insertInto('entry_alert_people')
          .values(unique.map((subject) => ({ watcher_id: principalId, subject_id: subject })))
          .execute();
      }
    });
  }

  /** The people who chose to be told of `subjectId`'s entries (their mode aside). */
  async watchersOf(subjectId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('entry_alert_people')
      .select('watcher_id')
      .where('subject_id', '=', subjectId)
      .execute();
    return rows.map((r) => r.watcher_id);
  }
}

function toRow(e: Entry): EntryRow {
  return {
    id: e.id,
    home_id: e.homeId,
    lock_device_id: e.lockDeviceId,
    door_id: e.doorId,
    at: e.at,
    method: e.method,
    principal_id: e.principalId,
    slot: e.slot,
    session_id: e.sessionId,
  };
}

function fromRow(r: EntryRow): Entry {
  return {
    id: r.id,
    homeId: r.home_id,
    lockDeviceId: r.lock_device_id,
    doorId: r.door_id,
    at: Number(r.at),
    method: r.method,
    principalId: r.principal_id,
    slot: r.slot === null ? null : Number(r.slot),
    sessionId: r.session_id,
  };
}

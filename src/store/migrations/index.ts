/**
 * Every migration, in order, as a static object: no folder scan, so the store migrates the
 * same way from any working directory and from a bundle. Add new migrations at the end with
 * the next number; never edit or rename one that has shipped. (Each runs on SQLite and on
 * PostgreSQL; the words that differ between them come from column-types.ts. Making them
 * dialect-aware left every SQLite statement as it shipped.)
 */
import type { Migration } from 'kysely';
import * as initial from './0001-initial.ts';
import * as webApp from './0002-web-app.ts';
import * as guestGrants from './0003-guest-grants.ts';
import * as pinSlots from './0004-pin-slots.ts';
import * as principalDisabled from './0005-principal-disabled.ts';
import * as pinWindows from './0006-pin-windows.ts';
import * as entries from './0007-entries.ts';
import * as carrierPlatform from './0008-carrier-platform.ts';
import * as grantLists from './0009-grant-lists.ts';
import * as replicas from './0010-replicas.ts';
import * as openSessionOwnerIndex from './0011-open-session-owner-index.ts';

/** Migrations by name; Kysely applies them in name order. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-initial': initial,
  '0002-web-app': webApp,
  '0003-guest-grants': guestGrants,
  '0004-pin-slots': pinSlots,
  '0005-principal-disabled': principalDisabled,
  '0006-pin-windows': pinWindows,
  '0007-entries': entries,
  '0008-carrier-platform': carrierPlatform,
  '0009-grant-lists': grantLists,
  '0010-replicas': replicas,
  '0011-open-session-owner-index': openSessionOwnerIndex,
};

/**
 * `threshold audit verify`: proves the audit log's hash chain and signed checkpoints, from the
 * database of a data directory or from an exported file. Exit 0 when intact; 1, naming the
 * first bad entry, when not.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  verifyAuditLog,
  type AuditCheckpoint,
  type ExportedAuditEntry,
  type AuditVerification,
} from '../core/audit-chain.ts';
import { verifyStoredLog } from '../server/audit-log.ts';
import { sha256Hex, verifyEd25519 } from '../server/keys.ts';
import { openPostgres, openStore, type StoreOptions } from '../store/index.ts';
import { commandStoreOptions, databaseUrlFrom } from './store-options.ts';

/** What the owner's audit export holds (GET /api/homes/:homeId/audit). */
interface AuditExport {
  readonly entries: ExportedAuditEntry[];
  readonly checkpoints: AuditCheckpoint[];
  readonly publicKey?: string;
}

export interface AuditVerifyOptions {
  readonly data: string;
  /** `--database-url` (else `THRESHOLD_DATABASE_URL`): the PostgreSQL database; else SQLite in `data`. */
  readonly databaseUrl?: string;
  readonly file?: string;
  readonly publicKey?: string;
  readonly json?: boolean;
}

function trustedKey(opts: AuditVerifyOptions): string | null {
  if (opts.publicKey) return opts.publicKey;
  const path = join(opts.data, 'keys', 'audit-ed25519.pub');
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : null;
}

/**
 * Whether the database holds an audit log to verify: its SQLite file exists, or its PostgreSQL
 * database has the table. Checked before the store opens it, because opening makes what is
 * missing (the file, the tables), and an empty log would "verify".
 */
async function holdsAuditLog(where: StoreOptions): Promise<boolean> {
  if (where.dialect === 'sqlite') return existsSync(where.path);
  const db = openPostgres(where.url, { maxConnections: 1 });
  try {
    return (await db.introspection.getTables()).some((t) => t.name === 'audit_entries');
  } finally {
    await db.destroy();
  }
}

export async function auditVerifyCommand(opts: AuditVerifyOptions): Promise<void> {
  const key = trustedKey(opts);
  let v: AuditVerification;
  if (opts.file) {
    let doc: AuditExport;
    try {
      doc = JSON.parse(readFileSync(opts.file, 'utf8')) as AuditExport;
    } catch (err) {
      console.error(
        `threshold audit verify: cannot read ${opts.file}: ${err instanceof Error ? err.message : String(err)}`,
      );
      process.exit(2);
    }
    if (!Array.isArray(doc.entries) || !Array.isArray(doc.checkpoints)) {
      console.error(
        `threshold audit verify: ${opts.file} is not an audit export (no entries or checkpoints)`,
      );
      process.exit(2);
    }
    const trusted = key ?? doc.publicKey ?? null;
    if (!key && !opts.json) {
      console.error(
        'note: checking against the public key named in the file itself; pass --public-key (the server’s keys/audit-ed25519.pub) to check against a key you trust.',
      );
    }
    const first = doc.entries[0];
    v = verifyAuditLog(
      sha256Hex,
      verifyEd25519,
      doc.entries,
      doc.checkpoints,
      trusted ? [trusted] : [],
      first ? { seq: first.seq, prevHash: first.prevHash } : undefined,
    );
  } else {
    const databaseUrl = databaseUrlFrom(opts.databaseUrl, 'threshold audit verify');
    const where = await commandStoreOptions(opts.data, databaseUrl);
    let holds: boolean;
    try {
      holds = await holdsAuditLog(where);
    } catch (err) {
      console.error(
        `threshold audit verify: cannot open the database: ${err instanceof Error ? err.message : String(err)}`,
      );
      process.exit(2);
    }
    if (!holds) {
      console.error(
        where.dialect === 'sqlite'
          ? `threshold audit verify: no database at ${where.path}`
          : 'threshold audit verify: that PostgreSQL database has no audit log (is it the one the server uses?)',
      );
      process.exit(2);
    }
    if (!key) {
      console.error(
        `threshold audit verify: no public key (${join(opts.data, 'keys', 'audit-ed25519.pub')} is missing; pass --public-key)`,
      );
      process.exit(2);
    }
    let store: Awaited<ReturnType<typeof openStore>>;
    try {
      store = await openStore(where);
    } catch (err) {
      console.error(
        `threshold audit verify: cannot open the database: ${err instanceof Error ? err.message : String(err)}`,
      );
      process.exit(2);
    }
    try {
      v = await verifyStoredLog(store.audit, sha256Hex, verifyEd25519, [key]);
    } finally {
      await store.close();
    }
  }
  if (opts.json) {
    console.log(JSON.stringify(v, null, 2));
  } else if (!v.ok) {
    console.error(
      `audit log BROKEN at entry ${v.firstBreak?.seq}: ${v.firstBreak?.message} (${v.firstBreak?.reason})`,
    );
  } else if (v.unsignedTail > 0) {
    console.error(
      `audit log NOT PROVEN: entries ${v.signedUpTo + 1} to ${v.lastSeq} carry no signature, so they could have been rewritten. ` +
        'A running server signs within a second: run this again. After a crash, start the server once: it signs them and records that it did.',
    );
  } else {
    console.log(
      `audit log intact: ${v.entries} entries${v.redacted > 0 ? ` (${v.redacted} redacted to their hashes)` : ''}, ${v.checkpoints} signed checkpoints, head ${v.lastHash.slice(0, 16)}… at entry ${v.lastSeq}`,
    );
  }
  process.exit(v.ok && v.unsignedTail === 0 ? 0 : 1);
}

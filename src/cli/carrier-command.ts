/**
 * `threshold carrier add`: a new carrier on a data directory, with its first admin (who signs
 * in to manage keys and couriers) and a first API key holding every scope. The admin's password
 * and the key are printed once; the database keeps only their hashes.
 *
 * The command writes the store directly, so it works whether the server is running or not
 * (SQLite waits for the other writer). Like every other change of who may do what, it is
 * recorded in the audit log: `carrier.created` (the carrier and its admin) and `apikey.created`
 * (the first key, as the API records a key it makes), by the actor `system:cli`, committed in
 * the same transaction as the rows they record and signed with the server's audit key (from
 * `<data>/keys`, created there if the server never ran). The entries are chained onto the log
 * as stored; should the server append in between, the command's transaction fails as a whole
 * (two entries can never share a place in the chain) and it tries again.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { AuditActor, AuditFact } from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import type { Signer } from '../core/crypto-ports.ts';
import { ID_PATTERN } from '../protocol/topics.ts';
import { systemClock } from '../protocol/system-clock.ts';
import { AuditLog } from '../server/audit-log.ts';
import { hashPassword, mintApiKey, tokenHash } from '../server/auth.ts';
import { loadOrCreateKeys, sha256Hex } from '../server/keys.ts';
import { CARRIER_SCOPES } from '../server/routes/carrier-auth.ts';
import { openStore, PrincipalRepository, type AlongsideWrite, type Store } from '../store/index.ts';
import { commandStoreOptions, databaseUrlFrom } from './store-options.ts';

export interface CarrierAddOptions {
  readonly data: string;
  /** `--database-url` (else `THRESHOLD_DATABASE_URL`): the PostgreSQL database; else SQLite in `data`. */
  readonly databaseUrl?: string;
  readonly name: string;
  readonly adminUsername: string;
  /** The carrier's id; default `carrier-` and the name in lower case with dashes. */
  readonly id?: string;
  readonly json?: boolean;
}

/** What `carrier add` made: shown once. */
export interface AddedCarrier {
  readonly carrier: { readonly id: string; readonly name: string };
  readonly admin: { readonly id: string; readonly username: string; readonly password: string };
  readonly apiKey: { readonly id: string; readonly key: string; readonly scopes: string[] };
}

/** Why `carrier add` could not add the carrier; `usage` for bad options (exit 2). */
export class CarrierAddError extends Error {
  constructor(
    message: string,
    readonly usage: boolean,
  ) {
    super(message);
  }
}

/** The user names people may choose (as for invitations). */
const USERNAME_RE = /^[A-Za-z0-9._@-]{3,64}$/;

/** `carrier-` and the name in lower case, other characters as dashes, within the id limit. */
export function carrierIdFor(name: string): string {
  const slug = name
    .toLowerCase()
    // "Süd" is "sud": letters lose their accents rather than becoming dashes.
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/g, '');
  return `carrier-${slug || randomBytes(4).toString('hex')}`;
}

/** What {@link addCarrier} writes with. */
export interface CarrierAddDeps {
  readonly store: Store;
  /** Stamps the key's creation and the audit entries. */
  readonly clock: Clock;
  /** The server's audit key (`<data>/keys/audit-ed25519.pem`): it signs the new entries. */
  readonly auditSigner: Signer;
}

/** Who the audit log names for what the command does: the operator, at the server's console. */
export const CLI_ACTOR: AuditActor = { type: 'system', id: 'cli' };

/** The name of the key the command makes. */
const FIRST_KEY_NAME = 'First key';

/**
 * Tries at writing: a try that failed because the server appended to the audit log in between
 * (the place in the chain was taken) is made again, once the id and user name are checked again.
 */
const WRITE_ATTEMPTS = 3;

/**
 * Adds a carrier with its admin and first API key, and the audit entries that record them, in
 * one transaction: all or none. Throws {@link CarrierAddError} for a bad option, a taken id or
 * a taken user name.
 */
export async function addCarrier(
  deps: CarrierAddDeps,
  opts: Pick<CarrierAddOptions, 'name' | 'adminUsername' | 'id'>,
): Promise<AddedCarrier> {
  const { store } = deps;
  const name = opts.name.trim();
  if (name.length === 0 || name.length > 100)
    throw new CarrierAddError('--name must be 1 to 100 characters', true);
  if (!USERNAME_RE.test(opts.adminUsername))
    throw new CarrierAddError(
      '--admin-username must be 3 to 64 letters, digits or . _ @ - (no spaces)',
      true,
    );
  const id = opts.id ?? carrierIdFor(name);
  if (!new RegExp(ID_PATTERN).test(id))
    throw new CarrierAddError(`--id must be lower-case letters, digits and dashes: "${id}"`, true);
  const checkFree = async (): Promise<void> => {
    if (await store.principals.getCarrier(id))
      throw new CarrierAddError(`a carrier with the id "${id}" exists already; pass --id`, false);
    if (await store.principals.usernameTaken(opts.adminUsername))
      throw new CarrierAddError(`the user name "${opts.adminUsername}" is taken`, false);
  };
  await checkFree();

  const password = randomBytes(12).toString('base64url');
  const passwordHash = await hashPassword(password);
  const adminId = `carrier-admin-${randomBytes(6).toString('hex')}`;
  const key = mintApiKey();
  const scopes = [...CARRIER_SCOPES];
  const facts: AuditFact[] = [
    {
      kind: 'carrier.created',
      actor: CLI_ACTOR,
      subject: `carrier:${id}`,
      data: { name, adminId, adminUsername: opts.adminUsername },
    },
    // As the API records a key it makes (POST /api/carrier/keys).
    {
      kind: 'apikey.created',
      actor: CLI_ACTOR,
      subject: `carrier:${id}`,
      data: { keyId: key.id, name: FIRST_KEY_NAME, scopes },
    },
  ];
  const writeRows: AlongsideWrite = async (db) => {
    const principals = new PrincipalRepository(db);
    await principals.createCarrier({ id, name });
    await principals.create(
      { id: adminId, role: 'carrier', displayName: `${name} admin`, homeId: null, carrierId: id },
      { username: opts.adminUsername, passwordHash },
    );
    await principals.createApiKey({
      id: key.id,
      carrierId: id,
      keyHash: tokenHash(key.key),
      createdAt: deps.clock.now(),
      name: FIRST_KEY_NAME,
      scopes,
      prefix: key.prefix,
      createdBy: adminId,
    });
  };

  for (let attempt = 1; ; attempt += 1) {
    try {
      await appendAudited(deps, facts, writeRows);
      break;
    } catch (err) {
      // Another writer came first: the server took the next place in the chain (try again),
      // or another run took the id or the user name (the checks say so). Anything else fails
      // the same way on every try and is thrown after the last.
      if (attempt >= WRITE_ATTEMPTS) throw err;
      await checkFree();
    }
  }
  return {
    carrier: { id, name },
    admin: { id: adminId, username: opts.adminUsername, password },
    apiKey: { id: key.id, key: key.key, scopes },
  };
}

/**
 * Appends `facts` to the audit log, with a signed checkpoint over them, in the transaction that
 * runs `alongside`: the server's own writer ({@link AuditLog}), opened on the log as stored.
 */
async function appendAudited(
  deps: CarrierAddDeps,
  facts: readonly AuditFact[],
  alongside: AlongsideWrite,
): Promise<void> {
  // No timers: the checkpoint goes with the entries (checkpointEvery 1), and a try that failed
  // must leave nothing behind that would sign the log later, beside the server.
  const clock: Clock = { now: () => deps.clock.now(), schedule: () => () => undefined };
  const log = await AuditLog.open(deps.store.audit, clock, deps.auditSigner, sha256Hex, {
    checkpointEvery: 1,
  });
  await log.appendAll(facts, alongside);
  await log.close();
}

/** `threshold carrier add`: exit 0 added, 1 taken, 2 bad options, 3 data directory unusable. */
export async function carrierAddCommand(opts: CarrierAddOptions): Promise<void> {
  const databaseUrl = databaseUrlFrom(opts.databaseUrl, 'threshold carrier add');
  mkdirSync(opts.data, { recursive: true });
  let store: Store;
  let auditSigner: Signer;
  try {
    // The server's keys, made here if it never ran: the server signs on with the same ones.
    auditSigner = loadOrCreateKeys(opts.data).auditSigner;
    store = await openStore(await commandStoreOptions(opts.data, databaseUrl));
  } catch (err) {
    console.error(
      `threshold carrier add: cannot open the keys or the database${databaseUrl === undefined ? ` in ${opts.data}` : ''}: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(3);
  }
  let added: AddedCarrier;
  try {
    added = await addCarrier({ store, clock: systemClock, auditSigner }, opts);
  } catch (err) {
    if (err instanceof CarrierAddError) {
      console.error(`threshold carrier add: ${err.message}`);
      process.exit(err.usage ? 2 : 1);
    }
    throw err;
  } finally {
    await store.close();
  }
  if (opts.json) {
    console.log(JSON.stringify(added, null, 2));
    return;
  }
  console.log(`
Carrier "${added.carrier.name}" added (id ${added.carrier.id}).

  Admin     user "${added.admin.username}"  password "${added.admin.password}"
            signs in with POST /api/auth/sign-in; manages API keys and couriers
  API key   ${added.apiKey.key}
            "First key", scopes: ${added.apiKey.scopes.join(', ')}

Both are shown this once: the server keeps only their hashes.
A home's owner must allow this carrier (Settings → Carriers) before it can deliver inside.
`);
}

/**
 * `threshold carrier add`: a new carrier on a data directory, with its first admin (who signs
 * in to manage keys and couriers) and a first API key holding every scope. The admin's password
 * and the key are printed once; the database keeps only their hashes.
 *
 * The command writes the store directly, so it works whether the server is running or not
 * (SQLite waits for the other writer). It does not append to the audit log: the running server
 * is that hash chain's only writer, and a second one would fork it. The carrier, the admin and
 * the key carry their creation time, and the key names the admin who holds it (`createdBy`).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ID_PATTERN } from '../protocol/topics.ts';
import { systemClock } from '../protocol/system-clock.ts';
import { hashPassword, mintApiKey, tokenHash } from '../server/auth.ts';
import { CARRIER_SCOPES } from '../server/routes/carrier-auth.ts';
import { openStore, PrincipalRepository, type Store } from '../store/index.ts';

export interface CarrierAddOptions {
  readonly data: string;
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

/**
 * Adds a carrier with its admin and first API key, in one transaction: all three or none.
 * Throws {@link CarrierAddError} for a bad option, a taken id or a taken user name.
 */
export async function addCarrier(
  store: Store,
  opts: Pick<CarrierAddOptions, 'name' | 'adminUsername' | 'id'>,
  nowMs: number,
): Promise<AddedCarrier> {
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
  if (await store.principals.getCarrier(id))
    throw new CarrierAddError(`a carrier with the id "${id}" exists already; pass --id`, false);
  if (await store.principals.usernameTaken(opts.adminUsername))
    throw new CarrierAddError(`the user name "${opts.adminUsername}" is taken`, false);

  const password = randomBytes(12).toString('base64url');
  const passwordHash = await hashPassword(password);
  const adminId = `carrier-admin-${randomBytes(6).toString('hex')}`;
  const key = mintApiKey();
  const scopes = [...CARRIER_SCOPES];
  await store.db.transaction().execute(async (trx) => {
    const principals = new PrincipalRepository(trx);
    await principals.createCarrier({ id, name });
    await principals.create(
      { id: adminId, role: 'carrier', displayName: `${name} admin`, homeId: null, carrierId: id },
      { username: opts.adminUsername, passwordHash },
    );
    await principals.createApiKey({
      id: key.id,
      carrierId: id,
      keyHash: tokenHash(key.key),
      createdAt: nowMs,
      name: 'First key',
      scopes,
      prefix: key.prefix,
      createdBy: adminId,
    });
  });
  return {
    carrier: { id, name },
    admin: { id: adminId, username: opts.adminUsername, password },
    apiKey: { id: key.id, key: key.key, scopes },
  };
}

export async function carrierAddCommand(opts: CarrierAddOptions): Promise<void> {
  mkdirSync(opts.data, { recursive: true });
  let store: Store;
  try {
    store = await openStore({ dialect: 'sqlite', path: join(opts.data, 'threshold.db') });
  } catch (err) {
    console.error(
      `threshold carrier add: cannot open the database in ${opts.data}: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(3);
  }
  let added: AddedCarrier;
  try {
    added = await addCarrier(store, opts, systemClock.now());
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

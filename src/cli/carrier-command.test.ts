/**
 * `threshold carrier add`: on a real SQLite store in a temp directory, with real keys, and as a
 * user runs it (a child process, its output and exit code).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { AuditEntry } from '../core/audit-chain.ts';
import type { Signer } from '../core/crypto-ports.ts';
import { AuditLog, verifyStoredLog } from '../server/audit-log.ts';
import { Authenticator, tokenHash } from '../server/auth.ts';
import { loadOrCreateKeys, sha256Hex, verifyEd25519 } from '../server/keys.ts';
import { CARRIER_SCOPES } from '../server/routes/carrier-auth.ts';
import { AuditRepository, openStore, type Store } from '../store/index.ts';
import {
  createTestDatabase,
  databaseUrl,
  dropDatabase,
  testDatabasePrefix,
  testPostgresUrl,
  withAdminClient,
} from '../store/test-postgres.ts';
import { DATABASE_URL_ENV } from './store-options.ts';
import {
  addCarrier,
  CarrierAddError,
  carrierIdFor,
  type AddedCarrier,
  type CarrierAddDeps,
} from './carrier-command.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'threshold.js');
const NOW = 1_768_478_400_000;

let dir = '';
let store: Store;
let signer: Signer;
let deps: CarrierAddDeps;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'threshold-carrier-'));
  store = await openStore({ dialect: 'sqlite', path: join(dir, 'threshold.db') });
  signer = loadOrCreateKeys(dir).auditSigner;
  deps = { store, clock: new FakeClock(NOW), auditSigner: signer };
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function counts() {
  const n = async (t: 'carriers' | 'principals' | 'api_keys') =>
    (await store.db.selectFrom(t).select('id').execute()).length;
  return {
    carriers: await n('carriers'),
    principals: await n('principals'),
    keys: await n('api_keys'),
    audit: await store.audit.count(),
  };
}

/** The stored log, checked against the server's key as `threshold audit verify` checks it. */
function verifyLog(on: Store = store) {
  return verifyStoredLog(on.audit, sha256Hex, verifyEd25519, [signer.publicKey]);
}

/** What the log says of a subject: kind, actor and data of each entry, in order. */
async function auditOf(subject: string) {
  return (await store.audit.entriesForSubject(subject)).map((e) => ({
    kind: e.kind,
    actor: e.actor,
    data: e.data,
  }));
}

describe('addCarrier', () => {
  it('makes the carrier, an admin who signs in, and a key holding every scope, made by that admin', async () => {
    const added = await addCarrier(deps, {
      name: '  Birch Express ',
      adminUsername: 'birch-admin',
    });
    expect(added.carrier).toEqual({ id: 'carrier-birch-express', name: 'Birch Express' });
    expect(await store.principals.getCarrier('carrier-birch-express')).toEqual(added.carrier);

    const auth = new Authenticator(store, new FakeClock(NOW));
    const signedIn = await auth.signIn('birch-admin', added.admin.password);
    expect(signedIn.ok && signedIn.value.principal).toMatchObject({
      id: added.admin.id,
      role: 'carrier',
      carrierId: 'carrier-birch-express',
      homeId: null,
    });

    expect(added.apiKey.key).toMatch(/^thk_[A-Za-z0-9_-]{43}$/);
    const key = await store.principals.getApiKey(added.apiKey.id);
    expect(key).toMatchObject({
      carrierId: 'carrier-birch-express',
      keyHash: tokenHash(added.apiKey.key),
      scopes: [...CARRIER_SCOPES],
      prefix: added.apiKey.key.slice(4, 12),
      createdBy: added.admin.id,
      createdAt: NOW,
      revokedAt: null,
    });
    const caller = await auth.apiKeyCaller(added.apiKey.key);
    expect(caller.ok && caller.value.principal.carrierId).toBe('carrier-birch-express');
  });

  it('records the carrier, its admin and its key in the audit log, signed, as the CLI', async () => {
    const added = await addCarrier(deps, { name: 'Birch Express', adminUsername: 'birch-admin' });
    const cli = { type: 'system', id: 'cli' };
    expect(await auditOf('carrier:carrier-birch-express')).toEqual([
      {
        kind: 'carrier.created',
        actor: cli,
        data: { name: 'Birch Express', adminId: added.admin.id, adminUsername: 'birch-admin' },
      },
      // The shape POST /api/carrier/keys records.
      {
        kind: 'apikey.created',
        actor: cli,
        data: { keyId: added.apiKey.id, name: 'First key', scopes: [...CARRIER_SCOPES] },
      },
    ]);
    const entries = await store.audit.getRange(1, 10);
    expect(entries.map((e) => [e.seq, e.kind, e.at])).toEqual([
      [1, 'carrier.created', NOW],
      [2, 'apikey.created', NOW],
      [3, 'audit.checkpoint', NOW],
    ]);
    // Neither the password nor the key is in the log, not even hashed.
    const text = JSON.stringify(entries);
    expect(text).not.toContain(added.admin.password);
    expect(text).not.toContain(added.apiKey.key);
    expect(text).not.toContain(tokenHash(added.apiKey.key));
    const v = await verifyLog();
    expect(v).toMatchObject({ ok: true, lastSeq: 3, signedUpTo: 3, unsignedTail: 0 });
    expect(v.firstBreak).toBeNull();
  });

  it('chains onto the log the server wrote, which verifies and goes on after it', async () => {
    const clock = new FakeClock(NOW);
    const server = await AuditLog.open(store.audit, clock, signer, sha256Hex);
    await server.append({
      kind: 'home.created',
      actor: { type: 'system', id: 'seed' },
      subject: 'home:home-1',
      data: {},
    });
    await server.close();
    const before = await store.audit.count();

    await addCarrier(deps, { name: 'Birch Express', adminUsername: 'birch-admin' });
    expect((await store.audit.getRange(before + 1, before + 2)).map((e) => e.kind)).toEqual([
      'carrier.created',
      'apikey.created',
    ]);
    expect(await verifyLog()).toMatchObject({ ok: true, unsignedTail: 0 });

    // The server, started again, carries on from the command's entries.
    const again = await AuditLog.open(store.audit, clock, signer, sha256Hex);
    await again.append({
      kind: 'home.updated',
      actor: { type: 'system', id: 'seed' },
      subject: 'home:home-1',
      data: {},
    });
    await again.close();
    const v = await verifyLog();
    expect(v).toMatchObject({ ok: true, unsignedTail: 0, firstBreak: null });
    // Nothing was written as "unsigned at the time": the command signed what it wrote.
    expect((await store.audit.getRange(1, v.lastSeq)).map((e) => e.kind)).not.toContain(
      'audit.unsigned-tail',
    );
  });

  it('tries again when the server appends in between, and never forks the chain', async () => {
    const clock = new FakeClock(NOW);
    const server = await AuditLog.open(store.audit, clock, signer, sha256Hex);
    /**
     * Lets the server append right after the command read the log's head, the first time: what
     * the command chained onto is no longer the head when it writes, as with a running server.
     */
    class RacedRepository extends AuditRepository {
      races = 0;
      override async last(): Promise<AuditEntry | null> {
        const head = await super.last();
        if (this.races === 0) {
          this.races += 1;
          await server.append({
            kind: 'device.online',
            actor: { type: 'device', id: 'lock-1' },
            subject: 'device:lock-1',
            data: {},
          });
        }
        return head;
      }
    }
    const raced = new RacedRepository(store.db);
    const added = await addCarrier(
      { ...deps, store: { ...store, audit: raced } },
      { name: 'Birch Express', adminUsername: 'birch-admin' },
    );
    expect(raced.races).toBe(1);
    expect(await store.principals.getCarrier(added.carrier.id)).toEqual(added.carrier);
    const kinds = (await store.audit.getRange(1, 100)).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'carrier.created')).toHaveLength(1);
    expect(kinds.indexOf('device.online')).toBeLessThan(kinds.indexOf('carrier.created'));
    expect(await counts()).toMatchObject({ carriers: 1, keys: 1 });
    await server.close();
    expect(await verifyLog()).toMatchObject({ ok: true, firstBreak: null });
  });

  it('refuses a taken id or user name, and bad options, making nothing', async () => {
    await addCarrier(deps, { name: 'Birch Express', adminUsername: 'birch-admin' });
    const before = await counts();
    const refusal = async (opts: Parameters<typeof addCarrier>[1]) =>
      addCarrier(deps, opts).then(
        () => null,
        (e: unknown) => (e instanceof CarrierAddError ? { usage: e.usage, message: e.message } : e),
      );
    expect(await refusal({ name: 'Birch  express!', adminUsername: 'other-admin' })).toEqual({
      usage: false,
      message: 'a carrier with the id "carrier-birch-express" exists already; pass --id',
    });
    expect(
      await refusal({ name: 'Oak', adminUsername: 'Birch-Admin', id: 'carrier-oak' }),
    ).toMatchObject({ usage: false, message: 'the user name "Birch-Admin" is taken' });
    expect(await refusal({ name: '   ', adminUsername: 'oak-admin' })).toMatchObject({
      usage: true,
    });
    expect(await refusal({ name: 'Oak', adminUsername: 'oak admin' })).toMatchObject({
      usage: true,
    });
    expect(
      await refusal({ name: 'Oak', adminUsername: 'oak-admin', id: 'Carrier_Oak' }),
    ).toMatchObject({ usage: true });
    // Nothing written, nothing audited, and the log still verifies.
    expect(await counts()).toEqual(before);
    expect(await verifyLog()).toMatchObject({ ok: true, unsignedTail: 0 });
  });

  it('derives ids from names', () => {
    expect(carrierIdFor('Birch Express')).toBe('carrier-birch-express');
    expect(carrierIdFor('  DHL — Süd & Co. ')).toBe('carrier-dhl-sud-co');
    expect(carrierIdFor('!!!')).toMatch(/^carrier-[0-9a-f]{8}$/);
    expect(carrierIdFor('x'.repeat(200))).toBe(`carrier-${'x'.repeat(48)}`);
  });
});

describe('threshold carrier add', () => {
  function threshold(...args: string[]) {
    return thresholdWith({}, ...args);
  }

  /** Runs the command with `env` over this process's environment (no database URL of its own). */
  function thresholdWith(env: Record<string, string>, ...args: string[]) {
    const base: NodeJS.ProcessEnv = { ...process.env };
    delete base[DATABASE_URL_ENV];
    const r = spawnSync(process.execPath, [BIN, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...base, ...env },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('adds to PostgreSQL given THRESHOLD_DATABASE_URL, and audit verify proves it there; a bad URL is a usage error', async () => {
    const database = await createTestDatabase();
    try {
      const data = join(dir, 'pg-data');
      const env = { [DATABASE_URL_ENV]: database.url };
      const r = thresholdWith(
        env,
        'carrier',
        'add',
        '--name',
        'Pine Parcels',
        '--admin-username',
        'pine-admin',
        '--data',
        data,
        '--json',
      );
      expect(r.code, r.stderr).toBe(0);
      const added = JSON.parse(r.stdout) as AddedCarrier;
      // In PostgreSQL, not in a SQLite file beside the keys.
      expect(existsSync(join(data, 'threshold.db'))).toBe(false);
      const pg = await openStore({ dialect: 'postgres', url: database.url });
      try {
        const key = await pg.principals.findApiKeyByHash(tokenHash(added.apiKey.key));
        expect(key?.carrierId).toBe('carrier-pine-parcels');
        const keyOfData = loadOrCreateKeys(data).auditSigner.publicKey;
        const log = await verifyStoredLog(pg.audit, sha256Hex, verifyEd25519, [keyOfData]);
        expect(log.ok).toBe(true);
      } finally {
        await pg.close();
      }
      const verified = thresholdWith(env, 'audit', 'verify', '--data', data);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      expect(verified.stdout).toMatch(/audit log intact: 3 entries/);
      // Without the URL, the same directory has no database: nothing to verify.
      expect(threshold('audit', 'verify', '--data', data).code).toBe(2);

      for (const bad of ['mysql://host/db', 'postgres://host', 'not a url']) {
        const refused = thresholdWith(
          { [DATABASE_URL_ENV]: bad },
          'carrier',
          'add',
          '--name',
          'Fir',
          '--admin-username',
          'fir-admin',
          '--data',
          data,
        );
        expect(refused.code, bad).toBe(2);
        expect(refused.stderr, bad).toContain(`${DATABASE_URL_ENV} must be`);
      }
      expect(
        thresholdWith({ [DATABASE_URL_ENV]: 'mysql://host/db' }, 'audit', 'verify', '--data', data)
          .code,
      ).toBe(2);

      // A database the server never used: nothing to verify, and nothing made in it.
      const serverUrl = testPostgresUrl();
      const bare = `${testDatabasePrefix()}bare${randomBytes(4).toString('hex')}`;
      await withAdminClient(serverUrl, (c) => c.query(`create database "${bare}"`));
      try {
        const none = thresholdWith(
          { [DATABASE_URL_ENV]: databaseUrl(serverUrl, bare) },
          'audit',
          'verify',
          '--data',
          data,
        );
        expect(none.code, none.stdout + none.stderr).toBe(2);
        expect(none.stderr).toContain('has no audit log');
        const tables = await withAdminClient(databaseUrl(serverUrl, bare), (c) =>
          c.query("select 1 from information_schema.tables where table_schema = 'public'"),
        );
        expect(tables.rowCount).toBe(0);
      } finally {
        await dropDatabase(serverUrl, bare);
      }
    } finally {
      await database.drop();
    }
  }, 240_000);

  it('prints the admin password and the key once; the same name again exits 1, bad usage 2', async () => {
    const data = join(dir, 'data');
    const r = threshold(
      'carrier',
      'add',
      '--name',
      'Oak Couriers',
      '--admin-username',
      'oak-admin',
      '--data',
      data,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const added = JSON.parse(r.stdout) as AddedCarrier;
    expect(added.carrier).toEqual({ id: 'carrier-oak-couriers', name: 'Oak Couriers' });
    const other = await openStore({ dialect: 'sqlite', path: join(data, 'threshold.db') });
    try {
      const key = await other.principals.findApiKeyByHash(tokenHash(added.apiKey.key));
      expect(key?.carrierId).toBe('carrier-oak-couriers');
    } finally {
      await other.close();
    }

    const plain = threshold(
      'carrier',
      'add',
      '--name',
      'Elm',
      '--admin-username',
      'elm-admin',
      '--data',
      data,
    );
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/Carrier "Elm" added \(id carrier-elm\)/);
    expect(plain.stdout).toMatch(/API key {3}thk_[A-Za-z0-9_-]{43}/);

    const again = threshold(
      'carrier',
      'add',
      '--name',
      'Oak Couriers',
      '--admin-username',
      'oak-2',
      '--data',
      data,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('exists already');
    const bad = threshold(
      'carrier',
      'add',
      '--name',
      'Ash',
      '--admin-username',
      'a',
      '--data',
      data,
    );
    expect(bad.code).toBe(2);
    expect(threshold('carrier', 'add', '--data', data).code).toBe(2);

    // Both carriers are in the log, signed with the key the server will use.
    const verified = threshold('audit', 'verify', '--data', data);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/audit log intact: 6 entries/);
    // Six child processes, each starting TypeScript: slow on a busy machine.
  }, 240_000);
});

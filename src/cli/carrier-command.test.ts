/**
 * `threshold carrier add`: on a real SQLite store in a temp directory, and as a user runs it (a
 * child process, its output and exit code).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { Authenticator, tokenHash } from '../server/auth.ts';
import { CARRIER_SCOPES } from '../server/routes/carrier-auth.ts';
import { openStore, type Store } from '../store/index.ts';
import { addCarrier, CarrierAddError, carrierIdFor, type AddedCarrier } from './carrier-command.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'threshold.js');
const NOW = 1_768_478_400_000;

let dir = '';
let store: Store;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'threshold-carrier-'));
  store = await openStore({ dialect: 'sqlite', path: join(dir, 'threshold.db') });
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
  };
}

describe('addCarrier', () => {
  it('makes the carrier, an admin who signs in, and a key holding every scope, made by that admin', async () => {
    const added = await addCarrier(
      store,
      { name: '  Birch Express ', adminUsername: 'birch-admin' },
      NOW,
    );
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

  it('refuses a taken id or user name, and bad options, making nothing', async () => {
    await addCarrier(store, { name: 'Birch Express', adminUsername: 'birch-admin' }, NOW);
    const before = await counts();
    const refusal = async (opts: Parameters<typeof addCarrier>[1]) =>
      addCarrier(store, opts, NOW).then(
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
    expect(await counts()).toEqual(before);
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
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

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
  });
});

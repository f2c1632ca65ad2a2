/**
 * Passkeys over real HTTP on loopback, against a real control plane (SQLite in a temp dir,
 * embedded broker, demo home seeded), with a software authenticator written here: a P-256 key
 * from node:crypto, authenticator data and attestation objects built byte by byte, assertions
 * signed with ES256. Time is a FakeClock, so challenge expiry and the rate limit's window are
 * tested by advancing it.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/core/audit-chain.ts';
import { FakeClock } from '../src/core/clock.ts';
import { httpStatusOf } from '../src/core/errors.ts';
import { createApp, type App, type AppDeps } from '../src/server/app.ts';
import { ClipStore } from '../src/server/clip-store.ts';
import { LiveViewService } from '../src/server/live-view.ts';
import {
  CHALLENGE_TTL_MS,
  localRelyingParty,
  MAX_PASSKEYS_PER_PRINCIPAL,
  PASSKEY_REFUSALS,
  Passkeys,
  relyingPartyFromUrl,
  type PasskeyRefusal,
} from '../src/server/passkeys.ts';
import { PASSKEY_SIGN_IN_LIMIT_PER_MINUTE } from '../src/server/routes/passkey-routes.ts';
import { seedDemo, type DemoCredentials } from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import { testDatabaseOptions } from '../src/store/test-postgres.ts';
import {
  UP,
  AT,
  b64u,
  type Tamper,
  type CreationOptions,
  type RequestOptions,
  SoftAuthenticator,
} from './soft-authenticator.ts';
import { freePort } from '../src/harness/free-port.ts';

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: {
    error?: { code?: string; message?: string; detail?: { reason?: string } };
  } & Record<string, unknown>;
}

let dataDir: string;
let sys: RunningSystem;
let app: App;
let deps: AppDeps;
let url: string;
let origin: string;
let creds: DemoCredentials;
let passkeys: Passkeys;
const clock = new FakeClock(Date.now());
let ownerToken = '';
let courierToken = '';

async function call(
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  opts: { token?: string; cookie?: string; json?: unknown; raw?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookie !== undefined) headers.cookie = opts.cookie;
  const body = opts.raw ?? (opts.json === undefined ? undefined : JSON.stringify(opts.json));
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${url}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text ? (JSON.parse(text) as Answer['body']) : {},
  };
}

function expectError(a: Answer, status: number, code: string, reason?: string): void {
  expect({ status: a.status, code: a.body.error?.code }).toEqual({ status, code });
  if (reason !== undefined) expect(a.body.error?.detail?.reason).toBe(reason);
}

/** A passkey refusal: its reason, with the code (and so the status) the service maps it to. */
function expectRefusal(a: Answer, reason: PasskeyRefusal): void {
  const { code } = PASSKEY_REFUSALS[reason];
  expectError(a, httpStatusOf(code), code, reason);
}

async function signInWithPassword(who: 'owner' | 'courier'): Promise<string> {
  const c = creds[who];
  const a = await call('POST', '/api/auth/sign-in', {
    json: { username: c.username, password: c.password },
  });
  expect(a.status).toBe(200);
  return String(a.body.token);
}

async function registrationOptions(token: string): Promise<CreationOptions> {
  const a = await call('POST', '/api/auth/passkeys/registration/options', { token, json: {} });
  expect(a.status).toBe(200);
  return a.body.options as CreationOptions;
}

/** Registers a new software passkey for the token's principal and returns its authenticator. */
async function register(
  token: string,
  name = 'Laptop',
  make = () => new SoftAuthenticator('localhost', origin),
): Promise<SoftAuthenticator> {
  const authenticator = make();
  const options = await registrationOptions(token);
  const a = await call('POST', '/api/auth/passkeys/registration', {
    token,
    json: { name, response: authenticator.create(options) },
  });
  expect(a.status, JSON.stringify(a.body)).toBe(200);
  return authenticator;
}

async function signInOptions(): Promise<{ options: RequestOptions; challengeId: string }> {
  const a = await call('POST', '/api/auth/passkeys/authentication/options', { json: {} });
  expect(a.status).toBe(200);
  return a.body as unknown as { options: RequestOptions; challengeId: string };
}

async function signInWith(authenticator: SoftAuthenticator, t: Tamper = {}): Promise<Answer> {
  const { options, challengeId } = await signInOptions();
  return call('POST', '/api/auth/passkeys/authentication', {
    json: { challengeId, response: authenticator.get(options, t) },
  });
}

async function auditHead(): Promise<number> {
  await sys.audit.drain();
  return (await sys.store.audit.last())?.seq ?? 0;
}

async function auditAfter(seq: number): Promise<AuditEntry[]> {
  await sys.audit.drain();
  const entries: AuditEntry[] = [];
  for await (const e of sys.store.audit.iterate()) if (e.seq > seq) entries.push(e);
  return entries;
}

async function storedPasskeyIds(principalId: string): Promise<string[]> {
  const rows = await sys.store.db
    .selectFrom('passkeys')
    .select('id')
    .where('principal_id', '=', principalId)
    .execute();
  return rows.map((r) => r.id).sort();
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'threshold-passkeys-'));
  sys = await startSystem({
    dataDir,
    port: 0,
    mqttPort: 0,
    clock,
    ...(await testDatabaseOptions(dataDir)),
  });
  creds = await seedDemo(sys, dataDir, { credentialsFile: join(dataDir, 'credentials.json') });
  const port = await freePort();
  const rp = localRelyingParty(port);
  origin = rp.origins[0] ?? '';
  // Origins as a function, as a server started on port 0 must give them.
  passkeys = new Passkeys({
    store: sys.store,
    clock,
    rpName: 'Threshold',
    rpId: rp.rpId,
    origins: () => rp.origins,
  });
  deps = {
    passkeys,
    store: sys.store,
    orchestrator: sys.orchestrator,
    gateway: sys.gateway,
    auth: sys.auth,
    audit: sys.audit,
    clips: new ClipStore(dataDir, sys.store.clips),
    events: sys.events,
    // Not listening to the gateway: these tests need the live view only to build the app.
    liveView: new LiveViewService({
      gateway: sys.gateway,
      sessions: sys.orchestrator,
      clock: clock,
      events: sys.events,
      audit: sys.audit,
    }),
    clock,
  };
  app = await createApp(deps);
  await app.listen({ host: '127.0.0.1', port });
  url = `http://127.0.0.1:${port}`;
  ownerToken = await signInWithPassword('owner');
  courierToken = await signInWithPassword('courier');
}, 60_000);

afterAll(async () => {
  deps?.liveView.stop();
  await app?.close();
  await sys?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// Each test starts in a fresh rate-limit window; challenges and sign-ins live far longer.
beforeEach(() => {
  clock.advance(61_000);
});

describe('passkey registration and sign-in', () => {
  it('given a signed-in owner, when a passkey is registered and used, then sign-in answers like a password sign-in and its cookie works for /api/me', async () => {
    const options = await registrationOptions(ownerToken);
    expect(options.rp).toEqual({ id: 'localhost', name: 'Threshold' });
    expect(options.authenticatorSelection).toMatchObject({
      residentKey: 'required',
      requireResidentKey: true,
      userVerification: 'required',
    });
    expect(options.attestation).toBe('none');

    const authenticator = new SoftAuthenticator('localhost', origin);
    const registered = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: '  Alex’s laptop ', response: authenticator.create(options) },
    });
    expect(registered.status).toBe(200);
    expect(registered.body.passkey).toEqual({
      id: authenticator.id,
      name: 'Alex’s laptop',
      createdAt: clock.now(),
      lastUsedAt: null,
      backedUp: true,
    });

    const signedIn = await signInWith(authenticator);
    expect(signedIn.status, JSON.stringify(signedIn.body)).toBe(200);
    expect(signedIn.body.principal).toMatchObject({ id: 'owner-alex', role: 'owner' });
    expect(typeof signedIn.body.token).toBe('string');
    expect(signedIn.body.expiresAt).toBeGreaterThan(clock.now());
    const setCookie = signedIn.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^threshold_session=[^;]+;/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    const cookie = setCookie.split(';')[0] ?? '';
    expect(cookie).toBe(`threshold_session=${String(signedIn.body.token)}`);

    const me = await call('GET', '/api/me', { cookie });
    expect(me.status).toBe(200);
    expect(me.body.principal).toMatchObject({ id: 'owner-alex' });

    const list = await call('GET', '/api/auth/passkeys', { cookie });
    expect(list.status).toBe(200);
    expect(list.body.passkeys).toContainEqual({
      id: authenticator.id,
      name: 'Alex’s laptop',
      createdAt: expect.any(Number) as number,
      lastUsedAt: clock.now(),
      backedUp: true,
    });
  });

  it('given a passkey whose authenticator keeps no counter (always 0), then it signs in again and again', async () => {
    const authenticator = await register(
      courierToken,
      'Synced',
      () => new SoftAuthenticator('localhost', origin, false),
    );
    for (let i = 0; i < 3; i++) {
      const a = await signInWith(authenticator);
      expect(a.status, JSON.stringify(a.body)).toBe(200);
      expect(a.body.principal).toMatchObject({ id: creds.courier.id });
    }
  });

  it('offers the principal’s existing passkeys as excludeCredentials, and refuses registering the same credential twice', async () => {
    const authenticator = await register(courierToken, 'Phone');
    const options = await registrationOptions(courierToken);
    expect(options.excludeCredentials?.map((c) => c.id)).toContain(authenticator.id);
    const again = await call('POST', '/api/auth/passkeys/registration', {
      token: courierToken,
      json: { name: 'Phone again', response: authenticator.create(options) },
    });
    expectRefusal(again, 'passkey.already-registered');
    expect(
      (await storedPasskeyIds(creds.courier.id)).filter((id) => id === authenticator.id),
    ).toHaveLength(1);
  });
});

describe('passkey registration refusals', () => {
  it('given no sign-in, when asking for registration options or registering, then 401 auth.required and nothing is stored', async () => {
    const before = await storedPasskeyIds('owner-alex');
    expectError(
      await call('POST', '/api/auth/passkeys/registration/options', { json: {} }),
      401,
      'auth.required',
    );
    const options = await registrationOptions(ownerToken);
    const a = await call('POST', '/api/auth/passkeys/registration', {
      json: {
        name: 'Stolen',
        response: new SoftAuthenticator('localhost', origin).create(options),
      },
    });
    expectError(a, 401, 'auth.required');
    expectError(await call('GET', '/api/auth/passkeys'), 401, 'auth.required');
    expect(await storedPasskeyIds('owner-alex')).toEqual(before);
  });

  it('given a carrier API key, when it asks for registration options, then 403: carriers have no password account to add passkeys to', async () => {
    const a = await call('POST', '/api/auth/passkeys/registration/options', {
      token: creds.carrier.apiKey,
      json: {},
    });
    expectError(a, 403, 'auth.forbidden');
  });

  it('given a registration from another origin or for another RP id, then refused and nothing is stored', async () => {
    const before = await storedPasskeyIds('owner-alex');
    for (const tamper of [{ origin: 'https://evil.example' }, { rpId: 'evil.example' }]) {
      const options = await registrationOptions(ownerToken);
      const a = await call('POST', '/api/auth/passkeys/registration', {
        token: ownerToken,
        json: {
          name: 'Evil',
          response: new SoftAuthenticator('localhost', origin).create(options, tamper),
        },
      });
      expectRefusal(a, 'passkey.registration-invalid');
    }
    expect(await storedPasskeyIds('owner-alex')).toEqual(before);
  });

  it('given the owner’s registration options answered under the courier’s sign-in, then refused: a registration challenge belongs to whoever asked', async () => {
    const ownerOptions = await registrationOptions(ownerToken);
    await registrationOptions(courierToken);
    const before = await storedPasskeyIds(creds.courier.id);
    const a = await call('POST', '/api/auth/passkeys/registration', {
      token: courierToken,
      json: {
        name: 'Swap',
        response: new SoftAuthenticator('localhost', origin).create(ownerOptions),
      },
    });
    expectRefusal(a, 'passkey.registration-invalid');
    expect(await storedPasskeyIds(creds.courier.id)).toEqual(before);
  });

  it('given an authenticator without user verification, then registration and sign-in are refused', async () => {
    const options = await registrationOptions(ownerToken);
    const weak = new SoftAuthenticator('localhost', origin);
    const a = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: 'No PIN', response: weak.create(options, { flags: UP | AT }) },
    });
    expectRefusal(a, 'passkey.registration-invalid');

    const good = await register(ownerToken, 'Key with PIN');
    expectRefusal(await signInWith(good, { flags: UP }), 'passkey.sign-in-failed');
  });

  it('given a registration challenge used once or expired, then refused', async () => {
    const options = await registrationOptions(ownerToken);
    const authenticator = new SoftAuthenticator('localhost', origin);
    const response = authenticator.create(options);
    const first = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: 'Once', response },
    });
    expect(first.status).toBe(200);
    const replay = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: 'Twice', response: new SoftAuthenticator('localhost', origin).create(options) },
    });
    expectRefusal(replay, 'passkey.challenge-invalid');

    const late = await registrationOptions(ownerToken);
    clock.advance(CHALLENGE_TTL_MS);
    const a = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: 'Late', response: new SoftAuthenticator('localhost', origin).create(late) },
    });
    expectRefusal(a, 'passkey.challenge-invalid');
  });

  it('given malformed registration bodies, then 400 request.invalid, nothing stored, and the challenge still usable', async () => {
    const options = await registrationOptions(ownerToken);
    const authenticator = new SoftAuthenticator('localhost', origin);
    const good = authenticator.create(options);
    const before = await storedPasskeyIds('owner-alex');
    const head = await auditHead();
    const bad: unknown[] = [
      {},
      { name: 'x' },
      { response: good },
      { name: '', response: good },
      { name: 'x'.repeat(65), response: good },
      { name: 'tab\there', response: good },
      { name: 'ok', response: good, extra: true },
      { name: 'ok', response: { ...good, id: 'not base64url!' } },
      { name: 'ok', response: { ...good, type: 'password' } },
      { name: 'ok', response: { ...good, response: { clientDataJSON: 'abc' } } },
      { name: 'ok', response: { ...good, rawId: 42 } },
      { name: 'ok', response: 'a string' },
      { name: 'ok', response: { ...good, response: { ...good.response, transports: 'usb' } } },
    ];
    for (const json of bad) {
      const a = await call('POST', '/api/auth/passkeys/registration', { token: ownerToken, json });
      expectError(a, 400, 'request.invalid');
    }
    expectError(
      await call('POST', '/api/auth/passkeys/registration', { token: ownerToken, raw: '{"name":' }),
      400,
      'request.invalid',
    );
    const huge = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: 'big', response: { ...good, padding: 'x'.repeat(20_000) } },
    });
    expectError(huge, 413, 'request.too-large');
    expect(await storedPasskeyIds('owner-alex')).toEqual(before);
    expect(await auditAfter(head)).toEqual([]);

    // Refused at the door, the bodies never reached the challenge: the real answer still works.
    const a = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: 'After the noise', response: good },
    });
    expect(a.status).toBe(200);
  });

  it('given a whitespace-only name, then 400 request.invalid and nothing stored', async () => {
    const before = await storedPasskeyIds('owner-alex');
    const options = await registrationOptions(ownerToken);
    const a = await call('POST', '/api/auth/passkeys/registration', {
      token: ownerToken,
      json: { name: '   ', response: new SoftAuthenticator('localhost', origin).create(options) },
    });
    expectError(a, 400, 'request.invalid');
    expect(await storedPasskeyIds('owner-alex')).toEqual(before);
  });
});

describe('passkey sign-in refusals', () => {
  let authenticator: SoftAuthenticator;
  beforeAll(async () => {
    authenticator = await register(ownerToken, 'For refusals');
  });

  it('given an answer made for another origin, then 401 and no cookie', async () => {
    const a = await signInWith(authenticator, { origin: 'https://evil.example' });
    expectRefusal(a, 'passkey.sign-in-failed');
    expect(a.headers.get('set-cookie')).toBeNull();
    expect(a.body.token).toBeUndefined();
  });

  it('given an answer made for another RP id, then 401', async () => {
    const a = await signInWith(authenticator, { rpId: 'evil.example' });
    expectRefusal(a, 'passkey.sign-in-failed');
  });

  it('given a registration-type client data or a signature by another key, then 401', async () => {
    expectRefusal(
      await signInWith(authenticator, { type: 'webauthn.create' }),
      'passkey.sign-in-failed',
    );
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expectRefusal(
      await signInWith(authenticator, { signWith: other.privateKey }),
      'passkey.sign-in-failed',
    );
  });

  it('given a user handle of someone else, then 401', async () => {
    const a = await signInWith(authenticator, { userHandle: b64u(randomBytes(32)) });
    expectRefusal(a, 'passkey.sign-in-failed');
  });

  it('given an accepted answer sent again, with its own or a new challenge id, then refused', async () => {
    const { options, challengeId } = await signInOptions();
    const response = authenticator.get(options);
    const first = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response },
    });
    expect(first.status).toBe(200);
    const sameId = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response },
    });
    expectRefusal(sameId, 'passkey.challenge-invalid');
    const fresh = await signInOptions();
    const newId = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId: fresh.challengeId, response },
    });
    expectRefusal(newId, 'passkey.sign-in-failed');
  });

  it('given a failed answer, then its challenge is used up too', async () => {
    const { options, challengeId } = await signInOptions();
    const bad = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response: authenticator.get(options, { origin: 'https://x.example' }) },
    });
    expect(bad.status).toBe(401);
    const good = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response: authenticator.get(options) },
    });
    expectRefusal(good, 'passkey.challenge-invalid');
  });

  it('given an answer after the challenge expired, then refused; just before, accepted', async () => {
    const early = await signInOptions();
    clock.advance(CHALLENGE_TTL_MS - 1);
    const inTime = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId: early.challengeId, response: authenticator.get(early.options) },
    });
    expect(inTime.status).toBe(200);

    const late = await signInOptions();
    clock.advance(CHALLENGE_TTL_MS);
    const a = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId: late.challengeId, response: authenticator.get(late.options) },
    });
    expectRefusal(a, 'passkey.challenge-invalid');
  });

  it('given a signature counter that goes backwards or repeats, then refused as a possible clone, and the stored counter stays', async () => {
    const ok = await signInWith(authenticator, { counter: 50 });
    expect(ok.status).toBe(200);
    const stored = async () =>
      await sys.store.db
        .selectFrom('passkeys')
        .select(['counter', 'last_used_at'])
        .where('id', '=', authenticator.id)
        .executeTakeFirstOrThrow();
    const after = await stored();
    expect(after.counter).toBe(50);

    for (const counter of [49, 50, 0]) {
      clock.advance(1000);
      const a = await signInWith(authenticator, { counter });
      expectRefusal(a, 'passkey.counter-regressed');
      expect(a.headers.get('set-cookie')).toBeNull();
    }
    expect(await stored()).toEqual(after);
    expect((await signInWith(authenticator, { counter: 51 })).status).toBe(200);
  });

  it('given a credential that is not registered, then 401', async () => {
    const stranger = new SoftAuthenticator('localhost', origin);
    const a = await signInWith(stranger);
    expectRefusal(a, 'passkey.unknown-credential');
  });

  it('given an unknown challenge id, then 400 and the challenge-invalid reason', async () => {
    const { options } = await signInOptions();
    const a = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId: b64u(randomBytes(16)), response: authenticator.get(options) },
    });
    expectRefusal(a, 'passkey.challenge-invalid');
  });

  it('given malformed sign-in bodies, then 400 request.invalid, the challenge still usable and the counter unchanged', async () => {
    const { options, challengeId } = await signInOptions();
    const good = authenticator.get(options);
    const before = await sys.store.db
      .selectFrom('passkeys')
      .selectAll()
      .where('id', '=', authenticator.id)
      .executeTakeFirstOrThrow();
    const bad: unknown[] = [
      {},
      { challengeId },
      { response: good },
      { challengeId: 'bad id!', response: good },
      { challengeId, response: good, extra: 1 },
      { challengeId, response: { ...good, id: '' } },
      { challengeId, response: { ...good, type: 'other' } },
      { challengeId, response: { ...good, response: { ...good.response, signature: 'a b' } } },
      { challengeId, response: { ...good, response: { clientDataJSON: 'abc' } } },
      { challengeId, response: null },
    ];
    for (const json of bad) {
      expectError(
        await call('POST', '/api/auth/passkeys/authentication', { json }),
        400,
        'request.invalid',
      );
    }
    expect(
      await sys.store.db
        .selectFrom('passkeys')
        .selectAll()
        .where('id', '=', authenticator.id)
        .executeTakeFirstOrThrow(),
    ).toEqual(before);
    const a = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response: good },
    });
    expect(a.status).toBe(200);
  });

  it('given a userHandle of null (as some browsers send), then accepted', async () => {
    const { options, challengeId } = await signInOptions();
    const response = authenticator.get(options);
    const a = await call('POST', '/api/auth/passkeys/authentication', {
      json: {
        challengeId,
        response: { ...response, response: { ...response.response, userHandle: null } },
      },
    });
    expect(a.status, JSON.stringify(a.body)).toBe(200);
  });
});

describe('passkey removal', () => {
  it('given the courier, when deleting the owner’s passkey, then 404 and it stays; the owner can delete it, then it no longer signs in', async () => {
    const authenticator = await register(ownerToken, 'To remove');
    const head = await auditHead();
    const byCourier = await call('DELETE', `/api/auth/passkeys/${authenticator.id}`, {
      token: courierToken,
    });
    expectRefusal(byCourier, 'passkey.not-found');
    expect(await storedPasskeyIds('owner-alex')).toContain(authenticator.id);
    expect((await auditAfter(head)).filter((e) => e.kind === 'auth.passkey-removed')).toEqual([]);

    expectError(
      await call('DELETE', `/api/auth/passkeys/${authenticator.id}`),
      401,
      'auth.required',
    );
    expectError(await call('DELETE', '/api/auth/passkeys/not%20base64'), 400, 'request.invalid');

    const byOwner = await call('DELETE', `/api/auth/passkeys/${authenticator.id}`, {
      token: ownerToken,
    });
    expect(byOwner.status).toBe(200);
    expect(byOwner.body).toEqual({ ok: true });
    expect(await storedPasskeyIds('owner-alex')).not.toContain(authenticator.id);
    const removed = (await auditAfter(head)).filter((e) => e.kind === 'auth.passkey-removed');
    expect(removed).toMatchObject([
      { actor: { type: 'principal', id: 'owner-alex' }, subject: `passkey:${authenticator.id}` },
    ]);

    expectRefusal(
      await call('DELETE', `/api/auth/passkeys/${authenticator.id}`, { token: ownerToken }),
      'passkey.not-found',
    );
    expectRefusal(await signInWith(authenticator), 'passkey.unknown-credential');
  });
});

describe('passkey audit', () => {
  it('records registration, sign-in, failed sign-in and removal, with no key material', async () => {
    const head = await auditHead();
    const authenticator = new SoftAuthenticator('localhost', origin);
    const options = await registrationOptions(ownerToken);
    const creation = authenticator.create(options);
    expect(
      (
        await call('POST', '/api/auth/passkeys/registration', {
          token: ownerToken,
          json: { name: 'Audited', response: creation },
        })
      ).status,
    ).toBe(200);
    const req1 = await signInOptions();
    const assertion = authenticator.get(req1.options);
    expect(
      (
        await call('POST', '/api/auth/passkeys/authentication', {
          json: { challengeId: req1.challengeId, response: assertion },
        })
      ).status,
    ).toBe(200);
    const req2 = await signInOptions();
    const failed = authenticator.get(req2.options, { origin: 'https://evil.example' });
    expect(
      (
        await call('POST', '/api/auth/passkeys/authentication', {
          json: { challengeId: req2.challengeId, response: failed },
        })
      ).status,
    ).toBe(401);
    expect(
      (await call('DELETE', `/api/auth/passkeys/${authenticator.id}`, { token: ownerToken }))
        .status,
    ).toBe(200);

    const entries = (await auditAfter(head)).filter((e) => e.kind.startsWith('auth.passkey-'));
    expect(entries.map((e) => e.kind)).toEqual([
      'auth.passkey-registered',
      'auth.passkey-sign-in',
      'auth.passkey-sign-in-failed',
      'auth.passkey-removed',
    ]);
    expect(entries[0]).toMatchObject({
      actor: { type: 'principal', id: 'owner-alex' },
      subject: `passkey:${authenticator.id}`,
      data: { name: 'Audited', backedUp: true },
    });
    expect(entries[1]).toMatchObject({
      actor: { type: 'principal', id: 'owner-alex' },
      data: { ip: '127.0.0.1' },
    });
    expect(entries[2]).toMatchObject({
      actor: { type: 'system', id: 'auth' },
      subject: `passkey:${authenticator.id}`,
      data: { ip: '127.0.0.1', reason: 'passkey.sign-in-failed' },
    });

    const text = JSON.stringify(entries);
    const secrets = [
      b64u(authenticator.coseKey()),
      String(authenticator.keys.publicKey.export({ format: 'jwk' }).x),
      creation.response.attestationObject,
      creation.response.clientDataJSON,
      assertion.response.signature,
      assertion.response.authenticatorData,
      assertion.response.clientDataJSON,
      failed.response.signature,
      options.challenge,
      req1.options.challenge,
      req1.challengeId,
    ];
    for (const s of secrets) expect(text).not.toContain(s);
  });
});

describe('passkey sign-in limits', () => {
  it('given more than the limit of sign-in answers from one address in a minute, then 429 until the minute has passed', async () => {
    const stranger = new SoftAuthenticator('localhost', origin);
    const { options, challengeId } = await signInOptions();
    const response = stranger.get(options);
    for (let i = 0; i < PASSKEY_SIGN_IN_LIMIT_PER_MINUTE; i++) {
      const a = await call('POST', '/api/auth/passkeys/authentication', {
        json: { challengeId, response },
      });
      expect(a.status).not.toBe(429);
    }
    const head = await auditHead();
    const limited = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response },
    });
    expectError(limited, 429, 'request.rate-limited');
    // Refused before anything was looked at, so the flood does not flood the audit log either.
    expect(await auditAfter(head)).toEqual([]);

    clock.advance(60_000);
    const again = await call('POST', '/api/auth/passkeys/authentication', {
      json: { challengeId, response },
    });
    expect(again.status).not.toBe(429);
  });

  it('given more than the limit of option requests from one address in a minute, then 429', async () => {
    for (let i = 0; i < PASSKEY_SIGN_IN_LIMIT_PER_MINUTE; i++) await signInOptions();
    expectError(
      await call('POST', '/api/auth/passkeys/authentication/options', { json: {} }),
      429,
      'request.rate-limited',
    );
  });

  it('given a flood of option requests, then outstanding challenges stay capped, the oldest are evicted and the newest still work', async () => {
    const small = new Passkeys({
      store: sys.store,
      clock,
      rpName: 'Threshold',
      ...localRelyingParty(1),
      maxOutstandingChallenges: 50,
    });
    const first = await small.authenticationOptions();
    for (let i = 0; i < 5_000; i++) await small.authenticationOptions();
    expect(small.outstandingChallenges()).toBe(50);
    const last = await small.authenticationOptions();
    expect(small.outstandingChallenges()).toBe(50);

    const authenticator = new SoftAuthenticator('localhost', 'http://localhost:1');
    const evicted = await small.verifyAuthentication(
      first.challengeId,
      authenticator.get(first.options) as never,
    );
    expect(evicted.ok).toBe(false);
    if (!evicted.ok) expect(evicted.problem.detail?.reason).toBe('passkey.challenge-invalid');
    const fresh = await small.verifyAuthentication(
      last.challengeId,
      authenticator.get(last.options) as never,
    );
    // Live challenge, so the refusal is about the (unregistered) credential, not the challenge.
    expect(fresh.ok).toBe(false);
    if (!fresh.ok) expect(fresh.problem.detail?.reason).toBe('passkey.unknown-credential');

    // Expired challenges are swept as new ones come in.
    clock.advance(CHALLENGE_TTL_MS);
    await small.authenticationOptions();
    expect(small.outstandingChallenges()).toBe(1);
  });
});

describe('passkey limit', () => {
  it('given servers on one database registering at once for an account one short of the limit, then exactly one passkey is added', async () => {
    const principal = {
      id: `owner-limit-${randomBytes(4).toString('hex')}`,
      role: 'owner' as const,
      displayName: 'Pat',
      homeId: creds.homeId,
      carrierId: null,
    };
    await sys.store.principals.create(principal, {
      username: principal.id,
      passwordHash: 'not-used',
    });
    for (let i = 0; i < MAX_PASSKEYS_PER_PRINCIPAL - 1; i++) {
      await sys.store.passkeys.add({
        id: `filler-${principal.id}-${i}`,
        principalId: principal.id,
        name: `Key ${i}`,
        publicKey: 'AA',
        counter: 0,
        transports: [],
        deviceType: 'singleDevice',
        backedUp: false,
        createdAt: clock.now(),
        lastUsedAt: null,
      });
    }
    // Each replica keeps its own registration challenges, as servers behind one load balancer
    // do. Their store holds every count until all have counted: the race (all pass the early
    // count, then insert), made certain rather than left to timing.
    const count = 6;
    let racing = false;
    let counted = 0;
    let allCounted = (): void => undefined;
    const barrier = new Promise<void>((resolve) => (allCounted = resolve));
    const repo = sys.store.passkeys;
    const heldRepo = new Proxy(repo, {
      get(target, prop) {
        if (prop === 'listForPrincipal') {
          return async (id: string) => {
            const rows = await target.listForPrincipal(id);
            if (racing && id === principal.id) {
              if (++counted === count) allCounted();
              await Promise.race([barrier, new Promise((r) => setTimeout(r, 5_000))]);
            }
            return rows;
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
    const store = Object.assign(Object.create(sys.store) as typeof sys.store, {
      passkeys: heldRepo,
    });
    const rp = localRelyingParty(1);
    const replicas = Array.from(
      { length: count },
      () => new Passkeys({ store, clock, rpName: 'Threshold', ...rp }),
    );
    const answers = await Promise.all(
      replicas.map(async (replica) => {
        const options = await replica.registrationOptions(principal);
        const authenticator = new SoftAuthenticator('localhost', rp.origins[0]!);
        return { replica, response: authenticator.create(options as never) };
      }),
    );
    racing = true;
    const results = await Promise.all(
      answers.map(({ replica, response }) =>
        replica.verifyRegistration(principal, 'Phone', response as never),
      ),
    );
    expect(counted).toBe(count);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    for (const r of results.filter((x) => !x.ok)) {
      if (!r.ok) expect(r.problem.detail?.reason).toBe('passkey.limit-reached');
    }
    expect(await storedPasskeyIds(principal.id)).toHaveLength(MAX_PASSKEYS_PER_PRINCIPAL);
  });
});

describe('passkey refusal statuses', () => {
  it('answers a bad or stale request 400, a failed sign-in 401 and someone else’s passkey 404', () => {
    const status = (r: PasskeyRefusal) => httpStatusOf(PASSKEY_REFUSALS[r].code);
    expect(status('passkey.challenge-invalid')).toBe(400);
    expect(status('passkey.registration-invalid')).toBe(400);
    expect(status('passkey.not-found')).toBe(404);
    expect(status('passkey.unknown-credential')).toBe(401);
    expect(status('passkey.sign-in-failed')).toBe(401);
    expect(status('passkey.counter-regressed')).toBe(401);
    expect(status('passkey.already-registered')).toBeGreaterThanOrEqual(400);
    expect(status('passkey.limit-reached')).toBeGreaterThanOrEqual(400);
  });
});

describe('relying party', () => {
  it('is localhost with its port by default, and the host name of a public https URL', () => {
    expect(localRelyingParty(8080)).toEqual({
      rpId: 'localhost',
      origins: ['http://localhost:8080'],
    });
    expect(relyingPartyFromUrl('https://door.example.com')).toEqual({
      rpId: 'door.example.com',
      origins: ['https://door.example.com'],
    });
    expect(relyingPartyFromUrl('https://door.example.com:8443/')).toEqual({
      rpId: 'door.example.com',
      origins: ['https://door.example.com:8443'],
    });
    for (const bad of [
      'http://door.example.com',
      'https://192.168.1.10',
      'https://[::1]',
      'https://door.example.com/app',
      'https://user:pw@door.example.com',
      'not a url',
    ]) {
      expect(() => relyingPartyFromUrl(bad), bad).toThrow(RangeError);
    }
  });
});

/**
 * Carrier accounts, against the real system (server, broker, SQLite in a temp dir, the demo
 * home's simulated lock, door sensor and camera, real HTTP on loopback):
 *
 * - API keys: made with a name and scopes and shown once, listed without secrets, rotated
 *   (the old one dead at once), revoked (dead at once); scopes enforced, never granted beyond
 *   what the caller holds; the last key that manages keys kept; a per-key rate limit.
 * - Couriers: invited by link, the link accepted (signed in as the courier), revoked at once
 *   (their sign-in dead, their visit under way ended and the door relocked).
 * - The owner's choice: carriers allowed or blocked per home, couriers blocked; a blocked
 *   carrier cannot deliver, a blocked courier is refused at the door in plain words.
 * - Another carrier sees and touches none of it: 404 as for unknown ids, each attempt audited.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/core/audit-chain.ts';
import { sleep, ScenarioWorld } from '../src/harness/scenario-world.ts';
import type {
  ApiKeyView,
  CarrierCourierView,
  CourierInviteView,
  HomeCarrierView,
  HomeCourierView,
  SessionView,
} from '../src/protocol/views.ts';
import { hashPassword, tokenHash } from '../src/server/auth.ts';
import { CARRIER_REQUESTS_PER_MINUTE } from '../src/server/routes/carrier-auth.ts';
import { MAX_WORKING_KEYS } from '../src/server/routes/carrier-key-routes.ts';
import { createDemoDelivery, DEMO_DOORSTEP } from '../src/server/seed.ts';

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: Record<string, unknown> & { error?: { code: string; message: string } };
}

let world: ScenarioWorld;
/** The demo carrier's admin, signed in. */
let admin = '';
/** The demo home's owner, signed in. */
let owner = '';
/** A second carrier, with a key holding every scope, and its courier. */
const birch = { id: 'carrier-birch-express', key: '', courierId: 'courier-birch-ana' };

async function call(
  method: string,
  path: string,
  opts: { token?: string | null; json?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token != null) headers.authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers,
    ...(opts.json === undefined ? {} : { body: JSON.stringify(opts.json) }),
  });
  const text = await res.text();
  const isJson = (res.headers.get('content-type') ?? '').includes('json') && text.length > 0;
  return {
    status: res.status,
    headers: res.headers,
    text,
    body: isJson ? (JSON.parse(text) as Answer['body']) : {},
  };
}

async function signIn(username: string, password: string): Promise<string> {
  const r = await call('POST', '/api/auth/sign-in', { json: { username, password } });
  expect(r.status, r.text).toBe(200);
  return String(r.body.token);
}

async function auditOf(subject: string, kind: string): Promise<AuditEntry[]> {
  await world.sys.audit.drain();
  return (await world.sys.store.audit.entriesForSubject(subject)).filter((e) => e.kind === kind);
}

async function makeKey(token: string, name: string, scopes: string[]) {
  const r = await call('POST', '/api/carrier/keys', { token, json: { name, scopes } });
  expect(r.status, r.text).toBe(201);
  return { view: r.body.key as ApiKeyView, secret: String(r.body.secret) };
}

async function keysOf(carrierId: string): Promise<string> {
  const keys = await world.sys.store.principals.listApiKeys(carrierId);
  return JSON.stringify(keys.map((k) => [k.id, k.revokedAt, k.scopes]));
}

/**
 * Holds every `listApiKeys(carrierId)` the server makes until `count` of them have been made
 * (or 5 s passed), so requests at once all count before any of them writes: the race a
 * count-then-write route loses, made certain rather than left to timing. Returns the undo.
 */
function holdKeyCounts(carrierId: string, count: number): () => void {
  const repo = world.sys.store.principals;
  const real = repo.listApiKeys.bind(repo);
  let seen = 0;
  let release = (): void => undefined;
  const all = new Promise<void>((resolve) => (release = resolve));
  repo.listApiKeys = async (id: string) => {
    const keys = await real(id);
    if (id === carrierId) {
      if (++seen === count) release();
      await Promise.race([all, sleep(5_000)]);
    }
    return keys;
  };
  return () => {
    repo.listApiKeys = real;
  };
}

/** Waits until `pred` holds, polling; fails after `ms`. */
async function until(pred: () => boolean | Promise<boolean>, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(25);
  }
}

async function sessionState(id: string): Promise<SessionView['state'] | undefined> {
  return (await world.sys.orchestrator.view(id))?.state;
}

const TERMINAL = ['completed', 'refused', 'aborted'];

/** A courier of the demo carrier at the demo door for a new delivery of theirs: the answer. */
async function atTheDoor(courierId: string, token: string): Promise<Answer> {
  const now = world.sys.clock.now();
  const d = await createDemoDelivery(
    world.sys,
    world.creds.homeId,
    world.creds.doorId,
    world.creds.carrier.id,
    courierId,
    now - 60_000,
    3_600_000,
    world.maxOpenMs,
  );
  return call('POST', `/api/courier/deliveries/${d.id}/access`, {
    token,
    json: { position: DEMO_DOORSTEP },
  });
}

/** Waits until the demo door's lock reports locked (and the devices are ready for the next). */
async function relocked(): Promise<void> {
  await until(() => world.home.lock.bolt() === 'locked', 15_000, 'the lock is locked');
  await until(
    () => {
      const s = world.sys.gateway.liveStatus(world.creds.devices.lock.id)?.state;
      return s?.kind === 'lock' && s.bolt === 'locked';
    },
    10_000,
    'the lock reports locked',
  );
  await until(
    async () => (await world.sys.store.sessions.findActiveForDoor(world.creds.doorId)) === null,
    15_000,
    'no session runs at the door',
  );
}

beforeAll(async () => {
  world = await ScenarioWorld.create();
  const { sys, creds } = world;
  admin = await signIn(creds.carrierAdmin.username, creds.carrierAdmin.password);
  owner = await signIn(creds.owner.username, creds.owner.password);
  await sys.store.principals.createCarrier({ id: birch.id, name: 'Birch Express' });
  birch.key = (await sys.auth.createApiKey(birch.id)).key;
  await sys.store.principals.create(
    {
      id: birch.courierId,
      role: 'courier',
      displayName: 'Ana (Birch)',
      homeId: null,
      carrierId: birch.id,
    },
    { username: 'birch-ana', passwordHash: await hashPassword('birch ana password') },
  );
}, 60_000);

afterAll(async () => {
  await world?.close();
});

describe('API keys', () => {
  it('a carrier admin signs in and makes a named, scoped key; its secret is shown once and only its hash is kept', async () => {
    const before = await world.sys.store.principals.listApiKeys(world.creds.carrier.id);
    const { view, secret } = await makeKey(admin, '  Dispatch  ', [
      'keys:manage',
      'deliveries:read',
    ]);
    expect(secret).toMatch(/^thk_[A-Za-z0-9_-]{43}$/);
    expect(view).toMatchObject({
      name: 'Dispatch',
      prefix: secret.slice(4, 12),
      scopes: ['deliveries:read', 'keys:manage'],
      createdBy: world.creds.carrierAdmin.id,
      lastUsedAt: null,
      revokedAt: null,
      replacedBy: null,
      status: 'active',
    });
    const stored = await world.sys.store.principals.getApiKey(view.id);
    expect(stored?.keyHash).toBe(tokenHash(secret));
    expect(await world.sys.store.principals.listApiKeys(world.creds.carrier.id)).toHaveLength(
      before.length + 1,
    );

    // The list shows every key of the carrier, never a secret or a hash.
    const list = await call('GET', '/api/carrier/keys', { token: secret });
    expect(list.status).toBe(200);
    const keys = list.body.keys as ApiKeyView[];
    expect(keys.map((k) => k.id)).toContain(view.id);
    expect(keys.length).toBe(before.length + 1);
    expect(list.text).not.toContain(secret);
    expect(list.text).not.toContain(world.creds.carrier.apiKey);
    expect(list.text).not.toContain(tokenHash(secret));
    expect(list.text).not.toMatch(/keyHash|key_hash/);
    // The request itself was the key's use.
    expect(keys.find((k) => k.id === view.id)?.lastUsedAt).toEqual(expect.any(Number));

    const made = await auditOf(`carrier:${world.creds.carrier.id}`, 'apikey.created');
    expect(made.at(-1)).toMatchObject({
      actor: { type: 'principal', id: world.creds.carrierAdmin.id },
      data: { keyId: view.id, name: 'Dispatch', scopes: ['deliveries:read', 'keys:manage'] },
    });
    expect(JSON.stringify(made)).not.toContain(secret);
  });

  it('enforces scopes: a key without couriers:manage is refused, and the refusal is audited', async () => {
    const { view, secret } = await makeKey(admin, 'Reader', ['deliveries:read', 'keys:manage']);
    const r = await call('POST', '/api/carrier/couriers/invites', {
      token: secret,
      json: { displayName: 'Nobody' },
    });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({
      code: 'auth.forbidden',
      message: 'This API key lacks the scope "couriers:manage".',
    });
    const denied = await auditOf('route:/api/carrier/couriers/invites', 'auth.denied');
    expect(denied.at(-1)).toMatchObject({
      actor: { type: 'principal', id: `apikey:${view.id}` },
      data: { scope: 'couriers:manage', carrierId: world.creds.carrier.id },
    });
    expect(await world.sys.store.principals.listCourierInvites(world.creds.carrier.id)).toEqual([]);
  });

  it('a key cannot grant scopes it does not hold: not by making a key, nor by rotating a stronger one', async () => {
    const { view, secret } = await makeKey(admin, 'Key keeper', ['keys:manage']);
    const before = await keysOf(world.creds.carrier.id);

    const mint = await call('POST', '/api/carrier/keys', {
      token: secret,
      json: { name: 'Escalation', scopes: ['keys:manage', 'webhooks:manage'] },
    });
    expect(mint.status).toBe(403);
    expect(mint.body.error?.code).toBe('auth.forbidden');
    expect(mint.body.error?.message).toContain('"webhooks:manage"');

    // The demo key holds every scope: rotating it would hand this key a stronger secret.
    const demoKeyId = (await world.sys.store.principals.findApiKeyByHash(
      tokenHash(world.creds.carrier.apiKey),
    ))!.id;
    const rotate = await call('POST', `/api/carrier/keys/${demoKeyId}/rotate`, {
      token: secret,
      json: {},
    });
    expect(rotate.status).toBe(403);
    expect(rotate.text).not.toContain('thk_');
    expect(await keysOf(world.creds.carrier.id)).toBe(before);
    expect(
      (await call('GET', '/api/carrier/keys', { token: world.creds.carrier.apiKey })).status,
    ).toBe(200);

    const denied = await auditOf('route:/api/carrier/keys', 'auth.denied');
    expect(denied.at(-1)).toMatchObject({
      actor: { id: `apikey:${view.id}` },
      data: { scopes: ['webhooks:manage'] },
    });

    // What it holds, it may grant.
    const ok = await call('POST', '/api/carrier/keys', {
      token: secret,
      json: { name: 'Another keeper', scopes: ['keys:manage'] },
    });
    expect(ok.status).toBe(201);
    expect((ok.body.key as ApiKeyView).createdBy).toBe(`apikey:${view.id}`);
  });

  it('rotating answers a new secret with the same name and scopes; the old secret is refused at once', async () => {
    const { view, secret } = await makeKey(admin, 'Warehouse', ['deliveries:read', 'keys:manage']);
    const r = await call('POST', `/api/carrier/keys/${view.id}/rotate`, {
      token: secret,
      json: {},
    });
    expect(r.status, r.text).toBe(201);
    const fresh = r.body.key as ApiKeyView;
    const newSecret = String(r.body.secret);
    expect(newSecret).toMatch(/^thk_/);
    expect(newSecret).not.toBe(secret);
    expect(fresh).toMatchObject({
      name: 'Warehouse',
      scopes: ['deliveries:read', 'keys:manage'],
      status: 'active',
      prefix: newSecret.slice(4, 12),
    });
    expect(r.body.replaced).toMatchObject({ id: view.id, status: 'revoked', replacedBy: fresh.id });

    const old = await call('GET', '/api/carrier/keys', { token: secret });
    expect(old.status).toBe(401);
    expect(old.body.error?.code).toBe('auth.required');
    expect((await call('GET', '/api/carrier/keys', { token: newSecret })).status).toBe(200);

    // A revoked key is not rotated again.
    const again = await call('POST', `/api/carrier/keys/${view.id}/rotate`, {
      token: admin,
      json: {},
    });
    expect(again.status).toBe(409);
    expect(again.body.error?.code).toBe('key.revoked');
    expect(await auditOf(`carrier:${world.creds.carrier.id}`, 'apikey.rotated')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ data: { keyId: view.id, replacedBy: fresh.id } }),
      ]),
    );
  });

  it('a revoked key is refused on its very next request, on every route', async () => {
    const { view, secret } = await makeKey(admin, 'Temp', ['deliveries:read']);
    expect((await call('GET', '/api/carrier/deliveries', { token: secret })).status).toBe(200);
    const r = await call('POST', `/api/carrier/keys/${view.id}/revoke`, {
      token: admin,
      json: {},
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.key).toMatchObject({ id: view.id, status: 'revoked' });
    for (const path of ['/api/carrier/deliveries', '/api/carrier/keys', '/api/me']) {
      const a = await call('GET', path, { token: secret });
      expect(a.status, path).toBe(401);
      expect(a.body.error?.code).toBe('auth.required');
    }
    const twice = await call('POST', `/api/carrier/keys/${view.id}/revoke`, {
      token: admin,
      json: {},
    });
    expect(twice.status).toBe(409);
    expect(twice.body.error?.code).toBe('key.revoked');
  });

  it('an API key may not revoke the last working key that manages keys; rotating it is the way', async () => {
    const solo = `carrier-solo-${randomBytes(3).toString('hex')}`;
    await world.sys.store.principals.createCarrier({ id: solo, name: 'Solo Couriers' });
    const only = await world.sys.auth.createApiKey(solo);
    const self = await call('POST', `/api/carrier/keys/${only.id}/revoke`, {
      token: only.key,
      json: {},
    });
    expect(self.status).toBe(409);
    expect(self.body.error?.code).toBe('key.last-manager');
    expect((await call('GET', '/api/carrier/keys', { token: only.key })).status).toBe(200);

    // With a second key that manages keys, the first may go.
    const second = await makeKey(only.key, 'Second', ['keys:manage']);
    expect(
      (await call('POST', `/api/carrier/keys/${only.id}/revoke`, { token: only.key, json: {} }))
        .status,
    ).toBe(200);
    expect((await call('GET', '/api/carrier/keys', { token: only.key })).status).toBe(401);
    // …but not the second, now the last.
    const last = await call('POST', `/api/carrier/keys/${second.view.id}/revoke`, {
      token: second.secret,
      json: {},
    });
    expect(last.body.error?.code).toBe('key.last-manager');
  });

  it('keys asked for at once, one short of the limit, make exactly one more', async () => {
    const busy = `carrier-busy-${randomBytes(3).toString('hex')}`;
    await world.sys.store.principals.createCarrier({ id: busy, name: 'Busy Couriers' });
    const manager = await world.sys.auth.createApiKey(busy);
    for (let i = 2; i < MAX_WORKING_KEYS; i++) {
      await world.sys.auth.createApiKey(busy, { name: `Filler ${i}`, scopes: ['deliveries:read'] });
    }
    const undo = holdKeyCounts(busy, 8);
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        call('POST', '/api/carrier/keys', {
          token: manager.key,
          json: { name: `Racer ${i}`, scopes: ['deliveries:read'] },
        }),
      ),
    ).finally(undo);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    for (const a of answers.filter((x) => x.status === 409)) {
      expect(a.body.error?.code).toBe('key.limit-reached');
    }
    const working = (await world.sys.store.principals.listApiKeys(busy)).filter(
      (k) => k.revokedAt === null,
    );
    expect(working).toHaveLength(MAX_WORKING_KEYS);
  });

  it('two keys that manage keys revoking each other at once: one goes, the last stays', async () => {
    for (let round = 0; round < 2; round++) {
      const pair = `carrier-pair-${randomBytes(3).toString('hex')}`;
      await world.sys.store.principals.createCarrier({ id: pair, name: 'Pair Couriers' });
      const a = await world.sys.auth.createApiKey(pair);
      const b = await world.sys.auth.createApiKey(pair);
      const undo = holdKeyCounts(pair, 2);
      const answers = await Promise.all([
        call('POST', `/api/carrier/keys/${b.id}/revoke`, { token: a.key, json: {} }),
        call('POST', `/api/carrier/keys/${a.id}/revoke`, { token: b.key, json: {} }),
      ]).finally(undo);
      // One is revoked; the other is refused as the last manager, or, revoked already when
      // it is checked, as a key that no longer works.
      const outcomes = answers.map((r) => `${r.status} ${r.body.error?.code ?? ''}`).sort();
      expect(outcomes, `round ${round}`).toContainEqual('200 ');
      expect([
        ['200 ', '409 key.last-manager'],
        ['200 ', '401 auth.required'],
      ]).toContainEqual(outcomes);
      const working = (await world.sys.store.principals.listApiKeys(pair)).filter(
        (k) => k.revokedAt === null,
      );
      expect(working, `round ${round}`).toHaveLength(1);
    }
  });

  it('refuses bad input with 400 and makes nothing', async () => {
    const before = await keysOf(world.creds.carrier.id);
    const bad: unknown[] = [
      {},
      { name: 'x' },
      { name: '', scopes: ['deliveries:read'] },
      { name: '   ', scopes: ['deliveries:read'] },
      { name: 'x', scopes: [] },
      { name: 'x', scopes: ['everything'] },
      { name: 'x', scopes: ['deliveries:read', 'deliveries:read'] },
      { name: 'x', scopes: 'deliveries:read' },
      { name: 'x'.repeat(101), scopes: ['deliveries:read'] },
      { name: 'x', scopes: ['deliveries:read'], admin: true },
    ];
    for (const json of bad) {
      const r = await call('POST', '/api/carrier/keys', { token: admin, json });
      expect(r.status, JSON.stringify(json)).toBe(400);
      expect(r.body.error?.code).toBe('request.invalid');
    }
    for (const path of ['/api/carrier/keys/NOT_AN_ID/revoke', '/api/carrier/keys/x/rotate']) {
      const r = await call('POST', path, { token: admin, json: { extra: 1 } });
      expect(r.status, path).toBe(400);
    }
    const unknown = await call('POST', '/api/carrier/keys/key-000000000000/revoke', {
      token: admin,
      json: {},
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('key.not-found');
    expect(await keysOf(world.creds.carrier.id)).toBe(before);
  });

  it(`limits each key to ${CARRIER_REQUESTS_PER_MINUTE} requests a minute (429 with Retry-After); other keys go on`, async () => {
    const busy = await makeKey(admin, 'Busy', ['keys:manage']);
    const calm = await makeKey(admin, 'Calm', ['keys:manage']);
    let ok = 0;
    for (let sent = 0; sent < CARRIER_REQUESTS_PER_MINUTE; sent += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => call('GET', '/api/carrier/keys', { token: busy.secret })),
      );
      ok += batch.filter((a) => a.status === 200).length;
    }
    expect(ok).toBe(CARRIER_REQUESTS_PER_MINUTE);
    const over = await call('GET', '/api/carrier/keys', { token: busy.secret });
    expect(over.status).toBe(429);
    expect(over.body.error?.code).toBe('request.rate-limited');
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await call('GET', '/api/carrier/keys', { token: calm.secret })).status).toBe(200);
  }, 60_000);
});

describe('couriers', () => {
  let invite: { view: CourierInviteView; token: string };

  it('an admin invites a courier; the link shows whose invitation it is, without sign-in', async () => {
    const r = await call('POST', '/api/carrier/couriers/invites', {
      token: admin,
      json: { displayName: ' Robin ' },
    });
    expect(r.status, r.text).toBe(201);
    invite = { view: r.body.invite as CourierInviteView, token: String(r.body.token) };
    expect(invite.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(r.body.path).toBe(`/courier-invite/${invite.token}`);
    expect(invite.view).toMatchObject({
      displayName: 'Robin',
      status: 'pending',
      createdBy: world.creds.carrierAdmin.id,
    });
    expect(invite.view.expiresAt - invite.view.createdAt).toBe(7 * 24 * 3_600_000);
    const stored = await world.sys.store.principals.getCourierInvite(invite.view.id);
    expect(stored?.tokenHash).toBe(tokenHash(invite.token));

    const offer = await call('GET', `/api/courier-invites/${invite.token}`);
    expect(offer.status).toBe(200);
    expect(offer.body).toEqual({
      invite: { displayName: 'Robin', expiresAt: invite.view.expiresAt },
      carrier: { name: 'ParcelCo' },
    });

    const list = await call('GET', '/api/carrier/couriers', { token: world.creds.carrier.apiKey });
    expect(list.status).toBe(200);
    expect((list.body.invites as CourierInviteView[]).map((i) => i.id)).toContain(invite.view.id);
    expect(list.text).not.toContain(invite.token);
    expect((list.body.couriers as CarrierCourierView[]).map((c) => c.id)).toContain(
      world.creds.courier.id,
    );
  });

  let robin: { id: string; token: string };

  it('the courier accepts the link once, choosing a user name and password, and is signed in', async () => {
    const r = await call('POST', `/api/courier-invites/${invite.token}/accept`, {
      json: { username: 'robin-courier', password: 'a long password for robin' },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.headers.get('set-cookie')).toMatch(/threshold_session=.+HttpOnly/i);
    const principal = r.body.principal as { id: string; role: string; carrierId: string };
    expect(principal).toMatchObject({
      role: 'courier',
      carrierId: world.creds.carrier.id,
      displayName: 'Robin',
    });
    robin = { id: principal.id, token: String(r.body.token) };
    expect((await call('GET', '/api/courier/deliveries', { token: robin.token })).status).toBe(200);
    // Signing in later works like for everyone.
    await signIn('robin-courier', 'a long password for robin');

    const again = await call('POST', `/api/courier-invites/${invite.token}/accept`, {
      json: { username: 'robin-2', password: 'a long password for robin' },
    });
    expect(again.status).toBe(410);
    expect(again.body.error?.code).toBe('invite.used');
    expect(await world.sys.store.principals.getByUsername('robin-2')).toBeNull();
    expect((await call('GET', `/api/courier-invites/${invite.token}`)).status).toBe(410);

    const list = await call('GET', '/api/carrier/couriers', { token: admin });
    const mine = (list.body.couriers as CarrierCourierView[]).find((c) => c.id === robin.id);
    expect(mine).toMatchObject({ username: 'robin-courier', status: 'active', revokedAt: null });
    expect(
      (list.body.invites as CourierInviteView[]).find((i) => i.id === invite.view.id),
    ).toMatchObject({ status: 'accepted', acceptedBy: robin.id });
  });

  it('refuses bad links and bad choices with clear 4xx answers, making no account', async () => {
    const fresh = await call('POST', '/api/carrier/couriers/invites', {
      token: admin,
      json: { displayName: 'Kit' },
    });
    const token = String(fresh.body.token);
    const cases: [string, unknown, number, string][] = [
      ['short password', { username: 'kit-courier', password: 'short' }, 400, 'request.invalid'],
      [
        'bad user name',
        { username: 'kit courier', password: 'long enough pw' },
        400,
        'request.invalid',
      ],
      [
        'extra field',
        { username: 'kit-c', password: 'long enough pw', role: 'owner' },
        400,
        'request.invalid',
      ],
      [
        'taken name',
        { username: 'Robin-Courier', password: 'long enough pw' },
        409,
        'auth.username-taken',
      ],
    ];
    for (const [what, json, status, code] of cases) {
      const r = await call('POST', `/api/courier-invites/${token}/accept`, { json });
      expect(r.status, what).toBe(status);
      expect(r.body.error?.code, what).toBe(code);
    }
    expect((await call('GET', `/api/courier-invites/${token}`)).status).toBe(200);
    const unknown = await call('GET', `/api/courier-invites/${'A'.repeat(43)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('invite.not-found');
    expect((await call('GET', '/api/courier-invites/short')).status).toBe(400);
    for (const json of [
      {},
      { displayName: '' },
      { displayName: '  ' },
      { displayName: 'x'.repeat(65) },
    ]) {
      const r = await call('POST', '/api/carrier/couriers/invites', { token: admin, json });
      expect(r.status, JSON.stringify(json)).toBe(400);
    }
    expect(await world.sys.store.principals.getByUsername('kit-courier')).toBeNull();
  });

  it('a withdrawn invitation no longer opens', async () => {
    const r = await call('POST', '/api/carrier/couriers/invites', {
      token: admin,
      json: { displayName: 'Lee' },
    });
    const id = (r.body.invite as CourierInviteView).id;
    const token = String(r.body.token);
    const revoke = await call('POST', `/api/carrier/couriers/invites/${id}/revoke`, {
      token: world.creds.carrier.apiKey,
      json: {},
    });
    expect(revoke.status).toBe(200);
    expect(revoke.body.invite).toMatchObject({ id, status: 'revoked' });
    expect((await call('GET', `/api/courier-invites/${token}`)).status).toBe(410);
    const accept = await call('POST', `/api/courier-invites/${token}/accept`, {
      json: { username: 'lee-courier', password: 'a long password' },
    });
    expect(accept.status).toBe(410);
    const twice = await call('POST', `/api/carrier/couriers/invites/${id}/revoke`, {
      token: admin,
      json: {},
    });
    expect(twice.status).toBe(410);
    expect(twice.body.error?.code).toBe('invite.used');
  });

  it('revoking a courier ends it at once: their sign-in is refused, their visit ends and the door relocks', async () => {
    const open = await atTheDoor(robin.id, robin.token);
    expect(open.status, open.text).toBe(200);
    const session = open.body.session as SessionView;
    expect(session.state).toBe('open');
    expect(world.home.lock.bolt()).toBe('unlocked');

    const r = await call('POST', `/api/carrier/couriers/${robin.id}/revoke`, {
      token: admin,
      json: {},
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body.courier).toMatchObject({ id: robin.id, status: 'revoked' });
    expect(r.body.revokedGrants).toHaveLength(1);

    // Their token is dead at once, and a new sign-in is refused.
    const me = await call('GET', '/api/courier/deliveries', { token: robin.token });
    expect(me.status).toBe(401);
    const again = await call('POST', '/api/auth/sign-in', {
      json: { username: 'robin-courier', password: 'a long password for robin' },
    });
    expect(again.status).toBe(401);

    // The visit under way ends, and the door is locked again.
    await until(
      async () => TERMINAL.includes((await sessionState(session.id)) ?? ''),
      20_000,
      'the revoked courier’s session ends',
    );
    await relocked();
    const grant = await world.sys.store.deliveries.getGrant(
      String((r.body.revokedGrants as string[])[0]),
    );
    expect(grant?.revokedAt).toEqual(expect.any(Number));
    const audited = await auditOf(`carrier:${world.creds.carrier.id}`, 'courier.revoked');
    expect(audited.at(-1)).toMatchObject({
      actor: { id: world.creds.carrierAdmin.id },
      data: { courierId: robin.id, alreadyRevoked: false },
    });
  }, 60_000);
});

describe('another carrier', () => {
  it('sees none of the keys, couriers or invitations of the first, and cannot touch them (404, audited)', async () => {
    const birchKeyId = (await world.sys.store.principals.findApiKeyByHash(tokenHash(birch.key)))!
      .id;
    const demoKeyId = (await world.sys.store.principals.findApiKeyByHash(
      tokenHash(world.creds.carrier.apiKey),
    ))!.id;

    const keys = await call('GET', '/api/carrier/keys', { token: birch.key });
    expect((keys.body.keys as ApiKeyView[]).map((k) => k.id)).toEqual([birchKeyId]);
    const couriers = await call('GET', '/api/carrier/couriers', { token: birch.key });
    expect(couriers.body).toEqual({
      couriers: [
        {
          id: birch.courierId,
          displayName: 'Ana (Birch)',
          username: 'birch-ana',
          status: 'active',
          revokedAt: null,
        },
      ],
      invites: [],
    });

    const invite = await call('POST', '/api/carrier/couriers/invites', {
      token: admin,
      json: { displayName: 'Pat' },
    });
    const inviteId = (invite.body.invite as CourierInviteView).id;
    const before = {
      keys: await keysOf(world.creds.carrier.id),
      invite: await world.sys.store.principals.getCourierInvite(inviteId),
      sam: await world.sys.store.principals.isDisabled(world.creds.courier.id),
    };
    const attempts: [string, string, string][] = [
      [`/api/carrier/keys/${demoKeyId}/rotate`, 'key.not-found', `apikey:${demoKeyId}`],
      [`/api/carrier/keys/${demoKeyId}/revoke`, 'key.not-found', `apikey:${demoKeyId}`],
      [
        `/api/carrier/couriers/invites/${inviteId}/revoke`,
        'invite.not-found',
        `courier-invite:${inviteId}`,
      ],
      [
        `/api/carrier/couriers/${world.creds.courier.id}/revoke`,
        'courier.not-found',
        `principal:${world.creds.courier.id}`,
      ],
    ];
    for (const [path, code, subject] of attempts) {
      const r = await call('POST', path, { token: birch.key, json: {} });
      expect(r.status, path).toBe(404);
      expect(r.body.error?.code, path).toBe(code);
      // The same answer as for an id that does not exist.
      const unknown = await call(
        'POST',
        path.replace(/\/(key|cinv|courier)-[^/]+\//, '/$1-0000/'),
        {
          token: birch.key,
          json: {},
        },
      );
      expect(unknown.status, `unknown ${path}`).toBe(404);
      expect(unknown.body.error?.code).toBe(code);
      const denied = await auditOf(subject, 'auth.object-denied');
      expect(denied.at(-1), subject).toMatchObject({
        actor: { type: 'principal', id: `apikey:${birchKeyId}` },
        data: { role: 'carrier', carrierId: birch.id, answered: code },
      });
    }
    expect({
      keys: await keysOf(world.creds.carrier.id),
      invite: await world.sys.store.principals.getCourierInvite(inviteId),
      sam: await world.sys.store.principals.isDisabled(world.creds.courier.id),
    }).toEqual(before);
    // The first carrier's key and courier still work.
    expect(
      (await call('GET', '/api/carrier/keys', { token: world.creds.carrier.apiKey })).status,
    ).toBe(200);
  });
});

describe("the owner's choice", () => {
  const carriersPath = () => `/api/homes/${world.creds.homeId}/carriers`;

  async function decisionOf(carrierId: string): Promise<HomeCarrierView | undefined> {
    const r = await call('GET', carriersPath(), { token: owner });
    expect(r.status).toBe(200);
    return (r.body.carriers as HomeCarrierView[]).find((c) => c.id === carrierId);
  }

  async function decide(carrierId: string, decision: string): Promise<Answer> {
    return call('PUT', `${carriersPath()}/${carrierId}`, { token: owner, json: { decision } });
  }

  it('lists every carrier with the home’s decision; undecided is not allowed', async () => {
    expect(await decisionOf(world.creds.carrier.id)).toMatchObject({
      name: 'ParcelCo',
      decision: 'allowed',
    });
    expect(await decisionOf(birch.id)).toEqual({
      id: birch.id,
      name: 'Birch Express',
      decision: 'undecided',
      decidedAt: null,
      decidedBy: null,
    });
    const allowed = await decide(birch.id, 'allowed');
    expect(allowed.status).toBe(200);
    expect(allowed.body.carrier).toMatchObject({
      decision: 'allowed',
      decidedBy: { id: 'owner-alex', displayName: 'Alex' },
    });
    const audited = await auditOf(`home:${world.creds.homeId}`, 'carrier.decided');
    expect(audited.at(-1)).toMatchObject({
      actor: { id: 'owner-alex' },
      data: { carrierId: birch.id, decision: 'allowed', before: 'undecided' },
    });
  });

  it('refuses bad decisions and unknown carriers, changing nothing', async () => {
    for (const json of [{}, { decision: 'maybe' }, { decision: 'allowed', why: 'x' }]) {
      const r = await call('PUT', `${carriersPath()}/${birch.id}`, { token: owner, json });
      expect(r.status, JSON.stringify(json)).toBe(400);
    }
    const unknown = await decide('carrier-none', 'blocked');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('carrier.not-found');
    expect((await decisionOf(birch.id))?.decision).toBe('allowed');
  });

  it('a blocked carrier cannot deliver here (as if the home did not exist) and its courier is refused at the door', async () => {
    const blocked = await decide(world.creds.carrier.id, 'blocked');
    expect(blocked.status).toBe(200);
    const now = world.sys.clock.now();
    const create = await call('POST', '/api/carrier/deliveries', {
      token: world.creds.carrier.apiKey,
      headers: { 'idempotency-key': `blocked-${randomBytes(4).toString('hex')}` },
      json: {
        homeId: world.creds.homeId,
        packageRef: 'PKG-BLOCKED',
        windowStart: now,
        windowEnd: now + 3_600_000,
      },
    });
    expect(create.status, create.text).toBe(404);
    expect(create.body.error?.code).toBe('home.not-found');

    const sam = await signIn(world.creds.courier.username, world.creds.courier.password);
    const door = await atTheDoor(world.creds.courier.id, sam);
    expect(door.status).toBe(403);
    expect(door.body.error).toMatchObject({
      code: 'carrier.not-allowed',
      message:
        'The owner does not take in-home deliveries from this carrier; leave the parcel at the door.',
    });
    expect(world.home.lock.bolt()).toBe('locked');

    expect((await decide(world.creds.carrier.id, 'allowed')).status).toBe(200);
    const after = await atTheDoor(world.creds.courier.id, sam);
    expect(after.status, after.text).toBe(200);
    const id = (after.body.session as SessionView).id;
    await call('POST', `/api/courier/sessions/${id}/relock`, { token: sam, json: {} });
    await relocked();
  }, 60_000);

  it('blocks a courier: refused at the door in plain words, a visit under way ended; unblocked, let in again', async () => {
    const sam = await signIn(world.creds.courier.username, world.creds.courier.password);
    const open = await atTheDoor(world.creds.courier.id, sam);
    expect(open.status, open.text).toBe(200);
    const running = (open.body.session as SessionView).id;

    const path = `/api/homes/${world.creds.homeId}/couriers/${world.creds.courier.id}`;
    const r = await call('POST', `${path}/block`, { token: owner, json: {} });
    expect(r.status, r.text).toBe(200);
    expect(r.body.courier).toMatchObject({
      id: world.creds.courier.id,
      carrier: { id: world.creds.carrier.id, name: 'ParcelCo' },
      blocked: { by: { id: 'owner-alex' } },
    });
    await until(
      async () => TERMINAL.includes((await sessionState(running)) ?? ''),
      20_000,
      'the blocked courier’s visit ends',
    );
    await relocked();

    const refused = await atTheDoor(world.creds.courier.id, sam);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toEqual({
      code: 'courier.blocked',
      message: 'The owner of this home has blocked you; leave the parcel at the door.',
    });
    expect(world.home.lock.bolt()).toBe('locked');

    const list = await call('GET', `/api/homes/${world.creds.homeId}/blocked-couriers`, {
      token: owner,
    });
    expect((list.body.blocked as HomeCourierView[]).map((c) => c.id)).toEqual([
      world.creds.courier.id,
    ]);
    expect((list.body.others as HomeCourierView[]).map((c) => c.id)).not.toContain(
      world.creds.courier.id,
    );

    const un = await call('POST', `${path}/unblock`, { token: owner, json: {} });
    expect(un.status).toBe(200);
    expect(un.body.courier).toMatchObject({ blocked: null });
    const back = await atTheDoor(world.creds.courier.id, sam);
    expect(back.status, back.text).toBe(200);
    const id = (back.body.session as SessionView).id;
    await call('POST', `/api/courier/sessions/${id}/relock`, { token: sam, json: {} });
    await relocked();

    const audit = await auditOf(`home:${world.creds.homeId}`, 'courier.blocked');
    expect(audit.at(-1)).toMatchObject({
      actor: { id: 'owner-alex' },
      data: { courierId: world.creds.courier.id, carrierId: world.creds.carrier.id },
    });
  }, 90_000);

  it('blocks only couriers the home has seen: others answer 404, and a probe of another carrier’s courier is audited', async () => {
    const home = world.creds.homeId;
    const unknown = await call('POST', `/api/homes/${home}/couriers/courier-nobody/block`, {
      token: owner,
      json: {},
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('courier.not-found');
    const stranger = await call('POST', `/api/homes/${home}/couriers/${birch.courierId}/block`, {
      token: owner,
      json: {},
    });
    expect(stranger.status).toBe(404);
    expect(stranger.body.error?.code).toBe('courier.not-found');
    expect(await world.sys.store.homes.isCourierBlocked(home, birch.courierId)).toBe(false);
    const denied = await auditOf(`principal:${birch.courierId}`, 'auth.object-denied');
    expect(denied.at(-1)).toMatchObject({ actor: { id: 'owner-alex' } });
    // The owner (not a member of another home) cannot name another home either.
    const other = await call(
      'POST',
      `/api/homes/home-elsewhere/couriers/${birch.courierId}/block`,
      {
        token: owner,
        json: {},
      },
    );
    expect(other.status).toBe(404);
    expect(other.body.error?.code).toBe('home.not-found');
  });
});

/**
 * Who may ask what, over real HTTP against a scenario world (server, broker, seeded home and
 * its simulated lock, door sensor and camera on loopback): missing, wrong, revoked and expired
 * credentials; a courier on the owner's routes; an owner on another home; sign-out; the
 * sign-in cookie; and the owner's home status, which shows a lock whose link died as
 * `unknown` rather than as its last value (principle 4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/core/audit-chain.ts';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { tokenHash } from '../src/server/auth.ts';
import { DEFAULT_DELIVERY_PREFERENCES } from '../src/core/model.ts';

let world: ScenarioWorld;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: { error?: { code?: string } } & Record<string, unknown>;
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  opts: { bearer?: string; cookie?: string; json?: unknown } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.bearer !== undefined) headers.authorization = `Bearer ${opts.bearer}`;
  if (opts.cookie !== undefined) headers.cookie = opts.cookie;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers,
    ...(opts.json === undefined ? {} : { body: JSON.stringify(opts.json) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text ? (JSON.parse(text) as Answer['body']) : {},
  };
}

function expectError(a: Answer, status: number, code: string): void {
  expect({ status: a.status, code: a.body.error?.code }).toEqual({ status, code });
}

async function signIn(username: string, password: string): Promise<Answer> {
  return call('POST', '/api/auth/sign-in', { json: { username, password } });
}

async function signInToken(who: 'owner' | 'courier'): Promise<string> {
  const c = world.creds[who];
  const a = await signIn(c.username, c.password);
  expect(a.status).toBe(200);
  return String(a.body.token);
}

/** Audit entries appended after `seq`. */
async function auditAfter(seq: number): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for await (const e of world.sys.store.audit.iterate()) if (e.seq > seq) entries.push(e);
  return entries;
}

async function auditHead(): Promise<number> {
  await world.sys.audit.drain();
  return (await world.sys.store.audit.last())?.seq ?? 0;
}

beforeAll(async () => {
  world = await ScenarioWorld.create();
});

afterAll(async () => {
  await world?.close();
});

describe('authentication', () => {
  it('given no credentials, when owner, courier and carrier routes are called, then each answers 401 auth.required', async () => {
    const homeId = world.creds.homeId;
    expectError(await call('GET', `/api/homes/${homeId}`), 401, 'auth.required');
    expectError(await call('GET', '/api/me'), 401, 'auth.required');
    expectError(await call('GET', '/api/courier/deliveries'), 401, 'auth.required');
    expectError(
      await call('POST', `/api/courier/deliveries/${world.creds.deliveryId}/access`, {
        json: { position: null },
      }),
      401,
      'auth.required',
    );
    expectError(await call('GET', '/api/carrier/deliveries'), 401, 'auth.required');
  });

  it('given the owner, when signing in with a wrong password, then 401 auth.invalid-credentials and an auth.sign-in-failed audit entry', async () => {
    const head = await auditHead();
    const a = await signIn(world.creds.owner.username, `${world.creds.owner.password}-wrong`);
    expectError(a, 401, 'auth.invalid-credentials');
    expect(a.body.token).toBeUndefined();
    expect(a.headers.get('set-cookie')).toBeNull();
    const failed = (await auditAfter(head)).filter((e) => e.kind === 'auth.sign-in-failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.subject).toBe(`user:${world.creds.owner.username}`);
  });

  it('given an unknown user name, when signing in, then the same 401 auth.invalid-credentials as for a wrong password', async () => {
    const head = await auditHead();
    expectError(await signIn('nobody-here', 'whatever'), 401, 'auth.invalid-credentials');
    const failed = (await auditAfter(head)).filter((e) => e.kind === 'auth.sign-in-failed');
    expect(failed.map((e) => e.subject)).toEqual(['user:nobody-here']);
  });

  it('given a courier token, when it reads the owner route GET /api/homes/:homeId, then 403 auth.forbidden and an auth.denied audit entry', async () => {
    const token = await signInToken('courier');
    const head = await auditHead();
    const a = await call('GET', `/api/homes/${world.creds.homeId}`, { bearer: token });
    expectError(a, 403, 'auth.forbidden');
    expect(a.body.doors).toBeUndefined();
    const denied = (await auditAfter(head)).filter((e) => e.kind === 'auth.denied');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({
      actor: { type: 'principal', id: world.creds.courier.id },
      subject: 'route:/api/homes/:homeId',
      data: { method: 'GET', role: 'courier' },
    });
  });

  it('given the owner, when reading another home that exists, then 404 home.not-found, the same as for no home at all', async () => {
    await world.sys.store.homes.createHome({
      id: 'home-oak-3',
      name: 'Oak Lane 3',
      address: 'Oak Lane 3, 10115 Berlin',
      geofence: { lat: 52.52, lon: 13.4, radiusM: 50 },
      timeZone: 'Europe/Berlin',
      inHomeDelivery: true,
      delivery: DEFAULT_DELIVERY_PREFERENCES,
    });
    const token = await signInToken('owner');
    const other = await call('GET', '/api/homes/home-oak-3', { bearer: token });
    expectError(other, 404, 'home.not-found');
    expect(other.body.home).toBeUndefined();
    const none = await call('GET', '/api/homes/home-nowhere-9', { bearer: token });
    expectError(none, 404, 'home.not-found');
    expect(other.body).toEqual(none.body);
    expect((await call('GET', `/api/homes/${world.creds.homeId}`, { bearer: token })).status).toBe(
      200,
    );
  });

  it('given a revoked carrier API key, when it lists deliveries, then 401 auth.required', async () => {
    const { sys, creds } = world;
    const { id, key } = await sys.auth.createApiKey(creds.carrier.id);
    expect((await call('GET', '/api/carrier/deliveries', { bearer: key })).status).toBe(200);
    expect(await sys.store.principals.revokeApiKey(id, sys.clock.now())).toBe(true);
    expectError(
      await call('GET', '/api/carrier/deliveries', { bearer: key }),
      401,
      'auth.required',
    );
  });

  it('given an unknown carrier API key, when it creates a delivery, then 401 auth.required and no delivery appears', async () => {
    const { sys, creds } = world;
    const before = (await sys.store.deliveries.listForHome(creds.homeId)).length;
    const now = sys.clock.now();
    const a = await call('POST', '/api/carrier/deliveries', {
      bearer: `thk_${'A'.repeat(43)}`,
      json: {
        homeId: creds.homeId,
        packageRef: 'PKG-FORGED',
        windowStart: now,
        windowEnd: now + 3_600_000,
      },
    });
    expectError(a, 401, 'auth.required');
    expect((await sys.store.deliveries.listForHome(creds.homeId)).length).toBe(before);
  });

  it('given a sign-in session that expired an hour ago, when its token is used, then 401 auth.session-expired, and then it is gone', async () => {
    const { sys, creds } = world;
    const token = 'expired-token-for-the-owner-0123456789abcdef';
    const now = sys.clock.now();
    await sys.store.principals.createAuthSession({
      tokenHash: tokenHash(token),
      principalId: 'owner-alex',
      createdAt: now - 13 * 3_600_000,
      expiresAt: now - 3_600_000,
    });
    expectError(
      await call('GET', `/api/homes/${creds.homeId}`, { bearer: token }),
      401,
      'auth.session-expired',
    );
    expect(await sys.store.principals.getAuthSession(tokenHash(token))).toBeNull();
    expectError(await call('GET', '/api/me', { bearer: token }), 401, 'auth.required');
  });

  it('given a signed-in owner, when signing out, then the token no longer works', async () => {
    const token = await signInToken('owner');
    const me = await call('GET', '/api/me', { bearer: token });
    expect(me.status).toBe(200);
    expect(me.body.principal).toMatchObject({ id: 'owner-alex', role: 'owner' });
    const out = await call('POST', '/api/auth/sign-out', { bearer: token });
    expect(out.status).toBe(200);
    expectError(await call('GET', '/api/me', { bearer: token }), 401, 'auth.required');
    expectError(
      await call('GET', `/api/homes/${world.creds.homeId}`, { bearer: token }),
      401,
      'auth.required',
    );
  });

  it('given a successful sign-in, when reading its cookie, then it is HttpOnly, SameSite=Strict, carries the token and signs the owner in', async () => {
    const { owner } = world.creds;
    const a = await signIn(owner.username, owner.password);
    expect(a.status).toBe(200);
    const cookies = a.headers.getSetCookie();
    expect(cookies).toHaveLength(1);
    const [pair = '', ...attributes] = (cookies[0] ?? '').split(';').map((s) => s.trim());
    expect(pair).toBe(`threshold_session=${String(a.body.token)}`);
    const attrs = attributes.map((s) => s.toLowerCase());
    expect(attrs).toContain('httponly');
    expect(attrs).toContain('samesite=strict');
    expect(attrs).toContain('path=/');
    const me = await call('GET', '/api/me', { cookie: pair });
    expect(me.status).toBe(200);
    expect(me.body.principal).toMatchObject({ id: 'owner-alex' });
  });
});

describe('GET /api/auth/session (the page asks on load)', () => {
  it('answers 200 with null for no cookie, an unknown token and an API key, and with the principal for a valid cookie', async () => {
    const none = await call('GET', '/api/auth/session');
    expect(none.status).toBe(200);
    expect(none.body).toEqual({ principal: null });
    const unknown = await call('GET', '/api/auth/session', { cookie: 'threshold_session=nope' });
    expect(unknown.status).toBe(200);
    expect(unknown.body).toEqual({ principal: null });
    const key = await call('GET', '/api/auth/session', { bearer: world.creds.carrier.apiKey });
    expect(key.body).toEqual({ principal: null });
    const { owner } = world.creds;
    const a = await signIn(owner.username, owner.password);
    const pair = (a.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    const me = await call('GET', '/api/auth/session', { cookie: pair });
    expect(me.status).toBe(200);
    expect(me.body.principal).toMatchObject({ id: 'owner-alex', role: 'owner' });
  });
});

describe("the owner's home status", () => {
  it('given the simulated home, when the owner reads GET /api/homes/:homeId, then each door shows its lock, door and camera as reported', async () => {
    const token = await signInToken('owner');
    const a = await call('GET', `/api/homes/${world.creds.homeId}`, { bearer: token });
    expect(a.status).toBe(200);
    expect(a.body.doors).toEqual([
      expect.objectContaining({
        doorId: world.creds.doorId,
        lock: expect.objectContaining({
          value: 'locked',
          lastKnown: 'locked',
          online: true,
          offlineSince: null,
          deviceId: world.creds.devices.lock.id,
        }) as unknown,
        door: expect.objectContaining({
          value: 'closed',
          online: true,
          deviceId: world.creds.devices.doorSensor.id,
        }) as unknown,
        camera: expect.objectContaining({
          value: 'idle',
          online: true,
          deviceId: world.creds.devices.camera.id,
        }) as unknown,
      }),
    ]);
  });

  it("given the simulated home, when the lock's link is cut, then the lock is shown as unknown with its last known value, offline, and the other devices stay live", async () => {
    const token = await signInToken('owner');
    const lockOf = async () => {
      const a = await call('GET', `/api/homes/${world.creds.homeId}`, { bearer: token });
      expect(a.status).toBe(200);
      const doors = a.body.doors as {
        lock: Record<string, unknown>;
        door: Record<string, unknown>;
        camera: Record<string, unknown>;
      }[];
      return doors[0]!;
    };
    expect((await lockOf()).lock.value).toBe('locked');

    const cutAt = Date.now();
    // The TCP connection dies without DISCONNECT; the broker publishes the lock's will at once
    // (on loopback the close is seen immediately, no keepalive timeout is involved).
    world.home.links.lock.cutLink();
    await world.waitFor(
      async () => (await lockOf()).lock.value === 'unknown',
      5_000,
      'the lock is shown as unknown',
    );
    const door = await lockOf();
    expect(door.lock).toMatchObject({ value: 'unknown', lastKnown: 'locked', online: false });
    expect(door.lock.offlineSince).toEqual(expect.any(Number));
    expect(door.lock.offlineSince as number).toBeGreaterThanOrEqual(cutAt - 1_000);
    expect(door.lock.lastSeenAt).toEqual(expect.any(Number));
    expect(door.door).toMatchObject({ value: 'closed', online: true });
    expect(door.camera).toMatchObject({ value: 'idle', online: true });
  });
});

/**
 * Principle 7 over real HTTP: bad input to the courier access route, the carrier's
 * create-delivery route and sign-in gets a clear 4xx with a catalogue code, and changes
 * nothing — no delivery, grant, access session or sign-in session appears, and the audit log
 * still verifies.
 *
 * One system serves the whole file: every request here is refused, and each test compares
 * what the store holds before and after its own request.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../src/server/auth.ts';
import { verifyEd25519 } from '../src/server/keys.ts';
import {
  createDemoDelivery,
  DEMO_DOORSTEP,
  seedDemo,
  type DemoCredentials,
} from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import { testDatabaseOptions } from '../src/store/test-postgres.ts';

const HOUR_MS = 3_600_000;
/** Over the app's 16 KiB body limit. */
const OVERSIZED_PADDING = 'x'.repeat(17 * 1024);

let dataDir: string;
let sys: RunningSystem;
let creds: DemoCredentials;
let courierToken: string;
/** A delivery of another courier of the same carrier, due now. */
let otherCouriersDeliveryId: string;
/** API key of a carrier that no home has allowed. */
let strangerCarrierKey: string;

interface Answer {
  readonly status: number;
  readonly body: { error?: { code?: string; message?: string } } & Record<string, unknown>;
}

interface Request {
  /** Raw body text, sent as is. */
  readonly body?: string;
  /** Default `application/json` when there is a body. */
  readonly contentType?: string;
  readonly bearer?: string;
  readonly method?: 'GET' | 'POST';
  /** Sent as the `Idempotency-Key` header. */
  readonly idempotencyKey?: string;
}

async function send(path: string, req: Request = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (req.body !== undefined) headers['content-type'] = req.contentType ?? 'application/json';
  if (req.bearer !== undefined) headers.authorization = `Bearer ${req.bearer}`;
  if (req.idempotencyKey !== undefined) headers['idempotency-key'] = req.idempotencyKey;
  const res = await fetch(`${sys.url}${path}`, {
    method: req.method ?? 'POST',
    headers,
    ...(req.body === undefined ? {} : { body: req.body }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Answer['body']) : {} };
}

/** What a refused request must not touch. */
interface Footprint {
  readonly deliveries: number;
  readonly grants: number;
  readonly accessSessions: number;
  readonly signInSessions: number;
  /** Idempotency keys held: a refused request frees its key. */
  readonly idempotencyKeys: number;
}

async function footprint(): Promise<Footprint> {
  const db = sys.store.db;
  const homeId = creds.homeId;
  const [deliveries, grants, accessSessions, signInSessions, idempotencyKeys] = await Promise.all([
    db
      .selectFrom('deliveries')
      .where('home_id', '=', homeId)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('grants')
      .where('home_id', '=', homeId)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('access_sessions')
      .where('home_id', '=', homeId)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('auth_sessions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('idempotency_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
  ]);
  return {
    deliveries: Number(deliveries.n),
    grants: Number(grants.n),
    accessSessions: Number(accessSessions.n),
    signInSessions: Number(signInSessions.n),
    idempotencyKeys: Number(idempotencyKeys.n),
  };
}

/**
 * Sends one request that must be refused with `status` and `code`, and checks that the store
 * looks exactly as before and the audit log still verifies.
 */
async function expectRefusedWithoutEffect(
  path: string,
  req: Request,
  status: number,
  code: string,
): Promise<Answer> {
  const before = await footprint();
  const answer = await send(path, req);
  expect({ status: answer.status, code: answer.body.error?.code }).toEqual({ status, code });
  expect(typeof answer.body.error?.message).toBe('string');
  expect(await footprint()).toEqual(before);
  const verification = await sys.audit.verify(verifyEd25519);
  expect(verification.firstBreak).toBeNull();
  expect(verification.ok).toBe(true);
  return answer;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'threshold-bad-input-'));
  sys = await startSystem({
    dataDir,
    port: 0,
    mqttPort: 0,
    ...(await testDatabaseOptions(dataDir)),
  });
  creds = await seedDemo(sys, dataDir);

  const signIn = await send('/api/auth/sign-in', {
    body: JSON.stringify({ username: creds.courier.username, password: creds.courier.password }),
  });
  expect(signIn.status).toBe(200);
  courierToken = String(signIn.body.token);

  await sys.store.principals.create(
    {
      id: 'courier-kim',
      role: 'courier',
      displayName: 'Kim (ParcelCo)',
      homeId: null,
      carrierId: creds.carrier.id,
    },
    { username: 'courier-kim', passwordHash: await hashPassword(randomUUID()) },
  );
  const now = sys.clock.now();
  otherCouriersDeliveryId = (
    await createDemoDelivery(
      sys,
      creds.homeId,
      creds.doorId,
      creds.carrier.id,
      'courier-kim',
      now - 60_000,
      HOUR_MS,
    )
  ).id;

  await sys.store.principals.createCarrier({ id: 'carrier-stranger', name: 'Stranger Parcels' });
  strangerCarrierKey = (await sys.auth.createApiKey('carrier-stranger')).key;
  await sys.store.principals.create(
    {
      id: 'courier-lee',
      role: 'courier',
      displayName: 'Lee (Stranger Parcels)',
      homeId: null,
      carrierId: 'carrier-stranger',
    },
    { username: 'courier-lee', passwordHash: await hashPassword(randomUUID()) },
  );
});

afterAll(async () => {
  await sys?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('courier access route: POST /api/courier/deliveries/:deliveryId/access', () => {
  const accessPath = (deliveryId: string) => `/api/courier/deliveries/${deliveryId}/access`;
  const asCourier = (body: string, contentType?: string): Request => ({
    body,
    bearer: courierToken,
    ...(contentType === undefined ? {} : { contentType }),
  });
  const atTheDoor = JSON.stringify({ position: DEMO_DOORSTEP });

  it('given the courier, when the body is not valid JSON, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier('{"position":{"lat":52.5'),
      400,
      'request.invalid',
    );
  });

  it('given the courier, when the latitude is a string ("52"), then 400 request.invalid naming the field and nothing changes', async () => {
    const answer = await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier(JSON.stringify({ position: { lat: '52', lon: DEMO_DOORSTEP.lon, accuracyM: 8 } })),
      400,
      'request.invalid',
    );
    expect(answer.body.error?.message).toContain('/position/lat');
  });

  it('given the courier, when the body has an unknown field, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier(JSON.stringify({ position: DEMO_DOORSTEP, skipCamera: true })),
      400,
      'request.invalid',
    );
  });

  it('given the courier, when the position has an unknown field, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier(JSON.stringify({ position: { ...DEMO_DOORSTEP, trusted: true } })),
      400,
      'request.invalid',
    );
  });

  it('given the courier, when the position is missing, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier('{}'),
      400,
      'request.invalid',
    );
  });

  it('given the courier, when the body is larger than 16 KiB, then 413 request.too-large and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier(JSON.stringify({ position: DEMO_DOORSTEP, pad: OVERSIZED_PADDING })),
      413,
      'request.too-large',
    );
  });

  it('given the courier, when the body is form-encoded, then 415 request.unsupported-media-type and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(creds.deliveryId),
      asCourier('position=null', 'application/x-www-form-urlencoded'),
      415,
      'request.unsupported-media-type',
    );
  });

  it('given the courier, when the delivery id is valid but unknown, then 404 delivery.not-found and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      accessPath(randomUUID()),
      asCourier(atTheDoor),
      404,
      'delivery.not-found',
    );
  });

  it("given the courier at the door, when it names another courier's delivery, then 404 delivery.not-found and nothing changes", async () => {
    await expectRefusedWithoutEffect(
      accessPath(otherCouriersDeliveryId),
      asCourier(atTheDoor),
      404,
      'delivery.not-found',
    );
  });

  it('given the courier, when the delivery id does not match the id pattern, then 400 request.invalid and nothing changes', async () => {
    const answer = await expectRefusedWithoutEffect(
      accessPath('NOT_AN_ID'),
      asCourier(atTheDoor),
      400,
      'request.invalid',
    );
    expect(answer.body.error?.message).toContain('deliveryId');
  });
});

describe('carrier create-delivery route: POST /api/carrier/deliveries', () => {
  const path = '/api/carrier/deliveries';
  const validBody = (patch: Record<string, unknown> = {}): Record<string, unknown> => {
    const now = sys.clock.now();
    return {
      homeId: creds.homeId,
      packageRef: 'PKG-BAD-INPUT',
      windowStart: now + 60_000,
      windowEnd: now + 2 * HOUR_MS,
      courierId: creds.courier.id,
      ...patch,
    };
  };
  // Every create carries a fresh Idempotency-Key, so each refusal is about the body alone.
  const asCarrier = (body: string, contentType?: string): Request => ({
    body,
    bearer: creds.carrier.apiKey,
    idempotencyKey: randomUUID(),
    ...(contentType === undefined ? {} : { contentType }),
  });

  it('given the carrier, when the Idempotency-Key header is missing, then 400 request.idempotency-key-required and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      { body: JSON.stringify(validBody()), bearer: creds.carrier.apiKey },
      400,
      'request.idempotency-key-required',
    );
  });

  it('given the carrier, when the Idempotency-Key has a space in it, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      { ...asCarrier(JSON.stringify(validBody())), idempotencyKey: 'two words' },
      400,
      'request.invalid',
    );
  });

  it('given the carrier, when the Idempotency-Key is longer than 255 characters, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      { ...asCarrier(JSON.stringify(validBody())), idempotencyKey: 'k'.repeat(256) },
      400,
      'request.invalid',
    );
  });

  it('given the carrier, when the body is not valid JSON, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier('{"homeId": "home-maple-12",'),
      400,
      'request.invalid',
    );
  });

  it('given the carrier, when windowStart is a string, then 400 request.invalid and nothing changes', async () => {
    const body = validBody();
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify({ ...body, windowStart: String(body.windowStart) })),
      400,
      'request.invalid',
    );
  });

  it('given the carrier, when the body has an unknown field, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ requiresRecording: false }))),
      400,
      'request.invalid',
    );
  });

  it('given the carrier, when packageRef is missing, then 400 request.invalid and nothing changes', async () => {
    const { packageRef: _packageRef, ...body } = validBody();
    await expectRefusedWithoutEffect(path, asCarrier(JSON.stringify(body)), 400, 'request.invalid');
  });

  it('given the carrier, when the body is larger than 16 KiB, then 413 request.too-large and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ packageRef: OVERSIZED_PADDING }))),
      413,
      'request.too-large',
    );
  });

  it('given the carrier, when the body is form-encoded, then 415 request.unsupported-media-type and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(`homeId=${creds.homeId}`, 'application/x-www-form-urlencoded'),
      415,
      'request.unsupported-media-type',
    );
  });

  it('given the carrier, when the home id does not match the id pattern, then 400 request.invalid and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ homeId: 'NOT_AN_ID' }))),
      400,
      'request.invalid',
    );
  });

  it('given the carrier, when the window is already over, then 422 delivery.window-invalid and nothing changes', async () => {
    const now = sys.clock.now();
    await expectRefusedWithoutEffect(
      path,
      asCarrier(
        JSON.stringify(validBody({ windowStart: now - 2 * HOUR_MS, windowEnd: now - HOUR_MS })),
      ),
      422,
      'delivery.window-invalid',
    );
  });

  it('given the carrier, when the window ends before it starts, then 422 delivery.window-invalid and nothing changes', async () => {
    const now = sys.clock.now();
    await expectRefusedWithoutEffect(
      path,
      asCarrier(
        JSON.stringify(validBody({ windowStart: now + 2 * HOUR_MS, windowEnd: now + HOUR_MS })),
      ),
      422,
      'delivery.window-invalid',
    );
  });

  it('given the carrier, when the window is longer than 24 hours, then 422 delivery.window-invalid and nothing changes', async () => {
    const now = sys.clock.now();
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ windowStart: now, windowEnd: now + 25 * HOUR_MS }))),
      422,
      'delivery.window-invalid',
    );
  });

  it('given the carrier, when it names a home that does not exist, then 404 home.not-found and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ homeId: 'home-nowhere-1' }))),
      404,
      'home.not-found',
    );
  });

  it('given a carrier the home has not allowed, when it names that home, then 404 home.not-found and nothing changes', async () => {
    const { courierId: _courierId, ...body } = validBody();
    await expectRefusedWithoutEffect(
      path,
      { body: JSON.stringify(body), bearer: strangerCarrierKey, idempotencyKey: randomUUID() },
      404,
      'home.not-found',
    );
  });

  it('given the carrier, when it names a door the home does not have, then 404 door.not-found and nothing changes', async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ doorId: 'back-door-9' }))),
      404,
      'door.not-found',
    );
  });

  it("given the carrier, when it assigns another carrier's courier, then 403 auth.forbidden and nothing changes", async () => {
    await expectRefusedWithoutEffect(
      path,
      asCarrier(JSON.stringify(validBody({ courierId: 'courier-lee' }))),
      403,
      'auth.forbidden',
    );
  });

  it("given a carrier the home has not allowed, when it reads the allowed carrier's delivery, then 404 delivery.not-found", async () => {
    await expectRefusedWithoutEffect(
      `/api/carrier/deliveries/${creds.deliveryId}`,
      { method: 'GET', bearer: strangerCarrierKey },
      404,
      'delivery.not-found',
    );
  });

  it('given a valid delivery, when the carrier creates it, then 201 and one delivery and one grant appear (the footprint sees changes)', async () => {
    const before = await footprint();
    const answer = await send(path, asCarrier(JSON.stringify(validBody())));
    expect(answer.status).toBe(201);
    expect(await footprint()).toEqual({
      ...before,
      deliveries: before.deliveries + 1,
      grants: before.grants + 1,
      idempotencyKeys: before.idempotencyKeys + 1,
    });
  });
});

describe('sign-in: POST /api/auth/sign-in', () => {
  const path = '/api/auth/sign-in';

  it('given anyone, when the body is not valid JSON, then 400 request.invalid and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      { body: '{"username":"owner","password":' },
      400,
      'request.invalid',
    );
  });

  it('given anyone, when the password is a number, then 400 request.invalid and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      { body: JSON.stringify({ username: 'owner', password: 123456 }) },
      400,
      'request.invalid',
    );
  });

  it('given anyone, when the body has an unknown field, then 400 request.invalid and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      {
        body: JSON.stringify({
          username: creds.owner.username,
          password: creds.owner.password,
          role: 'owner',
        }),
      },
      400,
      'request.invalid',
    );
  });

  it('given anyone, when the password is missing, then 400 request.invalid and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      { body: JSON.stringify({ username: 'owner' }) },
      400,
      'request.invalid',
    );
  });

  it('given anyone, when the body is larger than 16 KiB, then 413 request.too-large and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      { body: JSON.stringify({ username: 'owner', password: OVERSIZED_PADDING }) },
      413,
      'request.too-large',
    );
  });

  it('given anyone, when the body is form-encoded, then 415 request.unsupported-media-type and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      {
        body: `username=owner&password=${encodeURIComponent(creds.owner.password)}`,
        contentType: 'application/x-www-form-urlencoded',
      },
      415,
      'request.unsupported-media-type',
    );
  });

  it('given anyone, when the right JSON is sent as text/plain (a cross-site form can do that), then 415 and no sign-in session appears', async () => {
    await expectRefusedWithoutEffect(
      path,
      {
        body: JSON.stringify({ username: 'owner', password: creds.owner.password }),
        contentType: 'text/plain',
      },
      415,
      'request.unsupported-media-type',
    );
  });

  it('given the owner, when the right password is sent, then 200 and one sign-in session appears (the footprint sees changes)', async () => {
    const before = await footprint();
    const answer = await send(path, {
      body: JSON.stringify({ username: creds.owner.username, password: creds.owner.password }),
    });
    expect(answer.status).toBe(200);
    expect(await footprint()).toEqual({ ...before, signInSessions: before.signInSessions + 1 });
  });
});

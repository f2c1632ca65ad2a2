/**
 * The carrier's deliveries API over real HTTP, against a real system with the simulated home:
 * idempotent creates (a retry, a reused key, two identical requests at once, a key in flight),
 * assigning and reassigning a courier (the old courier's way in ends, the new one's opens the
 * door), cancelling, a doorstep delivery left at the door, the history of events through a
 * whole in-home delivery, the proof of delivery checked by `threshold audit verify --file`
 * (and refused once tampered with), and carrier B finding nothing of carrier A's.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRedacted, verifyAuditLog, type AuditEntry } from '../src/core/audit-chain.ts';
import { canonicalJson } from '../src/core/canonical-json.ts';
import type { DeliveryEventType } from '../src/core/model.ts';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import type {
  CarrierDeliveryView,
  DeliveryEventView,
  DeliveryProofView,
  SessionView,
} from '../src/protocol/views.ts';
import { hashPassword } from '../src/server/auth.ts';
import { sha256Hex, verifyEd25519 } from '../src/server/keys.ts';
import { DEMO_DOORSTEP } from '../src/server/seed.ts';
import type { DeliveryEvent } from '../src/store/delivery-event-repository.ts';
import { IdempotencyRepository } from '../src/store/idempotency-repository.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOUR_MS = 3_600_000;
const BIRCH = 'carrier-birch-express';

let world: ScenarioWorld;
let workDir: string;
/** Carrier A (the demo's ParcelCo): its API key, and its courier Sam's sign-in. */
let keyA: string;
let sam: { id: string; token: string };
/** A second courier of ParcelCo. */
let ivy: { id: string; token: string };
/** Carrier B: another company, with its own key and courier. */
let keyB: { id: string; key: string };
let birchCourier: { id: string; token: string };
/** Every delivery event announced (after its commit), in order. */
const announced: DeliveryEvent[] = [];

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: Record<string, unknown> & { error?: { code?: string; message?: string } };
}

async function api(
  method: 'GET' | 'POST',
  path: string,
  opts: { token?: string; json?: unknown; key?: string | null } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  // Carrier POSTs carry a fresh Idempotency-Key unless the test says which (or none: null).
  if (method === 'POST' && path.startsWith('/api/carrier/') && opts.key !== null)
    headers['idempotency-key'] = opts.key ?? randomUUID();
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers,
    ...(opts.json === undefined ? {} : { body: JSON.stringify(opts.json) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    body: text ? (JSON.parse(text) as Answer['body']) : {},
  };
}

function expectError(a: Answer, status: number, code: string): void {
  expect({ status: a.status, code: a.body.error?.code }, a.text).toEqual({ status, code });
}

/** A valid create body for the demo home; a window from now for an hour. */
function newDelivery(patch: Record<string, unknown> = {}): Record<string, unknown> {
  const now = world.sys.clock.now();
  return {
    homeId: world.creds.homeId,
    packageRef: `PKG-${randomUUID().slice(0, 8)}`,
    windowStart: now,
    windowEnd: now + HOUR_MS,
    ...patch,
  };
}

async function create(
  patch: Record<string, unknown> = {},
  key = keyA,
): Promise<CarrierDeliveryView> {
  const a = await api('POST', '/api/carrier/deliveries', { token: key, json: newDelivery(patch) });
  expect(a.status, a.text).toBe(201);
  return a.body.delivery as CarrierDeliveryView;
}

async function deliveriesWithRef(packageRef: string): Promise<number> {
  const rows = await world.sys.store.db
    .selectFrom('deliveries')
    .select('id')
    .where('package_ref', '=', packageRef)
    .execute();
  return rows.length;
}

async function history(id: string, key = keyA): Promise<DeliveryEventView[]> {
  const a = await api('GET', `/api/carrier/deliveries/${id}`, { token: key });
  expect(a.status, a.text).toBe(200);
  return a.body.events as DeliveryEventView[];
}

async function signIn(username: string, password: string): Promise<string> {
  const a = await api('POST', '/api/auth/sign-in', { json: { username, password } });
  expect(a.status, a.text).toBe(200);
  return String(a.body.token);
}

async function newCourier(
  id: string,
  carrierId: string,
  name: string,
): Promise<{ id: string; token: string }> {
  const password = `a long password for ${name}`;
  await world.sys.store.principals.create(
    { id, role: 'courier', displayName: name, homeId: null, carrierId },
    { username: id, passwordHash: await hashPassword(password) },
  );
  return { id, token: await signIn(id, password) };
}

/** "I'm at the door" by a courier, from the doorstep. */
function atTheDoor(deliveryId: string, token: string): Promise<Answer> {
  return api('POST', `/api/courier/deliveries/${deliveryId}/access`, {
    token,
    json: { position: DEMO_DOORSTEP },
  });
}

async function auditSince(seq: number): Promise<AuditEntry[]> {
  await world.sys.audit.drain();
  const last = await world.sys.store.audit.last();
  return world.sys.store.audit.getRange(seq + 1, last?.seq ?? seq);
}

async function auditHead(): Promise<number> {
  await world.sys.audit.drain();
  return (await world.sys.store.audit.last())?.seq ?? 0;
}

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `threshold audit verify --file <file> --public-key <key>`, as a carrier would run it. */
function verifyFile(file: string, publicKey: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        'bin/threshold.js',
        'audit',
        'verify',
        '--data',
        workDir,
        '--file',
        file,
        '--public-key',
        publicKey,
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('threshold audit verify did not finish in 20 s'));
    }, 20_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The proof of a delivery, once it is ready (the record is signed within a second or so). */
async function proofOf(id: string): Promise<DeliveryProofView> {
  let a: Answer | null = null;
  await world.waitFor(
    async () => {
      a = await api('GET', `/api/carrier/deliveries/${id}/proof`, { token: keyA });
      return a.status !== 409;
    },
    10_000,
    'the proof is ready',
  );
  const answer = a as Answer | null;
  if (!answer) throw new Error('no answer');
  expect(answer.status, answer.text).toBe(200);
  return answer.body as unknown as DeliveryProofView;
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'threshold-carrier-deliveries-'));
  world = await ScenarioWorld.create();
  keyA = world.creds.carrier.apiKey;
  world.sys.deliveryEvents.subscribe((e) => announced.push(e));
  sam = {
    id: world.creds.courier.id,
    token: await signIn(world.creds.courier.username, world.creds.courier.password),
  };
  ivy = await newCourier('courier-ivy', world.creds.carrier.id, 'Ivy');
  await world.sys.store.principals.createCarrier({ id: BIRCH, name: 'Birch Express' });
  keyB = await world.sys.auth.createApiKey(BIRCH);
  birchCourier = await newCourier('courier-birch-ana', BIRCH, 'Ana');
}, 60_000);

afterAll(async () => {
  await world?.close();
  rmSync(workDir, { recursive: true, force: true });
});

describe('idempotent creates', () => {
  it('given a create that succeeded, when it is retried with the same key, then the same answer byte for byte, marked replayed, and still one delivery', async () => {
    const key = `order-${randomUUID()}`;
    const body = newDelivery({ courierId: sam.id });
    const first = await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key });
    expect(first.status, first.text).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const d = first.body.delivery as CarrierDeliveryView;
    expect(d).toMatchObject({
      homeId: world.creds.homeId,
      placement: 'in-home',
      status: 'scheduled',
      courierId: sam.id,
      updatedAt: d.createdAt,
    });

    const again = await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.text).toBe(first.text);
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(1);
    // One creation on record, one event in the history.
    expect((await history(d.id)).map((e) => e.type)).toEqual(['delivery.created']);
  });

  it('given a used key, when it comes with another body or for another route, then 422 request.idempotency-key-reused and nothing is made', async () => {
    const key = `order-${randomUUID()}`;
    const body = newDelivery();
    const d = (await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key })).body
      .delivery as CarrierDeliveryView;
    const other = newDelivery();
    const reused = await api('POST', '/api/carrier/deliveries', { token: keyA, json: other, key });
    expectError(reused, 422, 'request.idempotency-key-reused');
    expect(await deliveriesWithRef(String(other.packageRef))).toBe(0);

    const elsewhere = await api('POST', `/api/carrier/deliveries/${d.id}/cancel`, {
      token: keyA,
      json: {},
      key,
    });
    expectError(elsewhere, 422, 'request.idempotency-key-reused');
    expect((await world.sys.store.deliveries.get(d.id))?.status).toBe('scheduled');
  });

  it('given two identical creates at the same instant, when both arrive, then exactly one delivery is made and every success shows it', async () => {
    const key = `burst-${randomUUID()}`;
    const body = newDelivery();
    // Whether a twin finds the first one still in flight (409) or already answered (a replay)
    // depends on timing; either way one delivery is made. (The in-flight race itself, with work
    // that waits, is in src/server/routes/idempotency.test.ts.)
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key }),
      ),
    );
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(1);
    const ok = answers.filter((a) => a.status === 201);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ok.map((a) => a.text)).size).toBe(1);
    for (const a of answers.filter((x) => x.status !== 201))
      expectError(a, 409, 'request.in-flight');
    // All but the first success are replays.
    expect(ok.filter((a) => a.headers.get('idempotent-replayed') === null)).toHaveLength(1);
  });

  it('given a key still being answered, when the same request arrives, then 409 request.in-flight; once its claim is abandoned, the request is answered', async () => {
    const key = `in-flight-${randomUUID()}`;
    const body = newDelivery();
    const claims = new IdempotencyRepository(world.sys.store.db);
    const claim = {
      carrierId: world.creds.carrier.id,
      key,
      request: 'POST /api/carrier/deliveries',
      // The hash of the body's canonical JSON, as the server computes it.
      requestHash: sha256Hex(canonicalJson(body)),
      createdAt: world.sys.clock.now(),
    };
    expect(await claims.claim(claim)).toBe(true);
    const busy = await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key });
    expectError(busy, 409, 'request.in-flight');
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(0);

    // The server that claimed it stopped two minutes ago without answering.
    await world.sys.store.db
      .updateTable('idempotency_keys')
      .set({ created_at: world.sys.clock.now() - 120_000 })
      .where('key', '=', key)
      .execute();
    const taken = await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key });
    expect(taken.status, taken.text).toBe(201);
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(1);
  });

  it('given a key answered more than 24 hours ago, when it is used again, then it is a new key', async () => {
    const key = `old-${randomUUID()}`;
    await create({}, keyA);
    const first = await api('POST', '/api/carrier/deliveries', {
      token: keyA,
      json: newDelivery(),
      key,
    });
    expect(first.status).toBe(201);
    await world.sys.store.db
      .updateTable('idempotency_keys')
      .set({ created_at: world.sys.clock.now() - 25 * HOUR_MS })
      .where('key', '=', key)
      .execute();
    const body = newDelivery();
    const later = await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key });
    expect(later.status, later.text).toBe(201);
    expect(later.headers.get('idempotent-replayed')).toBeNull();
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(1);
  });

  it('given a refused create, when it is sent again corrected with the same key, then it is made (refusals do not hold the key)', async () => {
    const key = `fix-${randomUUID()}`;
    const now = world.sys.clock.now();
    const past = newDelivery({ windowStart: now - 2 * HOUR_MS, windowEnd: now - HOUR_MS });
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: keyA, json: past, key }),
      422,
      'delivery.window-invalid',
    );
    expect(await deliveriesWithRef(String(past.packageRef))).toBe(0);
    const fixed = newDelivery({ packageRef: past.packageRef });
    const ok = await api('POST', '/api/carrier/deliveries', { token: keyA, json: fixed, key });
    expect(ok.status, ok.text).toBe(201);
  });

  it('given carrier B, when it uses the key carrier A used, then it is B’s own key: its delivery is made', async () => {
    const key = `shared-${randomUUID()}`;
    const a = await api('POST', '/api/carrier/deliveries', {
      token: keyA,
      json: newDelivery(),
      key,
    });
    expect(a.status).toBe(201);
    const bodyB = newDelivery({ placement: 'doorstep' });
    const b = await api('POST', '/api/carrier/deliveries', { token: keyB.key, json: bodyB, key });
    expect(b.status, b.text).toBe(201);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    expect(b.body.delivery).toMatchObject({ carrierId: BIRCH, placement: 'doorstep' });
  });

  it('given no Idempotency-Key on a change, then 400 request.idempotency-key-required and nothing changes', async () => {
    const body = newDelivery();
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: keyA, json: body, key: null }),
      400,
      'request.idempotency-key-required',
    );
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(0);
    const d = await create();
    expectError(
      await api('POST', `/api/carrier/deliveries/${d.id}/cancel`, {
        token: keyA,
        json: {},
        key: null,
      }),
      400,
      'request.idempotency-key-required',
    );
    expect((await world.sys.store.deliveries.get(d.id))?.status).toBe('scheduled');
  });
});

describe('creating: who, where and when', () => {
  it('given a key that may only read, when it creates, then 403 auth.forbidden, audited, and nothing is made', async () => {
    const reader = await world.sys.auth.createApiKey(world.creds.carrier.id, {
      scopes: ['deliveries:read'],
    });
    const body = newDelivery();
    const head = await auditHead();
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: reader.key, json: body }),
      403,
      'auth.forbidden',
    );
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(0);
    expect((await auditSince(head)).map((e) => [e.kind, e.actor.id])).toContainEqual([
      'auth.denied',
      `apikey:${reader.id}`,
    ]);
    expect((await api('GET', '/api/carrier/deliveries', { token: reader.key })).status).toBe(200);
  });

  it('given a revoked courier or a home that blocked the courier, when assigned at creation, then refused and nothing is made', async () => {
    const gone = await newCourier('courier-gone', world.creds.carrier.id, 'Gone');
    await world.sys.store.principals.disable(gone.id, world.sys.clock.now());
    const body = newDelivery({ courierId: gone.id });
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: keyA, json: body }),
      403,
      'auth.forbidden',
    );
    const blocked = await newCourier('courier-blocked', world.creds.carrier.id, 'Blocked');
    await world.sys.store.db
      .insertInto('home_blocked_couriers')
      .values({
        home_id: world.creds.homeId,
        courier_id: blocked.id,
        blocked_at: world.sys.clock.now(),
        blocked_by: 'owner-alex',
      })
      .execute();
    const body2 = newDelivery({ courierId: blocked.id });
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: keyA, json: body2 }),
      403,
      'courier.blocked',
    );
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(0);
    expect(await deliveriesWithRef(String(body2.packageRef))).toBe(0);
  });

  it('given a carrier the home has not allowed in, then in-home is 404 home.not-found but the doorstep is fine; once the owner blocks it, the doorstep is refused too', async () => {
    const inHome = newDelivery();
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: keyB.key, json: inHome }),
      404,
      'home.not-found',
    );
    const d = await create({ placement: 'doorstep' }, keyB.key);
    expect(d.placement).toBe('doorstep');
    // No way in is made for a doorstep parcel.
    expect(await world.sys.store.deliveries.getGrantForDelivery(d.id)).toBeNull();

    await world.sys.store.db
      .insertInto('home_carriers')
      .values({
        home_id: world.creds.homeId,
        carrier_id: BIRCH,
        allowed_at: world.sys.clock.now(),
        status: 'blocked',
      })
      .execute();
    try {
      const refused = await api('POST', '/api/carrier/deliveries', {
        token: keyB.key,
        json: newDelivery({ placement: 'doorstep' }),
      });
      const unknown = await api('POST', '/api/carrier/deliveries', {
        token: keyB.key,
        json: newDelivery({ placement: 'doorstep', homeId: 'home-nowhere-1' }),
      });
      expectError(refused, 404, 'home.not-found');
      // The same answer as for a home that does not exist.
      expect(refused.body).toEqual(unknown.body);
    } finally {
      await world.sys.store.db
        .deleteFrom('home_carriers')
        .where('carrier_id', '=', BIRCH)
        .execute();
    }
  });
});

describe('assigning, reassigning and the whole in-home delivery', () => {
  let deliveryId = '';
  let sessionId = '';

  it('given a delivery without a courier, when it is assigned to Sam, then Sam has a way in', async () => {
    const d = await create();
    deliveryId = d.id;
    expect(d.courierId).toBeNull();
    expect(await world.sys.store.deliveries.getGrantForDelivery(d.id)).toBeNull();
    const a = await api('POST', `/api/carrier/deliveries/${d.id}/assign`, {
      token: keyA,
      json: { courierId: sam.id },
    });
    expect(a.status, a.text).toBe(200);
    expect(a.body.delivery).toMatchObject({ id: d.id, courierId: sam.id, status: 'scheduled' });
    const grant = await world.sys.store.deliveries.getGrantForDelivery(d.id);
    expect(grant).toMatchObject({ principalId: sam.id, revokedAt: null, maxUses: 1 });
  });

  it('given Sam assigned, when it is reassigned to Ivy, then Sam’s way in is revoked and Sam is turned away at the door', async () => {
    const head = await auditHead();
    const a = await api('POST', `/api/carrier/deliveries/${deliveryId}/assign`, {
      token: keyA,
      json: { courierId: ivy.id },
    });
    expect(a.status, a.text).toBe(200);
    expect(a.body.delivery).toMatchObject({ courierId: ivy.id });
    const grants = await world.sys.store.db
      .selectFrom('grants')
      .selectAll()
      .where('delivery_id', '=', deliveryId)
      .execute();
    expect(grants.map((g) => [g.principal_id, g.revoked_at === null])).toEqual(
      expect.arrayContaining([
        [sam.id, false],
        [ivy.id, true],
      ]),
    );
    expect(grants).toHaveLength(2);
    expect((await auditSince(head)).find((e) => e.kind === 'delivery.assigned')).toMatchObject({
      subject: `home:${world.creds.homeId}`,
      data: { deliveryId, courierId: ivy.id, previousCourierId: sam.id },
    });

    const bolt = world.home.lock.bolt();
    const refused = await atTheDoor(deliveryId, sam.token);
    expectError(refused, 404, 'delivery.not-found');
    expect(world.home.lock.bolt()).toBe(bolt);
    expect(await world.sys.store.sessions.findForDelivery(deliveryId)).toEqual([]);
  });

  it('given Ivy at the door, then the door opens for her, and while she is inside the delivery can be neither reassigned nor cancelled', async () => {
    const open = await atTheDoor(deliveryId, ivy.token);
    expect(open.status, open.text).toBe(200);
    const session = open.body.session as SessionView;
    expect(session.state).toBe('open');
    sessionId = session.id;
    expect((await world.sys.store.deliveries.get(deliveryId))?.status).toBe('in-progress');

    expectError(
      await api('POST', `/api/carrier/deliveries/${deliveryId}/assign`, {
        token: keyA,
        json: { courierId: sam.id },
      }),
      409,
      'delivery.wrong-state',
    );
    expectError(
      await api('POST', `/api/carrier/deliveries/${deliveryId}/cancel`, {
        token: keyA,
        json: { reason: 'too late' },
      }),
      409,
      'delivery.wrong-state',
    );
    expectError(
      await api('GET', `/api/carrier/deliveries/${deliveryId}/proof`, { token: keyA }),
      409,
      'delivery.proof-not-ready',
    );
    expect(await world.sys.store.deliveries.get(deliveryId)).toMatchObject({
      status: 'in-progress',
      courierId: ivy.id,
    });

    await world.dropParcel();
    const relock = await api('POST', `/api/courier/sessions/${sessionId}/relock`, {
      token: ivy.token,
      json: {},
    });
    expect(relock.status, relock.text).toBe(200);
    await world.waitForState(sessionId, ['completed'], 15_000);
    await world.waitFor(
      async () => (await world.sys.store.deliveries.get(deliveryId))?.status === 'delivered',
      10_000,
      'the delivery is delivered',
    );
    // The event is announced once its commit is done, a few turns after the row is readable.
    await world.waitFor(
      async () =>
        announced.some((e) => e.deliveryId === deliveryId && e.type === 'delivery.delivered'),
      10_000,
      'the delivered event is announced',
    );
  });

  it('then its history tells the whole delivery in order, and each event was announced after its commit', async () => {
    const events = await history(deliveryId);
    expect(events.map((e) => [e.seq, e.type, e.status])).toEqual([
      [1, 'delivery.created', 'scheduled'],
      [2, 'delivery.assigned', 'scheduled'],
      [3, 'delivery.assigned', 'scheduled'],
      [4, 'delivery.in-progress', 'in-progress'],
      [5, 'delivery.delivered', 'delivered'],
    ]);
    expect(events[1]?.data).toMatchObject({ courierId: sam.id, previousCourierId: null });
    expect(events[2]?.data).toMatchObject({ courierId: ivy.id, previousCourierId: sam.id });
    expect(events[3]?.data).toMatchObject({ sessionId, courierId: ivy.id });
    expect(events.map((e) => e.at)).toEqual([...events.map((e) => e.at)].sort((a, b) => a - b));
    const heard = announced.filter((e) => e.deliveryId === deliveryId);
    expect(heard.map((e) => e.id)).toEqual(events.map((e) => e.id));
    const got = await api('GET', `/api/carrier/deliveries/${deliveryId}`, { token: keyA });
    expect(got.body.delivery).toMatchObject({ status: 'delivered', courierId: ivy.id });
  });

  it('then its proof shows the outcome, the times and the coverage, holds no frame, and verifies with `threshold audit verify --file`', async () => {
    const proof = await proofOf(deliveryId);
    expect(proof).toMatchObject({
      format: 'threshold-delivery-proof/v1',
      delivery: { id: deliveryId, status: 'delivered' },
      outcome: { status: 'delivered', code: null },
      sessionIds: [sessionId],
      publicKey: world.sys.audit.publicKey,
    });
    const t = proof.times;
    expect(t.requestedAt).not.toBeNull();
    expect(t.unlockedAt).toBeGreaterThanOrEqual(t.requestedAt ?? Infinity);
    expect(t.lockConfirmedAt).toBeGreaterThan(t.unlockedAt ?? Infinity);
    expect(t.endedAt).toBeGreaterThanOrEqual(t.lockConfirmedAt ?? Infinity);
    expect(proof.coverage?.ratio).toBeGreaterThan(0.5);
    expect(proof.coverage?.gaps).toEqual(expect.any(Number));

    // The receipt: the session's record whole, ending on a signed checkpoint.
    const whole = proof.entries.filter((e): e is AuditEntry => !isRedacted(e));
    const kinds = new Set(whole.map((e) => e.kind));
    for (const k of ['session.requested', 'session.state', 'device.state', 'session.ended'])
      expect(kinds).toContain(k);
    expect(proof.entries.at(-1)).toMatchObject({ kind: 'audit.checkpoint' });
    expect(proof.checkpoints.length).toBeGreaterThanOrEqual(1);
    // Never the owner's recording: no clip entry, no frame digest, no frame address.
    expect(kinds).not.toContain('session.clip');
    const text = JSON.stringify(proof);
    const frames = await world.sys.store.clips.list(sessionId);
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) expect(text).not.toContain(f.digest);
    expect(text).not.toContain('/clip');
    expect(text.toLowerCase()).not.toContain('jpeg');
    // Nothing of any other subject than this delivery's session, its facts and the log's own.
    for (const e of whole)
      expect([`session:${sessionId}`, `home:${world.creds.homeId}`, 'audit']).toContain(e.subject);

    const v = verifyAuditLog(
      sha256Hex,
      verifyEd25519,
      proof.entries,
      proof.checkpoints,
      [world.sys.audit.publicKey],
      { seq: proof.fromSeq, prevHash: proof.entries[0]?.prevHash ?? '' },
    );
    expect({ ok: v.ok, unsignedTail: v.unsignedTail, break: v.firstBreak }).toEqual({
      ok: true,
      unsignedTail: 0,
      break: null,
    });

    const file = join(workDir, 'proof.json');
    writeFileSync(file, JSON.stringify(proof, null, 2));
    const cli = await verifyFile(file, world.sys.audit.publicKey);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('audit log intact');

    // A proof edited to say the lock confirmed earlier is caught.
    const ended = proof.entries.findIndex((e) => !isRedacted(e) && e.kind === 'session.ended');
    const forged = structuredClone(proof) as unknown as { entries: Record<string, unknown>[] };
    const target = forged.entries[ended] as { data: Record<string, unknown> };
    target.data = { ...target.data, lockConfirmedAt: 1 };
    const forgedFile = join(workDir, 'proof-forged.json');
    writeFileSync(forgedFile, JSON.stringify(forged));
    const broken = await verifyFile(forgedFile, world.sys.audit.publicKey);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('BROKEN');

    // …and so is one signed by another key than the server's.
    const wrongKey = await verifyFile(file, 'A'.repeat(43));
    expect(wrongKey.code).toBe(1);
  });

  it('given the finished delivery, when it is reassigned or cancelled, then 409 delivery.wrong-state and nothing changes', async () => {
    for (const [path, json] of [
      ['assign', { courierId: sam.id }],
      ['cancel', {}],
    ] as const) {
      expectError(
        await api('POST', `/api/carrier/deliveries/${deliveryId}/${path}`, { token: keyA, json }),
        409,
        'delivery.wrong-state',
      );
    }
    expect(await world.sys.store.deliveries.get(deliveryId)).toMatchObject({
      status: 'delivered',
      courierId: ivy.id,
    });
    expect(await history(deliveryId)).toHaveLength(5);
  });
});

describe('cancelling', () => {
  it('given a scheduled delivery of Sam, when it is cancelled, then his way in is revoked and the door stays shut for him', async () => {
    const d = await create({ courierId: sam.id });
    const head = await auditHead();
    const a = await api('POST', `/api/carrier/deliveries/${d.id}/cancel`, {
      token: keyA,
      json: { reason: 'The customer moved' },
    });
    expect(a.status, a.text).toBe(200);
    expect(a.body.delivery).toMatchObject({ id: d.id, status: 'cancelled' });
    expect((await world.sys.store.deliveries.getGrantForDelivery(d.id))?.revokedAt).not.toBeNull();
    expect((await auditSince(head)).find((e) => e.kind === 'delivery.cancelled')).toMatchObject({
      data: { deliveryId: d.id, reason: 'The customer moved' },
    });

    const bolt = world.home.lock.bolt();
    const refused = await atTheDoor(d.id, sam.token);
    expectError(refused, 403, 'grant.revoked');
    expect(world.home.lock.bolt()).toBe(bolt);

    const events = await history(d.id);
    expect(events.map((e) => e.type)).toEqual<DeliveryEventType[]>([
      'delivery.created',
      'delivery.cancelled',
    ]);
    expect(events[1]?.data).toEqual({ reason: 'The customer moved' });

    expectError(
      await api('POST', `/api/carrier/deliveries/${d.id}/cancel`, { token: keyA, json: {} }),
      409,
      'delivery.wrong-state',
    );
    expectError(
      await api('POST', `/api/carrier/deliveries/${d.id}/assign`, {
        token: keyA,
        json: { courierId: ivy.id },
      }),
      409,
      'delivery.wrong-state',
    );
    expectError(
      await api('GET', `/api/carrier/deliveries/${d.id}/proof`, { token: keyA }),
      409,
      'delivery.proof-not-ready',
    );
    expect(await history(d.id)).toHaveLength(2);
  });
});

describe('a doorstep delivery', () => {
  let deliveryId = '';

  it('given a doorstep delivery of Sam, then it has no way in, shows on his list, and the door does not open for it', async () => {
    const d = await create({ courierId: sam.id, placement: 'doorstep' });
    deliveryId = d.id;
    expect(await world.sys.store.deliveries.getGrantForDelivery(d.id)).toBeNull();
    const list = await api('GET', '/api/courier/deliveries', { token: sam.token });
    expect(list.body.deliveries).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: d.id, placement: 'doorstep' })]),
    );
    const bolt = world.home.lock.bolt();
    const refused = await atTheDoor(d.id, sam.token);
    expectError(refused, 403, 'grant.not-found');
    expect(refused.body.error?.message).toContain('left at the door');
    expect(world.home.lock.bolt()).toBe(bolt);
  });

  it('given another courier, when they say they left it, then 404 delivery.not-found, audited, and nothing changes', async () => {
    for (const other of [ivy, birchCourier]) {
      const head = await auditHead();
      expectError(
        await api('POST', `/api/courier/deliveries/${deliveryId}/left-at-door`, {
          token: other.token,
          json: {},
        }),
        404,
        'delivery.not-found',
      );
      expect((await auditSince(head)).map((e) => [e.kind, e.actor.id, e.subject])).toContainEqual([
        'auth.object-denied',
        other.id,
        `delivery:${deliveryId}`,
      ]);
    }
    expect((await world.sys.store.deliveries.get(deliveryId))?.status).toBe('scheduled');
  });

  it('given Sam, when he left it at the door, then it is left-at-door with its event, once, and its proof verifies', async () => {
    const a = await api('POST', `/api/courier/deliveries/${deliveryId}/left-at-door`, {
      token: sam.token,
      json: {},
    });
    expect(a.status, a.text).toBe(200);
    expect(a.body.delivery).toMatchObject({ id: deliveryId, status: 'left-at-door' });
    expectError(
      await api('POST', `/api/courier/deliveries/${deliveryId}/left-at-door`, {
        token: sam.token,
        json: {},
      }),
      409,
      'delivery.wrong-state',
    );
    expect((await history(deliveryId)).map((e) => [e.type, e.status])).toEqual([
      ['delivery.created', 'scheduled'],
      ['delivery.left-at-door', 'left-at-door'],
    ]);

    const proof = await proofOf(deliveryId);
    expect(proof).toMatchObject({
      outcome: { status: 'left-at-door', code: null },
      coverage: null,
      sessionIds: [],
    });
    expect(proof.times.endedAt).not.toBeNull();
    const whole = proof.entries.filter((e): e is AuditEntry => !isRedacted(e));
    expect(whole.find((e) => e.kind === 'delivery.left-at-door')).toMatchObject({
      actor: { type: 'principal', id: sam.id },
      data: { deliveryId },
    });
    const file = join(workDir, 'doorstep-proof.json');
    writeFileSync(file, JSON.stringify(proof));
    const cli = await verifyFile(file, world.sys.audit.publicKey);
    expect(cli.code, cli.stderr).toBe(0);
  });

  it('given an in-home delivery, when the courier says he left it at the door, then 409 delivery.wrong-state', async () => {
    const d = await create({ courierId: sam.id });
    expectError(
      await api('POST', `/api/courier/deliveries/${d.id}/left-at-door`, {
        token: sam.token,
        json: {},
      }),
      409,
      'delivery.wrong-state',
    );
    expect((await world.sys.store.deliveries.get(d.id))?.status).toBe('scheduled');
  });
});

describe('reading: the list, page by page', () => {
  it('given several deliveries, when listed two at a time, then every one comes once, newest first, and a status filter holds', async () => {
    const seen: string[] = [];
    let next: string | null = null;
    for (let i = 0; i < 100; i++) {
      const page = await api(
        'GET',
        `/api/carrier/deliveries?limit=2${next ? `&after=${next}` : ''}`,
        { token: keyA },
      );
      expect(page.status, page.text).toBe(200);
      const ds = page.body.deliveries as CarrierDeliveryView[];
      expect(ds.length).toBeLessThanOrEqual(2);
      seen.push(...ds.map((d) => d.id));
      next = page.body.next as string | null;
      if (next === null) break;
    }
    const all = await world.sys.store.deliveries.listForCarrier(world.creds.carrier.id);
    expect([...seen].sort()).toEqual(all.map((d) => d.id).sort());
    const created = all.map((d) => [d.id, d.createdAt] as const);
    const order = new Map(created);
    const times = seen.map((id) => order.get(id) ?? 0);
    expect(times).toEqual([...times].sort((a, b) => b - a));

    const cancelled = await api('GET', '/api/carrier/deliveries?status=cancelled', {
      token: keyA,
    });
    const ids = (cancelled.body.deliveries as CarrierDeliveryView[]).map((d) => d.status);
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids)).toEqual(new Set(['cancelled']));
  });

  it('given bad paging, then 400 request.invalid', async () => {
    for (const q of ['limit=0', 'limit=201', 'limit=abc', 'status=lost', 'after=NOT_AN_ID', 'x=1'])
      expectError(
        await api('GET', `/api/carrier/deliveries?${q}`, { token: keyA }),
        400,
        'request.invalid',
      );
  });
});

describe('carrier B and carrier A’s deliveries', () => {
  let aDelivery = '';
  let aDelivered = '';

  beforeAll(async () => {
    aDelivery = (await create({ courierId: sam.id })).id;
    const delivered = await world.sys.store.deliveries.listForCarrier(world.creds.carrier.id);
    aDelivered = delivered.find((d) => d.status === 'delivered')?.id ?? '';
    expect(aDelivered).not.toBe('');
  });

  it('given B, when it reads, changes or asks the proof of A’s delivery, then 404 delivery.not-found like an unknown id, each attempt audited, nothing changed', async () => {
    const unknown = await api('GET', `/api/carrier/deliveries/${randomUUID()}`, {
      token: keyB.key,
    });
    expectError(unknown, 404, 'delivery.not-found');
    const attempts: [string, string, unknown][] = [
      ['GET', `/api/carrier/deliveries/${aDelivery}`, undefined],
      ['GET', `/api/carrier/deliveries/${aDelivered}/proof`, undefined],
      ['POST', `/api/carrier/deliveries/${aDelivery}/assign`, { courierId: birchCourier.id }],
      ['POST', `/api/carrier/deliveries/${aDelivery}/cancel`, { reason: 'mine now' }],
    ];
    for (const [method, path, json] of attempts) {
      const head = await auditHead();
      const a = await api(method as 'GET' | 'POST', path, {
        token: keyB.key,
        ...(json === undefined ? {} : { json }),
      });
      expectError(a, 404, 'delivery.not-found');
      expect(a.body).toEqual(unknown.body);
      const denied = (await auditSince(head)).filter((e) => e.kind === 'auth.object-denied');
      expect(denied).toHaveLength(1);
      expect(denied[0]).toMatchObject({
        actor: { type: 'principal', id: `apikey:${keyB.id}` },
        data: { carrierId: BIRCH, answered: 'delivery.not-found' },
      });
    }
    expect(await world.sys.store.deliveries.get(aDelivery)).toMatchObject({
      status: 'scheduled',
      courierId: sam.id,
    });
    expect(await history(aDelivery)).toHaveLength(1);
  });

  it('given B, when it lists its deliveries or pages after A’s id, then it sees none of A’s', async () => {
    const list = await api('GET', '/api/carrier/deliveries?limit=200', { token: keyB.key });
    const ds = list.body.deliveries as CarrierDeliveryView[];
    expect(ds.every((d) => d.carrierId === BIRCH)).toBe(true);
    expect(list.text).not.toContain(aDelivery);
    expectError(
      await api('GET', `/api/carrier/deliveries?after=${aDelivery}`, { token: keyB.key }),
      400,
      'request.invalid',
    );
  });

  it('given A, when it assigns B’s courier, then 403 auth.forbidden, as for an unknown courier', async () => {
    const foreign = await api('POST', `/api/carrier/deliveries/${aDelivery}/assign`, {
      token: keyA,
      json: { courierId: birchCourier.id },
    });
    const unknown = await api('POST', `/api/carrier/deliveries/${aDelivery}/assign`, {
      token: keyA,
      json: { courierId: 'courier-nobody' },
    });
    expectError(foreign, 403, 'auth.forbidden');
    expect(foreign.body).toEqual(unknown.body);
    expect((await world.sys.store.deliveries.get(aDelivery))?.courierId).toBe(sam.id);
  });

  it('given a revoked key, when it creates or cancels, then 401 and nothing changes', async () => {
    const k = await world.sys.auth.createApiKey(world.creds.carrier.id);
    await world.sys.store.principals.revokeApiKey(k.id, world.sys.clock.now());
    const body = newDelivery();
    expectError(
      await api('POST', '/api/carrier/deliveries', { token: k.key, json: body }),
      401,
      'auth.required',
    );
    expectError(
      await api('POST', `/api/carrier/deliveries/${aDelivery}/cancel`, { token: k.key, json: {} }),
      401,
      'auth.required',
    );
    expect(await deliveriesWithRef(String(body.packageRef))).toBe(0);
    expect((await world.sys.store.deliveries.get(aDelivery))?.status).toBe('scheduled');
  });
});

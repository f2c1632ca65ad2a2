/**
 * The idempotency helper on a real store, behind a small Fastify route whose work waits (as
 * work that calls out to the network would), so twin requests really overlap: the work runs
 * once, a twin that arrives meanwhile is told to retry, and every retry afterwards gets the
 * first answer byte for byte. The carrier routes' own tests are in
 * test/carrier-deliveries.test.ts.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { httpStatusOf, ThresholdError } from '../../core/errors.ts';
import { systemClock } from '../../protocol/system-clock.ts';
import { CARRIER, openTestStore, seedHome, type TestStore } from '../../store/test-store.ts';
import { idempotent } from './idempotency.ts';

const OTHER = { id: 'carrier-2', name: 'Other Parcels' };

describe('idempotent()', () => {
  let t: TestStore;
  let app: FastifyInstance;
  let runs: number;
  let failNext: boolean;

  beforeEach(async () => {
    t = await openTestStore('sqlite');
    await seedHome(t.store);
    await t.store.principals.createCarrier(OTHER);
    runs = 0;
    failNext = false;
    app = Fastify();
    app.setErrorHandler((err: Error, _req, reply) => {
      const code = err instanceof ThresholdError ? err.code : 'internal.error';
      void reply.status(httpStatusOf(code)).send({ error: { code, message: err.message } });
    });
    app.post('/things', async (req, reply) => {
      // The carrier is named by a header here; the real routes take it from the credential.
      const carrierId = req.headers['x-carrier'] === 'other' ? OTHER.id : CARRIER.id;
      return idempotent({ store: t.store, clock: systemClock }, req, reply, carrierId, async () => {
        runs++;
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (failNext) {
          failNext = false;
          throw new ThresholdError('delivery.window-invalid');
        }
        return { status: 201, body: { run: runs, at: Date.now() } };
      });
    });
    await app.ready();
  });

  afterEach(async () => {
    await app.close();
    await t.cleanup();
  });

  const post = (key: string | undefined, body: unknown, carrier = 'mine') =>
    app.inject({
      method: 'POST',
      url: '/things',
      headers: {
        'content-type': 'application/json',
        'x-carrier': carrier,
        ...(key === undefined ? {} : { 'idempotency-key': key }),
      },
      payload: JSON.stringify(body),
    });

  it('runs the work once for twins that overlap; the twin in flight gets 409, later ones the replay', async () => {
    const twins = await Promise.all([1, 2, 3, 4].map(() => post('k-1', { a: 1 })));
    expect(runs).toBe(1);
    const statuses = twins.map((r) => r.statusCode).sort();
    expect(statuses).toEqual([201, 409, 409, 409]);
    const first = twins.find((r) => r.statusCode === 201);
    for (const r of twins.filter((x) => x.statusCode === 409))
      expect(r.json()).toMatchObject({ error: { code: 'request.in-flight' } });

    const retry = await post('k-1', { a: 1 });
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toBe(first?.body);
    expect(retry.headers['content-type']).toBe(first?.headers['content-type']);
    expect(runs).toBe(1);
  });

  it('hashes the body canonically: the same fields in another order are the same request', async () => {
    const a = await post('k-2', { a: 1, b: { c: 2, d: 3 } });
    const b = await post('k-2', { b: { d: 3, c: 2 }, a: 1 });
    expect(b.statusCode).toBe(201);
    expect(b.body).toBe(a.body);
    expect(runs).toBe(1);
    const c = await post('k-2', { a: 2, b: { c: 2, d: 3 } });
    expect(c.statusCode).toBe(422);
    expect(c.json()).toMatchObject({ error: { code: 'request.idempotency-key-reused' } });
    expect(runs).toBe(1);
  });

  it('frees the key when the work is refused, so the retry runs the work again', async () => {
    failNext = true;
    const refused = await post('k-3', { a: 1 });
    expect(refused.statusCode).toBe(422);
    const again = await post('k-3', { a: 1 });
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(runs).toBe(2);
  });

  it('keeps keys per carrier', async () => {
    const mine = await post('k-4', { a: 1 });
    const theirs = await post('k-4', { a: 1 }, 'other');
    expect([mine.statusCode, theirs.statusCode]).toEqual([201, 201]);
    expect(theirs.headers['idempotent-replayed']).toBeUndefined();
    expect(runs).toBe(2);
  });

  it('refuses a missing or malformed key before any work', async () => {
    const missing = await post(undefined, { a: 1 });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ error: { code: 'request.idempotency-key-required' } });
    for (const bad of ['', 'with space', 'é', 'x'.repeat(256)]) {
      const r = await post(bad, { a: 1 });
      expect(r.statusCode, bad).toBe(400);
      expect(r.json()).toMatchObject({ error: { code: 'request.invalid' } });
    }
    expect(runs).toBe(0);
    expect(await t.store.db.selectFrom('idempotency_keys').selectAll().execute()).toEqual([]);
  });
});

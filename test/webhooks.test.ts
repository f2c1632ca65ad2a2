/**
 * Carrier webhooks, end to end: a real Threshold (SQLite in a temp dir, HTTP on loopback) on a
 * fake clock that the test moves, carriers calling the API with their keys, and webhook
 * receivers of our own on 127.0.0.1 that record every request byte for byte. Signatures are
 * checked with `examples/verify-webhook.mjs`, the snippet the carrier guide shows, so the
 * documented code is the tested code.
 *
 * Given carrier A with receivers and carrier B with its own, when A's deliveries change, then A's
 * receivers get each event once, signed; a receiver that fails gets the same bytes again after
 * the backoff (10 s, 20 s, 40 s… up to 12 attempts); a resend sends the same bytes signed afresh;
 * a rotated secret signs what follows; a disabled webhook gets nothing more; B never gets A's
 * events and is refused (404, audited) every webhook object of A's. Under production rules,
 * URLs that are not https: or that point at this machine or a private network are refused and
 * nothing is stored, and a stored one that resolves inside is not called. A restart resumes the
 * pending deliveries.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { lookup } from 'node:dns/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/core/clock.ts';
import type { DeliveryStatus } from '../src/core/model.ts';
import type { WebhookDeliveryView, WebhookPayload, WebhookView } from '../src/protocol/views.ts';
import { seedDemo, type DemoCredentials } from '../src/server/seed.ts';
import { startSystem, type RunningSystem, type SystemOptions } from '../src/server/system.ts';
import { isNonPublicAddress } from '../src/server/public-endpoint.ts';
import {
  DEFAULT_WEBHOOK_TIMING,
  retryDelayMs,
  WEBHOOK_USER_AGENT,
} from '../src/server/webhook-dispatcher.ts';
import type { DeliveryEventType } from '../src/store/delivery-event-repository.ts';

/** The documented verification snippet (plain JavaScript, loaded as a carrier would). */
type Verify = (
  rawBody: Buffer | string,
  header: string | undefined,
  secret: string,
  toleranceS?: number,
  nowMs?: number,
) => boolean;
const snippet = new URL('../examples/verify-webhook.mjs', import.meta.url).href;
const { verifyThresholdWebhook } = (await import(snippet)) as { verifyThresholdWebhook: Verify };

/** One request a receiver got. */
interface Hit {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly raw: Buffer;
}

/** A webhook receiver on loopback: records requests, answers per path (200 unless told). */
class Receiver {
  readonly hits: Hit[] = [];
  /** Statuses to answer on a path, first one first; when empty, `always` or 200. */
  readonly script = new Map<string, number[]>();
  readonly always = new Map<string, number>();
  /** Paths that never answer. */
  readonly hang = new Set<string>();
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      this.hits.push({ path, headers: req.headers, raw: Buffer.concat(chunks) });
      if (this.hang.has(path)) return;
      const status = this.script.get(path)?.shift() ?? this.always.get(path) ?? 200;
      res.statusCode = status;
      // A redirect to a path that would answer 200: it must not be followed.
      if (status >= 300 && status < 400) res.setHeader('location', `${this.origin}/target`);
      res.end(status >= 300 ? 'receiver says no\n'.repeat(100) : 'ok');
    });
  });
  origin = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  to(path: string): Hit[] {
    return this.hits.filter((h) => h.path === path);
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A TCP listener on loopback that only counts connections: was anything sent at all? */
class ConnectionCounter {
  connections = 0;
  private readonly server = net.createServer((s) => {
    this.connections += 1;
    s.destroy();
  });
  port = 0;
  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }
  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown> & { error?: { code: string; message: string } };
}

async function waitUntil(pred: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Lets real time pass, for "nothing more arrives" checks. */
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running system with a second carrier, and helpers to call it as either carrier. */
class World {
  private constructor(
    readonly sys: RunningSystem,
    readonly creds: DemoCredentials,
    readonly dataDir: string,
    readonly a: { id: string; key: string; keyId: string; deliveryId: string },
    readonly b: { id: string; key: string; keyId: string; deliveryId: string },
  ) {}

  static async start(
    opts: Partial<SystemOptions> & { dataDir?: string },
    existing?: World,
  ): Promise<World> {
    const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'threshold-webhooks-'));
    const sys = await startSystem({ port: 0, mqttPort: 0, ...opts, dataDir });
    try {
      const creds = await seedDemo(sys, dataDir, {
        credentialsFile: join(dataDir, 'webhooks-credentials.json'),
      });
      if (existing) return new World(sys, creds, dataDir, existing.a, existing.b);
      const carrierB = `carrier-birch-${randomUUID().slice(0, 8)}`;
      await sys.store.principals.createCarrier({ id: carrierB, name: 'Birch Express' });
      const keyA = await sys.auth.createApiKey(creds.carrier.id);
      const keyB = await sys.auth.createApiKey(carrierB);
      const delivery = async (carrierId: string) => {
        const now = sys.clock.now();
        const id = randomUUID();
        await sys.store.deliveries.create({
          id,
          carrierId,
          homeId: creds.homeId,
          doorId: creds.doorId,
          packageRef: `PKG-${id.slice(0, 6)}`,
          windowStart: now,
          windowEnd: now + 3_600_000,
          courierId: null,
          status: 'scheduled',
          createdAt: now,
        });
        return id;
      };
      return new World(
        sys,
        creds,
        dataDir,
        {
          id: creds.carrier.id,
          key: keyA.key,
          keyId: keyA.id,
          deliveryId: await delivery(creds.carrier.id),
        },
        { id: carrierB, key: keyB.key, keyId: keyB.id, deliveryId: await delivery(carrierB) },
      );
    } catch (err) {
      await sys.close();
      throw err;
    }
  }

  get clock(): FakeClock {
    return this.sys.clock as FakeClock;
  }

  async call(
    method: string,
    path: string,
    key: string | null,
    json?: unknown,
  ): Promise<Answer & { text: string }> {
    const headers: Record<string, string> = {};
    if (key !== null) headers.authorization = `Bearer ${key}`;
    if (json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.sys.url}${path}`, {
      method,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    const text = await res.text();
    return { status: res.status, text, body: text ? (JSON.parse(text) as Answer['body']) : {} };
  }

  /** Registers a webhook as carrier A (or `key`); expects 201. */
  async register(
    url: string,
    events?: string[],
    key = this.a.key,
  ): Promise<{ webhook: WebhookView; secret: string }> {
    const r = await this.call('POST', '/api/carrier/webhooks', key, {
      url,
      ...(events ? { events } : {}),
    });
    expect(r.status, r.text).toBe(201);
    return r.body as unknown as { webhook: WebhookView; secret: string };
  }

  /** A webhook's log as its carrier reads it (newest first). */
  async log(webhookId: string, key = this.a.key): Promise<WebhookDeliveryView[]> {
    const r = await this.call('GET', `/api/carrier/webhooks/${webhookId}/deliveries`, key);
    expect(r.status, r.text).toBe(200);
    return r.body.deliveries as WebhookDeliveryView[];
  }

  /** A delivery of carrier A (or B) changes: the event is recorded and announced. */
  async event(
    carrier: 'a' | 'b',
    type: DeliveryEventType,
    status: DeliveryStatus,
  ): Promise<string> {
    const c = this[carrier];
    const e = await this.sys.deliveryEvents.recordAndPublish({
      deliveryId: c.deliveryId,
      carrierId: c.id,
      type,
      status,
      data: { note: `${type} of ${carrier}` },
    });
    return e.id;
  }

  async webhookRows(): Promise<number> {
    const r = await this.sys.store.db
      .selectFrom('webhooks')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async auditAfter(seq: number) {
    await this.sys.audit.drain();
    const last = (await this.sys.store.audit.last())?.seq ?? 0;
    return last > seq ? this.sys.store.audit.getRange(seq + 1, last) : [];
  }

  async auditHead(): Promise<number> {
    await this.sys.audit.drain();
    return (await this.sys.store.audit.last())?.seq ?? 0;
  }

  async close(removeData = true): Promise<void> {
    await this.sys.close();
    if (removeData) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function checkSigned(hit: Hit, secret: string, nowMs: number): void {
  const sig = hit.headers['threshold-signature'] as string;
  expect(sig).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  expect(verifyThresholdWebhook(hit.raw, sig, secret, 300, nowMs)).toBe(true);
}

describe('webhooks on a development server (loopback receivers allowed)', () => {
  let w: World;
  const rx = new Receiver();

  beforeAll(async () => {
    await rx.start();
    w = await World.start({ clock: new FakeClock(), allowInsecurePushEndpoints: true });
  }, 30_000);

  afterAll(async () => {
    await w?.close();
    await rx.stop();
  });

  it('posts every event to the webhooks that want it, each signed with its secret', async () => {
    const all = await w.register(`${rx.origin}/all`);
    const onlyDelivered = await w.register(`${rx.origin}/delivered`, ['delivery.delivered']);
    expect(all.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(all.secret).not.toBe(onlyDelivered.secret);
    expect(all.webhook).toMatchObject({ events: ['*'], disabledAt: null });
    expect(all.webhook.createdBy).toBe(`apikey:${w.a.keyId}`);

    const ids = [
      await w.event('a', 'delivery.created', 'scheduled'),
      await w.event('a', 'delivery.in-progress', 'in-progress'),
      await w.event('a', 'delivery.delivered', 'delivered'),
    ];
    await waitUntil(() => rx.to('/all').length === 3, 'the three events arrived');
    await waitUntil(() => rx.to('/delivered').length === 1, 'the delivered event arrived');
    await w.sys.webhooks.idle();

    const now = w.sys.clock.now();
    const hits = rx.to('/all');
    expect(hits.map((h) => h.headers['threshold-event-id']).sort()).toEqual([...ids].sort());
    // The delivery as the carrier API shows it.
    const shown = await w.call('GET', `/api/carrier/deliveries/${w.a.deliveryId}`, w.a.key);
    expect(shown.status).toBe(200);
    const delivery = shown.body.delivery;
    expect(delivery).toMatchObject({ id: w.a.deliveryId, carrierId: w.a.id });
    for (const hit of hits) {
      expect(hit.headers['content-type']).toBe('application/json');
      expect(hit.headers['user-agent']).toBe(WEBHOOK_USER_AGENT);
      expect(hit.headers['threshold-webhook-id']).toBe(all.webhook.id);
      checkSigned(hit, all.secret, now);
      // Any other secret, a changed byte, or the same request five minutes later: refused.
      const sig = hit.headers['threshold-signature'] as string;
      expect(verifyThresholdWebhook(hit.raw, sig, onlyDelivered.secret, 300, now)).toBe(false);
      const tampered = Buffer.from(hit.raw.toString('utf8').replace('"seq":', '"seq":1'));
      expect(verifyThresholdWebhook(tampered, sig, all.secret, 300, now)).toBe(false);
      expect(verifyThresholdWebhook(hit.raw, sig, all.secret, 300, now + 301_000)).toBe(false);
      expect(verifyThresholdWebhook(hit.raw, undefined, all.secret, 300, now)).toBe(false);

      const body = JSON.parse(hit.raw.toString('utf8')) as WebhookPayload;
      expect(body.id).toBe(hit.headers['threshold-event-id']);
      expect(body.data.delivery).toEqual(delivery);
    }
    const bodies = hits.map((h) => JSON.parse(h.raw.toString('utf8')) as WebhookPayload);
    expect(bodies.map((b) => [b.type, b.data.event.status, b.data.event.data]).sort()).toEqual(
      [
        ['delivery.created', 'scheduled', { note: 'delivery.created of a' }],
        ['delivery.delivered', 'delivered', { note: 'delivery.delivered of a' }],
        ['delivery.in-progress', 'in-progress', { note: 'delivery.in-progress of a' }],
      ].sort(),
    );
    expect(bodies.map((b) => b.data.event.seq).sort()).toEqual([1, 2, 3]);
    const delivered = rx.to('/delivered')[0]!;
    expect(delivered.headers['threshold-event-id']).toBe(ids[2]);
    checkSigned(delivered, onlyDelivered.secret, now);

    // The log shows each as delivered at the first attempt, with the bytes sent.
    const log = await w.log(all.webhook.id);
    expect(log).toHaveLength(3);
    for (const row of log) {
      expect(row).toMatchObject({
        status: 'delivered',
        attempts: 1,
        lastStatusCode: 200,
        lastError: null,
        nextAttemptAt: null,
      });
      const sent = hits.find((h) => h.headers['threshold-delivery-id'] === row.id);
      expect(JSON.stringify(row.payload)).toBe(sent?.raw.toString('utf8'));
    }
    // The secret is shown once: never listed, never in the audit log.
    const list = await w.call('GET', '/api/carrier/webhooks', w.a.key);
    expect(list.text).toContain(all.webhook.id);
    expect(list.text).not.toContain(all.secret);
    const audit = await w.auditAfter(0);
    expect(JSON.stringify(audit)).not.toContain(all.secret);
    expect(audit.filter((e) => e.kind === 'webhook.created').map((e) => e.subject)).toEqual(
      expect.arrayContaining([`webhook:${all.webhook.id}`, `webhook:${onlyDelivered.webhook.id}`]),
    );
    for (const id of [all.webhook.id, onlyDelivered.webhook.id])
      expect((await w.call('POST', `/api/carrier/webhooks/${id}/disable`, w.a.key)).status).toBe(
        200,
      );
  });

  it('retries a failed delivery after the backoff, with the same bytes, and logs both attempts', async () => {
    const hook = await w.register(`${rx.origin}/flaky`);
    rx.script.set('/flaky', [500]);
    const eventId = await w.event('a', 'delivery.assigned', 'scheduled');
    await waitUntil(() => rx.to('/flaky').length === 1, 'the first attempt');
    await w.sys.webhooks.idle();
    const t0 = w.sys.clock.now();
    const [first] = await w.log(hook.webhook.id);
    expect(first).toMatchObject({
      eventId,
      status: 'pending',
      attempts: 1,
      lastStatusCode: 500,
      nextAttemptAt: t0 + 10_000,
    });
    // The receiver's answer is kept only as a short, one-line error.
    expect(first?.lastError).toMatch(/^HTTP 500: receiver says no/);
    expect(first?.lastError?.length).toBeLessThanOrEqual(300);
    expect(first?.lastError).not.toContain('\n');

    w.clock.advance(9_999);
    await pause(300);
    expect(rx.to('/flaky')).toHaveLength(1);
    w.clock.advance(1);
    await waitUntil(() => rx.to('/flaky').length === 2, 'the retry');
    await w.sys.webhooks.idle();

    const [a, b] = rx.to('/flaky');
    expect(b!.raw.equals(a!.raw)).toBe(true);
    expect(b!.headers['threshold-signature']).not.toBe(a!.headers['threshold-signature']);
    checkSigned(b!, hook.secret, w.sys.clock.now());
    expect(await w.log(hook.webhook.id)).toEqual([
      expect.objectContaining({
        id: first?.id,
        status: 'delivered',
        attempts: 2,
        lastStatusCode: 200,
        lastError: null,
        nextAttemptAt: null,
        deliveredAt: t0 + 10_000,
      }),
    ]);
    await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
  });

  it('does not follow a redirect: a 3xx is a failed attempt', async () => {
    const hook = await w.register(`${rx.origin}/moved`);
    rx.always.set('/moved', 301);
    await w.event('a', 'delivery.assigned', 'scheduled');
    await waitUntil(() => rx.to('/moved').length === 1, 'the attempt');
    await w.sys.webhooks.idle();
    await pause(200);
    expect(rx.to('/target')).toHaveLength(0);
    expect((await w.log(hook.webhook.id))[0]).toMatchObject({
      status: 'pending',
      attempts: 1,
      lastStatusCode: 301,
      lastError: 'HTTP 301: redirects are not followed',
    });
    await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
  });

  it('backs off 10 s, 20 s, 40 s… up to an hour, and gives up after 12 attempts', async () => {
    const hook = await w.register(`${rx.origin}/down`);
    rx.always.set('/down', 503);
    await w.event('a', 'delivery.needs-review', 'needs-review');
    await waitUntil(() => rx.to('/down').length === 1, 'the first attempt');
    const waits: number[] = [];
    for (let n = 1; n < DEFAULT_WEBHOOK_TIMING.maxAttempts; n++) {
      await waitUntil(
        async () => (await w.log(hook.webhook.id))[0]?.attempts === n,
        `attempt ${n} recorded`,
      );
      const row = (await w.log(hook.webhook.id))[0]!;
      waits.push(row.nextAttemptAt! - w.sys.clock.now());
      w.clock.advance(row.nextAttemptAt! - w.sys.clock.now());
      await waitUntil(() => rx.to('/down').length === n + 1, `attempt ${n + 1}`);
    }
    await w.sys.webhooks.idle();
    expect(waits).toEqual([
      10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000, 3_600_000,
      3_600_000,
    ]);
    expect(waits).toEqual(waits.map((_, i) => retryDelayMs(i + 1, DEFAULT_WEBHOOK_TIMING)));
    const [row] = await w.log(hook.webhook.id);
    expect(row).toMatchObject({
      status: 'failed',
      attempts: 12,
      nextAttemptAt: null,
      lastStatusCode: 503,
    });
    // Given up means given up.
    w.clock.advance(6 * 3_600_000);
    await pause(300);
    expect(rx.to('/down')).toHaveLength(12);
    await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
  });

  it('resends a logged delivery: the same bytes, signed afresh, as a new row of the log', async () => {
    const hook = await w.register(`${rx.origin}/resend`);
    await w.event('a', 'delivery.left-at-door', 'left-at-door');
    await waitUntil(() => rx.to('/resend').length === 1, 'the event');
    await w.sys.webhooks.idle();
    const [original] = await w.log(hook.webhook.id);
    w.clock.advance(5_000);

    const head = await w.auditHead();
    const r = await w.call(
      'POST',
      `/api/carrier/webhook-deliveries/${original!.id}/resend`,
      w.a.key,
    );
    expect(r.status, r.text).toBe(202);
    const copy = r.body.delivery as WebhookDeliveryView;
    expect(copy.id).not.toBe(original!.id);
    expect(copy).toMatchObject({ eventId: original!.eventId, status: 'pending', attempts: 0 });
    await waitUntil(() => rx.to('/resend').length === 2, 'the resend');
    await w.sys.webhooks.idle();

    const [first, again] = rx.to('/resend');
    expect(again!.raw.equals(first!.raw)).toBe(true);
    expect(again!.headers['threshold-event-id']).toBe(first!.headers['threshold-event-id']);
    expect(again!.headers['threshold-delivery-id']).toBe(copy.id);
    expect(again!.headers['threshold-signature']).not.toBe(first!.headers['threshold-signature']);
    checkSigned(again!, hook.secret, w.sys.clock.now());
    const log = await w.log(hook.webhook.id);
    expect(log.map((d) => [d.id, d.status, d.attempts])).toEqual([
      [copy.id, 'delivered', 1],
      [original!.id, 'delivered', 1],
    ]);
    expect(
      (await w.auditAfter(head)).filter((e) => e.kind === 'webhook.resent').map((e) => e.data),
    ).toEqual([expect.objectContaining({ webhookDeliveryId: copy.id, resentFrom: original!.id })]);
    await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
  });

  it('signs with the new secret once it is rotated, and the old one no longer verifies', async () => {
    const hook = await w.register(`${rx.origin}/rotate`);
    const r = await w.call(
      'POST',
      `/api/carrier/webhooks/${hook.webhook.id}/rotate-secret`,
      w.a.key,
    );
    expect(r.status, r.text).toBe(200);
    const secret = String(r.body.secret);
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(hook.secret);

    await w.event('a', 'delivery.cancelled', 'cancelled');
    await waitUntil(() => rx.to('/rotate').length === 1, 'the event');
    const hit = rx.to('/rotate')[0]!;
    const sig = hit.headers['threshold-signature'] as string;
    const now = w.sys.clock.now();
    expect(verifyThresholdWebhook(hit.raw, sig, secret, 300, now)).toBe(true);
    expect(verifyThresholdWebhook(hit.raw, sig, hook.secret, 300, now)).toBe(false);
    await w.sys.webhooks.idle();
    await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
  });

  it('sends nothing more to a disabled webhook, and gives up what was pending', async () => {
    const hook = await w.register(`${rx.origin}/off`);
    const witness = await w.register(`${rx.origin}/witness`);
    rx.script.set('/off', [500]);
    await w.event('a', 'delivery.created', 'scheduled');
    await waitUntil(() => rx.to('/off').length === 1, 'the first attempt');
    await w.sys.webhooks.idle();
    expect((await w.log(hook.webhook.id))[0]?.status).toBe('pending');

    const head = await w.auditHead();
    const off = await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
    expect(off.status, off.text).toBe(200);
    expect((off.body.webhook as WebhookView).disabledAt).toBe(w.sys.clock.now());
    // Again: the same answer, recorded once.
    const again = await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, w.a.key);
    expect(again.status).toBe(200);
    expect(again.body.webhook).toEqual(off.body.webhook);
    expect((await w.auditAfter(head)).filter((e) => e.kind === 'webhook.disabled')).toHaveLength(1);
    expect((await w.log(hook.webhook.id))[0]).toMatchObject({
      status: 'failed',
      nextAttemptAt: null,
      lastError: 'The webhook was disabled.',
    });

    await w.event('a', 'delivery.assigned', 'scheduled');
    await waitUntil(() => rx.to('/witness').length === 2, 'the witness got both events');
    w.clock.advance(60_000);
    await pause(300);
    await w.sys.webhooks.idle();
    expect(rx.to('/off')).toHaveLength(1);
    expect(await w.log(hook.webhook.id)).toHaveLength(1);

    // A disabled webhook's secret cannot be rotated and its log cannot be resent.
    const rotate = await w.call(
      'POST',
      `/api/carrier/webhooks/${hook.webhook.id}/rotate-secret`,
      w.a.key,
    );
    expect([rotate.status, rotate.body.error?.code]).toEqual([409, 'webhook.disabled']);
    const row = (await w.log(hook.webhook.id))[0]!;
    const resend = await w.call(
      'POST',
      `/api/carrier/webhook-deliveries/${row.id}/resend`,
      w.a.key,
    );
    expect([resend.status, resend.body.error?.code]).toEqual([409, 'webhook.disabled']);
    expect(await w.log(hook.webhook.id)).toHaveLength(1);
    await w.call('POST', `/api/carrier/webhooks/${witness.webhook.id}/disable`, w.a.key);
  });

  it('keeps carriers apart: B gets none of A’s events and is refused each of A’s webhook objects', async () => {
    const hookA = await w.register(`${rx.origin}/a`);
    const hookB = await w.register(`${rx.origin}/b`, undefined, w.b.key);
    const idA = await w.event('a', 'delivery.in-progress', 'in-progress');
    const idB = await w.event('b', 'delivery.created', 'scheduled');
    await waitUntil(
      () => rx.to('/a').length === 1 && rx.to('/b').length === 1,
      'each carrier got its event',
    );
    await w.sys.webhooks.idle();
    expect(rx.to('/a')[0]!.headers['threshold-event-id']).toBe(idA);
    expect(rx.to('/b')[0]!.headers['threshold-event-id']).toBe(idB);
    checkSigned(rx.to('/b')[0]!, hookB.secret, w.sys.clock.now());
    const rowA = (await w.log(hookA.webhook.id))[0]!;

    // B's list shows B's webhook only.
    const list = await w.call('GET', '/api/carrier/webhooks', w.b.key);
    expect((list.body.webhooks as WebhookView[]).map((h) => h.id)).toEqual([hookB.webhook.id]);

    const before = await w.sys.webhooks.repo.get(hookA.webhook.id);
    const head = await w.auditHead();
    const attempts: [string, string, string, string][] = [
      ['GET', `/api/carrier/webhooks/${hookA.webhook.id}/deliveries`, 'webhook.not-found', 'w'],
      ['POST', `/api/carrier/webhooks/${hookA.webhook.id}/disable`, 'webhook.not-found', 'w'],
      ['POST', `/api/carrier/webhooks/${hookA.webhook.id}/rotate-secret`, 'webhook.not-found', 'w'],
      [
        'POST',
        `/api/carrier/webhook-deliveries/${rowA.id}/resend`,
        'webhook.delivery-not-found',
        'd',
      ],
    ];
    for (const [method, path, code] of attempts) {
      const r = await w.call(method, path, w.b.key);
      expect([r.status, r.body.error?.code], `${method} ${path}`).toEqual([404, code]);
      expect(r.text).not.toContain(w.a.id);
      // An unknown id answers the very same.
      const unknown = await w.call(
        method,
        path.replace(hookA.webhook.id, 'whk-unknown').replace(rowA.id, 'whd-unknown'),
        w.b.key,
      );
      expect([unknown.status, unknown.body]).toEqual([r.status, r.body]);
    }
    const denied = (await w.auditAfter(head)).filter((e) => e.kind === 'auth.object-denied');
    expect(denied.map((e) => [e.actor, e.subject])).toEqual(
      attempts.map(([, , , what]) => [
        { type: 'principal', id: `apikey:${w.b.keyId}` },
        what === 'w' ? `webhook:${hookA.webhook.id}` : `webhook-delivery:${rowA.id}`,
      ]),
    );
    // Nothing of A's changed, and nothing more was sent.
    expect(await w.sys.webhooks.repo.get(hookA.webhook.id)).toEqual(before);
    expect(await w.log(hookA.webhook.id)).toHaveLength(1);
    await pause(200);
    expect(rx.to('/a')).toHaveLength(1);
    expect(rx.to('/b')).toHaveLength(1);
    for (const [hook, key] of [
      [hookA, w.a.key],
      [hookB, w.b.key],
    ] as const)
      await w.call('POST', `/api/carrier/webhooks/${hook.webhook.id}/disable`, key);
  });

  it('refuses bad registrations with a clear 4xx and stores nothing', async () => {
    const before = await w.webhookRows();
    const bad: [unknown, number, string][] = [
      [{ url: `${rx.origin}/${'x'.repeat(2048)}` }, 400, 'request.invalid'],
      [{ url: '' }, 400, 'request.invalid'],
      [{ url: 42 }, 400, 'request.invalid'],
      [{}, 400, 'request.invalid'],
      [{ url: `${rx.origin}/x`, secret: 'mine' }, 400, 'request.invalid'],
      [{ url: `${rx.origin}/x`, events: [] }, 400, 'request.invalid'],
      [{ url: `${rx.origin}/x`, events: ['delivery.lost'] }, 400, 'request.invalid'],
      [
        { url: `${rx.origin}/x`, events: ['delivery.created', 'delivery.created'] },
        400,
        'request.invalid',
      ],
      [{ url: `${rx.origin}/x`, events: ['*', 'delivery.created'] }, 400, 'request.invalid'],
      [{ url: 'not a url' }, 400, 'webhook.url-refused'],
      [{ url: 'ftp://127.0.0.1/x' }, 400, 'webhook.url-refused'],
      [{ url: 'http://user:pw@127.0.0.1/x' }, 400, 'webhook.url-refused'],
    ];
    for (const [json, status, code] of bad) {
      const r = await w.call('POST', '/api/carrier/webhooks', w.a.key, json);
      expect([r.status, r.body.error?.code], JSON.stringify(json).slice(0, 80)).toEqual([
        status,
        code,
      ]);
      expect(r.body.error?.message.length).toBeGreaterThan(10);
    }
    const limit = await w.call('GET', '/api/carrier/webhooks/whk-x/deliveries?limit=0', w.a.key);
    expect([limit.status, limit.body.error?.code]).toEqual([400, 'request.invalid']);
    const word = await w.call('GET', '/api/carrier/webhooks/whk-x/deliveries?limit=ten', w.a.key);
    expect([word.status, word.body.error?.code]).toEqual([400, 'request.invalid']);
    const badId = await w.call('POST', '/api/carrier/webhooks/WHK_X/disable', w.a.key);
    expect([badId.status, badId.body.error?.code]).toEqual([400, 'request.invalid']);
    expect(await w.webhookRows()).toBe(before);

    // Without credentials, as someone who is not a carrier, or with a key lacking the scope.
    const none = await w.call('POST', '/api/carrier/webhooks', null, { url: `${rx.origin}/x` });
    expect([none.status, none.body.error?.code]).toEqual([401, 'auth.required']);
    const owner = await w.call('POST', '/api/auth/sign-in', null, w.creds.owner);
    const asOwner = await w.call('GET', '/api/carrier/webhooks', String(owner.body.token));
    expect([asOwner.status, asOwner.body.error?.code]).toEqual([403, 'auth.forbidden']);
    const readOnly = await w.sys.auth.createApiKey(w.a.id, { scopes: ['deliveries:read'] });
    const scoped = await w.call('POST', '/api/carrier/webhooks', readOnly.key, {
      url: `${rx.origin}/x`,
    });
    expect([scoped.status, scoped.body.error?.code]).toEqual([403, 'auth.forbidden']);
    expect(await w.webhookRows()).toBe(before);
  });

  it('allows at most 10 active webhooks per carrier', async () => {
    const active = (await w.sys.webhooks.repo.activeForCarrier(w.a.id)).length;
    const made: string[] = [];
    for (let i = active; i < 10; i++)
      made.push((await w.register(`${rx.origin}/n${i}`)).webhook.id);
    const rows = await w.webhookRows();
    const r = await w.call('POST', '/api/carrier/webhooks', w.a.key, { url: `${rx.origin}/n10` });
    expect([r.status, r.body.error?.code]).toEqual([409, 'webhook.limit-reached']);
    expect(await w.webhookRows()).toBe(rows);
    // B has its own ten.
    const b = await w.register(`${rx.origin}/b-own`, undefined, w.b.key);
    for (const id of made) await w.call('POST', `/api/carrier/webhooks/${id}/disable`, w.a.key);
    await w.call('POST', `/api/carrier/webhooks/${b.webhook.id}/disable`, w.b.key);
  });
});

describe('webhooks under production rules', () => {
  let w: World;
  const counter = new ConnectionCounter();

  beforeAll(async () => {
    await counter.start();
    w = await World.start({});
  }, 30_000);

  afterAll(async () => {
    await w?.close();
    await counter.stop();
  });

  /** This machine's name, which resolves to one of its own (non-public) addresses. */
  async function localName(): Promise<string> {
    const name = hostname();
    const addresses = await lookup(name, { all: true });
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.every((a) => isNonPublicAddress(a.address))).toBe(true);
    return name;
  }

  it('refuses http:, this machine, private, loopback and link-local hosts, and names resolving to them', async () => {
    const before = await w.webhookRows();
    const name = await localName();
    for (const url of [
      'http://hooks.parcelco.invalid/threshold',
      'https://127.0.0.1/hook',
      'https://10.0.0.7/hook',
      'https://192.168.1.1/hook',
      'https://169.254.169.254/latest/meta-data/',
      'https://[::1]/hook',
      'https://[fe80::1]/hook',
      'https://[::ffff:127.0.0.1]/hook',
      'https://2130706433/hook',
      'https://localhost/hook',
      'https://localhost./hook',
      'https://api.localhost/hook',
      `https://${name}/hook`,
      `https://${name}:${counter.port}/hook`,
    ]) {
      const r = await w.call('POST', '/api/carrier/webhooks', w.a.key, { url });
      expect([r.status, r.body.error?.code], url).toEqual([400, 'webhook.url-refused']);
      expect(r.body.error?.message).toMatch(/^The webhook URL must be/);
    }
    expect(await w.webhookRows()).toBe(before);
    expect(counter.connections).toBe(0);
  });

  it('takes an https: URL of a public host', async () => {
    // `.invalid` never resolves: accepted now, checked again at each attempt.
    const made = await w.register('https://hooks.parcelco.invalid/threshold?team=ops');
    expect(made.webhook.url).toBe('https://hooks.parcelco.invalid/threshold?team=ops');
    await w.call('POST', `/api/carrier/webhooks/${made.webhook.id}/disable`, w.a.key);
  });

  it('never calls a stored webhook that now points at this machine (DNS rebinding, changed rules)', async () => {
    const name = await localName();
    // Stored as if accepted earlier: under other rules, or while the name still pointed out.
    const store = async (url: string): Promise<string> => {
      const id = `whk-${randomUUID()}`;
      await w.sys.webhooks.repo.createWithin(
        {
          id,
          carrierId: w.a.id,
          url,
          secretSalt: w.sys.webhooks.newSalt(),
          events: ['*'],
          createdAt: w.sys.clock.now(),
          createdBy: 'test',
          disabledAt: null,
        },
        10,
      );
      return id;
    };
    const rebound = await store(`https://${name}:${counter.port}/hook`);
    const literal = await store(`http://127.0.0.1:${counter.port}/hook`);
    await w.event('a', 'delivery.created', 'scheduled');
    await waitUntil(
      async () =>
        (await w.log(rebound))[0]?.attempts === 1 && (await w.log(literal))[0]?.status === 'failed',
      'both were tried',
    );
    await w.sys.webhooks.idle();
    expect(counter.connections).toBe(0);
    // The name's answer is refused at connection time; the carrier is not told the address.
    expect((await w.log(rebound))[0]).toMatchObject({
      status: 'pending',
      lastStatusCode: null,
      lastError:
        'The host resolves to a private, loopback or link-local address; it was not called.',
    });
    // A literal private address is never tried at all.
    expect((await w.log(literal))[0]).toMatchObject({
      status: 'failed',
      attempts: 0,
      lastError: 'The webhook URL must be an https: URL.',
    });
    for (const id of [rebound, literal])
      await w.call('POST', `/api/carrier/webhooks/${id}/disable`, w.a.key);
  });
});

describe('webhooks with a short timeout', () => {
  it('counts an answer that does not come in time as a failed attempt, and sends again', async () => {
    const rx = new Receiver();
    await rx.start();
    const w = await World.start({
      clock: new FakeClock(),
      allowInsecurePushEndpoints: true,
      webhookTiming: { timeoutMs: 300 },
    });
    try {
      const hook = await w.register(`${rx.origin}/slow`);
      rx.hang.add('/slow');
      await w.event('a', 'delivery.created', 'scheduled');
      await waitUntil(
        async () => (await w.log(hook.webhook.id))[0]?.attempts === 1,
        'the attempt timed out',
      );
      expect((await w.log(hook.webhook.id))[0]).toMatchObject({
        status: 'pending',
        lastStatusCode: null,
        lastError: 'no answer within 300 ms',
        nextAttemptAt: w.sys.clock.now() + 10_000,
      });
      rx.hang.delete('/slow');
      w.clock.advance(10_000);
      await waitUntil(
        async () => (await w.log(hook.webhook.id))[0]?.status === 'delivered',
        'the retry was answered',
      );
      expect(rx.to('/slow')).toHaveLength(2);
    } finally {
      await w.close();
      await rx.stop();
    }
  });
});

describe('webhooks across a restart', () => {
  it('resumes pending deliveries: the due ones at once, the others when due, same secret', async () => {
    const rx = new Receiver();
    await rx.start();
    const start = 1_768_478_400_000;
    let w = await World.start({ clock: new FakeClock(start), allowInsecurePushEndpoints: true });
    try {
      const hook = await w.register(`${rx.origin}/restart`);
      rx.always.set('/restart', 500);
      const e1 = await w.event('a', 'delivery.created', 'scheduled');
      await waitUntil(() => rx.to('/restart').length === 1, 'e1 tried');
      w.clock.advance(5_000);
      const e2 = await w.event('a', 'delivery.assigned', 'scheduled');
      await waitUntil(() => rx.to('/restart').length === 2, 'e2 tried');
      await w.sys.webhooks.idle();
      expect((await w.log(hook.webhook.id)).map((d) => d.nextAttemptAt)).toEqual([
        start + 15_000,
        start + 10_000,
      ]);
      await w.close(false);

      // Back 12 s after the first attempt: e1 is due, e2 not yet.
      rx.always.delete('/restart');
      w = await World.start(
        {
          dataDir: w.dataDir,
          clock: new FakeClock(start + 12_000),
          allowInsecurePushEndpoints: true,
        },
        w,
      );
      await waitUntil(() => rx.to('/restart').length === 3, 'e1 resent at start');
      await pause(300);
      expect(rx.to('/restart')).toHaveLength(3);
      expect(rx.to('/restart')[2]!.headers['threshold-event-id']).toBe(e1);
      w.clock.advance(3_000);
      await waitUntil(() => rx.to('/restart').length === 4, 'e2 resent when due');
      await w.sys.webhooks.idle();
      const e2Hit = rx.to('/restart')[3]!;
      expect(e2Hit.headers['threshold-event-id']).toBe(e2);
      // The secret is derived, not stored: the same after a restart.
      for (const hit of rx.to('/restart').slice(2)) checkSigned(hit, hook.secret, start + 15_000);
      expect((await w.log(hook.webhook.id)).map((d) => [d.eventId, d.status, d.attempts])).toEqual([
        [e2, 'delivered', 2],
        [e1, 'delivered', 2],
      ]);
    } finally {
      await w.close();
      await rx.stop();
    }
  });
});

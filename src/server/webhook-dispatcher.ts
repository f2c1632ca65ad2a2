/**
 * Carrier webhooks: every delivery event is posted, signed, to each active webhook of the
 * delivery's carrier that wants its type, retried with exponential backoff until answered 2xx,
 * and logged row by row in `webhook_deliveries` (see webhook-repository.ts).
 *
 * - **Signature** (Stripe-style): `threshold-signature: t=<unix seconds>,v1=<hex>` where the
 *   hex is HMAC-SHA256 keyed with the webhook's secret (the whole `whsec_…` string, UTF-8) over
 *   `"<t>.<raw body>"`. Receivers recompute it and refuse a `t` older than 5 minutes, so a
 *   captured request cannot be replayed later. Each attempt is signed afresh, with the secret
 *   the webhook has at that moment.
 * - **Secrets are never stored**: a webhook's secret is HMAC-SHA256 of its random salt under a
 *   key derived from the server's master key; rotating the secret means a new salt.
 * - **Delivery**: at least once. The row (and the exact body) is stored before the first
 *   attempt; each attempt's outcome is recorded; retries wait 10 s, 20 s, 40 s… (capped at 1 h)
 *   up to 12 attempts, then the row is `failed`. Waits run on the {@link Clock}, and a restart
 *   picks up every pending row that is due.
 * - **Bounded**: at most `maxInFlight` requests at once and `maxQueued` waiting in memory; rows
 *   beyond stay pending in the database and are taken up as the queue drains. Each exchange
 *   must end within the timeout (10 s). A redirect is not followed; at most a short, clipped
 *   piece of an answer is kept, as the error.
 * - **SSRF**: in production a webhook is an https: URL of a public host, checked when it is
 *   registered and again at each attempt, DNS answer included (a name re-pointed inside later
 *   is refused at that moment). `allowInsecureEndpoints` lifts this for tests and local
 *   development.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../core/clock.ts';
import type { WebhookPayload } from '../protocol/views.ts';
import type { DeliveryEvent } from '../store/delivery-event-repository.ts';
import type {
  StoredWebhook,
  StoredWebhookDelivery,
  WebhookAttemptOutcome,
  WebhookRepository,
} from '../store/webhook-repository.ts';
import type { DeliveryEventLog } from './delivery-events.ts';
import {
  nonPublicAddressOf,
  publicEndpointProblem,
  publicOnlyLookupFor,
} from './public-endpoint.ts';

/** The header carrying the signature. */
export const WEBHOOK_SIGNATURE_HEADER = 'threshold-signature';
/** The User-Agent of every webhook request. */
export const WEBHOOK_USER_AGENT = 'Threshold-Webhooks/1';
/** How old a signature's `t` a receiver should accept at most, s. */
export const WEBHOOK_SIGNATURE_TOLERANCE_S = 300;
/** Active webhooks one carrier may have. */
export const MAX_WEBHOOKS_PER_CARRIER = 10;
/** Longest webhook URL, characters. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;
/** What a secret starts with. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

/** When attempts are made and given up. */
export interface WebhookTiming {
  /** The whole exchange of one attempt must end within this, ms. Default 10 000. */
  readonly timeoutMs: number;
  /** Wait after the first failed attempt, ms; doubled after each further one. Default 10 000. */
  readonly firstRetryMs: number;
  /** Longest wait between attempts, ms. Default 3 600 000 (1 h). */
  readonly maxRetryMs: number;
  /** Attempts before a delivery is `failed`. Default 12. */
  readonly maxAttempts: number;
}

/** See {@link WebhookTiming}. */
export const DEFAULT_WEBHOOK_TIMING: WebhookTiming = {
  timeoutMs: 10_000,
  firstRetryMs: 10_000,
  maxRetryMs: 3_600_000,
  maxAttempts: 12,
};

/** The wait before the next attempt after `attempts` failed ones, ms. */
export function retryDelayMs(attempts: number, timing: WebhookTiming): number {
  return Math.min(timing.maxRetryMs, timing.firstRetryMs * 2 ** Math.max(0, attempts - 1));
}

/** The key all webhook secrets are derived from, from the server's master key. */
export function webhookSigningKey(masterKey: Uint8Array): Buffer {
  return createHmac('sha256', masterKey).update('threshold/webhook-signing-key').digest();
}

/** The value of {@link WEBHOOK_SIGNATURE_HEADER} for `body` signed at `tSeconds`. */
export function webhookSignature(secret: string, tSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${tSeconds}.${body}`).digest('hex');
  return `t=${tSeconds},v1=${mac}`;
}

/** Counters for /api/stats. */
export interface WebhookStats {
  /** Delivery events that led to at least one webhook request. */
  readonly events: number;
  /** Attempts answered 2xx. */
  readonly delivered: number;
  /** Attempts that failed (and will be retried or were the last). */
  readonly failedAttempts: number;
  /** Deliveries given up after their last attempt. */
  readonly givenUp: number;
  readonly inFlight: number;
  readonly queued: number;
}

/** Where the dispatcher logs (pino-compatible). */
export type WebhookLogger = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;

/** What the dispatcher needs. */
export interface WebhookDispatcherOptions {
  readonly repo: WebhookRepository;
  /** The delivery events it posts. */
  readonly deliveryEvents: Pick<DeliveryEventLog, 'subscribe'>;
  /** The delivery as the carrier API shows it, for the payload; null if it is gone. */
  readonly deliveryView: (deliveryId: string) => Promise<object | null>;
  readonly clock: Clock;
  /** The server's master key; only a key derived from it is kept. */
  readonly masterKey: Uint8Array;
  readonly logger?: WebhookLogger;
  /** Accept http: URLs and private, loopback and link-local hosts (tests, local development). */
  readonly allowInsecureEndpoints?: boolean;
  readonly timing?: Partial<WebhookTiming>;
  /** Requests at the same time; default 8. */
  readonly maxInFlight?: number;
  /** Deliveries waiting in memory; beyond, they wait in the database. Default 1000. */
  readonly maxQueued?: number;
}

/** The largest part of an answer read (for the error), bytes. */
const MAX_ANSWER_BYTES = 1024;
/** The longest error kept in the log, characters. */
const MAX_ERROR_CHARS = 300;
/** The error code of a lookup refused by the public-only guard. */
const NON_PUBLIC_CODE = 'ENONPUBLIC';
const publicOnlyLookup = publicOnlyLookupFor(NON_PUBLIC_CODE);

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** Posts one body; resolves with the answer's status and its first bytes, rejects on none. */
function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  publicOnly: boolean,
  signal: AbortSignal,
): Promise<Answer> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<Answer>((resolve, reject) => {
    const req = transport.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        signal,
        // http.request never follows a redirect: a 3xx is an answer like any other.
        ...(publicOnly ? { lookup: publicOnlyLookup } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        const done = (): void =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk.subarray(0, MAX_ANSWER_BYTES - kept));
          kept += Math.min(chunk.length, MAX_ANSWER_BYTES - kept);
          // Enough read: the rest of a large answer is not waited for.
          if (kept >= MAX_ANSWER_BYTES) {
            done();
            res.destroy();
          }
        });
        res.on('end', done);
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}

/** Printable, one line, at most {@link MAX_ERROR_CHARS}. */
function clipError(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return line.length <= MAX_ERROR_CHARS ? line : `${line.slice(0, MAX_ERROR_CHARS - 1)}…`;
}

/** Why an attempt got no answer, for the carrier's log (never a resolved private address). */
function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === NON_PUBLIC_CODE) {
    return 'The host resolves to a private, loopback or link-local address; it was not called.';
  }
  return e instanceof Error ? e.message : String(err);
}

/** See the module comment. */
export class WebhookDispatcher {
  private readonly timing: WebhookTiming;
  private readonly signingKey: Buffer;
  private readonly allowInsecure: boolean;
  private readonly maxInFlight: number;
  private readonly maxQueued: number;
  /** Delivery ids queued, in order. */
  private readonly queue: string[] = [];
  /** Delivery ids queued or being sent: never taken up twice. */
  private readonly active = new Set<string>();
  private readonly aborts = new Set<AbortController>();
  private inFlight = 0;
  /** Due rows may have been left in the database for lack of room in the queue. */
  private backlog = false;
  private sweeping: Promise<void> | null = null;
  private timer: { at: number; cancel: () => void } | null = null;
  /** Events are turned into rows one after the other, in the order they were published. */
  private chain: Promise<void> = Promise.resolve();
  private idleWaiters: (() => void)[] = [];
  private unsubscribe: (() => void) | null = null;
  private stopped = false;
  private counts = { events: 0, delivered: 0, failedAttempts: 0, givenUp: 0 };
  private pendingWork = 0;

  constructor(private readonly o: WebhookDispatcherOptions) {
    this.timing = { ...DEFAULT_WEBHOOK_TIMING, ...o.timing };
    this.signingKey = webhookSigningKey(o.masterKey);
    this.allowInsecure = o.allowInsecureEndpoints ?? false;
    this.maxInFlight = o.maxInFlight ?? 8;
    this.maxQueued = o.maxQueued ?? 1_000;
  }

  /** The store of webhooks and their log. */
  get repo(): WebhookRepository {
    return this.o.repo;
  }

  /** Whether http: and local hosts are accepted (tests, local development). */
  get insecureEndpointsAllowed(): boolean {
    return this.allowInsecure;
  }

  /** Listens to delivery events and takes up every pending delivery already due. */
  start(): Promise<void> {
    if (this.unsubscribe !== null || this.stopped) return Promise.resolve();
    this.unsubscribe = this.o.deliveryEvents.subscribe((e) => this.onEvent(e));
    return this.sweep();
  }

  /**
   * Stops: no more events, timers or new attempts; attempts under way are abandoned (their
   * rows stay pending, so the next start sends them again). Resolves once nothing runs.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.timer?.cancel();
    this.timer = null;
    for (const id of this.queue) this.active.delete(id);
    this.queue.length = 0;
    for (const a of this.aborts) a.abort();
    await this.chain;
    await this.idle();
  }

  /** Resolves once no event is being handled and nothing is queued or being sent. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counters since start. */
  stats(): WebhookStats {
    return { ...this.counts, inFlight: this.inFlight, queued: this.queue.length };
  }

  /** The timing in force. */
  get timings(): WebhookTiming {
    return this.timing;
  }

  /** Why `url` may not be a webhook under this dispatcher's rules (its text alone), or null. */
  endpointProblem(url: string): string | null {
    if (url.length > MAX_WEBHOOK_URL_LENGTH)
      return `The webhook URL must be at most ${MAX_WEBHOOK_URL_LENGTH} characters.`;
    return publicEndpointProblem(url, this.allowInsecure, {
      what: 'The webhook URL',
      publicWhat: 'a public host',
    });
  }

  /**
   * {@link endpointProblem}, and in production whether the host resolves to a non-public
   * address now (a name that does not resolve yet is accepted: each attempt checks again).
   */
  async registrationProblem(url: string): Promise<string | null> {
    const problem = this.endpointProblem(url);
    if (problem !== null || this.allowInsecure) return problem;
    const bad = await nonPublicAddressOf(new URL(url).hostname);
    return bad === null
      ? null
      : 'The webhook URL must be a public host: its name resolves to a private, loopback or link-local address.';
  }

  /** A new random salt for a webhook's secret. */
  newSalt(): string {
    return randomBytes(16).toString('base64url');
  }

  /** The signing secret of the webhook with this salt (`whsec_…`). */
  secretFor(salt: string): string {
    const mac = createHmac('sha256', this.signingKey).update(`threshold/webhook/${salt}`).digest();
    return `${WEBHOOK_SECRET_PREFIX}${mac.toString('base64url')}`;
  }

  /**
   * Registers a webhook for a carrier (the URL must have passed {@link registrationProblem}).
   * Returns it with its secret, or null when the carrier already has
   * {@link MAX_WEBHOOKS_PER_CARRIER} active ones.
   */
  async register(input: {
    carrierId: string;
    url: string;
    events: readonly string[];
    createdBy: string;
  }): Promise<{ webhook: StoredWebhook; secret: string } | null> {
    const webhook: StoredWebhook = {
      id: `whk-${randomUUID()}`,
      carrierId: input.carrierId,
      url: input.url,
      secretSalt: this.newSalt(),
      events: input.events,
      createdAt: this.o.clock.now(),
      createdBy: input.createdBy,
      disabledAt: null,
    };
    if (!(await this.o.repo.createWithin(webhook, MAX_WEBHOOKS_PER_CARRIER))) return null;
    return { webhook, secret: this.secretFor(webhook.secretSalt) };
  }

  /** Gives an active webhook a new secret; returns it, or null if the webhook is disabled. */
  async rotateSecret(webhookId: string): Promise<string | null> {
    const salt = this.newSalt();
    return (await this.o.repo.setSecretSalt(webhookId, salt)) ? this.secretFor(salt) : null;
  }

  /** Disables a webhook and gives up its pending deliveries; false if it already was. */
  disable(webhookId: string): Promise<boolean> {
    return this.o.repo.disable(webhookId, this.o.clock.now(), 'The webhook was disabled.');
  }

  /**
   * Sends a logged delivery again: a new log row with the same event and the very same body,
   * sent now (signed afresh), while the original row keeps its own history. Null if its webhook
   * is disabled.
   */
  async resend(original: StoredWebhookDelivery): Promise<StoredWebhookDelivery | null> {
    const hook = await this.o.repo.get(original.webhookId);
    if (!hook || hook.disabledAt !== null) return null;
    const now = this.o.clock.now();
    const row: StoredWebhookDelivery = {
      ...original,
      id: `whd-${randomUUID()}`,
      status: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      lastStatusCode: null,
      lastError: null,
      createdAt: now,
      deliveredAt: null,
    };
    await this.o.repo.insertDeliveries([row]);
    this.enqueue([row.id]);
    return row;
  }

  private isIdle(): boolean {
    return (
      this.pendingWork === 0 && this.inFlight === 0 && this.queue.length === 0 && !this.sweeping
    );
  }

  private settle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Tracks background work so {@link idle} waits for it; its errors are logged here. */
  private track(what: string, work: () => Promise<void>): Promise<void> {
    this.pendingWork += 1;
    return work()
      .catch((err: unknown) => this.o.logger?.error({ err }, `webhooks: ${what} failed`))
      .finally(() => {
        this.pendingWork -= 1;
        this.settle();
      });
  }

  private onEvent(e: DeliveryEvent): void {
    if (this.stopped) return;
    // The event log calls us synchronously; rows are made in publication order, off its path.
    this.chain = this.chain.then(() => this.track('event', () => this.rowsFor(e)));
  }

  /** Makes the log rows of one event (one per interested webhook) and queues them. */
  private async rowsFor(e: DeliveryEvent): Promise<void> {
    const hooks = (await this.o.repo.activeForCarrier(e.carrierId)).filter(
      (h) => h.events.includes('*') || h.events.includes(e.type),
    );
    if (hooks.length === 0) return;
    const payload: WebhookPayload = {
      id: e.id,
      type: e.type,
      createdAt: e.at,
      data: {
        // Plain JSON data (the carrier API's own view of it).
        delivery: (await this.o.deliveryView(e.deliveryId)) as WebhookPayload['data']['delivery'],
        event: { seq: e.seq, status: e.status, at: e.at, data: e.data },
      },
    };
    const body = JSON.stringify(payload);
    const now = this.o.clock.now();
    const rows: StoredWebhookDelivery[] = hooks.map((h) => ({
      id: `whd-${randomUUID()}`,
      webhookId: h.id,
      carrierId: e.carrierId,
      eventId: e.id,
      eventType: e.type,
      payload: body,
      status: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      lastStatusCode: null,
      lastError: null,
      createdAt: now,
      deliveredAt: null,
    }));
    await this.o.repo.insertDeliveries(rows);
    this.counts.events += 1;
    if (!this.stopped) this.enqueue(rows.map((r) => r.id));
  }

  /** Queues deliveries to send now; those beyond the queue's room wait in the database. */
  private enqueue(ids: readonly string[]): void {
    for (const id of ids) {
      if (this.stopped || this.active.has(id)) continue;
      if (this.queue.length >= this.maxQueued) {
        this.backlog = true;
        continue;
      }
      this.queue.push(id);
      this.active.add(id);
    }
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const id = this.queue.shift()!;
      this.inFlight += 1;
      this.attempt(id)
        .catch((err: unknown) =>
          this.o.logger?.error({ err, webhookDeliveryId: id }, 'webhooks: attempt not recorded'),
        )
        .finally(() => {
          this.inFlight -= 1;
          this.active.delete(id);
          this.pump();
          if (this.queue.length === 0 && this.backlog && !this.stopped) void this.sweep();
          this.settle();
        });
    }
  }

  /**
   * Queues every pending delivery that is due (as many as the queue has room for), then sets
   * the timer for the next one due later. One sweep at a time.
   */
  private sweep(): Promise<void> {
    if (this.sweeping) return this.sweeping;
    this.sweeping = this.track('sweep', async () => {
      if (this.stopped) return;
      this.backlog = false;
      const room = this.maxQueued - this.queue.length;
      const now = this.o.clock.now();
      if (room > 0) {
        const due = await this.o.repo.due(now, room, this.active);
        if (due.length === room) this.backlog = true;
        this.enqueue(due.map((d) => d.id));
      } else {
        this.backlog = true;
      }
      const next = await this.o.repo.nextDueAfter(now);
      if (next !== null) this.wakeAt(next);
    }).finally(() => {
      this.sweeping = null;
      this.settle();
    });
    return this.sweeping;
  }

  /** Makes sure a sweep runs at `at` (or earlier). */
  private wakeAt(at: number): void {
    if (this.stopped) return;
    if (this.timer !== null && this.timer.at <= at) return;
    this.timer?.cancel();
    const cancel = this.o.clock.schedule(at, () => {
      if (this.timer?.cancel === cancel) this.timer = null;
      void this.sweep();
    });
    this.timer = { at, cancel };
  }

  /** One attempt of one delivery, and its outcome recorded. */
  private async attempt(id: string): Promise<void> {
    const row = await this.o.repo.getDelivery(id);
    if (!row || row.status !== 'pending' || this.stopped) return;
    const hook = await this.o.repo.get(row.webhookId);
    if (!hook || hook.disabledAt !== null) {
      await this.record(row, null, 'The webhook was disabled.', true);
      return;
    }
    // Stored under other rules (e.g. in development) or tampered with: never called.
    const problem = this.endpointProblem(hook.url);
    if (problem !== null) {
      await this.record(row, null, problem, true);
      return;
    }
    const t = Math.floor(this.o.clock.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': WEBHOOK_USER_AGENT,
      'threshold-webhook-id': hook.id,
      'threshold-event-id': row.eventId,
      'threshold-delivery-id': row.id,
      [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(this.secretFor(hook.secretSalt), t, row.payload),
    };
    const abort = new AbortController();
    this.aborts.add(abort);
    const started = Date.now();
    let answer: Answer | null = null;
    let error: unknown = null;
    try {
      answer = await post(
        new URL(hook.url),
        headers,
        row.payload,
        this.timing.timeoutMs,
        !this.allowInsecure,
        abort.signal,
      );
    } catch (err) {
      error = err;
    } finally {
      this.aborts.delete(abort);
    }
    // Stopped meanwhile: the attempt does not count; the row is sent again after a restart.
    if (this.stopped) return;
    const log = {
      webhookId: hook.id,
      webhookDeliveryId: row.id,
      eventId: row.eventId,
      carrierId: row.carrierId,
      ms: Date.now() - started,
    };
    if (answer !== null && answer.status >= 200 && answer.status < 300) {
      this.counts.delivered += 1;
      this.o.logger?.info({ ...log, status: answer.status }, 'webhook delivered');
      await this.o.repo.recordAttempt(row.id, {
        status: 'delivered',
        attempts: row.attempts + 1,
        nextAttemptAt: null,
        lastStatusCode: answer.status,
        lastError: null,
        deliveredAt: this.o.clock.now(),
      });
      return;
    }
    let why: string;
    if (answer === null) why = errorText(error);
    else if (answer.status >= 300 && answer.status < 400)
      why = `HTTP ${answer.status}: redirects are not followed`;
    else why = `HTTP ${answer.status}${answer.body.trim() ? `: ${answer.body}` : ''}`;
    this.counts.failedAttempts += 1;
    this.o.logger?.warn(
      { ...log, status: answer?.status, error: clipError(why) },
      'webhook failed',
    );
    await this.record(row, answer?.status ?? null, why, false);
  }

  /** Records a failed attempt: a retry later, or `failed` after the last (or a final reason). */
  private async record(
    row: StoredWebhookDelivery,
    status: number | null,
    why: string,
    final: boolean,
  ): Promise<void> {
    const attempts = final ? row.attempts : row.attempts + 1;
    const last = final || attempts >= this.timing.maxAttempts;
    const now = this.o.clock.now();
    const outcome: WebhookAttemptOutcome = {
      status: last ? 'failed' : 'pending',
      attempts,
      nextAttemptAt: last ? null : now + retryDelayMs(attempts, this.timing),
      lastStatusCode: status,
      lastError: clipError(why),
      deliveredAt: null,
    };
    if (!(await this.o.repo.recordAttempt(row.id, outcome))) return;
    if (last) {
      this.counts.givenUp += 1;
      this.o.logger?.warn(
        { webhookId: row.webhookId, webhookDeliveryId: row.id, attempts },
        'webhook delivery given up',
      );
    } else if (outcome.nextAttemptAt !== null) {
      this.wakeAt(outcome.nextAttemptAt);
    }
  }
}

/**
 * Web Push for alarms: the owner's and household members' browsers get a notification for every
 * session alarm of their home ("Camera offline at Front door") and when a courier waits for an
 * "ask me first" answer, even with no Threshold page open.
 *
 * The notifier listens to the in-process {@link EventBus} and never slows or breaks it: the
 * listener only starts work, sends run at most {@link PushNotifierOptions.maxInFlight} at a
 * time from a bounded queue, and every failure is counted and logged, never thrown. Each push
 * is logged (not audited: one alarm can mean many pushes); subscriptions the notifier drops
 * are audited.
 *
 * Messages are encrypted and VAPID-signed by the `web-push` package (`generateRequestDetails`,
 * with the options `sendNotification` takes) and posted by this file. `sendNotification` itself
 * speaks only https and resolves host names on its own; posting here lets us (a) bound the
 * whole exchange, not only socket idleness, (b) check in production that the push service's
 * host does not resolve to a private address (the endpoint came from a browser, so it is
 * untrusted: SSRF), and (c) reach a plain-http push service in tests and local development.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { FastifyBaseLogger } from 'fastify';
import webPush, { type RequestDetails } from 'web-push';
import type { AlarmType, SessionAlarm } from '../core/access-session.ts';
import type { Clock } from '../core/clock.ts';
import type { EntryView } from '../protocol/views.ts';
import type { HomeRepository, SessionRepository } from '../store/index.ts';
import type {
  PushSubscriptionRepository,
  StoredPushSubscription,
} from '../store/push-subscription-repository.ts';
import type { AuditLog } from './audit-log.ts';
import type { EventBus, ServerEvent } from './event-bus.ts';
import {
  isNonPublicAddress,
  publicEndpointProblem,
  publicOnlyLookupFor,
  type LookupFunction,
} from './public-endpoint.ts';
import type { VapidKeys } from './vapid-keys.ts';

/** What a notification carries (the service worker shows `title` and `body`). JSON. */
export interface PushPayload {
  readonly title: string;
  readonly body: string;
  /** Same tag, same notification: a repeat replaces the one on screen. */
  readonly tag: string;
  /** Where a tap leads, same origin. */
  readonly url: string;
  readonly homeId: string;
  /** The access session it is about; null for notices and for entries without one (keypads). */
  readonly sessionId: string | null;
  /** The alarm, or null for "a courier is waiting for your answer", entries and notices. */
  readonly alarmType: AlarmType | null;
}

/** Counters for /api/stats. Every push is counted once: sent, gone, failed or dropped. */
export interface PushStats {
  /** Events that led to pushes (alarms, couriers waiting for an answer, entries, notices). */
  readonly events: number;
  /** Pushes the push service accepted (2xx). */
  readonly sent: number;
  /** Pushes answered 404/410: the browser unsubscribed; the subscription was removed. */
  readonly gone: number;
  /** Pushes refused otherwise, or that got no answer in time. */
  readonly failed: number;
  /** Pushes never sent: queue full, endpoint no longer allowed, or shutting down. */
  readonly dropped: number;
  /** Subscriptions removed after too many consecutive failures. */
  readonly removedAfterFailures: number;
  readonly inFlight: number;
  readonly queued: number;
}

/** Where the notifier logs (pino-compatible). */
export type PushLogger = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;

export interface PushNotifierOptions {
  readonly events: EventBus;
  readonly subscriptions: PushSubscriptionRepository;
  /** To name the door and use the home's time zone in the text. */
  readonly homes: Pick<HomeRepository, 'getHome' | 'getDoor'>;
  /** To find the door of an alarm's session. */
  readonly sessions: Pick<SessionRepository, 'get'>;
  readonly vapid: VapidKeys;
  readonly clock: Clock;
  /** Records subscriptions the notifier removes. */
  readonly audit?: Pick<AuditLog, 'append'>;
  readonly logger?: PushLogger;
  /**
   * Accept `http:` endpoints and private, loopback and link-local hosts. Tests and local
   * development only: in production an endpoint must be a public https: URL.
   */
  readonly allowInsecureEndpoints?: boolean;
  /** Sends at the same time; default 8. */
  readonly maxInFlight?: number;
  /** Pushes waiting beyond this are dropped; default 1000. */
  readonly maxQueued?: number;
  /** The whole exchange with the push service must end within this, ms; default 5000. */
  readonly timeoutMs?: number;
  /** Consecutive failures after which a subscription is removed; default 5. */
  readonly maxFailures?: number;
  /**
   * Who is told of an entry ("who unlocked"): principal ids; only their subscriptions get it.
   * Without it entries are not pushed.
   */
  readonly entryWatchers?: (entry: EntryView, homeId: string) => Promise<ReadonlySet<string>>;
  /** The page a tap on a session's notification opens; default `/sessions/<id>`. */
  readonly sessionUrl?: (sessionId: string) => string;
}

/** How long a push service keeps an undelivered alarm, s: later, it is old news. */
export const PUSH_TTL_S = 300;

const ALARM_TITLE: Record<AlarmType, (door: string) => string> = {
  'observation-lost': (d) => `Camera offline at ${d}`,
  'observation-frozen': (d) => `Camera picture frozen at ${d}`,
  'observation-forged': (d) => `Fake camera messages at ${d}`,
  'door-left-open': (d) => `${d} left open`,
  'lock-jammed': (d) => `Lock jammed at ${d}`,
  'lock-unconfirmed': (d) => `Lock not confirmed at ${d}`,
  'lock-state-mismatch': (d) => `Lock and door sensor disagree at ${d}`,
  'session-overrun': (d) => `${d} unlocked too long`,
  'unexpected-entry': (d) => `Unexpected entry at ${d}`,
};

/** The title of a notice's notification (the hub acted on its own, a keypad lockout, …). */
export const NOTICE_TITLE = 'Threshold: check your door';

/** The title of the "ask me first" notification. */
export const ASK_OWNER_TITLE = 'Courier at the door: let in or leave at door?';

/** Whether an IP address (v4 or v6, no brackets) is private, loopback, link-local or the like. */
export { isNonPublicAddress };

/**
 * Why a browser-given endpoint must not be stored or called, in plain words, or null if it is
 * fine. Production (`allowInsecure` false): an https: URL, no user name or password, and not a
 * local name or a literal private, loopback or link-local address. With `allowInsecure`, http:
 * and local hosts are allowed too.
 */
export function pushEndpointProblem(endpoint: string, allowInsecure: boolean): string | null {
  return publicEndpointProblem(endpoint, allowInsecure, {
    what: 'The push endpoint',
    publicWhat: 'a public push service',
  });
}

/**
 * The DNS lookup of outgoing pushes in production: refuses (error code `EPUSHPRIVATE`) a name
 * that resolves to any non-public address, so a public-looking endpoint whose name points
 * inside (or is re-pointed there later) is never called.
 */
export const publicOnlyLookup: LookupFunction = publicOnlyLookupFor('EPUSHPRIVATE');

/** The largest answer body kept from a push service (for the log), bytes. */
const MAX_ANSWER_BYTES = 2048;

interface PushAnswer {
  readonly status: number;
  readonly body: string;
}

/** Posts one encrypted push; resolves with the push service's answer, rejects on no answer. */
function post(
  details: RequestDetails,
  timeoutMs: number,
  publicOnly: boolean,
): Promise<PushAnswer> {
  const url = new URL(details.endpoint);
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<PushAnswer>((resolve, reject) => {
    const req = transport.request(
      url,
      {
        method: 'POST',
        headers: details.headers,
        // Push services answer directly; a redirect is not followed (http.request never does).
        ...(publicOnly ? { lookup: publicOnlyLookup } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept < MAX_ANSWER_BYTES) {
            chunks.push(chunk.subarray(0, MAX_ANSWER_BYTES - kept));
            kept += Math.min(chunk.length, MAX_ANSWER_BYTES - kept);
          }
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(details.body ?? undefined);
  });
}

interface Job {
  readonly sub: StoredPushSubscription;
  readonly payload: PushPayload;
  readonly ttlS: number;
}

/** Sends Web Push notifications for alarms and "ask me first" sessions. */
export class PushNotifier {
  private readonly maxInFlight: number;
  private readonly maxQueued: number;
  private readonly timeoutMs: number;
  private readonly maxFailures: number;
  private readonly allowInsecure: boolean;
  private readonly queue: Job[] = [];
  private inFlight = 0;
  /** Event handlers still looking up what to send. */
  private preparing = 0;
  private idleWaiters: (() => void)[] = [];
  private unsubscribe: (() => void) | null = null;
  private stopped = false;
  /** Sessions already announced as waiting for the owner (newest last, bounded). */
  private readonly asked = new Set<string>();
  private counts = {
    events: 0,
    sent: 0,
    gone: 0,
    failed: 0,
    dropped: 0,
    removedAfterFailures: 0,
  };

  constructor(private readonly o: PushNotifierOptions) {
    this.maxInFlight = o.maxInFlight ?? 8;
    this.maxQueued = o.maxQueued ?? 1_000;
    this.timeoutMs = o.timeoutMs ?? 5_000;
    this.maxFailures = o.maxFailures ?? 5;
    this.allowInsecure = o.allowInsecureEndpoints ?? false;
  }

  /** The VAPID public key browsers subscribe with (base64url). */
  get publicKey(): string {
    return this.o.vapid.publicKey;
  }

  /** Starts listening to the event bus. */
  start(): void {
    if (this.unsubscribe !== null || this.stopped) return;
    this.unsubscribe = this.o.events.subscribe((e) => this.onEvent(e));
  }

  /**
   * Stops listening, drops what is still queued (counted) and waits for the sends under way,
   * each of which ends within the timeout.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.counts.dropped += this.queue.length;
    this.queue.length = 0;
    await this.idle();
  }

  /** Why `endpoint` may not be subscribed under this notifier's rules, or null. */
  endpointProblem(endpoint: string): string | null {
    return pushEndpointProblem(endpoint, this.allowInsecure);
  }

  /** Resolves once nothing is being prepared, queued or sent. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counters since start. */
  stats(): PushStats {
    return { ...this.counts, inFlight: this.inFlight, queued: this.queue.length };
  }

  private isIdle(): boolean {
    return this.preparing === 0 && this.inFlight === 0 && this.queue.length === 0;
  }

  private settle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private onEvent(e: ServerEvent): void {
    if (this.stopped) return;
    let work: Promise<void> | null = null;
    if (e.type === 'alarm') {
      work = this.onAlarm(e.homeId, e.sessionId, e.alarm);
    } else if (e.type === 'session' && e.session.state === 'awaiting-owner') {
      if (this.asked.has(e.session.id)) return;
      this.asked.add(e.session.id);
      if (this.asked.size > 1_000) {
        const oldest = this.asked.values().next().value;
        if (oldest !== undefined) this.asked.delete(oldest);
      }
      work = this.onAskOwner(e.homeId, e.session.id, e.session.doorId, e.session.deadlineAt);
    } else if (e.type === 'entry' && this.o.entryWatchers) {
      work = this.onEntry(e.homeId, e.entry, this.o.entryWatchers);
    } else if (e.type === 'notice') {
      work = this.onNotice(e.homeId, e.message, e.at);
    }
    if (work === null) return;
    // The bus calls us synchronously; the work goes on without it, and its errors stay here.
    this.preparing += 1;
    work
      .catch((err: unknown) =>
        this.o.logger?.error({ err, event: e.type, homeId: e.homeId }, 'push: event not handled'),
      )
      .finally(() => {
        this.preparing -= 1;
        this.settle();
      });
  }

  private async onAlarm(homeId: string, sessionId: string, alarm: SessionAlarm): Promise<void> {
    const subs = await this.o.subscriptions.listForHome(homeId);
    if (subs.length === 0) return;
    const session = await this.o.sessions.get(sessionId);
    const { door, time } = await this.place(homeId, session?.doorId ?? null);
    const payload: PushPayload = {
      title: clip(ALARM_TITLE[alarm.type](door), 120),
      body: clip(`${alarm.message} since ${time(alarm.sinceMs)}`, 400),
      tag: `alarm:${sessionId}:${alarm.type}`,
      url: this.urlOf(sessionId),
      homeId,
      sessionId,
      alarmType: alarm.type,
    };
    this.enqueue(subs, payload, PUSH_TTL_S);
  }

  private async onAskOwner(
    homeId: string,
    sessionId: string,
    doorId: string,
    deadlineAt: number | null,
  ): Promise<void> {
    const subs = await this.o.subscriptions.listForHome(homeId);
    if (subs.length === 0) return;
    const { door, time } = await this.place(homeId, doorId);
    const answerBy =
      deadlineAt === null
        ? 'Answer soon, or the parcel is left at the door.'
        : `Answer by ${time(deadlineAt)}, or the parcel is left at the door.`;
    const payload: PushPayload = {
      title: ASK_OWNER_TITLE,
      body: clip(`A courier is waiting at ${door}. ${answerBy}`, 400),
      tag: `ask:${sessionId}`,
      url: this.urlOf(sessionId),
      homeId,
      sessionId,
      alarmType: null,
    };
    // After the deadline the question is moot: no push service should deliver it later.
    const leftS =
      deadlineAt === null
        ? PUSH_TTL_S
        : Math.max(0, Math.ceil((deadlineAt - this.o.clock.now()) / 1000));
    this.enqueue(subs, payload, Math.min(PUSH_TTL_S, leftS));
  }

  private async onEntry(
    homeId: string,
    entry: EntryView,
    watchersOf: NonNullable<PushNotifierOptions['entryWatchers']>,
  ): Promise<void> {
    const watchers = await watchersOf(entry, homeId);
    if (watchers.size === 0) return;
    const subs = (await this.o.subscriptions.listForHome(homeId)).filter((s) =>
      watchers.has(s.principalId),
    );
    if (subs.length === 0) return;
    const { time } = await this.place(homeId, null);
    const payload: PushPayload = {
      title: clip(`${entry.doorName} unlocked`, 120),
      body: clip(`${entry.summary} at ${time(entry.at)}.`, 400),
      tag: `entry:${entry.id}`,
      url: entry.sessionId === null ? '/' : this.urlOf(entry.sessionId),
      homeId,
      sessionId: entry.sessionId,
      alarmType: null,
    };
    this.enqueue(subs, payload, PUSH_TTL_S);
  }

  /**
   * Something at the home that needs the household's attention but is no session's alarm: the
   * home hub locked the door on its own (dead-man's switch), ended a visit when it lost the
   * control plane, or could not relock; a keypad lockout; a code Threshold did not write.
   * Pushed to every household subscription of the home, like an alarm. The same message again
   * replaces the one on screen (the tag is the message's digest), so a flapping condition does
   * not stack notifications.
   */
  private async onNotice(homeId: string, message: string, at: number): Promise<void> {
    const subs = await this.o.subscriptions.listForHome(homeId);
    if (subs.length === 0) return;
    const { time } = await this.place(homeId, null);
    const payload: PushPayload = {
      title: NOTICE_TITLE,
      body: clip(`${message} (${time(at)})`, 400),
      tag: `notice:${createHash('sha256').update(message).digest('base64url').slice(0, 16)}`,
      url: '/',
      homeId,
      sessionId: null,
      alarmType: null,
    };
    this.enqueue(subs, payload, PUSH_TTL_S);
  }

  private urlOf(sessionId: string): string {
    return this.o.sessionUrl?.(sessionId) ?? `/sessions/${encodeURIComponent(sessionId)}`;
  }

  /** The door's name and a formatter of times in the home's zone ("12:03:04"). */
  private async place(
    homeId: string,
    doorId: string | null,
  ): Promise<{ door: string; time: (ms: number) => string }> {
    const [home, door] = await Promise.all([
      this.o.homes.getHome(homeId),
      doorId === null ? null : this.o.homes.getDoor(doorId),
    ]);
    return { door: door?.name ?? 'the door', time: timeFormatter(home?.timeZone ?? 'UTC') };
  }

  private enqueue(subs: readonly StoredPushSubscription[], payload: PushPayload, ttlS: number) {
    this.counts.events += 1;
    for (const sub of subs) {
      if (this.queue.length >= this.maxQueued) {
        this.counts.dropped += 1;
        this.o.logger?.warn(
          { subscriptionId: sub.id, tag: payload.tag, queued: this.queue.length },
          'push: queue full, push dropped',
        );
        continue;
      }
      this.queue.push({ sub, payload, ttlS });
    }
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.inFlight += 1;
      this.send(job)
        .catch((err: unknown) =>
          this.o.logger?.error({ err, subscriptionId: job.sub.id }, 'push: send not recorded'),
        )
        .finally(() => {
          this.inFlight -= 1;
          this.pump();
          this.settle();
        });
    }
  }

  private async send(job: Job): Promise<void> {
    const { sub, payload } = job;
    const log = {
      subscriptionId: sub.id,
      homeId: payload.homeId,
      sessionId: payload.sessionId,
      tag: payload.tag,
      pushService: originOf(sub.endpoint),
    };
    // Stored under other rules (e.g. in development) or tampered with: never called.
    const problem = this.endpointProblem(sub.endpoint);
    if (problem !== null) {
      this.counts.dropped += 1;
      this.o.logger?.warn({ ...log, problem }, 'push: endpoint not allowed, push dropped');
      return;
    }
    const started = Date.now();
    let answer: PushAnswer | null = null;
    let error: unknown = null;
    try {
      const details = webPush.generateRequestDetails(
        { endpoint: sub.endpoint, keys: { p256dh: sub.p256dh, auth: sub.auth } },
        JSON.stringify(payload),
        {
          vapidDetails: this.o.vapid,
          TTL: job.ttlS,
          urgency: 'high',
          topic: topicOf(payload.tag),
          timeout: this.timeoutMs,
        },
      );
      answer = await post(details, this.timeoutMs, !this.allowInsecure);
    } catch (err) {
      error = err;
    }
    const ms = Date.now() - started;
    if (answer !== null && answer.status >= 200 && answer.status < 300) {
      this.counts.sent += 1;
      this.o.logger?.info({ ...log, status: answer.status, ms }, 'push sent');
      await this.o.subscriptions.markSuccess(sub.id, this.o.clock.now());
      return;
    }
    if (answer !== null && (answer.status === 404 || answer.status === 410)) {
      // The browser unsubscribed or the subscription expired: it will never work again.
      this.counts.gone += 1;
      this.o.logger?.info({ ...log, status: answer.status, ms }, 'push: subscription gone');
      if (await this.o.subscriptions.remove(sub.id)) await this.auditRemoved(sub, 'gone');
      return;
    }
    this.counts.failed += 1;
    const failures = await this.o.subscriptions.markFailure(sub.id);
    this.o.logger?.warn(
      {
        ...log,
        ms,
        failures,
        ...(answer === null
          ? { err: error instanceof Error ? error.message : String(error) }
          : { status: answer.status, answer: answer.body.slice(0, 200) }),
      },
      'push failed',
    );
    if (failures !== null && failures >= this.maxFailures) {
      if (await this.o.subscriptions.remove(sub.id)) {
        this.counts.removedAfterFailures += 1;
        this.o.logger?.warn({ ...log, failures }, 'push: subscription removed after failures');
        await this.auditRemoved(sub, 'failures');
      }
    }
  }

  private async auditRemoved(sub: StoredPushSubscription, reason: 'gone' | 'failures') {
    await this.o.audit?.append({
      kind: 'push.subscription-removed',
      actor: { type: 'system', id: 'push' },
      subject: `home:${sub.homeId}`,
      data: {
        subscriptionId: sub.id,
        principalId: sub.principalId,
        pushService: originOf(sub.endpoint),
        reason,
        ...(reason === 'failures' ? { failures: this.maxFailures } : {}),
      },
    });
  }
}

/** The push service of an endpoint, for logs and the audit log (the path is the browser's). */
export function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return 'invalid';
  }
}

/** The Topic header for a tag: ≤ 32 base64url characters, same tag → same topic. */
function topicOf(tag: string): string {
  return createHash('sha256').update(tag).digest('base64url').slice(0, 32);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function timeFormatter(timeZone: string): (ms: number) => string {
  let format: Intl.DateTimeFormat;
  let suffix = '';
  try {
    format = new Intl.DateTimeFormat('en-GB', {
      timeZone,
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
  } catch {
    // A home with a time zone this runtime does not know still gets a readable time.
    format = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'UTC',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    suffix = ' UTC';
  }
  return (ms) => `${format.format(ms)}${suffix}`;
}

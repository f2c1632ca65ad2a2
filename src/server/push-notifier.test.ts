/**
 * The notifier's own rules, against a real SQLite store and a push service on loopback that
 * can hold its answers: which endpoints may be called, that sends are bounded and never stall
 * or break the event bus, and that every push is counted.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import webPush from 'web-push';
import { systemClock } from '../protocol/system-clock.ts';
import { PushSubscriptionRepository } from '../store/push-subscription-repository.ts';
import { HOME, OWNER, openTestStore, seedHome, type TestStore } from '../store/test-store.ts';
import { EventBus } from './event-bus.ts';
import {
  PushNotifier,
  isNonPublicAddress,
  publicOnlyLookup,
  pushEndpointProblem,
  type PushNotifierOptions,
} from './push-notifier.ts';

describe('pushEndpointProblem', () => {
  it('takes only public https push services in production', () => {
    for (const ok of [
      'https://fcm.googleapis.com/fcm/send/abc',
      'https://updates.push.services.mozilla.com/wpush/v2/abc',
      'https://web.push.apple.com/QF0',
      'https://8.8.8.8/push',
      'https://[2001:4860:4860::8888]/push',
    ]) {
      expect(pushEndpointProblem(ok, false), ok).toBeNull();
    }
    for (const bad of [
      'http://fcm.googleapis.com/fcm/send/abc',
      'ws://push.example.org/',
      'file:///etc/passwd',
      'https://user:pw@push.example.org/',
      'https://127.0.0.1/',
      'https://0.0.0.0/',
      'https://100.64.0.1/',
      'https://224.0.0.1/',
      'https://[::]/',
      'https://[ff02::1]/',
      'https://LOCALHOST/',
      'not a url',
    ]) {
      expect(pushEndpointProblem(bad, false), bad).not.toBeNull();
    }
  });

  it('takes http and local hosts too when insecure endpoints are allowed', () => {
    expect(pushEndpointProblem('http://127.0.0.1:8080/push/1', true)).toBeNull();
    expect(pushEndpointProblem('https://localhost/push/1', true)).toBeNull();
    expect(pushEndpointProblem('ftp://127.0.0.1/push/1', true)).toMatch(/https: or http:/);
    expect(pushEndpointProblem('http://u:p@127.0.0.1/', true)).toMatch(/user name/);
  });

  it('knows the non-public address ranges, IPv4-mapped ones included', () => {
    expect(isNonPublicAddress('172.15.255.255')).toBe(false);
    expect(isNonPublicAddress('172.16.0.0')).toBe(true);
    expect(isNonPublicAddress('172.32.0.0')).toBe(false);
    expect(isNonPublicAddress('169.254.0.1')).toBe(true);
    expect(isNonPublicAddress('::ffff:192.168.0.1')).toBe(true);
    expect(isNonPublicAddress('fe80::1')).toBe(true);
    expect(isNonPublicAddress('fec0::1')).toBe(false);
    expect(isNonPublicAddress('fbff::1')).toBe(false);
    expect(isNonPublicAddress('fdff::1')).toBe(true);
    expect(isNonPublicAddress('not-an-ip')).toBe(false);
  });
});

describe('publicOnlyLookup', () => {
  function lookup(host: string, all: boolean) {
    return new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
      publicOnlyLookup(host, { all }, (err, address) => resolve({ err, address })),
    );
  }

  it('refuses a name that resolves to a loopback address', async () => {
    const r = await lookup('localhost', false);
    expect(r.err?.code).toBe('EPUSHPRIVATE');
    expect(r.err?.message).toMatch(/localhost resolves to a non-public address/);
  });

  it('passes public addresses through, in the form the caller asked for', async () => {
    expect(await lookup('8.8.8.8', false)).toEqual({ err: null, address: '8.8.8.8' });
    expect(await lookup('8.8.8.8', true)).toEqual({
      err: null,
      address: [{ address: '8.8.8.8', family: 4 }],
    });
  });
});

/** A push service whose answers wait until released; counts requests open at once. */
class HoldingPushService {
  readonly paths: string[] = [];
  private held: http.ServerResponse[] = [];
  open = 0;
  maxOpen = 0;
  hold = true;
  private server = http.createServer((req, res) => {
    this.open += 1;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    res.on('close', () => (this.open -= 1));
    req.resume();
    req.on('end', () => {
      this.paths.push(req.url ?? '');
      if (this.hold) this.held.push(res);
      else res.writeHead(201).end();
    });
  });
  origin = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.hold = false;
    for (const res of this.held.splice(0)) res.writeHead(201).end();
  }

  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function until(pred: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('PushNotifier', () => {
  let t: TestStore;
  let repo: PushSubscriptionRepository;
  let bus: EventBus;
  let service: HoldingPushService;
  let notifier: PushNotifier | null = null;
  const logged: { level: string; msg: unknown }[] = [];
  const logger = {
    info: (_obj: unknown, msg?: unknown) => void logged.push({ level: 'info', msg }),
    warn: (_obj: unknown, msg?: unknown) => void logged.push({ level: 'warn', msg }),
    error: (_obj: unknown, msg?: unknown) => void logged.push({ level: 'error', msg }),
  };

  beforeEach(async () => {
    t = await openTestStore('sqlite');
    await seedHome(t.store);
    repo = new PushSubscriptionRepository(t.store.db);
    bus = new EventBus();
    service = new HoldingPushService();
    await service.start();
    logged.length = 0;
  });
  afterEach(async () => {
    service.release();
    await notifier?.stop();
    notifier = null;
    await service.close();
    await t.cleanup();
  });

  function make(over: Partial<PushNotifierOptions> = {}): PushNotifier {
    notifier = new PushNotifier({
      events: bus,
      subscriptions: repo,
      homes: t.store.homes,
      sessions: t.store.sessions,
      vapid: { ...webPush.generateVAPIDKeys(), subject: 'mailto:ops@example.org' },
      clock: systemClock,
      logger,
      allowInsecureEndpoints: true,
      ...over,
    });
    notifier.start();
    return notifier;
  }

  async function subscribe(n: number, origin = service.origin): Promise<void> {
    const { p256dh, auth } = browserKeys();
    for (let i = 0; i < n; i += 1) {
      await repo.upsert({
        id: `sub-${i}`,
        principalId: OWNER.id,
        homeId: HOME.id,
        endpoint: `${origin}/push/${i}`,
        p256dh,
        auth,
        createdAt: i,
      });
    }
  }

  function alarm(): void {
    const now = Date.now();
    bus.publish({
      type: 'alarm',
      homeId: HOME.id,
      sessionId: 'no-such-session',
      alarm: { type: 'door-left-open', atMs: now, sinceMs: now, message: 'Door left open' },
    });
  }

  it('sends at most 8 at a time, without holding up the bus, and counts every push', async () => {
    await subscribe(20);
    const n = make();

    const started = Date.now();
    alarm();
    expect(Date.now() - started).toBeLessThan(50);
    await until(() => service.paths.length === 8, '8 pushes are in flight');
    // Give a would-be ninth send every chance to start.
    await new Promise((r) => setTimeout(r, 200));
    expect(service.paths).toHaveLength(8);
    expect(n.stats()).toMatchObject({ inFlight: 8, queued: 12, sent: 0 });

    service.release();
    await n.idle();
    expect(service.paths).toHaveLength(20);
    expect(new Set(service.paths).size).toBe(20);
    expect(service.maxOpen).toBeLessThanOrEqual(8);
    expect(n.stats()).toEqual({
      events: 1,
      sent: 20,
      gone: 0,
      failed: 0,
      dropped: 0,
      removedAfterFailures: 0,
      inFlight: 0,
      queued: 0,
    });
    expect(logged.filter((l) => l.msg === 'push sent')).toHaveLength(20);
  });

  it('drops what the queue cannot hold, and what is queued at stop, counting it', async () => {
    await subscribe(5);
    const n = make({ maxInFlight: 1, maxQueued: 3 });
    alarm();
    await until(() => service.paths.length === 1, 'the first push is in flight');
    expect(n.stats()).toMatchObject({ inFlight: 1, queued: 2, dropped: 2 });

    const stopping = n.stop();
    service.release();
    await stopping;
    expect(n.stats()).toMatchObject({ sent: 1, dropped: 4, inFlight: 0, queued: 0 });
    expect(service.paths).toHaveLength(1);
  });

  it('counts a push service that does not answer in time as a failure', async () => {
    await subscribe(1);
    const n = make({ timeoutMs: 200 });
    alarm();
    await n.idle();
    expect(n.stats()).toMatchObject({ failed: 1, sent: 0 });
    expect((await repo.get('sub-0'))?.failures).toBe(1);
    expect(logged.some((l) => l.level === 'warn' && l.msg === 'push failed')).toBe(true);
  });

  it('never calls a stored endpoint its rules do not allow', async () => {
    await subscribe(2);
    service.hold = false;
    // Stored while insecure endpoints were allowed; now running under production rules.
    const n = make({ allowInsecureEndpoints: false });
    alarm();
    await n.idle();
    expect(service.paths).toEqual([]);
    expect(n.stats()).toMatchObject({ dropped: 2, sent: 0, failed: 0 });
    expect((await repo.listForHome(HOME.id)).map((s) => s.failures)).toEqual([0, 0]);
  });

  it('keeps the bus going when the store fails, and logs it', async () => {
    await subscribe(1);
    const n = make();
    const seen: string[] = [];
    bus.subscribe((e) => seen.push(e.type));
    await t.store.close();

    expect(() => alarm()).not.toThrow();
    await n.idle();
    expect(seen).toEqual(['alarm']);
    expect(logged.some((l) => l.level === 'error' && l.msg === 'push: event not handled')).toBe(
      true,
    );
    expect(service.paths).toEqual([]);
  });

  it('ignores events that are neither alarms nor a courier waiting for the owner', async () => {
    await subscribe(1);
    service.hold = false;
    const n = make();
    bus.publish({
      type: 'device',
      homeId: HOME.id,
      device: {
        deviceId: 'lock-1',
        homeId: HOME.id,
        kind: 'lock',
        online: false,
        lastSeenAt: null,
        offlineSince: 1,
        state: null,
      },
    });
    await n.idle();
    expect(service.paths).toEqual([]);
    expect(n.stats().events).toBe(0);
  });
});

/** A browser's keys: a P-256 public key and a 16-byte auth secret, base64url. */
function browserKeys(): { p256dh: string; auth: string } {
  const { publicKey } = webPush.generateVAPIDKeys();
  return { p256dh: publicKey, auth: Buffer.alloc(16, 7).toString('base64url') };
}

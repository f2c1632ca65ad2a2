/**
 * Web Push for alarms, end to end: a real Threshold (broker, simulated home, HTTP on loopback)
 * with the push routes and notifier, browsers faked by key pairs this test makes, and a push
 * service of our own on 127.0.0.1 that checks each message's VAPID signature and decrypts it
 * with the fake browser's private key, as a browser would.
 *
 * Given an owner and a member of the demo home and the owner of another home, each with a
 * subscribed browser, when the camera's link is cut during a delivery, then each browser of
 * the demo home gets exactly one "Camera offline at Front door" push and the other home's gets
 * none. Push services that answer 410 lose the subscription at once, ones that fail lose it
 * after 5 failures; endpoints that are not public https URLs, and bad bodies, are refused
 * and store nothing; nobody removes someone else's subscription.
 */
import {
  createECDH,
  createPublicKey,
  randomBytes,
  verify as verifySignature,
  type ECDH,
} from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessSession } from '../src/core/access-session.ts';
import type { Home } from '../src/core/model.ts';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { createApp, type App, type AppDeps } from '../src/server/app.ts';
import { hashPassword } from '../src/server/auth.ts';
import { ClipStore } from '../src/server/clip-store.ts';
import { LiveViewService } from '../src/server/live-view.ts';
import {
  ASK_OWNER_TITLE,
  NOTICE_TITLE,
  PushNotifier,
  type PushPayload,
} from '../src/server/push-notifier.ts';
import { pushRoutes } from '../src/server/routes/push-routes.ts';
import { DEMO_HOME } from '../src/server/seed.ts';
import { loadOrCreateVapidKeys, type VapidKeys } from '../src/server/vapid-keys.ts';
import { PushSubscriptionRepository } from '../src/store/push-subscription-repository.ts';

/** The part of the `http_ece` package (no type declarations) the fake browser uses. */
interface HttpEce {
  decrypt(
    body: Buffer,
    params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: string },
  ): Buffer;
}
const ece = createRequire(import.meta.url)('http_ece') as HttpEce;

const SUBJECT = 'mailto:push-test@example.org';

/** What the fake push service received. */
interface Received {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** A push service on loopback: records every message and answers with the status set per path. */
class FakePushService {
  readonly received: Received[] = [];
  readonly statusFor = new Map<string, number>();
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      this.received.push({ path, headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = this.statusFor.get(path) ?? 201;
      res.end();
    });
  });
  origin = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  to(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A browser's push subscription: the key pair and auth secret it keeps, the JSON it sends. */
interface FakeBrowser {
  readonly path: string;
  readonly ecdh: ECDH;
  readonly authSecret: string;
  readonly json: { endpoint: string; expirationTime: null; keys: { p256dh: string; auth: string } };
}

function fakeBrowser(service: FakePushService, name: string): FakeBrowser {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const authSecret = randomBytes(16).toString('base64url');
  const path = `/push/${name}`;
  return {
    path,
    ecdh,
    authSecret,
    json: {
      endpoint: `${service.origin}${path}`,
      expirationTime: null,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: authSecret },
    },
  };
}

/** Decrypts a received push as the browser would; throws if it was not encrypted for it. */
function open(browser: FakeBrowser, r: Received): PushPayload {
  expect(r.headers['content-encoding']).toBe('aes128gcm');
  const plain = ece.decrypt(r.body, {
    version: 'aes128gcm',
    privateKey: browser.ecdh,
    authSecret: browser.authSecret,
  });
  return JSON.parse(plain.toString('utf8')) as PushPayload;
}

/** Checks `Authorization: vapid t=<JWT>, k=<public key>`: ES256 by our key, for this origin. */
function checkVapid(r: Received, vapid: VapidKeys, audience: string): void {
  const m = /^vapid t=([\w-]+)\.([\w-]+)\.([\w-]+), k=([\w-]+)$/.exec(
    r.headers.authorization ?? '',
  );
  expect(m, `authorization header: ${r.headers.authorization}`).not.toBeNull();
  const [, head, claims, signature, k] = m!;
  expect(k).toBe(vapid.publicKey);
  expect(JSON.parse(Buffer.from(head!, 'base64url').toString())).toEqual({
    typ: 'JWT',
    alg: 'ES256',
  });
  const pub = Buffer.from(k!, 'base64url');
  const key = createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: pub.subarray(1, 33).toString('base64url'),
      y: pub.subarray(33, 65).toString('base64url'),
    },
    format: 'jwk',
  });
  const signed = verifySignature(
    'sha256',
    Buffer.from(`${head}.${claims}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature!, 'base64url'),
  );
  expect(signed, 'the JWT is signed by the VAPID key').toBe(true);
  const c = JSON.parse(Buffer.from(claims!, 'base64url').toString()) as {
    aud: string;
    exp: number;
    sub: string;
  };
  expect(c.aud).toBe(audience);
  expect(c.sub).toBe(SUBJECT);
  const nowS = Date.now() / 1000;
  expect(c.exp).toBeGreaterThan(nowS);
  expect(c.exp).toBeLessThanOrEqual(nowS + 24 * 3600);
}

const OTHER_HOME: Home = {
  ...DEMO_HOME,
  id: 'home-birch-3',
  name: 'Birch Road 3',
  address: 'Birch Road 3, 10115 Berlin',
};

let world: ScenarioWorld;
let service: FakePushService;
let vapid: VapidKeys;
let repo: PushSubscriptionRepository;
let notifier: PushNotifier;
let prodNotifier: PushNotifier;
let devApp: App;
let prodApp: App;
let devUrl = '';
let prodUrl = '';
let tempDir = '';
const tokens = { owner: '', member: '', neighbour: '', courier: '' };
let ownerBrowser: FakeBrowser;
let memberBrowser: FakeBrowser;
let neighbourBrowser: FakeBrowser;

async function call(
  base: string,
  token: string | null,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  rawBody?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(payload === undefined ? {} : { body: payload }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function signIn(username: string, password: string): Promise<string> {
  const r = await call(devUrl, null, 'POST', '/api/auth/sign-in', { username, password });
  expect(r.status).toBe(200);
  return String(r.body.token);
}

async function allSubscriptions() {
  return world.sys.store.db.selectFrom('push_subscriptions').selectAll().execute();
}

async function buildApp(push: PushNotifier): Promise<{ app: App; url: string }> {
  const sys = world.sys;
  const deps: AppDeps = {
    store: sys.store,
    orchestrator: sys.orchestrator,
    gateway: sys.gateway,
    auth: sys.auth,
    audit: sys.audit,
    clips: new ClipStore(tempDir, sys.store.clips),
    events: sys.events,
    // The push routes do not use it; not attached to the gateway, so it sees no device.
    liveView: new LiveViewService({
      gateway: sys.gateway,
      sessions: sys.orchestrator,
      clock: sys.clock,
      events: sys.events,
      audit: sys.audit,
    }),
    clock: sys.clock,
  };
  const app = await createApp(deps);
  await app.register(pushRoutes(deps, { publicKey: vapid.publicKey, repo, notifier: push }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  tempDir = mkdtempSync(join(tmpdir(), 'threshold-push-'));
  service = new FakePushService();
  await service.start();
  world = await ScenarioWorld.create();
  const { store } = world.sys;
  vapid = loadOrCreateVapidKeys(join(tempDir, 'keys'), SUBJECT);
  repo = new PushSubscriptionRepository(store.db);
  const common = {
    events: world.sys.events,
    subscriptions: repo,
    homes: store.homes,
    sessions: store.sessions,
    vapid,
    clock: world.sys.clock,
    audit: world.sys.audit,
  };
  // The push service of this test is plain http on loopback: allowed in development only.
  notifier = new PushNotifier({ ...common, allowInsecureEndpoints: true });
  notifier.start();
  // Production rules, for the subscription checks; it never listens to the bus.
  prodNotifier = new PushNotifier(common);
  ({ app: devApp, url: devUrl } = await buildApp(notifier));
  ({ app: prodApp, url: prodUrl } = await buildApp(prodNotifier));

  await store.principals.create(
    {
      id: 'member-jo',
      role: 'member',
      displayName: 'Jo',
      homeId: world.creds.homeId,
      carrierId: null,
    },
    { username: 'jo', passwordHash: await hashPassword('jo-password-1') },
  );
  await store.homes.createHome(OTHER_HOME);
  await store.principals.create(
    {
      id: 'owner-nina',
      role: 'owner',
      displayName: 'Nina',
      homeId: OTHER_HOME.id,
      carrierId: null,
    },
    { username: 'nina', passwordHash: await hashPassword('nina-password-1') },
  );
  tokens.owner = await signIn(world.creds.owner.username, world.creds.owner.password);
  tokens.member = await signIn('jo', 'jo-password-1');
  tokens.neighbour = await signIn('nina', 'nina-password-1');
  tokens.courier = await signIn(world.creds.courier.username, world.creds.courier.password);
  ownerBrowser = fakeBrowser(service, 'owner-phone');
  memberBrowser = fakeBrowser(service, 'member-laptop');
  neighbourBrowser = fakeBrowser(service, 'neighbour-phone');
}, 60_000);

afterAll(async () => {
  await notifier?.stop();
  await devApp?.close();
  await prodApp?.close();
  await world?.close();
  await service?.close();
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
});

describe('Web Push subscriptions', () => {
  it('gives owners and members the VAPID public key, and nobody else', async () => {
    const r = await call(devUrl, tokens.member, 'GET', '/api/push/public-key');
    expect(r).toEqual({ status: 200, body: { publicKey: vapid.publicKey } });
    expect(Buffer.from(vapid.publicKey, 'base64url')).toHaveLength(65);
    expect((await call(devUrl, null, 'GET', '/api/push/public-key')).status).toBe(401);
    expect((await call(devUrl, tokens.courier, 'GET', '/api/push/public-key')).status).toBe(403);
  });

  it('subscribes a browser for its principal’s home, once per endpoint, and records it', async () => {
    const owner = await call(
      devUrl,
      tokens.owner,
      'POST',
      '/api/push/subscriptions',
      ownerBrowser.json,
    );
    expect(owner.status).toBe(200);
    const id = String(owner.body.id);
    // The browser sends its subscription again on a later visit: same row, no new record.
    const again = await call(
      devUrl,
      tokens.owner,
      'POST',
      '/api/push/subscriptions',
      ownerBrowser.json,
    );
    expect(again).toEqual({ status: 200, body: { id } });
    for (const [token, browser] of [
      [tokens.member, memberBrowser],
      [tokens.neighbour, neighbourBrowser],
    ] as const) {
      expect(
        (await call(devUrl, token, 'POST', '/api/push/subscriptions', browser.json)).status,
      ).toBe(200);
    }

    expect((await repo.listForHome(world.creds.homeId)).map((s) => s.endpoint)).toEqual([
      ownerBrowser.json.endpoint,
      memberBrowser.json.endpoint,
    ]);
    expect((await repo.listForHome(OTHER_HOME.id)).map((s) => s.principalId)).toEqual([
      'owner-nina',
    ]);
    const added = (
      await world.sys.store.audit.entriesForSubject(`home:${world.creds.homeId}`)
    ).filter((e) => e.kind === 'push.subscription-added');
    expect(added.map((e) => e.actor)).toEqual([
      { type: 'principal', id: 'owner-alex' },
      { type: 'principal', id: 'member-jo' },
    ]);
    expect(added[0]?.data).toEqual({ subscriptionId: id, pushService: service.origin });
    expect(
      (
        await call(
          devUrl,
          tokens.courier,
          'POST',
          '/api/push/subscriptions',
          fakeBrowser(service, 'c').json,
        )
      ).status,
    ).toBe(403);
  });

  it('asks the home’s browsers when a courier waits for an "ask me first" answer, once per session', async () => {
    const homePath = `/api/homes/${world.creds.homeId}/settings`;
    const settings = { inHomeDelivery: true, daysOff: [], askFirst: true, askTimeoutS: 60 };
    expect((await call(world.sys.url, tokens.owner, 'PUT', homePath, settings)).status).toBe(200);
    const access = await world.requestAccess(await world.newDelivery());
    const session = access.body.session as AccessSession;
    expect(session.state).toBe('awaiting-owner');
    await notifier.idle();
    // The same state announced again (a reconnecting view, a restart) asks no second time.
    world.sys.events.publish({ type: 'session', homeId: session.homeId, session });
    await notifier.idle();

    for (const browser of [ownerBrowser, memberBrowser]) {
      const asks = service
        .to(browser.path)
        .map((r) => ({ r, p: open(browser, r) }))
        .filter((x) => x.p.sessionId === session.id);
      expect(asks, browser.path).toHaveLength(1);
      const { r, p } = asks[0]!;
      expect(p).toMatchObject({
        title: ASK_OWNER_TITLE,
        tag: `ask:${session.id}`,
        url: `/sessions/${session.id}`,
        homeId: world.creds.homeId,
        alarmType: null,
      });
      expect(p.body).toMatch(
        /^A courier is waiting at Front door\. Answer by \d\d:\d\d:\d\d, or the parcel is left at the door\.$/,
      );
      checkVapid(r, vapid, service.origin);
      // Not worth delivering after the courier stopped waiting (60 s).
      expect(Number(r.headers.ttl)).toBeGreaterThan(45);
      expect(Number(r.headers.ttl)).toBeLessThanOrEqual(60);
    }
    expect(service.to(neighbourBrowser.path)).toEqual([]);

    const decided = await call(
      world.sys.url,
      tokens.owner,
      'POST',
      `/api/sessions/${session.id}/decision`,
      {
        decision: 'leave-at-door',
      },
    );
    expect(decided.status).toBe(200);
    const off = { ...settings, askFirst: false };
    expect((await call(world.sys.url, tokens.owner, 'PUT', homePath, off)).status).toBe(200);
  });

  it('pushes a real camera-offline alarm to each browser of the home, encrypted for it, and none to the other home', async () => {
    const { sessionId } = await world.deliverInside();
    expect(sessionId).not.toBeNull();
    world.home.links.camera.cutLink();
    const alarm = await world.waitForAlarm(sessionId!, 'observation-lost', 5_000);
    await notifier.idle();

    const audience = service.origin;
    const expectedTime = new Date(alarm.sinceMs).toLocaleTimeString('en-GB', {
      timeZone: DEMO_HOME.timeZone,
      hour12: false,
    });
    for (const browser of [ownerBrowser, memberBrowser]) {
      const pushes = service.to(browser.path).map((r) => ({ r, p: open(browser, r) }));
      const offline = pushes.filter(
        (x) => x.p.sessionId === sessionId && x.p.alarmType === 'observation-lost',
      );
      expect(offline, `pushes to ${browser.path}`).toHaveLength(1);
      const { r, p } = offline[0]!;
      expect(p).toEqual({
        title: 'Camera offline at Front door',
        body: `Camera stopped proving it can see the door since ${expectedTime}`,
        tag: `alarm:${sessionId}:observation-lost`,
        url: `/sessions/${sessionId}`,
        homeId: world.creds.homeId,
        sessionId,
        alarmType: 'observation-lost',
      });
      checkVapid(r, vapid, audience);
      expect(r.headers.ttl).toBe('300');
      expect(r.headers.urgency).toBe('high');
      expect(r.headers.topic).toMatch(/^[A-Za-z0-9_-]{32}$/);
    }
    // Encrypted for one browser only: another browser's keys cannot open it.
    expect(() => open(memberBrowser, service.to(ownerBrowser.path)[0]!)).toThrow();
    expect(service.to(neighbourBrowser.path)).toEqual([]);
    const stats = notifier.stats();
    expect(stats.sent).toBe(service.received.length);
    expect(stats.failed + stats.gone + stats.dropped).toBe(0);
    expect((await repo.getByEndpoint(ownerBrowser.json.endpoint))?.lastSuccessAt).not.toBeNull();
  }, 30_000);

  it('pushes "who unlocked" to those who asked: the owner by default, a member for chosen people, nobody about themselves', async () => {
    const { store } = world.sys;
    const entryNotifier = new PushNotifier({
      events: world.sys.events,
      subscriptions: repo,
      homes: store.homes,
      sessions: store.sessions,
      vapid,
      clock: world.sys.clock,
      allowInsecureEndpoints: true,
      entryWatchers: (entry, homeId) => world.sys.entries.watchersOf(entry, homeId),
    });
    entryNotifier.start();
    try {
      const door = (await store.homes.getDoor(world.creds.doorId))!;
      const owner = (await store.principals.get('owner-alex'))!;
      const member = (await store.principals.get('member-jo'))!;
      const entryPushes = (browser: FakeBrowser) =>
        service
          .to(browser.path)
          .map((r) => ({ r, p: open(browser, r) }))
          .filter((x) => x.p.tag.startsWith('entry:'));
      const before = {
        owner: entryPushes(ownerBrowser).length,
        member: entryPushes(memberBrowser).length,
        neighbour: entryPushes(neighbourBrowser).length,
      };

      // The member unlocks from afar: the owner (default "every entry") is told; the member,
      // who chose nobody yet, is not, and would not be about their own entry anyway.
      const byMember = await world.sys.entries.remote(member, door);
      await entryNotifier.idle();
      const toOwner = entryPushes(ownerBrowser).slice(before.owner);
      expect(toOwner).toHaveLength(1);
      const { r, p } = toOwner[0]!;
      expect(p).toMatchObject({
        title: 'Front door unlocked',
        tag: `entry:${byMember.id}`,
        url: '/',
        homeId: world.creds.homeId,
        sessionId: null,
        alarmType: null,
      });
      expect(p.body).toMatch(
        /^Jo \(household\) unlocked Front door from the app at \d\d:\d\d:\d\d\.$/,
      );
      checkVapid(r, vapid, service.origin);
      expect(entryPushes(memberBrowser)).toHaveLength(before.member);

      // The member chooses the owner; the owner turns entry alerts off.
      await store.entries.setAlertSetting(member.id, 'chosen', [owner.id], world.sys.clock.now());
      await store.entries.setAlertSetting(owner.id, 'off', [], world.sys.clock.now());
      const byOwner = await world.sys.entries.remote(owner, door);
      await entryNotifier.idle();
      const toMember = entryPushes(memberBrowser).slice(before.member);
      expect(toMember.map((x) => x.p.tag)).toEqual([`entry:${byOwner.id}`]);
      expect(toMember[0]!.p.body).toMatch(/^Alex \(owner\) unlocked Front door from the app/);
      expect(entryPushes(ownerBrowser)).toHaveLength(before.owner + 1);
      // The other home hears of none of it.
      expect(entryPushes(neighbourBrowser)).toHaveLength(before.neighbour);
    } finally {
      await store.db.deleteFrom('entry_alert_settings').execute();
      await store.db.deleteFrom('entry_alert_people').execute();
      await entryNotifier.stop();
    }
  });

  it("pushes the home hub's own alarms (it locked the door itself) to the household, and to no other home", async () => {
    const before = new Map(
      [ownerBrowser, memberBrowser, neighbourBrowser].map((b) => [b, service.to(b.path).length]),
    );
    // What a hub sends through the door's lock when its dead-man's switch trips.
    const acked = await world.home.links.lock.publishEventAcked({
      name: 'hub.dead-man',
      detail: JSON.stringify({ hubAt: world.sys.clock.now(), hubSeq: 1, why: 'camera silent' }),
    });
    expect(acked).toBe(true);
    const noticesTo = (browser: FakeBrowser) =>
      service
        .to(browser.path)
        .slice(before.get(browser))
        .map((r) => open(browser, r))
        .filter((p) => p.tag.startsWith('notice:'));
    await expect
      .poll(async () => {
        await notifier.idle();
        return noticesTo(ownerBrowser).length;
      })
      .toBe(1);
    for (const browser of [ownerBrowser, memberBrowser]) {
      const [p] = noticesTo(browser);
      expect(p, browser.path).toMatchObject({
        title: NOTICE_TITLE,
        url: '/',
        homeId: world.creds.homeId,
        sessionId: null,
        alarmType: null,
      });
      expect(p!.body).toContain('the hub locked the door on its own');
    }
    expect(service.to(neighbourBrowser.path).length).toBe(before.get(neighbourBrowser));
  }, 30_000);

  it('removes a subscription at once when the push service answers 410 Gone', async () => {
    const gone = fakeBrowser(service, 'gone');
    const sub = await call(devUrl, tokens.member, 'POST', '/api/push/subscriptions', gone.json);
    expect(sub.status).toBe(200);
    service.statusFor.set(gone.path, 410);
    const statsBefore = notifier.stats();

    await raiseAlarm('door-left-open');

    expect(service.to(gone.path)).toHaveLength(1);
    expect(await repo.getByEndpoint(gone.json.endpoint)).toBeNull();
    expect(notifier.stats().gone).toBe(statsBefore.gone + 1);
    const removed = (
      await world.sys.store.audit.entriesForSubject(`home:${world.creds.homeId}`)
    ).filter((e) => e.kind === 'push.subscription-removed');
    expect(removed.at(-1)).toMatchObject({
      actor: { type: 'system', id: 'push' },
      data: { subscriptionId: sub.body.id, reason: 'gone' },
    });
  });

  it('removes a subscription after 5 failed pushes in a row, not before', async () => {
    const broken = fakeBrowser(service, 'broken');
    expect(
      (await call(devUrl, tokens.member, 'POST', '/api/push/subscriptions', broken.json)).status,
    ).toBe(200);
    service.statusFor.set(broken.path, 500);
    const statsBefore = notifier.stats();

    for (let i = 1; i <= 4; i += 1) {
      await raiseAlarm('lock-jammed');
      expect((await repo.getByEndpoint(broken.json.endpoint))?.failures).toBe(i);
    }
    await raiseAlarm('lock-jammed');

    expect(service.to(broken.path)).toHaveLength(5);
    expect(await repo.getByEndpoint(broken.json.endpoint)).toBeNull();
    const stats = notifier.stats();
    expect(stats.failed).toBe(statsBefore.failed + 5);
    expect(stats.removedAfterFailures).toBe(statsBefore.removedAfterFailures + 1);
    // The healthy browsers got every one of those alarms.
    expect((await repo.getByEndpoint(ownerBrowser.json.endpoint))?.failures).toBe(0);
  });
});

describe('what is refused', () => {
  it('refuses a plain-http endpoint under production rules, and stores nothing', async () => {
    const before = await allSubscriptions();
    const browser = fakeBrowser(service, 'plain-http');
    const r = await call(prodUrl, tokens.owner, 'POST', '/api/push/subscriptions', browser.json);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({
      code: 'request.invalid',
      message: 'The push endpoint must be an https: URL.',
    });
    expect(await allSubscriptions()).toEqual(before);
  });

  it('refuses https endpoints on private, loopback and link-local addresses under production rules', async () => {
    const before = await allSubscriptions();
    const keys = fakeBrowser(service, 'x').json.keys;
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      '10.0.0.8',
      '172.16.5.4',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '[::1]',
      '[fc00::1]',
      '[fd12:3456::1]',
      '[fe80::1]',
      '[::ffff:127.0.0.1]',
      '[::ffff:10.0.0.1]',
      '2130706433',
      '0x7f.1',
      'localhost',
      'push.localhost',
    ]) {
      const r = await call(prodUrl, tokens.owner, 'POST', '/api/push/subscriptions', {
        endpoint: `https://${host}/push/abc`,
        keys,
      });
      expect(r.status, host).toBe(400);
      expect((r.body.error as { message: string }).message, host).toMatch(/public push service/);
    }
    expect(await allSubscriptions()).toEqual(before);

    // A public push service is fine: the refusals above are about the address, not the form.
    const ok = await call(prodUrl, tokens.owner, 'POST', '/api/push/subscriptions', {
      endpoint: 'https://fcm.googleapis.com/fcm/send/abc123',
      expirationTime: null,
      keys,
    });
    expect(ok.status).toBe(200);
    expect(
      await repo.removeByEndpoint('https://fcm.googleapis.com/fcm/send/abc123', 'owner-alex'),
    ).toBe(true);
  });

  it('answers bad bodies with 400 and stores nothing', async () => {
    const before = await allSubscriptions();
    const good = fakeBrowser(service, 'bad-input').json;
    const offCurve = `B${'A'.repeat(86)}`;
    const cases: [string, unknown][] = [
      ['no keys', { endpoint: good.endpoint }],
      ['unknown field', { ...good, extra: 1 }],
      ['unknown key field', { ...good, keys: { ...good.keys, x: 'y' } }],
      ['p256dh too short', { ...good, keys: { ...good.keys, p256dh: 'B'.repeat(79) } }],
      ['p256dh too long', { ...good, keys: { ...good.keys, p256dh: 'B'.repeat(101) } }],
      ['p256dh not base64url', { ...good, keys: { ...good.keys, p256dh: `${'B'.repeat(86)}+` } }],
      ['p256dh off the curve', { ...good, keys: { ...good.keys, p256dh: offCurve } }],
      [
        'p256dh not uncompressed',
        { ...good, keys: { ...good.keys, p256dh: `A${good.keys.p256dh.slice(1)}` } },
      ],
      ['auth too short', { ...good, keys: { ...good.keys, auth: 'a'.repeat(15) } }],
      ['auth too long', { ...good, keys: { ...good.keys, auth: 'a'.repeat(33) } }],
      ['auth padded', { ...good, keys: { ...good.keys, auth: `${good.keys.auth}==` } }],
      ['endpoint too long', { ...good, endpoint: `${service.origin}/${'a'.repeat(2048)}` }],
      ['endpoint empty', { ...good, endpoint: '' }],
      ['endpoint not a URL', { ...good, endpoint: 'push.example.org/abc' }],
      ['endpoint ftp', { ...good, endpoint: 'ftp://push.example.org/abc' }],
      ['endpoint with password', { ...good, endpoint: 'https://u:p@push.example.org/abc' }],
      ['endpoint a number', { ...good, endpoint: 12 }],
      ['expiration as string', { ...good, expirationTime: '1' }],
      ['expired', { ...good, expirationTime: 1_000 }],
      ['array', [good]],
      ['null', null],
    ];
    for (const [what, body] of cases) {
      const r = await call(devUrl, tokens.owner, 'POST', '/api/push/subscriptions', body);
      expect(r.status, what).toBe(400);
      expect((r.body.error as { code: string }).code, what).toBe('request.invalid');
    }
    const notJson = await call(
      devUrl,
      tokens.owner,
      'POST',
      '/api/push/subscriptions',
      undefined,
      '{',
    );
    expect(notJson.status).toBe(400);
    const noBody = await call(devUrl, tokens.owner, 'DELETE', '/api/push/subscriptions');
    expect(noBody.status).toBe(400);
    const badDelete = await call(devUrl, tokens.owner, 'DELETE', '/api/push/subscriptions', {
      endpoint: good.endpoint,
      extra: true,
    });
    expect(badDelete.status).toBe(400);
    expect(await allSubscriptions()).toEqual(before);
  });

  it('lets nobody but its subscriber remove a subscription', async () => {
    const endpoint = ownerBrowser.json.endpoint;
    const stored = await repo.getByEndpoint(endpoint);
    expect(stored).not.toBeNull();
    // Another home's owner and a member of the same home: answered alike, nothing removed.
    for (const token of [tokens.neighbour, tokens.member]) {
      const r = await call(devUrl, token, 'DELETE', '/api/push/subscriptions', { endpoint });
      expect(r).toEqual({ status: 200, body: { ok: true } });
      expect(await repo.getByEndpoint(endpoint)).toEqual(stored);
    }
    expect(
      (await call(devUrl, tokens.courier, 'DELETE', '/api/push/subscriptions', { endpoint }))
        .status,
    ).toBe(403);
    expect(
      (await call(devUrl, null, 'DELETE', '/api/push/subscriptions', { endpoint })).status,
    ).toBe(401);
    expect(await repo.getByEndpoint(endpoint)).toEqual(stored);

    const mine = await call(devUrl, tokens.owner, 'DELETE', '/api/push/subscriptions', {
      endpoint,
    });
    expect(mine).toEqual({ status: 200, body: { ok: true } });
    expect(await repo.getByEndpoint(endpoint)).toBeNull();
    const removed = (
      await world.sys.store.audit.entriesForSubject(`home:${world.creds.homeId}`)
    ).filter((e) => e.kind === 'push.subscription-removed');
    expect(removed.at(-1)).toMatchObject({
      actor: { type: 'principal', id: 'owner-alex' },
      data: { subscriptionId: stored!.id, reason: 'unsubscribed' },
    });

    // Unsubscribed browsers get no more alarms; the member's still does.
    const ownerBefore = service.to(ownerBrowser.path).length;
    const memberBefore = service.to(memberBrowser.path).length;
    await raiseAlarm('unexpected-entry');
    expect(service.to(ownerBrowser.path)).toHaveLength(ownerBefore);
    expect(service.to(memberBrowser.path)).toHaveLength(memberBefore + 1);
  });
});

/** Publishes an alarm of the demo home's latest session, as the orchestrator does, and waits for the pushes. */
async function raiseAlarm(type: 'door-left-open' | 'lock-jammed' | 'unexpected-entry') {
  const sessions = await world.sys.store.sessions.listForHome(world.creds.homeId);
  const now = world.sys.clock.now();
  world.sys.events.publish({
    type: 'alarm',
    homeId: world.creds.homeId,
    sessionId: sessions[0]!.id,
    alarm: { type, atMs: now, sinceMs: now - 1_000, message: 'test alarm' },
  });
  await notifier.idle();
}

/**
 * The authorization matrix: every route the app registers × every kind of caller × the object
 * named being the caller's own tenant's or the other tenant's → the expected answer, from one
 * table ({@link MATRIX}). A route the app registers without a row fails the test, and so does a
 * row for a route that does not exist.
 *
 * Callers belong to the demo home's tenant: its owner, a household member, a guest, the courier
 * of the carrier it allows, that carrier's API key, and nobody (no credentials). "Own" objects
 * are that tenant's; "other" objects belong to a second tenant (another home, household, carrier
 * and courier) built beside it in the same real system (see authorization-world.ts). Some routes
 * name two objects; their "cross" column names the caller's own home with the other tenant's
 * object inside it. Where an object belongs to one person, a "peer" column names an object of
 * the caller's own tenant that is someone else's (another courier of the same carrier, another
 * member of the household); and the courier's list has a "past" column: a delivery of its own
 * whose window ended yesterday (principle 6: a courier sees only its own *current* deliveries).
 *
 * Outcomes: `allow` (2xx, and the call does what it says), `hidden` (2xx, but the object named
 * — in a list, a stream, or an unsubscribe — is neither shown nor touched, and the answer does
 * not say whether it exists), or a refusal: 401 `auth.required`, 403 `auth.forbidden` for a role
 * the route does not serve (the refusal is audited as `auth.denied`), 404 with the object's own
 * not-found code for an object that is not the caller's (404 rather than 403, so existence does
 * not leak), or a refusal of another kind spelled out in the row. A refused or hidden call
 * changes nothing: each row that changes state says what to compare before and after. No allowed
 * answer may contain anything of the other tenant. Allowed calls that change state are undone
 * afterwards (a remote unlock is followed by a lock, settings are put back, subscriptions and
 * passkeys removed).
 *
 * HEAD routes Fastify adds for each GET run the GET's handler, and are covered by its row.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../src/core/errors.ts';
import type { Home, Principal } from '../src/core/model.ts';
import type { SessionView } from '../src/protocol/views.ts';
import { settingsOf } from '../src/server/routes/home-routes.ts';
import { WEB_DIST_DIR } from '../src/server/routes/web-app-route.ts';
import {
  AuthzWorld,
  waitFor,
  type Answer,
  type CreationOptions,
  type Person,
  type RequestOptions,
  type Tenant,
} from './authorization-world.ts';

/** Who calls: the demo tenant's people, its carrier's API key, or nobody. */
type Caller = 'anonymous' | 'owner' | 'member' | 'guest' | 'courier' | 'carrier';
const CALLERS: readonly Caller[] = ['anonymous', 'owner', 'member', 'guest', 'courier', 'carrier'];

/**
 * Whose object the request names: `none` for routes that name none, `own` / `other` for the
 * caller's tenant or the other one, `cross` for the caller's own home with the other tenant's
 * object inside it (`cross2` for a second such object of the same route), `peer` for an object
 * of the caller's tenant that belongs to someone else,
 * `past` for the caller's own object that is no longer current.
 */
type Tenancy = 'none' | 'own' | 'other' | 'cross' | 'cross2' | 'peer' | 'past';

/** A refusal that is not about the caller's role: its status and code (no auth.denied entry). */
interface ObjectRefusal {
  readonly status: 403 | 404;
  readonly code: ErrorCode;
}

/** See the module comment. */
type Outcome = 'allow' | 'hidden' | 401 | 403 | 404 | ObjectRefusal;

/** One outcome for every tenancy of the row, or one per tenancy. */
type CallerOutcome = Outcome | Readonly<Partial<Record<Tenancy, Outcome>>>;

/** What one cell sends. */
interface Req {
  /** Path with parameters (and query) filled in. */
  readonly path: string;
  readonly json?: unknown;
  /** Another credential of the same caller than the usual one (sign-out uses a fresh one). */
  readonly token?: string;
  /** The object the request is about, for the row's state, check and restore. */
  readonly ref?: string;
}

/** One cell of the matrix. */
interface Cell {
  readonly row: Row;
  readonly caller: Caller;
  readonly tenancy: Tenancy;
  readonly outcome: Outcome;
}

/** One row of the matrix: a route, what each caller gets, and how to call it. */
interface Row {
  /** Method and path template, exactly as registered. */
  readonly route: string;
  /** The tenancies the row is exercised with. */
  readonly tenancies: readonly Tenancy[];
  /** What `cross`, `peer` and `past` mean for this route, for the test names. */
  readonly cross?: string;
  readonly cross2?: string;
  readonly peer?: string;
  readonly past?: string;
  readonly expect: Readonly<Record<Caller, CallerOutcome>>;
  /** The code of each 404 outcome, by tenancy. */
  readonly notFound?: Readonly<Partial<Record<Tenancy, ErrorCode>>>;
  /** A valid request for the cell, so an allowed call can succeed and a refusal is about who asks. */
  readonly request: (c: Cell) => Req | Promise<Req>;
  /** The state the call could change; a refused or hidden call must leave it as it was. */
  readonly state?: (c: Cell, req: Req) => Promise<unknown>;
  /** What an allowed (or hidden) answer must show or have done. */
  readonly check?: (c: Cell, a: Answer, req: Req) => void | Promise<void>;
  /** Undoes what a 2xx answer did, expected or not. */
  readonly restore?: (c: Cell, req: Req, a: Answer, before: unknown) => Promise<void>;
  /** Sends the request itself (the event stream); `token` is the caller's credential. */
  readonly send?: (c: Cell, req: Req, token: string | null) => Promise<Answer>;
  /** Runs before the row's cells, and after them. */
  readonly setup?: () => Promise<void>;
  readonly teardown?: () => Promise<void>;
  /** For a row that covers many registered routes (the web app's files): which ones. */
  readonly covers?: (key: string) => boolean;
  /**
   * Strings of the other tenant this route shows by design (the carriers of the server, a
   * directory every household chooses from); every other trace of that tenant still fails.
   */
  readonly showsOfOther?: () => readonly string[];
}

let x: AuthzWorld;

// ---- who and what a cell is about ----

/** The calling person, or null for nobody and the carrier's API key. */
function me(c: Cell): Person | null {
  switch (c.caller) {
    case 'anonymous':
    case 'carrier':
      return null;
    case 'owner':
    case 'member':
    case 'guest':
    case 'courier':
      return x.own[c.caller];
  }
}

function mine(c: Cell): Person {
  const p = me(c);
  if (!p) throw new Error(`${c.caller} is not a person`);
  return p;
}

/** The caller's usual credential: a sign-in token, the carrier's API key, or none. */
function credential(caller: Caller): string | null {
  if (caller === 'anonymous') return null;
  if (caller === 'carrier') return x.own.carrier.apiKey;
  return x.own[caller].token;
}

/** The principal id the audit log names for the caller. */
function principalIdOf(caller: Exclude<Caller, 'anonymous'>): string {
  return caller === 'carrier' ? x.own.carrier.id : x.own[caller].id;
}

/** The tenant of the outer object of the path (the home): the other one only for `other`. */
function homeOf(c: Cell): Tenant {
  return c.tenancy === 'other' ? x.other : x.own;
}

/** The tenant of the innermost object named: the other one for `other` and `cross`. */
function objectOf(c: Cell): Tenant {
  return c.tenancy === 'other' || c.tenancy === 'cross' || c.tenancy === 'cross2' ? x.other : x.own;
}

/** A passkey of the caller's tenant that is not the caller's: the member's for the owner, else the owner's. */
function peerPasskey(c: Cell): string {
  return passkeyOf(x.own, c.caller === 'owner' ? x.own.member : x.own.owner);
}

// ---- shorthands of the table ----

const NONE = ['none'] as const;
const OWN_OTHER = ['own', 'other'] as const;
const WITH_CROSS = ['own', 'other', 'cross'] as const;
const WITH_PEER = ['own', 'other', 'peer'] as const;

/** Public: everyone gets it, credentials or not. */
const EVERYONE: Readonly<Record<Caller, CallerOutcome>> = {
  anonymous: 'allow',
  owner: 'allow',
  member: 'allow',
  guest: 'allow',
  courier: 'allow',
  carrier: 'allow',
};
/** Their own tenant's object: allowed; the other tenant's: not found. */
const OWN = { own: 'allow', other: 404 } as const;
/** …and the other tenant's object inside their own home: not found either. */
const OWN_X = { own: 'allow', other: 404, cross: 404 } as const;
/** …and someone else's object of their own tenant: not found either. */
const OWN_P = { own: 'allow', other: 404, peer: 404 } as const;
/** Lists and streams: their own objects are shown; the other tenant's are hidden. */
const LISTED = { own: 'allow', other: 'hidden' } as const;
/** …and so are someone else's of their own tenant. */
const LISTED_P = { own: 'allow', other: 'hidden', peer: 'hidden' } as const;

/** A carrier naming a courier of another carrier: refused, the same as for an unknown courier. */
const NOT_YOUR_COURIER: ObjectRefusal = { status: 403, code: 'auth.forbidden' };

const json = (a: Answer): string => a.text;

async function home(t: Tenant): Promise<Home> {
  const h = await x.sys.store.homes.getHome(t.homeId);
  if (!h) throw new Error(`no home ${t.homeId}`);
  return h;
}

async function auditCount(subject: string, kind: string): Promise<number> {
  await x.sys.audit.drain();
  return (await x.sys.store.audit.entriesForSubject(subject)).filter((e) => e.kind === kind).length;
}

async function passkeyIds(): Promise<string[]> {
  const rows = await x.sys.store.db.selectFrom('passkeys').select('id').orderBy('id').execute();
  return rows.map((r) => r.id);
}

function passkeyOf(t: Tenant, p: Person): string {
  const k = t.passkeys.get(p.id);
  if (!k) throw new Error(`${p.id} has no passkey`);
  return k.id;
}

async function pushSubscriptions(): Promise<string[]> {
  const all = [
    ...(await x.sys.store.pushSubscriptions.listForHome(x.own.homeId)),
    ...(await x.sys.store.pushSubscriptions.listForHome(x.other.homeId)),
  ];
  return all.map((s) => `${s.principalId} ${s.homeId} ${s.endpoint}`).sort();
}

function isDistFile(path: string): boolean {
  const file = join(WEB_DIST_DIR, path);
  return path !== '/' && existsSync(file) && statSync(file).isFile();
}

/** Files of the built web app, as paths (`/sw.js`, `/assets/…`). */
function distFiles(dir = WEB_DIST_DIR, prefix = '/'): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? distFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

/** A page of the web app or of the API docs: public. */
function publicPage(route: string, path: string, type: RegExp): Row {
  return {
    route,
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({ path }),
    check: (_c, a) => expect(a.headers.get('content-type') ?? '').toMatch(type),
  };
}

// ---- state shared by the cells of one row ----

const decisionWaiting = new Map<Tenant['key'], string>();
const settingsBefore = new Map<Tenant['key'], Home>();
const accessDelivery = new Map<Tenant['key'], string>();
const relockSession = new Map<Tenant['key'], string>();
const guestSession = new Map<Tenant['key'], string>();
const pushEndpoint = new Map<Tenant['key'], string>();
let peerEndpoint = '';

function shared(map: Map<Tenant['key'], string>, t: Tenant): string {
  const v = map.get(t.key);
  if (v === undefined) throw new Error(`nothing prepared for ${t.key}`);
  return v;
}

// ---- carrier accounts: objects made for one call, so the world's own are never touched ----

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const tag = (t: Tenant): string =>
  `${t.key === 'own' ? 'matrix' : 'birch'}-${randomBytes(4).toString('hex')}`;

/** The id of the tenant's carrier's usual API key. */
async function carrierKeyId(t: Tenant): Promise<string> {
  const k = await x.sys.store.principals.findApiKeyByHash(sha256(t.carrier.apiKey));
  if (!k) throw new Error(`no key of ${t.carrier.id}`);
  return k.id;
}

/** A new API key of the tenant's carrier; its id. */
async function throwawayKey(t: Tenant): Promise<string> {
  return (await x.sys.auth.createApiKey(t.carrier.id, { name: `Matrix ${tag(t)}` })).id;
}

/** A new pending courier invitation of the tenant's carrier, and its link token. */
async function courierInvite(t: Tenant): Promise<{ id: string; token: string }> {
  const token = randomBytes(32).toString('base64url');
  const now = x.sys.clock.now();
  const id = `cinv-${tag(t)}`;
  await x.sys.store.principals.createCourierInvite({
    id,
    carrierId: t.carrier.id,
    tokenHash: sha256(token),
    displayName: 'Matrix courier',
    createdBy: 'matrix',
    createdAt: now,
    expiresAt: now + 3_600_000,
    acceptedBy: null,
    acceptedAt: null,
    revokedAt: null,
  });
  return { id, token };
}

/** A new courier of the tenant's carrier (revoking one disables it for good); its id. */
async function throwawayCourier(t: Tenant): Promise<string> {
  const id = `courier-${tag(t)}`;
  await x.sys.store.principals.create(
    { id, role: 'courier', displayName: 'Matrix courier', homeId: null, carrierId: t.carrier.id },
    { username: id, passwordHash: 'unused' },
  );
  return id;
}

/** The link token of a pending invitation of the own tenant's carrier. */
let courierInviteToken = '';

// ---- carrier deliveries: every change is sent with an Idempotency-Key of its own ----

/** Sends a carrier's POST as a carrier's system does: JSON, with a fresh Idempotency-Key. */
async function withIdempotencyKey(req: Req, token: string | null): Promise<Answer> {
  const res = await fetch(`${x.sys.url}${req.path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(req.json ?? {}),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  const body = (text ? JSON.parse(text) : {}) as Answer['body'];
  return { status: res.status, headers: res.headers, bytes, text, body };
}

/** A new doorstep delivery of the tenant's courier, made through the carrier API; its id. */
async function doorstepDelivery(t: Tenant): Promise<string> {
  const now = x.sys.clock.now();
  const a = await withIdempotencyKey(
    {
      path: '/api/carrier/deliveries',
      json: {
        homeId: t.homeId,
        packageRef: `PKG-MATRIX-${randomUUID().slice(0, 8)}`,
        windowStart: now,
        windowEnd: now + 3_600_000,
        courierId: t.courier.id,
        placement: 'doorstep',
      },
    },
    t.carrier.apiKey,
  );
  if (a.status !== 201) throw new Error(`doorstep delivery at ${t.homeId}: ${a.status} ${a.text}`);
  return (a.body.delivery as { id: string }).id;
}

/** The delivery of the tenant's finished session (the one with an alarm and a clip). */
async function finishedDelivery(t: Tenant): Promise<string> {
  const id = (await x.sys.store.sessions.get(t.sessionId))?.deliveryId;
  if (!id) throw new Error(`the session of ${t.key} has no delivery`);
  return id;
}

/** A delivery's courier, status and live grant: what a refused change must leave alone. */
async function deliveryState(id: string): Promise<unknown> {
  const d = await x.sys.store.deliveries.get(id);
  const g = await x.sys.store.deliveries.getGrantForDelivery(id);
  return { courierId: d?.courierId, status: d?.status, grant: g && [g.principalId, g.revokedAt] };
}

// ---- the matrix ----

const MATRIX: readonly Row[] = [
  // System and pages: public.
  {
    route: 'GET /api/health',
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({ path: '/api/health' }),
    check: (_c, a) => expect(a.body).toEqual({ ok: true }),
  },
  {
    route: 'GET /api/config',
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({ path: '/api/config' }),
    check: (_c, a) => expect(a.body).toHaveProperty('demo'),
  },
  publicPage('GET /docs', '/docs', /text\/html/),
  publicPage('GET /docs/static/index.html', '/docs/static/index.html', /text\/html/),
  publicPage(
    'GET /docs/static/swagger-initializer.js',
    '/docs/static/swagger-initializer.js',
    /javascript/,
  ),
  publicPage('GET /docs/static/*', '/docs/static/swagger-ui.css', /text\/css/),
  publicPage('GET /docs/json', '/docs/json', /json/),
  publicPage('GET /docs/yaml', '/docs/yaml', /yaml/),
  publicPage('GET /', '/', /text\/html/),
  ...[
    '/courier',
    '/home',
    '/sessions',
    '/settings',
    '/alarms',
    '/sign-in',
    '/guests',
    '/guest',
    '/invite',
    '/courier-invite',
  ].flatMap((p) => [
    publicPage(`GET ${p}`, p, /text\/html/),
    publicPage(`GET ${p}/*`, `${p}/anything/here`, /text\/html/),
  ]),
  ...(existsSync(join(WEB_DIST_DIR, 'index.html'))
    ? [
        {
          route: 'GET <each file of web/dist>',
          covers: (key: string) => key.startsWith('GET /') && isDistFile(key.slice(4)),
          tenancies: NONE,
          expect: EVERYONE,
          // Every file, so each registered file route is exercised.
          request: () => ({ path: '/' }),
          send: async (_c: Cell, _req: Req, token: string | null) => {
            const answers = await Promise.all(distFiles().map((p) => x.call('GET', p, { token })));
            const bad = answers.find((a) => a.status !== 200);
            return bad ?? answers[0] ?? x.call('GET', '/index.html');
          },
        } satisfies Row,
      ]
    : []),

  // Signing in and out, and who is signed in.
  {
    route: 'POST /api/auth/sign-in',
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({
      path: '/api/auth/sign-in',
      json: { username: x.own.member.username, password: x.own.member.password },
    }),
    check: (_c, a) => expect((a.body.principal as Principal).id).toBe(x.own.member.id),
    restore: async (_c, _req, a) => {
      await x.call('POST', '/api/auth/sign-out', { token: String(a.body.token) });
    },
  },
  {
    route: 'POST /api/auth/sign-out',
    tenancies: NONE,
    expect: EVERYONE,
    request: async (c) => {
      const p = me(c);
      return p
        ? { path: '/api/auth/sign-out', token: await x.freshToken(p) }
        : { path: '/api/auth/sign-out' };
    },
    check: async (c, _a, req) => {
      // The token signed out is dead; the caller's other sign-ins (or API key) still work.
      if (req.token !== undefined) {
        expect((await x.call('GET', '/api/me', { token: req.token })).status).toBe(401);
      }
      const usual = credential(c.caller);
      if (usual !== null)
        expect((await x.call('GET', '/api/me', { token: usual })).status).toBe(200);
    },
  },
  {
    route: 'GET /api/auth/session',
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({ path: '/api/auth/session' }),
    check: (c, a) => {
      const principal = a.body.principal as Principal | null;
      expect(principal?.id ?? null).toBe(me(c)?.id ?? null);
    },
  },
  {
    route: 'GET /api/me',
    tenancies: NONE,
    expect: {
      anonymous: 401,
      owner: 'allow',
      member: 'allow',
      guest: 'allow',
      courier: 'allow',
      carrier: 'allow',
    },
    request: () => ({ path: '/api/me' }),
    check: (c, a) => {
      if (c.caller === 'anonymous') throw new Error('nobody cannot be allowed');
      expect((a.body.principal as Principal).id).toBe(principalIdOf(c.caller));
    },
  },

  // Passkeys: every principal who signs in with a password manages their own; anyone signs in.
  {
    route: 'GET /api/auth/passkeys',
    tenancies: WITH_PEER,
    peer: "own tenant, another person's passkey",
    expect: {
      anonymous: 401,
      owner: LISTED_P,
      member: LISTED_P,
      guest: LISTED_P,
      courier: LISTED_P,
      carrier: 403,
    },
    request: () => ({ path: '/api/auth/passkeys' }),
    check: (c, a) => {
      if (c.tenancy === 'own') expect(json(a)).toContain(passkeyOf(x.own, mine(c)));
      if (c.tenancy === 'peer') expect(json(a)).not.toContain(peerPasskey(c));
    },
  },
  {
    route: 'POST /api/auth/passkeys/registration/options',
    tenancies: NONE,
    expect: {
      anonymous: 401,
      owner: 'allow',
      member: 'allow',
      guest: 'allow',
      courier: 'allow',
      carrier: 403,
    },
    request: () => ({ path: '/api/auth/passkeys/registration/options', json: {} }),
    check: (c, a) => {
      const options = a.body.options as CreationOptions;
      expect(options.challenge).toEqual(expect.any(String));
      // The options are the caller's: they exclude the caller's own passkey.
      expect(json(a)).toContain(passkeyOf(x.own, mine(c)));
    },
  },
  {
    route: 'POST /api/auth/passkeys/registration',
    tenancies: NONE,
    expect: {
      anonymous: 401,
      owner: 'allow',
      member: 'allow',
      guest: 'allow',
      courier: 'allow',
      carrier: 403,
    },
    request: async (c) => {
      const p = me(c);
      // Those who may not ask for options send a well-formed answer to made-up ones.
      const options = p
        ? ((
            await x.call('POST', '/api/auth/passkeys/registration/options', {
              token: p.token,
              json: {},
            })
          ).body.options as CreationOptions)
        : {
            challenge: randomBytes(32).toString('base64url'),
            user: { id: randomBytes(32).toString('base64url') },
          };
      return {
        path: '/api/auth/passkeys/registration',
        json: { name: 'Matrix key', response: x.authenticator().create(options) },
      };
    },
    state: () => passkeyIds(),
    check: async (c, a) => {
      const id = (a.body.passkey as { id: string }).id;
      expect((await x.sys.store.passkeys.get(id))?.principalId).toBe(mine(c).id);
    },
    restore: async (_c, _req, a) => {
      const id = (a.body.passkey as { id?: string } | undefined)?.id;
      const stored = id === undefined ? null : await x.sys.store.passkeys.get(id);
      if (stored) await x.sys.store.passkeys.remove(stored.id, stored.principalId);
    },
  },
  {
    route: 'DELETE /api/auth/passkeys/:passkeyId',
    tenancies: WITH_PEER,
    peer: "own tenant, another person's passkey",
    expect: {
      anonymous: 401,
      owner: OWN_P,
      member: OWN_P,
      guest: OWN_P,
      courier: OWN_P,
      carrier: 403,
    },
    notFound: { other: 'passkey.not-found', peer: 'passkey.not-found' },
    request: async (c) => {
      const id =
        c.tenancy === 'other'
          ? passkeyOf(x.other, x.other.owner)
          : c.tenancy === 'peer'
            ? peerPasskey(c)
            : c.outcome === 'allow'
              ? (await x.registerPasskey(mine(c).token)).id
              : passkeyOf(x.own, x.own.owner);
      return { path: `/api/auth/passkeys/${id}`, ref: id };
    },
    state: async (_c, req) => (await x.sys.store.passkeys.get(req.ref ?? ''))?.principalId ?? null,
    check: async (_c, _a, req) => expect(await x.sys.store.passkeys.get(req.ref ?? '')).toBeNull(),
  },
  {
    route: 'POST /api/auth/passkeys/authentication/options',
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({ path: '/api/auth/passkeys/authentication/options', json: {} }),
    check: (_c, a) => expect(a.body.challengeId).toEqual(expect.any(String)),
  },
  {
    route: 'POST /api/auth/passkeys/authentication',
    tenancies: NONE,
    expect: EVERYONE,
    request: async () => {
      const o = await x.call('POST', '/api/auth/passkeys/authentication/options', { json: {} });
      const key = x.own.passkeys.get(x.own.owner.id);
      if (!key) throw new Error('the owner has no passkey');
      return {
        path: '/api/auth/passkeys/authentication',
        json: {
          challengeId: o.body.challengeId,
          response: key.authenticator.get(o.body.options as RequestOptions),
        },
      };
    },
    check: (_c, a) => expect((a.body.principal as Principal).id).toBe(x.own.owner.id),
    restore: async (_c, _req, a) => {
      await x.call('POST', '/api/auth/sign-out', { token: String(a.body.token) });
    },
  },

  // The home: status, settings, remote lock and unlock.
  {
    route: 'GET /api/homes',
    tenancies: OWN_OTHER,
    expect: {
      anonymous: 401,
      owner: LISTED,
      member: LISTED,
      guest: 403,
      courier: 403,
      carrier: 403,
    },
    request: () => ({ path: '/api/homes' }),
    check: (c, a) => {
      if (c.outcome === 'allow') expect(json(a)).toContain(x.own.homeId);
    },
  },
  {
    route: 'GET /api/homes/:homeId',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}` }),
    check: (_c, a) => expect(json(a)).toContain(x.own.doorId),
  },
  {
    route: 'GET /api/homes/:homeId/settings',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/settings` }),
    check: async (_c, a) => expect(a.body.settings).toEqual(settingsOf(await home(x.own))),
  },
  {
    route: 'PUT /api/homes/:homeId/settings',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: async (c) => {
      const now = settingsOf(await home(homeOf(c)));
      return {
        path: `/api/homes/${homeOf(c).homeId}/settings`,
        json: { ...now, daysOff: ['sun'], askTimeoutS: now.askTimeoutS === 90 ? 120 : 90 },
      };
    },
    state: async (c) => settingsOf(await home(homeOf(c))),
    check: async (_c, _a, req) => expect(settingsOf(await home(x.own))).toEqual(req.json),
    restore: async (c, _req, _a, before) => {
      const s = before as ReturnType<typeof settingsOf>;
      await x.sys.store.homes.updateDeliverySettings(homeOf(c).homeId, s.inHomeDelivery, {
        daysOff: s.daysOff,
        askFirst: s.askFirst,
        askTimeoutMs: s.askTimeoutS * 1000,
      });
    },
  },
  {
    route: 'POST /api/homes/:homeId/doors/:doorId/command',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's door",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'door.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/doors/${objectOf(c).doorId}/command`,
      json: { action: 'unlock', confirm: true },
    }),
    state: async (c) => ({
      bolt: objectOf(c).sim.lock.bolt(),
      commands: await auditCount(`door:${objectOf(c).doorId}`, 'remote.command'),
    }),
    check: async () => {
      await waitFor(() => x.own.sim.lock.bolt() === 'unlocked', 5_000, 'the lock is unlocked');
    },
    restore: (c) => x.lockDoor(objectOf(c)),
  },

  // Access sessions, clips, the audit export and alarms.
  {
    route: 'GET /api/homes/:homeId/sessions',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/sessions` }),
    check: (_c, a) => expect(json(a)).toContain(x.own.sessionId),
  },
  {
    route: 'GET /api/sessions/:sessionId',
    tenancies: WITH_PEER,
    peer: "own home, another courier's session",
    expect: {
      anonymous: 401,
      // The household sees every session at its home, whoever the courier was.
      owner: { own: 'allow', other: 404, peer: 'allow' },
      member: { own: 'allow', other: 404, peer: 'allow' },
      guest: 403,
      courier: OWN_P,
      carrier: 403,
    },
    notFound: { other: 'session.not-found', peer: 'session.not-found' },
    request: (c) => ({
      path: `/api/sessions/${c.tenancy === 'peer' ? x.peers.sessionId : objectOf(c).sessionId}`,
    }),
    check: (c, a) =>
      expect((a.body.session as SessionView).id).toBe(
        c.tenancy === 'peer' ? x.peers.sessionId : x.own.sessionId,
      ),
  },
  {
    route: 'GET /api/sessions/:sessionId/clip',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'session.not-found' },
    request: (c) => ({ path: `/api/sessions/${objectOf(c).sessionId}/clip` }),
    check: (_c, a) => expect((a.body.frames as unknown[]).length).toBeGreaterThan(0),
  },
  {
    route: 'GET /api/sessions/:sessionId/clip/:seq',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'session.not-found' },
    request: (c) => ({
      path: `/api/sessions/${objectOf(c).sessionId}/clip/${objectOf(c).frameSeq}`,
    }),
    check: (_c, a) => {
      expect(a.headers.get('content-type')).toBe('image/jpeg');
      expect(createHash('sha256').update(a.bytes).digest('hex')).toBe(
        a.headers.get('x-frame-digest'),
      );
    },
  },
  {
    route: 'GET /api/homes/:homeId/audit',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's session",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'session.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/audit?sessionId=${objectOf(c).sessionId}`,
    }),
    check: (_c, a) => {
      expect(a.body).toMatchObject({
        format: 'threshold-audit-export/v1',
        homeId: x.own.homeId,
        sessionId: x.own.sessionId,
      });
      expect((a.body.entries as unknown[]).length).toBeGreaterThan(0);
    },
  },
  {
    route: 'POST /api/sessions/:sessionId/decision',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'session.not-found' },
    setup: async () => {
      for (const t of [x.own, x.other]) {
        settingsBefore.set(t.key, await home(t));
        await x.setAskFirst(t, true);
        decisionWaiting.set(t.key, await x.waitingSession(t));
      }
    },
    teardown: async () => {
      for (const t of [x.own, x.other]) {
        const id = decisionWaiting.get(t.key);
        if (id !== undefined) await x.endSession(id, t);
        const before = settingsBefore.get(t.key);
        if (before) {
          await x.sys.store.homes.updateDeliverySettings(
            t.homeId,
            before.inHomeDelivery,
            before.delivery,
          );
        }
      }
    },
    request: async (c) => {
      const t = objectOf(c);
      if (c.outcome === 'allow') {
        // Each answer ends a session: an allowed caller answers a waiting session of its own.
        await x.endSession(shared(decisionWaiting, t), t);
        decisionWaiting.set(t.key, await x.waitingSession(t));
      }
      const id = shared(decisionWaiting, t);
      return {
        path: `/api/sessions/${id}/decision`,
        json: { decision: 'leave-at-door' },
        ref: id,
      };
    },
    state: async (_c, req) => {
      const s = await x.session(req.ref ?? '');
      return { state: s.state, approval: s.approval };
    },
    check: (c, a) => {
      const s = a.body.session as SessionView;
      expect(s.state).toBe('refused');
      expect(s.approval?.decidedBy).toBe(mine(c).id);
    },
  },
  {
    route: 'GET /api/homes/:homeId/alarms',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/alarms` }),
    check: (_c, a) => expect(json(a)).toContain(x.own.sessionId),
  },
  {
    route: 'POST /api/sessions/:sessionId/alarms/:alarmType/ack',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'session.not-found' },
    request: (c) => ({
      path: `/api/sessions/${objectOf(c).sessionId}/alarms/${objectOf(c).alarmType}/ack`,
      json: {},
    }),
    state: async (c) => x.sys.store.alarmAcks.listForSession(objectOf(c).sessionId),
    check: (_c, a) =>
      expect(a.body.alarm).toMatchObject({
        sessionId: x.own.sessionId,
        acknowledged: { by: expect.any(String) as string },
      }),
  },

  // The carrier's webhooks (scope webhooks:manage).
  {
    route: 'POST /api/carrier/webhooks',
    tenancies: NONE,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: 'allow' },
    request: () => ({
      path: '/api/carrier/webhooks',
      json: { url: `https://hooks.matrix.invalid/${randomUUID()}` },
    }),
    state: async () =>
      (await x.sys.store.db.selectFrom('webhooks').select('id').orderBy('id').execute()).map(
        (r) => r.id,
      ),
    check: async (_c, a) => {
      expect(a.status).toBe(201);
      const id = (a.body.webhook as { id: string }).id;
      const stored = await x.sys.webhooks.repo.get(id);
      expect(stored).toMatchObject({ carrierId: x.own.carrier.id, disabledAt: null });
      expect(a.body.secret).toBe(x.sys.webhooks.secretFor(stored?.secretSalt ?? ''));
    },
    restore: async (_c, _req, a) => {
      await x.sys.webhooks.disable((a.body.webhook as { id: string }).id);
    },
  },
  {
    route: 'GET /api/carrier/webhooks',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: LISTED },
    request: async (c) => {
      await x.webhookOf(objectOf(c));
      return { path: '/api/carrier/webhooks' };
    },
    check: async (c, a) => {
      if (c.outcome === 'allow') expect(json(a)).toContain((await x.webhookOf(x.own)).webhookId);
    },
  },
  {
    route: 'POST /api/carrier/webhooks/:webhookId/disable',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'webhook.not-found' },
    request: async (c) => {
      // An allowed call disables a webhook of its own, so the shared one stays active.
      const id =
        c.outcome === 'allow'
          ? await x.newWebhook(x.own)
          : (await x.webhookOf(objectOf(c))).webhookId;
      return { path: `/api/carrier/webhooks/${id}/disable`, json: {}, ref: id };
    },
    state: async (_c, req) => (await x.sys.webhooks.repo.get(req.ref ?? ''))?.disabledAt,
    check: async (_c, a, req) => {
      expect((a.body.webhook as { disabledAt: number | null }).disabledAt).not.toBeNull();
      expect((await x.sys.webhooks.repo.get(req.ref ?? ''))?.disabledAt).not.toBeNull();
    },
  },
  {
    route: 'POST /api/carrier/webhooks/:webhookId/rotate-secret',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'webhook.not-found' },
    request: async (c) => {
      const id = (await x.webhookOf(objectOf(c))).webhookId;
      return { path: `/api/carrier/webhooks/${id}/rotate-secret`, json: {}, ref: id };
    },
    state: async (_c, req) => (await x.sys.webhooks.repo.get(req.ref ?? ''))?.secretSalt,
    check: async (_c, a, req) => {
      const salt = (await x.sys.webhooks.repo.get(req.ref ?? ''))?.secretSalt ?? '';
      expect(a.body.secret).toBe(x.sys.webhooks.secretFor(salt));
    },
  },
  {
    route: 'GET /api/carrier/webhooks/:webhookId/deliveries',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'webhook.not-found' },
    request: async (c) => ({
      path: `/api/carrier/webhooks/${(await x.webhookOf(objectOf(c))).webhookId}/deliveries?limit=10`,
    }),
    check: async (_c, a) => expect(json(a)).toContain((await x.webhookOf(x.own)).deliveryLogId),
  },
  {
    route: 'POST /api/carrier/webhook-deliveries/:webhookDeliveryId/resend',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'webhook.delivery-not-found' },
    request: async (c) => {
      const f = await x.webhookOf(objectOf(c));
      return {
        path: `/api/carrier/webhook-deliveries/${f.deliveryLogId}/resend`,
        json: {},
        ref: f.webhookId,
      };
    },
    state: async (_c, req) => (await x.sys.webhooks.repo.listDeliveries(req.ref ?? '', 100)).length,
    check: async (_c, a, req) => {
      expect(a.status).toBe(202);
      expect(a.body.delivery).toMatchObject({ webhookId: req.ref, status: 'pending' });
    },
  },

  // The courier at the door.
  {
    route: 'GET /api/courier/deliveries',
    tenancies: [...WITH_PEER, 'past'],
    peer: "own carrier, another courier's delivery",
    past: 'own delivery whose window ended yesterday',
    expect: {
      anonymous: 401,
      owner: 403,
      member: 403,
      guest: 403,
      courier: { own: 'allow', other: 'hidden', peer: 'hidden', past: 'hidden' },
      carrier: 403,
    },
    request: () => ({ path: '/api/courier/deliveries' }),
    check: (c, a) => {
      const ids = (a.body.deliveries as { id: string }[]).map((d) => d.id);
      if (c.tenancy === 'own') expect(ids).toContain(x.own.deliveryId);
      if (c.tenancy === 'peer') expect(ids).not.toContain(x.peers.deliveryId);
      if (c.tenancy === 'past') {
        expect(ids, 'a delivery whose window ended yesterday is still listed').not.toContain(
          x.peers.pastDeliveryId,
        );
      }
    },
  },
  {
    route: 'POST /api/courier/deliveries/:deliveryId/access',
    tenancies: WITH_PEER,
    peer: "own carrier, another courier's delivery",
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: OWN_P, carrier: 403 },
    notFound: { other: 'delivery.not-found', peer: 'delivery.not-found' },
    setup: async () => {
      for (const t of [x.own, x.other]) {
        await x.devicesReady(t);
        accessDelivery.set(t.key, await x.newDelivery(t));
      }
    },
    request: (c) => {
      const id = c.tenancy === 'peer' ? x.peers.deliveryId : shared(accessDelivery, objectOf(c));
      return {
        path: `/api/courier/deliveries/${id}/access`,
        json: { position: objectOf(c).doorstep },
        ref: id,
      };
    },
    state: async (c, req) => ({
      delivery: (await x.sys.store.deliveries.get(req.ref ?? ''))?.status,
      sessions: (await x.sys.store.sessions.findForDelivery(req.ref ?? '')).length,
      bolt: objectOf(c).sim.lock.bolt(),
    }),
    check: (_c, a) => expect((a.body.session as SessionView).state).toBe('open'),
    restore: async (c, _req, a) => {
      const id = (a.body.session as SessionView | undefined)?.id;
      if (id !== undefined) await x.endSession(id, objectOf(c));
      await x.lockDoor(objectOf(c));
    },
  },
  {
    route: 'POST /api/courier/deliveries/:deliveryId/left-at-door',
    tenancies: WITH_PEER,
    peer: "own carrier, another courier's delivery",
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: OWN_P, carrier: 403 },
    notFound: { other: 'delivery.not-found', peer: 'delivery.not-found' },
    request: async (c) => {
      // An allowed call settles its delivery: it gets a doorstep delivery of its own.
      const id =
        c.tenancy === 'other'
          ? x.other.deliveryId
          : c.tenancy === 'peer'
            ? x.peers.deliveryId
            : c.outcome === 'allow'
              ? await doorstepDelivery(x.own)
              : x.own.deliveryId;
      return { path: `/api/courier/deliveries/${id}/left-at-door`, json: {}, ref: id };
    },
    state: (_c, req) => deliveryState(req.ref ?? ''),
    check: (_c, a, req) =>
      expect(a.body.delivery).toMatchObject({ id: req.ref, status: 'left-at-door' }),
  },
  {
    route: 'POST /api/courier/sessions/:sessionId/relock',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: OWN, carrier: 403 },
    notFound: { other: 'session.not-found' },
    setup: async () => {
      for (const t of [x.own, x.other]) relockSession.set(t.key, await x.openSession(t));
    },
    teardown: async () => {
      for (const t of [x.own, x.other]) {
        const id = relockSession.get(t.key);
        if (id !== undefined) await x.endSession(id, t);
        await x.lockDoor(t);
      }
    },
    request: (c) => {
      const id = shared(relockSession, objectOf(c));
      return { path: `/api/courier/sessions/${id}/relock`, json: {}, ref: id };
    },
    state: async (_c, req) => {
      const s = await x.session(req.ref ?? '');
      return { state: s.state, relockRequestedAt: s.relockRequestedAt };
    },
    check: async (_c, a, req) => {
      expect(a.body.confirmed).toBe(true);
      expect((await x.settled(req.ref ?? '')).state).toBe('completed');
    },
  },
  {
    route: 'GET /api/courier/sessions/:sessionId',
    tenancies: WITH_PEER,
    peer: "own carrier, another courier's session",
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: OWN_P, carrier: 403 },
    notFound: { other: 'session.not-found', peer: 'session.not-found' },
    request: (c) => ({
      path: `/api/courier/sessions/${c.tenancy === 'peer' ? x.peers.sessionId : objectOf(c).sessionId}`,
    }),
    check: (_c, a) => expect((a.body.session as SessionView).id).toBe(x.own.sessionId),
  },

  // Guests: the household invites and revokes; the link is the credential; the guest enters.
  {
    route: 'POST /api/homes/:homeId/invites',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's door",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'door.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/invites`,
      json: {
        displayName: 'Matrix visitor',
        doorId: objectOf(c).doorId,
        schedule: { kind: 'always' },
      },
    }),
    state: async (c) => (await x.sys.store.guestGrants.listInvitesForHome(homeOf(c).homeId)).length,
    check: (_c, a) => {
      expect(a.body.invite).toMatchObject({ homeId: x.own.homeId, status: 'pending' });
      expect(a.body.token).toEqual(expect.any(String));
    },
    restore: async (_c, _req, a) => {
      const id = (a.body.invite as { id?: string } | undefined)?.id;
      if (id !== undefined) await x.sys.store.guestGrants.revokeInvite(id, x.sys.clock.now());
    },
  },
  {
    route: 'GET /api/homes/:homeId/guests',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/guests` }),
    check: (_c, a) => {
      expect(json(a)).toContain(x.own.guestGrantId);
      expect(json(a)).toContain(x.own.invite.id);
    },
  },
  {
    route: 'POST /api/homes/:homeId/grants/:grantId/revoke',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's grant",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'grant.unknown' },
    request: async (c) => {
      // Revoking a grant revokes all its guest's grants: an allowed call gets a guest of its own.
      const id =
        c.tenancy === 'own' && c.outcome === 'allow'
          ? await x.newGuestGrant(x.own)
          : objectOf(c).guestGrantId;
      return { path: `/api/homes/${homeOf(c).homeId}/grants/${id}/revoke`, json: {}, ref: id };
    },
    state: async (_c, req) => (await x.sys.store.guestGrants.get(req.ref ?? ''))?.revokedAt ?? null,
    check: async (_c, a, req) => {
      expect(a.body.revoked).toContain(req.ref);
      expect((await x.sys.store.guestGrants.get(req.ref ?? ''))?.revokedAt).not.toBeNull();
    },
  },
  {
    route: 'POST /api/homes/:homeId/invites/:inviteId/revoke',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's invitation",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'invite.not-found' },
    request: async (c) => {
      const id =
        c.tenancy === 'own' && c.outcome === 'allow'
          ? (await x.invitation(x.own, 'matrix')).id
          : objectOf(c).invite.id;
      return { path: `/api/homes/${homeOf(c).homeId}/invites/${id}/revoke`, json: {}, ref: id };
    },
    state: async (c, req) => {
      const invites = await x.sys.store.guestGrants.listInvitesForHome(objectOf(c).homeId);
      return invites.find((i) => i.id === req.ref)?.revokedAt ?? null;
    },
    check: (_c, a, req) => expect(a.body.invite).toMatchObject({ id: req.ref, status: 'revoked' }),
  },
  {
    route: 'POST /api/homes/:homeId/members/:principalId/remove',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's member",
    expect: { anonymous: 401, owner: OWN_X, member: 403, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'principal.not-found' },
    request: async (c) => {
      // An allowed call removes someone: a member made for the purpose, never the world's own.
      let id = objectOf(c).member.id;
      if (c.tenancy === 'own' && c.outcome === 'allow') {
        id = `member-matrix-${Math.random().toString(36).slice(2, 10)}`;
        await x.sys.store.principals.create(
          {
            id,
            role: 'member',
            displayName: 'Matrix member',
            homeId: x.own.homeId,
            carrierId: null,
          },
          { username: id, passwordHash: 'unused' },
        );
      }
      return { path: `/api/homes/${homeOf(c).homeId}/members/${id}/remove`, json: {}, ref: id };
    },
    state: async (_c, req) => x.sys.store.principals.isDisabled(req.ref ?? ''),
    check: (_c, a, req) => expect(a.body).toMatchObject({ removed: req.ref }),
  },
  {
    // The link's token is the credential: whoever holds it may look, signed in or not.
    route: 'GET /api/invites/:token',
    tenancies: NONE,
    expect: EVERYONE,
    request: () => ({ path: `/api/invites/${x.own.invite.token}` }),
    check: (_c, a) => expect(a.body.invite).toMatchObject({ id: x.own.invite.id }),
  },
  {
    route: 'POST /api/invites/:token/accept',
    tenancies: NONE,
    expect: EVERYONE,
    request: async () => {
      // A link works once: each call gets a link of its own.
      const { token } = await x.invitation(x.own, 'matrix');
      const tag = randomBytes(4).toString('hex');
      return {
        path: `/api/invites/${token}/accept`,
        json: { username: `matrix-visitor-${tag}`, password: `a long password ${tag}` },
      };
    },
    check: async (_c, a) => {
      const principal = a.body.principal as Principal;
      expect(principal).toMatchObject({ role: 'guest', homeId: x.own.homeId });
      const grants = await x.sys.store.guestGrants.listForPrincipal(principal.id);
      expect(grants.map((g) => g.homeId)).toEqual([x.own.homeId]);
    },
    restore: async (_c, _req, a) => {
      const principal = a.body.principal as Principal | undefined;
      if (principal) {
        await x.sys.store.guestGrants.revokeCascading(
          principal.id,
          x.own.owner.id,
          x.sys.clock.now(),
          'matrix cleanup',
        );
      }
      await x.call('POST', '/api/auth/sign-out', { token: String(a.body.token) });
    },
  },
  {
    route: 'GET /api/guest/grants',
    tenancies: WITH_PEER,
    peer: "own home, another guest's grant",
    expect: {
      anonymous: 401,
      owner: 403,
      member: 403,
      guest: LISTED_P,
      courier: 403,
      carrier: 403,
    },
    request: () => ({ path: '/api/guest/grants' }),
    check: (c, a) => {
      const ids = (a.body.grants as { id: string }[]).map((g) => g.id);
      if (c.tenancy === 'own') expect(ids).toContain(x.own.guestGrantId);
      if (c.tenancy === 'peer') expect(ids).not.toContain(x.peers.guestGrantId);
    },
  },
  {
    route: 'POST /api/guest/grants/:grantId/access',
    tenancies: WITH_PEER,
    peer: "own home, another guest's grant",
    expect: { anonymous: 401, owner: 403, member: 403, guest: OWN_P, courier: 403, carrier: 403 },
    notFound: { other: 'grant.unknown', peer: 'grant.unknown' },
    setup: async () => {
      for (const t of [x.own, x.other]) await x.devicesReady(t);
    },
    request: (c) => {
      const id = c.tenancy === 'peer' ? x.peers.guestGrantId : objectOf(c).guestGrantId;
      return { path: `/api/guest/grants/${id}/access`, json: {}, ref: id };
    },
    state: async (c, req) => ({
      uses: (await x.sys.store.guestGrants.get(req.ref ?? ''))?.uses,
      sessions: (await x.sys.store.sessions.listForHome(objectOf(c).homeId)).length,
      bolt: objectOf(c).sim.lock.bolt(),
    }),
    check: (_c, a) => expect((a.body.session as SessionView).state).toBe('open'),
    restore: async (c, _req, a) => {
      const id = (a.body.session as SessionView | undefined)?.id;
      if (id !== undefined) await x.endSession(id, objectOf(c));
      await x.lockDoor(objectOf(c));
    },
  },
  {
    route: 'POST /api/guest/sessions/:sessionId/relock',
    tenancies: WITH_PEER,
    peer: "own home, the courier's session",
    expect: { anonymous: 401, owner: 403, member: 403, guest: OWN_P, courier: 403, carrier: 403 },
    notFound: { other: 'session.not-found', peer: 'session.not-found' },
    setup: async () => {
      for (const t of [x.own, x.other]) {
        guestSession.set(t.key, await x.guestEntry(t, t.guest, t.guestGrantId));
      }
    },
    teardown: async () => {
      for (const t of [x.own, x.other]) {
        const id = guestSession.get(t.key);
        if (id !== undefined) await x.endSession(id, t);
        await x.lockDoor(t);
      }
    },
    request: (c) => {
      const id = c.tenancy === 'peer' ? x.own.sessionId : shared(guestSession, objectOf(c));
      return { path: `/api/guest/sessions/${id}/relock`, json: {}, ref: id };
    },
    state: async (_c, req) => {
      const s = await x.session(req.ref ?? '');
      return { state: s.state, relockRequestedAt: s.relockRequestedAt };
    },
    check: async (_c, a, req) => {
      expect(a.body.confirmed).toBe(true);
      expect((await x.settled(req.ref ?? '')).state).toBe('completed');
    },
  },

  {
    route: 'GET /api/guest/sessions/:sessionId',
    tenancies: WITH_PEER,
    peer: "own home, the courier's session",
    expect: { anonymous: 401, owner: 403, member: 403, guest: OWN_P, courier: 403, carrier: 403 },
    notFound: { other: 'session.not-found', peer: 'session.not-found' },
    setup: async () => {
      for (const t of [x.own, x.other]) {
        guestSession.set(t.key, await x.guestEntry(t, t.guest, t.guestGrantId));
      }
    },
    teardown: async () => {
      for (const t of [x.own, x.other]) {
        const id = guestSession.get(t.key);
        if (id !== undefined) await x.endSession(id, t);
        await x.lockDoor(t);
      }
    },
    request: (c) => {
      const id = c.tenancy === 'peer' ? x.own.sessionId : shared(guestSession, objectOf(c));
      return { path: `/api/guest/sessions/${id}`, ref: id };
    },
    check: (_c, a, req) => expect((a.body.session as SessionView).id).toBe(req.ref),
  },

  // The carrier's systems (API key).
  {
    route: 'POST /api/carrier/deliveries',
    tenancies: [...WITH_CROSS, 'cross2'],
    cross: "own home, other tenant's door",
    cross2: "own home, other carrier's courier",
    expect: {
      anonymous: 401,
      owner: 403,
      member: 403,
      guest: 403,
      courier: 403,
      carrier: { own: 'allow', other: 404, cross: 404, cross2: NOT_YOUR_COURIER },
    },
    notFound: { other: 'home.not-found', cross: 'door.not-found' },
    request: (c) => {
      const now = x.sys.clock.now();
      return {
        path: '/api/carrier/deliveries',
        json: {
          homeId: homeOf(c).homeId,
          packageRef: `PKG-MATRIX-${randomUUID().slice(0, 8)}`,
          windowStart: now,
          windowEnd: now + 3_600_000,
          ...(c.tenancy === 'cross' ? { doorId: x.other.doorId } : {}),
          ...(c.tenancy === 'cross2' ? { courierId: x.other.courier.id } : {}),
        },
      };
    },
    state: async (c) => (await x.sys.store.deliveries.listForHome(homeOf(c).homeId)).length,
    send: (_c, req, token) => withIdempotencyKey(req, token),
    check: async (_c, a) => {
      expect(a.status).toBe(201);
      const d = a.body.delivery as { id: string };
      expect(await x.sys.store.deliveries.get(d.id)).toMatchObject({
        carrierId: x.own.carrier.id,
        homeId: x.own.homeId,
      });
    },
  },
  {
    route: 'GET /api/carrier/deliveries/:deliveryId',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'delivery.not-found' },
    request: (c) => ({ path: `/api/carrier/deliveries/${objectOf(c).deliveryId}` }),
    check: (_c, a) => expect(json(a)).toContain(x.own.deliveryId),
  },
  {
    route: 'POST /api/carrier/deliveries/:deliveryId/assign',
    tenancies: WITH_CROSS,
    cross: "own delivery, other carrier's courier",
    expect: {
      anonymous: 401,
      owner: 403,
      member: 403,
      guest: 403,
      courier: 403,
      carrier: { own: 'allow', other: 404, cross: NOT_YOUR_COURIER },
    },
    notFound: { other: 'delivery.not-found' },
    request: async (c) => {
      // An allowed call hands its delivery to another courier: it gets a delivery of its own.
      const id =
        c.tenancy === 'other'
          ? x.other.deliveryId
          : c.outcome === 'allow'
            ? await x.newDelivery(x.own)
            : x.own.deliveryId;
      const courierId = c.tenancy === 'cross' ? x.other.courier.id : x.peers.courier.id;
      return { path: `/api/carrier/deliveries/${id}/assign`, json: { courierId }, ref: id };
    },
    state: (_c, req) => deliveryState(req.ref ?? ''),
    send: (_c, req, token) => withIdempotencyKey(req, token),
    check: async (_c, a, req) => {
      expect(a.body.delivery).toMatchObject({ id: req.ref, courierId: x.peers.courier.id });
      const grant = await x.sys.store.deliveries.getGrantForDelivery(req.ref ?? '');
      expect(grant).toMatchObject({ principalId: x.peers.courier.id, revokedAt: null });
    },
  },
  {
    route: 'POST /api/carrier/deliveries/:deliveryId/cancel',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'delivery.not-found' },
    request: async (c) => {
      // An allowed call cancels its delivery: it gets a delivery of its own.
      const id =
        c.tenancy === 'other'
          ? x.other.deliveryId
          : c.outcome === 'allow'
            ? await x.newDelivery(x.own)
            : x.own.deliveryId;
      return { path: `/api/carrier/deliveries/${id}/cancel`, json: { reason: 'Matrix' }, ref: id };
    },
    state: (_c, req) => deliveryState(req.ref ?? ''),
    send: (_c, req, token) => withIdempotencyKey(req, token),
    check: async (_c, a, req) => {
      expect(a.body.delivery).toMatchObject({ id: req.ref, status: 'cancelled' });
      const grant = await x.sys.store.deliveries.getGrantForDelivery(req.ref ?? '');
      expect(grant?.revokedAt).not.toBeNull();
    },
  },
  {
    route: 'GET /api/carrier/deliveries/:deliveryId/proof',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'delivery.not-found' },
    request: async (c) => ({
      path: `/api/carrier/deliveries/${await finishedDelivery(objectOf(c))}/proof`,
    }),
    check: (_c, a) =>
      expect(a.body).toMatchObject({
        format: 'threshold-delivery-proof/v1',
        sessionIds: [x.own.sessionId],
      }),
  },
  {
    route: 'GET /api/carrier/deliveries',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: LISTED },
    // Newest first, a page at a time: one page large enough for every delivery of the world.
    request: () => ({ path: '/api/carrier/deliveries?limit=200' }),
    check: (c, a) => {
      if (c.outcome === 'allow') expect(json(a)).toContain(x.own.deliveryId);
    },
  },

  // Web Push for the household.
  {
    route: 'GET /api/push/public-key',
    tenancies: NONE,
    expect: {
      anonymous: 401,
      owner: 'allow',
      member: 'allow',
      guest: 403,
      courier: 403,
      carrier: 403,
    },
    request: () => ({ path: '/api/push/public-key' }),
    check: (_c, a) => expect(a.body.publicKey).toBe(x.sys.vapid.publicKey),
  },
  {
    route: 'POST /api/push/subscriptions',
    tenancies: NONE,
    expect: {
      anonymous: 401,
      owner: 'allow',
      member: 'allow',
      guest: 403,
      courier: 403,
      carrier: 403,
    },
    request: () => {
      const endpoint = `https://push.example.net/send/matrix-${randomUUID()}`;
      return {
        path: '/api/push/subscriptions',
        json: { endpoint, expirationTime: null, keys: x.pushKeys() },
        ref: endpoint,
      };
    },
    state: () => pushSubscriptions(),
    check: async (c, _a, req) => {
      expect(await x.sys.store.pushSubscriptions.getByEndpoint(req.ref ?? '')).toMatchObject({
        principalId: mine(c).id,
        homeId: x.own.homeId,
      });
    },
    restore: (_c, req) => x.removePushSubscription(req.ref ?? ''),
  },
  {
    route: 'DELETE /api/push/subscriptions',
    tenancies: WITH_PEER,
    peer: "own home, another member's browser",
    expect: {
      anonymous: 401,
      owner: LISTED_P,
      member: LISTED_P,
      guest: 403,
      courier: 403,
      carrier: 403,
    },
    setup: async () => {
      pushEndpoint.set('own', await x.pushSubscription(x.own.owner.id, x.own.homeId, 'own'));
      pushEndpoint.set(
        'other',
        await x.pushSubscription(x.other.owner.id, x.other.homeId, 'birch'),
      );
      peerEndpoint = await x.pushSubscription(x.own.member.id, x.own.homeId, 'member');
    },
    teardown: async () => {
      for (const endpoint of pushEndpoint.values()) await x.removePushSubscription(endpoint);
      await x.removePushSubscription(peerEndpoint);
    },
    request: async (c) => {
      // The owner's peer is the member; everyone else's is the owner.
      const endpoint =
        c.tenancy === 'peer'
          ? c.caller === 'owner'
            ? peerEndpoint
            : shared(pushEndpoint, x.own)
          : c.tenancy === 'own' && c.outcome === 'allow'
            ? await x.pushSubscription(mine(c).id, x.own.homeId, 'mine')
            : shared(pushEndpoint, objectOf(c));
      return { path: '/api/push/subscriptions', json: { endpoint }, ref: endpoint };
    },
    state: async (_c, req) => {
      const s = await x.sys.store.pushSubscriptions.getByEndpoint(req.ref ?? '');
      return s && { principalId: s.principalId, homeId: s.homeId };
    },
    check: async (c, a, req) => {
      expect(a.body).toEqual({ ok: true });
      if (c.outcome === 'allow') {
        expect(await x.sys.store.pushSubscriptions.getByEndpoint(req.ref ?? '')).toBeNull();
      }
    },
  },

  // Live events of the caller's home (household) or of the caller's own sessions (courier).
  {
    route: 'GET /api/events',
    tenancies: OWN_OTHER,
    expect: {
      anonymous: 401,
      owner: LISTED,
      member: LISTED,
      guest: 403,
      courier: LISTED,
      carrier: 403,
    },
    request: () => ({ path: '/api/events' }),
    send: async (c, _req, token) => {
      // Once connected, an event of the tenant named is published, then one of the caller's
      // own tenant that the caller must see; the stream is read until that one arrives.
      const audience = c.caller === 'courier' ? 'courier' : 'household';
      const named = await x.eventOf(objectOf(c), audience);
      const own = await x.eventOf(x.own, audience);
      const ownMarker = audience === 'courier' ? x.own.sessionId : x.own.devices.lock;
      return x.watchEvents(
        token,
        () => {
          x.sys.events.publish(named);
          x.sys.events.publish(own);
        },
        (text) => text.includes(ownMarker),
      );
    },
    check: (c, a) => {
      expect(a.headers.get('content-type')).toContain('text/event-stream');
      const ownMarker = c.caller === 'courier' ? x.own.sessionId : x.own.devices.lock;
      expect(a.text).toContain(ownMarker);
    },
  },

  // The owner's live view of a camera.
  {
    route: 'POST /api/homes/:homeId/cameras/:cameraId/live',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's camera",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'device.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/cameras/${objectOf(c).devices.camera}/live`,
      json: {},
    }),
    state: (c) => auditCount(`device:${objectOf(c).devices.camera}`, 'live-view.started'),
    check: (_c, a) =>
      expect(a.body.view).toMatchObject({
        homeId: x.own.homeId,
        cameraId: x.own.devices.camera,
      }),
  },
  {
    route: 'GET /api/homes/:homeId/locks/:lockId/pins',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's lock",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'device.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/locks/${objectOf(c).devices.lock}/pins`,
    }),
    check: (_c, a) => expect(Array.isArray(a.body.slots)).toBe(true),
  },
  {
    route: 'PUT /api/homes/:homeId/locks/:lockId/pins/:slot',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's lock",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'device.not-found' },
    request: (c) => ({
      method: 'PUT',
      path: `/api/homes/${homeOf(c).homeId}/locks/${objectOf(c).devices.lock}/pins/7`,
      json: { principalId: homeOf(c).guest.id, name: 'Matrix' },
    }),
    state: async (c) =>
      JSON.stringify(await x.sys.store.pinSlots.listForLock(objectOf(c).devices.lock)),
    check: (_c, a) => expect(String(a.body.code)).toMatch(/^[0-9]{6}$/),
    restore: async (c) => {
      const lock = objectOf(c).devices.lock;
      await x.sys.pins.clear(lock, 7);
      await x.sys.pins.settled(lock, 7);
    },
  },
  {
    route: 'POST /api/homes/:homeId/locks/:lockId/pins/:slot/clear',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's lock",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'device.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/locks/${objectOf(c).devices.lock}/pins/8/clear`,
      json: {},
    }),
    state: async (c) =>
      JSON.stringify(await x.sys.store.pinSlots.listForLock(objectOf(c).devices.lock)),
    check: (_c, a) => expect(a.body.slot).toMatchObject({ slot: 8, desired: 'clear' }),
  },
  // Carrier accounts: the carrier's keys and couriers (API key or admin), the courier's link,
  // and the owner's choice of carriers and couriers.
  {
    route: 'POST /api/carrier/keys',
    tenancies: NONE,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: 'allow' },
    request: () => ({
      path: '/api/carrier/keys',
      json: { name: 'Matrix key', scopes: ['deliveries:read'] },
    }),
    state: async () => (await x.sys.store.principals.listApiKeys(x.own.carrier.id)).length,
    check: async (_c, a) => {
      expect(a.status).toBe(201);
      expect(String(a.body.secret)).toMatch(/^thk_/);
      const id = (a.body.key as { id: string }).id;
      expect(await x.sys.store.principals.getApiKey(id)).toMatchObject({
        carrierId: x.own.carrier.id,
      });
    },
    restore: async (_c, _req, a) => {
      const id = (a.body.key as { id?: string } | undefined)?.id;
      if (id !== undefined) await x.sys.store.principals.revokeApiKey(id, x.sys.clock.now());
    },
  },
  {
    route: 'GET /api/carrier/keys',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: LISTED },
    request: () => ({ path: '/api/carrier/keys' }),
    check: async (c, a) => {
      if (c.tenancy === 'own') expect(json(a)).toContain(await carrierKeyId(x.own));
      if (c.tenancy === 'other') expect(json(a)).not.toContain(await carrierKeyId(x.other));
      expect(json(a)).not.toContain(x.own.carrier.apiKey);
    },
  },
  ...(['rotate', 'revoke'] as const).map((action): Row => ({
    route: `POST /api/carrier/keys/:keyId/${action}`,
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'key.not-found' },
    request: async (c) => {
      const id = await throwawayKey(objectOf(c));
      return { path: `/api/carrier/keys/${id}/${action}`, json: {}, ref: id };
    },
    state: async (_c, req) => (await x.sys.store.principals.getApiKey(req.ref ?? ''))?.revokedAt,
    check: async (_c, a, req) => {
      expect((await x.sys.store.principals.getApiKey(req.ref ?? ''))?.revokedAt).not.toBeNull();
      if (action === 'rotate') expect(a.body.replaced).toMatchObject({ id: req.ref });
    },
    restore: async (_c, _req, a) => {
      const id = (a.body.key as { id?: string } | undefined)?.id;
      if (id !== undefined) await x.sys.store.principals.revokeApiKey(id, x.sys.clock.now());
    },
  })),
  {
    route: 'POST /api/carrier/couriers/invites',
    tenancies: NONE,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: 'allow' },
    request: () => ({ path: '/api/carrier/couriers/invites', json: { displayName: 'Matrix' } }),
    state: async () => (await x.sys.store.principals.listCourierInvites(x.own.carrier.id)).length,
    check: (_c, a) => {
      expect(a.status).toBe(201);
      expect(a.body.path).toBe(`/courier-invite/${String(a.body.token)}`);
    },
    restore: async (_c, _req, a) => {
      const id = (a.body.invite as { id?: string } | undefined)?.id;
      if (id !== undefined) await x.sys.store.principals.revokeCourierInvite(id, x.sys.clock.now());
    },
  },
  {
    route: 'GET /api/carrier/couriers',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: LISTED },
    request: () => ({ path: '/api/carrier/couriers' }),
    check: (c, a) => {
      if (c.tenancy === 'own') expect(json(a)).toContain(x.own.courier.id);
      if (c.tenancy === 'other') expect(json(a)).not.toContain(x.other.courier.id);
    },
  },
  {
    route: 'POST /api/carrier/couriers/invites/:inviteId/revoke',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'invite.not-found' },
    request: async (c) => {
      const { id } = await courierInvite(objectOf(c));
      return { path: `/api/carrier/couriers/invites/${id}/revoke`, json: {}, ref: id };
    },
    state: async (_c, req) =>
      (await x.sys.store.principals.getCourierInvite(req.ref ?? ''))?.revokedAt,
    check: (_c, a, req) => expect(a.body.invite).toMatchObject({ id: req.ref, status: 'revoked' }),
  },
  {
    route: 'POST /api/carrier/couriers/:courierId/revoke',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: 403, member: 403, guest: 403, courier: 403, carrier: OWN },
    notFound: { other: 'courier.not-found' },
    request: async (c) => {
      // Revoking disables for good: each call names a courier made for it, never the world's.
      const id = await throwawayCourier(objectOf(c));
      return { path: `/api/carrier/couriers/${id}/revoke`, json: {}, ref: id };
    },
    state: async (_c, req) => x.sys.store.principals.isDisabled(req.ref ?? ''),
    check: async (_c, a, req) => {
      expect(a.body.courier).toMatchObject({ id: req.ref, status: 'revoked' });
      expect(await x.sys.store.principals.isDisabled(req.ref ?? '')).toBe(true);
    },
  },
  {
    // The link's token is the credential: whoever holds it may look, signed in or not.
    route: 'GET /api/courier-invites/:token',
    tenancies: NONE,
    expect: EVERYONE,
    setup: async () => {
      courierInviteToken = (await courierInvite(x.own)).token;
    },
    request: () => ({ path: `/api/courier-invites/${courierInviteToken}` }),
    check: (_c, a) => expect(a.body.carrier).toEqual({ name: 'ParcelCo' }),
  },
  {
    route: 'POST /api/courier-invites/:token/accept',
    tenancies: NONE,
    expect: EVERYONE,
    request: async () => {
      // A link works once: each call gets a link of its own.
      const { token } = await courierInvite(x.own);
      const name = `matrix-courier-${randomBytes(4).toString('hex')}`;
      return {
        path: `/api/courier-invites/${token}/accept`,
        json: { username: name, password: `a long password ${name}` },
      };
    },
    check: (_c, a) => {
      expect(a.body.principal).toMatchObject({ role: 'courier', carrierId: x.own.carrier.id });
    },
    restore: async (_c, _req, a) => {
      const principal = a.body.principal as Principal | undefined;
      if (principal) await x.sys.store.principals.disable(principal.id, x.sys.clock.now());
    },
  },
  {
    route: 'GET /api/homes/:homeId/carriers',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    // Every household chooses among all the server's carriers, the other tenant's included.
    showsOfOther: () => [x.other.carrier.id, 'Birch Express'],
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/carriers` }),
    check: (_c, a) => {
      const carriers = a.body.carriers as { id: string; decision: string }[];
      expect(carriers).toContainEqual(
        expect.objectContaining({ id: x.own.carrier.id, decision: 'allowed' }),
      );
      expect(carriers).toContainEqual(
        expect.objectContaining({ id: x.other.carrier.id, decision: 'undecided' }),
      );
    },
  },
  {
    route: 'PUT /api/homes/:homeId/carriers/:carrierId',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/carriers/${objectOf(c).carrier.id}`,
      json: { decision: 'blocked' },
    }),
    state: (c) => x.sys.store.homes.carrierDecision(homeOf(c).homeId, objectOf(c).carrier.id),
    check: async () => {
      expect(await x.sys.store.homes.carrierDecision(x.own.homeId, x.own.carrier.id)).toBe(
        'blocked',
      );
    },
    restore: async () => {
      await x.sys.store.homes.allowCarrier(x.own.homeId, x.own.carrier.id, x.sys.clock.now());
    },
  },
  {
    route: 'GET /api/homes/:homeId/blocked-couriers',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/blocked-couriers` }),
    check: (_c, a) => {
      const others = a.body.others as { id: string }[];
      expect(others.map((o) => o.id)).toContain(x.own.courier.id);
    },
  },
  ...(['block', 'unblock'] as const).map((action): Row => ({
    route: `POST /api/homes/:homeId/couriers/:courierId/${action}`,
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's courier",
    expect: {
      anonymous: 401,
      owner: OWN_X,
      member: OWN_X,
      guest: 403,
      courier: 403,
      carrier: 403,
    },
    notFound: { other: 'home.not-found', cross: 'courier.not-found' },
    // To unblock, each tenant's courier is blocked first, and unblocked at the end.
    ...(action === 'unblock'
      ? {
          setup: async () => {
            for (const t of [x.own, x.other])
              await x.sys.store.homes.blockCourier(t.homeId, t.courier.id, 1, t.owner.id);
          },
          teardown: async () => {
            for (const t of [x.own, x.other])
              await x.sys.store.homes.unblockCourier(t.homeId, t.courier.id);
          },
        }
      : {}),
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/couriers/${objectOf(c).courier.id}/${action}`,
      json: {},
    }),
    state: (c) => x.sys.store.homes.isCourierBlocked(homeOf(c).homeId, objectOf(c).courier.id),
    check: async () => {
      expect(await x.sys.store.homes.isCourierBlocked(x.own.homeId, x.own.courier.id)).toBe(
        action === 'block',
      );
    },
    restore: async () => {
      if (action === 'block')
        await x.sys.store.homes.unblockCourier(x.own.homeId, x.own.courier.id);
      else await x.sys.store.homes.blockCourier(x.own.homeId, x.own.courier.id, 1, x.own.owner.id);
    },
  })),
  {
    route: 'GET /api/homes/:homeId/entries',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/entries?limit=20` }),
    check: async (_c, a) => {
      const entries = a.body.entries as { id: string }[];
      const stored = await x.sys.store.entries.listForHome(x.own.homeId, null, 20);
      expect(entries.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    },
  },
  {
    route: 'GET /api/homes/:homeId/entry-alerts',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({ path: `/api/homes/${homeOf(c).homeId}/entry-alerts` }),
    check: async (c, a) => {
      const stored = await x.sys.store.entries.alertSetting(
        mine(c).id,
        c.caller === 'owner' ? 'all' : 'chosen',
      );
      expect(a.body.alerts).toMatchObject({ mode: stored.mode, chosen: stored.chosen });
    },
  },
  {
    route: 'PUT /api/homes/:homeId/entry-alerts',
    tenancies: OWN_OTHER,
    expect: { anonymous: 401, owner: OWN, member: OWN, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/entry-alerts`,
      json: { mode: 'off', people: [] },
    }),
    state: async () =>
      JSON.stringify(
        await Promise.all(
          [x.own.owner, x.own.member, x.other.owner, x.other.member].map((p) =>
            x.sys.store.entries.alertSetting(p.id, 'chosen'),
          ),
        ),
      ),
    check: async (c) =>
      expect(await x.sys.store.entries.alertSetting(mine(c).id, 'all')).toMatchObject({
        mode: 'off',
        chosen: true,
      }),
    restore: async (c) => {
      await x.sys.store.db
        .deleteFrom('entry_alert_settings')
        .where('principal_id', '=', mine(c).id)
        .execute();
    },
  },
  {
    route: 'GET /api/homes/:homeId/cameras/:cameraId/live',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's camera",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'device.not-found' },
    request: (c) => ({
      path: `/api/homes/${homeOf(c).homeId}/cameras/${objectOf(c).devices.camera}/live`,
    }),
    check: (_c, a) => expect(a.body.view).toMatchObject({ cameraId: x.own.devices.camera }),
  },
  {
    route: 'GET /api/homes/:homeId/cameras/:cameraId/frames/:digest',
    tenancies: WITH_CROSS,
    cross: "own home, other tenant's camera",
    expect: { anonymous: 401, owner: OWN_X, member: OWN_X, guest: 403, courier: 403, carrier: 403 },
    notFound: { other: 'home.not-found', cross: 'device.not-found' },
    request: async (c) => {
      // A frame the camera's own household can fetch at this moment.
      const digest = await x.liveFrameDigest(objectOf(c));
      return {
        path: `/api/homes/${homeOf(c).homeId}/cameras/${objectOf(c).devices.camera}/frames/${digest}`,
        ref: digest,
      };
    },
    check: (_c, a, req) => {
      expect(a.headers.get('content-type')).toBe('image/jpeg');
      expect(createHash('sha256').update(a.bytes).digest('hex')).toBe(req.ref);
    },
  },

  // Operations counters: the owner only.
  {
    route: 'GET /api/stats',
    tenancies: NONE,
    expect: { anonymous: 401, owner: 'allow', member: 403, guest: 403, courier: 403, carrier: 403 },
    request: () => ({ path: '/api/stats' }),
    check: (_c, a) => expect(a.body).toHaveProperty('orchestrator'),
  },
  // Prometheus metrics: only the scraper's bearer token (--metrics-token-file) opens them, and
  // this world's server has none; no sign-in token or API key is one (test/metrics.test.ts
  // scrapes with the token).
  {
    route: 'GET /metrics',
    tenancies: NONE,
    expect: { anonymous: 401, owner: 401, member: 401, guest: 401, courier: 401, carrier: 401 },
    request: () => ({ path: '/metrics' }),
  },
];

// ---- reading the table ----

function isRefusal(v: CallerOutcome): v is ObjectRefusal {
  return typeof v === 'object' && 'status' in v;
}

/** The outcome the table gives a caller for a tenancy, or undefined if it gives none. */
function outcomeOf(row: Row, caller: Caller, tenancy: Tenancy): Outcome | undefined {
  const v = row.expect[caller];
  if (typeof v !== 'object' || isRefusal(v)) return v;
  return v[tenancy];
}

/** The status and code a refusal must come with. */
function refusalOf(c: Cell): { status: number; code: ErrorCode | undefined } | null {
  const o = c.outcome;
  if (o === 'allow' || o === 'hidden') return null;
  if (typeof o === 'object') return { status: o.status, code: o.code };
  if (o === 401) return { status: 401, code: 'auth.required' };
  if (o === 403) return { status: 403, code: 'auth.forbidden' };
  return { status: 404, code: c.row.notFound?.[c.tenancy] };
}

function cellsOf(row: Row): Cell[] {
  const cells: Cell[] = [];
  for (const tenancy of row.tenancies) {
    for (const caller of CALLERS) {
      const outcome = outcomeOf(row, caller, tenancy);
      if (outcome !== undefined) cells.push({ row, caller, tenancy, outcome });
    }
  }
  // Refusals first, allowed calls last: a refusal's "nothing changed" then compares against
  // state no allowed call of the row has touched yet.
  const rank = (c: Cell) => (c.outcome === 'allow' ? 2 : c.outcome === 'hidden' ? 1 : 0);
  return cells.sort((a, b) => rank(a) - rank(b));
}

function cellName(c: Cell): string {
  const labels: Record<Tenancy, string> = {
    none: '',
    own: ', own tenant',
    other: ', other tenant',
    cross: `, ${c.row.cross ?? 'mixed tenants'}`,
    cross2: `, ${c.row.cross2 ?? 'mixed tenants'}`,
    peer: `, ${c.row.peer ?? "own tenant, someone else's"}`,
    past: `, ${c.row.past ?? 'own, no longer current'}`,
  };
  const tenancy = labels[c.tenancy];
  const outcome =
    c.outcome === 'hidden'
      ? 'allow, but not shown or touched'
      : typeof c.outcome === 'object'
        ? `${c.outcome.status} ${c.outcome.code}`
        : String(c.outcome);
  return `${c.row.route} — ${c.caller}${tenancy} → ${outcome}`;
}

const [METHOD_OF, PATH_OF] = [
  (row: Row) => row.route.split(' ')[0] ?? '',
  (row: Row) => row.route.split(' ')[1] ?? '',
];

/** `METHOD /path` of a registered route; HEAD goes with its GET, a trailing slash with its path. */
function keyOf(method: string, url: string): string {
  const m = method === 'HEAD' ? 'GET' : method;
  const path = url.length > 1 && url.endsWith('/') ? url.slice(0, -1) : url;
  return `${m} ${path}`;
}

function registeredKeys(): string[] {
  return [...new Set(x.routes.map((r) => keyOf(r.method, r.url)))].sort();
}

function rowsFor(key: string): Row[] {
  return MATRIX.filter((r) => r.route === key || r.covers?.(key) === true);
}

async function runCell(c: Cell): Promise<void> {
  const req = await c.row.request(c);
  const before = c.row.state ? await c.row.state(c, req) : undefined;
  const head = await x.auditHead();
  const token = req.token ?? credential(c.caller);
  const a = c.row.send
    ? await c.row.send(c, req, token)
    : await x.call(METHOD_OF(c.row), req.path, {
        token,
        ...(req.json === undefined ? {} : { json: req.json }),
      });
  try {
    const refusal = refusalOf(c);
    const shown = `${METHOD_OF(c.row)} ${req.path} → ${a.status} ${a.text.slice(0, 300)}`;
    if (refusal) {
      expect({ status: a.status, code: a.body.error?.code }, shown).toEqual(refusal);
    } else {
      expect(a.status >= 200 && a.status < 300, shown).toBe(true);
      // Nothing of the other tenant in any allowed answer.
      let text = a.text.toLowerCase();
      for (const s of c.row.showsOfOther?.() ?? []) text = text.replaceAll(s.toLowerCase(), '');
      for (const marker of x.otherMarkers()) {
        expect(text.includes(marker.toLowerCase()), `the answer shows ${marker}: ${shown}`).toBe(
          false,
        );
      }
      await c.row.check?.(c, a, req);
    }
    if (c.outcome !== 'allow' && c.row.state) {
      expect(await c.row.state(c, req), 'a refused or hidden call changed nothing').toEqual(before);
    }
    if (c.outcome === 403 && c.caller !== 'anonymous') {
      // A role refusal of a signed-in caller is on record, once.
      const id = principalIdOf(c.caller);
      const denied = (await x.auditAfter(head)).filter(
        (e) => e.kind === 'auth.denied' && e.actor.id === id,
      );
      expect(denied).toHaveLength(1);
      expect(denied[0]).toMatchObject({
        actor: { type: 'principal', id },
        subject: `route:${PATH_OF(c.row)}`,
        data: { method: METHOD_OF(c.row), role: c.caller },
      });
    }
  } finally {
    if (a.status >= 200 && a.status < 300) await c.row.restore?.(c, req, a, before);
  }
}

beforeAll(async () => {
  x = await AuthzWorld.create();
}, 180_000);

afterAll(async () => {
  await x?.close();
});

describe('the matrix covers the app', () => {
  it('has a row for every route the app registers', () => {
    expect(x.routes.length).toBeGreaterThan(0);
    expect(registeredKeys().filter((k) => rowsFor(k).length !== 1)).toEqual([]);
  });

  it('names no route the app does not register', () => {
    const keys = registeredKeys();
    const unknown = MATRIX.filter((r) => !keys.some((k) => rowsFor(k).includes(r)));
    expect(unknown.map((r) => r.route)).toEqual([]);
  });

  it('gives every caller an outcome for every tenancy of its row, and each 404 its code', () => {
    const gaps: string[] = [];
    for (const row of MATRIX) {
      for (const tenancy of row.tenancies) {
        for (const caller of CALLERS) {
          const o = outcomeOf(row, caller, tenancy);
          if (o === undefined) gaps.push(`${row.route} ${caller} ${tenancy}: no outcome`);
          if (o === 404 && row.notFound?.[tenancy] === undefined)
            gaps.push(`${row.route} ${tenancy}: no not-found code`);
        }
      }
    }
    expect(gaps).toEqual([]);
  });

  it('saw every route of the OpenAPI document registered', async () => {
    const doc = (await x.call('GET', '/docs/json')).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => keyOf(m.toUpperCase(), path.replace(/\{(\w+)\}/g, ':$1'))),
    );
    expect(documented.length).toBeGreaterThan(30);
    expect(documented.filter((k) => !registeredKeys().includes(k))).toEqual([]);
  });
});

for (const row of MATRIX) {
  describe(row.route, () => {
    if (row.setup) beforeAll(row.setup, 60_000);
    if (row.teardown) afterAll(row.teardown, 60_000);
    for (const cell of cellsOf(row)) it(cellName(cell), () => runCell(cell), 60_000);
  });
}

/**
 * "Who unlocked", end to end on the running system (broker, simulated home, HTTP on loopback,
 * SQLite): every way the door opens becomes one entry naming who and how — a courier's visit
 * with the app, the owner's unlock from afar, a keypad code, a key — shown live (`entry`
 * events) and listed for the household; a guest's code counts a use of their grant, and a code
 * used when no grant allowed it is audited and told to the owner. Each owner or member chooses
 * whose entries are pushed to them, among the people of their own home only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/core/model.ts';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import type { EntryAlertsView, EntryView, ServerEvent } from '../src/protocol/views.ts';
import { hashPassword } from '../src/server/auth.ts';

let world: ScenarioWorld;
const events: ServerEvent[] = [];
let offEvents: () => void = () => undefined;
let ownerToken = '';
let memberToken = '';

const GUEST: Principal = {
  id: 'guest-sam',
  role: 'guest',
  displayName: 'Sam',
  homeId: '',
  carrierId: null,
};

async function call(
  token: string | null,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function signIn(username: string, password: string): Promise<string> {
  const r = await call(null, 'POST', '/api/auth/sign-in', { username, password });
  expect(r.status).toBe(200);
  return String(r.body.token);
}

function entryEvents(): EntryView[] {
  return events.flatMap((e) => (e.type === 'entry' ? [e.entry] : []));
}

async function entriesOf(token = ownerToken): Promise<EntryView[]> {
  const r = await call(token, 'GET', `/api/homes/${world.creds.homeId}/entries?limit=200`);
  expect(r.status).toBe(200);
  return r.body.entries as EntryView[];
}

beforeAll(async () => {
  world = await ScenarioWorld.create();
  offEvents = world.sys.events.subscribe((e) => events.push(e));
  const { store } = world.sys;
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
  await store.principals.create(
    { ...GUEST, homeId: world.creds.homeId },
    { username: 'sam', passwordHash: await hashPassword('sam-password-1') },
  );
  ownerToken = await signIn(world.creds.owner.username, world.creds.owner.password);
  memberToken = await signIn('jo', 'jo-password-1');
}, 60_000);

afterAll(async () => {
  offEvents();
  await world?.close();
});

describe('every way in is one entry, by whom and how', () => {
  it('a courier’s visit with the app: one entry for the session, however often it is reported', async () => {
    const { sessionId } = await world.deliverInside();
    expect(sessionId).not.toBeNull();
    await world.waitFor(
      () => entryEvents().some((e) => e.sessionId === sessionId),
      5_000,
      'the entry is published',
    );
    await world.sys.entries.idle();
    // Later reports of the same session (relock, completion) make no second entry.
    await world.requestRelock(sessionId!);
    await world.relockConfirmed(sessionId!, 8_000);
    await world.sys.entries.idle();
    const listed = (await entriesOf()).filter((e) => e.sessionId === sessionId);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      method: 'app',
      principalId: world.creds.courier.id,
      role: 'courier',
      doorId: world.creds.doorId,
      doorName: 'Front door',
      slot: null,
    });
    expect(listed[0]!.summary).toMatch(/^Courier .+ opened Front door with the app at the door$/);
    expect(entryEvents().filter((e) => e.sessionId === sessionId)).toHaveLength(1);
    // The entry's time is the lock's confirmed unlock, from the session.
    const session = await world.session(sessionId!);
    expect(listed[0]!.at).toBe(session.unlockedAt);
  });

  it('the owner’s unlock from afar, through the API', async () => {
    const r = await call(
      ownerToken,
      'POST',
      `/api/homes/${world.creds.homeId}/doors/${world.creds.doorId}/command`,
      { action: 'unlock', confirm: true },
    );
    expect(r.status).toBe(200);
    const [latest] = await entriesOf();
    expect(latest).toMatchObject({
      method: 'remote',
      principalId: 'owner-alex',
      who: 'Alex',
      role: 'owner',
      summary: 'Alex (owner) unlocked Front door from the app',
    });
    // A lock command is not an entry.
    const count = (await entriesOf()).length;
    const lock = await call(
      ownerToken,
      'POST',
      `/api/homes/${world.creds.homeId}/doors/${world.creds.doorId}/command`,
      { action: 'lock' },
    );
    expect(lock.status).toBe(200);
    expect(await entriesOf()).toHaveLength(count);
  });

  it('a key or the thumb-turn: the lock cannot say who, and the entry says so', async () => {
    const before = entryEvents().length;
    world.home.lock.turnByHand('unlocked');
    await world.waitFor(() => entryEvents().length > before, 5_000, 'the entry is published');
    const e = entryEvents().at(-1)!;
    expect(e).toMatchObject({ method: 'manual', principalId: null, who: null, role: null });
    expect(e.summary).toBe(
      'Front door was unlocked by key or thumb-turn (the lock cannot tell who)',
    );
    // Locking by hand is no entry.
    world.home.lock.turnByHand('locked');
    await new Promise((r) => setTimeout(r, 300));
    await world.sys.entries.idle();
    expect(entryEvents()).toHaveLength(before + 1);
  });

  it('a keypad code Threshold wrote names its person and slot', async () => {
    const lockId = world.creds.devices.lock.id;
    const assigned = await world.sys.pins.assign(lockId, 4, '482913', {
      principalId: 'member-jo',
      name: 'Jo',
    });
    expect(assigned.ok).toBe(true);
    expect((await world.sys.pins.settled(lockId, 4))?.sync).toBe('confirmed');
    const before = entryEvents().length;
    expect(world.home.lock.enterCode('482913')).toEqual({ result: 'unlocked', slot: 4 });
    await world.waitFor(() => entryEvents().length > before, 5_000, 'the entry is published');
    expect(entryEvents().at(-1)).toMatchObject({
      method: 'pin',
      principalId: 'member-jo',
      slot: 4,
      summary: 'Jo (household) unlocked Front door with their keypad code, slot 4',
    });
    // The code itself is in no entry, event or audit record.
    const audit = await world.sys.store.audit.entriesForSubject(`device:${lockId}`);
    expect(JSON.stringify({ audit, events })).not.toContain('482913');
    world.home.lock.turnByHand('locked');
  });
});

describe('a guest’s keypad entries count against their grant', () => {
  it('counts a use under the grant that allowed it; with none, audits it and tells the owner', async () => {
    const { store } = world.sys;
    const now = world.sys.clock.now();
    await store.guestGrants.create({
      id: 'grant-sam-twice',
      homeId: world.creds.homeId,
      doorId: world.creds.doorId,
      principalId: GUEST.id,
      grantedBy: 'owner-alex',
      schedule: { kind: 'always' },
      limits: { maxUses: 2, maxMinutesPerEntry: null, requiresRecording: true },
      uses: 0,
      createdAt: now,
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    });
    const lockId = world.creds.devices.lock.id;
    const report = (seq: number) => ({
      homeId: world.creds.homeId,
      lockId,
      slot: 6,
      principalId: GUEST.id,
      deviceAt: now,
      seq,
    });
    await world.sys.entries.keypad(report(1));
    expect((await store.guestGrants.get('grant-sam-twice'))?.uses).toBe(1);
    // The same opening heard again (every replica hears each lock event): no second use.
    await world.sys.entries.keypad(report(1));
    expect((await store.guestGrants.get('grant-sam-twice'))?.uses).toBe(1);
    await world.sys.entries.keypad(report(2));
    expect((await store.guestGrants.get('grant-sam-twice'))?.uses).toBe(2);

    // Used up: a third opening (a lock that could not be reached in time) is flagged.
    const notices = events.filter((e) => e.type === 'notice').length;
    await world.sys.entries.keypad(report(3));
    expect((await store.guestGrants.get('grant-sam-twice'))?.uses).toBe(2);
    const flagged = (await store.audit.entriesForSubject(`device:${lockId}`)).filter(
      (e) => e.kind === 'keypad.entry-outside-grant',
    );
    expect(flagged.map((e) => e.data)).toEqual([{ slot: 6, principalId: GUEST.id }]);
    const told = events.filter((e) => e.type === 'notice').slice(notices);
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ homeId: world.creds.homeId });
    expect((told[0] as { message: string }).message).toMatch(
      /^Sam came in with their keypad code when no grant of theirs allowed it/,
    );
    // All three openings are entries all the same: the door did open.
    const sams = (await entriesOf()).filter((e) => e.principalId === GUEST.id);
    expect(sams).toHaveLength(3);
    expect(sams[0]!.summary).toBe('Sam (guest) unlocked Front door with their keypad code, slot 6');
  });
});

describe('who is told', () => {
  const alertsPath = () => `/api/homes/${world.creds.homeId}/entry-alerts`;

  it('starts from the role’s default: the owner every entry, a member the people they choose', async () => {
    const owner = await call(ownerToken, 'GET', alertsPath());
    expect(owner.status).toBe(200);
    const o = owner.body.alerts as EntryAlertsView;
    expect(o).toMatchObject({ mode: 'all', people: [], chosen: false });
    expect(o.candidates.map((c) => c.id).sort()).toEqual(['guest-sam', 'member-jo']);
    const member = await call(memberToken, 'GET', alertsPath());
    expect(member.body.alerts).toMatchObject({ mode: 'chosen', people: [], chosen: false });
  });

  it('keeps a member’s choice, and pushes them only the entries of the people chosen', async () => {
    const put = await call(memberToken, 'PUT', alertsPath(), {
      mode: 'chosen',
      people: ['guest-sam'],
    });
    expect(put.status).toBe(200);
    expect(put.body.alerts).toMatchObject({ mode: 'chosen', people: ['guest-sam'], chosen: true });
    expect((await call(memberToken, 'GET', alertsPath())).body.alerts).toMatchObject({
      mode: 'chosen',
      people: ['guest-sam'],
    });
    const [samEntry] = (await entriesOf()).filter((e) => e.principalId === 'guest-sam');
    const [manual] = (await entriesOf()).filter((e) => e.method === 'manual');
    const [byOwner] = (await entriesOf()).filter((e) => e.principalId === 'owner-alex');
    const homeId = world.creds.homeId;
    const watchers = async (e: EntryView | undefined) =>
      [...(await world.sys.entries.watchersOf(e!, homeId))].sort();
    expect(await watchers(samEntry)).toEqual(['member-jo', 'owner-alex']);
    // Nobody can be chosen for a key: only those who want every entry hear of it.
    expect(await watchers(manual)).toEqual(['owner-alex']);
    // Nobody is told of their own entry.
    expect(await watchers(byOwner)).toEqual([]);
  });

  it('refuses people of another home and bad bodies, and changes nothing', async () => {
    const before = await world.sys.store.entries.alertSetting('member-jo', 'chosen');
    for (const body of [
      { mode: 'chosen', people: ['owner-of-elsewhere'] },
      { mode: 'chosen', people: [world.creds.courier.id] },
      { mode: 'sometimes', people: [] },
      { mode: 'all' },
      { mode: 'all', people: [], extra: true },
      { mode: 'chosen', people: ['guest-sam', 'guest-sam'] },
    ]) {
      const r = await call(memberToken, 'PUT', alertsPath(), body);
      expect(r.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(r.status, JSON.stringify(body)).toBeLessThan(500);
      expect((r.body.error as { code: string }).code).toMatch(/^request\./);
    }
    expect(await world.sys.store.entries.alertSetting('member-jo', 'chosen')).toEqual(before);
  });

  it('pages the list: newest first, before a time, within 1 to 200', async () => {
    const all = await entriesOf();
    expect(all.length).toBeGreaterThanOrEqual(5);
    const ats = all.map((e) => e.at);
    expect([...ats].sort((a, b) => b - a)).toEqual(ats);
    const page = await call(
      ownerToken,
      'GET',
      `/api/homes/${world.creds.homeId}/entries?limit=2&before=${all[1]!.at}`,
    );
    expect((page.body.entries as EntryView[]).every((e) => e.at < all[1]!.at)).toBe(true);
    for (const q of ['limit=0', 'limit=201', 'limit=x', 'before=-1']) {
      const r = await call(ownerToken, 'GET', `/api/homes/${world.creds.homeId}/entries?${q}`);
      expect(r.status, q).toBe(400);
    }
  });
});

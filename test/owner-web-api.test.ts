/**
 * What the owner's web app relies on beyond the walking skeleton, against the real system:
 * in-home delivery settings (days off, "ask me first" with its fallback), the live view (fresh
 * frames only; offline and frozen since the last fresh frame), and alarms that can be
 * acknowledged, with the acknowledgement audited once.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WEEKDAYS } from '../src/core/model.ts';
import { weekdayIn } from '../src/core/calendar.ts';
import { ScenarioWorld, sleep } from '../src/harness/scenario-world.ts';
import type { AlarmView, LiveViewStatus, SessionView } from '../src/protocol/views.ts';

let world: ScenarioWorld;
let owner = '';
let homeId = '';
let ownerId = '';

async function asOwner(
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
  token = owner,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const DEFAULT_SETTINGS = { inHomeDelivery: true, daysOff: [], askFirst: false, askTimeoutS: 60 };

beforeAll(async () => {
  world = await ScenarioWorld.create();
  homeId = world.creds.homeId;
  const r = await world.http('POST', '/api/auth/sign-in', world.creds.owner, false);
  owner = String(r.body.token);
  ownerId = (r.body.principal as { id: string }).id;
}, 60_000);

afterAll(async () => {
  await world?.close();
});

async function settle(sessionId: string): Promise<void> {
  await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 20_000);
}

describe('in-home delivery settings', () => {
  beforeEach(async () => {
    await asOwner('PUT', `/api/homes/${homeId}/settings`, DEFAULT_SETTINGS);
  });

  it('reads and replaces the settings, in weekday order, and audits the change', async () => {
    const put = await asOwner('PUT', `/api/homes/${homeId}/settings`, {
      inHomeDelivery: true,
      daysOff: ['sun', 'sat'],
      askFirst: true,
      askTimeoutS: 45,
    });
    expect(put.status).toBe(200);
    const expected = {
      inHomeDelivery: true,
      daysOff: ['sat', 'sun'],
      askFirst: true,
      askTimeoutS: 45,
    };
    expect(put.body.settings).toEqual(expected);
    expect((await asOwner('GET', `/api/homes/${homeId}/settings`)).body.settings).toEqual(expected);
    const audit = await world.sys.store.audit.entriesForSubject(`home:${homeId}`);
    const change = audit.filter((e) => e.kind === 'home.delivery-settings').at(-1);
    expect(change?.data).toMatchObject({ after: expected });
  });

  it.each([
    ['an unknown weekday', { ...DEFAULT_SETTINGS, daysOff: ['someday'] }],
    ['a repeated weekday', { ...DEFAULT_SETTINGS, daysOff: ['mon', 'mon'] }],
    ['a timeout below 15 s', { ...DEFAULT_SETTINGS, askTimeoutS: 5 }],
    ['a timeout as a string', { ...DEFAULT_SETTINGS, askTimeoutS: '60' }],
    ['a missing field', { inHomeDelivery: true, daysOff: [], askFirst: false }],
    ['an unknown field', { ...DEFAULT_SETTINGS, everyoneWelcome: true }],
  ])('refuses %s with 400 and changes nothing', async (_what, body) => {
    const r = await asOwner('PUT', `/api/homes/${homeId}/settings`, body);
    expect(r.status).toBe(400);
    expect((r.body.error as { code: string }).code).toBe('request.invalid');
    expect((await asOwner('GET', `/api/homes/${homeId}/settings`)).body.settings).toEqual(
      DEFAULT_SETTINGS,
    );
  });

  it('is for the household only: the courier gets 403, another home 404', async () => {
    const courier = await world.http('GET', `/api/homes/${homeId}/settings`);
    expect(courier.status).toBe(403);
    const other = await asOwner('GET', '/api/homes/home-elsewhere/settings');
    expect(other.status).toBe(404);
    // The probe is on record, against the home it named.
    const probes = await world.sys.store.audit.entriesForSubject('home:home-elsewhere');
    expect(probes.filter((e) => e.kind === 'auth.object-denied')).toHaveLength(1);
    expect(probes[0]).toMatchObject({ actor: { type: 'principal', id: ownerId } });
  });

  it('refuses the courier on a day off, in plain words', async () => {
    const home = await world.sys.store.homes.getHome(homeId);
    const today = weekdayIn(home!.timeZone, Date.now());
    await asOwner('PUT', `/api/homes/${homeId}/settings`, {
      ...DEFAULT_SETTINGS,
      daysOff: WEEKDAYS.filter((d) => d === today),
    });
    const r = await world.requestAccess(await world.newDelivery());
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: 'delivery.day-off' });
    expect(world.home.lock.bolt()).toBe('locked');
  });
});

describe('"ask me first"', () => {
  beforeAll(async () => {
    await asOwner('PUT', `/api/homes/${homeId}/settings`, { ...DEFAULT_SETTINGS, askFirst: true });
  });
  afterAll(async () => {
    await asOwner('PUT', `/api/homes/${homeId}/settings`, DEFAULT_SETTINGS);
  });

  it('keeps the courier waiting, door locked and camera unarmed, until the owner lets them in', async () => {
    const deliveryId = await world.newDelivery();
    const access = await world.requestAccess(deliveryId);
    expect(access.status).toBe(200);
    const waiting = access.body.session as SessionView;
    expect(waiting.state).toBe('awaiting-owner');
    expect(waiting.deadlineAt).toBeGreaterThan(Date.now() + 50_000);
    await sleep(500);
    expect(world.home.lock.bolt()).toBe('locked');
    expect(world.home.camera.sessionId()).not.toBe(waiting.id);

    // The courier pressing again is told to wait, not given a second session.
    const again = await world.requestAccess(deliveryId);
    expect(again.status).toBe(409);

    const decided = await asOwner('POST', `/api/sessions/${waiting.id}/decision`, {
      decision: 'let-in',
    });
    expect(decided.status).toBe(200);
    const open = await world.waitForState(waiting.id, ['open'], 10_000);
    expect(open.approval).toMatchObject({ decision: 'let-in', decidedBy: ownerId });
    expect(world.home.lock.bolt()).toBe('unlocked');
    await world.dropParcel();
    await world.requestRelock(waiting.id);
    await settle(waiting.id);
    const audit = await world.sys.store.audit.entriesForSubject(`session:${waiting.id}`);
    expect(audit.find((e) => e.kind === 'session.owner-decision')).toMatchObject({
      actor: { type: 'principal', id: ownerId },
      data: { decision: 'let-in' },
    });
  });

  it('"leave at door" refuses the courier in plain words; a second answer is refused', async () => {
    const access = await world.requestAccess(await world.newDelivery());
    const s = access.body.session as SessionView;
    const r = await asOwner('POST', `/api/sessions/${s.id}/decision`, {
      decision: 'leave-at-door',
    });
    expect(r.status).toBe(200);
    const done = await world.waitForState(s.id, ['refused'], 5_000);
    expect(done.outcome?.code).toBe('delivery.owner-declined');
    const late = await asOwner('POST', `/api/sessions/${s.id}/decision`, { decision: 'let-in' });
    expect(late.status).toBe(409);
    expect(world.home.lock.bolt()).toBe('locked');
    // The delivery is settled as left at the door: the courier cannot ask again.
    await world.waitFor(
      async () => (await world.sys.store.deliveries.get(s.deliveryId!))?.status === 'left-at-door',
      5_000,
      'the delivery is marked left at the door',
    );
    const again = await world.requestAccess(s.deliveryId!);
    expect(again.status).toBe(403);
    expect(again.body.error).toMatchObject({ code: 'grant.used' });
  });

  it('falls back to "leave at door" when the owner does not answer in time', async () => {
    // The API's shortest timeout is 15 s; the store takes a shorter one for the test.
    const home = (await world.sys.store.homes.getHome(homeId))!;
    await world.sys.store.homes.updateDeliverySettings(homeId, true, {
      ...home.delivery,
      askFirst: true,
      askTimeoutMs: 1_500,
    });
    const access = await world.requestAccess(await world.newDelivery());
    const s = access.body.session as SessionView;
    expect(s.state).toBe('awaiting-owner');
    const done = await world.waitForState(s.id, ['refused'], 5_000);
    expect(done.outcome?.code).toBe('delivery.owner-no-answer');
    expect(world.home.lock.bolt()).toBe('locked');
  });

  it('only the household answers: the courier is forbidden, bad answers are 400', async () => {
    await asOwner('PUT', `/api/homes/${homeId}/settings`, { ...DEFAULT_SETTINGS, askFirst: true });
    const access = await world.requestAccess(await world.newDelivery());
    const s = access.body.session as SessionView;
    const byCourier = await world.http('POST', `/api/sessions/${s.id}/decision`, {
      decision: 'let-in',
    });
    expect(byCourier.status).toBe(403);
    const bad = await asOwner('POST', `/api/sessions/${s.id}/decision`, { decision: 'yes' });
    expect(bad.status).toBe(400);
    expect((await world.session(s.id)).state).toBe('awaiting-owner');
    await asOwner('POST', `/api/sessions/${s.id}/decision`, { decision: 'leave-at-door' });
    await settle(s.id);
  });
});

describe('live view', () => {
  const cam = () => world.creds.devices.camera.id;
  const liveEvents: LiveViewStatus[] = [];
  let off: (() => void) | null = null;
  beforeAll(() => {
    off = world.sys.events.subscribe((e) => {
      if (e.type === 'live') liveEvents.push(e.view);
    });
  });
  afterAll(() => off?.());

  async function waitForLive(pred: (v: LiveViewStatus) => boolean, ms: number, what: string) {
    await world.waitFor(() => liveEvents.some(pred), ms, what);
    return liveEvents.find(pred)!;
  }

  it('shows fresh, authenticated frames; each frame URL serves the JPEG with that digest', async () => {
    const r = await asOwner('POST', `/api/homes/${homeId}/cameras/${cam()}/live`, {});
    expect(r.status).toBe(200);
    const live = await waitForLive((v) => v.status === 'live' && v.frame !== null, 5_000, 'live');
    const img = await fetch(`${world.sys.url}${live.frame!.url}`, {
      headers: { authorization: `Bearer ${owner}` },
    });
    expect(img.status).toBe(200);
    expect(img.headers.get('content-type')).toBe('image/jpeg');
    const { createHash } = await import('node:crypto');
    const bytes = Buffer.from(await img.arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(live.frame!.digest);
    // The courier may not watch, nor fetch frames.
    expect(
      (await world.http('POST', `/api/homes/${homeId}/cameras/${cam()}/live`, {})).status,
    ).toBe(403);
    expect((await asOwner('GET', `/api/homes/${homeId}/cameras/front-lock/live`)).status).toBe(404);
  });

  it('hands the camera to a delivery and takes it back afterwards, with nothing rejected on record', async () => {
    await asOwner('POST', `/api/homes/${homeId}/cameras/${cam()}/live`, {});
    await waitForLive((v) => v.status === 'live', 5_000, 'live');
    const { sessionId } = await world.deliverInside();
    expect(sessionId).not.toBeNull();
    // While the session runs, the live view shows the session's own frames.
    liveEvents.length = 0;
    await waitForLive(
      (v) => v.status === 'live' && v.sessionId === sessionId,
      5_000,
      'session frames',
    );
    await world.requestRelock(sessionId!);
    const done = await world.waitForState(sessionId!, ['completed', 'aborted', 'refused'], 15_000);
    expect(done.state).toBe('completed');
    const audit = await world.sys.store.audit.entriesForSubject(`session:${sessionId}`);
    expect(audit.filter((e) => e.kind === 'heartbeat.rejected')).toEqual([]);
    // The owner is still watching: the view re-arms the camera for itself.
    liveEvents.length = 0;
    await waitForLive(
      (v) => v.status === 'live' && v.sessionId !== null && v.sessionId.startsWith('view-'),
      8_000,
      'the live view has the camera again',
    );
  });

  it('turns "offline since <last fresh frame>" within 2 s when the camera link is cut', async () => {
    await asOwner('POST', `/api/homes/${homeId}/cameras/${cam()}/live`, {});
    await waitForLive((v) => v.status === 'live', 5_000, 'live');
    liveEvents.length = 0;
    const lastFreshBefore = (await asOwner('GET', `/api/homes/${homeId}/cameras/${cam()}/live`))
      .body.view as LiveViewStatus;
    world.home.links.camera.cutLink();
    const cutAt = Date.now();
    try {
      const offline = await waitForLive((v) => v.status === 'offline', 4_000, 'offline');
      expect(Date.now() - cutAt).toBeLessThan(2_500);
      expect(offline.since).not.toBeNull();
      expect(offline.since!).toBeGreaterThanOrEqual(lastFreshBefore.frame!.receivedAt);
      expect(offline.since!).toBeLessThanOrEqual(cutAt + 50);
      // The picture it keeps is the last fresh one, labelled as such, never a newer one.
      expect(offline.frame!.receivedAt).toBe(offline.since);
    } finally {
      world.home.links.camera.restoreLink();
    }
    await waitForLive((v) => v.status === 'live', 8_000, 'live again after the link returns');
  });

  it('turns "frozen since" when the picture stops changing although heartbeats go on', async () => {
    await asOwner('POST', `/api/homes/${homeId}/cameras/${cam()}/live`, {});
    await waitForLive((v) => v.status === 'live', 5_000, 'live');
    liveEvents.length = 0;
    world.home.camera.freeze();
    try {
      const frozen = await waitForLive((v) => v.status === 'frozen', 6_000, 'frozen');
      expect(frozen.since).not.toBeNull();
      expect(liveEvents.some((v) => v.status === 'offline')).toBe(false);
    } finally {
      world.home.camera.unfreeze();
    }
    await waitForLive((v) => v.status === 'live', 5_000, 'live again after unfreezing');
  });
});

describe('alarms', () => {
  it('lists a session’s alarm, acknowledges it once (audited), and tells the live page', async () => {
    const acks: AlarmView[] = [];
    const off = world.sys.events.subscribe((e) => {
      if (e.type === 'alarm-ack') acks.push(e.alarm);
    });
    const { sessionId } = await world.deliverInside();
    expect(sessionId).not.toBeNull();
    world.home.links.camera.cutLink();
    try {
      await world.waitForAlarm(sessionId!, 'observation-lost', 5_000);
    } finally {
      world.home.links.camera.restoreLink();
    }
    await settle(sessionId!);

    const list = await asOwner('GET', `/api/homes/${homeId}/alarms`);
    const alarm = (list.body.alarms as AlarmView[]).find(
      (a) => a.sessionId === sessionId && a.type === 'observation-lost',
    );
    expect(alarm).toMatchObject({ acknowledged: null, doorId: world.creds.doorId });

    const courierAck = await world.http(
      'POST',
      `/api/sessions/${sessionId}/alarms/observation-lost/ack`,
      {},
    );
    expect(courierAck.status).toBe(403);
    const unknownType = await asOwner('POST', `/api/sessions/${sessionId}/alarms/made-up/ack`, {});
    expect(unknownType.status).toBe(400);
    const notRaised = await asOwner(
      'POST',
      `/api/sessions/${sessionId}/alarms/lock-jammed/ack`,
      {},
    );
    expect(notRaised.status).toBe(404);

    const ack = await asOwner('POST', `/api/sessions/${sessionId}/alarms/observation-lost/ack`, {});
    expect(ack.status).toBe(200);
    expect(ack.body.alarm).toMatchObject({
      acknowledged: { by: ownerId, byName: expect.any(String) as string },
    });
    const again = await asOwner(
      'POST',
      `/api/sessions/${sessionId}/alarms/observation-lost/ack`,
      {},
    );
    expect((again.body.alarm as AlarmView).acknowledged).toEqual(
      (ack.body.alarm as AlarmView).acknowledged,
    );
    const audit = await world.sys.store.audit.entriesForSubject(`session:${sessionId}`);
    expect(audit.filter((e) => e.kind === 'alarm.acknowledged')).toHaveLength(1);
    expect(acks.filter((a) => a.sessionId === sessionId)).toHaveLength(1);
    const view = await asOwner('GET', `/api/sessions/${sessionId}`);
    expect((view.body.session as SessionView).alarmViews[0]?.acknowledged?.by).toBe(ownerId);
    off();
    expect((await world.auditVerified()).ok).toBe(true);
  });
});

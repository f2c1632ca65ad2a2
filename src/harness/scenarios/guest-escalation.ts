/**
 * guest-escalation — a guest tries to act as the owner.
 *
 * Given a guest with an "any time" grant, and another guest who has visited,
 * when the guest calls every owner-only route (home status, timeline, a session, audit export,
 * alarms, guests, settings, invitations, revoking the other guest's grant, remote unlock, live
 * view, keypad codes) and reaches for the other guest's grant and visit,
 * then each owner-only call is refused `403 auth.forbidden` and each reach for someone else's
 * object `404` as if it did not exist; every refusal is on record (`auth.denied` /
 * `auth.object-denied`, naming the guest); and nothing changed: settings, invitations, grants,
 * keypad slots, and the lock still locked.
 */
import type { Scenario } from '../scenario.ts';
import { call, errorCode, guestVisit, inviteGuest, signInOwner } from './common-steps.ts';

type Method = 'GET' | 'POST' | 'PUT';

interface Attempt {
  readonly what: string;
  readonly method: Method;
  readonly path: string;
  readonly body?: unknown;
  readonly status: 403 | 404;
  readonly code: string;
  readonly audit: 'auth.denied' | 'auth.object-denied';
}

export const guestEscalation: Scenario = {
  name: 'guest-escalation',
  expected:
    'every owner-only route refuses a guest (403), other guests’ grant and visit answer 404; each refusal audited; nothing changed',
  async story({ world, expect }) {
    const { homeId, doorId } = world.creds;
    const lockId = world.creds.devices.lock.id;
    const cameraId = world.creds.devices.camera.id;
    const owner = await signInOwner(world);
    const guest = await inviteGuest(world, owner, 'Mallory', { kind: 'always' });
    const other = await inviteGuest(world, owner, 'Olivia', { kind: 'always' });
    const otherVisit = await guestVisit(world, expect, other, 'the other guest');
    const otherSessionId = otherVisit.session?.id ?? 'session-unknown';

    const snapshot = async () => ({
      settings: (await call(world, 'GET', `/api/homes/${homeId}/settings`, owner)).body,
      guests: (await call(world, 'GET', `/api/homes/${homeId}/guests`, owner)).body,
      pins: (await call(world, 'GET', `/api/homes/${homeId}/locks/${lockId}/pins`, owner)).body,
      grants: await Promise.all(
        [guest.grantId, other.grantId].map((id) => world.sys.store.guestGrants.get(id)),
      ),
    });
    const before = await snapshot();

    const forbidden = (what: string, method: Method, path: string, body?: unknown): Attempt => ({
      what,
      method,
      path,
      ...(body === undefined ? {} : { body }),
      status: 403,
      code: 'auth.forbidden',
      audit: 'auth.denied',
    });
    const attempts: Attempt[] = [
      forbidden('home status', 'GET', `/api/homes/${homeId}`),
      forbidden('the timeline', 'GET', `/api/homes/${homeId}/sessions`),
      forbidden(
        'another visit through the household route',
        'GET',
        `/api/sessions/${otherSessionId}`,
      ),
      forbidden('audit export', 'GET', `/api/homes/${homeId}/audit`),
      forbidden('alarms', 'GET', `/api/homes/${homeId}/alarms`),
      forbidden('the list of guests', 'GET', `/api/homes/${homeId}/guests`),
      forbidden('settings', 'PUT', `/api/homes/${homeId}/settings`, {
        inHomeDelivery: false,
        daysOff: [],
        askFirst: false,
        askTimeoutS: 60,
      }),
      forbidden('an invitation', 'POST', `/api/homes/${homeId}/invites`, {
        displayName: 'Accomplice',
        doorId,
        schedule: { kind: 'always' },
      }),
      forbidden(
        'revoking the other guest',
        'POST',
        `/api/homes/${homeId}/grants/${other.grantId}/revoke`,
        {},
      ),
      forbidden('remote unlock', 'POST', `/api/homes/${homeId}/doors/${doorId}/command`, {
        action: 'unlock',
        confirm: true,
      }),
      forbidden('live view', 'POST', `/api/homes/${homeId}/cameras/${cameraId}/live`, {}),
      forbidden('the keypad slots', 'GET', `/api/homes/${homeId}/locks/${lockId}/pins`),
      forbidden(
        'a keypad code of their own',
        'PUT',
        `/api/homes/${homeId}/locks/${lockId}/pins/5`,
        {
          principalId: guest.guestId,
          code: '2468013579',
        },
      ),
      forbidden(
        'emptying a keypad slot',
        'POST',
        `/api/homes/${homeId}/locks/${lockId}/pins/5/clear`,
        {},
      ),
      {
        what: "the other guest's grant",
        method: 'POST',
        path: `/api/guest/grants/${other.grantId}/access`,
        body: {},
        status: 404,
        code: 'grant.unknown',
        audit: 'auth.object-denied',
      },
      {
        what: "the other guest's visit",
        method: 'GET',
        path: `/api/guest/sessions/${otherSessionId}`,
        status: 404,
        code: 'session.not-found',
        audit: 'auth.object-denied',
      },
    ];

    const ownEntries = async () => {
      const list: { kind: string; subject: string }[] = [];
      for await (const e of world.sys.store.audit.iterate())
        if (e.actor.id === guest.guestId) list.push({ kind: e.kind, subject: e.subject });
      return list;
    };
    const results: { what: string; status: number; code: string | null; audited: boolean }[] = [];
    for (const a of attempts) {
      const seen = (await ownEntries()).length;
      const r = await call(world, a.method, a.path, guest.token, a.body);
      const code = errorCode(r);
      expect.that(
        r.status === a.status && code === a.code,
        `${a.what} is refused ${a.status} ${a.code} (${a.method} ${a.path}: HTTP ${r.status} ${code})`,
      );
      const fresh = (await ownEntries()).slice(seen);
      const audited = fresh.some((e) => e.kind === a.audit);
      expect.that(audited, `the refusal of ${a.what} is audited as ${a.audit}`);
      results.push({ what: a.what, status: r.status, code, audited });
    }

    const after = await snapshot();
    expect.that(
      JSON.stringify(after.settings) === JSON.stringify(before.settings),
      'the delivery settings are unchanged',
    );
    expect.that(
      JSON.stringify(after.guests) === JSON.stringify(before.guests),
      'the guests and invitations are unchanged',
    );
    expect.that(
      JSON.stringify(after.pins) === JSON.stringify(before.pins),
      'the keypad slots are unchanged',
    );
    expect.that(
      JSON.stringify(after.grants) === JSON.stringify(before.grants),
      'both grants are unchanged (none revoked, no entry used)',
    );
    expect.that(world.home.lock.bolt() === 'locked', 'the door is still locked');

    return {
      session: otherVisit.session,
      extra: {
        attempts: results.length,
        refused: results.filter((r) => r.status === 403 || r.status === 404).length,
        audited: results.filter((r) => r.audited).length,
        results,
      },
    };
  },
};

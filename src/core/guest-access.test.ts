import { describe, expect, it } from 'vitest';
import { decideGuestEntry, type GuestEntryRequest } from './guest-access.ts';
import {
  DEFAULT_DELIVERY_PREFERENCES,
  type Door,
  type GuestGrant,
  type Home,
  type Principal,
} from './model.ts';

const HOME: Home = {
  id: 'home-1',
  name: 'Elm Street',
  address: '1 Elm Street',
  geofence: { lat: 52.52, lon: 13.4, radiusM: 40 },
  timeZone: 'Europe/Berlin',
  inHomeDelivery: true,
  delivery: DEFAULT_DELIVERY_PREFERENCES,
};
const DOOR: Door = {
  id: 'door-1',
  homeId: HOME.id,
  name: 'Front door',
  lockDeviceId: 'lock-1',
  doorSensorDeviceId: 'sensor-1',
  cameraDeviceIds: ['cam-1'],
};
const GUEST: Principal = {
  id: 'guest-1',
  role: 'guest',
  displayName: 'Grandma',
  homeId: HOME.id,
  carrierId: null,
};
// Saturdays 14:00–18:00 at the home, at most 45 minutes per entry, camera required.
const GRANT: GuestGrant = {
  id: 'grant-1',
  homeId: HOME.id,
  doorId: DOOR.id,
  principalId: GUEST.id,
  grantedBy: 'owner-1',
  schedule: { kind: 'weekly', slots: [{ days: ['sat'], start: '14:00', end: '18:00' }] },
  limits: { maxUses: null, maxMinutesPerEntry: 45, requiresRecording: true },
  uses: 0,
  createdAt: 0,
  revokedAt: null,
  revokedBy: null,
  revokeReason: null,
};
// Saturday 24 Oct 2026 is the last Saturday of summer time in Berlin (UTC+2); the next one,
// 31 Oct, is in winter time (UTC+1).
const SAT_SUMMER_1500 = Date.UTC(2026, 9, 24, 13, 0);
const SAT_WINTER_1500 = Date.UTC(2026, 9, 31, 14, 0);

function request(patch: Partial<GuestEntryRequest> = {}): GuestEntryRequest {
  const now = patch.now ?? SAT_SUMMER_1500;
  return {
    principal: GUEST,
    home: HOME,
    door: DOOR,
    grant: GRANT,
    now,
    activeSessionAtDoor: false,
    camera: { online: true, lastSeenAt: now - 1_000 },
    lock: { online: true, lastSeenAt: now - 1_000, bolt: 'locked' },
    doorSensor: { online: true, lastSeenAt: now - 1_000, position: 'closed' },
    ...patch,
  };
}

const refusal = (r: ReturnType<typeof decideGuestEntry>) => {
  if (r.allow) throw new Error('expected a refusal');
  return r.refusal;
};

describe('decideGuestEntry', () => {
  it('lets the guest in inside the slot, with the entry capped by the per-entry minutes', () => {
    const r = decideGuestEntry(request());
    expect(r).toEqual({ allow: true, grant: GRANT, deadlineAt: SAT_SUMMER_1500 + 45 * 60_000 });
  });

  it('caps the entry at the end of the slot when that comes first', () => {
    const at1745 = Date.UTC(2026, 9, 24, 15, 45);
    const r = decideGuestEntry(request({ now: at1745 }));
    expect(r.allow && r.deadlineAt).toBe(Date.UTC(2026, 9, 24, 16, 0));
  });

  it('keeps the slot at 14:00–18:00 on the home’s clock after the change to winter time', () => {
    expect(decideGuestEntry(request({ now: SAT_WINTER_1500 })).allow).toBe(true);
    // 13:30 UTC is 14:30 in winter time but would have been 15:30 in summer: both allowed;
    // 12:30 UTC on the winter Saturday is 13:30 local: refused.
    expect(decideGuestEntry(request({ now: Date.UTC(2026, 9, 31, 12, 30) })).allow).toBe(false);
    // 16:30 UTC on the winter Saturday is 17:30 local: still allowed (in summer it was 18:30).
    expect(decideGuestEntry(request({ now: Date.UTC(2026, 9, 31, 16, 30) })).allow).toBe(true);
    expect(decideGuestEntry(request({ now: Date.UTC(2026, 9, 24, 16, 30) })).allow).toBe(false);
  });

  it('refuses outside the schedule in plain words, naming when the next slot starts', () => {
    const sunday = Date.UTC(2026, 9, 25, 12, 0);
    const r = refusal(decideGuestEntry(request({ now: sunday })));
    expect(r.code).toBe('grant.outside-schedule');
    expect(r.message).toMatch(/Saturdays 14:00–18:00/);
    expect(r.detail).toEqual({ nextStartsAt: SAT_WINTER_1500 - 60 * 60_000 });
  });

  it('refuses before a date range and after it, in plain words', () => {
    const range: GuestGrant = {
      ...GRANT,
      schedule: { kind: 'date-range', from: '2026-12-12T10:00', until: '2026-12-14T18:00' },
    };
    const before = refusal(
      decideGuestEntry(request({ grant: range, now: Date.UTC(2026, 11, 12, 8, 59) })),
    );
    expect(before.code).toBe('grant.not-yet-valid');
    expect(before.detail).toEqual({ nextStartsAt: Date.UTC(2026, 11, 12, 9, 0) });
    const after = refusal(
      decideGuestEntry(request({ grant: range, now: Date.UTC(2026, 11, 14, 17, 0) })),
    );
    expect(after.code).toBe('grant.expired');
  });

  it('allows a one-time grant once', () => {
    const once: GuestGrant = {
      ...GRANT,
      schedule: { kind: 'one-time', from: '2026-10-24T14:00', until: '2026-10-24T16:00' },
      limits: { ...GRANT.limits, maxUses: null },
    };
    expect(decideGuestEntry(request({ grant: once })).allow).toBe(true);
    expect(refusal(decideGuestEntry(request({ grant: { ...once, uses: 1 } }))).code).toBe(
      'grant.used',
    );
  });

  it.each([
    ['no grant', { grant: null }, 'grant.not-found'],
    [
      'someone else’s grant',
      { grant: { ...GRANT, principalId: 'guest-2' } },
      'grant.wrong-principal',
    ],
    ['another door', { grant: { ...GRANT, doorId: 'door-2' } }, 'grant.wrong-door'],
    ['revoked now', { grant: { ...GRANT, revokedAt: SAT_SUMMER_1500 } }, 'grant.revoked'],
    [
      'uses spent',
      { grant: { ...GRANT, limits: { ...GRANT.limits, maxUses: 2 }, uses: 2 } },
      'grant.used',
    ],
    ['another session at the door', { activeSessionAtDoor: true }, 'session.active'],
    ['camera offline', { camera: null }, 'camera.offline'],
    [
      'lock jammed',
      { lock: { online: true, lastSeenAt: SAT_SUMMER_1500, bolt: 'jammed' as const } },
      'lock.jammed',
    ],
    [
      'door open',
      { doorSensor: { online: true, lastSeenAt: SAT_SUMMER_1500, position: 'open' as const } },
      'door.open',
    ],
  ] as const)('refuses: %s', (_name, patch, code) => {
    expect(refusal(decideGuestEntry(request(patch as Partial<GuestEntryRequest>))).code).toBe(code);
  });

  it('does not need the camera when the owner switched recording off for this grant', () => {
    const trusted: GuestGrant = { ...GRANT, limits: { ...GRANT.limits, requiresRecording: false } };
    expect(decideGuestEntry(request({ grant: trusted, camera: null })).allow).toBe(true);
    // The lock still has to be there.
    expect(
      refusal(
        decideGuestEntry(
          request({
            grant: trusted,
            camera: null,
            lock: { online: false, lastSeenAt: null, bolt: 'unknown' },
          }),
        ),
      ).code,
    ).toBe('lock.offline');
  });

  describe('a grant without recording ("camera must record" off)', () => {
    const unrecorded: GuestGrant = {
      ...GRANT,
      limits: { ...GRANT.limits, requiresRecording: false },
    };
    const silentFor = SAT_SUMMER_1500 - 10 * 60_000;

    it.each([
      ['no camera known', null],
      ['the camera offline', { online: false, lastSeenAt: silentFor }],
      ['the camera silent too long', { online: true, lastSeenAt: silentFor }],
      ['the camera never heard', { online: true, lastSeenAt: null }],
    ] as const)('lets the guest in with %s', (_name, camera) => {
      expect(decideGuestEntry(request({ grant: unrecorded, camera }))).toEqual({
        allow: true,
        grant: unrecorded,
        deadlineAt: SAT_SUMMER_1500 + 45 * 60_000,
      });
    });

    it.each([
      [
        'the lock offline',
        { lock: { online: false, lastSeenAt: silentFor, bolt: 'locked' } },
        'lock.offline',
      ],
      [
        'the lock jammed',
        { lock: { online: true, lastSeenAt: SAT_SUMMER_1500, bolt: 'jammed' } },
        'lock.jammed',
      ],
      [
        'the door open',
        { doorSensor: { online: true, lastSeenAt: SAT_SUMMER_1500, position: 'open' } },
        'door.open',
      ],
      [
        'the door sensor silent',
        { doorSensor: { online: true, lastSeenAt: silentFor, position: 'closed' } },
        'door.unknown',
      ],
      [
        'the door position unknown',
        { doorSensor: { online: true, lastSeenAt: SAT_SUMMER_1500, position: 'unknown' } },
        'door.unknown',
      ],
      ['another session at the door', { activeSessionAtDoor: true }, 'session.active'],
      ['outside the schedule', { now: Date.UTC(2026, 9, 24, 17, 0) }, 'grant.outside-schedule'],
    ] as const)('still refuses with %s (camera offline too)', (_name, patch, code) => {
      const r = decideGuestEntry(
        request({ grant: unrecorded, camera: null, ...(patch as Partial<GuestEntryRequest>) }),
      );
      expect(refusal(r).code).toBe(code);
    });

    it('the same request with recording on is refused camera.offline, saying since when', () => {
      const r = refusal(
        decideGuestEntry(
          request({ grant: GRANT, camera: { online: false, lastSeenAt: silentFor } }),
        ),
      );
      expect(r.code).toBe('camera.offline');
      expect(r.detail).toEqual({ since: silentFor });
    });
  });

  it('checks revocation before the schedule: a revoked grant is "revoked", not "outside the schedule"', () => {
    const r = refusal(
      decideGuestEntry(
        request({ now: Date.UTC(2026, 9, 25, 12, 0), grant: { ...GRANT, revokedAt: 1 } }),
      ),
    );
    expect(r.code).toBe('grant.revoked');
  });
});

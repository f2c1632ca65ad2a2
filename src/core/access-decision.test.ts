import { describe, expect, it } from 'vitest';
import {
  checkDoorDevices,
  DEFAULT_ACCESS_POLICY,
  decideAccess,
  type AccessDecision,
  type AccessRequest,
} from './access-decision.ts';
import { ERROR_CATALOGUE, type ErrorCode } from './errors.ts';
import {
  DEFAULT_DELIVERY_PREFERENCES,
  type Delivery,
  type Door,
  type Grant,
  type Home,
  type Principal,
} from './model.ts';

const NOW = 1_768_478_400_000;
const HOUR = 3_600_000;
/** Metres per degree of latitude on the mean Earth sphere. */
const M_PER_DEG = 111_195.08;

const home: Home = {
  id: 'home-1',
  name: 'Home',
  address: '1 Example Street',
  geofence: { lat: 52.52, lon: 13.405, radiusM: 150 },
  timeZone: 'Europe/Berlin',
  inHomeDelivery: true,
  delivery: DEFAULT_DELIVERY_PREFERENCES,
};

const door: Door = {
  id: 'door-1',
  homeId: 'home-1',
  name: 'Front door',
  lockDeviceId: 'lock-1',
  doorSensorDeviceId: 'sensor-1',
  cameraDeviceIds: ['camera-1'],
};

const courier: Principal = {
  id: 'courier-1',
  role: 'courier',
  displayName: 'Courier',
  homeId: null,
  carrierId: 'carrier-1',
};

const delivery: Delivery = {
  id: 'delivery-1',
  carrierId: 'carrier-1',
  homeId: 'home-1',
  doorId: 'door-1',
  packageRef: 'PKG-1',
  windowStart: NOW - HOUR,
  windowEnd: NOW + HOUR,
  courierId: 'courier-1',
  status: 'scheduled',
  createdAt: NOW - 24 * HOUR,
};

const grant: Grant = {
  id: 'grant-1',
  kind: 'delivery',
  principalId: 'courier-1',
  homeId: 'home-1',
  doorId: 'door-1',
  deliveryId: 'delivery-1',
  validFrom: NOW - HOUR,
  validUntil: NOW + HOUR,
  maxUses: 1,
  uses: 0,
  maxOpenMs: 120_000,
  requiresRecording: true,
  requiresPresence: true,
  revokedAt: null,
};

/** A request that is allowed: every later test changes one thing. */
const base: AccessRequest = {
  principal: courier,
  home,
  door,
  delivery,
  grant,
  position: { lat: home.geofence.lat, lon: home.geofence.lon, accuracyM: 10 },
  now: NOW,
  camera: { online: true, lastSeenAt: NOW - 1_000 },
  lock: { online: true, lastSeenAt: NOW - 2_000, bolt: 'locked' },
  doorSensor: { online: true, lastSeenAt: NOW - 3_000, position: 'closed' },
  activeSessionAtDoor: false,
};

type Change = (r: AccessRequest) => AccessRequest;

const withGrant =
  (patch: Partial<Grant>): Change =>
  (r) => ({ ...r, grant: r.grant === null ? null : { ...r.grant, ...patch } });

function refusalOf(d: AccessDecision): { code: ErrorCode; message: string; detail?: unknown } {
  if (d.allow) throw new Error('expected a refusal, got allow');
  return d.refusal;
}

/** One case per refusal code, in the order decideAccess must check them. */
const PRECEDENCE: readonly { name: string; code: ErrorCode; message?: string; change: Change }[] = [
  {
    name: 'not a courier',
    code: 'auth.forbidden',
    message: 'Only the assigned courier may open the door.',
    change: (r) => ({ ...r, principal: { ...r.principal, role: 'guest' } }),
  },
  {
    name: 'delivery assigned to another courier',
    code: 'grant.wrong-principal',
    change: (r) => ({ ...r, delivery: { ...r.delivery, courierId: 'courier-2' } }),
  },
  {
    name: 'delivery for another home',
    code: 'grant.wrong-door',
    change: (r) => ({ ...r, delivery: { ...r.delivery, homeId: 'home-2' } }),
  },
  {
    name: 'the owner blocked this courier at this home',
    code: 'courier.blocked',
    change: (r) => ({ ...r, ownersRefusal: 'courier-blocked' }),
  },
  {
    name: 'the owner does not (or no longer) allow the carrier in',
    code: 'carrier.not-allowed',
    change: (r) => ({ ...r, ownersRefusal: 'carrier-not-allowed' }),
  },
  {
    name: 'in-home delivery off',
    code: 'delivery.in-home-disabled',
    change: (r) => ({ ...r, home: { ...r.home, inHomeDelivery: false } }),
  },
  {
    // NOW is Thursday 15 Jan 2026, 12:00 UTC.
    name: 'today is one of the owner’s days off (in the home’s time zone)',
    code: 'delivery.day-off',
    change: (r) => ({
      ...r,
      home: {
        ...r.home,
        delivery: { ...r.home.delivery, daysOff: [...r.home.delivery.daysOff, 'sat', 'thu'] },
      },
    }),
  },
  {
    name: 'a day off that has begun in the home’s zone although not yet in UTC',
    code: 'delivery.day-off',
    change: (r) => ({
      ...r,
      now: Date.UTC(2026, 0, 15, 23, 30),
      home: {
        ...r.home,
        timeZone: 'Europe/Berlin',
        delivery: { ...r.home.delivery, daysOff: [...r.home.delivery.daysOff, 'fri'] },
      },
    }),
  },
  { name: 'no grant', code: 'grant.not-found', change: (r) => ({ ...r, grant: null }) },
  {
    name: 'grant for another principal',
    code: 'grant.wrong-principal',
    change: withGrant({ principalId: 'courier-2' }),
  },
  {
    name: 'grant for another door',
    code: 'grant.wrong-door',
    change: withGrant({ doorId: 'door-2' }),
  },
  {
    name: 'grant revoked',
    code: 'grant.revoked',
    message: ERROR_CATALOGUE['grant.revoked'].message,
    change: withGrant({ revokedAt: NOW - 1 }),
  },
  {
    name: 'delivery cancelled',
    code: 'grant.revoked',
    message: 'The delivery was cancelled.',
    change: (r) => ({ ...r, delivery: { ...r.delivery, status: 'cancelled' } }),
  },
  { name: 'grant used', code: 'grant.used', change: withGrant({ uses: 1 }) },
  {
    name: 'before the window',
    code: 'grant.not-yet-valid',
    change: withGrant({ validFrom: NOW + 1 }),
  },
  { name: 'after the window', code: 'grant.expired', change: withGrant({ validUntil: NOW }) },
  { name: 'no position', code: 'presence.missing', change: (r) => ({ ...r, position: null }) },
  {
    name: 'imprecise position',
    code: 'presence.inaccurate',
    change: (r) => ({
      ...r,
      position: { lat: home.geofence.lat, lon: home.geofence.lon, accuracyM: 500 },
    }),
  },
  {
    name: 'off-site',
    code: 'presence.off-site',
    change: (r) => ({
      ...r,
      position: {
        lat: home.geofence.lat + 1_000 / M_PER_DEG,
        lon: home.geofence.lon,
        accuracyM: 10,
      },
    }),
  },
  {
    name: 'another session at the door',
    code: 'session.active',
    change: (r) => ({ ...r, activeSessionAtDoor: true }),
  },
  {
    name: 'camera offline',
    code: 'camera.offline',
    change: (r) => ({ ...r, camera: { online: false, lastSeenAt: NOW - 1_000 } }),
  },
  {
    name: 'lock offline',
    code: 'lock.offline',
    change: (r) => ({ ...r, lock: { ...r.lock, online: false } }),
  },
  {
    name: 'lock jammed',
    code: 'lock.jammed',
    change: (r) => ({ ...r, lock: { ...r.lock, bolt: 'jammed' } }),
  },
  {
    name: 'door position unknown',
    code: 'door.unknown',
    change: (r) => ({
      ...r,
      doorSensor: { online: true, lastSeenAt: NOW - 3_000, position: 'unknown' },
    }),
  },
  {
    name: 'door open',
    code: 'door.open',
    change: (r) => ({
      ...r,
      doorSensor: { online: true, lastSeenAt: NOW - 3_000, position: 'open' },
    }),
  },
];

describe('decideAccess', () => {
  it('allows the assigned courier, on site, in the window, with every device live', () => {
    const d = decideAccess(base);
    expect(d).toEqual({ allow: true, grant });
    if (d.allow) expect(d.grant).toBe(grant);
  });

  describe('refuses with one code per failed condition', () => {
    for (const c of PRECEDENCE) {
      it(`${c.name} → ${c.code}`, () => {
        const r = refusalOf(decideAccess(c.change(base)));
        expect(r.code).toBe(c.code);
        expect(r.message).toBe(c.message ?? ERROR_CATALOGUE[c.code].message);
      });
    }
  });

  describe('checks in order of precedence: with every later condition also failing, the earliest is named', () => {
    PRECEDENCE.forEach((c, i) => {
      it(`${c.name} wins over the ${PRECEDENCE.length - i - 1} after it`, () => {
        let req = base;
        for (const later of PRECEDENCE.slice(i).reverse()) req = later.change(req);
        const r = refusalOf(decideAccess(req));
        expect(r.code).toBe(c.code);
        expect(r.message).toBe(c.message ?? ERROR_CATALOGUE[c.code].message);
      });
    });
  });

  describe('who and which delivery', () => {
    it.each(['owner', 'member', 'guest', 'carrier'] as const)('refuses role %s', (role) => {
      const r = refusalOf(decideAccess({ ...base, principal: { ...courier, role } }));
      expect(r.code).toBe('auth.forbidden');
    });

    it('allows when the owner made no choice against the carrier or courier (null or absent)', () => {
      expect(decideAccess({ ...base, ownersRefusal: null }).allow).toBe(true);
      expect('ownersRefusal' in base).toBe(false);
      expect(decideAccess(base).allow).toBe(true);
    });

    it('says plainly that a blocked courier should leave the parcel at the door', () => {
      const r = refusalOf(decideAccess({ ...base, ownersRefusal: 'courier-blocked' }));
      expect(r).toEqual({
        code: 'courier.blocked',
        message: 'The owner of this home has blocked you; leave the parcel at the door.',
      });
    });

    it('refuses a delivery with no courier assigned', () => {
      const r = refusalOf(decideAccess({ ...base, delivery: { ...delivery, courierId: null } }));
      expect(r.code).toBe('grant.wrong-principal');
    });

    it('refuses a door of another home', () => {
      const r = refusalOf(decideAccess({ ...base, door: { ...door, homeId: 'home-2' } }));
      expect(r.code).toBe('grant.wrong-door');
    });

    it('refuses a grant for another delivery', () => {
      const r = refusalOf(decideAccess(withGrant({ deliveryId: 'delivery-2' })(base)));
      expect(r.code).toBe('grant.wrong-door');
    });

    it('treats a revocation at this very millisecond as revoked', () => {
      const r = refusalOf(decideAccess(withGrant({ revokedAt: NOW })(base)));
      expect(r.code).toBe('grant.revoked');
    });

    it('refuses once the uses are spent, allows while one is left', () => {
      expect(refusalOf(decideAccess(withGrant({ maxUses: 2, uses: 2 })(base))).code).toBe(
        'grant.used',
      );
      expect(refusalOf(decideAccess(withGrant({ maxUses: 2, uses: 3 })(base))).code).toBe(
        'grant.used',
      );
      expect(decideAccess(withGrant({ maxUses: 2, uses: 1 })(base)).allow).toBe(true);
    });

    it('refuses a delivery the owner had left at the door, although its grant was never used', () => {
      const r = refusalOf(
        decideAccess({ ...base, delivery: { ...base.delivery, status: 'left-at-door' } }),
      );
      expect(r.code).toBe('grant.used');
      expect(r.message).toMatch(/left at the door/);
    });
  });

  describe('when: the window is [validFrom, validUntil)', () => {
    it('refuses one millisecond before the start, naming the start', () => {
      const r = refusalOf(decideAccess(withGrant({ validFrom: NOW + 1 })(base)));
      expect(r).toEqual({
        code: 'grant.not-yet-valid',
        message: ERROR_CATALOGUE['grant.not-yet-valid'].message,
        detail: { validFrom: NOW + 1 },
      });
    });

    it('allows at the first millisecond of the window', () => {
      expect(decideAccess(withGrant({ validFrom: NOW })(base)).allow).toBe(true);
    });

    it('allows at the last millisecond of the window', () => {
      expect(decideAccess(withGrant({ validUntil: NOW + 1 })(base)).allow).toBe(true);
    });

    it('refuses at the window end itself (exclusive), naming the end', () => {
      const r = refusalOf(decideAccess(withGrant({ validUntil: NOW })(base)));
      expect(r).toEqual({
        code: 'grant.expired',
        message: ERROR_CATALOGUE['grant.expired'].message,
        detail: { validUntil: NOW },
      });
    });
  });

  describe('where', () => {
    it('refuses a fix less precise than the policy, naming its accuracy', () => {
      const r = refusalOf(
        decideAccess({
          ...base,
          position: { lat: home.geofence.lat, lon: home.geofence.lon, accuracyM: 101 },
        }),
      );
      expect(r.code).toBe('presence.inaccurate');
      expect(r.detail).toEqual({ accuracyM: 101 });
    });

    it('accepts a fix exactly as precise as the policy asks', () => {
      const d = decideAccess({
        ...base,
        home: { ...home, geofence: { ...home.geofence, radiusM: 150 } },
        position: { lat: home.geofence.lat, lon: home.geofence.lon, accuracyM: 100 },
      });
      expect(d.allow).toBe(true);
    });

    it('follows a stricter policy', () => {
      const r = refusalOf(
        decideAccess(base, { ...DEFAULT_ACCESS_POLICY, maxPositionAccuracyM: 5 }),
      );
      expect(r.code).toBe('presence.inaccurate');
    });

    it('refuses a fix inside the fence whose accuracy circle reaches outside it', () => {
      const r = refusalOf(
        decideAccess({
          ...base,
          position: {
            lat: home.geofence.lat + 100 / M_PER_DEG,
            lon: home.geofence.lon,
            accuracyM: 60,
          },
        }),
      );
      expect(r.code).toBe('presence.off-site');
    });

    it('does not ask where the courier is when the grant does not require presence', () => {
      expect(
        decideAccess({ ...withGrant({ requiresPresence: false })(base), position: null }).allow,
      ).toBe(true);
    });
  });

  describe('devices', () => {
    it('refuses when the camera is unknown', () => {
      const r = refusalOf(decideAccess({ ...base, camera: null }));
      expect(r.code).toBe('camera.offline');
    });

    it('refuses a camera that was never seen', () => {
      const r = refusalOf(decideAccess({ ...base, camera: { online: true, lastSeenAt: null } }));
      expect(r.code).toBe('camera.offline');
    });

    it('refuses a camera that says online but has been silent too long, saying since when', () => {
      const lastSeenAt = NOW - DEFAULT_ACCESS_POLICY.deviceStaleMs - 1;
      const r = refusalOf(decideAccess({ ...base, camera: { online: true, lastSeenAt } }));
      expect(r.code).toBe('camera.offline');
      expect(r.detail).toEqual({ since: lastSeenAt });
    });

    it('accepts a camera last seen exactly deviceStaleMs ago', () => {
      const lastSeenAt = NOW - DEFAULT_ACCESS_POLICY.deviceStaleMs;
      expect(decideAccess({ ...base, camera: { online: true, lastSeenAt } }).allow).toBe(true);
    });

    it('does not need the camera when the grant does not require recording', () => {
      expect(
        decideAccess({ ...withGrant({ requiresRecording: false })(base), camera: null }).allow,
      ).toBe(true);
    });

    it('checkDoorDevices skips only the camera when recording is not required', () => {
      const stale = { online: true, lastSeenAt: NOW - DEFAULT_ACCESS_POLICY.deviceStaleMs - 1 };
      expect(checkDoorDevices({ ...base, camera: stale }, false)).toBeNull();
      expect(checkDoorDevices({ ...base, camera: stale }, true)?.code).toBe('camera.offline');
      expect(
        checkDoorDevices({ ...base, camera: null, lock: { ...base.lock, bolt: 'jammed' } }, false)
          ?.code,
      ).toBe('lock.jammed');
      expect(
        checkDoorDevices(
          { ...base, camera: null, doorSensor: { ...base.doorSensor!, position: 'open' } },
          false,
        )?.code,
      ).toBe('door.open');
    });

    it('refuses a lock that has been silent too long, saying since when', () => {
      const lastSeenAt = NOW - 60_001;
      const r = refusalOf(decideAccess({ ...base, lock: { ...base.lock, lastSeenAt } }));
      expect(r.code).toBe('lock.offline');
      expect(r.detail).toEqual({ since: lastSeenAt });
    });

    it('refuses a lock that was never seen', () => {
      const r = refusalOf(decideAccess({ ...base, lock: { ...base.lock, lastSeenAt: null } }));
      expect(r.code).toBe('lock.offline');
    });

    it('follows the policy for staleness', () => {
      const policy = { ...DEFAULT_ACCESS_POLICY, deviceStaleMs: 1_500 };
      // Camera seen 1 s ago, lock 2 s ago.
      expect(refusalOf(decideAccess(base, policy)).code).toBe('lock.offline');
    });

    it('refuses when the door sensor is silent too long, even if its last word was closed', () => {
      const r = refusalOf(
        decideAccess({
          ...base,
          doorSensor: { online: true, lastSeenAt: NOW - 60_001, position: 'closed' },
        }),
      );
      expect(r.code).toBe('door.unknown');
    });

    it('refuses when the door sensor is offline', () => {
      const r = refusalOf(
        decideAccess({
          ...base,
          doorSensor: { online: false, lastSeenAt: NOW, position: 'closed' },
        }),
      );
      expect(r.code).toBe('door.unknown');
    });

    it('allows a door without a sensor', () => {
      expect(decideAccess({ ...base, doorSensor: null }).allow).toBe(true);
    });
  });
});

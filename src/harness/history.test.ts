/**
 * The history checker on hand-made histories: a clean visit passes, and each invariant, broken
 * alone, is reported — so a scenario that passes its history check has really been checked.
 */
import { describe, expect, it } from 'vitest';
import type { AccessSession, SessionAlarm } from '../core/access-session.ts';
import { deriveDeviceKey, deriveSessionKey, sign } from '../protocol/device-auth.ts';
import { deviceTopic, type Channel } from '../protocol/topics.ts';
import { checkHistory, type HistoryContext, type HistoryEntry } from './history.ts';

const MASTER = Buffer.alloc(32, 7);
const HOME = 'home-1';
const S = 'sess-1';
const T0 = 1_795_000_000_000;
const SILENCE = 1_250;

function mqttEntry(
  t: number,
  deviceId: string,
  channel: Channel,
  payload: Record<string, unknown>,
): HistoryEntry {
  return {
    t,
    type: 'mqtt',
    topic: deviceTopic(HOME, deviceId, channel),
    deviceId,
    channel,
    payload,
  };
}

/** A heartbeat for session `sessionId` from the camera, signed with `key` (the right one by default). */
function beat(
  t: number,
  seq: number,
  opts: { key?: Buffer; sessionId?: string } = {},
): HistoryEntry {
  const sessionId = opts.sessionId ?? S;
  const key = opts.key ?? deriveSessionKey(deriveDeviceKey(MASTER, 'cam'), sessionId);
  const topic = deviceTopic(HOME, 'cam', 'heartbeat');
  const payload = sign<{ mac: string }>(key, topic, {
    sessionId,
    seq,
    capturedAt: t - 20,
    frameDigest: 'a'.repeat(64),
    recording: true,
  });
  return mqttEntry(t, 'cam', 'heartbeat', payload);
}

function session(t: number, patch: Partial<AccessSession>): HistoryEntry {
  const base = {
    id: S,
    homeId: HOME,
    doorId: 'front',
    lockDeviceId: 'lock',
    doorSensorDeviceId: 'door',
    cameraDeviceId: 'cam',
    createdAt: T0,
    endedAt: null,
    unlockedAt: null,
    lockConfirmedAt: null,
    state: 'arming',
  } as unknown as AccessSession;
  return { t, type: 'session', session: { ...base, ...patch } };
}

const unlock = (t: number): HistoryEntry =>
  mqttEntry(t, 'lock', 'command', { action: 'unlock', sessionId: S });
const bolt = (t: number, b: string): HistoryEntry =>
  mqttEntry(t, 'lock', 'state', { kind: 'lock', bolt: b });
const door = (t: number, position: string): HistoryEntry =>
  mqttEntry(t, 'door', 'state', { kind: 'door-sensor', position });
const alarm = (t: number, type: SessionAlarm['type'], sinceMs: number): HistoryEntry => ({
  t,
  type: 'alarm',
  sessionId: S,
  alarm: { type, atMs: t, sinceMs, message: type },
});

/** A clean visit: proof, unlock, door opens under heartbeats, closes, lock reports, shown locked. */
function cleanVisit(): HistoryEntry[] {
  return [
    session(T0, { state: 'arming' }),
    beat(T0 + 500, 0),
    unlock(T0 + 600),
    bolt(T0 + 900, 'unlocked'),
    session(T0 + 905, { state: 'open', unlockedAt: T0 + 905 }),
    beat(T0 + 1_000, 1),
    door(T0 + 1_200, 'closed'),
    door(T0 + 1_400, 'open'),
    beat(T0 + 1_500, 2),
    door(T0 + 2_400, 'closed'),
    beat(T0 + 2_500, 3),
    bolt(T0 + 3_000, 'locked'),
    session(T0 + 3_005, {
      state: 'verifying',
      unlockedAt: T0 + 905,
      lockConfirmedAt: T0 + 3_005,
    }),
    session(T0 + 3_600, {
      state: 'completed',
      unlockedAt: T0 + 905,
      lockConfirmedAt: T0 + 3_005,
      endedAt: T0 + 3_600,
    }),
  ];
}

const ctx = (auditedAlarms: HistoryContext['auditedAlarms'] = []): HistoryContext => ({
  masterKey: MASTER,
  silenceMs: SILENCE,
  auditedAlarms,
});

describe('checkHistory', () => {
  it('passes a clean visit, and says what it looked at', () => {
    const v = checkHistory(cleanVisit(), ctx());
    expect(v.violations).toEqual([]);
    expect(v.checked).toMatchObject({ unlocks: 1, lockShown: 1, doorOpens: 1, alarms: 0 });
  });

  it('finds an unlock without fresh proof: no heartbeat, a stale one, a forged one, another session’s', () => {
    const without = cleanVisit().filter((e) => !(e.type === 'mqtt' && e.channel === 'heartbeat'));
    expect(checkHistory(without, ctx()).violations).toEqual([
      expect.stringMatching(/^unlock of session sess-1 .* without a valid heartbeat/),
      expect.stringMatching(/^door door opened .* no valid heartbeat/),
    ]);
    const stale = cleanVisit().map((e) =>
      e.type === 'mqtt' && e.channel === 'heartbeat' && e.payload.seq === 0
        ? beat(T0 - 1_000, 0)
        : e,
    );
    expect(checkHistory(stale, ctx()).violations).toEqual([
      expect.stringMatching(/^unlock of session/),
    ]);
    const forged = cleanVisit().map((e) =>
      e.type === 'mqtt' && e.channel === 'heartbeat' && e.payload.seq === 0
        ? beat(T0 + 500, 0, { key: Buffer.alloc(32, 1) })
        : e,
    );
    expect(checkHistory(forged, ctx()).violations).toEqual([
      expect.stringMatching(/^unlock of session/),
    ]);
    // A heartbeat of an earlier session, correctly signed for *that* session, proves nothing.
    const replayed = cleanVisit().map((e) =>
      e.type === 'mqtt' && e.channel === 'heartbeat' && e.payload.seq === 0
        ? beat(T0 + 500, 0, { sessionId: 'sess-0' })
        : e,
    );
    expect(checkHistory(replayed, ctx()).violations).toEqual([
      expect.stringMatching(/^unlock of session/),
    ]);
  });

  it('counts a command once: an attacker replaying the captured unlock is not the server unlocking', () => {
    const withId = cleanVisit().map((e) =>
      e.type === 'mqtt' && e.channel === 'command'
        ? mqttEntry(e.t, 'lock', 'command', { ...e.payload, id: 'cmd-1' })
        : e,
    );
    const replayed = [
      ...withId,
      mqttEntry(T0 + 9_000, 'lock', 'command', { action: 'unlock', sessionId: S, id: 'cmd-1' }),
    ];
    const v = checkHistory(replayed, ctx());
    expect(v.violations).toEqual([]);
    expect(v.checked.unlocks).toBe(1);
    // A new command (another id) that late is the server unlocking without proof.
    const fresh = [
      ...withId,
      mqttEntry(T0 + 9_000, 'lock', 'command', { action: 'unlock', sessionId: S, id: 'cmd-2' }),
    ];
    expect(checkHistory(fresh, ctx()).violations).toEqual([
      expect.stringMatching(/^unlock of session sess-1 at \d+ without a valid heartbeat/),
    ]);
  });

  it('finds a session shown locked before its lock said so', () => {
    const early = cleanVisit().filter((e) => !(e.type === 'mqtt' && e.payload.bolt === 'locked'));
    expect(checkHistory(early, ctx()).violations).toEqual([
      expect.stringMatching(/^session sess-1 shown relocked at .* before its lock reported locked/),
    ]);
    // A report long after the session was shown locked does not count either.
    const late = [...early, bolt(T0 + 10_000, 'locked')];
    expect(checkHistory(late, ctx()).violations).toHaveLength(1);
  });

  it('finds a door opening without a heartbeat near it, unless an observation alarm covers it', () => {
    // Only the proof before the unlock is left, and the door opens 1.5 s after it.
    const noCover = cleanVisit()
      .filter((e) => !(e.type === 'mqtt' && e.channel === 'heartbeat' && e.payload.seq !== 0))
      .map((e) =>
        e.type === 'mqtt' && e.channel === 'state' && e.payload.position === 'open'
          ? door(T0 + 2_000, 'open')
          : e,
      );
    expect(checkHistory(noCover, ctx()).violations).toEqual([
      expect.stringMatching(/^door door opened at \d+ in session sess-1 with no valid heartbeat/),
    ]);
    const alarmed = [...noCover, alarm(T0 + 2_600, 'observation-lost', T0 + 1_300)];
    expect(
      checkHistory(alarmed, ctx([{ sessionId: S, type: 'observation-lost' }])).violations,
    ).toEqual([]);
  });

  it('finds an alarm that is not in the audit log', () => {
    const h = [...cleanVisit(), alarm(T0 + 3_100, 'door-left-open', T0 + 2_000)];
    expect(checkHistory(h, ctx()).violations).toEqual([
      'alarm door-left-open of session sess-1 is not in the audit log',
    ]);
    expect(checkHistory(h, ctx([{ sessionId: S, type: 'door-left-open' }])).violations).toEqual([]);
    // The right type for another session does not count.
    expect(
      checkHistory(h, ctx([{ sessionId: 'other', type: 'door-left-open' }])).violations,
    ).toHaveLength(1);
  });
});

/**
 * History checking, the Jepsen idea: record everything that crossed the wire and everything the
 * server showed during a scenario, then check the product's invariants on that record alone —
 * with the devices' own keys, not the server's judgement of them.
 *
 * The {@link HistoryRecorder} is a second MQTT client with the server's credentials on the
 * world's broker, subscribed to every device topic (commands going down, states, events,
 * heartbeats and replies going up; frames are left out), plus a listener on the server's event
 * bus (each session as it changed, each alarm). {@link checkHistory} then asserts:
 *
 * 1. **No unlock without fresh camera proof.** Every `unlock` command of a session with a
 *    camera follows, within the watchdog's silence bound, a heartbeat for that session from
 *    that camera whose MAC verifies under the session key and which says it records.
 * 2. **No "locked" shown before the lock said so.** Whenever the server first shows a session's
 *    relock confirmed (or the session completed), the session's lock had already reported its
 *    bolt `locked` after the session's last unlock command (received by the recorder at most
 *    {@link DELIVERY_SLACK_MS} later than the server showed it).
 * 3. **Every door-open inside a session is covered by a valid heartbeat or listed as a gap with
 *    an alarm.** For each report of the session's door opening while a recorded session runs,
 *    a valid heartbeat of that session arrived within the silence bound of it, or the session
 *    raised an observation alarm (lost, frozen, forged) that covers it.
 * 4. **Every alarm is in the audit log.** Each alarm the server announced has its
 *    `alarm.raised` entry (same session, same type).
 *
 * The checker is pure (times are the recorder's receive times, by the world's clock), so it is
 * unit-tested on hand-made histories that break each invariant (history.test.ts).
 */
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { AccessSession, SessionAlarm } from '../core/access-session.ts';
import type { Clock } from '../core/clock.ts';
import { deriveDeviceKey, deriveSessionKey, verifyMac } from '../protocol/device-auth.ts';
import { parseDeviceTopic, TOPIC_ROOT, type Channel } from '../protocol/topics.ts';
import type { EventBus } from '../server/event-bus.ts';

/** One recorded fact, with the time the recorder saw it (ms, world clock). */
export type HistoryEntry =
  | {
      readonly t: number;
      readonly type: 'mqtt';
      readonly topic: string;
      readonly deviceId: string;
      readonly channel: Channel;
      readonly payload: Readonly<Record<string, unknown>>;
    }
  | { readonly t: number; readonly type: 'session'; readonly session: AccessSession }
  | {
      readonly t: number;
      readonly type: 'alarm';
      readonly sessionId: string;
      readonly alarm: SessionAlarm;
    };

/** An `alarm.raised` audit entry, as the checker needs it. */
export interface AuditedAlarm {
  readonly sessionId: string;
  readonly type: string;
}

/** What {@link checkHistory} needs besides the history. */
export interface HistoryContext {
  /** The server's master key: device keys (and so session keys) derive from it. */
  readonly masterKey: Uint8Array;
  /** The watchdog's silence bound, ms: how fresh a heartbeat must be. */
  readonly silenceMs: number;
  /** Every `alarm.raised` entry of the audit log. */
  readonly auditedAlarms: readonly AuditedAlarm[];
}

/** What the check found. */
export interface HistoryVerdict {
  /** How much each invariant had to look at (a check over nothing proves nothing). */
  readonly checked: {
    readonly messages: number;
    readonly unlocks: number;
    readonly lockShown: number;
    readonly doorOpens: number;
    readonly alarms: number;
  };
  /** Each broken invariant, in words. */
  readonly violations: readonly string[];
}

const OBSERVATION_ALARMS = new Set([
  'observation-lost',
  'observation-frozen',
  'observation-forged',
]);

/**
 * How much later the recorder may receive a device's message than the server did, ms. Both get
 * it from the broker, but the server's reaction (a session shown relocked) is recorded in
 * process at once, while the recorder's own copy is still on its way; a report that arrives
 * within this slack was there before the server acted.
 */
export const DELIVERY_SLACK_MS = 250;

/** Checks the invariants of the module comment on a recorded history. */
export function checkHistory(
  history: readonly HistoryEntry[],
  ctx: HistoryContext,
): HistoryVerdict {
  const violations: string[] = [];
  // A command seen again with the same id is a replay or a redelivery, never the server
  // deciding again: only its first sighting counts.
  const seenCommands = new Set<unknown>();
  type MqttEntry = Extract<HistoryEntry, { type: 'mqtt' }>;
  const mqttEntries = history.filter((e): e is MqttEntry => {
    if (e.type !== 'mqtt') return false;
    if (e.channel !== 'command' || e.payload.id === undefined) return true;
    if (seenCommands.has(e.payload.id)) return false;
    seenCommands.add(e.payload.id);
    return true;
  });
  const sessions = new Map<string, AccessSession[]>();
  for (const e of history)
    if (e.type === 'session') {
      const list = sessions.get(e.session.id) ?? [];
      list.push(e.session);
      sessions.set(e.session.id, list);
    }
  const shownAt = new Map<AccessSession, number>();
  for (const e of history) if (e.type === 'session') shownAt.set(e.session, e.t);
  const sessionOf = (id: string): AccessSession | undefined => sessions.get(id)?.at(-1);
  const keys = new Map<string, Buffer>();
  const deviceKey = (id: string): Buffer => {
    let k = keys.get(id);
    if (k === undefined) {
      k = deriveDeviceKey(ctx.masterKey, id);
      keys.set(id, k);
    }
    return k;
  };
  /** Valid heartbeats of a session from its camera: receive times. */
  const validBeats = new Map<string, number[]>();
  const beatsOf = (s: AccessSession): number[] => {
    const known = validBeats.get(s.id);
    if (known !== undefined) return known;
    const times: number[] = [];
    if (s.cameraDeviceId !== null) {
      const key = deriveSessionKey(deviceKey(s.cameraDeviceId), s.id);
      for (const m of mqttEntries) {
        if (m.channel !== 'heartbeat' || m.deviceId !== s.cameraDeviceId) continue;
        const p = m.payload as { sessionId?: unknown; recording?: unknown; mac?: unknown };
        if (p.sessionId !== s.id || p.recording !== true || typeof p.mac !== 'string') continue;
        if (verifyMac(key, m.topic, p as { mac: string })) times.push(m.t);
      }
    }
    validBeats.set(s.id, times);
    return times;
  };

  // 1. No unlock without fresh camera proof.
  let unlocks = 0;
  for (const m of mqttEntries) {
    if (m.channel !== 'command' || m.payload.action !== 'unlock') continue;
    const sessionId = m.payload.sessionId;
    if (typeof sessionId !== 'string') continue; // the household's remote unlock: no session
    const s = sessionOf(sessionId);
    if (s === undefined || s.cameraDeviceId === null) continue; // not recorded by its grant
    unlocks += 1;
    // The broker hands a device's message to the server before any other subscriber (the
    // device's acknowledgement waits for the server), so the recorder can get the server's
    // unlock before the heartbeat it acted on.
    const fresh = beatsOf(s).some((t) => t <= m.t + DELIVERY_SLACK_MS && m.t - t <= ctx.silenceMs);
    if (!fresh)
      violations.push(
        `unlock of session ${sessionId} at ${m.t} without a valid heartbeat in the ${ctx.silenceMs} ms before it`,
      );
  }

  // 2. No "locked" shown before the lock said so.
  let lockShown = 0;
  for (const [id, views] of sessions) {
    const first = views.find((v) => v.lockConfirmedAt !== null || v.state === 'completed');
    if (first === undefined) continue;
    const t = shownAt.get(first)!;
    const lockId = first.lockDeviceId;
    const lastUnlock = Math.max(
      -Infinity,
      ...mqttEntries
        .filter(
          (m) =>
            m.channel === 'command' &&
            m.deviceId === lockId &&
            m.payload.action === 'unlock' &&
            m.payload.sessionId === id &&
            m.t <= t,
        )
        .map((m) => m.t),
    );
    if (lastUnlock === -Infinity) continue; // never unlocked: nothing was shown relocked
    lockShown += 1;
    const said = mqttEntries.some(
      (m) =>
        m.channel === 'state' &&
        m.deviceId === lockId &&
        m.payload.bolt === 'locked' &&
        m.t >= lastUnlock &&
        m.t <= t + DELIVERY_SLACK_MS,
    );
    if (!said)
      violations.push(
        `session ${id} shown ${first.state === 'completed' ? 'completed' : 'relocked'} at ${t} before its lock reported locked`,
      );
  }

  // 3. Every door-open inside a recorded session: a valid heartbeat near it, or an alarm.
  let doorOpens = 0;
  const alarmsBySession = new Map<string, SessionAlarm[]>();
  for (const e of history)
    if (e.type === 'alarm') {
      const list = alarmsBySession.get(e.sessionId) ?? [];
      list.push(e.alarm);
      alarmsBySession.set(e.sessionId, list);
    }
  const lastPosition = new Map<string, unknown>();
  for (const m of mqttEntries) {
    if (m.channel !== 'state' || m.payload.kind !== 'door-sensor') continue;
    const before = lastPosition.get(m.deviceId);
    lastPosition.set(m.deviceId, m.payload.position);
    if (m.payload.position !== 'open' || before === 'open') continue;
    for (const views of sessions.values()) {
      const s = views.at(-1)!;
      if (s.doorSensorDeviceId !== m.deviceId || s.cameraDeviceId === null) continue;
      // Inside the session: after it began unlocking, before it ended.
      const unlockedAt = s.unlockedAt;
      if (unlockedAt === null || m.t < unlockedAt) continue;
      if (s.endedAt !== null && m.t > s.endedAt) continue;
      doorOpens += 1;
      const covered = beatsOf(s).some((t) => Math.abs(t - m.t) <= ctx.silenceMs);
      const alarmed = (alarmsBySession.get(s.id) ?? []).some(
        (a) => OBSERVATION_ALARMS.has(a.type) && a.sinceMs <= m.t + ctx.silenceMs,
      );
      if (!covered && !alarmed)
        violations.push(
          `door ${m.deviceId} opened at ${m.t} in session ${s.id} with no valid heartbeat within ${ctx.silenceMs} ms and no observation alarm`,
        );
    }
  }

  // 4. Every alarm is in the audit log.
  let alarms = 0;
  for (const e of history) {
    if (e.type !== 'alarm') continue;
    alarms += 1;
    const found = ctx.auditedAlarms.some(
      (a) => a.sessionId === e.sessionId && a.type === e.alarm.type,
    );
    if (!found)
      violations.push(`alarm ${e.alarm.type} of session ${e.sessionId} is not in the audit log`);
  }

  return {
    checked: { messages: mqttEntries.length, unlocks, lockShown, doorOpens, alarms },
    violations,
  };
}

/** Settings of a {@link HistoryRecorder}. */
export interface HistoryRecorderOptions {
  readonly brokerUrl: string;
  /** The server's MQTT credentials (the broker lets its client ids read every device topic). */
  readonly credentials: { readonly username: string; readonly password: string };
  readonly events: EventBus;
  readonly clock: Clock;
  /**
   * The embedded broker's tap, when the world runs on it: messages are then recorded in the
   * broker's own order, at the moment it passes them on (after the server took them), not
   * when a client of ours is next scheduled to read its socket. Without it, an MQTT client.
   */
  readonly tap?: (filter: string, fn: (topic: string, payload: Buffer) => void) => () => void;
}

/** Records a history (see the module comment). */
export class HistoryRecorder {
  readonly entries: HistoryEntry[] = [];
  private client: MqttClient | null = null;
  private offEvents: (() => void) | null = null;
  private offTaps: (() => void)[] = [];

  constructor(private readonly o: HistoryRecorderOptions) {}

  /** Subscribes to the bus and to every device topic; resolves once subscribed. */
  async start(): Promise<void> {
    const { clock } = this.o;
    this.offEvents = this.o.events.subscribe((e) => {
      if (e.type === 'session')
        this.entries.push({ t: clock.now(), type: 'session', session: e.session });
      else if (e.type === 'alarm')
        this.entries.push({
          t: clock.now(),
          type: 'alarm',
          sessionId: e.sessionId,
          alarm: e.alarm,
        });
    });
    const record = (topic: string, payload: Buffer): void => {
      const parsed = parseDeviceTopic(topic);
      if (parsed === null || parsed.channel === 'frame') return;
      let value: unknown;
      try {
        value = JSON.parse(payload.toString('utf8'));
      } catch {
        return; // garbage is the server's to count; the invariants concern what it acted on
      }
      if (typeof value !== 'object' || value === null) return;
      this.entries.push({
        t: clock.now(),
        type: 'mqtt',
        topic,
        deviceId: parsed.deviceId,
        channel: parsed.channel,
        payload: value as Record<string, unknown>,
      });
    };
    const channels: Channel[] = ['command', 'state', 'event', 'heartbeat', 'reply'];
    const filters = channels.map((c) => `${TOPIC_ROOT}/+/+/${c}`);
    if (this.o.tap) {
      for (const f of filters) this.offTaps.push(this.o.tap(f, record));
      return;
    }
    const client = await mqtt.connectAsync(this.o.brokerUrl, {
      username: this.o.credentials.username,
      password: this.o.credentials.password,
      clientId: `${this.o.credentials.username}-history-${randomUUID()}`,
      clean: true,
      reconnectPeriod: 500,
      connectTimeout: 5_000,
      protocolVersion: 4,
    });
    this.client = client;
    client.on('message', record);
    await client.subscribeAsync(Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }])));
  }

  /** Stops recording. Idempotent. */
  async stop(): Promise<void> {
    this.offEvents?.();
    this.offEvents = null;
    for (const off of this.offTaps.splice(0)) off();
    const client = this.client;
    this.client = null;
    await client?.endAsync(true).catch(() => undefined);
  }
}

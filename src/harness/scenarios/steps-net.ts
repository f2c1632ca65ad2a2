/**
 * Steps the network-fault scenarios share (`camera-cut-before-open`, `camera-cut-after-open`,
 * `jam-at-relock`, `loop-freeze`, `command-faults`, `broker-restart`, `camera-link-down`): the
 * world's fault proxies, a watch on the door as someone standing at it would see it, what the
 * server recorded — read to observe, never to steer — and the story of a camera cut while the
 * courier is inside, told by `camera-cut-after-open` and `camera-link-down` alike.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { AuditEntry } from '../../core/audit-chain.ts';
import type { AccessSession, SessionAlarm } from '../../core/access-session.ts';
import type { DeviceLink } from '../../devices/device-link.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import type { Expectations } from '../scenario.ts';
import {
  SCENARIO_TIMING,
  sleep,
  type ScenarioWorld,
  type WorldNetwork,
} from '../scenario-world.ts';

/** The keepalive of the devices in these scenarios, s: a jammed link is noticed within ~2×. */
export const NET_KEEPALIVE_S = 2;

/** World options of a network-fault scenario: a fault proxy in front of each device. */
export const NET_WORLD = { faultProxies: { keepaliveSeconds: NET_KEEPALIVE_S } } as const;

/** The world's fault proxies. Throws when the scenario's world has none (a bug in the scenario). */
export function proxiesOf(world: ScenarioWorld): WorldNetwork {
  if (world.net === null) throw new Error('this scenario needs a world with faultProxies');
  return world.net;
}

/** One look at the door: the bolt as the lock holds it, the leaf as the sensor reads it. */
export interface DoorSample {
  /** Server clock, ms. */
  readonly at: number;
  readonly bolt: string;
  readonly door: string;
}

/**
 * Looks at the door every 20 ms until {@link DoorWatch.stop}, keeping every change: what a
 * neighbour watching the door would see, whatever the server believes.
 */
export class DoorWatch {
  private readonly samples: DoorSample[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly world: ScenarioWorld) {
    this.look();
    this.timer = setInterval(() => this.look(), 20);
  }

  private look(): void {
    const bolt = this.world.home.lock.bolt();
    const door = this.world.home.doorSensor.position();
    const last = this.samples[this.samples.length - 1];
    if (last?.bolt === bolt && last.door === door) return;
    this.samples.push({ at: this.world.sys.clock.now(), bolt, door });
  }

  /** Stops watching; returns the changes seen, first look included. */
  stop(): readonly DoorSample[] {
    clearInterval(this.timer);
    this.look();
    return [...this.samples];
  }

  /** The changes seen so far. */
  seen(): readonly DoorSample[] {
    return [...this.samples];
  }
}

/** Whether the bolt was ever seen anything but locked. */
export function everUnlocked(samples: readonly DoorSample[]): boolean {
  return samples.some((s) => s.bolt !== 'locked');
}

/** The looks at which the bolt was thrown while the door stood open (a bolt into an open door). */
export function lockedIntoOpenDoor(samples: readonly DoorSample[]): DoorSample[] {
  return samples.filter((s) => s.bolt === 'locked' && s.door === 'open');
}

/** The audit entries about a session, oldest first. */
export function sessionAudit(world: ScenarioWorld, sessionId: string): Promise<AuditEntry[]> {
  return world.sys.store.audit.entriesForSubject(`session:${sessionId}`);
}

/** The session's `command.sent` entries for one action, oldest first. */
export function commandsSent(entries: readonly AuditEntry[], action: string): AuditEntry[] {
  return entries.filter((e) => e.kind === 'command.sent' && e.data.action === action);
}

/** The bolt positions the lock itself reported during the session, consecutive repeats folded. */
export function reportedBolts(entries: readonly AuditEntry[], lockId: string): string[] {
  const bolts: string[] = [];
  for (const e of entries) {
    if (e.kind !== 'device.state' || e.actor.id !== lockId || typeof e.data.bolt !== 'string')
      continue;
    if (bolts[bolts.length - 1] !== e.data.bolt) bolts.push(e.data.bolt);
  }
  return bolts;
}

/**
 * What the camera is shown while the courier is inside (`true`) and once they have left and the
 * door is shut (`false`); each scenario drives its own camera (in-process, or a child process).
 */
export type CameraSees = (courierInside: boolean) => void;

/** Observation-lost within this of the last valid heartbeat, ms (DESIGN.md: within 2 s). */
export const CUT_DETECTION_BOUND_MS = 2_000;
/** …and within this of the cut: the silence bound plus a heartbeat interval and slack, ms. */
export const CUT_FROM_CUT_BOUND_MS = SCENARIO_TIMING.watchdog.silenceMs + 750;
/** How long the courier stays inside after the alarm, ms: long enough to see nothing is sent. */
const INSIDE_AFTER_ALARM_MS = 1_500;
/** "As soon as the door closes": the lock command must leave within this, ms. */
const COMMAND_AFTER_CLOSE_MS = 1_000;

/**
 * The courier opens the door of the open session and steps in, the camera seeing them; resolves
 * once the server knows the door stands open. The returned watch on the door started before the
 * door moved: {@link expectAbortedUnseen} reads it.
 */
export async function courierStepsIn(
  world: ScenarioWorld,
  sessionId: string,
  cameraSees: CameraSees,
): Promise<DoorWatch> {
  const watch = new DoorWatch(world);
  world.home.doorSensor.open();
  cameraSees(true);
  // The server must know the door stands open before the camera goes dark.
  await world.waitFor(
    async () => (await world.session(sessionId)).door === 'open',
    2_000,
    'the server hears the door open',
  );
  return watch;
}

/**
 * The camera was cut at `cutAt` (server clock): waits for `observation-lost` and expects it
 * within {@link CUT_DETECTION_BOUND_MS} of the last valid heartbeat and within
 * {@link CUT_FROM_CUT_BOUND_MS} after the cut, not before. `cut` names it in the messages.
 */
export async function expectObservationLostAfterCut(
  world: ScenarioWorld,
  expect: Expectations,
  sessionId: string,
  cutAt: number,
  cut: string,
): Promise<{ alarm: SessionAlarm; detectionMs: number; fromCutMs: number }> {
  const alarm = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
  const detectionMs = alarm.atMs - alarm.sinceMs;
  const fromCutMs = alarm.atMs - cutAt;
  expect.that(
    detectionMs <= CUT_DETECTION_BOUND_MS,
    `observation-lost within ${CUT_DETECTION_BOUND_MS} ms of the last valid heartbeat (took ${detectionMs} ms)`,
  );
  expect.that(
    fromCutMs >= 0 && fromCutMs <= CUT_FROM_CUT_BOUND_MS,
    `…and within ${CUT_FROM_CUT_BOUND_MS} ms after ${cut}, not before (${fromCutMs} ms)`,
  );
  return { alarm, detectionMs, fromCutMs };
}

/**
 * The courier stays inside a while after the alarm, the door open: expects no lock command sent
 * and the bolt still drawn (a bolt thrown into an open door would stop it closing). Returns the
 * lock commands sent meanwhile (expected none).
 */
export async function expectNothingThrownWhileInside(
  world: ScenarioWorld,
  expect: Expectations,
  sessionId: string,
): Promise<number> {
  await sleep(INSIDE_AFTER_ALARM_MS);
  const sentWhileOpen = commandsSent(await sessionAudit(world, sessionId), 'lock');
  expect.that(
    sentWhileOpen.length === 0,
    `no lock command while the door stands open (${sentWhileOpen.length} sent)`,
  );
  expect.that(
    world.home.lock.bolt() === 'unlocked',
    `the bolt stays drawn while the door is open (${world.home.lock.bolt()})`,
  );
  return sentWhileOpen.length;
}

/**
 * The courier walks out and pulls the door shut: expects the lock commanded within
 * `COMMAND_AFTER_CLOSE_MS` of the door closing and its own report confirming it locked.
 * Returns both delays from the close, ms (null when it did not happen).
 */
export async function courierLeavesAndDoorRelocks(
  world: ScenarioWorld,
  expect: Expectations,
  sessionId: string,
  cameraSees: CameraSees,
): Promise<{ commandAfterCloseMs: number | null; relockMs: number | null }> {
  cameraSees(false);
  world.home.doorSensor.close();
  const closedAt = world.sys.clock.now();
  const relocked = await world.relockConfirmed(sessionId, 5_000);
  expect.that(relocked !== null, 'the lock was commanded locked and confirmed it');
  const firstLock = commandsSent(await sessionAudit(world, sessionId), 'lock')[0] ?? null;
  const commandAfterCloseMs = firstLock === null ? null : firstLock.at - closedAt;
  expect.that(
    commandAfterCloseMs !== null &&
      commandAfterCloseMs >= 0 &&
      commandAfterCloseMs <= COMMAND_AFTER_CLOSE_MS,
    `the lock is commanded as soon as the door closes (${commandAfterCloseMs} ms after)`,
  );
  const relockMs = relocked?.lockConfirmedAt != null ? relocked.lockConfirmedAt - closedAt : null;
  return { commandAfterCloseMs, relockMs };
}

/**
 * The end of a visit the camera stopped seeing: waits for the session to end and expects that
 * the bolt was never thrown into the open door (from `watch`, which this stops) and is thrown
 * now, and that the session is aborted `session.observation-lost` — the camera never saw the
 * door after the relock — with coverage below 1 and the gap listed and in the audit log.
 */
export async function expectAbortedUnseen(
  world: ScenarioWorld,
  expect: Expectations,
  sessionId: string,
  watch: DoorWatch,
): Promise<SessionView> {
  const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
  const intoOpen = lockedIntoOpenDoor(watch.stop());
  expect.that(
    intoOpen.length === 0,
    `the bolt was never thrown into the open door (${intoOpen.length} looks)`,
  );
  expect.that(
    world.home.lock.bolt() === 'locked',
    `the bolt is thrown at the end (${world.home.lock.bolt()})`,
  );
  expect.that(
    done.state === 'aborted' && done.outcome?.code === 'session.observation-lost',
    `the session is aborted: the camera never saw the door after the relock (${done.state}, ${done.outcome?.code ?? 'no reason'})`,
  );
  expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
  expect.that(done.coverage.gaps.length >= 1, `the gap is listed (${done.coverage.gaps.length})`);
  const gapsInAudit = (await sessionAudit(world, sessionId)).filter(
    (e) => e.kind === 'observation.gap',
  );
  expect.that(gapsInAudit.length >= 1, `the gap is in the audit log (${gapsInAudit.length})`);
  return done;
}

/**
 * Runs `act` synchronously the first time a session change satisfies `when` — in the same turn
 * as the change, before the devices can answer the commands it sent. Returns the unsubscribe.
 */
export function atSessionChange(
  world: ScenarioWorld,
  when: (s: AccessSession) => boolean,
  act: (s: AccessSession) => void,
): () => void {
  let done = false;
  const off = world.sys.events.subscribe((e) => {
    if (done || e.type !== 'session' || !when(e.session)) return;
    done = true;
    act(e.session);
  });
  return off;
}

/** Every state a session passed through, as announced, with the server time of each. */
export class SessionTrace {
  readonly changes: { at: number; session: AccessSession }[] = [];
  private readonly off: () => void;

  constructor(world: ScenarioWorld, sessionId: () => string | null) {
    this.off = world.sys.events.subscribe((e) => {
      if (e.type === 'session' && e.session.id === sessionId())
        this.changes.push({ at: world.sys.clock.now(), session: e.session });
    });
  }

  stop(): void {
    this.off();
  }
}

/** A message seen by {@link BrokerSpy}: its topic, parsed payload and server time. */
export interface SpiedMessage {
  readonly topic: string;
  readonly payload: Record<string, unknown>;
  readonly raw: Buffer;
  readonly at: number;
}

/**
 * An attacker who reads the broker's traffic and may publish commands: on the embedded broker,
 * with the server's stolen MQTT credentials; on mosquitto, whose server account may not read
 * commands, with an account that may (the harness's observer). It reads every device's commands
 * and replies. It cannot sign anything: it holds no device key.
 */
export class BrokerSpy {
  readonly messages: SpiedMessage[] = [];

  private constructor(
    private readonly world: ScenarioWorld,
    private readonly client: MqttClient,
  ) {
    client.on('message', (topic, raw) => {
      let payload: Record<string, unknown> = {};
      try {
        payload = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      } catch {
        // Not JSON: kept raw.
      }
      this.messages.push({ topic, payload, raw: Buffer.from(raw), at: world.sys.clock.now() });
    });
  }

  /** Connects straight to the broker and subscribes to `topics`. */
  static async connect(world: ScenarioWorld, topics: readonly string[]): Promise<BrokerSpy> {
    const stolen = world.observerCredentials;
    const client = await mqtt.connectAsync(world.sys.brokerUrl, {
      username: stolen.username,
      password: stolen.password,
      clientId: `${stolen.username}-spy-${process.pid}-${Date.now()}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      protocolVersion: 4,
    });
    await client.subscribeAsync([...topics], { qos: 1 });
    return new BrokerSpy(world, client);
  }

  /** Messages seen on `topic`. */
  on(topic: string): SpiedMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Publishes `payload` on `topic`, QoS 1, and waits for the broker's acknowledgement. */
  async publish(topic: string, payload: Buffer | string): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  /** How many messages were seen so far: a mark for {@link BrokerSpy.waitFor}'s `since`. */
  mark(): number {
    return this.messages.length;
  }

  /**
   * Waits until a message on `topic`, seen after the mark `since`, satisfies `pred`; null after
   * `timeoutMs`.
   */
  async waitFor(
    topic: string,
    pred: (m: SpiedMessage) => boolean,
    timeoutMs: number,
    since = 0,
  ): Promise<SpiedMessage | null> {
    const found = (): SpiedMessage | undefined =>
      this.messages.slice(since).find((m) => m.topic === topic && pred(m));
    try {
      await this.world.waitFor(() => found() !== undefined, timeoutMs, `a message on ${topic}`);
    } catch {
      return null;
    }
    return found() ?? null;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** One numbered witness event and whether the broker acknowledged it. */
export interface WitnessEvent {
  readonly n: number;
  /** Server clock when it was handed to the link, ms. */
  readonly at: number;
  readonly acked: boolean;
}

/**
 * A device that drains a log through its link as a home hub does: every `everyMs` it publishes
 * a numbered `hub.observed` event and waits for the broker's acknowledgement (PUBACK), which is
 * where a hub forgets an entry. Whatever was acknowledged must be on the server's record.
 */
export class AckedWitness {
  readonly events: WitnessEvent[] = [];
  private readonly pending: Promise<void>[] = [];
  private readonly timer: NodeJS.Timeout;
  private n = 0;

  constructor(
    private readonly world: ScenarioWorld,
    private readonly link: DeviceLink,
    everyMs: number,
  ) {
    this.timer = setInterval(() => this.send(), everyMs);
  }

  /** The detail a witness event carries: how it is found in the audit log. */
  static detail(n: number): string {
    return JSON.stringify({ why: 'witness', n });
  }

  private send(): void {
    const n = ++this.n;
    const at = this.world.sys.clock.now();
    this.pending.push(
      this.link
        .publishEventAcked({ name: 'hub.observed', detail: AckedWitness.detail(n) })
        .then((acked) => {
          this.events.push({ n, at, acked });
        }),
    );
  }

  /** Stops sending; resolves once every event sent has its answer. */
  async stop(): Promise<readonly WitnessEvent[]> {
    clearInterval(this.timer);
    await Promise.all(this.pending);
    return [...this.events].sort((a, b) => a.n - b.n);
  }
}

/**
 * Steps the network-fault scenarios share (`camera-cut-before-open`, `camera-cut-after-open`,
 * `jam-at-relock`, `loop-freeze`, `command-faults`, `broker-restart`): the world's fault
 * proxies, a watch on the door as someone standing at it would see it, and what the server
 * recorded — read to observe, never to steer.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { AuditEntry } from '../../core/audit-chain.ts';
import type { AccessSession } from '../../core/access-session.ts';
import type { DeviceLink } from '../../devices/device-link.ts';
import type { ScenarioWorld, WorldNetwork } from '../scenario-world.ts';

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

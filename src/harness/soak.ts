/**
 * Soak on a fake clock (issue 7): a simulated week (or year) of one home's deliveries and guest
 * entries, with network jitter, message loss and true faults, run in seconds against the real
 * core — the access-session machine (`step`) and the observation watchdog — fed the way
 * `src/server/session-orchestrator.ts` feeds them. It counts false alarms (an alarm no true
 * fault explains) and missed ones (a true fault whose alarm never came).
 *
 * What is real and what is modelled:
 *
 * - Real: `createSession`/`step`, `ObservationWatchdog` with the server's default bounds
 *   (`DEFAULT_WATCHDOG_CONFIG`, what `threshold serve` runs), `DEFAULT_SESSION_TIMING`, the
 *   production `maxOpenMs` of a delivery and of a guest entry, and `FakeClock`. The
 *   orchestrator's rules are copied in {@link SoakServer}: which heartbeats count (orphans,
 *   a camera's previous session), which events a fresh heartbeat produces, a watchdog check at
 *   `nextCheckAt()`, a deadline at `deadlineAt`, one session per door.
 * - Modelled: the devices (lock with its 300 ms motor, own auto-relock that waits for a closed
 *   door, state on every movement and every 15 s; door sensor; camera beating frame + heartbeat
 *   every 500 ms from `arm` to `disarm`), the people, and the network. Not modelled: HTTP, the
 *   store, the audit log, the access decision (the door is always allowed), MACs (every
 *   heartbeat is authentic), replies (the orchestrator audits them but never acts on them).
 *
 * The network, per device connection and direction:
 *
 * - Delay: `latencyMs` ± `jitterMs`, uniform (default 100 ± 100 ms, so 0…200 ms). One device's
 *   messages share one MQTT connection over TCP, so they never overtake each other: a message
 *   is delivered no earlier than the one sent before it on that connection. Messages of
 *   *different* devices do overtake each other (the door sensor's "closed" may arrive before a
 *   heartbeat sent earlier); the report counts those as `reordered`. The core takes each
 *   report as it arrives; nothing in it depends on cross-device order except that a frame
 *   counts as "after the relock" only if its heartbeat arrives after the lock's report.
 * - Loss, `lossModel: 'publish'` (default): each PUBLISH is dropped with `lossRate`, as the
 *   project's fault proxy drops them and as a dying connection drops QoS 1 messages in flight
 *   (the reference client, `src/devices/device-link.ts`, never resends them). What recovers
 *   what, per docs/device-protocol.md: a lost heartbeat (QoS 1) or frame (QoS 0) is gone, the
 *   next comes 500 ms later; a lost lock or door state (QoS 1, retained) is corrected by the
 *   device's next report (every 15 s, or its next movement); a lost command (QoS 1) is not
 *   resent by the gateway: only `lock` is asked again, by the machine at each relock deadline.
 * - Loss, `lossModel: 'tcp'`: the loss is of an IP packet on a live connection; TCP resends it
 *   after its retransmission timeout (`tcpRtoMs`, Linux's minimum 200 ms, doubling at each
 *   further loss), and every later message on that connection waits behind it. Nothing is lost
 *   at the MQTT level.
 *
 * The home and its people: deliveries (Poisson, `deliveriesPerDay`, 08:00–20:00), a cleaner
 * on Tuesdays and Fridays at about 09:00, a friend once or twice a day at weekends (under a
 * grant without recording: a session with no camera), at least 20 minutes apart. A visitor asks
 * for the door, pushes it 1–3 s after the app shows it open, stays in and out with the door
 * open (15–60 s for a courier, 20–90 s for the cleaner, 5–30 s for the friend), closes it and
 * taps "lock" 1–3 s later; told "close the door first" (the server has not heard it closed),
 * taps again every 5 s. A visit whose session ends before the door opened is tried again twice.
 *
 * True faults (one visit chosen at random in each run of `1 / faultRate`), each with the
 * alarm it must raise: `camera-jam` (camera link blackholed, both ways, for 2 × silenceMs …
 * 20 s, while the door is open or as the relock is asked) → `observation-lost`;
 * `picture-freeze` (heartbeats go on with one digest for 2 × freezeMs … 20 s, while the door
 * is open) → `observation-frozen`; `door-left-open` (the visitor walks off, the door is closed
 * 1–3 min after the session's deadline) → `door-left-open`; `lock-jam` (the bolt jams at the
 * relock, freed at the machine's next try) → `lock-jammed`. A fault's visit may also
 * truthfully raise the alarms that follow from it ({@link FAULT_ALARMS}); any other alarm, and
 * every alarm of a clean visit, is a false alarm.
 *
 * Everything defaults to what production does. The options that are not (`relockResendMs`, a
 * shorter heartbeat, other bounds) are there to try a candidate fix against the same week.
 */
import { RELOCK_RESEND_MS } from '../server/session-orchestrator.ts';
import { performance } from 'node:perf_hooks';
import {
  createSession,
  DEFAULT_SESSION_TIMING,
  isTerminal,
  step,
  type AccessSession,
  type AlarmType,
  type Bolt,
  type DoorPosition,
  type SessionAlarm,
  type SessionEffect,
  type SessionEvent,
  type SessionTiming,
} from '../core/access-session.ts';
import { FakeClock } from '../core/clock.ts';
import {
  DEFAULT_WATCHDOG_CONFIG,
  ObservationWatchdog,
  type HeartbeatObservation,
  type WatchdogConfig,
} from '../core/observation-watchdog.ts';
import { DELIVERY_MAX_OPEN_MS } from '../server/routes/carrier-routes.ts';
import { GUEST_MAX_OPEN_MS, VIEW_SESSION_PREFIX } from '../server/session-orchestrator.ts';

// ---------------------------------------------------------------------------------------------
// Options and report
// ---------------------------------------------------------------------------------------------

/** How a lost message behaves; see the module comment. */
export type LossModel = 'publish' | 'tcp';

/** The true faults the soak injects. */
export type FaultType = 'camera-jam' | 'picture-freeze' | 'door-left-open' | 'lock-jam';

/** Every fault type, in the order the soak cycles through them. */
export const FAULT_TYPES: readonly FaultType[] = [
  'camera-jam',
  'picture-freeze',
  'door-left-open',
  'lock-jam',
];

/**
 * For each fault: the alarm it must raise (`primary`; not raised = a missed alarm), and the
 * alarms that truthfully follow from it in the same session (`follows`; raised = not false).
 * A door left open is also an overrun of the session, and once the lock has thrown its bolt
 * into the open door, the lock does say locked while the door is open. A jammed bolt is also a
 * lock that did not confirm locked by the relock deadline.
 */
export const FAULT_ALARMS: Readonly<
  Record<FaultType, { readonly primary: AlarmType; readonly follows: readonly AlarmType[] }>
> = {
  'camera-jam': { primary: 'observation-lost', follows: [] },
  'picture-freeze': { primary: 'observation-frozen', follows: [] },
  'door-left-open': {
    primary: 'door-left-open',
    follows: ['session-overrun', 'lock-state-mismatch'],
  },
  'lock-jam': { primary: 'lock-jammed', follows: ['lock-unconfirmed'] },
};

/** Settings of a soak; every one has a default. */
export interface SoakOptions {
  /** Simulated days (default 7). */
  readonly days?: number;
  /** Seed of every random choice: the same seed and options give the same report (default 1). */
  readonly seed?: number;
  /** Probability that a message is lost, 0…1 (default 0.01). */
  readonly lossRate?: number;
  /** What a lost message does (default `publish`: it is gone). */
  readonly lossModel?: LossModel;
  /** Spread of the network delay, ± ms (default 100). */
  readonly jitterMs?: number;
  /** Mean network delay, ms (default `jitterMs`, so the delay never goes below 0). */
  readonly latencyMs?: number;
  /** TCP retransmission timeout for the `tcp` loss model, ms (default 200, Linux's minimum). */
  readonly tcpRtoMs?: number;
  /**
   * Share of visits that get a true fault, 0…1 (default 0.05: one in 20, i.e. one visit chosen
   * at random in each run of 20).
   */
  readonly faultRate?: number;
  /** Mean in-home deliveries per day (Poisson; default 2). */
  readonly deliveriesPerDay?: number;
  /** Watchdog bounds (default: the server's, `DEFAULT_WATCHDOG_CONFIG`). */
  readonly watchdog?: Partial<WatchdogConfig>;
  /** Session timeouts (default: the server's, `DEFAULT_SESSION_TIMING`). */
  readonly timing?: Partial<SessionTiming>;
  /** The camera's heartbeat period while armed, ms (default 500, the reference camera's). */
  readonly heartbeatIntervalMs?: number;
  /**
   * Shortest time between two captured pictures, ms (default 500, the reference camera's): a
   * heartbeat sooner than this after the last capture names the same picture again.
   */
  readonly frameIntervalMs?: number;
  /**
   * While a session is relocking and the lock has not reported locked, the server sends `lock`
   * again every this many ms (the lock republishes its state at the end of every movement, so
   * a resend also recovers a lost report). Default: what the server does,
   * `RELOCK_RESEND_MS` (session-orchestrator.ts); null turns it off.
   */
  readonly relockResendMs?: number | null;
  /** How often every device republishes its state, ms (default 15 000). */
  readonly reportIntervalMs?: number;
  /** The lock's motor time, ms (default 300). */
  readonly motorDelayMs?: number;
  /** Simulated start, ms since the epoch; midnight UTC of a Monday (default 2026-01-12). */
  readonly startMs?: number;
}

/** Counts for one kind of message. */
export interface MessageTally {
  sent: number;
  /** Lost at random (`publish`: gone; `tcp`: resent by TCP, late). */
  lost: number;
  /** Lost to a camera jam (a true fault), not at random. */
  jammed: number;
}

/** Counts for one fault type. */
export interface FaultTally {
  injected: number;
  /** Its primary alarm was raised. */
  detected: number;
  missed: number;
  /** From the fault to its alarm, ms: the longest seen (null if none detected). */
  maxDetectionMs: number | null;
}

/** Counts for one alarm type. */
export interface AlarmTally {
  raised: number;
  /** Raised as the primary alarm of a true fault. */
  expected: number;
  /** Raised as a truthful consequence of a true fault. */
  followed: number;
  /** Raised with no true fault to explain it. */
  false: number;
}

/** One false or missed alarm, with what the network did around it. */
export interface AlarmSample {
  readonly day: number;
  readonly visit: VisitKind;
  readonly sessionId: string;
  readonly alarm: AlarmType;
  /** When it was raised (or, for a missed one, when the fault began), ms since the soak began. */
  readonly atMs: number;
  /** The fault injected in that session, if any. */
  readonly fault: FaultType | null;
  /**
   * For `observation-lost`: how long the server heard no heartbeat, ms (null while the
   * silence lasted to the session's end).
   */
  readonly silenceMs: number | null;
  /**
   * Messages lost at random before it (for observation alarms: the camera's, from a second
   * before the silence began; otherwise since the session began), at most 20, newest last;
   * `atMs` from the session's start.
   */
  readonly lost: readonly {
    readonly atMs: number;
    readonly device: string;
    readonly kind: MessageKind;
    readonly detail: string;
  }[];
  /** The same in words. */
  readonly cause: string;
  /** The session's path: each state, with its reason and time from the session's start. */
  readonly path: string;
}

/** What a soak saw. */
export interface SoakReport {
  readonly days: number;
  /** Planned visits (each may take more than one session). */
  readonly visits: number;
  readonly visitsByKind: Record<VisitKind, number>;
  readonly sessions: number;
  /** Device messages sent, both ways (heartbeats, frames, states, commands, replies). */
  readonly messages: number;
  /** Of those, lost at random. */
  readonly lost: number;
  readonly messagesByKind: Record<MessageKind, MessageTally>;
  /**
   * Messages the server acts on (heartbeats, states, commands) delivered before one another
   * device had sent earlier.
   */
  readonly reordered: number;
  readonly faultsInjected: number;
  readonly alarmsExpected: number;
  readonly alarmsRaised: number;
  readonly falseAlarms: number;
  readonly missedAlarms: number;
  /** Per fault type. */
  readonly byType: Record<FaultType, FaultTally>;
  /** Per alarm type (types never raised are left out). */
  readonly alarms: Partial<Record<AlarmType, AlarmTally>>;
  /** The first false and missed alarms (at most 25 each), with their context. */
  readonly falseAlarmSamples: readonly AlarmSample[];
  readonly missedAlarmSamples: readonly AlarmSample[];
  /** How the sessions and visits ended. */
  readonly outcomes: {
    readonly completed: number;
    readonly refused: number;
    readonly aborted: number;
    /** Visits whose visitor got through the door. */
    readonly entered: number;
    /** Visits that never got in, after every retry (the parcel left at the door). */
    readonly notEntered: number;
    /** Sessions started again because the first one ended before the door opened. */
    readonly retries: number;
    /** Times the visitor's "lock" was refused because the server thought the door open. */
    readonly relockRefused: number;
    /** Sessions whose camera was still recording 5 s after the session ended (disarm lost). */
    readonly cameraLeftRecording: number;
    /**
     * Sessions that ended `completed` although the lock never confirmed it opened (its unlock
     * or its report was lost, the machine relocked): for a delivery, the orchestrator would
     * mark it delivered.
     */
    readonly completedNeverOpened: number;
  };
  /** Heartbeats that reached the server with no session to count for. */
  readonly orphanHeartbeats: number;
  /** The bounds and network the soak ran with. */
  readonly config: {
    readonly seed: number;
    readonly lossRate: number;
    readonly lossModel: LossModel;
    readonly latencyMs: number;
    readonly jitterMs: number;
    readonly tcpRtoMs: number;
    readonly faultRate: number;
    readonly watchdog: WatchdogConfig;
    readonly timing: SessionTiming;
    readonly heartbeatIntervalMs: number;
    readonly frameIntervalMs: number;
    readonly relockResendMs: number | null;
    readonly reportIntervalMs: number;
  };
  /** Simulated time covered, ms. */
  readonly simulatedMs: number;
  /** Real time the soak took, ms. */
  readonly wallMs: number;
}

/** Who comes to the door. */
export type VisitKind = 'delivery' | 'cleaner' | 'friend';

/** What travels between the devices and the server. */
export type MessageKind =
  'heartbeat' | 'frame' | 'lock-state' | 'door-state' | 'camera-state' | 'command' | 'reply';

const MESSAGE_KINDS: readonly MessageKind[] = [
  'heartbeat',
  'frame',
  'lock-state',
  'door-state',
  'camera-state',
  'command',
  'reply',
];

/** 2026-01-12T00:00:00Z, a Monday. */
const DEFAULT_START_MS = 1_768_176_000_000;
const DAY_MS = 86_400_000;
const MINUTE = 60_000;
const MAX_SAMPLES = 25;

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/** A small seeded PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * One independent stream per purpose, so that changing the loss rate does not move the visits
 * or the faults: the same seed plans the same week whatever the network does.
 */
function stream(seed: number, purpose: number): () => number {
  return mulberry32(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(purpose, 0xc2b2ae35));
}

function uniform(rng: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

function poisson(rng: () => number, mean: number): number {
  // Knuth: fine for the small means of a home's day.
  const limit = Math.exp(-mean);
  let k = 0;
  let p = rng();
  while (p > limit) {
    k++;
    p *= rng();
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------------------------

type DeviceName = 'lock' | 'door' | 'camera';
type Direction = 'up' | 'down';

interface LostMessage {
  readonly atMs: number;
  readonly device: DeviceName;
  readonly kind: MessageKind;
  readonly detail: string;
}

/** Delivers messages with delay, per-connection order, loss and jams; counts them. */
class Network {
  private readonly lastDelivery = new Map<string, number>();
  private lastDeliveredSentAt = -Infinity;
  private readonly jams = new Map<DeviceName, { from: number; until: number }>();
  /** Recent random losses, newest last (bounded), to explain false alarms. */
  readonly recentLosses: LostMessage[] = [];
  readonly tally: Record<MessageKind, MessageTally>;
  reordered = 0;

  constructor(
    private readonly clock: FakeClock,
    private readonly rng: () => number,
    private readonly o: {
      lossRate: number;
      lossModel: LossModel;
      latencyMs: number;
      jitterMs: number;
      tcpRtoMs: number;
    },
  ) {
    this.tally = Object.fromEntries(
      MESSAGE_KINDS.map((k) => [k, { sent: 0, lost: 0, jammed: 0 }]),
    ) as Record<MessageKind, MessageTally>;
  }

  /** Blackholes a device's link, both ways, from now until `untilMs`. */
  jam(device: DeviceName, untilMs: number): void {
    this.jams.set(device, { from: this.clock.now(), until: untilMs });
  }

  private jammed(device: DeviceName, at: number): boolean {
    const j = this.jams.get(device);
    return j !== undefined && at >= j.from && at < j.until;
  }

  /**
   * Sends one message on `device`'s connection; `deliver` runs when (if) it arrives. A message
   * the server does not act on (`deliver` null: frames, replies, a camera's state) still holds
   * its place on the connection, but no timer is spent on its arrival.
   */
  send(
    device: DeviceName,
    dir: Direction,
    kind: MessageKind,
    detail: string,
    deliver: (() => void) | null,
  ): void {
    const now = this.clock.now();
    const t = this.tally[kind];
    t.sent++;
    // A jammed device neither hears nor is heard, and the reference client queues nothing.
    if (this.jammed(device, now)) {
      t.jammed++;
      return;
    }
    const { lossRate, lossModel, latencyMs, jitterMs, tcpRtoMs } = this.o;
    // Whole milliseconds, as the server's clock reads them.
    let delay = Math.max(0, Math.round(latencyMs + uniform(this.rng, -jitterMs, jitterMs)));
    if (lossRate > 0 && this.rng() < lossRate) {
      t.lost++;
      this.recentLosses.push({ atMs: now, device, kind, detail });
      if (this.recentLosses.length > 512) this.recentLosses.shift();
      if (lossModel === 'publish') return;
      // TCP resends after its timeout, doubling it each time the resend is lost too.
      let rto = tcpRtoMs;
      delay += rto;
      while (this.rng() < lossRate && rto < 60_000) {
        rto *= 2;
        delay += rto;
      }
    }
    const key = `${device}:${dir}`;
    const at = Math.max(now + delay, this.lastDelivery.get(key) ?? -Infinity);
    this.lastDelivery.set(key, at);
    if (deliver === null) return;
    this.clock.schedule(at, () => {
      if (now < this.lastDeliveredSentAt) this.reordered++;
      this.lastDeliveredSentAt = Math.max(this.lastDeliveredSentAt, now);
      // A message in flight when the jam began is caught in it too.
      if (this.jammed(device, this.clock.now())) {
        t.jammed++;
        return;
      }
      deliver();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Devices (modelled on src/devices/sim-lock.ts, sim-door-sensor.ts and sim-camera.ts)
// ---------------------------------------------------------------------------------------------

/** A command from the server, as a device receives it. */
interface Command {
  readonly action: 'arm' | 'disarm' | 'lock' | 'unlock';
  readonly sessionId: string;
  readonly relockAfterMs?: number;
}

/** The door and its sensor: the sensor reports every change and every `reportIntervalMs`. */
class DoorTwin {
  position: 'open' | 'closed' = 'closed';
  private changedAt: number;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(
    private readonly clock: FakeClock,
    private readonly net: Network,
    private readonly server: SoakServer,
    reportIntervalMs: number,
    phaseMs: number,
  ) {
    this.changedAt = clock.now();
    const report = (): void => {
      this.publish();
      clock.schedule(clock.now() + reportIntervalMs, report);
    };
    clock.schedule(clock.now() + phaseMs, report);
  }

  set(position: 'open' | 'closed'): void {
    if (position === this.position) return;
    this.position = position;
    this.changedAt = this.clock.now();
    this.publish();
    if (position === 'closed') for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Runs `fn` once the door is next closed. */
  onceClosed(fn: () => void): void {
    this.closeWaiters.push(fn);
  }

  private publish(): void {
    const position = this.position;
    const changedAt = this.changedAt;
    this.net.send('door', 'up', 'door-state', position, () =>
      this.server.onDoorState(position, changedAt),
    );
  }
}

/** The lock: a motor, its own auto-relock (waiting for a closed door), state on every move. */
class LockTwin {
  bolt: Bolt = 'locked';
  private changedAt: number;
  jamNext = false;
  /** Told when a movement ends jammed. */
  onJam: () => void = () => {};
  private busyUntil: number;
  private cancelRelock: (() => void) | null = null;
  private relockGeneration = 0;

  constructor(
    private readonly clock: FakeClock,
    private readonly net: Network,
    private readonly server: SoakServer,
    private readonly door: DoorTwin,
    private readonly motorDelayMs: number,
    reportIntervalMs: number,
    phaseMs: number,
  ) {
    this.changedAt = clock.now();
    this.busyUntil = clock.now();
    const report = (): void => {
      this.publish();
      clock.schedule(clock.now() + reportIntervalMs, report);
    };
    clock.schedule(clock.now() + phaseMs, report);
  }

  onCommand(cmd: Command): void {
    if (cmd.action === 'lock') {
      this.stopRelock();
      this.move('locked', null);
    } else if (cmd.action === 'unlock') {
      this.stopRelock();
      this.move('unlocked', cmd.relockAfterMs ?? null);
    }
  }

  /** Movements run one after another, each `motorDelayMs` long. */
  private move(target: 'locked' | 'unlocked', relockAfterMs: number | null): void {
    const start = Math.max(this.clock.now(), this.busyUntil);
    this.busyUntil = start + this.motorDelayMs;
    this.clock.schedule(this.busyUntil, () => {
      const now = this.clock.now();
      if (this.jamNext) {
        this.jamNext = false;
        this.stopRelock();
        this.bolt = 'jammed';
        this.changedAt = now;
        this.onJam();
        this.publish();
        this.reply();
        return;
      }
      this.bolt = target;
      this.changedAt = now;
      if (target === 'unlocked' && relockAfterMs !== null) this.armRelock(now + relockAfterMs);
      // The reference lock publishes at the end of every movement, moved or not.
      this.publish();
      this.reply();
    });
  }

  private armRelock(atMs: number): void {
    this.stopRelock();
    const generation = ++this.relockGeneration;
    this.cancelRelock = this.clock.schedule(atMs, () => {
      this.cancelRelock = null;
      // A bolt thrown into an open door would stop it closing: wait for it to close.
      if (this.door.position === 'open') {
        this.door.onceClosed(() => {
          if (generation === this.relockGeneration) this.move('locked', null);
        });
        return;
      }
      this.move('locked', null);
    });
  }

  private stopRelock(): void {
    this.cancelRelock?.();
    this.cancelRelock = null;
    this.relockGeneration++;
  }

  private publish(): void {
    const bolt = this.bolt;
    const changedAt = this.changedAt;
    this.net.send('lock', 'up', 'lock-state', bolt, () => this.server.onLockState(bolt, changedAt));
  }

  private reply(): void {
    // Audited by the server, never acted on: counted as traffic only.
    this.net.send('lock', 'up', 'reply', '', null);
  }
}

/**
 * The camera: on `arm`, a frame and a heartbeat at once and every period until `disarm`; its
 * state every `reportIntervalMs` (the orchestrator does not act on a camera's state).
 */
class CameraTwin {
  session: { readonly id: string; seq: number } | null = null;
  private frozenDigest: string | null = null;
  private frameCounter = 0;
  private latest: { readonly digest: string; readonly capturedAt: number } | null = null;
  private cancelTick: (() => void) | null = null;

  constructor(
    private readonly clock: FakeClock,
    private readonly net: Network,
    private readonly server: SoakServer,
    private readonly intervalMs: number,
    private readonly frameIntervalMs: number,
    reportIntervalMs: number,
    phaseMs: number,
  ) {
    const report = (): void => {
      this.publishState();
      clock.schedule(clock.now() + reportIntervalMs, report);
    };
    clock.schedule(clock.now() + phaseMs, report);
  }

  onCommand(cmd: Command): void {
    if (cmd.action === 'arm') {
      this.session = { id: cmd.sessionId, seq: 0 };
      this.publishState();
      this.cancelTick?.();
      this.tick();
    } else if (cmd.action === 'disarm') {
      if (this.session === null) return;
      this.session = null;
      this.cancelTick?.();
      this.cancelTick = null;
      this.publishState();
    }
    this.net.send('camera', 'up', 'reply', '', null);
  }

  /** Heartbeats go on, naming the same picture, until `untilMs`. */
  freeze(untilMs: number): void {
    this.frozenDigest = `frozen-${++this.frameCounter}`;
    this.clock.schedule(untilMs, () => {
      this.frozenDigest = null;
    });
  }

  private tick(): void {
    const s = this.session;
    if (s === null) return;
    const now = this.clock.now();
    // The reference camera burns its clock into each picture, so a new capture is a new digest;
    // it captures again only once the last picture is frameIntervalMs old.
    if (this.latest === null || now - this.latest.capturedAt >= this.frameIntervalMs) {
      this.latest = { digest: `frame-${++this.frameCounter}`, capturedAt: now };
    }
    const digest = this.frozenDigest ?? this.latest.digest;
    const sessionId = s.id;
    // Frames go into the clip once a heartbeat vouches for them; they decide nothing.
    this.net.send('camera', 'up', 'frame', digest, null);
    const hb: HeartbeatObservation = {
      sessionId,
      seq: s.seq++,
      capturedAt: now,
      frameDigest: digest,
      recording: true,
      macValid: true,
    };
    this.net.send('camera', 'up', 'heartbeat', `seq ${hb.seq}`, () => this.server.onHeartbeat(hb));
    this.cancelTick = this.clock.schedule(now + this.intervalMs, () => this.tick());
  }

  private publishState(): void {
    this.net.send('camera', 'up', 'camera-state', '', null);
  }
}

// ---------------------------------------------------------------------------------------------
// The server's side: the orchestrator's rules, without store, audit or HTTP
// ---------------------------------------------------------------------------------------------

interface LiveSession {
  session: AccessSession;
  readonly watchdog: ObservationWatchdog;
  /** When each accepted heartbeat arrived (to say how long a silence really lasted). */
  readonly acceptedAt: number[];
  cancelDeadline: (() => void) | null;
  cancelWatch: (() => void) | null;
}

interface Devices {
  readonly lock: LockTwin;
  readonly camera: CameraTwin;
}

/** The session orchestrator's rules for one door, run synchronously on the fake clock. */
class SoakServer {
  private live: LiveSession | null = null;
  /** What the gateway last heard from the lock and door sensor (its `liveStatus`). */
  private lockView: Bolt = 'unknown';
  private doorView: DoorPosition = 'unknown';
  private devices: Devices | null = null;
  private nextId = 1;
  orphanHeartbeats = 0;
  /** Told of every step of every session (the people's apps, the ledger). */
  onStep: (s: AccessSession, prev: AccessSession) => void = () => {};
  onEnded: (s: AccessSession, acceptedAt: readonly number[]) => void = () => {};

  constructor(
    private readonly clock: FakeClock,
    private readonly net: Network,
    private readonly watchdogConfig: WatchdogConfig,
    private readonly timing: SessionTiming,
    private readonly relockResendMs: number | null,
  ) {}

  attach(devices: Devices): void {
    this.devices = devices;
  }

  /** The running session, if any. */
  current(): AccessSession | null {
    return this.live?.session ?? null;
  }

  /**
   * A visitor asks to open the door (the orchestrator's requestAccess / requestGuestEntry,
   * minus the access decision): a new session, or `session.active` when the door is taken.
   */
  request(kind: VisitKind): AccessSession | 'session.active' {
    if (this.live !== null) return 'session.active';
    const n = this.nextId++;
    const now = this.clock.now();
    const session = createSession(
      {
        id: `s${n}`,
        homeId: 'home',
        doorId: 'door',
        deliveryId: kind === 'delivery' ? `d${n}` : null,
        grantId: `g${n}`,
        principalId: kind,
        lockDeviceId: 'lock',
        doorSensorDeviceId: 'door',
        // The friend's grant does not ask for recording (the household turned it off).
        cameraDeviceId: kind === 'friend' ? null : 'camera',
        maxOpenMs: kind === 'delivery' ? DELIVERY_MAX_OPEN_MS : GUEST_MAX_OPEN_MS,
        bolt: this.lockView,
        door: this.doorView,
        timing: this.timing,
      },
      now,
    );
    this.live = {
      session,
      watchdog: new ObservationWatchdog(session.id, this.watchdogConfig),
      acceptedAt: [],
      cancelDeadline: null,
      cancelWatch: null,
    };
    this.apply({ type: 'start' });
    return this.live?.session ?? session;
  }

  /** The visitor taps "lock": the machine's refusal code, or null when accepted. */
  relock(sessionId: string): string | null {
    const l = this.live;
    if (l === null || l.session.id !== sessionId) return 'session.finished';
    const r = this.apply({ type: 'relock-requested' });
    return r?.refusal?.code ?? null;
  }

  private apply(event: SessionEvent): ReturnType<typeof step> | null {
    const l = this.live;
    if (l === null) return null;
    const prev = l.session;
    const r = step(prev, event, this.clock.now());
    l.session = r.session;
    this.perform(r.session, r.effects);
    this.armDeadline(l);
    if (r.session.state === 'relocking' && prev.state !== 'relocking') this.armResend(l);
    this.onStep(r.session, prev);
    if (isTerminal(r.session) && !isTerminal(prev)) this.finish(l);
    return r;
  }

  private perform(s: AccessSession, effects: readonly SessionEffect[]): void {
    const devices = this.devices;
    if (devices === null) return;
    for (const e of effects) {
      if (e.type !== 'command') continue;
      const cmd: Command =
        e.relockAfterMs === undefined
          ? { action: e.action, sessionId: s.id }
          : { action: e.action, sessionId: s.id, relockAfterMs: e.relockAfterMs };
      if (e.device === 'lock') {
        this.net.send('lock', 'down', 'command', e.action, () => devices.lock.onCommand(cmd));
      } else if (s.cameraDeviceId !== null) {
        this.net.send('camera', 'down', 'command', e.action, () => devices.camera.onCommand(cmd));
      }
    }
  }

  private armDeadline(l: LiveSession): void {
    l.cancelDeadline?.();
    l.cancelDeadline = null;
    const at = l.session.deadlineAt;
    if (at === null || isTerminal(l.session)) return;
    l.cancelDeadline = this.clock.schedule(at, () => {
      l.cancelDeadline = null;
      if (this.live === l) this.apply({ type: 'deadline' });
    });
  }

  /** The candidate fix (off by default): ask the lock again while its report is missing. */
  private armResend(l: LiveSession): void {
    const every = this.relockResendMs;
    if (every === null) return;
    this.clock.schedule(this.clock.now() + every, () => {
      if (this.live !== l || l.session.state !== 'relocking') return;
      const lock = this.devices?.lock;
      if (lock === undefined) return;
      const cmd: Command = { action: 'lock', sessionId: l.session.id };
      this.net.send('lock', 'down', 'command', 'lock (resent)', () => lock.onCommand(cmd));
      this.armResend(l);
    });
  }

  private armWatch(l: LiveSession): void {
    l.cancelWatch?.();
    l.cancelWatch = null;
    const at = l.watchdog.nextCheckAt();
    if (at === null || isTerminal(l.session)) return;
    l.cancelWatch = this.clock.schedule(at, () => {
      l.cancelWatch = null;
      if (this.live !== l) return;
      const t = l.watchdog.check(this.clock.now());
      if (t && (t.to === 'lost' || t.to === 'frozen')) {
        this.apply({ type: 'observation', status: t.to, sinceMs: t.sinceMs });
      }
      if (this.live === l) this.armWatch(l);
    });
  }

  private finish(l: LiveSession): void {
    l.cancelDeadline?.();
    l.cancelWatch?.();
    this.live = null;
    this.onEnded(l.session, l.acceptedAt);
  }

  onHeartbeat(hb: HeartbeatObservation): void {
    const l = this.live;
    if (
      l === null ||
      l.session.state === 'requested' ||
      l.session.state === 'awaiting-owner' ||
      l.session.cameraDeviceId === null
    ) {
      if (!hb.sessionId.startsWith(VIEW_SESSION_PREFIX)) this.orphanHeartbeats++;
      return;
    }
    const now = this.clock.now();
    if (hb.macValid && hb.sessionId !== l.session.id && l.watchdog.observedSince === null) {
      // The camera's previous session, until it has switched to this one: not a fault.
      this.orphanHeartbeats++;
      return;
    }
    const wasStatus = l.watchdog.status;
    const v = l.watchdog.onHeartbeat(hb, now);
    if (!v.accepted) {
      const hostile =
        v.reason === 'bad-mac' ||
        v.reason === 'replayed-seq' ||
        (v.reason === 'wrong-session' && l.watchdog.observedSince !== null);
      if (hostile && !l.session.alarms.some((a) => a.type === 'observation-forged')) {
        this.apply({ type: 'heartbeat-rejected', reason: v.reason });
      }
      return;
    }
    l.acceptedAt.push(now);
    if (v.fresh) {
      if (l.session.state === 'arming' && hb.recording) this.apply({ type: 'camera-recording' });
      if (this.live === l && (wasStatus === 'lost' || wasStatus === 'frozen')) {
        this.apply({ type: 'observation', status: 'live', sinceMs: now });
      }
      if (this.live === l) this.apply({ type: 'fresh-frame' });
    }
    if (this.live === l) this.armWatch(l);
  }

  onLockState(bolt: Bolt, changedAt: number): void {
    this.lockView = bolt;
    if (this.live !== null) this.apply({ type: 'lock-report', bolt, changedAt });
  }

  onDoorState(position: DoorPosition, _changedAt: number): void {
    this.doorView = position;
    if (this.live !== null) this.apply({ type: 'door-report', position });
  }
}

// ---------------------------------------------------------------------------------------------
// Visits and the people who make them
// ---------------------------------------------------------------------------------------------

interface FaultPlan {
  readonly type: FaultType;
  /** For camera-jam: during the open door, or as the relock is asked. */
  readonly phase: 'while-open' | 'at-relock';
  /** How long a jam or freeze lasts, ms. */
  readonly durationMs: number;
  /** Where in the visitor's time inside it starts, 0…1. */
  readonly offset: number;
}

interface PlannedVisit {
  readonly day: number;
  readonly kind: VisitKind;
  readonly atMs: number;
  /** Time the door stays open while the visitor goes in and out, ms. */
  readonly dwellMs: number;
  readonly fault: FaultPlan | null;
}

interface InjectedFault {
  readonly type: FaultType;
  readonly atMs: number;
  readonly day: number;
}

/** Plans the visits of every day: deliveries, the cleaner, a friend at weekends. */
function planVisits(
  days: number,
  startMs: number,
  rng: () => number,
  faultRng: () => number,
  o: { deliveriesPerDay: number; faultRate: number; silenceMs: number; freezeMs: number },
): PlannedVisit[] {
  const visits: PlannedVisit[] = [];
  let cycle = Math.floor(faultRng() * FAULT_TYPES.length);
  // "One visit in 20" means one in each run of 20 visits, which one chosen at random: the rate
  // holds over a week as over a year, and the faults are still not evenly spaced.
  const block = o.faultRate > 0 ? Math.max(1, Math.round(1 / o.faultRate)) : 0;
  let index = 0;
  let faultSlot = -1;
  for (let day = 0; day < days; day++) {
    const dayStart = startMs + day * DAY_MS;
    const weekday = (new Date(dayStart).getUTCDay() + 6) % 7; // 0 = Monday
    const raw: { kind: VisitKind; at: number }[] = [];
    const deliveries = poisson(rng, o.deliveriesPerDay);
    for (let i = 0; i < deliveries; i++) {
      raw.push({ kind: 'delivery', at: dayStart + uniform(rng, 8 * 60, 20 * 60) * MINUTE });
    }
    if (weekday === 1 || weekday === 4) {
      raw.push({ kind: 'cleaner', at: dayStart + uniform(rng, 8 * 60 + 45, 9 * 60 + 15) * MINUTE });
    }
    if (weekday === 5 || weekday === 6) {
      const n = rng() < 0.5 ? 1 : 2;
      for (let i = 0; i < n; i++) {
        raw.push({ kind: 'friend', at: dayStart + uniform(rng, 10 * 60, 22 * 60) * MINUTE });
      }
    }
    raw.sort((a, b) => a.at - b.at);
    // People do not queue at one door: keep visits at least 20 minutes apart.
    let last = -Infinity;
    for (const r of raw) {
      const at = Math.round(Math.max(r.at, last + 20 * MINUTE));
      last = at;
      const dwellSec =
        r.kind === 'delivery'
          ? uniform(rng, 15, 60)
          : r.kind === 'cleaner'
            ? uniform(rng, 20, 90)
            : uniform(rng, 5, 30);
      let fault: FaultPlan | null = null;
      if (block > 0 && index % block === 0) faultSlot = Math.floor(faultRng() * block);
      const faulty = block > 0 && index % block === faultSlot;
      index++;
      if (faulty) {
        // Cycle through the types this visit can have (no camera: no camera fault).
        const allowed = FAULT_TYPES.filter(
          (t) => r.kind !== 'friend' || t === 'door-left-open' || t === 'lock-jam',
        );
        let type = FAULT_TYPES[cycle % FAULT_TYPES.length]!;
        while (!allowed.includes(type)) type = FAULT_TYPES[++cycle % FAULT_TYPES.length]!;
        cycle++;
        const bound = type === 'picture-freeze' ? o.freezeMs : o.silenceMs;
        fault = {
          type,
          phase: type === 'camera-jam' && faultRng() < 0.5 ? 'at-relock' : 'while-open',
          durationMs: Math.round(uniform(faultRng, 2 * bound, 20_000)),
          offset: uniform(faultRng, 0.2, 0.8),
        };
      }
      visits.push({ day, kind: r.kind, atMs: at, dwellMs: Math.round(dwellSec * 1000), fault });
    }
  }
  return visits;
}

/** The world of one soak: clock, network, devices, server, visitors and the ledger. */
class SoakWorld {
  readonly clock: FakeClock;
  readonly net: Network;
  readonly server: SoakServer;
  readonly door: DoorTwin;
  readonly lock: LockTwin;
  readonly camera: CameraTwin;
  private readonly people: () => number;
  private readonly watchers = new Map<string, (s: AccessSession) => void>();
  readonly injected = new Map<string, InjectedFault>();
  readonly sessionDay = new Map<string, { day: number; kind: VisitKind }>();
  readonly outcomes = {
    completed: 0,
    refused: 0,
    aborted: 0,
    entered: 0,
    notEntered: 0,
    retries: 0,
    relockRefused: 0,
    cameraLeftRecording: 0,
    completedNeverOpened: 0,
  };
  sessions = 0;

  constructor(
    readonly o: ResolvedOptions,
    readonly ledger: Ledger,
  ) {
    this.clock = new FakeClock(o.startMs);
    this.net = new Network(this.clock, stream(o.seed, 3), o);
    this.server = new SoakServer(this.clock, this.net, o.watchdog, o.timing, o.relockResendMs);
    const phases = stream(o.seed, 4);
    this.people = stream(o.seed, 5);
    this.door = new DoorTwin(
      this.clock,
      this.net,
      this.server,
      o.reportIntervalMs,
      Math.round(uniform(phases, 0, o.reportIntervalMs)),
    );
    this.lock = new LockTwin(
      this.clock,
      this.net,
      this.server,
      this.door,
      o.motorDelayMs,
      o.reportIntervalMs,
      Math.round(uniform(phases, 0, o.reportIntervalMs)),
    );
    this.camera = new CameraTwin(
      this.clock,
      this.net,
      this.server,
      o.heartbeatIntervalMs,
      o.frameIntervalMs,
      o.reportIntervalMs,
      Math.round(uniform(phases, 0, o.reportIntervalMs)),
    );
    this.server.attach({ lock: this.lock, camera: this.camera });
    this.server.onStep = (s) => this.watchers.get(s.id)?.(s);
    this.server.onEnded = (s, acceptedAt) => {
      this.watchers.delete(s.id);
      // A jam planned for a relock that never came does not carry over to the next visit.
      this.lock.jamNext = false;
      this.outcomes[s.state === 'completed' || s.state === 'refused' ? s.state : 'aborted']++;
      if (s.state === 'completed' && s.unlockedAt === null) this.outcomes.completedNeverOpened++;
      const where = this.sessionDay.get(s.id);
      this.ledger.settle(
        s,
        acceptedAt,
        this.injected.get(s.id) ?? null,
        where,
        this.net.recentLosses,
      );
      // The machine sends `disarm` once; if it is lost, the camera records on.
      if (s.cameraDeviceId !== null) {
        this.clock.schedule(this.clock.now() + 5_000, () => {
          if (this.camera.session?.id === s.id) this.outcomes.cameraLeftRecording++;
        });
      }
    };
  }

  private react(lo = 1_000, hi = 3_000): number {
    return Math.round(uniform(this.people, lo, hi));
  }

  /** Starts a visit at its time: the visitor asks, and acts on what the app shows. */
  schedule(v: PlannedVisit): void {
    this.clock.schedule(v.atMs, () => this.attempt(v, 1, 0));
  }

  private attempt(v: PlannedVisit, attemptNo: number, waits: number): void {
    const r = this.server.request(v.kind);
    if (r === 'session.active') {
      // Someone else is at the door (or a session has not ended yet): try again in a minute.
      if (waits < 30)
        this.clock.schedule(this.clock.now() + MINUTE, () => this.attempt(v, attemptNo, waits + 1));
      else this.outcomes.notEntered++;
      return;
    }
    this.sessions++;
    const sessionId = r.id;
    this.sessionDay.set(sessionId, { day: v.day, kind: v.kind });
    let entered = false;
    let opening = false;
    const onStep = (s: AccessSession): void => {
      if (isTerminal(s)) {
        if (!entered && !opening) this.notInside(v, attemptNo);
        return;
      }
      if (s.state === 'open' && !entered && !opening) {
        opening = true;
        // The app says "open": the visitor pushes the door after a moment.
        this.clock.schedule(this.clock.now() + this.react(), () => {
          const now = this.server.current();
          if (now === null || now.id !== sessionId || now.state !== 'open') {
            opening = false;
            if (now === null || now.id !== sessionId) this.notInside(v, attemptNo);
            return;
          }
          entered = true;
          this.outcomes.entered++;
          this.inside(v, sessionId);
        });
      }
    };
    this.watchers.set(sessionId, onStep);
    // The start step has run already: the visitor looks at the session as it is now.
    onStep(r);
  }

  /** The visit ended without the door opening: try again (twice), then leave the parcel. */
  private notInside(v: PlannedVisit, attemptNo: number): void {
    if (attemptNo < 3) {
      this.outcomes.retries++;
      this.clock.schedule(this.clock.now() + 30_000, () => this.attempt(v, attemptNo + 1, 0));
    } else {
      this.outcomes.notEntered++;
    }
  }

  /** The door is open: in and out, faults on the way, then close and lock. */
  private inside(v: PlannedVisit, sessionId: string): void {
    const start = this.clock.now();
    this.door.set('open');
    const f = v.fault;
    if (
      f !== null &&
      (f.type === 'camera-jam' || f.type === 'picture-freeze') &&
      f.phase === 'while-open'
    ) {
      this.clock.schedule(start + Math.round(v.dwellMs * f.offset), () => {
        if (!this.liveSession(sessionId)) return;
        this.inject(sessionId, v, f.type);
        if (f.type === 'camera-jam') this.net.jam('camera', this.clock.now() + f.durationMs);
        else this.camera.freeze(this.clock.now() + f.durationMs);
      });
    }
    this.clock.schedule(start + v.dwellMs, () => {
      let s = this.server.current();
      if (f !== null && f.type === 'door-left-open' && s?.id === sessionId && s.state === 'open') {
        // The visitor walks off leaving the door open; someone closes it well after the
        // session's deadline.
        this.inject(sessionId, v, f.type);
        this.clock.schedule((s.deadlineAt ?? 0) + this.react(MINUTE, 3 * MINUTE), () =>
          this.door.set('closed'),
        );
        return;
      }
      this.door.set('closed');
      s = this.server.current();
      if (f !== null && f.type === 'lock-jam' && s?.id === sessionId && s.state === 'open') {
        // The bolt will catch the strike at its next movement, the relock (the machine's next
        // try frees it); the fault is on record when it happens.
        this.lock.jamNext = true;
        this.lock.onJam = () => {
          if (this.liveSession(sessionId)) this.inject(sessionId, v, f.type);
        };
      }
      this.clock.schedule(this.clock.now() + this.react(), () => this.tapLock(v, sessionId, 0));
    });
  }

  /** The visitor taps "lock"; told the door is open, tries again every 5 s for 2 minutes. */
  private tapLock(v: PlannedVisit, sessionId: string, tries: number): void {
    const f = v.fault;
    if (f !== null && f.type === 'camera-jam' && f.phase === 'at-relock' && tries === 0) {
      if (this.liveSession(sessionId)) {
        this.inject(sessionId, v, f.type);
        this.net.jam('camera', this.clock.now() + f.durationMs);
      }
    }
    const refusal = this.server.relock(sessionId);
    if (refusal === 'door.open') {
      this.outcomes.relockRefused++;
      if (tries < 24) {
        this.clock.schedule(this.clock.now() + 5_000, () => this.tapLock(v, sessionId, tries + 1));
      }
    }
  }

  private liveSession(sessionId: string): boolean {
    const s = this.server.current();
    return s !== null && s.id === sessionId && !isTerminal(s);
  }

  private inject(sessionId: string, v: PlannedVisit, type: FaultType): void {
    if (this.injected.has(sessionId)) return;
    this.injected.set(sessionId, { type, atMs: this.clock.now(), day: v.day });
  }
}

/** A session's states, with their reasons and times from its start, for people. */
function pathOf(s: AccessSession): string {
  return s.history
    .map((h) => `${h.state}${h.reason ? ` (${h.reason})` : ''} +${h.atMs - s.createdAt}`)
    .join(' → ');
}

/** Counts alarms against the faults that explain them. */
class Ledger {
  readonly byType = Object.fromEntries(
    FAULT_TYPES.map((t): [FaultType, FaultTally] => [
      t,
      { injected: 0, detected: 0, missed: 0, maxDetectionMs: null },
    ]),
  ) as Record<FaultType, FaultTally>;
  readonly alarms: Partial<Record<AlarmType, AlarmTally>> = {};
  readonly falseSamples: AlarmSample[] = [];
  readonly missedSamples: AlarmSample[] = [];
  raised = 0;
  falseAlarms = 0;
  missed = 0;

  constructor(
    private readonly startMs: number,
    private readonly silenceMs: number,
    private readonly lossModel: LossModel,
  ) {}

  private tally(type: AlarmType): AlarmTally {
    return (this.alarms[type] ??= { raised: 0, expected: 0, followed: 0, false: 0 });
  }

  /** Classifies a finished session's alarms. */
  settle(
    s: AccessSession,
    acceptedAt: readonly number[],
    fault: InjectedFault | null,
    where: { day: number; kind: VisitKind } | undefined,
    losses: readonly LostMessage[],
  ): void {
    const spec = fault === null ? null : FAULT_ALARMS[fault.type];
    if (fault !== null && spec !== null) {
      const t = this.byType[fault.type];
      t.injected++;
      const hit = s.alarms.find((a) => a.type === spec.primary && a.atMs >= fault.atMs);
      if (hit !== undefined) {
        t.detected++;
        const ms = hit.atMs - fault.atMs;
        t.maxDetectionMs = Math.max(t.maxDetectionMs ?? 0, ms);
      } else if (s.alarms.some((a) => a.type === spec.primary)) {
        // Raised before the fault, by a false cause (counted below): the alarm stands.
        t.detected++;
      } else {
        t.missed++;
        this.missed++;
        if (this.missedSamples.length < MAX_SAMPLES) {
          this.missedSamples.push({
            day: fault.day,
            visit: where?.kind ?? 'delivery',
            sessionId: s.id,
            alarm: spec.primary,
            atMs: fault.atMs - this.startMs,
            fault: fault.type,
            silenceMs: null,
            lost: [],
            path: pathOf(s),
            cause: `session ${s.state} (${s.history.map((h) => h.state).join('→')}), alarms: ${
              s.alarms.map((a) => a.type).join(', ') || 'none'
            }`,
          });
        }
      }
    }
    for (const a of s.alarms) {
      this.raised++;
      const t = this.tally(a.type);
      t.raised++;
      const afterFault = fault !== null && a.atMs >= fault.atMs;
      if (spec !== null && afterFault && a.type === spec.primary) {
        t.expected++;
      } else if (spec !== null && afterFault && spec.follows.includes(a.type)) {
        t.followed++;
      } else {
        t.false++;
        this.falseAlarms++;
        if (this.falseSamples.length < MAX_SAMPLES) {
          this.falseSamples.push({
            day: where?.day ?? 0,
            visit: where?.kind ?? 'delivery',
            sessionId: s.id,
            alarm: a.type,
            atMs: a.atMs - this.startMs,
            fault: fault?.type ?? null,
            path: pathOf(s),
            ...this.explain(a, s, acceptedAt, losses),
          });
        }
      }
    }
  }

  /** What the network did before a false alarm. */
  private explain(
    a: SessionAlarm,
    s: AccessSession,
    acceptedAt: readonly number[],
    losses: readonly LostMessage[],
  ): Pick<AlarmSample, 'silenceMs' | 'lost' | 'cause'> {
    const observation = a.type === 'observation-lost' || a.type === 'observation-frozen';
    const from = observation ? a.sinceMs - 1_000 : s.createdAt;
    const lost = losses
      .filter((l) => l.atMs >= from && l.atMs <= a.atMs && (!observation || l.device === 'camera'))
      .slice(-20)
      .map((l) => ({
        atMs: l.atMs - s.createdAt,
        device: l.device,
        kind: l.kind,
        detail: l.detail,
      }));
    let silenceMs: number | null = null;
    const parts: string[] = [];
    if (a.type === 'observation-lost') {
      const next = acceptedAt.find((t) => t > a.sinceMs);
      silenceMs = next === undefined ? null : next - a.sinceMs;
      const heard = silenceMs === null ? 'the rest of the session' : `${silenceMs} ms`;
      parts.push(`no heartbeat for ${heard} (silenceMs ${this.silenceMs})`);
    }
    const what = lost.map(
      (l) => `${l.device} ${l.kind}${l.detail ? ` ${l.detail}` : ''} at +${l.atMs} ms`,
    );
    const verb = this.lossModel === 'tcp' ? 'resent late by TCP' : 'lost';
    parts.push(what.length > 0 ? `${verb}: ${what.join(', ')}` : 'no message lost before it');
    return { silenceMs, lost, cause: parts.join('; ') };
  }
}

interface ResolvedOptions {
  readonly days: number;
  readonly seed: number;
  readonly lossRate: number;
  readonly lossModel: LossModel;
  readonly jitterMs: number;
  readonly latencyMs: number;
  readonly tcpRtoMs: number;
  readonly faultRate: number;
  readonly deliveriesPerDay: number;
  readonly watchdog: WatchdogConfig;
  readonly timing: SessionTiming;
  readonly heartbeatIntervalMs: number;
  readonly frameIntervalMs: number;
  readonly relockResendMs: number | null;
  readonly reportIntervalMs: number;
  readonly motorDelayMs: number;
  readonly startMs: number;
}

function resolve(o: SoakOptions): ResolvedOptions {
  const jitterMs = o.jitterMs ?? 100;
  const r: ResolvedOptions = {
    days: o.days ?? 7,
    seed: o.seed ?? 1,
    lossRate: o.lossRate ?? 0.01,
    lossModel: o.lossModel ?? 'publish',
    jitterMs,
    latencyMs: o.latencyMs ?? jitterMs,
    tcpRtoMs: o.tcpRtoMs ?? 200,
    faultRate: o.faultRate ?? 0.05,
    deliveriesPerDay: o.deliveriesPerDay ?? 2,
    watchdog: { ...DEFAULT_WATCHDOG_CONFIG, ...o.watchdog },
    timing: { ...DEFAULT_SESSION_TIMING, ...o.timing },
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? 500,
    frameIntervalMs: o.frameIntervalMs ?? 500,
    relockResendMs: o.relockResendMs === undefined ? RELOCK_RESEND_MS : o.relockResendMs,
    reportIntervalMs: o.reportIntervalMs ?? 15_000,
    motorDelayMs: o.motorDelayMs ?? 300,
    startMs: o.startMs ?? DEFAULT_START_MS,
  };
  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new RangeError(`soak: ${what}`);
  };
  check(Number.isInteger(r.days) && r.days >= 1, 'days must be an integer ≥ 1');
  check(Number.isInteger(r.seed), 'seed must be an integer');
  check(r.lossRate >= 0 && r.lossRate < 1, 'lossRate must be in [0, 1)');
  check(r.faultRate >= 0 && r.faultRate <= 1, 'faultRate must be in [0, 1]');
  check(r.jitterMs >= 0 && r.latencyMs >= 0 && r.tcpRtoMs > 0, 'delays must be ≥ 0');
  check(r.deliveriesPerDay >= 0, 'deliveriesPerDay must be ≥ 0');
  check(
    r.heartbeatIntervalMs > 0 &&
      r.frameIntervalMs > 0 &&
      r.reportIntervalMs > 0 &&
      (r.relockResendMs === null || r.relockResendMs > 0),
    'intervals must be > 0',
  );
  return r;
}

/**
 * Runs a soak: plans `days` of visits from the seed, plays them on a fake clock against the
 * real session machine and watchdog, and reports every message, fault and alarm. Synchronous
 * and deterministic: the same options give the same report (but for `wallMs`).
 *
 * @throws RangeError on an option out of range.
 */
export function runSoak(options: SoakOptions = {}): SoakReport {
  const started = performance.now();
  const o = resolve(options);
  const ledger = new Ledger(o.startMs, o.watchdog.silenceMs, o.lossModel);
  const world = new SoakWorld(o, ledger);
  const visits = planVisits(o.days, o.startMs, stream(o.seed, 1), stream(o.seed, 2), {
    deliveriesPerDay: o.deliveriesPerDay,
    faultRate: o.faultRate,
    silenceMs: o.watchdog.silenceMs,
    freezeMs: o.watchdog.freezeMs,
  });
  const endMs = o.startMs + o.days * DAY_MS;
  // A day at a time, its visits scheduled as it begins: the fake clock looks through every
  // pending timer at each step, so a year's visits queued at once would slow it a hundredfold.
  for (let day = 0; day < o.days; day++) {
    for (const v of visits) if (v.day === day) world.schedule(v);
    world.clock.advanceTo(o.startMs + (day + 1) * DAY_MS);
  }
  // A visit late on the last day finishes: the session deadlines bound how long it can take.
  world.clock.advanceTo(endMs + 30 * MINUTE);

  const visitsByKind: Record<VisitKind, number> = { delivery: 0, cleaner: 0, friend: 0 };
  for (const v of visits) visitsByKind[v.kind]++;
  const tally = world.net.tally;
  const messages = MESSAGE_KINDS.reduce((n, k) => n + tally[k].sent, 0);
  const lost = MESSAGE_KINDS.reduce((n, k) => n + tally[k].lost, 0);
  const faultsInjected = FAULT_TYPES.reduce((n, t) => n + ledger.byType[t].injected, 0);
  return {
    days: o.days,
    visits: visits.length,
    visitsByKind,
    sessions: world.sessions,
    messages,
    lost,
    messagesByKind: tally,
    reordered: world.net.reordered,
    faultsInjected,
    alarmsExpected: faultsInjected,
    alarmsRaised: ledger.raised,
    falseAlarms: ledger.falseAlarms,
    missedAlarms: ledger.missed,
    byType: ledger.byType,
    alarms: ledger.alarms,
    falseAlarmSamples: ledger.falseSamples,
    missedAlarmSamples: ledger.missedSamples,
    outcomes: world.outcomes,
    orphanHeartbeats: world.server.orphanHeartbeats,
    config: {
      seed: o.seed,
      lossRate: o.lossRate,
      lossModel: o.lossModel,
      latencyMs: o.latencyMs,
      jitterMs: o.jitterMs,
      tcpRtoMs: o.tcpRtoMs,
      faultRate: o.faultRate,
      watchdog: o.watchdog,
      timing: o.timing,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      frameIntervalMs: o.frameIntervalMs,
      relockResendMs: o.relockResendMs,
      reportIntervalMs: o.reportIntervalMs,
    },
    simulatedMs: world.clock.now() - o.startMs,
    wallMs: Math.round(performance.now() - started),
  };
}

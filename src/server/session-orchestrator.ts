/**
 * The session orchestrator drives access sessions: it takes courier requests, asks the core
 * for the access decision, runs each session's state machine and observation watchdog, sends
 * the commands the machine asks for, arms deadlines on the clock, and records every step in
 * the store and the audit log.
 *
 * Each session's events are applied one at a time (a per-session queue), and each step is
 * audited and persisted before its commands go out: what the server acts on is on record.
 */
import { randomUUID } from 'node:crypto';
import {
  decideAccess,
  type AccessPolicy,
  DEFAULT_ACCESS_POLICY,
  type DoorDevices,
} from '../core/access-decision.ts';
import { decideGuestEntry } from '../core/guest-access.ts';
import {
  createSession,
  isTerminal,
  step,
  DEFAULT_SESSION_TIMING,
  type AccessSession,
  type SessionEffect,
  type SessionEvent,
  type SessionState,
  type SessionTiming,
  type StepResult,
} from '../core/access-session.ts';
import type { AuditActor, AuditFact } from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import { problem, type Problem, type Result, ok, refuse } from '../core/errors.ts';
import type { Position } from '../core/geo.ts';
import type { DeliveryEventType, DeliveryStatus, Door, Principal, Role } from '../core/model.ts';
import {
  DEFAULT_WATCHDOG_CONFIG,
  ObservationWatchdog,
  type Coverage,
  type WatchdogConfig,
} from '../core/observation-watchdog.ts';
import type {
  DeviceEventMessage,
  DeviceStateMessage,
  FrameMessage,
  HeartbeatMessage,
  ReplyMessage,
} from '../protocol/device-messages.ts';
import {
  DeliveryRepository,
  DeviceStatusRepository,
  GuestGrantRepository,
  SessionRepository,
  type AlongsideWrite,
  type DeviceStatus,
  type Store,
  type StoredSession,
} from '../store/index.ts';
import type { AlarmView, SessionView } from '../protocol/views.ts';
import type { AuditLog } from './audit-log.ts';
import type { RelayedSessions, SessionCall } from './replica-relay.ts';
import type { ClipStore } from './clip-store.ts';
import type { DeliveryEventLog } from './delivery-events.ts';
import type { DeliveryEvent } from '../store/delivery-event-repository.ts';
import type { DeviceGateway, DeviceGatewayListener, RegisteredDevice } from './device-gateway.ts';
import { deviceEventKey } from './device-event-key.ts';
import type { EventBus } from './event-bus.ts';

export interface OrchestratorOptions {
  readonly store: Store;
  readonly gateway: DeviceGateway;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly clips: ClipStore;
  readonly events: EventBus;
  /**
   * Where a delivery's status changes are recorded (in the commit that changes the status)
   * and announced once committed. Without it the status still changes, unannounced.
   */
  readonly deliveryEvents?: DeliveryEventLog;
  readonly logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  readonly watchdog?: Partial<WatchdogConfig>;
  readonly timing?: Partial<SessionTiming>;
  readonly policy?: Partial<AccessPolicy>;
  /**
   * This server is one of several replicas sharing the database and the broker (replicas.ts):
   * its sessions' rows carry its id, and a row another replica has taken over is never written
   * again from here; every device event is recorded once whichever replica commits it first;
   * heartbeats of other replicas' sessions are followed, so that a session taken over resumes
   * with its observation record. Without it (one server), a restart closes open sessions.
   */
  readonly replica?: OrchestratorReplica;
}

/** What the orchestrator needs to know of the replica it runs in. */
export interface OrchestratorReplica {
  /** This replica's id, the owner written on its sessions' rows. */
  readonly id: string;
  /** The other replicas, reached through the database (replica-relay.ts). */
  readonly remote?: {
    call(owner: string, call: SessionCall): Promise<Result<SessionView> | null>;
    grantRevoked(grantId: string): Promise<void>;
  };
}

/**
 * Thrown by a session's write when another replica has taken the session over: this replica
 * lost its lease (a pause, a lost database connection) and no longer drives it. The write's
 * transaction is rolled back, and the session leaves this replica's memory untouched.
 */
export class SessionTakenOverError extends Error {
  constructor(readonly sessionId: string) {
    super(`session ${sessionId} is driven by another replica now`);
    this.name = 'SessionTakenOverError';
  }
}

/**
 * The observation record of a session another replica drives, kept from its camera's
 * heartbeats (every replica receives them) so that a takeover resumes with it.
 */
interface ShadowWatch {
  readonly watchdog: ObservationWatchdog;
  /** When the last heartbeat for it arrived, ms (idle ones are forgotten). */
  lastAt: number;
  /** When the store last said the session is open, ms (see {@link SHADOW_RECHECK_MS}). */
  openAt: number | null;
}

/** A shadow watch not fed for this long is forgotten, ms. */
const SHADOW_IDLE_MS = 5 * 60_000;
/** At most this many shadow watches are kept (the oldest go first). */
const MAX_SHADOWS = 100_000;
/**
 * How long a followed session, once read open in the store, is taken as open without reading
 * it again, ms: its camera's heartbeats do not cost a read each. Still read now and then: a
 * session ended by a replica that died before its camera heard `disarm` is disarmed from here.
 */
const SHADOW_RECHECK_MS = 60_000;

interface PendingFrame {
  readonly frame: FrameMessage;
  readonly jpeg: Buffer;
}

/** A session the orchestrator is running. */
interface LiveSession {
  session: AccessSession;
  readonly watchdog: ObservationWatchdog;
  cancelDeadline: (() => void) | null;
  cancelWatch: (() => void) | null;
  /** When the armed watchdog check (`cancelWatch`) is due, ms; null when none is armed. */
  watchDueAt: number | null;
  /** The next resend of `lock` while relocking (see {@link RELOCK_RESEND_MS}). */
  cancelResend: (() => void) | null;
  /** Frames waiting for a heartbeat to vouch for them, by digest (bounded). */
  readonly pendingFrames: Map<string, PendingFrame>;
  frameSeq: number;
  /** Clip frames being written; the session's clip is audited once they are all stored. */
  clipWrites: Promise<void>;
  /** Serialises this session's events. */
  queue: Promise<void>;
  /** How many events are on `queue`, applied or waiting (see {@link onHeartbeat}). */
  queued: number;
}

export type { SessionView };

const MAX_PENDING_FRAMES = 16;
/** The longest a guest's door stays unlocked in one entry, ms (less if the grant ends sooner). */
export const GUEST_MAX_OPEN_MS = 5 * 60_000;
/** Session ids of the owner's live view (see live-view.ts) start with this. */
export const VIEW_SESSION_PREFIX = 'view-';
/** Rejected heartbeats audited one by one per session; the rest are counted. */
const MAX_AUDITED_REJECTIONS = 20;
/** While a session relocks, how often `lock` is sent again until the lock reports, ms. */
export const RELOCK_RESEND_MS = 1_500;
/** How often a camera still streaming for an ended session is told to disarm again, ms. */
export const STRAY_DISARM_MS = 5_000;
/** A watchdog check running this late found the event loop stalled: it looks again, ms. */
export const STALL_RECHECK_MS = 200;
/** After a restart, how often to ask the lock of an interrupted session to lock, ms. */
export const RECOVERY_RETRY_MS = 2_000;
/**
 * How long a device's reported state waits before it is stored, ms; the reports of that time
 * share one commit, the newest of each device kept. The stored status is history for views
 * after a restart (what is live is the gateway's, in memory): no decision and no
 * acknowledgement waits for it, and a crash loses at most this much of it. Written at once,
 * each report cost a commit of its own (on SQLite an fsync, which holds the event loop) just
 * when a session step needed the loop: the camera's "recording" report comes right before the
 * heartbeat whose step sends the unlock.
 */
export const DEVICE_STATUS_WRITE_DELAY_MS = 1_000;
/** The home hub's own actions that the owner is told of at once (the rest are on record). */
const HUB_NOTICES: Readonly<Record<string, string>> = {
  'hub.dead-man':
    'the hub locked the door on its own — the camera stopped proving it could see the door.',
  'hub.cut-off': 'the hub ended a visit on its own — it lost its connection to Threshold.',
  'hub.relock-failed': 'the hub could not relock the door at its deadline — check the door.',
};

/** Refusals a device answers to commands it did not get from this server, in words. */
const FOREIGN_COMMAND_CODES: ReadonlyMap<string, string> = new Map([
  ['command.replayed', 'a replayed command'],
  ['command.bad-mac', 'a forged command'],
  ['command.expired', 'an expired command'],
]);

/** …and for how long, ms. */
export const RECOVERY_GIVE_UP_MS = 2 * 60_000;

/**
 * Error codes a home hub answers an `unlock` with when its offline grant list does not let
 * the visit in: the list is older than its bound, names no such grant, or there is none. The
 * door has not moved; the session ends at once with `door.hub-list-stale` (see
 * {@link refusedAtHub}).
 */
export const HUB_LIST_REFUSALS: ReadonlySet<string> = new Set([
  'grants.stale',
  'grants.not-listed',
  'grants.none',
]);

/**
 * What a session is fed: the state machine's events, and the lock's hub refusing the unlock
 * (applied by {@link refusedAtHub}, not by the machine).
 */
type AppliedEvent = SessionEvent | { readonly type: 'hub-refused'; readonly hubCode: string };

const SYSTEM: AuditActor = { type: 'system', id: 'orchestrator' };

export class SessionOrchestrator implements DeviceGatewayListener, RelayedSessions {
  private readonly live = new Map<string, LiveSession>();
  private readonly byDevice = new Map<string, string>();
  private readonly watchdogConfig: WatchdogConfig;
  private readonly timing: SessionTiming;
  private readonly policy: AccessPolicy;
  /** Coverage of ended sessions, kept for views until restart (it is also in the store). */
  private readonly endedCoverage = new Map<string, Coverage>();
  /** Heartbeats and frames that arrived for no running session (counted, not kept). */
  private orphanHeartbeats = 0;
  private orphanFrames = 0;
  /** Retry timers of doors being secured after a restart, by session id. */
  private readonly recoveryTimers = new Map<string, () => void>();
  /** When each device's last "refused a command we did not send" notice went out, ms. */
  private readonly foreignNoticeAt = new Map<string, number>();
  /** When each camera streaming for an ended session was last told to disarm, ms. */
  private readonly strayDisarmAt = new Map<string, number>();
  /** Replicas: heartbeats of sessions other replicas drive, by session id. */
  private readonly shadows = new Map<string, ShadowWatch>();
  /** Device statuses waiting to be stored, by device (see {@link DEVICE_STATUS_WRITE_DELAY_MS}). */
  private readonly statusToWrite = new Map<string, DeviceStatus>();
  private cancelStatusWrite: (() => void) | null = null;
  /** The status writes under way, one after another; never rejects. */
  private statusWrites: Promise<void> = Promise.resolve();
  /** Set by {@link stop}: from then on a status is written at once, not on a timer. */
  private stopping = false;
  /** Display names and roles of principals, for session views (names rarely change). */
  private readonly people = new Map<
    string,
    { id: string; displayName: string; role: Role } | null
  >();

  constructor(private readonly o: OrchestratorOptions) {
    this.watchdogConfig = { ...DEFAULT_WATCHDOG_CONFIG, ...o.watchdog };
    this.timing = { ...DEFAULT_SESSION_TIMING, ...o.timing };
    this.policy = { ...DEFAULT_ACCESS_POLICY, ...o.policy };
  }

  /** The access session recording with this camera (armed or arming), or null. */
  sessionUsingCamera(cameraId: string): string | null {
    const l = this.liveFor(cameraId);
    if (!l || l.session.cameraDeviceId !== cameraId) return null;
    return l.session.state === 'requested' || l.session.state === 'awaiting-owner'
      ? null
      : l.session.id;
  }

  /** Counters for the stats route. */
  stats(): { liveSessions: number; orphanHeartbeats: number; orphanFrames: number } {
    return {
      liveSessions: this.live.size,
      orphanHeartbeats: this.orphanHeartbeats,
      orphanFrames: this.orphanFrames,
    };
  }

  /** How many sessions run now in each state (for the metrics; states with none are absent). */
  sessionsByState(): ReadonlyMap<SessionState, number> {
    const by = new Map<SessionState, number>();
    for (const l of this.live.values()) by.set(l.session.state, (by.get(l.session.state) ?? 0) + 1);
    return by;
  }

  /**
   * Closes, safely, the sessions a previous run left open: without their watchdog state they
   * cannot be resumed honestly, so the lock is commanded locked and the session is aborted
   * with `session.interrupted`, on record.
   */
  async recoverOpenSessions(): Promise<number> {
    // Replicas take over each other's sessions instead (replicas.ts, resume below).
    if (this.o.replica) return 0;
    const open = await this.o.store.sessions.listOpen();
    for (const row of open) {
      const s = row.data as AccessSession;
      const now = this.o.clock.now();
      const ended: AccessSession = {
        ...s,
        state: 'aborted',
        endedAt: now,
        updatedAt: now,
        deadlineAt: null,
        outcome: problem('session.interrupted'),
        history: [...s.history, { state: 'aborted', atMs: now, reason: 'session.interrupted' }],
      };
      await this.persist(ended);
      const settled: DeliveryEvent[] = [];
      await this.o.audit.appendAll(
        [
          {
            kind: 'session.state',
            actor: SYSTEM,
            subject: `session:${s.id}`,
            data: { from: s.state, to: 'aborted', reason: 'session.interrupted' },
          },
        ],
        // A delivery whose door opened before the stop cannot be called delivered: review it.
        s.deliveryId !== null && s.unlockedAt !== null
          ? this.settleDelivery(s.deliveryId, 'needs-review', s.id, settled)
          : undefined,
      );
      this.announceDeliveryEvents(settled);
      if (s.state !== 'requested' && s.state !== 'arming') this.secureDoor(s);
      // Nothing was armed for a session without a camera: nothing to disarm.
      if (s.cameraDeviceId !== null)
        void this.o.gateway.command(s.cameraDeviceId, 'disarm', { sessionId: s.id });
      this.o.events.publish({ type: 'session', homeId: s.homeId, session: ended });
    }
    if (open.length > 0) await this.o.audit.checkpoint();
    return open.length;
  }

  // ---- Replicas (see OrchestratorReplica and replicas.ts) ----

  /**
   * Replicas: a call about a session another live replica drives is run there (through the
   * database, replica-relay.ts), and its answer returned; null when the session is this
   * replica's, over, or nobody's, and the call runs here. A replica that does not answer is
   * being replaced: `session.handing-over`, to try again in a few seconds.
   */
  private async atOwner(call: SessionCall): Promise<Result<SessionView> | null> {
    const r = this.o.replica;
    if (r?.remote === undefined || this.live.has(call.sessionId)) return null;
    const row = await this.o.store.sessions.get(call.sessionId);
    if (!row || row.endedAt !== null || !row.owner || row.owner === r.id) return null;
    return (await r.remote.call(row.owner, call)) ?? refuse(problem('session.handing-over'));
  }

  /** Runs a call another replica passed on: here, never passed on again. */
  runCall(call: SessionCall): Promise<Result<SessionView>> {
    switch (call.method) {
      case 'requestRelock':
        return this.requestRelockHere(call.principal, call.sessionId);
      case 'decide':
        return this.decideHere(call.principal, call.sessionId, call.decision);
    }
  }

  /** The sessions this replica drives now. */
  ownedSessionIds(): string[] {
    return [...this.live.keys()];
  }

  /**
   * Stops driving a session without writing anything: another replica owns it now (or will,
   * once this replica's lease has run out). Its timers stop and it leaves memory; its camera's
   * heartbeats are followed again as another replica's.
   */
  private relinquish(l: LiveSession, why: string): void {
    if (this.live.get(l.session.id) !== l) return;
    l.cancelDeadline?.();
    this.disarmWatch(l);
    l.cancelResend?.();
    this.live.delete(l.session.id);
    for (const d of [
      l.session.lockDeviceId,
      l.session.cameraDeviceId,
      l.session.doorSensorDeviceId,
    ]) {
      if (d && this.byDevice.get(d) === l.session.id) this.byDevice.delete(d);
    }
    if (l.watchdog.observedSince !== null)
      this.shadows.set(l.session.id, {
        watchdog: l.watchdog,
        lastAt: this.o.clock.now(),
        openAt: this.o.clock.now(),
      });
    this.o.logger?.warn({ sessionId: l.session.id, why }, 'session left to another replica');
  }

  /**
   * Lets go of every session at once: this replica's lease ran out before it could renew it,
   * so the others may be taking its sessions over. Nothing is written; it takes them back
   * (resumes them) only by claiming them again like any replica.
   */
  relinquishAll(why: string): number {
    const all = [...this.live.values()];
    for (const l of all) this.relinquish(l, why);
    return all.length;
  }

  /**
   * Resumes a session this replica has just claimed (SessionRepository.claim) from its stored
   * row: its deadline is armed again from the stored `deadlineAt` (one already past fires at
   * once), a relock goes on being resent, and its observation goes on from the heartbeats this
   * replica followed while another drove it. A session that needed the camera with no such
   * record raises observation-lost at once: nobody can vouch for the handover. The lock's and
   * the door's newest reports are applied, for those that came while nobody drove it.
   */
  async resume(row: StoredSession, from: string | null): Promise<void> {
    const s = row.data as AccessSession;
    if (this.o.replica === undefined || this.live.has(s.id) || isTerminal(s)) return;
    const now = this.o.clock.now();
    const shadow = this.shadows.get(s.id);
    this.shadows.delete(s.id);
    const watchdog = shadow?.watchdog ?? new ObservationWatchdog(s.id, this.watchdogConfig);
    if (!this.claim(s, watchdog)) {
      this.o.logger?.warn({ sessionId: s.id }, 'a session taken over meets another at its door');
      return;
    }
    const l = this.live.get(s.id)!;
    await this.audit(l, 'session.taken-over', {
      from,
      to: this.o.replica.id,
      state: s.state,
      lastHeartbeatAt: watchdog.lastAcceptedHeartbeatAt,
      afterMs: now - s.updatedAt,
    });
    this.o.events.publish({ type: 'session', homeId: s.homeId, session: s });
    const watched =
      s.cameraDeviceId !== null &&
      (s.state === 'unlocking' ||
        s.state === 'open' ||
        s.state === 'relocking' ||
        s.state === 'verifying');
    if (watched && watchdog.observedSince === null) {
      this.auditLater(l, 'observation.gap', {
        status: 'lost',
        sinceMs: s.updatedAt,
        detectedAt: now,
        handover: true,
      });
      void this.apply(s.id, { type: 'observation', status: 'lost', sinceMs: s.updatedAt });
    }
    const lock = this.o.gateway.liveStatus(s.lockDeviceId)?.state;
    if (lock?.kind === 'lock' && (lock.bolt !== s.bolt || lock.changedAt !== s.boltChangedAt))
      void this.apply(s.id, { type: 'lock-report', bolt: lock.bolt, changedAt: lock.changedAt });
    const sensor =
      s.doorSensorDeviceId === null ? undefined : this.o.gateway.liveStatus(s.doorSensorDeviceId);
    if (sensor?.state?.kind === 'door-sensor' && sensor.state.position !== s.door)
      void this.apply(s.id, { type: 'door-report', position: sensor.state.position });
    this.armDeadline(l);
    this.armRelockResend(l);
    this.armWatch(l);
  }

  /** Follows a heartbeat of a session another replica drives (see {@link resume}). */
  private shadowHeartbeat(hb: HeartbeatMessage): void {
    const now = this.o.clock.now();
    let w = this.shadows.get(hb.sessionId);
    if (w === undefined) {
      this.pruneShadows(now);
      w = {
        watchdog: new ObservationWatchdog(hb.sessionId, this.watchdogConfig),
        lastAt: now,
        openAt: null,
      };
    } else {
      // Moved to the end: the map's order is the order of the last heartbeats, so the idle
      // ones are at its head (see pruneShadows).
      this.shadows.delete(hb.sessionId);
    }
    this.shadows.set(hb.sessionId, w);
    w.lastAt = now;
    w.watchdog.onHeartbeat({ ...hb, macValid: true }, now);
  }

  /** Forgets idle shadow watches, and the least recently fed ones beyond the bound. */
  private pruneShadows(now: number): void {
    for (const [id, w] of this.shadows) {
      if (now - w.lastAt > SHADOW_IDLE_MS || this.shadows.size >= MAX_SHADOWS)
        this.shadows.delete(id);
      else break;
    }
  }

  /**
   * Replicas: a camera streams for a session nobody here drives. Told to disarm only if the
   * session is over (or unknown): while another replica drives it, it is that one's.
   */
  private disarmIfEnded(device: RegisteredDevice, sessionId: string): void {
    const now = this.o.clock.now();
    const shadow = this.shadows.get(sessionId);
    if (shadow?.openAt != null && now - shadow.openAt < SHADOW_RECHECK_MS) return;
    const last = this.strayDisarmAt.get(device.id);
    if (last !== undefined && now - last < STRAY_DISARM_MS) return;
    this.strayDisarmAt.set(device.id, now);
    void this.o.store.sessions
      .get(sessionId)
      .then((row) => {
        if (row !== null && row.endedAt === null) {
          const w = this.shadows.get(sessionId);
          if (w !== undefined) w.openAt = now;
          return;
        }
        this.shadows.delete(sessionId);
        return this.o.gateway.command(device.id, 'disarm', { sessionId });
      })
      .catch(() => undefined);
  }

  /**
   * After a restart the lock may not be connected yet: ask it to lock until its own report
   * says locked, every {@link RECOVERY_RETRY_MS}, for at most {@link RECOVERY_GIVE_UP_MS}
   * (the lock's own deadline, set when it opened, is the backstop beyond that).
   */
  private secureDoor(s: AccessSession): void {
    const started = this.o.clock.now();
    const attempt = (): void => {
      this.recoveryTimers.delete(s.id);
      const status = this.o.gateway.liveStatus(s.lockDeviceId);
      const bolt = status?.state?.kind === 'lock' ? status.state.bolt : 'unknown';
      // Secured means bolt thrown *and* door closed; and no bolt is ever thrown into a door its
      // sensor reports open (a sensor that cannot be heard does not hold the lock back).
      const sensor =
        s.doorSensorDeviceId === null ? null : this.o.gateway.liveStatus(s.doorSensorDeviceId);
      const door =
        s.doorSensorDeviceId === null
          ? null
          : sensor?.online && sensor.state?.kind === 'door-sensor'
            ? sensor.state.position
            : 'unknown';
      if (status?.online && bolt === 'locked' && (door === null || door === 'closed')) {
        this.appendLater({
          kind: 'recovery.door-secured',
          actor: { type: 'device', id: s.lockDeviceId },
          subject: `session:${s.id}`,
          data: { afterMs: this.o.clock.now() - started },
          ...(status.state ? { deviceMac: status.state.mac } : {}),
        });
        return;
      }
      if (this.o.clock.now() - started >= RECOVERY_GIVE_UP_MS) {
        this.appendLater({
          kind: 'recovery.door-unconfirmed',
          actor: SYSTEM,
          subject: `session:${s.id}`,
          data: { afterMs: this.o.clock.now() - started, bolt, door },
        });
        return;
      }
      if (door !== 'open' && bolt !== 'locked')
        void this.o.gateway.command(s.lockDeviceId, 'lock', {
          sessionId: s.id,
          timeoutMs: RECOVERY_RETRY_MS,
        });
      this.recoveryTimers.set(
        s.id,
        this.o.clock.schedule(this.o.clock.now() + RECOVERY_RETRY_MS, attempt),
      );
    };
    attempt();
  }

  /** The session, live or stored, with its coverage, who it is for and its alarms. */
  async view(sessionId: string): Promise<SessionView | null> {
    const l = this.live.get(sessionId);
    if (l) return this.toView(l.session, l.watchdog.coverage(this.o.clock.now()));
    const row = await this.o.store.sessions.get(sessionId);
    if (!row) return null;
    const s = row.data as AccessSession & { coverage?: Coverage };
    const cov = this.endedCoverage.get(sessionId) ??
      s.coverage ?? { ratio: 0, startMs: null, endMs: s.endedAt ?? s.updatedAt, gaps: [] };
    return this.toView(s, cov);
  }

  private async toView(s: AccessSession, coverage: Coverage): Promise<SessionView> {
    const { coverage: _c, ...rest } = s as AccessSession & { coverage?: Coverage };
    return {
      ...rest,
      coverage,
      who: await this.person(s.principalId),
      alarmViews: await this.alarmViewsOf(s),
    };
  }

  /** A session's alarms with their acknowledgements (one read, none for a quiet session). */
  private async alarmViewsOf(s: AccessSession): Promise<AlarmView[]> {
    if (s.alarms.length === 0) return [];
    const acks = await this.o.store.alarmAcks.listForSession(s.id);
    const views: AlarmView[] = [];
    for (const a of s.alarms) {
      const ack = acks.find((k) => k.alarmType === a.type);
      views.push({
        ...a,
        sessionId: s.id,
        homeId: s.homeId,
        doorId: s.doorId,
        acknowledged: ack
          ? {
              by: ack.principalId,
              byName: (await this.person(ack.principalId))?.displayName ?? ack.principalId,
              at: ack.acknowledgedAt,
            }
          : null,
      });
    }
    return views;
  }

  private async person(
    id: string,
  ): Promise<{ id: string; displayName: string; role: Role } | null> {
    if (!this.people.has(id)) {
      const p = await this.o.store.principals.get(id);
      this.people.set(id, p ? { id: p.id, displayName: p.displayName, role: p.role } : null);
    }
    return this.people.get(id) ?? null;
  }

  /**
   * The owner's answer to a session waiting for it ("ask me first"). Only the household of
   * the session's home may answer; the answer is audited in the same commit as its step.
   */
  async decide(
    principal: Principal,
    sessionId: string,
    decision: 'let-in' | 'leave-at-door',
  ): Promise<Result<SessionView>> {
    return (
      (await this.atOwner({ method: 'decide', principal, sessionId, decision })) ??
      this.decideHere(principal, sessionId, decision)
    );
  }

  private async decideHere(
    principal: Principal,
    sessionId: string,
    decision: 'let-in' | 'leave-at-door',
  ): Promise<Result<SessionView>> {
    const v = await this.view(sessionId);
    const household =
      (principal.role === 'owner' || principal.role === 'member') &&
      v !== null &&
      principal.homeId === v.homeId;
    if (!v || !household) return refuse(problem('session.not-found'));
    if (!this.live.has(sessionId)) return refuse(problem('session.finished'));
    const actor: AuditActor = { type: 'principal', id: principal.id };
    const r = await this.apply(
      sessionId,
      { type: 'owner-decision', decision, by: principal.id },
      actor,
      [
        {
          kind: 'session.owner-decision',
          actor,
          subject: `session:${sessionId}`,
          data: { decision },
        },
      ],
    );
    if (r.refusal) return refuse(r.refusal);
    const after = await this.view(sessionId);
    return after ? ok(after) : refuse(problem('session.not-found'));
  }

  /**
   * Acknowledges an alarm of a session of the principal's home; audited once (the first
   * acknowledgement is the one kept). Returns the alarm with its acknowledgement.
   */
  async acknowledgeAlarm(
    principal: Principal,
    sessionId: string,
    alarmType: string,
  ): Promise<Result<AlarmView>> {
    const v = await this.view(sessionId);
    if (
      !v ||
      (principal.role !== 'owner' && principal.role !== 'member') ||
      principal.homeId !== v.homeId
    )
      return refuse(problem('session.not-found'));
    if (!v.alarms.some((a) => a.type === alarmType)) return refuse(problem('alarm.not-found'));
    const now = this.o.clock.now();
    const { created } = await this.o.store.alarmAcks.acknowledge({
      sessionId,
      alarmType,
      principalId: principal.id,
      acknowledgedAt: now,
    });
    if (created) {
      await this.o.audit.append({
        kind: 'alarm.acknowledged',
        actor: { type: 'principal', id: principal.id },
        subject: `session:${sessionId}`,
        data: { alarm: alarmType },
      });
    }
    const after = await this.view(sessionId);
    const alarm = after?.alarmViews.find((a) => a.type === alarmType);
    if (!alarm) return refuse(problem('alarm.not-found'));
    if (created) this.o.events.publish({ type: 'alarm-ack', homeId: alarm.homeId, alarm });
    return ok(alarm);
  }

  /** The alarms of a home's recent sessions, newest first, with their acknowledgements. */
  async listAlarms(homeId: string, limit = 100): Promise<AlarmView[]> {
    const rows = await this.o.store.sessions.listForHome(homeId, { limit });
    const out: AlarmView[] = [];
    for (const row of rows) {
      // The row just read is the session's record (a live session's newest state is in memory).
      const data = (this.live.get(row.id)?.session ?? row.data) as AccessSession;
      if (data.alarms?.length) out.push(...(await this.alarmViewsOf(data)));
    }
    return out.sort((a, b) => b.atMs - a.atMs);
  }

  /**
   * A courier at the door asks to open it for a delivery. Returns the new session (arming),
   * or the refusal with its reason; either way it is audited.
   */
  async requestAccess(
    principal: Principal,
    deliveryId: string,
    position: Position | null,
  ): Promise<Result<SessionView>> {
    const { store, clock } = this.o;
    const actor: AuditActor = { type: 'principal', id: principal.id };
    const delivery = await store.deliveries.get(deliveryId);
    if (!delivery) return refuse(problem('delivery.not-found'));
    // Another courier's delivery is "not found", so its existence does not leak; the probe is
    // on record, as every object refused to a principal is.
    if (principal.role === 'courier' && delivery.courierId !== principal.id) {
      await this.o.audit.append({
        kind: 'auth.object-denied',
        actor,
        subject: `delivery:${deliveryId}`,
        data: { role: principal.role, answered: 'delivery.not-found' },
      });
      return refuse(problem('delivery.not-found'));
    }
    const running = (await store.sessions.findForDelivery(deliveryId)).find(
      (r) => r.endedAt === null,
    );
    if (running && this.live.has(running.id)) {
      // A second "open" for a delivery whose session is running: the session decides.
      const r = await this.apply(running.id, { type: 'unlock-requested' }, actor);
      return r.refusal
        ? this.refusal(r.refusal, principal, deliveryId, running.id)
        : refuse(problem('session.active'));
    }
    const [home, door, grant] = await Promise.all([
      store.homes.getHome(delivery.homeId),
      store.homes.getDoor(delivery.doorId),
      store.deliveries.getGrantForDelivery(delivery.id),
    ]);
    if (!home || !door) return refuse(problem('delivery.not-found'));
    if (delivery.placement === 'doorstep') {
      // A parcel for the doorstep has no grant; say so plainly rather than "no grant".
      return this.refusal(
        problem(
          'grant.not-found',
          'This parcel is to be left at the door: the door does not open for it.',
        ),
        principal,
        deliveryId,
        null,
      );
    }
    const now = clock.now();
    const devices = this.devicesAt(door, now);
    const activeAtDoor = (await store.sessions.findActiveForDoor(door.id)) !== null;
    // The owner's word (carrier not allowed in, courier blocked) at the moment of the request.
    const ownersRefusal = await store.homes.ownersRefusal(
      home.id,
      delivery.carrierId,
      principal.id,
    );
    const decision = decideAccess(
      {
        principal,
        home,
        door,
        delivery,
        grant,
        position,
        ...devices.facts,
        activeSessionAtDoor: activeAtDoor,
        ownersRefusal,
      },
      this.policy,
    );
    if (!decision.allow) return this.refusal(decision.refusal, principal, deliveryId, null);
    const camId = devices.cameraId;
    if (!camId) return this.refusal(problem('camera.offline'), principal, deliveryId, null);

    const session = createSession(
      {
        ...(home.delivery.askFirst ? { askOwnerTimeoutMs: home.delivery.askTimeoutMs } : {}),
        id: randomUUID(),
        homeId: home.id,
        doorId: door.id,
        deliveryId: delivery.id,
        grantId: decision.grant.id,
        principalId: principal.id,
        lockDeviceId: door.lockDeviceId,
        doorSensorDeviceId: door.doorSensorDeviceId,
        cameraDeviceId: camId,
        maxOpenMs: decision.grant.maxOpenMs,
        bolt: devices.facts.lock.bolt,
        door: devices.facts.doorSensor?.position ?? 'unknown',
        timing: this.timing,
      },
      now,
    );
    if (!this.claim(session)) {
      return this.refusal(problem('session.active'), principal, deliveryId, null);
    }
    // The request and the first step (arm the camera) are recorded in one commit.
    const requested: AuditFact = {
      kind: 'session.requested',
      actor,
      subject: `session:${session.id}`,
      data: {
        deliveryId: delivery.id,
        doorId: door.id,
        grantId: decision.grant.id,
        position: position
          ? { lat: position.lat, lon: position.lon, accuracyM: position.accuracyM }
          : null,
      },
    };
    await this.apply(session.id, { type: 'start' }, actor, [requested]);
    const v = await this.view(session.id);
    return v ? ok(v) : refuse(problem('session.not-found'));
  }

  /** What the door's devices say now, as the access decisions take it. */
  private devicesAt(door: Door, now: number): { cameraId: string | null; facts: DoorDevices } {
    const { gateway } = this.o;
    const cameraId = door.cameraDeviceIds[0] ?? null;
    const cam = cameraId ? gateway.liveStatus(cameraId) : undefined;
    const lock = gateway.liveStatus(door.lockDeviceId);
    const sensor = door.doorSensorDeviceId
      ? gateway.liveStatus(door.doorSensorDeviceId)
      : undefined;
    const lockState = lock?.state?.kind === 'lock' ? lock.state : null;
    const sensorState = sensor?.state?.kind === 'door-sensor' ? sensor.state : null;
    return {
      cameraId,
      facts: {
        now,
        camera: cam ? { online: cam.online, lastSeenAt: cam.lastSeenAt } : null,
        lock: {
          online: lock?.online ?? false,
          lastSeenAt: lock?.lastSeenAt ?? null,
          bolt: lockState?.bolt ?? 'unknown',
        },
        doorSensor: door.doorSensorDeviceId
          ? {
              online: sensor?.online ?? false,
              lastSeenAt: sensor?.lastSeenAt ?? null,
              position: sensorState?.position ?? 'unknown',
            }
          : null,
      },
    };
  }

  /**
   * Claims the door for a new session, checked and claimed in one synchronous stretch: two
   * people at one door cannot both pass. False when another session holds the door.
   */
  private claim(
    session: AccessSession,
    watchdog = new ObservationWatchdog(session.id, this.watchdogConfig),
  ): boolean {
    if ([...this.live.values()].some((x) => x.session.doorId === session.doorId)) return false;
    this.live.set(session.id, {
      session,
      watchdog,
      cancelDeadline: null,
      cancelWatch: null,
      watchDueAt: null,
      cancelResend: null,
      pendingFrames: new Map(),
      frameSeq: 0,
      clipWrites: Promise.resolve(),
      queue: Promise.resolve(),
      queued: 0,
    });
    for (const d of [session.lockDeviceId, session.cameraDeviceId, session.doorSensorDeviceId]) {
      if (d) this.byDevice.set(d, session.id);
    }
    return true;
  }

  /**
   * A guest asks to open the door under a guest grant. The same session as a courier's (the
   * camera proves it records before the lock opens, every step on record), with the door's
   * unlocked time capped by the grant's entry deadline.
   *
   * A grant without "camera must record" runs the session without a camera: the camera is not
   * needed, and not armed even when it is live, because privacy is usually why the household
   * turned recording off. Every lock and door check still applies, and the request's audit
   * entry says `requiresRecording: false`, so the record says why there is no clip.
   */
  async requestGuestEntry(principal: Principal, grantId: string): Promise<Result<SessionView>> {
    const { store, clock } = this.o;
    const actor: AuditActor = { type: 'principal', id: principal.id };
    const grant = await store.guestGrants.get(grantId);
    // Another person's grant is "not found", so its existence does not leak.
    if (!grant || grant.principalId !== principal.id) {
      // Someone else's grant (or none): answered as unknown, and the probe is on record.
      await this.o.audit.append({
        kind: 'auth.object-denied',
        actor,
        subject: `grant:${grantId}`,
        data: { role: principal.role, answered: 'grant.unknown' },
      });
      return refuse(problem('grant.unknown'));
    }
    const [home, door] = await Promise.all([
      store.homes.getHome(grant.homeId),
      store.homes.getDoor(grant.doorId),
    ]);
    if (!home || !door) return refuse(problem('grant.unknown'));
    const now = clock.now();
    const devices = this.devicesAt(door, now);
    const decision = decideGuestEntry(
      {
        principal,
        home,
        door,
        grant,
        ...devices.facts,
        activeSessionAtDoor:
          (await store.sessions.findActiveForDoor(door.id)) !== null ||
          [...this.live.values()].some((x) => x.session.doorId === door.id),
      },
      this.policy,
    );
    const refusedHere = (p: Problem) => this.guestRefusal(p, principal, grantId);
    if (!decision.allow) return refusedHere(decision.refusal);
    const recorded = grant.limits.requiresRecording;
    // A recorded entry needs the door's camera; an unrecorded one leaves it alone.
    const camId = recorded ? devices.cameraId : null;
    if (recorded && !camId) return refusedHere(problem('camera.offline'));
    const maxOpenMs = Math.max(
      1_000,
      Math.min(GUEST_MAX_OPEN_MS, (decision.deadlineAt ?? Number.POSITIVE_INFINITY) - now),
    );
    const session = createSession(
      {
        id: randomUUID(),
        homeId: home.id,
        doorId: door.id,
        deliveryId: null,
        grantId: grant.id,
        principalId: principal.id,
        lockDeviceId: door.lockDeviceId,
        doorSensorDeviceId: door.doorSensorDeviceId,
        cameraDeviceId: camId,
        maxOpenMs,
        bolt: devices.facts.lock.bolt,
        door: devices.facts.doorSensor?.position ?? 'unknown',
        timing: this.timing,
      },
      now,
    );
    if (!this.claim(session)) return refusedHere(problem('session.active'));
    const requested: AuditFact = {
      kind: 'session.requested',
      actor,
      subject: `session:${session.id}`,
      data: { guestGrantId: grant.id, doorId: door.id, maxOpenMs, requiresRecording: recorded },
    };
    await this.apply(session.id, { type: 'start' }, actor, [requested]);
    const v = await this.view(session.id);
    return v ? ok(v) : refuse(problem('session.not-found'));
  }

  private async guestRefusal(
    p: Problem,
    principal: Principal,
    grantId: string,
  ): Promise<Result<SessionView>> {
    await this.o.audit.append({
      kind: 'access.refused',
      actor: { type: 'principal', id: principal.id },
      subject: `grant:${grantId}`,
      data: { code: p.code, message: p.message, ...(p.detail ? { detail: p.detail } : {}) },
    });
    return refuse(p);
  }

  /**
   * A grant was revoked (a guest's, or a courier's delivery grant: the delivery was cancelled
   * or reassigned, the courier revoked): a session running under it ends at once. One that
   * has not opened the door is refused; an open door is locked as soon as it is closed, as for
   * any cancelled session.
   */
  async grantRevoked(grantId: string): Promise<void> {
    // Replicas: each ends its own sessions under the grant.
    await this.o.replica?.remote
      ?.grantRevoked(grantId)
      .catch((err: unknown) =>
        this.o.logger?.warn({ err: String(err) }, 'revocation not relayed to the other replicas'),
      );
    await this.grantRevokedHere(grantId);
  }

  /** Ends this replica's sessions under a revoked grant (relay: another replica revoked it). */
  async grantRevokedHere(grantId: string): Promise<void> {
    for (const l of [...this.live.values()]) {
      if (l.session.grantId === grantId) {
        await this.apply(l.session.id, { type: 'cancel', reason: 'grant.revoked' });
      }
    }
  }

  private async refusal(
    p: Problem,
    principal: Principal,
    deliveryId: string,
    sessionId: string | null,
  ): Promise<Result<SessionView>> {
    await this.o.audit.append({
      kind: 'access.refused',
      actor: { type: 'principal', id: principal.id },
      subject: sessionId ? `session:${sessionId}` : `delivery:${deliveryId}`,
      data: { code: p.code, message: p.message, ...(p.detail ? { detail: p.detail } : {}) },
    });
    return refuse(p);
  }

  /** The courier says the door is closed and asks to lock. */
  async requestRelock(principal: Principal, sessionId: string): Promise<Result<SessionView>> {
    return (
      (await this.atOwner({ method: 'requestRelock', principal, sessionId })) ??
      this.requestRelockHere(principal, sessionId)
    );
  }

  private async requestRelockHere(
    principal: Principal,
    sessionId: string,
  ): Promise<Result<SessionView>> {
    const l = this.live.get(sessionId);
    const denied = async (): Promise<Result<SessionView>> => {
      await this.o.audit.append({
        kind: 'auth.object-denied',
        actor: { type: 'principal', id: principal.id },
        subject: `session:${sessionId}`,
        data: { role: principal.role, answered: 'session.not-found' },
      });
      return refuse(problem('session.not-found'));
    };
    if (!l) {
      const v = await this.view(sessionId);
      if (!v) return refuse(problem('session.not-found'));
      if (v.principalId !== principal.id) return denied();
      return refuse(problem('session.finished'));
    }
    if (l.session.principalId !== principal.id) return denied();
    const r = await this.apply(
      sessionId,
      { type: 'relock-requested' },
      { type: 'principal', id: principal.id },
    );
    if (r.refusal) return this.refusal(r.refusal, principal, l.session.deliveryId ?? '', sessionId);
    const v = await this.view(sessionId);
    return v ? ok(v) : refuse(problem('session.not-found'));
  }

  /** Waits until the session leaves the given states, or `timeoutMs` passes (real time). */
  async waitWhile(
    sessionId: string,
    states: readonly string[],
    timeoutMs: number,
  ): Promise<SessionView | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.view(sessionId);
      if (!v || !states.includes(v.state) || Date.now() >= deadline) return v;
      await new Promise<void>((resolve) => {
        const off = this.o.events.subscribe(
          (e) => {
            if (e.type === 'session' && e.session.id === sessionId) {
              off();
              clearTimeout(t);
              resolve();
            }
          },
          // The session may be driven by another replica.
          { relayed: true },
        );
        const t = setTimeout(
          () => {
            off();
            resolve();
          },
          Math.max(1, deadline - Date.now()),
        );
      });
    }
  }

  /** Applies an event to a live session, in order with its other events. */
  private apply(
    sessionId: string,
    event: AppliedEvent,
    actor: AuditActor = SYSTEM,
    /** Facts recorded in the same commit, before the step's own. */
    before: readonly AuditFact[] = [],
  ): Promise<{ refusal: Problem | null }> {
    const l = this.live.get(sessionId);
    if (!l) return Promise.resolve({ refusal: problem('session.finished') });
    l.queued++;
    const run = l.queue.then(() => this.applyNow(l, event, actor, before));
    l.queue = run.then(
      () => {
        l.queued--;
      },
      (err: unknown) => {
        l.queued--;
        if (err instanceof SessionTakenOverError) {
          this.relinquish(l, 'taken over by another replica');
          return;
        }
        this.o.logger?.warn(
          { err: err instanceof Error ? err.message : String(err), sessionId },
          'session step failed',
        );
      },
    );
    return run;
  }

  private async applyNow(
    l: LiveSession,
    event: AppliedEvent,
    actor: AuditActor,
    before: readonly AuditFact[],
  ): Promise<{ refusal: Problem | null }> {
    const now = this.o.clock.now();
    const prev = l.session;
    if (isTerminal(prev) && !this.live.has(prev.id))
      return { refusal: problem('session.finished') };
    const r =
      event.type === 'hub-refused'
        ? refusedAtHub(prev, event.hubCode, now)
        : step(prev, event, now);
    const ended = isTerminal(r.session) && !isTerminal(prev);
    // An ending is shown only once it is written (finish); any other step at once.
    if (!ended) l.session = r.session;
    const changed =
      before.length > 0 ||
      r.effects.length > 0 ||
      JSON.stringify(r.session) !== JSON.stringify({ ...prev, updatedAt: now });
    const facts = [...before, ...this.factsOf(l, r.effects, actor, event)];
    const firstOpen =
      prev.state !== 'open' && r.session.state === 'open' && prev.unlockedAt === null;
    if (ended) {
      // Audit first, then the state people see: when a session shows as ended, its closing
      // record (coverage, clip, outcome) and its delivery's status are already written.
      const coverage = l.watchdog.coverage(now);
      if (facts.length > 0) await this.o.audit.appendAll(facts);
      await this.finish(l, r.session, coverage);
    } else if (changed) {
      // The step's record and its new state in one durable commit, before any command leaves.
      const settled: DeliveryEvent[] = [];
      const write = this.stateWrite(r.session, firstOpen, settled);
      if (facts.length > 0) await this.o.audit.appendAll(facts, write);
      else await write(this.o.store.db);
      this.announceDeliveryEvents(settled);
    }
    this.announce(l, r.effects);
    this.perform(l, r.effects);
    this.armDeadline(l);
    this.armRelockResend(l);
    if (changed || ended)
      this.o.events.publish({ type: 'session', homeId: r.session.homeId, session: r.session });
    return { refusal: r.refusal };
  }

  /**
   * The store writes of a step: the session, and when the door first opened, the grant's use
   * and the delivery's move to in progress (its event recorded in the same commit, into
   * `settled`, to be announced once committed).
   */
  private stateWrite(
    s: AccessSession,
    firstOpen: boolean,
    settled: DeliveryEvent[],
  ): AlongsideWrite {
    return async (db) => {
      await this.saveRow(db, this.row(s, null));
      if (firstOpen) {
        // The grant is used once the door has actually opened; a refused or failed arming
        // leaves it for another try.
        if (s.deliveryId) {
          await new DeliveryRepository(db).incrementGrantUses(s.grantId);
          await this.settleDelivery(s.deliveryId, 'in-progress', s.id, settled)(db);
        } else {
          await new GuestGrantRepository(db).use(s.grantId);
        }
      }
    };
  }

  /**
   * A write that moves a delivery to `to` (from scheduled or in progress only: a cancelled or
   * finished delivery stays as it is) and records its event, both in the commit it is run in.
   * The event goes into `settled`, to be announced once that commit is done.
   */
  private settleDelivery(
    deliveryId: string,
    to: Exclude<DeliveryStatus, 'scheduled' | 'cancelled'>,
    sessionId: string,
    settled: DeliveryEvent[],
  ): AlongsideWrite {
    return async (db) => {
      const deliveries = new DeliveryRepository(db);
      const now = this.o.clock.now();
      if (!(await deliveries.transition(deliveryId, ['scheduled', 'in-progress'], to, now))) return;
      const d = await deliveries.get(deliveryId);
      if (!d || !this.o.deliveryEvents) return;
      const type: DeliveryEventType = `delivery.${to}`;
      settled.push(
        await this.o.deliveryEvents.record(
          {
            deliveryId,
            carrierId: d.carrierId,
            type,
            status: to,
            data: { sessionId, courierId: d.courierId },
          },
          db,
        ),
      );
    };
  }

  /** Announces committed delivery events (the webhooks listen). */
  private announceDeliveryEvents(settled: readonly DeliveryEvent[]): void {
    for (const e of settled) this.o.deliveryEvents?.publish(e);
  }

  private async persist(s: AccessSession, coverage: Coverage | null = null): Promise<void> {
    await this.saveRow(this.o.store.db, this.row(s, coverage));
  }

  /**
   * Writes a session's row: as this replica's (throwing {@link SessionTakenOverError}, which
   * rolls back the commit it is part of, when another replica owns it now), or plainly.
   */
  private async saveRow(db: Store['db'], row: StoredSession): Promise<void> {
    const sessions = new SessionRepository(db);
    if (this.o.replica === undefined) return sessions.save(row);
    if (!(await sessions.saveOwned(row, this.o.replica.id)))
      throw new SessionTakenOverError(row.id);
  }

  private row(s: AccessSession, coverage: Coverage | null): StoredSession {
    return {
      id: s.id,
      homeId: s.homeId,
      doorId: s.doorId,
      deliveryId: s.deliveryId,
      principalId: s.principalId,
      state: s.state,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      endedAt: s.endedAt,
      data: coverage ? { ...s, coverage } : s,
    };
  }

  /** The audit facts of a step: its transitions, alarms and the commands it sends. */
  private factsOf(
    l: LiveSession,
    effects: readonly SessionEffect[],
    actor: AuditActor,
    event: AppliedEvent,
  ): AuditFact[] {
    const subject = `session:${l.session.id}`;
    const byRequest =
      event.type === 'relock-requested' ||
      event.type === 'unlock-requested' ||
      event.type === 'start';
    return effects.map((e): AuditFact => {
      switch (e.type) {
        case 'transition':
          return {
            kind: 'session.state',
            actor: byRequest ? actor : SYSTEM,
            subject,
            data: { from: e.from, to: e.to, ...(e.reason ? { reason: e.reason } : {}) },
          };
        case 'alarm':
          return {
            kind: 'alarm.raised',
            actor: SYSTEM,
            subject,
            data: { alarm: e.alarm.type, sinceMs: e.alarm.sinceMs, message: e.alarm.message },
          };
        case 'command':
          return {
            kind: 'command.sent',
            actor: SYSTEM,
            subject,
            data: {
              device: e.device === 'lock' ? l.session.lockDeviceId : l.session.cameraDeviceId,
              action: e.action,
              ...(e.relockAfterMs ? { relockAfterMs: e.relockAfterMs } : {}),
            },
          };
      }
    });
  }

  /** Tells the owner's live views and the log about a step's alarms, once they are on record. */
  private announce(l: LiveSession, effects: readonly SessionEffect[]): void {
    for (const e of effects) {
      if (e.type !== 'alarm') continue;
      this.o.events.publish({
        type: 'alarm',
        homeId: l.session.homeId,
        sessionId: l.session.id,
        alarm: e.alarm,
      });
      this.o.logger?.warn({ sessionId: l.session.id, alarm: e.alarm.type }, e.alarm.message);
    }
  }

  /** Sends the commands a step asked for; their replies are audited, never trusted as state. */
  private perform(l: LiveSession, effects: readonly SessionEffect[]): void {
    const s = l.session;
    for (const e of effects) {
      if (e.type !== 'command') continue;
      const deviceId = e.device === 'lock' ? s.lockDeviceId : s.cameraDeviceId;
      // The machine sends no camera command to a session without a camera; nothing to send to.
      if (deviceId === null) continue;
      // An unlock says whom it lets in, so a home hub can check it against its grant list.
      const unlock = e.device === 'lock' && e.action === 'unlock';
      void this.o.gateway
        .command(deviceId, e.action, {
          sessionId: s.id,
          ...(e.relockAfterMs === undefined ? {} : { relockAfterMs: e.relockAfterMs }),
          ...(unlock
            ? { accessKind: s.deliveryId !== null ? 'courier' : 'guest', grantId: s.grantId }
            : {}),
        })
        .then(async (out) => {
          await this.o.audit.append({
            kind: 'command.outcome',
            actor:
              out.status === 'ok' || out.status === 'error'
                ? { type: 'device', id: deviceId }
                : SYSTEM,
            subject: `session:${s.id}`,
            data: {
              commandId: out.commandId,
              action: e.action,
              status: out.status,
              ...(out.status === 'error'
                ? { error: out.reply.status === 'error' ? out.reply.error.code : '' }
                : {}),
            },
            ...(out.status === 'ok' || out.status === 'error' ? { deviceMac: out.reply.mac } : {}),
          });
          // The hub would not open for this visit: the session ends now, not at its deadline.
          if (
            unlock &&
            out.status === 'error' &&
            out.reply.status === 'error' &&
            HUB_LIST_REFUSALS.has(out.reply.error.code)
          )
            await this.apply(s.id, { type: 'hub-refused', hubCode: out.reply.error.code });
        })
        .catch((err: unknown) =>
          this.o.logger?.warn({ err: String(err) }, 'command outcome not audited'),
        );
    }
  }

  private armDeadline(l: LiveSession): void {
    l.cancelDeadline?.();
    l.cancelDeadline = null;
    const at = l.session.deadlineAt;
    if (at === null || isTerminal(l.session)) return;
    l.cancelDeadline = this.o.clock.schedule(at, () => {
      l.cancelDeadline = null;
      void this.apply(l.session.id, { type: 'deadline' });
    });
  }

  /**
   * While a session relocks, `lock` is sent again every {@link RELOCK_RESEND_MS} until the
   * lock reports: a lost command or a lost report would otherwise wait for the relocking
   * deadline and raise `lock-unconfirmed` over a door that is locked (the lock reports every
   * movement, so a repeated command also brings back a lost report). Locking twice is safe.
   */
  private armRelockResend(l: LiveSession): void {
    if (l.session.state !== 'relocking') {
      l.cancelResend?.();
      l.cancelResend = null;
      return;
    }
    if (l.cancelResend !== null) return;
    const resend = (): void => {
      l.cancelResend = null;
      const s = l.session;
      if (s.state !== 'relocking' || isTerminal(s) || this.live.get(s.id) !== l) return;
      // Never into an open door: the door closing sends the command (access-session.ts).
      if (s.door !== 'open')
        void this.o.gateway
          .command(s.lockDeviceId, 'lock', { sessionId: s.id })
          .catch(() => undefined);
      l.cancelResend = this.o.clock.schedule(this.o.clock.now() + RELOCK_RESEND_MS, resend);
    };
    l.cancelResend = this.o.clock.schedule(this.o.clock.now() + RELOCK_RESEND_MS, resend);
  }

  /**
   * Arms the watchdog's next check at `nextCheckAt()`. Every accepted heartbeat calls this, and
   * a heartbeat only ever moves that time later: a check already armed for no later than it is
   * kept (not cancelled and created again per heartbeat); when it fires early, `check` finds
   * nothing due and it is armed again for the current `nextCheckAt()`. Each transition is
   * therefore still checked at the moment it falls due.
   */
  private armWatch(l: LiveSession): void {
    const at = l.watchdog.nextCheckAt();
    if (at === null || isTerminal(l.session)) {
      this.disarmWatch(l);
      return;
    }
    if (l.cancelWatch !== null && l.watchDueAt !== null && l.watchDueAt <= at) return;
    this.disarmWatch(l);
    this.scheduleWatch(l, at, false);
  }

  /**
   * Runs the watchdog's check at `at`. A check that runs more than {@link STALL_RECHECK_MS}
   * late found the event loop stalled (a long collection, a big synchronous job): heartbeats
   * that arrived meanwhile may still be waiting behind it, so it looks once more a turn later
   * rather than call every camera on the node lost. Once only: a camera that really went
   * silent is still reported a turn later, with the time it was last heard.
   */
  private scheduleWatch(l: LiveSession, at: number, again: boolean): void {
    l.watchDueAt = at;
    l.cancelWatch = this.o.clock.schedule(at, () => {
      l.cancelWatch = null;
      l.watchDueAt = null;
      const now = this.o.clock.now();
      if (!again && now - at > STALL_RECHECK_MS) {
        this.scheduleWatch(l, now, true);
        return;
      }
      const t = l.watchdog.check(now);
      if (t && (t.to === 'lost' || t.to === 'frozen')) {
        this.auditLater(l, 'observation.gap', {
          status: t.to,
          sinceMs: t.sinceMs,
          detectedAt: t.atMs,
        });
        void this.apply(l.session.id, { type: 'observation', status: t.to, sinceMs: t.sinceMs });
      }
      this.armWatch(l);
    });
  }

  /** Cancels the watchdog's armed check, if any. */
  private disarmWatch(l: LiveSession): void {
    l.cancelWatch?.();
    l.cancelWatch = null;
    l.watchDueAt = null;
  }

  /**
   * Records a fact nobody waits for. A failure (the store closing under a shutdown, a lost
   * database) is logged, never left as an unhandled rejection.
   */
  private appendLater(fact: AuditFact): void {
    this.o.audit
      .append(fact)
      .catch((err: unknown) =>
        this.o.logger?.warn({ err: String(err), kind: fact.kind }, 'audit entry not written'),
      );
  }

  /** {@link audit}, for what nobody waits for (see {@link appendLater}). */
  private auditLater(
    l: LiveSession,
    kind: string,
    data: Record<string, unknown>,
    actor: AuditActor = SYSTEM,
  ): void {
    this.appendLater({ kind, actor, subject: `session:${l.session.id}`, data });
  }

  private audit(
    l: LiveSession,
    kind: string,
    data: Record<string, unknown>,
    actor: AuditActor = SYSTEM,
  ): Promise<unknown> {
    return this.o.audit.append({ kind, actor, subject: `session:${l.session.id}`, data });
  }

  /**
   * A session ended: stop its timers, record its coverage and clip, and write the closing
   * record, the delivery's outcome and the session's final row in one commit. Only then does
   * it leave memory: until that commit, readers see it from memory, never the stored row of
   * the step before.
   */
  private async finish(l: LiveSession, s: AccessSession, coverage: Coverage): Promise<void> {
    l.cancelDeadline?.();
    this.disarmWatch(l);
    l.cancelResend?.();
    this.endedCoverage.set(s.id, coverage);
    await l.clipWrites;
    const frames = await this.o.clips.list(s.id);
    // A session without a camera says so in its closing record: no coverage, by the grant.
    const unrecorded = s.cameraDeviceId === null ? { recorded: false } : {};
    await this.audit(l, 'session.coverage', {
      ...unrecorded,
      ratio: coverage.ratio,
      startMs: coverage.startMs,
      endMs: coverage.endMs,
      gaps: coverage.gaps.map((g) => ({ startMs: g.startMs, endMs: g.endMs, cause: g.cause })),
      rejectedHeartbeats: l.watchdog.rejected,
    });
    await this.audit(l, 'session.clip', {
      frames: frames.map((f) => ({ seq: f.seq, capturedAt: f.capturedAt, digest: f.digest })),
    });
    const leftAtDoor =
      s.outcome?.code === 'delivery.owner-declined' ||
      s.outcome?.code === 'delivery.owner-no-answer';
    const status =
      s.state === 'completed'
        ? 'delivered'
        : s.unlockedAt !== null
          ? 'needs-review'
          : leftAtDoor
            ? 'left-at-door'
            : null;
    // The closing record and the delivery's outcome (with its event) in one commit.
    const settled: DeliveryEvent[] = [];
    await this.o.audit.appendAll(
      [
        {
          kind: 'session.ended',
          actor: SYSTEM,
          subject: `session:${s.id}`,
          data: {
            ...unrecorded,
            state: s.state,
            outcome: s.outcome ? { code: s.outcome.code, message: s.outcome.message } : null,
            alarms: s.alarms.map((a) => a.type),
            lockConfirmedAt: s.lockConfirmedAt,
            lockedAtByLock: s.lockedAtByLock,
          },
        },
      ],
      async (db) => {
        await this.saveRow(db, this.row(s, coverage));
        if (s.deliveryId && status)
          await this.settleDelivery(s.deliveryId, status, s.id, settled)(db);
      },
    );
    l.session = s;
    this.live.delete(s.id);
    for (const d of [s.lockDeviceId, s.cameraDeviceId, s.doorSensorDeviceId]) {
      if (d && this.byDevice.get(d) === s.id) this.byDevice.delete(d);
    }
    await this.o.audit.checkpoint();
    this.announceDeliveryEvents(settled);
  }

  private liveFor(deviceId: string): LiveSession | undefined {
    const id = this.byDevice.get(deviceId);
    return id ? this.live.get(id) : undefined;
  }

  /** Sends `disarm` to a camera streaming for an ended session, at most every few seconds. */
  private disarmStray(device: RegisteredDevice, sessionId: string): void {
    const now = this.o.clock.now();
    const last = this.strayDisarmAt.get(device.id);
    if (last !== undefined && now - last < STRAY_DISARM_MS) return;
    this.strayDisarmAt.set(device.id, now);
    void this.o.gateway.command(device.id, 'disarm', { sessionId }).catch(() => undefined);
  }

  // ---- Device traffic (DeviceGatewayListener) ----

  onHeartbeat(device: RegisteredDevice, hb: HeartbeatMessage, macValid: boolean): void {
    const l = this.liveFor(device.id);
    if (
      !l ||
      l.session.state === 'requested' ||
      l.session.state === 'awaiting-owner' ||
      l.session.cameraDeviceId !== device.id
    ) {
      // The owner's live view runs view sessions of its own; those heartbeats are expected.
      if (!hb.sessionId.startsWith(VIEW_SESSION_PREFIX)) {
        this.orphanHeartbeats++;
        // The camera's own heartbeats for a session no longer running: its `disarm` was lost.
        // Tell it again (not for a heartbeat that is not the camera's own).
        if (!l && macValid) {
          if (this.o.replica === undefined) this.disarmStray(device, hb.sessionId);
          else {
            this.shadowHeartbeat(hb);
            this.disarmIfEnded(device, hb.sessionId);
          }
        }
      }
      return;
    }
    const now = this.o.clock.now();
    if (macValid && hb.sessionId !== l.session.id && l.watchdog.observedSince === null) {
      // Until the camera has switched to this session, an authentic heartbeat of its previous
      // session (another access session's, or an owner's live view) is expected: not a fault.
      this.orphanHeartbeats++;
      return;
    }
    const wasStatus = l.watchdog.status;
    const v = l.watchdog.onHeartbeat({ ...hb, macValid }, now);
    if (!v.accepted) {
      // A heartbeat for another session before this one was confirmed can be a late one from
      // the camera's previous session; after confirmation it can only be a replay.
      const hostile =
        v.reason === 'bad-mac' ||
        v.reason === 'replayed-seq' ||
        (v.reason === 'wrong-session' && l.watchdog.observedSince !== null);
      // The first rejections are each on record; after that only their count (in the
      // session's coverage entry), so a flooding device cannot flood the audit log.
      if (l.watchdog.rejected <= MAX_AUDITED_REJECTIONS) {
        this.auditLater(
          l,
          'heartbeat.rejected',
          { reason: v.reason, seq: hb.seq, sessionId: hb.sessionId },
          { type: 'device', id: device.id },
        );
      }
      if (hostile && !l.session.alarms.some((a) => a.type === 'observation-forged')) {
        void this.apply(l.session.id, { type: 'heartbeat-rejected', reason: v.reason });
      }
      return;
    }
    if (v.fresh) {
      const pf = l.pendingFrames.get(hb.frameDigest);
      if (pf) {
        l.pendingFrames.delete(hb.frameDigest);
        const seq = l.frameSeq++;
        l.clipWrites = l.clipWrites.then(() =>
          this.o.clips
            .add(l.session.id, seq, pf.frame.capturedAt, now, pf.frame.digest, pf.jpeg)
            .then(
              () => undefined,
              (err: unknown) => this.o.logger?.warn({ err: String(err) }, 'clip frame not stored'),
            ),
        );
      }
      if (l.session.state === 'arming' && hb.recording)
        void this.apply(l.session.id, { type: 'camera-recording' });
      if (wasStatus === 'lost' || wasStatus === 'frozen') {
        this.auditLater(l, 'observation.restored', { after: wasStatus });
        void this.apply(l.session.id, { type: 'observation', status: 'live', sinceMs: now });
      }
      // A fresh frame moves a session on only while its observation is not live yet (it makes
      // it live) or while it verifies its relock (it confirms it); otherwise its step changes
      // nothing, and costs a queued step per heartbeat. An event still queued may move the
      // session (a lock report into `verifying`) before the frame would be applied: skip only
      // when nothing is queued, so the session is exactly as the step would find it.
      if (l.queued > 0 || l.session.observation !== 'live' || l.session.state === 'verifying')
        void this.apply(l.session.id, { type: 'fresh-frame' });
    }
    this.armWatch(l);
  }

  onFrame(device: RegisteredDevice, frame: FrameMessage, jpeg: Buffer): void {
    const l = this.liveFor(device.id);
    if (!l || frame.sessionId !== l.session.id) {
      // Not for a running session: nothing to vouch for it, so it is not kept (frames of the
      // owner's live view are the live view's business, not counted).
      if (!frame.sessionId.startsWith(VIEW_SESSION_PREFIX)) this.orphanFrames++;
      return;
    }
    l.pendingFrames.set(frame.digest, { frame, jpeg });
    if (l.pendingFrames.size > MAX_PENDING_FRAMES) {
      const oldest = l.pendingFrames.keys().next().value;
      if (oldest !== undefined) l.pendingFrames.delete(oldest);
    }
  }

  onState(device: RegisteredDevice, state: DeviceStateMessage): void {
    this.o.events.publish({
      type: 'device',
      homeId: device.homeId,
      device: this.o.gateway.liveStatus(device.id)!,
    });
    const now = this.o.clock.now();
    this.queueStatusWrite({
      deviceId: device.id,
      homeId: device.homeId,
      online: true,
      lastSeenAt: now,
      state,
      updatedAt: now,
    });
    const l = this.liveFor(device.id);
    if (!l) return;
    const fact = {
      kind: 'device.state',
      actor: { type: 'device', id: device.id } as AuditActor,
      subject: `session:${l.session.id}`,
      deviceMac: state.mac,
    };
    if (state.kind === 'lock' && device.id === l.session.lockDeviceId) {
      this.appendLater({
        ...fact,
        data: { bolt: state.bolt, changedAt: state.changedAt, seq: state.seq, at: state.at },
      });
      void this.apply(l.session.id, {
        type: 'lock-report',
        bolt: state.bolt,
        changedAt: state.changedAt,
      });
    } else if (state.kind === 'door-sensor' && device.id === l.session.doorSensorDeviceId) {
      this.appendLater({
        ...fact,
        data: {
          position: state.position,
          changedAt: state.changedAt,
          seq: state.seq,
          at: state.at,
        },
      });
      void this.apply(l.session.id, { type: 'door-report', position: state.position });
    }
  }

  /** Stores `status` with the others of the next {@link DEVICE_STATUS_WRITE_DELAY_MS}. */
  private queueStatusWrite(status: DeviceStatus): void {
    this.statusToWrite.set(status.deviceId, status);
    if (this.stopping) {
      void this.writeStatuses();
      return;
    }
    this.cancelStatusWrite ??= this.o.clock.schedule(
      this.o.clock.now() + DEVICE_STATUS_WRITE_DELAY_MS,
      () => {
        this.cancelStatusWrite = null;
        void this.writeStatuses();
      },
    );
  }

  /**
   * Writes the waiting statuses in one commit, after the writes already under way. Resolves
   * once written (or given up on, see {@link storeStatuses}); never rejects.
   */
  private writeStatuses(): Promise<void> {
    const batch = [...this.statusToWrite.values()];
    this.statusToWrite.clear();
    if (batch.length > 0)
      this.statusWrites = this.statusWrites.then(() => this.storeStatuses(batch));
    return this.statusWrites;
  }

  /**
   * Stores `batch` in one commit. Should that fail (a device removed meanwhile), each is tried
   * on its own, so one bad row does not lose the others; what still fails is logged.
   */
  private async storeStatuses(batch: readonly DeviceStatus[]): Promise<void> {
    const { db } = this.o.store;
    const warn = (err: unknown, deviceId: string): void =>
      this.o.logger?.warn({ err: String(err), deviceId }, 'device status not stored');
    try {
      await db.transaction().execute(async (trx) => {
        const statuses = new DeviceStatusRepository(trx);
        for (const s of batch) await statuses.upsert(s);
      });
    } catch (err) {
      if (batch.length === 1) return warn(err, batch[0]!.deviceId);
      for (const s of batch) {
        await new DeviceStatusRepository(db).upsert(s).catch((e: unknown) => warn(e, s.deviceId));
      }
    }
  }

  /**
   * A device refused a command this server never sent (or no longer waits for): replayed,
   * forged (bad MAC) or expired. Someone with access to the broker is sending commands at the
   * door. It goes on record with the device's own MAC, and the household is told — at most
   * once a minute per device, so a flood does not bury them.
   */
  onForeignReply(device: RegisteredDevice, reply: ReplyMessage): void {
    if (reply.status !== 'error' || !FOREIGN_COMMAND_CODES.has(reply.error.code)) return;
    this.appendLater({
      kind: 'device.command-rejected',
      actor: { type: 'device', id: device.id },
      subject: `device:${device.id}`,
      data: { commandId: reply.id, at: reply.at, code: reply.error.code },
      deviceMac: reply.mac,
    });
    const now = this.o.clock.now();
    const last = this.foreignNoticeAt.get(device.id);
    if (last !== undefined && now - last < 60_000) return;
    this.foreignNoticeAt.set(device.id, now);
    this.deviceNotice(
      device,
      (name) =>
        `${name} refused a command Threshold did not send (${FOREIGN_COMMAND_CODES.get(reply.error.code)}): someone may be sending commands to it.`,
    );
  }

  /**
   * Every device event goes into the audit log; the returned commit is what the gateway waits
   * for before the device is told its event was received.
   */
  onEvent(device: RegisteredDevice, event: DeviceEventMessage): Promise<unknown> {
    const l = this.liveFor(device.id);
    const fact: AuditFact = {
      kind: 'device.event',
      actor: { type: 'device', id: device.id },
      subject: l ? `session:${l.session.id}` : `device:${device.id}`,
      data: {
        name: event.name,
        at: event.at,
        seq: event.seq,
        ...(event.detail ? { detail: event.detail } : {}),
        // The keypad's fields, so the entry holds everything its MAC was made over.
        ...(event.slot === undefined ? {} : { slot: event.slot }),
        ...(event.attempt === undefined ? {} : { attempt: event.attempt }),
        ...(event.untilMs === undefined ? {} : { untilMs: event.untilMs }),
      },
      deviceMac: event.mac,
    };
    // Every replica receives the event: the first to commit it records it (and tells people).
    const recorded =
      this.o.replica === undefined
        ? this.o.audit.append(fact)
        : this.o.audit.appendOnce(fact, `device.event:${deviceEventKey(device.id, event)}`);
    // What a home's hub did on its own (offline, or faster than we could) needs the owner.
    const hubText = HUB_NOTICES[event.name];
    if (hubText !== undefined) {
      void recorded
        .then((e) => e !== null && this.deviceNotice(device, (name) => `${name}: ${hubText}`))
        .catch(() => undefined);
    }
    return recorded;
  }

  /** Tells the household of something a device did or met, named as they named it. */
  private deviceNotice(device: RegisteredDevice, message: (name: string) => string): void {
    const at = this.o.clock.now();
    void this.o.store.homes
      .getDevice(device.id)
      .catch(() => null)
      .then((d) =>
        this.o.events.publish({
          type: 'notice',
          homeId: device.homeId,
          message: message(d?.name ?? device.id),
          at,
        }),
      );
  }

  onAvailability(device: RegisteredDevice, online: boolean): void {
    const status = this.o.gateway.liveStatus(device.id);
    if (status) this.o.events.publish({ type: 'device', homeId: device.homeId, device: status });
    const l = this.liveFor(device.id);
    if (l)
      this.auditLater(
        l,
        'device.availability',
        { device: device.id, online },
        { type: 'device', id: device.id },
      );
  }

  /** Stops every timer (sessions stay open in the store; the next start closes them safely). */
  async stop(): Promise<void> {
    for (const cancel of this.recoveryTimers.values()) cancel();
    this.recoveryTimers.clear();
    for (const l of this.live.values()) {
      l.cancelDeadline?.();
      this.disarmWatch(l);
      l.cancelResend?.();
      await l.queue;
    }
    this.live.clear();
    this.byDevice.clear();
    // The statuses waiting for their timer are stored now, before the store closes.
    this.stopping = true;
    this.cancelStatusWrite?.();
    this.cancelStatusWrite = null;
    await this.writeStatuses();
  }
}

/** The outcome's words for a guest (the catalogue's speak to a courier). */
const HUB_REFUSED_GUEST_TEXT =
  'The door’s hub has no current access list for your visit, so the door stays locked; the household can check the hub.';

/**
 * A session whose lock's home hub refused the unlock ({@link HUB_LIST_REFUSALS}: its offline
 * grant list is too old, missing, or does not name the grant). The hub did not open the door,
 * so the session ends `refused` at once with `door.hub-list-stale` (the hub's code in its
 * detail), as a refused arming ends: the camera is disarmed, and the lock is told to lock
 * unless its own last report says locked already. Only a session still waiting for its unlock
 * and never opened ends so; in any other state the refusal changes nothing (the lock's own
 * reports decide, as ever).
 *
 * Applied here rather than by the machine's `step`, which has no event for a refusal from the
 * door's side; the transition, history and effects are those `step` makes when it ends a
 * session.
 */
export function refusedAtHub(s: AccessSession, hubCode: string, now: number): StepResult {
  if (s.state !== 'unlocking' || s.unlockedAt !== null)
    return { session: { ...s, updatedAt: now }, effects: [], refusal: null };
  const reason = 'door.hub-list-stale';
  const outcome = problem(reason, s.deliveryId === null ? HUB_REFUSED_GUEST_TEXT : undefined, {
    hubCode,
  });
  const effects: SessionEffect[] = [{ type: 'transition', from: s.state, to: 'refused', reason }];
  if (s.bolt !== 'locked') effects.push({ type: 'command', device: 'lock', action: 'lock' });
  if (s.cameraDeviceId !== null)
    effects.push({ type: 'command', device: 'camera', action: 'disarm' });
  return {
    session: {
      ...s,
      state: 'refused',
      updatedAt: now,
      endedAt: now,
      deadlineAt: null,
      outcome,
      history: [...s.history, { state: 'refused', atMs: now, reason }],
    },
    effects,
    refusal: null,
  };
}

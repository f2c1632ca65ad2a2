/**
 * What the hub enforces at one door on its own, without the control plane (principle 2: every
 * unlock has a deadline, enforced by the part closest to the door). Pure logic on a
 * {@link Clock}: the lock, the door and the hub's log come in as small ports, so every rule is
 * tested by advancing a fake clock.
 *
 * - **Deadline.** An unlock with `relockAfterMs` (or the door's default, for keypad unlocks)
 *   is relocked by the hub when the deadline passes — once the door is closed, never into an
 *   open door (a bolt thrown into an open door stops it closing, and proves nothing).
 * - **Dead-man's switch.** While the door's camera is armed for a session, the hub runs an
 *   {@link ObservationWatchdog} on the heartbeats it makes itself from the frames it receives.
 *   When observation is `lost` (no frame) or `frozen` (the same picture) it records the alarm
 *   `hub.dead-man`, locks as soon as the door is closed, and refuses further unlocks of that
 *   session.
 * - **Cut-off.** When the control plane has been unreachable for `cutOffMs` during a session,
 *   the hub ends the session safely: `hub.cut-off`, lock once closed, disarm the camera.
 *
 * "Lock once closed" is one routine for all three: it waits for the door sensor to say the door
 * is not open (no sensor, or an unknown position: lock at once, as a lock's own auto-relock
 * does), asks the lock, and tries again every `retryMs` until the lock reports the bolt thrown,
 * up to `maxAttempts`; each failure is recorded once (`hub.relock-failed`).
 */
import type { Clock } from '../core/clock.ts';
import {
  DEFAULT_WATCHDOG_CONFIG,
  ObservationWatchdog,
  type HeartbeatObservation,
  type WatchdogConfig,
} from '../core/observation-watchdog.ts';
import type { DriverBolt, DriverPosition } from './drivers/driver.ts';
import type { HubEventName } from './hub-log.ts';

/** Why the hub throws the bolt itself. */
export type RelockReason = 'deadline' | 'dead-man' | 'cut-off';

/** The lock, as the guard needs it. */
export interface GuardLock {
  bolt(): DriverBolt;
  /** Asks the lock to throw the bolt; resolves when the command was accepted. */
  lock(): Promise<void>;
}

/** The door sensor, as the guard needs it. */
export interface GuardDoor {
  position(): DriverPosition;
}

/** What the guard does to the world besides the lock. */
export interface GuardActions {
  /** Records a fact in the hub's log (which sends it upstream when it can). */
  record(name: HubEventName, sessionId: string | null, why: string): void;
  /** The lock confirmed a bolt the hub threw, for these reasons. */
  relocked(reasons: readonly RelockReason[]): void;
  /** Stops the camera's recording for the session (cut-off). */
  disarmCamera(sessionId: string): void;
  /** Says something in the hub's own log output. */
  warn(obj: object, message: string): void;
}

/** Settings of a {@link DoorGuard}. */
export interface DoorGuardOptions {
  readonly clock: Clock;
  readonly lock: GuardLock;
  /** The door's contact sensor, or null when the door has none. */
  readonly door: GuardDoor | null;
  readonly actions: GuardActions;
  /** Whether the door has a camera the hub reads (sessions then end with its `disarm`). */
  readonly hasCamera: boolean;
  /** The dead-man's switch thresholds; defaults are the control plane's. */
  readonly watchdog?: Partial<WatchdogConfig>;
  /** Control plane unreachable this long during a session → the hub ends it, ms. */
  readonly cutOffMs: number;
  /** Between two attempts to throw the bolt, ms. Default 2 000. */
  readonly retryMs?: number;
  /** Attempts before the hub gives up throwing the bolt (recorded). Default 60. */
  readonly maxAttempts?: number;
}

interface Session {
  readonly id: string;
  watchdog: ObservationWatchdog | null;
  cancelCheck: (() => void) | undefined;
}

interface Securing {
  readonly reasons: Set<RelockReason>;
  readonly sessionId: string | null;
  attempts: number;
  failureRecorded: boolean;
  waitingForDoor: boolean;
  cancelRetry: (() => void) | undefined;
}

/** Sessions whose unlocks stay refused, remembered at most this many (oldest forgotten). */
const REFUSED_MEMORY = 64;

/** See the module comment. One per door. */
export class DoorGuard {
  private readonly o: DoorGuardOptions;
  private readonly watchdogConfig: WatchdogConfig;
  private readonly retryMs: number;
  private readonly maxAttempts: number;
  private session: Session | null = null;
  private deadline: { at: number; sessionId: string | null; cancel: () => void } | null = null;
  private securing: Securing | null = null;
  private linkUp = false;
  private linkDownSince: number;
  private cancelCutOff: (() => void) | undefined;
  /** Session id → why its unlocks are refused. */
  private readonly refused = new Map<string, string>();
  private stopped = false;

  constructor(options: DoorGuardOptions) {
    this.o = options;
    this.watchdogConfig = { ...DEFAULT_WATCHDOG_CONFIG, ...options.watchdog };
    this.retryMs = options.retryMs ?? 2_000;
    this.maxAttempts = options.maxAttempts ?? 60;
    if (!(options.cutOffMs > 0)) throw new RangeError('cutOffMs must be > 0');
    this.linkDownSince = options.clock.now();
  }

  // --- what the guard tells ---------------------------------------------------------------

  /** When the hub will throw the bolt for the pending deadline (ms, hub clock), or null. */
  relockAt(): number | null {
    return this.deadline?.at ?? null;
  }

  /** The session under way at this door, or null. */
  sessionId(): string | null {
    return this.session?.id ?? null;
  }

  /** The observation status the hub sees for the session's camera, or null without one. */
  observation(): ObservationWatchdog['status'] | null {
    return this.session?.watchdog?.status ?? null;
  }

  /** Why an unlock for `sessionId` must be refused, or null when it may go ahead. */
  unlockRefusal(sessionId: string | undefined): string | null {
    return sessionId === undefined ? null : (this.refused.get(sessionId) ?? null);
  }

  /** Whether the hub is trying to throw the bolt (waiting for the door, or for the lock). */
  isSecuring(): boolean {
    return this.securing !== null;
  }

  // --- what the guard hears ----------------------------------------------------------------

  /** The camera was armed for `sessionId`: a session begins and the dead-man's switch runs. */
  cameraArmed(sessionId: string): void {
    const s = this.begin(sessionId);
    if (s.watchdog === null) s.watchdog = new ObservationWatchdog(sessionId, this.watchdogConfig);
  }

  /** The camera was disarmed: the session is over at this door. */
  cameraDisarmed(): void {
    this.end();
  }

  /**
   * The lock confirmed an unlock. `sessionId` when the control plane's unlock named one;
   * `relockAfterMs` null for an unlock without a deadline (a hand on the thumb-turn).
   */
  unlocked(sessionId: string | null, relockAfterMs: number | null): void {
    if (sessionId !== null) this.begin(sessionId);
    this.clearDeadline();
    if (relockAfterMs === null) return;
    const at = this.o.clock.now() + relockAfterMs;
    const cancel = this.o.clock.schedule(at, () => this.secure('deadline', sessionId));
    this.deadline = { at, sessionId, cancel };
  }

  /** The control plane asked to lock: its own relock replaces the hub's pending deadline. */
  lockCommanded(): void {
    this.clearDeadline();
  }

  /** The lock reported its bolt. */
  boltChanged(bolt: DriverBolt): void {
    if (bolt === 'locked') {
      this.clearDeadline();
      const securing = this.securing;
      if (securing !== null) {
        this.securing = null;
        securing.cancelRetry?.();
        if (securing.attempts > 0) {
          const reasons = [...securing.reasons];
          this.o.actions.record('hub.relocked', securing.sessionId, reasons.join(', '));
          this.o.actions.relocked(reasons);
        }
      }
      // Without a camera, a session is one unlock: it is over when the bolt is thrown again.
      if (!this.o.hasCamera) this.end();
      return;
    }
    if (bolt === 'jammed' && this.securing !== null) this.failed(this.securing, 'the bolt jammed');
  }

  /** The door sensor reported the door. */
  doorChanged(position: DriverPosition): void {
    const securing = this.securing;
    if (securing !== null && securing.waitingForDoor && position !== 'open') this.attempt(securing);
  }

  /** A heartbeat the hub made from the camera's newest frame (it saw the frame itself). */
  observed(heartbeat: HeartbeatObservation): void {
    const s = this.session;
    if (s?.watchdog == null || heartbeat.sessionId !== s.id) return;
    s.watchdog.onHeartbeat(heartbeat, this.o.clock.now());
    this.scheduleCheck(s);
  }

  /** The link to the control plane went up or down. */
  linkChanged(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.cancelCutOff?.();
    this.cancelCutOff = undefined;
    if (up) return;
    this.linkDownSince = this.o.clock.now();
    this.scheduleCutOff();
  }

  /** Stops every timer; nothing happens after. */
  stop(): void {
    this.stopped = true;
    this.clearDeadline();
    this.end();
    this.securing?.cancelRetry?.();
    this.securing = null;
    this.cancelCutOff?.();
    this.cancelCutOff = undefined;
  }

  // --- the rules ---------------------------------------------------------------------------

  private begin(sessionId: string): Session {
    if (this.session?.id === sessionId) return this.session;
    this.end();
    const s: Session = { id: sessionId, watchdog: null, cancelCheck: undefined };
    this.session = s;
    if (!this.linkUp) this.scheduleCutOff();
    return s;
  }

  private end(): void {
    this.session?.cancelCheck?.();
    this.session = null;
  }

  private clearDeadline(): void {
    this.deadline?.cancel();
    this.deadline = null;
  }

  private scheduleCheck(s: Session): void {
    s.cancelCheck?.();
    s.cancelCheck = undefined;
    const at = s.watchdog?.nextCheckAt() ?? null;
    if (at === null) return;
    s.cancelCheck = this.o.clock.schedule(at, () => {
      s.cancelCheck = undefined;
      if (this.session !== s || s.watchdog === null) return;
      const t = s.watchdog.check(this.o.clock.now());
      if (t !== null) this.deadMan(s, t.to, t.sinceMs);
      this.scheduleCheck(s);
    });
  }

  private deadMan(s: Session, status: string, sinceMs: number): void {
    const why = `observation ${status} since ${sinceMs}`;
    this.o.actions.warn({ sessionId: s.id, status, sinceMs }, "dead-man's switch: locking");
    this.o.actions.record('hub.dead-man', s.id, why);
    this.refuse(s.id, `the hub saw the camera ${status} in this session`);
    this.secure('dead-man', s.id);
  }

  private scheduleCutOff(): void {
    if (this.cancelCutOff !== undefined || this.stopped) return;
    this.cancelCutOff = this.o.clock.schedule(this.linkDownSince + this.o.cutOffMs, () => {
      this.cancelCutOff = undefined;
      const s = this.session;
      if (this.linkUp || s === null) return;
      const why = `control plane unreachable since ${this.linkDownSince}`;
      this.o.actions.warn({ sessionId: s.id }, 'cut off from the control plane: ending session');
      this.o.actions.record('hub.cut-off', s.id, why);
      this.refuse(s.id, 'the hub ended this session while cut off');
      this.end();
      if (this.o.hasCamera) this.o.actions.disarmCamera(s.id);
      this.secure('cut-off', s.id);
    });
  }

  private refuse(sessionId: string, why: string): void {
    this.refused.set(sessionId, why);
    if (this.refused.size > REFUSED_MEMORY) {
      const oldest = this.refused.keys().next();
      if (oldest.done !== true) this.refused.delete(oldest.value);
    }
  }

  /** Throws the bolt once the door is closed; see the module comment. */
  private secure(reason: RelockReason, sessionId: string | null): void {
    if (this.stopped) return;
    if (this.o.lock.bolt() === 'locked') {
      this.clearDeadline();
      return;
    }
    if (this.securing !== null) {
      this.securing.reasons.add(reason);
      return;
    }
    const securing: Securing = {
      reasons: new Set([reason]),
      sessionId,
      attempts: 0,
      failureRecorded: false,
      waitingForDoor: false,
      cancelRetry: undefined,
    };
    this.securing = securing;
    this.attempt(securing);
  }

  private attempt(securing: Securing): void {
    if (this.securing !== securing || this.stopped) return;
    securing.cancelRetry?.();
    securing.cancelRetry = undefined;
    if (this.o.door?.position() === 'open') {
      securing.waitingForDoor = true;
      return;
    }
    securing.waitingForDoor = false;
    if (securing.attempts >= this.maxAttempts) {
      this.securing = null;
      this.o.actions.record(
        'hub.relock-failed',
        securing.sessionId,
        `gave up after ${securing.attempts} attempts`,
      );
      return;
    }
    securing.attempts += 1;
    // Whatever the lock says to the command, only its report of the bolt ends this: try again
    // later unless it came.
    securing.cancelRetry = this.o.clock.schedule(this.o.clock.now() + this.retryMs, () =>
      this.attempt(securing),
    );
    this.o.lock.lock().catch((err: unknown) => {
      this.failed(securing, err instanceof Error ? err.message : String(err));
    });
  }

  private failed(securing: Securing, why: string): void {
    if (securing.failureRecorded) return;
    securing.failureRecorded = true;
    this.o.actions.record('hub.relock-failed', securing.sessionId, why);
  }
}

/**
 * The access-session state machine: one use of a grant at a door, e.g. one in-home delivery.
 *
 *   requested → (awaiting-owner) → arming → unlocking → open → relocking → verifying → completed
 *                      ↘ refused          ↘ refused   ↘ (unconfirmed) → relocking        ↘ aborted
 *
 * - awaiting-owner: only when the owner asked to be asked first. Nothing is armed or opened
 *   until the owner answers "let in"; "leave at door", or no answer before the deadline, ends
 *   the session refused (the courier leaves the parcel at the door).
 * - arming: the camera must start recording *this* session and prove it with a fresh,
 *   authenticated heartbeat before the lock is asked to open (principle 1).
 * - unlocking: the lock must report its bolt unlocked.
 * - open: the courier is inside; the unlock carries the lock's own relock deadline
 *   (principle 2), and the session has its own.
 * - relocking: the lock was asked to lock; only the lock's own report moves on (the 2018
 *   attack: a door that "sounds" locked is not locked until the lock says so).
 * - verifying: bolt locked, door closed, and a fresh frame after the relock, each confirmed.
 *
 * When observation is lost or frozen during the session, the session raises the alarm, never
 * allows another unlock, and locks the door as soon as it is closed.
 *
 * A session without a camera (`cameraDeviceId: null`) is a guest's entry under a grant that
 * does not ask for recording ("camera must record" turned off by the household). It is the
 * same machine with the camera's steps left out, and nothing else loosened: it goes from
 * requested straight to unlocking, sends no camera command, ignores camera traffic (so raises
 * no observation alarm), and completes on the lock's own confirmed relock and, where a door
 * sensor is fitted, the door reported closed. Every lock and door check, deadline and alarm is
 * that of a recorded session. A courier's session always has a camera (see
 * {@link createSession}).
 *
 * The machine is a pure function {@link step}: (session, event, now) → (session, effects). The
 * orchestrator persists the session, performs the effects and calls back at `deadlineAt`.
 */
import { problem, type ErrorCode, type Problem } from './errors.ts';

export type SessionState =
  | 'requested'
  | 'awaiting-owner'
  | 'arming'
  | 'unlocking'
  | 'open'
  | 'relocking'
  | 'verifying'
  | 'completed'
  | 'refused'
  | 'aborted';

export const TERMINAL_STATES: ReadonlySet<SessionState> = new Set([
  'completed',
  'refused',
  'aborted',
]);

export type AlarmType =
  | 'observation-lost'
  | 'observation-frozen'
  | 'observation-forged'
  | 'door-left-open'
  | 'lock-jammed'
  | 'lock-unconfirmed'
  | 'lock-state-mismatch'
  | 'session-overrun'
  | 'unexpected-entry';

export interface SessionAlarm {
  readonly type: AlarmType;
  readonly atMs: number;
  /** When the condition began (e.g. the last valid heartbeat for observation-lost), ms. */
  readonly sinceMs: number;
  readonly message: string;
}

export type Bolt = 'locked' | 'unlocked' | 'jammed' | 'unknown';
export type DoorPosition = 'open' | 'closed' | 'unknown';

export interface SessionTiming {
  /** The camera must prove recording within this, ms. */
  readonly armingTimeoutMs: number;
  /** The lock must report unlocked within this, ms. */
  readonly unlockTimeoutMs: number;
  /** The lock must report locked within this after the lock command, ms; then the alarm. */
  readonly relockTimeoutMs: number;
  /** After the relock alarm, how long to keep waiting for the lock's own report, ms. */
  readonly relockGiveUpMs: number;
  /** Bolt locked, door closed and a fresh frame must all be confirmed within this, ms. */
  readonly verifyTimeoutMs: number;
}

/** The owner's answer to a session that asks first, and who gave it. */
export interface OwnerApproval {
  /** How long the courier waits for the answer, ms. */
  readonly timeoutMs: number;
  readonly decision: 'let-in' | 'leave-at-door' | null;
  readonly decidedBy: string | null;
  readonly decidedAt: number | null;
}

export const DEFAULT_SESSION_TIMING: SessionTiming = {
  armingTimeoutMs: 5_000,
  unlockTimeoutMs: 5_000,
  relockTimeoutMs: 5_000,
  relockGiveUpMs: 10 * 60_000,
  verifyTimeoutMs: 5_000,
};

export interface AccessSession {
  readonly id: string;
  readonly homeId: string;
  readonly doorId: string;
  readonly deliveryId: string | null;
  readonly grantId: string;
  readonly principalId: string;
  readonly lockDeviceId: string;
  readonly doorSensorDeviceId: string | null;
  /**
   * The camera that must prove it records this session, or null for a session that is not
   * recorded (a guest grant without "camera must record"; never a courier's).
   */
  readonly cameraDeviceId: string | null;
  readonly state: SessionState;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly endedAt: number | null;
  /** When the current state times out, or null in a terminal state. */
  readonly deadlineAt: number | null;
  /** The longest the door may stay unlocked, ms (from the grant). */
  readonly maxOpenMs: number;
  readonly timing: SessionTiming;
  /** What the camera proves: `none` for a session without a camera (not recorded). */
  readonly observation: 'none' | 'pending' | 'live' | 'lost' | 'frozen';
  /** Set when the owner is asked before the door opens ("ask me first"); null otherwise. */
  readonly approval: OwnerApproval | null;
  /** Once set, no further unlock is allowed in this session. */
  readonly unlockBlocked: ErrorCode | null;
  readonly bolt: Bolt;
  /** When the lock says its bolt last moved (lock's clock), ms. */
  readonly boltChangedAt: number | null;
  readonly door: DoorPosition;
  readonly armedAt: number | null;
  readonly unlockedAt: number | null;
  readonly relockRequestedAt: number | null;
  /** When the lock's own report confirmed the bolt locked after the relock (server clock). */
  readonly lockConfirmedAt: number | null;
  /** When the lock says it threw the bolt (its own clock), from that same report. */
  readonly lockedAtByLock: number | null;
  readonly freshFrameAfterLockAt: number | null;
  readonly alarms: readonly SessionAlarm[];
  /** Why the session ended, for refused and aborted sessions. */
  readonly outcome: Problem | null;
  readonly history: readonly {
    readonly state: SessionState;
    readonly atMs: number;
    readonly reason?: string;
  }[];
}

export type SessionEvent =
  | { readonly type: 'start' }
  | { readonly type: 'camera-recording' }
  | { readonly type: 'fresh-frame' }
  | { readonly type: 'lock-report'; readonly bolt: Bolt; readonly changedAt: number }
  | { readonly type: 'door-report'; readonly position: DoorPosition }
  | {
      readonly type: 'observation';
      readonly status: 'lost' | 'frozen' | 'live';
      readonly sinceMs: number;
    }
  | { readonly type: 'heartbeat-rejected'; readonly reason: string }
  | { readonly type: 'relock-requested' }
  | { readonly type: 'unlock-requested' }
  | {
      readonly type: 'owner-decision';
      readonly decision: 'let-in' | 'leave-at-door';
      readonly by: string;
    }
  | { readonly type: 'cancel'; readonly reason: ErrorCode }
  | { readonly type: 'deadline' };

export type SessionEffect =
  | {
      readonly type: 'command';
      readonly device: 'camera' | 'lock';
      readonly action: 'arm' | 'disarm' | 'lock' | 'unlock';
      readonly relockAfterMs?: number;
    }
  | { readonly type: 'alarm'; readonly alarm: SessionAlarm }
  | {
      readonly type: 'transition';
      readonly from: SessionState;
      readonly to: SessionState;
      readonly reason?: string;
    };

export interface StepResult {
  readonly session: AccessSession;
  readonly effects: readonly SessionEffect[];
  /** Set when the event asked for something that is refused (e.g. a second unlock). */
  readonly refusal: Problem | null;
}

/** What a new session is made from: who, where, which devices, and what they last said. */
export type NewSessionInput = Pick<
  AccessSession,
  | 'id'
  | 'homeId'
  | 'doorId'
  | 'deliveryId'
  | 'grantId'
  | 'principalId'
  | 'lockDeviceId'
  | 'doorSensorDeviceId'
  | 'cameraDeviceId'
  | 'maxOpenMs'
  | 'bolt'
  | 'door'
> & {
  readonly timing?: SessionTiming;
  /** Ask the owner first, waiting this long for the answer, ms. */
  readonly askOwnerTimeoutMs?: number;
};

/** The words a session without a camera ends with, and its history gives as the reason. */
export const NOT_RECORDED_TEXT = "Not recorded: this guest's grant does not ask for the camera.";

/**
 * A new session in state `requested`; feed it `start`. Throws (a bug in the caller, not a
 * refusal) for a courier's session without a camera: deliveries are always recorded.
 */
export function createSession(input: NewSessionInput, now: number): AccessSession {
  const { askOwnerTimeoutMs, ...rest } = input;
  if (input.cameraDeviceId === null && input.deliveryId !== null) {
    throw new Error(`session ${input.id}: a delivery session must have a camera`);
  }
  return {
    ...rest,
    timing: input.timing ?? DEFAULT_SESSION_TIMING,
    approval:
      askOwnerTimeoutMs === undefined
        ? null
        : { timeoutMs: askOwnerTimeoutMs, decision: null, decidedBy: null, decidedAt: null },
    state: 'requested',
    createdAt: now,
    updatedAt: now,
    endedAt: null,
    deadlineAt: null,
    observation: input.cameraDeviceId === null ? 'none' : 'pending',
    unlockBlocked: null,
    boltChangedAt: null,
    armedAt: null,
    unlockedAt: null,
    relockRequestedAt: null,
    lockConfirmedAt: null,
    lockedAtByLock: null,
    freshFrameAfterLockAt: null,
    alarms: [],
    outcome: null,
    history: [{ state: 'requested', atMs: now }],
  };
}

/** Whether the session has ended. */
export function isTerminal(s: Pick<AccessSession, 'state'>): boolean {
  return TERMINAL_STATES.has(s.state);
}

/** Whether a camera records the session (false only for a guest grant without recording). */
export function isRecorded(s: Pick<AccessSession, 'cameraDeviceId'>): boolean {
  return s.cameraDeviceId !== null;
}

const ALARM_TEXT: Record<AlarmType, string> = {
  'observation-lost': 'Camera stopped proving it can see the door',
  'observation-frozen': 'Camera picture is frozen',
  'observation-forged': 'Camera heartbeats failed authentication (forged or replayed)',
  'door-left-open': 'Door left open',
  'lock-jammed': 'Lock is jammed',
  'lock-unconfirmed': 'Lock did not confirm it is locked',
  'lock-state-mismatch': 'Lock reports locked while the door sensor says open',
  'session-overrun': 'Door stayed unlocked past its deadline',
  'unexpected-entry': 'Door opened while it should be locked',
};

/** Accumulates the changes of one step. */
class Step {
  s: AccessSession;
  readonly effects: SessionEffect[] = [];
  refusal: Problem | null = null;

  constructor(
    session: AccessSession,
    readonly now: number,
  ) {
    this.s = { ...session, updatedAt: now };
  }

  set(patch: Partial<AccessSession>): void {
    this.s = { ...this.s, ...patch };
  }

  go(to: SessionState, deadlineAt: number | null, reason?: string): void {
    const from = this.s.state;
    if (from === to) {
      this.set({ deadlineAt });
      return;
    }
    const terminal = TERMINAL_STATES.has(to);
    this.set({
      state: to,
      deadlineAt: terminal ? null : deadlineAt,
      endedAt: terminal ? this.now : null,
      history: [
        ...this.s.history,
        reason === undefined
          ? { state: to, atMs: this.now }
          : { state: to, atMs: this.now, reason },
      ],
    });
    this.effects.push(
      reason === undefined
        ? { type: 'transition', from, to }
        : { type: 'transition', from, to, reason },
    );
  }

  end(to: 'completed' | 'refused' | 'aborted', outcome: Problem | null): void {
    this.set({ outcome });
    this.go(to, null, outcome?.code);
    // Nothing was armed in a session without a camera: nothing to disarm.
    if (isRecorded(this.s)) this.command('camera', 'disarm');
  }

  command(
    device: 'camera' | 'lock',
    action: 'arm' | 'disarm' | 'lock' | 'unlock',
    relockAfterMs?: number,
  ): void {
    this.effects.push(
      relockAfterMs === undefined
        ? { type: 'command', device, action }
        : { type: 'command', device, action, relockAfterMs },
    );
  }

  /** Raises an alarm once per type per session. */
  alarm(type: AlarmType, sinceMs: number, message?: string): void {
    if (this.s.alarms.some((a) => a.type === type)) return;
    const alarm: SessionAlarm = {
      type,
      atMs: this.now,
      sinceMs,
      message: message ?? ALARM_TEXT[type],
    };
    this.set({ alarms: [...this.s.alarms, alarm] });
    this.effects.push({ type: 'alarm', alarm });
  }

  refuse(code: ErrorCode, message?: string): void {
    this.refusal = problem(code, message);
  }

  result(): StepResult {
    return { session: this.s, effects: this.effects, refusal: this.refusal };
  }
}

/**
 * The door may be opened (the owner, if asked, said yes): a recorded session arms the camera
 * and waits for its proof; one without a camera asks the lock to open at once.
 */
function beginEntry(st: Step, reason?: string): void {
  const s = st.s;
  if (isRecorded(s)) {
    st.command('camera', 'arm');
    st.go('arming', st.now + s.timing.armingTimeoutMs, reason);
    return;
  }
  st.command('lock', 'unlock', s.maxOpenMs);
  st.go(
    'unlocking',
    st.now + s.timing.unlockTimeoutMs,
    reason === undefined ? NOT_RECORDED_TEXT : `${reason}; ${NOT_RECORDED_TEXT}`,
  );
}

/**
 * Starts relocking: command the lock and wait for its own report. Never into an open door (a
 * bolt thrown into the frame jams, or leaves the door unsecured while it says locked): with the
 * door open, the command goes out when the door sensor reports it closed.
 */
function startRelock(st: Step, reason: string): void {
  st.set({ relockRequestedAt: st.now });
  if (st.s.door !== 'open') st.command('lock', 'lock');
  st.go('relocking', st.now + st.s.timing.relockTimeoutMs, reason);
}

/** Moves to verifying once the lock's own report says locked after a relock. */
function onLockedConfirmed(st: Step, changedAt: number): void {
  st.set({ lockConfirmedAt: st.now, lockedAtByLock: changedAt, freshFrameAfterLockAt: null });
  st.go('verifying', st.now + st.s.timing.verifyTimeoutMs, 'lock confirmed locked');
  tryComplete(st);
}

/** Completes the session when every part of "locked" is confirmed (principle 4). */
function tryComplete(st: Step): void {
  const s = st.s;
  if (s.state !== 'verifying') return;
  const doorOk = s.doorSensorDeviceId === null || s.door === 'closed';
  // Without a camera there is no picture to wait for; the lock and the door still decide.
  const frameOk = !isRecorded(s) || s.freshFrameAfterLockAt !== null;
  if (s.bolt === 'locked' && doorOk && frameOk) {
    // A cancelled visit (its outcome set) ends aborted with its reason once secured.
    if (s.outcome !== null) st.end('aborted', s.outcome);
    else st.end('completed', null);
  }
}

/** Observation failed: alarm, block unlocks, and lock as soon as the door is closed. */
function onObservationFailed(st: Step, status: 'lost' | 'frozen', sinceMs: number): void {
  st.set({ observation: status, unlockBlocked: 'session.observation-lost' });
  st.alarm(status === 'lost' ? 'observation-lost' : 'observation-frozen', sinceMs);
  const s = st.s;
  if (s.state === 'arming') {
    st.end('refused', problem(status === 'lost' ? 'camera.offline' : 'camera.frozen'));
    return;
  }
  if (s.state === 'unlocking' || s.state === 'open') {
    if (s.door !== 'open') startRelock(st, `observation ${status}`);
    // With the door open, the lock is commanded the moment the door sensor reports closed.
  }
}

/** The events only a session's camera causes. */
const CAMERA_EVENTS: ReadonlySet<SessionEvent['type']> = new Set([
  'camera-recording',
  'fresh-frame',
  'observation',
  'heartbeat-rejected',
]);

/** Applies one event to a session. Events that do not apply to the current state change nothing. */
export function step(session: AccessSession, event: SessionEvent, now: number): StepResult {
  const st = new Step(session, now);
  const s = session;
  if (isTerminal(s)) {
    if (
      event.type === 'unlock-requested' ||
      event.type === 'relock-requested' ||
      event.type === 'owner-decision'
    )
      st.refuse('session.finished');
    // A terminal session still learns the lock's and door's last word (for the record).
    if (event.type === 'lock-report') st.set({ bolt: event.bolt, boltChangedAt: event.changedAt });
    if (event.type === 'door-report') st.set({ door: event.position });
    return st.result();
  }
  if (!isRecorded(s) && CAMERA_EVENTS.has(event.type)) {
    // No camera belongs to this session: whatever a camera says is not about it, and can
    // neither move it on nor raise an observation alarm.
    return st.result();
  }

  switch (event.type) {
    case 'start':
      if (s.state !== 'requested') break;
      if (s.approval !== null && s.approval.decision === null) {
        st.go('awaiting-owner', now + s.approval.timeoutMs, 'asking the owner first');
        break;
      }
      beginEntry(st);
      break;

    case 'owner-decision':
      if (s.state !== 'awaiting-owner' || s.approval === null) {
        st.refuse('session.not-awaiting-owner');
        break;
      }
      st.set({
        approval: { ...s.approval, decision: event.decision, decidedBy: event.by, decidedAt: now },
      });
      if (event.decision === 'leave-at-door') {
        st.set({ outcome: problem('delivery.owner-declined') });
        st.go('refused', null, 'delivery.owner-declined');
        break;
      }
      beginEntry(st, 'owner let in');
      break;

    case 'camera-recording':
      if (s.state !== 'arming') break;
      if (s.unlockBlocked !== null) {
        st.end('refused', problem(s.unlockBlocked));
        break;
      }
      st.set({ armedAt: now, observation: 'live' });
      st.command('lock', 'unlock', s.maxOpenMs);
      st.go('unlocking', now + s.timing.unlockTimeoutMs, 'camera recording');
      break;

    case 'fresh-frame':
      if (s.observation !== 'lost' && s.observation !== 'frozen') st.set({ observation: 'live' });
      if (
        s.state === 'verifying' &&
        s.lockConfirmedAt !== null &&
        s.observation !== 'lost' &&
        s.observation !== 'frozen'
      ) {
        st.set({ freshFrameAfterLockAt: now });
        tryComplete(st);
      }
      break;

    case 'observation':
      if (event.status === 'live') {
        // The feed came back: the gap stays on record and unlocks stay blocked.
        if (s.observation !== 'pending') st.set({ observation: 'live' });
        break;
      }
      onObservationFailed(st, event.status, event.sinceMs);
      break;

    case 'heartbeat-rejected':
      st.alarm('observation-forged', now, `Camera heartbeat rejected (${event.reason})`);
      break;

    case 'lock-report': {
      const prev = s.bolt;
      st.set({ bolt: event.bolt, boltChangedAt: event.changedAt });
      if (event.bolt === 'jammed') {
        st.alarm('lock-jammed', now);
        if (s.state === 'unlocking') st.end('aborted', problem('lock.jammed'));
        break;
      }
      if (s.state === 'unlocking' && event.bolt === 'unlocked') {
        if (s.unlockBlocked !== null) {
          // Observation failed while the lock was opening: lock again at once.
          if (s.door !== 'open') startRelock(st, 'observation failed during unlock');
          break;
        }
        st.set({ unlockedAt: now });
        st.go('open', now + s.maxOpenMs, 'lock confirmed unlocked');
        break;
      }
      if (event.bolt === 'locked' && s.state === 'unlocking') {
        // The lock has not moved yet: its reports (it repeats its state periodically) say what
        // was true before the unlock. Had it opened and closed again, "unlocked" came first.
        break;
      }
      if (event.bolt === 'locked' && (s.state === 'relocking' || s.state === 'open')) {
        // Locked by our command, by the lock's own deadline, or by hand: each is the lock's own word.
        if (s.state !== 'relocking') st.set({ relockRequestedAt: s.relockRequestedAt ?? now });
        // Thrown with the door open (by hand, or by a lock that does not wait): never secure,
        // and said at once rather than at the verification deadline.
        if (s.door === 'open') st.alarm('lock-state-mismatch', now);
        onLockedConfirmed(st, event.changedAt);
        break;
      }
      if (event.bolt === 'locked' && s.state === 'verifying') {
        tryComplete(st);
        break;
      }
      if (event.bolt === 'unlocked' && prev === 'locked' && s.state === 'verifying') {
        st.alarm('unexpected-entry', now, 'Lock opened again after it was confirmed locked');
        startRelock(st, 'lock opened during verification');
      }
      break;
    }

    case 'door-report': {
      const prev = s.door;
      st.set({ door: event.position });
      if (event.position === 'open' && prev !== 'open') {
        if (s.bolt === 'locked' && (s.state === 'verifying' || s.state === 'relocking')) {
          st.alarm('lock-state-mismatch', now);
          if (s.state === 'verifying') st.go('verifying', now + s.timing.verifyTimeoutMs);
        } else if (s.unlockBlocked !== null && s.state === 'relocking') {
          st.alarm('unexpected-entry', now, 'Door opened after the camera stopped watching');
        }
        break;
      }
      if (event.position === 'closed' && prev !== 'closed') {
        if (s.state === 'relocking' && s.bolt !== 'locked' && prev === 'open') {
          // Relocking waited for the door: it is closed now.
          st.command('lock', 'lock');
          break;
        }
        if (
          s.unlockBlocked !== null &&
          (s.state === 'open' || s.state === 'unlocking') &&
          s.bolt !== 'locked'
        ) {
          startRelock(st, 'door closed while observation failed');
          break;
        }
        tryComplete(st);
      }
      break;
    }

    case 'relock-requested':
      if (s.state === 'relocking' || s.state === 'verifying') break; // already on its way: idempotent
      if (s.state !== 'open') {
        st.refuse('session.wrong-state', 'The door is not open yet.');
        break;
      }
      if (s.door === 'open') {
        st.refuse('door.open', 'Close the door first, then lock.');
        break;
      }
      startRelock(st, s.deliveryId === null ? 'guest asked to lock' : 'courier asked to lock');
      break;

    case 'unlock-requested':
      if (s.unlockBlocked !== null) {
        st.refuse(s.unlockBlocked);
        break;
      }
      if (s.state === 'awaiting-owner') {
        st.refuse('session.active', 'The owner is being asked: wait for the answer.');
        break;
      }
      if (s.state === 'requested' || s.state === 'arming' || s.state === 'unlocking') {
        st.refuse('session.active', 'The door is being opened for you: wait for it.');
        break;
      }
      st.refuse('session.wrong-state', 'This session has already unlocked the door once.');
      break;

    case 'cancel':
      if (s.state === 'awaiting-owner') {
        st.set({ outcome: problem(event.reason) });
        st.go('refused', null, event.reason);
      } else if (s.state === 'requested' || s.state === 'arming') {
        st.end('refused', problem(event.reason));
      } else if (s.state === 'unlocking' || s.state === 'open') {
        // The reason stays the session's outcome: once the door is secured it ends aborted,
        // never completed (a revoked courier's visit is not a delivery done).
        st.set({ outcome: problem(event.reason) });
        startRelock(st, `cancelled: ${event.reason}`);
      }
      break;

    case 'deadline':
      if (s.deadlineAt === null || now < s.deadlineAt) break;
      onDeadline(st);
      break;
  }
  return st.result();
}

function onDeadline(st: Step): void {
  const s = st.s;
  switch (s.state) {
    case 'awaiting-owner':
      // Nothing was armed: no disarm to send.
      st.set({ outcome: problem('delivery.owner-no-answer') });
      st.go('refused', null, 'delivery.owner-no-answer');
      return;
    case 'requested':
    case 'arming':
      st.end('refused', problem('camera.not-recording'));
      return;
    case 'unlocking':
      // The lock never said it opened (the command or its report was lost, or it refused). The
      // visit is over — no further unlock, and it ends aborted with this reason once the door
      // is secured, never "completed" — and the lock may have opened without telling us: lock
      // again, and wait for its word. No alarm yet: the door is most likely still locked, and
      // if the relock is not confirmed either, that raises lock-unconfirmed.
      st.set({
        outcome: problem(
          'lock.unconfirmed',
          s.deliveryId === null
            ? 'The lock did not open; the door stays locked.'
            : 'The lock did not open; leave the parcel at the door.',
        ),
        unlockBlocked: 'lock.unconfirmed',
      });
      startRelock(st, 'unlock not confirmed');
      return;
    case 'open':
      st.alarm('session-overrun', s.unlockedAt ?? st.now);
      if (s.door === 'open') st.alarm('door-left-open', st.now);
      startRelock(st, 'session deadline');
      return;
    case 'relocking': {
      const since = s.relockRequestedAt ?? st.now;
      st.alarm('lock-unconfirmed', since);
      if (s.door === 'open') st.alarm('door-left-open', st.now);
      if (st.now - since >= s.timing.relockGiveUpMs) {
        st.end('aborted', problem('lock.unconfirmed'));
        return;
      }
      // Ask again (the command may have been lost) and keep waiting for the lock's own word;
      // never into an open door (the door closing sends it).
      if (s.door !== 'open') st.command('lock', 'lock');
      st.go(
        'relocking',
        Math.min(st.now + s.timing.relockTimeoutMs * 2, since + s.timing.relockGiveUpMs),
      );
      return;
    }
    case 'verifying': {
      if (s.bolt !== 'locked') {
        startRelock(st, 'bolt not locked at verification');
        return;
      }
      const doorOk = s.doorSensorDeviceId === null || s.door === 'closed';
      if (!doorOk) {
        st.alarm(s.door === 'open' ? 'lock-state-mismatch' : 'door-left-open', st.now);
        st.end('aborted', problem(s.door === 'open' ? 'door.open' : 'door.unknown'));
        return;
      }
      // Locked and closed, but the camera never showed the door after the relock. (A session
      // without a camera never waits here: with bolt and door confirmed it completed already.)
      st.end(
        'aborted',
        problem(
          s.observation === 'frozen' ? 'camera.frozen' : 'session.observation-lost',
          'The door is locked, but the camera did not confirm it after the relock.',
        ),
      );
      return;
    }
    case 'completed':
    case 'refused':
    case 'aborted':
      return;
  }
}

/** Summary of a session for people: its outcome in plain words. */
export function describeOutcome(s: AccessSession): string {
  switch (s.state) {
    case 'completed':
      if (!isRecorded(s)) {
        return s.alarms.length === 0
          ? `Completed: door locked and closed. ${NOT_RECORDED_TEXT}`
          : `Completed with ${s.alarms.length} alarm(s). ${NOT_RECORDED_TEXT}`;
      }
      return s.alarms.length === 0
        ? 'Completed: door locked and closed, confirmed on camera.'
        : `Completed with ${s.alarms.length} alarm(s).`;
    case 'refused':
    case 'aborted':
      return s.outcome?.message ?? s.state;
    case 'awaiting-owner':
      return 'Waiting for the owner to answer.';
    case 'requested':
    case 'arming':
    case 'unlocking':
    case 'open':
    case 'relocking':
    case 'verifying':
      return `In progress (${s.state}).`;
  }
}

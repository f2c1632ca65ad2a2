import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SESSION_TIMING,
  createSession,
  describeOutcome,
  isRecorded,
  isTerminal,
  NOT_RECORDED_TEXT,
  step,
  type AccessSession,
  type NewSessionInput,
  type SessionEffect,
  type SessionEvent,
  type StepResult,
} from './access-session.ts';

const T0 = 1_768_478_400_000;
const MAX_OPEN = 120_000;
const { armingTimeoutMs, unlockTimeoutMs, relockTimeoutMs, relockGiveUpMs, verifyTimeoutMs } =
  DEFAULT_SESSION_TIMING;

const INPUT: NewSessionInput = {
  id: 'session-1',
  homeId: 'home-1',
  doorId: 'door-1',
  deliveryId: 'delivery-1',
  grantId: 'grant-1',
  principalId: 'courier-1',
  lockDeviceId: 'lock-1',
  doorSensorDeviceId: 'sensor-1',
  cameraDeviceId: 'camera-1',
  maxOpenMs: MAX_OPEN,
  bolt: 'locked',
  door: 'closed',
};

// A story's times: the courier arrives at T0 and is in and out in half a minute.
const ARMED = T0 + 1_000;
const UNLOCKED = T0 + 1_500;
const DOOR_OPENED = T0 + 3_000;
const DOOR_CLOSED = T0 + 30_000;
const RELOCK = T0 + 31_000;
const LOCKED_BY_LOCK = T0 + 31_400;
const LOCK_REPORTED = T0 + 31_500;
const FRAME = T0 + 32_000;

/** Feeds events to one session, keeping the newest state. */
class Run {
  s: AccessSession;
  last: StepResult | null = null;

  constructor(input: Partial<NewSessionInput> = {}) {
    this.s = createSession({ ...INPUT, ...input }, T0);
  }

  send(event: SessionEvent, at: number): StepResult {
    const r = step(this.s, event, at);
    this.s = r.session;
    this.last = r;
    return r;
  }

  /** start → arming → unlocking. */
  toUnlocking(): this {
    this.send({ type: 'start' }, T0);
    this.send({ type: 'camera-recording' }, ARMED);
    return this;
  }

  /** … → open, the door still closed. */
  toOpen(): this {
    this.toUnlocking();
    this.send({ type: 'lock-report', bolt: 'unlocked', changedAt: UNLOCKED - 100 }, UNLOCKED);
    return this;
  }

  /** … → the courier went in and out and asked to lock → relocking. */
  toRelocking(): this {
    this.toOpen();
    this.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    this.send({ type: 'door-report', position: 'closed' }, DOOR_CLOSED);
    this.send({ type: 'relock-requested' }, RELOCK);
    return this;
  }

  /** … → the lock confirmed locked → verifying. */
  toVerifying(): this {
    this.toRelocking();
    this.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    return this;
  }

  /** Sends `deadline` at the session's deadline. */
  deadline(): StepResult {
    if (this.s.deadlineAt === null) throw new Error('no deadline');
    return this.send({ type: 'deadline' }, this.s.deadlineAt);
  }
}

const commands = (r: StepResult) =>
  r.effects.filter((e): e is Extract<SessionEffect, { type: 'command' }> => e.type === 'command');
const alarmTypes = (r: StepResult) =>
  r.effects.flatMap((e) => (e.type === 'alarm' ? [e.alarm.type] : []));
const transitions = (r: StepResult) =>
  r.effects.flatMap((e) => (e.type === 'transition' ? [`${e.from}→${e.to}`] : []));

describe('createSession', () => {
  it('creates a requested session with nothing confirmed yet', () => {
    const s = createSession(INPUT, T0);
    expect(s).toMatchObject({
      id: 'session-1',
      state: 'requested',
      createdAt: T0,
      updatedAt: T0,
      endedAt: null,
      deadlineAt: null,
      observation: 'pending',
      unlockBlocked: null,
      bolt: 'locked',
      door: 'closed',
      armedAt: null,
      unlockedAt: null,
      relockRequestedAt: null,
      lockConfirmedAt: null,
      lockedAtByLock: null,
      freshFrameAfterLockAt: null,
      alarms: [],
      outcome: null,
      history: [{ state: 'requested', atMs: T0 }],
    });
    expect(s.timing).toEqual(DEFAULT_SESSION_TIMING);
    expect(isTerminal(s)).toBe(false);
    expect(describeOutcome(s)).toBe('In progress (requested).');
  });

  it('takes the timing it is given', () => {
    const timing = { ...DEFAULT_SESSION_TIMING, armingTimeoutMs: 123 };
    const run = new Run({ timing });
    run.send({ type: 'start' }, T0);
    expect(run.s.deadlineAt).toBe(T0 + 123);
  });
});

describe('step: the happy path', () => {
  it('arms, unlocks, opens, relocks, verifies and completes, each step confirmed', () => {
    const run = new Run();

    let r = run.send({ type: 'start' }, T0);
    expect(r.effects).toEqual([
      { type: 'command', device: 'camera', action: 'arm' },
      { type: 'transition', from: 'requested', to: 'arming' },
    ]);
    expect(r.refusal).toBeNull();
    expect(run.s).toMatchObject({ state: 'arming', deadlineAt: T0 + armingTimeoutMs });

    r = run.send({ type: 'camera-recording' }, ARMED);
    expect(r.effects).toEqual([
      { type: 'command', device: 'lock', action: 'unlock', relockAfterMs: MAX_OPEN },
      { type: 'transition', from: 'arming', to: 'unlocking', reason: 'camera recording' },
    ]);
    expect(run.s).toMatchObject({
      state: 'unlocking',
      armedAt: ARMED,
      observation: 'live',
      deadlineAt: ARMED + unlockTimeoutMs,
    });

    r = run.send({ type: 'lock-report', bolt: 'unlocked', changedAt: UNLOCKED - 100 }, UNLOCKED);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'unlocking', to: 'open', reason: 'lock confirmed unlocked' },
    ]);
    expect(run.s).toMatchObject({
      state: 'open',
      bolt: 'unlocked',
      boltChangedAt: UNLOCKED - 100,
      unlockedAt: UNLOCKED,
      deadlineAt: UNLOCKED + MAX_OPEN,
    });

    r = run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({ state: 'open', door: 'open' });

    r = run.send({ type: 'door-report', position: 'closed' }, DOOR_CLOSED);
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({ state: 'open', door: 'closed' });

    r = run.send({ type: 'relock-requested' }, RELOCK);
    expect(r.refusal).toBeNull();
    expect(r.effects).toEqual([
      { type: 'command', device: 'lock', action: 'lock' },
      { type: 'transition', from: 'open', to: 'relocking', reason: 'courier asked to lock' },
    ]);
    expect(run.s).toMatchObject({
      state: 'relocking',
      relockRequestedAt: RELOCK,
      deadlineAt: RELOCK + relockTimeoutMs,
    });

    r = run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'relocking', to: 'verifying', reason: 'lock confirmed locked' },
    ]);
    expect(run.s).toMatchObject({
      state: 'verifying',
      bolt: 'locked',
      lockConfirmedAt: LOCK_REPORTED,
      lockedAtByLock: LOCKED_BY_LOCK,
      boltChangedAt: LOCKED_BY_LOCK,
      freshFrameAfterLockAt: null,
      deadlineAt: LOCK_REPORTED + verifyTimeoutMs,
    });

    r = run.send({ type: 'fresh-frame' }, FRAME);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'verifying', to: 'completed' },
      { type: 'command', device: 'camera', action: 'disarm' },
    ]);
    expect(run.s).toMatchObject({
      state: 'completed',
      freshFrameAfterLockAt: FRAME,
      endedAt: FRAME,
      updatedAt: FRAME,
      deadlineAt: null,
      outcome: null,
      alarms: [],
      unlockBlocked: null,
    });
    expect(run.s.history.map((h) => [h.state, h.atMs])).toEqual([
      ['requested', T0],
      ['arming', T0],
      ['unlocking', ARMED],
      ['open', UNLOCKED],
      ['relocking', RELOCK],
      ['verifying', LOCK_REPORTED],
      ['completed', FRAME],
    ]);
    expect(isTerminal(run.s)).toBe(true);
    expect(describeOutcome(run.s)).toBe('Completed: door locked and closed, confirmed on camera.');
  });

  it('does not change the session it was given', () => {
    const run = new Run().toOpen();
    const before = run.s;
    const snapshot = structuredClone(before);
    run.send({ type: 'relock-requested' }, RELOCK);
    expect(before).toEqual(snapshot);
    expect(run.s).not.toBe(before);
  });

  it('completes in any order once bolt, door and fresh frame are all confirmed', () => {
    const run = new Run().toOpen();
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'door-report', position: 'unknown' }, RELOCK + 100);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    run.send({ type: 'fresh-frame' }, FRAME);
    expect(run.s.state).toBe('verifying'); // the door is not known closed
    const r = run.send({ type: 'door-report', position: 'closed' }, FRAME + 100);
    expect(transitions(r)).toEqual(['verifying→completed']);
    expect(run.s.endedAt).toBe(FRAME + 100);
  });

  it('does not need a closed door when there is no door sensor', () => {
    const run = new Run({ doorSensorDeviceId: null, door: 'unknown' }).toOpen();
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    run.send({ type: 'fresh-frame' }, FRAME);
    expect(run.s.state).toBe('completed');
  });

  it('needs a fresh frame after the lock confirmed, not one from before', () => {
    const run = new Run().toRelocking();
    run.send({ type: 'fresh-frame' }, RELOCK + 100);
    expect(run.s.freshFrameAfterLockAt).toBeNull();
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    expect(run.s.state).toBe('verifying');
  });

  it('takes the lock locking itself (its own deadline) as the relock', () => {
    const run = new Run().toOpen();
    const r = run.send(
      { type: 'lock-report', bolt: 'locked', changedAt: T0 + 60_000 },
      T0 + 60_200,
    );
    expect(transitions(r)).toEqual(['open→verifying']);
    expect(commands(r)).toEqual([]);
    expect(run.s).toMatchObject({
      relockRequestedAt: T0 + 60_200,
      lockConfirmedAt: T0 + 60_200,
      lockedAtByLock: T0 + 60_000,
    });
  });
});

describe('step: refusals while running', () => {
  it('refuses to relock while the door is open, and changes nothing', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const r = run.send({ type: 'relock-requested' }, DOOR_OPENED + 1_000);
    expect(r.refusal?.code).toBe('door.open');
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({
      state: 'open',
      relockRequestedAt: null,
      deadlineAt: UNLOCKED + MAX_OPEN,
    });
  });

  it('refuses to relock before the door was unlocked', () => {
    const run = new Run().toUnlocking();
    const r = run.send({ type: 'relock-requested' }, ARMED + 100);
    expect(r.refusal?.code).toBe('session.wrong-state');
    expect(r.effects).toEqual([]);
    expect(run.s.state).toBe('unlocking');
  });

  it('takes a second relock request as already on its way', () => {
    const run = new Run().toRelocking();
    const r = run.send({ type: 'relock-requested' }, RELOCK + 500);
    expect(r.refusal).toBeNull();
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({ state: 'relocking', relockRequestedAt: RELOCK });
  });

  it('refuses a second unlock', () => {
    const run = new Run().toOpen();
    const r = run.send({ type: 'unlock-requested' }, UNLOCKED + 1_000);
    expect(r.refusal?.code).toBe('session.wrong-state');
    expect(r.effects).toEqual([]);
  });
});

describe('step: arming', () => {
  it('refuses with camera.not-recording when the camera does not confirm in time', () => {
    const run = new Run();
    run.send({ type: 'start' }, T0);
    expect(run.send({ type: 'deadline' }, T0 + armingTimeoutMs - 1).effects).toEqual([]);
    expect(run.s.state).toBe('arming');

    const r = run.send({ type: 'deadline' }, T0 + armingTimeoutMs);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'arming', to: 'refused', reason: 'camera.not-recording' },
      { type: 'command', device: 'camera', action: 'disarm' },
    ]);
    expect(run.s).toMatchObject({
      state: 'refused',
      endedAt: T0 + armingTimeoutMs,
      deadlineAt: null,
      armedAt: null,
      outcome: { code: 'camera.not-recording' },
    });
    expect(commands(r).some((c) => c.action === 'unlock')).toBe(false);
    expect(describeOutcome(run.s)).toBe('The camera did not confirm it is recording.');
  });

  it.each([
    ['lost', 'observation-lost', 'camera.offline'],
    ['frozen', 'observation-frozen', 'camera.frozen'],
  ] as const)('refuses when observation is %s while arming', (status, alarm, code) => {
    const run = new Run();
    run.send({ type: 'start' }, T0);
    const r = run.send({ type: 'observation', status, sinceMs: T0 + 200 }, T0 + 2_000);
    expect(alarmTypes(r)).toEqual([alarm]);
    expect(transitions(r)).toEqual(['arming→refused']);
    expect(commands(r)).toEqual([{ type: 'command', device: 'camera', action: 'disarm' }]);
    expect(run.s.outcome?.code).toBe(code);
  });

  it('is refused with the reason when cancelled', () => {
    const run = new Run();
    run.send({ type: 'start' }, T0);
    const r = run.send({ type: 'cancel', reason: 'grant.revoked' }, T0 + 100);
    expect(transitions(r)).toEqual(['arming→refused']);
    expect(run.s.outcome?.code).toBe('grant.revoked');
    expect(commands(r)).toEqual([{ type: 'command', device: 'camera', action: 'disarm' }]);
  });

  it('ignores a second start and a camera confirmation outside arming', () => {
    const run = new Run().toOpen();
    const before = run.s;
    expect(run.send({ type: 'start' }, UNLOCKED + 1).effects).toEqual([]);
    expect(run.send({ type: 'camera-recording' }, UNLOCKED + 2).effects).toEqual([]);
    expect(run.s).toEqual({ ...before, updatedAt: UNLOCKED + 2 });
  });
});

describe('step: unlocking', () => {
  it('aborts with lock.jammed when the lock jams while unlocking', () => {
    const run = new Run().toUnlocking();
    const r = run.send(
      { type: 'lock-report', bolt: 'jammed', changedAt: ARMED + 300 },
      ARMED + 400,
    );
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'lock-jammed',
          atMs: ARMED + 400,
          sinceMs: ARMED + 400,
          message: 'Lock is jammed',
        },
      },
      { type: 'transition', from: 'unlocking', to: 'aborted', reason: 'lock.jammed' },
      { type: 'command', device: 'camera', action: 'disarm' },
    ]);
    expect(run.s).toMatchObject({
      state: 'aborted',
      bolt: 'jammed',
      outcome: { code: 'lock.jammed' },
    });
  });

  it('locks again when the lock does not confirm the unlock in time; the alarm comes if the relock is not confirmed either', () => {
    const run = new Run().toUnlocking();
    expect(run.send({ type: 'deadline' }, ARMED + unlockTimeoutMs - 1).effects).toEqual([]);
    const r = run.send({ type: 'deadline' }, ARMED + unlockTimeoutMs);
    expect(alarmTypes(r)).toEqual([]);
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['unlocking→relocking']);
    expect(run.s).toMatchObject({
      relockRequestedAt: ARMED + unlockTimeoutMs,
      deadlineAt: ARMED + unlockTimeoutMs + relockTimeoutMs,
    });
    // The relock is not confirmed either: now the owner is told.
    const r2 = run.send({ type: 'deadline' }, ARMED + unlockTimeoutMs + relockTimeoutMs);
    expect(alarmTypes(r2)).toEqual(['lock-unconfirmed']);
    expect(run.s.alarms[0]?.sinceMs).toBe(ARMED + unlockTimeoutMs);
    expect(commands(r2)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
  });

  it('takes a repeated "locked" report while the bolt is still drawing back for what it is: no relock', () => {
    const run = new Run().toUnlocking();
    const r = run.send(
      { type: 'lock-report', bolt: 'locked', changedAt: T0 - 60_000 },
      ARMED + 100,
    );
    expect(transitions(r)).toEqual([]);
    expect(commands(r)).toEqual([]);
    expect(run.s.state).toBe('unlocking');
    expect(run.s.lockConfirmedAt).toBeNull();
    const opened = run.send(
      { type: 'lock-report', bolt: 'unlocked', changedAt: ARMED + 300 },
      ARMED + 400,
    );
    expect(transitions(opened)).toEqual(['unlocking→open']);
    expect(alarmTypes(opened)).toEqual([]);
  });

  it('answers a second "open" while the door is being opened with "wait", and sends nothing', () => {
    const run = new Run();
    run.send({ type: 'start' }, T0);
    const r = run.send({ type: 'unlock-requested' }, T0 + 100);
    expect(r.refusal?.code).toBe('session.active');
    expect(r.effects).toEqual([]);
    expect(run.s.state).toBe('arming');
  });

  it('never sends the unlock when observation failed before the camera confirmed recording', () => {
    const run = new Run();
    run.send({ type: 'observation', status: 'lost', sinceMs: T0 }, T0);
    run.send({ type: 'start' }, T0 + 10);
    const r = run.send({ type: 'camera-recording' }, ARMED);
    expect(commands(r).filter((c) => c.action === 'unlock')).toEqual([]);
    expect(run.s.state).toBe('refused');
    expect(run.s.outcome?.code).toBe('session.observation-lost');
  });

  it('gives up on an unlock the lock never confirmed: relocks, blocks, and ends aborted, never completed', () => {
    const run = new Run().toUnlocking();
    const r = run.deadline();
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['unlocking→relocking']);
    expect(run.s).toMatchObject({ unlockBlocked: 'lock.unconfirmed', unlockedAt: null });
    expect(run.s.outcome).toMatchObject({
      code: 'lock.unconfirmed',
      message: 'The lock did not open; leave the parcel at the door.',
    });
    const at = run.s.deadlineAt! - 1_000;
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: at - 50 }, at);
    run.send({ type: 'fresh-frame' }, at + 500);
    expect(run.s.state).toBe('aborted');
    expect(run.s.outcome?.code).toBe('lock.unconfirmed');
  });

  it('locks again at once when observation fails while the lock is opening (door closed)', () => {
    const run = new Run().toUnlocking();
    const r = run.send({ type: 'observation', status: 'lost', sinceMs: ARMED + 100 }, ARMED + 200);
    expect(alarmTypes(r)).toEqual(['observation-lost']);
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['unlocking→relocking']);
    // The unlock then arrives: it does not count as "open".
    const late = run.send(
      { type: 'lock-report', bolt: 'unlocked', changedAt: ARMED + 250 },
      ARMED + 300,
    );
    expect(late.effects).toEqual([]);
    expect(run.s).toMatchObject({ state: 'relocking', unlockedAt: null });
  });

  it('does not open when the unlock is confirmed after observation failed with the door open', () => {
    const run = new Run({ door: 'open' }).toUnlocking();
    run.send({ type: 'observation', status: 'frozen', sinceMs: ARMED }, ARMED + 200);
    expect(run.s.state).toBe('unlocking');
    const r = run.send(
      { type: 'lock-report', bolt: 'unlocked', changedAt: ARMED + 250 },
      ARMED + 300,
    );
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({ state: 'unlocking', unlockedAt: null });
    const closed = run.send({ type: 'door-report', position: 'closed' }, ARMED + 2_000);
    expect(commands(closed)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(closed)).toEqual(['unlocking→relocking']);
  });
});

describe('step: open', () => {
  it('raises session-overrun at the open deadline and locks', () => {
    const run = new Run().toOpen();
    expect(run.send({ type: 'deadline' }, UNLOCKED + MAX_OPEN - 1).effects).toEqual([]);
    const r = run.send({ type: 'deadline' }, UNLOCKED + MAX_OPEN);
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'session-overrun',
          atMs: UNLOCKED + MAX_OPEN,
          sinceMs: UNLOCKED,
          message: 'Door stayed unlocked past its deadline',
        },
      },
      { type: 'command', device: 'lock', action: 'lock' },
      { type: 'transition', from: 'open', to: 'relocking', reason: 'session deadline' },
    ]);
    expect(run.s.deadlineAt).toBe(UNLOCKED + MAX_OPEN + relockTimeoutMs);
  });

  it('also raises door-left-open when the door is open at the deadline, and locks only once it closes', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const r = run.deadline();
    expect(alarmTypes(r)).toEqual(['session-overrun', 'door-left-open']);
    expect(commands(r)).toEqual([]);
    expect(run.s.state).toBe('relocking');
    // Still open at the relocking deadline: asked again? No — still no bolt into the door.
    const again = run.deadline();
    expect(commands(again)).toEqual([]);
    const closed = run.send({ type: 'door-report', position: 'closed' }, run.s.updatedAt + 500);
    expect(commands(closed)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
  });

  it('cancelled with the door open: no bolt until the door closes', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const r = run.send({ type: 'cancel', reason: 'grant.revoked' }, DOOR_OPENED + 1_000);
    expect(commands(r)).toEqual([]);
    expect(run.s.state).toBe('relocking');
    const closed = run.send({ type: 'door-report', position: 'closed' }, DOOR_OPENED + 3_000);
    expect(commands(closed)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
  });

  it('locks when cancelled after the unlock', () => {
    const run = new Run().toOpen();
    const r = run.send({ type: 'cancel', reason: 'grant.revoked' }, UNLOCKED + 5_000);
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(r.effects.at(-1)).toEqual({
      type: 'transition',
      from: 'open',
      to: 'relocking',
      reason: 'cancelled: grant.revoked',
    });
  });

  it('ends a cancelled visit aborted with its reason once the door is secured, never completed', () => {
    // Cancelled after the unlock (the courier was revoked while inside).
    const inside = new Run().toOpen();
    inside.send({ type: 'cancel', reason: 'grant.revoked' }, UNLOCKED + 5_000);
    inside.send(
      { type: 'lock-report', bolt: 'locked', changedAt: UNLOCKED + 5_400 },
      UNLOCKED + 5_500,
    );
    inside.send({ type: 'fresh-frame' }, UNLOCKED + 6_000);
    expect(inside.s.state).toBe('aborted');
    expect(inside.s.outcome?.code).toBe('grant.revoked');
    // Cancelled while the unlock was still on its way: the bolt never moved.
    const before = new Run().toUnlocking();
    before.send({ type: 'cancel', reason: 'grant.revoked' }, ARMED + 100);
    before.send({ type: 'lock-report', bolt: 'locked', changedAt: ARMED + 50 }, ARMED + 200);
    before.send({ type: 'fresh-frame' }, ARMED + 700);
    expect(before.s).toMatchObject({ state: 'aborted', unlockedAt: null });
    expect(before.s.outcome?.code).toBe('grant.revoked');
  });

  it('raises lock-jammed without ending the session when the lock jams while open', () => {
    const run = new Run().toOpen();
    const r = run.send({ type: 'lock-report', bolt: 'jammed', changedAt: T0 + 9_000 }, T0 + 9_100);
    expect(alarmTypes(r)).toEqual(['lock-jammed']);
    expect(run.s).toMatchObject({ state: 'open', bolt: 'jammed' });
  });
});

describe('step: observation lost or frozen', () => {
  it('lost in open with the door closed: alarm, lock, no further unlock, aborted without a fresh frame', () => {
    const run = new Run().toOpen();
    const lostAt = T0 + 10_500;
    let r = run.send({ type: 'observation', status: 'lost', sinceMs: T0 + 9_000 }, lostAt);
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'observation-lost',
          atMs: lostAt,
          sinceMs: T0 + 9_000,
          message: 'Camera stopped proving it can see the door',
        },
      },
      { type: 'command', device: 'lock', action: 'lock' },
      { type: 'transition', from: 'open', to: 'relocking', reason: 'observation lost' },
    ]);
    expect(run.s).toMatchObject({
      state: 'relocking',
      observation: 'lost',
      unlockBlocked: 'session.observation-lost',
      relockRequestedAt: lostAt,
      deadlineAt: lostAt + relockTimeoutMs,
    });

    r = run.send({ type: 'unlock-requested' }, lostAt + 500);
    expect(r.refusal?.code).toBe('session.observation-lost');
    expect(r.effects).toEqual([]);

    r = run.send({ type: 'lock-report', bolt: 'locked', changedAt: lostAt + 900 }, lostAt + 1_000);
    expect(transitions(r)).toEqual(['relocking→verifying']);
    expect(run.s).toMatchObject({ lockConfirmedAt: lostAt + 1_000, lockedAtByLock: lostAt + 900 });

    // A "fresh frame" while observation is lost proves nothing.
    r = run.send({ type: 'fresh-frame' }, lostAt + 2_000);
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({ state: 'verifying', freshFrameAfterLockAt: null });

    r = run.send({ type: 'unlock-requested' }, lostAt + 2_500);
    expect(r.refusal?.code).toBe('session.observation-lost');

    expect(run.send({ type: 'deadline' }, lostAt + 1_000 + verifyTimeoutMs - 1).effects).toEqual(
      [],
    );
    r = run.send({ type: 'deadline' }, lostAt + 1_000 + verifyTimeoutMs);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'verifying', to: 'aborted', reason: 'session.observation-lost' },
      { type: 'command', device: 'camera', action: 'disarm' },
    ]);
    expect(run.s).toMatchObject({
      state: 'aborted',
      outcome: { code: 'session.observation-lost' },
      endedAt: lostAt + 1_000 + verifyTimeoutMs,
    });
    expect(run.s.alarms.map((a) => a.type)).toEqual(['observation-lost']);
  });

  it('lost with the door open: no lock command until the door reports closed, then lock', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    let r = run.send({ type: 'observation', status: 'lost', sinceMs: T0 + 9_000 }, T0 + 10_500);
    expect(alarmTypes(r)).toEqual(['observation-lost']);
    expect(commands(r)).toEqual([]);
    expect(run.s).toMatchObject({ state: 'open', unlockBlocked: 'session.observation-lost' });

    r = run.send({ type: 'door-report', position: 'unknown' }, T0 + 12_000);
    expect(commands(r)).toEqual([]);

    r = run.send({ type: 'door-report', position: 'closed' }, T0 + 20_000);
    expect(r.effects).toEqual([
      { type: 'command', device: 'lock', action: 'lock' },
      {
        type: 'transition',
        from: 'open',
        to: 'relocking',
        reason: 'door closed while observation failed',
      },
    ]);
    expect(run.s).toMatchObject({
      relockRequestedAt: T0 + 20_000,
      deadlineAt: T0 + 20_000 + relockTimeoutMs,
    });
  });

  it('frozen in open with the door closed: alarm, lock, aborted camera.frozen without a fresh frame', () => {
    const run = new Run().toOpen();
    let r = run.send({ type: 'observation', status: 'frozen', sinceMs: T0 + 7_000 }, T0 + 10_000);
    expect(alarmTypes(r)).toEqual(['observation-frozen']);
    expect(run.s.alarms[0]).toMatchObject({ sinceMs: T0 + 7_000, atMs: T0 + 10_000 });
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['open→relocking']);
    expect(run.s).toMatchObject({
      observation: 'frozen',
      unlockBlocked: 'session.observation-lost',
    });

    expect(run.send({ type: 'unlock-requested' }, T0 + 10_100).refusal?.code).toBe(
      'session.observation-lost',
    );
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: T0 + 10_500 }, T0 + 10_600);
    run.send({ type: 'fresh-frame' }, T0 + 11_000);
    expect(run.s.freshFrameAfterLockAt).toBeNull();
    r = run.deadline();
    expect(transitions(r)).toEqual(['verifying→aborted']);
    expect(run.s.outcome?.code).toBe('camera.frozen');
  });

  it('frozen with the door open: lock only once the door is closed', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const r = run.send({ type: 'observation', status: 'frozen', sinceMs: T0 + 7_000 }, T0 + 10_000);
    expect(commands(r)).toEqual([]);
    expect(run.s.state).toBe('open');
    const closed = run.send({ type: 'door-report', position: 'closed' }, T0 + 15_000);
    expect(commands(closed)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(closed)).toEqual(['open→relocking']);
  });

  it('a feed that comes back keeps unlocks blocked, and its fresh frame then completes', () => {
    const run = new Run().toOpen();
    run.send({ type: 'observation', status: 'lost', sinceMs: T0 + 9_000 }, T0 + 10_500);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: T0 + 11_000 }, T0 + 11_100);
    const back = run.send(
      { type: 'observation', status: 'live', sinceMs: T0 + 11_500 },
      T0 + 11_500,
    );
    expect(back.effects).toEqual([]);
    expect(run.s).toMatchObject({ observation: 'live', unlockBlocked: 'session.observation-lost' });
    expect(run.send({ type: 'unlock-requested' }, T0 + 11_600).refusal?.code).toBe(
      'session.observation-lost',
    );
    const r = run.send({ type: 'fresh-frame' }, T0 + 12_000);
    expect(transitions(r)).toEqual(['verifying→completed']);
    expect(run.s.alarms.map((a) => a.type)).toEqual(['observation-lost']);
    expect(describeOutcome(run.s)).toBe('Completed with 1 alarm(s).');
  });

  it('raises observation-forged for a rejected heartbeat, once', () => {
    const run = new Run().toOpen();
    const r = run.send({ type: 'heartbeat-rejected', reason: 'bad-mac' }, T0 + 5_000);
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'observation-forged',
          atMs: T0 + 5_000,
          sinceMs: T0 + 5_000,
          message: 'Camera heartbeat rejected (bad-mac)',
        },
      },
    ]);
    expect(
      run.send({ type: 'heartbeat-rejected', reason: 'replayed-seq' }, T0 + 5_500).effects,
    ).toEqual([]);
    expect(run.s.alarms).toHaveLength(1);
    expect(run.s.state).toBe('open');
  });
});

describe('step: relocking', () => {
  it('alarms and asks again when the lock does not confirm, then completes on its own report', () => {
    const run = new Run().toRelocking();
    expect(run.send({ type: 'deadline' }, RELOCK + relockTimeoutMs - 1).effects).toEqual([]);

    let r = run.send({ type: 'deadline' }, RELOCK + relockTimeoutMs);
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'lock-unconfirmed',
          atMs: RELOCK + relockTimeoutMs,
          sinceMs: RELOCK,
          message: 'Lock did not confirm it is locked',
        },
      },
      { type: 'command', device: 'lock', action: 'lock' },
    ]);
    expect(run.s).toMatchObject({
      state: 'relocking',
      relockRequestedAt: RELOCK,
      deadlineAt: RELOCK + relockTimeoutMs + 2 * relockTimeoutMs,
    });

    // The lock threw the bolt at +36.2 s by its clock; its report gets through at +40 s.
    r = run.send({ type: 'lock-report', bolt: 'locked', changedAt: T0 + 36_200 }, T0 + 40_000);
    expect(transitions(r)).toEqual(['relocking→verifying']);
    expect(run.s).toMatchObject({ lockConfirmedAt: T0 + 40_000, lockedAtByLock: T0 + 36_200 });

    r = run.send({ type: 'fresh-frame' }, T0 + 40_500);
    expect(transitions(r)).toEqual(['verifying→completed']);
    expect(run.s).toMatchObject({
      state: 'completed',
      outcome: null,
      lockedAtByLock: T0 + 36_200,
    });
    expect(run.s.alarms.map((a) => [a.type, a.sinceMs])).toEqual([['lock-unconfirmed', RELOCK]]);
  });

  it('gives up after relockGiveUpMs with lock.unconfirmed, asking again at each deadline', () => {
    const run = new Run().toRelocking();
    const deadlines: number[] = [];
    let lockCommands = 0;
    let alarms = 0;
    // Bounded: a machine that never gives up must fail the test, not hang it.
    for (let i = 0; i < 100 && run.s.state === 'relocking'; i++) {
      deadlines.push((run.s.deadlineAt ?? Number.NaN) - RELOCK);
      const r = run.deadline();
      lockCommands += commands(r).filter((c) => c.action === 'lock').length;
      alarms += alarmTypes(r).length;
    }
    expect(deadlines.slice(0, 3)).toEqual([5_000, 15_000, 25_000]);
    expect(deadlines.at(-2)).toBe(595_000);
    expect(deadlines.at(-1)).toBe(relockGiveUpMs);
    expect(lockCommands).toBe(60);
    expect(alarms).toBe(1);
    expect(run.s).toMatchObject({
      state: 'aborted',
      outcome: { code: 'lock.unconfirmed' },
      endedAt: RELOCK + relockGiveUpMs,
      deadlineAt: null,
    });
    expect(run.last?.effects.at(-1)).toEqual({
      type: 'command',
      device: 'camera',
      action: 'disarm',
    });
  });

  it('raises door-left-open when the door is open at the relock deadline', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    run.deadline(); // open deadline → relocking, with door-left-open already
    const r = run.deadline();
    expect(alarmTypes(r)).toEqual(['lock-unconfirmed']);
    expect(run.s.alarms.map((a) => a.type)).toEqual([
      'session-overrun',
      'door-left-open',
      'lock-unconfirmed',
    ]);
  });

  it('raises unexpected-entry when the door opens after the camera stopped watching', () => {
    const run = new Run().toOpen();
    run.send({ type: 'observation', status: 'lost', sinceMs: T0 + 9_000 }, T0 + 10_000);
    const r = run.send({ type: 'door-report', position: 'open' }, T0 + 10_200);
    expect(alarmTypes(r)).toEqual(['unexpected-entry']);
    expect(run.s.state).toBe('relocking');
  });

  it('raises lock-jammed and keeps waiting when the lock jams on relock', () => {
    const run = new Run().toRelocking();
    const r = run.send(
      { type: 'lock-report', bolt: 'jammed', changedAt: RELOCK + 300 },
      RELOCK + 400,
    );
    expect(alarmTypes(r)).toEqual(['lock-jammed']);
    expect(run.s).toMatchObject({
      state: 'relocking',
      bolt: 'jammed',
      deadlineAt: RELOCK + relockTimeoutMs,
    });
  });
});

describe('step: verifying', () => {
  it('raises lock-state-mismatch when the door opens while the bolt is locked, then aborts door.open', () => {
    const run = new Run().toVerifying();
    let r = run.send({ type: 'door-report', position: 'open' }, T0 + 33_000);
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'lock-state-mismatch',
          atMs: T0 + 33_000,
          sinceMs: T0 + 33_000,
          message: 'Lock reports locked while the door sensor says open',
        },
      },
    ]);
    expect(run.s).toMatchObject({ state: 'verifying', deadlineAt: T0 + 33_000 + verifyTimeoutMs });

    run.send({ type: 'fresh-frame' }, T0 + 34_000);
    expect(run.s.state).toBe('verifying'); // not closed: not complete

    r = run.deadline();
    expect(r.effects).toEqual([
      { type: 'transition', from: 'verifying', to: 'aborted', reason: 'door.open' },
      { type: 'command', device: 'camera', action: 'disarm' },
    ]);
    expect(run.s.alarms.map((a) => a.type)).toEqual(['lock-state-mismatch']);
  });

  it('aborts door.unknown when the door is not known closed at the deadline', () => {
    const run = new Run().toVerifying();
    run.send({ type: 'door-report', position: 'unknown' }, T0 + 33_000);
    run.send({ type: 'fresh-frame' }, T0 + 34_000);
    run.deadline();
    expect(run.s).toMatchObject({ state: 'aborted', outcome: { code: 'door.unknown' } });
  });

  it('raises unexpected-entry and locks again when the lock opens after confirming', () => {
    const run = new Run().toVerifying();
    const r = run.send(
      { type: 'lock-report', bolt: 'unlocked', changedAt: T0 + 33_000 },
      T0 + 33_100,
    );
    expect(alarmTypes(r)).toEqual(['unexpected-entry']);
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['verifying→relocking']);
    expect(run.s.relockRequestedAt).toBe(T0 + 33_100);
  });

  it('locks again when the bolt is not known locked at the deadline', () => {
    const run = new Run().toVerifying();
    run.send({ type: 'lock-report', bolt: 'unknown', changedAt: T0 + 33_000 }, T0 + 33_100);
    expect(run.s.state).toBe('verifying');
    const r = run.deadline();
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['verifying→relocking']);
  });

  it('aborts session.observation-lost when no fresh frame came, with live observation', () => {
    const run = new Run().toVerifying();
    const r = run.deadline();
    expect(transitions(r)).toEqual(['verifying→aborted']);
    expect(run.s.outcome?.code).toBe('session.observation-lost');
    expect(run.s.outcome?.message).toBe(
      'The door is locked, but the camera did not confirm it after the relock.',
    );
  });
});

describe('step: terminal sessions', () => {
  const finished = {
    completed: () => {
      const run = new Run().toVerifying();
      run.send({ type: 'fresh-frame' }, FRAME);
      return run;
    },
    refused: () => {
      const run = new Run();
      run.send({ type: 'start' }, T0);
      run.deadline();
      return run;
    },
    aborted: () => {
      const run = new Run().toUnlocking();
      run.send({ type: 'lock-report', bolt: 'jammed', changedAt: ARMED + 1 }, ARMED + 2);
      return run;
    },
  } as const;

  for (const [state, make] of Object.entries(finished)) {
    it(`a ${state} session refuses unlock and relock with session.finished`, () => {
      const run = make();
      expect(run.s.state).toBe(state);
      for (const type of ['unlock-requested', 'relock-requested'] as const) {
        const r = run.send({ type }, T0 + 1_000_000);
        expect(r.refusal?.code).toBe('session.finished');
        expect(r.effects).toEqual([]);
      }
      expect(run.s.state).toBe(state);
    });

    it(`a ${state} session ignores deadlines and every other event`, () => {
      const run = make();
      const before = run.s;
      const events: SessionEvent[] = [
        { type: 'deadline' },
        { type: 'start' },
        { type: 'camera-recording' },
        { type: 'fresh-frame' },
        { type: 'observation', status: 'lost', sinceMs: T0 },
        { type: 'heartbeat-rejected', reason: 'bad-mac' },
        { type: 'cancel', reason: 'grant.revoked' },
      ];
      for (const e of events) {
        const r = run.send(e, T0 + 10_000_000);
        expect(r.effects).toEqual([]);
        expect(r.refusal).toBeNull();
      }
      expect(run.s).toEqual({ ...before, updatedAt: T0 + 10_000_000 });
    });
  }

  it('a finished session still records the lock and door last word, with no effects', () => {
    const run = finished.completed();
    let r = run.send(
      { type: 'lock-report', bolt: 'unlocked', changedAt: T0 + 50_000 },
      T0 + 50_100,
    );
    expect(r.effects).toEqual([]);
    r = run.send({ type: 'door-report', position: 'open' }, T0 + 50_200);
    expect(r.effects).toEqual([]);
    expect(run.s).toMatchObject({
      state: 'completed',
      bolt: 'unlocked',
      boltChangedAt: T0 + 50_000,
      door: 'open',
      endedAt: FRAME,
    });
  });
});

describe('step: alarms and deadlines', () => {
  it('raises each alarm type once per session', () => {
    const run = new Run().toOpen();
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const first = run.send(
      { type: 'observation', status: 'lost', sinceMs: T0 + 9_000 },
      T0 + 10_000,
    );
    expect(alarmTypes(first)).toEqual(['observation-lost']);
    const again = run.send(
      { type: 'observation', status: 'lost', sinceMs: T0 + 12_000 },
      T0 + 13_000,
    );
    expect(alarmTypes(again)).toEqual([]);
    run.send({ type: 'lock-report', bolt: 'jammed', changedAt: T0 + 14_000 }, T0 + 14_000);
    const jam2 = run.send(
      { type: 'lock-report', bolt: 'jammed', changedAt: T0 + 15_000 },
      T0 + 15_000,
    );
    expect(alarmTypes(jam2)).toEqual([]);
    expect(run.s.alarms.map((a) => [a.type, a.sinceMs])).toEqual([
      ['observation-lost', T0 + 9_000],
      ['lock-jammed', T0 + 14_000],
    ]);
  });

  const reach = {
    arming: (r: Run) => r.send({ type: 'start' }, T0),
    unlocking: (r: Run) => r.toUnlocking(),
    open: (r: Run) => r.toOpen(),
    relocking: (r: Run) => r.toRelocking(),
    verifying: (r: Run) => r.toVerifying(),
  } as const;

  for (const [state, go] of Object.entries(reach)) {
    it(`a deadline event before deadlineAt changes nothing in ${state}`, () => {
      const run = new Run();
      go(run);
      expect(run.s.state).toBe(state);
      const before = run.s;
      const at = (before.deadlineAt ?? Number.NaN) - 1;
      const r = run.send({ type: 'deadline' }, at);
      expect(r.effects).toEqual([]);
      expect(r.refusal).toBeNull();
      expect(run.s).toEqual({ ...before, updatedAt: at });
    });
  }

  it('a deadline event in requested (no deadline yet) changes nothing', () => {
    const run = new Run();
    const r = run.send({ type: 'deadline' }, T0 + 1_000_000);
    expect(r.effects).toEqual([]);
    expect(run.s.state).toBe('requested');
  });
});

describe('"ask me first": the owner answers before anything opens', () => {
  const ASK_MS = 60_000;

  it('waits for the owner without arming the camera or touching the lock', () => {
    const run = new Run({ askOwnerTimeoutMs: ASK_MS });
    const r = run.send({ type: 'start' }, T0);
    expect(run.s.state).toBe('awaiting-owner');
    expect(run.s.deadlineAt).toBe(T0 + ASK_MS);
    expect(r.effects.filter((e) => e.type === 'command')).toEqual([]);
  });

  it('"let in" arms the camera, and the session goes on as usual, with the answer on record', () => {
    const run = new Run({ askOwnerTimeoutMs: ASK_MS });
    run.send({ type: 'start' }, T0);
    const r = run.send({ type: 'owner-decision', decision: 'let-in', by: 'owner-1' }, T0 + 5_000);
    expect(run.s.state).toBe('arming');
    expect(run.s.deadlineAt).toBe(T0 + 5_000 + armingTimeoutMs);
    expect(r.effects).toContainEqual({ type: 'command', device: 'camera', action: 'arm' });
    expect(run.s.approval).toEqual({
      timeoutMs: ASK_MS,
      decision: 'let-in',
      decidedBy: 'owner-1',
      decidedAt: T0 + 5_000,
    });
    run.send({ type: 'camera-recording' }, T0 + 6_000);
    expect(run.s.state).toBe('unlocking');
  });

  it('"leave at door" refuses the session: nothing armed, nothing unlocked', () => {
    const run = new Run({ askOwnerTimeoutMs: ASK_MS });
    run.send({ type: 'start' }, T0);
    const r = run.send(
      { type: 'owner-decision', decision: 'leave-at-door', by: 'owner-1' },
      T0 + 5_000,
    );
    expect(run.s.state).toBe('refused');
    expect(run.s.outcome?.code).toBe('delivery.owner-declined');
    expect(r.effects.filter((e) => e.type === 'command')).toEqual([]);
  });

  it('no answer by the deadline means "leave at door"', () => {
    const run = new Run({ askOwnerTimeoutMs: ASK_MS });
    run.send({ type: 'start' }, T0);
    run.send({ type: 'deadline' }, T0 + ASK_MS - 1);
    expect(run.s.state).toBe('awaiting-owner');
    const r = run.send({ type: 'deadline' }, T0 + ASK_MS);
    expect(run.s.state).toBe('refused');
    expect(run.s.outcome?.code).toBe('delivery.owner-no-answer');
    expect(r.effects.filter((e) => e.type === 'command')).toEqual([]);
  });

  it('a late answer, a second answer, or an answer to a session that did not ask is refused', () => {
    const late = new Run({ askOwnerTimeoutMs: ASK_MS });
    late.send({ type: 'start' }, T0);
    late.send({ type: 'deadline' }, T0 + ASK_MS);
    expect(
      late.send({ type: 'owner-decision', decision: 'let-in', by: 'owner-1' }, T0 + ASK_MS + 1)
        .refusal?.code,
    ).toBe('session.finished');
    expect(late.s.state).toBe('refused');

    const twice = new Run({ askOwnerTimeoutMs: ASK_MS });
    twice.send({ type: 'start' }, T0);
    twice.send({ type: 'owner-decision', decision: 'let-in', by: 'owner-1' }, T0 + 1_000);
    const again = twice.send(
      { type: 'owner-decision', decision: 'leave-at-door', by: 'owner-2' },
      T0 + 2_000,
    );
    expect(again.refusal?.code).toBe('session.not-awaiting-owner');
    expect(twice.s.state).toBe('arming');
    expect(twice.s.approval?.decidedBy).toBe('owner-1');

    const notAsked = new Run();
    notAsked.send({ type: 'start' }, T0);
    expect(
      notAsked.send({ type: 'owner-decision', decision: 'let-in', by: 'owner-1' }, T0 + 1).refusal
        ?.code,
    ).toBe('session.not-awaiting-owner');
    expect(notAsked.s.approval).toBeNull();
  });

  it('a courier pressing "open" again while the owner is asked is told to wait', () => {
    const run = new Run({ askOwnerTimeoutMs: ASK_MS });
    run.send({ type: 'start' }, T0);
    const r = run.send({ type: 'unlock-requested' }, T0 + 1_000);
    expect(r.refusal?.code).toBe('session.active');
    expect(run.s.state).toBe('awaiting-owner');
  });
});

describe('a session without a camera (a guest grant without recording)', () => {
  const GUEST_INPUT: Partial<NewSessionInput> = {
    deliveryId: null,
    principalId: 'guest-1',
    cameraDeviceId: null,
  };
  /** A guest's unrecorded session; the `Run` helpers that feed camera events are not used. */
  const unrecorded = (input: Partial<NewSessionInput> = {}) =>
    new Run({ ...GUEST_INPUT, ...input });
  const cameraCommands = (r: StepResult) => commands(r).filter((c) => c.device === 'camera');
  /** start → unlocking → open (the lock's own word), the door still closed. */
  const toOpen = (run: Run) => {
    run.send({ type: 'start' }, T0);
    run.send({ type: 'lock-report', bolt: 'unlocked', changedAt: UNLOCKED - 100 }, UNLOCKED);
    return run;
  };
  /** … the guest went in and out and asked to lock → relocking. */
  const toRelocking = (run: Run) => {
    toOpen(run);
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    run.send({ type: 'door-report', position: 'closed' }, DOOR_CLOSED);
    run.send({ type: 'relock-requested' }, RELOCK);
    return run;
  };

  it('is created with nothing to observe', () => {
    const s = createSession({ ...INPUT, ...GUEST_INPUT }, T0);
    expect(s).toMatchObject({ state: 'requested', cameraDeviceId: null, observation: 'none' });
    expect(isRecorded(s)).toBe(false);
    expect(isRecorded(createSession(INPUT, T0))).toBe(true);
  });

  it('cannot be made for a delivery: a courier’s session is always recorded', () => {
    expect(() => createSession({ ...INPUT, cameraDeviceId: null }, T0)).toThrow(
      /delivery session must have a camera/,
    );
  });

  it('opens without arming, relocks, and completes on the lock’s confirmation and the door closed', () => {
    const run = unrecorded();
    const all: StepResult[] = [];

    let r = run.send({ type: 'start' }, T0);
    all.push(r);
    expect(r.effects).toEqual([
      { type: 'command', device: 'lock', action: 'unlock', relockAfterMs: MAX_OPEN },
      { type: 'transition', from: 'requested', to: 'unlocking', reason: NOT_RECORDED_TEXT },
    ]);
    expect(run.s).toMatchObject({
      state: 'unlocking',
      deadlineAt: T0 + unlockTimeoutMs,
      armedAt: null,
      observation: 'none',
    });

    r = run.send({ type: 'lock-report', bolt: 'unlocked', changedAt: UNLOCKED - 100 }, UNLOCKED);
    all.push(r);
    expect(transitions(r)).toEqual(['unlocking→open']);
    expect(run.s).toMatchObject({ unlockedAt: UNLOCKED, deadlineAt: UNLOCKED + MAX_OPEN });

    all.push(run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED));
    all.push(run.send({ type: 'door-report', position: 'closed' }, DOOR_CLOSED));
    r = run.send({ type: 'relock-requested' }, RELOCK);
    all.push(r);
    expect(r.effects).toEqual([
      { type: 'command', device: 'lock', action: 'lock' },
      { type: 'transition', from: 'open', to: 'relocking', reason: 'guest asked to lock' },
    ]);

    // The lock's own report is the last word: no picture is waited for.
    r = run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    all.push(r);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'relocking', to: 'verifying', reason: 'lock confirmed locked' },
      { type: 'transition', from: 'verifying', to: 'completed' },
    ]);
    expect(run.s).toMatchObject({
      state: 'completed',
      endedAt: LOCK_REPORTED,
      lockConfirmedAt: LOCK_REPORTED,
      lockedAtByLock: LOCKED_BY_LOCK,
      freshFrameAfterLockAt: null,
      outcome: null,
      alarms: [],
    });
    expect(run.s.history.map((h) => h.state)).toEqual([
      'requested',
      'unlocking',
      'open',
      'relocking',
      'verifying',
      'completed',
    ]);
    expect(describeOutcome(run.s)).toBe(
      "Completed: door locked and closed. Not recorded: this guest's grant does not ask for the camera.",
    );
    // Not one command to a camera, from start to end.
    expect(all.flatMap(cameraCommands)).toEqual([]);
  });

  it('does not complete while the door is not known closed; completes when the sensor says closed', () => {
    const run = unrecorded();
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'door-report', position: 'unknown' }, RELOCK + 100);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    expect(run.s.state).toBe('verifying');
    const r = run.send({ type: 'door-report', position: 'closed' }, LOCK_REPORTED + 200);
    expect(r.effects).toEqual([{ type: 'transition', from: 'verifying', to: 'completed' }]);
  });

  it('aborts door.unknown when the door is still not known closed at the verify deadline', () => {
    const run = unrecorded();
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'door-report', position: 'unknown' }, RELOCK + 100);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    const r = run.deadline();
    expect(r.effects).toEqual([
      {
        type: 'alarm',
        alarm: {
          type: 'door-left-open',
          atMs: LOCK_REPORTED + verifyTimeoutMs,
          sinceMs: LOCK_REPORTED + verifyTimeoutMs,
          message: 'Door left open',
        },
      },
      { type: 'transition', from: 'verifying', to: 'aborted', reason: 'door.unknown' },
    ]);
  });

  it('raises lock-state-mismatch when the door opens with the bolt locked, and aborts door.open', () => {
    const run = unrecorded();
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    // The lock confirms while the door sensor says open: not complete, and said at once.
    run.send({ type: 'door-report', position: 'open' }, RELOCK + 100);
    const locked = run.send(
      { type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK },
      LOCK_REPORTED,
    );
    expect(run.s.state).toBe('verifying');
    expect(alarmTypes(locked)).toEqual(['lock-state-mismatch']);
    const mismatch = run.deadline();
    expect(alarmTypes(mismatch)).toEqual([]);
    expect(run.s).toMatchObject({ state: 'aborted', outcome: { code: 'door.open' } });
    expect(cameraCommands(mismatch)).toEqual([]);
  });

  it('completes on the lock alone where no door sensor is fitted', () => {
    const run = unrecorded({ doorSensorDeviceId: null, door: 'unknown' });
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    expect(run.s.state).toBe('completed');
  });

  it('takes the lock locking itself (its own deadline) as the relock, and completes', () => {
    const run = unrecorded();
    toOpen(run);
    const r = run.send(
      { type: 'lock-report', bolt: 'locked', changedAt: T0 + 60_000 },
      T0 + 60_200,
    );
    expect(transitions(r)).toEqual(['open→verifying', 'verifying→completed']);
    expect(commands(r)).toEqual([]);
  });

  it('ignores everything a camera could say, in every state: no alarm, no move, no block', () => {
    const cameraEvents: SessionEvent[] = [
      { type: 'camera-recording' },
      { type: 'fresh-frame' },
      { type: 'observation', status: 'lost', sinceMs: T0 },
      { type: 'observation', status: 'frozen', sinceMs: T0 },
      { type: 'observation', status: 'live', sinceMs: T0 },
      { type: 'heartbeat-rejected', reason: 'bad-mac' },
    ];
    const reach: Record<string, (run: Run) => void> = {
      requested: () => undefined,
      unlocking: (run) => run.send({ type: 'start' }, T0),
      open: (run) => toOpen(run),
      relocking: (run) => toRelocking(run),
      verifying: (run) => {
        toOpen(run);
        run.send({ type: 'relock-requested' }, RELOCK);
        run.send({ type: 'door-report', position: 'unknown' }, RELOCK + 100);
        run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
      },
    };
    for (const [state, go] of Object.entries(reach)) {
      const run = unrecorded();
      go(run);
      expect(run.s.state).toBe(state);
      const before = run.s;
      for (const e of cameraEvents) {
        const at = LOCK_REPORTED + 500;
        const r = run.send(e, at);
        expect(r.effects, `${e.type} in ${state}`).toEqual([]);
        expect(r.refusal).toBeNull();
        expect(run.s).toEqual({ ...before, updatedAt: at });
      }
      expect(run.s.unlockBlocked).toBeNull();
      expect(run.s.observation).toBe('none');
    }
  });

  it('locks again when the lock does not confirm the unlock in time; alarms when the relock is not confirmed either', () => {
    const run = unrecorded();
    run.send({ type: 'start' }, T0);
    let r = run.deadline();
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['unlocking→relocking']);
    r = run.deadline();
    expect(alarmTypes(r)).toEqual(['lock-unconfirmed']);
    // It keeps asking, then gives up with lock.unconfirmed; no camera to disarm.
    for (let i = 0; i < 100 && run.s.state === 'relocking'; i++) run.deadline();
    expect(run.s).toMatchObject({ state: 'aborted', outcome: { code: 'lock.unconfirmed' } });
    expect(run.last?.effects.at(-1)).toEqual({
      type: 'transition',
      from: 'relocking',
      to: 'aborted',
      reason: 'lock.unconfirmed',
    });
  });

  it('aborts lock.jammed when the lock jams while opening, with the alarm', () => {
    const run = unrecorded();
    run.send({ type: 'start' }, T0);
    const r = run.send({ type: 'lock-report', bolt: 'jammed', changedAt: T0 + 200 }, T0 + 300);
    expect(alarmTypes(r)).toEqual(['lock-jammed']);
    expect(run.s).toMatchObject({ state: 'aborted', outcome: { code: 'lock.jammed' } });
    expect(commands(r)).toEqual([]);
  });

  it('raises session-overrun and door-left-open at the open deadline, and locks once the door closes', () => {
    const run = unrecorded();
    toOpen(run);
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const r = run.deadline();
    expect(alarmTypes(r)).toEqual(['session-overrun', 'door-left-open']);
    // Never a bolt into the open door: the command waits for the door.
    expect(commands(r)).toEqual([]);
    expect(run.s.state).toBe('relocking');
    const closed = run.send({ type: 'door-report', position: 'closed' }, run.s.updatedAt + 1_000);
    expect(commands(closed)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    // Closed and locked by the lock's own word: complete, with its alarms and no recording.
    run.send(
      { type: 'lock-report', bolt: 'locked', changedAt: run.s.updatedAt + 1_100 },
      run.s.updatedAt + 1_200,
    );
    expect(run.s.state).toBe('completed');
    expect(describeOutcome(run.s)).toBe(
      "Completed with 2 alarm(s). Not recorded: this guest's grant does not ask for the camera.",
    );
  });

  it('refuses to relock while the door is open, and refuses a second unlock', () => {
    const run = unrecorded();
    run.send({ type: 'start' }, T0);
    expect(run.send({ type: 'unlock-requested' }, T0 + 100).refusal?.code).toBe('session.active');
    run.send({ type: 'lock-report', bolt: 'unlocked', changedAt: UNLOCKED - 100 }, UNLOCKED);
    run.send({ type: 'door-report', position: 'open' }, DOOR_OPENED);
    const r = run.send({ type: 'relock-requested' }, DOOR_OPENED + 1_000);
    expect(r.refusal?.code).toBe('door.open');
    expect(r.effects).toEqual([]);
    expect(run.send({ type: 'unlock-requested' }, DOOR_OPENED + 2_000).refusal?.code).toBe(
      'session.wrong-state',
    );
  });

  it('raises unexpected-entry and locks again when the lock opens after confirming', () => {
    const run = unrecorded();
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'door-report', position: 'unknown' }, RELOCK + 100);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    const r = run.send(
      { type: 'lock-report', bolt: 'unlocked', changedAt: T0 + 33_000 },
      T0 + 33_100,
    );
    expect(alarmTypes(r)).toEqual(['unexpected-entry']);
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(transitions(r)).toEqual(['verifying→relocking']);
  });

  it('locks again when the bolt is not known locked at the verify deadline', () => {
    const run = unrecorded();
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'door-report', position: 'unknown' }, RELOCK + 100);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    run.send({ type: 'lock-report', bolt: 'unknown', changedAt: T0 + 33_000 }, T0 + 33_100);
    const r = run.deadline();
    expect(transitions(r)).toEqual(['verifying→relocking']);
  });

  it('is refused with the reason when cancelled before opening (nothing sent), locked when cancelled after', () => {
    const before = unrecorded();
    let r = before.send({ type: 'cancel', reason: 'grant.revoked' }, T0);
    expect(r.effects).toEqual([
      { type: 'transition', from: 'requested', to: 'refused', reason: 'grant.revoked' },
    ]);
    const after = unrecorded();
    toOpen(after);
    r = after.send({ type: 'cancel', reason: 'grant.revoked' }, T0 + 5_000);
    expect(commands(r)).toEqual([{ type: 'command', device: 'lock', action: 'lock' }]);
    expect(after.s.state).toBe('relocking');
  });

  it('opens at once when the owner, asked first, lets the guest in', () => {
    const run = unrecorded({ askOwnerTimeoutMs: 60_000 });
    run.send({ type: 'start' }, T0);
    expect(run.s.state).toBe('awaiting-owner');
    const r = run.send({ type: 'owner-decision', decision: 'let-in', by: 'owner-1' }, T0 + 5_000);
    expect(r.effects).toEqual([
      { type: 'command', device: 'lock', action: 'unlock', relockAfterMs: MAX_OPEN },
      {
        type: 'transition',
        from: 'awaiting-owner',
        to: 'unlocking',
        reason: `owner let in; ${NOT_RECORDED_TEXT}`,
      },
    ]);
  });

  it('a finished one refuses unlock and relock like any other', () => {
    const run = unrecorded({ doorSensorDeviceId: null });
    toOpen(run);
    run.send({ type: 'relock-requested' }, RELOCK);
    run.send({ type: 'lock-report', bolt: 'locked', changedAt: LOCKED_BY_LOCK }, LOCK_REPORTED);
    expect(run.s.state).toBe('completed');
    for (const type of ['unlock-requested', 'relock-requested'] as const)
      expect(run.send({ type }, T0 + 100_000).refusal?.code).toBe('session.finished');
  });
});

describe('a session with a camera: nothing loosened by sessions without one', () => {
  it('never unlocks while the camera has not proved it records, and is refused camera.offline when it goes silent', () => {
    const run = new Run({ ...INPUT, deliveryId: null, principalId: 'guest-1' });
    let r = run.send({ type: 'start' }, T0);
    expect(commands(r)).toEqual([{ type: 'command', device: 'camera', action: 'arm' }]);
    // The lock reporting, a relock or unlock request: none of it opens the door.
    r = run.send({ type: 'unlock-requested' }, T0 + 100);
    expect(r.refusal?.code).toBe('session.active');
    r = run.send({ type: 'observation', status: 'lost', sinceMs: T0 }, T0 + 1_300);
    expect(run.s).toMatchObject({ state: 'refused', outcome: { code: 'camera.offline' } });
    expect(commands(r)).toEqual([{ type: 'command', device: 'camera', action: 'disarm' }]);
    expect(run.s.unlockedAt).toBeNull();
  });

  it('is refused camera.not-recording when the camera never confirms (an offline camera)', () => {
    const run = new Run();
    run.send({ type: 'start' }, T0);
    const r = run.deadline();
    expect(run.s).toMatchObject({ state: 'refused', outcome: { code: 'camera.not-recording' } });
    expect(commands(r).filter((c) => c.device === 'lock')).toEqual([]);
  });

  it('still waits for a fresh frame after the relock before it completes', () => {
    const run = new Run().toVerifying();
    expect(run.s.state).toBe('verifying');
    run.send({ type: 'door-report', position: 'closed' }, LOCK_REPORTED + 100);
    expect(run.s.state).toBe('verifying');
    run.deadline();
    expect(run.s).toMatchObject({
      state: 'aborted',
      outcome: { code: 'session.observation-lost' },
    });
  });
});

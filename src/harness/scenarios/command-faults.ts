/**
 * command-faults — lost, replayed (duplicated, out of order) and delayed commands on the lock's
 * link, in three deliveries, one after the other.
 *
 * (a) Lost. Given a courier at the door, when every MQTT PUBLISH to the lock is lost (a proxy
 * dropping 100 % of downstream PUBLISH packets) while the courier asks to open, then the lock
 * hears no unlock and its bolt never moves, the courier's "open" fails with a clear 4xx, nothing
 * — session, delivery, lock reports — ever says unlocked, and once the link recovers the session
 * ends refused or aborted with its reason, never completed, and the delivery is not marked
 * delivered.
 *
 * (b) Replayed. Given an attacker on the broker with the server's stolen MQTT credentials, who
 * captured the signed `unlock` of a delivery that has since completed (the door locked), when
 * the attacker sends it again unchanged (a duplicate, arriving after the `lock`), and once more
 * with a new nonce, then the lock answers `command.replayed` and `command.bad-mac`, acts on
 * neither, and its bolt stays thrown.
 *
 * (c) Delayed. Given 150 ± 100 ms of latency each way on the lock's link, when a courier makes a
 * whole delivery, then each command acts, in order (the lock reports unlocked, then locked),
 * and the session completes with the lock's confirmation, slowed by the latency.
 *
 * The audit log verifies at the end.
 */
import type { Scenario, ScenarioContext } from '../scenario.ts';
import { SCENARIO_TIMING, sleep } from '../scenario-world.ts';
import { deviceTopic } from '../../protocol/topics.ts';
import { errorCode } from './common-steps.ts';
import {
  BrokerSpy,
  commandsSent,
  DoorWatch,
  everUnlocked,
  NET_WORLD,
  proxiesOf,
  reportedBolts,
  sessionAudit,
} from './steps-net.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';

/** The latency of act (c), each way, ms. */
const LATENCY_MS = 150;
/** …give or take this much (uniform), ms. */
const JITTER_MS = 100;
/** The simulated lock's motor delay (its default), ms. */
const MOTOR_DELAY_MS = 300;

/** (a): the courier asks to open while every command to the lock is lost. */
async function lostCommands({ world, expect }: ScenarioContext): Promise<Record<string, unknown>> {
  const net = proxiesOf(world);
  const { sys } = world;
  const lockLink = world.home.links.lock;
  const deliveryId = await world.newDelivery();
  const movedAt = world.home.lock.changedAt();
  const acceptedBefore = lockLink.stats().commands.accepted;
  const watch = new DoorWatch(world);

  net.lock.set({ type: 'loss', probability: 1 }, 'downstream');
  const access = await world.requestAccess(deliveryId);
  const heardDuringLoss = lockLink.stats().commands.accepted - acceptedBefore;
  const dropped = net.lock.stats().downstream.packetsDropped;
  // The link recovers once the courier has the answer.
  net.lock.remove('loss', 'downstream');

  const rows = await sys.store.sessions.findForDelivery(deliveryId);
  const sessionId = rows[0]?.id ?? null;
  expect.that(sessionId !== null, '(a) a session was started for the courier');
  if (sessionId === null) {
    watch.stop();
    return { access: { status: access.status } };
  }
  const answered = access.body.session as
    { state?: string; unlockedAt?: number | null } | undefined;
  expect.that(
    access.status >= 400 && access.status < 500 && errorCode(access) !== null,
    `(a) the courier's "open" fails plainly (HTTP ${access.status} ${errorCode(access) ?? `session ${answered?.state}`})`,
  );
  expect.that(
    answered === undefined || (answered.state !== 'open' && answered.unlockedAt == null),
    `(a) the answer does not say the door opened (${answered?.state})`,
  );
  expect.that(dropped >= 1, `(a) the proxy lost the unlock (${dropped} PUBLISH dropped)`);
  expect.that(
    heardDuringLoss === 0,
    `(a) the lock heard no command during the loss (${heardDuringLoss})`,
  );

  const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 15_000);
  const samples = watch.stop();
  const entries = await sessionAudit(world, sessionId);
  const bolts = reportedBolts(entries, world.creds.devices.lock.id);
  expect.that(
    !everUnlocked(samples) && world.home.lock.changedAt() === movedAt,
    `(a) the bolt never moved (${[...new Set(samples.map((s) => s.bolt))].join(', ')})`,
  );
  expect.that(
    done.unlockedAt === null && !bolts.includes('unlocked'),
    `(a) nothing says unlocked (unlockedAt ${done.unlockedAt}; the lock reported ${bolts.join(', ') || 'nothing'})`,
  );
  expect.that(
    (done.state === 'refused' || done.state === 'aborted') && done.outcome !== null,
    `(a) the session ends refused or aborted with its reason, not completed (${done.state}, ${done.outcome?.code ?? 'no reason'})`,
  );
  const delivery = await sys.store.deliveries.get(deliveryId);
  expect.that(
    delivery?.status === 'scheduled',
    `(a) the delivery is still to do, not delivered (${delivery?.status ?? 'missing'})`,
  );
  const unlock = commandsSent(entries, 'unlock')[0];
  const gaveUp = done.history.find((h) => h.state === 'relocking');
  return {
    access: { status: access.status, code: errorCode(access), state: answered?.state ?? null },
    droppedPublish: dropped,
    lockHeard: heardDuringLoss,
    unlockGivenUpMs: unlock && gaveUp ? gaveUp.atMs - unlock.at : null,
    outcome: done.state,
    reason: done.outcome?.code ?? null,
    deliveryStatus: delivery?.status ?? null,
    alarms: done.alarms.map((a) => a.type),
  };
}

/** (b): a captured unlock sent again, unchanged and with a new nonce, after the relock. */
async function replayedUnlock({
  world,
  expect,
}: ScenarioContext): Promise<{ extra: Record<string, unknown>; session: SessionView | null }> {
  const { homeId } = world.creds;
  const lockId = world.creds.devices.lock.id;
  const topics = {
    command: deviceTopic(homeId, lockId, 'command'),
    reply: deviceTopic(homeId, lockId, 'reply'),
    state: deviceTopic(homeId, lockId, 'state'),
  };
  const spy = await BrokerSpy.connect(world, Object.values(topics));
  try {
    const { access, sessionId } = await world.deliverInside();
    expect.that(
      access.status === 200,
      `(b) the door opens for the courier (HTTP ${access.status})`,
    );
    if (sessionId === null) return { extra: {}, session: null };
    await world.requestRelock(sessionId);
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(done.state === 'completed', `(b) the delivery completes (${done.state})`);
    const captured = spy
      .on(topics.command)
      .find((m) => m.payload.action === 'unlock' && m.payload.sessionId === sessionId);
    expect.that(captured !== undefined, '(b) the attacker captured the signed unlock');
    if (captured === undefined) return { extra: {}, session: done };

    const notices: string[] = [];
    const offNotices = world.sys.events.subscribe((e) => {
      if (e.type === 'notice' && e.homeId === homeId) notices.push(e.message);
    });
    const movedAt = world.home.lock.changedAt();
    const statesBefore = spy.on(topics.state).length;
    const before = world.home.links.lock.stats().commands;
    /** Publishes a command as the attacker; resolves with the error code the lock answers. */
    const send = async (payload: Buffer | string): Promise<string | null> => {
      const mark = spy.mark();
      await spy.publish(topics.command, payload);
      const m = await spy.waitFor(
        topics.reply,
        (r) => r.payload.id === captured.payload.id && r.payload.status === 'error',
        3_000,
        mark,
      );
      return (m?.payload.error as { code?: string } | undefined)?.code ?? null;
    };
    const replayedAt = world.sys.clock.now();
    const lastBeat = world.home.camera.recordedHeartbeats(sessionId).at(-1)?.capturedAt ?? null;
    const replayed = await send(captured.raw);
    const refusedMs = world.sys.clock.now() - replayedAt;
    const reNonced = await send(
      JSON.stringify({ ...captured.payload, nonce: 'attacker-chosen-nonce-0001' }),
    );
    // Long enough for the motor to have moved, had the lock obeyed.
    await sleep(MOTOR_DELAY_MS * 3);

    const after = world.home.links.lock.stats().commands;
    expect.that(
      replayed === 'command.replayed',
      `(b) the lock refuses the replayed unlock (${replayed ?? 'no answer'})`,
    );
    expect.that(
      reNonced === 'command.bad-mac',
      `(b) the lock refuses it with a new nonce: the MAC breaks (${reNonced ?? 'no answer'})`,
    );
    expect.that(
      after.accepted === before.accepted,
      `(b) the lock acted on neither (${after.accepted - before.accepted} accepted)`,
    );
    const unlockedAgain = spy
      .on(topics.state)
      .slice(statesBefore)
      .filter((m) => m.payload.bolt !== 'locked');
    expect.that(
      world.home.lock.bolt() === 'locked' &&
        world.home.lock.changedAt() === movedAt &&
        unlockedAgain.length === 0,
      `(b) nothing moved: the bolt stays thrown (${world.home.lock.bolt()}, ${unlockedAgain.length} other reports)`,
    );
    // The lock's refusals of commands the server never sent are on record and told.
    const rejectedOnRecord = async (): Promise<string[]> => {
      const last = await world.sys.store.audit.last();
      if (last === null) return [];
      return (await world.sys.store.audit.getRange(1, last.seq))
        .filter((e) => e.kind === 'device.command-rejected' && e.subject === `device:${lockId}`)
        .map((e) => String((e.data as { code?: unknown }).code));
    };
    await world
      .waitFor(async () => (await rejectedOnRecord()).length >= 2, 3_000, 'the refusals on record')
      .catch(() => undefined);
    const onRecord = await rejectedOnRecord();
    offNotices();
    expect.that(
      onRecord.includes('command.replayed') && onRecord.includes('command.bad-mac'),
      `(b) both refusals are in the audit log (${onRecord.join(', ') || 'none'})`,
    );
    expect.that(
      notices.filter((n) => n.includes('refused a command Threshold did not send')).length === 1,
      `(b) the household is told once (${notices.length} notices)`,
    );
    return {
      session: done,
      extra: {
        replayReply: replayed,
        newNonceReply: reNonced,
        refusedMs,
        replayAfterLastBeatMs: lastBeat === null ? null : replayedAt - lastBeat,
        lockAccepted: after.accepted - before.accepted,
      },
    };
  } finally {
    await spy.close();
  }
}

/** (c): a whole delivery over a slow, jittery lock link. */
async function delayedCommands({
  world,
  expect,
}: ScenarioContext): Promise<{ extra: Record<string, unknown>; session: SessionView | null }> {
  const net = proxiesOf(world);
  const lockId = world.creds.devices.lock.id;
  net.lock.set({ type: 'latency', latencyMs: LATENCY_MS, jitterMs: JITTER_MS });
  try {
    const { access, sessionId } = await world.deliverInside();
    expect.that(
      access.status === 200,
      `(c) the door opens over the slow link (HTTP ${access.status})`,
    );
    if (sessionId === null) return { extra: {}, session: null };
    const relock = await world.requestRelock(sessionId);
    expect.that(
      relock.status === 200 && relock.body.confirmed === true,
      `(c) the courier's "lock" is confirmed (HTTP ${relock.status}, confirmed ${String(relock.body.confirmed)})`,
    );
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(
      done.state === 'completed' && done.lockConfirmedAt !== null,
      `(c) the session completes with the lock's confirmation (${done.state})`,
    );
    const entries = await sessionAudit(world, sessionId);
    const bolts = reportedBolts(entries, lockId);
    const fromUnlock = bolts.slice(bolts.indexOf('unlocked'));
    expect.that(
      bolts.includes('unlocked') && fromUnlock.join(',') === 'unlocked,locked',
      `(c) the commands acted in order: the lock reported ${bolts.join(' → ')}`,
    );
    const outcomes = entries
      .filter((e) => e.kind === 'command.outcome')
      .map((e) => `${String(e.data.action)}:${String(e.data.status)}`);
    expect.that(
      outcomes.includes('unlock:ok') && outcomes.includes('lock:ok'),
      `(c) the lock answered both commands (${outcomes.join(', ')})`,
    );
    const relockMs =
      done.lockConfirmedAt !== null && done.relockRequestedAt !== null
        ? done.lockConfirmedAt - done.relockRequestedAt
        : null;
    const floor = MOTOR_DELAY_MS + 2 * (LATENCY_MS - JITTER_MS);
    expect.that(
      relockMs !== null && relockMs >= floor && relockMs < SCENARIO_TIMING.session.relockTimeoutMs,
      `(c) the relock took the latency and stayed within its deadline (${relockMs} ms; at least ${floor})`,
    );
    const unlock = commandsSent(entries, 'unlock')[0];
    return {
      session: done,
      extra: {
        lockReported: bolts,
        unlockMs: unlock && done.unlockedAt !== null ? done.unlockedAt - unlock.at : null,
        relockMs,
        delayedBytes: net.lock.stats().downstream.bytesOut,
      },
    };
  } finally {
    net.lock.remove('latency');
  }
}

export const commandFaults: Scenario = {
  name: 'command-faults',
  expected:
    'lost unlock → no unlock, clean 4xx, never "unlocked" or "delivered"; replayed unlock → command.replayed, nothing moves; latency+jitter → commands act in order, completed',
  world: NET_WORLD,
  async story(ctx) {
    const lost = await lostCommands(ctx);
    const replay = await replayedUnlock(ctx);
    const delayed = await delayedCommands(ctx);
    return {
      session: delayed.session,
      extra: {
        // From the lost unlock to the server giving up on it (the unlocking deadline).
        detectionMs: lost.unlockGivenUpMs,
        lost,
        replayed: replay.extra,
        delayed: delayed.extra,
      },
    };
  },
};

/**
 * lock-jam — the bolt jams as the courier locks up (a warped door, a bolt that catches the
 * strike): the motor runs, the bolt stops half-way, and the door is not locked.
 *
 * Given a delivery in progress with the parcel dropped and the door closed,
 * when the courier asks to lock and the bolt jams, and stays jammed at every try,
 * then the lock's own report says jammed and the owner gets `lock-jammed` (in the home's alarms,
 * and their remote "lock" is answered `409 lock.jammed`); the courier is told it is not
 * confirmed; the session never says locked while the bolt is jammed and keeps asking the lock,
 * with `lock-unconfirmed` after its deadline; once the bolt is freed, the next try locks it and
 * the session completes on the lock's own report, with both alarms on record; the audit log
 * verifies.
 */
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { call, errorCode, signInOwner } from './common-steps.ts';
import { courierInsideAndOut } from './steps-integrity.ts';

/** How long the bolt stays jammed before someone frees it, ms (past the relock alarm). */
const JAMMED_FOR_MS = 10_000;

export const lockJam: Scenario = {
  name: 'lock-jam',
  expected:
    'bolt jams at relock: lock-jammed to the owner, courier told "not confirmed", the session never says locked while jammed; freed, the lock’s own report completes it',
  async story({ world, expect }) {
    const { sys, creds } = world;
    const lock = world.home.lock;
    const owner = await signInOwner(world);
    const { sessionId } = await courierInsideAndOut(world, expect);
    if (sessionId === null) return { session: null };

    // A stuck bolt jams at every movement until it is freed.
    lock.jam();
    const keepJammed = setInterval(() => lock.jam(), 20);
    const states: string[] = [];
    let saidLocked = false;
    let relock: Awaited<ReturnType<typeof world.requestRelock>> | null = null;
    let jammed: Awaited<ReturnType<typeof world.waitForAlarm>> | null = null;
    let unconfirmed: Awaited<ReturnType<typeof world.waitForAlarm>> | null = null;
    let remote: { status: number; code: string | null } = { status: 0, code: null };
    let alarmsSeen: string[] = [];
    let freedAt = 0;
    try {
      const relockAnswer = world.requestRelock(sessionId);
      // Watch the session the whole time the bolt is stuck: it must never say locked.
      const watch = (async () => {
        const end = Date.now() + JAMMED_FOR_MS;
        while (Date.now() < end) {
          const v = await world.session(sessionId);
          if (!states.includes(v.state)) states.push(v.state);
          if (v.lockConfirmedAt !== null || v.state === 'completed') saidLocked = true;
          await sleep(50);
        }
      })();
      jammed = await world.waitForAlarm(sessionId, 'lock-jammed', 5_000).catch(() => null);
      expect.that(jammed !== null, 'the lock-jammed alarm is raised');
      expect.that(lock.bolt() === 'jammed', `the lock itself says jammed (${lock.bolt()})`);
      // The owner looks: the alarm is there, and their own "lock" from afar is told why not.
      const alarms = await call(world, 'GET', `/api/homes/${creds.homeId}/alarms`, owner);
      alarmsSeen = ((alarms.body.alarms as { type: string; sessionId: string }[] | undefined) ?? [])
        .filter((a) => a.sessionId === sessionId)
        .map((a) => a.type);
      expect.that(
        alarmsSeen.includes('lock-jammed'),
        `the owner sees lock-jammed among the home’s alarms (${alarmsSeen.join(',') || 'none'})`,
      );
      const cmd = await call(
        world,
        'POST',
        `/api/homes/${creds.homeId}/doors/${creds.doorId}/command`,
        owner,
        { action: 'lock' },
      );
      remote = { status: cmd.status, code: errorCode(cmd) };
      expect.that(
        cmd.status === 409 && remote.code === 'lock.jammed',
        `the owner’s remote "lock" is answered lock.jammed (HTTP ${cmd.status} ${remote.code})`,
      );
      relock = await relockAnswer;
      expect.that(
        relock.status === 200 && relock.body.confirmed === false,
        `the courier is told it is not confirmed (HTTP ${relock.status}: ${JSON.stringify(relock.body.message)})`,
      );
      unconfirmed = await world
        .waitForAlarm(sessionId, 'lock-unconfirmed', 8_000)
        .catch(() => null);
      expect.that(unconfirmed !== null, 'lock-unconfirmed follows the relocking deadline');
      await watch;
    } finally {
      clearInterval(keepJammed);
    }
    expect.that(
      !saidLocked,
      `while jammed the session never says locked (states seen: ${states.join(' → ')})`,
    );
    const during = await world.session(sessionId);
    expect.that(
      during.state === 'relocking' && during.bolt === 'jammed',
      `it keeps relocking with the bolt reported jammed (${during.state}, ${during.bolt})`,
    );
    const lockCommands = (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).filter(
      (e) => e.kind === 'command.sent' && e.data.action === 'lock',
    ).length;
    expect.that(lockCommands >= 2, `the lock was asked again (${lockCommands} "lock" commands)`);

    // ---- Someone frees the bolt; the next try locks it ----
    lock.clearJam();
    freedAt = Date.now();
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 15_000);
    expect.that(
      done.state === 'completed',
      `the session completes once locked (was ${done.state})`,
    );
    expect.that(
      done.lockConfirmedAt !== null && done.lockConfirmedAt >= freedAt,
      'the lock’s confirmation came after the bolt was freed',
    );
    expect.that(lock.bolt() === 'locked', `the door is locked (${lock.bolt()})`);
    expect.that(
      ['lock-jammed', 'lock-unconfirmed'].every((t) => done.alarms.some((a) => a.type === t)),
      `both alarms stay on the session (${done.alarms.map((a) => a.type).join(',')})`,
    );
    const requestedAt = done.relockRequestedAt ?? jammed?.atMs ?? 0;
    return {
      session: done,
      extra: {
        detectionMs: jammed === null ? null : jammed.atMs - requestedAt,
        unconfirmedAfterMs: unconfirmed === null ? null : unconfirmed.atMs - requestedAt,
        courierMessage: relock?.body.message ?? null,
        ownerRemoteLock: remote,
        ownerAlarms: alarmsSeen,
        lockCommands,
        lockedAfterFreedMs: done.lockConfirmedAt === null ? null : done.lockConfirmedAt - freedAt,
      },
    };
  },
};

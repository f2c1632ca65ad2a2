/**
 * delivery — a normal in-home delivery.
 *
 * Given the demo home (locked, door closed, camera idle) and a courier at the doorstep with a
 * delivery due now,
 * when the courier asks to open, walks in, leaves the parcel, closes the door and asks to lock,
 * then the camera records first, the lock opens, the lock's own report confirms it locked, the
 * camera shows the closed door after the relock, and the session completes with full coverage,
 * no alarm and a verifying audit log.
 */
import type { Scenario } from '../scenario.ts';

export const delivery: Scenario = {
  name: 'delivery',
  expected: 'completed, coverage 1, no alerts, audit verified',
  async story({ world, expect }) {
    const deliveryId = await world.newDelivery();

    const access = await world.requestAccess(deliveryId);
    expect.that(
      access.status === 200,
      `the door opens for the courier (HTTP ${access.status}: ${JSON.stringify(access.body)})`,
    );
    const sessionId = (access.body.session as { id: string } | undefined)?.id;
    if (!sessionId) return { session: null };
    const opened = await world.session(sessionId);
    expect.that(
      opened.state === 'open',
      `the session is open after the lock confirmed (was ${opened.state})`,
    );
    expect.that(
      opened.armedAt !== null && opened.unlockedAt !== null && opened.armedAt <= opened.unlockedAt,
      'the camera was recording before the lock opened',
    );

    await world.dropParcel();
    const relock = await world.requestRelock(sessionId);
    expect.that(
      relock.status === 200 && relock.body.confirmed === true,
      `the lock confirms it locked (HTTP ${relock.status}, ${JSON.stringify(relock.body.message)})`,
    );

    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(
      done.state === 'completed',
      `the session completes (was ${done.state}: ${done.outcome?.message ?? ''})`,
    );
    expect.that(done.coverage.ratio === 1, `coverage is 1 (was ${done.coverage.ratio})`);
    expect.that(
      done.alarms.length === 0,
      `no alarm (got ${done.alarms.map((a) => a.type).join(', ')})`,
    );
    const frames = await world.sys.store.clips.list(sessionId);
    expect.that(frames.length >= 3, `the clip holds the session's frames (${frames.length})`);
    const delivery = await world.sys.store.deliveries.get(deliveryId);
    expect.that(
      delivery?.status === 'delivered',
      `the delivery is marked delivered (${delivery?.status})`,
    );

    // The same delivery cannot open the door twice.
    const again = await world.requestAccess(deliveryId);
    const code = (again.body.error as { code?: string } | undefined)?.code;
    expect.that(
      again.status === 403 && code === 'grant.used',
      `a second "open" for a finished delivery is refused (HTTP ${again.status} ${code})`,
    );
    return { session: done, extra: { clipFrames: frames.length } };
  },
};

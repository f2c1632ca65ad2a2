/**
 * broker-restart — the MQTT link between the home and the broker goes down mid-visit and comes
 * back, as when the broker restarts. The running system offers no way to restart its embedded
 * broker, so the restart is played on the network: every device's connection is reset (TCP RST
 * both ways, so the broker drops them and publishes their wills) and new connections are reset
 * too for 2 s; then connections are accepted again. The server's own broker connection stays up.
 *
 * Given a delivery whose door opened, the courier inside with the door open, and the lock
 * draining numbered events with broker acknowledgement (as a home hub drains its log),
 * when every device link is reset and refused for 2 s, then accepted again,
 * then the server sees each device go offline and come back, the devices reconnect on their
 * own, the camera's silence raises `observation-lost` and blocks any further unlock (a second
 * "open" is refused), the gap closes when the camera is back and stays on record; when the
 * courier closes the door the lock is commanded and confirms; the session ends with the door
 * locked and closed — completed with the alarm on record, or ended with its reason — every
 * event the broker acknowledged is on the server's record, and the audit log verifies.
 */
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { errorCode } from './common-steps.ts';
import {
  AckedWitness,
  NET_WORLD,
  proxiesOf,
  sessionAudit,
  type WitnessEvent,
} from './steps-net.ts';

/** How long the link stays down, ms. */
const DOWN_MS = 2_000;
/** How long the devices have to be back after it, ms (they retry every second). */
const BACK_WITHIN_MS = 5_000;
/** How often the lock publishes a witness event, ms. */
const WITNESS_EVERY_MS = 100;

export const brokerRestart: Scenario = {
  name: 'broker-restart',
  expected:
    'every device link reset for 2 s mid-visit → devices reconnect by themselves, observation-lost with the gap on record, no re-unlock, door relocked when closed, no acknowledged event lost',
  world: NET_WORLD,
  async story({ world, expect }) {
    const net = proxiesOf(world);
    const { sys } = world;
    const { devices } = world.creds;
    const deliveryId = await world.newDelivery();
    const access = await world.requestAccess(deliveryId);
    const opened = access.body.session as { id?: string; state?: string } | undefined;
    expect.that(
      access.status === 200 && opened?.state === 'open',
      `the door opens for the courier (HTTP ${access.status} ${opened?.state ?? errorCode(access)})`,
    );
    if (access.status !== 200 || opened?.id === undefined) return { session: null };
    const sessionId = opened.id;
    world.home.doorSensor.open();
    world.home.camera.setPerson(true);

    const witness = new AckedWitness(world, world.home.links.lock, WITNESS_EVERY_MS);
    await sleep(10 * WITNESS_EVERY_MS);

    // The broker "restarts": every device link is reset, and stays refused for a while.
    const proxies = [net.lock, net.doorSensor, net.camera];
    const acceptedBefore = proxies.map((p) => p.stats().connectionsAccepted);
    for (const p of proxies) p.set({ type: 'reset' });
    const downAt = sys.clock.now();
    await sleep(DOWN_MS);
    for (const p of proxies) p.remove('reset');
    const upAt = sys.clock.now();

    // Each device comes back by itself, and the server hears it.
    const ids = [devices.lock.id, devices.doorSensor.id, devices.camera.id];
    const backAt = new Map<string, number>();
    await world
      .waitFor(
        () => {
          for (const id of ids) {
            const st = sys.gateway.liveStatus(id);
            if (!backAt.has(id) && st?.online === true && (st.lastSeenAt ?? 0) > upAt)
              backAt.set(id, sys.clock.now());
          }
          return backAt.size === ids.length;
        },
        BACK_WITHIN_MS,
        'every device is back online',
      )
      .catch(() => undefined);
    const reconnectMs = Object.fromEntries(
      ids.map((id) => [id, backAt.has(id) ? backAt.get(id)! - upAt : null]),
    );
    expect.that(
      backAt.size === ids.length,
      `every device reconnected by itself within ${BACK_WITHIN_MS} ms (${JSON.stringify(reconnectMs)})`,
    );
    const reconnected = proxies.map((p, i) => p.stats().connectionsAccepted - acceptedBefore[i]!);
    expect.that(
      reconnected.every((n) => n >= 1),
      `each device opened a new connection (${reconnected.join(', ')})`,
    );

    const alarm = await world.waitForAlarm(sessionId, 'observation-lost', 3_000);
    const detectionMs = alarm.atMs - alarm.sinceMs;
    expect.that(
      detectionMs <= 2_000,
      `observation-lost within 2 s of the last valid heartbeat (took ${detectionMs} ms)`,
    );
    expect.that(
      alarm.atMs - downAt <= 2_000,
      `…${alarm.atMs - downAt} ms after the link went down`,
    );
    await world
      .waitFor(
        async () =>
          (await sessionAudit(world, sessionId)).some((e) => e.kind === 'observation.restored'),
        BACK_WITHIN_MS,
        'the camera proves it sees the door again',
      )
      .catch(() => undefined);

    // The courier, still inside, asks to open again: no unlock after a gap.
    const again = await world.requestAccess(deliveryId);
    expect.that(
      again.status === 409 && errorCode(again) === 'session.observation-lost',
      `a second "open" after the gap is refused (HTTP ${again.status} ${errorCode(again)})`,
    );

    // The lock drains a little longer on the new connections, then stops.
    await sleep(5 * WITNESS_EVERY_MS);
    const acked = await witness.stop();
    // The courier leaves and closes the door.
    world.home.camera.setPerson(false);
    world.home.doorSensor.close();
    const closedAt = sys.clock.now();
    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(
      relocked !== null,
      'the lock was commanded locked once the door closed, and confirmed it',
    );
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(
      world.home.lock.bolt() === 'locked' && world.home.doorSensor.position() === 'closed',
      `the door ends locked and closed (${world.home.lock.bolt()}, ${world.home.doorSensor.position()})`,
    );
    expect.that(
      done.state === 'completed' || (done.state === 'aborted' && done.outcome !== null),
      `the session completes or ends with its reason (${done.state}, ${done.outcome?.code ?? 'no reason'})`,
    );
    expect.that(
      done.alarms.some((a) => a.type === 'observation-lost'),
      `the alarm stays on the session (${done.alarms.map((a) => a.type).join(', ')})`,
    );
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    const gap = done.coverage.gaps.find((g) => g.startMs <= downAt + 500);
    expect.that(
      gap !== undefined && gap.endMs !== null,
      `the gap is listed, closed when the camera came back (${JSON.stringify(gap ?? null)})`,
    );

    const entries = await sessionAudit(world, sessionId);
    // Each device's availability as recorded: it went offline, then came back online.
    const availability = ids.map((id) =>
      entries
        .filter((e) => e.kind === 'device.availability' && e.data.device === id)
        .map((e) => (e.data.online === true ? 'online' : 'offline')),
    );
    expect.that(
      availability.every((seq) => {
        const gone = seq.indexOf('offline');
        return gone >= 0 && seq.lastIndexOf('online') > gone;
      }),
      `the record shows each device gone and back (${availability.map((seq) => seq.join('→')).join(' | ')})`,
    );
    expect.that(
      entries.some((e) => e.kind === 'observation.gap'),
      'the gap is written to the audit log',
    );

    // No event the broker acknowledged is missing from the record.
    const recorded = new Set<string>();
    for await (const e of sys.store.audit.iterate())
      if (e.kind === 'device.event' && typeof e.data.detail === 'string')
        recorded.add(e.data.detail);
    const ackedEvents = acked.filter((w) => w.acked);
    const lost: WitnessEvent[] = ackedEvents.filter((w) => !recorded.has(AckedWitness.detail(w.n)));
    const before = ackedEvents.filter((w) => w.at < downAt).length;
    const after = ackedEvents.filter((w) => w.at >= upAt).length;
    const duringOutage = acked.filter((w) => w.at >= downAt && w.at < upAt).length;
    expect.that(
      before >= 5 && duringOutage >= 10 && after >= 3,
      `the lock kept publishing before, during and after the outage (acknowledged ${before} before and ${after} after; ${duringOutage} sent during it)`,
    );
    expect.that(
      lost.length === 0,
      `every acknowledged event is on record (${lost.length} lost: ${lost.map((w) => w.n).join(', ')})`,
    );

    return {
      session: done,
      extra: {
        detectionMs,
        reconnectMs,
        relockMs: done.lockConfirmedAt !== null ? done.lockConfirmedAt - closedAt : null,
        gapMs: gap?.endMs != null ? gap.endMs - gap.startMs : null,
        witness: {
          sent: acked.length,
          acknowledged: ackedEvents.length,
          acknowledgedBefore: before,
          acknowledgedAfter: after,
          notAcknowledged: acked.length - ackedEvents.length,
          lost: lost.length,
        },
        secondOpen: { status: again.status, code: errorCode(again) },
      },
    };
  },
};

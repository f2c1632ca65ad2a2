/**
 * camera-cut-before-open — the camera is jammed between the courier's "open" and the unlock, so
 * that the door would open with nobody able to prove what the camera saw.
 *
 * Given a courier at the door of a home whose camera, lock and sensor are online,
 * when the camera's link is jammed (both directions blackholed) the moment the session starts
 * arming the camera, and stays jammed,
 * then no unlock is ever sent (the camera never proves it records this session), the courier's
 * "open" is refused in plain words (`camera.not-recording`) within the arming deadline, the
 * session ends refused with that reason, the delivery is still to do, a second "open" during the
 * jam is refused at once (`camera.offline`, once the broker has noticed the camera gone), the
 * door never unlocks — not even when the jam lifts and the held messages arrive late — and the
 * audit log verifies.
 */
import type { Scenario } from '../scenario.ts';
import { SCENARIO_TIMING, sleep } from '../scenario-world.ts';
import { errorCode } from './common-steps.ts';
import {
  atSessionChange,
  commandsSent,
  DoorWatch,
  everUnlocked,
  NET_KEEPALIVE_S,
  NET_WORLD,
  proxiesOf,
  sessionAudit,
} from './steps-net.ts';

export const cameraCutBeforeOpen: Scenario = {
  name: 'camera-cut-before-open',
  expected:
    'camera jammed after "open", before the unlock → no unlock without fresh proof: courier refused (camera.not-recording), session refused with the reason, door never unlocks',
  world: NET_WORLD,
  async story({ world, expect }) {
    const net = proxiesOf(world);
    const { sys } = world;
    const cameraId = world.creds.devices.camera.id;
    const deliveryId = await world.newDelivery();
    const lockMovedAt = world.home.lock.changedAt();
    const watch = new DoorWatch(world);

    // The jammer waits for the request: as the session starts arming, the camera goes dark
    // (in the same turn, before the camera can hear the `arm` or answer it).
    let jammedAt: number | null = null;
    let sessionId: string | null = null;
    const off = atSessionChange(
      world,
      (s) => s.deliveryId === deliveryId && s.state === 'arming',
      (s) => {
        net.camera.set({ type: 'blackhole' });
        jammedAt = sys.clock.now();
        sessionId = s.id;
      },
    );
    const access = await world.requestAccess(deliveryId);
    const answeredAt = sys.clock.now();
    off();
    expect.that(jammedAt !== null, 'the camera was jammed while the session armed it');
    if (jammedAt === null || sessionId === null) {
      watch.stop();
      return { session: null };
    }
    const jamAt: number = jammedAt;
    const id: string = sessionId;

    const code = errorCode(access);
    const message = (access.body.error as { message?: string } | undefined)?.message ?? '';
    expect.that(
      access.status === 409 && code === 'camera.not-recording',
      `the courier is refused: the camera did not prove it records (HTTP ${access.status} ${code})`,
    );
    expect.that(message.length > 0, `the refusal says why in words (${JSON.stringify(message)})`);
    const refusalMs = answeredAt - jamAt;
    expect.that(
      refusalMs <= SCENARIO_TIMING.session.armingTimeoutMs + 1_000,
      `the refusal comes within the arming deadline (${refusalMs} ms after the jam)`,
    );

    const session = await world.waitForState(id, ['refused', 'aborted', 'completed'], 5_000);
    expect.that(
      session.state === 'refused' && session.outcome?.code === 'camera.not-recording',
      `the session ends refused with the reason (${session.state}, ${session.outcome?.code ?? 'no reason'})`,
    );
    expect.that(
      session.armedAt === null && session.unlockedAt === null,
      `nothing says the camera armed or the door unlocked (armedAt ${session.armedAt}, unlockedAt ${session.unlockedAt})`,
    );
    const unlocks = commandsSent(await sessionAudit(world, id), 'unlock');
    expect.that(unlocks.length === 0, `no unlock was sent (${unlocks.length})`);
    const delivery = await sys.store.deliveries.get(deliveryId);
    expect.that(
      delivery?.status === 'scheduled',
      `the delivery is still to do (${delivery?.status ?? 'missing'})`,
    );

    // The broker notices the silent camera by its keepalive; a second "open" is refused at once.
    await world
      .waitFor(
        () => sys.gateway.liveStatus(cameraId)?.online === false,
        NET_KEEPALIVE_S * 1_500 + 4_000,
        'the server sees the camera offline',
      )
      .catch(() => undefined);
    const offlineSince = sys.gateway.liveStatus(cameraId)?.offlineSince ?? null;
    const offlineNoticedMs = offlineSince === null ? null : offlineSince - jamAt;
    // MQTT lets a broker take 1.5 keepalives; mosquitto checks them in its main loop, about
    // once a second, so it may take up to a couple of seconds more than aedes does.
    const brokerSlackMs = world.mosquitto ? 2_500 : 1_000;
    expect.that(
      offlineNoticedMs !== null && offlineNoticedMs <= NET_KEEPALIVE_S * 1_500 + brokerSlackMs,
      `the server sees the jammed camera offline within its keepalive bound (${offlineNoticedMs} ms after the jam)`,
    );
    const askedAgainAt = sys.clock.now();
    const again = await world.requestAccess(deliveryId);
    const againMs = sys.clock.now() - askedAgainAt;
    expect.that(
      again.status === 409 && errorCode(again) === 'camera.offline',
      `a second "open" during the jam is refused: camera offline (HTTP ${again.status} ${errorCode(again)})`,
    );
    expect.that(againMs < 1_000, `…at once (${againMs} ms)`);

    // The jam lifts: what it held (the arm, the disarm) arrives late, and still nothing opens.
    net.camera.remove('blackhole');
    await sleep(1_500);
    const samples = watch.stop();
    expect.that(
      !everUnlocked(samples) && world.home.lock.changedAt() === lockMovedAt,
      `the door never unlocked (bolt seen: ${[...new Set(samples.map((s) => s.bolt))].join(', ')})`,
    );

    return {
      session: await world.session(id),
      extra: {
        detectionMs: refusalMs,
        refusal: { status: access.status, code, message },
        offlineNoticedMs,
        secondRefusal: { status: again.status, code: errorCode(again), ms: againMs },
        unlocksSent: unlocks.length,
        deliveryStatus: delivery?.status ?? null,
      },
    };
  },
};

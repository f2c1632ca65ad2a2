/**
 * Detection latency under camera jamming (the `deauth` scenario, repeated in one world).
 *
 * One run: a new delivery, the courier opens the door, drops the parcel and closes the door;
 * the camera's link is cut (TCP killed, reconnection fails); the `observation-lost` alarm is
 * awaited. detection = alarm.atMs − alarm.sinceMs: from the server's receipt of the last valid
 * heartbeat to the moment the session raised the alarm, both on the server's clock (whole ms).
 * relock = alarm → the session's lockConfirmedAt (the lock's own report that the bolt is
 * thrown, as the server received it). The session then ends (aborted: the camera cannot show
 * the door after the relock, so only the verify timeout ends it), the link is restored, and
 * the run ends when the server sees the camera online again.
 */
import type { ScenarioWorld } from '../src/harness/scenario-world.ts';

/** One run's figures, ms. */
export interface DeauthSample {
  readonly detectionMs: number;
  /** Link cut → alarm (depends on where in the heartbeat cycle the cut fell). */
  readonly cutToAlarmMs: number;
  readonly relockMs: number;
  /** Whole run, ms. */
  readonly runMs: number;
}

const OPEN_STATES = ['requested', 'arming', 'unlocking', 'open', 'relocking', 'verifying'];

export async function runDeauthOnce(world: ScenarioWorld): Promise<DeauthSample> {
  const started = performance.now();
  const cameraLink = world.home.links.camera;
  const cameraId = world.creds.devices.camera.id;
  let cut = false;
  try {
    const deliveryId = await world.newDelivery();
    const access = await world.requestAccess(deliveryId);
    const sessionId = (access.body.session as { id?: string } | undefined)?.id;
    if (access.status !== 200 || !sessionId) {
      throw new Error(`access refused: HTTP ${access.status} ${JSON.stringify(access.body)}`);
    }
    await world.dropParcel();

    cameraLink.cutLink();
    cut = true;
    const cutAt = world.sys.clock.now();
    const alarm = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
    await world.waitFor(
      async () => (await world.session(sessionId)).lockConfirmedAt !== null,
      5_000,
      'the lock confirms it locked',
    );
    const relocked = await world.session(sessionId);
    const done = await world.sys.orchestrator.waitWhile(sessionId, OPEN_STATES, 15_000);
    if (done?.state !== 'aborted') {
      throw new Error(`session ended ${done?.state ?? 'missing'}, expected aborted`);
    }
    return {
      detectionMs: alarm.atMs - alarm.sinceMs,
      cutToAlarmMs: alarm.atMs - cutAt,
      relockMs: relocked.lockConfirmedAt! - alarm.atMs,
      runMs: performance.now() - started,
    };
  } finally {
    // Whatever happened, the next run needs the camera back.
    if (cut) await restoreCamera(world, cameraId);
  }
}

async function restoreCamera(world: ScenarioWorld, cameraId: string): Promise<void> {
  const restoredAt = world.sys.clock.now();
  world.home.links.camera.restoreLink();
  await world.waitFor(
    () => {
      const s = world.sys.gateway.liveStatus(cameraId);
      return s?.online === true && (s.lastSeenAt ?? 0) >= restoredAt;
    },
    10_000,
    'the camera is back online',
  );
}

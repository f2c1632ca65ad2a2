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
 *
 * The jam is only applied to a session that is open and has no alarm after the drop-off;
 * otherwise the run is a {@link RunAnomaly} (nothing to detect), reported with what was seen.
 */
import type { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { RunAnomaly, sessionStory } from './run-anomaly.ts';

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
    const opened = await world.session(sessionId);
    if (opened.state !== 'open') {
      throw new RunAnomaly(
        `the access answer came with the session ${opened.state}, not open: ${sessionStory(opened)}`,
      );
    }
    await world.dropParcel();
    const before = await world.session(sessionId);
    if (before.state !== 'open' || before.alarms.length > 0) {
      throw new RunAnomaly(`before the jam: ${sessionStory(before)}`);
    }

    cameraLink.cutLink();
    cut = true;
    const cutAt = world.sys.clock.now();
    const alarm = await world
      .waitForAlarm(sessionId, 'observation-lost', 5_000)
      .catch(async (err: unknown) => {
        throw new Error(`${String(err)}; ${await describe(world, sessionId, cutAt)}`);
      });
    const relocked = await world.relockConfirmed(sessionId, 5_000);
    if (!relocked) throw new Error('the lock did not confirm it locked within 5 s of the alarm');
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

/** What the world looked like when the alarm did not come, for the failure's message. */
async function describe(world: ScenarioWorld, sessionId: string, cutAt: number): Promise<string> {
  const s = await world.session(sessionId);
  const cam = world.sys.gateway.liveStatus(world.creds.devices.camera.id);
  const rel = (t: number | null | undefined): string => (t == null ? 'null' : `${t - cutAt}`);
  return [
    `session ${s.state}, observation ${s.observation}`,
    `alarms [${s.alarms.map((a) => `${a.type}@${rel(a.atMs)}`).join(', ')}]`,
    `history ${s.history.map((h) => `${h.state}@${rel(h.atMs)}${h.reason ? `(${h.reason})` : ''}`).join(' ')}`,
    `coverage gaps ${JSON.stringify(s.coverage.gaps.map((g) => [rel(g.startMs), rel(g.endMs), g.cause]))}`,
    `camera at server: online ${cam?.online}, lastSeen ${rel(cam?.lastSeenAt)}`,
    `camera link: cut ${world.home.links.camera.isLinkCut()}, connected ${world.home.links.camera.isConnected()}`,
    `camera recording ${world.home.camera.sessionId() === sessionId ? 'this session' : world.home.camera.sessionId()}`,
    '(times in ms relative to the cut)',
  ].join('; ');
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

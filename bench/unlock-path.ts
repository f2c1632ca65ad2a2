/**
 * Unlock path, the server's own time: from the courier's "I'm at the door" to the unlock
 * command, minus the camera's part.
 *
 * One run: a new delivery; t0 = performance.now() just before the HTTP request; from the
 * gateway's trace, tArm = the `arm` command for the new session handed to the broker client,
 * tHb = the first heartbeat of that session received from the camera after tArm, tUnlock = the
 * `unlock` command handed to the broker client. Then
 *
 *   server share = (tArm − t0) + (tUnlock − tHb)
 *   camera part  = tHb − tArm   (excluded from the share: command delivery, the camera's work,
 *                                its first frame and heartbeat, their delivery)
 *   whole        = tUnlock − t0
 *
 * The HTTP answer only comes once the lock reports the door open, so the times come from the
 * trace, not the response. To keep runs apart and short, the courier asks to lock as soon as
 * the door is open (the door never opened, so that is allowed), and the run waits for the
 * session to complete (the lock's own report, then the camera's next fresh frame) and for the
 * camera to be disarmed.
 */
import type { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { sessionStory } from './run-anomaly.ts';
import type { TraceRecorder } from './trace-recorder.ts';

/** One run's figures, ms. */
export interface UnlockSample {
  readonly serverShareMs: number;
  readonly httpToArmMs: number;
  readonly heartbeatToUnlockMs: number;
  readonly cameraMs: number;
  readonly wholeMs: number;
  /** Whole run: delivery created → camera disarmed after completion. */
  readonly runMs: number;
  /**
   * Set when the session did not go the normal way (not open when the access request was
   * answered, or alarms). The measured part (request → unlock command) is unaffected and kept.
   */
  readonly anomaly: string | null;
}

const OPEN_STATES = ['requested', 'arming', 'unlocking', 'open', 'relocking', 'verifying'];

export async function runUnlockOnce(
  world: ScenarioWorld,
  recorder: TraceRecorder,
): Promise<UnlockSample> {
  const started = performance.now();
  const cameraId = world.creds.devices.camera.id;
  const deliveryId = await world.newDelivery();
  recorder.clear();
  const t0 = performance.now();
  const access = await world.requestAccess(deliveryId);
  const sessionId = (access.body.session as { id?: string } | undefined)?.id;
  if (access.status !== 200 || !sessionId) {
    throw new Error(`access refused: HTTP ${access.status} ${JSON.stringify(access.body)}`);
  }
  const opened = await world.session(sessionId);
  const anomalies: string[] = [];
  if (opened.state !== 'open') {
    anomalies.push(`answered with the session ${opened.state}: ${sessionStory(opened)}`);
  }
  const arm = recorder.command(sessionId, 'arm');
  const unlock = recorder.command(sessionId, 'unlock');
  const hb = arm
    ? recorder.heartbeatsAfter(cameraId, arm.at).find((e) => e.sessionId === sessionId)
    : undefined;
  // Relock at once and let the session complete before the next run.
  const relock = await world.requestRelock(sessionId);
  if (relock.status !== 200 || relock.body.confirmed !== true) {
    throw new Error(`relock not confirmed: HTTP ${relock.status}`);
  }
  const done = await world.sys.orchestrator.waitWhile(sessionId, OPEN_STATES, 10_000);
  if (done?.state !== 'completed') {
    throw new Error(`session ${done?.state ?? 'missing'}: ${done?.outcome?.message ?? ''}`);
  }
  if (done.alarms.length > 0 && anomalies.length === 0) {
    anomalies.push(`completed with alarms: ${sessionStory(done)}`);
  }
  await world.waitFor(() => !world.home.camera.isRecording(), 5_000, 'the camera is disarmed');
  if (!arm || !hb || !unlock) {
    throw new Error(`trace incomplete: arm ${!!arm}, heartbeat ${!!hb}, unlock ${!!unlock}`);
  }
  const httpToArmMs = arm.at - t0;
  const heartbeatToUnlockMs = unlock.at - hb.at;
  return {
    serverShareMs: httpToArmMs + heartbeatToUnlockMs,
    httpToArmMs,
    heartbeatToUnlockMs,
    cameraMs: hb.at - arm.at,
    wholeMs: unlock.at - t0,
    runMs: performance.now() - started,
    anomaly: anomalies[0] ?? null,
  };
}

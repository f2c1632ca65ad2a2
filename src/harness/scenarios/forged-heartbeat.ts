/**
 * forged-heartbeat — someone who knows the camera's id, but not its key, sends heartbeats for
 * the running session to cover for a camera that no longer watches.
 *
 * Given a delivery in progress (door unlocked, parcel dropped, door closed),
 * when an attacker on the network tries to reach the camera's heartbeat topic — first with the
 * camera's id and a guessed password, then with the door sensor's stolen credentials under the
 * camera's client id, then with those credentials under the sensor's own id, publishing a
 * heartbeat for the session on the camera's topic — and then the camera's own connection sends
 * heartbeats MAC'd with a wrong key (a tampered camera),
 * then the broker refuses both connections and closes the third at its publish (each refusal
 * counted), nothing of it reaches the session; every wrongly keyed heartbeat is rejected on
 * record (`bad-mac`), `observation-forged` is raised, and, as no valid heartbeat arrives,
 * `observation-lost` follows within 2 s of the last valid one; no frame after the forgery is
 * kept as proof, the lock is relocked and confirms, a second "open" is refused, the session ends
 * aborted with the gap on record, and the audit log verifies.
 */
import { deriveSessionKey, sign } from '../../protocol/device-auth.ts';
import type { HeartbeatMessage } from '../../protocol/device-messages.ts';
import { deviceTopic } from '../../protocol/topics.ts';
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { embeddedBroker, reopenIsRefused } from './common-steps.ts';
import {
  attackerConnect,
  auditEntries,
  courierInsideAndOut,
  passwordOfSecret,
  publishAndWatchClose,
} from './steps-integrity.ts';

export const forgedHeartbeat: Scenario = {
  name: 'forged-heartbeat',
  expected:
    'heartbeats without the camera’s key: broker refuses foreign credentials, wrongly keyed ones rejected (bad-mac), observation-forged then observation-lost, never counted as proof, door relocked',
  async story({ world, expect }) {
    const { sys, creds } = world;
    const camera = creds.devices.camera;
    const sensor = creds.devices.doorSensor;
    const { deliveryId, sessionId } = await courierInsideAndOut(world, expect);
    if (sessionId === null) return { session: null };
    const hbTopic = deviceTopic(creds.homeId, camera.id, 'heartbeat');
    const before = embeddedBroker(sys).stats();
    const dropsBefore = sys.gateway.drops()['heartbeat-bad-mac'] ?? 0;

    // ---- The broker: the camera's id without its password, then with another device's ----
    const guessed = await attackerConnect(sys.brokerUrl, {
      username: camera.id,
      password: 'a-guessed-password',
      clientId: camera.id,
    });
    expect.that(!guessed.accepted, 'the camera’s id with a guessed password is refused');
    if (guessed.accepted) guessed.client.end(true);
    const borrowed = await attackerConnect(sys.brokerUrl, {
      username: sensor.id,
      password: passwordOfSecret(sensor.secret),
      clientId: camera.id,
    });
    expect.that(
      !borrowed.accepted,
      'the door sensor’s credentials cannot take the camera’s client id',
    );
    if (borrowed.accepted) borrowed.client.end(true);

    // With the sensor's credentials under its own id the broker lets it in, but not onto the
    // camera's topic. The heartbeat is the best the attacker can make: MAC'd with a session key
    // derived from the key it holds, the sensor's.
    const asSensor = await attackerConnect(sys.brokerUrl, {
      username: sensor.id,
      password: passwordOfSecret(sensor.secret),
      clientId: sensor.id,
    });
    expect.that(asSensor.accepted, 'the stolen sensor credentials connect as the sensor');
    const forgedByPeer = sign<HeartbeatMessage>(
      deriveSessionKey(Buffer.from(sensor.secret, 'base64url'), sessionId),
      hbTopic,
      {
        sessionId,
        seq: 1_000_000,
        capturedAt: sys.clock.now(),
        frameDigest: 'f'.repeat(64),
        recording: true,
      },
    );
    const published = asSensor.accepted
      ? await publishAndWatchClose(asSensor.client, hbTopic, JSON.stringify(forgedByPeer))
      : { closed: false, closedAfterMs: null };
    expect.that(
      published.closed,
      `the broker closes the connection that published on the camera’s topic (${published.closedAfterMs} ms)`,
    );
    const after = embeddedBroker(sys).stats();
    const brokerRefusals = {
      connections: after.connectionsRefused - before.connectionsRefused,
      publishes: after.publishesRefused - before.publishesRefused,
    };
    expect.that(
      brokerRefusals.connections >= 2 && brokerRefusals.publishes >= 1,
      `the broker counted the refusals (${JSON.stringify(brokerRefusals)})`,
    );
    // Give a heartbeat that slipped through time to arrive: none must have.
    await sleep(300);
    const midway = await world.session(sessionId);
    const peerRejected = (await auditEntries(sys, 'heartbeat.rejected', `session:${sessionId}`))
      .length;
    expect.that(
      peerRejected === 0 && !midway.alarms.some((a) => a.type === 'observation-forged'),
      `nothing the attacker published reached the session (${peerRejected} rejected, alarms: ${midway.alarms.map((a) => a.type).join(',') || 'none'})`,
    );
    expect.that(
      midway.state === 'open' && midway.observation === 'live',
      `the session carries on, watched (${midway.state}, ${midway.observation})`,
    );

    // ---- The camera's own connection: heartbeats MAC'd with a wrong key ----
    const framesBefore = (await sys.store.clips.list(sessionId)).length;
    const forgedAt = sys.clock.now();
    world.home.camera.forge(true);
    let forged: Awaited<ReturnType<typeof world.waitForAlarm>> | null = null;
    let lost: Awaited<ReturnType<typeof world.waitForAlarm>> | null = null;
    try {
      forged = await world.waitForAlarm(sessionId, 'observation-forged', 5_000);
      lost = await world.waitForAlarm(sessionId, 'observation-lost', 5_000);
    } catch (err) {
      expect.that(false, err instanceof Error ? err.message : String(err));
    }
    const forgedDetectionMs = forged === null ? null : forged.atMs - forgedAt;
    expect.that(
      forgedDetectionMs !== null && forgedDetectionMs <= 1_500,
      `observation-forged within 1.5 s of the first forged heartbeat (${forgedDetectionMs} ms)`,
    );
    const lostDetectionMs = lost === null ? null : lost.atMs - lost.sinceMs;
    expect.that(
      lostDetectionMs !== null && lostDetectionMs <= 2_000,
      `observation-lost within 2 s of the last valid heartbeat (${lostDetectionMs} ms)`,
    );
    expect.that(
      lost !== null && lost.sinceMs <= forgedAt + 50,
      `no forged heartbeat counted: the last valid one was before the forgery (${lost === null ? '?' : lost.sinceMs - forgedAt} ms after it)`,
    );
    const relocked = await world.relockConfirmed(sessionId, 5_000);
    expect.that(relocked !== null, 'the lock was commanded locked and confirmed it');
    const reunlock = await reopenIsRefused(world, expect, deliveryId);
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    world.home.camera.forge(false);

    const rejected = await auditEntries(sys, 'heartbeat.rejected', `session:${sessionId}`);
    const reasons = [...new Set(rejected.map((e) => String(e.data.reason)))];
    expect.that(
      rejected.length >= 2 && reasons.every((r) => r === 'bad-mac'),
      `the forged heartbeats are rejected on record as bad-mac (${rejected.length}: ${reasons.join(',')})`,
    );
    const dropsAfter = sys.gateway.drops()['heartbeat-bad-mac'] ?? 0;
    expect.that(
      dropsAfter - dropsBefore >= rejected.length,
      `the gateway counted them (${dropsAfter - dropsBefore})`,
    );
    // A frame counts only when a valid heartbeat vouches for it: none after the forgery may.
    const frames = await sys.store.clips.list(sessionId);
    const vouchedAfter = frames.filter((f) => f.capturedAt > forgedAt).length;
    expect.that(
      vouchedAfter === 0,
      `no frame captured after the forgery is in the clip (${vouchedAfter} of ${frames.length - framesBefore} new)`,
    );
    expect.that(done.state === 'aborted', `the session is aborted (was ${done.state})`);
    expect.that(done.coverage.ratio < 1, `coverage is below 1 (${done.coverage.ratio})`);
    expect.that(
      done.coverage.gaps.some((g) => g.startMs <= forgedAt + 50),
      'the gap starts at the forgery',
    );
    return {
      session: done,
      extra: {
        detectionMs: forgedDetectionMs,
        lostDetectionMs,
        brokerRefusals,
        publishClosedAfterMs: published.closedAfterMs,
        rejectedOnRecord: rejected.length,
        rejectReasons: reasons,
        reunlock,
      },
    };
  },
};

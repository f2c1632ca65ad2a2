/**
 * Principle 7 on the device side: a real MQTT client, authenticated as one of the seeded
 * devices, publishes garbage on its own topics. Every message is dropped, counted under its
 * reason, and leaves the device's live status as it was; the server keeps working, and a
 * publish on another device's topic never gets past the broker.
 *
 * No simulated devices run here: the test's clients are the only ones holding these device
 * ids, so nothing else moves the live status or the drop counters.
 */
import { embeddedBroker } from '../src/harness/scenarios/common-steps.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceKey, mqttPassword, sign } from '../src/protocol/device-auth.ts';
import {
  MAX_MESSAGE_BYTES,
  type CameraStateMessage,
  type LockStateMessage,
} from '../src/protocol/device-messages.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import type { DropReason } from '../src/server/device-gateway.ts';
import { seedDemo, type DemoCredentials } from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';

const WAIT_MS = 3_000;

let dataDir: string;
let sys: RunningSystem;
let creds: DemoCredentials;
let lockId: string;
let cameraId: string;
let lockTopic: string;
let lockKey: Buffer;
/** The lock's connection; the camera connects only to misbehave. */
let lock: MqttClient;
const clients: MqttClient[] = [];

/** Device clock of the test's lock: strictly increasing times and sequence numbers. */
let lastAt = 0;
let lastSeq = 0;
function nextClock(): { at: number; seq: number } {
  lastAt = Math.max(Date.now(), lastAt + 1);
  lastSeq += 1;
  return { at: lastAt, seq: lastSeq };
}

function lockState(
  bolt: LockStateMessage['bolt'],
  key: Uint8Array = lockKey,
  topic: string = lockTopic,
): LockStateMessage {
  const { at, seq } = nextClock();
  return sign<LockStateMessage>(key, topic, {
    kind: 'lock',
    seq,
    at,
    bolt,
    changedAt: at,
    autoRelockAt: null,
  });
}

async function connectAs(deviceId: string): Promise<MqttClient> {
  const c = await connectAsync(sys.brokerUrl, {
    clientId: deviceId,
    username: deviceId,
    password: mqttPassword(deriveDeviceKey(sys.keys.masterKey, deviceId)),
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
  });
  clients.push(c);
  return c;
}

async function waitUntil(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Publishes as the lock and waits until the gateway has accepted it as the lock's state. */
async function publishAccepted(msg: LockStateMessage): Promise<void> {
  await lock.publishAsync(lockTopic, JSON.stringify(msg), { qos: 1 });
  await waitUntil(
    () => sys.gateway.liveStatus(lockId)?.state?.seq === msg.seq,
    `the lock's state seq ${msg.seq} is accepted`,
  );
}

/**
 * Publishes `payload` as the lock on its own state topic (or `topic`), waits until the gateway
 * has counted exactly one more drop under `reason` and nothing else, and checks the lock's
 * live status did not move.
 */
async function expectDropped(
  reason: DropReason,
  payload: string | Buffer,
  from: MqttClient = lock,
  topic: string = lockTopic,
): Promise<void> {
  const statusBefore = sys.gateway.liveStatus(lockId);
  const cameraBefore = sys.gateway.liveStatus(cameraId);
  const dropsBefore = sys.gateway.drops();
  expect(statusBefore?.state).not.toBeNull();
  await from.publishAsync(topic, payload, { qos: 1 });
  await waitUntil(
    () => (sys.gateway.drops()[reason] ?? 0) > (dropsBefore[reason] ?? 0),
    `a drop counted as ${reason}`,
  );
  expect(sys.gateway.drops()).toEqual({ ...dropsBefore, [reason]: (dropsBefore[reason] ?? 0) + 1 });
  expect(sys.gateway.liveStatus(lockId)).toEqual(statusBefore);
  expect(sys.gateway.liveStatus(cameraId)).toEqual(cameraBefore);
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'threshold-mqtt-garbage-'));
  sys = await startSystem({ dataDir, port: 0, mqttPort: 0 });
  creds = await seedDemo(sys, dataDir);
  lockId = creds.devices.lock.id;
  cameraId = creds.devices.camera.id;
  lockTopic = deviceTopic(creds.homeId, lockId, 'state');
  lockKey = deriveDeviceKey(sys.keys.masterKey, lockId);
  lock = await connectAs(lockId);
  // A first valid report, so every later check compares against a known, live state.
  await publishAccepted(lockState('locked'));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  await sys?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('garbage from an authenticated device on its own topics', () => {
  it('given the lock, when it publishes a state that is not JSON, then it is dropped as not-json', async () => {
    await expectDropped('not-json', 'bolt=unlocked; please');
  });

  it('given the lock, when it publishes bytes that are not UTF-8, then it is dropped as not-json', async () => {
    await expectDropped('not-json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
  });

  it('given the lock, when it publishes JSON of the wrong shape, then it is dropped as schema', async () => {
    const valid = lockState('unlocked');
    await expectDropped('schema', JSON.stringify({ ...valid, seq: String(valid.seq) }));
    await expectDropped('schema', JSON.stringify({ ...lockState('unlocked'), override: true }));
    await expectDropped('schema', JSON.stringify([valid]));
  });

  it('given the lock, when it publishes a state over 4 KiB (under the broker packet limit), then it is dropped as too-large', async () => {
    const padded = JSON.stringify({
      ...lockState('unlocked'),
      detail: 'x'.repeat(MAX_MESSAGE_BYTES),
    });
    expect(Buffer.byteLength(padded)).toBeGreaterThan(MAX_MESSAGE_BYTES);
    const oversizedBefore = embeddedBroker(sys).stats().oversizedDropped;
    await expectDropped('too-large', padded);
    expect(embeddedBroker(sys).stats().oversizedDropped).toBe(oversizedBefore);
  });

  it('given the lock, when it publishes a state with a wrong MAC, then it is dropped as bad-mac', async () => {
    const msg = lockState('unlocked');
    const flipped = `${msg.mac[0] === 'A' ? 'B' : 'A'}${msg.mac.slice(1)}`;
    await expectDropped('bad-mac', JSON.stringify({ ...msg, mac: flipped }));
  });

  it("given the lock, when it publishes a state signed with the camera's key, then it is dropped as bad-mac", async () => {
    const forged = lockState('unlocked', deriveDeviceKey(sys.keys.masterKey, cameraId));
    await expectDropped('bad-mac', JSON.stringify(forged));
  });

  it('given the lock, when it publishes a correctly signed state whose body was changed after signing, then it is dropped as bad-mac', async () => {
    const msg = lockState('locked');
    await expectDropped('bad-mac', JSON.stringify({ ...msg, bolt: 'unlocked' }));
  });

  it('given the camera, when it publishes a validly signed lock state on its own topic, then it is dropped as kind-mismatch', async () => {
    const camera = await connectAs(cameraId);
    const cameraTopic = deviceTopic(creds.homeId, cameraId, 'state');
    const lockShaped = lockState(
      'unlocked',
      deriveDeviceKey(sys.keys.masterKey, cameraId),
      cameraTopic,
    );
    await expectDropped('kind-mismatch', JSON.stringify(lockShaped), camera, cameraTopic);
    await camera.endAsync();
  });

  it('given an accepted state, when the same message (same at and seq) is published again, then it is dropped as replayed', async () => {
    const msg = lockState('unlocked');
    await publishAccepted(msg);
    expect(sys.gateway.liveStatus(lockId)?.state).toEqual(msg);
    await expectDropped('replayed', JSON.stringify(msg));
  });

  it('given an accepted state, when an older signed state is published with a higher seq, then it is dropped as replayed', async () => {
    const current = lockState('locked');
    await publishAccepted(current);
    const older = sign<LockStateMessage>(lockKey, lockTopic, {
      kind: 'lock',
      seq: current.seq + 100,
      at: current.at - 60_000,
      bolt: 'unlocked',
      changedAt: current.at - 60_000,
      autoRelockAt: null,
    });
    await expectDropped('replayed', JSON.stringify(older));
    expect(sys.gateway.liveStatus(lockId)?.state).toEqual(current);
  });
});

describe('a device publishing on another device’s topic', () => {
  it("given the camera, when it publishes on the lock's state topic, then the broker refuses it and cuts the camera off, and the gateway never sees it", async () => {
    const camera = await connectAs(cameraId);
    const closed = new Promise<void>((resolve) => camera.once('close', () => resolve()));
    const refusedBefore = embeddedBroker(sys).stats().publishesRefused;
    const dropsBefore = sys.gateway.drops();
    const lockBefore = sys.gateway.liveStatus(lockId);
    // Signed with the lock's key to make the point that only the ACL stands in the way here.
    camera.publish(lockTopic, JSON.stringify(lockState('unlocked')), { qos: 0 });
    await waitUntil(
      () => embeddedBroker(sys).stats().publishesRefused > refusedBefore,
      'the broker refused the publish',
    );
    expect(embeddedBroker(sys).stats().publishesRefused).toBe(refusedBefore + 1);
    await Promise.race([
      closed,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the camera was not cut off')), WAIT_MS),
      ),
    ]);
    expect(sys.gateway.drops()).toEqual(dropsBefore);
    expect(sys.gateway.liveStatus(lockId)).toEqual(lockBefore);
  });

  it("given the lock, when it publishes a camera state on the camera's topic, then the broker refuses it", async () => {
    // Taking the lock's client id over ends the test's earlier lock connection; the last
    // test connects again.
    const intruder = await connectAs(lockId);
    const cameraTopic = deviceTopic(creds.homeId, cameraId, 'state');
    const refusedBefore = embeddedBroker(sys).stats().publishesRefused;
    const fake = sign<CameraStateMessage>(lockKey, cameraTopic, {
      kind: 'camera',
      seq: 1,
      at: Date.now(),
      recording: true,
      sessionId: null,
    });
    intruder.publish(cameraTopic, JSON.stringify(fake), { qos: 0 });
    await waitUntil(
      () => embeddedBroker(sys).stats().publishesRefused > refusedBefore,
      'the broker refused the publish',
    );
    expect(sys.gateway.liveStatus(cameraId)?.state).toBeNull();
  });
});

describe('after all the garbage', () => {
  it('given the lock reconnects, when it publishes a valid signed state, then the gateway accepts it and the status changes', async () => {
    lock = await connectAs(lockId);
    const before = sys.gateway.liveStatus(lockId);
    const msg = lockState(
      before?.state?.kind === 'lock' && before.state.bolt === 'locked' ? 'unlocked' : 'locked',
    );
    const dropsBefore = sys.gateway.drops();
    await publishAccepted(msg);
    const after = sys.gateway.liveStatus(lockId);
    expect(after?.state).toEqual(msg);
    expect(after?.online).toBe(true);
    expect(after?.lastSeenAt).toBeGreaterThanOrEqual(before?.lastSeenAt ?? 0);
    expect(sys.gateway.drops()).toEqual(dropsBefore);
    const health = await fetch(`${sys.url}/api/health`);
    expect(health.status).toBe(200);
  });
});

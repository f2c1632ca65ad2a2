/**
 * The device gateway's heartbeat path: the session key it checks a heartbeat's MAC with is
 * derived once per camera and session and kept, so it must be the key of the session the
 * heartbeat names — never the one of the camera's previous session — and a heartbeat keeps
 * the camera's status current without changing a status already handed out. The gateway is
 * the real one; the broker side of its link is played by the test (messages handed to it as
 * the broker would).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { DeliverDeviceMessage } from '../broker/broker-link.ts';
import { deriveDeviceKey, deriveSessionKey, sign } from '../protocol/device-auth.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { DeviceGateway, type RegisteredDevice } from './device-gateway.ts';

const CAMERA: RegisteredDevice = { id: 'camera-1', homeId: 'home-1', kind: 'camera' };
const OTHER: RegisteredDevice = { id: 'camera-2', homeId: 'home-1', kind: 'camera' };
const DIGEST = 'ab'.repeat(32);

let clock: FakeClock;
let gateway: DeviceGateway;
let deliver: DeliverDeviceMessage;
const masterKey = randomBytes(32);
/** What the gateway passed on: session id, seq and whether the MAC held. */
let heard: { device: string; sessionId: string; seq: number; macValid: boolean }[];
let seq = 0;

beforeEach(async () => {
  clock = new FakeClock();
  gateway = new DeviceGateway({ masterKey, clock });
  gateway.register(CAMERA);
  gateway.register(OTHER);
  heard = [];
  gateway.addListener({
    onHeartbeat: (device, hb, macValid) =>
      heard.push({ device: device.id, sessionId: hb.sessionId, seq: hb.seq, macValid }),
  });
  await gateway.start({
    start: (d) => {
      deliver = d;
      return Promise.resolve();
    },
    publish: () => Promise.resolve(),
    stop: () => Promise.resolve(),
  });
});

afterEach(async () => {
  await gateway.stop();
});

/** A heartbeat of `device` naming `sessionId`, signed with the key of `signedFor`. */
async function heartbeat(
  device: RegisteredDevice,
  sessionId: string,
  signedFor = sessionId,
): Promise<void> {
  const topic = deviceTopic(device.homeId, device.id, 'heartbeat');
  const key = deriveSessionKey(deriveDeviceKey(masterKey, device.id), signedFor);
  const msg = sign(key, topic, {
    sessionId,
    seq: ++seq,
    capturedAt: clock.now(),
    frameDigest: DIGEST,
    recording: true,
  });
  await deliver(topic, Buffer.from(JSON.stringify(msg)));
}

describe('heartbeats at the gateway', () => {
  it('checks each heartbeat with the key of the session it names, as sessions change', async () => {
    await heartbeat(CAMERA, 'session-a');
    await heartbeat(CAMERA, 'session-a');
    // Signed for the session before: the key kept for that session must not vouch for it.
    await heartbeat(CAMERA, 'session-b', 'session-a');
    await heartbeat(CAMERA, 'session-b');
    await heartbeat(CAMERA, 'session-b');
    // And the key of the new session must not vouch for the old one either.
    await heartbeat(CAMERA, 'session-a', 'session-b');
    await heartbeat(CAMERA, 'session-a');
    expect(heard.map((h) => [h.sessionId, h.macValid])).toEqual([
      ['session-a', true],
      ['session-a', true],
      ['session-b', false],
      ['session-b', true],
      ['session-b', true],
      ['session-a', false],
      ['session-a', true],
    ]);
    expect(gateway.drops()).toEqual({ 'heartbeat-bad-mac': 2 });
  });

  it('keeps one camera’s session key from vouching for another camera’s heartbeats', async () => {
    await heartbeat(CAMERA, 'session-a');
    // camera-2 names the same session, signed with its own key: valid; with camera-1's: not.
    await heartbeat(OTHER, 'session-a');
    const topic = deviceTopic(OTHER.homeId, OTHER.id, 'heartbeat');
    const foreignKey = deriveSessionKey(deriveDeviceKey(masterKey, CAMERA.id), 'session-a');
    const forged = sign(foreignKey, topic, {
      sessionId: 'session-a',
      seq: ++seq,
      capturedAt: clock.now(),
      frameDigest: DIGEST,
      recording: true,
    });
    await deliver(topic, Buffer.from(JSON.stringify(forged)));
    await heartbeat(CAMERA, 'session-a');
    expect(heard.map((h) => [h.device, h.macValid])).toEqual([
      ['camera-1', true],
      ['camera-2', true],
      ['camera-2', false],
      ['camera-1', true],
    ]);
  });

  it('a heartbeat moves lastSeenAt and leaves a status already handed out as it was', async () => {
    expect(gateway.liveStatus(CAMERA.id)?.lastSeenAt).toBeNull();
    await heartbeat(CAMERA, 'session-a');
    const first = gateway.liveStatus(CAMERA.id)!;
    expect(first.lastSeenAt).toBe(clock.now());
    const firstAt = clock.now();
    clock.advance(500);
    await heartbeat(CAMERA, 'session-a');
    const second = gateway.liveStatus(CAMERA.id)!;
    expect(second.lastSeenAt).toBe(clock.now());
    // Statuses go out in events by reference: the one handed out before still says when.
    expect(first.lastSeenAt).toBe(firstAt);
    expect(second).toEqual({ ...first, lastSeenAt: clock.now() });
    // A heartbeat whose MAC fails is no sign of the camera.
    clock.advance(500);
    await heartbeat(CAMERA, 'session-a', 'session-x');
    expect(gateway.liveStatus(CAMERA.id)?.lastSeenAt).toBe(clock.now() - 500);
  });
});

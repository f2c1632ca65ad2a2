import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { deriveSessionKey, verifyMac } from '../protocol/device-auth.ts';
import type { CameraStateMessage } from '../protocol/device-messages.ts';
import { MemoryLink } from './memory-link.ts';
import { SimCamera } from './sim-camera.ts';

const KEY = new Uint8Array(32).fill(5);
// Small enough to render fast, large enough that the burnt-in clock changes the picture.
const SMALL = { width: 128, height: 96 };

function setup() {
  const clock = new FakeClock();
  const link = new MemoryLink({ homeId: 'home-1', deviceId: 'cam-1', deviceKey: KEY, clock });
  let doorOpen = false;
  const camera = new SimCamera(link, {
    clock,
    deviceKey: KEY,
    door: () => doorOpen,
    scene: SMALL,
  });
  link.connect();
  const heartbeats = () => link.payloads('heartbeat');
  const frames = () => link.payloads('frame');
  const arm = async (sessionId: string) => {
    const reply = await link.deliver(link.command({ action: 'arm', sessionId }));
    expect(reply).toMatchObject({ status: 'ok', data: { recording: true, sessionId } });
  };
  const setDoor = (open: boolean) => {
    doorOpen = open;
  };
  return { clock, link, camera, heartbeats, frames, arm, setDoor };
}

const sha256 = (b64: string) =>
  createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex');

describe('SimCamera', () => {
  it('reports that it is not recording on connect', () => {
    const { link } = setup();
    expect(link.payloads('state')).toMatchObject([
      { kind: 'camera', recording: false, sessionId: null },
    ]);
  });

  it('arms: state, then frames and heartbeats seq 0,1,2… MACd with the session key', async () => {
    const { clock, link, heartbeats, frames, arm } = setup();
    await arm('sess-a');
    const state = link.payloads('state').at(-1) as CameraStateMessage;
    expect(state).toMatchObject({ recording: true, sessionId: 'sess-a' });
    clock.advance(1_000);
    const beats = heartbeats();
    expect(beats.map((h) => h.seq)).toEqual([0, 1, 2]);
    const sessionKey = deriveSessionKey(KEY, 'sess-a');
    for (const beat of beats) {
      expect(verifyMac(sessionKey, link.topic('heartbeat'), beat)).toBe(true);
      expect(verifyMac(KEY, link.topic('heartbeat'), beat)).toBe(false);
    }
    const sent = frames();
    expect(sent).toHaveLength(3);
    sent.forEach((frame, i) => {
      expect(frame.digest).toBe(sha256(frame.jpeg));
      expect(beats[i]?.frameDigest).toBe(frame.digest);
      expect(beats[i]?.capturedAt).toBe(frame.capturedAt);
    });
    expect(new Set(sent.map((f) => f.digest)).size).toBe(3);
    expect(beats.map((h) => h.capturedAt)).toEqual(
      [0, 500, 1000].map((d) => clock.now() - 1000 + d),
    );
  });

  it('draws what the door does', async () => {
    const { clock, camera, arm, setDoor } = setup();
    await arm('sess-a');
    const closed = camera.latestFrame()!;
    setDoor(true);
    clock.advance(500);
    const open = camera.latestFrame()!;
    expect(open.capturedAt).toBe(closed.capturedAt + 500);
    expect(open.jpeg.length).not.toBe(closed.jpeg.length);
  });

  it('disarms: state not recording, no more heartbeats', async () => {
    const { clock, link, heartbeats, arm } = setup();
    await arm('sess-a');
    clock.advance(500);
    const reply = await link.deliver(link.command({ action: 'disarm' }));
    expect(reply).toMatchObject({ status: 'ok', data: { recording: false } });
    const count = heartbeats().length;
    clock.advance(5_000);
    expect(heartbeats()).toHaveLength(count);
    expect(link.payloads('state').at(-1)).toMatchObject({ recording: false, sessionId: null });
    expect(clock.pending()).toBe(0);
  });

  it('refuses arm without a session', async () => {
    const { link, heartbeats } = setup();
    const reply = await link.deliver(link.command({ action: 'arm' }));
    expect(reply).toMatchObject({ status: 'error', error: { code: 'command.invalid' } });
    expect(heartbeats()).toHaveLength(0);
  });

  it('frozen: seq grows, the digest repeats, times look fresh', async () => {
    const { clock, camera, heartbeats, arm } = setup();
    await arm('sess-a');
    clock.advance(500);
    camera.freeze();
    const frozenAt = heartbeats().length;
    clock.advance(2_000);
    const after = heartbeats().slice(frozenAt);
    expect(after.map((h) => h.seq)).toEqual([2, 3, 4, 5]);
    expect(new Set(after.map((h) => h.frameDigest))).toEqual(
      new Set([heartbeats()[frozenAt - 1]?.frameDigest]),
    );
    expect(after.at(-1)?.capturedAt).toBe(clock.now());
    camera.unfreeze();
    clock.advance(500);
    expect(heartbeats().at(-1)?.frameDigest).not.toBe(after.at(-1)?.frameDigest);
  });

  it('loop: the picture changes but cycles through the last n frames', async () => {
    const { clock, camera, heartbeats, arm } = setup();
    await arm('sess-a');
    clock.advance(1_000);
    const last3 = heartbeats().map((h) => h.frameDigest);
    camera.loop(3);
    const start = heartbeats().length;
    clock.advance(3_000);
    const looped = heartbeats()
      .slice(start)
      .map((h) => h.frameDigest);
    expect(looped).toEqual([...last3, ...last3]);
  });

  it('forge: heartbeats whose MAC fails with the session key', async () => {
    const { clock, link, camera, heartbeats, arm } = setup();
    await arm('sess-a');
    camera.forge(true);
    clock.advance(1_000);
    const key = deriveSessionKey(KEY, 'sess-a');
    const verified = heartbeats().map((h) => verifyMac(key, link.topic('heartbeat'), h));
    expect(verified).toEqual([true, false, false]);
    camera.forge(false);
    clock.advance(500);
    expect(verifyMac(key, link.topic('heartbeat'), heartbeats().at(-1)!)).toBe(true);
  });

  it('replay: sends an old session’s heartbeats unchanged; they fail the new session key', async () => {
    const { clock, link, camera, heartbeats, arm } = setup();
    await arm('sess-old');
    clock.advance(1_000);
    const recorded = camera.recordedHeartbeats('sess-old');
    expect(recorded.map((h) => h.seq)).toEqual([0, 1, 2]);
    await arm('sess-new');
    const start = heartbeats().length;
    camera.startReplay(recorded);
    clock.advance(2_500);
    const replayed = heartbeats().slice(start);
    expect(replayed).toEqual([...recorded, ...recorded]);
    expect(heartbeats()[start - 1]).toMatchObject({ sessionId: 'sess-new', seq: 0 });
    const newKey = deriveSessionKey(KEY, 'sess-new');
    const oldKey = deriveSessionKey(KEY, 'sess-old');
    for (const beat of replayed) {
      expect(beat.sessionId).toBe('sess-old');
      expect(verifyMac(newKey, link.topic('heartbeat'), beat)).toBe(false);
      expect(verifyMac(oldKey, link.topic('heartbeat'), beat)).toBe(true);
    }
    camera.stopReplay();
    clock.advance(500);
    expect(heartbeats().at(-1)).toMatchObject({ sessionId: 'sess-new' });
  });

  it('keeps counting while offline, and records only what went out', async () => {
    const { clock, link, camera, heartbeats, arm } = setup();
    await arm('sess-a');
    link.disconnect();
    clock.advance(1_000);
    link.connect();
    clock.advance(500);
    expect(heartbeats().map((h) => h.seq)).toEqual([0, 3]);
    expect(camera.recordedHeartbeats().map((h) => h.seq)).toEqual([0, 3]);
    expect(link.stats().dropped.heartbeat).toBe(2);
  });
});

import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { deriveSessionKey, verifyMac } from '../protocol/device-auth.ts';
import {
  decodePinList,
  type LockStateMessage,
  type ReplyMessage,
} from '../protocol/device-messages.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
import { MemoryLink } from '../devices/memory-link.ts';
import { silentLogger } from '../devices/device-connection.ts';
import { CameraBridge, DoorSensorBridge, LockBridge } from './bridges.ts';
import { MemoryCamera, MemoryContact, MemoryLock } from './drivers/memory.ts';
import { DoorGuard } from './local-guard.ts';
import { PinBook } from './pin-book.ts';

const LOCK_KEY = new Uint8Array(32).fill(3);
const DOOR_KEY = new Uint8Array(32).fill(4);
const CAMERA_KEY = new Uint8Array(32).fill(5);
const SESSION = 'sess-42';

async function home() {
  const clock = new FakeClock();
  const identity = (deviceId: string, deviceKey: Uint8Array) =>
    new MemoryLink({ homeId: 'home-1', deviceId, deviceKey, clock });
  const links = {
    lock: identity('lock-1', LOCK_KEY),
    door: identity('door-1', DOOR_KEY),
    camera: identity('camera-1', CAMERA_KEY),
  };
  const lock = new MemoryLock({ id: 'lock-1', clock, motorDelayMs: 300 });
  const contact = new MemoryContact({ id: 'door-1', clock });
  const camera = new MemoryCamera({
    id: 'camera-1',
    clock,
    frameIntervalMs: 500,
    picture: (at) => Buffer.from(`jpeg of ${at}`),
  });
  await Promise.all([lock.start(), contact.start(), camera.start()]);
  const recorded: string[] = [];
  // The guard is made before the bridges it calls back.
  const bridges: { lock?: LockBridge; camera?: CameraBridge } = {};
  const guard = new DoorGuard({
    clock,
    lock,
    door: contact,
    hasCamera: true,
    cutOffMs: 30_000,
    actions: {
      record: (name, _s, why) => recorded.push(`${name}: ${why}`),
      relocked: (reasons) => bridges.lock?.hubRelocked(reasons),
      disarmCamera: (id) => bridges.camera?.disarmLocally(id),
      warn: () => {},
    },
  });
  const pins = new PinBook({
    pins: lock.pins!,
    deviceKey: LOCK_KEY,
    clock,
    statePath: null,
    logger: silentLogger,
  });
  bridges.lock = new LockBridge({
    connection: links.lock,
    driver: lock,
    clock,
    guard,
    pins,
    defaultRelockMs: 30_000,
    logger: silentLogger,
  });
  new DoorSensorBridge({ connection: links.door, driver: contact, clock, guard });
  bridges.camera = new CameraBridge({
    connection: links.camera,
    driver: camera,
    clock,
    deviceKey: CAMERA_KEY,
    guard,
    logger: silentLogger,
  });
  for (const l of Object.values(links)) l.connect();
  guard.linkChanged(true);
  /** Delivers a command and lets the fake clock run until the device replied. */
  const send = async (link: MemoryLink, fields: Parameters<MemoryLink['command']>[0]) => {
    const reply = link.deliver(link.command(fields));
    for (let i = 0; i < 20; i++) {
      await Promise.resolve();
      clock.advance(100);
    }
    return (await reply) as ReplyMessage;
  };
  const lockStates = () => links.lock.payloads('state') as LockStateMessage[];
  return { clock, links, lock, contact, camera, guard, recorded, send, lockStates };
}

describe('LockBridge', () => {
  it('reports the bolt the lock reported, signed, as the reference lock does', async () => {
    const { links, lockStates } = await home();
    expect(lockStates()).toHaveLength(1);
    const state = lockStates()[0]!;
    expect(state).toMatchObject({ kind: 'lock', bolt: 'locked', autoRelockAt: null });
    expect(verifyMac(LOCK_KEY, links.lock.topic('state'), state)).toBe(true);
  });

  it('unlocks with a deadline it enforces, replying once the lock confirmed', async () => {
    const { clock, links, lock, send, lockStates } = await home();
    const sent = clock.now();
    const reply = await send(links.lock, {
      action: 'unlock',
      sessionId: SESSION,
      relockAfterMs: 5_000,
    });
    expect(reply).toMatchObject({ status: 'ok', data: { bolt: 'unlocked' } });
    const unlocked = lockStates().find((s) => s.bolt === 'unlocked')!;
    expect(unlocked.changedAt).toBe(sent + 300);
    expect(unlocked.autoRelockAt).toBe(sent + 300 + 5_000);
    clock.advance(10_000);
    expect(lock.bolt()).toBe('locked');
    expect(lockStates().at(-1)).toMatchObject({ bolt: 'locked', autoRelockAt: null });
    expect(links.lock.payloads('event').map((e) => e.name)).toEqual(['lock.auto-relocked']);
  });

  it('answers lock.jammed when the bolt jams, and command.failed when the lock is away', async () => {
    const { links, lock, send } = await home();
    lock.jam();
    expect(await send(links.lock, { action: 'unlock' })).toMatchObject({
      status: 'error',
      error: { code: 'lock.jammed' },
    });
    expect(links.lock.payloads('event').map((e) => e.name)).toEqual(['lock.jammed']);
    lock.setAvailable(false);
    expect(await send(links.lock, { action: 'lock' })).toMatchObject({
      status: 'error',
      error: { code: 'command.failed' },
    });
    expect(await send(links.lock, { action: 'arm', sessionId: SESSION })).toMatchObject({
      error: { code: 'command.unsupported' },
    });
  });

  it('writes PINs and lists digests only, which match what the control plane computes', async () => {
    const { links, lock, send } = await home();
    expect(
      await send(links.lock, { action: 'pin.set', slot: 3, code: '482915', name: 'Cleaner' }),
    ).toMatchObject({ status: 'ok', data: { slot: 3 } });
    expect(lock.pins!.codeIn(3)).toBe('482915');
    expect(await send(links.lock, { action: 'pin.set', slot: 4, code: '482915' })).toMatchObject({
      error: { code: 'command.invalid' },
    });
    lock.pins!.setLocally(7, '777777');
    const reply = await send(links.lock, { action: 'pin.list' });
    expect(reply.status).toBe('ok');
    const list = decodePinList(reply.status === 'ok' ? reply.data : null);
    expect(list).not.toBeNull();
    expect(list!.capacity).toBe(30);
    expect(list!.slots.map((s) => s.slot)).toEqual([3, 7]);
    expect(list!.slots[0]!.digest).toBe(pinDigest(LOCK_KEY, 3, '482915'));
    // A code set by hand is listed with a digest that matches no code the server wrote.
    expect(list!.slots[1]!.digest).not.toBe(pinDigest(LOCK_KEY, 7, '777777'));
    expect(JSON.stringify(links.lock.messages())).not.toContain('482915');
    expect(await send(links.lock, { action: 'pin.clear', slot: 3 })).toMatchObject({
      status: 'ok',
    });
    expect(lock.pins!.codeIn(3)).toBeUndefined();
  });

  it('keeps a code on the lock only inside its window', async () => {
    const { clock, links, lock, send } = await home();
    const from = clock.now() + 60_000;
    const until = from + 60_000;
    await send(links.lock, {
      action: 'pin.set',
      slot: 2,
      code: '2468',
      fromMs: from,
      untilMs: until,
    });
    expect(lock.pins!.codeIn(2)).toBeUndefined();
    clock.advanceTo(from);
    await Promise.resolve();
    expect(lock.pins!.codeIn(2)).toBe('2468');
    const reply = await send(links.lock, { action: 'pin.list' });
    expect(reply.status === 'ok' && reply.data).toMatchObject({
      slots: [{ slot: 2, fromMs: from, untilMs: until }],
    });
    // A revocation: the window now ends at once.
    await send(links.lock, { action: 'pin.window', slot: 2, fromMs: 0, untilMs: 0 });
    expect(lock.pins!.codeIn(2)).toBeUndefined();
    expect(await send(links.lock, { action: 'pin.window', slot: 9 })).toMatchObject({
      error: { code: 'command.invalid' },
    });
  });

  it('passes keypad events on and gives a keypad unlock the default deadline', async () => {
    const { clock, links, lock, send } = await home();
    await send(links.lock, { action: 'pin.set', slot: 1, code: '1357' });
    lock.enterCode('0000');
    lock.keypadUnlock(1);
    clock.advance(300);
    const events = links.lock.payloads('event');
    expect(events.map((e) => e.name)).toEqual(['keypad.wrong-code', 'keypad.unlocked']);
    expect(events[0]).toMatchObject({ attempt: 1 });
    expect(events[1]).toMatchObject({ slot: 1 });
    expect(links.lock.payloads('state').at(-1)).toMatchObject({
      bolt: 'unlocked',
      autoRelockAt: clock.now() + 30_000,
    });
    clock.advance(30_000 + 300);
    expect(lock.bolt()).toBe('locked');
  });

  it('refuses an unlock for a session whose camera the hub saw go silent', async () => {
    const { clock, links, camera, recorded, send } = await home();
    await send(links.camera, { action: 'arm', sessionId: SESSION });
    await send(links.lock, { action: 'unlock', sessionId: SESSION, relockAfterMs: 60_000 });
    camera.setAvailable(false);
    clock.advance(3_000);
    expect(recorded).toEqual([
      expect.stringMatching(/^hub.dead-man: observation lost/),
      'hub.relocked: dead-man',
    ]);
    expect(
      await send(links.lock, { action: 'unlock', sessionId: SESSION, relockAfterMs: 60_000 }),
    ).toMatchObject({ status: 'error', error: { code: 'command.failed' } });
  });
});

describe('DoorSensorBridge', () => {
  it('reports the door and its changes as the reference sensor does', async () => {
    const { clock, links, contact, send } = await home();
    clock.advance(1_000);
    contact.open();
    contact.close();
    expect(links.door.payloads('state').map((s) => s.kind === 'door-sensor' && s.position)).toEqual(
      ['closed', 'open', 'closed'],
    );
    expect(links.door.payloads('event').map((e) => e.name)).toEqual(['door.opened', 'door.closed']);
    expect(await send(links.door, { action: 'report' })).toMatchObject({
      data: { position: 'closed', changedAt: clock.now() - 2_000 },
    });
    expect(await send(links.door, { action: 'unlock' })).toMatchObject({
      error: { code: 'command.unsupported' },
    });
  });
});

describe('CameraBridge', () => {
  it('when armed, sends each frame it received and a heartbeat naming it, MACd with the session key', async () => {
    const { clock, links, camera, send } = await home();
    const reply = await send(links.camera, { action: 'arm', sessionId: SESSION });
    expect(reply).toMatchObject({ status: 'ok', data: { recording: true, sessionId: SESSION } });
    clock.advance(1_000);
    const beats = links.camera.payloads('heartbeat');
    const frames = links.camera.payloads('frame');
    expect(beats.length).toBeGreaterThanOrEqual(6);
    expect(beats.map((b) => b.seq)).toEqual(beats.map((_, i) => i));
    const key = deriveSessionKey(CAMERA_KEY, SESSION);
    for (const b of beats) expect(verifyMac(key, links.camera.topic('heartbeat'), b)).toBe(true);
    expect(frames.at(-1)!.digest).toBe(beats.at(-1)!.frameDigest);
    expect(frames.at(-1)!.digest).toBe(camera.latest()!.digest);
    // Each message follows the frame it names.
    const order = links.camera.messages().map((m) => m.channel);
    expect(order.indexOf('frame')).toBeLessThan(order.indexOf('heartbeat'));
  });

  it('names the same digest while the picture is still, and falls silent when the stream stalls', async () => {
    const { clock, links, camera, send } = await home();
    await send(links.camera, { action: 'arm', sessionId: SESSION });
    camera.setMode('still');
    clock.advance(500);
    links.camera.clear();
    clock.advance(2_000);
    const digests = links.camera.payloads('heartbeat').map((b) => b.frameDigest);
    expect(digests.length).toBe(4);
    expect(new Set(digests).size).toBe(1);
    camera.setMode('stalled');
    clock.advance(1_250);
    links.camera.clear();
    clock.advance(1_000);
    expect(links.camera.payloads('heartbeat')).toEqual([]);
    camera.setMode('live');
    clock.advance(500);
    expect(links.camera.payloads('heartbeat')).toHaveLength(1);
    camera.setAvailable(false);
    links.camera.clear();
    clock.advance(1_000);
    expect(links.camera.payloads('heartbeat')).toEqual([]);
  });

  it('stops on disarm and says so', async () => {
    const { clock, links, send } = await home();
    await send(links.camera, { action: 'arm', sessionId: SESSION });
    await send(links.camera, { action: 'disarm' });
    links.camera.clear();
    clock.advance(2_000);
    expect(links.camera.payloads('heartbeat')).toEqual([]);
    expect(await send(links.camera, { action: 'report' })).toMatchObject({
      data: { recording: false, sessionId: null },
    });
    expect(await send(links.camera, { action: 'arm' })).toMatchObject({
      error: { code: 'command.invalid' },
    });
  });
});

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
import type { ListedDeliveryMessage } from '../protocol/grant-list.ts';
import { payloadOf, testGrantSigner } from '../../test/grant-lists.ts';
import { CameraBridge, DoorSensorBridge, LockBridge } from './bridges.ts';
import { MemoryCamera, MemoryContact, MemoryLock } from './drivers/memory.ts';
import { GrantBook } from './grant-book.ts';
import { DoorGuard } from './local-guard.ts';
import { PinBook } from './pin-book.ts';

const LOCK_KEY = new Uint8Array(32).fill(3);
const DOOR_KEY = new Uint8Array(32).fill(4);
const CAMERA_KEY = new Uint8Array(32).fill(5);
const SESSION = 'sess-42';
const GRANT = 'grant-d1';
const MAX_AGE = 900_000;

/** A delivery booked under `grantId`, as the control plane lists it. */
function delivery(grantId = GRANT): ListedDeliveryMessage {
  return { grantId, deliveryId: 'delivery-1', courierId: 'courier-1', fromMs: 0, untilMs: 1 };
}

async function home(options: { withGrants?: boolean } = {}) {
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
  const signer = testGrantSigner({ homeId: 'home-1', lockId: 'lock-1' });
  const grants =
    options.withGrants === false
      ? null
      : new GrantBook({
          homeId: 'home-1',
          lockId: 'lock-1',
          publicKey: signer.publicKey,
          maxAgeMs: MAX_AGE,
          clock,
          statePath: null,
          logger: silentLogger,
        });
  let version = 0;
  /** The control plane's list for the lock, issued `agoMs` ago, booking these deliveries. */
  const publishList = (deliveries: ListedDeliveryMessage[], agoMs = 0) => {
    version += 1;
    const signed = signer.list({ version, issuedAtMs: clock.now() - agoMs, deliveries });
    expect(grants!.take(payloadOf(signed))).toMatchObject({ taken: true });
  };
  const pins = new PinBook({
    pins: lock.pins!,
    deviceKey: LOCK_KEY,
    clock,
    statePath: null,
    logger: silentLogger,
    grants,
  });
  bridges.lock = new LockBridge({
    connection: links.lock,
    driver: lock,
    clock,
    guard,
    pins,
    defaultRelockMs: 30_000,
    grants,
    refused: (sessionId, why) => recorded.push(`refused ${sessionId}: ${why}`),
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
  /** Delivers a command and lets the fake clock run (2 s by default) until the device replied. */
  const send = async (
    link: MemoryLink,
    fields: Parameters<MemoryLink['command']>[0],
    runMs = 2_000,
  ) => {
    const reply = link.deliver(link.command(fields));
    for (let i = 0; i < runMs / 100; i++) {
      await Promise.resolve();
      clock.advance(100);
    }
    return (await reply) as ReplyMessage;
  };
  const lockStates = () => links.lock.payloads('state') as LockStateMessage[];
  return {
    clock,
    links,
    lock,
    contact,
    camera,
    guard,
    recorded,
    send,
    lockStates,
    publishList,
  };
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
    const { clock, links, lock, send, lockStates, publishList } = await home();
    publishList([delivery()]);
    const sent = clock.now();
    const reply = await send(links.lock, {
      action: 'unlock',
      sessionId: SESSION,
      accessKind: 'courier',
      grantId: GRANT,
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
    const { clock, links, camera, recorded, send, publishList } = await home();
    publishList([delivery()]);
    await send(links.camera, { action: 'arm', sessionId: SESSION });
    expect(
      await send(links.lock, {
        action: 'unlock',
        sessionId: SESSION,
        accessKind: 'courier',
        grantId: GRANT,
        relockAfterMs: 60_000,
      }),
    ).toMatchObject({ status: 'ok' });
    camera.setAvailable(false);
    clock.advance(3_000);
    expect(recorded).toEqual([
      expect.stringMatching(/^hub.dead-man: observation lost/),
      'hub.relocked: dead-man',
    ]);
    expect(
      await send(links.lock, {
        action: 'unlock',
        sessionId: SESSION,
        accessKind: 'courier',
        grantId: GRANT,
        relockAfterMs: 60_000,
      }),
    ).toMatchObject({ status: 'error', error: { code: 'command.failed' } });
  });
});

describe('LockBridge: courier unlocks and the grant list', () => {
  const courier = (grantId = GRANT) =>
    ({
      action: 'unlock',
      sessionId: SESSION,
      accessKind: 'courier',
      grantId,
      relockAfterMs: 60_000,
    }) as const;

  it('refuses a courier at once on a stale list, and says why, without moving the bolt', async () => {
    const { clock, links, lock, recorded, publishList } = await home();
    publishList([delivery()], MAX_AGE + 12_000);
    const sent = clock.now();
    const reply = links.lock.deliver(links.lock.command(courier()));
    await Promise.resolve();
    // Refused before any time passed: a stale list is not waited on.
    expect(clock.now()).toBe(sent);
    expect(await reply).toMatchObject({
      status: 'error',
      error: {
        code: 'grants.stale',
        message: 'courier unlock refused: grant list 912 s old (bound 900 s)',
      },
    });
    clock.advance(2_000);
    expect(lock.actualBolt()).toBe('locked');
    expect(recorded).toEqual([
      `refused ${SESSION}: courier unlock refused: grant list 912 s old (bound 900 s)`,
    ]);
  });

  it('waits for a list naming the grant, and opens when it comes', async () => {
    const { clock, links, lock, send, publishList } = await home();
    publishList([]);
    const reply = links.lock.deliver(links.lock.command(courier()));
    clock.advance(2_000);
    await Promise.resolve();
    expect(lock.actualBolt()).toBe('locked');
    publishList([delivery()]);
    for (let i = 0; i < 10; i++) {
      await Promise.resolve();
      clock.advance(100);
    }
    expect(await reply).toMatchObject({ status: 'ok', data: { bolt: 'unlocked' } });
    expect(lock.actualBolt()).toBe('unlocked');
    // The next courier of the same delivery needs no wait.
    expect(await send(links.lock, { action: 'lock' })).toMatchObject({ status: 'ok' });
    expect(await send(links.lock, courier(), 500)).toMatchObject({ status: 'ok' });
  });

  it('refuses, after the wait, a grant the list does not name and a hub with no list', async () => {
    const { clock, links, lock, send, publishList, recorded } = await home();
    const noList = links.lock.deliver(links.lock.command(courier()));
    clock.advance(2_999);
    await Promise.resolve();
    expect(links.lock.payloads('reply')).toEqual([]);
    clock.advance(1);
    expect(await noList).toMatchObject({
      error: {
        code: 'grants.none',
        message:
          'courier unlock refused: the hub has received no grant list from the control plane',
      },
    });
    publishList([delivery('grant-other')]);
    expect(await send(links.lock, courier(), 3_500)).toMatchObject({
      error: {
        code: 'grants.not-listed',
        message: `courier unlock refused: grant ${GRANT} is not in the grant list (version 1)`,
      },
    });
    // An unlock in a session that does not say whom it lets in is read as a courier's.
    expect(
      await send(links.lock, { action: 'unlock', sessionId: SESSION, grantId: GRANT }, 3_500),
    ).toMatchObject({ error: { code: 'grants.not-listed' } });
    expect(lock.actualBolt()).toBe('locked');
    expect(recorded).toHaveLength(3);
  });

  it("does not check guests' or the household's unlocks against the list", async () => {
    const { links, lock, send, publishList } = await home();
    publishList([], MAX_AGE * 10);
    expect(
      await send(links.lock, { action: 'unlock', accessKind: 'household', sessionId: SESSION }),
    ).toMatchObject({ status: 'ok' });
    await send(links.lock, { action: 'lock' });
    expect(
      await send(links.lock, { action: 'unlock', accessKind: 'guest', sessionId: SESSION }),
    ).toMatchObject({ status: 'ok' });
    await send(links.lock, { action: 'lock' });
    // An unlock outside any session (the owner's remote unlock from an older control plane).
    expect(await send(links.lock, { action: 'unlock' })).toMatchObject({ status: 'ok' });
    expect(lock.actualBolt()).toBe('unlocked');
  });

  it('without a grant book refuses every courier at once', async () => {
    const { clock, links, lock } = await home({ withGrants: false });
    const sent = clock.now();
    const reply = await links.lock.deliver(links.lock.command(courier()));
    expect(clock.now()).toBe(sent);
    expect(reply).toMatchObject({ error: { code: 'grants.none' } });
    expect(lock.actualBolt()).toBe('locked');
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

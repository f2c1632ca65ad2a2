/**
 * The simulated home against the real embedded broker on loopback, with the server side played
 * by a real mqtt.js client holding the server's credentials. Waits are bounded; nothing sleeps
 * except "this must not happen" windows, which are short and explicit.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// The broker is this test's counterpart, not a dependency of src/devices.
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/broker/embedded-broker.ts';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { deriveDeviceKey, deriveSessionKey, sign, verifyMac } from '../src/protocol/device-auth.ts';
import type {
  CommandMessage,
  FrameMessage,
  HeartbeatMessage,
  ReplyMessage,
} from '../src/protocol/device-messages.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { SERVER_SUBSCRIPTION, deviceTopic, parseDeviceTopic } from '../src/protocol/topics.ts';
import { DeviceLink } from '../src/devices/device-link.ts';
import { SimHome } from '../src/devices/sim-home.ts';

const MASTER = randomBytes(32);
const HOME = 'home-1';
const IDS = { lock: 'lock-1', doorSensor: 'door-1', camera: 'cam-1' } as const;
const keyOf = (id: string) => deriveDeviceKey(MASTER, id);
const STEP_MS = 3_000;

interface Seen {
  readonly deviceId: string;
  readonly channel: string;
  readonly topic: string;
  readonly payload: Record<string, unknown>;
  readonly at: number;
}

/** The server's side of the wire: everything devices publish, and commands to send. */
class ServerProbe {
  readonly seen: Seen[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const parsed = parseDeviceTopic(topic);
      if (parsed === null) return;
      this.seen.push({
        deviceId: parsed.deviceId,
        channel: parsed.channel,
        topic,
        payload: JSON.parse(payload.toString('utf8')) as Record<string, unknown>,
        at: Date.now(),
      });
      for (const w of [...this.waiters]) w();
    });
  }

  /** Messages of one device and channel, oldest first, optionally from an index on. */
  of(deviceId: string, channel: string, from = 0): Seen[] {
    return this.seen.slice(from).filter((m) => m.deviceId === deviceId && m.channel === channel);
  }

  /** Resolves with the first message from `from` on that matches, or fails after `ms`. */
  waitFor(what: string, match: (m: Seen) => boolean, from = 0, ms = STEP_MS): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.seen.slice(from).find(match);
        if (hit === undefined) return false;
        finish();
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(onMessage);
      };
      const onMessage = () => void check();
      this.waiters.add(onMessage);
      check();
    });
  }

  /** Signs (with `key`, default the device's own) and sends a command; returns its payload. */
  command(
    deviceId: string,
    fields: Partial<Omit<CommandMessage, 'mac'>> & Pick<CommandMessage, 'action'>,
    key: Uint8Array = keyOf(deviceId),
  ): Buffer {
    const now = Date.now();
    const topic = deviceTopic(HOME, deviceId, 'command');
    const message = sign<CommandMessage>(key, topic, {
      id: randomBytes(12).toString('base64url'),
      nonce: randomBytes(18).toString('base64url'),
      issuedAt: now,
      expiresAt: now + 30_000,
      ...fields,
    });
    const payload = Buffer.from(JSON.stringify(message));
    this.send(deviceId, payload);
    return payload;
  }

  send(deviceId: string, payload: Buffer): void {
    this.client.publish(deviceTopic(HOME, deviceId, 'command'), payload, { qos: 1 });
  }

  /** Waits for the reply to a command payload and checks its MAC. */
  async reply(deviceId: string, payload: Buffer): Promise<ReplyMessage> {
    const id = (JSON.parse(payload.toString('utf8')) as { id: string }).id;
    const seen = await this.waitFor(
      `reply to ${id}`,
      (m) => m.deviceId === deviceId && m.channel === 'reply' && m.payload['id'] === id,
    );
    const reply = seen.payload as unknown as ReplyMessage;
    expect(verifyMac(keyOf(deviceId), seen.topic, reply)).toBe(true);
    return reply;
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `done` until it holds, or fails after `timeoutMs`. */
async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await delay(20);
  }
}

let broker: EmbeddedBroker;
let home: SimHome;
let server: ServerProbe;

beforeEach(async () => {
  broker = await startEmbeddedBroker({
    masterKey: MASTER,
    lookupDevice: (id) => (Object.values(IDS).includes(id as never) ? { homeId: HOME } : undefined),
    server: serverMqttCredentials(MASTER),
  });
  const credentials = serverMqttCredentials(MASTER);
  const client = await connectAsync(broker.url, {
    clientId: `threshold-server-${randomBytes(4).toString('hex')}`,
    username: credentials.username,
    password: credentials.password,
    reconnectPeriod: 0,
  });
  server = new ServerProbe(client);
  await client.subscribeAsync(SERVER_SUBSCRIPTION, { qos: 1 });
  home = new SimHome({
    brokerUrl: broker.url,
    homeId: HOME,
    devices: {
      lock: { id: IDS.lock, key: keyOf(IDS.lock) },
      doorSensor: { id: IDS.doorSensor, key: keyOf(IDS.doorSensor).toString('base64url') },
      camera: { id: IDS.camera, key: keyOf(IDS.camera) },
    },
    clock: systemClock,
    options: {
      link: { reconnectPeriodMs: 100 },
      lock: { motorDelayMs: 100 },
      camera: { heartbeatIntervalMs: 200, frameIntervalMs: 200, scene: { width: 128, height: 96 } },
    },
  });
  await home.start();
  // Tests count messages from a point on; the connect-time reports must be in before that.
  for (const id of Object.values(IDS)) {
    await server.waitFor(`${id} state`, (m) => m.deviceId === id && m.channel === 'state');
  }
});

afterEach(async () => {
  await home.stop();
  await server.client.endAsync(true);
  await broker.close();
});

describe('SimHome on the embedded broker', () => {
  it('connects all three devices: availability and state of each', async () => {
    for (const id of Object.values(IDS)) {
      await server.waitFor(
        `${id} online`,
        (m) => m.deviceId === id && m.channel === 'availability' && m.payload['online'] === true,
      );
      await server.waitFor(`${id} state`, (m) => m.deviceId === id && m.channel === 'state');
    }
    expect(broker.stats()).toMatchObject({ connectionsRefused: 0, publishesRefused: 0 });
  });

  describe('commands', () => {
    it('acts on a good unlock, relocks by itself after relockAfterMs, and says so', async () => {
      const from = server.seen.length;
      const sent = Date.now();
      const cmd = server.command(IDS.lock, { action: 'unlock', relockAfterMs: 1_000 });
      const reply = await server.reply(IDS.lock, cmd);
      expect(reply).toMatchObject({ status: 'ok', data: { bolt: 'unlocked' } });
      const unlocked = await server.waitFor(
        'unlocked state',
        (m) => m.deviceId === IDS.lock && m.channel === 'state' && m.payload['bolt'] === 'unlocked',
        from,
      );
      const autoRelockAt = unlocked.payload['autoRelockAt'] as number;
      expect(autoRelockAt - (unlocked.payload['changedAt'] as number)).toBe(1_000);
      const relocked = await server.waitFor(
        'auto-relocked event',
        (m) => m.deviceId === IDS.lock && m.channel === 'event',
        from,
      );
      expect(relocked.payload['name']).toBe('lock.auto-relocked');
      expect(verifyMac(keyOf(IDS.lock), relocked.topic, relocked.payload as never)).toBe(true);
      expect(relocked.at - sent).toBeGreaterThanOrEqual(1_000);
      expect(home.lock.bolt()).toBe('locked');
      const lastState = server.of(IDS.lock, 'state', from).at(-1);
      expect(lastState?.payload).toMatchObject({ bolt: 'locked', autoRelockAt: null });
    });

    it.each([
      [
        'a bad MAC',
        'command.bad-mac',
        () => server.command(IDS.lock, { action: 'unlock' }, randomBytes(32)),
      ],
      [
        'an expired command',
        'command.expired',
        () =>
          server.command(IDS.lock, {
            action: 'unlock',
            issuedAt: Date.now() - 20 * 60_000,
            expiresAt: Date.now() - 10 * 60_000,
          }),
      ],
      [
        'a command issued in the future',
        'command.expired',
        () =>
          server.command(IDS.lock, {
            action: 'unlock',
            issuedAt: Date.now() + 10 * 60_000,
            expiresAt: Date.now() + 11 * 60_000,
          }),
      ],
    ])('refuses %s with %s and does not move the bolt', async (_what, code, send) => {
      const from = server.seen.length;
      const reply = await server.reply(IDS.lock, send());
      expect(reply).toMatchObject({ status: 'error', error: { code } });
      // A later command is answered, so the refused one had every chance to act first.
      await server.reply(IDS.lock, server.command(IDS.lock, { action: 'report' }));
      await delay(300);
      expect(home.lock.bolt()).toBe('locked');
      const bolts = server.of(IDS.lock, 'state', from).map((m) => m.payload['bolt']);
      expect(bolts).toEqual(['locked']);
    });

    it('refuses a replayed unlock after the lock relocked', async () => {
      const cmd = server.command(IDS.lock, { action: 'unlock', relockAfterMs: 1_000 });
      expect((await server.reply(IDS.lock, cmd)).status).toBe('ok');
      const from = server.seen.length;
      await server.waitFor('relock', (m) => m.channel === 'event', from);
      const replayFrom = server.seen.length;
      server.send(IDS.lock, cmd);
      const replay = await server.waitFor(
        'reply to the replay',
        (m) => m.deviceId === IDS.lock && m.channel === 'reply',
        replayFrom,
      );
      expect(replay.payload).toMatchObject({
        status: 'error',
        error: { code: 'command.replayed' },
      });
      await delay(300);
      expect(home.lock.bolt()).toBe('locked');
      expect(server.of(IDS.lock, 'state', replayFrom)).toEqual([]);
    });
  });

  describe('lock', () => {
    it('waits for the door to be closed before relocking', async () => {
      const cmd = server.command(IDS.lock, { action: 'unlock', relockAfterMs: 1_000 });
      expect((await server.reply(IDS.lock, cmd)).status).toBe('ok');
      home.doorSensor.open();
      await server.waitFor(
        'door open',
        (m) => m.deviceId === IDS.doorSensor && m.payload['position'] === 'open',
      );
      await delay(1_500);
      expect(home.lock.bolt()).toBe('unlocked');
      expect(home.lock.isWaitingForDoor()).toBe(true);
      const from = server.seen.length;
      home.doorSensor.close();
      await server.waitFor(
        'relocked after the door closed',
        (m) => m.deviceId === IDS.lock && m.channel === 'state' && m.payload['bolt'] === 'locked',
        from,
      );
      const event = await server.waitFor(
        'event',
        (m) => m.deviceId === IDS.lock && m.channel === 'event',
        from,
      );
      expect(event.payload['name']).toBe('lock.auto-relocked');
    });

    it('jams: error reply, state jammed, event lock.jammed', async () => {
      home.lock.jam();
      const from = server.seen.length;
      const reply = await server.reply(
        IDS.lock,
        server.command(IDS.lock, { action: 'unlock', relockAfterMs: 1_000 }),
      );
      expect(reply).toMatchObject({ status: 'error', error: { code: 'lock.jammed' } });
      const states = server.of(IDS.lock, 'state', from).map((m) => m.payload['bolt']);
      expect(states).toEqual(['jammed']);
      expect(server.of(IDS.lock, 'event', from).map((m) => m.payload['name'])).toEqual([
        'lock.jammed',
      ]);
    });
  });

  describe('camera', () => {
    const heartbeatsOf = (from: number) =>
      server.of(IDS.camera, 'heartbeat', from).map((m) => m.payload as unknown as HeartbeatMessage);
    const topic = deviceTopic(HOME, IDS.camera, 'heartbeat');

    async function arm(sessionId: string): Promise<number> {
      const from = server.seen.length;
      const reply = await server.reply(
        IDS.camera,
        server.command(IDS.camera, { action: 'arm', sessionId }),
      );
      expect(reply).toMatchObject({ status: 'ok', data: { recording: true, sessionId } });
      const state = server.of(IDS.camera, 'state', from).at(-1);
      expect(state?.payload).toMatchObject({ recording: true, sessionId });
      return from;
    }

    async function heartbeats(from: number, n: number): Promise<HeartbeatMessage[]> {
      await server.waitFor(
        `${n} heartbeats`,
        () => heartbeatsOf(from).length >= n,
        from,
        STEP_MS + n * 200,
      );
      return heartbeatsOf(from).slice(0, n);
    }

    it('arms: heartbeats 0,1,2… that verify with the session key and name real frames', async () => {
      const from = await arm('sess-1');
      const beats = await heartbeats(from, 4);
      expect(beats.map((h) => h.seq)).toEqual([0, 1, 2, 3]);
      const key = deriveSessionKey(keyOf(IDS.camera), 'sess-1');
      for (const beat of beats) expect(verifyMac(key, topic, beat)).toBe(true);
      const frames = new Map(
        server
          .of(IDS.camera, 'frame', from)
          .map((m) => m.payload as unknown as FrameMessage)
          .map((f) => [f.digest, f]),
      );
      for (const beat of beats) {
        const frame = frames.get(beat.frameDigest);
        expect(frame).toBeDefined();
        const digest = createHash('sha256')
          .update(Buffer.from(frame!.jpeg, 'base64'))
          .digest('hex');
        expect(digest).toBe(beat.frameDigest);
      }
      expect(new Set(beats.map((h) => h.frameDigest)).size).toBe(4);
    });

    it('frozen: the digest repeats while seq grows', async () => {
      const from = await arm('sess-1');
      await heartbeats(from, 2);
      home.camera.freeze();
      const frozenFrom = server.seen.length;
      const beats = await heartbeats(frozenFrom, 4);
      expect(new Set(beats.map((h) => h.frameDigest)).size).toBe(1);
      const seqs = beats.map((h) => h.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
      const key = deriveSessionKey(keyOf(IDS.camera), 'sess-1');
      for (const beat of beats) expect(verifyMac(key, topic, beat)).toBe(true);
    });

    it('forged: heartbeats whose MAC fails', async () => {
      const from = await arm('sess-1');
      await heartbeats(from, 1);
      home.camera.forge(true);
      const forgedFrom = server.seen.length;
      const beats = await heartbeats(forgedFrom, 3);
      const key = deriveSessionKey(keyOf(IDS.camera), 'sess-1');
      expect(beats.map((h) => verifyMac(key, topic, h))).toEqual([false, false, false]);
    });

    it('replayed: an old session’s heartbeats fail against the new session key', async () => {
      const oldFrom = await arm('sess-old');
      const old = await heartbeats(oldFrom, 3);
      expect(home.camera.recordedHeartbeats('sess-old').slice(0, 3)).toEqual(old);
      await arm('sess-new');
      const replayFrom = server.seen.length;
      home.camera.startReplay(old);
      const beats = await heartbeats(replayFrom, 3);
      expect(beats).toEqual(old);
      const newKey = deriveSessionKey(keyOf(IDS.camera), 'sess-new');
      expect(beats.map((h) => verifyMac(newKey, topic, h))).toEqual([false, false, false]);
    });
  });

  describe('cutLink', () => {
    it('the will arrives, nothing is sent while cut, and the device comes back', async () => {
      const link = home.links.camera;
      const from = await (async () => {
        const start = server.seen.length;
        await server.reply(
          IDS.camera,
          server.command(IDS.camera, { action: 'arm', sessionId: 'sess-cut' }),
        );
        return start;
      })();
      await server.waitFor('a heartbeat', (m) => m.channel === 'heartbeat', from);

      const cutAt = server.seen.length;
      link.cutLink();
      expect(link.isLinkCut()).toBe(true);
      const will = await server.waitFor(
        'the will',
        (m) => m.deviceId === IDS.camera && m.channel === 'availability',
        cutAt,
        2_000,
      );
      expect(will.payload).toEqual({ online: false });

      await delay(800);
      const heartbeatsWhileCut = server
        .of(IDS.camera, 'heartbeat', cutAt)
        .filter((m) => m.at > will.at);
      expect(heartbeatsWhileCut).toEqual([]);
      expect(server.of(IDS.camera, 'availability', cutAt)).toHaveLength(1);
      expect(link.isConnected()).toBe(false);
      expect(link.stats().attemptsWhileCut).toBeGreaterThanOrEqual(3);
      expect(link.stats().dropped.heartbeat).toBeGreaterThanOrEqual(3);
      expect(home.camera.isRecording()).toBe(true);

      const restoredAt = server.seen.length;
      link.restoreLink();
      await server.waitFor(
        'online again',
        (m) => m.deviceId === IDS.camera && m.channel === 'availability',
        restoredAt,
      );
      expect(server.of(IDS.camera, 'availability', restoredAt)[0]?.payload).toEqual({
        online: true,
      });
      const state = await server.waitFor(
        'state again',
        (m) => m.deviceId === IDS.camera && m.channel === 'state',
        restoredAt,
      );
      expect(state.payload).toMatchObject({ recording: true, sessionId: 'sess-cut' });
      const beat = await server.waitFor(
        'heartbeats again',
        (m) => m.deviceId === IDS.camera && m.channel === 'heartbeat',
        restoredAt,
      );
      const lastBefore = server
        .of(IDS.camera, 'heartbeat', from)
        .filter((m) => m.at <= will.at)
        .at(-1);
      // The device kept counting while its heartbeats were lost: the server sees the gap.
      expect(
        (beat.payload['seq'] as number) - (lastBefore?.payload['seq'] as number),
      ).toBeGreaterThan(2);
      expect(link.stats().connections).toBe(2);
    });

    it('the lock keeps its deadline while cut and reports when it really locked', async () => {
      const cmd = server.command(IDS.lock, { action: 'unlock', relockAfterMs: 1_000 });
      expect((await server.reply(IDS.lock, cmd)).status).toBe('ok');
      const link = home.links.lock;
      link.cutLink();
      await delay(1_500);
      expect(home.lock.bolt()).toBe('locked');
      const restoredAt = server.seen.length;
      link.restoreLink();
      const state = await server.waitFor(
        'state after the cut',
        (m) => m.deviceId === IDS.lock && m.channel === 'state',
        restoredAt,
      );
      expect(state.payload).toMatchObject({ bolt: 'locked', changedAt: home.lock.changedAt() });
      expect(state.at - (state.payload['changedAt'] as number)).toBeGreaterThan(200);
    });
  });

  it('stop() says offline for each device and disconnects cleanly', async () => {
    const from = server.seen.length;
    await home.stop();
    for (const id of Object.values(IDS)) {
      await server.waitFor(
        `${id} offline`,
        (m) => m.deviceId === id && m.channel === 'availability' && m.payload['online'] === false,
        from,
      );
    }
  });

  it('a bridge link: connect() at once, up/down told to listeners, events acknowledged only while up', async () => {
    // The simulated lock goes away so this link can take its identity.
    await home.stop();
    const link = new DeviceLink({
      brokerUrl: broker.url,
      homeId: HOME,
      deviceId: IDS.lock,
      deviceKey: keyOf(IDS.lock),
      clock: systemClock,
      reconnectPeriodMs: 100,
    });
    link.attach({ handleCommand: () => Promise.resolve({}), onConnect: () => {} });
    const changes: boolean[] = [];
    link.onLinkChange(() => {
      throw new Error('a broken listener');
    });
    const off = link.onLinkChange((up) => changes.push(up));
    try {
      link.connect();
      expect(link.isConnected()).toBe(false);
      await link.waitUntilUp(5_000);
      expect(changes).toEqual([true]);
      const from = server.seen.length;
      expect(await link.publishEventAcked({ name: 'hub.dead-man', detail: '{"why":"test"}' })).toBe(
        true,
      );
      await server.waitFor(
        'acked event',
        (m) =>
          m.deviceId === IDS.lock && m.channel === 'event' && m.payload['name'] === 'hub.dead-man',
        from,
      );

      link.cutLink();
      await waitUntil(() => changes.length === 2, 3_000);
      expect(changes).toEqual([true, false]);
      expect(await link.publishEventAcked({ name: 'hub.dead-man' })).toBe(false);
      await expect(link.waitUntilUp(300)).rejects.toThrow(/no connection/);

      link.restoreLink();
      await link.waitUntilUp(5_000);
      expect(changes).toEqual([true, false, true]);
      off();
      link.cutLink();
      await delay(300);
      expect(changes).toEqual([true, false, true]);
    } finally {
      await link.close();
    }
  });

  it('start() rejects when the broker refuses the device key', async () => {
    const link = new DeviceLink({
      brokerUrl: broker.url,
      homeId: HOME,
      deviceId: IDS.lock,
      deviceKey: randomBytes(32),
      clock: systemClock,
      reconnectPeriodMs: 100,
      startTimeoutMs: 2_000,
    });
    try {
      await expect(link.start()).rejects.toThrow(/refused/);
      expect(link.isConnected()).toBe(false);
      expect(broker.stats().connectionsRefused).toBeGreaterThanOrEqual(1);
    } finally {
      await link.close();
    }
  });
});

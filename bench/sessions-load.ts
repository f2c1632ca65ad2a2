/**
 * The load generator of bench/sessions-per-node.ts, run as a child process (several, to spread
 * the sockets: one process may hold at most as many as its file descriptor limit allows).
 * Driven by its parent over the IPC channel, one request at a time, each answered with the
 * same `id`.
 *
 * Devices: each home's lock and camera, each its own MQTT connection (user = client id =
 * device id, password derived from the device key, as a real device), over {@link
 * RawMqttClient}. Commands go through production's {@link DeviceEndpoint} (MAC, freshness and
 * replay checks, signed replies and state reports), with minimal behaviours:
 * - the lock: `unlock` → `ok`, then a state report `unlocked`; `lock` → `ok`, then `locked`;
 * - the camera: `arm {sessionId}` → `ok`, state `recording`, then a heartbeat every 500 ms for
 *   that session (seq 0, 1, 2…, capture time = now, a new frame digest each time, MAC'd with
 *   the session key); `disarm` stops them.
 * Heartbeats are written by a timer wheel (10 ms slots, one interval timer for all cameras),
 * the canonical JSON of a heartbeat is written directly (checked once against production's
 * `macOf`), and frame digests come from a pool of random ones, so one heartbeat costs one
 * HMAC and one socket write. No frames are sent: a heartbeat's freshness is its digest.
 *
 * Floor mode: `floorPublish` opens anonymous connections to a broker and publishes
 * heartbeat-sized QoS 1 messages on each as fast as the broker acknowledges them (a window of
 * unacknowledged messages per connection); `floorSubscribe` counts what one QoS 1 subscriber
 * receives.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { cpuUsage, memoryUsage } from 'node:process';
import type { CommandMessage } from '../src/protocol/device-messages.ts';
import {
  deriveDeviceKey,
  deriveSessionKey,
  macOf,
  mqttPassword,
} from '../src/protocol/device-auth.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import type { DeviceBehaviour } from '../src/devices/device-connection.ts';
import { DeviceEndpoint } from '../src/devices/device-endpoint.ts';
import { RawMqttClient, topicField, type RawMessage } from './raw-mqtt.ts';

/** One home as the load generator drives it. */
export interface LoadHome {
  readonly homeId: string;
  readonly lockId: string;
  readonly cameraId: string;
}

/** What the parent asks. */
export type LoadRequest =
  | {
      readonly type: 'init';
      readonly port: number;
      readonly masterKey: string;
      readonly homes: readonly LoadHome[];
      /** Local addresses connections are spread over (one per 10,000 sockets is plenty). */
      readonly localAddresses: readonly string[];
      readonly heartbeatIntervalMs: number;
    }
  | { readonly type: 'connect'; readonly homes: readonly number[] }
  | { readonly type: 'releaseLocks'; readonly homes: readonly number[] }
  | { readonly type: 'silence'; readonly homes: readonly number[] }
  | { readonly type: 'stats' }
  | {
      readonly type: 'floorPublish';
      readonly port: number;
      readonly connections: number;
      readonly window: number;
      readonly payloadBytes: number;
      readonly seconds: number;
    }
  | { readonly type: 'floorSubscribe'; readonly port: number }
  | { readonly type: 'floorCount' }
  | { readonly type: 'exit' };

/** The load generator's counters. */
export interface LoadStats {
  readonly heartbeatsSent: number;
  readonly heartbeatsAcked: number;
  readonly commands: Readonly<Record<string, number>>;
  /** Cameras told to disarm although they were never silenced: their session ended. */
  readonly unexpectedDisarms: readonly number[];
  /** Device connections the broker closed. */
  readonly connectionsLost: number;
  readonly armed: number;
  readonly connections: number;
  /** This process's CPU time, µs, and resident set, bytes. */
  readonly cpuMicros: number;
  readonly rssBytes: number;
  /** Heartbeats written later than due by more than one wheel slot (the generator lagging). */
  readonly lateBeats: number;
}

const SLOT_MS = 10;
/** Random frame digests; each camera walks through them from its own offset. */
const DIGESTS = Array.from({ length: 1 << 16 }, () => randomBytes(32).toString('hex'));
const DIGEST_MASK = DIGESTS.length - 1;

interface Camera {
  readonly index: number;
  readonly topic: string;
  readonly topicBytes: Buffer;
  readonly deviceKey: Buffer;
  client: RawMqttClient | null;
  session: { id: string; key: Buffer; seq: number } | null;
  offset: number;
  silenced: boolean;
  lastSentAt: number | null;
  slot: number;
}

interface Lock {
  client: RawMqttClient | null;
  endpoint: DeviceEndpoint | null;
}

let port = 0;
let masterKey: Buffer = Buffer.alloc(0);
let homes: readonly LoadHome[] = [];
let localAddresses: readonly string[] = ['127.0.0.1'];
let intervalMs = 500;
let connectionCount = 0;
const cameras = new Map<number, Camera>();
const locks = new Map<number, Lock>();
let wheel: Set<Camera>[] = [];
let lastSlotRun = 0;
let ticker: NodeJS.Timeout | null = null;
const counters = {
  heartbeatsSent: 0,
  connectionsLost: 0,
  lateBeats: 0,
  commands: {} as Record<string, number>,
  unexpectedDisarms: [] as number[],
};
let checkedMac = false;

function localAddress(): string {
  const a = localAddresses[Math.floor(connectionCount / 10_000) % localAddresses.length];
  connectionCount += 1;
  return a ?? '127.0.0.1';
}

async function openDevice(
  deviceId: string,
  onMessage: (m: RawMessage) => void,
  onClose: () => void,
): Promise<RawMqttClient> {
  const key = deriveDeviceKey(masterKey, deviceId);
  return RawMqttClient.open(
    {
      port,
      localAddress: localAddress(),
      clientId: deviceId,
      username: deviceId,
      password: mqttPassword(key),
    },
    onMessage,
    () => {
      counters.connectionsLost += 1;
      onClose();
    },
  );
}

function countCommand(action: string): void {
  counters.commands[action] = (counters.commands[action] ?? 0) + 1;
}

/** The camera's heartbeat, signed; the canonical JSON (sorted keys) is written out directly. */
function beat(cam: Camera, now: number): void {
  const s = cam.session;
  if (s === null || cam.client === null) return;
  const seq = s.seq++;
  const digest = DIGESTS[(cam.offset + seq) & DIGEST_MASK]!;
  const canon = `{"capturedAt":${now},"frameDigest":"${digest}","recording":true,"seq":${seq},"sessionId":"${s.id}"}`;
  const mac = createHmac('sha256', s.key).update(`${cam.topic}\n${canon}`).digest('base64url');
  if (!checkedMac) {
    const expected = macOf(s.key, cam.topic, {
      sessionId: s.id,
      seq,
      capturedAt: now,
      frameDigest: digest,
      recording: true,
    });
    if (expected !== mac) throw new Error('the hand-written heartbeat MAC differs from macOf');
    checkedMac = true;
  }
  const payload = `{"sessionId":"${s.id}","seq":${seq},"capturedAt":${now},"frameDigest":"${digest}","recording":true,"mac":"${mac}"}`;
  if (cam.client.publish(cam.topicBytes, payload, 1)) {
    counters.heartbeatsSent += 1;
    cam.lastSentAt = now;
  }
}

function tick(): void {
  const now = Date.now();
  const current = Math.floor(now / SLOT_MS);
  if (lastSlotRun === 0) lastSlotRun = current - 1;
  // Catch up on every slot since the last run (a late timer sends the late beats at once).
  for (let slot = lastSlotRun + 1; slot <= current; slot++) {
    const due = wheel[slot % wheel.length];
    if (due === undefined) continue;
    if (current - slot > 1) counters.lateBeats += due.size;
    for (const cam of due) beat(cam, now);
  }
  lastSlotRun = current;
}

function schedule(cam: Camera): void {
  const slot = Math.floor(Date.now() / SLOT_MS) % wheel.length;
  cam.slot = slot;
  wheel[slot]?.add(cam);
}

function unschedule(cam: Camera): void {
  wheel[cam.slot]?.delete(cam);
}

/** The camera's behaviour: arm starts the heartbeats (the first at once), disarm stops them. */
function cameraBehaviour(cam: Camera, endpoint: () => DeviceEndpoint): DeviceBehaviour {
  const publishState = (): void => {
    endpoint().publishState({
      kind: 'camera',
      recording: cam.session !== null,
      sessionId: cam.session?.id ?? null,
    });
  };
  return {
    handleCommand(command: CommandMessage) {
      countCommand(`camera.${command.action}`);
      if (command.action === 'arm' && command.sessionId !== undefined) {
        cam.session = {
          id: command.sessionId,
          key: deriveSessionKey(cam.deviceKey, command.sessionId),
          seq: 0,
        };
        cam.offset = Math.floor(Math.random() * DIGESTS.length);
        publishState();
        unschedule(cam);
        // The first heartbeat right after the reply, as the simulated camera does.
        setImmediate(() => {
          beat(cam, Date.now());
          schedule(cam);
        });
      } else if (command.action === 'disarm') {
        if (!cam.silenced && cam.session !== null) counters.unexpectedDisarms.push(cam.index);
        unschedule(cam);
        cam.session = null;
        publishState();
      }
      return Promise.resolve({ recording: cam.session !== null });
    },
    onConnect: publishState,
  };
}

/** The lock's behaviour: the bolt moves at once and the lock reports it. */
function lockBehaviour(endpoint: () => DeviceEndpoint): DeviceBehaviour {
  let bolt: 'locked' | 'unlocked' = 'locked';
  let changedAt = Date.now();
  const publishState = (): void => {
    endpoint().publishState({ kind: 'lock', bolt, changedAt, autoRelockAt: null });
  };
  return {
    handleCommand(command: CommandMessage) {
      countCommand(`lock.${command.action}`);
      if (command.action === 'unlock' || command.action === 'lock') {
        bolt = command.action === 'unlock' ? 'unlocked' : 'locked';
        changedAt = Date.now();
        // After the reply, as a lock reports once the bolt has moved.
        setImmediate(publishState);
      }
      return Promise.resolve({ bolt });
    },
    onConnect: publishState,
  };
}

function endpointFor(
  homeId: string,
  deviceId: string,
  client: () => RawMqttClient | null,
): DeviceEndpoint {
  return new DeviceEndpoint(
    { homeId, deviceId, deviceKey: deriveDeviceKey(masterKey, deviceId), clock: systemClock },
    {
      isConnected: () => client()?.up ?? false,
      publish: (topic, payload, qos, retain) => {
        client()?.publish(topicField(topic), payload, qos, retain);
      },
    },
  );
}

async function connectHome(i: number): Promise<void> {
  const home = homes[i];
  if (home === undefined) throw new Error(`no home ${i}`);
  const cam: Camera = {
    index: i,
    topic: deviceTopic(home.homeId, home.cameraId, 'heartbeat'),
    topicBytes: topicField(deviceTopic(home.homeId, home.cameraId, 'heartbeat')),
    deviceKey: deriveDeviceKey(masterKey, home.cameraId),
    client: null,
    session: null,
    offset: 0,
    silenced: false,
    lastSentAt: null,
    slot: 0,
  };
  const camEndpoint = endpointFor(home.homeId, home.cameraId, () => cam.client);
  camEndpoint.attach(cameraBehaviour(cam, () => camEndpoint));
  const lock: Lock = { client: null, endpoint: null };
  const lockEndpoint = endpointFor(home.homeId, home.lockId, () => lock.client);
  lock.endpoint = lockEndpoint;
  lockEndpoint.attach(lockBehaviour(() => lockEndpoint));
  const onCommand =
    (ep: DeviceEndpoint) =>
    (m: RawMessage): void => {
      void ep.receiveCommand(m.topic, m.payload);
    };
  cam.client = await openDevice(home.cameraId, onCommand(camEndpoint), () => unschedule(cam));
  lock.client = await openDevice(home.lockId, onCommand(lockEndpoint), () => undefined);
  cameras.set(i, cam);
  locks.set(i, lock);
  for (const [client, ep] of [
    [cam.client, camEndpoint],
    [lock.client, lockEndpoint],
  ] as const) {
    if (!(await client.subscribe(ep.topic('command'))))
      throw new Error(`subscription refused for ${ep.deviceId}`);
    ep.connected();
  }
}

/** Runs `fn` over `items` with at most `limit` at once; collects the failures. */
async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<string[]> {
  const errors: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        errors.push(`${String(item)}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return errors;
}

function stats(): LoadStats {
  let acked = 0;
  let armed = 0;
  let connections = 0;
  for (const cam of cameras.values()) {
    acked += cam.client?.acked ?? 0;
    if (cam.session !== null) armed += 1;
    if (cam.client?.up) connections += 1;
  }
  for (const l of locks.values()) if (l.client?.up) connections += 1;
  const cpu = cpuUsage();
  return {
    heartbeatsSent: counters.heartbeatsSent,
    heartbeatsAcked: acked,
    commands: { ...counters.commands },
    unexpectedDisarms: [...counters.unexpectedDisarms],
    connectionsLost: counters.connectionsLost,
    armed,
    connections,
    cpuMicros: cpu.user + cpu.system,
    rssBytes: memoryUsage.rss(),
    lateBeats: counters.lateBeats,
  };
}

// ---- floor mode ----

let floorReceived = 0;
let floorSubscriber: RawMqttClient | null = null;

async function floorPublish(
  r: Extract<LoadRequest, { type: 'floorPublish' }>,
): Promise<{ published: number; acked: number; seconds: number }> {
  const payload = Buffer.from(randomBytes(Math.ceil(r.payloadBytes / 2)).toString('hex')).subarray(
    0,
    r.payloadBytes,
  );
  const clients: RawMqttClient[] = [];
  for (let i = 0; i < r.connections; i++) {
    clients.push(
      await RawMqttClient.open({ port: r.port, clientId: `floor-pub-${process.pid}-${i}` }),
    );
  }
  const topics = clients.map((_, i) => topicField(`bench/floor/${process.pid}-${i}/heartbeat`));
  const end = Date.now() + r.seconds * 1000;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    // Keep each connection's window of unacknowledged messages full, checking every 1 ms.
    const pump = (): void => {
      for (let i = 0; i < clients.length; i++) {
        const c = clients[i]!;
        while (c.up && c.sentQos1 - c.acked < r.window) c.publish(topics[i]!, payload, 1);
      }
      if (Date.now() < end) setTimeout(pump, 1);
      else resolve();
    };
    pump();
  });
  const seconds = (performance.now() - t0) / 1000;
  let published = 0;
  let acked = 0;
  for (const c of clients) {
    published += c.sentQos1;
    acked += c.acked;
    c.end();
  }
  return { published, acked, seconds };
}

async function handle(r: LoadRequest): Promise<unknown> {
  switch (r.type) {
    case 'init': {
      port = r.port;
      masterKey = Buffer.from(r.masterKey, 'base64url');
      homes = r.homes;
      localAddresses = r.localAddresses.length > 0 ? r.localAddresses : ['127.0.0.1'];
      intervalMs = r.heartbeatIntervalMs;
      wheel = Array.from({ length: Math.round(intervalMs / SLOT_MS) }, () => new Set<Camera>());
      ticker = setInterval(tick, SLOT_MS);
      return { ok: true };
    }
    case 'connect': {
      const errors = await pool(r.homes, 64, connectHome);
      return { connected: r.homes.length - errors.length, errors: errors.slice(0, 10) };
    }
    case 'releaseLocks': {
      for (const i of r.homes) {
        const l = locks.get(i);
        l?.client?.end();
        if (l) l.client = null;
      }
      return { released: r.homes.length };
    }
    case 'silence': {
      const lastSent: Record<number, number | null> = {};
      for (const i of r.homes) {
        const cam = cameras.get(i);
        if (!cam) continue;
        cam.silenced = true;
        unschedule(cam);
        lastSent[i] = cam.lastSentAt;
      }
      return { lastSent };
    }
    case 'stats':
      return stats();
    case 'floorPublish':
      return floorPublish(r);
    case 'floorSubscribe': {
      floorSubscriber = await RawMqttClient.open(
        { port: r.port, clientId: `floor-sub-${process.pid}` },
        () => {
          floorReceived += 1;
        },
      );
      if (!(await floorSubscriber.subscribe('bench/floor/#')))
        throw new Error('floor subscription refused');
      return { ok: true };
    }
    case 'floorCount': {
      const cpu = cpuUsage();
      return { received: floorReceived, cpuMicros: cpu.user + cpu.system };
    }
    case 'exit': {
      if (ticker) clearInterval(ticker);
      for (const cam of cameras.values()) cam.client?.destroy();
      for (const l of locks.values()) l.client?.destroy();
      floorSubscriber?.destroy();
      setImmediate(() => process.exit(0));
      return { ok: true };
    }
  }
}

process.on('message', (m: { id: number; request: LoadRequest }) => {
  handle(m.request).then(
    (result) => process.send?.({ id: m.id, result }),
    (err: unknown) =>
      process.send?.({ id: m.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
// The parent gone (killed, crashed): nothing left to do here.
process.on('disconnect', () => process.exit(0));

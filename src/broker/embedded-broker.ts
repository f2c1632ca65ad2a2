/**
 * The embedded MQTT broker: aedes on a loopback TCP port, with the device protocol's
 * authentication and ACL (see broker-acl.ts). It is what `threshold demo` and small
 * installations run; large ones put the same rules into mosquitto/EMQX instead.
 *
 * The threat is a malicious device on the network. So: every connection authenticates
 * (device id + password derived from the master key, or the server's own credentials), every
 * publish and subscription is checked against the ACL, oversized packets are cut at the
 * framing level before they are buffered, and garbage on the socket closes that socket
 * without touching anyone else's. Every refusal is counted and logged, never with a
 * password.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import {
  Aedes,
  type AuthErrorCode,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type ConnectPacket,
} from 'aedes';
import { deriveDeviceKey, verifyMqttPassword } from '../protocol/device-auth.ts';
import { MAX_FRAME_BYTES } from '../protocol/device-messages.ts';
import { isId, isUpChannel, parseDeviceTopic } from '../protocol/topics.ts';
import { deliverThen, type BrokerLink, type DeliverDeviceMessage } from './broker-link.ts';
import {
  checkForward,
  checkOrphanPublish,
  checkPublish,
  checkSubscribe,
  checkWill,
  type BrokerIdentity,
} from './broker-acl.ts';
import { GuardedConnection, type FrameViolation } from './mqtt-frame-guard.ts';
import { SERVER_USERNAME } from './server-credentials.ts';

/** What the broker needs to know about a device to authorize it. */
export interface BrokerDeviceInfo {
  /** The home the device belongs to; its topics live under this home. */
  homeId: string;
}

/** The structural subset of a pino logger the broker uses. */
export interface BrokerLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Options of {@link startEmbeddedBroker}. */
export interface EmbeddedBrokerOptions {
  /** Interface to listen on. Default `127.0.0.1`: never other interfaces unless asked. */
  host?: string;
  /** TCP port; 0 (the default) picks a free one, see {@link EmbeddedBroker.port}. */
  port?: number;
  /**
   * The server's master key. A device's MQTT password is
   * `mqttPassword(deriveDeviceKey(masterKey, deviceId))`.
   */
  masterKey: Uint8Array;
  /**
   * Looks up a device by id; undefined = unknown device → connection refused. Called on every
   * connect, so revocation or removal takes effect at the next connect (use
   * {@link EmbeddedBroker.disconnectDevice} to make it immediate). If it throws, the
   * connection is refused as "server unavailable".
   */
  lookupDevice(deviceId: string): BrokerDeviceInfo | undefined;
  /**
   * The server's own client credentials (see `serverMqttCredentials`). The user name must
   * start with `threshold-server`; so must the client ids the server connects with.
   */
  server: { username: string; password: string };
  /** Where refusals (warn) and lifecycle events (info) go. Default: nowhere. */
  logger?: BrokerLogger;
  /**
   * Largest MQTT packet accepted, bytes, fixed header included. Default
   * `MAX_FRAME_BYTES + 4096`: a full frame plus topic and headers. A larger packet closes the
   * connection as soon as its header arrives.
   */
  maxPacketBytes?: number;
  /** Milliseconds a new connection has to send its CONNECT before it is closed. Default 10 000. */
  connectTimeoutMs?: number;
  /**
   * Refuse devices ("server unavailable", they retry) while no {@link EmbeddedBroker.serverLink}
   * is started. The server sets it: a device event taken before the server listens would be
   * acknowledged with nobody to record it. Default false.
   */
  devicesWaitForServerLink?: boolean;
}

/** Counters of refused traffic since the broker started. */
export interface BrokerStats {
  /** CONNECTs refused: bad credentials, unknown device, client id ≠ user name, bad will. */
  connectionsRefused: number;
  /** PUBLISHes (and wills) refused by the ACL. */
  publishesRefused: number;
  /** Subscriptions refused by the ACL (answered with SUBACK failure 0x80). */
  subscriptionsRefused: number;
  /** Connections cut because a packet was larger than allowed. */
  oversizedDropped: number;
}

/** A running embedded broker. */
export interface EmbeddedBroker {
  /** `mqtt://<host>:<port>`, for clients. */
  readonly url: string;
  /** The port actually listened on (useful with `port: 0`). */
  readonly port: number;
  /** A snapshot of the refusal counters. */
  stats(): BrokerStats;
  /**
   * The server's in-process link (see broker-link.ts): each device message for the server
   * (an up channel) is handed to `deliver` once the ACL let it through, and the device's
   * PUBACK waits until `deliver` resolved (or is sent at once when `deliver` returned nothing). If it rejects, the device's connection is closed
   * without one, and the device sends the message again when it reconnects. Commands are
   * published as the broker itself, subject to each receiving device's ACL. One link at a
   * time.
   */
  serverLink(): BrokerLink;
  /**
   * Calls `fn` with every message on `filter` at the moment the broker passes it on, in
   * process: after the server took a device's message, before any client receives it. For
   * observers that must see the wire in the broker's order (the scenarios' history
   * recorder). Returns the function that stops it.
   */
  readonly tap: (filter: string, fn: (topic: string, payload: Buffer) => void) => () => void;
  /**
   * Forcibly disconnects every client of a device, e.g. on revocation. Its will (its own
   * "offline" availability message) is published, as for any unexpected disconnect.
   */
  disconnectDevice(deviceId: string): void;
  /** Closes all clients and the listening socket. Idempotent. */
  close(): Promise<void>;
}

/**
 * Turns off mqtt-packet's table of packet ids. The packet writer aedes uses builds, on its
 * first packet, a table of 65,536 two-byte Buffers (one per MQTT packet id) so that writing an
 * id is a lookup: 7 MB of the server's heap for good (68,702 more Buffers in a heap snapshot of
 * `threshold serve` after its first sessions, about 96 bytes each plus the table). Without
 * it an id is written from a fresh two-byte Buffer, a few bytes of garbage per PUBACK next to
 * the packet's own. The module is aedes's own dependency, resolved from aedes, so this is the
 * copy the broker writes with; mqtt.js does the same when its `writeCache` option is off.
 */
function dropPacketIdTable(): void {
  const fromAedes = createRequire(import.meta.resolve('aedes'));
  const packets = fromAedes('mqtt-packet') as { writeToStream: { cacheNumbers: boolean } };
  packets.writeToStream.cacheNumbers = false;
}
dropPacketIdTable();

/** Default of {@link EmbeddedBrokerOptions.maxPacketBytes}. */
export const DEFAULT_MAX_PACKET_BYTES = MAX_FRAME_BYTES + 4096;
/**
 * Limit of a connection's first packet (CONNECT). It is sent before authentication, and a
 * legitimate one holds ids, a password and a small will, so an unauthenticated peer cannot
 * make the broker buffer a large packet.
 */
const MAX_CONNECT_BYTES = 8 * 1024;

/** The part of aedes's persistence that keeps retained messages (aedes-persistence's API). */
interface RetainedStore {
  storeRetained(packet: { topic: string; payload: Buffer }, ...rest: unknown[]): unknown;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/**
 * Answers a new subscription's retained messages from an index when its topics are exact.
 * aedes's in-memory store tests every retained message against each new subscription's
 * pattern, and every device keeps retained messages (its state, its availability, a lock's
 * grant list) and subscribes to its own command topic: at 20,000 devices a subscription cost a
 * scan of some 40,000 messages, and a node's devices connecting after a restart took a scan
 * each (a 0.75 s stall of the event loop was measured at 2,000 devices). Exact topics — all
 * of a device's subscriptions — are looked up in a map kept beside the store, updated on every
 * store (an empty payload deletes, as in the store); a pattern with a wildcard (the server's)
 * is answered by the store as before. The answer is the same set of messages either way.
 */
function indexRetained(store: RetainedStore): void {
  const byTopic = new Map<string, { topic: string; payload: Buffer }>();
  const storeRetained = store.storeRetained.bind(store);
  const combi = store.createRetainedStreamCombi.bind(store);
  store.storeRetained = (packet, ...rest) => {
    if (packet.payload.length === 0) byTopic.delete(packet.topic);
    else byTopic.set(packet.topic, { ...packet });
    return storeRetained(packet, ...rest);
  };
  store.createRetainedStreamCombi = (patterns) => {
    if (patterns.some((p) => p.includes('+') || p.includes('#'))) return combi(patterns);
    return Readable.from(patterns.flatMap((p) => byTopic.get(p) ?? []));
  };
}
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Our topics have five levels; the server's filters fewer. Anything deep is garbage. */
const MAX_TOPIC_LEVELS = 16;
/** Log fields that come from the peer are clipped so one connection cannot flood the log. */
const MAX_LOGGED_CHARS = 128;

// aedes declares these as an ambient const enum, which isolatedModules cannot read.
const CONNACK_SERVER_UNAVAILABLE = 3 as AuthErrorCode;
const CONNACK_BAD_USERNAME_OR_PASSWORD = 4 as AuthErrorCode;
const CONNACK_NOT_AUTHORIZED = 5 as AuthErrorCode;

const silentLogger: BrokerLogger = { warn: () => {}, info: () => {} };

function clip(value: string | undefined): string | undefined {
  if (value === undefined || value.length <= MAX_LOGGED_CHARS) return value;
  return `${value.slice(0, MAX_LOGGED_CHARS)}…`;
}

/** Constant-time comparison of two secrets of any length (hashed first, so length leaks nothing). */
function secretEquals(given: Uint8Array | string, expected: string): boolean {
  const digest = (v: Uint8Array | string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function refusal(returnCode: AuthErrorCode, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode });
}

type AuthVerdict =
  | { readonly ok: true; readonly identity: BrokerIdentity }
  | { readonly ok: false; readonly returnCode: AuthErrorCode; readonly reason: string };

/**
 * Starts an embedded broker with the device protocol's authentication and ACL, listening on
 * `host:port` (loopback by default). Resolves once it accepts connections.
 */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  if (!opts.server.username.startsWith(SERVER_USERNAME)) {
    throw new Error(`the server's MQTT user name must start with '${SERVER_USERNAME}'`);
  }
  const host = opts.host ?? '127.0.0.1';
  const log = opts.logger ?? silentLogger;
  const maxPacketBytes = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const limits = {
    maxPacketBytes,
    maxFirstPacketBytes: Math.min(maxPacketBytes, MAX_CONNECT_BYTES),
  };
  const counters: BrokerStats = {
    connectionsRefused: 0,
    publishesRefused: 0,
    subscriptionsRefused: 0,
    oversizedDropped: 0,
  };

  /** The CONNECT of each client, kept from preConnect so authenticate can check the will. */
  const connectPackets = new WeakMap<Client, ConnectPacket>();
  const identities = new WeakMap<Client, BrokerIdentity>();
  /** Live authenticated clients of each device, for disconnectDevice. */
  const deviceClients = new Map<string, Set<Client>>();
  const connections = new Set<GuardedConnection>();
  /** The started server link's `deliver` (see {@link EmbeddedBroker.serverLink}), if any. */
  let linkDeliver: DeliverDeviceMessage | null = null;

  const remoteOf = (client: Client | null): string | undefined =>
    client?.conn instanceof GuardedConnection ? client.conn.remoteAddress : undefined;
  const whoIs = (client: Client | null): Record<string, string | undefined> => {
    const identity = client ? identities.get(client) : undefined;
    if (identity?.kind === 'device') {
      return { deviceId: identity.deviceId, homeId: identity.homeId, remote: remoteOf(client) };
    }
    return { clientId: clip(client?.id ?? undefined), remote: remoteOf(client) };
  };

  function authenticateConnect(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): AuthVerdict {
    if (username === undefined || password === undefined) {
      return { ok: false, returnCode: CONNACK_BAD_USERNAME_OR_PASSWORD, reason: 'no-credentials' };
    }
    let identity: BrokerIdentity;
    if (username === opts.server.username) {
      if (!secretEquals(password, opts.server.password)) {
        return { ok: false, returnCode: CONNACK_BAD_USERNAME_OR_PASSWORD, reason: 'bad-password' };
      }
      if (!client.id.startsWith(SERVER_USERNAME)) {
        return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: 'server-client-id' };
      }
      identity = { kind: 'server', clientId: client.id };
    } else {
      // Ids with the server's prefix are reserved: a device so named could take over a server
      // client's session by connecting with the same client id.
      if (!isId(username) || username.startsWith(SERVER_USERNAME)) {
        return { ok: false, returnCode: CONNACK_BAD_USERNAME_OR_PASSWORD, reason: 'bad-username' };
      }
      // Check the password whether or not the device exists, so timing does not tell which
      // device ids exist.
      const passwordOk = verifyMqttPassword(deriveDeviceKey(opts.masterKey, username), password);
      let device: BrokerDeviceInfo | undefined;
      try {
        device = opts.lookupDevice(username);
      } catch (err) {
        log.warn({ err, deviceId: username }, 'mqtt device lookup failed');
        return { ok: false, returnCode: CONNACK_SERVER_UNAVAILABLE, reason: 'lookup-failed' };
      }
      if (!device || !passwordOk) {
        return {
          ok: false,
          returnCode: CONNACK_BAD_USERNAME_OR_PASSWORD,
          reason: device ? 'bad-password' : 'unknown-device',
        };
      }
      // One device must not be able to kick another off by taking its client id.
      if (client.id !== username) {
        return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: 'client-id-not-username' };
      }
      if (opts.devicesWaitForServerLink && linkDeliver === null) {
        return { ok: false, returnCode: CONNACK_SERVER_UNAVAILABLE, reason: 'server-not-ready' };
      }
      identity = { kind: 'device', deviceId: username, homeId: device.homeId };
    }
    const will = connectPackets.get(client)?.will;
    if (will) {
      const willRefusal = checkWill(identity, {
        topic: will.topic,
        payload: will.payload,
        retain: will.retain ?? false,
      });
      if (willRefusal) {
        return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: willRefusal };
      }
    }
    return { ok: true, identity };
  }

  const aedes = await Aedes.createBroker({
    connectTimeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    maxTopicLevels: MAX_TOPIC_LEVELS,
    drainTimeout: 30_000,

    preConnect(client, packet, callback) {
      connectPackets.set(client, packet);
      callback(null, true);
    },

    authenticate(client, username, password, done) {
      const verdict = authenticateConnect(client, username, password);
      connectPackets.delete(client);
      if (!verdict.ok) {
        counters.connectionsRefused += 1;
        log.warn(
          {
            clientId: clip(client.id),
            username: clip(username),
            remote: remoteOf(client),
            reason: verdict.reason,
          },
          'mqtt connection refused',
        );
        done(refusal(verdict.returnCode, verdict.reason), false);
        return;
      }
      identities.set(client, verdict.identity);
      if (verdict.identity.kind === 'device') {
        const { deviceId } = verdict.identity;
        const set = deviceClients.get(deviceId) ?? new Set<Client>();
        set.add(client);
        deviceClients.set(deviceId, set);
        client.conn.once('close', () => {
          set.delete(client);
          if (set.size === 0 && deviceClients.get(deviceId) === set) deviceClients.delete(deviceId);
        });
      }
      done(null, true);
    },

    // Refusing a publish makes aedes close the connection without an answer: MQTT 3.1.1 has
    // no way to refuse a PUBLISH (MQTT-3.3.5-2). A device that publishes outside its prefix
    // is misbehaving or compromised, so cutting it off is what we want; it has to reconnect
    // (and authenticate) to say anything more. The same path refuses a bad will at
    // disconnect time.
    authorizePublish(client, packet, callback) {
      const identity = client ? identities.get(client) : undefined;
      const reason = client
        ? identity
          ? checkPublish(identity, packet.topic, packet.retain)
          : 'not-a-device-topic'
        : checkOrphanPublish(packet.topic);
      if (reason) {
        counters.publishesRefused += 1;
        log.warn({ ...whoIs(client), topic: clip(packet.topic), reason }, 'mqtt publish refused');
        callback(new Error(`publish refused: ${reason}`));
        return;
      }
      // A device's message for the server is handed over here, before aedes writes the
      // device's PUBACK (it acknowledges QoS 1 before forwarding), so the acknowledgement waits
      // for the server. If the server could not take it, the connection is closed without one
      // and the device sends the message again after reconnecting.
      // A message `deliver` handled completely during the call (it returned nothing) is passed
      // on at once: most device traffic is heartbeats, and only events wait for anything.
      const deliver = linkDeliver;
      const parsed = deliver && identity?.kind !== 'server' ? parseDeviceTopic(packet.topic) : null;
      if (deliver && parsed && isUpChannel(parsed.channel)) {
        const payload = Buffer.isBuffer(packet.payload)
          ? packet.payload
          : Buffer.from(packet.payload);
        deliverThen(deliver, packet.topic, payload, (err) => {
          if (err === null) {
            callback(null);
            return;
          }
          log.warn(
            {
              ...whoIs(client),
              topic: clip(packet.topic),
              err: err.message,
            },
            'device message not taken by the server; connection closed unacknowledged',
          );
          callback(new Error('not taken by the server'));
        });
        return;
      }
      callback(null);
    },

    // A refused subscription is answered with SUBACK failure (0x80) and the connection stays
    // up: nothing was delivered, and the device learns its request was wrong.
    authorizeSubscribe(client, subscription, callback) {
      const identity = identities.get(client);
      const reason = identity
        ? checkSubscribe(identity, subscription.topic)
        : 'not-own-command-topic';
      if (reason) {
        counters.subscriptionsRefused += 1;
        log.warn(
          { ...whoIs(client), topic: clip(subscription.topic), reason },
          'mqtt subscription refused',
        );
        callback(null, null);
        return;
      }
      callback(null, subscription);
    },

    authorizeForward(client, packet) {
      const identity = identities.get(client);
      if (!identity || checkForward(identity, packet.topic)) return null;
      return packet;
    },
  });
  indexRetained((aedes as unknown as { persistence: RetainedStore }).persistence);

  aedes.on('clientError', (client, err) => {
    log.info({ ...whoIs(client), err: err.message }, 'mqtt client error');
  });
  aedes.on('connectionError', (client, err) => {
    log.info({ remote: remoteOf(client), err: err.message }, 'mqtt connection error');
  });

  const server: Server = createServer((socket: Socket) => {
    socket.setNoDelay(true);
    const conn = new GuardedConnection(socket, limits, (violation: FrameViolation) => {
      if (violation.reason === 'oversized') {
        counters.oversizedDropped += 1;
        log.warn(
          { remote: socket.remoteAddress, ...violation },
          'mqtt packet too large; connection closed',
        );
      } else {
        log.warn({ remote: socket.remoteAddress, ...violation }, 'mqtt garbage; connection closed');
      }
    });
    connections.add(conn);
    conn.once('close', () => connections.delete(conn));
    aedes.handle(conn);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(resolve));
    throw err;
  }
  server.on('error', (err) => log.warn({ err }, 'mqtt listener error'));

  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('embedded broker: unexpected listening address');
  }
  const port = address.port;
  const url = `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url }, 'embedded mqtt broker listening');

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    // Connections that never authenticated are not aedes clients; cut them too.
    for (const conn of connections) conn.destroy();
    await serverClosed;
    log.info({ url }, 'embedded mqtt broker closed');
  }

  function disconnectDevice(deviceId: string): void {
    const clients = deviceClients.get(deviceId);
    if (!clients) return;
    for (const client of [...clients]) client.close();
    log.info({ deviceId }, 'mqtt device disconnected by the server');
  }

  function serverLink(): BrokerLink {
    let started = false;
    let stopped = false;
    return {
      start(deliver) {
        if (linkDeliver !== null) {
          return Promise.reject(new Error('the embedded broker has a server link already'));
        }
        if (started) return Promise.reject(new Error('a broker link starts once'));
        started = true;
        linkDeliver = deliver;
        return Promise.resolve();
      },
      publish(topic, payload, options = {}) {
        return new Promise<void>((resolve, reject) => {
          if (!started || stopped) {
            reject(new Error('broker link not started'));
            return;
          }
          aedes.publish(
            {
              cmd: 'publish',
              topic,
              payload: Buffer.from(payload),
              qos: 1,
              retain: options.retain ?? false,
              dup: false,
            },
            (err?: Error) => (err ? reject(err) : resolve()),
          );
        });
      },
      stop() {
        if (started && !stopped) linkDeliver = null;
        stopped = true;
        return Promise.resolve();
      },
    };
  }

  return {
    url,
    port,
    stats: () => ({ ...counters }),
    serverLink,
    tap: (filter, fn) => {
      const listener = (packet: AedesPublishPacket, cb: () => void): void => {
        try {
          fn(
            packet.topic,
            Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
          );
        } finally {
          cb();
        }
      };
      aedes.subscribe(filter, listener, () => undefined);
      return () => aedes.unsubscribe(filter, listener, () => undefined);
    },
    disconnectDevice,
    close: () => (closing ??= close()),
  };
}

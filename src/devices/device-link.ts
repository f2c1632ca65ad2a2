/**
 * One device's MQTT connection (mqtt.js, MQTT 3.1.1 by default or 5, clean session).
 *
 * - It authenticates as user = client id = device id with `mqttPassword(deviceKey)`.
 * - Its last will is `{"online":false}`, retained, on its availability topic; on every
 *   (re)connection it publishes `{"online":true}` retained, subscribes to its command topic
 *   and lets the device republish its state.
 * - State (retained), events, replies and heartbeats go out with QoS 1, frames with QoS 0. Nothing is
 *   queued while the connection is down: a jammed device's messages are lost, and so are
 *   QoS 1 messages in flight when a connection dies (the device republishes its state on
 *   reconnect, and every `reportIntervalMs`; a command whose reply is lost is, for the
 *   server, a command that timed out).
 * - Fault switches for the harness: {@link DeviceLink.cutLink} kills the TCP connection at
 *   once, without a DISCONNECT packet (so the broker publishes the will), and makes every
 *   reconnection attempt fail until {@link DeviceLink.restoreLink}, as a Wi-Fi deauth flood
 *   does.
 * - For a bridge (the hub) that speaks for a real device: `mqtts://` with its own CA
 *   certificate (`ca`), {@link DeviceLink.connect} that starts without waiting,
 *   listeners told when the link goes up or down ({@link DeviceLink.onLinkChange},
 *   {@link DeviceLink.waitUntilUp}), and {@link DeviceLink.publishEventAcked}, an event whose
 *   broker acknowledgement (PUBACK) the caller waits for. What must survive an outage goes
 *   through the bridge's own log: the link still never queues.
 * - For a lock the hub speaks for: {@link DeviceLinkOptions.onGrants} subscribes to the
 *   device's own `grants` topic as well (the control plane's signed offline grant list,
 *   retained, so every (re)connection brings the newest at once) and hands each payload over,
 *   unchecked: checking it is the receiver's job (the hub's grant book).
 */
import type { Clock } from '../core/clock.ts';
import { Duplex } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import { MqttClient, type IClientOptions, type IStream } from 'mqtt';
import { mqttPassword } from '../protocol/device-auth.ts';
import { deviceTopic } from '../protocol/topics.ts';
import type {
  DeviceEventMessage,
  DeviceStateMessage,
  FrameMessage,
  HeartbeatMessage,
} from '../protocol/device-messages.ts';
import type {
  DeviceBehaviour,
  DeviceConnection,
  DeviceLogger,
  EventBody,
  HeartbeatBody,
  PublishResult,
  StateBody,
} from './device-connection.ts';
import { silentLogger } from './device-connection.ts';
import {
  DeviceEndpoint,
  type DeviceEndpointStats,
  type DeviceIdentity,
} from './device-endpoint.ts';

/** Settings of a {@link DeviceLink}. */
export interface DeviceLinkOptions extends DeviceIdentity {
  /** `mqtt://host:port` (default port 1883) or `mqtts://host:port` (default 8883). */
  readonly brokerUrl: string;
  /** PEM certificate(s) to trust for `mqtts://` instead of the system's CAs. */
  readonly ca?: string;
  /** MQTT protocol version: 4 is 3.1.1 (the default), 5 is MQTT 5. */
  readonly protocolVersion?: 4 | 5;
  /** Wait between reconnection attempts, ms. Default 1000. */
  readonly reconnectPeriodMs?: number;
  /** MQTT keepalive, seconds. Default 30. */
  readonly keepaliveSeconds?: number;
  /** How long {@link DeviceLink.start} waits for the first connection, ms. Default 10 000. */
  readonly startTimeoutMs?: number;
  /**
   * The device republishes its state this often while connected, ms (default 15 000), so the
   * server can tell a quiet device from a dead one (it counts a device stale after 60 s).
   */
  readonly reportIntervalMs?: number;
  /** How long {@link DeviceLink.publishEventAcked} waits for the broker, ms. Default 10 000. */
  readonly ackTimeoutMs?: number;
  /**
   * Also subscribe to the device's own `grants` topic and call this with each payload as
   * received (bytes, not checked). Absent: no subscription (every simulated device).
   */
  readonly onGrants?: (payload: Buffer) => void;
}

/** Counters of a {@link DeviceLink}. */
export interface DeviceLinkStats extends DeviceEndpointStats {
  /** Connections that reached the ready state (subscribed), including the first. */
  readonly connections: number;
  /** Connection attempts that failed because the link was cut. */
  readonly attemptsWhileCut: number;
}

const OFFLINE = Buffer.from('{"online":false}');
/** MQTT 3.1.1 and 5 CONNACK codes meaning "bad credentials" or "not authorized". */
const AUTH_REFUSALS = new Set([4, 5, 134, 135]);
const CLOSE_TIMEOUT_MS = 2_000;

/** See the module comment. */
export class DeviceLink implements DeviceConnection {
  readonly homeId: string;
  readonly deviceId: string;
  private readonly endpoint: DeviceEndpoint;
  private readonly client: MqttClient;
  private readonly logger: DeviceLogger;
  private readonly url: URL;
  private readonly ca: string | undefined;
  private readonly ackTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly commandTopic: string;
  private readonly grantsTopic: string;
  private readonly onGrants: ((payload: Buffer) => void) | undefined;
  private stream: IStream | undefined;
  private cut = false;
  private ready = false;
  private started = false;
  private connections = 0;
  private attemptsWhileCut = 0;
  private readonly readyWaiters = new Set<(error?: Error) => void>();
  private closing: Promise<void> | undefined;
  private readonly clock: Clock;
  private readonly reportIntervalMs: number;
  private cancelReport: (() => void) | undefined;
  private readonly linkListeners = new Set<(up: boolean) => void>();
  /** Set just around one publish, to catch its acknowledgement. */
  private nextAck: ((err: Error | null | undefined) => void) | undefined;

  /** Builds the link; nothing connects until {@link DeviceLink.start}. */
  constructor(options: DeviceLinkOptions) {
    this.homeId = options.homeId;
    this.deviceId = options.deviceId;
    this.logger = options.logger ?? silentLogger;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.clock = options.clock;
    this.reportIntervalMs = options.reportIntervalMs ?? 15_000;
    this.ca = options.ca;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    if (this.reportIntervalMs <= 0) throw new RangeError('reportIntervalMs must be > 0');
    this.url = new URL(options.brokerUrl);
    if (!['mqtt:', 'tcp:', 'mqtts:'].includes(this.url.protocol)) {
      throw new Error(`unsupported broker URL ${options.brokerUrl}`);
    }
    this.endpoint = new DeviceEndpoint(options, {
      isConnected: () => this.ready && !this.cut && this.client.connected,
      publish: (topic, payload, qos, retain) => {
        const ack = this.nextAck;
        this.nextAck = undefined;
        this.client.publish(topic, payload, { qos, retain }, (err) => {
          if (err) this.logger.debug({ deviceId: this.deviceId, topic }, `lost: ${err.message}`);
          ack?.(err);
        });
      },
    });
    this.commandTopic = this.endpoint.topic('command');
    this.grantsTopic = deviceTopic(options.homeId, options.deviceId, 'grants');
    this.onGrants = options.onGrants;
    const clientOptions: IClientOptions = {
      clientId: options.deviceId,
      username: options.deviceId,
      password: mqttPassword(options.deviceKey),
      protocolVersion: options.protocolVersion ?? 4,
      clean: true,
      keepalive: options.keepaliveSeconds ?? 30,
      reconnectPeriod: options.reconnectPeriodMs ?? 1_000,
      connectTimeout: this.startTimeoutMs,
      // Nothing waits for a connection to come back: a jammed device's messages are lost.
      queueQoSZero: false,
      // Subscribing is done on every connection below, before the device republishes.
      resubscribe: false,
      manualConnect: true,
      will: { topic: this.endpoint.topic('availability'), payload: OFFLINE, qos: 1, retain: true },
    };
    this.client = new MqttClient(() => this.buildStream(), clientOptions);
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) => this.onError(err));
    this.client.on('message', (topic, payload) => {
      if (topic === this.grantsTopic) this.receiveGrants(payload);
      if (topic !== this.commandTopic) return;
      void this.endpoint.receiveCommand(topic, payload);
    });
  }

  /**
   * Connects; resolves once connected and subscribed to commands. Rejects when the broker
   * refuses the credentials or after `startTimeoutMs`; the link keeps retrying until
   * {@link DeviceLink.close} either way.
   */
  start(): Promise<void> {
    if (this.closing) return Promise.reject(new Error('the link is closed'));
    this.connect();
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        done(new Error(`${this.deviceId}: no connection to ${this.url.host} in time`));
      }, this.startTimeoutMs);
      const done = (error?: Error): void => {
        clearTimeout(timer);
        this.readyWaiters.delete(done);
        if (error) reject(error);
        else resolve();
      };
      this.readyWaiters.add(done);
    });
  }

  /**
   * Starts connecting and returns at once, for a caller that works whether or not the broker is
   * there (the hub enforces locally); the link keeps trying every `reconnectPeriodMs`.
   * Does nothing once started or closed.
   */
  connect(): void {
    if (this.closing || this.started) return;
    this.started = true;
    this.client.connect();
  }

  /**
   * Resolves once the link is up, or rejects after `timeoutMs`. Unlike {@link DeviceLink.start}
   * it neither connects nor gives up early when the broker refuses: it only watches.
   */
  waitUntilUp(timeoutMs: number): Promise<void> {
    if (this.isConnected()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.deviceId}: no connection to ${this.url.host} in time`));
      }, timeoutMs);
      const off = this.onLinkChange((up) => {
        if (!up) return;
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  /**
   * Calls `listener` with true when the link is up (subscribed), false when it went down.
   * Returns the function that removes the listener.
   */
  onLinkChange(listener: (up: boolean) => void): () => void {
    this.linkListeners.add(listener);
    return () => {
      this.linkListeners.delete(listener);
    };
  }

  /**
   * What a Wi-Fi deauth flood does: the TCP connection dies at once, without a DISCONNECT
   * packet (the broker publishes the will), and reconnection fails until {@link restoreLink}.
   * Publishes meanwhile are dropped.
   */
  cutLink(): void {
    if (this.cut) return;
    this.cut = true;
    this.logger.info({ deviceId: this.deviceId }, 'link cut');
    this.stream?.destroy();
  }

  /** Ends the cut; the link reconnects at its next attempt (within `reconnectPeriodMs`). */
  restoreLink(): void {
    if (!this.cut) return;
    this.cut = false;
    this.logger.info({ deviceId: this.deviceId }, 'link restored');
  }

  /** Whether the link is cut. */
  isLinkCut(): boolean {
    return this.cut;
  }

  /**
   * Disconnects cleanly: publishes `{"online":false}` (retained) if it can, then sends
   * DISCONNECT. Idempotent; the link cannot be started again.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /** The link's counters. */
  stats(): DeviceLinkStats {
    return {
      ...this.endpoint.stats(),
      connections: this.connections,
      attemptsWhileCut: this.attemptsWhileCut,
    };
  }

  attach(behaviour: DeviceBehaviour): void {
    this.endpoint.attach(behaviour);
  }

  isConnected(): boolean {
    return this.endpoint.isConnected();
  }

  publishState(body: StateBody): PublishResult<DeviceStateMessage> {
    return this.endpoint.publishState(body);
  }

  publishEvent(body: EventBody): PublishResult<DeviceEventMessage> {
    return this.endpoint.publishEvent(body);
  }

  /**
   * Publishes an event and resolves true once the broker acknowledged it (PUBACK), false when
   * the link is down, the message was dropped, or no acknowledgement came in `ackTimeoutMs`.
   */
  publishEventAcked(body: EventBody): Promise<boolean> {
    if (!this.isConnected()) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = setTimeout(() => settle(false), this.ackTimeoutMs);
      // The endpoint publishes synchronously, so the hook catches exactly this event's publish.
      this.nextAck = (err) => settle(!err);
      const { sent } = this.endpoint.publishEvent(body);
      this.nextAck = undefined;
      if (!sent) settle(false);
    });
  }

  publishHeartbeat(sessionKey: Uint8Array, body: HeartbeatBody): PublishResult<HeartbeatMessage> {
    return this.endpoint.publishHeartbeat(sessionKey, body);
  }

  publishSignedHeartbeat(message: HeartbeatMessage): PublishResult<HeartbeatMessage> {
    return this.endpoint.publishSignedHeartbeat(message);
  }

  publishFrame(frame: FrameMessage): boolean {
    return this.endpoint.publishFrame(frame);
  }

  private buildStream(): IStream {
    if (this.cut) {
      this.attemptsWhileCut += 1;
      return failingStream();
    }
    const host = this.url.hostname.replace(/^\[(.*)\]$/, '$1');
    const secure = this.url.protocol === 'mqtts:';
    const port = this.url.port === '' ? (secure ? 8883 : 1883) : Number(this.url.port);
    const socket = secure
      ? tls
          .connect({
            host,
            port,
            // SNI takes a host name only; a broker reached by IP address is checked by its IP SAN.
            ...(net.isIP(host) === 0 ? { servername: host } : {}),
            ...(this.ca === undefined ? {} : { ca: this.ca }),
          })
          .setNoDelay(true)
      : net.connect({ host, port, noDelay: true });
    this.stream = socket;
    return socket;
  }

  private onConnect(): void {
    if (this.closing) return;
    const topics =
      this.onGrants === undefined ? [this.commandTopic] : [this.commandTopic, this.grantsTopic];
    this.client.subscribe(topics, { qos: 1 }, (err, granted) => {
      // 0x80 and up: the broker refused that filter (MQTT 3.1.1: 0x80; MQTT 5: a reason code).
      const refusedTopic = (topic: string): boolean =>
        granted?.some((g) => g.topic === topic && g.qos >= 0x80) ?? false;
      if (err || refusedTopic(this.commandTopic)) {
        const message = err ? err.message : 'subscription refused';
        this.logger.error({ deviceId: this.deviceId, topic: this.commandTopic }, message);
        return;
      }
      // Without its grant list the device still works (the hub then refuses what needs one):
      // the link comes up all the same.
      if (this.onGrants !== undefined && refusedTopic(this.grantsTopic))
        this.logger.error(
          { deviceId: this.deviceId, topic: this.grantsTopic },
          'grant list subscription refused',
        );
      // A cut that came while subscribing: this connection is already dead.
      if (!this.client.connected || this.closing || this.cut) return;
      this.ready = true;
      this.connections += 1;
      this.logger.info({ deviceId: this.deviceId }, 'connected');
      this.endpoint.publishAvailability(true);
      this.endpoint.connected();
      this.scheduleReport();
      for (const waiter of [...this.readyWaiters]) waiter();
      this.tell(true);
    });
  }

  /** Republishes the state every reportIntervalMs while the link is up. */
  private scheduleReport(): void {
    this.cancelReport?.();
    this.cancelReport = this.clock.schedule(this.clock.now() + this.reportIntervalMs, () => {
      this.cancelReport = undefined;
      if (this.closing || !this.ready) return;
      if (this.isConnected()) this.endpoint.connected();
      this.scheduleReport();
    });
  }

  private onClose(): void {
    this.cancelReport?.();
    this.cancelReport = undefined;
    const was = this.ready;
    if (was) this.logger.info({ deviceId: this.deviceId }, 'disconnected');
    this.ready = false;
    // mqtt.js would resend QoS 1 messages in flight after reconnecting; a device that lost its
    // link has lost them (and republishes its state on connect instead). Their acknowledgement
    // callbacks fail, so a bridge's log keeps them unsent.
    for (const [id, entry] of Object.entries(this.client.outgoing)) {
      if (entry.cmd === 'publish') this.client.removeOutgoingMessage(Number(id));
    }
    if (was) this.tell(false);
  }

  /** Hands a `grants` payload over; a receiver that throws must not stop the link. */
  private receiveGrants(payload: Buffer): void {
    try {
      this.onGrants?.(payload);
    } catch (err) {
      this.logger.error(
        { deviceId: this.deviceId, err: err instanceof Error ? err.message : String(err) },
        'the grant list receiver failed',
      );
    }
  }

  /** Tells the link listeners; one that throws must not stop the others or the link. */
  private tell(up: boolean): void {
    for (const listener of [...this.linkListeners]) {
      try {
        listener(up);
      } catch (err) {
        this.logger.error(
          { deviceId: this.deviceId, err: err instanceof Error ? err.message : String(err) },
          'a link listener failed',
        );
      }
    }
  }

  private onError(err: Error): void {
    const code = (err as Error & { code?: unknown }).code;
    this.logger.debug({ deviceId: this.deviceId, code }, `mqtt: ${err.message}`);
    if (typeof code === 'number' && AUTH_REFUSALS.has(code) && !this.ready) {
      const refusal = new Error(`${this.deviceId}: the broker refused the connection (${code})`);
      for (const waiter of [...this.readyWaiters]) waiter(refusal);
    }
  }

  private async shutDown(): Promise<void> {
    this.cancelReport?.();
    this.cancelReport = undefined;
    if (!this.started) return;
    if (this.isConnected()) {
      await withTimeout(
        this.client.publishAsync(this.endpoint.topic('availability'), OFFLINE, {
          qos: 1,
          retain: true,
        }),
        CLOSE_TIMEOUT_MS,
      ).catch(() => undefined);
    }
    const force = !this.client.connected || this.cut;
    await withTimeout(this.client.endAsync(force), CLOSE_TIMEOUT_MS).catch(() =>
      this.client.endAsync(true),
    );
    this.ready = false;
    for (const waiter of [...this.readyWaiters]) waiter(new Error('the link was closed'));
  }
}

/** A stream that fails on the next tick, as a connection attempt does while jammed. */
function failingStream(): IStream {
  const stream = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  process.nextTick(() => {
    stream.destroy(Object.assign(new Error('link cut'), { code: 'ENETUNREACH' }));
  });
  return stream;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

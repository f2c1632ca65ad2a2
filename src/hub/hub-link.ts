/**
 * One bridged device's MQTT connection from the hub to the control plane. It speaks exactly what
 * the reference {@link DeviceLink} speaks — same credentials, will, QoS, retained state,
 * republish on (re)connect and every `reportIntervalMs`, the same {@link DeviceEndpoint} signing
 * and command checks — so the control plane cannot tell a hub-bridged device from a simulated
 * one. It adds what the hub needs and the reference device does not:
 *
 * - `mqtts://` with the control plane's CA certificate (`ca`), for a broker whose certificate
 *   no public CA signed;
 * - listeners told when the link goes up or down ({@link HubLink.onLinkChange}), for the
 *   cut-off rule;
 * - {@link HubLink.publishEventAcked}: an event whose broker acknowledgement (PUBACK) the caller
 *   waits for, so the hub's log marks a fact sent only once the broker has it.
 *
 * Like the reference device it never queues while disconnected: what must survive an outage
 * goes through the hub's log.
 */
import { Duplex } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import { MqttClient, type IClientOptions, type IStream } from 'mqtt';
import type { Clock } from '../core/clock.ts';
import { mqttPassword } from '../protocol/device-auth.ts';
import type {
  DeviceEventMessage,
  DeviceStateMessage,
  FrameMessage,
  HeartbeatMessage,
} from '../protocol/device-messages.ts';
import {
  silentLogger,
  type DeviceBehaviour,
  type DeviceConnection,
  type DeviceLogger,
  type EventBody,
  type HeartbeatBody,
  type PublishResult,
  type StateBody,
} from '../devices/device-connection.ts';
import {
  DeviceEndpoint,
  type DeviceEndpointStats,
  type DeviceIdentity,
} from '../devices/device-endpoint.ts';

/** Settings of a {@link HubLink}. */
export interface HubLinkOptions extends DeviceIdentity {
  /** `mqtt://host:port` (default port 1883) or `mqtts://host:port` (default 8883). */
  readonly brokerUrl: string;
  /** PEM certificate(s) to trust for `mqtts://` instead of the system's CAs. */
  readonly ca?: string;
  /** Wait between reconnection attempts, ms. Default 1000. */
  readonly reconnectPeriodMs?: number;
  /** MQTT keepalive, seconds. Default 30. */
  readonly keepaliveSeconds?: number;
  /** Connection attempt timeout, ms. Default 10 000. */
  readonly connectTimeoutMs?: number;
  /** The state is republished this often while connected, ms. Default 15 000. */
  readonly reportIntervalMs?: number;
  /** How long {@link HubLink.publishEventAcked} waits for the broker, ms. Default 10 000. */
  readonly ackTimeoutMs?: number;
}

/** Counters of a {@link HubLink}. */
export interface HubLinkStats extends DeviceEndpointStats {
  /** Connections that reached the ready state (subscribed). */
  readonly connections: number;
}

const OFFLINE = Buffer.from('{"online":false}');
const CLOSE_TIMEOUT_MS = 2_000;

/** See the module comment. */
export class HubLink implements DeviceConnection {
  readonly homeId: string;
  readonly deviceId: string;
  private readonly endpoint: DeviceEndpoint;
  private readonly client: MqttClient;
  private readonly logger: DeviceLogger;
  private readonly url: URL;
  private readonly ca: string | undefined;
  private readonly commandTopic: string;
  private readonly clock: Clock;
  private readonly reportIntervalMs: number;
  private readonly ackTimeoutMs: number;
  private stream: IStream | undefined;
  private cut = false;
  private ready = false;
  private started = false;
  private connections = 0;
  private closing: Promise<void> | undefined;
  private cancelReport: (() => void) | undefined;
  private readonly linkListeners = new Set<(up: boolean) => void>();
  /** Set just around one publish, to catch its acknowledgement. */
  private nextAck: ((err: Error | null | undefined) => void) | undefined;

  /** Builds the link; nothing connects until {@link HubLink.start}. */
  constructor(options: HubLinkOptions) {
    this.homeId = options.homeId;
    this.deviceId = options.deviceId;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock;
    this.ca = options.ca;
    this.reportIntervalMs = options.reportIntervalMs ?? 15_000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    if (this.reportIntervalMs <= 0) throw new RangeError('reportIntervalMs must be > 0');
    this.url = new URL(options.brokerUrl);
    if (!['mqtt:', 'mqtts:'].includes(this.url.protocol))
      throw new Error(`unsupported broker URL ${options.brokerUrl}`);
    this.endpoint = new DeviceEndpoint(options, {
      isConnected: () => this.isConnected(),
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
    const clientOptions: IClientOptions = {
      clientId: options.deviceId,
      username: options.deviceId,
      password: mqttPassword(options.deviceKey),
      protocolVersion: 4,
      clean: true,
      keepalive: options.keepaliveSeconds ?? 30,
      reconnectPeriod: options.reconnectPeriodMs ?? 1_000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      queueQoSZero: false,
      resubscribe: false,
      manualConnect: true,
      will: { topic: this.endpoint.topic('availability'), payload: OFFLINE, qos: 1, retain: true },
    };
    this.client = new MqttClient(() => this.buildStream(), clientOptions);
    this.client.on('connect', () => this.onConnect());
    this.client.on('close', () => this.onClose());
    this.client.on('error', (err) => {
      this.logger.debug({ deviceId: this.deviceId }, `mqtt: ${err.message}`);
    });
    this.client.on('message', (topic, payload) => {
      if (topic !== this.commandTopic) return;
      void this.endpoint.receiveCommand(topic, payload);
    });
  }

  /**
   * Starts connecting and returns at once: the hub enforces locally whether or not the control
   * plane is there, and the link keeps trying every `reconnectPeriodMs`.
   */
  start(): void {
    if (this.closing || this.started) return;
    this.started = true;
    this.client.connect();
  }

  /** Resolves once the link is up, or rejects after `timeoutMs`. */
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

  /** Calls `listener` with true when the link is up (subscribed), false when it went down. */
  onLinkChange(listener: (up: boolean) => void): () => void {
    this.linkListeners.add(listener);
    return () => {
      this.linkListeners.delete(listener);
    };
  }

  /**
   * A fault switch for tests and scenarios: the TCP connection dies at once, without a
   * DISCONNECT (the broker publishes the will), and reconnecting fails until
   * {@link HubLink.restoreLink} — the hub's uplink cut.
   */
  cutLink(): void {
    if (this.cut) return;
    this.cut = true;
    this.stream?.destroy();
  }

  /** Ends the cut; the link reconnects at its next attempt. */
  restoreLink(): void {
    this.cut = false;
  }

  /** Disconnects cleanly (`{"online":false}` first, if it can). Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  /** The link's counters. */
  stats(): HubLinkStats {
    return { ...this.endpoint.stats(), connections: this.connections };
  }

  attach(behaviour: DeviceBehaviour): void {
    this.endpoint.attach(behaviour);
  }

  isConnected(): boolean {
    return this.ready && !this.cut && this.client.connected;
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
    if (this.cut) return failingStream();
    const host = this.url.hostname.replace(/^\[(.*)\]$/, '$1');
    const secure = this.url.protocol === 'mqtts:';
    const port = this.url.port === '' ? (secure ? 8883 : 1883) : Number(this.url.port);
    const socket = secure
      ? tls.connect({
          host,
          port,
          // SNI takes a host name only; a broker reached by IP address is checked by its IP SAN.
          ...(net.isIP(host) === 0 ? { servername: host } : {}),
          ...(this.ca ? { ca: this.ca } : {}),
        })
      : net.connect({ host, port, noDelay: true });
    this.stream = socket;
    return socket;
  }

  private onConnect(): void {
    if (this.closing) return;
    this.client.subscribe(this.commandTopic, { qos: 1 }, (err, granted) => {
      const refused = granted?.some((g) => g.qos === 128) ?? false;
      if (err || refused) {
        this.logger.error(
          { deviceId: this.deviceId, topic: this.commandTopic },
          err ? err.message : 'subscription refused',
        );
        return;
      }
      if (!this.client.connected || this.closing || this.cut) return;
      this.ready = true;
      this.connections += 1;
      this.logger.info({ deviceId: this.deviceId }, 'connected');
      this.endpoint.publishAvailability(true);
      this.endpoint.connected();
      this.scheduleReport();
      this.tell(true);
    });
  }

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
    this.ready = false;
    // As the reference device: QoS 1 messages in flight are lost with the connection, never
    // resent later (their acknowledgement callbacks fail, so the hub's log keeps them unsent).
    for (const [id, entry] of Object.entries(this.client.outgoing)) {
      if (entry.cmd === 'publish') this.client.removeOutgoingMessage(Number(id));
    }
    if (was) {
      this.logger.info({ deviceId: this.deviceId }, 'disconnected');
      this.tell(false);
    }
  }

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
  }
}

/** A stream that fails on the next tick, as a connection attempt does while the link is cut. */
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

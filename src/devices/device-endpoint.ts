/**
 * The transport-independent half of a device's connection: it builds and signs what the device
 * publishes (with its own sequence counters), and runs every incoming command through the
 * {@link CommandGuard} before the device's behaviour sees it, replying to each. The MQTT
 * {@link DeviceLink} and the in-memory {@link MemoryLink} differ only in the transport below.
 */
import type { Clock } from '../core/clock.ts';
import { sign } from '../protocol/device-auth.ts';
import type {
  DeviceEventMessage,
  DeviceStateMessage,
  FrameMessage,
  HeartbeatMessage,
  ReplyMessage,
} from '../protocol/device-messages.ts';
import { deviceTopic, type UpChannel } from '../protocol/topics.ts';
import { CommandGuard, type CommandGuardStats } from './command-guard.ts';
import {
  CommandFailure,
  silentLogger,
  type DeviceBehaviour,
  type DeviceConnection,
  type DeviceErrorCode,
  type DeviceLogger,
  type EventBody,
  type HeartbeatBody,
  type PublishResult,
  type StateBody,
} from './device-connection.ts';

/** Where an endpoint's messages go. */
export interface EndpointTransport {
  /** Whether a publish now reaches the broker. */
  isConnected(): boolean;
  /** Hands one message to the wire; only called while connected. */
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): void;
}

/** Settings shared by every device connection. */
export interface DeviceIdentity {
  /** The home the device belongs to (topic level). */
  readonly homeId: string;
  /** The device id: topic level, MQTT client id and user name. */
  readonly deviceId: string;
  /** The device key (32 bytes) that signs its messages and authenticates commands to it. */
  readonly deviceKey: Uint8Array;
  /** The device's clock: message times, command freshness. */
  readonly clock: Clock;
  readonly logger?: DeviceLogger;
  /** Tolerated clock skew for command freshness, ms. Default 5 min. */
  readonly skewToleranceMs?: number;
  /** Most command nonces remembered at once. Default 10 000. */
  readonly maxNonces?: number;
  /**
   * First sequence number of state reports and of events (each channel counts on its own).
   * Default: the clock's time at construction, so numbers keep growing across restarts as long
   * as the device clock does not go back.
   */
  readonly seqStart?: number;
}

/** Counters of one endpoint. */
export interface DeviceEndpointStats {
  readonly commands: CommandGuardStats;
  /** Authentic commands whose behaviour failed (error reply `command.failed` or its own code). */
  readonly commandsFailed: number;
  /** Messages handed to the wire, by channel. */
  readonly published: Readonly<Record<UpChannel, number>>;
  /** Messages dropped because the connection was down, by channel. */
  readonly dropped: Readonly<Record<UpChannel, number>>;
}

const MAX_ERROR_MESSAGE = 256;

type OkReply = Extract<ReplyMessage, { status: 'ok' }>;
type ErrorReply = Extract<ReplyMessage, { status: 'error' }>;

function zeroCounts(): Record<UpChannel, number> {
  return { availability: 0, state: 0, event: 0, heartbeat: 0, frame: 0, reply: 0 };
}

/** See the module comment. Implements {@link DeviceConnection} over an {@link EndpointTransport}. */
export class DeviceEndpoint implements DeviceConnection {
  readonly homeId: string;
  readonly deviceId: string;
  private readonly key: Uint8Array;
  private readonly clock: Clock;
  private readonly logger: DeviceLogger;
  private readonly guard: CommandGuard;
  private readonly transport: EndpointTransport;
  private behaviour: DeviceBehaviour | undefined;
  private stateSeq: number;
  private eventSeq: number;
  private commandsFailed = 0;
  private readonly published = zeroCounts();
  private readonly dropped = zeroCounts();

  constructor(identity: DeviceIdentity, transport: EndpointTransport) {
    this.homeId = identity.homeId;
    this.deviceId = identity.deviceId;
    // Validates both ids once, here, instead of on every publish.
    deviceTopic(this.homeId, this.deviceId, 'state');
    this.key = identity.deviceKey;
    this.clock = identity.clock;
    this.logger = identity.logger ?? silentLogger;
    this.transport = transport;
    this.guard = new CommandGuard({
      deviceKey: identity.deviceKey,
      clock: identity.clock,
      ...(identity.skewToleranceMs === undefined
        ? {}
        : { skewToleranceMs: identity.skewToleranceMs }),
      ...(identity.maxNonces === undefined ? {} : { maxNonces: identity.maxNonces }),
    });
    this.stateSeq = identity.seqStart ?? identity.clock.now();
    this.eventSeq = this.stateSeq;
  }

  /** The topic of one of this device's channels. */
  topic(channel: UpChannel | 'command'): string {
    return deviceTopic(this.homeId, this.deviceId, channel);
  }

  attach(behaviour: DeviceBehaviour): void {
    if (this.behaviour !== undefined) throw new Error(`${this.deviceId} already has a behaviour`);
    this.behaviour = behaviour;
  }

  isConnected(): boolean {
    return this.transport.isConnected();
  }

  /** Tells the behaviour the connection is (again) up, so it republishes its state. */
  connected(): void {
    this.behaviour?.onConnect();
  }

  publishState(body: StateBody): PublishResult<DeviceStateMessage> {
    const payload = { ...body, seq: this.stateSeq++, at: this.clock.now() };
    const message = sign<DeviceStateMessage>(this.key, this.topic('state'), payload);
    // Retained: a server that (re)starts learns the last report at once; `at` tells its age.
    return { message, sent: this.send('state', message, 1, true) };
  }

  publishEvent(body: EventBody): PublishResult<DeviceEventMessage> {
    const payload = { ...body, seq: this.eventSeq++, at: this.clock.now() };
    const message = sign<DeviceEventMessage>(this.key, this.topic('event'), payload);
    return { message, sent: this.send('event', message, 1) };
  }

  publishHeartbeat(sessionKey: Uint8Array, body: HeartbeatBody): PublishResult<HeartbeatMessage> {
    const message = sign<HeartbeatMessage>(sessionKey, this.topic('heartbeat'), body);
    return this.publishSignedHeartbeat(message);
  }

  publishSignedHeartbeat(message: HeartbeatMessage): PublishResult<HeartbeatMessage> {
    return { message, sent: this.send('heartbeat', message, 1) };
  }

  publishFrame(frame: FrameMessage): boolean {
    return this.send('frame', frame, 0);
  }

  /** Publishes the retained availability flag (no MAC: the broker's will must be able to). */
  publishAvailability(online: boolean): boolean {
    return this.send('availability', { online }, 1, true);
  }

  /**
   * Handles one payload received on the command topic: checks it, hands it to the behaviour
   * and publishes the signed reply. Never throws; resolves once the reply is published.
   */
  async receiveCommand(topic: string, payload: Uint8Array): Promise<void> {
    const verdict = this.guard.check(topic, payload);
    if (!verdict.ok) {
      this.logger.warn(
        { deviceId: this.deviceId, code: verdict.code, commandId: verdict.id },
        `command refused: ${verdict.message}`,
      );
      if (verdict.id !== null) this.replyError(verdict.id, verdict.code, verdict.message);
      return;
    }
    const command = verdict.command;
    const behaviour = this.behaviour;
    if (behaviour === undefined) {
      this.commandsFailed += 1;
      this.replyError(command.id, 'command.failed', 'the device is not ready');
      return;
    }
    let data: Record<string, unknown>;
    try {
      data = await behaviour.handleCommand(command);
    } catch (e) {
      this.commandsFailed += 1;
      const code: DeviceErrorCode = e instanceof CommandFailure ? e.code : 'command.failed';
      const message = e instanceof Error ? e.message : String(e);
      this.logger.warn({ deviceId: this.deviceId, commandId: command.id, code }, message);
      this.replyError(command.id, code, message);
      return;
    }
    const reply = sign<OkReply>(this.key, this.topic('reply'), {
      id: command.id,
      at: this.clock.now(),
      status: 'ok',
      data,
    });
    this.send('reply', reply, 1);
  }

  /** A snapshot of the counters. */
  stats(): DeviceEndpointStats {
    return {
      commands: this.guard.stats(),
      commandsFailed: this.commandsFailed,
      published: { ...this.published },
      dropped: { ...this.dropped },
    };
  }

  private replyError(id: string, code: DeviceErrorCode, message: string): void {
    const reply = sign<ErrorReply>(this.key, this.topic('reply'), {
      id,
      at: this.clock.now(),
      status: 'error',
      error: { code, message: message.slice(0, MAX_ERROR_MESSAGE) },
    });
    this.send('reply', reply, 1);
  }

  private send(channel: UpChannel, message: object, qos: 0 | 1, retain = false): boolean {
    if (!this.transport.isConnected()) {
      this.dropped[channel] += 1;
      return false;
    }
    this.transport.publish(this.topic(channel), Buffer.from(JSON.stringify(message)), qos, retain);
    this.published[channel] += 1;
    return true;
  }
}

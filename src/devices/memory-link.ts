/**
 * The in-memory twin of {@link DeviceLink}: the same endpoint (signing, sequence numbers,
 * command checks, replies) over a transport that records what is published instead of sending
 * it. Unit tests and scenario code drive a simulated device with it and a fake clock: no
 * broker, no sleeps.
 */
import { randomBytes } from 'node:crypto';
import { sign } from '../protocol/device-auth.ts';
import type {
  CommandMessage,
  FrameMessage,
  HeartbeatMessage,
  ReplyMessage,
} from '../protocol/device-messages.ts';
import { decodePayload, type ChannelPayloads } from '../protocol/device-messages.ts';
import type { UpChannel } from '../protocol/topics.ts';
import { isUpChannel, parseDeviceTopic } from '../protocol/topics.ts';
import type {
  DeviceBehaviour,
  DeviceConnection,
  EventBody,
  HeartbeatBody,
  PublishResult,
  StateBody,
} from './device-connection.ts';
import {
  DeviceEndpoint,
  type DeviceEndpointStats,
  type DeviceIdentity,
} from './device-endpoint.ts';

/** One message a {@link MemoryLink} published. */
export interface PublishedMessage<C extends UpChannel = UpChannel> {
  readonly topic: string;
  readonly channel: C;
  /** The decoded JSON payload, exactly as it went out. */
  readonly payload: ChannelPayloads[C];
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

/** What a command needs besides what {@link MemoryLink.command} fills in. */
export type CommandFields = Partial<Omit<CommandMessage, 'mac'>> & Pick<CommandMessage, 'action'>;

/** Default lifetime of commands built by {@link MemoryLink.command}, ms. */
const COMMAND_LIFETIME_MS = 30_000;

/** A device connection that records its publishes; see the module comment. */
export class MemoryLink implements DeviceConnection {
  readonly homeId: string;
  readonly deviceId: string;
  private readonly identity: DeviceIdentity;
  private readonly endpoint: DeviceEndpoint;
  private connected = false;
  private readonly log: PublishedMessage[] = [];

  /** Starts disconnected; call {@link MemoryLink.connect}. */
  constructor(identity: DeviceIdentity) {
    this.identity = identity;
    this.homeId = identity.homeId;
    this.deviceId = identity.deviceId;
    this.endpoint = new DeviceEndpoint(identity, {
      isConnected: () => this.connected,
      publish: (topic, payload, qos, retain) => {
        const parsed = parseDeviceTopic(topic);
        if (parsed === null || !isUpChannel(parsed.channel)) throw new Error(`bad topic ${topic}`);
        const decoded = decodePayload(parsed.channel, payload);
        // The endpoint must only ever publish valid messages; this twin is where tests see it.
        if (!decoded.ok) throw new Error(`invalid ${parsed.channel}: ${decoded.detail}`);
        this.log.push({ topic, channel: parsed.channel, payload: decoded.message, qos, retain });
      },
    });
  }

  /** Comes online: publishes availability `true` and lets the device republish its state. */
  connect(): void {
    if (this.connected) return;
    this.connected = true;
    this.endpoint.publishAvailability(true);
    this.endpoint.connected();
  }

  /** Goes offline as the broker would see it: records the will `{"online":false}`. */
  disconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    this.log.push({
      topic: this.endpoint.topic('availability'),
      channel: 'availability',
      payload: { online: false },
      qos: 1,
      retain: true,
    });
  }

  /** The topic of one of this device's channels. */
  topic(channel: UpChannel | 'command'): string {
    return this.endpoint.topic(channel);
  }

  /**
   * A fresh, correctly signed command for this device: random id and nonce, issued now by the
   * device's clock, expiring 30 s later, unless `fields` says otherwise.
   */
  command(fields: CommandFields): CommandMessage {
    const now = this.identity.clock.now();
    return sign<CommandMessage>(this.identity.deviceKey, this.topic('command'), {
      id: randomBytes(12).toString('base64url'),
      nonce: randomBytes(18).toString('base64url'),
      issuedAt: now,
      expiresAt: now + COMMAND_LIFETIME_MS,
      ...fields,
    });
  }

  /**
   * Delivers a command payload as the broker would and returns the device's reply to it (or
   * null: garbage gets none). Resolves once the behaviour has answered.
   */
  async deliver(command: CommandMessage | Uint8Array): Promise<ReplyMessage | null> {
    const payload =
      command instanceof Uint8Array ? command : Buffer.from(JSON.stringify(command), 'utf8');
    const before = this.log.length;
    await this.endpoint.receiveCommand(this.topic('command'), payload);
    const reply = this.log.slice(before).find((m) => m.channel === 'reply');
    return reply === undefined ? null : (reply.payload as ReplyMessage);
  }

  /** Everything published so far, oldest first. */
  messages(): readonly PublishedMessage[] {
    return this.log;
  }

  /** The payloads published on one channel, oldest first. */
  payloads<C extends UpChannel>(channel: C): ChannelPayloads[C][] {
    return this.log
      .filter((m) => m.channel === channel)
      .map((m) => m.payload as ChannelPayloads[C]);
  }

  /** Forgets what was recorded so far. */
  clear(): void {
    this.log.length = 0;
  }

  /** The endpoint's counters. */
  stats(): DeviceEndpointStats {
    return this.endpoint.stats();
  }

  attach(behaviour: DeviceBehaviour): void {
    this.endpoint.attach(behaviour);
  }

  isConnected(): boolean {
    return this.connected;
  }

  publishState(body: StateBody): PublishResult<ChannelPayloads['state']> {
    return this.endpoint.publishState(body);
  }

  publishEvent(body: EventBody): PublishResult<ChannelPayloads['event']> {
    return this.endpoint.publishEvent(body);
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
}

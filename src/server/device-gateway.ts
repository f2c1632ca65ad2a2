/**
 * The server's side of the device protocol: one link to the broker (broker-link.ts) that
 * receives every device's messages, validates and authenticates them, keeps each device's live
 * status, and sends signed commands and waits for their replies.
 *
 * Nothing a device sends is acted on before it passes, in order: a Threshold topic on an up
 * channel; a registered device of the home named in the topic; the channel's schema (size,
 * JSON, shape); a payload that fits the device's kind; the MAC (device key; for heartbeats the
 * key of the session the heartbeat names); for frames, bytes that match their digest; and for
 * states and events, a device time or sequence that moves forward. Anything else is dropped
 * and counted by reason, and logged. Heartbeats whose MAC fails are counted too, and still
 * passed on flagged as such: during a session they are evidence of an attack, and the
 * orchestrator raises the alarm.
 *
 * A device event is acknowledged to the device only after every listener's promise for it
 * resolved (the orchestrator returns its audit commit): an event the device was told we have is
 * in the audit log, crash or not.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { BrokerLink } from '../broker/broker-link.ts';
import type { Clock } from '../core/clock.ts';
import type { DeviceKind } from '../core/model.ts';
import { deriveDeviceKey, deriveSessionKey, sign, verifyMac } from '../protocol/device-auth.ts';
import {
  decodePayload,
  type CommandActionName,
  type CommandMessage,
  type DeviceEventMessage,
  type DeviceStateMessage,
  type FrameMessage,
  type HeartbeatMessage,
  type PinCommandFields,
  type ReplyMessage,
} from '../protocol/device-messages.ts';
import { deviceTopic, isUpChannel, parseDeviceTopic } from '../protocol/topics.ts';
import type { DeviceLiveStatus } from '../protocol/views.ts';

/** A device the gateway knows. */
export interface RegisteredDevice {
  readonly id: string;
  readonly homeId: string;
  readonly kind: DeviceKind;
}

/** What the server currently knows of a device. Stale is reported as stale, never hidden. */
export type { DeviceLiveStatus };

/**
 * How far ahead of the server's clock a device's `state` or `event` may be dated, ms (the
 * heartbeats' `maxClockSkewMs`). Later ones are dropped before they move the replay guard: a
 * report dated far in the future would otherwise lock out every honest report after it.
 */
export const MAX_FUTURE_SKEW_MS = 10 * 60_000;

export type DropReason =
  | 'bad-topic'
  | 'unknown-device'
  | 'wrong-home'
  | 'too-large'
  | 'not-json'
  | 'schema'
  | 'kind-mismatch'
  | 'bad-mac'
  | 'replayed'
  | 'clock-implausible'
  | 'bad-digest'
  | 'unknown-reply';

/** Receives what passed the gateway's checks. */
export interface DeviceGatewayListener {
  onState?(device: RegisteredDevice, state: DeviceStateMessage): void;
  /**
   * A returned promise is awaited before the event is acknowledged to the device: return
   * what must survive a crash (the audit commit). If it rejects, the event is not
   * acknowledged and the device sends it again.
   */
  onEvent?(device: RegisteredDevice, event: DeviceEventMessage): void | Promise<unknown>;
  /** The heartbeat's MAC is checked here with the session key its `sessionId` names. */
  onHeartbeat?(device: RegisteredDevice, hb: HeartbeatMessage, macValid: boolean): void;
  onFrame?(device: RegisteredDevice, frame: FrameMessage, jpeg: Buffer): void;
  onAvailability?(device: RegisteredDevice, online: boolean): void;
  onDrop?(reason: DropReason, topic: string, detail: string): void;
  /**
   * An authentic reply (its MAC verifies with the device key) to a command this server is not
   * waiting for: one it never sent (someone replayed or forged a command at the device, which
   * refused it), or one whose wait ran out. Also counted as the `unknown-reply` drop.
   */
  onForeignReply?(device: RegisteredDevice, reply: ReplyMessage): void;
}

export interface DeviceGatewayOptions {
  readonly masterKey: Uint8Array;
  readonly clock: Clock;
  readonly logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** How long a command stays valid, ms. */
  readonly commandTtlMs?: number;
  /**
   * Replicas: this replica's commands' ids start with it (see {@link commandIdPrefix}), and a
   * reply to a command another live replica sent (`isPeerCommand`) is that replica's business,
   * not a foreign reply. Every replica receives every reply.
   */
  readonly replica?: {
    readonly commandIdPrefix: string;
    isPeerCommand(commandId: string): boolean;
  };
  /**
   * Called with `performance.now()` at the points benchmarks measure: `command.publish` (a
   * command handed to the broker client) and `heartbeat.received`. Off when omitted.
   */
  readonly trace?: (point: 'command.publish' | 'heartbeat.received', detail: TracePoint) => void;
  /**
   * Called once per command when it ends (for the metrics): its action, ms from `command()` to
   * the reply or giving up, and how it ended.
   */
  readonly onCommandSettled?: (
    action: CommandActionName,
    ms: number,
    result: CommandOutcome['status'],
  ) => void;
}

/** What {@link DeviceGatewayOptions.trace} reports. */
export interface TracePoint {
  readonly atMs: number;
  readonly deviceId: string;
  readonly sessionId: string | null;
  readonly action?: CommandActionName;
}

export interface CommandOptions {
  readonly sessionId?: string;
  readonly relockAfterMs?: number;
  /** How long to wait for the reply, ms (default: the command's TTL). */
  readonly timeoutMs?: number;
  /** For `pin.set`, `pin.clear`, `pin.list`: slot, and for `pin.set` code and name. */
  readonly pin?: PinCommandFields;
  /**
   * For `unlock`: whom it lets in (`courier`, `guest` or `household`). A home hub checks a
   * courier's (and a guest's) unlock against its offline grant list; devices that do not keep
   * one ignore it.
   */
  readonly accessKind?: NonNullable<CommandMessage['accessKind']>;
  /** For `unlock` in a session: the grant the session runs under. */
  readonly grantId?: string;
}

export type CommandOutcome =
  | { readonly status: 'ok'; readonly reply: ReplyMessage; readonly commandId: string }
  | { readonly status: 'error'; readonly reply: ReplyMessage; readonly commandId: string }
  | { readonly status: 'timeout' | 'not-sent'; readonly commandId: string };

const STATE_KIND: Record<DeviceStateMessage['kind'], DeviceKind> = {
  lock: 'lock',
  'door-sensor': 'door-sensor',
  camera: 'camera',
};

export class DeviceGateway {
  private link: BrokerLink | null = null;
  private readonly devices = new Map<string, RegisteredDevice>();
  private readonly keys = new Map<string, Buffer>();
  /**
   * Each camera's session key for the session its last heartbeat named: a camera beats for
   * one session at a time, so the HMAC that derives it runs once per session, not per
   * heartbeat. One entry per registered device; replaced when the device is registered again.
   */
  private readonly sessionKeys = new Map<string, { sessionId: string; key: Buffer }>();
  private readonly status = new Map<string, DeviceLiveStatus>();
  private readonly lastStateClock = new Map<string, { at: number; seq: number }>();
  private readonly lastEventClock = new Map<string, { at: number; seq: number }>();
  private readonly waiting = new Map<
    string,
    { deviceId: string; resolve: (o: CommandOutcome) => void; cancel: () => void }
  >();
  private readonly listeners: DeviceGatewayListener[] = [];
  private readonly dropCounts = new Map<string, number>();
  private readonly ttlMs: number;

  constructor(private readonly opts: DeviceGatewayOptions) {
    this.ttlMs = opts.commandTtlMs ?? 10_000;
  }

  /** Adds (or replaces) a device the gateway accepts messages from. */
  register(device: RegisteredDevice): void {
    this.devices.set(device.id, device);
    this.keys.set(device.id, deriveDeviceKey(this.opts.masterKey, device.id));
    this.sessionKeys.delete(device.id);
    if (!this.status.has(device.id)) {
      this.status.set(device.id, {
        deviceId: device.id,
        homeId: device.homeId,
        kind: device.kind,
        online: false,
        lastSeenAt: null,
        offlineSince: null,
        state: null,
      });
    }
  }

  /** The device, if registered (the broker's lookup uses this too). */
  device(id: string): RegisteredDevice | undefined {
    return this.devices.get(id);
  }

  addListener(l: DeviceGatewayListener): void {
    this.listeners.push(l);
  }

  /**
   * Starts receiving through `link` (the embedded broker's `serverLink()`, or an
   * `mqttBrokerLink` to an external broker); resolves once subscribed. The gateway owns the
   * link from here and stops it in {@link stop}.
   */
  async start(link: BrokerLink): Promise<void> {
    await link.start((topic, payload) => this.deliver(topic, payload));
    this.link = link;
  }

  async stop(): Promise<void> {
    for (const [id, w] of this.waiting) {
      w.cancel();
      w.resolve({ status: 'timeout', commandId: id });
    }
    this.waiting.clear();
    const link = this.link;
    this.link = null;
    if (link) await link.stop();
  }

  /** Live status of one device. */
  liveStatus(deviceId: string): DeviceLiveStatus | undefined {
    return this.status.get(deviceId);
  }

  /** Counts of dropped messages by reason. */
  drops(): Record<string, number> {
    return Object.fromEntries(this.dropCounts);
  }

  /** Counts and logs a message that was not acted on as sent (it may still be passed on, flagged). */
  private count(reason: DropReason | 'heartbeat-bad-mac', topic: string, detail: string): void {
    this.dropCounts.set(reason, (this.dropCounts.get(reason) ?? 0) + 1);
    this.opts.logger?.warn(
      { reason, topic: topic.slice(0, 200), detail: detail.slice(0, 200) },
      'device message rejected',
    );
  }

  private drop(reason: DropReason, topic: string, detail: string): void {
    this.dropCounts.set(reason, (this.dropCounts.get(reason) ?? 0) + 1);
    this.opts.logger?.warn(
      { reason, topic: topic.slice(0, 200), detail: detail.slice(0, 200) },
      'device message dropped',
    );
    for (const l of this.listeners) l.onDrop?.(reason, topic, detail);
  }

  /** The session key `deviceId`'s heartbeats for `sessionId` are signed with (cached). */
  private sessionKey(deviceId: string, deviceKey: Buffer, sessionId: string): Buffer {
    const cached = this.sessionKeys.get(deviceId);
    if (cached !== undefined && cached.sessionId === sessionId) return cached.key;
    const key = deriveSessionKey(deviceKey, sessionId);
    this.sessionKeys.set(deviceId, { sessionId, key });
    return key;
  }

  /**
   * A message of the device arrived: its `lastSeenAt` is now. The status is replaced, never
   * changed in place (it is handed out by reference, in events that may be kept), but not
   * when it already says now (many heartbeats arrive within one millisecond at scale).
   */
  private touch(deviceId: string): void {
    const prev = this.status.get(deviceId);
    if (!prev) return;
    const now = this.opts.clock.now();
    if (prev.lastSeenAt === now) return;
    this.status.set(deviceId, { ...prev, lastSeenAt: now });
  }

  private seen(deviceId: string, patch: Partial<DeviceLiveStatus>): void {
    const prev = this.status.get(deviceId);
    if (!prev) return;
    this.status.set(deviceId, { ...prev, lastSeenAt: this.opts.clock.now(), ...patch });
  }

  /**
   * The link's `deliver`: resolves once the message is handled as far as must survive a
   * crash, so the link may acknowledge it; rejects when a listener could not record it.
   */
  private async deliver(topic: string, payload: Buffer): Promise<void> {
    let pending: Promise<unknown> | void = undefined;
    try {
      pending = this.handle(topic, payload);
    } catch (err) {
      // A listener's bug must not take the gateway down; the message counts as dropped.
      this.opts.logger?.warn(
        { err: err instanceof Error ? err.message : String(err), topic },
        'device message handler failed',
      );
    }
    if (pending) await pending;
  }

  /** Returns, for an event, what its listeners must finish before it is acknowledged. */
  private handle(topic: string, payload: Buffer): Promise<unknown> | void {
    const t = parseDeviceTopic(topic);
    if (t === null || !isUpChannel(t.channel))
      return this.drop('bad-topic', topic, 'not a device up topic');
    const device = this.devices.get(t.deviceId);
    if (!device) return this.drop('unknown-device', topic, t.deviceId);
    if (device.homeId !== t.homeId) return this.drop('wrong-home', topic, t.homeId);
    const key = this.keys.get(device.id);
    if (!key) return this.drop('unknown-device', topic, t.deviceId);

    switch (t.channel) {
      case 'availability': {
        const d = decodePayload('availability', payload);
        if (!d.ok) return this.drop(d.reason, topic, d.detail);
        const now = this.opts.clock.now();
        const prev = this.status.get(device.id);
        this.seen(device.id, {
          online: d.message.online,
          offlineSince: d.message.online ? null : (prev?.offlineSince ?? now),
          ...(d.message.online ? {} : { lastSeenAt: prev?.lastSeenAt ?? null }),
        });
        for (const l of this.listeners) l.onAvailability?.(device, d.message.online);
        return;
      }
      case 'state': {
        const d = decodePayload('state', payload);
        if (!d.ok) return this.drop(d.reason, topic, d.detail);
        const msg = d.message;
        if (STATE_KIND[msg.kind] !== device.kind)
          return this.drop('kind-mismatch', topic, msg.kind);
        if (!verifyMac(key, topic, msg)) return this.drop('bad-mac', topic, 'state');
        if (msg.at > this.opts.clock.now() + MAX_FUTURE_SKEW_MS)
          return this.drop('clock-implausible', topic, `state at ${msg.at}`);
        if (!this.moveForward(this.lastStateClock, device.id, msg.at, msg.seq)) {
          return this.drop('replayed', topic, `state seq ${msg.seq}`);
        }
        this.seen(device.id, { state: msg, online: true, offlineSince: null });
        for (const l of this.listeners) l.onState?.(device, msg);
        return;
      }
      case 'event': {
        const d = decodePayload('event', payload);
        if (!d.ok) return this.drop(d.reason, topic, d.detail);
        if (!verifyMac(key, topic, d.message)) return this.drop('bad-mac', topic, 'event');
        if (d.message.at > this.opts.clock.now() + MAX_FUTURE_SKEW_MS)
          return this.drop('clock-implausible', topic, `event at ${d.message.at}`);
        const before = this.lastEventClock.get(device.id);
        if (!this.moveForward(this.lastEventClock, device.id, d.message.at, d.message.seq)) {
          return this.drop('replayed', topic, `event seq ${d.message.seq}`);
        }
        this.seen(device.id, {});
        const pending: Promise<unknown>[] = [];
        for (const l of this.listeners) {
          const result = l.onEvent?.(device, d.message);
          if (result) pending.push(result);
        }
        if (pending.length === 0) return;
        const accepted = this.lastEventClock.get(device.id);
        return Promise.all(pending).catch((err: unknown) => {
          // Not recorded, so not acknowledged: the device sends it again, and the replay
          // guard must let that copy in.
          if (this.lastEventClock.get(device.id) === accepted) {
            if (before) this.lastEventClock.set(device.id, before);
            else this.lastEventClock.delete(device.id);
          }
          throw err;
        });
      }
      case 'heartbeat': {
        this.opts.trace?.('heartbeat.received', {
          atMs: performance.now(),
          deviceId: device.id,
          sessionId: null,
        });
        const d = decodePayload('heartbeat', payload);
        if (!d.ok) return this.drop(d.reason, topic, d.detail);
        if (device.kind !== 'camera')
          return this.drop('kind-mismatch', topic, 'heartbeat from a non-camera');
        const sessionKey = this.sessionKey(device.id, key, d.message.sessionId);
        const macValid = verifyMac(sessionKey, topic, d.message);
        if (macValid) this.touch(device.id);
        else
          this.count(
            'heartbeat-bad-mac',
            topic,
            `session ${d.message.sessionId} seq ${d.message.seq}`,
          );
        for (const l of this.listeners) l.onHeartbeat?.(device, d.message, macValid);
        return;
      }
      case 'frame': {
        const d = decodePayload('frame', payload);
        if (!d.ok) return this.drop(d.reason, topic, d.detail);
        if (device.kind !== 'camera')
          return this.drop('kind-mismatch', topic, 'frame from a non-camera');
        const jpeg = Buffer.from(d.message.jpeg, 'base64');
        // A frame whose bytes do not match its digest can never be vouched for by a heartbeat.
        if (createHash('sha256').update(jpeg).digest('hex') !== d.message.digest) {
          return this.drop('bad-digest', topic, d.message.digest);
        }
        for (const l of this.listeners) l.onFrame?.(device, d.message, jpeg);
        return;
      }
      case 'reply': {
        const d = decodePayload('reply', payload);
        if (!d.ok) return this.drop(d.reason, topic, d.detail);
        if (!verifyMac(key, topic, d.message)) return this.drop('bad-mac', topic, 'reply');
        const w = this.waiting.get(d.message.id);
        if (!w || w.deviceId !== device.id) {
          if (this.opts.replica?.isPeerCommand(d.message.id)) return;
          for (const l of this.listeners) l.onForeignReply?.(device, d.message);
          return this.drop('unknown-reply', topic, d.message.id);
        }
        this.waiting.delete(d.message.id);
        w.cancel();
        this.seen(device.id, {});
        w.resolve({ status: d.message.status, reply: d.message, commandId: d.message.id });
        return;
      }
    }
  }

  /** Device time (then sequence) must move forward, so an old signed report cannot be replayed. */
  private moveForward(
    map: Map<string, { at: number; seq: number }>,
    id: string,
    at: number,
    seq: number,
  ): boolean {
    const last = map.get(id);
    if (last && (at < last.at || (at === last.at && seq <= last.seq))) return false;
    map.set(id, { at, seq });
    return true;
  }

  /**
   * Publishes a lock's signed offline grant list (grant-list.ts) on its `grants` topic,
   * retained (a hub that connects later gets the newest at once) and QoS 1. Resolves true once
   * the broker has taken it, false when it could not be sent (not connected, refused); never
   * rejects. The list is signed already: no device MAC, the hub checks the list's signature.
   */
  async publishGrants(homeId: string, lockId: string, payload: string): Promise<boolean> {
    const link = this.link;
    if (!link) return false;
    try {
      await link.publish(deviceTopic(homeId, lockId, 'grants'), payload, { retain: true });
      return true;
    } catch (err) {
      this.opts.logger?.warn(
        { err: err instanceof Error ? err.message : String(err), lockId },
        'grant list not published',
      );
      return false;
    }
  }

  /**
   * Sends a signed command and resolves with the device's reply, or `timeout`. Never rejects:
   * a lost command is an expected outcome the caller handles.
   */
  async command(
    deviceId: string,
    action: CommandActionName,
    options: CommandOptions = {},
  ): Promise<CommandOutcome> {
    const startedAt = performance.now();
    const settled = (o: CommandOutcome): CommandOutcome => {
      this.opts.onCommandSettled?.(action, performance.now() - startedAt, o.status);
      return o;
    };
    const device = this.devices.get(deviceId);
    const key = this.keys.get(deviceId);
    const id = `${this.opts.replica?.commandIdPrefix ?? ''}${randomUUID()}`;
    const link = this.link;
    if (!device || !key || !link) return settled({ status: 'not-sent', commandId: id });
    const topic = deviceTopic(device.homeId, device.id, 'command');
    const now = this.opts.clock.now();
    const body: Omit<CommandMessage, 'mac'> = {
      id,
      nonce: randomBytes(18).toString('base64url'),
      issuedAt: now,
      expiresAt: now + this.ttlMs,
      action,
      ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }),
      ...(options.relockAfterMs === undefined ? {} : { relockAfterMs: options.relockAfterMs }),
      ...(options.accessKind === undefined ? {} : { accessKind: options.accessKind }),
      ...(options.grantId === undefined ? {} : { grantId: options.grantId }),
      ...options.pin,
    };
    const msg = sign<CommandMessage>(key, topic, body);
    const timeoutMs = options.timeoutMs ?? this.ttlMs;
    const outcome = new Promise<CommandOutcome>((resolve) => {
      const cancel = this.opts.clock.schedule(now + timeoutMs, () => {
        this.waiting.delete(id);
        resolve({ status: 'timeout', commandId: id });
      });
      this.waiting.set(id, {
        deviceId,
        resolve,
        cancel: () => {
          cancel();
        },
      });
    });
    try {
      this.opts.trace?.('command.publish', {
        atMs: performance.now(),
        deviceId,
        sessionId: options.sessionId ?? null,
        action,
      });
      await link.publish(topic, JSON.stringify(msg));
    } catch (err) {
      this.waiting.get(id)?.cancel();
      this.waiting.delete(id);
      this.opts.logger?.warn(
        { err: err instanceof Error ? err.message : String(err), deviceId, action },
        'command not sent',
      );
      return settled({ status: 'not-sent', commandId: id });
    }
    return settled(await outcome);
  }
}

/**
 * The prefix of a replica's command ids: `r`, eight hex digits of the SHA-256 of its id, `_`.
 * With a UUID after it, 47 characters, within the protocol's 64 (`[A-Za-z0-9_-]`).
 */
export function commandIdPrefix(replicaId: string): string {
  return `r${createHash('sha256').update(replicaId).digest('hex').slice(0, 8)}_`;
}

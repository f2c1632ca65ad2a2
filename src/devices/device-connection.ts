/**
 * What a simulated (or bridged) device needs from its connection to the control plane, and
 * what it offers back. The MQTT {@link DeviceLink} and the in-memory {@link MemoryLink} both
 * implement {@link DeviceConnection}, so a device's behaviour is the same code on the wire and
 * in a unit test driven by a fake clock.
 */
import type {
  CommandMessage,
  DeviceEventMessage,
  DeviceStateMessage,
  FrameMessage,
  HeartbeatMessage,
} from '../protocol/device-messages.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A state report as the device writes it; the connection adds `seq`, `at` and `mac`. */
export type StateBody = DistributiveOmit<DeviceStateMessage, 'seq' | 'at' | 'mac'>;
/** An event as the device writes it; the connection adds `seq`, `at` and `mac`. */
export type EventBody = Omit<DeviceEventMessage, 'seq' | 'at' | 'mac'>;
/** A heartbeat before it is signed with the session key. */
export type HeartbeatBody = Omit<HeartbeatMessage, 'mac'>;

/**
 * Codes a device answers a command with in an error reply. The `command.*` refusals come from
 * the connection (the behaviour never sees such a command); the others from the behaviour.
 */
export type DeviceErrorCode =
  /** The MAC does not verify with the device key. */
  | 'command.bad-mac'
  /** `expiresAt` has passed, or `issuedAt` is in the future, beyond the tolerated skew. */
  | 'command.expired'
  /** The nonce was seen before (or is too old to prove it was not). */
  | 'command.replayed'
  /** Not a valid command (schema, or inconsistent times), though its id could be read. */
  | 'command.invalid'
  /** The device does not do this action. */
  | 'command.unsupported'
  /** The behaviour failed while acting on an authentic command. */
  | 'command.failed'
  /** The lock's bolt jammed while moving. */
  | 'lock.jammed'
  /** A home hub refused a courier's unlock: it holds no grant list from the control plane. */
  | 'grants.none'
  /** …its newest grant list is older than its configured bound. */
  | 'grants.stale'
  /** …its grant list does not name the delivery's grant. */
  | 'grants.not-listed';

/**
 * Thrown by a {@link DeviceBehaviour} to answer a command with a specific error code; any other
 * thrown error becomes `command.failed`.
 */
export class CommandFailure extends Error {
  readonly code: DeviceErrorCode;

  constructor(code: DeviceErrorCode, message: string) {
    super(message);
    this.name = 'CommandFailure';
    this.code = code;
  }
}

/** The declarative side of a device: how it answers commands and what it says on connect. */
export interface DeviceBehaviour {
  /**
   * Acts on an authentic, fresh, never-seen command. The resolved object becomes the `data` of
   * an `ok` reply; a rejection becomes an error reply (see {@link CommandFailure}).
   */
  handleCommand(command: CommandMessage): Promise<Record<string, unknown>>;
  /** Called after every (re)connection, once the command subscription holds: republish state. */
  onConnect(): void;
}

/** What a publish produced: the message as signed, and whether it was handed to the wire. */
export interface PublishResult<T> {
  readonly message: T;
  /** False when the connection was down: the message is lost, never queued for later. */
  readonly sent: boolean;
}

/** The device side of the protocol, independent of the transport. */
export interface DeviceConnection {
  readonly homeId: string;
  readonly deviceId: string;
  /** Attaches the one behaviour that answers commands; throws if one is attached already. */
  attach(behaviour: DeviceBehaviour): void;
  /** Whether messages published now reach the broker. */
  isConnected(): boolean;
  /** Publishes a state report (QoS 1, retained), signed with the device key. */
  publishState(body: StateBody): PublishResult<DeviceStateMessage>;
  /** Publishes an event (QoS 1), signed with the device key. */
  publishEvent(body: EventBody): PublishResult<DeviceEventMessage>;
  /** Signs a heartbeat with `sessionKey` and publishes it (QoS 1). */
  publishHeartbeat(sessionKey: Uint8Array, body: HeartbeatBody): PublishResult<HeartbeatMessage>;
  /** Publishes a heartbeat exactly as given, MAC included (replay attacks, bridges). */
  publishSignedHeartbeat(message: HeartbeatMessage): PublishResult<HeartbeatMessage>;
  /** Publishes one frame (QoS 0). Returns whether it was handed to the wire. */
  publishFrame(frame: FrameMessage): boolean;
}

/** Structured logging; a pino logger fits. */
export interface DeviceLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A logger that drops everything. */
export const silentLogger: DeviceLogger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/**
 * The one interface between the hub and the devices people own. A driver speaks a device's own
 * protocol (Zigbee2MQTT's MQTT API, zwave-js, an MJPEG or RTSP camera through ffmpeg) and
 * reports facts in these terms; the hub turns them into the signed device protocol of
 * `docs/device-protocol.md` and enforces deadlines locally. Every driver of a kind passes the
 * same contract test suite (`test/drivers/*-contract.ts`).
 *
 * Rules every driver keeps:
 * - A fact it is not sure of is `unknown`, never the last value: a device that went away makes
 *   `available` false and its state `unknown` (the hub reports "offline since", not "locked").
 * - Commands resolve when the device (or its bridge) accepted them, and reject with a
 *   {@link DriverError} otherwise; the *result* arrives as a state change from the device's own
 *   report. A lock command is never reported as done before the lock says so.
 * - Listeners are called synchronously, in the order the device reported; a listener that
 *   throws does not stop the others.
 * - `stop()` releases every socket, child process and timer; after it nothing is emitted.
 */

/** What a lock's bolt is, as its last report says. */
export type DriverBolt = 'locked' | 'unlocked' | 'jammed' | 'unknown';

/** A door contact. */
export type DriverPosition = 'open' | 'closed' | 'unknown';

/** Why a driver refused or failed a command. */
export type DriverErrorCode =
  /** The device or its bridge is not reachable now. */
  | 'device.unavailable'
  /** The device said no (e.g. a jammed bolt, a slot it does not have). */
  | 'device.refused'
  /** No answer in time. */
  | 'device.timeout'
  /** The driver or device cannot do this at all (a lock without a keypad and `setPin`). */
  | 'device.unsupported';

/** A failed driver command. */
export class DriverError extends Error {
  constructor(
    readonly code: DriverErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DriverError';
  }
}

/** Common to every driver. */
export interface DriverBase {
  /** Stable id within the hub's config (the device id the hub presents upstream). */
  readonly id: string;
  /** Connects and reads the device's current state; resolves once it is known or unknown. */
  start(): Promise<void>;
  /** Releases everything; idempotent. */
  stop(): Promise<void>;
  /** Whether the device (through its bridge) is reachable now. */
  available(): boolean;
}

/** What a lock reported. `at` is the hub's clock when the report arrived, ms. */
export type LockDriverEvent =
  | { readonly type: 'state'; readonly bolt: DriverBolt; readonly at: number }
  | { readonly type: 'availability'; readonly available: boolean; readonly at: number }
  /** The keypad opened it; `slot` when the device says which user code (null if it does not). */
  | { readonly type: 'keypad-unlocked'; readonly slot: number | null; readonly at: number }
  /** A wrong code was entered (when the device reports it). */
  | { readonly type: 'keypad-wrong-code'; readonly at: number }
  /** The keypad locked itself out after too many wrong codes (when the device reports it). */
  | { readonly type: 'keypad-lockout'; readonly untilMs: number | null; readonly at: number }
  /** Turned by hand: a key or the thumb-turn (when the device tells manual from remote). */
  | { readonly type: 'manual'; readonly bolt: 'locked' | 'unlocked'; readonly at: number };

/** A lock: Zigbee2MQTT, Z-Wave, Matter, or a simulation. */
export interface LockDriver extends DriverBase {
  readonly kind: 'lock';
  /** The bolt as last reported; `unknown` while unavailable or never reported. */
  bolt(): DriverBolt;
  /** Asks the lock to throw the bolt. Resolves when the command was accepted. */
  lock(): Promise<void>;
  /** Asks the lock to draw the bolt. Resolves when the command was accepted. */
  unlock(): Promise<void>;
  /** Keypad user codes, when the lock has a keypad and the driver can manage it; else null. */
  readonly pins: PinDriver | null;
  /** Listens to reports; returns the function that stops listening. */
  on(listener: (e: LockDriverEvent) => void): () => void;
}

/** Keypad user codes on a lock. Codes go to the device and are never read back in clear. */
export interface PinDriver {
  /** How many slots (user ids) the lock has. */
  capacity(): number;
  /** Stores `code` in `slot` (1-based). Resolves when the device accepted it. */
  set(slot: number, code: string): Promise<void>;
  /** Empties `slot`. */
  clear(slot: number): Promise<void>;
  /** The slots that hold a code now, as the device reports them. */
  occupied(): Promise<number[]>;
}

/** What a door contact reported. */
export type ContactDriverEvent =
  | { readonly type: 'state'; readonly position: DriverPosition; readonly at: number }
  | { readonly type: 'availability'; readonly available: boolean; readonly at: number };

/** A door contact sensor. */
export interface ContactDriver extends DriverBase {
  readonly kind: 'door-sensor';
  /** The door as last reported; `unknown` while unavailable or never reported. */
  position(): DriverPosition;
  on(listener: (e: ContactDriverEvent) => void): () => void;
}

/** One picture from a camera, as the hub received it. */
export interface DriverFrame {
  /** When the hub received it, ms (hub clock). */
  readonly receivedAt: number;
  readonly jpeg: Buffer;
  /** SHA-256 of `jpeg`, hex. */
  readonly digest: string;
}

/** What a camera did. */
export type CameraDriverEvent =
  | { readonly type: 'frame'; readonly frame: DriverFrame }
  /** The stream is open but no frame came for the driver's stall time (a cut Wi-Fi link). */
  | { readonly type: 'stalled'; readonly sinceMs: number; readonly at: number }
  | { readonly type: 'availability'; readonly available: boolean; readonly at: number };

/** A camera whose pictures the hub reads itself (MJPEG over HTTP, RTSP through ffmpeg). */
export interface CameraDriver extends DriverBase {
  readonly kind: 'camera';
  /** The newest frame, or null when none came yet or the stream is down. */
  latest(): DriverFrame | null;
  on(listener: (e: CameraDriverEvent) => void): () => void;
}

/** Any driver. */
export type Driver = LockDriver | ContactDriver | CameraDriver;

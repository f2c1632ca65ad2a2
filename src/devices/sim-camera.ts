/**
 * A simulated security camera looking at the door from inside.
 *
 * `arm {sessionId}` starts recording for an access session: the camera derives the session
 * key, publishes its state `{recording: true, sessionId}`, then at once and every
 * `heartbeatIntervalMs` publishes the latest frame and a heartbeat naming that frame's digest,
 * `seq` 0, 1, 2… for the session, MAC'd with the session key (principle 3). Frames are rendered
 * from the scene (door open or closed, a person or not, a burnt-in clock) at most every
 * `frameIntervalMs`. `disarm` stops; `report` republishes the state.
 *
 * The harness's fault switches:
 * - {@link SimCamera.freeze}: heartbeats go on, but always with the same picture (same digest).
 * - {@link SimCamera.loop}: the picture changes but cycles through the last n frames.
 * - {@link SimCamera.forge}: heartbeats signed with a random key instead of the session key.
 * - {@link SimCamera.startReplay}: instead of its own heartbeats, the camera publishes recorded
 *   ones, MACs and all (see {@link SimCamera.recordedHeartbeats}).
 * While frozen or looping, frames and heartbeats claim to be captured now: only the digest
 * gives the picture away, as it would with a compromised camera.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import { deriveSessionKey } from '../protocol/device-auth.ts';
import type { CommandMessage, HeartbeatMessage } from '../protocol/device-messages.ts';
import { cameraCommand } from './camera-commands.ts';
import { renderScene, type SceneOptions } from './camera-scene.ts';
import type { DeviceBehaviour, DeviceConnection } from './device-connection.ts';
import type { DoorPositionSource } from './sim-door-sensor.ts';

/** Settings of a {@link SimCamera}. */
export interface SimCameraOptions {
  readonly clock: Clock;
  /** The device key, to derive session keys. */
  readonly deviceKey: Uint8Array;
  /** What tells the camera whether the door is open: a door sensor, or a getter. */
  readonly door?: Pick<DoorPositionSource, 'position'> | (() => boolean);
  /** Label drawn in the picture. Default: the device id. */
  readonly label?: string;
  /** Shortest time between two captured frames, ms. Default 500. */
  readonly frameIntervalMs?: number;
  /** Time between heartbeats while armed, ms. Default 500. */
  readonly heartbeatIntervalMs?: number;
  /** Picture size and quality (default 320 × 240, quality 70). */
  readonly scene?: SceneOptions;
  /** Whether a person stands in the doorway at start. Default false. */
  readonly person?: boolean;
}

/** One captured picture. */
export interface CapturedFrame {
  /** When it was captured, ms by the camera's clock. */
  readonly capturedAt: number;
  readonly jpeg: Buffer;
  /** SHA-256 of `jpeg`, hex. */
  readonly digest: string;
}

/** What the picture does: live, stuck on one frame, or cycling through a few. */
export type PictureMode =
  | { readonly kind: 'live' }
  | { readonly kind: 'frozen'; readonly frame: CapturedFrame }
  | { readonly kind: 'loop'; readonly frames: readonly CapturedFrame[] };

interface Session {
  readonly id: string;
  readonly key: Buffer;
  seq: number;
}

const RECENT_FRAMES = 64;
const RECORDED_SESSIONS = 8;
const RECORDED_PER_SESSION = 10_000;

/** See the module comment. */
export class SimCamera implements DeviceBehaviour {
  private readonly connection: DeviceConnection;
  private readonly clock: Clock;
  private readonly deviceKey: Uint8Array;
  private readonly door: SimCameraOptions['door'];
  private readonly label: string;
  private readonly frameIntervalMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly scene: SceneOptions;
  private person: boolean;
  private session: Session | null = null;
  private cancelTick: (() => void) | undefined;
  private readonly recent: CapturedFrame[] = [];
  private mode: PictureMode = { kind: 'live' };
  private loopIndex = 0;
  private forgeKey: Buffer | null = null;
  private replay: { readonly messages: readonly HeartbeatMessage[]; index: number } | null = null;
  private readonly recorded = new Map<string, HeartbeatMessage[]>();
  private lastSessionId: string | null = null;

  /** Attaches itself to `connection`. */
  constructor(connection: DeviceConnection, options: SimCameraOptions) {
    this.connection = connection;
    this.clock = options.clock;
    this.deviceKey = options.deviceKey;
    this.door = options.door;
    this.label = options.label ?? connection.deviceId;
    this.frameIntervalMs = options.frameIntervalMs ?? 500;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 500;
    this.scene = options.scene ?? {};
    this.person = options.person ?? false;
    if (this.heartbeatIntervalMs <= 0) throw new RangeError('heartbeatIntervalMs must be > 0');
    connection.attach(this);
  }

  /** The device id. */
  get deviceId(): string {
    return this.connection.deviceId;
  }

  /** Whether it records for a session. */
  isRecording(): boolean {
    return this.session !== null;
  }

  /** The session it records for, or null. */
  sessionId(): string | null {
    return this.session?.id ?? null;
  }

  /** The last frame captured, if any. */
  latestFrame(): CapturedFrame | undefined {
    return this.recent[this.recent.length - 1];
  }

  /** What the picture does now. */
  pictureMode(): PictureMode {
    return this.mode;
  }

  /** Puts a person in the doorway, or takes them away. */
  setPerson(present: boolean): void {
    this.person = present;
  }

  /** Keeps sending heartbeats, always with the last frame captured (same digest). */
  freeze(): void {
    this.mode = { kind: 'frozen', frame: this.latestFrame() ?? this.capture(this.clock.now()) };
  }

  /** The picture keeps changing, but only cycles through the last `n` frames captured (n ≥ 1). */
  loop(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError('loop needs a positive frame count');
    if (this.recent.length === 0) this.capture(this.clock.now());
    this.mode = { kind: 'loop', frames: this.recent.slice(-n) };
    this.loopIndex = 0;
  }

  /** Back to a live picture. */
  unfreeze(): void {
    this.mode = { kind: 'live' };
  }

  /** While on, heartbeats are signed with a random key instead of the session key. */
  forge(on: boolean): void {
    this.forgeKey = on ? randomBytes(32) : null;
  }

  /**
   * Publishes `recorded` heartbeats, unchanged and cycling, one per heartbeat interval, instead
   * of its own (which stop, frames included), until {@link SimCamera.stopReplay}.
   */
  startReplay(recorded: readonly HeartbeatMessage[]): void {
    if (recorded.length === 0) throw new RangeError('nothing to replay');
    this.replay = { messages: [...recorded], index: 0 };
    this.restartTicking();
  }

  /** Back to its own heartbeats (if armed). */
  stopReplay(): void {
    this.replay = null;
  }

  /**
   * The heartbeats it handed to the wire for a session (default: the current or last one),
   * oldest first.
   */
  recordedHeartbeats(sessionId?: string): readonly HeartbeatMessage[] {
    const id = sessionId ?? this.lastSessionId;
    return id === null ? [] : [...(this.recorded.get(id) ?? [])];
  }

  /** Stops recording and every timer, without publishing anything. */
  stop(): void {
    this.session = null;
    this.replay = null;
    this.cancelTick?.();
    this.cancelTick = undefined;
  }

  handleCommand(command: CommandMessage): Promise<Record<string, unknown>> {
    // Throwing inside the executor turns a CommandFailure into the rejection.
    return new Promise((resolve) => resolve(this.act(command)));
  }

  onConnect(): void {
    this.publish();
  }

  private act(command: CommandMessage): Record<string, unknown> {
    return cameraCommand(
      {
        arm: (id) => this.arm(id),
        disarm: () => this.disarm(),
        report: () => this.publish(),
        data: () => this.data(),
      },
      command,
    );
  }

  private arm(sessionId: string): void {
    this.session = { id: sessionId, key: deriveSessionKey(this.deviceKey, sessionId), seq: 0 };
    this.lastSessionId = sessionId;
    if (!this.recorded.has(sessionId)) {
      this.recorded.set(sessionId, []);
      const oldest = this.recorded.keys().next();
      if (this.recorded.size > RECORDED_SESSIONS && oldest.done !== true) {
        this.recorded.delete(oldest.value);
      }
    }
    this.publish();
    this.restartTicking();
  }

  private disarm(): void {
    if (this.session === null) return;
    this.session = null;
    this.publish();
    if (this.replay === null) {
      this.cancelTick?.();
      this.cancelTick = undefined;
    }
  }

  private data(): Record<string, unknown> {
    return { recording: this.session !== null, sessionId: this.session?.id ?? null };
  }

  private publish(): void {
    this.connection.publishState({
      kind: 'camera',
      recording: this.session !== null,
      sessionId: this.session?.id ?? null,
    });
  }

  private restartTicking(): void {
    this.cancelTick?.();
    this.cancelTick = undefined;
    this.tick();
  }

  private tick(): void {
    this.cancelTick = undefined;
    const now = this.clock.now();
    if (this.replay !== null) {
      const { messages } = this.replay;
      const message = messages[this.replay.index % messages.length];
      this.replay.index += 1;
      if (message !== undefined) this.connection.publishSignedHeartbeat(message);
    } else if (this.session !== null) {
      this.beat(this.session, now);
    } else {
      return;
    }
    this.cancelTick = this.clock.schedule(now + this.heartbeatIntervalMs, () => this.tick());
  }

  private beat(session: Session, now: number): void {
    const frame = this.nextFrame(now);
    const capturedAt = this.mode.kind === 'live' ? frame.capturedAt : now;
    this.connection.publishFrame({
      sessionId: session.id,
      capturedAt,
      digest: frame.digest,
      jpeg: frame.jpeg.toString('base64'),
    });
    const result = this.connection.publishHeartbeat(this.forgeKey ?? session.key, {
      sessionId: session.id,
      seq: session.seq,
      capturedAt,
      frameDigest: frame.digest,
      recording: true,
    });
    session.seq += 1;
    const log = this.recorded.get(session.id);
    if (result.sent && log !== undefined && log.length < RECORDED_PER_SESSION) {
      log.push(result.message);
    }
  }

  private nextFrame(now: number): CapturedFrame {
    switch (this.mode.kind) {
      case 'frozen':
        return this.mode.frame;
      case 'loop': {
        const frames = this.mode.frames;
        const frame = frames[this.loopIndex % frames.length];
        this.loopIndex += 1;
        return frame ?? this.capture(now);
      }
      case 'live': {
        const latest = this.latestFrame();
        if (latest !== undefined && now - latest.capturedAt < this.frameIntervalMs) return latest;
        return this.capture(now);
      }
    }
  }

  private capture(now: number): CapturedFrame {
    const jpeg = renderScene(
      { doorOpen: this.doorOpen(), capturedAtMs: now, label: this.label, person: this.person },
      this.scene,
    );
    const frame: CapturedFrame = {
      capturedAt: now,
      jpeg,
      digest: createHash('sha256').update(jpeg).digest('hex'),
    };
    this.recent.push(frame);
    if (this.recent.length > RECENT_FRAMES) this.recent.shift();
    return frame;
  }

  private doorOpen(): boolean {
    const door = this.door;
    if (door === undefined) return false;
    return typeof door === 'function' ? door() : door.position() === 'open';
  }
}

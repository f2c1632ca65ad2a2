/**
 * Drivers that keep the device in memory: a lock with a keypad, a door contact and a camera,
 * each implementing the driver interface of driver.ts exactly as a real driver does (facts
 * `unknown` while unavailable, commands accepted before their result arrives as a report,
 * nothing emitted after `stop()`), with the device's own side exposed as controls: a hand on
 * the thumb-turn, a jam, a keypad, a door that opens, a camera whose picture freezes or stalls.
 *
 * They are what `driver: memory` in a hub config runs (a hub that bridges simulated devices),
 * what the hub's tests and scenarios use, and a reference every driver's contract suite can
 * run against. Time comes from a {@link Clock}, so a fake clock drives them in unit tests.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../core/clock.ts';
import { renderScene, type SceneOptions } from '../../devices/camera-scene.ts';
import { MAX_PIN_SLOT, PIN_CODE_PATTERN } from '../../protocol/device-messages.ts';
import {
  DriverError,
  type CameraDriver,
  type CameraDriverEvent,
  type ContactDriver,
  type ContactDriverEvent,
  type DriverBolt,
  type DriverFrame,
  type DriverPosition,
  type LockDriver,
  type LockDriverEvent,
  type PinDriver,
} from './driver.ts';
import { Listeners, reportListenerError } from './listeners.ts';

// ---------------------------------------------------------------------------------------------
// Lock

/** Settings of a {@link MemoryLock}. */
export interface MemoryLockOptions {
  readonly id: string;
  readonly clock: Clock;
  /** Time from an accepted command to the bolt's report, ms. Default 200. */
  readonly motorDelayMs?: number;
  /** The bolt when the driver starts. Default 'locked'. */
  readonly initialBolt?: 'locked' | 'unlocked';
  /** Keypad slots; null for a lock without a keypad (`pins` is then null). Default 30. */
  readonly pinCapacity?: number | null;
  /** Wrong codes in a row that lock the keypad out. Default 3. */
  readonly wrongCodeLimit?: number;
  /** How long a lockout lasts, ms. Default 15 000. */
  readonly keypadLockoutMs?: number;
  /** Called when a listener throws; default a process warning. */
  readonly onListenerError?: (err: unknown) => void;
}

/** What typing a code on a {@link MemoryLock}'s keypad did. */
export type MemoryKeypadOutcome = 'unlocked' | 'wrong-code' | 'locked-out' | 'ignored';

const PIN_CODE_RE = new RegExp(PIN_CODE_PATTERN);

/** See the module comment: a lock in memory, with a keypad unless `pinCapacity` is null. */
export class MemoryLock implements LockDriver {
  readonly kind = 'lock' as const;
  readonly id: string;
  readonly pins: MemoryPins | null;
  private readonly clock: Clock;
  private readonly motorDelayMs: number;
  private readonly listeners: Listeners<LockDriverEvent>;
  /** Where the bolt really is (the device's side); reported only while available. */
  private actual: DriverBolt;
  private started = false;
  private stopped = false;
  private isAvailable = true;
  private jamNext = false;
  private cancelMotor: (() => void) | undefined;
  private readonly wrongCodeLimit: number;
  private readonly keypadLockoutMs: number;
  private wrongInRow = 0;
  private lockedOutUntil: number | null = null;
  private commandsSeen = 0;

  constructor(options: MemoryLockOptions) {
    this.id = options.id;
    this.clock = options.clock;
    this.motorDelayMs = options.motorDelayMs ?? 200;
    this.actual = options.initialBolt ?? 'locked';
    this.wrongCodeLimit = options.wrongCodeLimit ?? 3;
    this.keypadLockoutMs = options.keypadLockoutMs ?? 15_000;
    this.listeners = new Listeners(options.onListenerError ?? reportListenerError(this.id));
    const capacity = options.pinCapacity === undefined ? 30 : options.pinCapacity;
    if (
      capacity !== null &&
      (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_PIN_SLOT)
    )
      throw new RangeError(`pinCapacity must be an integer from 1 to ${MAX_PIN_SLOT}, or null`);
    this.pins = capacity === null ? null : new MemoryPins(capacity, () => this.ready());
  }

  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new DriverError('device.unavailable', 'stopped'));
    if (!this.started) {
      this.started = true;
      this.emit({ type: 'state', bolt: this.bolt(), at: this.clock.now() });
    }
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.cancelMotor?.();
    this.cancelMotor = undefined;
    this.listeners.clear();
    return Promise.resolve();
  }

  available(): boolean {
    return this.started && !this.stopped && this.isAvailable;
  }

  bolt(): DriverBolt {
    return this.available() ? this.actual : 'unknown';
  }

  lock(): Promise<void> {
    return this.command('locked');
  }

  unlock(): Promise<void> {
    return this.command('unlocked');
  }

  on(listener: (e: LockDriverEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  // --- the device's side -----------------------------------------------------------------

  /** Where the bolt really is, whatever the driver may report (tests look through the wall). */
  actualBolt(): DriverBolt {
    return this.actual;
  }

  /** How many lock/unlock commands the lock accepted. */
  commandCount(): number {
    return this.commandsSeen;
  }

  /** Someone turns the thumb-turn or a key: the bolt moves at once ('manual', then 'state'). */
  turnByHand(target: 'locked' | 'unlocked'): void {
    this.actual = target;
    if (!this.available()) return;
    const at = this.clock.now();
    this.emit({ type: 'manual', bolt: target, at });
    this.emit({ type: 'state', bolt: target, at });
  }

  /** The next movement ends jammed. */
  jam(): void {
    this.jamNext = true;
  }

  /** Someone frees a jammed bolt: nobody knows where it stopped, so it is 'unknown'. */
  clearJam(): void {
    this.jamNext = false;
    if (this.actual !== 'jammed') return;
    this.actual = 'unknown';
    if (this.available()) this.emit({ type: 'state', bolt: 'unknown', at: this.clock.now() });
  }

  /**
   * The lock drops off its network (false) or comes back (true): 'availability', then the
   * state as now reported ('unknown' while away; the real bolt on return).
   */
  setAvailable(available: boolean): void {
    if (available === this.isAvailable) return;
    this.isAvailable = available;
    if (!this.started || this.stopped) return;
    const at = this.clock.now();
    this.emit({ type: 'availability', available, at });
    this.emit({ type: 'state', bolt: this.bolt(), at });
  }

  /**
   * The right code of `slot` is typed on the keypad: 'keypad-unlocked' with the slot, and the
   * motor draws the bolt. Throws if the slot holds no code (a mistake in the test).
   */
  keypadUnlock(slot: number): void {
    const code = this.pins?.codeIn(slot);
    if (code === undefined) throw new RangeError(`slot ${slot} holds no code`);
    this.enterCode(code);
  }

  /** Someone types `code` on the keypad; see {@link MemoryKeypadOutcome}. */
  enterCode(code: string): MemoryKeypadOutcome {
    if (this.pins === null || !this.available()) return 'ignored';
    const now = this.clock.now();
    if (this.lockedOutUntil !== null) {
      if (now < this.lockedOutUntil) return 'ignored';
      this.lockedOutUntil = null;
      this.wrongInRow = 0;
    }
    const slot = this.pins.slotOf(code);
    if (slot !== null) {
      this.wrongInRow = 0;
      this.emit({ type: 'keypad-unlocked', slot, at: now });
      this.startMotor('unlocked');
      return 'unlocked';
    }
    this.wrongInRow += 1;
    this.emit({ type: 'keypad-wrong-code', at: now });
    if (this.wrongInRow < this.wrongCodeLimit) return 'wrong-code';
    this.lockedOutUntil = now + this.keypadLockoutMs;
    this.emit({ type: 'keypad-lockout', untilMs: this.lockedOutUntil, at: now });
    return 'locked-out';
  }

  private ready(): void {
    if (!this.available())
      throw new DriverError('device.unavailable', `${this.id} is not reachable`);
  }

  private async command(target: 'locked' | 'unlocked'): Promise<void> {
    this.ready();
    this.commandsSeen += 1;
    this.startMotor(target);
  }

  /** One movement at a time: a newer command replaces the one under way, as a real motor does. */
  private startMotor(target: 'locked' | 'unlocked'): void {
    this.cancelMotor?.();
    this.cancelMotor = this.clock.schedule(this.clock.now() + this.motorDelayMs, () => {
      this.cancelMotor = undefined;
      if (this.stopped) return;
      if (this.jamNext) {
        this.jamNext = false;
        this.actual = 'jammed';
      } else {
        this.actual = target;
      }
      // A lock that is away moves its bolt all the same; nobody hears of it until it is back.
      if (this.available()) this.emit({ type: 'state', bolt: this.actual, at: this.clock.now() });
    });
  }

  private emit(e: LockDriverEvent): void {
    if (!this.stopped) this.listeners.emit(e);
  }
}

/** A {@link MemoryLock}'s keypad user codes. */
export class MemoryPins implements PinDriver {
  private readonly codes = new Map<number, string>();

  constructor(
    private readonly slots: number,
    private readonly ready: () => void,
  ) {}

  capacity(): number {
    return this.slots;
  }

  async set(slot: number, code: string): Promise<void> {
    this.ready();
    this.checkSlot(slot);
    if (!PIN_CODE_RE.test(code))
      throw new DriverError('device.refused', 'a code is 4 to 10 digits');
    for (const [other, held] of this.codes) {
      if (other !== slot && held === code)
        throw new DriverError('device.refused', 'the code is already used by another slot');
    }
    this.codes.set(slot, code);
  }

  async clear(slot: number): Promise<void> {
    this.ready();
    this.checkSlot(slot);
    this.codes.delete(slot);
  }

  async occupied(): Promise<number[]> {
    this.ready();
    return [...this.codes.keys()].sort((a, b) => a - b);
  }

  /** The device's side: the code a slot holds (a test looking inside the lock), or undefined. */
  codeIn(slot: number): string | undefined {
    return this.codes.get(slot);
  }

  /** The slot that holds `code`, or null. */
  slotOf(code: string): number | null {
    for (const [slot, held] of this.codes) if (held === code) return slot;
    return null;
  }

  /** Someone sets a code at the lock itself, not through the hub. */
  setLocally(slot: number, code: string): void {
    this.checkSlot(slot);
    this.codes.set(slot, code);
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 1 || slot > this.slots)
      throw new DriverError('device.refused', `this lock has slots 1 to ${this.slots}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Door contact

/** Settings of a {@link MemoryContact}. */
export interface MemoryContactOptions {
  readonly id: string;
  readonly clock: Clock;
  /** The door when the driver starts. Default 'closed'. */
  readonly initialPosition?: 'open' | 'closed';
  readonly onListenerError?: (err: unknown) => void;
}

/** See the module comment: a door contact in memory. */
export class MemoryContact implements ContactDriver {
  readonly kind = 'door-sensor' as const;
  readonly id: string;
  private readonly clock: Clock;
  private readonly listeners: Listeners<ContactDriverEvent>;
  private actual: DriverPosition;
  private started = false;
  private stopped = false;
  private isAvailable = true;

  constructor(options: MemoryContactOptions) {
    this.id = options.id;
    this.clock = options.clock;
    this.actual = options.initialPosition ?? 'closed';
    this.listeners = new Listeners(options.onListenerError ?? reportListenerError(this.id));
  }

  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new DriverError('device.unavailable', 'stopped'));
    if (!this.started) {
      this.started = true;
      this.emit({ type: 'state', position: this.position(), at: this.clock.now() });
    }
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.listeners.clear();
    return Promise.resolve();
  }

  available(): boolean {
    return this.started && !this.stopped && this.isAvailable;
  }

  position(): DriverPosition {
    return this.available() ? this.actual : 'unknown';
  }

  on(listener: (e: ContactDriverEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  /** The door swings open. */
  open(): void {
    this.set('open');
  }

  /** The door shuts. */
  close(): void {
    this.set('closed');
  }

  /** Any position, 'unknown' included (a sensor that lost its magnet). */
  set(position: DriverPosition): void {
    if (position === this.actual) return;
    this.actual = position;
    if (this.available()) this.emit({ type: 'state', position, at: this.clock.now() });
  }

  /** The sensor drops off its network or comes back; see {@link MemoryLock.setAvailable}. */
  setAvailable(available: boolean): void {
    if (available === this.isAvailable) return;
    this.isAvailable = available;
    if (!this.started || this.stopped) return;
    const at = this.clock.now();
    this.emit({ type: 'availability', available, at });
    this.emit({ type: 'state', position: this.position(), at });
  }

  private emit(e: ContactDriverEvent): void {
    if (!this.stopped) this.listeners.emit(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Camera

/**
 * What the camera's stream does: `live` sends a new picture every frame interval; `still` keeps
 * sending, but always the same picture (a frozen or tampered camera: same digest); `stalled`
 * keeps the stream open and sends nothing (what a cut Wi-Fi link looks like on the wire).
 */
export type MemoryCameraMode = 'live' | 'still' | 'stalled';

/** Settings of a {@link MemoryCamera}. */
export interface MemoryCameraOptions {
  readonly id: string;
  readonly clock: Clock;
  /** Time between frames, ms. Default 500. */
  readonly frameIntervalMs?: number;
  /** No frame for this long while the stream is open → a 'stalled' event, ms. Default 2 000. */
  readonly stallMs?: number;
  /** Whether the door is open, for the picture. Default: always closed. */
  readonly doorOpen?: () => boolean;
  /** Picture size and quality; default a small 160 × 120 picture, quality 60. */
  readonly scene?: SceneOptions;
  /**
   * Makes the picture taken at `atMs` instead of the scene renderer (which takes some
   * milliseconds per JPEG): unit tests that run minutes of fake time use a cheap one.
   */
  readonly picture?: (atMs: number, doorOpen: boolean) => Buffer;
  readonly onListenerError?: (err: unknown) => void;
}

/** See the module comment: a camera whose frames a clock drives. */
export class MemoryCamera implements CameraDriver {
  readonly kind = 'camera' as const;
  readonly id: string;
  private readonly clock: Clock;
  private readonly frameIntervalMs: number;
  private readonly stallMs: number;
  private readonly doorOpen: () => boolean;
  private readonly scene: SceneOptions;
  private readonly picture: MemoryCameraOptions['picture'];
  private readonly listeners: Listeners<CameraDriverEvent>;
  private streamMode: MemoryCameraMode = 'live';
  private last: DriverFrame | null = null;
  private still: { jpeg: Buffer; digest: string } | null = null;
  private started = false;
  private stopped = false;
  private isAvailable = true;
  private stallReported = false;
  private cancelTick: (() => void) | undefined;
  private framesSent = 0;

  constructor(options: MemoryCameraOptions) {
    this.id = options.id;
    this.clock = options.clock;
    this.frameIntervalMs = options.frameIntervalMs ?? 500;
    this.stallMs = options.stallMs ?? 2_000;
    if (!(this.frameIntervalMs > 0)) throw new RangeError('frameIntervalMs must be > 0');
    if (!(this.stallMs > 0)) throw new RangeError('stallMs must be > 0');
    this.doorOpen = options.doorOpen ?? (() => false);
    this.scene = options.scene ?? { width: 160, height: 120, quality: 60 };
    this.picture = options.picture;
    this.listeners = new Listeners(options.onListenerError ?? reportListenerError(this.id));
  }

  /** Opens the stream: the first frame at once, then one per frame interval. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new DriverError('device.unavailable', 'stopped'));
    if (!this.started) {
      this.started = true;
      this.tick();
    }
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.cancelTick?.();
    this.cancelTick = undefined;
    this.listeners.clear();
    return Promise.resolve();
  }

  available(): boolean {
    return this.started && !this.stopped && this.isAvailable;
  }

  latest(): DriverFrame | null {
    return this.available() ? this.last : null;
  }

  on(listener: (e: CameraDriverEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  // --- the device's side -----------------------------------------------------------------

  /** What the stream does now. */
  mode(): MemoryCameraMode {
    return this.streamMode;
  }

  /** Frames emitted so far. */
  frameCount(): number {
    return this.framesSent;
  }

  /** Switches the stream to `mode` (see {@link MemoryCameraMode}). */
  setMode(mode: MemoryCameraMode): void {
    if (mode === 'still') {
      const pic = this.last ?? this.render(this.clock.now());
      this.still = { jpeg: pic.jpeg, digest: pic.digest };
    }
    this.streamMode = mode;
  }

  /** The camera drops off its network (the stream closes) or comes back. */
  setAvailable(available: boolean): void {
    if (available === this.isAvailable) return;
    this.isAvailable = available;
    if (!available) this.last = null;
    if (this.started && !this.stopped)
      this.emit({ type: 'availability', available, at: this.clock.now() });
  }

  private tick(): void {
    this.cancelTick = undefined;
    if (this.stopped) return;
    const now = this.clock.now();
    if (this.isAvailable) {
      if (this.streamMode === 'stalled') {
        const since = this.last?.receivedAt ?? now;
        if (!this.stallReported && now - since >= this.stallMs) {
          this.stallReported = true;
          this.emit({ type: 'stalled', sinceMs: since, at: now });
        }
      } else {
        this.stallReported = false;
        const pic =
          this.streamMode === 'still' && this.still !== null ? this.still : this.render(now);
        const frame: DriverFrame = { receivedAt: now, jpeg: pic.jpeg, digest: pic.digest };
        this.last = frame;
        this.framesSent += 1;
        this.emit({ type: 'frame', frame });
      }
    }
    this.cancelTick = this.clock.schedule(now + this.frameIntervalMs, () => this.tick());
  }

  private render(now: number): { jpeg: Buffer; digest: string } {
    // The burnt-in clock makes every live picture differ, as a real sensor's noise does.
    const jpeg =
      this.picture?.(now, this.doorOpen()) ??
      renderScene(
        { doorOpen: this.doorOpen(), capturedAtMs: now, label: this.id, person: false },
        this.scene,
      );
    return { jpeg, digest: createHash('sha256').update(jpeg).digest('hex') };
  }

  private emit(e: CameraDriverEvent): void {
    if (!this.stopped) this.listeners.emit(e);
  }
}

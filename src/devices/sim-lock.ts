/**
 * A simulated smart lock, described by its behaviour:
 *
 * - The bolt is 'locked', 'unlocked', 'jammed' or 'unknown'. A command moves it after
 *   `motorDelayMs`; movements run one after another.
 * - Every unlock has a deadline the lock enforces itself (principle 2): `relockAfterMs` from the
 *   command, else `autoRelockMs`. When it passes, the lock throws the bolt by itself, network or
 *   not; with a door sensor wired in, it first waits for the door to be closed (a bolt thrown
 *   into an open door would stop it closing). It then publishes the event
 *   'lock.auto-relocked'.
 * - {@link SimLock.jam} makes the next movement end in 'jammed' (event 'lock.jammed', error
 *   reply `lock.jammed`).
 * - It publishes its state (bolt, `changedAt` by its clock, `autoRelockAt`) on every change and
 *   on every (re)connection, so after a cut link the server learns when it really locked.
 * - A keypad with `pinCapacity` slots (Z-Wave User Code / Matter Door Lock users). A right code
 *   ({@link SimLock.enterCode}) publishes 'keypad.unlocked' with its slot and draws the bolt,
 *   which relocks after `autoRelockMs` as any unlock without a deadline does. A wrong code
 *   publishes 'keypad.wrong-code'; the `wrongCodeLimit`-th in a row (default 3) also locks the
 *   keypad out for `keypadLockoutMs` (default and minimum 15 s, Matter's test defaults), said
 *   once with 'keypad.lockout'. Codes entered meanwhile, right ones too, are ignored. The count
 *   starts again after a right code or when the lockout ends.
 * - The server writes codes with `pin.set`/`pin.clear` and reads them back with `pin.list`,
 *   which answers with digests only ({@link pinDigest}), never a code. Codes can also be set at
 *   the lock by hand ({@link SimLock.setPinLocally}), as a real lock's menu allows; and
 *   {@link SimLock.dropPinWrites} makes it acknowledge writes without keeping them, as real
 *   locks sometimes do, so only the read-back can tell.
 * - A slot may carry a validity window `[fromMs, untilMs)`, set with the code (`pin.set`) or
 *   alone (`pin.window`), checked against the lock's own clock, as Matter year-day schedules
 *   and Z-Wave Schedule Entry Lock schedules are. A right code outside its window is treated
 *   exactly as a wrong one at the keypad (same outcome, counts towards the lockout: a guesser
 *   learns nothing), but its 'keypad.wrong-code' event names the slot, for the server.
 *
 * Commands: `lock`, `unlock` (`relockAfterMs`, `sessionId`), `report`; the reply data is
 * `{bolt, changedAt, autoRelockAt}`. `pin.set {slot, code, name?, fromMs?, untilMs?}`,
 * `pin.window {slot, fromMs?, untilMs?}` and `pin.clear {slot}` reply `{slot}`;
 * `pin.list {slot?}` replies `{capacity, slots, next}` (see PinListData), windows included.
 * Codes never appear in what the lock publishes or logs.
 */
import type { Clock } from '../core/clock.ts';
import { windowAllows, type PinWindow } from '../core/pin-window.ts';
import {
  MAX_PIN_SLOT,
  PIN_CODE_PATTERN,
  PIN_LIST_PAGE_SIZE,
  pinWindowFields,
  readPinWindow,
  type Bolt,
  type CommandMessage,
  type PinListDataMessage,
} from '../protocol/device-messages.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
import {
  CommandFailure,
  type DeviceBehaviour,
  type DeviceConnection,
} from './device-connection.ts';
import type { DoorPositionSource } from './sim-door-sensor.ts';

/** Settings of a {@link SimLock}. */
export interface SimLockOptions {
  readonly clock: Clock;
  /** Time from command to bolt change, ms. Default 300. */
  readonly motorDelayMs?: number;
  /** Auto-relock delay for unlocks that name none, ms; null for none. Default 30 000. */
  readonly autoRelockMs?: number | null;
  /** The door's position sensor, if one is fitted: the auto-relock waits for a closed door. */
  readonly door?: DoorPositionSource;
  /** Bolt at start. Default 'locked'. */
  readonly initialBolt?: Bolt;
  /**
   * The device key: `pin.list` digests are keyed with it. Without it the keypad still works,
   * but `pin.list` fails (`command.failed`).
   */
  readonly deviceKey?: Uint8Array;
  /** Keypad slots, numbered 1…pinCapacity. Default 30. */
  readonly pinCapacity?: number;
  /** Wrong codes in a row that lock the keypad out. Default 3. */
  readonly wrongCodeLimit?: number;
  /** How long the keypad ignores codes after too many wrong ones, ms. Default and minimum 15 000. */
  readonly keypadLockoutMs?: number;
}

/** What entering a code on the keypad did. */
export type KeypadOutcome =
  /** The code of `slot` was right: the bolt is being drawn. */
  | { readonly result: 'unlocked'; readonly slot: number }
  /**
   * The code was wrong, or right but outside its slot's window (the keypad cannot be asked which);
   * `attempt` counts wrong codes in a row. `lockedOutUntil` is set when this one locked the
   * keypad out.
   */
  | {
      readonly result: 'wrong-code';
      readonly attempt: number;
      readonly lockedOutUntil: number | null;
    }
  /** The keypad is locked out until `lockedOutUntil`: the code was not even checked. */
  | { readonly result: 'ignored'; readonly lockedOutUntil: number };

interface StoredPin {
  readonly code: string;
  readonly name: string | null;
  /** When the code opens, by this lock's clock; null for at all times. */
  readonly window: PinWindow | null;
}

/** Where a movement drives the bolt. */
export type BoltTarget = 'locked' | 'unlocked';

interface Movement {
  readonly target: BoltTarget;
  /** For unlocks: relock this many ms after the bolt is drawn, or null. */
  readonly relockAfterMs: number | null;
  readonly auto: boolean;
  readonly done: (bolt: Bolt) => void;
}

const DEFAULT_MOTOR_DELAY_MS = 300;
const DEFAULT_AUTO_RELOCK_MS = 30_000;
const DEFAULT_PIN_CAPACITY = 30;
const DEFAULT_WRONG_CODE_LIMIT = 3;
/** Matter's test default for the keypad's temporary disable time; the lower bound. */
export const MIN_KEYPAD_LOCKOUT_MS = 15_000;
const PIN_CODE_RE = new RegExp(PIN_CODE_PATTERN);

/** See the module comment. */
export class SimLock implements DeviceBehaviour {
  private readonly connection: DeviceConnection;
  private readonly clock: Clock;
  private readonly motorDelayMs: number;
  private readonly autoRelockMs: number | null;
  private readonly door: DoorPositionSource | undefined;
  private currentBolt: Bolt;
  private changed: number;
  private relockAt: number | null = null;
  private jamNext = false;
  private readonly queue: Movement[] = [];
  private moving: { readonly movement: Movement; readonly cancel: () => void } | undefined;
  private cancelRelockTimer: (() => void) | undefined;
  private stopWaitingForDoor: (() => void) | undefined;
  private stopped = false;
  private readonly deviceKey: Uint8Array | undefined;
  private readonly pinCapacity: number;
  private readonly wrongCodeLimit: number;
  private readonly keypadLockoutMs: number;
  private readonly pins = new Map<number, StoredPin>();
  private wrongInRow = 0;
  private lockedOutUntil: number | null = null;
  private writesToDrop: number | 'all' = 0;

  /** Attaches itself to `connection`. */
  constructor(connection: DeviceConnection, options: SimLockOptions) {
    this.connection = connection;
    this.clock = options.clock;
    this.motorDelayMs = options.motorDelayMs ?? DEFAULT_MOTOR_DELAY_MS;
    this.autoRelockMs =
      options.autoRelockMs === undefined ? DEFAULT_AUTO_RELOCK_MS : options.autoRelockMs;
    this.door = options.door;
    this.currentBolt = options.initialBolt ?? 'locked';
    this.changed = options.clock.now();
    this.deviceKey = options.deviceKey;
    this.pinCapacity = options.pinCapacity ?? DEFAULT_PIN_CAPACITY;
    this.wrongCodeLimit = options.wrongCodeLimit ?? DEFAULT_WRONG_CODE_LIMIT;
    this.keypadLockoutMs = options.keypadLockoutMs ?? MIN_KEYPAD_LOCKOUT_MS;
    if (
      !Number.isInteger(this.pinCapacity) ||
      this.pinCapacity < 1 ||
      this.pinCapacity > MAX_PIN_SLOT
    )
      throw new RangeError(`pinCapacity must be an integer from 1 to ${MAX_PIN_SLOT}`);
    if (
      !Number.isInteger(this.wrongCodeLimit) ||
      this.wrongCodeLimit < 1 ||
      this.wrongCodeLimit > 10
    )
      throw new RangeError('wrongCodeLimit must be an integer from 1 to 10');
    if (!(this.keypadLockoutMs >= MIN_KEYPAD_LOCKOUT_MS))
      throw new RangeError(`keypadLockoutMs must be at least ${MIN_KEYPAD_LOCKOUT_MS}`);
    connection.attach(this);
  }

  /** The device id. */
  get deviceId(): string {
    return this.connection.deviceId;
  }

  /** The bolt now. */
  bolt(): Bolt {
    return this.currentBolt;
  }

  /** When the bolt last changed, ms by the lock's clock. */
  changedAt(): number {
    return this.changed;
  }

  /** When the lock will throw the bolt by itself (ms), or null. */
  autoRelockAt(): number | null {
    return this.relockAt;
  }

  /** Whether the auto-relock deadline has passed and the lock waits for the door to close. */
  isWaitingForDoor(): boolean {
    return this.stopWaitingForDoor !== undefined;
  }

  /** Makes the next bolt movement end in 'jammed'. */
  jam(): void {
    this.jamNext = true;
  }

  /**
   * Frees the lock: no jam is pending any more, and a jammed bolt becomes 'unknown' (nobody
   * knows where it stopped) until the next movement.
   */
  clearJam(): void {
    this.jamNext = false;
    if (this.currentBolt === 'jammed') this.setBolt('unknown');
  }

  /**
   * Someone turns the thumb-turn or a key: the bolt moves at once, the event 'lock.manual' is
   * published, and a pending auto-relock is dropped when the bolt is thrown.
   */
  turnByHand(target: BoltTarget): void {
    if (target === 'locked') this.cancelRelock();
    this.setBolt(target);
    this.connection.publishEvent({ name: 'lock.manual', detail: target });
  }

  /**
   * Someone types `code` on the keypad (any text: a person can press anything); see the module
   * comment for what follows.
   */
  enterCode(code: string): KeypadOutcome {
    const now = this.clock.now();
    if (this.lockedOutUntil !== null) {
      if (now < this.lockedOutUntil)
        return { result: 'ignored', lockedOutUntil: this.lockedOutUntil };
      this.lockedOutUntil = null;
      this.wrongInRow = 0;
    }
    const slot = this.slotOf(code);
    const inWindow = slot !== null && windowAllows(this.pins.get(slot)!.window, now);
    if (slot !== null && inWindow) {
      this.wrongInRow = 0;
      this.connection.publishEvent({ name: 'keypad.unlocked', slot });
      // Drawn by the motor like a remote unlock without a deadline: the lock's own relock applies.
      this.cancelRelock();
      this.enqueue({
        target: 'unlocked',
        relockAfterMs: this.autoRelockMs,
        auto: false,
        done: () => {},
      });
      return { result: 'unlocked', slot };
    }
    this.wrongInRow += 1;
    const attempt = this.wrongInRow;
    // Only the server hears that it was a slot's code at the wrong time.
    this.connection.publishEvent({
      name: 'keypad.wrong-code',
      attempt,
      ...(slot === null ? {} : { slot }),
    });
    if (attempt < this.wrongCodeLimit)
      return { result: 'wrong-code', attempt, lockedOutUntil: null };
    this.lockedOutUntil = now + this.keypadLockoutMs;
    this.connection.publishEvent({ name: 'keypad.lockout', untilMs: this.lockedOutUntil });
    return { result: 'wrong-code', attempt, lockedOutUntil: this.lockedOutUntil };
  }

  /** Until when the keypad ignores codes (ms, lock's clock), or null when it takes them. */
  keypadLockedUntil(): number | null {
    return this.lockedOutUntil !== null && this.clock.now() < this.lockedOutUntil
      ? this.lockedOutUntil
      : null;
  }

  /**
   * Someone sets a code at the lock itself (its own menu or app), not through Threshold, valid
   * at all times unless a `window` is given. Throws on a slot, code or window the lock would
   * refuse (a mistake in the caller).
   */
  setPinLocally(slot: number, code: string, name?: string, window: PinWindow | null = null): void {
    const refusal = this.pinRefusal(slot, code);
    if (refusal !== null) throw new RangeError(refusal);
    const read = readPinWindow(pinWindowFields(window));
    if (!read.ok) throw new RangeError(read.reason);
    this.pins.set(slot, { code, name: name ?? null, window: read.window });
  }

  /** Someone empties a slot at the lock itself. */
  clearPinLocally(slot: number): void {
    this.pins.delete(slot);
  }

  /** The name a slot was given, or null (no name, or no code). */
  pinName(slot: number): string | null {
    return this.pins.get(slot)?.name ?? null;
  }

  /**
   * The validity window of a slot's code (ms, this lock's clock); null when the code works at
   * all times, undefined when the slot holds no code.
   */
  pinWindow(slot: number): PinWindow | null | undefined {
    return this.pins.get(slot)?.window;
  }

  /** The slots that hold a code now, ascending. */
  pinSlots(): number[] {
    return [...this.pins.keys()].sort((a, b) => a - b);
  }

  /**
   * Fault switch: the next `n` PIN writes (`pin.set`, `pin.window`, `pin.clear`), or all of
   * them, are acknowledged `ok` but not carried out; 0 ends it.
   */
  dropPinWrites(n: number | 'all'): void {
    if (n !== 'all' && (!Number.isInteger(n) || n < 0))
      throw new RangeError('dropPinWrites takes a count >= 0 or "all"');
    this.writesToDrop = n;
  }

  /** Stops every timer (motor, auto-relock); pending movements end where the bolt is. */
  stop(): void {
    this.stopped = true;
    this.cancelRelock();
    this.moving?.cancel();
    const pending = [...(this.moving ? [this.moving.movement] : []), ...this.queue];
    this.moving = undefined;
    this.queue.length = 0;
    for (const movement of pending) movement.done(this.currentBolt);
  }

  async handleCommand(command: CommandMessage): Promise<Record<string, unknown>> {
    switch (command.action) {
      case 'lock':
        this.cancelRelock();
        return this.result(await this.move('locked', null));
      case 'unlock':
        this.cancelRelock();
        return this.result(await this.move('unlocked', command.relockAfterMs ?? this.autoRelockMs));
      case 'report':
        this.publish();
        return this.data();
      case 'pin.set':
        return this.pinSet(command);
      case 'pin.window':
        return this.pinWindowCommand(command);
      case 'pin.clear':
        return this.pinClear(command);
      case 'pin.list':
        return this.pinList(command);
      case 'arm':
      case 'disarm':
        throw new CommandFailure('command.unsupported', `a lock cannot ${command.action}`);
    }
  }

  onConnect(): void {
    this.publish();
  }

  private pinSet(command: CommandMessage): Record<string, unknown> {
    const { slot, code } = command;
    if (slot === undefined || code === undefined)
      throw new CommandFailure('command.invalid', 'pin.set needs a slot and a code');
    // The message may name the slot but never the code: replies end up in logs.
    const refusal = this.pinRefusal(slot, code);
    if (refusal !== null) throw new CommandFailure('command.invalid', refusal);
    const window = readPinWindow(command);
    if (!window.ok) throw new CommandFailure('command.invalid', window.reason);
    if (this.dropThisWrite()) return { slot };
    this.pins.set(slot, { code, name: command.name ?? null, window: window.window });
    return { slot };
  }

  /** `pin.window`: a new window for the code a slot holds; the code itself stays. */
  private pinWindowCommand(command: CommandMessage): Record<string, unknown> {
    const slot = command.slot;
    if (slot === undefined) throw new CommandFailure('command.invalid', 'pin.window needs a slot');
    if (slot > this.pinCapacity)
      throw new CommandFailure('command.invalid', `this lock has slots 1 to ${this.pinCapacity}`);
    const window = readPinWindow(command);
    if (!window.ok) throw new CommandFailure('command.invalid', window.reason);
    const pin = this.pins.get(slot);
    // A window without a code would be a promise about nothing: set the code first.
    if (pin === undefined) throw new CommandFailure('command.invalid', `slot ${slot} is empty`);
    if (this.dropThisWrite()) return { slot };
    this.pins.set(slot, { ...pin, window: window.window });
    return { slot };
  }

  private pinClear(command: CommandMessage): Record<string, unknown> {
    const slot = command.slot;
    if (slot === undefined) throw new CommandFailure('command.invalid', 'pin.clear needs a slot');
    if (slot > this.pinCapacity)
      throw new CommandFailure('command.invalid', `this lock has slots 1 to ${this.pinCapacity}`);
    if (this.dropThisWrite()) return { slot };
    this.pins.delete(slot);
    return { slot };
  }

  private pinList(command: CommandMessage): Record<string, unknown> {
    const key = this.deviceKey;
    if (key === undefined)
      throw new CommandFailure('command.failed', 'this lock has no key to make PIN digests with');
    const from = command.slot ?? 1;
    const set = this.pinSlots().filter((s) => s >= from);
    const page = set.slice(0, PIN_LIST_PAGE_SIZE);
    const data: PinListDataMessage = {
      capacity: this.pinCapacity,
      slots: page.map((slot) => {
        const pin = this.pins.get(slot)!;
        return {
          slot,
          set: true,
          digest: pinDigest(key, slot, pin.code),
          ...pinWindowFields(pin.window),
        };
      }),
      next: set[PIN_LIST_PAGE_SIZE] ?? null,
    };
    return data;
  }

  /** Why the lock refuses to store `code` in `slot`, or null. */
  private pinRefusal(slot: number, code: string): string | null {
    if (!Number.isInteger(slot) || slot < 1 || slot > this.pinCapacity)
      return `this lock has slots 1 to ${this.pinCapacity}`;
    if (!PIN_CODE_RE.test(code)) return 'a code is 4 to 10 digits';
    // A code must open one slot only, or the keypad could not say whose it was (Matter and
    // Z-Wave locks refuse duplicates too).
    for (const [other, pin] of this.pins) {
      if (other !== slot && pin.code === code) return 'the code is already used by another slot';
    }
    return null;
  }

  private dropThisWrite(): boolean {
    if (this.writesToDrop === 'all') return true;
    if (this.writesToDrop === 0) return false;
    this.writesToDrop -= 1;
    return true;
  }

  /** The slot whose code this is, or null. */
  private slotOf(code: string): number | null {
    for (const [slot, pin] of this.pins) if (pin.code === code) return slot;
    return null;
  }

  private result(bolt: Bolt): Record<string, unknown> {
    if (bolt === 'jammed') throw new CommandFailure('lock.jammed', 'the bolt jammed');
    return this.data();
  }

  private data(): Record<string, unknown> {
    return { bolt: this.currentBolt, changedAt: this.changed, autoRelockAt: this.relockAt };
  }

  private move(target: BoltTarget, relockAfterMs: number | null): Promise<Bolt> {
    return new Promise((resolve) => {
      this.enqueue({ target, relockAfterMs, auto: false, done: resolve });
    });
  }

  /** Queues a movement; it starts at once (synchronously) when the motor is idle. */
  private enqueue(movement: Movement): void {
    if (this.stopped) {
      movement.done(this.currentBolt);
      return;
    }
    this.queue.push(movement);
    if (this.moving === undefined) this.startNext();
  }

  private startNext(): void {
    const movement = this.queue.shift();
    if (movement === undefined) return;
    const cancel = this.clock.schedule(this.clock.now() + this.motorDelayMs, () => {
      this.moving = undefined;
      this.finish(movement);
      this.startNext();
    });
    this.moving = { movement, cancel };
  }

  private finish(movement: Movement): void {
    if (this.jamNext) {
      this.jamNext = false;
      this.relockAt = null;
      this.setBolt('jammed');
      this.connection.publishEvent({ name: 'lock.jammed', detail: `while ${movement.target}` });
      movement.done('jammed');
      return;
    }
    // One reading of the clock: the bolt moved at `now`, and its own deadline counts from then.
    const now = this.clock.now();
    if (movement.target === 'unlocked' && movement.relockAfterMs !== null) {
      this.armRelock(now + movement.relockAfterMs);
    } else if (movement.target === 'locked') {
      this.relockAt = null;
    }
    this.setBolt(movement.target, true, now);
    if (movement.auto) this.connection.publishEvent({ name: 'lock.auto-relocked' });
    movement.done(movement.target);
  }

  private setBolt(bolt: Bolt, publishAlways = false, now = this.clock.now()): void {
    const moved = bolt !== this.currentBolt;
    if (moved) {
      this.currentBolt = bolt;
      this.changed = now;
    }
    if (moved || publishAlways) this.publish();
  }

  private armRelock(atMs: number): void {
    this.cancelRelock();
    this.relockAt = atMs;
    this.cancelRelockTimer = this.clock.schedule(atMs, () => {
      this.cancelRelockTimer = undefined;
      this.relockDue();
    });
  }

  private relockDue(): void {
    const door = this.door;
    if (door !== undefined && door.position() === 'open') {
      const stop = door.onChange((position) => {
        if (position === 'open') return;
        stop();
        this.stopWaitingForDoor = undefined;
        this.autoRelock();
      });
      this.stopWaitingForDoor = stop;
      return;
    }
    this.autoRelock();
  }

  private autoRelock(): void {
    this.enqueue({ target: 'locked', relockAfterMs: null, auto: true, done: () => {} });
  }

  private cancelRelock(): void {
    this.cancelRelockTimer?.();
    this.cancelRelockTimer = undefined;
    this.stopWaitingForDoor?.();
    this.stopWaitingForDoor = undefined;
    this.relockAt = null;
  }

  private publish(): void {
    this.connection.publishState({
      kind: 'lock',
      bolt: this.currentBolt,
      changedAt: this.changed,
      autoRelockAt: this.relockAt,
    });
  }
}

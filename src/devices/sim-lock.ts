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
 *
 * Commands: `lock`, `unlock` (`relockAfterMs`, `sessionId`), `report`; the reply data is
 * `{bolt, changedAt, autoRelockAt}`.
 */
import type { Clock } from '../core/clock.ts';
import type { Bolt, CommandMessage } from '../protocol/device-messages.ts';
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
      case 'arm':
      case 'disarm':
        throw new CommandFailure('command.unsupported', `a lock cannot ${command.action}`);
    }
  }

  onConnect(): void {
    this.publish();
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

/**
 * The device behaviours of the hub: each maps the device protocol (docs/device-protocol.md) onto
 * one driver, and publishes what the reference devices publish (`src/devices/sim-*.ts`), in the
 * same shapes and on the same occasions, so the control plane cannot tell a bridged device from
 * a simulated one:
 *
 * - {@link LockBridge}: `lock`, `unlock {relockAfterMs, sessionId}`, `report`, `pin.*`; state
 *   `{bolt, changedAt, autoRelockAt}` on every change and (re)connection; events
 *   `lock.jammed`, `lock.manual`, `lock.auto-relocked` and the keypad's. It replies to a
 *   `lock`/`unlock` only once the lock *reported* the bolt moved (the driver's rule), and the
 *   deadline it reports in `autoRelockAt` is the one the hub enforces ({@link DoorGuard}).
 *   A courier's `unlock` goes ahead only if the lock's offline grant list is fresh and names
 *   the unlock's grant ({@link GrantBook}); this is where the reference lock and the bridge
 *   differ, on purpose: the hub is the part that can check the list.
 * - {@link DoorSensorBridge}: `report`; state `{position, changedAt}`, `door.opened`/`closed`.
 * - {@link CameraBridge}: `arm {sessionId}`/`disarm`/`report`; while armed, every
 *   `heartbeatIntervalMs` the newest frame the hub received and a heartbeat naming its digest,
 *   MAC'd with the session key. The hub vouches only for frames it received itself, lately: no
 *   recent frame (camera away, stream stalled), no heartbeat — the control plane sees silence;
 *   the same picture again, the same digest — it sees a frozen feed. Each heartbeat also feeds
 *   the hub's own dead-man's switch.
 *
 * Times are the hub's clock: `changedAt` is when the driver's report arrived.
 */
import type { Clock } from '../core/clock.ts';
import { deriveSessionKey } from '../protocol/device-auth.ts';
import {
  MAX_FRAME_BYTES,
  readPinWindow,
  type Bolt,
  type CommandMessage,
  type DoorPositionName,
} from '../protocol/device-messages.ts';
import {
  CommandFailure,
  type DeviceBehaviour,
  type DeviceConnection,
  type DeviceLogger,
} from '../devices/device-connection.ts';
import {
  DriverError,
  type CameraDriver,
  type ContactDriver,
  type DriverBolt,
  type LockDriver,
  type LockDriverEvent,
} from './drivers/driver.ts';
import { cameraCommand } from '../devices/camera-commands.ts';
import type { GrantBook, GrantRefusalCode } from './grant-book.ts';
import type { DoorGuard } from './local-guard.ts';
import type { PinBook } from './pin-book.ts';

/** A driver's refusal as the reply the control plane understands. */
function asCommandFailure(err: unknown, what: string): CommandFailure {
  if (err instanceof CommandFailure) return err;
  if (err instanceof DriverError) {
    if (err.code === 'device.unsupported')
      return new CommandFailure('command.unsupported', err.message);
    return new CommandFailure('command.failed', `${what}: ${err.message}`);
  }
  return new CommandFailure(
    'command.failed',
    `${what}: ${err instanceof Error ? err.message : String(err)}`,
  );
}

/** The reply to a courier unlock refused for the grant list. */
function grantsFailure(code: GrantRefusalCode, message: string): CommandFailure {
  return new CommandFailure(code, message);
}

/** How long a courier unlock waits for a list naming its grant, by default, ms. */
export const DEFAULT_GRANT_WAIT_MS = 3_000;

// ---------------------------------------------------------------------------------------------

/** Settings of a {@link LockBridge}. */
export interface LockBridgeOptions {
  readonly connection: DeviceConnection;
  readonly driver: LockDriver;
  readonly clock: Clock;
  /** The door's guard: deadlines, refusals. */
  readonly guard: DoorGuard;
  /** The keypad's slots, when the lock has a keypad the driver manages; else null. */
  readonly pins: PinBook | null;
  /** Deadline for unlocks that name none (keypad, owner without one), ms; null for none. */
  readonly defaultRelockMs: number | null;
  /** How long a `lock`/`unlock` waits for the lock's report, ms. Default 10 000. */
  readonly confirmTimeoutMs?: number;
  /**
   * The lock's offline grant list, which every courier unlock is checked against; null: no
   * list can be had, and every courier unlock is refused (`grants.none`).
   */
  readonly grants: GrantBook | null;
  /**
   * How long a courier unlock whose grant the list does not name (or that has no list yet)
   * waits for a list that does, ms: the control plane may publish it just after the command.
   * Default {@link DEFAULT_GRANT_WAIT_MS}.
   */
  readonly grantWaitMs?: number;
  /** Told of each courier unlock refused for the grant list, with why (the hub logs it). */
  readonly refused?: (sessionId: string | null, why: string) => void;
  readonly logger: DeviceLogger;
}

interface BoltWaiter {
  readonly targets: readonly DriverBolt[];
  readonly resolve: (bolt: DriverBolt) => void;
}

/** See the module comment. */
export class LockBridge implements DeviceBehaviour {
  private readonly o: LockBridgeOptions;
  private bolt: Bolt;
  private changedAt: number;
  /** The unlock under way, whose deadline is armed when the lock reports the bolt drawn. */
  private pendingUnlock: { sessionId: string | null; relockAfterMs: number | null } | null = null;
  /** A keypad opened: the next drawn bolt gets the default deadline, as a lock's own does. */
  private keypadOpened = false;
  private lastTarget: 'locked' | 'unlocked' = 'locked';
  private wrongInRow = 0;
  private readonly waiters = new Set<BoltWaiter>();
  private readonly off: () => void;

  /** Attaches itself to the connection and listens to the driver. */
  constructor(options: LockBridgeOptions) {
    this.o = options;
    this.bolt = options.driver.bolt();
    this.changedAt = options.clock.now();
    options.connection.attach(this);
    this.off = options.driver.on((e) => this.onDriver(e));
  }

  /** The lock confirmed a bolt the hub threw: the reference lock's `lock.auto-relocked`. */
  hubRelocked(reasons: readonly string[]): void {
    if (reasons.includes('deadline'))
      this.o.connection.publishEvent({ name: 'lock.auto-relocked' });
  }

  /** Stops listening to the driver. */
  stop(): void {
    this.off();
    for (const w of this.waiters) w.resolve(this.bolt);
    this.waiters.clear();
  }

  async handleCommand(command: CommandMessage): Promise<Record<string, unknown>> {
    switch (command.action) {
      case 'lock':
        this.o.guard.lockCommanded();
        return this.move('locked', () => this.o.driver.lock());
      case 'unlock': {
        if (isCourierUnlock(command)) await this.checkCourier(command);
        const refusal = this.o.guard.unlockRefusal(command.sessionId);
        if (refusal !== null) throw new CommandFailure('command.failed', refusal);
        this.pendingUnlock = {
          sessionId: command.sessionId ?? null,
          relockAfterMs: command.relockAfterMs ?? this.o.defaultRelockMs,
        };
        return this.move('unlocked', () => this.o.driver.unlock());
      }
      case 'report':
        this.publish();
        return this.data();
      case 'pin.set': {
        const { slot, code } = command;
        if (slot === undefined || code === undefined)
          throw new CommandFailure('command.invalid', 'pin.set needs a slot and a code');
        await this.keypad().set(
          slot,
          code,
          command.name ?? null,
          this.window(command),
          command.issuedAt,
        );
        return { slot };
      }
      case 'pin.window': {
        if (command.slot === undefined)
          throw new CommandFailure('command.invalid', 'pin.window needs a slot');
        await this.keypad().setWindow(command.slot, this.window(command), command.issuedAt);
        return { slot: command.slot };
      }
      case 'pin.clear': {
        if (command.slot === undefined)
          throw new CommandFailure('command.invalid', 'pin.clear needs a slot');
        await this.keypad().clear(command.slot);
        return { slot: command.slot };
      }
      case 'pin.list':
        return { ...(await this.keypad().list(command.slot ?? 1)) };
      case 'arm':
      case 'disarm':
        throw new CommandFailure('command.unsupported', `a lock cannot ${command.action}`);
    }
  }

  onConnect(): void {
    this.publish();
  }

  /**
   * A courier's unlock goes ahead only with a fresh grant list that names its grant. A list
   * that does not name it (or no list yet) is waited for a moment; a stale list is refused at
   * once (a fresh one would have come over the link the command came over). Refused: the bolt
   * does not move, the reply says why, and the hub's log keeps it.
   */
  private async checkCourier(command: CommandMessage): Promise<void> {
    const grants = this.o.grants;
    const grantId = command.grantId ?? null;
    const check = () =>
      grants === null
        ? ({
            ok: false,
            code: 'grants.none',
            message: 'the hub keeps no grant list for this lock',
          } as const)
        : grants.courierCheck(grantId, this.o.clock.now());
    let verdict = check();
    if (
      !verdict.ok &&
      verdict.code !== 'grants.stale' &&
      grants?.hasKey() === true &&
      grantId !== null
    ) {
      await grants.waitForGrant(grantId, this.o.grantWaitMs ?? DEFAULT_GRANT_WAIT_MS);
      verdict = check();
    }
    if (verdict.ok) return;
    const why = `courier unlock refused: ${verdict.message}`;
    // The connection logs the error reply; the hub's log keeps the fact.
    this.o.refused?.(command.sessionId ?? null, why);
    throw grantsFailure(verdict.code, why);
  }

  private keypad(): PinBook {
    if (this.o.pins === null)
      throw new CommandFailure('command.unsupported', 'this lock has no keypad the hub manages');
    return this.o.pins;
  }

  private window(command: CommandMessage) {
    const w = readPinWindow(command);
    if (!w.ok) throw new CommandFailure('command.invalid', w.reason);
    return w.window;
  }

  /** Sends the command, then waits for the lock's report of the bolt, as the reference does. */
  private async move(
    target: 'locked' | 'unlocked',
    send: () => Promise<void>,
  ): Promise<Record<string, unknown>> {
    this.lastTarget = target;
    // Already there (a lock asked to lock while locked): done once the lock took the command.
    const already = this.o.driver.bolt() === target && this.bolt === target;
    const reported = this.waitFor([target, 'jammed']);
    try {
      await send();
    } catch (err) {
      this.pendingUnlock = null;
      reported.cancel();
      throw asCommandFailure(err, `the lock did not take the command`);
    }
    if (already) {
      reported.cancel();
      this.arrived(target);
      this.publish();
    } else {
      const bolt = await reported.promise;
      if (bolt === 'jammed') throw new CommandFailure('lock.jammed', 'the bolt jammed');
      if (bolt !== target)
        throw new CommandFailure('command.failed', 'the lock did not confirm the bolt in time');
    }
    return this.data();
  }

  private waitFor(targets: readonly DriverBolt[]): {
    promise: Promise<DriverBolt>;
    cancel: () => void;
  } {
    let waiter: BoltWaiter | undefined;
    let cancelTimer: (() => void) | undefined;
    const promise = new Promise<DriverBolt>((resolve) => {
      waiter = {
        targets,
        resolve: (bolt) => {
          cancelTimer?.();
          this.waiters.delete(waiter!);
          resolve(bolt);
        },
      };
      this.waiters.add(waiter);
      const timeout = this.o.confirmTimeoutMs ?? 10_000;
      cancelTimer = this.o.clock.schedule(this.o.clock.now() + timeout, () =>
        waiter!.resolve(this.o.driver.bolt()),
      );
    });
    return {
      promise,
      cancel: () => {
        cancelTimer?.();
        if (waiter) this.waiters.delete(waiter);
      },
    };
  }

  /** The bolt reached `bolt` by the lock's report: deadlines, before the state goes out. */
  private arrived(bolt: DriverBolt): void {
    if (bolt !== 'unlocked') return;
    if (this.pendingUnlock !== null) {
      const { sessionId, relockAfterMs } = this.pendingUnlock;
      this.pendingUnlock = null;
      this.o.guard.unlocked(sessionId, relockAfterMs);
    } else if (this.keypadOpened) {
      this.o.guard.unlocked(null, this.o.defaultRelockMs);
    }
    this.keypadOpened = false;
  }

  private onDriver(e: LockDriverEvent): void {
    switch (e.type) {
      case 'state':
      case 'availability':
        this.boltReport(this.o.driver.bolt(), e.at);
        return;
      case 'manual':
        this.o.connection.publishEvent({ name: 'lock.manual', detail: e.bolt });
        this.boltReport(this.o.driver.bolt(), e.at);
        return;
      case 'keypad-unlocked':
        this.wrongInRow = 0;
        this.keypadOpened = true;
        this.o.connection.publishEvent({
          name: 'keypad.unlocked',
          ...(e.slot === null ? {} : { slot: e.slot }),
        });
        return;
      case 'keypad-wrong-code':
        this.wrongInRow = Math.min(this.wrongInRow + 1, 1_000);
        this.o.connection.publishEvent({ name: 'keypad.wrong-code', attempt: this.wrongInRow });
        return;
      case 'keypad-lockout':
        this.wrongInRow = 0;
        this.o.connection.publishEvent({
          name: 'keypad.lockout',
          ...(e.untilMs === null ? {} : { untilMs: e.untilMs }),
        });
        return;
    }
  }

  private boltReport(bolt: DriverBolt, at: number): void {
    const moved = bolt !== this.bolt;
    if (moved) {
      this.bolt = bolt;
      this.changedAt = at;
      this.arrived(bolt);
    }
    const waiting = [...this.waiters].filter((w) => w.targets.includes(bolt));
    if (moved || waiting.length > 0) this.publish();
    if (moved && bolt === 'jammed')
      this.o.connection.publishEvent({ name: 'lock.jammed', detail: `while ${this.lastTarget}` });
    for (const w of waiting) w.resolve(bolt);
    // After the state went out: a relock the hub made is confirmed, and said, after it.
    if (moved) this.o.guard.boltChanged(bolt);
  }

  private data(): Record<string, unknown> {
    return { bolt: this.bolt, changedAt: this.changedAt, autoRelockAt: this.autoRelockAt() };
  }

  private autoRelockAt(): number | null {
    return this.bolt === 'locked' ? null : this.o.guard.relockAt();
  }

  private publish(): void {
    this.o.connection.publishState({
      kind: 'lock',
      bolt: this.bolt,
      changedAt: this.changedAt,
      autoRelockAt: this.autoRelockAt(),
    });
  }
}

/**
 * Whether an `unlock` lets a courier in. Without `accessKind` (a control plane from before the
 * field), an unlock in a session is read the strictest way: a courier's. Guests' and the
 * household's unlocks are not checked against the list: the control plane decided them, and a
 * late list must not lock the household out; couriers, strangers to the home sent by a carrier,
 * are the ones whose revoked or rescheduled delivery must not open the door on old news.
 */
function isCourierUnlock(command: CommandMessage): boolean {
  return (
    command.accessKind === 'courier' ||
    (command.accessKind === undefined && command.sessionId !== undefined)
  );
}

// ---------------------------------------------------------------------------------------------

/** Settings of a {@link DoorSensorBridge}. */
export interface DoorSensorBridgeOptions {
  readonly connection: DeviceConnection;
  readonly driver: ContactDriver;
  readonly clock: Clock;
  /** The guard of the door this sensor watches, if it belongs to one. */
  readonly guard: DoorGuard | null;
}

/** See the module comment. */
export class DoorSensorBridge implements DeviceBehaviour {
  private readonly o: DoorSensorBridgeOptions;
  private position: DoorPositionName;
  private changedAt: number;
  private readonly off: () => void;

  /** Attaches itself to the connection and listens to the driver. */
  constructor(options: DoorSensorBridgeOptions) {
    this.o = options;
    this.position = options.driver.position();
    this.changedAt = options.clock.now();
    options.connection.attach(this);
    this.off = options.driver.on((e) => this.report(options.driver.position(), e.at));
  }

  /** Stops listening to the driver. */
  stop(): void {
    this.off();
  }

  handleCommand(command: CommandMessage): Promise<Record<string, unknown>> {
    if (command.action !== 'report')
      return Promise.reject(
        new CommandFailure('command.unsupported', `a door sensor cannot ${command.action}`),
      );
    this.publish();
    return Promise.resolve({ position: this.position, changedAt: this.changedAt });
  }

  onConnect(): void {
    this.publish();
  }

  private report(position: DoorPositionName, at: number): void {
    if (position === this.position) return;
    this.position = position;
    this.changedAt = at;
    this.publish();
    if (position !== 'unknown')
      this.o.connection.publishEvent({ name: position === 'open' ? 'door.opened' : 'door.closed' });
    this.o.guard?.doorChanged(position);
  }

  private publish(): void {
    this.o.connection.publishState({
      kind: 'door-sensor',
      position: this.position,
      changedAt: this.changedAt,
    });
  }
}

// ---------------------------------------------------------------------------------------------

/** Settings of a {@link CameraBridge}. */
export interface CameraBridgeOptions {
  readonly connection: DeviceConnection;
  readonly driver: CameraDriver;
  readonly clock: Clock;
  /** The camera's device key: session keys are derived from it. */
  readonly deviceKey: Uint8Array;
  /** The guard of the door this camera watches, if it belongs to one. */
  readonly guard: DoorGuard | null;
  /** Between heartbeats while armed, ms. Default 500 (the reference camera's). */
  readonly heartbeatIntervalMs?: number;
  /**
   * A frame older than this is not vouched for: the stream stalled, and a heartbeat naming an
   * old picture would hide it. Default 1 250 ms (the dead-man's silence).
   */
  readonly maxFrameAgeMs?: number;
  readonly logger: DeviceLogger;
}

interface ArmedSession {
  readonly id: string;
  readonly key: Buffer;
  seq: number;
}

/** See the module comment. */
export class CameraBridge implements DeviceBehaviour {
  private readonly o: CameraBridgeOptions;
  private readonly intervalMs: number;
  private session: ArmedSession | null = null;
  private cancelTick: (() => void) | undefined;
  private oversizeWarned = false;

  /** Attaches itself to the connection. */
  constructor(options: CameraBridgeOptions) {
    this.o = options;
    this.intervalMs = options.heartbeatIntervalMs ?? 500;
    if (!(this.intervalMs > 0)) throw new RangeError('heartbeatIntervalMs must be > 0');
    options.connection.attach(this);
  }

  /** The session it records for, or null. */
  sessionId(): string | null {
    return this.session?.id ?? null;
  }

  /** The hub ends `sessionId`'s recording on its own (cut off from the control plane). */
  disarmLocally(sessionId: string): void {
    if (this.session?.id === sessionId) this.disarm();
  }

  /** Stops heartbeats, without publishing anything. */
  stop(): void {
    this.session = null;
    this.cancelTick?.();
    this.cancelTick = undefined;
  }

  handleCommand(command: CommandMessage): Promise<Record<string, unknown>> {
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
    this.session = {
      id: sessionId,
      key: deriveSessionKey(this.o.deviceKey, sessionId),
      seq: 0,
    };
    this.publish();
    this.o.guard?.cameraArmed(sessionId);
    this.cancelTick?.();
    this.tick();
  }

  private disarm(): void {
    if (this.session === null) return;
    this.session = null;
    this.cancelTick?.();
    this.cancelTick = undefined;
    this.publish();
    this.o.guard?.cameraDisarmed();
  }

  private tick(): void {
    this.cancelTick = undefined;
    const session = this.session;
    if (session === null) return;
    const now = this.o.clock.now();
    this.beat(session);
    this.cancelTick = this.o.clock.schedule(now + this.intervalMs, () => this.tick());
  }

  private beat(session: ArmedSession): void {
    const frame = this.o.driver.latest();
    // Nothing received lately, nothing vouched for: silence is what the control plane must see.
    if (frame === null) return;
    if (this.o.clock.now() - frame.receivedAt > (this.o.maxFrameAgeMs ?? 1_250)) return;
    const jpeg = frame.jpeg.toString('base64');
    if (jpeg.length <= MAX_FRAME_BYTES - 512) {
      this.o.connection.publishFrame({
        sessionId: session.id,
        capturedAt: frame.receivedAt,
        digest: frame.digest,
        jpeg,
      });
    } else if (!this.oversizeWarned) {
      this.oversizeWarned = true;
      this.o.logger.warn(
        { bytes: frame.jpeg.length },
        'camera frames are too large for the protocol: heartbeats only (lower the resolution)',
      );
    }
    const body = {
      sessionId: session.id,
      seq: session.seq,
      capturedAt: frame.receivedAt,
      frameDigest: frame.digest,
      recording: true,
    };
    this.o.connection.publishHeartbeat(session.key, body);
    session.seq += 1;
    this.o.guard?.observed({ ...body, macValid: true });
  }

  private data(): Record<string, unknown> {
    return { recording: this.session !== null, sessionId: this.session?.id ?? null };
  }

  private publish(): void {
    this.o.connection.publishState({
      kind: 'camera',
      recording: this.session !== null,
      sessionId: this.session?.id ?? null,
    });
  }
}

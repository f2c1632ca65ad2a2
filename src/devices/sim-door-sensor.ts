/**
 * A simulated door-position sensor (reed switch). It reports its position on every change and
 * on every (re)connection, with `changedAt` by its own clock, and lets the lock and the camera
 * of the same door observe the position directly (they are wired to it in the house, not
 * through the network).
 */
import type { Clock } from '../core/clock.ts';
import type { CommandMessage, DoorPositionName } from '../protocol/device-messages.ts';
import {
  CommandFailure,
  type DeviceBehaviour,
  type DeviceConnection,
} from './device-connection.ts';

/** Something that knows where a door is and says when that changes. */
export interface DoorPositionSource {
  /** The position now. */
  position(): DoorPositionName;
  /** Calls `listener` after every change; returns a function that stops the calls. */
  onChange(listener: (position: DoorPositionName) => void): () => void;
}

/** Settings of a {@link SimDoorSensor}. */
export interface SimDoorSensorOptions {
  readonly clock: Clock;
  /** Position at start. Default 'closed'. */
  readonly initialPosition?: DoorPositionName;
}

/** See the module comment. Commands: `report`. */
export class SimDoorSensor implements DeviceBehaviour, DoorPositionSource {
  private readonly connection: DeviceConnection;
  private readonly clock: Clock;
  private current: DoorPositionName;
  private changed: number;
  private readonly listeners = new Set<(position: DoorPositionName) => void>();

  /** Attaches itself to `connection`. */
  constructor(connection: DeviceConnection, options: SimDoorSensorOptions) {
    this.connection = connection;
    this.clock = options.clock;
    this.current = options.initialPosition ?? 'closed';
    this.changed = options.clock.now();
    connection.attach(this);
  }

  /** The device id. */
  get deviceId(): string {
    return this.connection.deviceId;
  }

  position(): DoorPositionName {
    return this.current;
  }

  /** When the position last changed, ms by the sensor's clock. */
  changedAt(): number {
    return this.changed;
  }

  onChange(listener: (position: DoorPositionName) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The door swings open. */
  open(): void {
    this.set('open');
  }

  /** The door shuts. */
  close(): void {
    this.set('closed');
  }

  /** Sets any position, `unknown` included (a sensor that lost its magnet). */
  set(position: DoorPositionName): void {
    if (position === this.current) return;
    this.current = position;
    this.changed = this.clock.now();
    this.publish();
    if (position !== 'unknown') {
      this.connection.publishEvent({ name: position === 'open' ? 'door.opened' : 'door.closed' });
    }
    for (const listener of [...this.listeners]) listener(position);
  }

  handleCommand(command: CommandMessage): Promise<Record<string, unknown>> {
    if (command.action !== 'report') {
      return Promise.reject(
        new CommandFailure('command.unsupported', `a door sensor cannot ${command.action}`),
      );
    }
    this.publish();
    return Promise.resolve({ position: this.current, changedAt: this.changed });
  }

  onConnect(): void {
    this.publish();
  }

  private publish(): void {
    this.connection.publishState({
      kind: 'door-sensor',
      position: this.current,
      changedAt: this.changed,
    });
  }
}

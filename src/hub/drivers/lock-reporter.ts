/**
 * What a lock driver tells its listeners, and when: the rules the Z-Wave and Matter lock
 * drivers share (they find out about their lock themselves, so they decide when a change is
 * worth telling).
 *
 * - Nothing while the driver starts: `start()` tells the picture once, when it is known
 *   ({@link LockReporter.begin}).
 * - Availability and the bolt only when they changed, availability first: a lock that came back
 *   says so before its bolt, and one that went away before its bolt becomes unknown.
 * - Nothing after `stop()` ({@link LockReporter.close}); listeners added then are never called.
 */
import type { DriverBolt, LockDriverEvent } from './driver.ts';
import { Listeners, reportListenerError } from './listeners.ts';

/** See the module comment. */
export class LockReporter {
  private readonly listeners: Listeners<LockDriverEvent>;
  private phase: 'starting' | 'live' | 'closed' = 'starting';
  private toldAvailable = false;
  private toldBolt: DriverBolt = 'unknown';

  /** `onListenerError` gets what a listener threw; default a process warning naming `id`. */
  constructor(id: string, onListenerError?: (err: unknown) => void) {
    this.listeners = new Listeners(onListenerError ?? reportListenerError(id));
  }

  /** Whether the driver is still starting (nothing is told yet). */
  get starting(): boolean {
    return this.phase === 'starting';
  }

  /** Whether events reach the listeners now: started, and not stopped. */
  get live(): boolean {
    return this.phase === 'live';
  }

  /** The availability the listeners were last told (false before {@link begin}). */
  get lastAvailable(): boolean {
    return this.toldAvailable;
  }

  /** Adds a listener; returns the function that removes it. Does nothing once closed. */
  on(listener: (e: LockDriverEvent) => void): () => void {
    if (this.phase === 'closed') return () => undefined;
    return this.listeners.add(listener);
  }

  /** Tells the listeners `e`, if they are told anything now ({@link live}). */
  emit(e: LockDriverEvent): void {
    if (this.phase === 'live') this.listeners.emit(e);
  }

  /** Ends the start: tells the availability and the bolt once, changed or not. */
  begin(available: boolean, bolt: DriverBolt, at: number): void {
    if (this.phase !== 'starting') return;
    this.phase = 'live';
    this.toldAvailable = available;
    this.toldBolt = bolt;
    this.emit({ type: 'availability', available, at });
    this.emit({ type: 'state', bolt, at });
  }

  /** Tells the availability if it changed since it was last told (and the reporter is live). */
  availability(available: boolean, at: number): void {
    if (this.phase !== 'live' || available === this.toldAvailable) return;
    this.toldAvailable = available;
    this.emit({ type: 'availability', available, at });
  }

  /** Tells the bolt if it changed since it was last told (and the reporter is live). */
  bolt(bolt: DriverBolt, at: number): void {
    if (this.phase !== 'live' || bolt === this.toldBolt) return;
    this.toldBolt = bolt;
    this.emit({ type: 'state', bolt, at });
  }

  /** Stops telling anything, for good, and drops the listeners. */
  close(): void {
    this.phase = 'closed';
    this.listeners.clear();
  }
}

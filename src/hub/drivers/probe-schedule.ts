/**
 * When a lock driver asks its lock whether it is still there: the one timer the Z-Wave and
 * Matter lock drivers share. Neither protocol library notices soon enough that a device went
 * away (zwave-js only when a transmission fails, matter.js only when a report is overdue), so
 * the driver probes: every `livenessIntervalMs` while the device is settled (reachable, its
 * state known), every `deadProbeIntervalMs` while it is not. Every `checkIntervalMs` the timer
 * lets the driver look at what it knows without radio traffic, then probes if one is due.
 * Probes never overlap. Times are the process clock (`Date.now()`), not the hub's.
 */

/** How a {@link ProbeSchedule} runs. */
export interface ProbeScheduleOptions {
  /** How often the timer looks whether a probe is due, ms. */
  readonly checkIntervalMs: number;
  /** How long after the last probe a settled device is probed again, ms; 0 never. */
  readonly livenessIntervalMs: number;
  /** How long after the last probe an unsettled device is probed again, ms; 0 never. */
  readonly deadProbeIntervalMs: number;
  /** Whether the device is settled now: reachable and its state known. */
  readonly settled: () => boolean;
  /** One probe. What it throws is dropped: the device is still away, the next probe tries. */
  readonly probe: () => Promise<void>;
  /**
   * Called at every look and after every probe: the driver compares what it knows with what
   * it told its listeners.
   */
  readonly refresh: () => void;
}

/** See the module comment. */
export class ProbeSchedule {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private probing = false;
  /** When the last probe went out, ms (process clock). */
  private lastProbeAt = 0;

  constructor(private readonly options: ProbeScheduleOptions) {}

  /** Whether the timer is armed (a resource the driver holds until it stops). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Starts looking, every `checkIntervalMs`, until {@link stop}. */
  start(): void {
    if (this.stopped) return;
    this.running = true;
    this.arm();
  }

  /** Stops for good: the timer is cleared, and no probe starts any more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Makes a probe due at the next look: something suggests the device may have gone or come. */
  soon(): void {
    this.lastProbeAt = 0;
  }

  /** Counts a read made outside the schedule (at start) as a probe made now. */
  probedNow(): void {
    this.lastProbeAt = Date.now();
  }

  /** Probes now, unless a probe is under way or the schedule stopped; then refreshes. */
  async probeNow(): Promise<void> {
    if (this.stopped || this.probing) return;
    this.probing = true;
    this.lastProbeAt = Date.now();
    try {
      await this.options.probe();
    } catch {
      // Still unreachable; the next probe tries again.
    } finally {
      this.probing = false;
      this.options.refresh();
    }
  }

  private arm(): void {
    if (this.stopped || !this.running || this.timer !== undefined) return;
    const { checkIntervalMs, livenessIntervalMs, deadProbeIntervalMs } = this.options;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.options.refresh();
      const interval = this.options.settled() ? livenessIntervalMs : deadProbeIntervalMs;
      if (interval > 0 && Date.now() - this.lastProbeAt >= interval) void this.probeNow();
      this.arm();
    }, checkIntervalMs);
  }
}

/**
 * The floors, measured in small batches between benchmark runs so they see the machine at the
 * same moments as the runs: raw MQTT round trips (TCP_NODELAY, and mqtt.js's default sockets)
 * and durable SQLite commits.
 */
import type { RunningSystem } from '../src/server/system.ts';
import { CommitFloor } from './commit-floor.ts';
import { MqttFloor } from './mqtt-floor.ts';

export interface FloorSamples {
  readonly rttNoDelay: number[];
  readonly rttDefault: number[];
  readonly commits: number[];
}

export class Floors {
  readonly samples: FloorSamples = { rttNoDelay: [], rttDefault: [], commits: [] };

  private constructor(
    private readonly noDelay: MqttFloor,
    private readonly nagle: MqttFloor,
    private readonly commit: CommitFloor,
    private readonly target: number,
    private readonly perBatch: number,
  ) {}

  /**
   * Connects the echo clients (devices `bench-echo` and `bench-echo-default` in `homeId`) and
   * opens the commit floor under `dataParent`. `target` samples of each, in batches of
   * `perBatch`.
   */
  static async start(
    sys: RunningSystem,
    homeId: string,
    dataParent: string,
    target: number,
    perBatch: number,
  ): Promise<Floors> {
    const opened: MqttFloor[] = [];
    try {
      const noDelay = await MqttFloor.start(sys, homeId, { deviceId: 'bench-echo', noDelay: true });
      opened.push(noDelay);
      const nagle = await MqttFloor.start(sys, homeId, {
        deviceId: 'bench-echo-default',
        noDelay: false,
      });
      opened.push(nagle);
      return new Floors(noDelay, nagle, CommitFloor.open(dataParent), target, perBatch);
    } catch (err) {
      await Promise.all(opened.map((f) => f.close()));
      throw err;
    }
  }

  /** Uncounted samples, to warm up the clients and the JIT. */
  async warmUp(n: number): Promise<void> {
    await this.noDelay.roundTrips(n);
    await this.nagle.roundTrips(n);
    this.commit.commits(n);
  }

  /** One batch of each floor, up to the target. */
  async batch(): Promise<void> {
    const s = this.samples;
    const k = (have: number): number => Math.max(0, Math.min(this.perBatch, this.target - have));
    s.rttNoDelay.push(...(await this.noDelay.roundTrips(k(s.rttNoDelay.length))));
    s.rttDefault.push(...(await this.nagle.roundTrips(k(s.rttDefault.length))));
    s.commits.push(...this.commit.commits(k(s.commits.length)));
  }

  /** Whether every floor has its target count. */
  done(): boolean {
    const s = this.samples;
    return Math.min(s.rttNoDelay.length, s.rttDefault.length, s.commits.length) >= this.target;
  }

  async close(): Promise<void> {
    this.commit.close();
    await Promise.all([this.noDelay.close(), this.nagle.close()]);
  }
}

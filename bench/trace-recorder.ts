/**
 * Collects the device gateway's benchmark trace points (`WorldOptions.trace`).
 *
 * The gateway reports `heartbeat.received` before it decodes the heartbeat, so the point names
 * no session. The recorder also listens to the gateway (after the orchestrator): the gateway
 * calls its listeners synchronously, in the same turn as the trace point, so the latest
 * untagged heartbeat point of that device is the heartbeat the listener is told about, and it
 * gets the heartbeat's session id. A heartbeat that fails decoding stays untagged.
 */
import type { DeviceGateway, TracePoint } from '../src/server/device-gateway.ts';

/** One recorded trace point; `at` is `performance.now()`, ms. */
export interface TraceEntry {
  readonly point: 'command.publish' | 'heartbeat.received';
  readonly at: number;
  readonly deviceId: string;
  sessionId: string | null;
  readonly action: string | null;
}

export class TraceRecorder {
  private entries: TraceEntry[] = [];

  /** The function to hand to `ScenarioWorld.create({ trace })`. */
  readonly trace = (point: 'command.publish' | 'heartbeat.received', detail: TracePoint): void => {
    this.entries.push({
      point,
      at: detail.atMs,
      deviceId: detail.deviceId,
      sessionId: detail.sessionId,
      action: detail.action ?? null,
    });
  };

  /** Tags heartbeat points with their session (see the module comment). */
  attach(gateway: DeviceGateway): void {
    gateway.addListener({
      onHeartbeat: (device, hb) => {
        for (let i = this.entries.length - 1; i >= 0; i--) {
          const e = this.entries[i]!;
          if (e.point !== 'heartbeat.received' || e.deviceId !== device.id) continue;
          if (e.sessionId === null) e.sessionId = hb.sessionId;
          return;
        }
      },
    });
  }

  /** Forgets everything recorded so far (between runs, so memory stays flat). */
  clear(): void {
    this.entries = [];
  }

  /** The first `command.publish` of `action` for `sessionId`. */
  command(sessionId: string, action: string): TraceEntry | undefined {
    return this.entries.find(
      (e) => e.point === 'command.publish' && e.sessionId === sessionId && e.action === action,
    );
  }

  /** Heartbeat points from `deviceId` after `afterMs`, oldest first. */
  heartbeatsAfter(deviceId: string, afterMs: number): TraceEntry[] {
    return this.entries.filter(
      (e) => e.point === 'heartbeat.received' && e.deviceId === deviceId && e.at > afterMs,
    );
  }
}

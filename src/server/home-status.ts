/**
 * The "home at a glance" view: for each door, the lock, the door and the camera, with unknown
 * and stale shown as such (principle 4). A value older than the staleness bound, or from a
 * device that is offline, is reported as `unknown` with the last known value and its time
 * beside it — never as the current value.
 */
import type { Door, Home } from '../core/model.ts';
import type {
  DeviceLiveStatus,
  DoorStatusView,
  FactView,
  HomeStatusView,
} from '../protocol/views.ts';
import type { DeviceGateway } from './device-gateway.ts';

/** A device silent for longer than this is stale, ms. */
export const STALE_AFTER_MS = 60_000;

export type { DoorStatusView, FactView, HomeStatusView };

function fact<T extends string>(
  deviceId: string | null,
  s: DeviceLiveStatus | undefined,
  extract: (s: DeviceLiveStatus) => T | 'unknown' | null,
  now: number,
): FactView<T> {
  if (!deviceId || !s) {
    return {
      value: 'unknown',
      lastKnown: null,
      online: false,
      lastSeenAt: null,
      offlineSince: null,
      deviceId,
    };
  }
  const raw = extract(s);
  const lastKnown = raw === null || raw === 'unknown' ? null : raw;
  const stale = s.lastSeenAt === null || now - s.lastSeenAt > STALE_AFTER_MS;
  const live = s.online && !stale;
  return {
    value: live && lastKnown !== null ? lastKnown : 'unknown',
    lastKnown,
    online: live,
    lastSeenAt: s.lastSeenAt,
    offlineSince: live
      ? null
      : (s.offlineSince ?? (s.lastSeenAt !== null ? s.lastSeenAt + STALE_AFTER_MS : null)),
    deviceId,
  };
}

/** Builds the status of every door of a home from what the gateway knows now. */
export function homeStatus(
  home: Home,
  doors: readonly Door[],
  gateway: DeviceGateway,
  now: number,
): HomeStatusView {
  return {
    home,
    at: now,
    doors: doors.map((d) => {
      const cam = d.cameraDeviceIds[0] ?? null;
      return {
        doorId: d.id,
        name: d.name,
        lock: fact(
          d.lockDeviceId,
          gateway.liveStatus(d.lockDeviceId),
          (s) => (s.state?.kind === 'lock' ? s.state.bolt : null),
          now,
        ),
        door: fact(
          d.doorSensorDeviceId,
          d.doorSensorDeviceId ? gateway.liveStatus(d.doorSensorDeviceId) : undefined,
          (s) => (s.state?.kind === 'door-sensor' ? s.state.position : null),
          now,
        ),
        camera: fact(
          cam,
          cam ? gateway.liveStatus(cam) : undefined,
          (s) => (s.state?.kind === 'camera' ? (s.state.recording ? 'recording' : 'idle') : null),
          now,
        ),
      };
    }),
  };
}

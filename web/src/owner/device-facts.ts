/**
 * Applies a `device` event to the home status at once, so a lock that reports "unlocked" shows
 * so within the event's latency, not at the next fetch. The rule is the server's: a value
 * counts only while its device is online; otherwise it is `unknown` with the last value beside
 * it. The page still fetches the server's status right after, which stays the reference.
 */
import type {
  DeviceLiveStatus,
  DoorStatusView,
  FactView,
  HomeStatusView,
} from '../../../src/protocol/views.ts';

function factFrom<T extends string>(
  prev: FactView<T>,
  d: DeviceLiveStatus,
  raw: T | 'unknown' | null,
): FactView<T> {
  const lastKnown = raw === null || raw === 'unknown' ? prev.lastKnown : raw;
  const live = d.online && d.lastSeenAt !== null;
  return {
    value: live && lastKnown !== null ? lastKnown : 'unknown',
    lastKnown,
    online: live,
    lastSeenAt: d.lastSeenAt,
    offlineSince: live ? null : (d.offlineSince ?? prev.offlineSince ?? d.lastSeenAt),
    deviceId: prev.deviceId,
  };
}

function applyToDoor(door: DoorStatusView, d: DeviceLiveStatus): DoorStatusView {
  const s = d.state;
  if (door.lock.deviceId === d.deviceId) {
    return { ...door, lock: factFrom(door.lock, d, s?.kind === 'lock' ? s.bolt : null) };
  }
  if (door.door.deviceId === d.deviceId) {
    return {
      ...door,
      door: factFrom(door.door, d, s?.kind === 'door-sensor' ? s.position : null),
    };
  }
  if (door.camera.deviceId === d.deviceId) {
    return {
      ...door,
      camera: factFrom(
        door.camera,
        d,
        s?.kind === 'camera' ? (s.recording ? 'recording' : 'idle') : null,
      ),
    };
  }
  return door;
}

/** The status with one device's news applied to the doors it serves. */
export function applyDeviceEvent(status: HomeStatusView, d: DeviceLiveStatus): HomeStatusView {
  return { ...status, doors: status.doors.map((door) => applyToDoor(door, d)) };
}

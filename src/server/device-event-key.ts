/**
 * One name per device event, the same on every replica that hears it: what lets work that each
 * replica receives (every device event reaches all of them) be done once, by whichever commits
 * it first, instead of by a leader that may not be there.
 *
 * A device orders its events by `(at, seq)` (docs/device-protocol.md, section 4.3): `seq` alone
 * may start again after a restart, so both are in the name.
 */
import { createHash } from 'node:crypto';

/** What names an event: its device, and its place in that device's order. */
export interface DeviceEventPlace {
  readonly at: number;
  readonly seq: number;
}

/** `device-id:at:seq`, the key of the event's work in `AuditLog.appendOnce`. */
export function deviceEventKey(deviceId: string, event: DeviceEventPlace): string {
  return `${deviceId}:${event.at}:${event.seq}`;
}

/**
 * A UUID-shaped id derived from the event's key and `purpose` (RFC 9562 version 8: the bits are
 * SHA-256's), for a row each replica writes with the same id so the second insert does nothing.
 */
export function deviceEventUuid(
  purpose: string,
  deviceId: string,
  event: DeviceEventPlace,
): string {
  const h = createHash('sha256')
    .update(`${purpose}\n${deviceEventKey(deviceId, event)}`)
    .digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

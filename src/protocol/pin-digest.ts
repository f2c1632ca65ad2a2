/**
 * PIN digests: what a lock reports for a keypad slot instead of its code, and what the server
 * keeps instead of the code (see docs/device-protocol.md, section 11.3).
 *
 * Kept apart from device-messages.ts, which the web app's type check reads, because this needs
 * node:crypto.
 */
import { createHmac } from 'node:crypto';

/**
 * The key that PIN digests are made with: `HMAC-SHA256(deviceKey, "threshold/pin-digest")`.
 * Its own derivation, so a digest can never pass as a MAC of some message.
 */
export function pinDigestKey(deviceKey: Uint8Array): Buffer {
  return createHmac('sha256', deviceKey).update('threshold/pin-digest').digest();
}

/**
 * What a lock reports for a set slot, and what the server keeps instead of the PIN:
 * `base64url(HMAC-SHA256(pinDigestKey(deviceKey), slot + ":" + code))`.
 *
 * Keyed, because a plain hash of a 4-digit PIN is undone by trying all 10 000 codes; without
 * the device key (held by the lock and derived by the server from its master key) nobody can
 * test a guess. Bound to the slot, so the same code in two slots gives two unrelated digests
 * and a digest read back for one slot cannot confirm another.
 */
export function pinDigest(deviceKey: Uint8Array, slot: number, code: string): string {
  return createHmac('sha256', pinDigestKey(deviceKey))
    .update(`${slot}:${code}`)
    .digest('base64url');
}

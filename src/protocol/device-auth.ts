/**
 * Device authentication: how device keys, MQTT passwords, session keys and MACs are derived.
 *
 * - The server holds one 32-byte master key. A device's key is
 *   `HMAC-SHA256(master, "threshold/device-key/" + deviceId)`; it is the device's secret,
 *   given to it once at provisioning (base64url).
 * - The device's MQTT password is `HMAC-SHA256(deviceKey, "threshold/mqtt-password")`, so a
 *   password seen on the wire does not reveal the key that signs the device's messages.
 * - A session key is `HMAC-SHA256(deviceKey, "threshold/session/" + sessionId)`: heartbeats
 *   of one session cannot be replayed into another.
 * - A MAC is `HMAC-SHA256(key, topic + "\n" + canonicalJson(payload without "mac"))`,
 *   base64url without padding. Binding the topic stops one device's message being replayed as
 *   another's.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from '../core/canonical-json.ts';

export { canonicalJson };

function hmac(key: Uint8Array, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** The device key of `deviceId` under the server's master key (32 bytes). */
export function deriveDeviceKey(masterKey: Uint8Array, deviceId: string): Buffer {
  return hmac(masterKey, `threshold/device-key/${deviceId}`);
}

/** The MQTT password a device presents, from its key. */
export function mqttPassword(deviceKey: Uint8Array): string {
  return hmac(deviceKey, 'threshold/mqtt-password').toString('base64url');
}

/** The key that authenticates a camera's heartbeats in one access session. */
export function deriveSessionKey(deviceKey: Uint8Array, sessionId: string): Buffer {
  return hmac(deviceKey, `threshold/session/${sessionId}`);
}

/** The MAC of a payload on a topic (the payload's own `mac` field is ignored). */
export function macOf(key: Uint8Array, topic: string, payload: object): string {
  const { mac: _mac, ...rest } = payload as Record<string, unknown>;
  return hmac(key, `${topic}\n${canonicalJson(rest)}`).toString('base64url');
}

/** Returns the payload with its `mac` set. */
export function sign<T extends object>(key: Uint8Array, topic: string, payload: Omit<T, 'mac'>): T {
  return { ...payload, mac: macOf(key, topic, payload) } as T;
}

/** Whether a payload's `mac` is right, compared in constant time. */
export function verifyMac(key: Uint8Array, topic: string, payload: { mac: string }): boolean {
  const expected = Buffer.from(macOf(key, topic, payload), 'base64url');
  const given = Buffer.from(payload.mac, 'base64url');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Whether an MQTT password is the right one for a device key, in constant time. */
export function verifyMqttPassword(deviceKey: Uint8Array, password: Uint8Array | string): boolean {
  const expected = Buffer.from(mqttPassword(deviceKey));
  const given = typeof password === 'string' ? Buffer.from(password) : Buffer.from(password);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

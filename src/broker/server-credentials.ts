/**
 * The MQTT credentials of the server's own broker client.
 *
 * They are derived from the master key rather than stored, so every process that shares the
 * data directory (`threshold serve` replicas, `threshold demo`, the embedded broker) agrees on
 * them without another secret to provision or leak.
 */
import { createHmac } from 'node:crypto';

/** The user name of the server's broker client; server client ids start with it too. */
export const SERVER_USERNAME = 'threshold-server';

/** Credentials of the server's broker client. */
export interface ServerMqttCredentials {
  readonly username: typeof SERVER_USERNAME;
  /** `HMAC-SHA256(masterKey, "threshold/server-mqtt-password")`, base64url without padding. */
  readonly password: string;
}

/**
 * Derives the server client's MQTT credentials from the master key. Deterministic: the same
 * master key always gives the same password, and the password does not reveal the key.
 */
export function serverMqttCredentials(masterKey: Uint8Array): ServerMqttCredentials {
  const password = createHmac('sha256', masterKey)
    .update('threshold/server-mqtt-password')
    .digest('base64url');
  return { username: SERVER_USERNAME, password };
}

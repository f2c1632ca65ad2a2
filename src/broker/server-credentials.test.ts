import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { serverMqttCredentials } from './server-credentials.ts';

describe('serverMqttCredentials', () => {
  it('derives HMAC-SHA256(master, "threshold/server-mqtt-password") in base64url', () => {
    const master = randomBytes(32);
    const expected = createHmac('sha256', master)
      .update('threshold/server-mqtt-password')
      .digest('base64url');
    expect(serverMqttCredentials(master)).toEqual({
      username: 'threshold-server',
      password: expected,
    });
  });

  it('is the same for the same key and differs between keys', () => {
    const a = randomBytes(32);
    expect(serverMqttCredentials(a)).toEqual(serverMqttCredentials(Uint8Array.from(a)));
    expect(serverMqttCredentials(a).password).not.toBe(
      serverMqttCredentials(randomBytes(32)).password,
    );
  });
});

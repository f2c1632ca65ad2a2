import { createECDH } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FALLBACK_VAPID_SUBJECT,
  VAPID_FILE,
  defaultVapidSubject,
  loadOrCreateVapidKeys,
  vapidSubjectProblem,
  vapidSubjectWarning,
} from './vapid-keys.ts';

const SUBJECT = 'mailto:ops@example.org';

describe('VAPID keys', () => {
  let dir: string;
  let keysDir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'threshold-vapid-'));
    keysDir = join(dir, 'keys');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a matching P-256 pair on first start, owner-only, with no temp file left', () => {
    const keys = loadOrCreateVapidKeys(keysDir, SUBJECT);

    expect(keys.subject).toBe(SUBJECT);
    const pub = Buffer.from(keys.publicKey, 'base64url');
    expect(pub).toHaveLength(65);
    expect(pub[0]).toBe(0x04);
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(keys.privateKey, 'base64url'));
    expect(ecdh.getPublicKey().equals(pub)).toBe(true);

    const path = join(keysDir, VAPID_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(keysDir).mode & 0o777).toBe(0o700);
    expect(readdirSync(keysDir)).toEqual([VAPID_FILE]);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({
      format: 'threshold-vapid/v1',
      publicKey: keys.publicKey,
      privateKey: keys.privateKey,
    });
  });

  it('reuses the stored pair on later starts, with the subject of that start', () => {
    const first = loadOrCreateVapidKeys(keysDir, SUBJECT);
    const again = loadOrCreateVapidKeys(keysDir, 'https://home.example.org');
    expect(again).toEqual({ ...first, subject: 'https://home.example.org' });
  });

  it('stops with a clear error on a corrupt file and leaves the file as it was', () => {
    const path = join(keysDir, VAPID_FILE);
    const good = loadOrCreateVapidKeys(keysDir, SUBJECT);
    const other = loadOrCreateVapidKeys(join(dir, 'other'), SUBJECT);
    const cases: [string, string, RegExp][] = [
      ['truncated', '{"format":"threshold-vapid/v1","publicKey":"B', /corrupt/],
      ['not an object', '"hello"', /not a JSON object/],
      ['wrong format', JSON.stringify({ ...good, format: 'x' }), /unknown format/],
      [
        'short public key',
        JSON.stringify({ format: 'threshold-vapid/v1', ...good, publicKey: 'BAAA' }),
        /publicKey is not an uncompressed P-256 point/,
      ],
      [
        'bad characters',
        JSON.stringify({ format: 'threshold-vapid/v1', ...good, privateKey: 'a+b/' }),
        /privateKey is not base64url/,
      ],
      [
        'halves of two pairs',
        JSON.stringify({
          format: 'threshold-vapid/v1',
          publicKey: good.publicKey,
          privateKey: other.privateKey,
        }),
        /does not match/,
      ],
    ];
    for (const [what, content, message] of cases) {
      writeFileSync(path, content);
      expect(() => loadOrCreateVapidKeys(keysDir, SUBJECT), what).toThrow(message);
      expect(() => loadOrCreateVapidKeys(keysDir, SUBJECT), what).toThrow(
        /restore it from a backup/,
      );
      expect(readFileSync(path, 'utf8'), what).toBe(content);
    }
  });

  it('refuses a subject push services would refuse, before touching the keys folder', () => {
    for (const subject of ['owner@example.org', 'http://example.org', 'mailto:nobody', '']) {
      expect(() => loadOrCreateVapidKeys(keysDir, subject), subject).toThrow(/VAPID subject/);
    }
    expect(() => readdirSync(keysDir)).toThrow();
    expect(vapidSubjectProblem('mailto:ops@example.org')).toBeNull();
    expect(vapidSubjectProblem('https://home.example.org/contact')).toBeNull();
  });

  it('defaults the subject to a public https origin, and warns about local ones', () => {
    expect(defaultVapidSubject('https://home.example.org/app')).toBe('https://home.example.org');
    expect(defaultVapidSubject('http://home.example.org')).toBe(FALLBACK_VAPID_SUBJECT);
    expect(defaultVapidSubject('https://localhost:8443')).toBe(FALLBACK_VAPID_SUBJECT);
    expect(defaultVapidSubject('not a url')).toBe(FALLBACK_VAPID_SUBJECT);
    expect(defaultVapidSubject()).toBe(FALLBACK_VAPID_SUBJECT);

    expect(vapidSubjectWarning(FALLBACK_VAPID_SUBJECT)).toMatch(/Apple/);
    expect(vapidSubjectWarning('https://threshold.local')).toMatch(/local host/);
    expect(vapidSubjectWarning('mailto:ops@example.org')).toBeNull();
    expect(vapidSubjectWarning('https://home.example.org')).toBeNull();
  });
});

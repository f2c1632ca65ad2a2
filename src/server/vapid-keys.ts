/**
 * The server's VAPID key pair (RFC 8292): the key every Web Push message is signed with. Each
 * browser subscription is bound to its public half (the browser passes it to
 * `pushManager.subscribe` as `applicationServerKey`), so the pair is made once, on first start,
 * and kept for good in `<data>/keys/vapid.json` (mode 0600), beside the keys of ./keys.ts.
 *
 * A file that exists but does not hold a valid pair stops the start with an error instead of
 * being replaced: a new key would silently break every subscription (the push services refuse
 * messages signed by another key), and the operator should restore the file from a backup or
 * delete it knowingly.
 *
 * The subject is the contact the push services may use about our traffic (`mailto:` or
 * `https:`). It is not bound to subscriptions, so it comes from the configuration at each start
 * rather than from the file. Apple's push service refuses a subject whose host does not
 * resolve (such as `mailto:…@localhost`), so operators should set a real one; see
 * {@link defaultVapidSubject} and {@link vapidSubjectWarning}.
 */
import { ECDH, createECDH } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import webPush from 'web-push';

/** The file in the keys folder that holds the pair. */
export const VAPID_FILE = 'vapid.json';

/** The subject used when nothing better is known: fine for Chrome and Firefox, not for Safari. */
export const FALLBACK_VAPID_SUBJECT = 'mailto:owner@localhost';

/** The VAPID pair and subject, in the form `web-push` takes as `vapidDetails`. */
export interface VapidKeys {
  /** Uncompressed P-256 public key (65 bytes), base64url: the browser's `applicationServerKey`. */
  readonly publicKey: string;
  /** P-256 private key (32 bytes), base64url. Never leaves the server. */
  readonly privateKey: string;
  /** `mailto:` address or `https:` URL of whoever runs this server. */
  readonly subject: string;
}

/** What `vapid.json` holds. */
interface VapidFile {
  readonly format: 'threshold-vapid/v1';
  readonly publicKey: string;
  readonly privateKey: string;
  readonly createdAt: string;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The default subject for a server reachable at `publicOrigin` (e.g. `https://home.example.org`):
 * that origin when it is a public https one, else {@link FALLBACK_VAPID_SUBJECT}.
 */
export function defaultVapidSubject(publicOrigin?: string): string {
  if (publicOrigin === undefined) return FALLBACK_VAPID_SUBJECT;
  try {
    const url = new URL(publicOrigin);
    if (url.protocol === 'https:' && !isLocalHostname(url.hostname)) return url.origin;
  } catch {
    // Not a URL: fall back below.
  }
  return FALLBACK_VAPID_SUBJECT;
}

/**
 * Why `subject` is unusable (not a `mailto:` address or `https:` URL), or null. Push services
 * refuse such a token, so it is a startup error rather than a failure at every push.
 */
export function vapidSubjectProblem(subject: string): string | null {
  let url: URL;
  try {
    url = new URL(subject);
  } catch {
    return `VAPID subject "${subject}" is not a URL; use mailto:you@example.org or an https: URL`;
  }
  if (url.protocol === 'mailto:') {
    return /^[^@\s]+@[^@\s]+$/.test(url.pathname)
      ? null
      : `VAPID subject "${subject}" is not a mailto: address`;
  }
  if (url.protocol === 'https:') return null;
  return `VAPID subject "${subject}" must be a mailto: address or an https: URL`;
}

/**
 * A warning for a subject some push services refuse (a local host such as `localhost`: Apple
 * answers 403 BadJwtToken), or null when it looks fine.
 */
export function vapidSubjectWarning(subject: string): string | null {
  let host = '';
  try {
    const url = new URL(subject);
    host = url.protocol === 'mailto:' ? (url.pathname.split('@')[1] ?? '') : url.hostname;
  } catch {
    return null;
  }
  return isLocalHostname(host.toLowerCase())
    ? `VAPID subject "${subject}" names a local host; Apple's push service (Safari, iOS) ` +
        'refuses it. Set a real contact address or the server’s public https: URL.'
    : null;
}

function isLocalHostname(host: string): boolean {
  return (
    host === '' ||
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host.endsWith('.local') ||
    host.endsWith('.invalid') ||
    host === '127.0.0.1' ||
    host === '[::1]'
  );
}

/**
 * Loads the VAPID pair from `<keysDir>/vapid.json`, creating it (atomically, mode 0600) on
 * first start. Throws, naming the file, when the subject is unusable or the file is corrupt.
 */
export function loadOrCreateVapidKeys(keysDir: string, subject: string): VapidKeys {
  const subjectProblem = vapidSubjectProblem(subject);
  if (subjectProblem !== null) throw new Error(subjectProblem);
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  const path = join(keysDir, VAPID_FILE);
  if (!existsSync(path)) createVapidFile(path);
  const { publicKey, privateKey } = readVapidFile(path);
  return { publicKey, privateKey, subject };
}

function createVapidFile(path: string): void {
  const { publicKey, privateKey } = webPush.generateVAPIDKeys();
  const file: VapidFile = {
    format: 'threshold-vapid/v1',
    publicKey,
    privateKey,
    createdAt: new Date().toISOString(),
  };
  // Written beside the target and renamed over nothing: a crash leaves either no vapid.json
  // (a new pair next start, no subscription can exist yet) or a complete one, never half.
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
}

function readVapidFile(path: string): { publicKey: string; privateKey: string } {
  const corrupt = (why: string): Error =>
    new Error(
      `${path} is corrupt (${why}). It holds the key every browser's push subscription is ` +
        'bound to, so it is not replaced automatically: restore it from a backup, or delete ' +
        'it to make a new key (every browser must then turn notifications on again).',
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw corrupt(err instanceof Error ? err.message : String(err));
  }
  if (typeof parsed !== 'object' || parsed === null) throw corrupt('not a JSON object');
  const { format, publicKey, privateKey } = parsed as Record<string, unknown>;
  if (format !== 'threshold-vapid/v1') throw corrupt('unknown format');
  if (typeof publicKey !== 'string' || !B64URL.test(publicKey)) {
    throw corrupt('publicKey is not base64url');
  }
  if (typeof privateKey !== 'string' || !B64URL.test(privateKey)) {
    throw corrupt('privateKey is not base64url');
  }
  const pub = Buffer.from(publicKey, 'base64url');
  const priv = Buffer.from(privateKey, 'base64url');
  if (pub.length !== 65 || pub[0] !== 0x04) {
    throw corrupt('publicKey is not an uncompressed P-256 point');
  }
  if (priv.length !== 32) throw corrupt('privateKey is not 32 bytes');
  // The halves must belong together, or every push would carry a signature no one can check.
  let derived: Buffer;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(priv);
    derived = ecdh.getPublicKey();
    ECDH.convertKey(pub, 'prime256v1');
  } catch (err) {
    throw corrupt(err instanceof Error ? err.message : String(err));
  }
  if (!derived.equals(pub)) throw corrupt('publicKey does not match privateKey');
  return { publicKey, privateKey };
}

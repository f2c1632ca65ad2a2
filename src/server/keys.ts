/**
 * The server's secrets, kept in `<data>/keys/` with owner-only permissions and created on
 * first start:
 *
 * - `master.key`: 32 random bytes from which every device key is derived (device-auth.ts).
 * - `audit-ed25519.pem`: the private key that signs audit checkpoints; its public half is
 *   written beside it as `audit-ed25519.pub` (base64url, raw 32 bytes) for owners who verify
 *   an exported log elsewhere.
 * - `grants-ed25519.pem`: the private key that signs the offline grant lists home hubs keep
 *   (grant-list.ts); its public half is written beside it as `grants-ed25519.pub` (base64url,
 *   raw 32 bytes), for configuring hubs. A key of its own, not the audit key: one purpose per
 *   key, so neither signature can ever pass for the other, and each can be replaced alone.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  hash,
} from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SignatureVerifier, Signer, Sha256Hex } from '../core/crypto-ports.ts';

/** The server's keys, as {@link loadOrCreateKeys} loads them. */
export interface ServerKeys {
  readonly masterKey: Buffer;
  readonly auditSigner: Signer;
  /** Signs the offline grant lists; `publicKey` is what a home hub is configured with. */
  readonly grantSigner: Signer;
}

function writeSecret(path: string, data: string | Buffer): void {
  writeFileSync(path, data, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

/** Loads the keys from `<dataDir>/keys`, creating any that are missing. */
export function loadOrCreateKeys(dataDir: string): ServerKeys {
  const dir = join(dataDir, 'keys');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const masterPath = join(dir, 'master.key');
  if (!existsSync(masterPath)) writeSecret(masterPath, randomBytes(32));
  const masterKey = readFileSync(masterPath);
  if (masterKey.length !== 32) throw new Error(`${masterPath} must hold exactly 32 bytes`);

  const auditSigner = loadOrCreateEd25519(dir, 'audit-ed25519');
  const grantSigner = loadOrCreateEd25519(dir, 'grants-ed25519');
  return { masterKey, auditSigner, grantSigner };
}

/**
 * The Ed25519 key `<dir>/<name>.pem`, created if missing, with its public half written as
 * `<dir>/<name>.pub` (base64url of the raw 32 bytes, then a newline) if that is missing.
 */
function loadOrCreateEd25519(dir: string, name: string): Signer {
  const pemPath = join(dir, `${name}.pem`);
  if (!existsSync(pemPath)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeSecret(pemPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  }
  const signer = ed25519Signer(readFileSync(pemPath, 'utf8'));
  const pubPath = join(dir, `${name}.pub`);
  if (!existsSync(pubPath)) writeFileSync(pubPath, `${signer.publicKey}\n`);
  return signer;
}

/** An Ed25519 {@link Signer} from a PKCS#8 PEM private key. */
export function ed25519Signer(pem: string): Signer {
  const key = createPrivateKey(pem);
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  return {
    publicKey: jwk.x,
    sign: (message: string) => sign(null, Buffer.from(message), key).toString('base64url'),
  };
}

/** Verifies an Ed25519 signature given the raw public key (base64url). */
export const verifyEd25519: SignatureVerifier = (message, signature, publicKey) => {
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: publicKey },
      format: 'jwk',
    });
    return verify(null, Buffer.from(message), key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
};

/** SHA-256 of a UTF-8 string, hex. */
// One call, no Hash object per entry: verifying a million entries hashes a million times.
export const sha256Hex: Sha256Hex = (data) => hash('sha256', data, 'hex');

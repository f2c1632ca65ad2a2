/**
 * Offline grant lists for tests, signed the way the control plane signs them
 * (src/protocol/grant-list.ts) with an Ed25519 key pair made for the test: the hub's side is
 * tested without a control plane, and with a key the test controls (a list signed with another
 * key must be refused).
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import type { Signer } from '../src/core/crypto-ports.ts';
import {
  signGrantList,
  type GrantListMessage,
  type SignedGrantListMessage,
} from '../src/protocol/grant-list.ts';

/** A control plane's grant-list key, as far as a test needs it. */
export interface TestGrantSigner extends Signer {
  /** Signs a list made of `fields` over {@link grantList}'s defaults. */
  list(
    fields: Partial<GrantListMessage> & Pick<GrantListMessage, 'version'>,
  ): SignedGrantListMessage;
}

/** A fresh Ed25519 key pair as a {@link Signer} (the pattern of the server's `ed25519Signer`). */
export function testGrantSigner(defaults: { homeId: string; lockId: string }): TestGrantSigner {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  const signer: Signer = {
    publicKey: jwk.x,
    sign: (message) => sign(null, Buffer.from(message), privateKey).toString('base64url'),
  };
  return {
    ...signer,
    list: (fields) => signGrantList(grantList({ ...defaults, ...fields }), signer),
  };
}

/** A list with nothing in it, issued at `issuedAtMs` (default 0) with a horizon a day later. */
export function grantList(
  fields: Partial<GrantListMessage> & Pick<GrantListMessage, 'homeId' | 'lockId' | 'version'>,
): GrantListMessage {
  const issuedAtMs = fields.issuedAtMs ?? 0;
  return {
    format: 1,
    issuedAtMs,
    horizonMs: issuedAtMs + 24 * 60 * 60_000,
    pins: [],
    deliveries: [],
    guests: [],
    ...fields,
  };
}

/** The bytes of a signed list as a broker delivers them. */
export function payloadOf(signed: SignedGrantListMessage): Buffer {
  return Buffer.from(JSON.stringify(signed));
}

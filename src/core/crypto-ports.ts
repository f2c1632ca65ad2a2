/**
 * Cryptography arrives in the core through these ports, so the core stays free of I/O and of
 * Node's modules. The server passes implementations backed by node:crypto.
 */

/** SHA-256 of a UTF-8 string, lower-case hex. */
export type Sha256Hex = (data: string) => string;

/** Signs bytes (Ed25519 in production) and names the public key that verifies them. */
export interface Signer {
  /** Base64url signature of the UTF-8 message. */
  sign(message: string): string;
  /** The public key, base64url (raw 32 bytes for Ed25519). */
  readonly publicKey: string;
}

/** Verifies a signature made by a {@link Signer}. */
export type SignatureVerifier = (message: string, signature: string, publicKey: string) => boolean;

/**
 * Test support: a passkey authenticator in software, for tests that speak WebAuthn to the
 * server without a browser: a P-256 key from node:crypto, authenticator data and attestation
 * objects built byte by byte, assertions signed with ES256, and switches to tamper with any
 * part of a ceremony.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

export type CborValue = Parameters<typeof isoCBOR.encode>[0];

export const UP = 0x01;
export const UV = 0x04;
export const BE = 0x08;
export const BS = 0x10;
export const AT = 0x40;

export const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
export const sha256 = (data: string | Uint8Array): Buffer =>
  createHash('sha256').update(data).digest();
export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
export const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** What a ceremony may do differently from an honest browser and authenticator. */
export interface Tamper {
  readonly origin?: string;
  readonly rpId?: string;
  readonly type?: string;
  readonly flags?: number;
  /** The signature counter to report (default: the authenticator's next value). */
  readonly counter?: number;
  readonly userHandle?: string;
  /** Sign with another key than the registered one. */
  readonly signWith?: KeyObject;
}

export interface CreationOptions {
  readonly challenge: string;
  readonly rp?: { readonly id: string; readonly name: string };
  readonly user: { readonly id: string; readonly name?: string; readonly displayName?: string };
  readonly excludeCredentials?: readonly { readonly id: string }[];
  readonly authenticatorSelection?: Record<string, unknown>;
  readonly attestation?: string;
}

export interface RequestOptions {
  readonly challenge: string;
  readonly rpId?: string;
  readonly allowCredentials?: readonly unknown[];
  readonly userVerification?: string;
}

/**
 * A passkey authenticator in software: one discoverable ES256 credential, attestation "none",
 * user presence and verification always given, and a signature counter that counts up by one
 * per use (or stays 0 when `counting` is false, as synced passkeys do).
 */
export class SoftAuthenticator {
  readonly credentialId = randomBytes(16);
  readonly keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  counter = 0;
  userHandle = b64u(randomBytes(32));

  constructor(
    readonly rpId: string,
    readonly origin: string,
    readonly counting = true,
  ) {}

  get id(): string {
    return b64u(this.credentialId);
  }

  /** The public key as COSE_Key (EC2, ES256, P-256). */
  coseKey(): Uint8Array {
    const jwk = this.keys.publicKey.export({ format: 'jwk' });
    const key: CborValue = new Map<string | number, CborValue>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, Buffer.from(String(jwk.x), 'base64url')],
      [-3, Buffer.from(String(jwk.y), 'base64url')],
    ]);
    return isoCBOR.encode(key);
  }

  private authData(rpId: string, flags: number, counter: number, attested: boolean): Buffer {
    const parts = [sha256(rpId), Buffer.from([flags]), u32(counter)];
    if (attested) {
      parts.push(Buffer.alloc(16), u16(this.credentialId.length), this.credentialId);
      parts.push(Buffer.from(this.coseKey()));
    }
    return Buffer.concat(parts);
  }

  private clientData(type: string, challenge: string, origin: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }

  /** `navigator.credentials.create()` for these options, as RegistrationResponseJSON. */
  create(options: CreationOptions, t: Tamper = {}) {
    this.userHandle = options.user.id;
    const clientDataJSON = this.clientData(
      t.type ?? 'webauthn.create',
      options.challenge,
      t.origin ?? this.origin,
    );
    const authData = this.authData(
      t.rpId ?? this.rpId,
      t.flags ?? UP | UV | BE | BS | AT,
      t.counter ?? 0,
      true,
    );
    const attestationObject = isoCBOR.encode(
      new Map<string | number, CborValue>([
        ['fmt', 'none'],
        ['attStmt', new Map<string | number, CborValue>()],
        ['authData', authData],
      ]),
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64u(clientDataJSON),
        attestationObject: b64u(attestationObject),
        transports: ['internal', 'hybrid'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }

  /** `navigator.credentials.get()` for these options, as AuthenticationResponseJSON. */
  get(options: RequestOptions, t: Tamper = {}) {
    if (t.counter !== undefined) this.counter = Math.max(this.counter, t.counter);
    else if (this.counting) this.counter += 1;
    const clientDataJSON = this.clientData(
      t.type ?? 'webauthn.get',
      options.challenge,
      t.origin ?? this.origin,
    );
    const authData = this.authData(
      t.rpId ?? this.rpId,
      t.flags ?? UP | UV | BE | BS,
      t.counter ?? this.counter,
      false,
    );
    const signature = sign(
      'sha256',
      Buffer.concat([authData, sha256(clientDataJSON)]),
      t.signWith ?? this.keys.privateKey,
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64u(clientDataJSON),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        userHandle: t.userHandle ?? this.userHandle,
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }
}

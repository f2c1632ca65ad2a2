/**
 * Passkeys (WebAuthn): a signed-in principal registers a discoverable credential, and later
 * signs in with it alone — no user name, no password.
 *
 * Challenges are random, single-use and short-lived, and kept in memory only: a challenge is
 * taken out of its book before the response is checked, so a replayed, failed or late response
 * can never be tried twice. The books have a fixed size, because anyone may ask for sign-in
 * options; a flood evicts the oldest outstanding challenge instead of growing memory.
 *
 * Only public material is stored (the credential's public key and counter); nothing here is
 * secret enough to sign in with.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { COSEALG, isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Clock } from '../core/clock.ts';
import { ok, problem, refuse, type ErrorCode, type Problem, type Result } from '../core/errors.ts';
import type { Principal } from '../core/model.ts';
import type { PasskeyView } from '../protocol/views.ts';
import { isUniqueViolation, type Store } from '../store/index.ts';
import type { Passkey, PasskeyRepository } from '../store/index.ts';

/** A challenge is accepted for this long after its options were issued, ms. */
export const CHALLENGE_TTL_MS = 5 * 60 * 1000;

/** At most this many challenges of each kind wait for an answer; older ones are evicted. */
export const MAX_OUTSTANDING_CHALLENGES = 1000;

/** A principal may register at most this many passkeys. */
export const MAX_PASSKEYS_PER_PRINCIPAL = 20;

/** How long the browser may take to create or use a credential, ms (less than the TTL). */
const CEREMONY_TIMEOUT_MS = 3 * 60 * 1000;

/**
 * ES256, EdDSA and RS256 cover every passkey provider in use. Post-quantum algorithms are left
 * out on purpose: the library accepts them only where the runtime can verify them, and a passkey
 * that registers on one server but cannot sign in on another would lock its owner out.
 */
const ALGORITHMS = [COSEALG.ES256, COSEALG.EdDSA, COSEALG.RS256];

/** Transports as WebAuthn names them; anything else a client claims is dropped. */
const KNOWN_TRANSPORTS: readonly string[] = [
  'ble',
  'cable',
  'hybrid',
  'internal',
  'nfc',
  'smart-card',
  'usb',
];

/**
 * Why a passkey operation was refused. Each will be an error code of its own in the catalogue;
 * until then each maps to an existing code ({@link PASSKEY_REFUSALS}) and travels in the
 * answer's `detail.reason`, so clients can already tell them apart.
 */
export type PasskeyRefusal =
  /** The challenge id is unknown, already used or expired: ask for new options. */
  | 'passkey.challenge-invalid'
  /** The registration response does not verify (origin, RP id, challenge, flags, format). */
  | 'passkey.registration-invalid'
  /** This credential is already registered (to this or another principal). */
  | 'passkey.already-registered'
  /** The principal has {@link MAX_PASSKEYS_PER_PRINCIPAL} passkeys already. */
  | 'passkey.limit-reached'
  /** No passkey with this id belongs to the principal. */
  | 'passkey.not-found'
  /** The sign-in response names a credential that is not registered here. */
  | 'passkey.unknown-credential'
  /** The sign-in response does not verify (signature, origin, RP id, challenge, flags). */
  | 'passkey.sign-in-failed'
  /** The signature counter did not move forward: the authenticator may have been cloned. */
  | 'passkey.counter-regressed';

/** Code, HTTP status (via the code) and message of each refusal, until they get codes of their own. */
export const PASSKEY_REFUSALS: Readonly<
  Record<PasskeyRefusal, { readonly code: ErrorCode; readonly message: string }>
> = {
  'passkey.challenge-invalid': {
    code: 'passkey.challenge-invalid',
    message: 'This passkey request is unknown, used or expired; start again.',
  },
  'passkey.registration-invalid': {
    code: 'passkey.registration-invalid',
    message: 'The passkey could not be verified.',
  },
  'passkey.already-registered': {
    code: 'passkey.already-registered',
    message: 'This passkey is already registered.',
  },
  'passkey.limit-reached': {
    code: 'passkey.limit-reached',
    message: `At most ${MAX_PASSKEYS_PER_PRINCIPAL} passkeys per account; remove one first.`,
  },
  'passkey.not-found': { code: 'passkey.not-found', message: 'No such passkey.' },
  'passkey.unknown-credential': {
    code: 'passkey.unknown-credential',
    message: 'This passkey is not registered here.',
  },
  'passkey.sign-in-failed': {
    code: 'passkey.sign-in-failed',
    message: 'The passkey could not be verified.',
  },
  'passkey.counter-regressed': {
    code: 'passkey.counter-regressed',
    message: 'This passkey’s counter went backwards; it may have been copied. Sign in otherwise.',
  },
};

/** The {@link Problem} of a refusal; `detail.reason` names it. */
export function passkeyProblem(reason: PasskeyRefusal, cause?: string): Problem {
  const r = PASSKEY_REFUSALS[reason];
  return problem(r.code, r.message, {
    reason,
    ...(cause === undefined ? {} : { cause: cause.slice(0, 200) }),
  });
}

/** The reason of a problem made by {@link passkeyProblem}, or null. */
export function refusalOf(p: Problem): PasskeyRefusal | null {
  const reason = p.detail?.reason;
  return typeof reason === 'string' && reason in PASSKEY_REFUSALS
    ? (reason as PasskeyRefusal)
    : null;
}

/** Who the WebAuthn ceremonies are for: the RP id and the exact origins pages run on. */
export interface RelyingParty {
  /** A registrable domain name, never an IP address (WebAuthn forbids those). */
  readonly rpId: string;
  /** Exact origins (scheme, host, port) allowed in clientDataJSON. */
  readonly origins: readonly string[];
}

/**
 * The relying party of a server reached at `http://localhost:<port>`: RP id `localhost`, the
 * one host name browsers treat as secure without HTTPS. `127.0.0.1` cannot be used: an IP
 * address is never a valid RP id.
 */
export function localRelyingParty(port: number): RelyingParty {
  return { rpId: 'localhost', origins: [`http://localhost:${port}`] };
}

/**
 * The relying party of a server published at `publicUrl` (e.g. `https://door.example.com`):
 * RP id = its host name, origin = its origin. Throws a RangeError for a URL that cannot be an
 * RP: not https (except localhost), an IP address, credentials, a path other than `/`.
 */
export function relyingPartyFromUrl(publicUrl: string): RelyingParty {
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    throw new RangeError(`not a URL: ${publicUrl}`);
  }
  const host = url.hostname;
  if (host === '' || /^[\d.]+$/.test(host) || host.startsWith('[')) {
    throw new RangeError(`passkeys need a domain name, not an IP address: ${publicUrl}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && host === 'localhost')) {
    throw new RangeError(`passkeys need https (or http://localhost): ${publicUrl}`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new RangeError(`the public URL must be a plain origin: ${publicUrl}`);
  }
  if (url.pathname !== '/') {
    throw new RangeError(`the public URL must not have a path: ${publicUrl}`);
  }
  return { rpId: host, origins: [url.origin] };
}

/** What {@link Passkeys} needs. */
export interface PasskeysOptions {
  readonly store: Store;
  readonly clock: Clock;
  /** See {@link RelyingParty.rpId}. */
  readonly rpId: string;
  /** Shown by the browser and the authenticator ("Threshold"). */
  readonly rpName: string;
  /**
   * See {@link RelyingParty.origins}; at least one. A function is asked at each ceremony, for a
   * server that learns its port only once it listens (port 0).
   */
  readonly origins: readonly string[] | (() => readonly string[]);
  /** Default {@link CHALLENGE_TTL_MS}. */
  readonly challengeTtlMs?: number;
  /** Default {@link MAX_OUTSTANDING_CHALLENGES}, per kind (registration, sign-in). */
  readonly maxOutstandingChallenges?: number;
  /**
   * Refuse responses without the user-verified flag (default true). A passkey replaces the
   * password of someone who can unlock a front door, so possession of the authenticator alone
   * (a stolen security key without a PIN) is not enough.
   */
  readonly requireUserVerification?: boolean;
}

/** The outcome of an accepted passkey sign-in. */
export interface PasskeySignIn {
  readonly principal: Principal;
  /** The credential that signed, after its counter and last use were recorded. */
  readonly passkey: Passkey;
}

/** A sign-in session opened for a principal, as `POST /api/auth/sign-in` answers it. */
export interface OpenedSession {
  readonly principal: Principal;
  /** The bearer token (also the cookie value); only its hash is stored. */
  readonly token: string;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

/** What the passkey list shows of a passkey: no key material. */
export function passkeyView(p: Passkey): PasskeyView {
  return {
    id: p.id,
    name: p.name,
    createdAt: p.createdAt,
    lastUsedAt: p.lastUsedAt,
    backedUp: p.backedUp,
  };
}

/**
 * Outstanding challenges of one kind, by key, oldest first. With one TTL for all and a clock
 * that does not go back, insertion order is expiry order, so sweeping stops at the first live
 * entry and eviction takes the oldest.
 */
class ChallengeBook {
  private readonly entries = new Map<string, { challenge: string; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}

  put(key: string, challenge: string): void {
    this.sweep();
    // A second request under the same key replaces the first, and moves to the back.
    this.entries.delete(key);
    while (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { challenge, expiresAt: this.clock.now() + this.ttlMs });
  }

  /** Removes and returns the live challenge under `key`, or null (unknown, used, expired). */
  take(key: string): string | null {
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    this.entries.delete(key);
    return entry.expiresAt > this.clock.now() ? entry.challenge : null;
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}

/** Registration, listing, removal of passkeys, and sign-in with them. */
export class Passkeys {
  private readonly repo: PasskeyRepository;
  private readonly registrations: ChallengeBook;
  private readonly signIns: ChallengeBook;
  private readonly requireUserVerification: boolean;

  constructor(private readonly options: PasskeysOptions) {
    if (Array.isArray(options.origins) && options.origins.length === 0) {
      throw new RangeError('Passkeys need at least one origin.');
    }
    this.repo = options.store.passkeys;
    const ttl = options.challengeTtlMs ?? CHALLENGE_TTL_MS;
    const max = options.maxOutstandingChallenges ?? MAX_OUTSTANDING_CHALLENGES;
    this.registrations = new ChallengeBook(options.clock, ttl, max);
    this.signIns = new ChallengeBook(options.clock, ttl, max);
    this.requireUserVerification = options.requireUserVerification ?? true;
  }

  /** How many challenges wait for an answer: registrations plus sign-ins. */
  outstandingChallenges(): number {
    return this.registrations.size + this.signIns.size;
  }

  private origins(): string[] {
    const { origins } = this.options;
    const list = typeof origins === 'function' ? origins() : origins;
    // An empty list would make the verifier accept nothing, with a confusing message.
    if (list.length === 0) throw new Error('Passkeys have no origin configured.');
    return [...list];
  }

  /** The principal's passkeys, oldest first. */
  async list(principal: Principal): Promise<PasskeyView[]> {
    return (await this.repo.listForPrincipal(principal.id)).map(passkeyView);
  }

  /**
   * Options for `navigator.credentials.create()`: a discoverable credential (so sign-in needs no
   * user name), user verification preferred, no attestation, and the principal's existing
   * passkeys excluded. Replaces any registration the principal had started before.
   */
  async registrationOptions(principal: Principal): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await this.repo.listForPrincipal(principal.id);
    const options = await generateRegistrationOptions({
      rpName: this.options.rpName,
      rpID: this.options.rpId,
      userName: principal.displayName,
      userDisplayName: principal.displayName,
      userID: userHandleBytes(principal.id),
      challenge: randomBytes(32),
      timeout: CEREMONY_TIMEOUT_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((p) => ({ id: p.id, transports: [...p.transports] })),
      authenticatorSelection: {
        residentKey: 'required',
        // Asked for exactly as it is checked: a passkey replaces the password of someone who
        // can unlock the front door.
        userVerification: this.requireUserVerification ? 'required' : 'preferred',
      },
      supportedAlgorithmIDs: ALGORITHMS,
    });
    this.registrations.put(principal.id, options.challenge);
    return options;
  }

  /**
   * Checks the browser's answer to the principal's latest registration options and stores the
   * new passkey under `name`. The challenge is used up whatever the outcome.
   */
  async verifyRegistration(
    principal: Principal,
    name: string,
    response: RegistrationResponseJSON,
  ): Promise<Result<Passkey>> {
    const challenge = this.registrations.take(principal.id);
    if (challenge === null) return refuse(passkeyProblem('passkey.challenge-invalid'));
    const cleanName = name.trim();
    if (cleanName.length === 0) {
      return refuse(problem('request.invalid', 'Give the passkey a name.'));
    }

    let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.origins(),
        expectedRPID: this.options.rpId,
        requireUserPresence: true,
        requireUserVerification: this.requireUserVerification,
        supportedAlgorithmIDs: ALGORITHMS,
      });
    } catch (error) {
      return refuse(passkeyProblem('passkey.registration-invalid', messageOf(error)));
    }
    if (!verified.verified) return refuse(passkeyProblem('passkey.registration-invalid'));
    const info = verified.registrationInfo;

    if ((await this.repo.listForPrincipal(principal.id)).length >= MAX_PASSKEYS_PER_PRINCIPAL) {
      return refuse(passkeyProblem('passkey.limit-reached'));
    }
    if ((await this.repo.get(info.credential.id)) !== null) {
      return refuse(passkeyProblem('passkey.already-registered'));
    }
    const passkey: Passkey = {
      // The id the authenticator put in its data, not the one the client claims alongside.
      id: info.credential.id,
      principalId: principal.id,
      name: cleanName,
      publicKey: isoBase64URL.fromBuffer(info.credential.publicKey),
      counter: info.credential.counter,
      transports: cleanTransports(response.response.transports),
      deviceType: info.credentialDeviceType,
      backedUp: info.credentialBackedUp,
      createdAt: this.options.clock.now(),
      lastUsedAt: null,
    };
    try {
      // The count above answers most callers early; this one, taken with the insert under a
      // lock per principal, is the one that holds when registrations race each other.
      if (!(await this.repo.addWithin(passkey, MAX_PASSKEYS_PER_PRINCIPAL))) {
        return refuse(passkeyProblem('passkey.limit-reached'));
      }
    } catch (error) {
      // Two registrations of the same credential racing each other.
      if (isUniqueViolation(error)) return refuse(passkeyProblem('passkey.already-registered'));
      throw error;
    }
    return ok(passkey);
  }

  /** Deletes one of the principal's passkeys; someone else's is "not found", like a missing one. */
  async remove(principal: Principal, passkeyId: string): Promise<Result<void>> {
    return (await this.repo.remove(passkeyId, principal.id))
      ? ok(undefined)
      : refuse(passkeyProblem('passkey.not-found'));
  }

  /**
   * Options for `navigator.credentials.get()` with no credential list (the browser offers the
   * discoverable passkeys it has for this RP), and the id to send the answer back with.
   */
  async authenticationOptions(): Promise<{
    options: PublicKeyCredentialRequestOptionsJSON;
    challengeId: string;
  }> {
    const options = await generateAuthenticationOptions({
      rpID: this.options.rpId,
      allowCredentials: [],
      challenge: randomBytes(32),
      timeout: CEREMONY_TIMEOUT_MS,
      userVerification: this.requireUserVerification ? 'required' : 'preferred',
    });
    const challengeId = randomBytes(16).toString('base64url');
    this.signIns.put(challengeId, options.challenge);
    return { options, challengeId };
  }

  /**
   * Checks a sign-in answer to the options issued under `challengeId`: challenge, origin, RP
   * id, flags, signature with the stored public key, and a counter that moves forward. On
   * success records the new counter and the time, and returns whose passkey it is. The
   * challenge is used up whatever the outcome.
   */
  async verifyAuthentication(
    challengeId: string,
    response: AuthenticationResponseJSON,
  ): Promise<Result<PasskeySignIn>> {
    const challenge = this.signIns.take(challengeId);
    if (challenge === null) return refuse(passkeyProblem('passkey.challenge-invalid'));
    const stored = await this.repo.get(response.id);
    if (stored === null) return refuse(passkeyProblem('passkey.unknown-credential'));

    let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.origins(),
        expectedRPID: this.options.rpId,
        // Counter 0 turns the library's own counter check off: ours below runs only after the
        // signature is verified, so a forged answer cannot pass itself off as a cloned key.
        credential: {
          id: stored.id,
          publicKey: isoBase64URL.toBuffer(stored.publicKey),
          counter: 0,
          transports: [...stored.transports],
        },
        requireUserVerification: this.requireUserVerification,
      });
    } catch (error) {
      return refuse(passkeyProblem('passkey.sign-in-failed', messageOf(error)));
    }
    if (!verified.verified) return refuse(passkeyProblem('passkey.sign-in-failed'));

    // A discoverable credential carries the user handle it was created with; it must be the
    // handle of the principal the credential is registered to.
    const handle = response.response.userHandle;
    if (handle !== undefined && handle !== userHandleOf(stored.principalId)) {
      return refuse(passkeyProblem('passkey.sign-in-failed', 'user handle does not match'));
    }

    const { newCounter } = verified.authenticationInfo;
    const counted = newCounter > 0 || stored.counter > 0;
    if (counted && newCounter <= stored.counter) {
      return refuse(passkeyProblem('passkey.counter-regressed'));
    }
    const principal = await this.options.store.principals.get(stored.principalId);
    if (principal === null) return refuse(passkeyProblem('passkey.unknown-credential'));
    const now = this.options.clock.now();
    // Conditional on the counter still being below the new one: a racing sign-in that got
    // there first with the same counter wins, this one is a replay.
    if (!(await this.repo.updateCounter(stored.id, newCounter, now))) {
      return refuse(passkeyProblem('passkey.counter-regressed'));
    }
    return ok({ principal, passkey: { ...stored, counter: newCounter, lastUsedAt: now } });
  }
}

/**
 * The WebAuthn user handle of a principal: a hash of its id, so it has a fixed length (at most
 * 64 bytes are allowed) and the authenticator learns nothing it could show.
 */
function userHandleBytes(principalId: string): Uint8Array<ArrayBuffer> {
  const digest = createHash('sha256').update('threshold-passkey-user:').update(principalId);
  return new Uint8Array(digest.digest());
}

/** {@link userHandleBytes} as base64url, as responses carry it. */
function userHandleOf(principalId: string): string {
  return Buffer.from(userHandleBytes(principalId)).toString('base64url');
}

function cleanTransports(claimed: readonly string[] | undefined): string[] {
  if (claimed === undefined) return [];
  return KNOWN_TRANSPORTS.filter((t) => claimed.includes(t));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

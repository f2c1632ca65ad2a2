/**
 * Authentication: argon2id password hashes, sign-in sessions and carrier API keys.
 *
 * Sign-in tokens and API keys are 256-bit random values shown once; the store keeps only their
 * SHA-256, so a copy of the database lets nobody sign in.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import type { Clock } from '../core/clock.ts';
import { problem, refuse, ok, ThresholdError, type Result } from '../core/errors.ts';
import type { Principal } from '../core/model.ts';
import type { Store } from '../store/index.ts';

/** OWASP's argon2id recommendation (m=19 MiB, t=2, p=1). */
const ARGON2_OPTIONS = {
  // Algorithm.Argon2id: the enum is an ambient const enum, unreadable under verbatimModuleSyntax.
  algorithm: 2 as const,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** A sign-in lasts this long, ms. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** Prefix of carrier API keys, so a leaked key is recognisable in logs and scanners. */
export const API_KEY_PREFIX = 'thk_';

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Characters of a key after {@link API_KEY_PREFIX} kept to tell keys apart in lists. */
export const API_KEY_DISPLAY_CHARS = 8;

/** What a new API key is called, may do, and who made it. */
export interface NewApiKeyOptions {
  /** A label the carrier chose; default "API key". */
  readonly name?: string;
  /** What the key may do; default every scope. */
  readonly scopes?: readonly string[];
  /** The admin's principal id or `apikey:<id>` of the key that made it. */
  readonly createdBy?: string;
}

/**
 * A fresh API key, not yet stored: 256 random bits after {@link API_KEY_PREFIX}, a new key id,
 * and the characters kept to tell it apart. Store only `tokenHash(key)`.
 */
export function mintApiKey(): { id: string; key: string; prefix: string } {
  const secret = randomBytes(32).toString('base64url');
  return {
    id: `key-${randomBytes(6).toString('hex')}`,
    key: `${API_KEY_PREFIX}${secret}`,
    prefix: secret.slice(0, API_KEY_DISPLAY_CHARS),
  };
}

/** A password hash of a password nobody has, so unknown users cost as much as known ones. */
let dummyHash: Promise<string> | null = null;

export class Authenticator {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Checks a user name and password; on success opens a sign-in session. */
  async signIn(
    username: string,
    password: string,
  ): Promise<Result<{ principal: Principal; token: string; expiresAt: number }>> {
    const found = await this.store.principals.getByUsername(username);
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    const stored = found?.passwordHash ?? (await dummyHash);
    const good = await verify(stored, password).catch(() => false);
    if (!found || !good) return refuse(problem('auth.invalid-credentials'));
    // A removed member's password is refused like a wrong one.
    if (await this.store.principals.isDisabled(found.principal.id))
      return refuse(problem('auth.invalid-credentials'));
    return ok(await this.openSession(found.principal));
  }

  /**
   * Opens a sign-in session for a principal who has proven who they are (a password, a
   * passkey): a 256-bit random token, stored only as its SHA-256, valid for SESSION_TTL_MS.
   */
  async openSession(
    principal: Principal,
  ): Promise<{ principal: Principal; token: string; expiresAt: number }> {
    // Whatever proved who they are (a passkey too), a disabled principal gets no session.
    if (await this.store.principals.isDisabled(principal.id))
      throw new ThresholdError('auth.invalid-credentials');
    const token = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const expiresAt = now + SESSION_TTL_MS;
    await this.store.principals.createAuthSession({
      tokenHash: tokenHash(token),
      principalId: principal.id,
      createdAt: now,
      expiresAt,
    });
    return { principal, token, expiresAt };
  }

  /** The principal a sign-in token belongs to, or why not. */
  async principalForToken(token: string): Promise<Result<Principal>> {
    const s = await this.store.principals.getAuthSession(tokenHash(token));
    if (!s) return refuse(problem('auth.required'));
    if (s.expiresAt <= this.clock.now()) {
      await this.store.principals.deleteAuthSession(tokenHash(token));
      return refuse(problem('auth.session-expired'));
    }
    const p = await this.store.principals.get(s.principalId);
    if (!p || (await this.store.principals.isDisabled(p.id)))
      return refuse(problem('auth.required'));
    return ok(p);
  }

  async signOut(token: string): Promise<void> {
    await this.store.principals.deleteAuthSession(tokenHash(token));
  }

  /**
   * Creates an API key for a carrier; the key itself is returned once and never stored. Without
   * `scopes` the key holds every scope (as keys made before scopes did); the caller checks that
   * whoever asks may grant the scopes given.
   */
  async createApiKey(
    carrierId: string,
    opts: NewApiKeyOptions = {},
  ): Promise<{ id: string; key: string; prefix: string }> {
    const { id, key, prefix } = mintApiKey();
    await this.store.principals.createApiKey({
      id,
      carrierId,
      keyHash: tokenHash(key),
      createdAt: this.clock.now(),
      prefix,
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(opts.scopes === undefined ? {} : { scopes: opts.scopes }),
      ...(opts.createdBy === undefined ? {} : { createdBy: opts.createdBy }),
    });
    return { id, key, prefix };
  }

  /**
   * Rotates a working key: a new key with the same name and scopes, and the old one revoked in
   * the same transaction (its `replacedBy` names the new one), so there is no moment with both
   * or neither. Null when the old key is unknown or revoked already. The new key is returned
   * once.
   */
  async rotateApiKey(
    keyId: string,
    createdBy: string,
  ): Promise<{ id: string; key: string; prefix: string } | null> {
    const old = await this.store.principals.getApiKey(keyId);
    if (!old || old.revokedAt !== null) return null;
    const { id, key, prefix } = mintApiKey();
    const replaced = await this.store.principals.replaceApiKey(old.id, {
      id,
      carrierId: old.carrierId,
      keyHash: tokenHash(key),
      createdAt: this.clock.now(),
      name: old.name,
      scopes: old.scopes,
      prefix,
      createdBy,
    });
    return replaced ? { id, key, prefix } : null;
  }

  /** The carrier an API key belongs to, as a principal of role `carrier`. */
  async principalForApiKey(key: string): Promise<Result<Principal>> {
    const r = await this.apiKeyCaller(key);
    return r.ok ? ok(r.value.principal) : r;
  }

  /**
   * An API key's carrier (as a principal of role `carrier`, whose id is the carrier's), the key's
   * id and its scopes; records the key's use. Unknown and revoked keys are one answer.
   */
  async apiKeyCaller(
    key: string,
  ): Promise<Result<{ principal: Principal; keyId: string; scopes: readonly string[] }>> {
    const k = await this.store.principals.findApiKeyByHash(tokenHash(key));
    if (!k || k.revokedAt !== null)
      return refuse(problem('auth.required', 'Unknown or revoked API key.'));
    const carrier = await this.store.principals.getCarrier(k.carrierId);
    if (!carrier) return refuse(problem('auth.required', 'Unknown or revoked API key.'));
    await this.store.principals.touchApiKey(k.id, this.clock.now());
    return ok({
      principal: {
        id: carrier.id,
        role: 'carrier',
        displayName: carrier.name,
        homeId: null,
        carrierId: carrier.id,
      },
      keyId: k.id,
      scopes: k.scopes,
    });
  }
}

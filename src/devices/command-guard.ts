/**
 * The device's gate for commands: a command is acted on only if it parses, its MAC verifies
 * with the device key, it is fresh by the device's own clock, and its nonce was never seen.
 * The checks run in that order, so a forged command learns nothing about the device's clock
 * or nonce memory.
 *
 * Nonces are remembered until the command could no longer pass the freshness check
 * (`expiresAt` + skew). The memory is bounded: when it is full, the entry that would be
 * forgotten first is evicted, and from then on every command that would have been forgotten
 * no later than it is refused as possibly replayed (fail closed: the device never accepts a
 * command whose nonce it can no longer vouch for).
 */
import type { Clock } from '../core/clock.ts';
import { verifyMac } from '../protocol/device-auth.ts';
import { decodePayload, type CommandMessage } from '../protocol/device-messages.ts';

/** Codes of refused commands. */
export type CommandRefusalCode =
  'command.bad-mac' | 'command.expired' | 'command.replayed' | 'command.invalid';

/** The outcome of checking one command payload. */
export type CommandVerdict =
  | { readonly ok: true; readonly command: CommandMessage }
  | {
      readonly ok: false;
      readonly code: CommandRefusalCode;
      readonly message: string;
      /** The command id when it could be read (the device replies to it), else null. */
      readonly id: string | null;
    };

/** Settings of a {@link CommandGuard}. */
export interface CommandGuardOptions {
  /** The device key that authenticates commands. */
  readonly deviceKey: Uint8Array;
  /** The device's clock. */
  readonly clock: Clock;
  /** Tolerated difference between the server's and the device's clocks, ms. Default 5 min. */
  readonly skewToleranceMs?: number;
  /** Longest `expiresAt - issuedAt` accepted, ms; bounds how long a nonce is kept. Default 1 h. */
  readonly maxLifetimeMs?: number;
  /** Most nonces remembered at once. Default 10 000. */
  readonly maxNonces?: number;
}

/** Default tolerated clock skew, ms. */
export const DEFAULT_SKEW_TOLERANCE_MS = 5 * 60_000;
const DEFAULT_MAX_LIFETIME_MS = 60 * 60_000;
const DEFAULT_MAX_NONCES = 10_000;
const MESSAGE_ID_RE = /^[A-Za-z0-9_-]{8,64}$/;

/** Counts of what a {@link CommandGuard} decided. */
export interface CommandGuardStats {
  accepted: number;
  /** Refusals that could be answered, by code. */
  refused: Record<CommandRefusalCode, number>;
  /** Payloads so broken that not even an id could be read; dropped without a reply. */
  garbage: number;
}

/** Verifies incoming commands for one device; see the module comment for the rules. */
export class CommandGuard {
  private readonly key: Uint8Array;
  private readonly clock: Clock;
  private readonly skewMs: number;
  private readonly maxLifetimeMs: number;
  private readonly maxNonces: number;
  /** nonce → when it may be forgotten (ms, device clock). */
  private readonly nonces = new Map<string, number>();
  /** Commands forgotten no later than this may have had their nonce evicted. */
  private evictedUntil = Number.NEGATIVE_INFINITY;
  private readonly counts: CommandGuardStats = {
    accepted: 0,
    refused: {
      'command.bad-mac': 0,
      'command.expired': 0,
      'command.replayed': 0,
      'command.invalid': 0,
    },
    garbage: 0,
  };

  constructor(options: CommandGuardOptions) {
    this.key = options.deviceKey;
    this.clock = options.clock;
    this.skewMs = options.skewToleranceMs ?? DEFAULT_SKEW_TOLERANCE_MS;
    this.maxLifetimeMs = options.maxLifetimeMs ?? DEFAULT_MAX_LIFETIME_MS;
    this.maxNonces = options.maxNonces ?? DEFAULT_MAX_NONCES;
    if (this.maxNonces < 1) throw new RangeError('maxNonces must be at least 1');
  }

  /**
   * Checks a payload received on `topic` (the device's command topic, which the MAC covers).
   * An accepted command's nonce is remembered at once, so the same payload never passes twice.
   */
  check(topic: string, payload: Uint8Array): CommandVerdict {
    const verdict = this.decide(topic, payload);
    if (verdict.ok) this.counts.accepted += 1;
    else if (verdict.id === null) this.counts.garbage += 1;
    else this.counts.refused[verdict.code] += 1;
    return verdict;
  }

  /** A snapshot of the counters. */
  stats(): CommandGuardStats {
    return { ...this.counts, refused: { ...this.counts.refused } };
  }

  /** How many nonces are remembered now. */
  rememberedNonces(): number {
    return this.nonces.size;
  }

  private decide(topic: string, payload: Uint8Array): CommandVerdict {
    const decoded = decodePayload('command', payload);
    if (!decoded.ok) {
      const id = decoded.reason === 'schema' ? readId(payload) : null;
      return refusal('command.invalid', `not a valid command: ${decoded.detail}`, id);
    }
    const cmd = decoded.message;
    if (!verifyMac(this.key, topic, cmd)) {
      return refusal('command.bad-mac', 'the MAC does not verify', cmd.id);
    }
    if (cmd.expiresAt < cmd.issuedAt || cmd.expiresAt - cmd.issuedAt > this.maxLifetimeMs) {
      return refusal('command.invalid', 'expiresAt is before issuedAt or too far after it', cmd.id);
    }
    const now = this.clock.now();
    if (cmd.issuedAt > now + this.skewMs) {
      return refusal('command.expired', 'issuedAt is in the future', cmd.id);
    }
    const forgetAt = cmd.expiresAt + this.skewMs;
    if (now > forgetAt) {
      return refusal('command.expired', 'expiresAt has passed', cmd.id);
    }
    this.forgetOld(now);
    if (this.nonces.has(cmd.nonce) || forgetAt <= this.evictedUntil) {
      return refusal('command.replayed', 'this nonce was seen before', cmd.id);
    }
    if (this.nonces.size >= this.maxNonces) this.evictFirstForgotten();
    this.nonces.set(cmd.nonce, forgetAt);
    return { ok: true, command: cmd };
  }

  private forgetOld(now: number): void {
    for (const [nonce, forgetAt] of this.nonces) {
      if (forgetAt < now) this.nonces.delete(nonce);
    }
  }

  private evictFirstForgotten(): void {
    let first: [string, number] | undefined;
    for (const entry of this.nonces) {
      if (first === undefined || entry[1] < first[1]) first = entry;
    }
    if (first === undefined) return;
    this.nonces.delete(first[0]);
    this.evictedUntil = Math.max(this.evictedUntil, first[1]);
  }
}

function refusal(code: CommandRefusalCode, message: string, id: string | null): CommandVerdict {
  return { ok: false, code, message, id };
}

/** The `id` of a JSON object that failed the schema, if it is a well-formed command id. */
function readId(payload: Uint8Array): string | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(payload).toString('utf8'));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    const id = (value as Record<string, unknown>)['id'];
    return typeof id === 'string' && MESSAGE_ID_RE.test(id) ? id : null;
  } catch {
    return null;
  }
}

/**
 * The audit chain: an append-only, hash-chained log with signed checkpoints (principle 5).
 *
 * Entry `n` stores `prevHash` = hash of entry `n - 1` (the genesis hash for the first) and its
 * own `hash` = SHA-256 over the canonical text of all its other fields. Editing, deleting,
 * inserting or reordering any entry breaks the chain at that entry or the next. A checkpoint
 * is the server's Ed25519 signature over (seq, hash) of an entry; it proves the log up to
 * there existed in that form when signed, so even a rewrite of the whole chain from some point
 * on (recomputing every hash) is caught by the signatures.
 */
import { canonicalMemberText } from './canonical-json.ts';
import type { Sha256Hex, SignatureVerifier, Signer } from './crypto-ports.ts';

/** `prevHash` of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** Who caused an audited fact: the system, a principal, or a device (with its own MAC). */
export interface AuditActor {
  readonly type: 'system' | 'principal' | 'device';
  readonly id: string;
}

/** What an audit entry says, before it is chained. */
export interface AuditFact {
  /** Dotted kind, e.g. "session.state", "device.heartbeat-gap", "alarm.raised". */
  readonly kind: string;
  readonly actor: AuditActor;
  /** The object the fact is about, e.g. "session:…", "device:…", "home:…". */
  readonly subject: string;
  /** Fact-specific data; must be JSON (no undefined, no functions). */
  readonly data: Readonly<Record<string, unknown>>;
  /**
   * The device's own authentication of the fact, when a device reported it: the MAC as sent,
   * so anyone holding the device key can check the device said this.
   */
  readonly deviceMac?: string;
}

/** One entry of the chain, as stored. */
export interface AuditEntry extends AuditFact {
  /** 1, 2, 3, … with no gaps. */
  readonly seq: number;
  /** ms since the epoch, by the server's clock. */
  readonly at: number;
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * An entry of an export that is not the reader's to see (another home's): only what links the
 * chain. Its hash cannot be recomputed, but its place is proven by its neighbours and by the
 * signed checkpoints after it.
 */
export interface RedactedAuditEntry {
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
  readonly redacted: true;
}

/** An entry as an export carries it. */
export type ExportedAuditEntry = AuditEntry | RedactedAuditEntry;

/** Whether an exported entry is redacted. */
export function isRedacted(e: ExportedAuditEntry): e is RedactedAuditEntry {
  return (e as Partial<RedactedAuditEntry>).redacted === true;
}

/** The redacted form of an entry. */
export function redact(e: AuditEntry): RedactedAuditEntry {
  return { seq: e.seq, prevHash: e.prevHash, hash: e.hash, redacted: true };
}

/** A signed statement that the chain up to `seq` ended in `hash`. */
export interface AuditCheckpoint {
  readonly seq: number;
  readonly hash: string;
  readonly at: number;
  readonly publicKey: string;
  readonly signature: string;
}

/**
 * The text an entry's hash is computed over: the canonical JSON of
 * `{ seq, at, kind, actor, subject, data, deviceMac, prevHash }`.
 *
 * Written member by member in sorted key order rather than by sorting a new object's keys:
 * every verification computes this once per entry (a million times for a large log). The tests
 * hold it to `canonicalJson` of that object for any field values, as an export may carry.
 */
export function entryHashInput(e: Omit<AuditEntry, 'hash'>): string {
  let out = member('', '"actor":', e.actor);
  out = member(out, '"at":', e.at);
  out = member(out, '"data":', e.data);
  out = member(out, '"deviceMac":', e.deviceMac);
  out = member(out, '"kind":', e.kind);
  out = member(out, '"prevHash":', e.prevHash);
  out = member(out, '"seq":', e.seq);
  out = member(out, '"subject":', e.subject);
  return `{${out}}`;
}

/** `out` with one more member of a canonical object (none when JSON leaves it out). */
function member(out: string, quotedKey: string, value: unknown): string {
  const text = canonicalMemberText(value);
  if (text === undefined) return out;
  return out === '' ? `${quotedKey}${text}` : `${out},${quotedKey}${text}`;
}

/** Chains a fact after the entry `prev` (or as the first entry when `prev` is null). */
export function chainEntry(
  sha256: Sha256Hex,
  prev: Pick<AuditEntry, 'seq' | 'hash'> | null,
  fact: AuditFact,
  at: number,
): AuditEntry {
  const base = {
    seq: prev === null ? 1 : prev.seq + 1,
    at,
    kind: fact.kind,
    actor: fact.actor,
    subject: fact.subject,
    data: fact.data,
    ...(fact.deviceMac === undefined ? {} : { deviceMac: fact.deviceMac }),
    prevHash: prev === null ? GENESIS_HASH : prev.hash,
  };
  return { ...base, hash: sha256(entryHashInput(base)) };
}

/** The message a checkpoint signs. */
export function checkpointMessage(seq: number, hash: string, at: number): string {
  return `threshold-audit-checkpoint/v1\n${seq}\n${hash}\n${at}`;
}

/** Signs a checkpoint over an entry. */
export function signCheckpoint(
  signer: Signer,
  entry: Pick<AuditEntry, 'seq' | 'hash'>,
  at: number,
): AuditCheckpoint {
  return {
    seq: entry.seq,
    hash: entry.hash,
    at,
    publicKey: signer.publicKey,
    signature: signer.sign(checkpointMessage(entry.seq, entry.hash, at)),
  };
}

/**
 * Kind of the entry that records a checkpoint inside the chain itself, right after the entry
 * it signs. With the signatures in the chain, deleting checkpoint rows does not help a forger:
 * a rewrite from some entry on loses every signature after it, and shows as an unsigned tail.
 */
export const CHECKPOINT_ENTRY_KIND = 'audit.checkpoint';

/** The fact that records a checkpoint in the chain (to be chained right after `cp.seq`). */
export function checkpointRecordFact(cp: AuditCheckpoint): AuditFact {
  return {
    kind: CHECKPOINT_ENTRY_KIND,
    actor: { type: 'system', id: 'audit' },
    subject: 'audit',
    data: {
      seq: cp.seq,
      hash: cp.hash,
      at: cp.at,
      publicKey: cp.publicKey,
      signature: cp.signature,
    },
  };
}

function recordedCheckpoint(e: AuditEntry): AuditCheckpoint | null {
  const d = e.data;
  if (
    typeof d.seq !== 'number' ||
    typeof d.hash !== 'string' ||
    typeof d.at !== 'number' ||
    typeof d.publicKey !== 'string' ||
    typeof d.signature !== 'string'
  ) {
    return null;
  }
  return { seq: d.seq, hash: d.hash, at: d.at, publicKey: d.publicKey, signature: d.signature };
}

/** Why a chain failed to verify, naming the first bad entry. */
export interface AuditBreak {
  readonly seq: number;
  readonly reason:
    | 'sequence-gap'
    | 'prev-hash-mismatch'
    | 'hash-mismatch'
    | 'checkpoint-signature-invalid'
    | 'checkpoint-hash-mismatch'
    | 'checkpoint-missing-entry'
    | 'checkpoint-untrusted-key'
    | 'checkpoint-record-invalid'
    | 'truncated';
  readonly message: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly entries: number;
  readonly checkpoints: number;
  readonly lastSeq: number;
  readonly lastHash: string;
  /** Redacted entries (in an export): linked and signed over, but not readable. */
  readonly redacted: number;
  /** The newest entry covered by a valid signature (0 if none). */
  readonly signedUpTo: number;
  /**
   * Entries after the newest signature. Zero after a clean shutdown; a few while the server
   * runs (it signs within seconds). A rewrite of the log's end shows here: it cannot carry a
   * valid signature.
   */
  readonly unsignedTail: number;
  readonly firstBreak: AuditBreak | null;
}

/**
 * Incremental verifier: feed entries in order (so a million entries stream through without
 * being held in memory), then checkpoints, then call `result()`.
 */
export class AuditVerifier {
  private expectedSeq = 1;
  private prevHash = GENESIS_HASH;
  private count = 0;
  private cpCount = 0;
  private broken: AuditBreak | null = null;
  private signedUpTo = 0;
  private redactedCount = 0;
  /** Hashes at checkpointed seqs, filled as entries stream past. */
  private readonly wanted = new Map<number, string | null>();

  constructor(
    private readonly sha256: Sha256Hex,
    private readonly verifySignature: SignatureVerifier,
    private readonly checkpoints: readonly AuditCheckpoint[],
    /** Public keys the verifier trusts; when empty, any key in the checkpoints is accepted. */
    private readonly trustedKeys: readonly string[] = [],
    /**
     * Where the entries fed start, for an export that begins mid-log: the first entry's seq and
     * the hash it follows. Default: the genesis. Everything before it is outside the proof.
     */
    start: { readonly seq: number; readonly prevHash: string } = { seq: 1, prevHash: GENESIS_HASH },
  ) {
    for (const cp of checkpoints) this.wanted.set(cp.seq, null);
    this.expectedSeq = start.seq;
    this.prevHash = start.prevHash;
    this.signedUpTo = start.seq - 1;
  }

  private fail(b: AuditBreak): void {
    this.broken ??= b;
  }

  /** Feeds the next entry of the log (or of an export, where some may be redacted). */
  add(e: ExportedAuditEntry): void {
    if (this.broken) return;
    this.count++;
    if (e.seq !== this.expectedSeq) {
      this.fail({
        seq: e.seq,
        reason: 'sequence-gap',
        message: `entry ${e.seq} found where entry ${this.expectedSeq} was expected`,
      });
      return;
    }
    if (e.prevHash !== this.prevHash) {
      this.fail({
        seq: e.seq,
        reason: 'prev-hash-mismatch',
        message: `entry ${e.seq} does not follow entry ${e.seq - 1} (previous hash differs)`,
      });
      return;
    }
    if (isRedacted(e)) {
      this.redactedCount++;
      if (this.wanted.has(e.seq)) this.wanted.set(e.seq, e.hash);
      this.prevHash = e.hash;
      this.expectedSeq++;
      return;
    }
    // entryHashInput reads the fields it hashes by name, so the entry goes in as it is (no
    // copy without its hash: this runs once per entry of a million-entry log).
    const hash = e.hash;
    if (this.sha256(entryHashInput(e)) !== hash) {
      this.fail({
        seq: e.seq,
        reason: 'hash-mismatch',
        message: `entry ${e.seq} was changed after it was written (hash differs)`,
      });
      return;
    }
    if (this.wanted.has(e.seq)) this.wanted.set(e.seq, hash);
    if (e.kind === CHECKPOINT_ENTRY_KIND && !this.checkRecord(e)) return;
    this.prevHash = hash;
    this.expectedSeq++;
  }

  /** A checkpoint recorded in the chain must sign, with a trusted key, the entry just before. */
  private checkRecord(e: AuditEntry): boolean {
    const cp = recordedCheckpoint(e);
    const problem = ((): string | null => {
      if (cp === null) return 'is malformed';
      if (cp.seq !== e.seq - 1 || cp.hash !== e.prevHash)
        return 'does not sign the entry before it';
      if (this.trustedKeys.length > 0 && !this.trustedKeys.includes(cp.publicKey)) {
        return 'is signed by a key that is not trusted';
      }
      if (
        !this.verifySignature(checkpointMessage(cp.seq, cp.hash, cp.at), cp.signature, cp.publicKey)
      ) {
        return 'has an invalid signature';
      }
      return null;
    })();
    if (problem !== null) {
      this.fail({
        seq: e.seq,
        reason: 'checkpoint-record-invalid',
        message: `entry ${e.seq} records a checkpoint that ${problem}`,
      });
      return false;
    }
    this.signedUpTo = e.seq;
    return true;
  }

  /** Checks the checkpoints against what was fed and returns the verdict. */
  result(): AuditVerification {
    if (!this.broken) {
      const sorted = [...this.checkpoints].sort((a, b) => a.seq - b.seq);
      for (const cp of sorted) {
        this.cpCount++;
        if (this.trustedKeys.length > 0 && !this.trustedKeys.includes(cp.publicKey)) {
          this.fail({
            seq: cp.seq,
            reason: 'checkpoint-untrusted-key',
            message: `checkpoint at entry ${cp.seq} is signed by a key that is not trusted`,
          });
          break;
        }
        if (
          !this.verifySignature(
            checkpointMessage(cp.seq, cp.hash, cp.at),
            cp.signature,
            cp.publicKey,
          )
        ) {
          this.fail({
            seq: cp.seq,
            reason: 'checkpoint-signature-invalid',
            message: `checkpoint at entry ${cp.seq} has an invalid signature`,
          });
          break;
        }
        const seen = this.wanted.get(cp.seq);
        if (seen === null || seen === undefined) {
          this.fail({
            seq: cp.seq,
            reason: cp.seq >= this.expectedSeq ? 'truncated' : 'checkpoint-missing-entry',
            message:
              cp.seq >= this.expectedSeq
                ? `the log ends at entry ${this.expectedSeq - 1} but a signed checkpoint covers entry ${cp.seq} (entries were deleted from the end)`
                : `checkpoint at entry ${cp.seq} has no matching entry`,
          });
          break;
        }
        if (seen !== cp.hash) {
          this.fail({
            seq: cp.seq,
            reason: 'checkpoint-hash-mismatch',
            message: `entry ${cp.seq} differs from what the signed checkpoint recorded (the chain was rewritten)`,
          });
          break;
        }
        this.signedUpTo = Math.max(this.signedUpTo, cp.seq);
      }
    }
    return {
      ok: this.broken === null,
      entries: this.count,
      checkpoints: this.cpCount,
      lastSeq: this.expectedSeq - 1,
      lastHash: this.prevHash,
      redacted: this.redactedCount,
      signedUpTo: this.signedUpTo,
      unsignedTail: Math.max(0, this.expectedSeq - 1 - this.signedUpTo),
      firstBreak: this.broken,
    };
  }
}

/** Verifies a whole log held in memory. */
export function verifyAuditLog(
  sha256: Sha256Hex,
  verifySignature: SignatureVerifier,
  entries: Iterable<ExportedAuditEntry>,
  checkpoints: readonly AuditCheckpoint[],
  trustedKeys: readonly string[] = [],
  start?: { readonly seq: number; readonly prevHash: string },
): AuditVerification {
  const v = new AuditVerifier(sha256, verifySignature, checkpoints, trustedKeys, start);
  for (const e of entries) v.add(e);
  return v.result();
}

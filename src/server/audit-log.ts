/**
 * The audit log service: chains facts with the core's audit chain, writes them durably in
 * batches, and signs checkpoints.
 *
 * `append` resolves only after the entry is committed (SQLite WAL with synchronous=FULL), so
 * whatever the server acknowledged is in the log. Appends made in the same turn of the event
 * loop share one transaction. A checkpoint is signed every `checkpointEvery` entries, at most
 * `checkpointIntervalMs` (default 1 s) after the last one when entries are waiting, and on
 * `checkpoint()` (the orchestrator calls it when a session ends) and `close()`. Each checkpoint
 * is stored in its own table and also recorded in the chain, as the entry right after the one
 * it signs. On opening, entries a crash left unsigned are signed under an `audit.unsigned-tail`
 * entry that says so.
 */
import {
  AuditVerifier,
  CHECKPOINT_ENTRY_KIND,
  chainEntry,
  checkpointRecordFact,
  signCheckpoint,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditFact,
  type AuditVerification,
} from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import type { Sha256Hex, SignatureVerifier, Signer } from '../core/crypto-ports.ts';
import type { AlongsideWrite, AuditRepository } from '../store/index.ts';

export interface AuditLogOptions {
  readonly checkpointEvery?: number;
  readonly checkpointIntervalMs?: number;
}

interface Pending {
  readonly entry: AuditEntry;
  /** Writes committed in the same transaction as this entry. */
  readonly alongside?: AlongsideWrite;
  readonly resolve: (e: AuditEntry) => void;
  readonly reject: (err: unknown) => void;
}

export class AuditLog {
  private head: Pick<AuditEntry, 'seq' | 'hash'> | null = null;
  private lastCheckpointSeq = 0;
  /** The entry recording the newest checkpoint (it needs no checkpoint of its own). */
  private lastRecordSeq = 0;
  private pending: Pending[] = [];
  private loop: Promise<void> | null = null;
  private wantCheckpoint = false;
  private cancelTimer: (() => void) | null = null;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  private listeners: ((e: AuditEntry) => void)[] = [];

  private constructor(
    private readonly repo: AuditRepository,
    private readonly clock: Clock,
    private readonly signer: Signer,
    private readonly sha256: Sha256Hex,
    opts: AuditLogOptions,
  ) {
    this.checkpointEvery = opts.checkpointEvery ?? 1_000;
    this.checkpointIntervalMs = opts.checkpointIntervalMs ?? 1_000;
  }

  /** Opens the log, continuing the chain stored in the repository. */
  static async open(
    repo: AuditRepository,
    clock: Clock,
    signer: Signer,
    sha256: Sha256Hex,
    opts: AuditLogOptions = {},
  ): Promise<AuditLog> {
    const log = new AuditLog(repo, clock, signer, sha256, opts);
    const last = await repo.last();
    log.head = last === null ? null : { seq: last.seq, hash: last.hash };
    const cps = await repo.listCheckpoints();
    log.lastCheckpointSeq = cps.at(-1)?.seq ?? 0;
    if (last?.kind === CHECKPOINT_ENTRY_KIND) log.lastRecordSeq = last.seq;
    if (log.uncheckpointed() && last !== null) {
      // Entries written before the last stop were never signed (a crash, a kill). Sign them
      // now, but say so in the log: the signature vouches for them only from this moment.
      const from = Math.max(log.lastRecordSeq, log.lastCheckpointSeq) + 1;
      await log.append({
        kind: 'audit.unsigned-tail',
        actor: { type: 'system', id: 'audit' },
        subject: 'audit',
        data: {
          fromSeq: from,
          toSeq: last.seq,
          message: 'entries written before a restart were not signed at the time',
        },
      });
      await log.checkpoint();
    }
    return log;
  }

  /** The public key that signs this log's checkpoints. */
  get publicKey(): string {
    return this.signer.publicKey;
  }

  /** Calls `fn` with every entry once it is committed. Returns an unsubscribe function. */
  onEntry(fn: (e: AuditEntry) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }

  /**
   * Chains facts and resolves once they are durably stored, together with `alongside` (e.g.
   * the session state they record) in the same transaction.
   */
  async appendAll(facts: readonly AuditFact[], alongside?: AlongsideWrite): Promise<AuditEntry[]> {
    if (facts.length === 0) throw new Error('appendAll needs at least one fact');
    const all = facts.map((f, i) =>
      this.appendOne(f, i === facts.length - 1 ? alongside : undefined),
    );
    return Promise.all(all);
  }

  /** Chains a fact and resolves with its entry once it is durably stored. */
  append(fact: AuditFact): Promise<AuditEntry> {
    return this.appendOne(fact, undefined);
  }

  private appendOne(fact: AuditFact, alongside: AlongsideWrite | undefined): Promise<AuditEntry> {
    const entry = chainEntry(this.sha256, this.head, fact, this.clock.now());
    this.head = { seq: entry.seq, hash: entry.hash };
    return new Promise<AuditEntry>((resolve, reject) => {
      this.pending.push(
        alongside ? { entry, resolve, reject, alongside } : { entry, resolve, reject },
      );
      if (entry.seq - this.lastCheckpointSeq >= this.checkpointEvery) this.wantCheckpoint = true;
      this.scheduleFlush();
      this.armCheckpointTimer();
    });
  }

  /** Signs a checkpoint over the newest entry (if not already covered) and waits for it. */
  async checkpoint(): Promise<void> {
    this.wantCheckpoint = true;
    this.scheduleFlush();
    await this.drain();
  }

  /** Waits until everything appended so far is stored. */
  async drain(): Promise<void> {
    while (this.loop !== null) await this.loop;
  }

  private scheduleFlush(): void {
    this.loop ??= this.runLoop();
  }

  private armCheckpointTimer(): void {
    if (this.cancelTimer !== null) return;
    this.cancelTimer = this.clock.schedule(this.clock.now() + this.checkpointIntervalMs, () => {
      this.cancelTimer = null;
      if (this.uncheckpointed()) void this.checkpoint();
    });
  }

  /** Writes batches one after another until nothing is waiting. Never rejects. */
  private async runLoop(): Promise<void> {
    // Let every append of this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      while (this.pending.length > 0 || (this.wantCheckpoint && this.uncheckpointed())) {
        await this.writeBatch();
      }
      this.wantCheckpoint = false;
    } finally {
      this.loop = null;
    }
  }

  private uncheckpointed(): boolean {
    const head = this.head?.seq ?? 0;
    return head > this.lastCheckpointSeq && head !== this.lastRecordSeq;
  }

  private async writeBatch(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const entries = batch.map((p) => p.entry);
    // Synchronously, before any await: the head is the batch's last entry, and appends made
    // while this batch is written chain after the checkpoint's record.
    const tip = this.head;
    let cp: AuditCheckpoint | undefined;
    if (this.wantCheckpoint && tip !== null && this.uncheckpointed()) {
      cp = signCheckpoint(this.signer, tip, this.clock.now());
      const record = chainEntry(this.sha256, tip, checkpointRecordFact(cp), this.clock.now());
      this.head = { seq: record.seq, hash: record.hash };
      entries.push(record);
      this.wantCheckpoint = false;
    }
    try {
      await this.repo.append(
        entries,
        cp,
        batch.flatMap((p) => (p.alongside ? [p.alongside] : [])),
      );
    } catch (err) {
      // Nothing of this batch is stored; entries chained after it cannot be either. The
      // chain's head goes back to what is stored and every waiting append is rejected.
      const stored = await this.repo.last().catch(() => null);
      this.head = stored === null ? null : { seq: stored.seq, hash: stored.hash };
      const failed = [...batch, ...this.pending];
      this.pending = [];
      this.wantCheckpoint = false;
      for (const p of failed) p.reject(err);
      return;
    }
    if (cp !== undefined) {
      this.lastCheckpointSeq = cp.seq;
      this.lastRecordSeq = cp.seq + 1;
    }
    for (const p of batch) p.resolve(p.entry);
    for (const p of batch) {
      for (const l of this.listeners) {
        try {
          l(p.entry);
        } catch {
          // A listener (a live view, a push) must never break the log.
        }
      }
    }
  }

  /** Verifies the stored log, streaming it, against this server's signing key. */
  async verify(verifySignature: SignatureVerifier): Promise<AuditVerification> {
    await this.drain();
    return verifyStoredLog(this.repo, this.sha256, verifySignature, [this.signer.publicKey]);
  }

  /** Flushes, signs a final checkpoint and stops the timer. */
  async close(): Promise<void> {
    await this.checkpoint();
    this.cancelTimer?.();
    this.cancelTimer = null;
  }
}

/** Verifies a stored audit log without loading it all into memory. */
export async function verifyStoredLog(
  repo: AuditRepository,
  sha256: Sha256Hex,
  verifySignature: SignatureVerifier,
  trustedKeys: readonly string[],
): Promise<AuditVerification> {
  const verifier = new AuditVerifier(
    sha256,
    verifySignature,
    await repo.listCheckpoints(),
    trustedKeys,
  );
  for await (const e of repo.iterate()) verifier.add(e);
  return verifier.result();
}

/**
 * The audit log service: chains facts with the core's audit chain, writes them durably in
 * batches, and signs checkpoints.
 *
 * `append` resolves only after the entry is committed (SQLite WAL with synchronous=FULL), so
 * whatever the server acknowledged is in the log. Appends share transactions (group commit):
 * everything appended before the event loop's next check phase is written in one, and what
 * arrives while it is written goes into the next (see `runLoop`); order is call order.
 *
 * A checkpoint is signed every `checkpointEvery` entries, at most `checkpointIntervalMs`
 * (default 1 s) after the last one when entries are waiting, and on `checkpoint()` (the
 * orchestrator calls it when a session ends) and `close()`. Each checkpoint is stored in its
 * own table and also recorded in the chain, as the entry right after the one it signs. On
 * opening, entries a crash left unsigned are signed under an `audit.unsigned-tail` entry that
 * says so.
 */
import {
  AuditVerifier,
  CHECKPOINT_ENTRY_KIND,
  chainEntry,
  checkpointRecordFact,
  signCheckpoint,
  type AuditEntry,
  type AuditFact,
  type AuditVerification,
} from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import type { Sha256Hex, SignatureVerifier, Signer } from '../core/crypto-ports.ts';
import type { AlongsideWrite, AuditAppend, AuditRepository } from '../store/index.ts';

export interface AuditLogOptions {
  readonly checkpointEvery?: number;
  readonly checkpointIntervalMs?: number;
}

interface Pending {
  /** What to record, and when it was appended; chained at its commit, onto the stored head. */
  readonly fact: AuditFact;
  readonly at: number;
  /** Writes committed in the same transaction as this entry. */
  readonly alongside?: AlongsideWrite;
  /** Recorded only if no entry with this key is (see {@link AuditLog.appendOnce}). */
  readonly once?: string;
  readonly resolve: (e: AuditEntry | null) => void;
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

  /**
   * Chains a fact unless one with the same `key` is stored already (by this process or
   * another on the same database): resolves with its entry once stored, or with null when
   * the key was taken, i.e. the fact is on record by an earlier append. For what several
   * replicas all receive (every device event reaches each of them) but must be recorded once.
   * The key is kept in the same transaction as the entry, so a crash leaves both or neither.
   */
  appendOnce(fact: AuditFact, key: string): Promise<AuditEntry | null> {
    const at = this.clock.now();
    return new Promise<AuditEntry | null>((resolve, reject) => {
      this.push({ fact, at, resolve, reject, once: key });
    });
  }

  private appendOne(fact: AuditFact, alongside: AlongsideWrite | undefined): Promise<AuditEntry> {
    const at = this.clock.now();
    return new Promise<AuditEntry>((resolve, reject) => {
      // Only appendOnce's entries resolve with null.
      const done = (e: AuditEntry | null): void => resolve(e!);
      this.push(
        alongside
          ? { fact, at, resolve: done, reject, alongside }
          : { fact, at, resolve: done, reject },
      );
    });
  }

  private push(p: Pending): void {
    this.pending.push(p);
    const expectedSeq = (this.head?.seq ?? 0) + this.pending.length;
    if (expectedSeq - this.lastCheckpointSeq >= this.checkpointEvery) this.wantCheckpoint = true;
    this.scheduleFlush();
    this.armCheckpointTimer();
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

  /**
   * The group commit: writes batches one after another until nothing is waiting. Never
   * rejects.
   *
   * Before each batch it waits for the event loop's check phase (`setImmediate`), which comes
   * after the poll phase has run every I/O callback that was ready. SQLite commits block the
   * event loop (better-sqlite3 is synchronous, and with synchronous=FULL each commit waits for
   * an fsync), so requests that arrive during a commit sit in their sockets until it is done;
   * waiting for the check phase lets all of them reach their appends and share the next
   * commit. (Waiting for a microtask only would commit each HTTP request's entry on its own:
   * every request is handled in an I/O callback of its own.) A lone append waits for no timer:
   * the check phase follows at once when nothing else is ready.
   */
  private async runLoop(): Promise<void> {
    try {
      // Always awaits before it can finish, so `this.loop` is set before the finally clears it.
      for (;;) {
        await nextCheckPhase();
        if (this.pending.length === 0 && !(this.wantCheckpoint && this.uncheckpointed())) break;
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

  /**
   * Writes the waiting appends as one batch. The entries are chained inside the repository's
   * append lock onto the head stored at that moment, not onto this process's idea of it: another
   * writer (a second server on the same database, `threshold carrier add`) may have appended
   * since, and the log stays one chain with no gap.
   */
  private async writeBatch(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const wantCheckpoint = this.wantCheckpoint;
    this.wantCheckpoint = false;
    let written: AuditAppend;
    // appendOnce's keys: those this batch stores (the rest are on record already).
    const onceKeys = [...new Set(batch.flatMap((p) => (p.once === undefined ? [] : [p.once])))];
    const fresh = new Set<string>();
    const recorded: Pending[] = [];
    const claimOnce: AlongsideWrite = async (db) => {
      fresh.clear();
      for (const k of await this.repo.claimOnceKeys(db, onceKeys, this.clock.now())) fresh.add(k);
    };
    try {
      written = await this.repo.appendChained(
        (head) => {
          let tip: Pick<AuditEntry, 'seq' | 'hash'> | null =
            head === null ? null : { seq: head.seq, hash: head.hash };
          const entries: AuditEntry[] = [];
          recorded.length = 0;
          for (const p of batch) {
            if (p.once !== undefined) {
              // Taken by another writer, or by an earlier entry of this batch.
              if (!fresh.delete(p.once)) continue;
            }
            recorded.push(p);
            const e = chainEntry(this.sha256, tip, p.fact, p.at);
            entries.push(e);
            tip = { seq: e.seq, hash: e.hash };
          }
          if (
            !wantCheckpoint ||
            tip === null ||
            tip.seq <= this.lastCheckpointSeq ||
            tip.seq === this.lastRecordSeq
          ) {
            return { entries };
          }
          const now = this.clock.now();
          const checkpoint = signCheckpoint(this.signer, tip, now);
          entries.push(chainEntry(this.sha256, tip, checkpointRecordFact(checkpoint), now));
          return { entries, checkpoint };
        },
        [
          ...(onceKeys.length > 0 ? [claimOnce] : []),
          ...batch.flatMap((p) => (p.alongside ? [p.alongside] : [])),
        ],
      );
    } catch (err) {
      // Nothing of this batch is stored.
      for (const p of batch) p.reject(err);
      return;
    }
    const last = written.entries.at(-1);
    if (last !== undefined) this.head = { seq: last.seq, hash: last.hash };
    const cp = written.checkpoint;
    if (cp !== undefined) {
      this.lastCheckpointSeq = cp.seq;
      this.lastRecordSeq = cp.seq + 1;
    }
    const entries = written.entries.slice(0, recorded.length);
    recorded.forEach((p, i) => p.resolve(entries[i]!));
    const stored = new Set(recorded);
    for (const p of batch) if (!stored.has(p)) p.resolve(null);
    for (const entry of entries) {
      for (const l of this.listeners) {
        try {
          l(entry);
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

/** Entries read per page when verifying (keyset pages of the repository). */
const VERIFY_PAGE = 1_000;

/** Resolves in the event loop's next check phase, after the pending I/O callbacks have run. */
function nextCheckPhase(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
  let n = 0;
  for await (const e of repo.iterate(VERIFY_PAGE)) {
    verifier.add(e);
    // The store's reads resolve without waiting for I/O, so without this a running server
    // would answer nothing else until a large log is verified (seconds for a million
    // entries, e.g. during an owner's export); once per page, it lets other work in.
    if (++n % VERIFY_PAGE === 0) await nextCheckPhase();
  }
  return verifier.result();
}

/**
 * The audit log's group commit, on a real SQLite file with production's keys and hash: appends
 * made from separate event-loop tasks (as separate HTTP requests make them) share commits, each
 * resolves only once its entry is stored, order is call order, the chain verifies, and a failed
 * commit loses nothing that was acknowledged.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditFact } from '../core/audit-chain.ts';
import { systemClock } from '../protocol/system-clock.ts';
import {
  AuditRepository,
  openStore,
  type AlongsideWrite,
  type AuditAppend,
  type AuditChainer,
  type Store,
} from '../store/index.ts';
import { AuditLog, verifyStoredLog } from './audit-log.ts';
import { loadOrCreateKeys, sha256Hex, verifyEd25519, type ServerKeys } from './keys.ts';

/** Counts its transactions; can be told to fail the next one. */
class CountingRepository extends AuditRepository {
  readonly commits: number[] = [];
  failNext = false;

  override async appendChained(
    chain: AuditChainer,
    alongside?: readonly AlongsideWrite[],
  ): Promise<AuditAppend> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    const written = await super.appendChained(chain, alongside);
    this.commits.push(written.entries.length);
    return written;
  }
}

const fact = (i: number): AuditFact => ({
  kind: 'access.refused',
  actor: { type: 'principal', id: 'courier-1' },
  subject: `delivery:d${i}`,
  data: { code: 'presence.off-site', i },
});

/** Runs `fn` in an event-loop task of its own, as an I/O callback would. */
function inOwnTask<T>(fn: () => Promise<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      fn().then(resolve, reject);
    });
  });
}

let dir: string;
let store: Store;
let repo: CountingRepository;
let keys: ServerKeys;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'threshold-audit-log-'));
  store = await openStore({ dialect: 'sqlite', path: join(dir, 'threshold.db') });
  repo = new CountingRepository(store.db);
  keys = loadOrCreateKeys(dir);
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The log, with the 1 s checkpoint timer pushed out of the way of the commit counts. */
const open = (opts: { checkpointEvery?: number } = {}): Promise<AuditLog> =>
  AuditLog.open(repo, systemClock, keys.auditSigner, sha256Hex, {
    checkpointIntervalMs: 60_000,
    ...opts,
  });

describe('AuditLog group commit', () => {
  it('commits appends made in separate event-loop tasks together', async () => {
    const log = await open();
    const entries = await Promise.all(
      Array.from({ length: 20 }, (_, i) => inOwnTask(() => log.append(fact(i)))),
    );
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // All twenty tasks ran before the log's first write: one transaction holds them all.
    expect(repo.commits).toEqual([20]);
    await log.close();
  });

  it('resolves an append only once its entry is stored, in call order', async () => {
    const log = await open();
    const seen: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        inOwnTask(async () => {
          const e = await log.append(fact(i));
          // Stored by the time the caller hears of it.
          expect(await store.audit.getRange(e.seq, e.seq)).toEqual([e]);
          expect(e.subject).toBe(`delivery:d${i}`);
          seen.push(e.seq);
        }),
      ),
    );
    expect(seen).toHaveLength(50);
    expect(new Set(seen).size).toBe(50);
    await log.close();
  });

  it('writes what arrives during a commit in the next one, and the chain verifies', async () => {
    const log = await open({ checkpointEvery: 25 });
    // 200 callers, each appending again as soon as its last entry is stored.
    let next = 0;
    const caller = async (): Promise<void> => {
      while (next < 1_000) {
        const i = next++;
        await inOwnTask(() => log.append(fact(i)));
      }
    };
    await Promise.all(Array.from({ length: 200 }, caller));
    await log.close();
    const facts = repo.commits.reduce((a, b) => a + b, 0);
    // Far fewer commits than entries: each carries many callers' entries.
    expect(repo.commits.length).toBeLessThan(100);
    const v = await verifyStoredLog(store.audit, sha256Hex, verifyEd25519, [
      keys.auditSigner.publicKey,
    ]);
    expect(v).toMatchObject({ ok: true, unsignedTail: 0, entries: facts, lastSeq: facts });
    // Commits of 25 entries or more each signed a checkpoint over their last entry.
    expect(v.checkpoints).toBeGreaterThan(1);
  });

  it('rejects every append of a failed commit and stores none of it; later appends go on', async () => {
    const log = await open();
    const first = await log.append(fact(0));
    repo.failNext = true;
    const failed = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => inOwnTask(() => log.append(fact(i + 1)))),
    );
    expect(failed.every((r) => r.status === 'rejected')).toBe(true);
    expect(await store.audit.count()).toBe(1);
    const after = await log.append(fact(6));
    // The chain continues from what is stored, not from the entries that were lost.
    expect(after.seq).toBe(first.seq + 1);
    expect(after.prevHash).toBe(first.hash);
    await log.close();
    const v = await verifyStoredLog(store.audit, sha256Hex, verifyEd25519, [
      keys.auditSigner.publicKey,
    ]);
    expect(v.ok).toBe(true);
  });

  it('checkpoints and closes an empty log', async () => {
    const log = await open();
    await log.checkpoint();
    await log.close();
    expect(repo.commits).toEqual([]);
  });
});

describe('AuditLog.appendOnce', () => {
  it('records a key once across two logs on one database, and across batches', async () => {
    const a = await open();
    const b = await AuditLog.open(
      new AuditRepository(store.db),
      systemClock,
      keys.auditSigner,
      sha256Hex,
      {
        checkpointIntervalMs: 60_000,
      },
    );
    // Both "replicas" receive the same three events at once; each is stored by one of them.
    const got = await Promise.all(
      ['k1', 'k2', 'k3'].flatMap((k, i) => [
        inOwnTask(() => a.appendOnce(fact(i), k)),
        inOwnTask(() => b.appendOnce(fact(i), k)),
        // The same key twice in one batch counts once too.
        inOwnTask(() => a.appendOnce(fact(i), k)),
      ]),
    );
    expect(got.filter((e) => e !== null)).toHaveLength(3);
    const stored = await store.audit.getRange(1, 100);
    expect(stored.map((e) => e.data)).toEqual([0, 1, 2].map((i) => fact(i).data));
    // Later, the key stays taken; a new one is recorded, with plain appends around it.
    expect(await b.appendOnce(fact(0), 'k1')).toBeNull();
    const [x, y] = await Promise.all([a.append(fact(7)), a.appendOnce(fact(8), 'k4')]);
    expect([x.seq, y?.seq]).toEqual([4, 5]);
    await a.close();
    await b.close();
    const v = await verifyStoredLog(store.audit, sha256Hex, verifyEd25519, [
      keys.auditSigner.publicKey,
    ]);
    expect(v.ok).toBe(true);
  });

  it('takes no key when the commit fails, so the event can be recorded on its resend', async () => {
    const log = await open();
    repo.failNext = true;
    await expect(log.appendOnce(fact(1), 'once')).rejects.toThrow('disk full');
    expect((await log.appendOnce(fact(1), 'once'))?.seq).toBe(1);
    await log.close();
  });
});

describe('verifyStoredLog', () => {
  it('lets other work run while it verifies a long log', async () => {
    const log = await open();
    await Promise.all(Array.from({ length: 12_000 }, (_, i) => log.append(fact(i))));
    await log.close();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    const v = await verifyStoredLog(store.audit, sha256Hex, verifyEd25519, [
      keys.auditSigner.publicKey,
    ]).finally(() => clearInterval(ticker));
    expect(v.ok).toBe(true);
    expect(v.entries).toBeGreaterThan(12_000);
    // A timer ran between pages (1,000 entries each), not only after the whole log.
    expect(ticks).toBeGreaterThan(0);
  });
});

import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AuditVerifier,
  chainEntry,
  signCheckpoint,
  verifyAuditLog,
  type AuditEntry,
} from '../core/audit-chain.ts';
import type { Sha256Hex, SignatureVerifier, Signer } from '../core/crypto-ports.ts';
import { DIALECTS } from './dialect.ts';
import { openStore, type Store } from './store.ts';
import { openTestStore, type TestStore } from './test-store.ts';

const sha256: Sha256Hex = (data) => createHash('sha256').update(data, 'utf8').digest('hex');
const keys = generateKeyPairSync('ed25519');
const signer: Signer = {
  publicKey: keys.publicKey.export({ format: 'jwk' }).x ?? '',
  sign: (message) => sign(null, Buffer.from(message), keys.privateKey).toString('base64url'),
};
const verifySignature: SignatureVerifier = (message, signature, publicKey) =>
  verify(
    null,
    Buffer.from(message),
    createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKey }, format: 'jwk' }),
    Buffer.from(signature, 'base64url'),
  );

/** `count` entries chained after `prev`, alternating subjects, every third one device-signed. */
function chain(count: number, prev: AuditEntry | null = null): AuditEntry[] {
  const entries: AuditEntry[] = [];
  for (let i = 0; i < count; i++) {
    const seq = (prev?.seq ?? 0) + 1;
    const fact = {
      kind: seq % 3 === 0 ? 'device.heartbeat' : 'session.state',
      actor:
        seq % 3 === 0
          ? { type: 'device' as const, id: 'camera-1' }
          : { type: 'system' as const, id: 'server' },
      subject: `session:s${seq % 2}`,
      data: { seq, nested: { list: [1, 'two', null], ok: true }, ratio: seq / 7 },
      ...(seq % 3 === 0 ? { deviceMac: `mac-${seq}` } : {}),
    };
    prev = chainEntry(sha256, prev, fact, 1_700_000_000_000 + seq);
    entries.push(prev);
  }
  return entries;
}

for (const dialect of DIALECTS) {
  describe(`AuditRepository (${dialect})`, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await openTestStore(dialect);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('commits writes of other repositories in the same transaction, or none of it', async () => {
      const entries = chain(3);
      const seen: number[] = [];
      await t.store.audit.append(entries.slice(0, 2), undefined, [
        async (db) => {
          const n = await db.selectFrom('audit_entries').select('seq').execute();
          seen.push(n.length);
        },
      ]);
      expect(seen).toEqual([0]); // ran inside the transaction, before the entries
      await expect(
        t.store.audit.append(entries.slice(2), undefined, [
          () => Promise.reject(new Error('the other write failed')),
        ]),
      ).rejects.toThrow('the other write failed');
      expect(await t.store.audit.count()).toBe(2);
    });

    it('is empty at first', async () => {
      const { audit } = t.store;
      expect(await audit.last()).toBeNull();
      expect(await audit.count()).toBe(0);
      expect(await audit.listCheckpoints()).toEqual([]);
      const seen: AuditEntry[] = [];
      for await (const e of audit.iterate()) seen.push(e);
      expect(seen).toEqual([]);
    });

    it('stores entries and checkpoints exactly, so the chain still verifies', async () => {
      const { audit } = t.store;
      const entries = chain(7);
      const first = entries.slice(0, 4);
      const checkpoint = signCheckpoint(signer, first[3]!, 1_700_000_001_000);
      await audit.append(first, checkpoint);
      await audit.append(entries.slice(4));

      expect(await audit.count()).toBe(7);
      expect(await audit.last()).toEqual(entries[6]);
      expect(await audit.getRange(3, 5)).toEqual(entries.slice(2, 5));
      expect(await audit.listCheckpoints()).toEqual([checkpoint]);
      expect(await audit.entriesForSubject('session:s1')).toEqual(
        entries.filter((e) => e.seq % 2 === 1),
      );
      const third = (await audit.getRange(3, 3))[0];
      expect(third?.deviceMac).toBe('mac-3');
      expect(Object.hasOwn((await audit.getRange(1, 1))[0] ?? {}, 'deviceMac')).toBe(false);

      const verdict = verifyAuditLog(
        sha256,
        verifySignature,
        await audit.getRange(1, 7),
        await audit.listCheckpoints(),
        [signer.publicKey],
      );
      expect(verdict).toMatchObject({ ok: true, entries: 7, checkpoints: 1, lastSeq: 7 });
    });

    it('appends all or nothing: a duplicate seq leaves no trace of its batch', async () => {
      const { audit } = t.store;
      const entries = chain(4);
      await audit.append(entries.slice(0, 2));

      // Entry 3 is fine, the copy of entry 2 is not: neither may be stored.
      await expect(audit.append([entries[2]!, entries[1]!])).rejects.toThrow();
      expect(await audit.count()).toBe(2);
      expect(await audit.last()).toEqual(entries[1]);

      // A failing checkpoint takes its entries down with it.
      const checkpoint = signCheckpoint(signer, entries[1]!, 5);
      await audit.append([], checkpoint);
      await expect(audit.append(entries.slice(2), checkpoint)).rejects.toThrow();
      expect(await audit.count()).toBe(2);
      expect(await audit.listCheckpoints()).toEqual([checkpoint]);
    });

    it('refuses entries that do not continue the stored head, and stores none of them', async () => {
      const { audit } = t.store;
      const entries = chain(4);
      // Not the first entry of an empty log.
      await expect(audit.append(entries.slice(1, 3))).rejects.toThrow(
        'does not continue the stored log',
      );
      await audit.append(entries.slice(0, 2));
      // A gap: entry 4 after entry 2.
      await expect(audit.append([entries[3]!])).rejects.toThrow('whose last entry is 2');
      // A fork: another entry 3, chained on entry 2 like the real one but saying something else.
      const fork = chain(1, entries[1]).map((e) => ({ ...e, subject: 'session:forged' }));
      await audit.append([entries[2]!]);
      await expect(audit.append(fork)).rejects.toThrow('whose last entry is 3');
      // A batch that is not one chain, though its first entry fits.
      await expect(audit.append([entries[3]!, entries[3]!])).rejects.toThrow(
        'does not follow entry 4 of its batch',
      );
      expect(await audit.count()).toBe(3);
      expect(await audit.last()).toEqual(entries[2]);
    });

    it('chains entries onto the stored head under the append lock', async () => {
      const { audit } = t.store;
      const heads: (number | null)[] = [];
      const build = (head: AuditEntry | null) => {
        heads.push(head?.seq ?? null);
        return { entries: chain(2, head) };
      };
      const first = await audit.appendChained(build);
      const second = await audit.appendChained(build, [
        async (db) => {
          await db.selectFrom('audit_entries').select('seq').execute();
        },
      ]);
      expect(heads).toEqual([null, 2]);
      expect(second.entries.map((e) => e.seq)).toEqual([3, 4]);
      expect(await audit.getRange(1, 4)).toEqual([...first.entries, ...second.entries]);
      // A chainer that ignores its head is refused like a stale append.
      await expect(audit.appendChained(() => ({ entries: chain(1) }))).rejects.toThrow(
        'whose last entry is 4',
      );
      // A failing write alongside takes the chained entries down with it.
      await expect(
        audit.appendChained(build, [() => Promise.reject(new Error('the other write failed'))]),
      ).rejects.toThrow('the other write failed');
      expect(await audit.count()).toBe(4);
    });

    it('streams 12,000 entries in order across batch boundaries', async () => {
      const { audit } = t.store;
      const entries = chain(12_000);
      await audit.append(entries);
      expect(await audit.count()).toBe(12_000);

      const verifier = new AuditVerifier(sha256, verifySignature, []);
      let expected = 1;
      for await (const e of audit.iterate(5000)) {
        expect(e.seq).toBe(expected++);
        verifier.add(e);
      }
      expect(expected - 1).toBe(12_000);
      expect(verifier.result()).toMatchObject({ ok: true, entries: 12_000, lastSeq: 12_000 });
    });

    it('reads in batches, not in one query: entries appended mid-stream are seen', async () => {
      const { audit } = t.store;
      const entries = chain(10);
      await audit.append(entries.slice(0, 4));
      const seqs: number[] = [];
      for await (const e of audit.iterate(2)) {
        seqs.push(e.seq);
        // Appended after the first batch was read; a single query would have missed them.
        if (e.seq === 1) await audit.append(entries.slice(4));
      }
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      await expect(audit.iterate(0).next()).rejects.toThrow(RangeError);
    });
  });
}

/**
 * Several processes (replicas) appending to one PostgreSQL database at once. Two stores, each
 * with its own pool of connections, stand for two processes. (Two SQLite connections in one
 * process cannot show it: SQLite waits for a lock by blocking the event loop the other
 * connection needs to finish.)
 */
describe('AuditRepository with concurrent writers (postgres)', () => {
  let t: TestStore;
  let other: Store;
  beforeEach(async () => {
    t = await openTestStore('postgres');
    other = await openStore(t.options);
  });
  afterEach(async () => {
    await other.close();
    await t.cleanup();
  });

  /** Appends `count` entries from `writer`, `inFlight` at a time, each chained by the store. */
  async function appendMany(store: Store, writer: string, count: number, inFlight: number) {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const n = next++;
        await store.audit.appendChained((head) => ({
          entries: [
            chainEntry(
              sha256,
              head,
              {
                kind: 'test.append',
                actor: { type: 'system', id: writer },
                subject: `writer:${writer}`,
                data: { n },
              },
              1_700_000_000_000 + n,
            ),
          ],
        }));
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  }

  it('keeps one gap-free chain while two stores append 500 entries each at once', async () => {
    await Promise.all([appendMany(t.store, 'a', 500, 4), appendMany(other, 'b', 500, 4)]);

    expect(await t.store.audit.count()).toBe(1000);
    const verifier = new AuditVerifier(sha256, verifySignature, []);
    const seen = { a: new Set<unknown>(), b: new Set<unknown>() };
    let expected = 1;
    for await (const e of t.store.audit.iterate(300)) {
      expect(e.seq).toBe(expected++);
      verifier.add(e);
      seen[e.actor.id as 'a' | 'b'].add(e.data.n);
    }
    expect(verifier.result()).toMatchObject({ ok: true, entries: 1000, lastSeq: 1000 });
    expect([seen.a.size, seen.b.size]).toEqual([500, 500]);
  }, 240_000);

  it('refuses an append chained on a head another store has moved past', async () => {
    const [mine, theirs] = [chain(1), chain(1).map((e) => ({ ...e, subject: 'session:other' }))];
    await other.audit.append(theirs);
    await expect(t.store.audit.append(mine)).rejects.toThrow('another writer appended first');
    expect(await t.store.audit.getRange(1, 10)).toEqual(theirs);
  });
});

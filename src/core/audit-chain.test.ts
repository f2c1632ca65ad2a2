// eslint-disable-next-line no-restricted-imports -- the tests build the crypto ports the core receives
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';
import {
  AuditVerifier,
  CHECKPOINT_ENTRY_KIND,
  GENESIS_HASH,
  chainEntry,
  checkpointRecordFact,
  isRedacted,
  redact,
  checkpointMessage,
  entryHashInput,
  signCheckpoint,
  verifyAuditLog,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditFact,
  type AuditVerification,
} from './audit-chain.ts';
import type { Sha256Hex, SignatureVerifier, Signer } from './crypto-ports.ts';

const sha256: Sha256Hex = (data) => createHash('sha256').update(data).digest('hex');

function ed25519Signer(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  return {
    publicKey: jwk.x,
    sign: (message) => sign(null, Buffer.from(message), privateKey).toString('base64url'),
  };
}

const verifyEd25519: SignatureVerifier = (message, signature, publicKey) => {
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: publicKey },
      format: 'jwk',
    });
    return verify(null, Buffer.from(message), key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
};

const SERVER = ed25519Signer();
const ATTACKER = ed25519Signer();
const T0 = 1_768_478_400_000;

function fact(i: number): AuditFact {
  const base: AuditFact = {
    kind: i % 3 === 0 ? 'device.heartbeat-gap' : 'session.state',
    actor:
      i % 2 === 0 ? { type: 'device', id: 'camera-1' } : { type: 'principal', id: 'courier-1' },
    subject: `session:s-${Math.floor(i / 10)}`,
    data: { i, state: 'open', nested: { list: [i, 'x', null, true] } },
  };
  return i % 5 === 0 ? { ...base, deviceMac: `mac-${i}` } : base;
}

/** Chains `facts` after `prev`, one second apart. */
function extend(prev: AuditEntry | null, facts: readonly AuditFact[], at0: number): AuditEntry[] {
  const out: AuditEntry[] = [];
  let last = prev;
  facts.forEach((f, k) => {
    last = chainEntry(sha256, last, f, at0 + k * 1_000);
    out.push(last);
  });
  return out;
}

/** A chain of `n` entries, seq 1..n. */
function buildChain(n: number): AuditEntry[] {
  return extend(
    null,
    Array.from({ length: n }, (_, k) => fact(k + 1)),
    T0,
  );
}

/** Signed checkpoints over the entries with the given seqs. */
function checkpointsAt(entries: readonly AuditEntry[], seqs: readonly number[], signer = SERVER) {
  return seqs.map((seq) => {
    const e = entries[seq - 1];
    if (e === undefined) throw new Error(`no entry ${seq}`);
    return signCheckpoint(signer, e, e.at + 500);
  });
}

/** Recomputes every hash from index `from` on, as someone rewriting the database would. */
function rehashFrom(entries: readonly AuditEntry[], from: number): AuditEntry[] {
  const out = entries.slice(0, from);
  let prev: AuditEntry | null = out.at(-1) ?? null;
  for (const e of entries.slice(from)) {
    const f: AuditFact = {
      kind: e.kind,
      actor: e.actor,
      subject: e.subject,
      data: e.data,
      ...(e.deviceMac === undefined ? {} : { deviceMac: e.deviceMac }),
    };
    prev = chainEntry(sha256, prev, f, e.at);
    out.push(prev);
  }
  return out;
}

const verify_ = (
  entries: Iterable<AuditEntry>,
  checkpoints: readonly AuditCheckpoint[] = [],
  trustedKeys: readonly string[] = [],
) => verifyAuditLog(sha256, verifyEd25519, entries, checkpoints, trustedKeys);

const CHAIN = buildChain(1_000);
const HUNDREDS = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1_000];
const CPS = checkpointsAt(CHAIN, HUNDREDS);

const at = (i: number): AuditEntry => {
  const e = CHAIN[i - 1];
  if (e === undefined) throw new Error(`no entry ${i}`);
  return e;
};

/** The chain with entry `seq` replaced by `change(entry)`. */
const edited = (seq: number, change: (e: AuditEntry) => AuditEntry) =>
  CHAIN.map((e) => (e.seq === seq ? change(e) : e));

describe('chainEntry', () => {
  it('starts at seq 1 after the genesis hash and links each entry to the previous', () => {
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    expect(at(1)).toMatchObject({ seq: 1, prevHash: GENESIS_HASH, at: T0 });
    expect(at(2)).toMatchObject({ seq: 2, prevHash: at(1).hash, at: T0 + 1_000 });
    expect(at(1_000).prevHash).toBe(at(999).hash);
    for (const e of [at(1), at(2), at(1_000)]) expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('hashes the canonical text of every field but the hash', () => {
    const e = at(10);
    const { hash, ...rest } = e;
    expect(hash).toBe(sha256(entryHashInput(rest)));
    expect(entryHashInput(rest)).toBe(
      JSON.stringify({
        actor: { id: 'camera-1', type: 'device' },
        at: e.at,
        data: { i: 10, nested: { list: [10, 'x', null, true] }, state: 'open' },
        deviceMac: 'mac-10',
        kind: 'session.state',
        prevHash: e.prevHash,
        seq: 10,
        subject: 'session:s-1',
      }),
    );
  });

  it('hashes exactly the canonical JSON of the fields, whatever their values', () => {
    // An export is read from a file anyone may have written: fields of any JSON type, or
    // missing, must give the text canonicalJson gives the object of the eight fields.
    const field = fc.oneof(fc.jsonValue(), fc.constant(undefined));
    fc.assert(
      fc.property(
        fc.record({
          seq: field,
          at: field,
          kind: field,
          actor: field,
          subject: field,
          data: field,
          deviceMac: field,
          prevHash: field,
        }),
        (f) => {
          const e = f as unknown as Omit<AuditEntry, 'hash'>;
          expect(entryHashInput(e)).toBe(
            canonicalJson({
              seq: f.seq,
              at: f.at,
              kind: f.kind,
              actor: f.actor,
              subject: f.subject,
              data: f.data,
              deviceMac: f.deviceMac,
              prevHash: f.prevHash,
            }),
          );
        },
      ),
      { numRuns: 2_000 },
    );
    // An entry goes in whole: its own hash is not part of the text.
    const otherHash: AuditEntry = { ...at(10), hash: 'ignored' };
    expect(entryHashInput(otherHash)).toBe(entryHashInput(at(10)));
  });

  it('is deterministic and independent of key order', () => {
    const f1: AuditFact = {
      kind: 'k',
      actor: { type: 'system', id: 'sys' },
      subject: 's',
      data: { a: 1, b: { c: 2, d: 3 } },
    };
    const f2: AuditFact = {
      subject: 's',
      data: { b: { d: 3, c: 2 }, a: 1 },
      actor: { id: 'sys', type: 'system' },
      kind: 'k',
    };
    expect(chainEntry(sha256, null, f1, T0).hash).toBe(chainEntry(sha256, null, f2, T0).hash);
  });

  it('covers the device MAC: with and without one give different hashes', () => {
    const f: AuditFact = { kind: 'k', actor: { type: 'device', id: 'd' }, subject: 's', data: {} };
    const without = chainEntry(sha256, null, f, T0);
    const withMac = chainEntry(sha256, null, { ...f, deviceMac: 'm' }, T0);
    expect(without).not.toHaveProperty('deviceMac');
    expect(withMac.deviceMac).toBe('m');
    expect(withMac.hash).not.toBe(without.hash);
  });
});

describe('signCheckpoint', () => {
  it('signs (seq, hash, at) with the signer and names its key', () => {
    const cp = signCheckpoint(SERVER, at(100), T0 + 123);
    expect(cp).toMatchObject({
      seq: 100,
      hash: at(100).hash,
      at: T0 + 123,
      publicKey: SERVER.publicKey,
    });
    expect(checkpointMessage(100, at(100).hash, T0 + 123)).toBe(
      `threshold-audit-checkpoint/v1\n100\n${at(100).hash}\n${T0 + 123}`,
    );
    expect(
      verifyEd25519(checkpointMessage(cp.seq, cp.hash, cp.at), cp.signature, cp.publicKey),
    ).toBe(true);
    expect(
      verifyEd25519(checkpointMessage(cp.seq, cp.hash, cp.at + 1), cp.signature, cp.publicKey),
    ).toBe(false);
  });
});

describe('verifyAuditLog', () => {
  it('verifies an intact chain of 1000 entries with its checkpoints', () => {
    expect(verify_(CHAIN, CPS)).toEqual({
      ok: true,
      entries: 1_000,
      checkpoints: 10,
      lastSeq: 1_000,
      lastHash: at(1_000).hash,
      redacted: 0,
      signedUpTo: 1_000,
      unsignedTail: 0,
      firstBreak: null,
    });
  });

  it('verifies an empty log', () => {
    expect(verify_([])).toEqual({
      ok: true,
      entries: 0,
      checkpoints: 0,
      lastSeq: 0,
      lastHash: GENESIS_HASH,
      redacted: 0,
      signedUpTo: 0,
      unsignedTail: 0,
      firstBreak: null,
    });
  });

  it('reads entries from any iterable, e.g. a generator', () => {
    function* rows() {
      yield* CHAIN;
    }
    expect(verify_(rows(), CPS).ok).toBe(true);
  });

  describe('catches an edit of any field, naming the entry', () => {
    const EDITS: readonly [string, (e: AuditEntry) => AuditEntry][] = [
      ['data', (e) => ({ ...e, data: { ...e.data, state: 'closed' } })],
      ['nested data', (e) => ({ ...e, data: { ...e.data, nested: { list: [0] } } })],
      ['kind', (e) => ({ ...e, kind: 'session.completed' })],
      ['at', (e) => ({ ...e, at: e.at + 1 })],
      ['actor id', (e) => ({ ...e, actor: { ...e.actor, id: 'someone-else' } })],
      ['actor type', (e) => ({ ...e, actor: { ...e.actor, type: 'system' } })],
      ['subject', (e) => ({ ...e, subject: 'session:other' })],
      ['deviceMac added', (e) => ({ ...e, deviceMac: 'forged' })],
      ['hash', (e) => ({ ...e, hash: sha256('anything') })],
    ];
    for (const [field, change] of EDITS) {
      for (const seq of [1, 500, 1_000]) {
        it(`${field} of entry ${seq} → hash-mismatch at ${seq}`, () => {
          const v = verify_(edited(seq, change), CPS);
          expect(v.ok).toBe(false);
          expect(v.firstBreak).toEqual({
            seq,
            reason: 'hash-mismatch',
            message: `entry ${seq} was changed after it was written (hash differs)`,
          });
          expect(v.lastSeq).toBe(seq - 1);
          expect(v.lastHash).toBe(seq === 1 ? GENESIS_HASH : at(seq - 1).hash);
        });
      }
    }

    it('removing the device MAC of an entry → hash-mismatch', () => {
      const v = verify_(
        edited(500, ({ deviceMac: _mac, ...e }) => e),
        CPS,
      );
      expect(v.firstBreak).toMatchObject({ seq: 500, reason: 'hash-mismatch' });
    });

    it('prevHash of an entry → prev-hash-mismatch', () => {
      const v = verify_(
        edited(500, (e) => ({ ...e, prevHash: at(498).hash })),
        CPS,
      );
      expect(v.firstBreak).toEqual({
        seq: 500,
        reason: 'prev-hash-mismatch',
        message: 'entry 500 does not follow entry 499 (previous hash differs)',
      });
    });

    it('an edited entry with its own hash recomputed → breaks at the next entry', () => {
      const v = verify_(
        edited(500, (e) => {
          const forged = { ...e, data: { forged: true } };
          return { ...forged, hash: sha256(entryHashInput(forged)) };
        }),
      );
      expect(v.firstBreak).toMatchObject({ seq: 501, reason: 'prev-hash-mismatch' });
      expect(v.lastSeq).toBe(500);
    });
  });

  it('catches a deleted middle entry as a sequence gap', () => {
    const v = verify_(
      CHAIN.filter((e) => e.seq !== 500),
      CPS,
    );
    expect(v.ok).toBe(false);
    expect(v.firstBreak).toEqual({
      seq: 501,
      reason: 'sequence-gap',
      message: 'entry 501 found where entry 500 was expected',
    });
    expect(v.lastSeq).toBe(499);
  });

  it('catches a deleted first entry', () => {
    const v = verify_(CHAIN.slice(1));
    expect(v.firstBreak).toMatchObject({ seq: 2, reason: 'sequence-gap' });
  });

  it('catches two swapped entries at the first of them', () => {
    const swapped = [...CHAIN];
    [swapped[299], swapped[300]] = [at(301), at(300)];
    const v = verify_(swapped, CPS);
    expect(v.firstBreak).toEqual({
      seq: 301,
      reason: 'sequence-gap',
      message: 'entry 301 found where entry 300 was expected',
    });
    expect(v.lastSeq).toBe(299);
  });

  it('catches an inserted entry, even one chained properly after its predecessor', () => {
    const forged = chainEntry(sha256, at(500), fact(9_999), at(500).at + 10);
    const v = verify_([...CHAIN.slice(0, 500), forged, ...CHAIN.slice(500)]);
    expect(v.ok).toBe(false);
    expect(v.firstBreak).toEqual({
      seq: 501,
      reason: 'sequence-gap',
      message: 'entry 501 found where entry 502 was expected',
    });
  });

  it('catches a duplicated entry', () => {
    const v = verify_([...CHAIN.slice(0, 500), at(500), ...CHAIN.slice(500)]);
    expect(v.firstBreak).toMatchObject({ seq: 500, reason: 'sequence-gap' });
  });

  describe('checkpoints', () => {
    it('catch a rewrite that recomputed every hash after an edit', () => {
      const tampered = edited(450, (e) => ({ ...e, data: { ...e.data, state: 'closed' } }));
      const rewritten = rehashFrom(tampered, 449);
      // The chain alone now verifies: only the signatures can tell.
      expect(verify_(rewritten).ok).toBe(true);
      const v = verify_(rewritten, CPS);
      expect(v.ok).toBe(false);
      expect(v.firstBreak).toEqual({
        seq: 500,
        reason: 'checkpoint-hash-mismatch',
        message:
          'entry 500 differs from what the signed checkpoint recorded (the chain was rewritten)',
      });
      expect(v.checkpoints).toBe(5);
    });

    it('catch an insertion with renumbering and rehashing', () => {
      const forged = chainEntry(sha256, at(950), fact(9_999), at(950).at + 10);
      const renumbered = rehashFrom([...CHAIN.slice(0, 950), forged, ...CHAIN.slice(950)], 950);
      expect(verify_(renumbered).ok).toBe(true);
      expect(verify_(renumbered, CPS).firstBreak).toMatchObject({
        seq: 1_000,
        reason: 'checkpoint-hash-mismatch',
      });
    });

    it('catch a tail truncated after a checkpoint', () => {
      const v = verify_(CHAIN.slice(0, 950), CPS);
      expect(v.ok).toBe(false);
      expect(v.firstBreak).toEqual({
        seq: 1_000,
        reason: 'truncated',
        message:
          'the log ends at entry 950 but a signed checkpoint covers entry 1000 (entries were deleted from the end)',
      });
      expect(v.lastSeq).toBe(950);
    });

    it('accept a log that ends exactly at its last checkpoint', () => {
      expect(verify_(CHAIN.slice(0, 900), CPS.slice(0, 9)).ok).toBe(true);
    });

    it('catch a forged signature', () => {
      const cps = CPS.map((cp) =>
        cp.seq === 300 ? { ...cp, signature: SERVER.sign('something else') } : cp,
      );
      expect(verify_(CHAIN, cps).firstBreak).toEqual({
        seq: 300,
        reason: 'checkpoint-signature-invalid',
        message: 'checkpoint at entry 300 has an invalid signature',
      });
    });

    it('catch a checkpoint whose hash was changed to match a rewrite', () => {
      const tampered = rehashFrom(
        edited(250, (e) => ({ ...e, kind: 'nothing.happened' })),
        249,
      );
      const cps = CPS.map((cp) => {
        const e = tampered[cp.seq - 1];
        return e === undefined ? cp : { ...cp, hash: e.hash };
      });
      // Checkpoints 100 and 200 still match; 300 is the first whose hash changed.
      expect(verify_(tampered, cps).firstBreak).toMatchObject({
        seq: 300,
        reason: 'checkpoint-signature-invalid',
      });
    });

    it('catch a signature that is not even base64url of the right length', () => {
      const cps = [{ ...at100Checkpoint(), signature: 'not-a-signature' }];
      expect(verify_(CHAIN, cps).firstBreak).toMatchObject({
        seq: 100,
        reason: 'checkpoint-signature-invalid',
      });
    });

    it('accept any key when no trusted keys are given, so a re-signed rewrite passes without them', () => {
      const rewritten = rehashFrom(
        edited(450, (e) => ({ ...e, data: {} })),
        449,
      );
      const resigned = checkpointsAt(rewritten, HUNDREDS, ATTACKER);
      expect(verify_(rewritten, resigned).ok).toBe(true);
      expect(verify_(rewritten, resigned, [SERVER.publicKey]).firstBreak).toEqual({
        seq: 100,
        reason: 'checkpoint-untrusted-key',
        message: 'checkpoint at entry 100 is signed by a key that is not trusted',
      });
    });

    it('accept checkpoints by a trusted key', () => {
      expect(verify_(CHAIN, CPS, [ATTACKER.publicKey, SERVER.publicKey]).ok).toBe(true);
    });

    it('refuse checkpoints by a key outside the trusted ones', () => {
      const v = verify_(CHAIN, CPS, [ATTACKER.publicKey]);
      expect(v.firstBreak).toMatchObject({ seq: 100, reason: 'checkpoint-untrusted-key' });
      expect(v.checkpoints).toBe(1);
    });

    it('report the lowest broken checkpoint, whatever order they come in', () => {
      const cps = [...CPS]
        .reverse()
        .map((cp) =>
          cp.seq === 700 || cp.seq === 200
            ? { ...cp, signature: cp.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }
            : cp,
        );
      expect(verify_(CHAIN, cps).firstBreak).toMatchObject({
        seq: 200,
        reason: 'checkpoint-signature-invalid',
      });
    });

    it('report a checkpoint over an entry that cannot exist', () => {
      const cp = signCheckpoint(SERVER, { seq: 0, hash: GENESIS_HASH }, T0);
      expect(verify_(CHAIN, [cp]).firstBreak).toEqual({
        seq: 0,
        reason: 'checkpoint-missing-entry',
        message: 'checkpoint at entry 0 has no matching entry',
      });
    });

    it('come second to a break in the chain', () => {
      const v = verify_(
        edited(50, (e) => ({ ...e, at: 0 })),
        CPS.map((cp) => ({ ...cp, signature: 'x' })),
      );
      expect(v.firstBreak).toMatchObject({ seq: 50, reason: 'hash-mismatch' });
      expect(v.checkpoints).toBe(0);
    });
  });
});

function at100Checkpoint(): AuditCheckpoint {
  const cp = CPS[0];
  if (cp === undefined) throw new Error('no checkpoint');
  return cp;
}

describe('AuditVerifier (streaming)', () => {
  const stream = (
    entries: readonly AuditEntry[],
    cps: readonly AuditCheckpoint[],
    trusted: readonly string[] = [],
  ): AuditVerification => {
    const v = new AuditVerifier(sha256, verifyEd25519, cps, trusted);
    for (const e of entries) v.add(e);
    return v.result();
  };

  const CASES: readonly [
    string,
    readonly AuditEntry[],
    readonly AuditCheckpoint[],
    readonly string[],
  ][] = [
    ['intact', CHAIN, CPS, []],
    ['edited', edited(321, (e) => ({ ...e, subject: 'x' })), CPS, []],
    ['deleted', CHAIN.filter((e) => e.seq !== 77), CPS, []],
    ['truncated', CHAIN.slice(0, 999), CPS, []],
    [
      'rewritten',
      rehashFrom(
        edited(640, (e) => ({ ...e, data: {} })),
        639,
      ),
      CPS,
      [],
    ],
    ['untrusted', CHAIN, CPS, [ATTACKER.publicKey]],
  ];

  for (const [name, entries, cps, trusted] of CASES) {
    it(`gives the same verdict as verifyAuditLog: ${name}`, () => {
      const streamed = stream(entries, cps, trusted);
      expect(streamed).toEqual(verify_(entries, cps, trusted));
      expect(streamed.ok).toBe(name === 'intact');
    });
  }

  it('stops counting at the first break', () => {
    const v = stream(
      edited(10, (e) => ({ ...e, at: 1 })),
      [],
    );
    expect(v).toMatchObject({ ok: false, entries: 10, lastSeq: 9, lastHash: at(9).hash });
  });
});

/** A log as the server writes it: every `every` entries, a checkpoint recorded in the chain. */
function serverLog(n: number, every: number, signer = SERVER) {
  const entries: AuditEntry[] = [];
  const checkpoints: AuditCheckpoint[] = [];
  let prev: AuditEntry | null = null;
  for (let i = 1; i <= n; i++) {
    prev = chainEntry(sha256, prev, fact(i), T0 + i * 1_000);
    entries.push(prev);
    if (i % every === 0) {
      const cp = signCheckpoint(signer, prev, prev.at + 1);
      checkpoints.push(cp);
      prev = chainEntry(sha256, prev, checkpointRecordFact(cp), prev.at + 2);
      entries.push(prev);
    }
  }
  return { entries, checkpoints };
}

describe('checkpoints recorded in the chain', () => {
  it('verify, and cover the log up to the newest record', () => {
    const { entries, checkpoints } = serverLog(30, 10);
    const v = verify_(entries, checkpoints, [SERVER.publicKey]);
    expect(v).toMatchObject({ ok: true, lastSeq: 33, signedUpTo: 33, unsignedTail: 0 });
    expect(entries.filter((e) => e.kind === CHECKPOINT_ENTRY_KIND)).toHaveLength(3);
  });

  it('count the entries after the newest signature as an unsigned tail', () => {
    const { entries, checkpoints } = serverLog(25, 10);
    const v = verify_(entries, checkpoints, [SERVER.publicKey]);
    expect(v).toMatchObject({ ok: true, lastSeq: 27, signedUpTo: 22, unsignedTail: 5 });
  });

  it('catch a rewrite even when the checkpoint rows are deleted', () => {
    const { entries } = serverLog(30, 10);
    // Rewrite entry 15's data and recompute every hash after it; delete every checkpoint row.
    const edited = entries.map((e) => (e.seq === 15 ? { ...e, data: { ...e.data, i: -1 } } : e));
    const rewritten = rehashFrom(edited, 14);
    const v = verify_(rewritten, [], [SERVER.publicKey]);
    expect(v.ok).toBe(false);
    expect(v.firstBreak).toMatchObject({ seq: 22, reason: 'checkpoint-record-invalid' });
  });

  it('leave a rewritten and truncated end unsigned', () => {
    const { entries } = serverLog(30, 10);
    // Keep up to the record after entry 20 (seq 22), rewrite what follows and drop the rest.
    const kept = entries.filter((e) => e.seq <= 27);
    const rewritten = rehashFrom(
      kept.map((e) => (e.seq === 25 ? { ...e, data: { forged: true } } : e)),
      24,
    );
    const v = verify_(rewritten, [], [SERVER.publicKey]);
    expect(v).toMatchObject({ ok: true, signedUpTo: 22, unsignedTail: 5 });
  });

  it('refuse a record signed by an untrusted key', () => {
    const { entries } = serverLog(10, 10, ATTACKER);
    const v = verify_(entries, [], [SERVER.publicKey]);
    expect(v.firstBreak).toMatchObject({ seq: 11, reason: 'checkpoint-record-invalid' });
  });

  it('refuse a record with a forged signature or naming another entry', () => {
    const { entries } = serverLog(10, 10);
    const rec = entries[10]!;
    const forged = rehashFrom(
      [
        ...entries.slice(0, 10),
        { ...rec, data: { ...rec.data, signature: rec.data.signature === 'x' ? 'y' : 'x' } },
      ],
      10,
    );
    expect(verify_(forged).firstBreak).toMatchObject({
      seq: 11,
      reason: 'checkpoint-record-invalid',
    });
    const elsewhere = rehashFrom(
      [...entries.slice(0, 10), { ...rec, data: { ...rec.data, seq: 3 } }],
      10,
    );
    expect(verify_(elsewhere).firstBreak).toMatchObject({
      seq: 11,
      reason: 'checkpoint-record-invalid',
    });
  });
});

describe('exports with redacted entries, starting mid-log', () => {
  const { entries, checkpoints } = serverLog(30, 10);
  const mine = (e: AuditEntry) => e.kind === CHECKPOINT_ENTRY_KIND || e.seq % 3 === 0;
  const exported = (from: number, to: number) =>
    entries.filter((e) => e.seq >= from && e.seq <= to).map((e) => (mine(e) ? e : redact(e)));
  const startOf = (from: number) => ({ seq: from, prevHash: entries[from - 1]!.prevHash });
  const cpsIn = (from: number, to: number) =>
    checkpoints.filter((c) => c.seq >= from && c.seq <= to);

  it('verify from a mid-log start to a recorded checkpoint, counting what was redacted', () => {
    const doc = exported(12, 22);
    const v = verifyAuditLog(
      sha256,
      verifyEd25519,
      doc,
      cpsIn(12, 22),
      [SERVER.publicKey],
      startOf(12),
    );
    expect(v).toMatchObject({ ok: true, lastSeq: 22, signedUpTo: 22, unsignedTail: 0 });
    expect(v.redacted).toBe(doc.filter(isRedacted).length);
    expect(v.redacted).toBeGreaterThan(3);
  });

  it('catch an edited visible entry', () => {
    const doc = exported(12, 22).map((e) =>
      e.seq === 15 && !isRedacted(e) ? { ...e, data: { i: 0 } } : e,
    );
    const v = verifyAuditLog(sha256, verifyEd25519, doc, [], [SERVER.publicKey], startOf(12));
    expect(v.firstBreak).toMatchObject({ seq: 15, reason: 'hash-mismatch' });
  });

  it('catch a redacted entry whose hash was changed to hide an edit', () => {
    const doc = exported(12, 22).map((e) =>
      e.seq === 14 && isRedacted(e) ? { ...e, hash: 'f'.repeat(64) } : e,
    );
    const v = verifyAuditLog(sha256, verifyEd25519, doc, [], [SERVER.publicKey], startOf(12));
    expect(v.firstBreak).toMatchObject({ seq: 15, reason: 'prev-hash-mismatch' });
  });

  it('catch an entry left out of the export', () => {
    const doc = exported(12, 22).filter((e) => e.seq !== 16);
    const v = verifyAuditLog(sha256, verifyEd25519, doc, [], [SERVER.publicKey], startOf(12));
    expect(v.firstBreak).toMatchObject({ seq: 17, reason: 'sequence-gap' });
  });

  it('prove nothing without a signature at the end', () => {
    const v = verifyAuditLog(
      sha256,
      verifyEd25519,
      exported(12, 20),
      [],
      [SERVER.publicKey],
      startOf(12),
    );
    expect(v).toMatchObject({ ok: true, signedUpTo: 11, unsignedTail: 9 });
  });
});

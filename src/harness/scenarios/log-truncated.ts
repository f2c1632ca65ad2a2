/**
 * log-truncated — someone with the database deletes the newest audit entries, so the end of a
 * visit (its alarms, its coverage, its outcome) is gone from the record.
 *
 * What Threshold claims (src/core/audit-chain.ts; docs/threat-model.md, "Tampering with the
 * database behind the audit log"), and no more: signed checkpoints are kept in a table of their
 * own, so a log that ends before an entry a checkpoint signed is reported `truncated`; but an
 * attacker who deletes the newest entries *and* the checkpoints over them, cutting right after
 * an older checkpoint's record, leaves a shorter log that verifies — only a head noted
 * elsewhere shows it.
 *
 * The attack is made on a copy of the database taken from the running system (a stolen backup,
 * or the disk of a stopped server): deleting rows under a running server would only add a gap
 * its next entry makes plain, and would break the world this scenario runs in.
 *
 * Given a delivery done and signed, and the log's head as `threshold audit verify` reports it
 * (noted elsewhere, e.g. by the owner),
 * when the attacker deletes every entry after the record of the last checkpoint signed before
 * the visit's end, and then also the checkpoints after it,
 * then with the checkpoints kept `threshold audit verify` exits 1 `truncated`, naming the first
 * signed checkpoint that covers a deleted entry; with them deleted too it exits 0 on a shorter log,
 * whose head differs from the noted one.
 */
import Database from 'better-sqlite3';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { verifyEd25519 } from '../../server/keys.ts';
import type { Scenario } from '../scenario.ts';
import { auditVerifyCli, databaseFileOf } from './steps-integrity.ts';

export const logTruncated: Scenario = {
  name: 'log-truncated',
  expected:
    'newest audit entries deleted: verify exits 1 "truncated" at the first checkpoint past the cut; with the checkpoints deleted too the shorter log verifies and only a noted head shows it',
  async story({ world, expect }) {
    const { sys } = world;
    // ---- Given: a delivery done, its end signed ----
    const { access, sessionId } = await world.deliverInside();
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (sessionId === null) return { session: null };
    await world.requestRelock(sessionId);
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(done.state === 'completed', `the delivery completes (${done.state})`);
    // The camera's answer to its disarm comes a moment after the end; then all is signed.
    await world.waitFor(
      async () =>
        (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).some(
          (e) => e.kind === 'command.outcome' && e.data.action === 'disarm',
        ),
      5_000,
      'the camera answered its disarm',
    );
    await sys.audit.checkpoint();

    // ---- The attacker's copy of the database ----
    const live = await databaseFileOf(sys);
    const copyDir = mkdtempSync(join(tmpdir(), 'threshold-truncated-'));
    try {
      const file = join(copyDir, 'threshold.db');
      const source = new Database(live, { readonly: true });
      try {
        await source.backup(file);
      } finally {
        source.close();
      }
      mkdirSync(join(copyDir, 'keys'));
      const pub = join(dirname(live), 'keys', 'audit-ed25519.pub');
      copyFileSync(pub, join(copyDir, 'keys', 'audit-ed25519.pub'));

      // The head the owner noted (from an earlier export or verify), kept away from the server.
      const noted = await sys.audit.verify(verifyEd25519);
      expect.that(
        noted.ok && noted.unsignedTail === 0,
        `the log verifies, all signed, before the attack (${noted.firstBreak?.message ?? 'ok'}, ${noted.unsignedTail} unsigned)`,
      );
      const db = new Database(file);
      let cut = 0;
      let firstPast = 0;
      let deleted: { seq: number; kind: string }[] = [];
      try {
        const cps = (
          db.prepare('SELECT seq FROM audit_checkpoints ORDER BY seq').all() as { seq: number }[]
        ).map((r) => r.seq);
        const end = (
          db
            .prepare("SELECT max(seq) AS seq FROM audit_entries WHERE kind = 'session.ended'")
            .get() as { seq: number | null }
        ).seq;
        // Right after the record of the last checkpoint before the visit's end: the cleanest
        // cut that takes the end away.
        const previous = cps.filter((seq) => end !== null && seq + 1 < end).at(-1);
        if (previous === undefined) {
          expect.that(false, `a checkpoint precedes the visit's end (${cps.join(',')})`);
          return { session: done };
        }
        cut = previous + 1;
        firstPast = cps.find((seq) => seq > cut) ?? 0;
        deleted = db
          .prepare('SELECT seq, kind FROM audit_entries WHERE seq > ? ORDER BY seq')
          .all(cut) as { seq: number; kind: string }[];
        db.prepare('DELETE FROM audit_entries WHERE seq > ?').run(cut);
      } finally {
        db.close();
      }
      expect.that(
        deleted.some((e) => e.kind === 'session.ended'),
        `the deleted tail holds the visit's end (${deleted.length} entries: ${[...new Set(deleted.map((e) => e.kind))].join(', ')})`,
      );

      // ---- The tail gone, the checkpoints kept ----
      const truncated = await auditVerifyCli(copyDir);
      const brk = truncated.verdict?.firstBreak ?? null;
      expect.that(
        truncated.code === 1 && brk?.reason === 'truncated' && brk.seq === firstPast,
        `verify exits 1, truncated at the first signed checkpoint past the cut, ${firstPast} (exit ${truncated.code}: ${brk?.reason} at ${brk?.seq}: ${brk?.message})`,
      );

      // ---- The newest checkpoints deleted too ----
      const db2 = new Database(file);
      try {
        db2.prepare('DELETE FROM audit_checkpoints WHERE seq > ?').run(cut - 1);
      } finally {
        db2.close();
      }
      const shorter = await auditVerifyCli(copyDir);
      expect.that(
        shorter.code === 0 && shorter.verdict?.ok === true && shorter.verdict.lastSeq === cut,
        `the shorter log verifies: the documented limit (exit ${shorter.code}, ends at ${shorter.verdict?.lastSeq})`,
      );
      const headDiffers =
        shorter.verdict !== null &&
        (shorter.verdict.lastSeq < noted.lastSeq || shorter.verdict.lastHash !== noted.lastHash);
      expect.that(
        headDiffers,
        `only the noted head shows it (${noted.lastSeq}/${noted.lastHash.slice(0, 12)} vs ${shorter.verdict?.lastSeq}/${shorter.verdict?.lastHash.slice(0, 12)})`,
      );
      return {
        session: done,
        extra: {
          notedHead: { seq: noted.lastSeq, hash: noted.lastHash },
          cutAfterSeq: cut,
          deletedEntries: deleted.length,
          withCheckpoints: { exit: truncated.code, firstBreak: brk },
          checkpointsDeletedToo: {
            exit: shorter.code,
            ok: shorter.verdict?.ok ?? null,
            lastSeq: shorter.verdict?.lastSeq ?? null,
          },
        },
      };
    } finally {
      rmSync(copyDir, { recursive: true, force: true });
    }
  },
};

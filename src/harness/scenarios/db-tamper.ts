/**
 * db-tamper — someone with the database file (a stolen backup, a shell on the server) edits it
 * behind the audit log to make a bad visit look good: the session the camera stopped watching
 * is rewritten as a clean, completed delivery.
 *
 * What Threshold claims (docs/threat-model.md, "Tampering with the database behind the audit
 * log"), and no more: the audit log is hash-chained with signed checkpoints, and
 * `threshold audit verify` names the first changed entry; a rewrite of the chain from an entry
 * on cannot carry the server's signatures. Tables other than the log are *not* covered by the
 * chain: an edited row is served as it is, and the log is where the truth stays.
 *
 * Given a delivery whose camera was jammed (aborted with `observation-lost`, signed on record),
 * when, with their own SQLite connection, the attacker (1) rewrites the session's row as
 * completed without alarms, (2) also edits the session's closing audit entry to match, and
 * (3) recomputes that entry's hash and re-chains every later entry (they have no signing key),
 * then after (1) `threshold audit verify` still says intact — it cannot see other tables — and
 * the API serves the forged row, but the signed log still says aborted with the alarm, so the
 * edit shows against it; after (2) verify exits 1 naming the edited entry (`hash-mismatch`);
 * after (3) verify exits 1 at the first signed checkpoint after the edit. Once the original
 * bytes are put back, the log verifies again.
 */
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { entryHashInput, type AuditEntry } from '../../core/audit-chain.ts';
import { sha256Hex } from '../../server/keys.ts';
import type { Scenario } from '../scenario.ts';
import { call, signInOwner } from './common-steps.ts';
import { auditVerifyCli, courierInsideAndOut, databaseFileOf } from './steps-integrity.ts';

interface EntryRow {
  readonly seq: number;
  readonly data: string;
  readonly prev_hash: string;
  readonly hash: string;
}

export const dbTamper: Scenario = {
  name: 'db-tamper',
  expected:
    'database edited behind the log: a table row is not covered (verify intact, the signed log contradicts it); an edited entry is named (hash-mismatch); a re-chained log fails at the next signed checkpoint',
  async story({ world, expect }) {
    const { sys } = world;
    const owner = await signInOwner(world);

    // ---- Given: a visit the camera stopped watching, ended and signed ----
    const { sessionId } = await courierInsideAndOut(world, expect);
    if (sessionId === null) return { session: null };
    world.home.links.camera.cutLink();
    const truth = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 15_000);
    world.home.links.camera.restoreLink();
    expect.that(
      truth.state === 'aborted' && truth.alarms.some((a) => a.type === 'observation-lost'),
      `the visit ended aborted with observation-lost (${truth.state}, ${truth.alarms.map((a) => a.type).join(',')})`,
    );
    await sys.audit.checkpoint();
    const ended = (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).find(
      (e) => e.kind === 'session.ended',
    );
    if (ended === undefined) {
      expect.that(false, 'the session’s closing entry is in the log');
      return { session: truth };
    }

    const file = await databaseFileOf(sys);
    const dataDir = dirname(file);
    const attacker = new Database(file);
    attacker.pragma('busy_timeout = 5000');
    const sessionRow = attacker
      .prepare('SELECT state, data FROM access_sessions WHERE id = ?')
      .get(sessionId) as { state: string; data: string };
    const originalEntries = attacker
      .prepare('SELECT seq, data, prev_hash, hash FROM audit_entries WHERE seq >= ? ORDER BY seq')
      .all(ended.seq) as EntryRow[];
    const putBack = (): void => {
      attacker
        .prepare('UPDATE access_sessions SET state = ?, data = ? WHERE id = ?')
        .run(sessionRow.state, sessionRow.data, sessionId);
      const restore = attacker.prepare(
        'UPDATE audit_entries SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?',
      );
      attacker.transaction(() => {
        for (const r of originalEntries) restore.run(r.data, r.prev_hash, r.hash, r.seq);
      })();
    };

    let rowEdit: Awaited<ReturnType<typeof auditVerifyCli>> | null = null;
    let entryEdit: Awaited<ReturnType<typeof auditVerifyCli>> | null = null;
    let rechained: Awaited<ReturnType<typeof auditVerifyCli>> | null = null;
    let served: string | null = null;
    try {
      // ---- (1) The session's row says completed, no alarms ----
      const forged = {
        ...(JSON.parse(sessionRow.data) as Record<string, unknown>),
        state: 'completed',
        outcome: null,
        alarms: [],
      };
      attacker
        .prepare('UPDATE access_sessions SET state = ?, data = ? WHERE id = ?')
        .run('completed', JSON.stringify(forged), sessionId);
      served = String(
        (
          (await call(world, 'GET', `/api/sessions/${sessionId}`, owner)).body.session as {
            state?: string;
          }
        )?.state,
      );
      expect.that(
        served === 'completed',
        `the API serves the edited row: the database is trusted for current state (${served})`,
      );
      rowEdit = await auditVerifyCli(dataDir);
      expect.that(
        rowEdit.code === 0 && rowEdit.verdict?.ok === true && rowEdit.verdict.unsignedTail === 0,
        `verify cannot see a row outside the log: intact (exit ${rowEdit.code}, ${rowEdit.verdict?.firstBreak?.reason ?? 'no break'})`,
      );
      const signed = rowEdit.verdict !== null && ended.seq <= rowEdit.verdict.signedUpTo;
      const record = ended.data as { state?: string; alarms?: string[] };
      expect.that(
        signed && record.state === 'aborted' && (record.alarms ?? []).includes('observation-lost'),
        `the signed log still says ${record.state} with ${(record.alarms ?? []).join(',')} (entry ${ended.seq}, signed up to ${rowEdit.verdict?.signedUpTo})`,
      );

      // ---- (2) The closing entry is edited to match ----
      attacker
        .prepare('UPDATE audit_entries SET data = ? WHERE seq = ?')
        .run(
          JSON.stringify({ ...ended.data, state: 'completed', outcome: null, alarms: [] }),
          ended.seq,
        );
      entryEdit = await auditVerifyCli(dataDir);
      expect.that(
        entryEdit.code === 1 &&
          entryEdit.verdict?.firstBreak?.reason === 'hash-mismatch' &&
          entryEdit.verdict.firstBreak.seq === ended.seq,
        `verify names the edited entry ${ended.seq} (exit ${entryEdit.code}: ${entryEdit.verdict?.firstBreak?.reason} at ${entryEdit.verdict?.firstBreak?.seq})`,
      );

      // ---- (3) Its hash recomputed and every later entry re-chained, without the key ----
      const rewrite = attacker.prepare(
        'UPDATE audit_entries SET prev_hash = ?, hash = ? WHERE seq = ?',
      );
      const tail = await sys.store.audit.getRange(
        ended.seq,
        originalEntries.at(-1)?.seq ?? ended.seq,
      );
      attacker.transaction(() => {
        let prev = tail[0]?.prevHash ?? '';
        for (const e of tail) {
          const chained: Omit<AuditEntry, 'hash'> = { ...withoutHash(e), prevHash: prev };
          const hash = sha256Hex(entryHashInput(chained));
          rewrite.run(prev, hash, e.seq);
          prev = hash;
        }
      })();
      rechained = await auditVerifyCli(dataDir);
      const reason = rechained.verdict?.firstBreak?.reason;
      expect.that(
        rechained.code === 1 &&
          (reason === 'checkpoint-record-invalid' || reason === 'checkpoint-hash-mismatch') &&
          (rechained.verdict?.firstBreak?.seq ?? 0) > ended.seq,
        `verify fails at the next signed checkpoint (exit ${rechained.code}: ${reason} at ${rechained.verdict?.firstBreak?.seq})`,
      );
    } finally {
      putBack();
      attacker.close();
    }
    const restored = await world.auditVerified();
    expect.that(
      restored.ok,
      `with the original bytes back the log verifies (${restored.firstBreak ?? 'ok'})`,
    );
    const again = await world.session(sessionId);
    expect.that(again.state === 'aborted', `and the row is the truth again (${again.state})`);
    return {
      session: truth,
      extra: {
        editedEntrySeq: ended.seq,
        apiServedAfterRowEdit: served,
        afterRowEdit: rowEdit && {
          exit: rowEdit.code,
          ok: rowEdit.verdict?.ok ?? null,
          signedUpTo: rowEdit.verdict?.signedUpTo ?? null,
        },
        afterEntryEdit: entryEdit && {
          exit: entryEdit.code,
          firstBreak: entryEdit.verdict?.firstBreak ?? null,
        },
        afterRechain: rechained && {
          exit: rechained.code,
          firstBreak: rechained.verdict?.firstBreak ?? null,
        },
      },
    };
  },
};

/** An entry without its hash, as the chain's hash is computed over it. */
function withoutHash(e: AuditEntry): Omit<AuditEntry, 'hash'> {
  const { hash: _hash, ...rest } = e;
  return rest;
}

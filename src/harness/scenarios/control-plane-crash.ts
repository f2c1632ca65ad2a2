/**
 * control-plane-crash — the control plane dies in the middle of a delivery (power cut, OOM kill,
 * `kill -9`): nothing is flushed, nothing is signed on the way out, and the door is unlocked
 * with the courier inside.
 *
 * What Threshold claims (docs/threat-model.md, "Control-plane crash or restart mid-session"):
 * every step of a session is committed to the audit log before its commands go out; at the next
 * start a session left open is ended `aborted` with `session.interrupted` (it cannot be resumed
 * honestly), the lock is asked to lock until its own report says locked
 * (`recovery.door-secured`), and audit entries the crash left unsigned are signed under an
 * `audit.unsigned-tail` entry that says so. Principle 4: locked means bolt thrown *and* door
 * closed; no part of Threshold throws the bolt into an open door (the hub and the lock's own
 * deadline wait for it to close).
 *
 * The control plane here is `threshold serve` in a process of its own, on loopback ports that
 * stay the same across the restart (the devices reconnect to the same broker address), killed
 * with SIGKILL. The scenario's world is not used.
 *
 * Given a delivery under way — the door unlocked, the courier inside with the door open, the
 * owner having exported the visit's record so far,
 * when the control plane is killed and started again on the same data directory while the
 * courier is still inside, and the courier then walks out and shuts the door,
 * then every entry written before the kill is there unchanged after it (the exported ones
 * included) and the whole log verifies, the unsigned ones under `audit.unsigned-tail`; the
 * session is ended `aborted` `session.interrupted` on record and the delivery is left for
 * review; no bolt is thrown while the door is open, and once it is shut the door is locked and
 * `recovery.door-secured` recorded with the door closed.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AccessSession } from '../../core/access-session.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import { systemClock } from '../../protocol/system-clock.ts';
import { createDemoDelivery, DEMO_DOORSTEP, seedDemo } from '../../server/seed.ts';
import { startSystem } from '../../server/system.ts';
import { simHomeFor } from '../demo-sim-home.ts';
import { freePort } from '../free-port.ts';
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import {
  auditVerifyCli,
  httpAt,
  signInAt,
  startServe,
  within,
  type ServeProcess,
} from './steps-integrity.ts';

/** The lock's own deadline for this delivery: well past the story, so it is not what locks. */
const LOCK_OWN_DEADLINE_MS = 120_000;

export const controlPlaneCrash: Scenario = {
  name: 'control-plane-crash',
  expected:
    'control plane killed mid-session and restarted: nothing written before the kill lost, the log verifies (unsigned tail said so), the session aborted session.interrupted, the door locked once closed',
  async story({ expect }) {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-crash-'));
    let serve: ServeProcess | null = null;
    let home: ReturnType<typeof simHomeFor> | null = null;
    try {
      // ---- Given: a seeded data directory and a delivery booked ----
      const seeding = await startSystem({ dataDir: dir, port: 0, mqttPort: 0 });
      let creds: Awaited<ReturnType<typeof seedDemo>>;
      let deliveryId: string;
      try {
        creds = await seedDemo(seeding, dir, {
          credentialsFile: join(dir, 'scenario-credentials.json'),
        });
        const now = seeding.clock.now();
        deliveryId = (
          await createDemoDelivery(
            seeding,
            creds.homeId,
            creds.doorId,
            creds.carrier.id,
            creds.courier.id,
            now - 60_000,
            3_600_000,
            LOCK_OWN_DEADLINE_MS,
          )
        ).id;
      } finally {
        await seeding.close();
      }
      const [httpPort, mqttPort] = [await freePort(), await freePort()];
      serve = await startServe(dir, httpPort, mqttPort);
      home = simHomeFor(creds, `mqtt://127.0.0.1:${mqttPort}`, systemClock);
      await home.start();
      const owner = await signInAt(serve.url, creds.owner.username, creds.owner.password);
      const courier = await signInAt(serve.url, creds.courier.username, creds.courier.password);
      const url = serve.url;
      const online = await within(async () => {
        const st = await httpAt(url, 'GET', `/api/homes/${creds.homeId}`, owner);
        const d = (st.body.doors as Record<string, { online?: boolean }>[] | undefined)?.[0];
        return d?.lock?.online === true && d.door?.online === true && d.camera?.online === true;
      }, 10_000);
      expect.that(online, 'the control plane sees the door’s devices online');

      // ---- The courier is let in and steps inside; the door stays open behind them ----
      const access = await httpAt(
        url,
        'POST',
        `/api/courier/deliveries/${deliveryId}/access`,
        courier,
        { position: DEMO_DOORSTEP },
      );
      const opened = access.body.session as SessionView | undefined;
      expect.that(
        access.status === 200 && opened?.state === 'open',
        `the door opens for the courier (HTTP ${access.status} ${opened?.state ?? ''})`,
      );
      if (opened === undefined) return { session: null };
      const sessionId = opened.id;
      home.doorSensor.open();
      home.camera.setPerson(true);
      const exported = await httpAt(
        url,
        'GET',
        `/api/homes/${creds.homeId}/audit?sessionId=${sessionId}`,
        owner,
      );
      const acknowledged = (
        (exported.body.entries as
          { seq: number; hash: string; redacted?: boolean }[] | undefined) ?? []
      ).filter((e) => e.redacted !== true);
      expect.that(
        exported.status === 200 && acknowledged.length > 0,
        `the owner exported the visit's record so far (${acknowledged.length} entries)`,
      );
      // The door's opening is on record; the crash comes right after.
      await within(async () => {
        const v = await httpAt(url, 'GET', `/api/sessions/${sessionId}`, owner);
        return (v.body.session as SessionView | undefined)?.door === 'open';
      }, 5_000);

      // ---- The control plane is killed: no flush, no last signature ----
      const killedAt = Date.now();
      serve.child.kill('SIGKILL');
      const death = await serve.exited;
      serve = null;
      expect.that(death.signal === 'SIGKILL', `the process died by SIGKILL (${death.signal})`);
      const before = readLog(join(dir, 'threshold.db'));
      const lost = acknowledged.filter((a) => before.hashes.get(a.seq) !== a.hash);
      expect.that(
        lost.length === 0,
        `every exported entry is in the dead server's database (${lost.length} missing or changed)`,
      );

      // ---- It starts again on the same data; the courier is still inside ----
      const restartAt = Date.now();
      serve = await startServe(dir, httpPort, mqttPort);
      const upMs = Date.now() - restartAt;
      const boltWhileOpen: string[] = [];
      const doorOpenUntil = Date.now() + 3_000;
      while (Date.now() < doorOpenUntil) {
        boltWhileOpen.push(home.lock.bolt());
        await sleep(50);
      }
      const thrownIntoOpenDoor = boltWhileOpen.includes('locked');
      expect.that(
        !thrownIntoOpenDoor,
        `no bolt is thrown while the door is open (bolt seen: ${[...new Set(boltWhileOpen)].join(', ')})`,
      );
      home.camera.setPerson(false);
      home.doorSensor.close();
      const closedAt = Date.now();
      const locked = await within(() => home?.lock.bolt() === 'locked', 15_000);
      const lockedMs = Date.now() - closedAt;
      expect.that(
        locked,
        `once the door is shut it is locked (${home.lock.bolt()}, ${lockedMs} ms)`,
      );

      // ---- What the restarted control plane says and holds ----
      const owner2 = await signInAt(serve.url, creds.owner.username, creds.owner.password);
      const url2 = serve.url;
      let secured: { at: number; seq: number } | null = null;
      await within(async () => {
        const e = readEntries(join(dir, 'threshold.db'), `session:${sessionId}`).find(
          (x) => x.kind === 'recovery.door-secured',
        );
        secured = e === undefined ? null : { at: e.at, seq: e.seq };
        return secured !== null;
      }, 10_000);
      const securedAt = (secured as { at: number; seq: number } | null)?.at ?? null;
      expect.that(securedAt !== null, 'recovery.door-secured is on record for the session');
      expect.that(
        securedAt === null || securedAt >= closedAt,
        `…recorded with the door closed (${securedAt === null ? '?' : securedAt - closedAt} ms after it closed)`,
      );
      const viewed = await httpAt(url2, 'GET', `/api/sessions/${sessionId}`, owner2);
      const session = (viewed.body.session as SessionView | undefined) ?? null;
      expect.that(
        session?.state === 'aborted' && session.outcome?.code === 'session.interrupted',
        `the session is ended aborted session.interrupted (${session?.state} ${session?.outcome?.code ?? ''})`,
      );
      const entries = readEntries(join(dir, 'threshold.db'), `session:${sessionId}`);
      expect.that(
        entries.some((e) => e.kind === 'session.state' && e.data.reason === 'session.interrupted'),
        'the interruption is on record',
      );
      const after = readLog(join(dir, 'threshold.db'));
      const changed = [...before.hashes].filter(([seq, hash]) => after.hashes.get(seq) !== hash);
      expect.that(
        changed.length === 0,
        `every entry written before the kill is there unchanged (${before.hashes.size} entries, ${changed.length} missing or changed)`,
      );
      const tail = after.entries.find(
        (e) => e.kind === 'audit.unsigned-tail' && e.seq > before.last,
      );
      const unsignedBefore = before.last - before.lastSigned;
      expect.that(
        unsignedBefore === 0 ||
          (tail !== undefined &&
            Number(tail.data.fromSeq) <= before.lastSigned + 1 &&
            Number(tail.data.toSeq) === before.last),
        `the ${unsignedBefore} entries left unsigned by the kill are signed under audit.unsigned-tail (${tail ? `${String(tail.data.fromSeq)}–${String(tail.data.toSeq)}` : 'none'})`,
      );
      const deliveryStatus = readDeliveryStatus(join(dir, 'threshold.db'), deliveryId);
      expect.that(
        deliveryStatus === 'needs-review',
        `the delivery, whose door opened before the crash, is left for review (${deliveryStatus})`,
      );

      // ---- Stopped cleanly, the log verifies from the command line, all signed ----
      serve.child.kill('SIGTERM');
      await serve.exited;
      serve = null;
      const verify = await auditVerifyCli(dir);
      expect.that(
        verify.code === 0 && verify.verdict?.ok === true,
        `threshold audit verify: intact (exit ${verify.code}, ${verify.verdict?.firstBreak?.message ?? 'no break'})`,
      );
      const row = readSession(join(dir, 'threshold.db'), sessionId);
      return {
        session: session ?? (row as SessionView | null),
        extra: {
          restartMs: upMs,
          securedAfterRestartMs: securedAt === null ? null : securedAt - restartAt,
          lockedAfterDoorClosedMs: locked ? lockedMs : null,
          downForMs: restartAt - killedAt,
          boltThrownIntoOpenDoor: thrownIntoOpenDoor,
          entriesBeforeKill: before.hashes.size,
          unsignedAtKill: unsignedBefore,
          exportedEntriesKept: acknowledged.length - lost.length,
          deliveryStatus,
        },
      };
    } finally {
      if (serve !== null) {
        serve.child.kill('SIGKILL');
        await serve.exited;
      }
      await home?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

interface Row {
  readonly seq: number;
  readonly at: number;
  readonly kind: string;
  readonly data: Record<string, unknown>;
}

/** The audit log as stored: every entry's hash, the newest entry and the newest signed one. */
function readLog(file: string): {
  hashes: Map<number, string>;
  entries: Row[];
  last: number;
  lastSigned: number;
} {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db
      .prepare('SELECT seq, at, kind, data, hash FROM audit_entries ORDER BY seq')
      .all() as {
      seq: number;
      at: number;
      kind: string;
      data: string;
      hash: string;
    }[];
    const signed = db.prepare('SELECT max(seq) AS seq FROM audit_checkpoints').get() as {
      seq: number | null;
    };
    // A checkpoint's own record (the entry after the one it signs) needs no signature.
    const lastSigned = Math.min(rows.at(-1)?.seq ?? 0, (signed.seq ?? 0) + 1);
    return {
      hashes: new Map(rows.map((r) => [r.seq, r.hash])),
      entries: rows.map((r) => ({
        seq: r.seq,
        at: r.at,
        kind: r.kind,
        data: JSON.parse(r.data) as Record<string, unknown>,
      })),
      last: rows.at(-1)?.seq ?? 0,
      lastSigned,
    };
  } finally {
    db.close();
  }
}

/** The audit entries about one subject, read from the file. */
function readEntries(file: string, subject: string): Row[] {
  const db = new Database(file, { readonly: true });
  try {
    return (
      db
        .prepare('SELECT seq, at, kind, data FROM audit_entries WHERE subject = ? ORDER BY seq')
        .all(subject) as { seq: number; at: number; kind: string; data: string }[]
    ).map((r) => ({ ...r, data: JSON.parse(r.data) as Record<string, unknown> }));
  } finally {
    db.close();
  }
}

/** A delivery's status, read from the file. */
function readDeliveryStatus(file: string, id: string): string | null {
  const db = new Database(file, { readonly: true });
  try {
    const row = db.prepare('SELECT status FROM deliveries WHERE id = ?').get(id) as
      { status: string } | undefined;
    return row?.status ?? null;
  } finally {
    db.close();
  }
}

/** A stored session, read from the file. */
function readSession(file: string, id: string): AccessSession | null {
  const db = new Database(file, { readonly: true });
  try {
    const row = db.prepare('SELECT data FROM access_sessions WHERE id = ?').get(id) as
      { data: string } | undefined;
    return row === undefined ? null : (JSON.parse(row.data) as AccessSession);
  } finally {
    db.close();
  }
}

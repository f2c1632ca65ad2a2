/**
 * `/sessions/:id`: one visit in full — what happened when, what the camera recorded, its
 * alarms, and the audit entries behind it, downloadable as a verifiable export.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type {
  AuditExport,
  ClipFrameView,
  ExportedAuditEntry,
  SessionView,
} from '../../../src/protocol/views.ts';
import { api, apiResponse, messageOf } from '../api.ts';
import { CoverageBar } from '../components/coverage-bar.tsx';
import { useServerEvent } from '../events.ts';
import { Link } from '../router.ts';
import { formatDateTime, formatDuration, formatTime } from '../time.ts';
import {
  isFinished,
  NOT_RECORDED,
  NOT_RECORDED_WHY,
  roleLabel,
  stateLabel,
  stateOf,
} from '../words.ts';
import { AlarmItem, alarmKey, type AlarmsState } from './alarms.tsx';
import { ClipPlayer } from './clip-player.tsx';
import { useOwner } from './owner-context.ts';
import { OutcomeBadge, saveTextFile } from './timeline-page.tsx';

/** How many audit entries show before "Show all". */
const AUDIT_PREVIEW = 12;

/** While a session runs, its clip and audit entries are fetched again this often, ms. */
const LIVE_REFRESH_MS = 3_000;

function isRedactedEntry(
  e: ExportedAuditEntry,
): e is Extract<ExportedAuditEntry, { redacted: true }> {
  return 'redacted' in e && e.redacted === true;
}

/** Epoch milliseconds between 2001 and 2286: shown as a time, not as a 13-digit number. */
function looksLikeTime(key: string, v: number): boolean {
  return Number.isInteger(v) && v > 1e12 && v < 1e13 && /^at$|Ms$|At$|At[A-Z]/.test(key);
}

function summarise(key: string, value: unknown, tz: string): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value.length > 48 ? `${value.slice(0, 45)}…` : value;
  if (typeof value === 'number' && looksLikeTime(key, value)) return formatTime(value, tz);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const json = JSON.stringify(value);
  return json.length > 48 ? `${json.slice(0, 45)}…` : json;
}

/** "state=open · reason=…": the data of an entry in one line. */
function dataSummary(data: Readonly<Record<string, unknown>>, tz: string): string {
  const parts = Object.entries(data).map(([k, v]) => `${k}: ${summarise(k, v, tz)}`);
  return parts.length ? parts.join(' · ') : '—';
}

function AuditEntries({
  audit,
  error,
  tz,
}: {
  readonly audit: AuditExport | null;
  readonly error: string | null;
  readonly tz: string;
}) {
  const [showAll, setShowAll] = useState(false);
  if (error) {
    return (
      <p className="notice notice-warn" role="status" data-testid="audit-entries">
        Could not load the audit entries: {error}
      </p>
    );
  }
  if (!audit)
    return (
      <p className="muted" data-testid="audit-entries">
        Loading the audit entries…
      </p>
    );
  const v = audit.serverVerification;
  return (
    <div data-testid="audit-entries">
      <p className={v.ok ? 'verify verify-ok' : 'verify verify-bad'}>
        {v.ok
          ? `The chain checks out on the server: ${v.entries} entries linked and signed${
              audit.checkpoints.length
                ? `, ${audit.checkpoints.length} signed checkpoint${audit.checkpoints.length === 1 ? '' : 's'} in this export`
                : ''
            }.`
          : 'The server found a break in the audit chain. Download the log and keep it.'}
      </p>
      {audit.entries.length > AUDIT_PREVIEW && (
        <p className="muted small">
          {showAll
            ? `All ${audit.entries.length} entries, in chain order.`
            : `The first ${AUDIT_PREVIEW} of ${audit.entries.length} entries, in chain order.`}
        </p>
      )}
      {audit.entries.length === 0 ? (
        <p className="muted">No audit entries for this visit yet.</p>
      ) : (
        <ol className="audit-list">
          {(showAll ? audit.entries : audit.entries.slice(0, AUDIT_PREVIEW)).map((e) =>
            isRedactedEntry(e) ? (
              <li key={e.seq} className="audit-entry audit-entry-redacted">
                <span className="audit-seq">#{e.seq}</span>
                <span className="audit-redacted">(another home's entry, redacted)</span>
              </li>
            ) : (
              <li key={e.seq} className="audit-entry">
                <span className="audit-seq">#{e.seq}</span>
                <time className="audit-time" dateTime={new Date(e.at).toISOString()}>
                  {formatTime(e.at, tz)}
                </time>
                <span className="audit-kind">{e.kind}</span>
                <span className="audit-actor">
                  {e.actor.type}: {e.actor.id}
                  {e.deviceMac ? ' · signed by the device' : ''}
                </span>
                <span className="audit-data">{dataSummary(e.data, tz)}</span>
              </li>
            ),
          )}
        </ol>
      )}
      {audit.entries.length > AUDIT_PREVIEW && (
        <button
          type="button"
          className="btn btn-text audit-more"
          onClick={() => setShowAll(!showAll)}
          aria-expanded={showAll}
          data-testid="audit-show-all"
        >
          {showAll ? 'Show fewer' : `Show all ${audit.entries.length} entries`}
        </button>
      )}
    </div>
  );
}

/** One proof of the visit, with when it came. */
interface Fact {
  readonly label: string;
  readonly at: number | null;
  /** A camera proof, which a visit without a camera does not have, by design. */
  readonly camera: boolean;
}

/** Props of {@link SessionPage}. */
export interface SessionPageProps {
  readonly sessionId: string;
  readonly alarms: AlarmsState;
}

/** The session detail page. */
export function SessionPage({ sessionId, alarms }: SessionPageProps) {
  const { home, doorName } = useOwner();
  const tz = home.timeZone;
  const [session, setSession] = useState<SessionView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [frames, setFrames] = useState<readonly ClipFrameView[] | null>(null);
  const [clipError, setClipError] = useState<string | null>(null);
  const [audit, setAudit] = useState<{ parsed: AuditExport; text: string } | null>(null);
  const [auditError, setAuditError] = useState<string | null>(null);
  const [downloaded, setDownloaded] = useState(false);
  const enc = encodeURIComponent(sessionId);

  const loadSession = useCallback(() => {
    api<{ session: SessionView }>(`/api/sessions/${enc}`)
      .then((r) => {
        setSession(r.session);
        setError(null);
      })
      .catch((err: unknown) => setError(messageOf(err)));
  }, [enc]);

  const loadEvidence = useCallback(() => {
    api<{ frames: ClipFrameView[] }>(`/api/sessions/${enc}/clip`)
      .then((r) => {
        // Same frames, same array: the player keeps its place and its preloaded images.
        setFrames((old) =>
          old && old.length === r.frames.length && old.at(-1)?.seq === r.frames.at(-1)?.seq
            ? old
            : r.frames,
        );
        setClipError(null);
      })
      .catch((err: unknown) => setClipError(messageOf(err)));
    apiResponse(`/api/homes/${encodeURIComponent(home.id)}/audit?sessionId=${enc}`)
      .then(async (res) => {
        const text = await res.text();
        setAudit({ parsed: JSON.parse(text) as AuditExport, text });
        setAuditError(null);
      })
      .catch((err: unknown) => setAuditError(messageOf(err)));
  }, [enc, home.id]);

  useEffect(() => {
    loadSession();
    loadEvidence();
  }, [loadSession, loadEvidence]);

  const finished = session ? isFinished(stateOf(session)) : false;
  const loaded = session !== null;
  // While the visit runs, its clip and log grow: refresh them; once it ended, once more.
  const wasFinished = useRef(finished);
  useEffect(() => {
    if (finished && !wasFinished.current) loadEvidence();
    wasFinished.current = finished;
    if (!loaded || finished) return;
    const t = setInterval(() => {
      loadSession();
      loadEvidence();
    }, LIVE_REFRESH_MS);
    return () => clearInterval(t);
  }, [loaded, finished, loadSession, loadEvidence]);

  useServerEvent('session', (e) => {
    if (e.session.id === sessionId) loadSession();
  });
  useServerEvent('alarm', (e) => {
    if (e.sessionId === sessionId) loadSession();
  });

  if (error && !session) {
    return (
      <section className="page">
        <p>
          <Link to="/sessions" className="back-link">
            ← Timeline
          </Link>
        </p>
        <h1 className="page-title">Visit not found</h1>
        <p className="notice notice-warn" role="status">
          {error}
        </p>
      </section>
    );
  }
  if (!session) {
    return (
      <section className="page">
        <p className="muted">Loading the visit…</p>
      </section>
    );
  }

  // The alarms list has the freshest acknowledgements; the session view has the rest.
  const sessionAlarms = (session.alarmViews ?? []).map(
    (a) => alarms.alarms.find((x) => alarmKey(x) === alarmKey(a)) ?? a,
  );
  const who = session.who;
  const recorded = session.cameraDeviceId !== null;
  const facts: Fact[] = [
    { label: 'Camera proved it was recording', at: session.armedAt, camera: true },
    { label: 'Lock reported unlocked', at: session.unlockedAt, camera: false },
    { label: 'Asked to lock', at: session.relockRequestedAt, camera: false },
    { label: 'Lock confirmed locked', at: session.lockConfirmedAt, camera: false },
    { label: 'Fresh picture after locking', at: session.freshFrameAfterLockAt, camera: true },
  ];
  const shownFacts = facts.filter((f) => recorded || !f.camera);

  const download = () => {
    if (!audit) return;
    saveTextFile(`threshold-audit-session-${sessionId}.json`, audit.text);
    setDownloaded(true);
  };

  return (
    <section className="page session-page">
      <p>
        <Link to="/sessions" className="back-link">
          ← Timeline
        </Link>
      </p>
      <div className="page-head">
        <div>
          <h1 className="page-title">
            {who?.displayName ?? 'Someone'} at {doorName(session.doorId)}
          </h1>
          <p className="page-lede muted">
            {who ? `${roleLabel(who.role)} · ` : ''}
            {formatDateTime(session.createdAt, tz)}
            {session.endedAt !== null &&
              ` · took ${formatDuration(session.endedAt - session.createdAt)}`}
          </p>
        </div>
        <OutcomeBadge session={session} />
      </div>

      {sessionAlarms.length > 0 && (
        <ul className="alarm-list alarm-list-page alarm-list-active">
          {sessionAlarms.map((a) => (
            <AlarmItem key={alarmKey(a)} alarm={a} onAck={alarms.ack} onItsVisit />
          ))}
        </ul>
      )}

      <div className="session-grid">
        <div className="session-col">
          <section className="card" aria-labelledby="clip-title">
            <h2 id="clip-title" className="card-title">
              What the camera saw
            </h2>
            {!recorded ? (
              <p className="muted" data-testid="session-not-recorded">
                {NOT_RECORDED}: {NOT_RECORDED_WHY}. No camera was switched on for this visit; the
                lock and the door were checked as for any other.
              </p>
            ) : clipError ? (
              <p className="notice notice-warn" role="status">
                Could not load the clip: {clipError}
              </p>
            ) : frames === null ? (
              <p className="muted">Loading the clip…</p>
            ) : (
              <ClipPlayer frames={frames} timeZone={tz} />
            )}
            <h3 className="subhead">Camera coverage</h3>
            <CoverageBar coverage={session.coverage} timeZone={tz} detailed recorded={recorded} />
          </section>
        </div>
        <div className="session-col">
          <section className="card" aria-labelledby="history-title">
            <h2 id="history-title" className="card-title">
              What happened
            </h2>
            <ol className="history">
              {session.history.map((h, n) => (
                <li key={`${h.state}-${h.atMs}-${n}`} className={`history-item history-${h.state}`}>
                  <time className="history-time" dateTime={new Date(h.atMs).toISOString()}>
                    {formatTime(h.atMs, tz)}
                  </time>
                  <span className="history-state">{stateLabel(h.state)}</span>
                  {h.reason && <span className="history-reason muted">{h.reason}</span>}
                </li>
              ))}
            </ol>
            {session.outcome && (
              <p className="muted small">
                Outcome: {session.outcome.message} ({session.outcome.code})
              </p>
            )}
            <dl className="proofs">
              {shownFacts.map(({ label, at }) => (
                <div key={label} className="proof">
                  <dt>{label}</dt>
                  <dd>{at === null ? '—' : formatTime(at, tz)}</dd>
                </div>
              ))}
            </dl>
          </section>
        </div>
      </div>

      <section className="card" aria-labelledby="audit-title">
        <div className="card-head">
          <h2 id="audit-title" className="card-title">
            Audit entries
          </h2>
          <button
            type="button"
            className="btn btn-secondary"
            onClick={download}
            disabled={!audit}
            data-testid="audit-download"
          >
            Download verified audit log
          </button>
        </div>
        {downloaded && (
          <p className="form-ok small" role="status">
            Saved. Anyone can check it with <code>threshold audit verify --file …</code>
          </p>
        )}
        <AuditEntries audit={audit?.parsed ?? null} error={auditError} tz={tz} />
      </section>
    </section>
  );
}

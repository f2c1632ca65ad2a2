/**
 * The timeline: every access session at the home, newest first — who, when, how it ended, its
 * alarms and how much of it the camera watched ("Not recorded" for a guest whose grant does not
 * ask for the camera). And the audit log for a range of days.
 */
import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import type { SessionView } from '../../../src/protocol/views.ts';
import { api, apiResponse, messageOf } from '../api.ts';
import { CoverageBar } from '../components/coverage-bar.tsx';
import { useServerEvent, useStreamReopen } from '../events.ts';
import { Link } from '../router.ts';
import {
  formatDay,
  formatDuration,
  formatTime,
  nextIsoDate,
  startOfZonedDay,
  zonedIsoDate,
} from '../time.ts';
import { alarmLabel, isFinished, roleLabel, stateLabel, stateOf } from '../words.ts';
import { useOwner } from './owner-context.ts';

/** Saves text as a file through a temporary `<a download>` (no server round trip). */
export function saveTextFile(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later: some browsers read the blob after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A session's outcome as a badge: completed, refused (with the reason), aborted, or live. */
export function OutcomeBadge({ session }: { readonly session: SessionView }) {
  const state = stateOf(session);
  if (state === 'completed') return <span className="badge badge-ok">Completed</span>;
  if (state === 'refused')
    return (
      <span className="badge badge-neutral" title={session.outcome?.code}>
        Refused{session.outcome ? `: ${session.outcome.message}` : ''}
      </span>
    );
  if (state === 'aborted')
    return (
      <span className="badge badge-danger" title={session.outcome?.code}>
        Aborted{session.outcome ? `: ${session.outcome.message}` : ''}
      </span>
    );
  return <span className="badge badge-live">In progress — {stateLabel(state)}</span>;
}

function SessionRow({ session, tz }: { readonly session: SessionView; readonly tz: string }) {
  const { doorName } = useOwner();
  const who = session.who;
  const alarms = session.alarmViews ?? [];
  const ended = session.endedAt;
  return (
    <li>
      <Link to={`/sessions/${session.id}`} className="session-row" data-testid="session-row">
        <div className="session-when">
          <span className="session-day">{formatDay(session.createdAt, tz)}</span>
          <span className="session-time">{formatTime(session.createdAt, tz)}</span>
          {ended !== null && (
            <span className="session-duration muted">
              {formatDuration(ended - session.createdAt)}
            </span>
          )}
        </div>
        <div className="session-main">
          <p className="session-who">
            <strong>{who?.displayName ?? 'Someone'}</strong>
            {who && <span className="chip">{roleLabel(who.role)}</span>}
            <span className="muted"> · {doorName(session.doorId)}</span>
          </p>
          <p className="session-outcome">
            <OutcomeBadge session={session} />
            {alarms.map((a) => (
              <span
                key={a.type}
                className={a.acknowledged ? 'badge badge-danger-soft' : 'badge badge-danger'}
              >
                {alarmLabel(a.type)}
              </span>
            ))}
          </p>
        </div>
        <div className="session-coverage">
          <CoverageBar
            coverage={session.coverage}
            timeZone={tz}
            recorded={session.cameraDeviceId !== null}
          />
        </div>
      </Link>
    </li>
  );
}

/** The two-date form that downloads the audit log of a range of days. */
function ExportRange() {
  const { home } = useOwner();
  const tz = home.timeZone;
  const [today] = useState(() => zonedIsoDate(Date.now(), tz));
  const [from, setFrom] = useState(today);
  const [to, setTo] = useState(today);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!from || !to) return;
    if (to < from) {
      setMessage({ tone: 'error', text: 'The end date is before the start date.' });
      return;
    }
    // Whole days in the home's zone: from its first millisecond to the next day's start − 1.
    const fromMs = startOfZonedDay(from, tz);
    const toMs = startOfZonedDay(nextIsoDate(to), tz) - 1;
    setBusy(true);
    setMessage(null);
    try {
      const res = await apiResponse(
        `/api/homes/${encodeURIComponent(home.id)}/audit?from=${fromMs}&to=${toMs}`,
      );
      const text = await res.text();
      saveTextFile(`threshold-audit-${home.id}-${from}-to-${to}.json`, text);
      setMessage({
        tone: 'ok',
        text: 'Downloaded. Check it with: threshold audit verify --file …',
      });
    } catch (err) {
      setMessage({ tone: 'error', text: `Could not export: ${messageOf(err)}` });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="export card" onSubmit={(e) => void submit(e)} aria-labelledby="export-title">
      <h2 id="export-title" className="card-title">
        Export the audit log
      </h2>
      <p className="muted small">
        A signed, self-checking record of everything at your door for the days you choose (in {tz}{' '}
        time).
      </p>
      <div className="export-fields">
        <label className="field">
          <span className="field-label">From</span>
          <input
            className="input"
            type="date"
            value={from}
            max={to || undefined}
            onChange={(e) => setFrom(e.target.value)}
            required
            data-testid="export-from"
          />
        </label>
        <label className="field">
          <span className="field-label">To</span>
          <input
            className="input"
            type="date"
            value={to}
            min={from || undefined}
            onChange={(e) => setTo(e.target.value)}
            required
            data-testid="export-to"
          />
        </label>
        <button
          type="submit"
          className="btn btn-secondary"
          disabled={busy}
          data-testid="export-range"
        >
          {busy ? 'Preparing…' : 'Download'}
        </button>
      </div>
      {message && (
        <p className={message.tone === 'error' ? 'form-error' : 'form-ok'} role="status">
          {message.text}
        </p>
      )}
    </form>
  );
}

/** `/sessions`: the timeline. */
export function TimelinePage() {
  const { home } = useOwner();
  const tz = home.timeZone;
  const [sessions, setSessions] = useState<readonly SessionView[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(() => {
    api<{ sessions: SessionView[] }>(`/api/homes/${encodeURIComponent(home.id)}/sessions`)
      .then((r) => {
        setSessions(r.sessions);
        setError(null);
      })
      .catch((err: unknown) => setError(messageOf(err)));
  }, [home.id]);

  useEffect(() => {
    load();
  }, [load]);
  useStreamReopen(load);

  // A session changed: fetch the list again, at most twice a second.
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useServerEvent('session', (e) => {
    if (e.homeId !== home.id || timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      load();
    }, 500);
  });
  useServerEvent('alarm', (e) => {
    if (e.homeId === home.id) load();
  });
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );

  const running = sessions?.filter((s) => !isFinished(stateOf(s))).length ?? 0;
  return (
    <section className="page">
      <div className="page-head">
        <div>
          <h1 className="page-title">Timeline</h1>
          <p className="page-lede muted">
            Every time someone was let in — or refused — with what the camera saw.
          </p>
        </div>
        {running > 0 && <span className="badge badge-live">{running} in progress</span>}
      </div>
      {error && (
        <p className="notice notice-warn" role="status">
          Could not load the timeline: {error}
        </p>
      )}
      {sessions === null && !error && <p className="muted">Loading the timeline…</p>}
      {sessions?.length === 0 && (
        <div className="empty">
          <p>No one has been let in yet. Deliveries and visits will show here.</p>
        </div>
      )}
      {sessions && sessions.length > 0 && (
        <ul className="sessions" aria-label="Access sessions, newest first">
          {sessions.map((s) => (
            <SessionRow key={s.id} session={s} tz={tz} />
          ))}
        </ul>
      )}
      <ExportRange />
    </section>
  );
}

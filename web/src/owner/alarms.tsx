/**
 * Alarms: impossible to miss. Unacknowledged alarms sit in a red banner on top of every owner
 * page (`role="alert"`), fed by the `alarm` events and the alarms list; "Acknowledge" records
 * who saw it and when. The alarms page keeps the full record.
 */
import { useCallback, useEffect, useState } from 'react';
import type { AlarmView, SessionView } from '../../../src/protocol/views.ts';
import { api, isNotFound, messageOf } from '../api.ts';
import { AlertIcon } from '../components/icons.tsx';
import { useServerEvent, useStreamReopen } from '../events.ts';
import { Link } from '../router.ts';
import { formatDateTime, formatTime, useNow } from '../time.ts';
import { alarmExplanation, alarmLabel } from '../words.ts';
import './alarms.css';
import { useOwner } from './owner-context.ts';

/** The alarms of the home and what can be done with them. */
export interface AlarmsState {
  /** Newest first. */
  readonly alarms: readonly AlarmView[];
  readonly activeCount: number;
  readonly loaded: boolean;
  readonly error: string | null;
  /** Acknowledges an alarm; throws with the server's message when that fails. */
  readonly ack: (a: AlarmView) => Promise<void>;
  readonly reload: () => void;
}

/** One alarm's identity: a session raises each alarm type at most once. */
export function alarmKey(a: { readonly sessionId: string; readonly type: string }): string {
  return `${a.sessionId}:${a.type}`;
}

function upsert(list: readonly AlarmView[], a: AlarmView): AlarmView[] {
  const key = alarmKey(a);
  const rest = list.filter((x) => alarmKey(x) !== key);
  return [a, ...rest].sort((x, y) => y.atMs - x.atMs);
}

/** Loads the home's alarms and keeps them current from the event stream. */
export function useAlarms(homeId: string): AlarmsState {
  const [alarms, setAlarms] = useState<readonly AlarmView[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const reload = useCallback(() => {
    api<{ alarms: AlarmView[] }>(`/api/homes/${homeId}/alarms`)
      .then((r) => {
        setAlarms([...r.alarms].sort((x, y) => y.atMs - x.atMs));
        setError(null);
        setLoaded(true);
      })
      .catch(async (err: unknown) => {
        if (!isNotFound(err)) {
          setError(messageOf(err));
          return;
        }
        // No alarms list on this server: the sessions carry their alarms too.
        try {
          const r = await api<{ sessions: SessionView[] }>(`/api/homes/${homeId}/sessions`);
          setAlarms(r.sessions.flatMap((s) => s.alarmViews ?? []).sort((x, y) => y.atMs - x.atMs));
          setError(null);
          setLoaded(true);
        } catch (e) {
          setError(messageOf(e));
        }
      });
  }, [homeId]);

  useEffect(() => {
    reload();
  }, [reload]);
  useStreamReopen(reload);

  useServerEvent('alarm', (e) => {
    if (e.homeId !== homeId) return;
    // Show it at once; the list then brings the door and any acknowledgement.
    setAlarms((list) => {
      const known = list.find(
        (x) => alarmKey(x) === alarmKey({ ...e.alarm, sessionId: e.sessionId }),
      );
      const doorId = known?.doorId ?? list.find((x) => x.sessionId === e.sessionId)?.doorId ?? '';
      return upsert(list, {
        ...e.alarm,
        sessionId: e.sessionId,
        homeId: e.homeId,
        doorId,
        acknowledged: known?.acknowledged ?? null,
      });
    });
    reload();
  });
  useServerEvent('alarm-ack', (e) => {
    if (e.homeId !== homeId) return;
    setAlarms((list) => upsert(list, e.alarm));
  });

  const ack = useCallback(async (a: AlarmView) => {
    const r = await api<{ alarm: AlarmView }>(
      `/api/sessions/${encodeURIComponent(a.sessionId)}/alarms/${encodeURIComponent(a.type)}/ack`,
      { method: 'POST' },
    );
    setAlarms((list) => upsert(list, r.alarm));
  }, []);

  return {
    alarms,
    activeCount: alarms.filter((a) => !a.acknowledged).length,
    loaded,
    error,
    ack,
    reload,
  };
}

/** Acknowledged alarms stay in the banner this long (so the acknowledgement is seen), ms. */
const RECENT_ACK_MS = 2 * 60_000;

/** One alarm with its "Acknowledge" button or who acknowledged it. */
export function AlarmItem({
  alarm,
  onAck,
  compact,
  inBanner,
  onItsVisit,
}: {
  readonly alarm: AlarmView;
  readonly onAck: (a: AlarmView) => Promise<void>;
  readonly compact?: boolean;
  /** The banner's buttons carry the `alarm-ack` test hook; the alarms page's do not repeat it. */
  readonly inBanner?: boolean;
  /** Shown on its own visit's page: no "See the visit" link to the page it is on. */
  readonly onItsVisit?: boolean;
}) {
  const { home, doorName } = useOwner();
  const tz = home.timeZone;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const ack = async () => {
    setBusy(true);
    setError(null);
    try {
      await onAck(alarm);
    } catch (err) {
      setError(`Could not acknowledge: ${messageOf(err)}`);
    } finally {
      setBusy(false);
    }
  };
  const acked = alarm.acknowledged;
  // The app's own words say what happened and what to do; the server's message is what was
  // recorded about this very alarm (which heartbeat was rejected, what the lock did), kept on
  // the full pages for whoever wants the detail. The banner keeps to one line per alarm, so
  // that several at once still leave the page usable under it. A type this app does not know
  // yet shows the server's message rather than nothing.
  const explained = alarmExplanation(alarm.type);
  return (
    <li
      className={acked ? 'alarm alarm-acked' : 'alarm'}
      data-testid="alarm-item"
      data-alarm-type={alarm.type}
      data-session-id={alarm.sessionId}
    >
      <div className="alarm-main">
        <p className="alarm-title">
          <strong data-testid="alarm-title">{alarmLabel(alarm.type)}</strong>
          <span className="alarm-where" data-testid="alarm-where">
            {alarm.doorId ? ` · ${doorName(alarm.doorId)}` : ''} · since{' '}
            <time dateTime={new Date(alarm.sinceMs).toISOString()}>
              {compact ? formatTime(alarm.sinceMs, tz) : formatDateTime(alarm.sinceMs, tz)}
            </time>
          </span>
        </p>
        <p className="alarm-message" data-testid="alarm-what">
          {explained?.what ?? alarm.message}
        </p>
        {!compact && explained && (
          <>
            <p className="alarm-advice" data-testid="alarm-advice">
              {explained.advice}
            </p>
            <p className="alarm-detail" data-testid="alarm-detail">
              Recorded: {alarm.message}
            </p>
          </>
        )}
        {acked && (
          <p className="alarm-acked-by" data-testid={inBanner ? 'alarm-acked' : undefined}>
            Acknowledged by {acked.byName} at {formatTime(acked.at, tz)}
          </p>
        )}
        {error && <p className="alarm-error">{error}</p>}
      </div>
      <div className="alarm-actions">
        {!onItsVisit && (
          <Link to={`/sessions/${alarm.sessionId}`} className="alarm-link">
            See the visit
          </Link>
        )}
        {!acked && (
          <button
            type="button"
            className="btn btn-on-danger"
            onClick={() => void ack()}
            disabled={busy}
            data-testid={inBanner ? 'alarm-ack' : 'alarm-ack-page'}
          >
            {busy ? 'Acknowledging…' : 'Acknowledge'}
          </button>
        )}
      </div>
    </li>
  );
}

/** The red banner on top of every owner page while any alarm is unacknowledged. */
export function AlarmBanner({ alarms }: { readonly alarms: AlarmsState }) {
  const now = useNow(5_000);
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const active = alarms.alarms.filter((a) => !a.acknowledged);
  const recent = alarms.alarms.filter(
    (a) => a.acknowledged && now - a.acknowledged.at < RECENT_ACK_MS && !hidden.has(alarmKey(a)),
  );
  if (active.length === 0 && recent.length === 0) return null;
  return (
    <section
      className={active.length ? 'alarm-banner' : 'alarm-banner alarm-banner-calm'}
      data-testid="alarm-banner"
      aria-labelledby="alarm-banner-title"
    >
      <div className="alarm-banner-inner" role={active.length ? 'alert' : 'status'}>
        <h2 id="alarm-banner-title" className="alarm-banner-title">
          <AlertIcon size={24} />
          {active.length === 0
            ? 'Alarm acknowledged'
            : active.length === 1
              ? 'Alarm'
              : `${active.length} alarms`}
        </h2>
        <ul className="alarm-list">
          {active.map((a) => (
            <AlarmItem key={alarmKey(a)} alarm={a} onAck={alarms.ack} compact inBanner />
          ))}
          {recent.map((a) => (
            <AlarmItem key={alarmKey(a)} alarm={a} onAck={alarms.ack} compact inBanner />
          ))}
        </ul>
        {active.length === 0 && (
          <button
            type="button"
            className="btn btn-text alarm-hide"
            onClick={() => setHidden(new Set([...hidden, ...recent.map(alarmKey)]))}
          >
            Hide
          </button>
        )}
      </div>
    </section>
  );
}

/** `/alarms`: every alarm of the home, newest first, with its acknowledgement. */
export function AlarmsPage({ alarms }: { readonly alarms: AlarmsState }) {
  const active = alarms.alarms.filter((a) => !a.acknowledged);
  const past = alarms.alarms.filter((a) => a.acknowledged);
  return (
    <section className="page">
      <h1 className="page-title">Alarms</h1>
      <p className="page-lede muted">
        Threshold raises an alarm when it cannot vouch for your door: the camera stops watching, the
        lock does not confirm, or the door is left open.
      </p>
      {alarms.error && (
        <p className="notice notice-warn" role="status">
          Could not load the alarms: {alarms.error}
        </p>
      )}
      {alarms.loaded && alarms.alarms.length === 0 && (
        <div className="empty">
          <p>No alarms. Everything at your door has been confirmed.</p>
        </div>
      )}
      {active.length > 0 && (
        <>
          <h2 className="section-title">Needs your attention</h2>
          <ul className="alarm-list alarm-list-page alarm-list-active">
            {active.map((a) => (
              <AlarmItem key={alarmKey(a)} alarm={a} onAck={alarms.ack} />
            ))}
          </ul>
        </>
      )}
      {past.length > 0 && (
        <>
          <h2 className="section-title">Acknowledged</h2>
          <ul className="alarm-list alarm-list-page">
            {past.map((a) => (
              <AlarmItem key={alarmKey(a)} alarm={a} onAck={alarms.ack} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

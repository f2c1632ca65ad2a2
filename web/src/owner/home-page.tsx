/**
 * Home at a glance: for each door, the lock, the door and the camera — each as the devices last
 * *proved* it. A stale fact reads "unknown — last reported …", never as the last value. Remote
 * lock and (confirmed) unlock, and the live view.
 */
import { useState, type ReactNode } from 'react';
import type { DoorStatusView, FactView, HomeStatusView } from '../../../src/protocol/views.ts';
import { api, ApiError, messageOf } from '../api.ts';
import { ConfirmDialog } from '../components/confirm-dialog.tsx';
import { CameraIcon, DoorIcon, LockIcon } from '../components/icons.tsx';
import { Link } from '../router.ts';
import { formatTime } from '../time.ts';
import { lockErrorSentence, stateLabel, stateOf } from '../words.ts';
import { EntriesCard } from './entries-card.tsx';
import { LiveView, useLiveView, type LiveViewState } from './live-view.tsx';
import { useOwner } from './owner-context.ts';

type Tone = 'ok' | 'warn' | 'danger';

interface FactText {
  readonly state: string;
  readonly tone: Tone;
  readonly text: string;
  /** Continues `text` in the same sentence, in lighter type ("— last reported …"). */
  readonly rest?: string;
  readonly detail?: string;
}

/** "Unknown — last reported locked at 12:03:04" (plus "offline since" when it is). */
function unknownText<T extends string>(
  f: FactView<T>,
  tz: string,
): { text: string; rest: string; detail?: string } {
  const rest =
    f.lastKnown !== null && f.lastSeenAt !== null
      ? ` — last reported ${f.lastKnown} at ${formatTime(f.lastSeenAt, tz)}`
      : ' — never reported';
  if (!f.online && f.offlineSince !== null) {
    return {
      text: 'Unknown',
      rest,
      detail: `Offline since ${formatTime(f.offlineSince, tz)}`,
    };
  }
  return { text: 'Unknown', rest };
}

function lockText(f: DoorStatusView['lock'], tz: string): FactText {
  switch (f.value) {
    case 'locked':
      return { state: 'locked', tone: 'ok', text: 'Locked' };
    case 'unlocked':
      return { state: 'unlocked', tone: 'warn', text: 'Unlocked' };
    case 'jammed':
      return { state: 'jammed', tone: 'danger', text: 'Jammed — check the door' };
    case 'unknown':
      return { state: 'unknown', tone: 'warn', ...unknownText(f, tz) };
  }
}

function doorText(f: DoorStatusView['door'], tz: string): FactText {
  switch (f.value) {
    case 'closed':
      return { state: 'closed', tone: 'ok', text: 'Closed' };
    case 'open':
      return { state: 'open', tone: 'warn', text: 'Open' };
    case 'unknown':
      return { state: 'unknown', tone: 'warn', ...unknownText(f, tz) };
  }
}

function cameraText(f: DoorStatusView['camera'], live: LiveViewState | null, tz: string): FactText {
  if (f.deviceId === null) return { state: 'none', tone: 'warn', text: 'No camera at this door' };
  if (f.value === 'unknown') {
    const since = f.offlineSince ?? f.lastSeenAt;
    return {
      state: 'offline',
      tone: 'danger',
      text: since === null ? 'Offline — never reported' : `Offline since ${formatTime(since, tz)}`,
    };
  }
  // The live view knows more than the heartbeat: a camera can be online and frozen.
  if (live?.view && !live.stalledHere && live.status === 'frozen') {
    return {
      state: 'frozen',
      tone: 'danger',
      text: live.since === null ? 'Frozen' : `Frozen since ${formatTime(live.since, tz)}`,
    };
  }
  if (live?.view && live.status === 'offline') {
    return {
      state: 'offline',
      tone: 'danger',
      text: live.since === null ? 'Offline' : `Offline since ${formatTime(live.since, tz)}`,
    };
  }
  return {
    state: 'live',
    tone: 'ok',
    text: 'Live',
    detail: f.value === 'recording' ? 'Recording' : 'Standing by',
  };
}

function Fact({
  icon,
  label,
  fact,
  testId,
}: {
  readonly icon: ReactNode;
  readonly label: string;
  readonly fact: FactText;
  readonly testId: string;
}) {
  return (
    <div className={`fact fact-${fact.tone}`}>
      <dt className="fact-label">
        <span className="fact-icon">{icon}</span>
        {label}
      </dt>
      <dd className="fact-value">
        <span data-testid={testId} data-state={fact.state}>
          {fact.text}
          {fact.rest && <span className="fact-rest">{fact.rest}</span>}
        </span>
        {fact.detail && <span className="fact-detail">{fact.detail}</span>}
      </dd>
    </div>
  );
}

/** One door: its facts, remote lock / unlock, and its camera's live view. */
export function DoorCard({ door }: { readonly door: DoorStatusView }) {
  const { home, setStatus } = useOwner();
  const tz = home.timeZone;
  const live = useLiveView(home.id, door.camera.deviceId);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState<'lock' | 'unlock' | null>(null);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);

  const command = async (action: 'lock' | 'unlock') => {
    setBusy(action);
    setMessage(null);
    try {
      const r = await api<{ command: { id: string; status: string }; status: HomeStatusView }>(
        `/api/homes/${encodeURIComponent(home.id)}/doors/${encodeURIComponent(door.doorId)}/command`,
        { method: 'POST', body: action === 'unlock' ? { action, confirm: true } : { action } },
      );
      setStatus(r.status);
      setMessage({
        tone: 'ok',
        text:
          action === 'lock'
            ? 'The lock took the command.'
            : 'The lock took the command. It relocks itself after 5 minutes.',
      });
    } catch (err) {
      setMessage({
        tone: 'error',
        text: err instanceof ApiError ? lockErrorSentence(err.code, err.message) : messageOf(err),
      });
    } finally {
      setBusy(null);
      setConfirming(false);
    }
  };

  const lock = lockText(door.lock, tz);
  const doorFact = doorText(door.door, tz);
  const camera = cameraText(door.camera, door.camera.deviceId ? live : null, tz);
  const worst: Tone = [lock, doorFact, camera].some((f) => f.tone === 'danger')
    ? 'danger'
    : [lock, doorFact, camera].some((f) => f.tone === 'warn')
      ? 'warn'
      : 'ok';
  const summary =
    worst === 'ok'
      ? 'Locked, closed and watched.'
      : worst === 'danger'
        ? 'Needs your attention.'
        : 'Not everything is confirmed.';

  return (
    <article
      className={`door-card door-card-${worst}`}
      data-testid="door-card"
      data-door-id={door.doorId}
    >
      <div className="door-info">
        <header className="door-head">
          <h2 className="door-name">{door.name}</h2>
          <p className={`door-summary tone-${worst}`}>{summary}</p>
        </header>
        <dl className="facts">
          <Fact
            icon={<LockIcon open={door.lock.value === 'unlocked'} />}
            label="Lock"
            fact={lock}
            testId="lock-state"
          />
          <Fact icon={<DoorIcon />} label="Door" fact={doorFact} testId="door-state" />
          <Fact icon={<CameraIcon />} label="Camera" fact={camera} testId="camera-state" />
        </dl>
        <div className="door-actions">
          <button
            type="button"
            className={door.lock.value === 'locked' ? 'btn btn-secondary' : 'btn btn-primary'}
            onClick={() => void command('lock')}
            disabled={busy !== null}
            data-testid="lock-button"
          >
            <LockIcon />
            {busy === 'lock' ? 'Locking…' : 'Lock'}
          </button>
          <button
            type="button"
            className="btn btn-secondary"
            onClick={() => setConfirming(true)}
            disabled={busy !== null}
            data-testid="unlock-button"
          >
            <LockIcon open />
            {busy === 'unlock' ? 'Unlocking…' : 'Unlock…'}
          </button>
        </div>
        {message && (
          <p
            className={
              message.tone === 'error' ? 'door-message door-message-error' : 'door-message'
            }
            role={message.tone === 'error' ? 'alert' : 'status'}
          >
            {message.text}
          </p>
        )}
      </div>
      {door.camera.deviceId && (
        <div className="door-live">
          <LiveView state={live} timeZone={tz} doorName={door.name} />
        </div>
      )}
      <ConfirmDialog
        open={confirming}
        title={`Unlock ${door.name}?`}
        confirmLabel="Confirm"
        danger
        busy={busy !== null}
        onConfirm={() => void command('unlock')}
        onCancel={() => setConfirming(false)}
        testId="unlock-dialog"
      >
        <p>It relocks itself after 5 minutes.</p>
      </ConfirmDialog>
    </article>
  );
}

/** "Now at your door": the visits under way (those waiting for an answer have the prompt). */
function NowAtTheDoor() {
  const { home, active, doorName } = useOwner();
  const visits = active.filter((a) => stateOf(a.session) !== 'awaiting-owner');
  if (visits.length === 0) return null;
  return (
    <section className="card now" aria-labelledby="now-title" data-testid="now-at-door">
      <h2 id="now-title" className="card-title">
        Now at your door
      </h2>
      <ul className="now-list">
        {visits.map(({ session, who }) => {
          const since = session.history.at(-1)?.atMs ?? session.updatedAt;
          return (
            <li key={session.id} className="now-item">
              <span className="now-dot" aria-hidden="true" />
              <span className="now-text">
                <strong>{who ?? 'Someone'}</strong> at {doorName(session.doorId)}:{' '}
                {stateLabel(stateOf(session)).toLowerCase()} since{' '}
                {formatTime(since, home.timeZone)}
              </span>
              <Link to={`/sessions/${session.id}`} className="now-link">
                See the visit
              </Link>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/** `/`: every door of the home, then who came in. */
export function HomePage() {
  const { home, status, statusError } = useOwner();
  return (
    <section className="page">
      <div className="page-head">
        <div>
          <h1 className="page-title">{home.name}</h1>
          <p className="page-lede muted">{home.address}</p>
        </div>
        {status && (
          <p className="muted small page-updated">
            Checked at {formatTime(status.at, home.timeZone)}
          </p>
        )}
      </div>
      {statusError && (
        <p className="notice notice-warn" role="status">
          The latest status could not be loaded ({statusError}). What you see may be out of date.
        </p>
      )}
      <NowAtTheDoor />
      {!status && !statusError && <p className="muted">Loading the doors…</p>}
      {status && status.doors.length === 0 && (
        <div className="empty">
          <p>No doors are set up for this home yet.</p>
        </div>
      )}
      <div className="doors">
        {status?.doors.map((d) => (
          <DoorCard key={d.doorId} door={d} />
        ))}
      </div>
      {/* After the doors: on a phone, the lock and its controls stay on the first screen. */}
      <EntriesCard />
    </section>
  );
}

/**
 * The owner's live view of a camera. It asks the server to keep the picture coming (POST every
 * 10 s) and shows each fresh frame from the `live` events. It must never *look* live when it
 * is not: when the camera is offline or frozen — or when no fresh frame has reached this page
 * for 2.5 s, in case the event stream itself is cut — a dark red cover hides the picture.
 */
import { useEffect, useRef, useState } from 'react';
import type { LiveViewStatus } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { useServerEvent } from '../events.ts';
import { formatTime, useNow } from '../time.ts';

/** How often the live view is renewed (it lasts 30 s on the server), ms. */
const KEEPALIVE_MS = 10_000;
/** With no fresh frame for this long, the picture counts as frozen on this screen, ms. */
const CLIENT_STALE_MS = 2_500;

/** What the live view shows. */
export type LiveStatus = 'starting' | 'live' | 'offline' | 'frozen';

/** The live view's state as the page should show it. */
export interface LiveViewState {
  readonly status: LiveStatus;
  /** Since when the picture is not live (the last fresh frame), ms; null if unknown. */
  readonly since: number | null;
  /** The server's status, or null before the first answer. */
  readonly view: LiveViewStatus | null;
  /**
   * Set when pictures stopped reaching this page although the server last said live (the
   * event stream may be cut): shown as offline, since nothing proves the door is watched.
   */
  readonly stalledHere: boolean;
  /** Why the live view could not be started, if it could not. */
  readonly error: string | null;
}

/** Keeps a camera's live view going while the calling component is mounted. */
export function useLiveView(homeId: string, cameraId: string | null): LiveViewState {
  const [view, setView] = useState<LiveViewStatus | null>(null);
  const [freshAt, setFreshAt] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const now = useNow(250);
  const lastDigest = useRef<string | null>(null);

  const accept = (v: LiveViewStatus) => {
    setView((prev) => (prev && v.at < prev.at ? prev : v));
    if (v.status === 'live' && v.frame) {
      // A repeated digest is no news: only a new frame proves the picture is moving.
      if (v.frame.digest !== lastDigest.current) {
        lastDigest.current = v.frame.digest;
        setFreshAt(Date.now());
      }
    }
  };
  const acceptRef = useRef(accept);
  useEffect(() => {
    acceptRef.current = accept;
  });

  useEffect(() => {
    if (!cameraId) return;
    let live = true;
    const renew = () => {
      // A hidden tab does not keep the camera streaming; coming back renews at once.
      if (document.hidden) return;
      api<{ view: LiveViewStatus }>(
        `/api/homes/${encodeURIComponent(homeId)}/cameras/${encodeURIComponent(cameraId)}/live`,
        { method: 'POST' },
      )
        .then((r) => {
          if (!live) return;
          setError(null);
          acceptRef.current(r.view);
        })
        .catch((err: unknown) => {
          if (live) setError(messageOf(err));
        });
    };
    renew();
    const t = setInterval(renew, KEEPALIVE_MS);
    document.addEventListener('visibilitychange', renew);
    return () => {
      live = false;
      clearInterval(t);
      document.removeEventListener('visibilitychange', renew);
    };
  }, [homeId, cameraId]);

  useServerEvent('live', (e) => {
    if (e.homeId === homeId && e.view.cameraId === cameraId) accept(e.view);
  });

  if (!view) {
    return {
      status: error ? 'offline' : 'starting',
      since: null,
      view: null,
      stalledHere: false,
      error,
    };
  }
  if (view.status === 'live') {
    if (!view.frame) return { status: 'starting', since: null, view, stalledHere: false, error };
    const stale = freshAt === null || now - freshAt > CLIENT_STALE_MS;
    // Pictures stopped reaching this page: for the person looking, the camera is offline.
    return stale
      ? { status: 'offline', since: view.frame.capturedAt, view, stalledHere: true, error }
      : { status: 'live', since: null, view, stalledHere: false, error };
  }
  return {
    status: view.status,
    since: view.since ?? view.frame?.capturedAt ?? null,
    view,
    stalledHere: false,
    error,
  };
}

/** Props of {@link LiveView}. */
export interface LiveViewProps {
  readonly state: LiveViewState;
  readonly timeZone: string;
  readonly doorName: string;
}

/** The picture, its LIVE badge, or the cover that says why it is not live. */
export function LiveView({ state, timeZone, doorName }: LiveViewProps) {
  const frame = state.view?.frame ?? null;
  const at = (ms: number | null) => (ms === null ? '' : ` since ${formatTime(ms, timeZone)}`);
  let cover: { title: string; detail: string } | null = null;
  if (state.status === 'offline') {
    cover = !state.view
      ? {
          title: 'Camera offline',
          detail: `The live view could not be started: ${state.error ?? 'no answer'}`,
        }
      : state.stalledHere
        ? {
            title: `Camera offline${at(state.since)}`,
            detail: 'No new picture has reached this screen for a few seconds.',
          }
        : {
            title: `Camera offline${at(state.since)}`,
            detail: 'Nothing is being recorded at this door. Threshold will not let anyone in.',
          };
  } else if (state.status === 'frozen') {
    cover = {
      title: `Picture frozen${at(state.since)}`,
      detail: 'The camera keeps sending the same picture. Threshold will not let anyone in.',
    };
  }
  return (
    <div
      className={`live live-${state.status}`}
      data-testid="live-view"
      data-live-status={state.status}
    >
      <div className="live-frame">
        {frame ? (
          <img
            className="live-img"
            src={frame.url}
            alt={`Live picture at ${doorName}`}
            data-testid="live-image"
            data-captured-at={frame.capturedAt}
          />
        ) : (
          <div className="live-img live-img-empty" aria-hidden="true" />
        )}
        {state.status === 'starting' && (
          <div className="live-cover live-cover-starting" data-testid="live-starting">
            <span className="spinner" aria-hidden="true" />
            <p className="live-cover-title">Starting the camera…</p>
          </div>
        )}
        {cover && (
          <div className="live-cover live-cover-danger" role="alert" data-testid="live-overlay">
            <svg viewBox="0 0 24 24" width="34" height="34" aria-hidden="true" focusable="false">
              <path d="M12 3l10 18H2z" fill="none" stroke="currentColor" strokeWidth="1.8" />
              <path d="M12 10v5" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" />
              <circle cx="12" cy="18" r="1" fill="currentColor" />
            </svg>
            <p className="live-cover-title">{cover.title}</p>
            <p className="live-cover-detail">{cover.detail}</p>
          </div>
        )}
      </div>
      <div className="live-caption">
        {state.status === 'live' && frame ? (
          <>
            <span className="live-badge" data-testid="live-badge">
              <span className="live-dot" aria-hidden="true" />
              LIVE
            </span>
            <span className="live-time">
              captured{' '}
              <time dateTime={new Date(frame.capturedAt).toISOString()}>
                {formatTime(frame.capturedAt, timeZone)}
              </time>
            </span>
          </>
        ) : (
          <span className={state.status === 'starting' ? 'live-note' : 'live-note live-note-bad'}>
            {state.status === 'starting' ? 'Connecting…' : 'Not live'}
          </span>
        )}
        <span className="live-door">{doorName} camera</span>
      </div>
    </div>
  );
}

/**
 * One delivery at the door, step by step. Every wait says what it waits for; every refusal
 * says what to do instead.
 *
 * In-home:
 *   where am I → slide to unlock (sends the access request: the server opens the lock when
 *   it succeeds) → [owner's answer] → door open → "Door closed — lock" → lock confirmed →
 *   door checked on camera → next stop.
 *
 * The session is followed through the event stream and, in case that is cut, by asking the
 * server every second.
 *
 * Doorstep (the carrier asked for the parcel to be left outside): no swipe, the door never
 * opens; "Left at the door" → next stop.
 */
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import type { AccessSession, CourierDeliveryView } from '../../../src/protocol/views.ts';
import { api, ApiError, messageOf } from '../api.ts';
import { SwipeUnlock } from '../components/swipe-unlock.tsx';
import { useServerEvent } from '../events.ts';
import { Link } from '../router.ts';
import { formatCountdown, formatHourMinute, useNow } from '../time.ts';
import { courierSentence, stateOf, type AnySessionState } from '../words.ts';
import { deliveryWindow } from './courier-app.tsx';
import { RelockButton } from '../components/relock-button.tsx';

/** A position as the access request sends it. */
interface Position {
  readonly lat: number;
  readonly lon: number;
  readonly accuracyM: number;
}

type Step =
  | { readonly kind: 'locating' }
  | { readonly kind: 'ready'; readonly position: Position | null; readonly note: string | null }
  | { readonly kind: 'requesting' }
  | { readonly kind: 'session' }
  | { readonly kind: 'refused'; readonly code: string; readonly text: string }
  | { readonly kind: 'failed'; readonly text: string };

const POLL_MS = 1_000;
const STORE_PREFIX = 'threshold.courier.session.';

function locate(): Promise<{ position: Position | null; note: string | null }> {
  if (!('geolocation' in navigator)) {
    return Promise.resolve({ position: null, note: 'This phone cannot share its location.' });
  }
  return new Promise((resolve) => {
    navigator.geolocation.getCurrentPosition(
      (p) =>
        resolve({
          position: {
            lat: p.coords.latitude,
            lon: p.coords.longitude,
            accuracyM: Math.min(100_000, Math.max(0, p.coords.accuracy)),
          },
          note: null,
        }),
      (err) =>
        resolve({
          position: null,
          note:
            err.code === err.PERMISSION_DENIED
              ? 'Location is blocked for this page, so the door cannot check you are there.'
              : err.code === err.TIMEOUT
                ? 'Finding your location took too long.'
                : 'Your location could not be found.',
        }),
      { enableHighAccuracy: true, timeout: 10_000, maximumAge: 0 },
    );
  });
}

/** The demo home's doorstep, when the server runs `threshold demo`; null otherwise. */
let demoDoorstep: Promise<Position | null> | null = null;
function loadDemoDoorstep(): Promise<Position | null> {
  demoDoorstep ??= api<{ demo: { doorstep: Position } | null }>('/api/config').then(
    (c) => c.demo?.doorstep ?? null,
    () => null,
  );
  return demoDoorstep;
}

/** Whether the courier's part of the session is over. */
function isOver(state: AnySessionState): boolean {
  return state === 'completed' || state === 'refused' || state === 'aborted';
}

/** Props of {@link DeliveryFlow}. */
export interface DeliveryFlowProps {
  readonly delivery: CourierDeliveryView;
  /** Back to the list ("Next stop"). */
  readonly onDone: () => void;
}

/** The delivery at the door: the in-home flow, or the doorstep one. */
export function DeliveryFlow(props: DeliveryFlowProps) {
  return props.delivery.placement === 'doorstep' ? (
    <DoorstepFlow {...props} />
  ) : (
    <InHomeFlow {...props} />
  );
}

/** Where the delivery goes and when: the card both flows show on top. */
function DeliveryCard({ delivery, now }: { readonly delivery: CourierDeliveryView; now: number }) {
  return (
    <article className="flow-card" data-testid="courier-delivery-card">
      <p className="delivery-window">{deliveryWindow(delivery, now)}</p>
      <h1 className="flow-address">{delivery.home?.address ?? 'Address not available'}</h1>
      <p className="muted">
        Parcel <span className="mono">{delivery.packageRef}</span>
      </p>
    </article>
  );
}

/** What the courier is told, with a spinner while it waits. */
function CourierStatus({
  tone,
  children,
}: {
  readonly tone: 'wait' | 'ok' | 'bad' | 'info';
  readonly children: ReactNode;
}) {
  const waiting = tone === 'wait';
  return (
    <div
      className={`courier-status courier-status-${tone}`}
      data-testid="courier-status"
      role={tone === 'bad' ? 'alert' : 'status'}
      aria-live={tone === 'bad' ? 'assertive' : 'polite'}
      aria-busy={waiting || undefined}
    >
      {waiting && <span className="spinner" aria-hidden="true" />}
      <span>{children}</span>
    </div>
  );
}

/** A parcel for the doorstep: leave it outside, say so, next stop. */
function DoorstepFlow({ delivery, onDone }: DeliveryFlowProps) {
  const [listNow] = useState(() => Date.now());
  const [step, setStep] = useState<
    | { readonly kind: 'ready' }
    | { readonly kind: 'sending' }
    | { readonly kind: 'done'; readonly text: string }
    | { readonly kind: 'refused'; readonly text: string }
  >({ kind: 'ready' });

  const leftAtDoor = async () => {
    setStep({ kind: 'sending' });
    try {
      const r = await api<{ message: string }>(
        `/api/courier/deliveries/${encodeURIComponent(delivery.id)}/left-at-door`,
        { method: 'POST' },
      );
      setStep({ kind: 'done', text: r.message });
    } catch (err) {
      setStep({
        kind: 'refused',
        text: err instanceof ApiError ? courierSentence(err.code, err.message) : messageOf(err),
      });
    }
  };

  let tone: 'wait' | 'ok' | 'bad' | 'info';
  let status: string;
  let body: ReactNode;
  switch (step.kind) {
    case 'ready':
    case 'sending':
      tone = step.kind === 'sending' ? 'wait' : 'info';
      status =
        step.kind === 'sending'
          ? 'Telling the sender…'
          : 'Leave this parcel at the door (the door does not open for it), then tap Left at the door.';
      body = (
        <>
          <button
            type="button"
            className="btn btn-primary btn-block btn-huge"
            disabled={step.kind === 'sending'}
            onClick={() => void leftAtDoor()}
            data-testid="left-at-door"
          >
            Left at the door
          </button>
          <Link to="/courier" className="btn btn-text btn-block">
            Not now — back to my deliveries
          </Link>
        </>
      );
      break;
    case 'done':
      tone = 'ok';
      status = step.text;
      body = (
        <button
          type="button"
          className="btn btn-primary btn-block btn-huge"
          onClick={onDone}
          data-testid="next-stop"
        >
          Next stop
        </button>
      );
      break;
    case 'refused':
      tone = 'bad';
      status = step.text;
      body = (
        <button type="button" className="btn btn-secondary btn-block btn-large" onClick={onDone}>
          Back to my deliveries
        </button>
      );
      break;
  }
  return (
    <div className="flow" data-step={`doorstep-${step.kind}`}>
      <p>
        <Link to="/courier" className="back-link">
          ← My deliveries
        </Link>
      </p>
      <DeliveryCard delivery={delivery} now={listNow} />
      <CourierStatus tone={tone}>{status}</CourierStatus>
      <div className="flow-actions">{body}</div>
    </div>
  );
}

/** The in-home delivery: the door opens under the camera. */
function InHomeFlow({ delivery, onDone }: DeliveryFlowProps) {
  const tz = delivery.home?.timeZone ?? 'UTC';
  const storeKey = STORE_PREFIX + delivery.id;
  const [step, setStep] = useState<Step>({ kind: 'locating' });
  const [session, setSession] = useState<AccessSession | null>(null);
  const [relock, setRelock] = useState<
    | { readonly kind: 'idle' }
    | { readonly kind: 'pending' }
    | { readonly kind: 'answered'; readonly confirmed: boolean; readonly message: string }
    | { readonly kind: 'error'; readonly text: string }
  >({ kind: 'idle' });
  const requestStartedAt = useRef(0);
  const sessionRef = useRef<AccessSession | null>(null);
  useEffect(() => {
    sessionRef.current = session;
  }, [session]);
  const now = useNow(500);
  const [listNow] = useState(() => Date.now());
  const [demo, setDemo] = useState<Position | null>(null);
  useEffect(() => {
    let live = true;
    void loadDemoDoorstep().then((p) => {
      if (live) setDemo(p);
    });
    return () => {
      live = false;
    };
  }, []);

  /** Takes a newer snapshot of the session; older ones (out-of-order events) are ignored. */
  const take = useCallback(
    (s: AccessSession) => {
      setSession((cur) => {
        if (cur && cur.id === s.id && s.updatedAt < cur.updatedAt) return cur;
        return s;
      });
      try {
        sessionStorage.setItem(storeKey, s.id);
      } catch {
        // Private mode: resuming after a reload is a convenience only.
      }
    },
    [storeKey],
  );

  const findLocation = useCallback(() => {
    setStep({ kind: 'locating' });
    void locate().then(({ position, note }) => setStep({ kind: 'ready', position, note }));
  }, []);

  // On arrival: resume a session this phone started (after a reload), or find the location.
  useEffect(() => {
    let live = true;
    let stored: string | null = null;
    try {
      stored = sessionStorage.getItem(storeKey);
    } catch {
      stored = null;
    }
    const start = () => {
      if (!live) return;
      void locate().then(({ position, note }) => {
        if (live) setStep({ kind: 'ready', position, note });
      });
    };
    if (!stored) {
      start();
    } else {
      api<{ session: AccessSession }>(`/api/courier/sessions/${encodeURIComponent(stored)}`)
        .then((r) => {
          if (!live) return;
          const st = stateOf(r.session);
          if (st === 'refused' || st === 'completed') {
            sessionStorage.removeItem(storeKey);
            start();
          } else {
            setSession(r.session);
            setStep({ kind: 'session' });
          }
        })
        .catch(start);
    }
    return () => {
      live = false;
    };
  }, [storeKey]);

  // Follow the session: events as they happen…
  useServerEvent('session', (e) => {
    const s = e.session;
    if (session && s.id === session.id) take(s);
    else if (
      !session &&
      step.kind === 'requesting' &&
      s.deliveryId === delivery.id &&
      s.createdAt >= requestStartedAt.current - 5_000
    ) {
      // The access request is still waiting; its session already tells what it waits for.
      take(s);
    }
  });

  // …and a poll every second in case the event stream is cut.
  const sessionId = session?.id ?? null;
  const over = session ? isOver(stateOf(session)) : false;
  useEffect(() => {
    if (!sessionId || over) return;
    const t = setInterval(() => {
      api<{ session: AccessSession }>(`/api/courier/sessions/${encodeURIComponent(sessionId)}`)
        .then((r) => take(r.session))
        .catch(() => {
          // The next poll or event brings it; a lost connection shows on the next action.
        });
    }, POLL_MS);
    return () => clearInterval(t);
  }, [sessionId, over, take]);

  const requestAccess = async (position: Position | null) => {
    requestStartedAt.current = Date.now();
    setStep({ kind: 'requesting' });
    try {
      const r = await api<{ session: AccessSession }>(
        `/api/courier/deliveries/${encodeURIComponent(delivery.id)}/access`,
        { method: 'POST', body: { position } },
      );
      take(r.session);
      setStep({ kind: 'session' });
    } catch (err) {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
        try {
          sessionStorage.removeItem(storeKey);
        } catch {
          // Nothing stored, nothing to forget.
        }
        setSession(null);
        setStep({
          kind: 'refused',
          code: err.code,
          text: courierSentence(err.code, err.message),
        });
      } else if (sessionRef.current) {
        // The answer got lost, but the session is known: keep following it.
        setStep({ kind: 'session' });
      } else {
        setStep({
          kind: 'failed',
          text: err instanceof ApiError ? courierSentence(err.code, err.message) : messageOf(err),
        });
      }
    }
  };

  const requestRelock = async () => {
    if (!session) return;
    setRelock({ kind: 'pending' });
    try {
      const r = await api<{ session: AccessSession; confirmed: boolean; message: string }>(
        `/api/courier/sessions/${encodeURIComponent(session.id)}/relock`,
        { method: 'POST' },
      );
      take(r.session);
      setRelock({ kind: 'answered', confirmed: r.confirmed, message: r.message });
    } catch (err) {
      setRelock({
        kind: 'error',
        text: err instanceof ApiError ? courierSentence(err.code, err.message) : messageOf(err),
      });
    }
  };

  const finish = () => {
    try {
      sessionStorage.removeItem(storeKey);
    } catch {
      // Nothing stored.
    }
    onDone();
  };

  // What to say and what to offer, from the step and the session's state.
  let tone: 'wait' | 'ok' | 'bad' | 'info' = 'wait';
  let status: string;
  let body: ReactNode = null;
  const state = session ? stateOf(session) : null;

  if (step.kind === 'locating') {
    status = 'Checking where you are…';
  } else if (step.kind === 'ready') {
    tone = 'info';
    status = 'Slide to open the door. The camera starts recording first.';
    body = (
      <>
        {step.note && (
          <div className="notice notice-warn">
            <p>{step.note} Without it the door will not open.</p>
            <button type="button" className="btn btn-secondary" onClick={findLocation}>
              Try my location again
            </button>
          </div>
        )}
        {demo && step.position !== demo && (
          <div className="notice notice-info" data-testid="demo-doorstep">
            <p>
              Demo: this browser is probably not at the demo home, so its own location would be
              refused.
            </p>
            <button
              type="button"
              className="btn btn-secondary"
              onClick={() => setStep({ kind: 'ready', position: demo, note: null })}
            >
              Pretend I am at the demo home’s door
            </button>
          </div>
        )}
        <SwipeUnlock onComplete={() => void requestAccess(step.position)} />
        <Link to="/courier" className="btn btn-text btn-block">
          Not now — back to my deliveries
        </Link>
      </>
    );
  } else if (step.kind === 'refused') {
    tone = 'bad';
    status = step.text;
    body = (
      <button type="button" className="btn btn-secondary btn-block btn-large" onClick={finish}>
        Back to my deliveries
      </button>
    );
  } else if (step.kind === 'failed') {
    tone = 'bad';
    status = step.text;
    body = (
      <>
        <button
          type="button"
          className="btn btn-primary btn-block btn-large"
          onClick={findLocation}
        >
          Try again
        </button>
        <button type="button" className="btn btn-text btn-block" onClick={finish}>
          Back to my deliveries
        </button>
      </>
    );
  } else if (!session || state === null || state === 'requested' || state === 'arming') {
    status = 'Checking the camera is recording…';
  } else if (state === 'unlocking') {
    status = 'Waiting for the lock to open…';
  } else if (state === 'awaiting-owner') {
    const left = session.deadlineAt === null ? null : session.deadlineAt - now;
    status =
      left === null
        ? 'Waiting for the owner to answer…'
        : `Waiting for the owner to answer — ${formatCountdown(left)} left`;
  } else if (state === 'open' && relock.kind !== 'pending') {
    tone = 'ok';
    status = 'Door open — leave the parcel inside, close the door, then tap Door closed — lock';
    body = (
      <>
        {session.deadlineAt !== null && (
          <p className="muted center">
            Please be done by {formatHourMinute(session.deadlineAt, tz)}.
          </p>
        )}
        <RelockButton
          error={relock.kind === 'error' ? relock.text : null}
          onLock={() => void requestRelock()}
          testId="relock"
        />
      </>
    );
  } else if (state === 'open' || state === 'relocking') {
    status = 'Waiting for the lock to confirm…';
    if (relock.kind === 'answered' && !relock.confirmed) {
      body = <p className="notice notice-warn">{relock.message}</p>;
    }
  } else if (state === 'verifying') {
    status = 'Checking the door on camera…';
  } else if (state === 'completed') {
    tone = 'ok';
    status = 'Locked and confirmed. Thank you!';
    body = (
      <button
        type="button"
        className="btn btn-primary btn-block btn-huge"
        onClick={finish}
        data-testid="next-stop"
      >
        Next stop
      </button>
    );
  } else if (state === 'refused') {
    tone = 'bad';
    status = session.outcome
      ? courierSentence(session.outcome.code, session.outcome.message)
      : 'The door will not open for this delivery — leave the parcel at the door.';
    body = (
      <button type="button" className="btn btn-secondary btn-block btn-large" onClick={finish}>
        Back to my deliveries
      </button>
    );
  } else {
    tone = 'bad';
    status = `This visit was stopped${
      session.outcome ? `: ${session.outcome.message}` : ''
    }. The owner has been told; you do not need to do anything else.`;
    body = (
      <button type="button" className="btn btn-secondary btn-block btn-large" onClick={finish}>
        Back to my deliveries
      </button>
    );
  }

  return (
    <div className="flow" data-step={step.kind} data-session-state={state ?? undefined}>
      <p>
        <Link to="/courier" className="back-link">
          ← My deliveries
        </Link>
      </p>
      <DeliveryCard delivery={delivery} now={listNow} />
      <CourierStatus tone={tone}>{status}</CourierStatus>
      <div className="flow-actions">{body}</div>
    </div>
  );
}

/**
 * The guest's face, `/guest`: when they may come in, in plain words, whether their entries are
 * recorded, and for each access an "Open the door" swipe. docs/api.md §11.4–11.6.
 *
 *   slide → the camera proves it records → the lock opens → "Door closed — lock" → the lock
 *   and the door are confirmed → done.
 *
 * Under a grant without "camera must record" the camera step is left out (the lock opens at
 * once), and the page says plainly that entries are not recorded.
 *
 * A guest has no event stream: a visit is followed by asking the server every second. There is
 * no history, no live view and no other guest here, by design.
 */
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import type {
  AccessSession,
  GuestGrantView,
  PrincipalSummary,
} from '../../../src/protocol/views.ts';
import { api, ApiError, messageOf } from '../api.ts';
import { PhoneFrame } from '../components/phone-frame.tsx';
import { SwipeUnlock } from '../components/swipe-unlock.tsx';
import { formatWhen, grantNow } from '../when.ts';
import { guestSentence, stateOf } from '../words.ts';
import { RelockButton } from '../components/relock-button.tsx';

const SESSION_POLL_MS = 1_000;
/** "May come in now" changes with the clock, and the household may revoke at any moment. */
const GRANTS_POLL_MS = 10_000;

type Step =
  | { readonly kind: 'idle' }
  | { readonly kind: 'requesting' }
  | { readonly kind: 'session' }
  | { readonly kind: 'refused'; readonly text: string };

type Relock =
  | { readonly kind: 'idle' }
  | { readonly kind: 'pending' }
  | { readonly kind: 'answered'; readonly confirmed: boolean }
  | { readonly kind: 'error'; readonly text: string };

function isOver(state: string): boolean {
  return state === 'completed' || state === 'refused' || state === 'aborted';
}

/** A refusal as the guest reads it, with the next start when the server gives one. */
function refusalText(err: unknown): string {
  if (!(err instanceof ApiError)) return messageOf(err);
  const text = guestSentence(err.code, err.message);
  const next = err.detail?.nextStartsAt;
  return typeof next === 'number' ? `${text} Next from ${formatWhen(next)}.` : text;
}

/** Why the door cannot be opened under this grant now, in the guest's words; null if it can. */
function notNow(g: GuestGrantView): string | null {
  const n = g.now;
  if (n.allowed) return null;
  switch (n.reason) {
    case 'revoked':
      return 'Your access was withdrawn.';
    case 'used':
      return 'You have used all the entries of this invitation.';
    case 'ended':
      return 'Your access has ended.';
    default:
      return n.nextStartsAt === null
        ? 'You may not come in now.'
        : `You may not come in now. Next from ${formatWhen(n.nextStartsAt)}.`;
  }
}

/** One access: when, and the door. */
function GrantCard({ grant, onChanged }: { grant: GuestGrantView; onChanged: () => void }) {
  const [step, setStep] = useState<Step>({ kind: 'idle' });
  const [session, setSession] = useState<AccessSession | null>(null);
  const [relock, setRelock] = useState<Relock>({ kind: 'idle' });

  const take = useCallback((s: AccessSession) => {
    setSession((cur) => (cur && cur.id === s.id && s.updatedAt < cur.updatedAt ? cur : s));
  }, []);

  const sessionId = session?.id ?? null;
  const over = session ? isOver(stateOf(session)) : false;
  useEffect(() => {
    if (!sessionId || over) return;
    const t = setInterval(() => {
      api<{ session: AccessSession }>(`/api/guest/sessions/${encodeURIComponent(sessionId)}`)
        .then((r) => take(r.session))
        .catch(() => {
          // The next poll brings it; a lost connection shows on the next action.
        });
    }, SESSION_POLL_MS);
    return () => clearInterval(t);
  }, [sessionId, over, take]);

  useEffect(() => {
    if (over) onChanged();
  }, [over, onChanged]);

  const open = async () => {
    setStep({ kind: 'requesting' });
    setRelock({ kind: 'idle' });
    setSession(null);
    try {
      const r = await api<{ session: AccessSession }>(
        `/api/guest/grants/${encodeURIComponent(grant.id)}/access`,
        { method: 'POST' },
      );
      take(r.session);
      setStep({ kind: 'session' });
    } catch (err) {
      setStep({ kind: 'refused', text: refusalText(err) });
      onChanged();
    }
  };

  const lock = async () => {
    if (!session) return;
    setRelock({ kind: 'pending' });
    try {
      const r = await api<{ session: AccessSession; confirmed: boolean }>(
        `/api/guest/sessions/${encodeURIComponent(session.id)}/relock`,
        { method: 'POST' },
      );
      take(r.session);
      setRelock({ kind: 'answered', confirmed: r.confirmed });
    } catch (err) {
      setRelock({ kind: 'error', text: refusalText(err) });
    }
  };

  const reset = () => {
    setStep({ kind: 'idle' });
    setSession(null);
    setRelock({ kind: 'idle' });
  };

  const blocked = notNow(grant);
  const now = grantNow(grant);
  let tone: 'wait' | 'ok' | 'bad' | 'info' = 'info';
  let statusText: string | null = null;
  let body: ReactNode = null;
  const state = session ? stateOf(session) : null;
  // The session says for sure (it may outlive a change of the grant); before it, the grant.
  const recorded = session ? session.cameraDeviceId !== null : grant.limits.requiresRecording;

  if (step.kind === 'idle') {
    if (blocked) {
      // Not an alarm: a plain statement of when the door opens for this guest (or that it
      // no longer does).
      tone = 'info';
      statusText = blocked;
    } else {
      body = <SwipeUnlock hint="Slide to open the door" onComplete={() => void open()} />;
    }
  } else if (step.kind === 'refused') {
    tone = 'bad';
    statusText = step.text;
    body = (
      <button type="button" className="btn btn-secondary btn-block" onClick={reset}>
        OK
      </button>
    );
  } else if (!session || state === 'requested' || state === 'arming') {
    tone = 'wait';
    statusText = recorded ? 'Checking the camera is recording…' : 'Opening the door…';
  } else if (state === 'unlocking') {
    tone = 'wait';
    statusText = 'Waiting for the lock to open…';
  } else if (state === 'open' && relock.kind !== 'pending') {
    tone = 'ok';
    statusText = 'Door open — come in. When the door is shut behind you, tap Door closed — lock.';
    body = (
      <>
        {session.deadlineAt !== null && (
          <p className="muted center">
            The door locks by itself at {formatWhen(session.deadlineAt)}.
          </p>
        )}
        <RelockButton
          error={relock.kind === 'error' ? relock.text : null}
          onLock={() => void lock()}
          testId="guest-relock"
        />
      </>
    );
  } else if (state === 'open' || state === 'relocking') {
    tone = 'wait';
    statusText = 'Waiting for the lock to confirm…';
    if (relock.kind === 'answered' && !relock.confirmed)
      body = (
        <p className="notice notice-warn">
          The lock has not confirmed yet. Check that the door is shut.
        </p>
      );
  } else if (state === 'verifying') {
    tone = 'wait';
    statusText = recorded ? 'Checking the door on camera…' : 'Checking the door is shut…';
  } else if (state === 'completed') {
    tone = 'ok';
    statusText = 'Locked and confirmed. Thank you!';
    body = (
      <button
        type="button"
        className="btn btn-secondary btn-block"
        onClick={reset}
        data-testid="guest-done"
      >
        Done
      </button>
    );
  } else {
    tone = 'bad';
    statusText = session.outcome
      ? guestSentence(session.outcome.code, session.outcome.message)
      : 'The door did not open.';
    body = (
      <button type="button" className="btn btn-secondary btn-block" onClick={reset}>
        OK
      </button>
    );
  }

  const waiting = tone === 'wait';
  return (
    <article
      className="flow-card guest-grant"
      data-testid="guest-access"
      data-step={step.kind}
      data-session-state={state ?? undefined}
    >
      <h2 className="flow-address">{grant.doorName}</h2>
      <h3 className="subhead">When you may come in</h3>
      <p data-testid="guest-when">{grant.description}</p>
      <p>
        <span
          className={`badge ${now.tone === 'ok' ? 'badge-ok' : now.tone === 'danger' ? 'badge-danger-soft' : 'badge-neutral'}`}
          data-testid="guest-grant-now"
        >
          {now.text}
        </span>
      </p>
      <p className="muted small">
        Invited by {grant.grantedBy.displayName}
        {grant.limits.maxUses !== null &&
          ` · ${grant.uses} of ${grant.limits.maxUses} ${grant.limits.maxUses === 1 ? 'entry' : 'entries'} used`}
        .{' '}
        <span data-testid="guest-recording">
          {grant.limits.requiresRecording
            ? 'The door camera records each of your entries.'
            : 'Your entries are not recorded: the camera is not switched on for you.'}
        </span>
      </p>
      {statusText && (
        <div
          className={`courier-status courier-status-${tone}`}
          data-testid="guest-status"
          role={tone === 'bad' ? 'alert' : 'status'}
          aria-live={tone === 'bad' ? 'assertive' : 'polite'}
          aria-busy={waiting || undefined}
        >
          {waiting && <span className="spinner" aria-hidden="true" />}
          <span>{statusText}</span>
        </div>
      )}
      {body && <div className="flow-actions">{body}</div>}
    </article>
  );
}

/** Props of {@link GuestApp}. */
export interface GuestAppProps {
  readonly principal: PrincipalSummary;
  readonly onSignOut: () => void;
}

/** The guest face, once signed in. */
export function GuestApp({ principal, onSignOut }: GuestAppProps) {
  const [grants, setGrants] = useState<readonly GuestGrantView[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(() => {
    api<{ grants: GuestGrantView[] }>('/api/guest/grants')
      .then((r) => {
        setGrants(r.grants);
        setError(null);
      })
      .catch((err: unknown) => setError(messageOf(err)));
  }, []);

  useEffect(() => {
    load();
    const t = setInterval(load, GRANTS_POLL_MS);
    return () => clearInterval(t);
  }, [load]);

  return (
    <PhoneFrame
      home="/guest"
      homeLabel="Threshold — my access"
      displayName={principal.displayName}
      onSignOut={onSignOut}
      className="guest"
    >
      <section className="page flow" data-testid="guest-page">
        <h1 className="page-title">Hello, {principal.displayName}</h1>
        {error && (
          <p className="notice notice-warn" role="status">
            Could not load your access: {error}
          </p>
        )}
        {grants === null && !error && <p className="muted">Loading your access…</p>}
        {grants?.length === 0 && <p className="empty">You have no access to a door yet.</p>}
        {grants?.map((g) => (
          <GrantCard key={g.id} grant={g} onChanged={load} />
        ))}
      </section>
    </PhoneFrame>
  );
}

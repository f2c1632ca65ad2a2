/**
 * "Ask me first": when a courier's session waits in `awaiting-owner`, the owner sees who is at
 * which door, a countdown to the deadline, and two answers. No answer in time means "leave it
 * at the door" (the server decides that, not this page).
 */
import { useState } from 'react';
import type { AccessSession } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { formatCountdown, useNow } from '../time.ts';
import { stateOf } from '../words.ts';
import type { ActiveSession } from './active-sessions.ts';
import { useOwner } from './owner-context.ts';

/** Every session of the home that waits for the owner's answer, as prompts. */
export function DecisionPrompts() {
  const { active, putSession } = useOwner();
  const waiting = active.filter((a) => stateOf(a.session) === 'awaiting-owner');
  if (waiting.length === 0) return null;
  return (
    <div className="decisions">
      {waiting.map((w) => (
        <DecisionPrompt key={w.session.id} waiting={w} onAnswered={putSession} />
      ))}
    </div>
  );
}

function DecisionPrompt({
  waiting,
  onAnswered,
}: {
  readonly waiting: ActiveSession;
  readonly onAnswered: (s: AccessSession, who?: string | null) => void;
}) {
  const { doorName } = useOwner();
  const now = useNow(250);
  const [busy, setBusy] = useState<'let-in' | 'leave-at-door' | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { session, who } = waiting;
  const left = session.deadlineAt === null ? null : session.deadlineAt - now;
  const timeUp = left !== null && left <= 0;

  const decide = async (decision: 'let-in' | 'leave-at-door') => {
    setBusy(decision);
    setError(null);
    try {
      const r = await api<{ session: AccessSession }>(
        `/api/sessions/${encodeURIComponent(session.id)}/decision`,
        { method: 'POST', body: { decision } },
      );
      onAnswered(r.session, who);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(null);
    }
  };

  const titleId = `decision-${session.id}`;
  return (
    <section className="decision" aria-labelledby={titleId} aria-live="assertive">
      <div className="decision-inner">
        <div className="decision-text">
          <h2 id={titleId} className="decision-title">
            {who ?? 'A courier'} is at {doorName(session.doorId)} with a delivery
          </h2>
          <p className="decision-countdown" data-testid="decision-countdown">
            {left === null
              ? 'They are waiting for your answer.'
              : timeUp
                ? 'Time is up — they will leave it at the door.'
                : `${formatCountdown(left)} left to answer — then they leave it at the door.`}
          </p>
          {error && (
            <p className="decision-error" role="alert">
              {error}
            </p>
          )}
        </div>
        <div className="decision-actions">
          <button
            type="button"
            className="btn btn-primary btn-large"
            onClick={() => void decide('let-in')}
            disabled={busy !== null || timeUp}
            data-testid="decision-let-in"
          >
            {busy === 'let-in' ? 'Letting in…' : 'Let in'}
          </button>
          <button
            type="button"
            className="btn btn-secondary btn-large"
            onClick={() => void decide('leave-at-door')}
            disabled={busy !== null || timeUp}
            data-testid="decision-leave"
          >
            {busy === 'leave-at-door' ? 'Sending…' : 'Leave at door'}
          </button>
        </div>
      </div>
    </section>
  );
}

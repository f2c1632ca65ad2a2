/**
 * The settings card "Who unlocked — notifications": whose entries are pushed to the signed-in
 * owner or member — everyone's but their own, only the people they choose, or nobody's. Every
 * entry shows on the home page whatever is chosen here; this is only about push messages.
 */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { EntryAlertsView } from '../../../src/protocol/views.ts';
import { api, isNotFound, messageOf } from '../api.ts';
import { roleLabel } from '../words.ts';
import { useOwner } from './owner-context.ts';
import './entries.css';

type Mode = EntryAlertsView['mode'];

const MODES: readonly { readonly id: Mode; readonly label: string; readonly hint: string }[] = [
  {
    id: 'all',
    label: 'Every entry (except mine)',
    hint: 'Whoever unlocks a door, however: the app, a keypad code, a key.',
  },
  {
    id: 'chosen',
    label: 'Only the people I choose',
    hint: 'Entries of the people ticked below.',
  },
  { id: 'off', label: 'None', hint: 'No notifications about entries.' },
];

type Load =
  | { readonly kind: 'loading' }
  | { readonly kind: 'loaded' }
  | { readonly kind: 'unavailable' }
  | { readonly kind: 'error'; readonly message: string };

type Save =
  | { readonly kind: 'idle' }
  | { readonly kind: 'saving' }
  | { readonly kind: 'saved' }
  | { readonly kind: 'error'; readonly message: string };

/** The whole card, for the settings page. */
export function EntryAlertsCard() {
  return (
    <section className="card" aria-labelledby="entry-alerts-title" data-testid="entry-alerts">
      <h2 id="entry-alerts-title" className="card-title">
        Who unlocked — notifications
      </h2>
      <EntryAlertsSettings />
    </section>
  );
}

/** The form inside {@link EntryAlertsCard}. */
export function EntryAlertsSettings() {
  const { home, principal } = useOwner();
  const path = `/api/homes/${encodeURIComponent(home.id)}/entry-alerts`;
  const [stored, setStored] = useState<EntryAlertsView | null>(null);
  const [mode, setMode] = useState<Mode>('all');
  const [people, setPeople] = useState<ReadonlySet<string>>(new Set());
  const [load, setLoad] = useState<Load>({ kind: 'loading' });
  const [save, setSave] = useState<Save>({ kind: 'idle' });

  const take = (a: EntryAlertsView) => {
    setStored(a);
    setMode(a.mode);
    setPeople(new Set(a.people));
  };

  const reload = useCallback(() => {
    api<{ alerts: EntryAlertsView }>(path)
      .then((r) => {
        take(r.alerts);
        setLoad({ kind: 'loaded' });
      })
      .catch((err: unknown) =>
        setLoad(
          isNotFound(err) ? { kind: 'unavailable' } : { kind: 'error', message: messageOf(err) },
        ),
      );
  }, [path]);

  useEffect(() => {
    reload();
  }, [reload]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!stored) return;
    setSave({ kind: 'saving' });
    try {
      // Only people still offered are sent: someone removed since would be refused.
      const offered = new Set(stored.candidates.map((c) => c.id));
      const r = await api<{ alerts: EntryAlertsView }>(path, {
        method: 'PUT',
        body: { mode, people: [...people].filter((id) => offered.has(id)) },
      });
      take(r.alerts);
      setSave({ kind: 'saved' });
    } catch (err) {
      // The form keeps what was picked, so it can be saved again; the server kept the old one.
      setSave({ kind: 'error', message: `Not saved: ${messageOf(err)}` });
    }
  };

  const toggle = (id: string, on: boolean) => {
    const next = new Set(people);
    if (on) next.add(id);
    else next.delete(id);
    setPeople(next);
    setSave({ kind: 'idle' });
  };

  const explain = (
    <p className="muted small" id="entry-alerts-help">
      Every entry is always shown under “Who came in” on the home page. This only chooses which ones
      are sent to you as notifications, on the devices where you turned them on (see{' '}
      <a href="#push-title">Notifications</a> above).
    </p>
  );

  if (load.kind === 'loading' && !stored) {
    return (
      <div className="settings-group">
        {explain}
        <p className="muted">Loading your choice…</p>
      </div>
    );
  }
  if (load.kind === 'unavailable') {
    return (
      <div className="settings-group">
        {explain}
        <p className="notice notice-warn" role="status">
          This choice cannot be made on this server yet.
        </p>
      </div>
    );
  }
  if (!stored) {
    return (
      <div className="settings-group">
        {explain}
        <div className="notice notice-warn" role="status">
          <p>Could not load your choice: {load.kind === 'error' ? load.message : ''}</p>
          <button
            type="button"
            className="btn btn-quiet"
            onClick={() => {
              setLoad({ kind: 'loading' });
              reload();
            }}
          >
            Try again
          </button>
        </div>
      </div>
    );
  }

  const candidates = stored.candidates;
  const chosenCount = candidates.filter((c) => people.has(c.id)).length;
  return (
    <form className="settings-group entry-alerts" onSubmit={(e) => void submit(e)} noValidate>
      {explain}
      <fieldset className="fieldset entry-alerts-modes" aria-describedby="entry-alerts-help">
        <legend className="field-label">Notify me when someone comes in</legend>
        <div className="choice-list">
          {MODES.map((m) => (
            <label key={m.id} className="choice">
              <input
                type="radio"
                name="entry-alerts-mode"
                value={m.id}
                checked={mode === m.id}
                onChange={() => {
                  setMode(m.id);
                  setSave({ kind: 'idle' });
                }}
                aria-describedby={`entry-alerts-hint-${m.id}`}
                data-testid={`entry-alerts-mode-${m.id}`}
              />
              <span className="choice-text">
                <span className="choice-label">{m.label}</span>
                <span className="choice-hint" id={`entry-alerts-hint-${m.id}`}>
                  {m.hint}
                </span>
              </span>
            </label>
          ))}
        </div>
        {!stored.chosen && (
          <p className="muted small">
            You have not chosen yet: this is the default for{' '}
            {principal.role === 'owner' ? 'the owner' : 'a household member'}.
          </p>
        )}
      </fieldset>
      {mode === 'chosen' && (
        <fieldset className="fieldset entry-alerts-people" data-testid="entry-alerts-people">
          <legend className="field-label">People</legend>
          {candidates.length === 0 ? (
            <p className="muted">
              Nobody else can come in yet. Invite guests on the Guests page; they appear here.
            </p>
          ) : (
            <>
              <ul className="choice-list person-list">
                {candidates.map((c) => (
                  <li key={c.id}>
                    <label className="choice">
                      <input
                        type="checkbox"
                        checked={people.has(c.id)}
                        onChange={(e) => toggle(c.id, e.target.checked)}
                        data-testid="entry-alerts-person"
                        data-person-id={c.id}
                      />
                      <span className="choice-text">
                        <span className="choice-label">{c.name}</span>
                        <span className="choice-hint">{roleLabel(c.role)}</span>
                      </span>
                    </label>
                  </li>
                ))}
              </ul>
              <p className="muted small">
                {chosenCount === 0
                  ? 'Nobody ticked: no entry will be sent to you until you tick someone.'
                  : chosenCount === 1
                    ? 'You will be told when this person comes in.'
                    : `You will be told when any of these ${chosenCount} people comes in.`}
              </p>
            </>
          )}
        </fieldset>
      )}
      <div className="form-actions entry-alerts-actions">
        <button
          type="submit"
          className="btn btn-primary"
          disabled={save.kind === 'saving'}
          data-testid="entry-alerts-save"
        >
          {save.kind === 'saving' ? 'Saving…' : 'Save'}
        </button>
        <p
          className={save.kind === 'error' ? 'form-error' : 'form-ok'}
          role="status"
          data-testid="entry-alerts-status"
        >
          {save.kind === 'saved' ? 'Saved.' : save.kind === 'error' ? save.message : ''}
        </p>
      </div>
    </form>
  );
}

/**
 * Keypad codes of one lock: its slots with their sync state in words, when each code works
 * ("Works Mondays 09:00–12:00 (Europe/Berlin) · written until 10:15", or "Works at all
 * times"), "Give a code" (shown once: the server keeps no code in clear) and "Empty slot".
 * docs/api.md §12.
 *
 * While a slot is being written or emptied, the list is asked again every 2 s, so "Pending"
 * turns into "Confirmed by the lock" without a reload.
 */
import { useCallback, useEffect, useId, useState, type FormEvent } from 'react';
import type { GuestGrantView, PinSlotView } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { formatDay, formatHourMinute, useNow } from '../time.ts';
import { pinSyncLabel } from '../words.ts';
import { useOwner } from './owner-context.ts';

const PENDING_POLL_MS = 2_000;
const IDLE_POLL_MS = 15_000;
/** The API's `name` is at most 32 characters. */
const NAME_MAX = 32;

/** Props of {@link PinsSection}. */
export interface PinsSectionProps {
  readonly lockId: string;
  readonly doorName: string;
  /** The home's guest grants: the people a code can be given to. */
  readonly grants: readonly GuestGrantView[];
}

function toneOf(s: PinSlotView): string {
  if (s.sync === 'confirmed') return s.desired === 'set' ? 'badge-ok' : 'badge-neutral';
  if (s.sync === 'pending') return 'badge-neutral';
  return 'badge-danger-soft';
}

/** "10:15" today, "Tue, 24 Mar 10:15" on another day, in the home's zone. */
function when(ms: number, now: number, timeZone: string): string {
  const time = formatHourMinute(ms, timeZone);
  return formatDay(ms, timeZone) === formatDay(now, timeZone)
    ? time
    : `${formatDay(ms, timeZone)} ${time}`;
}

/**
 * When a set slot's code works, in words: the holder's hours (their grants' schedules; the
 * household's are "at all times"), then what the lock was given, which reaches at most a lease
 * ahead and is renewed while the lock is online.
 */
function windowLabel(
  s: PinSlotView,
  schedules: readonly string[],
  now: number,
  timeZone: string,
): string {
  const w = s.window;
  if (w === null) return 'Works at all times';
  const hours =
    schedules.length === 0
      ? 'at all times'
      : schedules.map((d) => (d === 'Any time' ? 'at any time' : d)).join('; ');
  if (w.untilMs <= Math.max(w.fromMs, now))
    return `Works ${hours} · closed on the lock for now (its next hours are written up to an hour ahead)`;
  const from = w.fromMs > now ? `from ${when(w.fromMs, now, timeZone)} ` : '';
  return `Works ${hours} · written ${from}until ${when(w.untilMs, now, timeZone)}`;
}

/** The first slot number that holds no code (emptied slots are free again). */
function firstFree(slots: readonly PinSlotView[]): number {
  const taken = new Set(slots.filter((s) => s.desired === 'set').map((s) => s.slot));
  let n = 1;
  while (taken.has(n)) n++;
  return n;
}

/** One lock's keypad codes. */
export function PinsSection({ lockId, doorName, grants }: PinsSectionProps) {
  const { home } = useOwner();
  const timeZone = home.timeZone || Intl.DateTimeFormat().resolvedOptions().timeZone;
  // Once a minute is enough to say "closed for now" when a window runs out.
  const now = useNow(60_000);
  const id = useId();
  const base = `/api/homes/${encodeURIComponent(home.id)}/locks/${encodeURIComponent(lockId)}/pins`;
  const [slots, setSlots] = useState<readonly PinSlotView[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [person, setPerson] = useState('');
  const [ownCode, setOwnCode] = useState('');
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [given, setGiven] = useState<{
    readonly code: string;
    readonly who: string;
    readonly slot: number;
    /** The slot's `updatedAt` when the code was written: a later emptying retires it. */
    readonly updatedAt: number;
  } | null>(null);

  const load = useCallback(() => {
    api<{ slots: PinSlotView[] }>(base)
      .then((r) => {
        setSlots(r.slots);
        setLoadError(null);
      })
      .catch((err: unknown) => setLoadError(messageOf(err)));
  }, [base]);

  const settling = slots?.some((s) => s.sync === 'pending') ?? false;
  useEffect(() => {
    load();
    const t = setInterval(load, settling ? PENDING_POLL_MS : IDLE_POLL_MS);
    return () => clearInterval(t);
  }, [load, settling]);

  // A code is for someone who may still come in: one entry per guest, revoked ones left out.
  const people = new Map<string, string>();
  for (const g of grants) {
    if (g.revokedAt === null) people.set(g.guest.id, g.guest.displayName);
  }
  const nameOf = (principalId: string | null, fallback: string | null) =>
    (principalId && people.get(principalId)) ??
    grants.find((g) => g.guest.id === principalId)?.guest.displayName ??
    fallback ??
    'Someone';
  const chosen = person && people.has(person) ? person : ([...people.keys()][0] ?? '');
  // The schedules of a person's grants that still stand: the hours their code follows.
  const schedulesOf = (principalId: string | null) =>
    grants
      .filter((g) => g.guest.id === principalId && g.revokedAt === null)
      .map((g) => g.description);

  const give = async (e: FormEvent) => {
    e.preventDefault();
    if (!chosen) return;
    const code = ownCode.trim();
    if (code && !/^[0-9]{4,10}$/.test(code)) {
      setFormError('A code is 4 to 10 digits, or leave it empty for a random one.');
      return;
    }
    setFormError(null);
    const slot = firstFree(slots ?? []);
    const who = people.get(chosen) ?? 'Guest';
    setBusy('give');
    try {
      const r = await api<{ slot: PinSlotView; code: string }>(`${base}/${slot}`, {
        method: 'PUT',
        body: {
          principalId: chosen,
          name: who.slice(0, NAME_MAX),
          ...(code ? { code } : {}),
        },
      });
      setGiven({ code: r.code, who, slot: r.slot.slot, updatedAt: r.slot.updatedAt });
      setOwnCode('');
      load();
    } catch (err) {
      setFormError(messageOf(err));
    } finally {
      setBusy(null);
    }
  };

  const empty = async (slot: number) => {
    setBusy(`clear-${slot}`);
    try {
      await api(`${base}/${slot}/clear`, { method: 'POST' });
      if (given?.slot === slot) setGiven(null);
      load();
    } catch (err) {
      setLoadError(messageOf(err));
    } finally {
      setBusy(null);
    }
  };

  // Once the slot is emptied (by hand, or by revoking the guest) the code is worth nothing.
  const shownCode =
    given &&
    !slots?.some(
      (s) => s.slot === given.slot && s.desired === 'clear' && s.updatedAt > given.updatedAt,
    )
      ? given
      : null;

  const titleId = `${id}-title`;
  return (
    <section className="card" aria-labelledby={titleId} data-testid="pins-section">
      <h2 id={titleId} className="card-title">
        Keypad codes — {doorName}
      </h2>
      <p className="muted small">
        A guest’s code works only in their hours, and the lock checks them by its own clock.
        Threshold writes them up to an hour ahead and renews them while the lock is online, so a
        code you revoke stops at once, or at most an hour later if the lock is offline (a household
        member’s within a day). Revoking a guest’s last access empties their slots.
      </p>
      {loadError && (
        <p className="notice notice-warn" role="status">
          Could not load the codes: {loadError}
        </p>
      )}
      {slots === null && !loadError && <p className="muted">Loading the codes…</p>}
      {slots && slots.length === 0 && <p className="muted">No codes on this lock.</p>}
      {slots && slots.length > 0 && (
        <ul className="row-list">
          {slots.map((s) => (
            <li key={s.slot} className="row" data-testid="pin-slot" data-slot={s.slot}>
              <div className="row-main">
                <span className="row-title">
                  Slot {s.slot}
                  {' — '}
                  {s.desired === 'set' ? nameOf(s.principalId, s.name) : 'Empty'}
                </span>
                <span className={`badge ${toneOf(s)}`} data-testid="pin-sync">
                  {pinSyncLabel(s)}
                </span>
                {s.desired === 'set' && (
                  <span className="muted small" data-testid="pin-window">
                    {windowLabel(s, schedulesOf(s.principalId), now, timeZone)}
                  </span>
                )}
                {s.lastError && s.sync !== 'confirmed' && (
                  <span className="muted small">Last answer: {s.lastError}</span>
                )}
              </div>
              {(s.desired === 'set' || s.sync === 'unknown-on-lock') && (
                <button
                  type="button"
                  className="btn btn-secondary"
                  onClick={() => void empty(s.slot)}
                  disabled={busy !== null}
                  data-testid="pin-clear"
                >
                  Empty slot {s.slot}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}

      {shownCode && (
        <div className="code-once" role="status" data-testid="pin-given">
          <p>
            The code for {shownCode.who} (slot {shownCode.slot}) is
          </p>
          <p className="code-value mono" data-testid="pin-code">
            {shownCode.code}
          </p>
          <p className="small">
            Tell it to {shownCode.who} now: it is shown <strong>only this once</strong>.
          </p>
          <button type="button" className="btn btn-quiet" onClick={() => setGiven(null)}>
            I have noted it
          </button>
        </div>
      )}

      <h3 className="subhead">Give a code</h3>
      {people.size === 0 ? (
        <p className="muted">
          A code is for a guest who has accepted an invitation; there is none yet.
        </p>
      ) : (
        <form className="form-row form-row-end" onSubmit={(e) => void give(e)} noValidate>
          <label className="field">
            <span className="field-label">Person</span>
            <select
              className="input"
              value={chosen}
              onChange={(e) => setPerson(e.target.value)}
              data-testid="pin-person"
            >
              {[...people].map(([pid, n]) => (
                <option key={pid} value={pid}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span className="field-label">Own code (optional)</span>
            <input
              className="input"
              inputMode="numeric"
              autoComplete="off"
              placeholder="Random 6 digits"
              value={ownCode}
              onChange={(e) => setOwnCode(e.target.value)}
              aria-invalid={formError ? true : undefined}
              aria-describedby={formError ? `${id}-error` : undefined}
              data-testid="pin-own-code"
            />
          </label>
          <div className="field">
            <button
              type="submit"
              className="btn btn-primary"
              disabled={busy !== null || slots === null}
              data-testid="pin-give"
            >
              {busy === 'give' ? 'Writing…' : `Give a code (slot ${firstFree(slots ?? [])})`}
            </button>
          </div>
        </form>
      )}
      {formError && (
        <p id={`${id}-error`} className="form-error" role="alert">
          {formError}
        </p>
      )}
    </section>
  );
}

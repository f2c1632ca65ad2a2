/**
 * "Invite a guest": a name, a door, when (any time, dates, weekly or once), limits, and whether
 * the camera must record each entry (on unless the owner turns it off). The answer's invitation
 * link is shown once, here: the server keeps only a hash of its token.
 *
 * Every time is a wall-clock time at the home, sent as typed (`YYYY-MM-DDTHH:MM`, `HH:MM`):
 * the server interprets it in the home's time zone, so the browser's own zone never enters.
 */
import { useId, useState, type FormEvent } from 'react';
import type { GuestGrantView, InviteView, Weekday } from '../../../src/protocol/views.ts';
import { api, ApiError, messageOf } from '../api.ts';
import { useOwner } from './owner-context.ts';

type Schedule = GuestGrantView['schedule'];
type Kind = Schedule['kind'];

const KINDS: readonly { readonly id: Kind; readonly label: string }[] = [
  { id: 'always', label: 'Any time' },
  { id: 'date-range', label: 'Dates' },
  { id: 'weekly', label: 'Weekly' },
  { id: 'one-time', label: 'Once' },
];

const DAYS: readonly { readonly id: Weekday; readonly short: string; readonly long: string }[] = [
  { id: 'mon', short: 'Mon', long: 'Monday' },
  { id: 'tue', short: 'Tue', long: 'Tuesday' },
  { id: 'wed', short: 'Wed', long: 'Wednesday' },
  { id: 'thu', short: 'Thu', long: 'Thursday' },
  { id: 'fri', short: 'Fri', long: 'Friday' },
  { id: 'sat', short: 'Sat', long: 'Saturday' },
  { id: 'sun', short: 'Sun', long: 'Sunday' },
];

/** The API allows up to 20 slots; a form with more than a few is not a form anyone fills in. */
const MAX_SLOTS = 4;

interface SlotDraft {
  readonly days: readonly Weekday[];
  readonly start: string;
  readonly end: string;
}

/** Problems by field: `displayName`, `from`, `slots[0]`, `maxUses`…, and `''` for the rest. */
type Problems = Readonly<Record<string, string>>;

/** Files a server problem path (`slots[0].days[1]`, `from`) under the field that shows it. */
function fieldOf(path: string): string {
  const slot = /^(?:schedule\.)?(slots\[\d+\])/.exec(path);
  if (slot?.[1]) return slot[1];
  const top = path.replace(/^schedule\./, '').split(/[.[]/)[0] ?? '';
  return ['displayName', 'doorId', 'from', 'until', 'maxUses', 'maxMinutesPerEntry'].includes(top)
    ? top
    : '';
}

function problemsOf(err: unknown): Problems | null {
  if (!(err instanceof ApiError) || err.status !== 422) return null;
  const list = err.detail?.problems;
  if (!Array.isArray(list)) return null;
  const out: Record<string, string> = {};
  for (const p of list as unknown[]) {
    if (typeof p !== 'object' || p === null) continue;
    const { path, message } = p as { path?: unknown; message?: unknown };
    if (typeof path !== 'string' || typeof message !== 'string') continue;
    const f = fieldOf(path);
    out[f] = out[f] ? `${out[f]} ${message}` : message;
  }
  return out;
}

/** An optional whole number field: '' is "no limit". */
function limitOf(text: string, max: number): number | null | 'bad' {
  const t = text.trim();
  if (t === '') return null;
  const n = Number(t);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : 'bad';
}

/** Props of {@link InviteForm}. */
export interface InviteFormProps {
  /** After an invitation was made (the list is fetched again). */
  readonly onCreated: (invite: InviteView) => void;
}

/** The "Invite a guest" form, then the link, once. */
export function InviteForm({ onCreated }: InviteFormProps) {
  const { home, status } = useOwner();
  const doors = status?.doors ?? [];
  const id = useId();
  const [name, setName] = useState('');
  const [doorId, setDoorId] = useState('');
  const [kind, setKind] = useState<Kind>('always');
  const [from, setFrom] = useState('');
  const [until, setUntil] = useState('');
  const [slots, setSlots] = useState<readonly SlotDraft[]>([
    { days: [], start: '14:00', end: '18:00' },
  ]);
  const [maxUses, setMaxUses] = useState('');
  const [maxMinutes, setMaxMinutes] = useState('');
  // On by default: a guest is not of the household, so their entries are recorded.
  const [recorded, setRecorded] = useState(true);
  const [problems, setProblems] = useState<Problems>({});
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState<{ readonly link: string; readonly name: string } | null>(null);
  const [copied, setCopied] = useState<'idle' | 'copied' | 'failed'>('idle');

  const door = doorId || doors[0]?.doorId || '';

  const schedule = (): Schedule => {
    switch (kind) {
      case 'always':
        return { kind };
      case 'date-range':
      case 'one-time':
        return { kind, from, until };
      case 'weekly':
        // 00:00–00:00 reads as "the whole day"; the API spells that 00:00–24:00.
        return {
          kind,
          slots: slots.map((s) => ({
            days: DAYS.map((d) => d.id).filter((d) => s.days.includes(d)),
            start: s.start,
            end: s.start === '00:00' && s.end === '00:00' ? '24:00' : s.end,
          })),
        };
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const found: Record<string, string> = {};
    if (!name.trim()) found.displayName = 'Give the guest’s name.';
    if (!door) found.doorId = 'Choose a door.';
    if (kind === 'date-range' || kind === 'one-time') {
      if (!from) found.from = 'Choose when it starts.';
      if (!until) found.until = 'Choose when it ends.';
    }
    if (kind === 'weekly') {
      slots.forEach((s, i) => {
        if (s.days.length === 0) found[`slots[${i}]`] = 'Choose at least one day.';
        else if (!s.start || !s.end) found[`slots[${i}]`] = 'Choose a start and an end time.';
      });
    }
    const uses = kind === 'one-time' ? null : limitOf(maxUses, 10_000);
    if (uses === 'bad') found.maxUses = 'A whole number from 1 to 10 000, or leave it empty.';
    const minutes = limitOf(maxMinutes, 1_440);
    if (minutes === 'bad')
      found.maxMinutesPerEntry = 'A whole number of minutes from 1 to 1 440, or leave it empty.';
    setProblems(found);
    if (Object.keys(found).length > 0 || uses === 'bad' || minutes === 'bad') return;

    setBusy(true);
    try {
      const r = await api<{ invite: InviteView; token: string; path: string }>(
        `/api/homes/${encodeURIComponent(home.id)}/invites`,
        {
          method: 'POST',
          body: {
            displayName: name.trim(),
            doorId: door,
            schedule: schedule(),
            maxUses: uses,
            maxMinutesPerEntry: minutes,
            requiresRecording: recorded,
          },
        },
      );
      setMade({ link: `${location.origin}/invite/${r.token}`, name: r.invite.displayName });
      setCopied('idle');
      setName('');
      setFrom('');
      setUntil('');
      setMaxUses('');
      setMaxMinutes('');
      setRecorded(true);
      onCreated(r.invite);
    } catch (err) {
      setProblems(problemsOf(err) ?? { '': messageOf(err) });
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    if (!made) return;
    try {
      await navigator.clipboard.writeText(made.link);
      setCopied('copied');
    } catch {
      setCopied('failed');
    }
  };

  if (made) {
    return (
      <div className="invite-made" data-testid="invite-made">
        <p className="notice notice-warn" role="status">
          This link is shown <strong>only now</strong>. Copy it and send it to {made.name} by a
          channel you trust: whoever has it can accept it, once, within 7 days.
        </p>
        <label className="field">
          <span className="field-label">Invitation link for {made.name}</span>
          <input
            className="input mono"
            readOnly
            value={made.link}
            onFocus={(e) => e.currentTarget.select()}
            data-testid="invite-link"
          />
        </label>
        <div className="form-actions">
          <button type="button" className="btn btn-primary" onClick={() => void copy()}>
            Copy link
          </button>
          <button type="button" className="btn btn-quiet" onClick={() => setMade(null)}>
            Done
          </button>
        </div>
        <p className="form-ok small" role="status">
          {copied === 'copied'
            ? 'Copied.'
            : copied === 'failed'
              ? 'This browser would not copy it: select the link and copy it yourself.'
              : ''}
        </p>
      </div>
    );
  }

  const err = (field: string) =>
    problems[field] ? (
      <span id={`${id}-${field}-error`} className="field-error">
        {problems[field]}
      </span>
    ) : null;
  const described = (field: string, help?: string) =>
    [problems[field] ? `${id}-${field}-error` : null, help ?? null].filter(Boolean).join(' ') ||
    undefined;

  return (
    <form
      className="invite-form"
      data-testid="invite-form"
      onSubmit={(e) => void submit(e)}
      noValidate
    >
      <div className="form-row">
        <label className="field">
          <span className="field-label">Guest’s name</span>
          <input
            className="input"
            maxLength={64}
            value={name}
            onChange={(e) => setName(e.target.value)}
            aria-invalid={problems.displayName ? true : undefined}
            aria-describedby={described('displayName')}
            data-testid="invite-name"
          />
          {err('displayName')}
        </label>
        <label className="field">
          <span className="field-label">Door</span>
          <select
            className="input"
            value={door}
            onChange={(e) => setDoorId(e.target.value)}
            aria-invalid={problems.doorId ? true : undefined}
            aria-describedby={described('doorId')}
            data-testid="invite-door"
          >
            {doors.length === 0 && <option value="">Loading the doors…</option>}
            {doors.map((d) => (
              <option key={d.doorId} value={d.doorId}>
                {d.name}
              </option>
            ))}
          </select>
          {err('doorId')}
        </label>
      </div>

      <fieldset className="fieldset">
        <legend className="field-label">When may they come in?</legend>
        <div className="chips">
          {KINDS.map((k) => (
            <label key={k.id} className="chip-radio">
              <input
                type="radio"
                name={`${id}-kind`}
                value={k.id}
                checked={kind === k.id}
                onChange={() => setKind(k.id)}
                data-testid={`invite-kind-${k.id}`}
              />
              <span>{k.label}</span>
            </label>
          ))}
        </div>
        {kind === 'always' && <p className="muted small">At any time, until you revoke it.</p>}
        {(kind === 'date-range' || kind === 'one-time') && (
          <>
            <p className="muted small" id={`${id}-tz`}>
              {kind === 'one-time'
                ? 'One entry between these times. '
                : 'Any number of entries between these times. '}
              Times are in {home.timeZone}.
            </p>
            <div className="form-row">
              <label className="field">
                <span className="field-label">From</span>
                <input
                  className="input"
                  type="datetime-local"
                  value={from}
                  onChange={(e) => setFrom(e.target.value)}
                  aria-invalid={problems.from ? true : undefined}
                  aria-describedby={described('from', `${id}-tz`)}
                  data-testid="invite-from"
                />
                {err('from')}
              </label>
              <label className="field">
                <span className="field-label">Until</span>
                <input
                  className="input"
                  type="datetime-local"
                  value={until}
                  onChange={(e) => setUntil(e.target.value)}
                  aria-invalid={problems.until ? true : undefined}
                  aria-describedby={described('until', `${id}-tz`)}
                  data-testid="invite-until"
                />
                {err('until')}
              </label>
            </div>
          </>
        )}
        {kind === 'weekly' && (
          <>
            <p className="muted small" id={`${id}-tz`}>
              Every week, on the days and times below. Times are in {home.timeZone}. An end at or
              before the start runs overnight into the next day; 00:00–00:00 is the whole day.
            </p>
            {slots.map((s, i) => {
              const key = `slots[${i}]`;
              const put = (next: SlotDraft) =>
                setSlots((all) => all.map((x, j) => (j === i ? next : x)));
              return (
                <fieldset key={i} className="slot" aria-describedby={described(key)}>
                  <legend className="slot-legend">
                    {slots.length > 1 ? `Times ${i + 1}` : 'Days and times'}
                  </legend>
                  <div className="chips">
                    {DAYS.map((d) => {
                      const on = s.days.includes(d.id);
                      return (
                        <button
                          key={d.id}
                          type="button"
                          className="chip-toggle chip-pick"
                          aria-pressed={on}
                          onClick={() =>
                            put({
                              ...s,
                              days: on ? s.days.filter((x) => x !== d.id) : [...s.days, d.id],
                            })
                          }
                          data-testid={`invite-slot-${i}-${d.id}`}
                        >
                          {d.short}
                          <span className="visually-hidden"> ({d.long})</span>
                        </button>
                      );
                    })}
                  </div>
                  <div className="form-row form-row-tight">
                    <label className="field">
                      <span className="field-label">From</span>
                      <input
                        className="input"
                        type="time"
                        value={s.start}
                        onChange={(e) => put({ ...s, start: e.target.value })}
                        data-testid={`invite-slot-${i}-start`}
                      />
                    </label>
                    <label className="field">
                      <span className="field-label">To</span>
                      <input
                        className="input"
                        type="time"
                        value={s.end}
                        onChange={(e) => put({ ...s, end: e.target.value })}
                        data-testid={`invite-slot-${i}-end`}
                      />
                    </label>
                  </div>
                  {err(key)}
                  {slots.length > 1 && (
                    <button
                      type="button"
                      className="btn btn-text"
                      onClick={() => setSlots((all) => all.filter((_, j) => j !== i))}
                    >
                      Remove these times
                    </button>
                  )}
                </fieldset>
              );
            })}
            {slots.length < MAX_SLOTS && (
              <button
                type="button"
                className="btn btn-secondary"
                onClick={() =>
                  setSlots((all) => [...all, { days: [], start: '09:00', end: '12:00' }])
                }
                data-testid="invite-add-slot"
              >
                Add more times
              </button>
            )}
          </>
        )}
      </fieldset>

      <div className="form-row">
        {kind !== 'one-time' && (
          <label className="field">
            <span className="field-label">Entries in all (optional)</span>
            <input
              className="input input-number"
              type="number"
              inputMode="numeric"
              min={1}
              max={10_000}
              step={1}
              placeholder="No limit"
              value={maxUses}
              onChange={(e) => setMaxUses(e.target.value)}
              aria-invalid={problems.maxUses ? true : undefined}
              aria-describedby={described('maxUses')}
              data-testid="invite-max-uses"
            />
            {err('maxUses')}
          </label>
        )}
        <label className="field">
          <span className="field-label">Minutes per entry (optional)</span>
          <input
            className="input input-number"
            type="number"
            inputMode="numeric"
            min={1}
            max={1_440}
            step={1}
            placeholder="Up to 5"
            value={maxMinutes}
            onChange={(e) => setMaxMinutes(e.target.value)}
            aria-invalid={problems.maxMinutesPerEntry ? true : undefined}
            aria-describedby={described('maxMinutesPerEntry')}
            data-testid="invite-max-minutes"
          />
          {err('maxMinutesPerEntry')}
        </label>
      </div>
      <div className="check-field">
        <label className="check">
          <input
            type="checkbox"
            checked={recorded}
            onChange={(e) => setRecorded(e.target.checked)}
            aria-describedby={`${id}-recording-help`}
            data-testid="invite-recording"
          />
          <span>Camera must record each entry</span>
        </label>
        <p id={`${id}-recording-help`} className="muted small">
          Turned off, this guest’s entries are not recorded (no clip; the camera is not switched on
          for them), but the lock and the door are still checked every time.
        </p>
      </div>
      <p className="muted small" data-testid="invite-summary">
        {recorded
          ? 'The camera records every entry, and the door locks again after at most 5 minutes.'
          : 'Entries are not recorded, and the door locks again after at most 5 minutes.'}
      </p>
      {problems[''] && (
        <p className="form-error" role="alert">
          {problems['']}
        </p>
      )}
      {Object.keys(problems).length > 0 && !problems[''] && (
        <p className="form-error" role="alert">
          Some answers need a look: see the notes above.
        </p>
      )}
      <button
        type="submit"
        className="btn btn-primary"
        disabled={busy || doors.length === 0}
        data-testid="invite-submit"
      >
        {busy ? 'Making the invitation…' : 'Make the invitation link'}
      </button>
    </form>
  );
}

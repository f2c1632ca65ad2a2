/**
 * `/settings`: in-home delivery (on/off, days off, "ask me first"), notifications on this
 * device, whose entries are notified, passkeys, and the account.
 */
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { DeliverySettingsView, Weekday } from '../../../src/protocol/views.ts';
import { api, isNotFound, messageOf } from '../api.ts';
import { roleLabel } from '../words.ts';
import { CarriersCard } from './carriers-settings.tsx';
import { EntryAlertsCard } from './entry-alerts-settings.tsx';
import { useOwner } from './owner-context.ts';
import { PasskeySettings } from './passkey-settings.tsx';
import { PushSettings } from './push-settings.tsx';

const DAYS: readonly { readonly id: Weekday; readonly short: string; readonly long: string }[] = [
  { id: 'mon', short: 'Mon', long: 'Monday' },
  { id: 'tue', short: 'Tue', long: 'Tuesday' },
  { id: 'wed', short: 'Wed', long: 'Wednesday' },
  { id: 'thu', short: 'Thu', long: 'Thursday' },
  { id: 'fri', short: 'Fri', long: 'Friday' },
  { id: 'sat', short: 'Sat', long: 'Saturday' },
  { id: 'sun', short: 'Sun', long: 'Sunday' },
];

const MIN_ASK_S = 15;
const MAX_ASK_S = 600;

/** An on/off switch (`role="switch"`); its text is its name. */
export function Switch({
  on,
  onChange,
  label,
  description,
  disabled,
  testId,
}: {
  readonly on: boolean;
  readonly onChange: (on: boolean) => void;
  readonly label: string;
  readonly description?: string;
  readonly disabled?: boolean;
  readonly testId?: string;
}) {
  return (
    <button
      type="button"
      role="switch"
      aria-checked={on}
      className="switch"
      onClick={() => onChange(!on)}
      disabled={disabled}
      data-testid={testId}
    >
      <span className="switch-text">
        <span className="switch-label">{label}</span>
        {description && <span className="switch-description">{description}</span>}
      </span>
      <span className="switch-track" aria-hidden="true">
        <span className="switch-thumb" />
      </span>
    </button>
  );
}

type SaveState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'saving' }
  | { readonly kind: 'saved' }
  | { readonly kind: 'error'; readonly message: string };

function DeliverySettings() {
  const { home } = useOwner();
  const [settings, setSettings] = useState<DeliverySettingsView | null>(null);
  const [loadNote, setLoadNote] = useState<string | null>(null);
  const [save, setSave] = useState<SaveState>({ kind: 'idle' });
  const [timeoutText, setTimeoutText] = useState('');
  const [timeoutError, setTimeoutError] = useState<string | null>(null);
  const path = `/api/homes/${encodeURIComponent(home.id)}/settings`;

  useEffect(() => {
    let live = true;
    api<{ settings: DeliverySettingsView }>(path)
      .then((r) => {
        if (!live) return;
        setSettings(r.settings);
        setTimeoutText(String(r.settings.askTimeoutS));
      })
      .catch((err: unknown) => {
        if (!live) return;
        // Without the settings endpoint, show what the home record says.
        const fallback: DeliverySettingsView = {
          inHomeDelivery: home.inHomeDelivery,
          daysOff: home.delivery.daysOff,
          askFirst: home.delivery.askFirst,
          askTimeoutS: Math.round(home.delivery.askTimeoutMs / 1000),
        };
        setSettings(fallback);
        setTimeoutText(String(fallback.askTimeoutS));
        setLoadNote(
          isNotFound(err)
            ? 'These settings cannot be changed on this server yet.'
            : `Could not load the latest settings: ${messageOf(err)}`,
        );
      });
    return () => {
      live = false;
    };
  }, [path, home]);

  const put = useCallback(
    async (next: DeliverySettingsView) => {
      const before = settings;
      setSettings(next);
      setSave({ kind: 'saving' });
      try {
        const r = await api<{ settings: DeliverySettingsView }>(path, {
          method: 'PUT',
          body: {
            inHomeDelivery: next.inHomeDelivery,
            daysOff: next.daysOff,
            askFirst: next.askFirst,
            askTimeoutS: next.askTimeoutS,
          },
        });
        setSettings(r.settings);
        setTimeoutText(String(r.settings.askTimeoutS));
        setSave({ kind: 'saved' });
      } catch (err) {
        // Show what is really stored, not what was wished for.
        if (before) {
          setSettings(before);
          setTimeoutText(String(before.askTimeoutS));
        }
        setSave({ kind: 'error', message: `Not saved: ${messageOf(err)}` });
      }
    },
    [path, settings],
  );

  if (!settings) return <p className="muted">Loading your delivery settings…</p>;

  const toggleDay = (d: Weekday) => {
    const off = settings.daysOff.includes(d)
      ? settings.daysOff.filter((x) => x !== d)
      : DAYS.map((x) => x.id).filter((x) => x === d || settings.daysOff.includes(x));
    void put({ ...settings, daysOff: off });
  };

  const commitTimeout = (e?: FormEvent) => {
    e?.preventDefault();
    const n = Number(timeoutText);
    if (!Number.isInteger(n) || n < MIN_ASK_S || n > MAX_ASK_S) {
      setTimeoutError(`Choose a whole number of seconds from ${MIN_ASK_S} to ${MAX_ASK_S}.`);
      return;
    }
    setTimeoutError(null);
    if (n !== settings.askTimeoutS) void put({ ...settings, askTimeoutS: n });
  };

  return (
    <div className="settings-group">
      {loadNote && (
        <p className="notice notice-warn" role="status">
          {loadNote}
        </p>
      )}
      <Switch
        on={settings.inHomeDelivery}
        onChange={(on) => void put({ ...settings, inHomeDelivery: on })}
        label="In-home delivery"
        description={
          settings.inHomeDelivery
            ? 'Couriers may leave parcels inside, while the camera records.'
            : 'Off: every parcel is left at the door.'
        }
        testId="settings-in-home"
      />
      <fieldset className="days">
        <legend className="field-label">Days without in-home delivery</legend>
        <div className="chips">
          {DAYS.map((d) => {
            const isOff = settings.daysOff.includes(d.id);
            return (
              <button
                key={d.id}
                type="button"
                className="chip-toggle"
                aria-pressed={isOff}
                onClick={() => toggleDay(d.id)}
                data-testid={`day-off-${d.id}`}
              >
                {d.short}
                {/* The visible short name stays part of the accessible name (WCAG 2.5.3). */}
                <span className="visually-hidden"> ({d.long})</span>
              </button>
            );
          })}
        </div>
        <p className="muted small">
          {settings.daysOff.length === 0
            ? 'In-home delivery on every day.'
            : `No in-home delivery on ${DAYS.filter((d) => settings.daysOff.includes(d.id))
                .map((d) => d.long)
                .join(', ')}.`}
        </p>
      </fieldset>
      <Switch
        on={settings.askFirst}
        onChange={(on) => void put({ ...settings, askFirst: on })}
        label="Ask me first"
        description="Each courier waits at the door until you say “Let in” or “Leave at door”."
        testId="settings-ask-first"
      />
      <form className="ask-timeout" onSubmit={commitTimeout} noValidate>
        <label className="field field-inline">
          <span className="field-label">Wait for my answer for</span>
          <span className="input-with-unit">
            <input
              className="input input-number"
              type="number"
              inputMode="numeric"
              min={MIN_ASK_S}
              max={MAX_ASK_S}
              step={1}
              value={timeoutText}
              onChange={(e) => setTimeoutText(e.target.value)}
              onBlur={() => commitTimeout()}
              aria-invalid={timeoutError ? true : undefined}
              aria-describedby="ask-timeout-help"
              data-testid="settings-ask-timeout"
            />
            <span>seconds</span>
          </span>
        </label>
        <p id="ask-timeout-help" className={timeoutError ? 'form-error small' : 'muted small'}>
          {timeoutError ?? 'No answer in time means the parcel is left at the door.'}
        </p>
      </form>
      <p
        className={save.kind === 'error' ? 'form-error' : 'form-ok'}
        role="status"
        data-testid="settings-save-status"
      >
        {save.kind === 'saving'
          ? 'Saving…'
          : save.kind === 'saved'
            ? 'Saved.'
            : save.kind === 'error'
              ? save.message
              : ''}
      </p>
    </div>
  );
}

/** Props of {@link SettingsPage}. */
export interface SettingsPageProps {
  readonly onSignOut: () => void;
}

/** The settings page. */
export function SettingsPage({ onSignOut }: SettingsPageProps) {
  const { principal } = useOwner();
  return (
    <section className="page settings-page">
      <h1 className="page-title">Settings</h1>
      <section className="card" aria-labelledby="delivery-title">
        <h2 id="delivery-title" className="card-title">
          In-home delivery
        </h2>
        <DeliverySettings />
      </section>
      <CarriersCard />
      <section className="card" aria-labelledby="push-title">
        <h2 id="push-title" className="card-title">
          Notifications
        </h2>
        <PushSettings />
      </section>
      <EntryAlertsCard />
      <section className="card" aria-labelledby="security-title">
        <h2 id="security-title" className="card-title">
          Security
        </h2>
        <PasskeySettings />
      </section>
      <section className="card" aria-labelledby="account-title">
        <h2 id="account-title" className="card-title">
          Account
        </h2>
        <p>
          Signed in as <strong>{principal.displayName}</strong> ({roleLabel(principal.role)}).
        </p>
        <button type="button" className="btn btn-secondary" onClick={onSignOut}>
          Sign out
        </button>
      </section>
    </section>
  );
}

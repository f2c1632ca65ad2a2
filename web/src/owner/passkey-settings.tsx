/** Passkeys of the signed-in person: add one (named), see them, remove one. */
import { browserSupportsWebAuthn, startRegistration } from '@simplewebauthn/browser';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/browser';
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { PasskeyView } from '../../../src/protocol/views.ts';
import { api, isNotFound, messageOf } from '../api.ts';
import { ConfirmDialog } from '../components/confirm-dialog.tsx';
import { formatDateTime } from '../time.ts';
import { useOwner } from './owner-context.ts';

function registrationMessage(err: unknown): string {
  if (err instanceof Error && err.name === 'NotAllowedError')
    return 'Adding the passkey was cancelled or timed out.';
  if (err instanceof Error && err.name === 'InvalidStateError')
    return 'This device already holds a passkey for your account.';
  return `The passkey could not be added: ${messageOf(err)}`;
}

/** The passkeys part of the security settings. */
export function PasskeySettings() {
  const { home } = useOwner();
  const tz = home.timeZone;
  const [supported] = useState(() => browserSupportsWebAuthn());
  const [passkeys, setPasskeys] = useState<readonly PasskeyView[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);
  const [removing, setRemoving] = useState<PasskeyView | null>(null);
  const [removeBusy, setRemoveBusy] = useState(false);

  const load = useCallback(() => {
    api<{ passkeys: PasskeyView[] }>('/api/auth/passkeys')
      .then((r) => {
        setPasskeys(r.passkeys);
        setLoadError(null);
      })
      .catch((err: unknown) =>
        setLoadError(
          isNotFound(err) ? 'Passkeys are not available on this server yet.' : messageOf(err),
        ),
      );
  }, []);

  useEffect(() => {
    load();
  }, [load]);

  const add = async (e: FormEvent) => {
    e.preventDefault();
    const label = name.trim();
    if (!label || busy) return;
    setBusy(true);
    setMessage(null);
    try {
      const { options } = await api<{ options: PublicKeyCredentialCreationOptionsJSON }>(
        '/api/auth/passkeys/registration/options',
        { method: 'POST' },
      );
      const response = await startRegistration({ optionsJSON: options });
      const r = await api<{ passkey: PasskeyView }>('/api/auth/passkeys/registration', {
        method: 'POST',
        body: { name: label, response },
      });
      setPasskeys((list) => [...(list ?? []), r.passkey]);
      setName('');
      setMessage({ tone: 'ok', text: `Passkey “${r.passkey.name}” added.` });
    } catch (err) {
      setMessage({ tone: 'error', text: registrationMessage(err) });
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!removing) return;
    setRemoveBusy(true);
    try {
      await api(`/api/auth/passkeys/${encodeURIComponent(removing.id)}`, { method: 'DELETE' });
      setPasskeys((list) => (list ?? []).filter((p) => p.id !== removing.id));
      setMessage({ tone: 'ok', text: `Passkey “${removing.name}” removed.` });
    } catch (err) {
      setMessage({ tone: 'error', text: `Could not remove it: ${messageOf(err)}` });
    } finally {
      setRemoveBusy(false);
      setRemoving(null);
    }
  };

  return (
    <div className="passkeys" data-testid="passkeys">
      <p className="muted">
        A passkey lets you sign in with this device’s screen lock or a security key instead of a
        password. It cannot be phished or guessed.
      </p>
      {loadError && (
        <p className="notice notice-info" role="status">
          {loadError}
        </p>
      )}
      {passkeys && passkeys.length === 0 && <p>You have no passkeys yet.</p>}
      {passkeys && passkeys.length > 0 && (
        <ul className="passkey-list">
          {passkeys.map((p) => (
            <li key={p.id} className="passkey" data-testid="passkey">
              <div>
                <p className="passkey-name">
                  {p.name}
                  {p.backedUp && <span className="chip">Synced</span>}
                </p>
                <p className="muted small">
                  Added {formatDateTime(p.createdAt, tz)} ·{' '}
                  {p.lastUsedAt === null
                    ? 'never used'
                    : `last used ${formatDateTime(p.lastUsedAt, tz)}`}
                </p>
              </div>
              <button
                type="button"
                className="btn btn-quiet"
                onClick={() => setRemoving(p)}
                data-testid="passkey-remove"
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      {supported ? (
        <form className="passkey-add" onSubmit={(e) => void add(e)}>
          <label className="field">
            <span className="field-label">Name for the new passkey</span>
            <input
              className="input"
              value={name}
              maxLength={64}
              placeholder="e.g. My phone"
              onChange={(e) => setName(e.target.value)}
              data-testid="passkey-name"
            />
          </label>
          <button
            type="submit"
            className="btn btn-secondary"
            disabled={busy || !name.trim() || loadError !== null}
            data-testid="passkey-add"
          >
            {busy ? 'Waiting for your device…' : 'Add a passkey'}
          </button>
        </form>
      ) : (
        <p className="notice notice-info">This browser cannot create passkeys.</p>
      )}
      {message && (
        <p className={message.tone === 'error' ? 'form-error' : 'form-ok'} role="status">
          {message.text}
        </p>
      )}
      <ConfirmDialog
        open={removing !== null}
        title={`Remove the passkey “${removing?.name ?? ''}”?`}
        confirmLabel="Remove"
        danger
        busy={removeBusy}
        onConfirm={() => void remove()}
        onCancel={() => setRemoving(null)}
      >
        <p>You will no longer be able to sign in with it.</p>
      </ConfirmDialog>
    </div>
  );
}

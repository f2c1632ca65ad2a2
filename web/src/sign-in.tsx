/** Sign in with a user name and password, or with a passkey. */
import { browserSupportsWebAuthn, startAuthentication } from '@simplewebauthn/browser';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { useState, type FormEvent } from 'react';
import type { PrincipalSummary } from '../../src/protocol/views.ts';
import { api, ApiError, messageOf } from './api.ts';
import { Mark } from './components/icons.tsx';

interface SignInAnswer {
  readonly principal: PrincipalSummary;
}

/** Props of {@link SignInPage}. */
export interface SignInPageProps {
  readonly onSignedIn: (p: PrincipalSummary) => void;
}

function passkeyMessage(err: unknown): string {
  if (err instanceof Error && err.name === 'NotAllowedError')
    return 'Passkey sign-in was cancelled or timed out.';
  if (err instanceof ApiError) return err.message;
  return `Passkey sign-in did not work: ${messageOf(err)}`;
}

/** The sign-in page. */
export function SignInPage({ onSignedIn }: SignInPageProps) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState<'password' | 'passkey' | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [passkeys] = useState(() => browserSupportsWebAuthn());

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy('password');
    setError(null);
    try {
      const r = await api<SignInAnswer>('/api/auth/sign-in', {
        method: 'POST',
        body: { username: username.trim(), password },
        redirectOn401: false,
      });
      onSignedIn(r.principal);
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === 'auth.invalid-credentials'
          ? 'That user name and password do not match. Check them and try again.'
          : messageOf(err),
      );
      setBusy(null);
    }
  };

  const withPasskey = async () => {
    if (busy) return;
    setBusy('passkey');
    setError(null);
    try {
      const { options, challengeId } = await api<{
        options: PublicKeyCredentialRequestOptionsJSON;
        challengeId: string;
      }>('/api/auth/passkeys/authentication/options', { method: 'POST', redirectOn401: false });
      const response = await startAuthentication({ optionsJSON: options });
      const r = await api<SignInAnswer>('/api/auth/passkeys/authentication', {
        method: 'POST',
        body: { challengeId, response },
        redirectOn401: false,
      });
      onSignedIn(r.principal);
    } catch (err) {
      setError(passkeyMessage(err));
      setBusy(null);
    }
  };

  return (
    <main className="sign-in-page">
      <div className="sign-in-card">
        <div className="sign-in-brand">
          <Mark size={40} />
          <span className="brand-name">Threshold</span>
        </div>
        <h1 className="sign-in-title">Sign in</h1>
        <p className="muted sign-in-lede">Your front door, and a record of everything at it.</p>
        <form onSubmit={(e) => void submit(e)} noValidate>
          <label className="field">
            <span className="field-label">User name</span>
            <input
              className="input"
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              required
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              data-testid="username"
            />
          </label>
          <label className="field">
            <span className="field-label">Password</span>
            <input
              className="input"
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              data-testid="password"
            />
          </label>
          {error && (
            <p className="form-error" role="alert">
              {error}
            </p>
          )}
          <button
            type="submit"
            className="btn btn-primary btn-block"
            disabled={busy !== null || !username.trim() || !password}
            data-testid="sign-in"
          >
            {busy === 'password' ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        <div className="divider">
          <span>or</span>
        </div>
        {passkeys ? (
          <button
            type="button"
            className="btn btn-secondary btn-block"
            onClick={() => void withPasskey()}
            disabled={busy !== null}
            data-testid="sign-in-passkey"
          >
            {busy === 'passkey' ? 'Waiting for your passkey…' : 'Sign in with a passkey'}
          </button>
        ) : (
          <p className="muted small">
            This browser cannot use passkeys; sign in with your password.
          </p>
        )}
      </div>
    </main>
  );
}

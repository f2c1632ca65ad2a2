/**
 * `/courier-invite/:token`: the page a carrier's invitation link opens, without sign-in (the
 * token is the credential). It names the carrier and the name the courier will go by; the
 * courier chooses a user name and password, which makes their account and signs them in on the
 * courier page.
 */
import { useEffect, useState, type FormEvent } from 'react';
import type { PrincipalSummary } from '../../src/protocol/views.ts';
import { api, ApiError, messageOf } from './api.ts';
import { NewAccountForm, PASSWORD_MIN } from './components/new-account-form.tsx';
import { Mark } from './components/icons.tsx';

/** `GET /api/courier-invites/:token`. */
interface CourierInviteAnswer {
  readonly invite: { readonly displayName: string; readonly expiresAt: number };
  readonly carrier: { readonly name: string };
}

const USERNAME_RE = /^[A-Za-z0-9._@-]{3,64}$/;

/** A courier invitation's refusal in plain words. */
function inviteMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 410)
      return 'This invitation has been used, withdrawn or has expired — ask your company for a new one.';
    if (err.status === 404 || err.status === 400)
      return 'This invitation link is not known. Check that you have the whole link, or ask your company for a new one.';
    if (err.status === 429)
      return 'Too many tries from this connection. Wait a quarter of an hour and try again.';
  }
  return messageOf(err);
}

/** Props of {@link CourierInvitePage}. */
export interface CourierInvitePageProps {
  readonly token: string;
  /** The courier accepted and is signed in. */
  readonly onAccepted: (principal: PrincipalSummary) => void;
}

/** The courier invitation page. */
export function CourierInvitePage({ token, onAccepted }: CourierInvitePageProps) {
  const [offer, setOffer] = useState<CourierInviteAnswer | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    api<CourierInviteAnswer>(`/api/courier-invites/${encodeURIComponent(token)}`, {
      redirectOn401: false,
    })
      .then((r) => {
        if (live) setOffer(r);
      })
      .catch((err: unknown) => {
        if (live) setLoadError(inviteMessage(err));
      });
    return () => {
      live = false;
    };
  }, [token]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!USERNAME_RE.test(username.trim())) {
      setError('Choose a user name of 3 to 64 letters, digits or . _ @ - (no spaces).');
      return;
    }
    if (password.length < PASSWORD_MIN) {
      setError(`Choose a password of at least ${PASSWORD_MIN} characters.`);
      return;
    }
    setError(null);
    setBusy(true);
    try {
      const r = await api<{ principal: PrincipalSummary }>(
        `/api/courier-invites/${encodeURIComponent(token)}/accept`,
        { method: 'POST', body: { username: username.trim(), password }, redirectOn401: false },
      );
      onAccepted(r.principal);
    } catch (err) {
      setError(inviteMessage(err));
      setBusy(false);
    }
  };

  return (
    <main className="sign-in-page">
      <div className="sign-in-card invite-card" data-testid="courier-invite-page">
        <div className="sign-in-brand">
          <Mark size={40} />
          <span className="brand-name">Threshold</span>
        </div>
        {!offer && !loadError && <p className="muted">Opening the invitation…</p>}
        {loadError && (
          <>
            <h1 className="sign-in-title">Courier invitation</h1>
            <p className="form-error" role="alert" data-testid="courier-invite-error">
              {loadError}
            </p>
          </>
        )}
        {offer && (
          <>
            <h1 className="sign-in-title">
              {offer.carrier.name} invites you to deliver, {offer.invite.displayName}
            </h1>
            <p className="muted small sign-in-lede">
              You open the doors of your in-home deliveries with this web app. Every entry is
              recorded by the home’s camera; the home’s owner sees who came in.
            </p>
            <NewAccountForm
              idPrefix="courier-invite"
              username={username}
              password={password}
              onUsername={setUsername}
              onPassword={setPassword}
              error={error}
              busy={busy}
              submitLabel="Accept and sign in"
              onSubmit={(e) => void submit(e)}
            />
          </>
        )}
      </div>
    </main>
  );
}

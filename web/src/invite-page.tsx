/**
 * `/invite/:token`: the page an invitation link opens, without sign-in (the token is the
 * credential). It says who invites whom, to which home and door, and when; the guest then
 * chooses a user name and password, which makes their account and signs them in.
 * docs/api.md §11.2.
 */
import { useEffect, useState, type FormEvent } from 'react';
import type { InviteView, PrincipalSummary } from '../../src/protocol/views.ts';
import { api, ApiError, messageOf } from './api.ts';
import { NewAccountForm, PASSWORD_MIN } from './components/new-account-form.tsx';
import { Mark } from './components/icons.tsx';

interface InviteAnswer {
  readonly invite: InviteView;
  readonly home: { readonly name: string; readonly timeZone: string };
  readonly doorName: string;
  readonly invitedBy: string;
}

const USERNAME_RE = /^[A-Za-z0-9._@-]{3,64}$/;

/** An invitation's refusal in plain words. */
function inviteMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 410)
      return 'This invitation has been used, withdrawn or has expired — ask for a new one.';
    if (err.status === 404 || err.status === 400)
      return 'This invitation link is not known. Check that you have the whole link, or ask for a new one.';
    if (err.status === 429)
      return 'Too many tries from this connection. Wait a quarter of an hour and try again.';
  }
  return messageOf(err);
}

/** Props of {@link InvitePage}. */
export interface InvitePageProps {
  readonly token: string;
  /** The guest accepted and is signed in. */
  readonly onAccepted: (principal: PrincipalSummary) => void;
}

/** The invitation page. */
export function InvitePage({ token, onAccepted }: InvitePageProps) {
  const [offer, setOffer] = useState<InviteAnswer | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    api<InviteAnswer>(`/api/invites/${encodeURIComponent(token)}`, { redirectOn401: false })
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
      setError(
        'Choose a user name of 3 to 64 letters, digits or . _ @ - (no spaces), such as “grandma”.',
      );
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
        `/api/invites/${encodeURIComponent(token)}/accept`,
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
      <div className="sign-in-card invite-card" data-testid="invite-page">
        <div className="sign-in-brand">
          <Mark size={40} />
          <span className="brand-name">Threshold</span>
        </div>
        {!offer && !loadError && <p className="muted">Opening the invitation…</p>}
        {loadError && (
          <>
            <h1 className="sign-in-title">Invitation</h1>
            <p className="form-error" role="alert" data-testid="invite-error">
              {loadError}
            </p>
          </>
        )}
        {offer && (
          <>
            <h1 className="sign-in-title">
              {offer.invitedBy} invites you, {offer.invite.displayName}
            </h1>
            <dl className="invite-facts">
              <dt>Home</dt>
              <dd>{offer.home.name}</dd>
              <dt>Door</dt>
              <dd>{offer.doorName}</dd>
              <dt>When</dt>
              <dd data-testid="invite-when">{offer.invite.description}</dd>
            </dl>
            <p className="muted small sign-in-lede">
              You open the door with this web app.{' '}
              {offer.invite.requiresRecording
                ? 'The door camera records every entry.'
                : 'Your entries are not recorded: the camera is not switched on for you.'}
            </p>
            <NewAccountForm
              idPrefix="invite"
              username={username}
              password={password}
              onUsername={setUsername}
              onPassword={setPassword}
              error={error}
              busy={busy}
              submitLabel="Accept the invitation"
              onSubmit={(e) => void submit(e)}
            />
          </>
        )}
      </div>
    </main>
  );
}

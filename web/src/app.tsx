/**
 * The app shell: who is signed in decides which face is shown. Owners and household members
 * get the home; couriers get `/courier`; guests get `/guest`. An invitation link
 * (`/invite/:token`, or a carrier's `/courier-invite/:token`) opens without sign-in. Any 401 from the API brings back the sign-in page.
 */
import { useCallback, useEffect, useState } from 'react';
import type { PrincipalSummary } from '../../src/protocol/views.ts';
import { api, ApiError, onUnauthorized } from './api.ts';
import { CourierApp } from './courier/courier-app.tsx';
import { CourierInvitePage } from './courier-invite-page.tsx';
import { GuestApp } from './guest/guest-app.tsx';
import { InvitePage } from './invite-page.tsx';
import { resumeEvents, stopEvents } from './events.ts';
import { OwnerApp } from './owner/owner-app.tsx';
import { matchPath, navigate, usePath } from './router.ts';
import { SignInPage } from './sign-in.tsx';
import { Mark } from './components/icons.tsx';
import { unsubscribeThisBrowser } from './owner/push-settings.tsx';

type Auth =
  | { readonly status: 'loading' }
  | { readonly status: 'signed-out'; readonly returnTo: string | null }
  | { readonly status: 'signed-in'; readonly principal: PrincipalSummary }
  | { readonly status: 'unreachable'; readonly message: string };

function returnPath(): string | null {
  const here = location.pathname;
  return here === '/sign-in' ? null : here;
}

type Face = 'courier' | 'owner' | 'guest' | 'none';

/** Where a principal belongs: couriers at /courier, guests at /guest, the household at /. */
function faceOf(p: PrincipalSummary): Face {
  if (p.role === 'courier') return 'courier';
  if (p.role === 'owner' || p.role === 'member') return 'owner';
  if (p.role === 'guest') return 'guest';
  return 'none';
}

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

function belongsTo(path: string, face: Face): boolean {
  if (face === 'courier') return under(path, '/courier');
  if (face === 'guest') return under(path, '/guest');
  if (face === 'owner')
    return path !== '/sign-in' && !under(path, '/courier') && !under(path, '/guest');
  return true;
}

/** A face's own start page. */
function homeOf(face: Face): string {
  return face === 'courier' ? '/courier' : face === 'guest' ? '/guest' : '/';
}

/** An invitation link's token, when the page is one (it needs no sign-in). */
function inviteToken(path: string): string | null {
  return matchPath('/invite/:token', path)?.token ?? null;
}

/** A carrier's courier invitation link's token, when the page is one (no sign-in either). */
function courierInviteToken(path: string): string | null {
  return matchPath('/courier-invite/:token', path)?.token ?? null;
}

/** The whole app. */
export function App() {
  const path = usePath();
  const [auth, setAuth] = useState<Auth>({ status: 'loading' });

  // Bumped by "Try again" after the server could not be reached.
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    // The first question of every page load: who is signed in? The cookie is HttpOnly, so ask
    // the server — on the endpoint that answers "nobody" with 200, not with a logged 401.
    let live = true;
    api<{ principal: PrincipalSummary | null }>('/api/auth/session', { redirectOn401: false })
      .then(({ principal }) => {
        if (!live) return;
        if (principal) {
          resumeEvents();
          setAuth({ status: 'signed-in', principal });
        } else {
          setAuth({ status: 'signed-out', returnTo: returnPath() });
        }
      })
      .catch((err: unknown) => {
        if (!live) return;
        if (err instanceof ApiError && err.status === 401) {
          setAuth({ status: 'signed-out', returnTo: returnPath() });
        } else {
          setAuth({
            status: 'unreachable',
            message: err instanceof Error ? err.message : 'Threshold cannot be reached.',
          });
        }
      });
    return () => {
      live = false;
    };
  }, [attempt]);

  useEffect(() => {
    onUnauthorized(() => {
      stopEvents();
      const returnTo = returnPath();
      setAuth((a) => (a.status === 'signed-out' ? a : { status: 'signed-out', returnTo }));
    });
    return () => onUnauthorized(null);
  }, []);

  // Keep the address bar honest: the sign-in page is /sign-in, each face at its own paths.
  // An invitation link is left alone: it is for whoever holds it, signed in or not.
  useEffect(() => {
    if (inviteToken(path) !== null || courierInviteToken(path) !== null) return;
    if (auth.status === 'signed-out' && path !== '/sign-in')
      navigate('/sign-in', { replace: true });
    if (auth.status === 'signed-in') {
      const face = faceOf(auth.principal);
      if (!belongsTo(path, face)) navigate(homeOf(face), { replace: true });
    }
  }, [auth, path]);

  const signedIn = useCallback((principal: PrincipalSummary, returnTo: string | null) => {
    resumeEvents();
    setAuth({ status: 'signed-in', principal });
    const face = faceOf(principal);
    const to = returnTo && returnTo !== '/' && belongsTo(returnTo, face) ? returnTo : homeOf(face);
    navigate(to, { replace: true });
  }, []);

  const invite = inviteToken(path);
  const courierInvite = courierInviteToken(path);

  const signOut = useCallback(async () => {
    stopEvents();
    await unsubscribeThisBrowser();
    try {
      await api('/api/auth/sign-out', { method: 'POST', redirectOn401: false });
    } catch {
      // Signed out on this side either way; the server forgets the token when it expires.
    }
    setAuth({ status: 'signed-out', returnTo: null });
  }, []);

  if (invite !== null && auth.status !== 'loading' && auth.status !== 'unreachable') {
    return <InvitePage token={invite} onAccepted={(p) => signedIn(p, '/guest')} />;
  }

  if (courierInvite !== null && auth.status !== 'loading' && auth.status !== 'unreachable') {
    return <CourierInvitePage token={courierInvite} onAccepted={(p) => signedIn(p, '/courier')} />;
  }

  switch (auth.status) {
    case 'loading':
      return (
        <div className="splash" aria-busy="true">
          <Mark size={44} />
          <p className="muted">Opening Threshold…</p>
        </div>
      );
    case 'unreachable':
      return (
        <div className="splash">
          <Mark size={44} />
          <h1 className="splash-title">Threshold cannot be reached</h1>
          <p className="muted">{auth.message}</p>
          <button
            type="button"
            className="btn btn-primary"
            onClick={() => {
              setAuth({ status: 'loading' });
              setAttempt((n) => n + 1);
            }}
          >
            Try again
          </button>
        </div>
      );
    case 'signed-out':
      return <SignInPage onSignedIn={(p) => signedIn(p, auth.returnTo)} />;
    case 'signed-in': {
      const face = faceOf(auth.principal);
      if (!belongsTo(path, face)) return null;
      if (face === 'courier')
        return <CourierApp principal={auth.principal} onSignOut={() => void signOut()} />;
      if (face === 'owner')
        return <OwnerApp principal={auth.principal} onSignOut={() => void signOut()} />;
      if (face === 'guest')
        return <GuestApp principal={auth.principal} onSignOut={() => void signOut()} />;
      return (
        <div className="splash">
          <Mark size={44} />
          <h1 className="splash-title">Hello, {auth.principal.displayName}</h1>
          <p className="muted">There is nothing for this account in the web app yet.</p>
          <button type="button" className="btn btn-quiet" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      );
    }
  }
}

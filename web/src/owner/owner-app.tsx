/**
 * The owner face: alarms on top of every page, then live notices, the "ask me first" prompt
 * when a courier is waiting, then the page: home at a glance, timeline, a session, alarms,
 * guests or settings.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { Home, HomeStatusView, PrincipalSummary } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { Mark } from '../components/icons.tsx';
import { useServerEvent, useStreamReopen } from '../events.ts';
import { Link, matchPath, usePath } from '../router.ts';
import { useActiveSessions } from './active-sessions.ts';
import { AlarmBanner, AlarmsPage, useAlarms } from './alarms.tsx';
import { DecisionPrompts } from './decision-prompt.tsx';
import { applyDeviceEvent } from './device-facts.ts';
import { GuestsPage } from './guests-page.tsx';
import { HomePage } from './home-page.tsx';
import { Notices } from './notices.tsx';
import { OwnerContext, type OwnerState } from './owner-context.ts';
import { SessionPage } from './session-page.tsx';
import { SettingsPage } from './settings-page.tsx';
import { TimelinePage } from './timeline-page.tsx';

/** Props of {@link OwnerApp}. */
export interface OwnerAppProps {
  readonly principal: PrincipalSummary;
  readonly onSignOut: () => void;
}

/** How often the home status is fetched even without events: staleness shows without one. */
const STATUS_POLL_MS = 5_000;

const NAV = [
  { to: '/', label: 'Home' },
  { to: '/sessions', label: 'Timeline' },
  { to: '/alarms', label: 'Alarms' },
  { to: '/guests', label: 'Guests' },
  { to: '/settings', label: 'Settings' },
] as const;

function isCurrent(to: string, path: string): boolean {
  if (to === '/') return path === '/' || path === '/home';
  return path === to || path.startsWith(`${to}/`);
}

/** The owner face, once signed in. */
export function OwnerApp({ principal, onSignOut }: OwnerAppProps) {
  const [home, setHome] = useState<Home | null>(null);
  const [homeError, setHomeError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    api<{ homes: Home[] }>('/api/homes')
      .then((r) => {
        if (!live) return;
        const h = r.homes.find((x) => x.id === principal.homeId) ?? r.homes[0];
        if (h) setHome(h);
        else setHomeError('This account has no home yet.');
      })
      .catch((err: unknown) => {
        if (live) setHomeError(messageOf(err));
      });
    return () => {
      live = false;
    };
  }, [principal.homeId]);

  if (!home) {
    return (
      <div className="splash">
        <Mark size={44} />
        {homeError ? (
          <>
            <p role="alert">{homeError}</p>
            <button type="button" className="btn btn-quiet" onClick={onSignOut}>
              Sign out
            </button>
          </>
        ) : (
          <p className="muted">Loading your home…</p>
        )}
      </div>
    );
  }
  return <OwnerShell principal={principal} home={home} onSignOut={onSignOut} />;
}

function OwnerShell({ principal, home, onSignOut }: OwnerAppProps & { readonly home: Home }) {
  const path = usePath();
  const [status, setStatus] = useState<HomeStatusView | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);
  const inFlight = useRef(false);

  const refreshStatus = useCallback(() => {
    if (inFlight.current) return;
    inFlight.current = true;
    api<HomeStatusView>(`/api/homes/${home.id}`)
      .then((s) => {
        setStatus(s);
        setStatusError(null);
      })
      .catch((err: unknown) => setStatusError(messageOf(err)))
      .finally(() => {
        inFlight.current = false;
      });
  }, [home.id]);

  useEffect(() => {
    refreshStatus();
    const t = setInterval(refreshStatus, STATUS_POLL_MS);
    return () => clearInterval(t);
  }, [refreshStatus]);

  // A device changed: show it at once, then fetch the server's status (the reference).
  const deviceTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useServerEvent('device', (e) => {
    if (e.homeId !== home.id) return;
    setStatus((s) => (s ? applyDeviceEvent(s, e.device) : s));
    if (deviceTimer.current) return;
    deviceTimer.current = setTimeout(() => {
      deviceTimer.current = null;
      refreshStatus();
    }, 250);
  });
  useEffect(
    () => () => {
      if (deviceTimer.current) clearTimeout(deviceTimer.current);
    },
    [],
  );
  useStreamReopen(refreshStatus);

  const doorName = useCallback(
    (doorId: string) => status?.doors.find((d) => d.doorId === doorId)?.name ?? 'the door',
    [status],
  );

  const alarms = useAlarms(home.id);
  const { active, put: putSession } = useActiveSessions(home.id);

  const state = useMemo<OwnerState>(
    () => ({
      principal,
      home,
      status,
      statusError,
      setStatus,
      refreshStatus,
      active,
      putSession,
      doorName,
    }),
    [principal, home, status, statusError, refreshStatus, active, putSession, doorName],
  );

  const sessionMatch = matchPath('/sessions/:id', path);
  let page;
  if (path === '/' || path === '/home') page = <HomePage />;
  else if (path === '/sessions') page = <TimelinePage />;
  else if (sessionMatch?.id)
    page = <SessionPage key={sessionMatch.id} sessionId={sessionMatch.id} alarms={alarms} />;
  else if (path === '/alarms') page = <AlarmsPage alarms={alarms} />;
  else if (path === '/guests') page = <GuestsPage />;
  else if (path === '/settings' || path.startsWith('/settings/'))
    page = <SettingsPage onSignOut={onSignOut} />;
  else
    page = (
      <section className="page">
        <h1 className="page-title">Page not found</h1>
        <p>
          <Link to="/">Go to your home</Link>
        </p>
      </section>
    );

  return (
    <OwnerContext.Provider value={state}>
      <div className="app">
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <AlarmBanner alarms={alarms} />
        <Notices />
        <header className="topbar">
          <div className="topbar-inner">
            <Link to="/" className="brand" aria-label="Threshold — home">
              <Mark />
              <span className="brand-name">Threshold</span>
            </Link>
            <span className="topbar-home">{home.name}</span>
            <nav className="nav" aria-label="Main">
              {NAV.map((n) => (
                <Link
                  key={n.to}
                  to={n.to}
                  className="nav-link"
                  aria-current={isCurrent(n.to, path) ? 'page' : undefined}
                >
                  {n.label}
                  {n.to === '/alarms' && alarms.activeCount > 0 && (
                    <span className="nav-count" aria-label={`${alarms.activeCount} active`}>
                      {alarms.activeCount}
                    </span>
                  )}
                </Link>
              ))}
            </nav>
            <button type="button" className="btn btn-text topbar-signout" onClick={onSignOut}>
              Sign out
            </button>
          </div>
        </header>
        <DecisionPrompts />
        <main id="main" className="main" tabIndex={-1}>
          {page}
        </main>
      </div>
    </OwnerContext.Provider>
  );
}

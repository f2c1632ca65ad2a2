/**
 * The phone-sized frame of the visitors' faces (courier and guest): the brand linking home,
 * who is signed in, sign-out, and the page.
 */
import type { ReactNode } from 'react';
import { Link } from '../router.ts';
import { Mark } from './icons.tsx';

export interface PhoneFrameProps {
  /** Where the brand links to (`/courier`, `/guest`). */
  readonly home: string;
  /** The brand link's accessible name. */
  readonly homeLabel: string;
  readonly displayName: string;
  readonly onSignOut: () => void;
  /** Extra class names of the app's root (e.g. `guest`). */
  readonly className?: string;
  readonly children: ReactNode;
}

export function PhoneFrame({
  home,
  homeLabel,
  displayName,
  onSignOut,
  className,
  children,
}: PhoneFrameProps) {
  return (
    <div className={`app courier${className ? ` ${className}` : ''}`}>
      <header className="topbar">
        <div className="topbar-inner">
          <Link to={home} className="brand" aria-label={homeLabel}>
            <Mark />
            <span className="brand-name">Threshold</span>
          </Link>
          <span className="topbar-home">{displayName}</span>
          <button type="button" className="btn btn-text topbar-signout" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="main courier-main">
        {children}
      </main>
    </div>
  );
}

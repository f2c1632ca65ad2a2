/** The few line icons the app uses (inline SVG, so no extra requests and no icon font). */
import type { ReactNode } from 'react';

function Icon({ children, size = 22 }: { readonly children: ReactNode; readonly size?: number }) {
  return (
    <svg
      viewBox="0 0 24 24"
      width={size}
      height={size}
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden="true"
      focusable="false"
    >
      {children}
    </svg>
  );
}

/** A padlock, closed or open. */
export function LockIcon({ open = false }: { readonly open?: boolean }) {
  return (
    <Icon>
      <rect x="5" y="11" width="14" height="10" rx="2" />
      {open ? <path d="M8 11V7a4 4 0 0 1 7.5-2" /> : <path d="M8 11V7a4 4 0 0 1 8 0v4" />}
    </Icon>
  );
}

/** A door. */
export function DoorIcon() {
  return (
    <Icon>
      <path d="M6 21V4a1 1 0 0 1 1-1h10a1 1 0 0 1 1 1v17" />
      <path d="M3 21h18" />
      <circle cx="14.5" cy="12" r="0.9" fill="currentColor" />
    </Icon>
  );
}

/** A camera. */
export function CameraIcon() {
  return (
    <Icon>
      <rect x="3" y="7" width="13" height="10" rx="2" />
      <path d="M16 10.5l5-3v9l-5-3" />
    </Icon>
  );
}

/** A warning triangle. */
export function AlertIcon({ size = 22 }: { readonly size?: number }) {
  return (
    <Icon size={size}>
      <path d="M12 3l10 18H2z" />
      <path d="M12 10v5" />
      <circle cx="12" cy="18" r="0.6" fill="currentColor" />
    </Icon>
  );
}

/** The Threshold mark: a doorway with a sill. */
export function Mark({ size = 28 }: { readonly size?: number }) {
  return (
    <svg viewBox="0 0 32 32" width={size} height={size} aria-hidden="true" focusable="false">
      <rect width="32" height="32" rx="8" fill="#1f5c4d" />
      <path
        d="M10 25V9a2 2 0 0 1 2-2h8a2 2 0 0 1 2 2v16"
        fill="none"
        stroke="#f4efe3"
        strokeWidth="2.2"
      />
      <path d="M7 25h18" stroke="#e9b44c" strokeWidth="2.6" strokeLinecap="round" />
    </svg>
  );
}

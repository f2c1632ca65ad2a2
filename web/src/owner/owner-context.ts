/** What every owner page needs: the home (for its time zone), its status, and its alarms. */
import { createContext, useContext } from 'react';
import type {
  AccessSession,
  Home,
  HomeStatusView,
  PrincipalSummary,
} from '../../../src/protocol/views.ts';
import type { ActiveSession } from './active-sessions.ts';

/** The owner face's shared state. */
export interface OwnerState {
  readonly principal: PrincipalSummary;
  readonly home: Home;
  /** The home at a glance, or null until loaded. */
  readonly status: HomeStatusView | null;
  /** Why the status could not be loaded, if it could not. */
  readonly statusError: string | null;
  /** Replaces the status (after a lock command, which answers with the new status). */
  readonly setStatus: (s: HomeStatusView) => void;
  /** Fetches the status again. */
  readonly refreshStatus: () => void;
  /** Sessions under way at the home, oldest first. */
  readonly active: readonly ActiveSession[];
  /** Takes a newer snapshot of a session under way. */
  readonly putSession: (s: AccessSession, who?: string | null) => void;
  /** A door's name by id ("Front door"), or a fallback. */
  readonly doorName: (doorId: string) => string;
}

export const OwnerContext = createContext<OwnerState | null>(null);

/** The owner face's shared state; only inside the owner face. */
export function useOwner(): OwnerState {
  const s = useContext(OwnerContext);
  if (!s) throw new Error('useOwner outside the owner face');
  return s;
}

/**
 * The sessions happening at the home right now (not completed, refused or aborted), kept
 * current from `session` events, with the name of who each is for. The home page shows them;
 * the "ask me first" prompt takes those waiting for the owner.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { AccessSession, SessionView } from '../../../src/protocol/views.ts';
import { api } from '../api.ts';
import { useServerEvent, useStreamReopen } from '../events.ts';
import { isFinished, stateOf } from '../words.ts';

/** A session under way, with the display name of who it is for (once known). */
export interface ActiveSession {
  readonly session: AccessSession;
  readonly who: string | null;
}

/** What {@link useActiveSessions} gives. */
export interface ActiveSessions {
  /** Oldest first. */
  readonly active: readonly ActiveSession[];
  /** Takes a newer snapshot of a session (e.g. the answer of a decision). */
  readonly put: (s: AccessSession, who?: string | null) => void;
}

/** Even without events, the list is fetched again this often, ms. */
const RELOAD_MS = 30_000;

/** Follows the home's sessions under way. */
export function useActiveSessions(homeId: string): ActiveSessions {
  const [map, setMap] = useState<ReadonlyMap<string, ActiveSession>>(new Map());
  const asked = useRef(new Set<string>());

  const put = useCallback((s: AccessSession, who: string | null = null) => {
    setMap((m) => {
      const prev = m.get(s.id);
      if (prev && s.updatedAt < prev.session.updatedAt) return m;
      const next = new Map(m);
      if (isFinished(stateOf(s))) next.delete(s.id);
      else next.set(s.id, { session: s, who: who ?? prev?.who ?? null });
      return next;
    });
  }, []);

  const load = useCallback(() => {
    api<{ sessions: SessionView[] }>(`/api/homes/${encodeURIComponent(homeId)}/sessions`)
      .then((r) => {
        const open = r.sessions.filter((s) => !isFinished(stateOf(s)));
        for (const s of open) asked.current.add(s.id);
        setMap(new Map(open.map((s) => [s.id, { session: s, who: s.who?.displayName ?? null }])));
      })
      .catch(() => {
        // The timeline shows load errors; the next session event brings this list anyway.
      });
  }, [homeId]);

  useEffect(() => {
    load();
    const t = setInterval(load, RELOAD_MS);
    return () => clearInterval(t);
  }, [load]);
  useStreamReopen(load);

  useServerEvent('session', (e) => {
    if (e.homeId !== homeId) return;
    put(e.session);
    if (!isFinished(stateOf(e.session)) && !asked.current.has(e.session.id)) {
      // The event carries no name; the session view does. Asked once per session.
      asked.current.add(e.session.id);
      api<{ session: SessionView }>(`/api/sessions/${encodeURIComponent(e.session.id)}`)
        .then((r) => put(r.session, r.session.who?.displayName ?? null))
        .catch(() => {
          // Without the name the page says "Someone".
        });
    }
  });

  const active = useMemo(
    () => [...map.values()].sort((a, b) => a.session.createdAt - b.session.createdAt),
    [map],
  );
  return { active, put };
}

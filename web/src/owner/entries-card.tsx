/**
 * "Who came in": the latest unlocks of the home's doors, by whom and how, on the home page. New
 * ones arrive live from the `entry` event and are highlighted for a moment; the list is fetched
 * again whenever the event stream reopens, so nothing missed while it was cut stays missing.
 */
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import type { EntryView } from '../../../src/protocol/views.ts';
import { api, messageOf } from '../api.ts';
import { useServerEvent, useStreamReopen } from '../events.ts';
import { Link } from '../router.ts';
import { formatDateTime, formatTime, useNow, zonedIsoDate } from '../time.ts';
import { useOwner } from './owner-context.ts';
import './entries.css';

/** How many entries the card shows: enough for a day at a glance, short enough for a phone. */
const SHOWN = 8;
/** How long a new entry stays highlighted, ms (the CSS animation is a little shorter). */
const FRESH_MS = 4_000;

/**
 * "21:03:04" when `ms` is today in the home's zone, "Tue, 28 Nov, 21:03:04" otherwise: a list
 * left open overnight must not let yesterday's entries pass for today's.
 */
export function formatWhen(ms: number, timeZone: string, nowMs: number = Date.now()): string {
  return zonedIsoDate(ms, timeZone) === zonedIsoDate(nowMs, timeZone)
    ? formatTime(ms, timeZone)
    : formatDateTime(ms, timeZone);
}

/** How an entry was made, in a few words ("Keypad · slot 3"). */
export function methodLabel(e: Pick<EntryView, 'method' | 'slot'>): string {
  switch (e.method) {
    case 'app':
      return 'App at the door';
    case 'remote':
      return 'From the app';
    case 'pin':
      return e.slot === null ? 'Keypad' : `Keypad · slot ${e.slot}`;
    case 'manual':
      return 'Key or thumb-turn';
  }
}

function Glyph({ children }: { readonly children: ReactNode }) {
  return (
    <svg
      viewBox="0 0 24 24"
      width={20}
      height={20}
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

/** A small picture of the method; the label beside it carries the meaning. */
function MethodIcon({ method }: { readonly method: EntryView['method'] }) {
  switch (method) {
    case 'app':
      // A phone held at the door.
      return (
        <Glyph>
          <rect x="7" y="3" width="10" height="18" rx="2" />
          <path d="M11 18h2" />
        </Glyph>
      );
    case 'remote':
      // Waves: from afar.
      return (
        <Glyph>
          <path d="M5 10a10 10 0 0 1 14 0" />
          <path d="M8 13.5a5.5 5.5 0 0 1 8 0" />
          <circle cx="12" cy="17.5" r="1.2" fill="currentColor" />
        </Glyph>
      );
    case 'pin':
      // A keypad.
      return (
        <Glyph>
          {[7, 12, 17].flatMap((y) =>
            [7, 12, 17].map((x) => (
              <circle key={`${x}-${y}`} cx={x} cy={y} r="1.3" fill="currentColor" />
            )),
          )}
        </Glyph>
      );
    case 'manual':
      // A key.
      return (
        <Glyph>
          <circle cx="8" cy="12" r="4" />
          <path d="M12 12h9M18 12v3M21 12v2" />
        </Glyph>
      );
  }
}

/** Newest first, one per id, at most {@link SHOWN}. */
function merge(list: readonly EntryView[], more: readonly EntryView[]): EntryView[] {
  const byId = new Map<string, EntryView>();
  for (const e of [...more, ...list]) if (!byId.has(e.id)) byId.set(e.id, e);
  return [...byId.values()]
    .sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .slice(0, SHOWN);
}

type Load =
  | { readonly kind: 'loading' }
  | { readonly kind: 'loaded' }
  | { readonly kind: 'error'; readonly message: string };

/** The home page's "Who came in" card. */
export function EntriesCard() {
  const { home } = useOwner();
  const tz = home.timeZone;
  const [entries, setEntries] = useState<readonly EntryView[]>([]);
  const [load, setLoad] = useState<Load>({ kind: 'loading' });
  const [fresh, setFresh] = useState<ReadonlySet<string>>(new Set());
  const timers = useRef(new Set<ReturnType<typeof setTimeout>>());

  const reload = useCallback(() => {
    api<{ entries: EntryView[] }>(
      `/api/homes/${encodeURIComponent(home.id)}/entries?limit=${SHOWN}`,
    )
      .then((r) => {
        // Merged, not replaced: an entry that arrived live while this was in flight stays.
        setEntries((list) => merge(list, r.entries));
        setLoad({ kind: 'loaded' });
      })
      .catch((err: unknown) => setLoad({ kind: 'error', message: messageOf(err) }));
  }, [home.id]);

  useEffect(() => {
    reload();
  }, [reload]);
  useStreamReopen(reload);
  useEffect(() => {
    const pending = timers.current;
    return () => {
      for (const t of pending) clearTimeout(t);
    };
  }, []);

  useServerEvent('entry', (e) => {
    if (e.homeId !== home.id) return;
    // Keyed by id: an entry already fetched (the list and the event can cross) is not doubled.
    setEntries((list) => merge(list, [e.entry]));
    setFresh((s) => (s.has(e.entry.id) ? s : new Set([...s, e.entry.id])));
    const t = setTimeout(() => {
      timers.current.delete(t);
      setFresh((s) => {
        if (!s.has(e.entry.id)) return s;
        const next = new Set(s);
        next.delete(e.entry.id);
        return next;
      });
    }, FRESH_MS);
    timers.current.add(t);
  });

  // Re-rendered each minute, so an entry of yesterday gains its date once midnight passes.
  const now = useNow(60_000);
  return (
    <section className="card entries" aria-labelledby="entries-title" data-testid="entries-card">
      <div className="card-head">
        <h2 id="entries-title" className="card-title">
          Who came in
        </h2>
        <p className="muted small">Every unlock of your doors, newest first</p>
      </div>
      {load.kind === 'error' && (
        <div className="notice notice-warn entries-error" role="status">
          <p>
            Could not load who came in: {load.message}
            {entries.length > 0 ? ' What you see may be out of date.' : ''}
          </p>
          <button type="button" className="btn btn-quiet" onClick={reload}>
            Try again
          </button>
        </div>
      )}
      {load.kind === 'loading' && entries.length === 0 && (
        <p className="muted">Loading who came in…</p>
      )}
      {load.kind === 'loaded' && entries.length === 0 && (
        <p className="entries-empty muted" data-testid="entries-empty">
          Nobody has come in yet.
        </p>
      )}
      {entries.length > 0 && (
        <ul className="entry-list" data-testid="entries">
          {entries.map((e) => (
            <li
              key={e.id}
              className={fresh.has(e.id) ? 'entry entry-new' : 'entry'}
              data-testid="entry"
              data-method={e.method}
              data-entry-id={e.id}
            >
              <span className={`entry-icon entry-icon-${e.method}`}>
                <MethodIcon method={e.method} />
              </span>
              <div className="entry-main">
                <p className="entry-summary">{e.summary}</p>
                <p className="entry-meta small">
                  <time dateTime={new Date(e.at).toISOString()}>{formatWhen(e.at, tz, now)}</time>
                  <span aria-hidden="true"> · </span>
                  <span className="visually-hidden">, </span>
                  <span className="entry-method">{methodLabel(e)}</span>
                  {fresh.has(e.id) && <span className="entry-badge">New</span>}
                </p>
              </div>
              {e.method === 'app' && e.sessionId !== null && (
                <Link to={`/sessions/${encodeURIComponent(e.sessionId)}`} className="entry-link">
                  See the visit
                </Link>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

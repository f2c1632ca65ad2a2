/**
 * Live notices on every owner page, under the alarm banner: things at the home that need the
 * owner's attention without being an alarm of a visit (a keypad locked out after wrong codes, a
 * code Threshold did not set, a code used outside its hours). They come from the `notice` event
 * only and live as long as the page does; each can be dismissed.
 */
import { useRef, useState } from 'react';
import { useServerEvent } from '../events.ts';
import { useNow } from '../time.ts';
import { formatWhen } from './entries-card.tsx';
import { useOwner } from './owner-context.ts';
import './entries.css';

/** At most this many on screen: the newest, so a burst cannot push the page out of sight. */
const MAX_SHOWN = 5;

interface Notice {
  /** Local identity: notices carry no id, and the same words may come twice. */
  readonly key: number;
  readonly message: string;
  readonly at: number;
}

/** The notices of the signed-in person's home, newest first, each with "Dismiss". */
export function Notices() {
  const { home } = useOwner();
  const [notices, setNotices] = useState<readonly Notice[]>([]);
  const nextKey = useRef(1);
  const buttons = useRef(new Map<number, HTMLButtonElement>());

  useServerEvent('notice', (e) => {
    if (e.homeId !== home.id) return;
    const n: Notice = { key: nextKey.current++, message: e.message, at: e.at };
    setNotices((list) => [n, ...list].sort((a, b) => b.at - a.at).slice(0, MAX_SHOWN));
  });

  const dismiss = (key: number) => {
    const i = notices.findIndex((n) => n.key === key);
    const rest = notices.filter((n) => n.key !== key);
    setNotices(rest);
    // The focused button goes away: keep the keyboard's place on the next notice, or the page.
    const next = rest[Math.min(Math.max(i, 0), rest.length - 1)];
    if (next) buttons.current.get(next.key)?.focus();
    else document.getElementById('main')?.focus();
  };

  const now = useNow(60_000);
  // The live region is always there, so a screen reader hears each notice as it arrives.
  return (
    <div className="notices" role="status" data-testid="notices">
      {notices.length > 0 && (
        <section className="notices-inner" aria-labelledby="notices-title">
          <h2 id="notices-title" className="visually-hidden">
            {notices.length === 1 ? 'Notice' : `${notices.length} notices`}
          </h2>
          <ul className="notice-list">
            {notices.map((n) => (
              <li key={n.key} className="notice notice-warn notice-item" data-testid="notice">
                <p className="notice-text">
                  <time className="notice-time" dateTime={new Date(n.at).toISOString()}>
                    {formatWhen(n.at, home.timeZone, now)}
                  </time>{' '}
                  {n.message}
                </p>
                <button
                  type="button"
                  className="btn btn-quiet notice-dismiss"
                  onClick={() => dismiss(n.key)}
                  ref={(el) => {
                    if (el) buttons.current.set(n.key, el);
                    else buttons.current.delete(n.key);
                  }}
                  data-testid="notice-dismiss"
                >
                  Dismiss
                  <span className="visually-hidden"> this notice</span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}

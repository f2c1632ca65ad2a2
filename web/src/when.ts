/**
 * "When may this guest come in", in words, for the household and for the guest: from a grant's
 * `now` (docs/api.md §11.3).
 */
import type { GuestGrantView } from '../../src/protocol/views.ts';

/**
 * "Sat 12 Dec, 14:00" in `timeZone`; without a zone, in the reader's own with its short name
 * ("Sat 12 Dec, 14:00 CET"), since then the reader cannot know which clock is meant.
 */
export function formatWhen(ms: number, timeZone?: string): string {
  const opts: Intl.DateTimeFormatOptions = {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
  };
  if (timeZone) opts.timeZone = timeZone;
  else opts.timeZoneName = 'short';
  return new Intl.DateTimeFormat(undefined, opts).format(ms);
}

/** The kind of a grant's state right now, for a badge's colour. */
export type GrantTone = 'ok' | 'neutral' | 'danger';

/** A grant's state now: "May come in now until …", "Next from …", "Revoked", "Used". */
export function grantNow(
  g: Pick<GuestGrantView, 'now'>,
  timeZone?: string,
): { readonly text: string; readonly tone: GrantTone } {
  const n = g.now;
  if (n.allowed) {
    return {
      text:
        n.until === null
          ? 'May come in now'
          : `May come in now until ${formatWhen(n.until, timeZone)}`,
      tone: 'ok',
    };
  }
  switch (n.reason) {
    case 'revoked':
      return { text: 'Revoked', tone: 'danger' };
    case 'used':
      return { text: 'Used — every entry is taken', tone: 'neutral' };
    case 'ended':
      return { text: 'Ended', tone: 'neutral' };
    default:
      return {
        text:
          n.nextStartsAt === null
            ? 'Not now'
            : `Not now — next from ${formatWhen(n.nextStartsAt, timeZone)}`,
        tone: 'neutral',
      };
  }
}

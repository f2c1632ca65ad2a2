/**
 * The observation watchdog of one access session (principle 3: observation is proven, never
 * assumed).
 *
 * The camera sends a heartbeat about every 500 ms naming the session, a sequence number, the
 * capture time and the digest of its newest frame, authenticated with the session key. The
 * watchdog accepts a heartbeat only if its MAC verified, it names this session, its sequence
 * number and capture time move forward, and the camera says it is recording. A heartbeat is
 * *fresh* when its frame digest is one not seen before in the session: a frozen picture (the
 * same digest again) or a looping one (an earlier digest again) is not fresh.
 *
 * From that it derives, against the clock:
 * - `lost`: no accepted heartbeat for `silenceMs`;
 * - `frozen`: heartbeats keep coming, but none fresh for `freezeMs`;
 * - coverage: the share of the observed period vouched for by fresh heartbeats, with every gap
 *   (a stretch longer than `silenceMs` between fresh heartbeats, or from the last one to now).
 *
 * It holds no timers: the caller asks {@link ObservationWatchdog.nextCheckAt} and calls
 * {@link ObservationWatchdog.check} then.
 */

export interface WatchdogConfig {
  /** Silence after which observation counts as lost, ms. */
  readonly silenceMs: number;
  /** Time without a fresh frame, while heartbeats go on, after which the feed counts as frozen, ms. */
  readonly freezeMs: number;
  /** Largest accepted difference between a heartbeat's capture time and its arrival, ms. */
  readonly maxClockSkewMs: number;
  /** How many distinct digests are remembered to detect a looping feed. */
  readonly digestMemory: number;
}

export const DEFAULT_WATCHDOG_CONFIG: WatchdogConfig = {
  // 2.5 heartbeat intervals of 500 ms: one lost heartbeat and some jitter pass, a cut does not.
  silenceMs: 1_250,
  freezeMs: 3_000,
  maxClockSkewMs: 10 * 60_000,
  digestMemory: 4_096,
};

/** A heartbeat as the watchdog sees it: parsed, with its MAC already checked by the caller. */
export interface HeartbeatObservation {
  readonly sessionId: string;
  readonly seq: number;
  readonly capturedAt: number;
  readonly frameDigest: string;
  readonly recording: boolean;
  /** Whether the MAC verified with this session's key. */
  readonly macValid: boolean;
}

export type HeartbeatRejection =
  | 'malformed'
  | 'bad-mac'
  | 'wrong-session'
  | 'replayed-seq'
  | 'time-went-back'
  | 'clock-implausible'
  | 'not-recording';

export type HeartbeatVerdict =
  | { readonly accepted: true; readonly fresh: boolean }
  | { readonly accepted: false; readonly reason: HeartbeatRejection };

export type ObservationStatus = 'pending' | 'live' | 'lost' | 'frozen';

/** A stretch of the session not vouched for by fresh heartbeats. */
export interface ObservationGap {
  /** The last fresh heartbeat before the gap (or the start of the observed period), ms. */
  readonly startMs: number;
  /** The next fresh heartbeat, or null while the gap is still open. */
  readonly endMs: number | null;
  /** `silence`: no accepted heartbeat came; `frozen`: heartbeats came but the picture did not change. */
  readonly cause: 'silence' | 'frozen';
}

export interface Coverage {
  /** 0..1: the share of [startMs, endMs] vouched for by fresh heartbeats. 1 when no time passed. */
  readonly ratio: number;
  readonly startMs: number | null;
  readonly endMs: number;
  readonly gaps: readonly ObservationGap[];
}

/** A change of the watchdog's status, reported by {@link ObservationWatchdog.check}. */
export interface WatchdogTransition {
  readonly from: ObservationStatus;
  readonly to: ObservationStatus;
  /** The time the condition began: for `lost` the last accepted heartbeat, for `frozen` the last fresh one. */
  readonly sinceMs: number;
  readonly atMs: number;
}

/** A SHA-256 digest as the wire carries it: 64 lowercase hex digits. */
const HEX_DIGEST = /^[0-9a-f]{64}$/;

/**
 * What the loop memory keeps of a digest: 31 bits. For a hex SHA-256 digest (the wire's form)
 * its first 31 bits; for anything else a 31-bit FNV-1a hash of the text. Two digests sharing a
 * key (a chance of 4,096 in 2^31 per heartbeat at a full memory) make a new frame count as not
 * fresh: the safe direction (one missing fresh heartbeat changes nothing; a freeze takes
 * `freezeMs` of them). A camera cannot use it to hide a loop: a repeated digest always has the
 * same key.
 */
export function digestKey(digest: string): number {
  if (HEX_DIGEST.test(digest)) return Number.parseInt(digest.slice(0, 8), 16) >>> 1;
  let h = 0x811c9dc5;
  for (let i = 0; i < digest.length; i++) h = Math.imul(h ^ digest.charCodeAt(i), 0x01000193);
  return h >>> 1;
}

/**
 * The digests a session has seen, newest `limit` of them, as 31-bit keys ({@link digestKey}):
 * a ring of keys in arrival order and an open-addressing set over them (linear probing, key + 1
 * stored so 0 is empty, deletion by backward shift), both typed arrays grown by doubling. About
 * 12 bytes per remembered frame, against some 100 for a `Set` of digest strings: a node watching
 * 10,000 ten-minute sessions at 2 Hz remembers 12 million frames.
 */
export class DigestMemory {
  private ring: Uint32Array;
  private head = 0;
  private count = 0;
  private table = new Uint32Array(32);

  constructor(private readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be ≥ 1');
    // Grown up to exactly `limit`, so a full memory's ring is the ring of the last `limit`.
    this.ring = new Uint32Array(Math.min(16, limit));
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.count;
  }

  has(key: number): boolean {
    return this.slotOf(key) >= 0;
  }

  /** Remembers `key` (not already remembered), forgetting the oldest beyond the limit. */
  add(key: number): void {
    if (this.count === this.limit) {
      const oldest = this.ring[this.head]!;
      this.remove(oldest);
      this.ring[this.head] = key;
      this.head = (this.head + 1) % this.limit;
    } else {
      if (this.count === this.ring.length) this.growRing();
      this.ring[(this.head + this.count) % this.ring.length] = key;
      this.count += 1;
    }
    if (this.count * 2 > this.table.length) this.rehash(this.table.length * 2);
    this.insert(key);
  }

  private growRing(): void {
    const next = new Uint32Array(Math.min(this.limit, this.ring.length * 2));
    for (let i = 0; i < this.count; i++) next[i] = this.ring[(this.head + i) % this.ring.length]!;
    this.ring = next;
    this.head = 0;
  }

  private insert(key: number): void {
    const mask = this.table.length - 1;
    let i = key & mask;
    while (this.table[i] !== 0) i = (i + 1) & mask;
    this.table[i] = key + 1;
  }

  private slotOf(key: number): number {
    const mask = this.table.length - 1;
    for (let i = key & mask; ; i = (i + 1) & mask) {
      const v = this.table[i]!;
      if (v === 0) return -1;
      if (v === key + 1) return i;
    }
  }

  private remove(key: number): void {
    const mask = this.table.length - 1;
    let hole = this.slotOf(key);
    if (hole < 0) return;
    this.table[hole] = 0;
    // Backward shift: move up every later entry of the run whose home is not between the hole
    // and its slot, so every key stays reachable from its home without tombstones.
    for (let i = (hole + 1) & mask; this.table[i] !== 0; i = (i + 1) & mask) {
      const home = (this.table[i]! - 1) & mask;
      const between = hole <= i ? home > hole && home <= i : home > hole || home <= i;
      if (between) continue;
      this.table[hole] = this.table[i]!;
      this.table[i] = 0;
      hole = i;
    }
  }

  private rehash(size: number): void {
    const old = this.table;
    this.table = new Uint32Array(size);
    for (const v of old) if (v !== 0) this.insert(v - 1);
  }
}

export class ObservationWatchdog {
  private statusValue: ObservationStatus = 'pending';
  private lastSeq = -1;
  private lastCapturedAt = -Infinity;
  private lastAcceptedAt: number | null = null;
  private lastFreshAt: number | null = null;
  private firstFreshAt: number | null = null;
  private lastDigest: string | null = null;
  /** The digests seen in this session (the newest digestMemory of them). */
  private readonly seen: DigestMemory;
  private readonly closedGaps: ObservationGap[] = [];
  /**
   * The longest wait between accepted heartbeats since the last fresh one: a gap in which the
   * camera kept talking (below `silenceMs`) is a frozen picture; otherwise it is silence.
   */
  private longestSilenceSinceFresh = 0;
  private rejectedCount = 0;

  constructor(
    readonly sessionId: string,
    private readonly config: WatchdogConfig = DEFAULT_WATCHDOG_CONFIG,
  ) {
    this.seen = new DigestMemory(config.digestMemory);
  }

  get status(): ObservationStatus {
    return this.statusValue;
  }

  /** When the first fresh heartbeat arrived (the camera proved it is recording), or null. */
  get observedSince(): number | null {
    return this.firstFreshAt;
  }

  get lastFreshHeartbeatAt(): number | null {
    return this.lastFreshAt;
  }

  get lastAcceptedHeartbeatAt(): number | null {
    return this.lastAcceptedAt;
  }

  get rejected(): number {
    return this.rejectedCount;
  }

  /** Judges a heartbeat that arrived at `now`; accepted ones update the watchdog. */
  onHeartbeat(hb: HeartbeatObservation, now: number): HeartbeatVerdict {
    const reject = (reason: HeartbeatRejection): HeartbeatVerdict => {
      this.rejectedCount++;
      return { accepted: false, reason };
    };
    if (!Number.isSafeInteger(hb.seq) || !Number.isFinite(hb.capturedAt))
      return reject('malformed');
    if (!hb.macValid) return reject('bad-mac');
    if (hb.sessionId !== this.sessionId) return reject('wrong-session');
    if (hb.seq <= this.lastSeq) return reject('replayed-seq');
    if (hb.capturedAt < this.lastCapturedAt) return reject('time-went-back');
    if (Math.abs(hb.capturedAt - now) > this.config.maxClockSkewMs)
      return reject('clock-implausible');
    if (!hb.recording) return reject('not-recording');

    this.lastSeq = hb.seq;
    this.lastCapturedAt = hb.capturedAt;
    if (this.lastAcceptedAt !== null) {
      this.longestSilenceSinceFresh = Math.max(
        this.longestSilenceSinceFresh,
        now - this.lastAcceptedAt,
      );
    }
    this.lastAcceptedAt = now;
    const key = digestKey(hb.frameDigest);
    const fresh = hb.frameDigest !== this.lastDigest && !this.seen.has(key);
    this.lastDigest = hb.frameDigest;
    if (fresh) {
      this.seen.add(key);
      if (this.lastFreshAt !== null && now - this.lastFreshAt >= this.config.silenceMs) {
        this.closedGaps.push({ startMs: this.lastFreshAt, endMs: now, cause: this.gapCause(now) });
      }
      this.firstFreshAt ??= now;
      this.lastFreshAt = now;
      this.longestSilenceSinceFresh = 0;
      this.statusValue = 'live';
    }
    return { accepted: true, fresh };
  }

  /** Why the stretch since the last fresh heartbeat, up to `endMs`, was not observed. */
  private gapCause(endMs: number): ObservationGap['cause'] {
    const tail = this.lastAcceptedAt === null ? 0 : endMs - this.lastAcceptedAt;
    const longest = Math.max(this.longestSilenceSinceFresh, tail);
    return longest >= this.config.silenceMs ? 'silence' : 'frozen';
  }

  /**
   * Re-evaluates the status at `now`. Returns the transition when the status changed to `lost`
   * or `frozen` (a return to `live` happens in {@link onHeartbeat}, and the caller sees it there).
   */
  check(now: number): WatchdogTransition | null {
    if (this.lastFreshAt === null || this.lastAcceptedAt === null) return null; // never observed: arming handles it
    const from = this.statusValue;
    let to: ObservationStatus = from;
    let sinceMs = now;
    if (now - this.lastAcceptedAt >= this.config.silenceMs) {
      to = 'lost';
      sinceMs = this.lastAcceptedAt;
    } else if (now - this.lastFreshAt >= this.config.freezeMs) {
      to = 'frozen';
      sinceMs = this.lastFreshAt;
    }
    if (to === from || to === 'live' || to === 'pending') return null;
    this.statusValue = to;
    return { from, to, sinceMs, atMs: now };
  }

  /** When {@link check} could next change the status, or null if nothing is pending. */
  nextCheckAt(): number | null {
    if (this.lastFreshAt === null || this.lastAcceptedAt === null) return null;
    const lostAt = this.lastAcceptedAt + this.config.silenceMs;
    if (this.statusValue === 'lost') return null;
    if (this.statusValue === 'frozen') return lostAt;
    return Math.min(lostAt, this.lastFreshAt + this.config.freezeMs);
  }

  /** Coverage of the observed period up to `endMs` (the session's end, or now). */
  coverage(endMs: number): Coverage {
    const start = this.firstFreshAt;
    if (start === null) return { ratio: 0, startMs: null, endMs, gaps: [] };
    const gaps: ObservationGap[] = [...this.closedGaps];
    if (this.lastFreshAt !== null && endMs - this.lastFreshAt >= this.config.silenceMs) {
      gaps.push({ startMs: this.lastFreshAt, endMs: null, cause: this.gapCause(endMs) });
    }
    const span = endMs - start;
    if (span <= 0) return { ratio: 1, startMs: start, endMs, gaps };
    const uncovered = gaps.reduce((sum, g) => sum + ((g.endMs ?? endMs) - g.startMs), 0);
    const ratio = Math.max(0, Math.min(1, 1 - uncovered / span));
    return { ratio, startMs: start, endMs, gaps };
  }
}

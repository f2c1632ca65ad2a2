import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WATCHDOG_CONFIG,
  DigestMemory,
  digestKey,
  ObservationWatchdog,
  type HeartbeatObservation,
  type WatchdogConfig,
} from './observation-watchdog.ts';

const SESSION = 'session-1';
const T0 = 1_768_478_400_000;
const CONFIG: WatchdogConfig = {
  silenceMs: 1_500,
  freezeMs: 3_000,
  maxClockSkewMs: 10_000,
  digestMemory: 4_096,
};

/**
 * A camera as the watchdog sees it: each heartbeat has the next sequence number and is
 * captured at its arrival time; `digest` says which frame it carries.
 */
class Camera {
  private seq = 0;
  private frame = 0;
  constructor(private readonly w: ObservationWatchdog) {}

  /** A heartbeat with a new frame. */
  fresh(at: number) {
    return this.w.onHeartbeat(this.hb(at, `frame-${++this.frame}`), at);
  }

  /** A heartbeat repeating the newest frame (a frozen picture). */
  same(at: number) {
    return this.w.onHeartbeat(this.hb(at, `frame-${this.frame}`), at);
  }

  /** A heartbeat with an earlier frame (a looping picture). */
  old(at: number, frame: number) {
    return this.w.onHeartbeat(this.hb(at, `frame-${frame}`), at);
  }

  hb(at: number, frameDigest: string, patch: Partial<HeartbeatObservation> = {}) {
    return {
      sessionId: SESSION,
      seq: ++this.seq,
      capturedAt: at,
      frameDigest,
      recording: true,
      macValid: true,
      ...patch,
    };
  }

  /** Fresh heartbeats every `everyMs` from `from` to `to` inclusive. */
  steady(from: number, to: number, everyMs = 500): void {
    for (let t = from; t <= to; t += everyMs)
      expect(this.fresh(t)).toEqual({ accepted: true, fresh: true });
  }
}

function setup(config: WatchdogConfig = CONFIG) {
  const w = new ObservationWatchdog(SESSION, config);
  return { w, cam: new Camera(w) };
}

const hb = (patch: Partial<HeartbeatObservation>): HeartbeatObservation => ({
  sessionId: SESSION,
  seq: 1,
  capturedAt: T0,
  frameDigest: 'frame-x',
  recording: true,
  macValid: true,
  ...patch,
});

describe('ObservationWatchdog', () => {
  describe('before the first fresh heartbeat', () => {
    it('is pending, has nothing to check and covers nothing', () => {
      const { w } = setup();
      expect(w.status).toBe('pending');
      expect(w.observedSince).toBeNull();
      expect(w.check(T0 + 60_000)).toBeNull();
      expect(w.status).toBe('pending');
      expect(w.nextCheckAt()).toBeNull();
      expect(w.coverage(T0 + 60_000)).toEqual({
        ratio: 0,
        startMs: null,
        endMs: T0 + 60_000,
        gaps: [],
      });
    });

    it('stays pending after rejected heartbeats', () => {
      const { w } = setup();
      expect(w.onHeartbeat(hb({ macValid: false }), T0)).toEqual({
        accepted: false,
        reason: 'bad-mac',
      });
      expect(w.onHeartbeat(hb({ recording: false }), T0)).toEqual({
        accepted: false,
        reason: 'not-recording',
      });
      expect(w.status).toBe('pending');
      expect(w.lastAcceptedHeartbeatAt).toBeNull();
      expect(w.rejected).toBe(2);
    });

    it('goes live with the first fresh heartbeat', () => {
      const { w } = setup();
      expect(w.onHeartbeat(hb({}), T0 + 200)).toEqual({ accepted: true, fresh: true });
      expect(w.status).toBe('live');
      expect(w.observedSince).toBe(T0 + 200);
      expect(w.lastFreshHeartbeatAt).toBe(T0 + 200);
      expect(w.lastAcceptedHeartbeatAt).toBe(T0 + 200);
    });

    it('uses the default config when given none', () => {
      const w = new ObservationWatchdog(SESSION);
      w.onHeartbeat(hb({}), T0);
      expect(w.nextCheckAt()).toBe(T0 + DEFAULT_WATCHDOG_CONFIG.silenceMs);
    });
  });

  describe('judging heartbeats', () => {
    it('accepts increasing sequence numbers, also with holes', () => {
      const { w } = setup();
      for (const [i, seq] of [0, 1, 2, 7, 100].entries()) {
        const at = T0 + i * 500;
        expect(w.onHeartbeat(hb({ seq, capturedAt: at, frameDigest: `f${seq}` }), at)).toEqual({
          accepted: true,
          fresh: true,
        });
      }
      expect(w.rejected).toBe(0);
    });

    it('accepts a capture time equal to the previous one', () => {
      const { w } = setup();
      w.onHeartbeat(hb({ seq: 1, frameDigest: 'a' }), T0);
      expect(w.onHeartbeat(hb({ seq: 2, frameDigest: 'b' }), T0 + 10).accepted).toBe(true);
    });

    const REJECTIONS = [
      { name: 'a MAC that did not verify', patch: { macValid: false }, reason: 'bad-mac' },
      { name: 'another session', patch: { sessionId: 'session-2' }, reason: 'wrong-session' },
      { name: 'a replayed sequence number', patch: { seq: 5 }, reason: 'replayed-seq' },
      { name: 'an earlier sequence number', patch: { seq: 4 }, reason: 'replayed-seq' },
      {
        name: 'a capture time going back',
        patch: { capturedAt: T0 + 999 },
        reason: 'time-went-back',
      },
      {
        name: 'a capture time too far in the future',
        patch: { capturedAt: T0 + 1_500 + 10_001 },
        reason: 'clock-implausible',
      },
      {
        name: 'a camera that is not recording',
        patch: { recording: false },
        reason: 'not-recording',
      },
    ] as const;

    for (const r of REJECTIONS) {
      it(`rejects ${r.name} (${r.reason}) and changes nothing`, () => {
        const { w } = setup();
        expect(
          w.onHeartbeat(hb({ seq: 5, capturedAt: T0 + 1_000, frameDigest: 'a' }), T0 + 1_000),
        ).toEqual({
          accepted: true,
          fresh: true,
        });
        const before = w.nextCheckAt();

        const v = w.onHeartbeat(
          hb({ seq: 6, capturedAt: T0 + 1_500, frameDigest: 'b', ...r.patch }),
          T0 + 1_500,
        );

        expect(v).toEqual({ accepted: false, reason: r.reason });
        expect(w.rejected).toBe(1);
        expect(w.lastAcceptedHeartbeatAt).toBe(T0 + 1_000);
        expect(w.lastFreshHeartbeatAt).toBe(T0 + 1_000);
        expect(w.nextCheckAt()).toBe(before);
        // The rejected one did not move the sequence, capture time or digest memory on.
        expect(
          w.onHeartbeat(hb({ seq: 6, capturedAt: T0 + 1_600, frameDigest: 'b' }), T0 + 1_600),
        ).toEqual({
          accepted: true,
          fresh: true,
        });
      });
    }

    it('rejects a capture time too far in the past', () => {
      const { w } = setup();
      expect(w.onHeartbeat(hb({ capturedAt: T0 - 10_001 }), T0)).toEqual({
        accepted: false,
        reason: 'clock-implausible',
      });
    });

    it('accepts a skew of exactly maxClockSkewMs either way', () => {
      const { w } = setup();
      expect(
        w.onHeartbeat(hb({ seq: 1, capturedAt: T0 - 10_000, frameDigest: 'a' }), T0).accepted,
      ).toBe(true);
      expect(
        w.onHeartbeat(hb({ seq: 2, capturedAt: T0 + 10_000, frameDigest: 'b' }), T0).accepted,
      ).toBe(true);
    });

    it('checks the MAC before anything else', () => {
      const { w } = setup();
      w.onHeartbeat(hb({ seq: 5, frameDigest: 'a' }), T0);
      const v = w.onHeartbeat(
        hb({ macValid: false, sessionId: 'other', seq: 1, capturedAt: 0, recording: false }),
        T0,
      );
      expect(v).toEqual({ accepted: false, reason: 'bad-mac' });
    });

    it('a forged heartbeat with a huge sequence number does not lock the camera out', () => {
      const { w } = setup();
      w.onHeartbeat(hb({ seq: 1, frameDigest: 'a' }), T0);
      w.onHeartbeat(hb({ seq: 1_000_000, macValid: false, frameDigest: 'b' }), T0 + 500);
      expect(
        w.onHeartbeat(hb({ seq: 2, capturedAt: T0 + 500, frameDigest: 'c' }), T0 + 500),
      ).toEqual({
        accepted: true,
        fresh: true,
      });
    });

    it('counts a repeated digest as accepted but not fresh', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      expect(cam.same(T0 + 500)).toEqual({ accepted: true, fresh: false });
      expect(w.lastAcceptedHeartbeatAt).toBe(T0 + 500);
      expect(w.lastFreshHeartbeatAt).toBe(T0);
    });

    it('counts an earlier digest (a loop) as not fresh', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      cam.fresh(T0 + 500);
      cam.fresh(T0 + 1_000);
      expect(cam.old(T0 + 1_500, 1)).toEqual({ accepted: true, fresh: false });
      expect(cam.old(T0 + 2_000, 2)).toEqual({ accepted: true, fresh: false });
      expect(w.lastFreshHeartbeatAt).toBe(T0 + 1_000);
    });

    it('keys a wire digest by its first 31 bits, and anything else by a 31-bit hash', () => {
      expect(digestKey('ff'.repeat(32))).toBe(0x7fffffff);
      expect(digestKey(`0000000${'1'.repeat(57)}`)).toBe(0);
      expect(digestKey(`00000002${'a'.repeat(56)}`)).toBe(1);
      const other = digestKey('frame-1');
      expect(other).toBe(digestKey('frame-1'));
      expect(other).not.toBe(digestKey('frame-2'));
      expect(other).toBeGreaterThanOrEqual(0);
      expect(other).toBeLessThan(2 ** 31);
      // Upper case is not the wire's form: hashed, not read as hex.
      expect(digestKey('FF'.repeat(32))).not.toBe(0x7fffffff);
    });

    it('remembers exactly the newest keys, as a set of the last `limit` would', () => {
      // Keys crowded into few home slots exercise probing, wrap-around and backward shifts.
      let seed = 7;
      const next = (): number => (seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 1);
      for (const limit of [1, 2, 5, 16, 100, 1_000]) {
        const m = new DigestMemory(limit);
        const order: number[] = [];
        for (let i = 0; i < limit * 5 + 50; i++) {
          const key = i % 3 === 0 ? (next() % 64) * 1_024 : next() % 5_000;
          const expected = order.includes(key);
          expect(m.has(key)).toBe(expected);
          if (expected) continue;
          m.add(key);
          order.push(key);
          if (order.length > limit) order.shift();
          expect(m.size).toBe(order.length);
        }
        for (const key of order) expect(m.has(key)).toBe(true);
        for (let key = 0; key < 5_000; key += 7) expect(m.has(key)).toBe(order.includes(key));
      }
    });

    it('recognises a loop of wire digests after many fresh frames', () => {
      const { w } = setup();
      const hex = (i: number): string => i.toString(16).padStart(8, '0').repeat(8);
      let seq = 0;
      const beat = (at: number, digest: string) =>
        w.onHeartbeat(
          {
            sessionId: w.sessionId,
            seq: seq++,
            capturedAt: at,
            frameDigest: digest,
            recording: true,
            macValid: true,
          },
          at,
        );
      // Digests that differ only after their first 31 bits would share a key: these do not.
      for (let i = 0; i < 1_000; i++)
        expect(beat(T0 + i * 500, hex(i * 2 + 2))).toEqual({ accepted: true, fresh: true });
      expect(beat(T0 + 500_000, hex(10))).toEqual({ accepted: true, fresh: false });
      expect(beat(T0 + 500_500, hex(2_002))).toEqual({ accepted: true, fresh: true });
    });

    it('remembers only digestMemory digests', () => {
      const { cam } = setup({ ...CONFIG, digestMemory: 2 });
      cam.fresh(T0); // frame-1
      cam.fresh(T0 + 500); // frame-2
      cam.fresh(T0 + 1_000); // frame-3: frame-1 is forgotten
      expect(cam.old(T0 + 1_500, 2)).toEqual({ accepted: true, fresh: false });
      expect(cam.old(T0 + 2_000, 1)).toEqual({ accepted: true, fresh: true });
    });
  });

  describe('lost', () => {
    it('is reported exactly silenceMs after the last accepted heartbeat, not before', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 2_000);

      expect(w.check(T0 + 2_000 + 1_499)).toBeNull();
      expect(w.status).toBe('live');

      expect(w.check(T0 + 3_500)).toEqual({
        from: 'live',
        to: 'lost',
        sinceMs: T0 + 2_000,
        atMs: T0 + 3_500,
      });
      expect(w.status).toBe('lost');
      // Reported once.
      expect(w.check(T0 + 3_600)).toBeNull();
      expect(w.check(T0 + 60_000)).toBeNull();
      expect(w.status).toBe('lost');
    });

    it('counts from the last accepted heartbeat even if it was not fresh, and wins over frozen', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      cam.same(T0 + 500);
      cam.same(T0 + 1_000);
      cam.same(T0 + 1_500);
      expect(w.check(T0 + 2_999)).toBeNull();
      // At T0 + 3000 both silence (1500 since T0 + 1500) and freeze (3000 since T0) hold.
      expect(w.check(T0 + 3_000)).toEqual({
        from: 'live',
        to: 'lost',
        sinceMs: T0 + 1_500,
        atMs: T0 + 3_000,
      });
    });

    it('is not postponed by rejected heartbeats', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      for (let t = T0 + 500; t <= T0 + 1_500; t += 500) {
        expect(w.onHeartbeat(cam.hb(t, `forged-${t}`, { macValid: false }), t).accepted).toBe(
          false,
        );
        expect(w.onHeartbeat(cam.hb(t, `idle-${t}`, { recording: false }), t).accepted).toBe(false);
      }
      expect(w.check(T0 + 1_500)).toEqual({
        from: 'live',
        to: 'lost',
        sinceMs: T0,
        atMs: T0 + 1_500,
      });
    });

    it('follows frozen when the heartbeats then stop', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      for (let t = T0 + 500; t <= T0 + 3_000; t += 500) cam.same(t);
      expect(w.check(T0 + 3_000)).toEqual({
        from: 'live',
        to: 'frozen',
        sinceMs: T0,
        atMs: T0 + 3_000,
      });
      expect(w.check(T0 + 4_499)).toBeNull();
      expect(w.check(T0 + 4_500)).toEqual({
        from: 'frozen',
        to: 'lost',
        sinceMs: T0 + 3_000,
        atMs: T0 + 4_500,
      });
    });

    it('recovers to live on a fresh heartbeat', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      w.check(T0 + 2_000);
      expect(w.status).toBe('lost');
      expect(cam.fresh(T0 + 5_000)).toEqual({ accepted: true, fresh: true });
      expect(w.status).toBe('live');
      expect(w.observedSince).toBe(T0);
      expect(w.check(T0 + 5_100)).toBeNull();
      expect(w.check(T0 + 6_500)).toEqual({
        from: 'live',
        to: 'lost',
        sinceMs: T0 + 5_000,
        atMs: T0 + 6_500,
      });
    });
  });

  describe('frozen', () => {
    it('is reported when the digest repeats for freezeMs while heartbeats go on', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 1_000);
      for (let t = T0 + 1_500; t <= T0 + 4_000; t += 500) {
        expect(cam.same(t)).toEqual({ accepted: true, fresh: false });
        if (t < T0 + 4_000) expect(w.check(t)).toBeNull();
      }
      expect(w.check(T0 + 3_999)).toBeNull();
      expect(w.check(T0 + 4_000)).toEqual({
        from: 'live',
        to: 'frozen',
        sinceMs: T0 + 1_000,
        atMs: T0 + 4_000,
      });
      expect(w.status).toBe('frozen');
      cam.same(T0 + 4_500);
      expect(w.check(T0 + 4_500)).toBeNull();
    });

    it('is reported for a loop of earlier digests', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 1_500); // frames 1..4
      let t = T0 + 2_000;
      for (let round = 0; round < 2; round++) {
        for (let frame = 1; frame <= 4; frame++, t += 500) {
          expect(cam.old(t, frame)).toEqual({ accepted: true, fresh: false });
        }
      }
      expect(w.check(T0 + 4_499)).toBeNull();
      expect(w.check(T0 + 4_500)).toEqual({
        from: 'live',
        to: 'frozen',
        sinceMs: T0 + 1_500,
        atMs: T0 + 4_500,
      });
    });

    it('recovers to live on a fresh digest, keeping the frozen stretch as a gap', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      for (let t = T0 + 500; t <= T0 + 3_500; t += 500) cam.same(t);
      expect(w.check(T0 + 3_500)?.to).toBe('frozen');

      expect(cam.fresh(T0 + 4_000)).toEqual({ accepted: true, fresh: true });
      expect(w.status).toBe('live');
      expect(w.lastFreshHeartbeatAt).toBe(T0 + 4_000);
      expect(w.coverage(T0 + 4_000)).toEqual({
        ratio: 0,
        startMs: T0,
        endMs: T0 + 4_000,
        gaps: [{ startMs: T0, endMs: T0 + 4_000, cause: 'frozen' }],
      });
    });
  });

  describe('nextCheckAt', () => {
    it('is the earlier of silence after the last accepted and freeze after the last fresh', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      expect(w.nextCheckAt()).toBe(T0 + 1_500);
      cam.same(T0 + 500);
      expect(w.nextCheckAt()).toBe(T0 + 2_000);
      cam.same(T0 + 1_000);
      cam.same(T0 + 1_500);
      cam.same(T0 + 2_000);
      expect(w.nextCheckAt()).toBe(T0 + 3_000); // freeze comes before silence (T0 + 3500)
      cam.fresh(T0 + 2_500);
      expect(w.nextCheckAt()).toBe(T0 + 4_000);
    });

    it('is the silence deadline while frozen, and nothing once lost', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      for (let t = T0 + 500; t <= T0 + 3_000; t += 500) cam.same(t);
      w.check(T0 + 3_000);
      expect(w.status).toBe('frozen');
      expect(w.nextCheckAt()).toBe(T0 + 4_500);
      cam.same(T0 + 3_500);
      expect(w.nextCheckAt()).toBe(T0 + 5_000);
      w.check(T0 + 5_000);
      expect(w.status).toBe('lost');
      expect(w.nextCheckAt()).toBeNull();
      cam.fresh(T0 + 6_000);
      expect(w.nextCheckAt()).toBe(T0 + 7_500);
    });

    it('when followed, finds each change at the moment it happens', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 1_000);
      for (let t = T0 + 1_500; t <= T0 + 3_500; t += 500) cam.same(t);
      // The picture froze at T0 + 1000; the heartbeats stop after T0 + 3500.
      const seen: (string | number)[][] = [];
      // Bounded: a nextCheckAt that does not move on must fail the test, not hang it.
      for (let i = 0, at = w.nextCheckAt(); i < 5 && at !== null; i++, at = w.nextCheckAt()) {
        const tr = w.check(at);
        seen.push(tr === null ? ['no change', at] : [tr.to, tr.sinceMs, tr.atMs]);
      }
      expect(seen).toEqual([
        ['frozen', T0 + 1_000, T0 + 4_000],
        ['lost', T0 + 3_500, T0 + 5_000],
      ]);
    });
  });

  describe('coverage', () => {
    it('is 1 with no gaps for steady 500 ms heartbeats', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 60_000);
      expect(w.coverage(T0 + 60_000)).toEqual({
        ratio: 1,
        startMs: T0,
        endMs: T0 + 60_000,
        gaps: [],
      });
      expect(w.coverage(T0 + 61_000).ratio).toBe(1);
    });

    it('is 1 when no time passed since the first heartbeat', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      expect(w.coverage(T0)).toEqual({ ratio: 1, startMs: T0, endMs: T0, gaps: [] });
    });

    it('does not count a hiccup shorter than silenceMs as a gap', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 2_000);
      cam.steady(T0 + 3_400, T0 + 6_000, 400);
      expect(w.coverage(T0 + 6_000)).toEqual({
        ratio: 1,
        startMs: T0,
        endMs: T0 + 6_000,
        gaps: [],
      });
    });

    it('lists a 4 s cut as the gap from the last fresh heartbeat to the next one', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 5_000);
      expect(w.check(T0 + 6_500)).toEqual({
        from: 'live',
        to: 'lost',
        sinceMs: T0 + 5_000,
        atMs: T0 + 6_500,
      });
      cam.steady(T0 + 9_000, T0 + 12_000);
      expect(w.status).toBe('live');

      const c = w.coverage(T0 + 12_000);
      expect(c.gaps).toEqual([{ startMs: T0 + 5_000, endMs: T0 + 9_000, cause: 'silence' }]);
      expect(c.startMs).toBe(T0);
      expect(c.ratio).toBeCloseTo(2 / 3, 12); // 4 s of 12 s uncovered
    });

    it('lists every gap, in order', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 1_000);
      cam.steady(T0 + 3_000, T0 + 4_000); // 2 s silence
      cam.fresh(T0 + 4_500);
      for (let t = T0 + 5_000; t <= T0 + 7_500; t += 500) cam.same(t); // frozen
      cam.steady(T0 + 8_000, T0 + 10_000);
      const c = w.coverage(T0 + 10_000);
      expect(c.gaps).toEqual([
        { startMs: T0 + 1_000, endMs: T0 + 3_000, cause: 'silence' },
        { startMs: T0 + 4_500, endMs: T0 + 8_000, cause: 'frozen' },
      ]);
      expect(c.ratio).toBeCloseTo(1 - 5_500 / 10_000, 12);
    });

    it('lists an open gap at the end while the camera is silent', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 5_000);
      expect(w.coverage(T0 + 6_400).gaps).toEqual([]);
      const c = w.coverage(T0 + 8_000);
      expect(c.gaps).toEqual([{ startMs: T0 + 5_000, endMs: null, cause: 'silence' }]);
      expect(c.ratio).toBeCloseTo(1 - 3_000 / 8_000, 12);
    });

    it('lists an open gap at the end as frozen while stale heartbeats go on', () => {
      const { w, cam } = setup();
      cam.steady(T0, T0 + 2_000);
      for (let t = T0 + 2_500; t <= T0 + 6_000; t += 500) cam.same(t);
      const c = w.coverage(T0 + 6_000);
      expect(c.gaps).toEqual([{ startMs: T0 + 2_000, endMs: null, cause: 'frozen' }]);
      expect(c.ratio).toBeCloseTo(1 - 4_000 / 6_000, 12);
    });

    it('lists a gap of exactly silenceMs, as "lost" reports it', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      cam.fresh(T0 + 500);
      const silence = CONFIG.silenceMs;
      expect(w.check(T0 + 500 + silence)?.to).toBe('lost');
      cam.fresh(T0 + 500 + silence);
      expect(w.coverage(T0 + 500 + silence).gaps).toEqual([
        { startMs: T0 + 500, endMs: T0 + 500 + silence, cause: 'silence' },
      ]);
    });

    it('calls a gap silence when the camera went quiet after one repeated frame', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      cam.same(T0 + 500);
      cam.fresh(T0 + 5_000);
      expect(w.coverage(T0 + 5_000).gaps).toEqual([
        { startMs: T0, endMs: T0 + 5_000, cause: 'silence' },
      ]);
    });

    it('rejects a heartbeat whose sequence number is not a whole number', () => {
      const { w } = setup();
      expect(w.onHeartbeat(hb({ seq: Number.NaN }), T0)).toEqual({
        accepted: false,
        reason: 'malformed',
      });
    });

    it('starts at the first fresh heartbeat, not at the first call', () => {
      const { w, cam } = setup();
      w.onHeartbeat(hb({ macValid: false }), T0);
      cam.steady(T0 + 2_000, T0 + 4_000);
      expect(w.coverage(T0 + 4_000)).toEqual({
        ratio: 1,
        startMs: T0 + 2_000,
        endMs: T0 + 4_000,
        gaps: [],
      });
    });

    it('is 0 when nothing but the first heartbeat ever arrived', () => {
      const { w, cam } = setup();
      cam.fresh(T0);
      const c = w.coverage(T0 + 10_000);
      expect(c.ratio).toBe(0);
      expect(c.gaps).toEqual([{ startMs: T0, endMs: null, cause: 'silence' }]);
    });
  });
});

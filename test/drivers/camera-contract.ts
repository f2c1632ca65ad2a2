/**
 * The contract every {@link CameraDriver} keeps, as one test suite run against real cameras.
 *
 * A driver test calls {@link describeCameraDriverContract} with a factory that starts a real
 * source (its controls make the picture live, still, looping, stalled or gone) and builds a
 * driver reading it. Each check gets a fresh source and driver, so one failure does not leak
 * into the next. The checks:
 *
 * - a live source gives fresh frames: JPEGs whose digests are their SHA-256 and all differ,
 *   at no more than the configured rate, and makes the camera available;
 * - the freeze detector works on real frames: the core's observation watchdog, fed from the
 *   driver's frames with the production settings, calls a live source `live`, a still one (and
 *   a looping one) `frozen`, and `live` again when the picture moves;
 * - a stall (connection open, no bytes) is reported within `stallMs` + 1 s of the last frame,
 *   `latest()` is not refreshed meanwhile, and the watchdog fed from the frames calls it `lost`
 *   (silence, not a frozen picture);
 * - a source that goes away makes the camera unavailable (and `latest()` null); when it is
 *   back, frames come again without anyone restarting the driver;
 * - `stop()` ends the driver's process and nothing is emitted after it.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WATCHDOG_CONFIG,
  ObservationWatchdog,
  type WatchdogConfig,
} from '../../src/core/observation-watchdog.ts';
import type { CameraDriver, CameraDriverEvent, DriverFrame } from '../../src/hub/drivers/driver.ts';

/** How a test changes what the camera sends. Each may be called in any mode. */
export interface CameraSourceControls {
  /** A moving picture (also the way back from still, looping and stalled). */
  live(): void | Promise<void>;
  /** The same picture over and over, at the same rate. */
  still(): void | Promise<void>;
  /** The picture changes but cycles through the last `n` pictures. Only if the source can. */
  looping?(n: number): void | Promise<void>;
  /** Open connections stay open and silent (a cut Wi-Fi link on the wire). */
  stall(): void | Promise<void>;
  /** The camera is off: connections drop, new ones are refused. */
  gone(): Promise<void>;
  /** The camera is on again, live. */
  back(): Promise<void>;
}

/** One real source and a way to build drivers that read it. */
export interface CameraContractHarness {
  readonly source: CameraSourceControls;
  /** A driver reading the source, not started, with the `stallMs` the factory was given. */
  makeDriver(): CameraDriver;
  /** The OS process the driver runs now (its ffmpeg), or null when it runs none. */
  driverProcess(driver: CameraDriver): number | null;
  /** Whether the OS process `pid` still exists. */
  processAlive(pid: number): boolean;
  /** Stops the source (the test stops the driver). */
  close(): Promise<void>;
}

/** What the suite needs to know about a harness. */
export interface CameraContractOptions {
  /** The driver's stall time the suite asks for, ms. */
  readonly stallMs: number;
  /** The driver's frame rate, per second. */
  readonly fps: number;
  /**
   * Longest time from a change at the source to the first frame that shows it (the camera's and
   * the decoder's pipeline), ms. MJPEG over HTTP: well under a second; RTSP/H.264: about one.
   */
  readonly pipelineMs: number;
  /** Whether the source has a `looping` control. */
  readonly looping: boolean;
}

/** The driver's events as they came, with the wall time of each. */
class EventLog {
  readonly events: { readonly event: CameraDriverEvent; readonly wallMs: number }[] = [];
  private readonly unsubscribe: () => void;

  constructor(driver: CameraDriver) {
    this.unsubscribe = driver.on((event) => this.events.push({ event, wallMs: Date.now() }));
  }

  frames(sinceWallMs = 0): DriverFrame[] {
    return this.events.flatMap(({ event, wallMs }) =>
      event.type === 'frame' && wallMs >= sinceWallMs ? [event.frame] : [],
    );
  }

  ofType<T extends CameraDriverEvent['type']>(
    type: T,
    sinceWallMs = 0,
  ): Extract<CameraDriverEvent, { type: T }>[] {
    return this.events.flatMap(({ event, wallMs }) =>
      event.type === type && wallMs >= sinceWallMs
        ? [event as Extract<CameraDriverEvent, { type: T }>]
        : [],
    );
  }

  stop(): void {
    this.unsubscribe();
  }
}

/** Polls `condition` every 25 ms until it holds; fails with `what` after `timeoutMs`. */
async function waitUntil(what: string, timeoutMs: number, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(25);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The hub's use of the frames, in small: each frame becomes a heartbeat for the watchdog (the
 * hub signs its own heartbeats, so the MAC is valid by construction), and the watchdog is
 * checked at every frame and every 100 ms, as the hub's timer would.
 */
class FrameWatchdog {
  readonly watchdog: ObservationWatchdog;
  readonly transitions: { readonly to: string; readonly atMs: number }[] = [];
  private seq = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(driver: CameraDriver, config: WatchdogConfig) {
    this.watchdog = new ObservationWatchdog('contract-session', config);
    this.unsubscribe = driver.on((e) => {
      if (e.type !== 'frame') return;
      const now = e.frame.receivedAt;
      const before = this.watchdog.status;
      this.watchdog.onHeartbeat(
        {
          sessionId: 'contract-session',
          seq: this.seq++,
          capturedAt: now,
          frameDigest: e.frame.digest,
          recording: true,
          macValid: true,
        },
        now,
      );
      if (this.watchdog.status !== before) this.transitions.push({ to: 'live', atMs: now });
      this.check(now);
    });
    this.timer = setInterval(() => this.check(Date.now()), 100);
  }

  private check(now: number): void {
    const t = this.watchdog.check(now);
    if (t) this.transitions.push({ to: t.to, atMs: t.atMs });
  }

  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe();
  }
}

/**
 * Registers the camera driver contract as a `describe` block named `name`. `makeHarness` is
 * called once per check and must start a live source of its own: the checks run concurrently,
 * each with its own source and driver, so none waits for another and none shares a fault.
 */
export function describeCameraDriverContract(
  name: string,
  makeHarness: () => Promise<CameraContractHarness>,
  options: CameraContractOptions,
): void {
  const { stallMs, fps, pipelineMs } = options;
  // Time to the first frame of a fresh driver: connect, probe, decode.
  const firstFrameMs = 10_000;

  /**
   * Runs `body` with a fresh source and a started driver, and always cleans both up (and what
   * `body` handed to `defer`).
   */
  async function withCamera(
    body: (
      h: CameraContractHarness,
      driver: CameraDriver,
      log: EventLog,
      defer: (cleanup: () => void) => void,
    ) => Promise<void>,
  ): Promise<void> {
    const h = await makeHarness();
    const driver = h.makeDriver();
    const log = new EventLog(driver);
    const cleanups: (() => void)[] = [];
    try {
      await driver.start();
      await waitUntil('a first frame', firstFrameMs, () => log.frames().length > 0);
      await body(h, driver, log, (cleanup) => cleanups.push(cleanup));
    } finally {
      for (const cleanup of cleanups) cleanup();
      log.stop();
      await driver.stop();
      await h.close();
    }
  }

  describe.concurrent(`camera driver contract: ${name}`, () => {
    it('a live source gives fresh JPEG frames with their own digests, at most at the set rate', async () => {
      await withCamera(async (_h, driver, log) => {
        expect(driver.kind).toBe('camera');
        await waitUntil('five frames', 5_000, () => log.frames().length >= 5);
        const frames = log.frames();
        // The camera became available before (not after) its first frame was reported.
        const firstAvailability = log.events.findIndex((e) => e.event.type === 'availability');
        const firstFrame = log.events.findIndex((e) => e.event.type === 'frame');
        expect(firstAvailability).toBeGreaterThanOrEqual(0);
        expect(firstAvailability).toBeLessThan(firstFrame);
        expect(log.ofType('availability')).toEqual([expect.objectContaining({ available: true })]);
        expect(driver.available()).toBe(true);
        for (const f of frames) {
          expect(f.jpeg.subarray(0, 2).toString('hex')).toBe('ffd8');
          expect(f.jpeg.subarray(-2).toString('hex')).toBe('ffd9');
          expect(f.digest).toBe(createHash('sha256').update(f.jpeg).digest('hex'));
        }
        expect(new Set(frames.map((f) => f.digest)).size).toBe(frames.length);
        for (let i = 1; i < frames.length; i++) {
          expect(frames[i]!.receivedAt).toBeGreaterThanOrEqual(frames[i - 1]!.receivedAt);
        }
        expect(driver.latest()).toBe(log.frames().at(-1));
        // The set rate bounds what reaches the hub (the source sends faster). A burst of two
        // after a hiccup is allowed; a flood is not.
        const windowMs = 2_000;
        const start = Date.now();
        await sleep(windowMs);
        const inWindow = log.frames(start).length;
        expect(inWindow).toBeLessThanOrEqual(Math.ceil((fps * windowMs) / 1000) + 2);
        expect(inWindow).toBeGreaterThanOrEqual(Math.floor((fps * windowMs) / 1000) - 2);
        expect(log.ofType('stalled')).toEqual([]);
      });
    });

    it('the watchdog, fed from real frames, calls a live source live, a still one frozen, and live again', async () => {
      await withCamera(async (h, driver, log) => {
        const config = DEFAULT_WATCHDOG_CONFIG;
        const fed = new FrameWatchdog(driver, config);
        try {
          await waitUntil('watchdog live', 5_000, () => fed.watchdog.status === 'live');
          // A live picture stays live: nothing but fresh frames for longer than freezeMs.
          await sleep(config.freezeMs + 500);
          expect(fed.watchdog.status).toBe('live');
          expect(fed.transitions.map((t) => t.to)).toEqual(['live']);

          const stillAt = Date.now();
          await h.source.still();
          await waitUntil('watchdog frozen', pipelineMs + config.freezeMs + 2_000, () =>
            fed.transitions.some((t) => t.to === 'frozen'),
          );
          // Frames kept coming (the camera is not lost): only the picture stopped changing,
          // which the hub sees as repeated digests.
          expect(fed.watchdog.status).toBe('frozen');
          expect(fed.transitions.map((t) => t.to)).not.toContain('lost');
          const stillFrames = log.frames(stillAt + pipelineMs);
          expect(stillFrames.length).toBeGreaterThanOrEqual(3);
          expect(new Set(stillFrames.map((f) => f.digest)).size).toBeLessThan(stillFrames.length);
          expect(driver.available()).toBe(true);

          await h.source.live();
          await waitUntil(
            'watchdog live again',
            pipelineMs + 3_000,
            () => fed.watchdog.status === 'live',
          );
          expect(fed.transitions.map((t) => t.to)).toEqual(['live', 'frozen', 'live']);
        } finally {
          fed.stop();
        }
      });
    });

    if (options.looping) {
      it('a looping source (the picture changes, but only through a few pictures) is frozen too', async () => {
        await withCamera(async (h, driver) => {
          const config = DEFAULT_WATCHDOG_CONFIG;
          const fed = new FrameWatchdog(driver, config);
          try {
            await waitUntil('watchdog live', 5_000, () => fed.watchdog.status === 'live');
            await h.source.looping?.(3);
            await waitUntil(
              'watchdog frozen',
              pipelineMs + config.freezeMs + 3_000,
              () => fed.watchdog.status === 'frozen',
            );
            expect(fed.transitions.map((t) => t.to)).toEqual(['live', 'frozen']);
          } finally {
            fed.stop();
          }
        });
      });
    }

    it('a stall (connection open, no bytes) is reported within stallMs + 1 s, latest() is not refreshed, and the watchdog calls it lost', async () => {
      await withCamera(async (h, driver, log, defer) => {
        const fed = new FrameWatchdog(driver, DEFAULT_WATCHDOG_CONFIG);
        defer(() => fed.stop());
        await waitUntil('two frames', 5_000, () => log.frames().length >= 2);
        const stalledAt = Date.now();
        await h.source.stall();
        await waitUntil(
          'stalled',
          pipelineMs + stallMs + 1_000,
          () => log.ofType('stalled').length > 0,
        );
        const [stalled] = log.ofType('stalled');
        const last = driver.latest();
        // The stall is timed from the last frame that came, and reported within a second of
        // stallMs running out.
        expect(last).not.toBeNull();
        expect(stalled!.sinceMs).toBe(last!.receivedAt);
        expect(last).toBe(log.frames().at(-1));
        expect(stalled!.at - stalled!.sinceMs).toBeGreaterThanOrEqual(stallMs);
        expect(stalled!.at - stalled!.sinceMs).toBeLessThanOrEqual(stallMs + 1_000);
        expect(stalled!.at).toBeLessThanOrEqual(stalledAt + pipelineMs + stallMs + 1_000);
        // The connection is still open: a stall is not "gone". Nothing new meanwhile, and the
        // stall is reported once.
        await sleep(1_000);
        expect(driver.latest()).toBe(last);
        expect(log.frames(stalled!.at)).toEqual([]);
        expect(log.ofType('stalled')).toHaveLength(1);
        expect(log.ofType('availability').map((e) => e.available)).toEqual([true]);
        // No picture, no heartbeat: the watchdog sees silence, not a frozen picture.
        await waitUntil('watchdog lost', DEFAULT_WATCHDOG_CONFIG.silenceMs + 500, () =>
          fed.transitions.some((t) => t.to === 'lost'),
        );
        expect(fed.transitions.map((t) => t.to)).toEqual(['live', 'lost']);

        const resumedAt = Date.now();
        await h.source.live();
        await waitUntil(
          'frames after the stall',
          pipelineMs + 3_000,
          () => log.frames(resumedAt).length > 0,
        );
        expect(driver.latest()!.receivedAt).toBeGreaterThan(last!.receivedAt);
      });
    });

    it('a source that goes away makes the camera unavailable; when it is back, frames come again', async () => {
      await withCamera(async (h, driver, log) => {
        await h.source.gone();
        const goneAt = Date.now();
        await waitUntil('unavailable', 5_000, () => !driver.available());
        expect(log.ofType('availability').map((e) => e.available)).toEqual([true, false]);
        expect(driver.latest()).toBeNull();
        // While it is off, the driver keeps trying (below) but reports nothing new.
        await sleep(2_000);
        expect(driver.available()).toBe(false);
        expect(log.frames(goneAt + 200)).toEqual([]);
        expect(log.ofType('availability')).toHaveLength(2);

        const backAt = Date.now();
        await h.source.back();
        // The driver retries after 1 s, 2 s, 4 s…: the next attempt is at most 4 s away.
        await waitUntil(
          'frames after coming back',
          4_000 + firstFrameMs,
          () => log.frames(backAt).length >= 2,
        );
        expect(driver.available()).toBe(true);
        expect(log.ofType('availability').map((e) => e.available)).toEqual([true, false, true]);
        expect(driver.latest()).toBe(log.frames().at(-1));
      });
    });

    it('stop() ends the driver process, and nothing is emitted after it', async () => {
      const h = await makeHarness();
      const driver = h.makeDriver();
      const log = new EventLog(driver);
      try {
        await driver.start();
        await waitUntil('a first frame', firstFrameMs, () => log.frames().length > 0);
        const pid = h.driverProcess(driver);
        expect(pid).not.toBeNull();
        expect(h.processAlive(pid!)).toBe(true);
        await driver.stop();
        expect(h.processAlive(pid!)).toBe(false);
        expect(h.driverProcess(driver)).toBeNull();
        expect(driver.latest()).toBeNull();
        const count = log.events.length;
        await sleep(1_000);
        expect(log.events).toHaveLength(count);
        await driver.stop(); // idempotent
      } finally {
        log.stop();
        await driver.stop();
        await h.close();
      }
    });
  });
}

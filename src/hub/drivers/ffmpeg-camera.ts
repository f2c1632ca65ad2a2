/**
 * A camera the hub reads itself, through Debian's `ffmpeg`: MJPEG over HTTP
 * (`multipart/x-mixed-replace`) or RTSP (over TCP). The hub does not take the camera's word for
 * what it sees: ffmpeg decodes the stream and re-encodes it to JPEG at a fixed, low rate, and the
 * hub hashes each picture it received. Those digests feed the observation watchdog, so a frozen
 * or looping picture (the same digests again) and a stall (the connection stays open but no
 * picture comes, which is what a Wi-Fi deauthentication flood looks like on the wire) are
 * detected on real frames, not on what a compromised camera claims.
 *
 * - `frame` for every picture, with the SHA-256 of its bytes; the first frame of a connection
 *   makes the camera available.
 * - `stalled` once, when no frame came for `stallMs` while ffmpeg is still running.
 * - `availability` false when ffmpeg exits (the camera refused or went away) or when no picture
 *   came for `ioTimeoutMs` (the driver then ends ffmpeg itself); the driver then starts ffmpeg again after a backoff (1 s, doubling, at most 30 s; back to 1 s
 *   once a frame came).
 * - Memory is bounded: frames go to listeners as they arrive and are never queued; a picture
 *   larger than `maxFrameBytes` is dropped.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../protocol/system-clock.ts';
import type { CameraDriver, CameraDriverEvent, DriverFrame } from './driver.ts';

/** How ffmpeg reaches the camera. */
export type FfmpegCameraSource = 'mjpeg' | 'rtsp';

/** Settings of an {@link FfmpegCamera}. */
export interface FfmpegCameraOptions {
  /** The device id the hub presents upstream. */
  readonly id: string;
  /** `mjpeg`: an `http(s)://` URL serving `multipart/x-mixed-replace`; `rtsp`: an `rtsp://` URL. */
  readonly source: FfmpegCameraSource;
  /** The camera's URL, credentials included if it needs them (never logged by this driver). */
  readonly url: string;
  /** Frames per second the hub takes from the camera, at most (0.2 … 30). Default 2. */
  readonly fps?: number;
  /** No frame for this long while connected counts as a stall, ms (≥ 100). Default 2000. */
  readonly stallMs?: number;
  /**
   * A connection that gave no picture for this long (since its last one, or since it was opened)
   * is given up: ffmpeg is stopped, the camera is unavailable, and the driver reconnects. ms;
   * default `max(10 000, 2 × stallMs)`, so a stall is reported long before. The driver enforces
   * it itself: ffmpeg's RTSP reader does not apply its socket timeout to a connection that went
   * silent (ffmpeg gets a later one as a backstop).
   */
  readonly ioTimeoutMs?: number;
  /** JPEG quality for ffmpeg's `-q:v`, 2 (best) … 31. Default 5. */
  readonly quality?: number;
  /** Largest picture accepted, bytes; larger ones are dropped. Default 4 MiB. */
  readonly maxFrameBytes?: number;
  /** First wait before restarting ffmpeg, ms; it doubles up to {@link maxBackoffMs}. Default 1000. */
  readonly initialBackoffMs?: number;
  /** Longest wait before restarting ffmpeg, ms. Default 30 000. */
  readonly maxBackoffMs?: number;
  /** How long {@link FfmpegCamera.start} waits for the first frame, ms. Default 10 000. */
  readonly startTimeoutMs?: number;
  /** How long the driver waits after SIGTERM before SIGKILL when it ends ffmpeg, ms. Default 2000. */
  readonly killGraceMs?: number;
  /** The ffmpeg binary. Default `ffmpeg` (from PATH). */
  readonly ffmpegPath?: string;
  /** Hub clock for timestamps and timers. Default the system clock. */
  readonly clock?: Clock;
}

/** Counters for diagnostics and tests. */
export interface FfmpegCameraStats {
  /** ffmpeg processes started. */
  readonly spawns: number;
  /** Frames handed to listeners. */
  readonly frames: number;
  /** Pictures dropped for being larger than `maxFrameBytes`, or malformed. */
  readonly dropped: number;
  /** Listener calls that threw (the other listeners still ran). */
  readonly listenerErrors: number;
}

const STDERR_LINES = 20;

/**
 * The ffmpeg arguments for a camera: read the source with a socket timeout, keep at most `fps`
 * pictures a second without ever duplicating one (`-fps_mode vfr`: a duplicate would come in a
 * burst after a stall and look like fresh frames), and write JPEGs back to back on stdout.
 */
export function ffmpegCameraArgs(
  opts: Pick<FfmpegCameraOptions, 'source' | 'url'> & {
    readonly fps: number;
    readonly quality: number;
    /** ffmpeg's own socket timeout, ms: a backstop behind the driver's idle timer. */
    readonly socketTimeoutMs: number;
  },
): string[] {
  const timeoutUs = String(Math.round(opts.socketTimeoutMs * 1000));
  const input =
    opts.source === 'rtsp'
      ? ['-rtsp_transport', 'tcp', '-timeout', timeoutUs]
      : ['-rw_timeout', timeoutUs, '-f', 'mpjpeg'];
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    // Probe and buffer as little as possible: the first picture should reach the hub at once,
    // and each later one as soon as it is decoded. low_delay turns off the H.264 decoder's frame
    // threading, which held back a picture per thread (about a second at 5 fps); a stream with
    // B-frames makes the decoder reorder anyway.
    '-fflags',
    'nobuffer',
    '-flags',
    'low_delay',
    '-probesize',
    '32',
    '-analyzeduration',
    '0',
    // MJPEG over HTTP carries no timestamps; the hub's arrival time is what rate-limits.
    '-use_wallclock_as_timestamps',
    '1',
    ...input,
    '-i',
    opts.url,
    '-an',
    '-fps_mode',
    'vfr',
    '-r',
    String(opts.fps),
    '-f',
    'image2pipe',
    '-c:v',
    'mjpeg',
    '-q:v',
    String(opts.quality),
    'pipe:1',
  ];
}

/**
 * Cuts a byte stream of concatenated JPEG pictures into pictures, by walking the JPEG marker
 * structure (segment lengths, then the entropy-coded data up to the next real marker), so bytes
 * `FF D9` inside a table or a thumbnail do not end a picture early. Holds at most one partial
 * picture, never more than `maxFrameBytes`: a larger one is dropped and the stream resynchronised
 * on the next start-of-image.
 */
export class JpegSplitter {
  private buf: Buffer = Buffer.alloc(0);
  /** Where the next unparsed byte is in `buf`. */
  private pos = 0;
  /** Where the picture being parsed starts in `buf`, or -1 while looking for one. */
  private start = -1;
  private inEntropy = false;
  private droppedCount = 0;

  constructor(private readonly maxFrameBytes = 4 * 1024 * 1024) {}

  /** Pictures dropped (too large or malformed). */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Bytes held for a partial picture. */
  get buffered(): number {
    return this.buf.length;
  }

  /** Takes the next bytes; returns the pictures they completed, in order. */
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const done = this.step();
      if (done === 'more') break;
      if (done !== 'continue') out.push(done);
    }
    // Forget what was consumed, so the buffer never holds more than one partial picture.
    const keepFrom = this.start >= 0 ? this.start : this.pos;
    if (keepFrom > 0) {
      this.buf = this.buf.subarray(keepFrom);
      this.pos -= keepFrom;
      if (this.start >= 0) this.start = 0;
    }
    if (this.start >= 0 && this.buf.length > this.maxFrameBytes) this.dropPartial();
    return out;
  }

  /** One parsing step: a finished picture, `continue`, or `more` when bytes are missing. */
  private step(): Buffer | 'continue' | 'more' {
    const b = this.buf;
    if (this.start < 0) {
      const soi = findMarker(b, 0xd8, this.pos);
      if (soi < 0) {
        // Keep a trailing 0xFF: it may be the first half of the next SOI.
        this.pos = b.length > 0 && b[b.length - 1] === 0xff ? b.length - 1 : b.length;
        return 'more';
      }
      this.start = soi;
      this.pos = soi + 2;
      this.inEntropy = false;
      return 'continue';
    }
    if (this.inEntropy) {
      // Entropy-coded data: 0xFF is stuffed (FF 00) or a restart marker (FF D0…D7); anything
      // else after 0xFF is the next real marker.
      let p = this.pos;
      for (;;) {
        const ff = b.indexOf(0xff, p);
        if (ff < 0 || ff + 1 >= b.length) {
          this.pos = ff < 0 ? b.length : ff;
          return 'more';
        }
        const n = b[ff + 1] as number;
        if (n === 0x00 || (n >= 0xd0 && n <= 0xd7)) p = ff + 2;
        else if (n === 0xff) p = ff + 1;
        else {
          this.pos = ff;
          this.inEntropy = false;
          return 'continue';
        }
      }
    }
    // Between segments: expect a marker.
    let p = this.pos;
    if (p >= b.length) return 'more';
    if (b[p] !== 0xff) return this.malformed();
    while (p < b.length && b[p] === 0xff && b[p + 1] === 0xff) p++; // fill bytes
    if (p + 1 >= b.length) return 'more';
    const m = b[p + 1] as number;
    if (m === 0xd9) {
      const start = this.start;
      this.pos = p + 2;
      this.start = -1;
      // A whole picture can arrive in one chunk: the limit holds for it too.
      if (p + 2 - start > this.maxFrameBytes) {
        this.droppedCount++;
        return 'continue';
      }
      return Buffer.from(b.subarray(start, p + 2));
    }
    if (m === 0xd8) return this.malformed();
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) {
      this.pos = p + 2;
      return 'continue';
    }
    if (p + 3 >= b.length) return 'more';
    const length = ((b[p + 2] as number) << 8) | (b[p + 3] as number);
    if (length < 2) return this.malformed();
    if (p + 2 + length > b.length) return 'more';
    this.pos = p + 2 + length;
    if (m === 0xda) this.inEntropy = true;
    return 'continue';
  }

  /** A broken picture: drop it and look for the next start-of-image after its own. */
  private malformed(): 'continue' {
    this.droppedCount++;
    this.pos = this.start + 2;
    this.start = -1;
    return 'continue';
  }

  /** The partial picture grew past the limit: drop it and look for the next one. */
  private dropPartial(): void {
    this.droppedCount++;
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.start = -1;
    this.inEntropy = false;
  }
}

/** Index of the marker `FF <code>` at or after `from`, or -1. */
function findMarker(b: Buffer, code: number, from: number): number {
  let p = from;
  for (;;) {
    const ff = b.indexOf(0xff, p);
    if (ff < 0 || ff + 1 >= b.length) return -1;
    if (b[ff + 1] === code) return ff;
    p = ff + 1;
  }
}

/** See the module comment. */
export class FfmpegCamera implements CameraDriver {
  readonly kind = 'camera' as const;
  readonly id: string;
  private readonly source: FfmpegCameraSource;
  private readonly url: string;
  private readonly fps: number;
  private readonly stallMs: number;
  private readonly ioTimeoutMs: number;
  private readonly quality: number;
  private readonly maxFrameBytes: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly startTimeoutMs: number;
  private readonly killGraceMs: number;
  private readonly ffmpegPath: string;
  private readonly clock: Clock;

  private readonly listeners = new Set<(e: CameraDriverEvent) => void>();
  private child: ChildProcessByStdio<null, Readable, Readable> | null = null;
  private childExited: Promise<void> | null = null;
  /** null until the first connection attempt settled: unknown is not "unavailable". */
  private availableState: boolean | null = null;
  private latestFrame: DriverFrame | null = null;
  /** Last frame of the current connection (or when it began), for the stall timer. */
  private lastProgressAt = 0;
  private stalledReported = false;
  private cancelStall: (() => void) | undefined;
  private cancelIdle: (() => void) | undefined;
  private cancelRestart: (() => void) | undefined;
  private backoffMs: number;
  private started = false;
  private stopped = false;
  private readonly stderrTail: string[] = [];
  private settleStart: (() => void) | undefined;
  private spawns = 0;
  private frames = 0;
  private droppedBefore = 0;
  private splitter: JpegSplitter;
  private listenerErrors = 0;

  /** Checks the settings; nothing starts before {@link FfmpegCamera.start}. */
  constructor(options: FfmpegCameraOptions) {
    this.id = options.id;
    this.source = options.source;
    this.url = options.url;
    this.fps = options.fps ?? 2;
    this.stallMs = options.stallMs ?? 2_000;
    this.ioTimeoutMs = options.ioTimeoutMs ?? Math.max(10_000, 2 * this.stallMs);
    this.quality = options.quality ?? 5;
    this.maxFrameBytes = options.maxFrameBytes ?? 4 * 1024 * 1024;
    this.initialBackoffMs = options.initialBackoffMs ?? 1_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.killGraceMs = options.killGraceMs ?? 2_000;
    this.ffmpegPath = options.ffmpegPath ?? 'ffmpeg';
    this.clock = options.clock ?? systemClock;
    this.backoffMs = this.initialBackoffMs;
    this.splitter = new JpegSplitter(this.maxFrameBytes);

    // Comparisons written so that NaN fails them too.
    const check = (ok: boolean, what: string): void => {
      if (!ok) throw new RangeError(`camera ${this.id}: ${what}`);
    };
    check(this.source === 'mjpeg' || this.source === 'rtsp', 'source must be mjpeg or rtsp');
    const scheme = urlScheme(this.url);
    const wanted = this.source === 'rtsp' ? ['rtsp:'] : ['http:', 'https:'];
    check(
      scheme !== null && wanted.includes(scheme),
      `a ${this.source} camera needs a ${wanted.join(' or ')} URL`,
    );
    check(this.fps >= 0.2 && this.fps <= 30, 'fps must be 0.2 … 30');
    check(this.stallMs >= 100, 'stallMs must be ≥ 100');
    check(this.ioTimeoutMs >= this.stallMs, 'ioTimeoutMs must be ≥ stallMs');
    check(
      Number.isInteger(this.quality) && this.quality >= 2 && this.quality <= 31,
      'quality must be an integer 2 … 31',
    );
    check(this.maxFrameBytes >= 1024, 'maxFrameBytes must be ≥ 1024');
    check(
      this.initialBackoffMs > 0 && this.maxBackoffMs >= this.initialBackoffMs,
      'backoff must be > 0 and maxBackoffMs ≥ initialBackoffMs',
    );
    check(this.startTimeoutMs >= 0 && this.killGraceMs >= 0, 'timeouts must be ≥ 0');
  }

  /**
   * Starts ffmpeg. Resolves at the first frame, or when the first attempt failed (the camera is
   * then unavailable and the driver keeps retrying), or after `startTimeoutMs`.
   */
  start(): Promise<void> {
    if (this.started || this.stopped) return Promise.resolve();
    this.started = true;
    return new Promise<void>((resolve) => {
      const cancelTimeout = this.clock.schedule(this.clock.now() + this.startTimeoutMs, () =>
        this.settleStart?.(),
      );
      this.settleStart = () => {
        this.settleStart = undefined;
        cancelTimeout();
        resolve();
      };
      this.spawnFfmpeg();
    });
  }

  /** Kills ffmpeg (SIGTERM, then SIGKILL after the grace time) and clears every timer. */
  async stop(): Promise<void> {
    if (this.stopped) return this.childExited ?? undefined;
    this.stopped = true;
    this.listeners.clear();
    this.clearConnectionTimers();
    this.cancelRestart?.();
    this.settleStart?.();
    await this.terminate();
    this.latestFrame = null;
    this.availableState = false;
  }

  /** True from the first frame of a connection until ffmpeg exits or is given up. */
  available(): boolean {
    return this.availableState === true;
  }

  /**
   * The newest frame. During a stall it stays the last one that came (its `receivedAt` shows its
   * age; the `stalled` event said so); null while unavailable and after stop.
   */
  latest(): DriverFrame | null {
    return this.latestFrame;
  }

  /** Listens to frames, stalls and availability; returns the function that stops listening. */
  on(listener: (e: CameraDriverEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The running ffmpeg's process id, or null between attempts and after stop. */
  pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** The last lines ffmpeg wrote on stderr (why a connection failed). */
  diagnostics(): readonly string[] {
    return [...this.stderrTail];
  }

  /** Counters since construction. */
  stats(): FfmpegCameraStats {
    return {
      spawns: this.spawns,
      frames: this.frames,
      dropped: this.droppedBefore + this.splitter.dropped,
      listenerErrors: this.listenerErrors,
    };
  }

  /**
   * Ends the running ffmpeg, if any: `first` (SIGTERM lets it close cleanly), then SIGKILL after
   * the grace time.
   */
  private async terminate(first: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const child = this.child;
    const exited = this.childExited;
    if (!child || !exited) return;
    child.kill(first);
    // A plain timer, not the hub clock: ending a process must happen even under a fake clock.
    const force = setTimeout(() => child.kill('SIGKILL'), this.killGraceMs);
    await exited;
    clearTimeout(force);
  }

  private clearConnectionTimers(): void {
    this.cancelStall?.();
    this.cancelStall = undefined;
    this.cancelIdle?.();
    this.cancelIdle = undefined;
  }

  private spawnFfmpeg(): void {
    if (this.stopped) return;
    this.cancelRestart = undefined;
    this.droppedBefore += this.splitter.dropped;
    this.splitter = new JpegSplitter(this.maxFrameBytes);
    const args = ffmpegCameraArgs({
      source: this.source,
      url: this.url,
      fps: this.fps,
      quality: this.quality,
      // Later than the driver's own idle timer, so that one decides, the same way for both
      // sources and with its own diagnostic.
      socketTimeoutMs: this.ioTimeoutMs + 5_000,
    });
    const child = spawn(this.ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.spawns++;
    this.child = child;
    this.stalledReported = false;
    this.lastProgressAt = this.clock.now();
    this.armIdleTimer();
    let exitedOnce = false;
    this.childExited = new Promise<void>((resolve) => {
      const onGone = (): void => {
        if (exitedOnce) return;
        exitedOnce = true;
        resolve();
        this.onExit(child);
      };
      child.once('close', onGone);
      // A binary that cannot be started emits only 'error' (no 'close' follows in that case).
      child.once('error', (err) => {
        this.noteStderr(`spawn failed: ${err.message}`);
        if (child.pid === undefined) onGone();
      });
    });
    const splitter = this.splitter;
    child.stdout.on('data', (chunk: Buffer) => {
      if (this.child !== child || this.stopped) return;
      for (const jpeg of splitter.push(chunk)) this.onJpeg(jpeg);
    });
    let partial = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      // Bounded: only whole lines are kept, the last few, each cut to a sane length.
      const lines = (partial + text).split('\n');
      partial = (lines.pop() ?? '').slice(-1_000);
      for (const line of lines) if (line.trim() !== '') this.noteStderr(line);
    });
  }

  private noteStderr(line: string): void {
    // ffmpeg echoes the input URL in some errors; never keep a password from it.
    this.stderrTail.push(redactUrl(line.slice(0, 500), this.url));
    if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
  }

  private onJpeg(jpeg: Buffer): void {
    const now = this.clock.now();
    const frame: DriverFrame = {
      receivedAt: now,
      jpeg,
      digest: createHash('sha256').update(jpeg).digest('hex'),
    };
    this.frames++;
    this.latestFrame = frame;
    this.lastProgressAt = now;
    this.stalledReported = false;
    this.backoffMs = this.initialBackoffMs;
    this.armStallTimer();
    this.armIdleTimer();
    if (this.availableState !== true) {
      this.availableState = true;
      this.emit({ type: 'availability', available: true, at: now });
    }
    this.emit({ type: 'frame', frame });
    this.settleStart?.();
  }

  private armStallTimer(): void {
    this.cancelStall?.();
    this.cancelStall = this.clock.schedule(this.lastProgressAt + this.stallMs, () => {
      this.cancelStall = undefined;
      if (this.stopped || this.child === null || this.stalledReported) return;
      this.stalledReported = true;
      this.emit({ type: 'stalled', sinceMs: this.lastProgressAt, at: this.clock.now() });
    });
  }

  /** Gives the connection up when no picture came for `ioTimeoutMs`; its exit then reconnects. */
  private armIdleTimer(): void {
    this.cancelIdle?.();
    const child = this.child;
    this.cancelIdle = this.clock.schedule(this.lastProgressAt + this.ioTimeoutMs, () => {
      this.cancelIdle = undefined;
      if (this.stopped || child === null || this.child !== child) return;
      this.noteStderr(`no picture for ${this.ioTimeoutMs} ms: reconnecting`);
      // SIGKILL at once: ffmpeg honours a first SIGTERM only between packets, which a silent
      // connection never delivers, and it has nothing to save.
      void this.terminate('SIGKILL');
    });
  }

  private onExit(child: ChildProcessByStdio<null, Readable, Readable>): void {
    if (this.child !== child) return;
    this.child = null;
    this.clearConnectionTimers();
    if (this.stopped) return;
    this.latestFrame = null;
    const now = this.clock.now();
    if (this.availableState !== false) {
      this.availableState = false;
      this.emit({ type: 'availability', available: false, at: now });
    }
    this.settleStart?.();
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs * 2);
    this.cancelRestart = this.clock.schedule(now + wait, () => this.spawnFfmpeg());
  }

  private emit(event: CameraDriverEvent): void {
    if (this.stopped) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // One faulty listener must not keep the others (the watchdog among them) from the facts.
        this.listenerErrors++;
      }
    }
  }
}

function urlScheme(url: string): string | null {
  try {
    return new URL(url).protocol;
  } catch {
    return null;
  }
}

/** `line` with the password of `url` (if it has one) replaced by `***`. */
function redactUrl(line: string, url: string): string {
  try {
    const { password } = new URL(url);
    if (password === '') return line;
    return line.split(password).join('***').split(decodeURIComponent(password)).join('***');
  } catch {
    return line;
  }
}

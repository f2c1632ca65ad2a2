/**
 * Records what a camera driver delivers, while armed, to an MP4 file (H.264) through `ffmpeg`.
 *
 * The clip is made of exactly the frames the hub received and hashed, not of a second
 * connection to the camera: the digests the hub vouched for upstream are the pictures in the
 * clip (the recorder keeps them, in order), and a camera that allows one client (many
 * ESP32-CAM and cheap MJPEG cameras) is not disturbed. Each JPEG is timestamped by ffmpeg when
 * it arrives (`-use_wallclock_as_timestamps 1`), so the clip plays in real time and a stall
 * shows as a picture held for as long as it lasted, not as a cut.
 *
 * Memory is bounded: when ffmpeg does not keep up, frames are dropped (and counted), never
 * queued beyond `maxPendingBytes`; a clip ends at `maxFrames`.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import type { CameraDriver, DriverFrame } from './driver.ts';

/** Settings of an {@link FfmpegClipRecorder}. */
export interface FfmpegClipRecorderOptions {
  /** The camera whose frames are recorded. */
  readonly camera: Pick<CameraDriver, 'on'>;
  /** The ffmpeg binary. Default `ffmpeg` (from PATH). */
  readonly ffmpegPath?: string;
  /** Most bytes waiting for ffmpeg before frames are dropped. Default 8 MiB. */
  readonly maxPendingBytes?: number;
  /** A clip ends (later frames are not recorded) after this many frames. Default 7 200 (1 h at 2 fps). */
  readonly maxFrames?: number;
  /** How long {@link FfmpegClipRecorder.stop} waits for ffmpeg to finish the file, ms. Default 10 000. */
  readonly finishTimeoutMs?: number;
}

/** One recorded frame: when the hub received it and its SHA-256. */
export interface ClipFrameRef {
  readonly receivedAt: number;
  readonly digest: string;
}

/** A finished clip. */
export interface ClipResult {
  readonly path: string;
  /** Size of the MP4 file, bytes (0 when no frame was recorded and no file was written). */
  readonly bytes: number;
  /** The frames written to ffmpeg, in order. */
  readonly frames: readonly ClipFrameRef[];
  /** Frames dropped because ffmpeg did not keep up or the clip was full. */
  readonly dropped: number;
  /** Whether ffmpeg finished the file cleanly (exit code 0). */
  readonly complete: boolean;
  /** ffmpeg's last error lines when it did not. */
  readonly error: string | null;
}

/**
 * The ffmpeg arguments of a clip: JPEGs on stdin, stamped on arrival, to H.264 in MP4 with a
 * variable frame rate (no duplicated frames), `+faststart` so the file plays from the start
 * while it downloads.
 */
export function ffmpegClipArgs(path: string): string[] {
  return [
    ...['-hide_banner', '-nostdin', '-loglevel', 'error', '-y'],
    ...['-use_wallclock_as_timestamps', '1', '-f', 'image2pipe', '-c:v', 'mjpeg', '-i', 'pipe:0'],
    ...['-an', '-fps_mode', 'vfr', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p'],
    // yuv420p needs even dimensions; cameras almost always have them, this makes sure.
    ...['-vf', 'scale=trunc(iw/2)*2:trunc(ih/2)*2', '-movflags', '+faststart', '-f', 'mp4', path],
  ];
}

interface Recording {
  readonly path: string;
  readonly child: ChildProcessByStdio<Writable, null, Readable>;
  readonly exited: Promise<number | null>;
  readonly frames: ClipFrameRef[];
  dropped: number;
  stderr: string;
  readonly unsubscribe: () => void;
}

/** See the module comment. One clip at a time. */
export class FfmpegClipRecorder {
  private readonly camera: Pick<CameraDriver, 'on'>;
  private readonly ffmpegPath: string;
  private readonly maxPendingBytes: number;
  private readonly maxFrames: number;
  private readonly finishTimeoutMs: number;
  private current: Recording | null = null;

  /** Nothing starts before {@link FfmpegClipRecorder.start}. */
  constructor(options: FfmpegClipRecorderOptions) {
    this.camera = options.camera;
    this.ffmpegPath = options.ffmpegPath ?? 'ffmpeg';
    this.maxPendingBytes = options.maxPendingBytes ?? 8 * 1024 * 1024;
    this.maxFrames = options.maxFrames ?? 7_200;
    this.finishTimeoutMs = options.finishTimeoutMs ?? 10_000;
  }

  /** Whether a clip is being recorded. */
  recording(): boolean {
    return this.current !== null;
  }

  /** Starts recording the camera's frames to `path` (an `.mp4`, overwritten). */
  start(path: string): void {
    if (this.current) throw new Error(`already recording to ${this.current.path}`);
    const child = spawn(this.ffmpegPath, ffmpegClipArgs(path), {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => {
      child.once('close', (code) => resolve(code));
      child.once('error', (err) => {
        rec.stderr += `spawn failed: ${err.message}\n`;
        if (child.pid === undefined) resolve(null);
      });
    });
    // A write to an ffmpeg that died is an EPIPE on stdin: the exit code tells the story.
    child.stdin.on('error', () => undefined);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      rec.stderr = (rec.stderr + text).slice(-2_000);
    });
    const rec: Recording = {
      path,
      child,
      exited,
      frames: [],
      dropped: 0,
      stderr: '',
      unsubscribe: this.camera.on((e) => {
        if (e.type === 'frame') this.write(rec, e.frame);
      }),
    };
    this.current = rec;
  }

  /** Ends the clip: ffmpeg finishes the file; resolves with what was recorded. */
  async stop(): Promise<ClipResult | null> {
    const rec = this.current;
    if (!rec) return null;
    this.current = null;
    rec.unsubscribe();
    // End of input makes ffmpeg write the MP4 index and exit; a hung one is killed.
    rec.child.stdin.end();
    const kill = setTimeout(() => rec.child.kill('SIGKILL'), this.finishTimeoutMs);
    const code = await rec.exited;
    clearTimeout(kill);
    const bytes = await stat(rec.path).then(
      (s) => s.size,
      () => 0,
    );
    const complete = code === 0 && rec.frames.length > 0;
    return {
      path: rec.path,
      bytes,
      frames: rec.frames,
      dropped: rec.dropped,
      complete,
      error: complete
        ? null
        : rec.stderr.trim() || (rec.frames.length === 0 ? 'no frame came' : `exit ${String(code)}`),
    };
  }

  private write(rec: Recording, frame: DriverFrame): void {
    const stdin = rec.child.stdin;
    if (
      rec.frames.length >= this.maxFrames ||
      !stdin.writable ||
      stdin.writableLength + frame.jpeg.length > this.maxPendingBytes
    ) {
      rec.dropped++;
      return;
    }
    stdin.write(frame.jpeg);
    rec.frames.push({ receivedAt: frame.receivedAt, digest: frame.digest });
  }
}

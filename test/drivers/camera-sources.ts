/**
 * Real cameras for the camera driver tests, all on 127.0.0.1:
 *
 * - {@link MjpegTestCamera}: an MJPEG-over-HTTP camera (`multipart/x-mixed-replace`), as cheap
 *   IP cameras and ESP32-CAMs serve it. One `ffmpeg` draws a live test pattern (`testsrc2`, a
 *   moving picture with a frame counter) and a small Node HTTP server fans its JPEGs out to
 *   every client. Node holds the socket, so the fault controls are exact: `still` repeats one
 *   picture, `looping` cycles through a few, `stall` keeps the connection open and stops writing
 *   (a cut Wi-Fi link on the wire), `gone` closes every connection and the port.
 * - {@link startFfmpegListenCamera}: ffmpeg's own MJPEG server (`-f mpjpeg -listen 1`), to prove
 *   the driver reads what ffmpeg, not only our server, writes. It serves one client, then exits.
 * - {@link RtspTestCamera}: an RTSP camera streaming H.264, from GStreamer's RTSP server
 *   (Debian's `gstreamer1.0-rtsp` through `python3-gi`). Live is SMPTE bars whose noise strip
 *   changes every picture, as a sensor's noise does; `still` switches to a static checkerboard
 *   (H.264 then decodes to the same one or two pictures over and over: a key frame and the
 *   frames that follow it); `stall` freezes the server process (SIGSTOP), so its TCP connections stay open and silent;
 *   `gone` kills it; `back` starts it again on the same port.
 *
 * Every child process is killed by `close()`, and, as a last resort, when the test process
 * exits; the children also stop by themselves when their stdout or stdin pipe breaks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { freePort } from '../../src/harness/free-port.ts';
import { JpegSplitter } from '../../src/hub/drivers/ffmpeg-camera.ts';

/** What a test camera's picture does now. */
export type TestCameraMode = 'live' | 'still' | 'looping' | 'stalled' | 'gone';

/** System Python: Debian's python3-gi is installed for it, not for a Python on PATH. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Starts a child process that the test process kills on exit if nobody else did. */
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  return child;
}

/** Whether the process `pid` still exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Ends `child`: SIGCONT (in case it is stopped), SIGTERM, then SIGKILL after `graceMs`. */
export async function killChild(child: ChildProcess, graceMs = 2_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGCONT');
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(force);
}

/** Collects a child's stderr (bounded) for error messages. */
function stderrTail(child: ChildProcess): () => string {
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    tail = (tail + text).slice(-4_000);
  });
  return () => tail;
}

const BOUNDARY = 'ffmpeg';

/** Settings of an {@link MjpegTestCamera}. */
export interface MjpegTestCameraOptions {
  /** Pictures per second the pattern runs at. Default 5. */
  readonly fps?: number;
  /** Picture size. Default 320x240. */
  readonly size?: string;
}

/** See the module comment. */
export class MjpegTestCamera {
  private mode: TestCameraMode = 'live';
  private readonly recent: Buffer[] = [];
  private stillFrame: Buffer | null = null;
  private loopFrames: Buffer[] = [];
  private loopIndex = 0;
  private readonly clients = new Set<http.ServerResponse>();
  private server: http.Server;
  private generatorError = '';

  private constructor(
    private readonly generator: ChildProcess,
    readonly port: number,
  ) {
    this.server = this.createServer();
  }

  /** Starts the pattern and the server; resolves once the first picture is ready. */
  static async start(options: MjpegTestCameraOptions = {}): Promise<MjpegTestCamera> {
    const fps = options.fps ?? 5;
    const size = options.size ?? '320x240';
    // -re: produce pictures in real time, as a camera does; -t bounds a forgotten generator.
    const generator = track(
      spawn(
        'ffmpeg',
        [
          ...['-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi'],
          ...['-i', `testsrc2=size=${size}:rate=${fps}`, '-t', '600'],
          ...['-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '5', 'pipe:1'],
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const errors = stderrTail(generator);
    const camera = new MjpegTestCamera(generator, await freePort());
    const splitter = new JpegSplitter();
    generator.stdout?.on('data', (chunk: Buffer) => {
      for (const jpeg of splitter.push(chunk)) camera.onGeneratorFrame(jpeg);
    });
    generator.once('exit', () => {
      camera.generatorError = errors() || 'the test pattern ffmpeg exited';
    });
    await camera.listen();
    const deadline = Date.now() + 10_000;
    while (camera.recent.length === 0) {
      if (camera.generatorError !== '' || Date.now() > deadline) {
        await camera.close();
        throw new Error(`MJPEG test camera did not start: ${camera.generatorError}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return camera;
  }

  /** The camera's stream URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/video`;
  }

  /** Clients connected now. */
  connections(): number {
    return this.clients.size;
  }

  /** A moving picture again (also ends a stall, a still or a loop). */
  live(): void {
    this.mode = 'live';
  }

  /** The same picture over and over, at the same rate. */
  still(): void {
    this.stillFrame = this.recent[this.recent.length - 1] ?? null;
    this.mode = 'still';
  }

  /** Cycles through the last `n` pictures. */
  looping(n: number): void {
    this.loopFrames = this.recent.slice(-n);
    this.loopIndex = 0;
    this.mode = 'looping';
  }

  /** Connections stay open, nothing more is written to them. */
  stall(): void {
    this.mode = 'stalled';
  }

  /** Every connection is cut and the port closed (connections are refused). */
  async gone(): Promise<void> {
    if (this.mode === 'gone') return;
    this.mode = 'gone';
    for (const res of this.clients) res.destroy();
    this.clients.clear();
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }

  /** Listens again on the same port, with a live picture. */
  async back(): Promise<void> {
    if (this.mode !== 'gone') return;
    this.server = this.createServer();
    await this.listen();
    this.mode = 'live';
  }

  /** Stops the server and the pattern. */
  async close(): Promise<void> {
    if (this.mode !== 'gone') await this.gone();
    await killChild(this.generator);
  }

  private createServer(): http.Server {
    return http.createServer((_req, res) => {
      if (this.mode === 'gone') {
        res.destroy();
        return;
      }
      res.writeHead(200, {
        'Content-Type': `multipart/x-mixed-replace;boundary=${BOUNDARY}`,
        'Cache-Control': 'no-cache',
        Connection: 'close',
      });
      this.clients.add(res);
      res.once('close', () => this.clients.delete(res));
    });
  }

  private async listen(): Promise<void> {
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  private onGeneratorFrame(jpeg: Buffer): void {
    this.recent.push(jpeg);
    if (this.recent.length > 16) this.recent.shift();
    let out: Buffer | null;
    switch (this.mode) {
      case 'live':
        out = jpeg;
        break;
      case 'still':
        out = this.stillFrame;
        break;
      case 'looping':
        out = this.loopFrames[this.loopIndex++ % this.loopFrames.length] ?? null;
        break;
      case 'stalled':
      case 'gone':
        out = null;
        break;
    }
    if (out === null) return;
    const head = Buffer.from(
      `--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${out.length}\r\n\r\n`,
    );
    for (const res of this.clients) {
      // A client that does not keep up loses pictures instead of growing our memory.
      if (res.writableLength > 1024 * 1024) continue;
      res.write(Buffer.concat([head, out, Buffer.from('\r\n')]));
    }
  }
}

/** ffmpeg's own MJPEG server, for one client. */
export interface FfmpegListenCamera {
  readonly url: string;
  readonly close: () => Promise<void>;
}

/**
 * Starts `ffmpeg -f mpjpeg -listen 1` with a live test pattern: it waits for one client, streams
 * to it, and exits when that client goes (or after a minute).
 */
export async function startFfmpegListenCamera(): Promise<FfmpegListenCamera> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const child = track(
    spawn(
      'ffmpeg',
      [
        ...['-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi'],
        ...['-i', 'testsrc2=size=320x240:rate=5', '-t', '60'],
        ...['-c:v', 'mjpeg', '-q:v', '5', '-f', 'mpjpeg'],
        ...['-content_type', `multipart/x-mixed-replace;boundary=${BOUNDARY}`],
        ...['-listen', '1', url],
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  );
  const errors = stderrTail(child);
  // ffmpeg listens only once its input is open; wait until the port takes connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ffmpeg -listen exited: ${errors()}`);
    if (await portListens(port)) break;
    if (Date.now() > deadline) {
      await killChild(child);
      throw new Error(`ffmpeg -listen did not listen: ${errors()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, close: () => killChild(child) };
}

/**
 * Whether something listens on `port`, found by reading /proc (not by connecting: a probe
 * connection would be the one client `ffmpeg -listen 1` serves).
 */
async function portListens(port: number): Promise<boolean> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  // Columns: sl local_address rem_address st …; state 0A is LISTEN.
  return table
    .split('\n')
    .slice(1)
    .some((line) => {
      const cols = line.trim().split(/\s+/);
      return cols[1]?.endsWith(hex) === true && cols[3] === '0A';
    });
}

/**
 * GStreamer's RTSP server with a live H.264 test pattern at `rtsp://127.0.0.1:<port>/cam`. Reads
 * `live` / `still` lines on stdin; exits when stdin closes. One shared pipeline serves every
 * client; a key frame every second (`gop-size=5` at 5 fps) lets a new client start within a
 * second (openh264's default, 90 frames, would make it wait 18 s).
 */
const RTSP_SERVER_PY = String.raw`
import sys, gi
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1')
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch('( videotestsrc name=src is-live=true pattern=smpte '
    '! video/x-raw,width=320,height=240,framerate=5/1 ! openh264enc gop-size=5 '
    '! rtph264pay name=pay0 pt=96 config-interval=1 )')
factory.set_shared(True)
sources = []
mode = {'v': 'live'}
def apply(src):
    Gst.util_set_object_arg(src, 'pattern', 'smpte' if mode['v'] == 'live' else 'checkers-8')
def on_configure(f, media):
    src = media.get_element().get_by_name('src')
    sources.append(src)
    apply(src)
factory.connect('media-configure', on_configure)
server.get_mount_points().add_factory('/cam', factory)
if server.attach(None) == 0:
    print('cannot listen on port ' + port, file=sys.stderr, flush=True)
    sys.exit(3)
loop = GLib.MainLoop()
def on_stdin(ch, cond):
    line = sys.stdin.readline()
    if not line:
        loop.quit()
        return False
    mode['v'] = line.strip()
    for s in sources:
        apply(s)
    print('mode ' + mode['v'], flush=True)
    return True
GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
print('ready', flush=True)
loop.run()
`;

/** See the module comment. */
export class RtspTestCamera {
  private child: ChildProcess | null = null;
  private mode: TestCameraMode = 'live';

  private constructor(readonly port: number) {}

  /** Starts the server; resolves when it listens. */
  static async start(): Promise<RtspTestCamera> {
    const camera = new RtspTestCamera(await freePort());
    await camera.spawnServer();
    return camera;
  }

  /** The camera's stream URL. */
  get url(): string {
    return `rtsp://127.0.0.1:${this.port}/cam`;
  }

  /** A moving picture (also ends a stall or a still). */
  async live(): Promise<void> {
    if (this.mode === 'stalled') this.child?.kill('SIGCONT');
    this.mode = 'live';
    await this.tell('live');
  }

  /** A static picture (a checkerboard) at the same rate. */
  async still(): Promise<void> {
    if (this.mode === 'stalled') this.child?.kill('SIGCONT');
    this.mode = 'still';
    await this.tell('still');
  }

  /** The server process is frozen: connections stay open and silent. */
  stall(): void {
    this.mode = 'stalled';
    this.child?.kill('SIGSTOP');
  }

  /** The server is killed: connections drop, new ones are refused. */
  async gone(): Promise<void> {
    this.mode = 'gone';
    const child = this.child;
    this.child = null;
    if (child) await killChild(child);
  }

  /** A new server on the same port, live. */
  async back(): Promise<void> {
    if (this.child === null) await this.spawnServer();
    this.mode = 'live';
  }

  /** Stops the server. */
  async close(): Promise<void> {
    await this.gone();
  }

  private async spawnServer(): Promise<void> {
    const child = track(
      spawn(SYSTEM_PYTHON, ['-c', RTSP_SERVER_PY, String(this.port)], {
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    const errors = stderrTail(child);
    child.stdout?.setEncoding('utf8');
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('RTSP server: no "ready" in 10 s')), 10_000);
      child.stdout?.on('data', (text: string) => {
        if (text.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`RTSP server exited (${String(code)}): ${errors()}`));
      });
    });
    try {
      await ready;
    } catch (err) {
      await killChild(child);
      throw new Error(
        `${(err as Error).message}\n(needs Debian's gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0, ` +
          'gstreamer1.0-plugins-{base,good,bad} and python3-gi)',
      );
    }
    this.child = child;
  }

  private async tell(line: string): Promise<void> {
    const child = this.child;
    if (child === null) return;
    let onData: (text: string) => void = () => undefined;
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`RTSP server did not take "${line}"`)), 5_000);
      onData = (text: string): void => {
        if (text.includes(`mode ${line}`)) resolve();
      };
      child.stdout?.on('data', onData);
    });
    child.stdin?.write(`${line}\n`);
    try {
      await echoed;
    } finally {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
    }
  }
}

/**
 * {@link FfmpegCamera} against real cameras on 127.0.0.1: the camera driver contract over MJPEG
 * (HTTP) and RTSP (H.264), ffmpeg's own MJPEG server, a camera that is not there, and the JPEG
 * splitter on its own. The two contract runs and the other checks run side by side, each with
 * its own sources and ffmpeg processes, to keep the file well under a minute.
 */
import { freePort } from '../../src/harness/free-port.ts';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/core/clock.ts';
import type { CameraDriverEvent } from '../../src/hub/drivers/driver.ts';
import {
  FfmpegCamera,
  JpegSplitter,
  ffmpegCameraArgs,
  type FfmpegCameraOptions,
} from '../../src/hub/drivers/ffmpeg-camera.ts';
import { FfmpegClipRecorder } from '../../src/hub/drivers/ffmpeg-clip-recorder.ts';
import { describeCameraDriverContract, type CameraContractHarness } from './camera-contract.ts';
import {
  MjpegTestCamera,
  RtspTestCamera,
  processAlive,
  startFfmpegListenCamera,
} from './camera-sources.ts';

const pidOf = (d: unknown): number | null => (d instanceof FfmpegCamera ? d.pid() : null);

async function mjpegHarness(stallMs: number): Promise<CameraContractHarness> {
  const cam = await MjpegTestCamera.start();
  return {
    source: {
      live: () => cam.live(),
      still: () => cam.still(),
      looping: (n) => cam.looping(n),
      stall: () => cam.stall(),
      gone: () => cam.gone(),
      back: () => cam.back(),
    },
    makeDriver: () =>
      new FfmpegCamera({ id: 'cam-mjpeg', source: 'mjpeg', url: cam.url, fps: 2, stallMs }),
    driverProcess: pidOf,
    processAlive,
    close: () => cam.close(),
  };
}

async function rtspHarness(stallMs: number): Promise<CameraContractHarness> {
  const cam = await RtspTestCamera.start();
  return {
    source: {
      live: () => cam.live(),
      still: () => cam.still(),
      stall: () => cam.stall(),
      gone: () => cam.gone(),
      back: () => cam.back(),
    },
    makeDriver: () =>
      new FfmpegCamera({ id: 'cam-rtsp', source: 'rtsp', url: cam.url, fps: 2, stallMs }),
    driverProcess: pidOf,
    processAlive,
    close: () => cam.close(),
  };
}

/** A real baseline JPEG of `w`×`h` with a gradient that depends on `seed`. */
function makeJpeg(seed: number, w = 64, h = 48): Buffer {
  const data = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    data[i * 4] = (i + seed * 37) % 256;
    data[i * 4 + 1] = (i * 3 + seed) % 256;
    data[i * 4 + 2] = (seed * 11) % 256;
    data[i * 4 + 3] = 255;
  }
  return Buffer.from(jpeg.encode({ data, width: w, height: h }, 80).data);
}

/** `jpeg` with a comment segment holding `FF D9` (end-of-image) bytes right after its SOI. */
function withTrickyComment(jpegBytes: Buffer): Buffer {
  const text = Buffer.from([0x41, 0xff, 0xd9, 0x42, 0xff, 0xd8, 0x43]);
  const com = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, text.length + 2]), text]);
  return Buffer.concat([jpegBytes.subarray(0, 2), com, jpegBytes.subarray(2)]);
}

function splitInChunks(splitter: JpegSplitter, bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const size = sizes[i++ % sizes.length]!;
    out.push(...splitter.push(bytes.subarray(at, at + size)));
    at += size;
  }
  return out;
}

async function waitUntil(what: string, timeoutMs: number, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.concurrent('FfmpegCamera', () => {
  describeCameraDriverContract('FfmpegCamera, MJPEG over HTTP', () => mjpegHarness(1_000), {
    stallMs: 1_000,
    fps: 2,
    pipelineMs: 1_000,
    looping: true,
  });

  // RTSP/H.264 has about a second of pipeline (encoder, RTP, decoder), and a server just thawed
  // from SIGSTOP sends in bursts; the production stall time (2 s) keeps that from counting.
  describeCameraDriverContract('FfmpegCamera, RTSP (H.264 over TCP)', () => rtspHarness(2_000), {
    stallMs: 2_000,
    fps: 2,
    pipelineMs: 2_000,
    looping: false,
  });

  describe.concurrent('FfmpegCamera, beyond the contract', () => {
    it("reads ffmpeg's own MJPEG server, and a listener that throws does not stop the others", async () => {
      const source = await startFfmpegListenCamera();
      const driver = new FfmpegCamera({ id: 'cam-listen', source: 'mjpeg', url: source.url });
      const frames: string[] = [];
      driver.on(() => {
        throw new Error('a faulty listener');
      });
      driver.on((e) => {
        if (e.type === 'frame') frames.push(e.frame.digest);
      });
      try {
        await driver.start();
        await waitUntil('three frames', 8_000, () => frames.length >= 3);
        expect(new Set(frames).size).toBe(frames.length);
        expect(driver.available()).toBe(true);
        expect(driver.stats().listenerErrors).toBeGreaterThanOrEqual(3);
      } finally {
        await driver.stop();
        await source.close();
      }
    });

    for (const kind of ['mjpeg', 'rtsp'] as const) {
      it(`${kind}: a stall that outlasts ioTimeoutMs ends the connection (unavailable), and the driver reconnects`, async () => {
        const cam = kind === 'mjpeg' ? await MjpegTestCamera.start() : await RtspTestCamera.start();
        const driver = new FfmpegCamera({
          id: `cam-idle-${kind}`,
          source: kind,
          url: cam.url,
          stallMs: 1_000,
          ioTimeoutMs: 2_500,
        });
        const events: { readonly e: CameraDriverEvent; readonly wallMs: number }[] = [];
        driver.on((e) => events.push({ e, wallMs: Date.now() }));
        const kinds = () => events.filter(({ e }) => e.type !== 'frame').map(({ e }) => e.type);
        try {
          await driver.start();
          const firstPid = driver.pid();
          cam.stall();
          await waitUntil('unavailable', 2_000 + 2_500 + 2_000, () => !driver.available());
          expect(kinds()).toEqual(['availability', 'stalled', 'availability']);
          const [, stalled, down] = events.filter(({ e }) => e.type !== 'frame');
          // Given up ioTimeoutMs after the last picture (within a second), not at the stall.
          const lastFrameAt = (stalled!.e as { sinceMs: number }).sinceMs;
          expect(down!.wallMs - lastFrameAt).toBeGreaterThanOrEqual(2_500);
          expect(down!.wallMs - lastFrameAt).toBeLessThan(2_500 + 1_000);
          expect(driver.diagnostics().join('\n')).toMatch(/no picture for 2500 ms/);
          const backAt = Date.now();
          await cam.live();
          await waitUntil('frames after reconnecting', 10_000, () =>
            events.some(({ e, wallMs }) => e.type === 'frame' && wallMs > backAt),
          );
          expect(driver.available()).toBe(true);
          expect(driver.pid()).not.toBe(firstPid);
          expect(processAlive(firstPid!)).toBe(false);
        } finally {
          await driver.stop();
          await cam.close();
        }
      });
    }

    it('a camera that is not there: start() resolves, it is unavailable, and retries back off 1 s, 2 s, 4 s … 30 s', async () => {
      const clock = new FakeClock(Date.now());
      // ffmpeg repeats the URL, password included, in its errors.
      const url = `http://admin:s3cret@127.0.0.1:${await freePort()}/video`;
      const driver = new FfmpegCamera({ id: 'cam-nowhere', source: 'mjpeg', url, clock });
      const events: CameraDriverEvent[] = [];
      driver.on((e) => events.push(e));
      try {
        await driver.start();
        expect(driver.available()).toBe(false);
        expect(driver.latest()).toBeNull();
        expect(events).toEqual([{ type: 'availability', available: false, at: clock.now() }]);
        expect(driver.diagnostics().join('\n')).toMatch(/admin:\*\*\*@127.0.0.1.*refused/i);
        expect(driver.diagnostics().join('\n')).not.toContain('s3cret');
        // Each failed attempt doubles the wait before the next, up to 30 s.
        let spawns = 1;
        for (const waitMs of [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]) {
          expect(driver.stats().spawns).toBe(spawns);
          await waitUntil('ffmpeg gave up', 5_000, () => driver.pid() === null);
          clock.advance(waitMs - 1);
          expect(driver.stats().spawns).toBe(spawns);
          clock.advance(1);
          spawns++;
          expect(driver.stats().spawns).toBe(spawns);
        }
        // Unavailable was said once, not at every failed attempt.
        expect(events).toHaveLength(1);
      } finally {
        await driver.stop();
      }
    });

    it('after a frame the backoff starts again at 1 s', async () => {
      const cam = await MjpegTestCamera.start();
      const clock = new FakeClock(Date.now());
      const driver = new FfmpegCamera({ id: 'cam-reset', source: 'mjpeg', url: cam.url, clock });
      const events: CameraDriverEvent[] = [];
      driver.on((e) => events.push(e));
      try {
        await driver.start();
        expect(driver.available()).toBe(true);
        // Off, and two failed attempts: the backoff grows to 4 s.
        await cam.gone();
        await waitUntil('unavailable', 5_000, () => !driver.available());
        for (const waitMs of [1_000, 2_000]) {
          clock.advance(waitMs);
          await waitUntil('attempt failed', 5_000, () => driver.pid() === null);
        }
        await cam.back();
        clock.advance(4_000);
        await waitUntil('frames again', 8_000, () => driver.available());
        // Off again: the first retry is 1 s away, not 8 s.
        const spawns = driver.stats().spawns;
        await cam.gone();
        await waitUntil('unavailable again', 5_000, () => !driver.available());
        clock.advance(999);
        expect(driver.stats().spawns).toBe(spawns);
        clock.advance(1);
        expect(driver.stats().spawns).toBe(spawns + 1);
      } finally {
        await driver.stop();
        await cam.close();
      }
    });

    it('memory stays bounded: pictures larger than maxFrameBytes are dropped, never queued', async () => {
      const cam = await MjpegTestCamera.start();
      // The test pattern's pictures are about 9 KB.
      const driver = new FfmpegCamera({
        id: 'cam-small',
        source: 'mjpeg',
        url: cam.url,
        maxFrameBytes: 2_048,
        startTimeoutMs: 2_000,
      });
      const events: CameraDriverEvent[] = [];
      driver.on((e) => events.push(e));
      try {
        await driver.start();
        await waitUntil('pictures dropped', 5_000, () => driver.stats().dropped >= 3);
        expect(events.filter((e) => e.type === 'frame')).toEqual([]);
        expect(driver.latest()).toBeNull();
        expect(driver.available()).toBe(false);
      } finally {
        await driver.stop();
        await cam.close();
      }
    });

    it('records the frames the hub received to an H.264 MP4 that keeps real time across a stall', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'threshold-clip-'));
      const cam = await MjpegTestCamera.start();
      const driver = new FfmpegCamera({ id: 'cam-clip', source: 'mjpeg', url: cam.url });
      const recorder = new FfmpegClipRecorder({ camera: driver });
      const digests: string[] = [];
      driver.on((e) => {
        if (e.type === 'frame' && recorder.recording()) digests.push(e.frame.digest);
      });
      try {
        await driver.start();
        const path = join(dir, 'session.mp4');
        recorder.start(path);
        expect(() => recorder.start(path)).toThrow(/already recording/);
        await new Promise((r) => setTimeout(r, 2_000));
        cam.stall();
        await new Promise((r) => setTimeout(r, 1_500));
        cam.live();
        await new Promise((r) => setTimeout(r, 1_200));
        const clip = await recorder.stop();
        expect(recorder.recording()).toBe(false);
        expect(clip).not.toBeNull();
        expect(clip!.complete).toBe(true);
        expect(clip!.error).toBeNull();
        expect(clip!.dropped).toBe(0);
        // The clip holds exactly the frames the hub hashed, in order.
        expect(clip!.frames.map((f) => f.digest)).toEqual(digests);
        expect(clip!.frames.length).toBeGreaterThanOrEqual(5);
        // Not spawnSync: blocking this process would starve the other tests' camera servers.
        const probe = await promisify(execFile)(
          'ffprobe',
          [
            ...['-v', 'error', '-count_frames', '-of', 'json'],
            ...['-show_entries', 'stream=codec_name,nb_read_frames:format=format_name,duration'],
            path,
          ],
          { encoding: 'utf8', timeout: 10_000 },
        );
        const info = JSON.parse(probe.stdout) as {
          streams: { codec_name: string; nb_read_frames: string }[];
          format: { format_name: string; duration: string };
        };
        expect(info.streams).toHaveLength(1);
        expect(info.streams[0]!.codec_name).toBe('h264');
        expect(Number(info.streams[0]!.nb_read_frames)).toBe(clip!.frames.length);
        expect(info.format.format_name).toContain('mp4');
        // Wall-clock timestamps: the clip lasts as long as the frames spanned, stall included
        // (stamped by frame count at ffmpeg's default 25 fps, it would last a fraction of a second).
        const spanS = (clip!.frames.at(-1)!.receivedAt - clip!.frames[0]!.receivedAt) / 1000;
        expect(spanS).toBeGreaterThan(3.5);
        expect(Number(info.format.duration)).toBeGreaterThanOrEqual(spanS - 0.3);
        expect(Number(info.format.duration)).toBeLessThanOrEqual(spanS + 1);
        expect(clip!.bytes).toBeGreaterThan(1_000);
      } finally {
        await recorder.stop();
        await driver.stop();
        await cam.close();
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('a clip without frames ends as incomplete, with the reason', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'threshold-clip-'));
      // A camera that never delivers a frame.
      const recorder = new FfmpegClipRecorder({ camera: { on: () => () => undefined } });
      try {
        expect(await recorder.stop()).toBeNull();
        recorder.start(join(dir, 'empty.mp4'));
        const clip = await recorder.stop();
        expect(clip).toMatchObject({ complete: false, frames: [], bytes: 0 });
        expect(clip!.error).toMatch(/\S/);
      } finally {
        await recorder.stop();
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('rejects settings that cannot work, before starting anything', () => {
      const base: FfmpegCameraOptions = { id: 'c', source: 'mjpeg', url: 'http://127.0.0.1:1/' };
      expect(() => new FfmpegCamera({ ...base, url: 'rtsp://127.0.0.1/cam' })).toThrow(/http/);
      expect(() => new FfmpegCamera({ ...base, source: 'rtsp' })).toThrow(/rtsp:/);
      expect(() => new FfmpegCamera({ ...base, url: 'not a url' })).toThrow(RangeError);
      expect(() => new FfmpegCamera({ ...base, source: 'v4l2' as 'mjpeg' })).toThrow(/source/);
      expect(() => new FfmpegCamera({ ...base, fps: 0 })).toThrow(/fps/);
      expect(() => new FfmpegCamera({ ...base, fps: Number.NaN })).toThrow(/fps/);
      expect(() => new FfmpegCamera({ ...base, stallMs: 50 })).toThrow(/stallMs/);
      expect(() => new FfmpegCamera({ ...base, stallMs: 5_000, ioTimeoutMs: 1_000 })).toThrow(
        /ioTimeoutMs/,
      );
      expect(() => new FfmpegCamera({ ...base, quality: 1 })).toThrow(/quality/);
      expect(() => new FfmpegCamera({ ...base, maxBackoffMs: 10 })).toThrow(/backoff/);
      // The message names the camera, so a hub config with several is easy to fix.
      expect(() => new FfmpegCamera({ ...base, id: 'cam-porch', fps: 99 })).toThrow(/cam-porch/);
      expect(new FfmpegCamera(base).available()).toBe(false);
    });

    it('asks ffmpeg for RTSP over TCP, MJPEG by its demuxer, and a capped rate without duplicates', () => {
      const common = { fps: 2, quality: 5, socketTimeoutMs: 10_000 };
      const rtsp = ffmpegCameraArgs({ source: 'rtsp', url: 'rtsp://cam/x', ...common });
      const mjpeg = ffmpegCameraArgs({ source: 'mjpeg', url: 'http://cam/x', ...common });
      const pair = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
      expect(pair(rtsp, '-rtsp_transport')).toBe('tcp');
      expect(pair(rtsp, '-timeout')).toBe('10000000');
      expect(pair(mjpeg, '-f')).toBe('mpjpeg');
      expect(pair(mjpeg, '-rw_timeout')).toBe('10000000');
      // Input options go before the input.
      expect(rtsp.indexOf('-rtsp_transport')).toBeGreaterThan(-1);
      expect(rtsp.indexOf('-rtsp_transport')).toBeLessThan(rtsp.indexOf('-i'));
      expect(mjpeg).not.toContain('-rtsp_transport');
      for (const args of [rtsp, mjpeg]) {
        expect(pair(args, '-fps_mode')).toBe('vfr');
        expect(pair(args, '-r')).toBe('2');
        expect(pair(args, '-c:v')).toBe('mjpeg');
        expect(args.at(-1)).toBe('pipe:1');
      }
    });
  });

  describe('JpegSplitter', () => {
    const a = withTrickyComment(makeJpeg(1));
    const b = makeJpeg(2);
    const c = makeJpeg(3);
    const stream = Buffer.concat([Buffer.from('junk before'), a, b, Buffer.from('\r\n--x\r\n'), c]);

    it('cuts back-to-back JPEGs at any chunk boundary, ignoring FF D9 inside a segment', () => {
      for (const sizes of [[1], [2, 3], [7, 1, 4096], [100_000]]) {
        const splitter = new JpegSplitter();
        const out = splitInChunks(splitter, stream, sizes);
        expect(out.map((f) => createHash('sha256').update(f).digest('hex'))).toEqual(
          [a, b, c].map((f) => createHash('sha256').update(f).digest('hex')),
        );
        expect(splitter.dropped).toBe(0);
        expect(splitter.buffered).toBeLessThanOrEqual(1);
      }
      // The pictures still decode: the splitter hands over whole files.
      expect(jpeg.decode(a).width).toBe(64);
    });

    it('drops a picture cut short, and one over the size limit, and goes on with the next', () => {
      const limit = 4_096;
      const big = makeJpeg(4, 256, 256);
      expect(big.length).toBeGreaterThan(limit);
      expect(c.length).toBeLessThan(limit);
      const truncated = b.subarray(0, 40);
      const input = Buffer.concat([truncated, big, c, big]);
      // In small chunks (the limit is hit while a picture grows) and in one (a whole picture
      // over the limit arrives at once).
      for (const sizes of [[512], [input.length]]) {
        const splitter = new JpegSplitter(limit);
        const out = splitInChunks(splitter, input, sizes);
        expect(out).toEqual([c]);
        expect(splitter.dropped).toBe(3);
        expect(splitter.buffered).toBeLessThanOrEqual(limit + 512);
      }
    });
  });
});

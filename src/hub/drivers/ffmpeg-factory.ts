/**
 * The hub config's `driver: mjpeg` and `driver: rtsp`: a camera whose stream the hub reads
 * itself through ffmpeg ({@link FfmpegCamera}).
 */
import { Type, type Static } from 'typebox';
import type { DriverFactory } from '../driver-registry.ts';
import { FfmpegCamera, type FfmpegCameraSource } from './ffmpeg-camera.ts';

const FfmpegCameraConfig = Type.Object(
  {
    /** The stream: http(s):// for MJPEG, rtsp:// for RTSP (credentials may be in the URL). */
    url: Type.String({ minLength: 1, maxLength: 2048 }),
    /** Frames a second the hub takes from the stream. Default 2. */
    fps: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 30 })),
    /** No frame for this long while connected: `stalled`, ms. Default 2000. */
    stallMs: Type.Optional(Type.Integer({ minimum: 200, maximum: 60_000 })),
    /** No frame for this long: ffmpeg is killed and the stream reopened, ms. */
    ioTimeoutMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 600_000 })),
    /** JPEG quality of the re-encoded frames (ffmpeg's -q:v, 2 best … 31). Default 5. */
    quality: Type.Optional(Type.Integer({ minimum: 2, maximum: 31 })),
  },
  { additionalProperties: false },
);

type FfmpegCameraConfigValue = Static<typeof FfmpegCameraConfig>;

/** Builds the factory for one source kind. */
function ffmpegFactory(source: FfmpegCameraSource): DriverFactory {
  const scheme = source === 'rtsp' ? /^rtsps?:\/\//i : /^https?:\/\//i;
  return {
    kinds: ['camera'],
    optionsSchema: () => FfmpegCameraConfig,
    create(ctx, options) {
      const o = options as FfmpegCameraConfigValue;
      if (ctx.kind !== 'camera') throw new Error(`${ctx.id}: ${source} drives cameras only`);
      if (!scheme.test(o.url)) {
        throw new Error(
          `${ctx.id}: a ${source} camera's url starts with ${source === 'rtsp' ? 'rtsp://' : 'http:// or https://'}`,
        );
      }
      return new FfmpegCamera({
        id: ctx.id,
        source,
        url: o.url,
        clock: ctx.clock,
        ...(o.fps === undefined ? {} : { fps: o.fps }),
        ...(o.stallMs === undefined ? {} : { stallMs: o.stallMs }),
        ...(o.ioTimeoutMs === undefined ? {} : { ioTimeoutMs: o.ioTimeoutMs }),
        ...(o.quality === undefined ? {} : { quality: o.quality }),
      });
    },
  };
}

/** `driver: mjpeg`: MJPEG over HTTP. */
export const mjpegDriverFactory: DriverFactory = ffmpegFactory('mjpeg');
/** `driver: rtsp`: RTSP (H.264 over TCP tested). */
export const rtspDriverFactory: DriverFactory = ffmpegFactory('rtsp');

import { Value } from 'typebox/value';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../core/clock.ts';
import { silentLogger } from '../../devices/device-connection.ts';
import { DRIVERS, type DriverContext } from '../driver-registry.ts';
import { FfmpegCamera } from './ffmpeg-camera.ts';

const ctx = (kind: DriverContext['kind']): DriverContext => ({
  id: 'front-camera',
  kind,
  clock: new FakeClock(0),
  logger: silentLogger,
  configDir: '/tmp',
  doorPosition: null,
});

describe('the mjpeg and rtsp drivers of a hub config', () => {
  it('are registered, for cameras only, and build an ffmpeg camera from their options', async () => {
    for (const name of ['mjpeg', 'rtsp'] as const) {
      const f = DRIVERS.get(name)!;
      expect(f.kinds).toEqual(['camera']);
      const url = name === 'mjpeg' ? 'http://192.0.2.10/video.mjpg' : 'rtsp://192.0.2.10/stream1';
      const camera = f.create(ctx('camera'), { url, fps: 2, stallMs: 1500 });
      expect(camera).toBeInstanceOf(FfmpegCamera);
      expect(camera.kind).toBe('camera');
      expect(camera.available()).toBe(false);
      await camera.stop();
    }
  });

  it('refuses a URL of the other kind, and options that are not its own', () => {
    expect(() =>
      DRIVERS.get('rtsp')!.create(ctx('camera'), { url: 'http://192.0.2.10/video.mjpg' }),
    ).toThrow(/rtsp:\/\//);
    expect(() =>
      DRIVERS.get('mjpeg')!.create(ctx('camera'), { url: 'rtsp://192.0.2.10/s' }),
    ).toThrow(/http:\/\//);
    const schema = DRIVERS.get('mjpeg')!.optionsSchema('camera');
    expect(Value.Check(schema, { url: 'http://x/y', fps: 2 })).toBe(true);
    expect(Value.Check(schema, { url: 'http://x/y', framerate: 2 })).toBe(false);
    expect(Value.Check(schema, { url: 'http://x/y', fps: 0 })).toBe(false);
    expect(Value.Check(schema, {})).toBe(false);
  });
});

/**
 * Drivers by the name a hub config gives them (`driver: memory`). Each entry says which kinds
 * of device it bridges, the strict schema of its `options` per kind (checked when the config is
 * read, so a typo is an error naming the key, not a surprise at run time), and how to build
 * one. A new driver plugs in with one entry here.
 */
import { Type, type TSchema } from 'typebox';
import type { Clock } from '../core/clock.ts';
import type { DeviceLogger } from '../devices/device-connection.ts';
import type { Driver, DriverPosition } from './drivers/driver.ts';
import { MemoryCamera, MemoryContact, MemoryLock } from './drivers/memory.ts';
import { mjpegDriverFactory, rtspDriverFactory } from './drivers/ffmpeg-factory.ts';
import { zigbee2mqttDriverFactory } from './drivers/zigbee2mqtt.ts';
import { zwaveDriverFactory } from './drivers/zwave-factory.ts';
import { matterDriverFactory } from './drivers/matter-factory.ts';

/** The kinds of device a hub bridges (the device protocol's kinds). */
export type HubDeviceKind = 'lock' | 'door-sensor' | 'camera';

/** What a driver factory is given to build one driver. */
export interface DriverContext {
  /** The device id (the driver's `id`). */
  readonly id: string;
  readonly kind: HubDeviceKind;
  readonly clock: Clock;
  readonly logger: DeviceLogger;
  /** The folder of the config file: relative paths in options are relative to it. */
  readonly configDir: string;
  /** For a camera at a door with a sensor: where that door is (e.g. for a simulated picture). */
  readonly doorPosition: (() => DriverPosition) | null;
}

/** One driver, by name. */
export interface DriverFactory {
  /** The kinds of device it bridges. */
  readonly kinds: readonly HubDeviceKind[];
  /** The strict schema of a device's `options` for `kind` (additional properties refused). */
  optionsSchema(kind: HubDeviceKind): TSchema;
  /** Builds the driver; `options` passed {@link DriverFactory.optionsSchema}. */
  create(context: DriverContext, options: unknown): Driver;
}

const strict = { additionalProperties: false } as const;
const Ms = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });

const MemoryLockOptions = Type.Object(
  {
    /** Time from command to the bolt's report, ms. */
    motorDelayMs: Type.Optional(Ms(0, 60_000)),
    initialBolt: Type.Optional(Type.Union([Type.Literal('locked'), Type.Literal('unlocked')])),
    /** Keypad slots; null for no keypad. */
    pinCapacity: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 65_535 }), Type.Null()]),
    ),
  },
  strict,
);
const MemoryContactOptions = Type.Object(
  { initialPosition: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed')])) },
  strict,
);
const MemoryCameraOptions = Type.Object(
  {
    frameIntervalMs: Type.Optional(Ms(20, 10_000)),
    stallMs: Type.Optional(Ms(100, 60_000)),
    width: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_920 })),
    height: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_080 })),
  },
  strict,
);

/** `driver: memory`: the simulated devices of drivers/memory.ts (demo, tests, scenarios). */
export const memoryDriverFactory: DriverFactory = {
  kinds: ['lock', 'door-sensor', 'camera'],
  optionsSchema(kind) {
    switch (kind) {
      case 'lock':
        return MemoryLockOptions;
      case 'door-sensor':
        return MemoryContactOptions;
      case 'camera':
        return MemoryCameraOptions;
    }
  },
  create(ctx, options) {
    switch (ctx.kind) {
      case 'lock': {
        const o = options as {
          motorDelayMs?: number;
          initialBolt?: 'locked' | 'unlocked';
          pinCapacity?: number | null;
        };
        return new MemoryLock({ id: ctx.id, clock: ctx.clock, ...o });
      }
      case 'door-sensor': {
        const o = options as { initialPosition?: 'open' | 'closed' };
        return new MemoryContact({ id: ctx.id, clock: ctx.clock, ...o });
      }
      case 'camera': {
        const o = options as {
          frameIntervalMs?: number;
          stallMs?: number;
          width?: number;
          height?: number;
        };
        const door = ctx.doorPosition;
        return new MemoryCamera({
          id: ctx.id,
          clock: ctx.clock,
          ...(o.frameIntervalMs === undefined ? {} : { frameIntervalMs: o.frameIntervalMs }),
          ...(o.stallMs === undefined ? {} : { stallMs: o.stallMs }),
          scene: { width: o.width ?? 160, height: o.height ?? 120, quality: 60 },
          ...(door === null ? {} : { doorOpen: () => door() === 'open' }),
        });
      }
    }
  },
};

/** Driver names a config may use, and what builds each. */
export type DriverRegistry = ReadonlyMap<string, DriverFactory>;

/** The drivers this build has, by the name a config's `driver:` uses. */
export const DRIVERS: DriverRegistry = new Map<string, DriverFactory>([
  ['memory', memoryDriverFactory],
  ['zigbee2mqtt', zigbee2mqttDriverFactory],
  ['zwave', zwaveDriverFactory],
  ['matter', matterDriverFactory],
  ['mjpeg', mjpegDriverFactory],
  ['rtsp', rtspDriverFactory],
]);

/**
 * One simulated door of a home: a lock, a door sensor and a camera, each with its own MQTT
 * link, the sensor wired into the lock (auto-relock waits for a closed door) and into the
 * camera (the picture shows the door open or closed). This is what `threshold sim` runs and
 * what integration tests use as the home's devices.
 */
import type { Clock } from '../core/clock.ts';
import type { DeviceLogger } from './device-connection.ts';
import { DeviceLink, type DeviceLinkOptions } from './device-link.ts';
import { SimCamera, type SimCameraOptions } from './sim-camera.ts';
import { SimDoorSensor, type SimDoorSensorOptions } from './sim-door-sensor.ts';
import { SimLock, type SimLockOptions } from './sim-lock.ts';

/** A device's provisioning: its id and its key (bytes, or base64url as provisioned). */
export interface SimDeviceCredentials {
  readonly id: string;
  readonly key: Uint8Array | string;
}

/** Link settings shared by the three devices of a {@link SimHome}. */
export type SimLinkSettings = Omit<
  DeviceLinkOptions,
  'brokerUrl' | 'homeId' | 'deviceId' | 'deviceKey' | 'clock' | 'logger'
>;

/** Settings of a {@link SimHome}. */
export interface SimHomeOptions {
  /** `mqtt://host:port` of the broker. */
  readonly brokerUrl: string;
  /**
   * A device's own broker address instead of `brokerUrl` (e.g. a fault-injecting proxy in
   * front of the broker for one device, so that only its link is jammed).
   */
  readonly brokerUrls?: {
    readonly lock?: string;
    readonly doorSensor?: string;
    readonly camera?: string;
  };
  readonly homeId: string;
  readonly devices: {
    readonly lock: SimDeviceCredentials;
    readonly doorSensor: SimDeviceCredentials;
    readonly camera: SimDeviceCredentials;
  };
  /** The devices' clock (one clock for the three: they sit in one house). */
  readonly clock: Clock;
  readonly logger?: DeviceLogger;
  readonly options?: {
    readonly link?: SimLinkSettings;
    readonly lock?: Omit<SimLockOptions, 'clock' | 'door'>;
    readonly doorSensor?: Omit<SimDoorSensorOptions, 'clock'>;
    readonly camera?: Omit<SimCameraOptions, 'clock' | 'deviceKey' | 'door'>;
  };
}

/** The three links of a {@link SimHome}, for the harness's fault switches. */
export interface SimHomeLinks {
  readonly lock: DeviceLink;
  readonly doorSensor: DeviceLink;
  readonly camera: DeviceLink;
}

/** See the module comment. */
export class SimHome {
  readonly homeId: string;
  readonly lock: SimLock;
  readonly doorSensor: SimDoorSensor;
  readonly camera: SimCamera;
  readonly links: SimHomeLinks;
  private stopping: Promise<void> | undefined;

  /** Builds the devices; nothing connects until {@link SimHome.start}. */
  constructor(options: SimHomeOptions) {
    const { brokerUrl, homeId, devices, clock } = options;
    this.homeId = homeId;
    const settings = options.options ?? {};
    const link = (device: SimDeviceCredentials, url = brokerUrl): DeviceLink =>
      new DeviceLink({
        ...settings.link,
        brokerUrl: url,
        homeId,
        deviceId: device.id,
        deviceKey: keyBytes(device.key),
        clock,
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
    this.links = {
      lock: link(devices.lock, options.brokerUrls?.lock),
      doorSensor: link(devices.doorSensor, options.brokerUrls?.doorSensor),
      camera: link(devices.camera, options.brokerUrls?.camera),
    };
    this.doorSensor = new SimDoorSensor(this.links.doorSensor, {
      ...settings.doorSensor,
      clock,
    });
    this.lock = new SimLock(this.links.lock, {
      ...settings.lock,
      clock,
      door: this.doorSensor,
      deviceKey: keyBytes(devices.lock.key),
    });
    this.camera = new SimCamera(this.links.camera, {
      ...settings.camera,
      clock,
      deviceKey: keyBytes(devices.camera.key),
      door: this.doorSensor,
    });
  }

  /** Connects the three devices; resolves when all three are connected and subscribed. */
  async start(): Promise<void> {
    await Promise.all([
      this.links.lock.start(),
      this.links.doorSensor.start(),
      this.links.camera.start(),
    ]);
  }

  /** Stops every device timer and closes the links cleanly. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.lock.stop();
      this.camera.stop();
      await Promise.all([
        this.links.lock.close(),
        this.links.doorSensor.close(),
        this.links.camera.close(),
      ]);
    })();
    return this.stopping;
  }
}

function keyBytes(key: Uint8Array | string): Uint8Array {
  if (typeof key !== 'string') return key;
  const bytes = Buffer.from(key, 'base64url');
  if (bytes.length !== 32) throw new Error('a device key is 32 bytes, base64url');
  return bytes;
}

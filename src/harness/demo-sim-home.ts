/** The simulated devices of a seeded home, built from its credentials (demo, sim, scenarios). */
import type { Clock } from '../core/clock.ts';
import { SimHome, type SimHomeOptions } from '../devices/index.ts';
import type { DemoCredentials } from '../server/seed.ts';

/** A {@link SimHome} for the devices named in `creds`, connecting to `brokerUrl`. */
export function simHomeFor(
  creds: Pick<DemoCredentials, 'homeId' | 'devices'>,
  brokerUrl: string,
  clock: Clock,
  options?: SimHomeOptions['options'],
  brokerUrls?: SimHomeOptions['brokerUrls'],
): SimHome {
  return new SimHome({
    brokerUrl,
    ...(brokerUrls === undefined ? {} : { brokerUrls }),
    homeId: creds.homeId,
    devices: {
      lock: { id: creds.devices.lock.id, key: creds.devices.lock.secret },
      doorSensor: { id: creds.devices.doorSensor.id, key: creds.devices.doorSensor.secret },
      camera: { id: creds.devices.camera.id, key: creds.devices.camera.secret },
    },
    clock,
    ...(options ? { options } : {}),
  });
}

/** `threshold sim`: a simulated lock, door sensor and camera, connected to a broker. */
import { readFileSync } from 'node:fs';
import { simHomeFor } from '../harness/demo-sim-home.ts';
import { systemClock } from '../protocol/system-clock.ts';
import type { DemoCredentials } from '../server/seed.ts';
import { closeOnSignal } from './command-process.ts';

export interface SimOptions {
  readonly config: string;
  readonly broker: string;
}

export async function simCommand(opts: SimOptions): Promise<void> {
  let creds: DemoCredentials;
  try {
    creds = JSON.parse(readFileSync(opts.config, 'utf8')) as DemoCredentials;
  } catch (err) {
    console.error(
      `threshold sim: cannot read ${opts.config}: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(2);
  }
  const home = simHomeFor(creds, opts.broker, systemClock);
  try {
    await home.start();
  } catch (err) {
    console.error(
      `threshold sim: cannot connect to ${opts.broker}: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(3);
  }
  console.log(
    `Simulated home ${creds.homeId} connected to ${opts.broker}: lock ${creds.devices.lock.id}, door sensor ${creds.devices.doorSensor.id}, camera ${creds.devices.camera.id}. Ctrl+C to stop.`,
  );
  home.doorSensor.onChange((p) => console.log(`door ${p}`));
  closeOnSignal(() => home.stop());
}

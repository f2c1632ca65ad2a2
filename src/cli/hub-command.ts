/**
 * `threshold hub --config hub.yaml`: the home hub. Reads and checks the config (every problem
 * named by its key, exit 2), starts the drivers and the links to the control plane, and runs
 * until SIGINT/SIGTERM. The hub enforces locally from the first moment, whether or not the
 * control plane is reachable; `--check` only checks the config.
 */
import pino from 'pino';
import { HubConfigError, loadHubConfig, type HubConfig } from '../hub/config.ts';
import { Hub } from '../hub/hub.ts';
import { systemClock } from '../protocol/system-clock.ts';
import { closeOnSignal } from './command-process.ts';

/** Options of `threshold hub`. */
export interface HubCommandOptions {
  readonly config: string;
  readonly check?: boolean;
}

/** Runs `threshold hub`. */
export async function hubCommand(opts: HubCommandOptions): Promise<void> {
  let config: HubConfig;
  try {
    config = loadHubConfig(opts.config);
  } catch (err) {
    console.error(
      `threshold hub: ${err instanceof HubConfigError ? err.message : `cannot use ${opts.config}: ${String(err)}`}`,
    );
    process.exit(2);
  }
  const doors = config.doors.map((d) => d.id).join(', ') || 'none';
  const summary = `home ${config.homeId}: ${config.devices.length} devices, doors ${doors}`;
  if (opts.check === true) {
    for (const w of config.warnings) console.warn(`warning: ${w}`);
    console.log(`${opts.config}: config OK (${summary}).`);
    return;
  }
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
  let hub: Hub;
  try {
    hub = new Hub({ config, clock: systemClock, logger });
    await hub.start();
  } catch (err) {
    console.error(
      `threshold hub: could not start: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(3);
  }
  console.log(
    `Hub for ${summary}; control plane ${config.controlPlane.url}; log in ${config.dataDir}. Ctrl+C to stop.`,
  );
  hub.waitUntilConnected(10_000).then(
    () => console.log('Connected to the control plane.'),
    () =>
      console.log(
        'The control plane is not reachable yet: enforcing locally, and trying again every second.',
      ),
  );
  closeOnSignal(() => hub.stop());
}

/** `threshold serve`: the control plane, until SIGINT or SIGTERM. */
import { InvalidArgumentError } from 'commander';
import pino from 'pino';
import { offlineHorizonFromHours } from '../server/grant-lists.ts';
import { startSystem } from '../server/system.ts';

export interface ServeOptions {
  readonly data: string;
  readonly port: number;
  readonly host: string;
  readonly mqttPort: number;
  readonly mqttHost: string;
  readonly clipRetentionDays: number;
  readonly silenceMs: number;
  readonly freezeMs: number;
  readonly publicUrl?: string;
  /** `--offline-grants-hours`: how far the hubs' offline grant lists reach (default 24). */
  readonly offlineGrantsHours?: number;
}

/** The `--help` text of `--offline-grants-hours`. */
export const OFFLINE_GRANTS_HOURS_HELP =
  'hours the offline grant lists sent to home hubs reach, 1 to 168: a hub that cannot reach the server lets nobody in on a list older than this, so a revocation takes effect offline at most this long after its last list';

/**
 * Parses `--offline-grants-hours <n>`: a number of hours from 1 to 168 (7 days). Bad values are
 * a usage error (exit 2) that says what is allowed.
 */
export function parseOfflineGrantsHours(value: string): number {
  const hours = value.trim() === '' ? Number.NaN : Number(value);
  try {
    offlineHorizonFromHours(hours);
  } catch {
    throw new InvalidArgumentError('a number of hours from 1 to 168 (7 days)');
  }
  return hours;
}

/** Closes the system on SIGINT/SIGTERM, once. */
export function closeOnSignal(close: () => Promise<void>): void {
  let closing = false;
  const stop = (): void => {
    if (closing) return;
    closing = true;
    void close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export async function startOrExit<T>(start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    console.error(
      `threshold: could not start: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exit(3);
  }
}

export async function serveCommand(opts: ServeOptions): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
  const sys = await startOrExit(() =>
    startSystem({
      dataDir: opts.data,
      port: opts.port,
      host: opts.host,
      mqttPort: opts.mqttPort,
      mqttHost: opts.mqttHost,
      clipRetentionDays: opts.clipRetentionDays,
      watchdog: { silenceMs: opts.silenceMs, freezeMs: opts.freezeMs },
      ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
      ...(opts.offlineGrantsHours === undefined
        ? {}
        : { offlineGrantsHours: opts.offlineGrantsHours }),
      logger,
    }),
  );
  logger.info({ url: sys.url, broker: sys.brokerUrl, data: opts.data }, 'Threshold is running');
  closeOnSignal(() => sys.close());
}

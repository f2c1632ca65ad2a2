/** `threshold serve`: the control plane, until SIGINT or SIGTERM. */
import pino from 'pino';
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
      logger,
    }),
  );
  logger.info({ url: sys.url, broker: sys.brokerUrl, data: opts.data }, 'Threshold is running');
  closeOnSignal(() => sys.close());
}

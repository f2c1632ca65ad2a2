/**
 * `threshold serve`: the control plane, until SIGINT or SIGTERM. Loaded only by that command
 * (src/cli/main.ts loads it before parsing serve's options, as two of them are checked here
 * against the server's own rules); what the other commands share with it is in
 * serve-options.ts, store-options.ts and command-process.ts.
 */
import { InvalidArgumentError } from 'commander';
import pino from 'pino';
import { readFileSync, statSync } from 'node:fs';
import { offlineHorizonFromHours } from '../server/grant-lists.ts';
import { readMetricsToken } from '../server/metrics.ts';
import { startSystem } from '../server/system.ts';
import { REPLICA_ID_PATTERN } from '../server/replicas.ts';
import { closeOnSignal, startOrExit } from './command-process.ts';
import { METRICS_TOKEN_ENV } from './serve-options.ts';
import { databaseUrlFrom } from './store-options.ts';

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
  /** `--metrics-token-file`: the file holding the bearer token `GET /metrics` answers to. */
  readonly metricsTokenFile?: string;
  /** `--database-url`: the PostgreSQL database; default SQLite in the data directory. */
  readonly databaseUrl?: string;
  /** `--mqtt-url`: an external broker instead of the embedded one. */
  readonly mqttUrl?: string;
  /** `--mqtt-admin-username`: the external mosquitto's dynamic security admin. */
  readonly mqttAdminUsername?: string;
  /** `--mqtt-admin-password-file`: a file holding that admin's password. */
  readonly mqttAdminPasswordFile?: string;
  /** `--mqtt-client-id`: this server's session at the external broker. */
  readonly mqttClientId?: string;
  /** `--replica-id`: run as one of several replicas (needs the database and broker URLs). */
  readonly replicaId?: string;
  /** `--replica-lease-ms`: how long a replica's lease lasts without renewal. */
  readonly replicaLeaseMs?: number;
}

/** Parses `--replica-id`: what {@link REPLICA_ID_PATTERN} allows. */
export function parseReplicaId(value: string): string {
  if (!REPLICA_ID_PATTERN.test(value))
    throw new InvalidArgumentError(
      '1 to 63 letters, digits, dots, dashes or underscores, starting with a letter or digit',
    );
  return value;
}

/** The external broker's admin account from the options, or exit 2 saying what is wrong. */
function mqttAdminOf(opts: ServeOptions): { username: string; password: string } | undefined {
  const { mqttAdminUsername: username, mqttAdminPasswordFile: file } = opts;
  if (username === undefined && file === undefined) return undefined;
  if (opts.mqttUrl === undefined || username === undefined || file === undefined) {
    console.error(
      'threshold: --mqtt-admin-username and --mqtt-admin-password-file go together, with --mqtt-url',
    );
    process.exit(2);
  }
  let password: string;
  try {
    password = readFileSync(file, 'utf8').trim();
  } catch (err) {
    console.error(`threshold: cannot read --mqtt-admin-password-file: ${(err as Error).message}`);
    process.exit(3);
  }
  if (password === '') {
    console.error('threshold: the --mqtt-admin-password-file is empty');
    process.exit(3);
  }
  return { username, password };
}

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

/** A database URL fit for a log: its password replaced. */
function withoutPassword(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (url.password !== '') url.password = '***';
  return url.toString();
}

/** Runs `threshold serve` until SIGINT or SIGTERM; exits 2 on bad usage, 3 if it cannot start. */
export async function serveCommand(opts: ServeOptions): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });
  const metricsTokenFile = opts.metricsTokenFile ?? process.env[METRICS_TOKEN_ENV];
  const databaseUrl = databaseUrlFrom(opts.databaseUrl, 'threshold');
  const mqttAdmin = mqttAdminOf(opts);
  if (opts.mqttClientId !== undefined && opts.mqttUrl === undefined) {
    console.error('threshold: --mqtt-client-id needs --mqtt-url');
    process.exit(2);
  }
  if (opts.replicaId !== undefined && (databaseUrl === undefined || opts.mqttUrl === undefined)) {
    console.error(
      'threshold: --replica-id needs --database-url (PostgreSQL) and --mqtt-url: replicas share both',
    );
    process.exit(2);
  }
  if (opts.replicaLeaseMs !== undefined && opts.replicaId === undefined) {
    console.error('threshold: --replica-lease-ms needs --replica-id');
    process.exit(2);
  }
  const sys = await startOrExit(() =>
    startSystem({
      dataDir: opts.data,
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
      port: opts.port,
      host: opts.host,
      mqttPort: opts.mqttPort,
      mqttHost: opts.mqttHost,
      ...(opts.mqttUrl === undefined ? {} : { mqttUrl: opts.mqttUrl }),
      ...(mqttAdmin ? { mqttAdmin } : {}),
      ...(opts.mqttClientId === undefined ? {} : { mqttClientId: opts.mqttClientId }),
      ...(opts.replicaId === undefined
        ? {}
        : {
            replica: {
              id: opts.replicaId,
              ...(opts.replicaLeaseMs === undefined ? {} : { leaseMs: opts.replicaLeaseMs }),
            },
          }),
      clipRetentionDays: opts.clipRetentionDays,
      watchdog: { silenceMs: opts.silenceMs, freezeMs: opts.freezeMs },
      ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
      ...(opts.offlineGrantsHours === undefined
        ? {}
        : { offlineGrantsHours: opts.offlineGrantsHours }),
      // Read inside the start: a missing or weak token stops it with a sentence saying why.
      ...(metricsTokenFile ? { metricsToken: readMetricsToken(metricsTokenFile) } : {}),
      logger,
    }),
  );
  logger.info(
    {
      url: sys.url,
      broker: sys.brokerUrl,
      data: opts.data,
      database: databaseUrl === undefined ? 'sqlite' : withoutPassword(databaseUrl),
      ...(sys.replica ? { replica: sys.replica.id, leader: sys.replica.isLeader() } : {}),
    },
    'Threshold is running',
  );
  if (metricsTokenFile) {
    logger.info({ path: '/metrics', tokenFile: metricsTokenFile }, 'metrics served to its token');
    // The token opens the metrics of every home on the server: only its owner should read it.
    const mode = statSync(metricsTokenFile, { throwIfNoEntry: false })?.mode ?? 0;
    if ((mode & 0o077) !== 0)
      logger.warn({ tokenFile: metricsTokenFile }, 'the metrics token file is readable by others');
  }
  closeOnSignal(() => sys.close());
}

/** `threshold serve`: the control plane, until SIGINT or SIGTERM. */
import { InvalidArgumentError } from 'commander';
import pino from 'pino';
import { readFileSync, statSync } from 'node:fs';
import { offlineHorizonFromHours } from '../server/grant-lists.ts';
import { readMetricsToken } from '../server/metrics.ts';
import { startSystem } from '../server/system.ts';
import { REPLICA_ID_PATTERN } from '../server/replicas.ts';
import { databaseUrlFrom } from './store-options.ts';

export { DATABASE_URL_ENV, DATABASE_URL_HELP, parseDatabaseUrl } from './store-options.ts';

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

/** The `--help` texts of the replica options. */
export const REPLICA_HELP = {
  id: "run as one of several replicas sharing --database-url and --mqtt-url: this replica's id, stable across its restarts, one per replica (letters, digits, . _ -); see docs/operations.md",
  leaseMs:
    "with --replica-id: how long this replica's lease lasts without renewal, ms; a dead replica's sessions are taken over within about this plus a second (default 3000)",
} as const;

/** Parses `--replica-id`. */
export function parseReplicaId(value: string): string {
  if (!REPLICA_ID_PATTERN.test(value))
    throw new InvalidArgumentError(
      '1 to 63 letters, digits, dots, dashes or underscores, starting with a letter or digit',
    );
  return value;
}

/** Parses `--replica-lease-ms`: 2,000 to 60,000. */
export function parseLeaseMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 2_000 || n > 60_000)
    throw new InvalidArgumentError('a whole number of ms from 2000 to 60000');
  return n;
}

/** The `--help` texts of the external broker's options. */
export const MQTT_HELP = {
  url: 'use this MQTT broker (mqtt://host:1883 or mqtts://host:8883) instead of the embedded one; see docs/operations.md',
  adminUsername:
    "with --mqtt-url: the admin account of mosquitto's dynamic security plugin; Threshold then writes the server's and every device's account and ACL there",
  adminPasswordFile: 'file holding that admin account’s password',
  clientId:
    "with --mqtt-url: this server's MQTT client id, which names the broker session that keeps device messages while it is away; stable across restarts, one per replica (default threshold-server…-<host>-<port>)",
} as const;

/** Parses `--mqtt-url`: an `mqtt:` or `mqtts:` URL with a host. */
export function parseMqttUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('a URL such as mqtt://broker.example.com:1883');
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') {
    throw new InvalidArgumentError(`an mqtt:// or mqtts:// URL, not ${url.protocol}`);
  }
  if (url.hostname === '') throw new InvalidArgumentError('a URL with a host name');
  if (url.username !== '' || url.password !== '') {
    throw new InvalidArgumentError(
      'a URL without credentials: the server derives its own, see docs/operations.md',
    );
  }
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

/** The environment variable naming the metrics token file when the flag is not given. */
export const METRICS_TOKEN_ENV = 'THRESHOLD_METRICS_TOKEN_FILE';

/** The `--help` text of `--metrics-token-file`. */
export const METRICS_TOKEN_FILE_HELP = `file holding the bearer token GET /metrics answers to (32+ characters, e.g. openssl rand -hex 32; also ${METRICS_TOKEN_ENV}); without it /metrics answers 401 to everyone`;

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

/** A database URL fit for a log: its password replaced. */
function withoutPassword(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (url.password !== '') url.password = '***';
  return url.toString();
}

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

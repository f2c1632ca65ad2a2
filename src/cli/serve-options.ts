/**
 * The `--help` texts and option parsers of `threshold serve` that need none of the server:
 * src/cli/main.ts describes every command with them, and loads a command's module only when
 * that command runs, so `threshold audit verify` or `threshold --help` does not load the
 * server to say what `serve` takes. The two parsers that check a value against the server's
 * own rules (`parseOfflineGrantsHours`, `parseReplicaId`) stay in serve-command.ts.
 */
import { InvalidArgumentError } from 'commander';

/** The `--help` texts of the replica options. */
export const REPLICA_HELP = {
  id: "run as one of several replicas sharing --database-url and --mqtt-url: this replica's id, stable across its restarts, one per replica (letters, digits, . _ -); see docs/operations.md",
  leaseMs:
    "with --replica-id: how long this replica's lease lasts without renewal, ms; a dead replica's sessions are taken over within about this plus a second (default 3000)",
} as const;

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

/** The environment variable naming the metrics token file when the flag is not given. */
export const METRICS_TOKEN_ENV = 'THRESHOLD_METRICS_TOKEN_FILE';

/** The `--help` text of `--metrics-token-file`. */
export const METRICS_TOKEN_FILE_HELP = `file holding the bearer token GET /metrics answers to (32+ characters, e.g. openssl rand -hex 32; also ${METRICS_TOKEN_ENV}); without it /metrics answers 401 to everyone`;

/** The `--help` text of `--offline-grants-hours`. */
export const OFFLINE_GRANTS_HOURS_HELP =
  'hours the offline grant lists sent to home hubs reach, 1 to 168: a hub that cannot reach the server lets nobody in on a list older than this, so a revocation takes effect offline at most this long after its last list';

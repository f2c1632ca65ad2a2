/**
 * The `threshold` command. Thin: each subcommand parses its options and calls into the rest.
 *
 * Exit codes: 0 success; 1 the thing checked did not hold (a scenario missed, the audit log
 * does not verify); 2 bad usage; 3 could not start (port taken, unreadable data directory).
 */
import type { HubCommandOptions } from './hub-command.ts';
import type * as ServeCommandModule from './serve-command.ts';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import {
  METRICS_TOKEN_FILE_HELP,
  MQTT_HELP,
  OFFLINE_GRANTS_HOURS_HELP,
  REPLICA_HELP,
  parseLeaseMs,
  parseMqttUrl,
} from './serve-options.ts';
import { DATABASE_URL_HELP, parseDatabaseUrl } from './store-options.ts';

/**
 * A command whose module is loaded on use: each command loads only what it needs, so a short
 * one (`threshold audit verify`, `threshold --help`) does not load the server, the scenario
 * harness, the simulators or the hub's drivers, and `threshold serve` (restarted after a crash,
 * or by a supervisor) does not load the harness, the simulators or the demo's hub.
 */
function lazy<A extends unknown[]>(
  load: () => Promise<(...args: A) => unknown>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    const command = await load();
    await command(...args);
  };
}

const loadServe = (): Promise<typeof ServeCommandModule> => import('./serve-command.ts');
/** serve-command.ts once loaded: by the `preSubcommand` hook, before serve's options are parsed. */
let serveModule: typeof ServeCommandModule | undefined;

/**
 * An option parser of `threshold serve` that checks values against the server's own rules, in
 * serve-command.ts. Commander's parsers are synchronous, so that module is loaded before the
 * command's options are parsed (the hook below) rather than when a parser is called.
 */
function serveParser(
  name: 'parseOfflineGrantsHours' | 'parseReplicaId',
): (value: string) => string | number {
  return (value) => {
    if (serveModule === undefined) throw new Error('serve-command.ts is not loaded');
    return serveModule[name](value);
  };
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('a port is a whole number from 0 to 65535');
  return n;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number');
  return n;
}

function publicUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError('a URL such as https://door.example.com');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new InvalidArgumentError('an http: or https: URL');
  if (u.pathname !== '/' || u.search || u.hash)
    throw new InvalidArgumentError('the site’s origin only, without a path');
  return u.origin;
}

const { version } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };

const program = new Command('threshold')
  .version(version)
  .description(
    'Threshold: let people into a home without handing them a key, and prove what happened at the door.',
  )
  .showHelpAfterError()
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  })
  .hook('preSubcommand', async (_program, command) => {
    if (command.name() === 'serve') serveModule = await loadServe();
  });

program
  .command('serve')
  .description(
    'Run the control plane: web app and HTTP API on --port, embedded MQTT broker on --mqtt-port.',
  )
  .option('--data <dir>', 'data directory (database, keys, clips)', './data')
  .option('--port <port>', 'HTTP port', port, 8080)
  .option('--host <host>', 'HTTP interface to listen on', '127.0.0.1')
  .option('--mqtt-port <port>', 'embedded MQTT broker port', port, 1883)
  .option('--mqtt-host <host>', 'MQTT interface to listen on', '127.0.0.1')
  .option('--clip-retention-days <days>', 'days to keep session clips', positive, 30)
  .option('--silence-ms <ms>', 'camera silence that counts as observation lost', positive, 1250)
  .option(
    '--freeze-ms <ms>',
    'time without a new frame that counts as a frozen picture',
    positive,
    3000,
  )
  .option(
    '--public-url <url>',
    'the address people open, e.g. https://door.example.com (passkeys are bound to its host name; https also makes cookies Secure)',
    publicUrl,
  )
  .option(
    '--offline-grants-hours <n>',
    OFFLINE_GRANTS_HOURS_HELP,
    serveParser('parseOfflineGrantsHours'),
    24,
  )
  .option('--metrics-token-file <path>', METRICS_TOKEN_FILE_HELP)
  .option('--database-url <url>', DATABASE_URL_HELP, parseDatabaseUrl)
  .option('--mqtt-url <url>', MQTT_HELP.url, parseMqttUrl)
  .option('--mqtt-admin-username <name>', MQTT_HELP.adminUsername)
  .option('--mqtt-admin-password-file <path>', MQTT_HELP.adminPasswordFile)
  .option('--mqtt-client-id <id>', MQTT_HELP.clientId)
  .option('--replica-id <id>', REPLICA_HELP.id, serveParser('parseReplicaId'))
  .option('--replica-lease-ms <ms>', REPLICA_HELP.leaseMs, parseLeaseMs)
  .action(lazy(async () => (await loadServe()).serveCommand));

program
  .command('demo')
  .description(
    'Everything in one process: the server, a seeded demo home, and a home hub bridging its simulated lock, door sensor and camera.',
  )
  .option('--data <dir>', 'data directory', './data')
  .option('--port <port>', 'HTTP port', port, 8080)
  .option('--mqtt-port <port>', 'embedded MQTT broker port (0 picks a free one)', port, 0)
  .option(
    '--public-url <url>',
    'the address people open (default http://localhost:<port>)',
    publicUrl,
  )
  .action(lazy(async () => (await import('./demo-command.ts')).demoCommand));

program
  .command('sim')
  .description(
    'Run a simulated lock, door sensor and camera against a broker, from a credentials file.',
  )
  .option(
    '--config <file>',
    'credentials file written by `threshold demo`',
    './data/demo-credentials.json',
  )
  .option('--broker <url>', 'MQTT broker URL', 'mqtt://127.0.0.1:1883')
  .action(lazy(async () => (await import('./sim-command.ts')).simCommand));

program
  .command('hub')
  .description(
    'Run the home hub: bridge the home’s devices to the control plane and enforce deadlines, the dead-man’s switch and cut-offs locally.',
  )
  .requiredOption('--config <file>', 'the hub’s config file (see examples/hub.yaml)')
  .option('--check', 'only check the config file, then exit')
  // Loaded on use: the hub's drivers (zwave-js among them) are not needed by other commands.
  .action(async (opts: HubCommandOptions) => {
    const { hubCommand } = await import('./hub-command.ts');
    await hubCommand(opts);
  });

program
  .command('scenario')
  .description(
    'Run an attack or fault scenario against a fresh in-process system and report what happened.',
  )
  .argument('[name]', 'scenario name (delivery, deauth, freeze, relock-jam, replay)')
  .option('--all', 'run every scenario and print a table')
  .option('--json', 'print the report as JSON')
  .option('--data <dir>', 'keep the scenario’s data in this directory (default: a temporary one)')
  .option('--list', 'list the scenarios')
  .action(lazy(async () => (await import('./scenario-command.ts')).scenarioCommand));

const audit = program.command('audit').description('The audit log.');
audit
  .command('verify')
  .description(
    'Verify the hash chain and signed checkpoints of the audit log, or of an exported file.',
  )
  .option('--data <dir>', 'data directory', './data')
  .option('--database-url <url>', DATABASE_URL_HELP, parseDatabaseUrl)
  .option(
    '--file <export.json>',
    'verify an export (from the owner’s audit export) instead of the database',
  )
  .option('--public-key <key>', 'trusted public key (base64url); default: the data directory’s')
  .option('--json', 'print the verdict as JSON')
  .action(lazy(async () => (await import('./audit-command.ts')).auditVerifyCommand));

const carrier = program.command('carrier').description('Carrier accounts.');
carrier
  .command('add')
  .description(
    'Add a carrier with its first admin and an API key; prints the admin’s password and the key once.',
  )
  .requiredOption('--name <name>', 'the carrier’s name, e.g. "Birch Express"')
  .requiredOption('--admin-username <user>', 'user name of the carrier’s first admin')
  .option('--id <id>', 'the carrier’s id (default: carrier- and the name in lower case)')
  .option('--data <dir>', 'data directory', './data')
  .option('--database-url <url>', DATABASE_URL_HELP, parseDatabaseUrl)
  .option('--json', 'print what was made as JSON')
  .action(lazy(async () => (await import('./carrier-command.ts')).carrierAddCommand));

await program.parseAsync(process.argv);

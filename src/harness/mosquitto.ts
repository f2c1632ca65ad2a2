/**
 * Starts a private Mosquitto broker for a test, a scenario or a benchmark: its own process, its
 * own temp config, a free port on 127.0.0.1 only; anonymous, or secured by the dynamic security
 * plugin as Threshold's external broker. Never the system service — tests must not depend on
 * (or disturb) whatever runs on the machine.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { DOWN_CHANNELS, TOPIC_ROOT } from '../protocol/topics.ts';
import { freePort } from './free-port.ts';

/** The Mosquitto binary the CI image and the dev container install. */
export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
/** Its admin tool, which writes the dynamic security plugin's first file. */
const MOSQUITTO_CTRL_BIN = process.env.MOSQUITTO_CTRL_BIN ?? '/usr/bin/mosquitto_ctrl';

/** A running test broker. */
export interface TestMosquitto {
  /** `mqtt://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Kills the broker (SIGTERM, then SIGKILL after 2 s) and removes its temp dir; idempotent. */
  stop(): Promise<void>;
}

// Brokers still running when the test process exits (a crashed test, a missed afterAll) are
// killed here so no mosquitto outlives the run.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** mosquitto's dynamic security plugin, as Debian installs it. */
function dynsecPlugin(): string {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib']) {
    const path = join(dir, 'mosquitto_dynamic_security.so');
    if (existsSync(path)) return path;
  }
  throw new Error("mosquitto's dynamic security plugin is not installed (Debian: mosquitto)");
}

/** Options of {@link startMosquitto}. */
export interface MosquittoOptions {
  /** Listen here (to bring a stopped broker back where its clients will look for it). */
  port?: number;
  /**
   * Authenticated, with the dynamic security plugin and this admin account, and persistent
   * (sessions and queued messages survive a restart on the same `dataDir`), as a production
   * mosquitto for Threshold runs. Without it: anonymous, no persistence.
   */
  dynsec?: { adminUsername: string; adminPassword: string };
  /** With `dynsec`: keep the plugin's file and the persistence here (default: a new temp dir). */
  dataDir?: string;
}

async function startOnce(
  wanted: number | undefined,
  options: MosquittoOptions,
): Promise<TestMosquitto | string> {
  const port = wanted ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'threshold-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  const dataDir = options.dataDir ?? dir;
  const secured: string[] = [];
  if (options.dynsec) {
    const file = join(dataDir, 'dynamic-security.json');
    if (!existsSync(file)) {
      execFileSync(MOSQUITTO_CTRL_BIN, [
        'dynsec',
        'init',
        file,
        options.dynsec.adminUsername,
        options.dynsec.adminPassword,
      ]);
    }
    secured.push(
      'allow_anonymous false',
      `plugin ${dynsecPlugin()}`,
      `plugin_opt_config_file ${file}`,
      'persistence true',
      `persistence_location ${dataDir}/`,
      // Tests run as root; keep it, so the files above stay writable.
      'user root',
    );
  } else {
    secured.push('allow_anonymous true', 'persistence false');
  }
  writeFileSync(
    config,
    [
      `listener ${port} 127.0.0.1`,
      ...secured,
      // Logs go to stderr, which we keep to explain a failed start.
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const child = spawn(MOSQUITTO_BIN, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      running.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      stderr += String(err);
      exited = true;
      running.delete(child);
      resolve();
    });
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exitedPromise;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (exited) {
      await stop();
      return `mosquitto exited before listening on ${port}: ${stderr.trim()}`;
    }
    if (await canConnect(port)) {
      return { url: `mqtt://127.0.0.1:${port}`, port, stop };
    }
    await sleep(25);
  }
  await stop();
  return `mosquitto did not listen on ${port} within 5 s: ${stderr.trim()}`;
}

/**
 * Starts a fresh Mosquitto on a free 127.0.0.1 port, or on `options.port` (to bring a stopped
 * broker back where its clients will look for it). Call `stop()` in `afterAll` (it is also
 * killed when the test process exits).
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<TestMosquitto> {
  let lastError = '';
  // A port race (someone else bound it between our probe and mosquitto's bind) is retried.
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await startOnce(options.port, options);
    if (typeof result !== 'string') return result;
    lastError = result;
  }
  throw new Error(lastError);
}

/** The user name and role of the test observer account ({@link addMosquittoObserver}). */
export const MOSQUITTO_OBSERVER = 'threshold-test-observer';

/** MQTT credentials of an account on a test broker. */
export interface MqttCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Adds the observer account to a test mosquitto secured by the dynamic security plugin: it may
 * subscribe to and receive every topic under the protocol's root, commands and grant lists
 * included, and publish commands and grant lists (a replay, as a thief of the server's
 * password would try). The scenarios' history recorder and broker spy log in with it; the
 * server's own role cannot read commands (mosquitto-dynsec.ts). Only tests make it: a
 * production broker has no such account. Once per broker; returns its credentials (a new
 * random password).
 */
export async function addMosquittoObserver(
  broker: Pick<TestMosquitto, 'url'>,
  admin: { readonly adminUsername: string; readonly adminPassword: string },
): Promise<MqttCredentials> {
  const credentials = { username: MOSQUITTO_OBSERVER, password: randomBytes(18).toString('hex') };
  const everything = `${TOPIC_ROOT}/#`;
  const acls = [
    { acltype: 'subscribePattern', topic: everything, allow: true },
    { acltype: 'publishClientReceive', topic: everything, allow: true },
    ...DOWN_CHANNELS.map((c) => ({
      acltype: 'publishClientSend',
      topic: `${TOPIC_ROOT}/+/+/${c}`,
      allow: true,
    })),
  ];
  const commands = [
    { command: 'createRole', rolename: MOSQUITTO_OBSERVER, acls },
    {
      command: 'createClient',
      ...credentials,
      roles: [{ rolename: MOSQUITTO_OBSERVER }],
    },
  ].map((c, i) => ({ ...c, correlationData: String(i) }));
  const client = await mqtt.connectAsync(broker.url, {
    username: admin.adminUsername,
    password: admin.adminPassword,
    clientId: `threshold-test-admin-${randomBytes(6).toString('hex')}`,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    protocolVersion: 4,
  });
  try {
    const control = '$CONTROL/dynamic-security/v1';
    const answered = new Promise<{ command: string; error?: string }[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('mosquitto did not answer within 10 s')),
        10_000,
      );
      client.on('message', (_topic, payload) => {
        clearTimeout(timer);
        const body = JSON.parse(payload.toString('utf8')) as {
          responses?: { command: string; error?: string }[];
        };
        resolve(body.responses ?? []);
      });
    });
    await client.subscribeAsync(`${control}/response`, { qos: 1 });
    await client.publishAsync(control, JSON.stringify({ commands }), { qos: 1 });
    const responses = await answered;
    if (responses.length !== commands.length || responses.some((r) => r.error !== undefined)) {
      throw new Error(`mosquitto refused the observer account: ${JSON.stringify(responses)}`);
    }
  } finally {
    await client.endAsync();
  }
  return credentials;
}

/**
 * The home's simulated camera as a process of its own, so it can run where the test process
 * cannot: inside a network namespace (netns.ts), whose link a scenario takes down as a jammer
 * would. It is the same SimCamera and DeviceLink that `threshold sim` runs; only its scene (is
 * the door open, is someone in the doorway) comes from the parent, since the door sensor it
 * looks at lives in the parent.
 *
 * Control, one JSON object per line on stdin: first `{"config": CameraChildConfig}` (the device
 * key travels here, not in argv, which `ps` shows), then any number of
 * `{"scene": CameraChildScene}`. Reports, one JSON object per line on stdout: `{"ready": true}`
 * once connected and subscribed, `{"link": "up" | "down", "at": ms}` as its MQTT link changes,
 * `{"error": text}` before it exits with status 2 (bad control line) or 3 (no connection).
 * It closes its link and exits when stdin ends (its parent is gone) or on SIGTERM.
 *
 * Usage: `node --import tsx src/harness/camera-child.ts`.
 */
import { createInterface } from 'node:readline';
import { DeviceLink, SimCamera } from '../devices/index.ts';
import { systemClock } from '../protocol/system-clock.ts';

/** What the camera needs to connect: its broker, its identity and its link's timing. */
export interface CameraChildConfig {
  /** `mqtt://host:port` as seen from where the child runs. */
  readonly brokerUrl: string;
  readonly homeId: string;
  readonly deviceId: string;
  /** The device key, 32 bytes, base64url (as provisioned). */
  readonly key: string;
  /** MQTT keepalive, s: how soon the camera itself notices a dead link. */
  readonly keepaliveSeconds: number;
  /** Wait between reconnection attempts, ms. */
  readonly reconnectPeriodMs: number;
}

/** What the camera sees. */
export interface CameraChildScene {
  readonly doorOpen: boolean;
  readonly person: boolean;
}

/** One line the child writes. */
export type CameraChildReport =
  | { readonly ready: true }
  | { readonly link: 'up' | 'down'; readonly at: number }
  | { readonly error: string };

/** Writes one report line. */
function report(r: CameraChildReport): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

/** Reports `message` and exits with `status`. */
function die(status: number, message: string): never {
  report({ error: message });
  process.exit(status);
}

/** The config of the first line, checked field by field; dies with the reason otherwise. */
function parseConfig(line: string): CameraChildConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    die(2, 'the first line is not JSON');
  }
  const c = (parsed as { config?: Record<string, unknown> } | null)?.config;
  if (typeof c !== 'object' || c === null) die(2, 'the first line must be {"config": {...}}');
  for (const field of ['brokerUrl', 'homeId', 'deviceId', 'key'] as const) {
    if (typeof c[field] !== 'string' || c[field] === '') die(2, `config.${field} must be a string`);
  }
  for (const field of ['keepaliveSeconds', 'reconnectPeriodMs'] as const) {
    const v = c[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      die(2, `config.${field} must be a positive integer`);
  }
  const key = Buffer.from(String(c.key), 'base64url');
  if (key.length !== 32) die(2, 'config.key must be 32 bytes, base64url');
  return c as unknown as CameraChildConfig;
}

/** A scene line, or null (reported) when it is not one. */
function parseScene(line: string): CameraChildScene | null {
  try {
    const s = (JSON.parse(line) as { scene?: Partial<CameraChildScene> } | null)?.scene;
    if (typeof s?.doorOpen === 'boolean' && typeof s.person === 'boolean') {
      return { doorOpen: s.doorOpen, person: s.person };
    }
  } catch {
    // Reported below.
  }
  report({ error: `not a scene line, ignored: ${line.slice(0, 200)}` });
  return null;
}

const lines = createInterface({ input: process.stdin });
let camera: SimCamera | null = null;
let link: DeviceLink | null = null;
const scene: { doorOpen: boolean; person: boolean } = { doorOpen: false, person: false };
let stopping = false;

/** Closes the link (cleanly if it still can) and exits. */
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  camera?.stop();
  await link?.close().catch(() => undefined);
  process.exit(0);
}

lines.on('line', (line) => {
  if (line.trim() === '') return;
  if (link === null) {
    const config = parseConfig(line);
    const deviceKey = Buffer.from(config.key, 'base64url');
    link = new DeviceLink({
      brokerUrl: config.brokerUrl,
      homeId: config.homeId,
      deviceId: config.deviceId,
      deviceKey,
      clock: systemClock,
      keepaliveSeconds: config.keepaliveSeconds,
      reconnectPeriodMs: config.reconnectPeriodMs,
    });
    camera = new SimCamera(link, {
      clock: systemClock,
      deviceKey,
      door: () => scene.doorOpen,
    });
    link.onLinkChange((up) => report({ link: up ? 'up' : 'down', at: systemClock.now() }));
    link.start().then(
      () => report({ ready: true }),
      (err: unknown) =>
        die(
          3,
          `no connection to ${config.brokerUrl}: ${err instanceof Error ? err.message : String(err)}`,
        ),
    );
    return;
  }
  const next = parseScene(line);
  if (next === null) return;
  scene.doorOpen = next.doorOpen;
  scene.person = next.person;
  camera?.setPerson(next.person);
});
lines.on('close', () => void stop());
process.on('SIGTERM', () => void stop());

/**
 * The demo home's door bridged by a home hub instead of simulated directly: the lock, door
 * sensor and camera are the hub's in-memory devices (`driver: memory`), and the hub speaks for
 * them to the control plane with the demo devices' ids and secrets. Used by the `hub-*`
 * scenarios and test/hub.test.ts.
 *
 * The hub is configured the way a user configures it: a YAML file, read by `loadHubConfig`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.ts';
import { silentLogger, type DeviceLogger } from '../../devices/device-connection.ts';
import { loadHubConfig } from '../../hub/config.ts';
import type { MemoryCamera, MemoryContact, MemoryLock } from '../../hub/drivers/memory.ts';
import { Hub } from '../../hub/hub.ts';
import type { DemoCredentials } from '../../server/seed.ts';
import type { RunningSystem } from '../../server/system.ts';
import { sleep, type ScenarioWorld } from '../scenario-world.ts';

/** Timings of the hub, besides the defaults, and the control plane's grant-list key. */
export interface HubHomeSettings {
  readonly deadManMs?: number;
  readonly freezeMs?: number;
  readonly cutOffMs?: number;
  /**
   * The control plane's grant-list public key (`controlPlane.grantKey`, its
   * `keys.grantSigner.publicKey`); absent, the hub refuses every courier unlock.
   */
  readonly grantKey?: string;
  /** `grants.maxAgeMs`: how old the hub's grant list may be for a courier's unlock. */
  readonly grantsMaxAgeMs?: number;
}

/** A started hub and its memory devices. */
export interface HubHome {
  readonly hub: Hub;
  readonly lock: MemoryLock;
  readonly door: MemoryContact;
  readonly camera: MemoryCamera;
  /** The hub's data folder (its log and keypad digests). */
  readonly dataDir: string;
  readonly configPath: string;
}

/** The hub config for the demo home's door, as YAML. */
export function hubYamlFor(
  creds: Pick<DemoCredentials, 'homeId' | 'doorId' | 'devices'>,
  brokerUrl: string,
  settings: HubHomeSettings = {},
): string {
  const { lock, doorSensor, camera } = creds.devices;
  const { grantKey, grantsMaxAgeMs, ...timings } = settings;
  const timing = Object.entries(timings)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${String(v)}\n`)
    .join('');
  return `# The demo home's door, bridged by a hub with simulated devices.
controlPlane:
  url: ${brokerUrl}
${grantKey === undefined ? '' : `  grantKey: ${grantKey}\n`}homeId: ${creds.homeId}
dataDir: ./hub-data
${timing}${grantsMaxAgeMs === undefined ? '' : `grants:\n  maxAgeMs: ${grantsMaxAgeMs}\n`}devices:
  - id: ${lock.id}
    kind: lock
    secret: ${lock.secret}
    driver: memory
    options: { motorDelayMs: 200 }
  - id: ${doorSensor.id}
    kind: door-sensor
    secret: ${doorSensor.secret}
    driver: memory
  - id: ${camera.id}
    kind: camera
    secret: ${camera.secret}
    driver: memory
doors:
  - id: ${creds.doorId}
    lock: ${lock.id}
    doorSensor: ${doorSensor.id}
    camera: ${camera.id}
`;
}

/**
 * Writes the config into `dir`, starts the hub and waits until every device is connected to
 * the control plane.
 */
export async function startHubHome(
  creds: Pick<DemoCredentials, 'homeId' | 'doorId' | 'devices'>,
  brokerUrl: string,
  dir: string,
  clock: Clock,
  settings: HubHomeSettings = {},
  logger: DeviceLogger = silentLogger,
): Promise<HubHome> {
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'hub.yaml');
  writeFileSync(configPath, hubYamlFor(creds, brokerUrl, settings), { mode: 0o600 });
  const config = loadHubConfig(configPath);
  // Reconnect quickly: scenarios measure what happens when the link returns.
  const hub = new Hub({ config, clock, logger, link: { reconnectPeriodMs: 200 } });
  const { lock, doorSensor, camera } = creds.devices;
  const parts = {
    hub,
    lock: hub.driver(lock.id) as MemoryLock,
    door: hub.driver(doorSensor.id) as MemoryContact,
    camera: hub.driver(camera.id) as MemoryCamera,
    dataDir: config.dataDir,
    configPath,
  };
  await hub.start();
  try {
    await hub.waitUntilConnected(10_000);
  } catch (err) {
    await hub.stop();
    throw err;
  }
  return parts;
}

/**
 * Runs `story` with the world's door bridged by a hub: the world's simulated devices leave, a
 * hub with memory devices takes their ids, and everything is stopped and removed afterwards.
 */
export async function withHubHome<T>(
  world: ScenarioWorld,
  settings: HubHomeSettings,
  story: (home: HubHome) => Promise<T>,
): Promise<T> {
  await world.home.stop();
  const dir = mkdtempSync(join(tmpdir(), 'threshold-hub-'));
  try {
    const home = await startHubHome(world.creds, world.sys.brokerUrl, dir, world.sys.clock, {
      grantKey: world.sys.keys.grantSigner.publicKey,
      ...settings,
    });
    try {
      const ids = Object.values(world.creds.devices).map((d) => d.id);
      await world.waitFor(
        () => ids.every((id) => world.sys.gateway.liveStatus(id)?.online === true),
        10_000,
        'the control plane sees the hub’s devices online',
      );
      return await story(home);
    } finally {
      await home.hub.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `hub.*` events the control plane audited (`device.event` entries), oldest first. */
export async function auditedHubEvents(
  sys: RunningSystem,
): Promise<{ name: string; detail: Record<string, unknown>; subject: string }[]> {
  const last = await sys.store.audit.last();
  if (last === null) return [];
  const out: { name: string; detail: Record<string, unknown>; subject: string }[] = [];
  for (const e of await sys.store.audit.getRange(1, last.seq)) {
    const data = e.data as { name?: unknown; detail?: unknown };
    if (e.kind !== 'device.event' || typeof data.name !== 'string') continue;
    if (!data.name.startsWith('hub.')) continue;
    let detail: Record<string, unknown> = {};
    try {
      detail = JSON.parse(String(data.detail)) as Record<string, unknown>;
    } catch {
      // A hub event always carries JSON; anything else is reported as empty.
    }
    out.push({ name: data.name, detail, subject: e.subject });
  }
  return out;
}

/** Polls until `pred` holds or `timeoutMs` passed; returns whether it held. */
export async function eventually(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

/**
 * `driver: matter` in a hub config: a Matter door lock through matter.js as a controller
 * ({@link MatterLock}), and the hub's one Matter fabric ({@link MatterFabric}) that every Matter
 * device of the hub shares.
 *
 * ```yaml
 * - id: front-lock
 *   kind: lock
 *   driver: matter
 *   options:
 *     nodeId: 1                 # the lock's node id in the hub's fabric, from pairing
 *     storageDir: hub-data/matter   # the fabric's keys and peers; relative to the config file
 *     netInterface: eth0        # optional: the one interface Matter's mDNS uses
 * ```
 *
 * Pairing (commissioning) is a one-off step that adds the lock to the hub's fabric and gives it
 * a node id: {@link MatterFabric.commission} with the lock's 11- or 21-digit pairing code. The
 * hub does not commission on start; it reads the fabric (its root certificate, its keys and the
 * peers it commissioned) from `storageDir`. Keep that folder private: it holds the fabric's
 * private keys, which control every lock in it.
 *
 * matter.js keeps one environment per process (its storage path, its mDNS socket, its logger),
 * so a hub has one fabric: every `driver: matter` device must name the same `storageDir`,
 * `netInterface` and `port`. matter.js is loaded on first use, not when the hub reads its
 * config, so hubs without Matter devices do not pay for it.
 */
import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import { Type } from 'typebox';
import type * as MatterMain from '@matter/main';
import type * as MatterProtocol from '@matter/main/protocol';
import type * as MatterTypes from '@matter/main/types';
import type * as MatterDoorLockBehaviors from '@matter/main/behaviors/door-lock';
import type { ClientNode, ServerNode } from '@matter/main';
import type { DriverFactory } from '../driver-registry.ts';
import { MatterLock } from './matter-lock.ts';
import { SharedController } from './shared-controller.ts';

/** The matter.js modules the Matter drivers use, loaded once per process. */
export interface MatterModules {
  readonly main: typeof MatterMain;
  readonly protocol: typeof MatterProtocol;
  readonly types: typeof MatterTypes;
  readonly DoorLockClient: typeof MatterDoorLockBehaviors.DoorLockClient;
}

let loading: Promise<MatterModules> | null = null;

/**
 * Loads matter.js. Its Node.js platform builds a process-wide environment the moment it is
 * imported, and by default that environment reads `MATTER_*` variables and `--options` from the
 * hub's own command line, reads `~/.matter/config.json`, traps SIGINT/SIGTERM and sets the
 * process exit code: none of that may happen inside the hub, so it is switched off first.
 */
export function loadMatter(): Promise<MatterModules> {
  loading ??= (async () => {
    const { config } = await import('@matter/nodejs/config');
    try {
      config.trapProcessSignals = false;
      config.trapUnhandledErrors = false;
      config.setProcessExitCodeOnError = false;
      config.loadProcessArgv = false;
      config.loadProcessEnv = false;
      config.loadConfigFile = false;
    } catch {
      // Something in this process loaded matter.js before us; its settings stand.
    }
    const main = await import('@matter/main');
    const protocol = await import('@matter/main/protocol');
    const types = await import('@matter/main/types');
    const { DoorLockClient } = await import('@matter/main/behaviors/door-lock');
    return { main, protocol, types, DoorLockClient };
  })();
  return loading;
}

/** How to open the hub's Matter fabric. */
export interface MatterFabricOptions {
  /** Where matter.js keeps the fabric (root certificate, keys, commissioned peers). */
  readonly storageDir: string;
  /**
   * The one network interface Matter's mDNS (discovery) uses; default every interface. A hub
   * on several networks names the one its devices are on.
   */
  readonly netInterface?: string;
  /** The controller's UDP port; 0 (the default) lets the system pick one. */
  readonly port?: number;
  /**
   * The IPv6 address the controller listens on (with `%interface` for a link-local one);
   * default every address, IPv4 too. Matter itself runs over IPv6.
   */
  readonly listenAddress?: string;
  /** How long opening the controller may take, ms. Default 30 000. */
  readonly openTimeoutMs?: number;
  /** Whether matter.js writes its own log (to the console, at `info`). Default false. */
  readonly log?: boolean;
}

const DEFAULT_OPEN_TIMEOUT_MS = 30_000;
const DEFAULT_COMMISSION_TIMEOUT_MS = 120_000;
/** The controller's node id in the hub's storage (matter.js names its folder after it). */
const CONTROLLER_ID = 'threshold-hub';

/** The fabric while it is open: matter.js, and the controller running on it. */
export interface OpenMatterFabric {
  readonly modules: MatterModules;
  readonly controller: ServerNode;
}

/**
 * The hub's Matter fabric: one matter.js `ServerNode` acting as a controller, shared by every
 * Matter device of the hub. Devices {@link acquire} and {@link release} it like a Z-Wave
 * network ({@link SharedController}); the first acquire opens it and the last release closes it
 * (its sockets and timers).
 */
export class MatterFabric {
  private readonly controller = new SharedController<OpenMatterFabric>({
    open: () => this.start(),
    close: closeController,
  });

  constructor(readonly options: MatterFabricOptions) {}

  /** The matter.js modules and the running controller while the fabric is open, else null. */
  get open(): OpenMatterFabric | null {
    return this.controller.current;
  }

  /**
   * Counts one more user and resolves once the controller runs, opening it if nobody had.
   * Rejects if it cannot be opened in time; the failed user is not counted then.
   */
  acquire(): Promise<OpenMatterFabric> {
    return this.controller.acquire();
  }

  /** One user fewer; the last one out closes the controller (resolves once it is closed). */
  release(): Promise<void> {
    return this.controller.release();
  }

  /** The commissioned peer with Matter node id `nodeId`, if the fabric has one. */
  peer(nodeId: bigint): ClientNode | undefined {
    const controller = this.controller.current?.controller;
    if (!controller) return undefined;
    for (const node of controller.peers) {
      if (node.peerAddress?.nodeId === nodeId) return node;
    }
    return undefined;
  }

  /**
   * Pairs a device that is in pairing mode into the fabric, with its manual pairing code (11 or
   * 21 digits, dashes and spaces allowed) or its QR payload (`MT:...`), and resolves with the
   * node id it now has (what a device's `nodeId` option names). The fabric must be acquired.
   */
  async commission(
    pairingCode: string,
    timeoutMs = DEFAULT_COMMISSION_TIMEOUT_MS,
  ): Promise<bigint> {
    const open = this.controller.current;
    if (!open) throw new Error('matter: acquire the fabric before pairing');
    const { main, types } = open.modules;
    const code = pairingCode.trim();
    let identifiers: { passcode: number; longDiscriminator: number } | { pairingCode: string };
    if (/^MT:/i.test(code)) {
      const [qr] = types.QrPairingCodeCodec.decode(code.toUpperCase());
      if (!qr) throw new Error('matter: the QR payload holds no device');
      identifiers = { passcode: qr.passcode, longDiscriminator: qr.discriminator };
    } else {
      const digits = code.replace(/[\s-]/g, '');
      if (!/^(\d{11}|\d{21})$/.test(digits)) {
        throw new Error('matter: a manual pairing code has 11 or 21 digits');
      }
      identifiers = { pairingCode: digits };
    }
    const node = await open.controller.peers.commission({
      ...identifiers,
      timeout: main.Millis(timeoutMs),
    });
    const nodeId = node.peerAddress?.nodeId;
    if (nodeId === undefined) throw new Error('matter: the device was paired without a node id');
    return BigInt(nodeId);
  }

  private async start(): Promise<OpenMatterFabric> {
    const modules = await loadMatter();
    const { Environment, Logger, LogLevel, ServerNode } = modules.main;
    const netInterface = this.options.netInterface;
    if (netInterface !== undefined && networkInterfaces()[netInterface] === undefined) {
      throw new Error(`matter: there is no network interface ${netInterface}`);
    }
    const env = Environment.default;
    env.vars.set('storage.path', this.options.storageDir);
    env.vars.set('path.root', this.options.storageDir);
    if (netInterface !== undefined) env.vars.set('mdns.networkInterface', netInterface);
    // matter.js leaks a socket when it tries IPv4 mDNS on an interface without IPv4 (Matter
    // itself runs over IPv6, so nothing is lost by not trying).
    env.vars.set('mdns.ipv4', hasIpv4(netInterface));
    Logger.level = this.options.log === true ? LogLevel.INFO : LogLevel.ERROR;

    const timeoutMs = this.options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    const listenAddress = this.options.listenAddress;
    const starting = (async () => {
      const node = await ServerNode.create({
        id: CONTROLLER_ID,
        network: {
          port: this.options.port ?? 0,
          ...(listenAddress === undefined
            ? {}
            : { listeningAddressIpv6: listenAddress, ipv4: false }),
        },
        // The hub is a controller only: nobody may pair *it*.
        commissioning: { enabled: false },
      });
      try {
        await node.start();
      } catch (err) {
        await closeController({ modules, controller: node }).catch(() => undefined);
        throw err;
      }
      return node;
    })();
    let timer: NodeJS.Timeout | undefined;
    let controller: ServerNode;
    try {
      controller = await Promise.race([
        starting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`matter: the controller did not start in ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      // A controller that starts after all is closed then, not left running unowned.
      starting.then(
        (late) => closeController({ modules, controller: late }).catch(() => undefined),
        () => undefined,
      );
      throw err instanceof Error ? err : new Error(String(err));
    } finally {
      clearTimeout(timer);
    }
    return { modules, controller };
  }
}

/** Whether `netInterface` (or, without one, any non-internal interface) has an IPv4 address. */
function hasIpv4(netInterface: string | undefined): boolean {
  const all = networkInterfaces();
  const infos =
    netInterface === undefined
      ? Object.values(all).flatMap((list) => list ?? [])
      : (all[netInterface] ?? []);
  return infos.some((info) => info.family === 'IPv4' && !info.internal);
}

/** Closes the controller and the process-wide mDNS service it started. */
async function closeController(open: OpenMatterFabric): Promise<void> {
  await open.controller.close();
  const env = open.modules.main.Environment.default;
  const { MdnsService } = open.modules.protocol;
  if (env.has(MdnsService)) await env.close(MdnsService);
}

const strict = { additionalProperties: false } as const;
const Ms = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });

/** The options of a `driver: matter` lock. */
export const MatterLockConfigOptions = Type.Object(
  {
    /** The lock's node id in the hub's fabric (pairing gives it). */
    nodeId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    /** The endpoint with the Door Lock cluster; default the first that has one. */
    endpoint: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_534 })),
    /** Where the fabric is kept; relative to the config file. Default `hub-data/matter`. */
    storageDir: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** The one network interface Matter's mDNS uses; default every interface. */
    netInterface: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** The controller's UDP port; default 0 (any free port). */
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65_535 })),
    /** The IPv6 address the controller listens on; default every address. */
    listenAddress: Type.Optional(Type.String({ minLength: 2, maxLength: 64 })),
    /** Read a reachable lock this often to notice it went away, ms. Default 60 000. */
    livenessIntervalMs: Type.Optional(Ms(5_000, 86_400_000)),
    /** Try an unreachable lock again this often, ms. Default 10 000. */
    deadProbeIntervalMs: Type.Optional(Ms(1_000, 3_600_000)),
    /** Write matter.js's own log to the console. Default false. */
    log: Type.Optional(Type.Boolean()),
  },
  strict,
);

/** The options as the schema checked them. */
interface MatterLockConfig {
  readonly nodeId: number;
  readonly endpoint?: number;
  readonly storageDir?: string;
  readonly netInterface?: string;
  readonly port?: number;
  readonly listenAddress?: string;
  readonly livenessIntervalMs?: number;
  readonly deadProbeIntervalMs?: number;
  readonly log?: boolean;
}

/** A factory with its own fabric (one per process: see the module comment). */
export function createMatterDriverFactory(): DriverFactory {
  let fabric: { fabric: MatterFabric; settings: string } | null = null;

  function fabricFor(config: MatterLockConfig, configDir: string): MatterFabric {
    const options: MatterFabricOptions = {
      storageDir: resolve(configDir, config.storageDir ?? 'hub-data/matter'),
      ...(config.netInterface === undefined ? {} : { netInterface: config.netInterface }),
      ...(config.port === undefined ? {} : { port: config.port }),
      ...(config.listenAddress === undefined ? {} : { listenAddress: config.listenAddress }),
      ...(config.log === undefined ? {} : { log: config.log }),
    };
    const settings = JSON.stringify(options);
    if (fabric) {
      if (fabric.settings !== settings) {
        throw new Error(
          'matter: every Matter device must share the same storageDir, netInterface, port, listenAddress and log',
        );
      }
      return fabric.fabric;
    }
    fabric = { fabric: new MatterFabric(options), settings };
    return fabric.fabric;
  }

  return {
    kinds: ['lock'],
    optionsSchema() {
      return MatterLockConfigOptions;
    },
    create(ctx, options) {
      const config = options as MatterLockConfig;
      return new MatterLock({
        id: ctx.id,
        fabric: fabricFor(config, ctx.configDir),
        nodeId: BigInt(config.nodeId),
        now: () => ctx.clock.now(),
        ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
        ...(config.livenessIntervalMs === undefined
          ? {}
          : { livenessIntervalMs: config.livenessIntervalMs }),
        ...(config.deadProbeIntervalMs === undefined
          ? {}
          : { deadProbeIntervalMs: config.deadProbeIntervalMs }),
      });
    },
  };
}

/** `driver: matter`, for the hub's driver registry. */
export const matterDriverFactory: DriverFactory = createMatterDriverFactory();

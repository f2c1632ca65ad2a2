/**
 * `driver: zwave` in a hub config: a Z-Wave lock through zwave-js ({@link ZWaveLock}). Devices
 * on the same controller (`port`) share one {@link ZWaveNetwork}, so a stick with two locks is
 * opened once; they must then agree on its keys and cache folder.
 *
 * ```yaml
 * - id: front-lock
 *   kind: lock
 *   driver: zwave
 *   options:
 *     port: /dev/serial/by-id/usb-0658_0200-if00   # or tcp://192.168.1.20:3333
 *     nodeId: 5
 *     securityKeys:
 *       S2_AccessControl: 5C5B2B6F1D7A4E0C9F3E2A1B0C9D8E7F   # 32 hex digits each
 *       S2_Authenticated: ...
 *       S2_Unauthenticated: ...
 *       S0_Legacy: ...
 * ```
 */
import { resolve } from 'node:path';
import { Type } from 'typebox';
import type { DriverFactory } from '../driver-registry.ts';
import { ZWaveLock } from './zwave-lock.ts';
import { ZWAVE_KEY_NAMES, ZWaveNetwork, type ZWaveSecurityKeysHex } from './zwave-network.ts';

const strict = { additionalProperties: false } as const;
const Ms = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });
const KeyHex = Type.String({ pattern: '^[0-9a-fA-F]{32}$' });

/** The options of a `driver: zwave` lock. */
export const ZWaveLockConfigOptions = Type.Object(
  {
    /** The controller: a serial path, or `tcp://host:port` for a stick shared over the network. */
    port: Type.String({ minLength: 1, maxLength: 512 }),
    /** The lock's node id in the controller's network. */
    nodeId: Type.Integer({ minimum: 1, maximum: 4000 }),
    /** The endpoint with Door Lock CC. Default 0. */
    endpoint: Type.Optional(Type.Integer({ minimum: 0, maximum: 127 })),
    /** The network keys, 32 hex digits each; S2_AccessControl is needed for a lock. */
    securityKeys: Type.Optional(
      Type.Object(
        Object.fromEntries(ZWAVE_KEY_NAMES.map((name) => [name, Type.Optional(KeyHex)])),
        strict,
      ),
    ),
    /** Where zwave-js keeps its network cache; relative to the config file. Default `zwave-cache`. */
    cacheDir: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /**
     * Accept a lock included without S2 Access Control. Default false: such a lock's commands
     * can be read and forged by anyone in radio range.
     */
    allowInsecure: Type.Optional(Type.Boolean()),
    /** Ping a reachable lock this often to notice it went away, ms. Default 300 000. */
    livenessIntervalMs: Type.Optional(Ms(10_000, 86_400_000)),
    /** Try an unreachable lock again this often, ms. Default 30 000. */
    deadProbeIntervalMs: Type.Optional(Ms(1_000, 3_600_000)),
    /** Write zwave-js's own log to the console. Default false. */
    log: Type.Optional(Type.Boolean()),
  },
  strict,
);

/** The options as the schema checked them. */
interface ZWaveLockConfig {
  readonly port: string;
  readonly nodeId: number;
  readonly endpoint?: number;
  readonly securityKeys?: ZWaveSecurityKeysHex;
  readonly cacheDir?: string;
  readonly allowInsecure?: boolean;
  readonly livenessIntervalMs?: number;
  readonly deadProbeIntervalMs?: number;
  readonly log?: boolean;
}

/** A factory with its own table of open controllers (one per port). */
export function createZWaveDriverFactory(): DriverFactory {
  const networks = new Map<string, { network: ZWaveNetwork; settings: string }>();

  function networkFor(config: ZWaveLockConfig, configDir: string): ZWaveNetwork {
    const cacheDir = resolve(configDir, config.cacheDir ?? 'zwave-cache');
    const settings = JSON.stringify({
      keys: config.securityKeys ?? {},
      cacheDir,
      log: config.log ?? false,
    });
    const known = networks.get(config.port);
    if (known) {
      if (known.settings !== settings) {
        throw new Error(
          `zwave: devices on ${config.port} must share the same securityKeys, cacheDir and log`,
        );
      }
      return known.network;
    }
    const network = new ZWaveNetwork({
      port: config.port,
      cacheDir,
      ...(config.securityKeys ? { securityKeys: config.securityKeys } : {}),
      ...(config.log === undefined ? {} : { log: config.log }),
    });
    networks.set(config.port, { network, settings });
    return network;
  }

  return {
    kinds: ['lock'],
    optionsSchema() {
      return ZWaveLockConfigOptions;
    },
    create(ctx, options) {
      const config = options as ZWaveLockConfig;
      return new ZWaveLock({
        id: ctx.id,
        network: networkFor(config, ctx.configDir),
        nodeId: config.nodeId,
        now: () => ctx.clock.now(),
        requireSecurityClass: config.allowInsecure === true ? 'none' : 'S2_AccessControl',
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

/** `driver: zwave`, for the hub's driver registry. */
export const zwaveDriverFactory: DriverFactory = createZWaveDriverFactory();

/**
 * One Z-Wave network: the zwave-js `Driver` that owns a controller (a USB stick on a serial
 * port, or a stick shared over TCP by ser2net or zwave-js's own serial server), shared by every
 * Z-Wave device the hub bridges on that controller. A controller can only be opened once, so
 * devices {@link ZWaveNetwork.acquire | acquire} the network and
 * {@link ZWaveNetwork.release | release} it ({@link SharedController}); the first acquire opens
 * it and the last release destroys the zwave-js driver (closing the port and every timer it
 * holds).
 *
 * zwave-js keeps a cache of the network (node interviews, values, S2 state) and, by default, log
 * files. The cache goes to `cacheDir` (the hub's data directory, never the working directory),
 * and logging is off unless asked for: the hub has its own log.
 */
import { Driver, type PartialZWaveOptions } from 'zwave-js';
import { SharedController } from './shared-controller.ts';

/** The zwave-js security classes a network key exists for. */
export const ZWAVE_KEY_NAMES = [
  'S2_AccessControl',
  'S2_Authenticated',
  'S2_Unauthenticated',
  'S0_Legacy',
] as const;

/** A security class a network key belongs to. */
export type ZWaveKeyName = (typeof ZWAVE_KEY_NAMES)[number];

/**
 * The network keys, each 16 bytes written as 32 hex digits, as zwave-js and Z-Wave JS UI show
 * them. A lock needs `S2_AccessControl`: Door Lock CC is only granted under that key.
 */
export type ZWaveSecurityKeysHex = Partial<Record<ZWaveKeyName, string>>;

/** What the zwave-js `Driver` constructor accepts as a port (a path, a URL or a binding). */
export type ZWavePort = ConstructorParameters<typeof Driver>[0];

/** How to open a Z-Wave network. */
export interface ZWaveNetworkOptions {
  /**
   * The controller: a serial path (`/dev/ttyUSB0`, `/dev/serial/by-id/...`), `tcp://host:port`
   * for a stick shared over the network, or a serial binding (zwave-js's mock port in tests).
   */
  readonly port: ZWavePort;
  /** The network keys (hex); without S2 Access Control no lock can be included securely. */
  readonly securityKeys?: ZWaveSecurityKeysHex;
  /** Where zwave-js keeps its network cache and lock files. */
  readonly cacheDir: string;
  /** How long opening the controller may take before it counts as failed, ms. Default 60 000. */
  readonly openTimeoutMs?: number;
  /** Whether zwave-js writes its own log (to the console, at `info`). Default false. */
  readonly log?: boolean;
  /** Further zwave-js options, merged last (a region, timeouts; testing hooks in tests). */
  readonly driverOptions?: PartialZWaveOptions;
}

const DEFAULT_OPEN_TIMEOUT_MS = 60_000;
const KEY_HEX_RE = /^[0-9a-fA-F]{32}$/;

/**
 * Turns the hex keys of a config into the bytes zwave-js wants. Throws on a malformed key: a
 * wrong key would silently make every secure device unreachable.
 */
export function parseSecurityKeys(
  keys: ZWaveSecurityKeysHex,
): Partial<Record<ZWaveKeyName, Uint8Array<ArrayBuffer>>> {
  const out: Partial<Record<ZWaveKeyName, Uint8Array<ArrayBuffer>>> = {};
  for (const [name, hex] of Object.entries(keys) as [string, unknown][]) {
    if (!(ZWAVE_KEY_NAMES as readonly string[]).includes(name)) {
      throw new Error(`zwave: unknown security key ${JSON.stringify(name)}`);
    }
    if (typeof hex !== 'string' || !KEY_HEX_RE.test(hex)) {
      throw new Error(`zwave: security key ${name} must be 32 hex digits (16 bytes)`);
    }
    out[name as ZWaveKeyName] = new Uint8Array(Buffer.from(hex, 'hex'));
  }
  const distinct = new Set(Object.values(keys).map((hex) => hex.toLowerCase()));
  if (distinct.size !== Object.keys(keys).length) {
    // The Z-Wave specification requires a different key per class; reusing one lets a device
    // granted a lower class read commands meant for a higher one.
    throw new Error('zwave: every security class needs its own key');
  }
  return out;
}

/** See the module comment. */
export class ZWaveNetwork {
  private readonly controller: SharedController<Driver>;
  private readonly keys: Partial<Record<ZWaveKeyName, Uint8Array<ArrayBuffer>>>;

  constructor(private readonly options: ZWaveNetworkOptions) {
    // Validated here, when the hub reads its config, not on first use.
    this.keys = parseSecurityKeys(options.securityKeys ?? {});
    this.controller = new SharedController({
      open: () => this.open(),
      // Destroying the zwave-js driver closes the port and every timer it holds.
      close: (driver) => driver.destroy(),
    });
  }

  /** The zwave-js driver while the network is open, else null. */
  get driver(): Driver | null {
    return this.controller.current;
  }

  /** Whether the controller is open and its driver ready for commands. */
  ready(): boolean {
    return this.controller.current?.ready ?? false;
  }

  /**
   * Counts one more user and resolves with the ready driver, opening the controller if nobody
   * had. Rejects if it cannot be opened in time; the failed user is not counted then, and the
   * next acquire tries again.
   */
  acquire(): Promise<Driver> {
    return this.controller.acquire();
  }

  /** One user fewer; the last one out closes the controller (resolves once it is closed). */
  release(): Promise<void> {
    return this.controller.release();
  }

  private async open(): Promise<Driver> {
    const { driverOptions = {} } = this.options;
    const driver = new Driver(this.options.port, {
      securityKeys: this.keys,
      storage: { cacheDir: this.options.cacheDir },
      logConfig: this.options.log === true ? { enabled: true, level: 'info' } : { enabled: false },
      ...driverOptions,
    });
    const timeoutMs = this.options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    let onReady: (() => void) | undefined;
    let onError: ((err: Error) => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve;
        onError = reject;
        driver.once('driver ready', onReady);
        // zwave-js reports a controller it cannot initialise as an 'error' event, not as a
        // rejection of start().
        driver.once('error', onError);
        timer = setTimeout(
          () => reject(new Error(`zwave: the controller did not get ready in ${timeoutMs} ms`)),
          timeoutMs,
        );
        driver.start().catch(reject);
      });
    } catch (err) {
      await driver.destroy().catch(() => undefined);
      throw err instanceof Error ? err : new Error(String(err));
    } finally {
      clearTimeout(timer);
      if (onReady) driver.off('driver ready', onReady);
      if (onError) driver.off('error', onError);
    }
    return driver;
  }
}

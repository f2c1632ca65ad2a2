/**
 * The hub's config file (`threshold hub --config hub.yaml`; see `examples/hub.yaml`): where the
 * control plane is, which devices the hub bridges (each with its device secret and driver),
 * which devices make up each door, and the timings of local enforcement.
 *
 * Read strictly: YAML (JSON is YAML too), then a TypeBox schema with no unknown keys, then the
 * checks a schema cannot make (ids unique, doors naming devices of the right kind, secrets of
 * 32 bytes, files readable, each driver's own options). Every problem is reported at once, each
 * naming its key (`devices[1].options.frameIntervalMs: must be >= 20`), and nothing starts.
 *
 * The optional `homeAssistant` block names the Home Assistant user's broker, where the hub
 * publishes its doors through MQTT discovery (`home-assistant.ts`; docs/devices.md).
 *
 * `controlPlane.grantKey` (or `grantKeyFile`) is the public key the control plane signs its
 * offline grant lists with (grant-book.ts). It is optional so that a hub can be tried out
 * without it, but a hub without it refuses every courier unlock: the config then carries a
 * warning, which `--check` and the hub's start log show.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { parseDocument } from 'yaml';
import { isGrantListKey } from '../protocol/grant-list.ts';
import { ID_PATTERN } from '../protocol/topics.ts';
import { DRIVERS, type DriverRegistry, type HubDeviceKind } from './driver-registry.ts';

const strict = { additionalProperties: false } as const;
const Id = Type.String({ pattern: ID_PATTERN });

/** The timing defaults; the dead-man's thresholds are the control plane's own defaults. */
export const HUB_DEFAULTS = {
  deadManMs: 1_250,
  freezeMs: 3_000,
  cutOffMs: 30_000,
  heartbeatIntervalMs: 500,
  relockMs: 30_000,
  grantsMaxAgeMs: 900_000,
} as const;

/**
 * Bounds of `grants.maxAgeMs`. At least 10 s: the control plane refreshes a list on a period of
 * its own and the list then crosses the broker, so a shorter bound would refuse couriers while
 * everything works. At most a day, the longest offline bound Threshold states anywhere (a
 * household member's keypad lease): past it a list says nothing about revocations.
 */
export const GRANTS_MAX_AGE_BOUNDS = { minimum: 10_000, maximum: 86_400_000 } as const;

const DeviceEntry = Type.Object(
  {
    id: Id,
    kind: Type.Union([Type.Literal('lock'), Type.Literal('door-sensor'), Type.Literal('camera')]),
    /** The device key as provisioned, base64url (43 characters). */
    secret: Type.Optional(Type.String()),
    /** A file holding the device key (base64url), relative to the config file. */
    secretFile: Type.Optional(Type.String({ minLength: 1 })),
    driver: Type.String({ minLength: 1 }),
    /** The driver's own settings, checked by the driver's schema. */
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  strict,
);

const DoorEntry = Type.Object(
  {
    id: Id,
    /** What people (and Home Assistant's device list) call the door; default its id. */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    lock: Id,
    doorSensor: Type.Optional(Id),
    camera: Type.Optional(Id),
    /** Deadline for unlocks that name none (keypad), ms; null for none. */
    relockMs: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1_000, maximum: 3_600_000 }), Type.Null()]),
    ),
  },
  strict,
);

const HomeAssistantEntry = Type.Object(
  {
    /** Home Assistant's broker: `mqtt://host:port` or `mqtts://host:port`. */
    broker: Type.String({ minLength: 1 }),
    username: Type.Optional(Type.String({ minLength: 1 })),
    password: Type.Optional(Type.String()),
    /** A file holding the password, relative to the config file (keeps hub.yaml shareable). */
    passwordFile: Type.Optional(Type.String({ minLength: 1 })),
    /** Home Assistant's discovery prefix; default `homeassistant`. */
    discoveryPrefix: Type.Optional(Type.String({ minLength: 1 })),
    /** Where the hub publishes states; default `threshold-hub/<homeId>`. */
    baseTopic: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * Lets Home Assistant *lock* each door (a `lock` entity instead of a bolt sensor). Never
     * unlock: an unlock needs the control plane's checks. Default false (read-only).
     */
    lockCommands: Type.Optional(Type.Boolean()),
  },
  strict,
);

/** The file's schema. */
export const HubConfigFile = Type.Object(
  {
    controlPlane: Type.Object(
      {
        /** `mqtt://host:port` or `mqtts://host:port`. */
        url: Type.String({ minLength: 1 }),
        /** A PEM file of the CA that signed the broker's certificate (mqtts only). */
        ca: Type.Optional(Type.String({ minLength: 1 })),
        /** The control plane's grant-list public key: raw Ed25519, base64url (43 characters). */
        grantKey: Type.Optional(Type.String({ minLength: 1 })),
        /** A file holding it (`<server data>/keys/grants-ed25519.pub`), relative to the config. */
        grantKeyFile: Type.Optional(Type.String({ minLength: 1 })),
      },
      strict,
    ),
    homeId: Id,
    /** Where the hub keeps its log and keypad digests; default `hub-data` beside the file. */
    dataDir: Type.Optional(Type.String({ minLength: 1 })),
    /** No picture from the camera this long during a session → the dead-man's switch, ms. */
    deadManMs: Type.Optional(Type.Integer({ minimum: 250, maximum: 60_000 })),
    /** The same picture this long during a session → the dead-man's switch, ms. */
    freezeMs: Type.Optional(Type.Integer({ minimum: 500, maximum: 600_000 })),
    /** Control plane unreachable this long during a session → the hub ends it, ms. */
    cutOffMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 86_400_000 })),
    /** Between two camera heartbeats while armed, ms. */
    heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 5_000 })),
    devices: Type.Array(DeviceEntry, { minItems: 1, maxItems: 64 }),
    doors: Type.Optional(Type.Array(DoorEntry, { maxItems: 32 })),
    /** The offline grant list (grant-book.ts). */
    grants: Type.Optional(
      Type.Object(
        {
          /** A list older than this (by its `issuedAtMs`) lets no courier in, ms. */
          maxAgeMs: Type.Optional(Type.Integer(GRANTS_MAX_AGE_BOUNDS)),
        },
        strict,
      ),
    ),
    /** Publish the doors to Home Assistant (MQTT discovery); absent: not at all. */
    homeAssistant: Type.Optional(HomeAssistantEntry),
  },
  strict,
);

/** The file as written. */
export type HubConfigFileValue = Static<typeof HubConfigFile>;

/** One device, ready to use. */
export interface HubDeviceConfig {
  readonly id: string;
  readonly kind: HubDeviceKind;
  /** The device key, 32 bytes. */
  readonly key: Uint8Array;
  readonly driver: string;
  /** The driver's options, checked against its schema. */
  readonly options: Record<string, unknown>;
}

/** One door. */
export interface HubDoorConfig {
  readonly id: string;
  /** What people call the door (Home Assistant's device name); the id when not given. */
  readonly name: string;
  readonly lock: string;
  readonly doorSensor: string | null;
  readonly camera: string | null;
  /** Deadline for unlocks that name none, ms; null for none. */
  readonly relockMs: number | null;
}

/** Where and how the hub publishes its doors to Home Assistant. */
export interface HubHomeAssistantConfig {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  readonly broker: string;
  readonly username: string | null;
  /** From `password` or read from `passwordFile`. */
  readonly password: string | null;
  readonly discoveryPrefix: string;
  /** Null: the bridge's default, `threshold-hub/<hub id>`. */
  readonly baseTopic: string | null;
  /** Whether Home Assistant may lock the doors (never unlock). */
  readonly lockCommands: boolean;
}

/** Where the control plane is, and the key its grant lists are signed with. */
export interface HubControlPlaneConfig {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  readonly url: string;
  /** The PEM of the broker's CA, read from `controlPlane.ca`; null: the system's CAs. */
  readonly ca: string | null;
  /**
   * The grant-list public key (raw Ed25519, base64url), from `grantKey` or `grantKeyFile`; null
   * when neither is given: the hub then takes no list and refuses every courier unlock.
   */
  readonly grantKey: string | null;
}

/** How the hub treats its offline grant list. */
export interface HubGrantsConfig {
  /** A list older than this lets no courier in, ms. */
  readonly maxAgeMs: number;
}

/** The hub's config, checked and with defaults filled in. */
export interface HubConfig {
  readonly controlPlane: HubControlPlaneConfig;
  readonly homeId: string;
  /** Absolute. */
  readonly dataDir: string;
  readonly deadManMs: number;
  readonly freezeMs: number;
  readonly cutOffMs: number;
  readonly heartbeatIntervalMs: number;
  readonly devices: readonly HubDeviceConfig[];
  readonly doors: readonly HubDoorConfig[];
  readonly grants: HubGrantsConfig;
  /** Publishing to Home Assistant, or null when the file has no `homeAssistant` block. */
  readonly homeAssistant: HubHomeAssistantConfig | null;
  /** The folder of the config file (relative paths in driver options start there). */
  readonly configDir: string;
  /**
   * What runs but is not what the file's author likely wants (no grant key), each naming its
   * key; `--check` and the hub's start log show them.
   */
  readonly warnings: readonly string[];
}

/** A config that cannot be used: every problem found, each naming its key. */
export class HubConfigError extends Error {
  constructor(
    readonly problems: readonly string[],
    source: string,
  ) {
    super(
      `${source}: ${problems.length === 1 ? '' : `${problems.length} problems\n  `}${problems.join('\n  ')}`,
    );
    this.name = 'HubConfigError';
  }
}

const schemaCache = new Map<TSchema, ReturnType<typeof Compile>>();

/** `/devices/0/kind` → `devices[0].kind`, under `prefix`. */
function keyOf(instancePath: string, prefix = ''): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = prefix;
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(the file)' : out;
}

/** Schema errors in words, one per key. */
function schemaProblems(schema: TSchema, value: unknown, prefix = ''): string[] {
  let validator = schemaCache.get(schema);
  if (validator === undefined) {
    validator = Compile(schema);
    schemaCache.set(schema, validator);
  }
  if (validator.Check(value)) return [];
  const errors = validator.Errors(value);
  const out = new Map<string, string>();
  const allowed = new Map<string, unknown[]>();
  for (const e of errors) {
    if (e.keyword === 'const') {
      const key = keyOf(e.instancePath, prefix);
      allowed.set(key, [
        ...(allowed.get(key) ?? []),
        (e.params as { allowedValue?: unknown }).allowedValue,
      ]);
    }
  }
  for (const e of errors) {
    const key = keyOf(e.instancePath, prefix);
    const params = e.params as {
      additionalProperties?: string[];
      requiredProperties?: string[];
    };
    if (e.keyword === 'const') continue;
    // An unknown key is reported twice (a `false` schema for it, then additionalProperties),
    // and the validator may stop after a few errors: either one names it.
    if (e.keyword === 'boolean') {
      out.set(key, `${key}: unknown key`);
    } else if (e.keyword === 'additionalProperties') {
      for (const extra of params.additionalProperties ?? []) {
        const k = keyOf(`${e.instancePath}/${extra}`, prefix);
        out.set(k, `${k}: unknown key`);
      }
    } else if (e.keyword === 'required') {
      for (const missing of params.requiredProperties ?? [])
        out.set(`${key}.${missing}`, `${keyOf(`${e.instancePath}/${missing}`, prefix)}: missing`);
    } else if (e.keyword === 'anyOf' && allowed.has(key)) {
      const values = allowed
        .get(key)!
        .map((v) => JSON.stringify(v))
        .join(', ');
      if (!out.has(key)) out.set(key, `${key}: must be one of ${values}`);
    } else if (!out.has(key)) {
      out.set(key, `${key}: ${e.message}`);
    }
  }
  return [...out.values()];
}

/** A base64url device key of 32 bytes, or a problem. */
function readKey(text: string, key: string): Uint8Array | string {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9_-]{43}$/.test(trimmed))
    return `${key}: a device secret is 43 characters of base64url (32 bytes), as provisioned`;
  return Buffer.from(trimmed, 'base64url');
}

/** Options for {@link parseHubConfig}. */
export interface ParseHubConfigOptions {
  /** The folder relative paths start from (the config file's). */
  readonly baseDir: string;
  /** Name of the source in errors. Default "hub config". */
  readonly source?: string;
  /** The drivers available. Default {@link DRIVERS}. */
  readonly drivers?: DriverRegistry;
}

/** Reads a config from its text; throws {@link HubConfigError} listing every problem. */
export function parseHubConfig(text: string, options: ParseHubConfigOptions): HubConfig {
  const source = options.source ?? 'hub config';
  const drivers = options.drivers ?? DRIVERS;
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new HubConfigError(
      doc.errors.map((e) => `not valid YAML: ${e.message.split('\n')[0]}`),
      source,
    );
  const value: unknown = doc.toJS();
  const problems = schemaProblems(HubConfigFile, value);
  if (problems.length > 0) throw new HubConfigError(problems, source);
  const file = value as HubConfigFileValue;
  const baseDir = resolve(options.baseDir);
  const readText = (path: string, key: string): string | null => {
    try {
      return readFileSync(resolve(baseDir, path), 'utf8');
    } catch (err) {
      problems.push(
        `${key}: cannot read ${path} (${err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err)})`,
      );
      return null;
    }
  };

  // The control plane.
  let url: URL | null = null;
  try {
    url = new URL(file.controlPlane.url);
  } catch {
    problems.push('controlPlane.url: not a URL (e.g. mqtts://threshold.example.com:8883)');
  }
  if (url !== null && url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:')
    problems.push('controlPlane.url: must start with mqtt:// or mqtts://');
  if (url !== null && url.pathname !== '' && url.pathname !== '/')
    problems.push('controlPlane.url: the broker address only, without a path');
  let ca: string | null = null;
  if (file.controlPlane.ca !== undefined) {
    if (url !== null && url.protocol !== 'mqtts:')
      problems.push('controlPlane.ca: only for an mqtts:// URL');
    const pem = readText(file.controlPlane.ca, 'controlPlane.ca');
    if (pem !== null && !pem.includes('-----BEGIN CERTIFICATE-----'))
      problems.push(`controlPlane.ca: ${file.controlPlane.ca} holds no PEM certificate`);
    ca = pem;
  }
  const grantKey = readGrantKey(file.controlPlane, readText, problems);
  const warnings: string[] = [];
  if (grantKey === null)
    warnings.push(
      "controlPlane.grantKey: not set, so the hub cannot check the control plane's grant list " +
        'and refuses every courier unlock (guests and the household are not affected). ' +
        "Give it the control plane's <data>/keys/grants-ed25519.pub as grantKey or grantKeyFile.",
    );

  // Devices.
  const devices: HubDeviceConfig[] = [];
  const kinds = new Map<string, HubDeviceKind>();
  file.devices.forEach((d, i) => {
    const at = `devices[${i}]`;
    if (kinds.has(d.id)) problems.push(`${at}.id: "${d.id}" is used twice`);
    kinds.set(d.id, d.kind);
    let key: Uint8Array | string | null = null;
    if ((d.secret === undefined) === (d.secretFile === undefined)) {
      problems.push(`${at}: give the device key as secret or as secretFile (one of them)`);
    } else if (d.secret !== undefined) {
      key = readKey(d.secret, `${at}.secret`);
    } else {
      const text = readText(d.secretFile!, `${at}.secretFile`);
      if (text !== null) key = readKey(text, `${at}.secretFile`);
    }
    if (typeof key === 'string') problems.push(key);
    const factory = drivers.get(d.driver);
    const options = d.options ?? {};
    if (factory === undefined) {
      problems.push(
        `${at}.driver: no driver "${d.driver}" in this build (there is ${[...drivers.keys()].map((n) => `"${n}"`).join(', ')})`,
      );
    } else if (!factory.kinds.includes(d.kind)) {
      problems.push(`${at}.driver: "${d.driver}" cannot bridge a ${d.kind}`);
    } else {
      problems.push(...schemaProblems(factory.optionsSchema(d.kind), options, `${at}.options`));
    }
    if (key instanceof Uint8Array)
      devices.push({ id: d.id, kind: d.kind, key, driver: d.driver, options });
  });

  // Doors.
  const doors: HubDoorConfig[] = [];
  const doorIds = new Set<string>();
  const inDoor = new Map<string, string>();
  (file.doors ?? []).forEach((door, i) => {
    const at = `doors[${i}]`;
    if (doorIds.has(door.id)) problems.push(`${at}.id: "${door.id}" is used twice`);
    doorIds.add(door.id);
    const refs: [string, string | undefined, HubDeviceKind][] = [
      ['lock', door.lock, 'lock'],
      ['doorSensor', door.doorSensor, 'door-sensor'],
      ['camera', door.camera, 'camera'],
    ];
    for (const [field, id, kind] of refs) {
      if (id === undefined) continue;
      const actual = kinds.get(id);
      if (actual === undefined) problems.push(`${at}.${field}: no device "${id}" in devices`);
      else if (actual !== kind)
        problems.push(`${at}.${field}: "${id}" is a ${actual}, not a ${kind}`);
      const other = inDoor.get(id);
      if (other !== undefined)
        problems.push(`${at}.${field}: "${id}" is already in door "${other}"`);
      inDoor.set(id, door.id);
    }
    doors.push({
      id: door.id,
      name: door.name ?? door.id,
      lock: door.lock,
      doorSensor: door.doorSensor ?? null,
      camera: door.camera ?? null,
      relockMs: door.relockMs === undefined ? HUB_DEFAULTS.relockMs : door.relockMs,
    });
  });

  const deadManMs = file.deadManMs ?? HUB_DEFAULTS.deadManMs;
  const heartbeatIntervalMs = file.heartbeatIntervalMs ?? HUB_DEFAULTS.heartbeatIntervalMs;
  // Two heartbeats must fit in the silence the dead-man's switch allows, or it trips at rest.
  if (2 * heartbeatIntervalMs > deadManMs)
    problems.push(
      `heartbeatIntervalMs: ${heartbeatIntervalMs} ms leaves no room in deadManMs ${deadManMs} ms (at most half of it)`,
    );

  const homeAssistant =
    file.homeAssistant === undefined
      ? null
      : readHomeAssistant(file.homeAssistant, readText, problems);

  if (problems.length > 0) throw new HubConfigError(problems, source);
  return {
    controlPlane: { url: file.controlPlane.url, ca, grantKey },
    homeId: file.homeId,
    dataDir: resolve(baseDir, file.dataDir ?? 'hub-data'),
    deadManMs,
    freezeMs: file.freezeMs ?? HUB_DEFAULTS.freezeMs,
    cutOffMs: file.cutOffMs ?? HUB_DEFAULTS.cutOffMs,
    heartbeatIntervalMs,
    devices,
    doors,
    grants: { maxAgeMs: file.grants?.maxAgeMs ?? HUB_DEFAULTS.grantsMaxAgeMs },
    homeAssistant,
    configDir: baseDir,
    warnings,
  };
}

/** `controlPlane.grantKey` or `grantKeyFile`, checked; null when neither is given. */
function readGrantKey(
  cp: HubConfigFileValue['controlPlane'],
  readText: (path: string, key: string) => string | null,
  problems: string[],
): string | null {
  if (cp.grantKey !== undefined && cp.grantKeyFile !== undefined) {
    problems.push('controlPlane: give the grant key as grantKey or as grantKeyFile, not both');
    return null;
  }
  let key: string;
  let at: string;
  if (cp.grantKey !== undefined) {
    key = cp.grantKey.trim();
    at = 'controlPlane.grantKey';
  } else if (cp.grantKeyFile !== undefined) {
    const text = readText(cp.grantKeyFile, 'controlPlane.grantKeyFile');
    if (text === null) return null;
    // The server writes the file with a final newline.
    key = text.trim();
    at = 'controlPlane.grantKeyFile';
  } else {
    return null;
  }
  if (!isGrantListKey(key)) {
    problems.push(
      `${at}: a grant key is 43 characters of base64url (the control plane's <data>/keys/grants-ed25519.pub)`,
    );
    return null;
  }
  return key;
}

/** An MQTT topic root: not empty, no wildcard, no NUL, no `/` at either end. */
function topicRootProblem(value: string): string | null {
  if (/[+#]/.test(value) || value.includes('\u0000'))
    return 'must not contain +, # or NUL (it is a topic, not a filter)';
  if (value.startsWith('/') || value.endsWith('/')) return 'must not start or end with /';
  return null;
}

/** The `homeAssistant` block, checked; problems go to `problems`. */
function readHomeAssistant(
  ha: NonNullable<HubConfigFileValue['homeAssistant']>,
  readText: (path: string, key: string) => string | null,
  problems: string[],
): HubHomeAssistantConfig {
  let url: URL | null = null;
  try {
    url = new URL(ha.broker);
  } catch {
    problems.push('homeAssistant.broker: not a URL (e.g. mqtt://homeassistant.local:1883)');
  }
  if (url !== null && url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:')
    problems.push('homeAssistant.broker: must start with mqtt:// or mqtts://');
  if (url !== null && url.pathname !== '' && url.pathname !== '/')
    problems.push('homeAssistant.broker: the broker address only, without a path');
  // Credentials belong in their own keys, where they can be kept in a file; a URL with them
  // would also put the password in every log line that names the broker.
  if (url !== null && (url.username !== '' || url.password !== ''))
    problems.push(
      'homeAssistant.broker: give the account as username and password, not in the URL',
    );
  let password: string | null = null;
  if (ha.password !== undefined && ha.passwordFile !== undefined) {
    problems.push('homeAssistant: give the password as password or as passwordFile, not both');
  } else if (ha.password !== undefined) {
    password = ha.password;
  } else if (ha.passwordFile !== undefined) {
    const text = readText(ha.passwordFile, 'homeAssistant.passwordFile');
    // A file written by `echo` ends in a newline that is not part of the password.
    if (text !== null) password = text.replace(/\r?\n$/, '');
  }
  // MQTT 3.1.1 (3.1.2.9) allows a password only together with a user name.
  if ((ha.password !== undefined || ha.passwordFile !== undefined) && ha.username === undefined)
    problems.push('homeAssistant.username: missing (MQTT sends a password only with a user name)');
  for (const key of ['discoveryPrefix', 'baseTopic'] as const) {
    const value = ha[key];
    const problem = value === undefined ? null : topicRootProblem(value);
    if (problem !== null) problems.push(`homeAssistant.${key}: ${problem}`);
  }
  return {
    broker: ha.broker,
    username: ha.username ?? null,
    password,
    discoveryPrefix: ha.discoveryPrefix ?? 'homeassistant',
    baseTopic: ha.baseTopic ?? null,
    lockCommands: ha.lockCommands ?? false,
  };
}

/** Reads the config file at `path`; throws {@link HubConfigError} listing every problem. */
export function loadHubConfig(path: string, drivers: DriverRegistry = DRIVERS): HubConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new HubConfigError(
      [
        `cannot read it (${err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err)})`,
      ],
      path,
    );
  }
  return parseHubConfig(text, { baseDir: dirname(resolve(path)), source: path, drivers });
}

/**
 * Device credentials and the per-device ACL on an external mosquitto, through its dynamic
 * security plugin (mosquitto 2.0+): the same rules the embedded broker applies (broker-acl.ts),
 * written by Threshold as the broker's clients and roles, so an operator never edits an ACL
 * by hand and a device added in the app can connect at once.
 *
 * Threshold connects with the plugin's admin account and sends commands on
 * `$CONTROL/dynamic-security/v1`. It makes:
 *
 * - the default access: deny publishing, receiving and subscribing to anyone not granted;
 * - a role `threshold-server` (subscribe to and read every device's up channels, write
 *   commands and grant lists; never read them) and the client of the server's own credentials
 *   with it;
 * - per device, a role `threshold-device-<id>` (publish on its own up channels, subscribe to
 *   its own command topic and, for locks, its grants topic) and a client `<id>` whose client
 *   id must be `<id>` (so one device cannot take over another's session), with the password
 *   derived from the master key.
 *
 * A start reads every client and role once and writes only what differs
 * ({@link MosquittoDynsec.ensureDevices}); each client's text description holds a fingerprint
 * of the password it was given, so a changed key is rewritten and an unchanged one is not
 * (rewriting a password also disconnects the device).
 *
 * What an ACL cannot say is checked elsewhere: mosquitto cannot refuse a retained message on
 * an allowed topic, so a device's retained event or heartbeat is stored by the broker (the
 * server ignores the retain flag, and commands are signed, single-use and expire).
 */
import { createHash, randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { deriveDeviceKey, mqttPassword } from '../protocol/device-auth.ts';
import {
  DOWN_CHANNELS,
  SERVER_SUBSCRIPTIONS,
  TOPIC_ROOT,
  UP_CHANNELS,
  deviceTopic,
} from '../protocol/topics.ts';
import { SERVER_USERNAME } from './server-credentials.ts';

const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;
/** The role every server replica's client has. */
export const SERVER_ROLE = 'threshold-server';
const DEVICE_ROLE_PREFIX = 'threshold-device-';
const COMMAND_TIMEOUT_MS = 10_000;

/** A device as the broker must know it. */
export interface BrokerDevice {
  readonly id: string;
  readonly homeId: string;
  readonly kind: 'lock' | 'door-sensor' | 'camera';
}

/** One ACL entry of the plugin's format. */
export interface DynsecAcl {
  readonly acltype:
    | 'publishClientSend'
    | 'publishClientReceive'
    | 'subscribeLiteral'
    | 'subscribePattern'
    | 'unsubscribeLiteral'
    | 'unsubscribePattern';
  readonly topic: string;
  readonly allow: boolean;
  readonly priority?: number;
}

/**
 * The ACL of the server's role: what the server's own link does and nothing more. It
 * subscribes to exactly the up-channel filters it uses ({@link SERVER_SUBSCRIPTIONS}) and
 * receives the devices' up channels; it publishes commands and grant lists. It may not read
 * commands or grant lists: whoever holds the server's password learns no command from the
 * broker. (Tests that watch every topic use an observer account of their own.)
 */
export function serverAcls(): DynsecAcl[] {
  return [
    ...SERVER_SUBSCRIPTIONS.flatMap((topic) => [
      { acltype: 'subscribeLiteral' as const, topic, allow: true },
      { acltype: 'publishClientReceive' as const, topic, allow: true },
    ]),
    ...DOWN_CHANNELS.map((channel) => ({
      acltype: 'publishClientSend' as const,
      topic: `${TOPIC_ROOT}/+/+/${channel}`,
      allow: true,
    })),
  ];
}

/** The ACL of one device's role: its own topics, nothing else. */
export function deviceAcls(device: BrokerDevice): DynsecAcl[] {
  const acls: DynsecAcl[] = UP_CHANNELS.map((channel) => ({
    acltype: 'publishClientSend' as const,
    topic: deviceTopic(device.homeId, device.id, channel),
    allow: true,
  }));
  const down = device.kind === 'lock' ? (['command', 'grants'] as const) : (['command'] as const);
  for (const channel of down) {
    const topic = deviceTopic(device.homeId, device.id, channel);
    acls.push({ acltype: 'subscribeLiteral', topic, allow: true });
    acls.push({ acltype: 'publishClientReceive', topic, allow: true });
  }
  return acls;
}

/** A dynamic security command, as sent (without its correlation data). */
type Command = { readonly command: string } & Record<string, unknown>;

/** Changes {@link MosquittoDynsec.ensureDevices} sends to a message at most. */
const BATCH_SIZE = 50;

/** A role as the plugin lists it. */
interface RoleState {
  readonly rolename: string;
  readonly acls?: readonly DynsecAcl[];
}

/** A client as the plugin lists it. */
interface ClientState {
  readonly username: string;
  readonly clientid?: string;
  readonly textdescription?: string;
  readonly disabled?: boolean;
  readonly roles?: readonly { readonly rolename: string }[];
}

/** An account Threshold keeps on the broker: a client with one role of its own. */
interface Account {
  readonly username: string;
  readonly password: string;
  /** The client id the client must connect with; any when undefined. */
  readonly clientid?: string;
  readonly rolename: string;
  readonly acls: readonly DynsecAcl[];
}

/** What {@link MosquittoDynsec.ensureDevices} wrote: devices whose account changed, accounts disabled. */
export interface DeviceSync {
  readonly written: number;
  readonly disabled: number;
}

/**
 * What the client's `textdescription` holds to say which password it was given: the plugin
 * keeps only a salted hash of the password and never lists it, so without this a start could
 * not tell a changed key from an unchanged one without rewriting every password. A hash of a
 * derived, high-entropy password reveals nothing usable.
 */
export function passwordFingerprint(password: string): string {
  const digest = createHash('sha256')
    .update(`threshold/mosquitto-password-fingerprint\0${password}`)
    .digest('hex');
  return `threshold password ${digest.slice(0, 32)}`;
}

/** An ACL entry as compared: type, topic and verdict (the plugin adds a priority of 0). */
function aclKey(a: DynsecAcl): string {
  return `${a.acltype} ${a.topic} ${String(a.allow)}`;
}

/**
 * The commands that make the broker's role and client (as looked up; undefined: missing)
 * those of `account`, in order; none when they already are.
 */
function accountChanges(
  account: Account,
  role: RoleState | undefined,
  client: ClientState | undefined,
): Command[] {
  const changes: Command[] = [];
  const { rolename } = account;
  if (role === undefined) {
    changes.push({ command: 'createRole', rolename, acls: account.acls });
  } else {
    const have = (role.acls ?? []).map(aclKey).sort().join('\n');
    const want = account.acls.map(aclKey).sort().join('\n');
    if (have !== want) {
      for (const a of role.acls ?? []) {
        changes.push({ command: 'removeRoleACL', rolename, acltype: a.acltype, topic: a.topic });
      }
      for (const a of account.acls) changes.push({ command: 'addRoleACL', rolename, ...a });
    }
  }
  const { username, password, clientid } = account;
  const fingerprint = passwordFingerprint(password);
  if (client === undefined) {
    changes.push({
      command: 'createClient',
      username,
      password,
      ...(clientid === undefined ? {} : { clientid }),
      textdescription: fingerprint,
      roles: [{ rolename }],
    });
    return changes;
  }
  if (client.textdescription !== fingerprint) {
    changes.push({ command: 'setClientPassword', username, password });
    changes.push({ command: 'modifyClient', username, textdescription: fingerprint });
  }
  if (clientid !== undefined && client.clientid !== clientid) {
    changes.push({ command: 'setClientId', username, clientid });
  }
  if (!(client.roles ?? []).some((r) => r.rolename === rolename)) {
    changes.push({ command: 'addClientRole', username, rolename });
  }
  if (client.disabled === true) changes.push({ command: 'enableClient', username });
  return changes;
}

interface Response {
  readonly command: string;
  readonly error?: string;
  readonly data?: unknown;
  readonly correlationData?: string;
}

/** Options of {@link MosquittoDynsec.connect}. */
export interface MosquittoDynsecOptions {
  /** The broker, `mqtt://` or `mqtts://`. */
  readonly url: string;
  /** The dynamic security plugin's admin account (`mosquitto_ctrl dynsec init`). */
  readonly adminUsername: string;
  readonly adminPassword: string;
  readonly masterKey: Uint8Array;
  /** The server's own MQTT credentials (serverMqttCredentials). */
  readonly server: { readonly username: string; readonly password: string };
  readonly logger?: { info(obj: object, msg: string): void };
}

/** Threshold's writer of mosquitto's clients and roles. */
export class MosquittoDynsec {
  private readonly pending = new Map<string, (r: Response) => void>();

  private constructor(
    private readonly client: MqttClient,
    private readonly opts: MosquittoDynsecOptions,
  ) {
    client.on('message', (topic, payload) => {
      if (topic !== RESPONSE_TOPIC) return;
      let body: { responses?: Response[] };
      try {
        body = JSON.parse(payload.toString('utf8')) as { responses?: Response[] };
      } catch {
        return;
      }
      for (const r of body.responses ?? []) {
        const settle =
          r.correlationData === undefined ? undefined : this.pending.get(r.correlationData);
        if (settle) {
          this.pending.delete(r.correlationData!);
          settle(r);
        }
      }
    });
  }

  /** Connects with the admin account. Rejects with the broker's refusal if it is wrong. */
  static async connect(opts: MosquittoDynsecOptions): Promise<MosquittoDynsec> {
    if (!opts.server.username.startsWith(SERVER_USERNAME)) {
      throw new Error(`the server's MQTT user name must start with '${SERVER_USERNAME}'`);
    }
    const client = await mqtt.connectAsync(opts.url, {
      username: opts.adminUsername,
      password: opts.adminPassword,
      clientId: `threshold-dynsec-${randomUUID()}`,
      clean: true,
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      protocolVersion: 4,
    });
    const granted = await client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 });
    if (granted[0]?.qos === 128) {
      await client.endAsync(true);
      throw new Error(
        `the MQTT account '${opts.adminUsername}' may not use mosquitto's dynamic security plugin (subscription to ${RESPONSE_TOPIC} refused)`,
      );
    }
    return new MosquittoDynsec(client, opts);
  }

  /** Sends one command and resolves with its response (an `error` in it is not thrown). */
  private async send(command: Command): Promise<Response> {
    const [response] = await this.sendBatch([command]);
    return response!;
  }

  /**
   * Sends `commands` in one message (the plugin runs them in order) and resolves with their
   * responses, in the same order; an `error` in one is not thrown.
   */
  private sendBatch(commands: readonly Command[]): Promise<Response[]> {
    if (commands.length === 0) return Promise.resolve([]);
    const ids = commands.map(() => randomUUID());
    const responses: (Response | undefined)[] = commands.map(() => undefined);
    let left = commands.length;
    // A generous bound: the plugin rewrites its whole file after every change, so a batch of
    // changes takes longer than one lookup, more so with many accounts.
    const timeoutMs = COMMAND_TIMEOUT_MS + commands.length * 500;
    return new Promise<Response[]>((resolve, reject) => {
      const forget = (): void => {
        for (const id of ids) this.pending.delete(id);
      };
      const timer = setTimeout(() => {
        forget();
        reject(
          new Error(
            `mosquitto did not answer '${String(commands[0]!.command)}'${commands.length > 1 ? ` (and ${commands.length - 1} more)` : ''} within ${Math.round(timeoutMs / 1000)} s; is the dynamic security plugin loaded?`,
          ),
        );
      }, timeoutMs);
      ids.forEach((id, i) => {
        this.pending.set(id, (r) => {
          responses[i] = r;
          if (--left === 0) {
            clearTimeout(timer);
            resolve(responses as Response[]);
          }
        });
      });
      this.client
        .publishAsync(
          CONTROL_TOPIC,
          JSON.stringify({ commands: commands.map((c, i) => ({ ...c, correlationData: ids[i] })) }),
          { qos: 1 },
        )
        .catch((err: unknown) => {
          clearTimeout(timer);
          forget();
          reject(err instanceof Error ? err : new Error(String(err)));
        });
    });
  }

  /** Sends a command that must succeed, or whose only acceptable error matches `tolerated`. */
  private async must(command: Command, tolerated?: RegExp): Promise<Response> {
    const r = await this.send(command);
    if (r.error !== undefined && !(tolerated?.test(r.error) ?? false)) {
      throw new Error(`mosquitto refused '${String(command.command)}': ${r.error}`);
    }
    return r;
  }

  /**
   * Runs changes that must all succeed, {@link BATCH_SIZE} to a message, one message after
   * the other (a role is made before the client that holds it).
   */
  private async apply(commands: readonly Command[]): Promise<void> {
    for (let i = 0; i < commands.length; i += BATCH_SIZE) {
      const batch = commands.slice(i, i + BATCH_SIZE);
      const responses = await this.sendBatch(batch);
      const refused = responses.findIndex((r) => r.error !== undefined);
      if (refused !== -1) {
        const c = batch[refused]!;
        const who = typeof c.username === 'string' ? c.username : c.rolename;
        throw new Error(
          `mosquitto refused '${String(c.command)}'${typeof who === 'string' ? ` for ${who}` : ''}: ${responses[refused]!.error}`,
        );
      }
    }
  }

  /** The role and client of `account` as the broker has them (undefined: not there). */
  private async lookUp(
    account: Account,
  ): Promise<[RoleState | undefined, ClientState | undefined]> {
    const [role, client] = await this.sendBatch([
      { command: 'getRole', rolename: account.rolename },
      { command: 'getClient', username: account.username },
    ]);
    return [
      role!.error === undefined ? (role!.data as { role: RoleState }).role : undefined,
      client!.error === undefined ? (client!.data as { client: ClientState }).client : undefined,
    ];
  }

  /** Default deny, the server's role and client. Idempotent; run at every start. */
  async ensureServer(): Promise<void> {
    await this.must({
      command: 'setDefaultACLAccess',
      acls: [
        { acltype: 'publishClientSend', allow: false },
        { acltype: 'publishClientReceive', allow: false },
        { acltype: 'subscribe', allow: false },
        { acltype: 'unsubscribe', allow: true },
      ],
    });
    const account: Account = {
      username: this.opts.server.username,
      password: this.opts.server.password,
      rolename: SERVER_ROLE,
      acls: serverAcls(),
    };
    await this.apply(accountChanges(account, ...(await this.lookUp(account))));
  }

  /** A device's role and client (a device added while the server runs). Idempotent. */
  async ensureDevice(device: BrokerDevice): Promise<void> {
    const account = this.deviceAccount(device);
    await this.apply(accountChanges(account, ...(await this.lookUp(account))));
    this.opts.logger?.info({ deviceId: device.id }, 'device account written to mosquitto');
  }

  /**
   * Makes the broker's device accounts those of `devices`, as at a start: reads every client
   * and role once, then writes only what differs (a new device, a changed key or ACL, a
   * disabled account of a device that is back) and disables the account of every device no
   * longer in the list. A start with nothing changed writes nothing, whatever the number of
   * devices. Returns what it wrote.
   *
   * `isGone`, when given, is asked about each account about to be disabled, just before: a
   * device added elsewhere (another replica) after `devices` was read keeps its account.
   */
  async ensureDevices(
    devices: readonly BrokerDevice[],
    isGone?: (deviceId: string) => Promise<boolean>,
  ): Promise<DeviceSync> {
    const [rolesAnswer, clientsAnswer] = await this.sendBatch([
      { command: 'listRoles', verbose: true, count: -1 },
      { command: 'listClients', verbose: true, count: -1 },
    ]);
    for (const r of [rolesAnswer!, clientsAnswer!]) {
      if (r.error !== undefined) throw new Error(`mosquitto refused '${r.command}': ${r.error}`);
    }
    const roles = new Map(
      ((rolesAnswer!.data as { roles?: RoleState[] } | undefined)?.roles ?? []).map((r) => [
        r.rolename,
        r,
      ]),
    );
    const clients = new Map(
      ((clientsAnswer!.data as { clients?: ClientState[] } | undefined)?.clients ?? []).map((c) => [
        c.username,
        c,
      ]),
    );
    const changes: Command[] = [];
    let written = 0;
    const wanted = new Set<string>();
    for (const device of devices) {
      const account = this.deviceAccount(device);
      wanted.add(account.username);
      const more = accountChanges(
        account,
        roles.get(account.rolename),
        clients.get(account.username),
      );
      if (more.length > 0) written++;
      changes.push(...more);
    }
    // A device removed from the store keeps no way in: its account is disabled, not deleted,
    // so a device that comes back is let in again by enabling it.
    let disabled = 0;
    for (const client of clients.values()) {
      const isDevice = (client.roles ?? []).some((r) => r.rolename.startsWith(DEVICE_ROLE_PREFIX));
      if (!isDevice || wanted.has(client.username) || client.disabled === true) continue;
      if (isGone !== undefined && !(await isGone(client.username))) continue;
      changes.push({ command: 'disableClient', username: client.username });
      disabled++;
    }
    await this.apply(changes);
    this.opts.logger?.info(
      { devices: devices.length, written, disabled, commands: changes.length },
      'device accounts written to mosquitto',
    );
    return { written, disabled };
  }

  /** The account a device has on the broker. */
  private deviceAccount(device: BrokerDevice): Account {
    return {
      username: device.id,
      password: mqttPassword(deriveDeviceKey(this.opts.masterKey, device.id)),
      clientid: device.id,
      rolename: `${DEVICE_ROLE_PREFIX}${device.id}`,
      acls: deviceAcls(device),
    };
  }

  /** Disables a device's account: mosquitto disconnects it and refuses it from now on. */
  async disableDevice(deviceId: string): Promise<void> {
    await this.must({ command: 'disableClient', username: deviceId }, /not found/i);
  }

  /** Disconnects the admin connection. */
  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

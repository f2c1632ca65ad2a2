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
 * - a role `threshold-server` (read every device's up channels, write commands and grant
 *   lists) and the client of the server's own credentials with it;
 * - per device, a role `threshold-device-<id>` (publish on its own up channels, subscribe to
 *   its own command topic and, for locks, its grants topic) and a client `<id>` whose client
 *   id must be `<id>` (so one device cannot take over another's session), with the password
 *   derived from the master key.
 *
 * What an ACL cannot say is checked elsewhere: mosquitto cannot refuse a retained message on
 * an allowed topic, so a device's retained event or heartbeat is stored by the broker (the
 * server ignores the retain flag, and commands are signed, single-use and expire).
 */
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { deriveDeviceKey, mqttPassword } from '../protocol/device-auth.ts';
import { TOPIC_ROOT, UP_CHANNELS, deviceTopic } from '../protocol/topics.ts';
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
 * The ACL of the server's role, as the embedded broker's (broker-acl.ts): read anything under
 * the protocol's root (its own link takes the up channels; its observers, commands too), write
 * commands and grant lists.
 */
export function serverAcls(): DynsecAcl[] {
  const everything = `${TOPIC_ROOT}/#`;
  return [
    { acltype: 'subscribePattern', topic: everything, allow: true },
    { acltype: 'publishClientReceive', topic: everything, allow: true },
    ...['command', 'grants'].map((channel) => ({
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
  private send(command: Record<string, unknown>): Promise<Response> {
    const correlationData = randomUUID();
    return new Promise<Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationData);
        reject(
          new Error(
            `mosquitto did not answer '${String(command.command)}' within ${COMMAND_TIMEOUT_MS / 1000} s; is the dynamic security plugin loaded?`,
          ),
        );
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(correlationData, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.client
        .publishAsync(
          CONTROL_TOPIC,
          JSON.stringify({ commands: [{ ...command, correlationData }] }),
          {
            qos: 1,
          },
        )
        .catch((err: unknown) => {
          clearTimeout(timer);
          this.pending.delete(correlationData);
          reject(err instanceof Error ? err : new Error(String(err)));
        });
    });
  }

  /** Sends a command that must succeed, or whose only acceptable error matches `tolerated`. */
  private async must(command: Record<string, unknown>, tolerated?: RegExp): Promise<Response> {
    const r = await this.send(command);
    if (r.error !== undefined && !(tolerated?.test(r.error) ?? false)) {
      throw new Error(`mosquitto refused '${String(command.command)}': ${r.error}`);
    }
    return r;
  }

  /** Makes a role hold exactly `acls` (created, or re-created if it differs). */
  private async ensureRole(rolename: string, acls: DynsecAcl[]): Promise<void> {
    const existing = await this.send({ command: 'getRole', rolename });
    if (existing.error === undefined) {
      const have = (
        (existing.data as { role?: { acls?: DynsecAcl[] } } | undefined)?.role?.acls ?? []
      )
        .map((a) => `${a.acltype} ${a.topic} ${String(a.allow)}`)
        .sort();
      const want = acls.map((a) => `${a.acltype} ${a.topic} ${String(a.allow)}`).sort();
      if (have.join('\n') === want.join('\n')) return;
      for (const a of (existing.data as { role?: { acls?: DynsecAcl[] } }).role?.acls ?? []) {
        await this.must({ command: 'removeRoleACL', rolename, acltype: a.acltype, topic: a.topic });
      }
      for (const a of acls) await this.must({ command: 'addRoleACL', rolename, ...a });
      return;
    }
    await this.must({ command: 'createRole', rolename, acls });
  }

  /** Makes a client exist with `password`, `rolename` and (if given) a fixed client id. */
  private async ensureClient(
    username: string,
    password: string,
    rolename: string,
    clientid: string | undefined,
  ): Promise<void> {
    const created = await this.send({
      command: 'createClient',
      username,
      password,
      ...(clientid === undefined ? {} : { clientid }),
      roles: [{ rolename }],
    });
    if (created.error === undefined) return;
    if (!/exist/i.test(created.error)) {
      throw new Error(`mosquitto refused 'createClient' for ${username}: ${created.error}`);
    }
    await this.must({ command: 'setClientPassword', username, password });
    if (clientid !== undefined) await this.must({ command: 'setClientId', username, clientid });
    const existing = await this.must({ command: 'getClient', username });
    const roles =
      (existing.data as { client?: { roles?: { rolename: string }[] } } | undefined)?.client
        ?.roles ?? [];
    if (!roles.some((r) => r.rolename === rolename)) {
      await this.must({ command: 'addClientRole', username, rolename });
    }
    await this.must({ command: 'enableClient', username });
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
    await this.ensureRole(SERVER_ROLE, serverAcls());
    await this.ensureClient(
      this.opts.server.username,
      this.opts.server.password,
      SERVER_ROLE,
      undefined,
    );
  }

  /** A device's role and client. Idempotent. */
  async ensureDevice(device: BrokerDevice): Promise<void> {
    const rolename = `${DEVICE_ROLE_PREFIX}${device.id}`;
    await this.ensureRole(rolename, deviceAcls(device));
    const password = mqttPassword(deriveDeviceKey(this.opts.masterKey, device.id));
    await this.ensureClient(device.id, password, rolename, device.id);
    this.opts.logger?.info({ deviceId: device.id }, 'device account written to mosquitto');
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

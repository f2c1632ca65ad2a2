/**
 * The floor: a raw MQTT round trip on the world's own embedded broker, with nothing of
 * Threshold's logic in it.
 *
 * Client A connects with the server's credentials and publishes a command-sized payload, QoS 1,
 * on the command topic of a dedicated device, `bench-echo` (provisioned for the bench, so no
 * simulated device is kicked off by a second client with its id). Client B connects as that
 * device (user = client id = device id, password derived from its key, as every device does)
 * and republishes each payload unchanged, QoS 1, on its own `reply` topic, which A subscribes
 * to. The broker's authentication and ACL apply to both, as for real traffic.
 *
 * The server's gateway also receives B's echoes (it subscribes to every device's up topics)
 * and drops them as malformed replies; that costs it a JSON parse per echo and raises its
 * drop counter, which the bench reports.
 *
 * mqtt.js opens its TCP sockets without TCP_NODELAY, as the gateway's and the devices' clients
 * do today. On loopback, a small write that follows another one still unacknowledged then
 * waits for the peer's delayed ACK (about 40 ms on Linux), so with default sockets a round
 * trip mostly measures that timer. The floor is therefore taken with `noDelay` (both client
 * sockets set TCP_NODELAY, as the broker's side already is), and the default-socket variant is
 * reported beside it.
 */
import { randomUUID } from 'node:crypto';
import { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { serverMqttCredentials } from '../src/broker/index.ts';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import type { RunningSystem } from '../src/server/system.ts';

/** How a floor's clients are set up. */
export interface FloorOptions {
  /** The bench's own device, provisioned in the home (never one of the simulated devices). */
  readonly deviceId: string;
  /** Sets TCP_NODELAY on both client sockets. */
  readonly noDelay: boolean;
}
/** About the size of a signed command on the wire, bytes. */
const PAYLOAD_BYTES = 280;
const ECHO_TIMEOUT_MS = 5_000;

export class MqttFloor {
  private readonly pending = new Map<string, (at: number) => void>();
  private seq = 0;

  private constructor(
    private readonly server: MqttClient,
    private readonly device: MqttClient,
    private readonly commandTopic: string,
  ) {}

  /** Provisions the echo device in `homeId` and connects both clients to the system's broker. */
  static async start(sys: RunningSystem, homeId: string, opts: FloorOptions): Promise<MqttFloor> {
    const { deviceId } = opts;
    await sys.provisionDevice({ id: deviceId, homeId, kind: 'camera', name: 'bench echo' });
    const commandTopic = deviceTopic(homeId, deviceId, 'command');
    const replyTopic = deviceTopic(homeId, deviceId, 'reply');
    const common = { clean: true, protocolVersion: 4, reconnectPeriod: 0 } as const;

    const device = await mqtt.connectAsync(sys.brokerUrl, {
      ...common,
      clientId: deviceId,
      username: deviceId,
      password: mqttPassword(deriveDeviceKey(sys.keys.masterKey, deviceId)),
    });
    const creds = serverMqttCredentials(sys.keys.masterKey);
    let server: MqttClient | undefined;
    try {
      await subscribeOrThrow(device, commandTopic);
      device.on('message', (topic, payload) => {
        if (topic === commandTopic) device.publish(replyTopic, payload, { qos: 1 });
      });
      server = await mqtt.connectAsync(sys.brokerUrl, {
        ...common,
        clientId: `${creds.username}-bench-${randomUUID()}`,
        username: creds.username,
        password: creds.password,
      });
      await subscribeOrThrow(server, replyTopic);
      for (const c of [server, device]) {
        if (!(c.stream instanceof Socket)) throw new Error('mqtt.js did not open a TCP socket');
        c.stream.setNoDelay(opts.noDelay);
      }
    } catch (err) {
      await Promise.all([device.endAsync(true), server?.endAsync(true)]);
      throw err;
    }
    const floor = new MqttFloor(server, device, commandTopic);
    server.on('message', (topic, payload) => {
      if (topic !== replyTopic) return;
      const at = performance.now();
      const id = (JSON.parse(payload.toString()) as { id?: string }).id ?? '';
      floor.pending.get(id)?.(at);
    });
    return floor;
  }

  /** One command → echo round trip, ms (performance.now() before publish → echo received). */
  async roundTrip(): Promise<number> {
    const id = `${randomUUID()}-${this.seq++}`;
    const body = { id, pad: '' };
    body.pad = 'x'.repeat(Math.max(0, PAYLOAD_BYTES - JSON.stringify(body).length));
    const payload = JSON.stringify(body);
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<number>((resolve, reject) => {
      this.pending.set(id, resolve);
      timer = setTimeout(() => reject(new Error('no echo within 5 s')), ECHO_TIMEOUT_MS);
    });
    const t0 = performance.now();
    this.server.publish(this.commandTopic, payload, { qos: 1 });
    try {
      return (await echoed) - t0;
    } finally {
      clearTimeout(timer);
      this.pending.delete(id);
    }
  }

  /** `n` sequential round trips, ms each. */
  async roundTrips(n: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(await this.roundTrip());
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.server.endAsync(), this.device.endAsync()]);
  }
}

async function subscribeOrThrow(client: MqttClient, topic: string): Promise<void> {
  const granted = await client.subscribeAsync(topic, { qos: 1 });
  if (granted.some((g) => g.qos === 128)) throw new Error(`subscription to ${topic} refused`);
}

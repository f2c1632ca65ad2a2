/**
 * The server's link to the broker: how device messages reach the device gateway and how its
 * commands reach the devices.
 *
 * The contract that matters is the acknowledgement: a device's QoS 1 message is acknowledged
 * only once `deliver` has resolved, that is once the server has done what must survive a
 * crash (an event's audit entry is committed). A home hub forgets a log entry once it is
 * acknowledged, so an acknowledgement sent before the commit would let a `kill -9` between
 * the two lose it for good.
 *
 * - {@link EmbeddedBroker.serverLink} (embedded-broker.ts) delivers inside the broker's own
 *   publish path, so the broker's PUBACK to the device waits for `deliver`.
 * - {@link mqttBrokerLink} is an MQTT client of an external broker. Its session is
 *   persistent (fixed client id, `clean: false`), and its PUBACK to the broker waits for
 *   `deliver`: what the server had not finished when it died is sent to it again when it
 *   reconnects. The broker acknowledged the device already, and keeps the message for the
 *   server's session (mosquitto: `persistence true` keeps it across a broker restart too).
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { SERVER_SUBSCRIPTIONS } from '../protocol/topics.ts';

/**
 * Hands one device message to the server. Returns a promise when the message's
 * acknowledgement must wait: it resolves once the message is handled as far as must survive a
 * crash, and rejects if that failed, and then the message is not acknowledged. Returns nothing
 * when the message was handled completely during the call (a heartbeat, a state report: nothing
 * of it is waited for), and then it is acknowledged at once, without a promise and a turn of
 * the microtask queue per message. A call that throws is a failure: not acknowledged.
 */
export type DeliverDeviceMessage = (topic: string, payload: Buffer) => Promise<void> | void;

/**
 * Calls `deliver` and reports the outcome through `done`: synchronously when `deliver`
 * returned nothing, once its promise settled otherwise; a synchronous throw is a failure.
 * Both links use it, so both acknowledge by the same rule.
 */
export function deliverThen(
  deliver: DeliverDeviceMessage,
  topic: string,
  payload: Buffer,
  done: (err: Error | null) => void,
): void {
  const failed = (err: unknown): void =>
    done(
      err instanceof Error
        ? err
        : new Error(typeof err === 'string' ? err : 'the server could not take the message'),
    );
  let pending: Promise<void> | void;
  try {
    pending = deliver(topic, payload);
  } catch (err) {
    failed(err);
    return;
  }
  if (pending === undefined) {
    done(null);
    return;
  }
  pending.then(() => done(null), failed);
}

/** The server's side of the broker. */
export interface BrokerLink {
  /**
   * Starts delivering the devices' up channels ({@link SERVER_SUBSCRIPTIONS}) to `deliver`,
   * acknowledging each QoS 1 message only after its `deliver` resolved (or returned nothing,
   * see {@link DeliverDeviceMessage}). Resolves once subscribed.
   */
  start(deliver: DeliverDeviceMessage): Promise<void>;
  /** Publishes at QoS 1; resolves once the broker has taken the message. */
  publish(topic: string, payload: string, options?: { readonly retain?: boolean }): Promise<void>;
  /** Stops delivering and disconnects. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link mqttBrokerLink}. */
export interface MqttBrokerLinkOptions {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  /**
   * The client id, which names the broker-side session that keeps messages for the server
   * while it is away. Must start with the user name (the embedded broker and the generated
   * ACLs require it) and be the same across restarts of one server process slot, and
   * different between replicas.
   */
  readonly clientId: string;
  /**
   * `false` (the default): a persistent session, so messages published while the server is
   * down wait for it. `true` only for tools that must not leave a session behind.
   */
  readonly clean?: boolean;
  /** Extra mqtt.js options (TLS material for `mqtts://`). */
  readonly tls?: Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;
  readonly logger?: { warn(obj: object, msg: string): void };
}

/**
 * A {@link BrokerLink} over an MQTT connection (MQTT 3.1.1, QoS 1). Messages are handed to
 * `deliver` one at a time, in the order the broker sends them, and each PUBACK goes out only
 * after its `deliver` resolved (mqtt.js's `handleMessage`). A `deliver` that rejects leaves
 * its message unacknowledged and drops the connection, so the broker sends it again after the
 * reconnect.
 */
export function mqttBrokerLink(opts: MqttBrokerLinkOptions): BrokerLink {
  let client: MqttClient | null = null;
  /** Counts `stop` calls, so a start that a stop overtook while mqtt.js loaded gives up. */
  let stops = 0;
  return {
    async start(deliver) {
      const stopsAtStart = stops;
      // mqtt.js is loaded here, not with this module: a server on its embedded broker never
      // needs it (about 1 MB of heap and 2 MB resident, measured).
      const { default: mqtt } = await import('mqtt');
      if (stops !== stopsAtStart) throw new Error('broker link stopped while it started');
      const c = mqtt.connect(opts.url, {
        username: opts.username,
        password: opts.password,
        clientId: opts.clientId,
        clean: opts.clean ?? false,
        reconnectPeriod: 1_000,
        connectTimeout: 10_000,
        protocolVersion: 4,
        ...opts.tls,
      });
      client = c;
      // Set before the connection is up: a persistent session's waiting messages arrive right
      // after the CONNACK, and the default handler would acknowledge them unhandled.
      c.handleMessage = (packet, callback) => {
        const payload = Buffer.isBuffer(packet.payload)
          ? packet.payload
          : Buffer.from(packet.payload);
        deliverThen(deliver, packet.topic, payload, (err) => {
          if (err === null) {
            callback();
            return;
          }
          opts.logger?.warn(
            { err: err.message, topic: packet.topic },
            'device message not handled; left unacknowledged for the broker to send again',
          );
          // No PUBACK: the broker keeps the message for this session and sends it again once
          // we are back.
          c.stream.destroy();
        });
      };
      // Commands are small and latency matters: no Nagle delay (it costs ~40 ms per round trip
      // against delayed ACKs). The stream is a new socket after every reconnect.
      const noDelay = (): void => {
        const socket = c.stream as unknown as { setNoDelay?: (on: boolean) => void };
        socket.setNoDelay?.(true);
      };
      c.on('connect', noDelay);
      c.on('error', (err) => opts.logger?.warn({ err: err.message }, 'broker client error'));
      await new Promise<void>((resolve, reject) => {
        const onConnect = (): void => {
          c.off('error', onError);
          resolve();
        };
        const onError = (err: Error): void => {
          c.off('connect', onConnect);
          void c.endAsync(true);
          reject(err);
        };
        c.once('connect', onConnect);
        c.once('error', onError);
      });
      await c.subscribeAsync(
        Object.fromEntries(SERVER_SUBSCRIPTIONS.map((t) => [t, { qos: 1 as const }])),
      );
    },
    async publish(topic, payload, options = {}) {
      if (!client) throw new Error('broker link not started');
      await client.publishAsync(topic, payload, { qos: 1, retain: options.retain ?? false });
    },
    async stop() {
      stops += 1;
      const c = client;
      client = null;
      if (c) await c.endAsync(true);
    },
  };
}

/**
 * A bare MQTT 3.1.1 client for load generation: one TCP socket, packets written by hand, no
 * retries, no queue, no keep-alive. It exists so that one process can hold ten thousand device
 * connections and publish tens of thousands of messages a second without the load generator
 * being what is measured (mqtt.js costs tens of kilobytes and several objects per connection
 * and per message). Only what the benches use: CONNECT (user name, password, clean session),
 * PUBLISH at QoS 0 or 1 (with the broker's PUBACKs counted), SUBSCRIBE at QoS 1, PUBACK for
 * QoS 1 messages received, DISCONNECT.
 */
import { connect, type Socket } from 'node:net';

/** A PUBLISH received. */
export interface RawMessage {
  readonly topic: string;
  readonly payload: Buffer;
}

/** Where to connect and as whom. */
export interface RawConnectOptions {
  readonly port: number;
  readonly host?: string;
  /** Local address to connect from (127.0.0.x spreads connections over more source ports). */
  readonly localAddress?: string;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  /** Gives up after this long without a CONNACK, ms. Default 30 s. */
  readonly timeoutMs?: number;
}

function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

function utf8Field(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function packet(header: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([header]), remainingLength(body.length), body]);
}

/** One connection. Every counter is since it was made. */
export class RawMqttClient {
  /** PUBACKs the broker sent for this client's QoS 1 publishes. */
  acked = 0;
  /** QoS 1 publishes written. */
  sentQos1 = 0;
  /** Whether the socket is open and the broker accepted the CONNECT. */
  up = false;
  /** Why the connection ended, when it ended other than by {@link RawMqttClient.end}. */
  closedBecause: string | null = null;
  private nextId = 1;
  private pending: Buffer | null = null;
  private readonly subacks = new Map<number, (ok: boolean) => void>();
  private ending = false;

  private constructor(
    private readonly socket: Socket,
    private readonly onMessage: ((m: RawMessage) => void) | null,
    private readonly onClose: ((c: RawMqttClient) => void) | null,
  ) {}

  /** Connects and waits for the CONNACK; rejects when refused, closed or timed out. */
  static open(
    opts: RawConnectOptions,
    onMessage: ((m: RawMessage) => void) | null = null,
    onClose: ((c: RawMqttClient) => void) | null = null,
  ): Promise<RawMqttClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        port: opts.port,
        host: opts.host ?? '127.0.0.1',
        ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
        noDelay: true,
      });
      const client = new RawMqttClient(socket, onMessage, onClose);
      let settled = false;
      const timer = setTimeout(
        () => fail(new Error('no CONNACK in time')),
        opts.timeoutMs ?? 30_000,
      );
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      client.connack = (code) => {
        if (settled) return;
        if (code !== 0) {
          fail(new Error(`CONNACK return code ${code}`));
          return;
        }
        settled = true;
        clearTimeout(timer);
        client.up = true;
        resolve(client);
      };
      socket.on('data', (chunk: Buffer) => client.read(chunk));
      socket.on('error', (err) => {
        client.closedBecause ??= err.message;
        fail(err);
      });
      socket.on('close', () => {
        const wasUp = client.up;
        client.up = false;
        for (const done of client.subacks.values()) done(false);
        client.subacks.clear();
        fail(
          new Error(
            `closed before CONNACK${client.closedBecause ? `: ${client.closedBecause}` : ''}`,
          ),
        );
        if (wasUp && !client.ending) {
          client.closedBecause ??= 'closed by the broker';
          client.onClose?.(client);
        }
      });
      socket.once('connect', () => {
        const flags =
          0x02 |
          (opts.username === undefined ? 0 : 0x80) |
          (opts.password === undefined ? 0 : 0x40);
        const body = Buffer.concat([
          utf8Field('MQTT'),
          // Protocol level 4 (3.1.1); keep-alive 0: the benches' connections live minutes and
          // a ping per connection would be load of its own.
          Buffer.from([4, flags, 0, 0]),
          utf8Field(opts.clientId),
          ...(opts.username === undefined ? [] : [utf8Field(opts.username)]),
          ...(opts.password === undefined ? [] : [utf8Field(opts.password)]),
        ]);
        socket.write(packet(0x10, body));
      });
    });
  }

  private connack: (code: number) => void = () => undefined;

  private packetId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xffff ? 1 : id + 1;
    return id;
  }

  /** Publishes `payload` on `topic` (a prebuilt topic field, see {@link topicField}). */
  publish(topicField: Buffer, payload: Buffer | string, qos: 0 | 1, retain = false): boolean {
    if (!this.up) return false;
    const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const len = topicField.length + (qos === 1 ? 2 : 0) + body.length;
    const lenBytes = remainingLength(len);
    const out = Buffer.allocUnsafe(1 + lenBytes.length + len);
    let at = 0;
    out[at++] = 0x30 | (qos << 1) | (retain ? 1 : 0);
    at += lenBytes.copy(out, at);
    at += topicField.copy(out, at);
    if (qos === 1) {
      at = out.writeUInt16BE(this.packetId(), at);
      this.sentQos1 += 1;
    }
    body.copy(out, at);
    this.socket.write(out);
    return true;
  }

  /** Subscribes at QoS 1; resolves whether the broker granted it. */
  subscribe(topic: string): Promise<boolean> {
    if (!this.up) return Promise.resolve(false);
    const id = this.packetId();
    const idBytes = Buffer.alloc(2);
    idBytes.writeUInt16BE(id);
    return new Promise((resolve) => {
      this.subacks.set(id, resolve);
      this.socket.write(packet(0x82, Buffer.concat([idBytes, utf8Field(topic), Buffer.from([1])])));
    });
  }

  /** Sends DISCONNECT (so no will is published) and closes. */
  end(): void {
    this.ending = true;
    if (this.up) this.socket.end(Buffer.from([0xe0, 0]));
    else this.socket.destroy();
    this.up = false;
  }

  /** Cuts the socket without DISCONNECT. */
  destroy(): void {
    this.ending = true;
    this.up = false;
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    let buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    for (;;) {
      if (buf.length < 2) break;
      let len = 0;
      let mult = 1;
      let i = 1;
      let complete = false;
      while (i < buf.length && i <= 4) {
        const b = buf[i++]!;
        len += (b & 0x7f) * mult;
        mult *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || buf.length < i + len) break;
      this.handle(buf[0]!, buf.subarray(i, i + len));
      buf = buf.subarray(i + len);
    }
    if (buf.length > 0) this.pending = Buffer.from(buf);
  }

  private handle(header: number, body: Buffer): void {
    switch (header >> 4) {
      case 2: // CONNACK
        this.connack(body[1] ?? 255);
        return;
      case 4: // PUBACK
        this.acked += 1;
        return;
      case 9: {
        // SUBACK: one return code per topic; 0x80 is a refusal.
        const id = body.readUInt16BE(0);
        const done = this.subacks.get(id);
        this.subacks.delete(id);
        done?.((body[2] ?? 0x80) < 0x80);
        return;
      }
      case 3: {
        const qos = (header >> 1) & 3;
        const topicLen = body.readUInt16BE(0);
        const topic = body.toString('utf8', 2, 2 + topicLen);
        let at = 2 + topicLen;
        if (qos > 0) {
          const id = body.readUInt16BE(at);
          at += 2;
          this.socket.write(Buffer.from([0x40, 2, id >> 8, id & 0xff]));
        }
        this.onMessage?.({ topic, payload: body.subarray(at) });
        return;
      }
      default:
        return;
    }
  }
}

/** A topic as a PUBLISH carries it (length-prefixed UTF-8), to build once and reuse. */
export function topicField(topic: string): Buffer {
  return utf8Field(topic);
}

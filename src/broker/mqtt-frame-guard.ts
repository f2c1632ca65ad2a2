/**
 * A byte-level guard in front of the MQTT parser.
 *
 * mqtt-packet (aedes' parser) has no packet size limit: it buffers whatever remaining length
 * the fixed header announces. A peer announcing a 256 MB packet would make the broker hold
 * 256 MB. The guard reads only the fixed headers as bytes stream past, and closes the
 * connection as soon as a header announces a packet over the limit, before its body is
 * buffered anywhere. The first packet (which must be CONNECT, sent before the peer has
 * authenticated) has a much smaller limit.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/** Why a connection's byte stream was cut. */
export type FrameViolation =
  | { readonly reason: 'oversized'; readonly declaredBytes: number; readonly limitBytes: number }
  | { readonly reason: 'malformed-length' };

/** Packet size limits of one connection, bytes, fixed header included. */
export interface FrameLimits {
  readonly maxPacketBytes: number;
  /** Limit of the first packet (CONNECT), sent before authentication. */
  readonly maxFirstPacketBytes: number;
}

/**
 * Follows MQTT framing (fixed header byte, 1–4 byte remaining length, body) over arbitrary
 * chunks. Pure and synchronous; once it reports a violation it keeps reporting it.
 */
export class MqttFrameScanner {
  private state: 'header' | 'length' | 'body' = 'header';
  private remaining = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private packets = 0;
  private violation: FrameViolation | null = null;

  constructor(private readonly limits: FrameLimits) {}

  /** Scans the next chunk; null when every header so far is within the limits. */
  feed(chunk: Uint8Array): FrameViolation | null {
    if (this.violation) return this.violation;
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'header') {
        i += 1;
        this.state = 'length';
        this.remaining = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
      } else if (this.state === 'length') {
        const byte = chunk[i] as number;
        i += 1;
        this.remaining += (byte & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        this.lengthBytes += 1;
        if ((byte & 0x80) !== 0) {
          // MQTT's remaining length is at most 4 bytes; a fifth is garbage.
          if (this.lengthBytes >= 4) return (this.violation = { reason: 'malformed-length' });
          continue;
        }
        const declaredBytes = 1 + this.lengthBytes + this.remaining;
        const limitBytes =
          this.packets === 0 ? this.limits.maxFirstPacketBytes : this.limits.maxPacketBytes;
        if (declaredBytes > limitBytes) {
          return (this.violation = { reason: 'oversized', declaredBytes, limitBytes });
        }
        this.packets += 1;
        this.state = this.remaining === 0 ? 'header' : 'body';
      } else {
        const take = Math.min(this.remaining, chunk.length - i);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'header';
      }
    }
    return null;
  }
}

/**
 * A TCP connection as aedes sees it: reads pass through a {@link MqttFrameScanner} first;
 * on a violation the socket is destroyed and `onViolation` is called once. Writes go straight
 * to the socket. Destroying either side destroys both.
 */
export class GuardedConnection extends Duplex {
  /** The peer's address, for logs. */
  readonly remoteAddress: string | undefined;
  private readonly socket: Socket;

  constructor(socket: Socket, limits: FrameLimits, onViolation: (v: FrameViolation) => void) {
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress;
    const scanner = new MqttFrameScanner(limits);
    socket.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      const violation = scanner.feed(chunk);
      if (violation) {
        onViolation(violation);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.once('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.once('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(
    chunk: Buffer,
    encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

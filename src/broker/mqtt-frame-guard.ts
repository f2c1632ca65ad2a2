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
import { MqttFramer, type MqttFrameVisitor } from './mqtt-framer.ts';

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
 * Checks the size every packet's fixed header announces, over arbitrary chunks (the framing is
 * {@link MqttFramer}'s). Pure and synchronous; once it reports a violation it keeps reporting it.
 */
export class MqttFrameScanner {
  private readonly framer = new MqttFramer();
  private packets = 0;
  private violation: FrameViolation | null = null;
  private readonly visitor: MqttFrameVisitor = {
    headerComplete: (declaredBytes) => {
      if (this.violation) return;
      const limitBytes =
        this.packets === 0 ? this.limits.maxFirstPacketBytes : this.limits.maxPacketBytes;
      if (declaredBytes > limitBytes) {
        this.violation = { reason: 'oversized', declaredBytes, limitBytes };
        return;
      }
      this.packets += 1;
    },
    malformed: () => {
      this.violation ??= { reason: 'malformed-length' };
    },
  };

  constructor(private readonly limits: FrameLimits) {}

  /** Scans the next chunk; null when every header so far is within the limits. */
  feed(chunk: Uint8Array): FrameViolation | null {
    if (this.violation) return this.violation;
    // The rest of a chunk that broke a limit is walked too, but never forwarded: the
    // connection is cut on the violation returned here.
    this.framer.feed(chunk, this.visitor);
    return this.violation;
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

  /**
   * What was written while the stream was corked, in one write to the socket. aedes's packet
   * writer (mqtt-packet) corks the stream and writes a packet in pieces (a PUBACK in three: its
   * type, its length, its id); passed on one by one, each piece was a system call of its own,
   * and those calls were the largest single cost of a heartbeat on a busy node.
   */
  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    const data = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.socket.write(data, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

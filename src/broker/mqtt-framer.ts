/**
 * MQTT framing, byte by byte: every control packet is a fixed header byte (its type in the high
 * nibble), a remaining length of one to four bytes (seven bits each, least significant first, the
 * high bit saying another byte follows), then that many bytes of body (MQTT 3.1.1 § 2.2, 5.0
 * § 2.1). {@link MqttFramer} follows that over a TCP stream cut into arbitrary chunks, without
 * buffering anything, and says where each packet starts and how big its header says it is.
 *
 * It is the one reading of the framing in Threshold: the broker's frame guard uses it to cut
 * connections that announce oversized packets, and the fault proxy of the test harness to drop
 * whole PUBLISH packets.
 */

/** What {@link MqttFramer.feed} reports while it walks a chunk; every callback is optional. */
export interface MqttFrameVisitor {
  /** A packet starts at `chunk[at]`; `type` is its control packet type (0 to 15). */
  readonly packetStart?: (type: number, at: number) => void;
  /**
   * The packet's remaining length was read whole: it declares `declaredBytes` bytes in all,
   * fixed header included. Its body (if any) follows.
   */
  readonly headerComplete?: (declaredBytes: number) => void;
  /**
   * The stream stopped being MQTT: a remaining length ran past four bytes, the last of which is
   * `chunk[at - 1]`. Called once; the framer reads nothing more of this stream.
   */
  readonly malformed?: (at: number) => void;
}

/** MQTT's remaining length has at most this many bytes. */
const MAX_LENGTH_BYTES = 4;

/**
 * Follows MQTT framing over arbitrary chunks of one byte stream. Pure and synchronous; once the
 * stream turned out not to be MQTT it stays so ({@link malformed}) and later chunks are ignored.
 */
export class MqttFramer {
  private state: 'header' | 'length' | 'body' | 'malformed' = 'header';
  private remaining = 0;
  private multiplier = 1;
  private lengthBytes = 0;

  /** Whether the stream stopped being MQTT (see {@link MqttFrameVisitor.malformed}). */
  get malformed(): boolean {
    return this.state === 'malformed';
  }

  /** Walks the next chunk of the stream, telling `visitor` what it finds, in order. */
  feed(chunk: Uint8Array, visitor: MqttFrameVisitor): void {
    let i = 0;
    while (i < chunk.length && this.state !== 'malformed') {
      if (this.state === 'header') {
        visitor.packetStart?.((chunk[i] as number) >> 4, i);
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
          // A fifth length byte is not MQTT: whatever follows cannot be framed.
          if (this.lengthBytes >= MAX_LENGTH_BYTES) {
            this.state = 'malformed';
            visitor.malformed?.(i);
          }
          continue;
        }
        visitor.headerComplete?.(1 + this.lengthBytes + this.remaining);
        this.state = this.remaining === 0 ? 'header' : 'body';
      } else {
        const take = Math.min(this.remaining, chunk.length - i);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'header';
      }
    }
  }
}

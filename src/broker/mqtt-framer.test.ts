import { describe, expect, it } from 'vitest';
import { MqttFramer } from './mqtt-framer.ts';

/** A packet with a valid remaining length and `remaining` bytes of body. */
function packet(firstByte: number, remaining: number): Uint8Array {
  const length: number[] = [];
  let x = remaining;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    length.push(byte);
  } while (x > 0);
  return Uint8Array.from([firstByte, ...length, ...new Array<number>(remaining).fill(0x30)]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

type Seen = { start: number; type: number } | { declared: number } | { malformedAt: number };

/** Feeds `stream` in chunks of `size`, recording what the framer says at stream offsets. */
function walk(stream: Uint8Array, size: number): { seen: Seen[]; framer: MqttFramer } {
  const framer = new MqttFramer();
  const seen: Seen[] = [];
  for (let offset = 0; offset < stream.length; offset += size) {
    framer.feed(stream.subarray(offset, offset + size), {
      packetStart: (type, at) => seen.push({ start: offset + at, type }),
      headerComplete: (declared) => seen.push({ declared }),
      malformed: (at) => seen.push({ malformedAt: offset + at }),
    });
  }
  return { seen, framer };
}

describe('MqttFramer', () => {
  it('finds every packet and its declared size, however the stream is chunked', () => {
    // CONNECT (2 + 10), PUBLISH with a two-byte length (3 + 200), PINGREQ (2 + 0), PUBLISH.
    const stream = concat(packet(0x10, 10), packet(0x32, 200), packet(0xc0, 0), packet(0x30, 5));
    const expected: Seen[] = [
      { start: 0, type: 1 },
      { declared: 12 },
      { start: 12, type: 3 },
      { declared: 203 },
      { start: 215, type: 12 },
      { declared: 2 },
      { start: 217, type: 3 },
      { declared: 7 },
    ];
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const { seen, framer } = walk(stream, size);
      expect(seen, `chunks of ${size}`).toEqual(expected);
      expect(framer.malformed).toBe(false);
    }
  });

  it('reads the largest remaining length MQTT allows (four bytes)', () => {
    const { seen } = walk(Uint8Array.from([0x30, 0xff, 0xff, 0xff, 0x7f]), 5);
    expect(seen).toEqual([{ start: 0, type: 3 }, { declared: 1 + 4 + 268_435_455 }]);
  });

  it('calls a remaining length longer than four bytes malformed, once, and reads no further', () => {
    const stream = concat(
      packet(0xc0, 0),
      Uint8Array.from([0x30, 0x80, 0x80, 0x80, 0x80]),
      packet(0x10, 1),
    );
    for (const size of [1, 4, stream.length]) {
      const { seen, framer } = walk(stream, size);
      expect(seen, `chunks of ${size}`).toEqual([
        { start: 0, type: 12 },
        { declared: 2 },
        { start: 2, type: 3 },
        // Just after the fourth length byte, which still said "more follows".
        { malformedAt: 7 },
      ]);
      expect(framer.malformed).toBe(true);
    }
  });
});

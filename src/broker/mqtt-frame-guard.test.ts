import { describe, expect, it } from 'vitest';
import { MqttFrameScanner } from './mqtt-frame-guard.ts';

const LIMITS = { maxPacketBytes: 1000, maxFirstPacketBytes: 100 };

/** A packet of `total` bytes (header included) with a valid remaining length. */
function packet(firstByte: number, remaining: number): Uint8Array {
  const length: number[] = [];
  let x = remaining;
  do {
    let byte = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) byte |= 0x80;
    length.push(byte);
  } while (x > 0);
  return Uint8Array.from([firstByte, ...length, ...new Array<number>(remaining).fill(0x61)]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

describe('MqttFrameScanner', () => {
  it('accepts packets within the limits, however the stream is chunked', () => {
    const stream = concat(packet(0x10, 97), packet(0x30, 996), packet(0xc0, 0), packet(0x30, 200));
    for (const chunkSize of [1, 2, 3, 7, 64, stream.length]) {
      const scanner = new MqttFrameScanner(LIMITS);
      for (let i = 0; i < stream.length; i += chunkSize) {
        expect(scanner.feed(stream.subarray(i, i + chunkSize))).toBeNull();
      }
    }
  });

  it('cuts a first packet over the CONNECT limit as soon as its length is known', () => {
    const scanner = new MqttFrameScanner(LIMITS);
    expect(scanner.feed(Uint8Array.from([0x10]))).toBeNull();
    expect(scanner.feed(Uint8Array.from([99]))).toEqual({
      reason: 'oversized',
      declaredBytes: 1 + 1 + 99,
      limitBytes: 100,
    });
    // Once cut, always cut.
    expect(scanner.feed(packet(0xc0, 0))).toMatchObject({ reason: 'oversized' });
  });

  it('cuts a later packet over the packet limit, split across chunks', () => {
    const scanner = new MqttFrameScanner(LIMITS);
    expect(scanner.feed(packet(0x10, 10))).toBeNull();
    const big = packet(0x30, 998); // 1 + 2 + 998 = 1001 bytes
    expect(scanner.feed(big.subarray(0, 2))).toBeNull();
    expect(scanner.feed(big.subarray(2, 3))).toEqual({
      reason: 'oversized',
      declaredBytes: 1001,
      limitBytes: 1000,
    });
  });

  it('reports a remaining length longer than four bytes as malformed', () => {
    const scanner = new MqttFrameScanner({ maxPacketBytes: 2 ** 30, maxFirstPacketBytes: 2 ** 30 });
    expect(scanner.feed(Uint8Array.from([0x10, 0xff, 0xff, 0xff, 0xff]))).toEqual({
      reason: 'malformed-length',
    });
  });
});

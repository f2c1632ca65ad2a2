import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { GuardedConnection, MqttFrameScanner } from './mqtt-frame-guard.ts';

/** The packet writer aedes writes with: its own copy of mqtt-packet. */
const mqttPacket = createRequire(import.meta.resolve('aedes'))('mqtt-packet') as {
  writeToStream(packet: object, stream: NodeJS.WritableStream): boolean;
};

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

describe('GuardedConnection', () => {
  it('writes a packet that was written in pieces while corked to its socket at once, bytes in order', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    const peer = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    peer.on('data', (b: Buffer) => received.push(b));
    const socket = await accepted;
    const writes: number[] = [];
    const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
    socket.write = (...a: unknown[]) => {
      writes.push((a[0] as Buffer).length);
      return write(...a);
    };
    const conn = new GuardedConnection(socket, LIMITS, () => undefined);
    try {
      // As aedes's packet writer sends a PUBACK of packet id 0x1234: three pieces, corked.
      mqttPacket.writeToStream({ cmd: 'puback', messageId: 0x1234 }, conn);
      await new Promise((r) => setImmediate(r));
      expect(writes).toEqual([4]);
      // And one piece on its own goes as it is.
      conn.write(Buffer.from([0xd0, 0x00]));
      const want = Buffer.from([0x40, 0x02, 0x12, 0x34, 0xd0, 0x00]);
      const deadline = Date.now() + 5_000;
      while (Buffer.concat(received).length < want.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
      expect(Buffer.concat(received)).toEqual(want);
      expect(writes).toEqual([4, 2]);
    } finally {
      conn.destroy();
      peer.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

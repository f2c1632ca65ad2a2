/**
 * The production clock against a real event loop: a deadline that falls due while the loop is
 * held up runs only after the I/O that arrived during the stall has been read, and a cancel
 * still stops it at every point.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from './system-clock.ts';

/** Holds the event loop, as a long GC or a big synchronous job does. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // Busy: nothing else runs.
  }
}

const open: { server: Server; sockets: Socket[] }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    for (const s of o.sockets) s.destroy();
    await new Promise<void>((resolve) => o.server.close(() => resolve()));
  }
});

/**
 * A loopback server and a client connected to it; `log` records each chunk the server reads.
 * Returns the client's socket and the server's side of the connection.
 */
async function loopback(log: string[]): Promise<{ client: Socket; accepted: Socket }> {
  const sockets: Socket[] = [];
  let accepted: Socket | undefined;
  const server = createServer((s) => {
    accepted = s;
    sockets.push(s);
    s.on('data', (chunk) => log.push(`data:${chunk.toString()}`));
  });
  open.push({ server, sockets });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = connect(port, '127.0.0.1');
  sockets.push(client);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  // Until the server has its side of the connection, data could not be read anyway.
  while (accepted === undefined) await new Promise((r) => setImmediate(r));
  return { client, accepted };
}

const waitFor = async (pred: () => boolean): Promise<void> => {
  const end = Date.now() + 5_000;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('systemClock.schedule', () => {
  it('runs a deadline that fell due during a stall after the data that arrived in time', async () => {
    const log: string[] = [];
    const { client } = await loopback(log);
    systemClock.schedule(Date.now() + 10, () => log.push('deadline'));
    // The heartbeat is sent before the deadline; the loop then stalls past both.
    client.write('heartbeat');
    stall(100);
    await waitFor(() => log.includes('deadline'));
    await waitFor(() => log.some((e) => e.startsWith('data:')));
    expect(log[0]).toBe('data:heartbeat');
    expect(log.indexOf('deadline')).toBeGreaterThan(0);
  });

  it('runs a deadline at its time, not before', async () => {
    const at = Date.now() + 30;
    let ranAt = 0;
    systemClock.schedule(at, () => (ranAt = Date.now()));
    await waitFor(() => ranAt !== 0);
    // Node's timers run on a monotonic millisecond clock, the deadline on the wall clock: the
    // two may disagree by a millisecond, never by the delay.
    expect(ranAt).toBeGreaterThanOrEqual(at - 1);
  });

  it('runs a deadline already past on the next turn', async () => {
    let ran = false;
    systemClock.schedule(Date.now() - 1_000, () => (ran = true));
    expect(ran).toBe(false);
    await waitFor(() => ran);
  });

  it('a cancel before the timer fires stops the call', async () => {
    let ran = false;
    const cancel = systemClock.schedule(Date.now() + 10, () => (ran = true));
    cancel();
    cancel(); // twice is harmless
    await new Promise((r) => setTimeout(r, 60));
    expect(ran).toBe(false);
  });

  it('a cancel between the timer firing and the call stops the call', async () => {
    const log: string[] = [];
    const { client, accepted } = await loopback(log);
    let ran = false;
    const cancel = systemClock.schedule(Date.now() + 10, () => (ran = true));
    // After the stall the timer fires first (timers phase), then the data is read (poll
    // phase) and cancels, before the call would run (check phase).
    client.write('cancel');
    accepted.once('data', () => cancel());
    stall(100);
    await waitFor(() => log.includes('data:cancel'));
    await new Promise((r) => setTimeout(r, 50));
    expect(ran).toBe(false);
  });
});

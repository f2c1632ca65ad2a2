import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { silentLogger } from '../devices/device-connection.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
import { MemoryLock } from './drivers/memory.ts';
import { PinBook } from './pin-book.ts';

const KEY = new Uint8Array(32).fill(3);
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pin-book-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function setup(clock = new FakeClock(), lock?: MemoryLock) {
  const l = lock ?? new MemoryLock({ id: 'lock-1', clock, pinCapacity: 10 });
  await l.start();
  const book = new PinBook({
    pins: l.pins!,
    deviceKey: KEY,
    clock,
    statePath: join(dir, 'pins.json'),
    logger: silentLogger,
    retryMs: 1_000,
  });
  book.start();
  return { clock, lock: l, book };
}

describe('PinBook', () => {
  it('keeps digests and windows on disk, never a code', async () => {
    const { clock, book } = await setup();
    await book.set(2, '2468', 'Cleaner', { fromMs: 0, untilMs: clock.now() + 60_000 });
    const file = readFileSync(join(dir, 'pins.json'), 'utf8');
    expect(file).not.toContain('2468');
    expect(file).toContain(pinDigest(KEY, 2, '2468'));
  });

  it('after a restart, lists what it wrote and still closes windows on time', async () => {
    const first = await setup();
    const until = first.clock.now() + 60_000;
    await first.book.set(2, '2468', null, { fromMs: 0, untilMs: until });
    await first.book.set(3, '1357', null, { fromMs: until, untilMs: until + 60_000 });
    first.book.stop();

    // A new hub process: same lock, same state file, no codes in memory.
    const { clock, lock, book } = await setup(first.clock, first.lock);
    const list = await book.list(1);
    expect(list.slots).toEqual([
      { slot: 2, set: true, digest: pinDigest(KEY, 2, '2468'), fromMs: 0, untilMs: until },
      {
        slot: 3,
        set: true,
        digest: pinDigest(KEY, 3, '1357'),
        fromMs: until,
        untilMs: until + 60_000,
      },
    ]);
    clock.advanceTo(until);
    await Promise.resolve();
    await Promise.resolve();
    expect(lock.pins!.codeIn(2)).toBeUndefined();
    // Slot 3's window opened, but the code is gone with the old process: listed as missing.
    expect((await book.list(1)).slots.map((s) => s.slot)).toEqual([2]);
    await expect(book.setWindow(3, null)).rejects.toMatchObject({ code: 'command.failed' });
  });

  it('refuses bad slots, and a window for an empty slot', async () => {
    const { book } = await setup();
    await expect(book.set(11, '1111', null, null)).rejects.toMatchObject({
      code: 'command.invalid',
    });
    await expect(book.setWindow(4, null)).rejects.toMatchObject({ code: 'command.invalid' });
    await expect(book.clear(0)).rejects.toMatchObject({ code: 'command.invalid' });
  });
});

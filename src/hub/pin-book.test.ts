import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { silentLogger } from '../devices/device-connection.ts';
import type { ListedPinMessage } from '../protocol/grant-list.ts';
import { pinDigest } from '../protocol/pin-digest.ts';
import { payloadOf, testGrantSigner } from '../../test/grant-lists.ts';
import type { PinDriver } from './drivers/driver.ts';
import { MemoryLock } from './drivers/memory.ts';
import { GrantBook } from './grant-book.ts';
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

const HOUR = 60 * 60_000;

/** Lets the book's changes (promises) run after a timer or a list. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A PinBook with the lock's grant list, and a signer that publishes lists to it. */
async function withGrants(wrap: (inner: PinDriver) => PinDriver = (inner) => inner) {
  const clock = new FakeClock();
  const lock = new MemoryLock({ id: 'lock-1', clock, pinCapacity: 10 });
  await lock.start();
  const signer = testGrantSigner({ homeId: 'home-1', lockId: 'lock-1' });
  const grants = new GrantBook({
    homeId: 'home-1',
    lockId: 'lock-1',
    publicKey: signer.publicKey,
    maxAgeMs: 900_000,
    clock,
    statePath: null,
    logger: silentLogger,
  });
  const book = new PinBook({
    pins: wrap(lock.pins!),
    deviceKey: KEY,
    clock,
    statePath: join(dir, 'pins.json'),
    logger: silentLogger,
    retryMs: 1_000,
    grants,
  });
  book.start();
  const t0 = clock.now();
  let version = 0;
  /** Publishes a list with these slots, issued now, whose horizon is `horizonMs`. */
  const publish = (pins: ListedPinMessage[], horizonMs = t0 + 10 * HOUR) => {
    version += 1;
    expect(
      grants.take(payloadOf(signer.list({ version, issuedAtMs: clock.now(), horizonMs, pins }))),
    ).toMatchObject({ taken: true });
  };
  const guestSlot = (code: string, windows: ListedPinMessage['windows'], slot = 2) => ({
    slot,
    digest: pinDigest(KEY, slot, code),
    holder: 'guest' as const,
    principalId: 'guest-1',
    windows,
  });
  const at = async (ms: number) => {
    clock.advanceTo(t0 + ms);
    await settle();
    return lock.pins!.codeIn(2);
  };
  return { clock, lock, book, t0, publish, guestSlot, at };
}

describe('PinBook with the grant list', () => {
  it("keeps a guest's code opening in its listed windows past the command's 1 h window", async () => {
    const { book, t0, publish, guestSlot, at } = await withGrants();
    publish([guestSlot('2468', [{ fromMs: t0 + 2 * HOUR, untilMs: t0 + 3 * HOUR }])]);
    await book.set(2, '2468', 'Cleaner', { fromMs: t0, untilMs: t0 + HOUR });
    expect(await at(HOUR - 1)).toBe('2468');
    // The command's window closed and the control plane is out of reach: off the lock…
    expect(await at(HOUR)).toBeUndefined();
    // …and back on for the visit the list still names, then off again.
    expect(await at(2 * HOUR - 1)).toBeUndefined();
    expect(await at(2 * HOUR)).toBe('2468');
    expect(await at(3 * HOUR - 1)).toBe('2468');
    expect(await at(3 * HOUR)).toBeUndefined();
    // pin.list still says what the control plane wrote.
    expect((await book.list(1)).slots).toEqual([
      {
        slot: 2,
        set: true,
        digest: pinDigest(KEY, 2, '2468'),
        fromMs: t0,
        untilMs: t0 + HOUR,
      },
    ]);
  });

  it('extends nothing for an entry that names another code', async () => {
    const { book, t0, publish, guestSlot, at } = await withGrants();
    publish([guestSlot('1111', [{ fromMs: t0 + 2 * HOUR, untilMs: t0 + 3 * HOUR }])]);
    await book.set(2, '2468', null, { fromMs: t0, untilMs: t0 + HOUR });
    expect(await at(HOUR)).toBeUndefined();
    expect(await at(2 * HOUR + 1)).toBeUndefined();
  });

  it('ends the extension at the horizon, even for an entry open at all times', async () => {
    const { book, t0, publish, guestSlot, at } = await withGrants();
    publish([guestSlot('2468', null)], t0 + 5 * HOUR);
    await book.set(2, '2468', null, { fromMs: t0, untilMs: t0 + HOUR });
    expect(await at(HOUR)).toBe('2468');
    expect(await at(5 * HOUR - 1)).toBe('2468');
    expect(await at(5 * HOUR)).toBeUndefined();
  });

  it('clears at once when a new list drops the slot, unless the command window holds', async () => {
    const { book, t0, publish, guestSlot, at } = await withGrants();
    const listed = guestSlot('2468', [{ fromMs: t0, untilMs: t0 + 4 * HOUR }]);
    publish([listed]);
    await book.set(2, '2468', null, { fromMs: t0, untilMs: t0 + HOUR });
    // Inside the command window, a list without the slot changes nothing.
    await at(30 * 60_000);
    publish([]);
    expect(await at(30 * 60_000)).toBe('2468');
    publish([listed]);
    expect(await at(2 * HOUR)).toBe('2468');
    // Outside it, the slot's extension ends with the list that drops it.
    publish([]);
    await settle();
    expect(await at(2 * HOUR)).toBeUndefined();
    // A later list that names it again brings it back.
    publish([listed]);
    await settle();
    expect(await at(2 * HOUR)).toBe('2468');
  });

  it('a list issued after the slot was written that drops it ends it at once, even inside the written window (a revocation that beat its pin.clear)', async () => {
    const { book, clock, t0, publish, guestSlot, at } = await withGrants();
    const listed = guestSlot('1357', [{ fromMs: t0, untilMs: t0 + 4 * HOUR }]);
    publish([listed]);
    // Written at t0 + 1 min (the command's issuedAt), with an hour's window.
    clock.advanceTo(t0 + 60_000);
    await book.set(2, '1357', null, { fromMs: t0, untilMs: t0 + HOUR }, t0 + 60_000);
    expect(await at(2 * 60_000)).toBe('1357');
    // The control plane revokes the guest; its new list (issued later) reaches the hub first.
    publish([]);
    await settle();
    expect(await at(2 * 60_000)).toBeUndefined();
  });

  it('a list issued before the slot was written does not end it', async () => {
    const { book, clock, t0, publish, at } = await withGrants();
    publish([]);
    clock.advanceTo(t0 + 60_000);
    // Written after the list was issued: the list simply did not know of it yet.
    await book.set(2, '8642', null, { fromMs: t0, untilMs: t0 + HOUR }, t0 + 60_000);
    expect(await at(2 * 60_000)).toBe('8642');
  });

  it('pin.clear empties the slot at once, whatever the list says', async () => {
    const { book, t0, publish, guestSlot, at } = await withGrants();
    const listed = guestSlot('2468', null);
    publish([listed]);
    await book.set(2, '2468', null, { fromMs: t0, untilMs: t0 + HOUR });
    expect(await at(2 * HOUR)).toBe('2468');
    await book.clear(2);
    expect(await at(2 * HOUR)).toBeUndefined();
    publish([listed]);
    expect(await at(3 * HOUR)).toBeUndefined();
    expect((await book.list(1)).slots).toEqual([]);
  });

  it('a pin.clear that comes while a list is writing the code waits for it, then clears', async () => {
    // A lock whose writes take a while (a Z-Wave lock answers in tens of ms), held by the test.
    const held: (() => void)[] = [];
    const slow = (inner: PinDriver): PinDriver => ({
      capacity: () => inner.capacity(),
      occupied: () => inner.occupied(),
      clear: (slot) => inner.clear(slot),
      set: (slot, code) =>
        new Promise<void>((resolve) => held.push(resolve)).then(() => inner.set(slot, code)),
    });
    const { lock, book, t0, publish, guestSlot, at } = await withGrants(slow);
    const setting = book.set(2, '2468', null, { fromMs: t0 + HOUR, untilMs: t0 + 2 * HOUR });
    await setting;
    expect(held).toHaveLength(0);
    await at(3 * HOUR);
    // The list puts the code back on the lock; the lock is slow to take it.
    publish([guestSlot('2468', null)]);
    await settle();
    expect(held).toHaveLength(1);
    const cleared = book.clear(2);
    held.shift()!();
    await cleared;
    await settle();
    expect(lock.pins!.codeIn(2)).toBeUndefined();
    expect((await book.list(1)).slots).toEqual([]);
  });
});
